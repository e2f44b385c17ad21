/* core/rotation.c — rotation schedule and manifest.  See rotation.h. */
#include "core/rotation.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/cleanup.h"
#include "core/fsutil.h"
#include "core/json.h"
#include "core/limits.h"

#define MANIFEST_VERSION 1
#define MANIFEST_MODE 0600

struct wi_rotation {
	char path[PATH_MAX];
	wi_rotation_policy p;
	wi_rotation_slot slots[WI_ROTATION_SLOTS_MAX];
	size_t n;
};

static int slot_cmp(const void *a, const void *b)
{
	const wi_rotation_slot *x = a, *y = b;
	if (x->activate != y->activate)
		return x->activate < y->activate ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int get_int(json_t *o, const char *key, int64_t min, int64_t *ret)
{
	json_t *v = json_object_get(o, key);
	WI_CHECK(json_is_integer(v) && json_integer_value(v) >= min, WI_E_PARSE,
		 "rotation manifest: \"%s\" must be an integer >= %lld", key, (long long)min);
	*ret = json_integer_value(v);
	return 0;
}

static int parse_manifest(wi_rotation *r, const uint8_t *data, size_t len)
{
	json_auto_t *doc = NULL;
	WI_TRY(wi_json_parse_object((const char *)data, len, "rotation manifest", &doc));
	int64_t version = 0;
	WI_TRY(get_int(doc, "version", 0, &version));
	WI_CHECK(version == MANIFEST_VERSION, WI_E_PARSE, "rotation manifest %s: version %lld unknown",
		 r->path, (long long)version);
	json_t *slots = json_object_get(doc, "slots");
	WI_CHECK(json_is_array(slots) && json_array_size(slots) <= WI_ROTATION_SLOTS_MAX, WI_E_PARSE,
		 "rotation manifest %s: \"slots\" must be an array of at most %d", r->path,
		 WI_ROTATION_SLOTS_MAX);
	size_t i;
	json_t *s;
	json_array_foreach(slots, i, s)
	{
		WI_CHECK(json_is_object(s) && json_object_size(s) == 3, WI_E_PARSE,
			 "rotation manifest %s: slot %zu must be {seq, prepared, activate}", r->path, i);
		int64_t seq = 0, prepared = 0, activate = 0;
		WI_TRY(get_int(s, "seq", 0, &seq));
		WI_TRY(get_int(s, "prepared", 0, &prepared));
		WI_TRY(get_int(s, "activate", 0, &activate));
		WI_CHECK(!wi_rotation_has_seq(r, (uint64_t)seq), WI_E_PARSE,
			 "rotation manifest %s: seq %lld twice", r->path, (long long)seq);
		r->slots[r->n++] = (wi_rotation_slot){(uint64_t)seq, (time_t)prepared, (time_t)activate};
	}
	qsort(r->slots, r->n, sizeof(r->slots[0]), slot_cmp);
	return 0;
}

int wi_rotation_open(const char *dir, const char *name, const wi_rotation_policy *policy, wi_rotation **ret)
{
	WI_CHECK(dir && name && policy && ret, WI_E_INVAL, "rotation: NULL argument");
	WI_CHECK(policy->rotate_every >= 0 && policy->lead >= 0 && policy->linger >= 0, WI_E_INVAL,
		 "rotation: negative period");
	_cleanup_(freep) wi_rotation *r = calloc(1, sizeof(*r));
	WI_CHECK_ALLOC(r);
	r->p = *policy;
	char file[NAME_MAX + 1];
	WI_CHECK(snprintf(file, sizeof(file), "%s.json", name) < (int)sizeof(file), WI_E_INVAL,
		 "rotation: name too long");
	WI_TRY(wi_fs_join(r->path, sizeof(r->path), dir, file));
	_cleanup_(freep) uint8_t *data = NULL;
	size_t len = 0;
	int rc = wi_fs_read_file(r->path, WI_ROTATION_MANIFEST_MAX, &data, &len);
	if (rc != WI_E_NOT_FOUND) {
		WI_TRY(rc);
		WI_TRY(parse_manifest(r, data, len));
	}
	*ret = TAKE_PTR(r);
	return 0;
}

wi_rotation *wi_rotation_free(wi_rotation *r)
{
	free(r);
	return NULL;
}

size_t wi_rotation_count(const wi_rotation *r)
{
	return r->n;
}

const wi_rotation_slot *wi_rotation_slot_at(const wi_rotation *r, size_t i)
{
	return i < r->n ? &r->slots[i] : NULL;
}

bool wi_rotation_has_seq(const wi_rotation *r, uint64_t seq)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->slots[i].seq == seq)
			return true;
	return false;
}

uint64_t wi_rotation_next_seq(const wi_rotation *r)
{
	uint64_t next = 0;
	for (size_t i = 0; i < r->n; i++)
		if (r->slots[i].seq >= next)
			next = r->slots[i].seq + 1;
	return next;
}

ssize_t wi_rotation_active(const wi_rotation *r, time_t now)
{
	if (r->n == 0)
		return -1;
	ssize_t a = 0; /* clock before every activation: the earliest */
	for (size_t i = 0; i < r->n; i++)
		if (r->slots[i].activate <= now)
			a = (ssize_t)i;
	return a;
}

bool wi_rotation_prepare_due(const wi_rotation *r, time_t now, time_t *ret_activate)
{
	ssize_t a = wi_rotation_active(r, now);
	if (r->p.rotate_every <= 0 || a < 0 || (size_t)a + 1 < r->n)
		return false; /* never rotating, empty, or a successor is waiting */
	const wi_rotation_slot *s = &r->slots[a];
	time_t when = s->activate + (time_t)r->p.rotate_every;
	if (now < when - (time_t)r->p.lead)
		return false;
	if (when < now + (time_t)r->p.lead)
		when = now + (time_t)r->p.lead;
	*ret_activate = when;
	return true;
}

bool wi_rotation_retire_due(const wi_rotation *r, time_t now, uint64_t *ret_seq)
{
	/* Slot i is replaced when slot i+1 activates; everything before the
	 * active slot has a successor that is active. */
	ssize_t a = wi_rotation_active(r, now);
	for (ssize_t i = 0; i < a; i++) {
		if (now >= r->slots[i + 1].activate + (time_t)r->p.linger) {
			*ret_seq = r->slots[i].seq;
			return true;
		}
	}
	return false;
}

/* The seq of a file named exactly <prefix><seq><suffix> with seq > 0. */
static bool file_seq(const char *name, const char *prefix, const char *suffix, uint64_t *ret)
{
	size_t pl = strlen(prefix);
	if (strncmp(name, prefix, pl) != 0 || name[pl] < '1' || name[pl] > '9')
		return false;
	char *end = NULL;
	errno = 0;
	unsigned long long seq = strtoull(name + pl, &end, 10);
	if (errno != 0 || strcmp(end, suffix) != 0)
		return false;
	*ret = (uint64_t)seq;
	return true;
}

static bool slot_file(const char *name, const char *prefix, const char *const *suffixes,
		      const char *const *seq0_names, uint64_t *ret)
{
	for (size_t i = 0; seq0_names[i]; i++) {
		if (strcmp(name, seq0_names[i]) == 0) {
			*ret = 0;
			return true;
		}
	}
	for (size_t i = 0; suffixes[i]; i++)
		if (file_seq(name, prefix, suffixes[i], ret))
			return true;
	return false;
}

int wi_rotation_remove_orphans(const wi_rotation *r, const char *dir, const char *prefix,
			       const char *const *suffixes, const char *const *seq0_names)
{
	DIR *d = opendir(dir);
	WI_CHECK(d != NULL, WI_E_IO, "rotation: open %s: %s", dir, strerror(errno));
	struct dirent *e;
	int rc = 0;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		uint64_t seq = 0;
		if (!slot_file(e->d_name, prefix, suffixes, seq0_names, &seq) || wi_rotation_has_seq(r, seq))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT)
			rc = wi__error_set(WI_E_IO, __FILE__, __LINE__, "rotation: remove orphan %s/%s: %s", dir,
					   e->d_name, strerror(errno));
	}
	closedir(d);
	return rc;
}

static int save(const wi_rotation *r)
{
	json_auto_t *slots = json_array();
	WI_CHECK_ALLOC(slots);
	for (size_t i = 0; i < r->n; i++) {
		json_t *s = json_pack("{s:I,s:I,s:I}", "seq", (json_int_t)r->slots[i].seq, "prepared",
				      (json_int_t)r->slots[i].prepared, "activate", (json_int_t)r->slots[i].activate);
		WI_CHECK_ALLOC(s && json_array_append_new(slots, s) == 0);
	}
	json_auto_t *doc = json_pack("{s:i,s:O}", "version", MANIFEST_VERSION, "slots", slots);
	WI_CHECK_ALLOC(doc);
	_cleanup_(freep) char *text = json_dumps(doc, JSON_COMPACT);
	WI_CHECK_ALLOC(text);
	return wi_fs_write_atomic(r->path, text, strlen(text), MANIFEST_MODE);
}

int wi_rotation_add(wi_rotation *r, uint64_t seq, time_t prepared, time_t activate)
{
	WI_CHECK(!wi_rotation_has_seq(r, seq), WI_E_INVAL, "rotation: seq %llu exists", (unsigned long long)seq);
	WI_CHECK(r->n < WI_ROTATION_SLOTS_MAX, WI_E_TOO_BIG, "rotation: more than %d slots",
		 WI_ROTATION_SLOTS_MAX);
	wi_rotation old = *r;
	r->slots[r->n++] = (wi_rotation_slot){seq, prepared, activate};
	qsort(r->slots, r->n, sizeof(r->slots[0]), slot_cmp);
	int rc = save(r);
	if (rc < 0)
		*r = old; /* memory follows the disk */
	return rc;
}

int wi_rotation_remove(wi_rotation *r, uint64_t seq)
{
	WI_CHECK(wi_rotation_has_seq(r, seq), WI_E_NOT_FOUND, "rotation: no seq %llu", (unsigned long long)seq);
	wi_rotation old = *r;
	size_t j = 0;
	for (size_t i = 0; i < r->n; i++)
		if (r->slots[i].seq != seq)
			r->slots[j++] = r->slots[i];
	r->n = j;
	int rc = save(r);
	if (rc < 0)
		*r = old;
	return rc;
}
