/* attestors/procfs.c — bounded /proc reads through a dirfd, and pure parsers
 * for the few /proc files the attestors trust. */
#include "attestors/procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/limits.h"

int wi__proc_open_pid(pid_t pid, int *ret_dirfd)
{
	char path[32];
	WI_CHECK(pid > 0, WI_E_INVAL, "pid %d", (int)pid);
	int n = snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	WI_CHECK(n > 0 && (size_t)n < sizeof(path), WI_E_INTERNAL, "pid path");
	/* O_NOFOLLOW: /proc/<pid> is a real directory; a symlink there ("self",
	 * "thread-self") would mean someone else's procfs layout. */
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		/* ENOENT: no such pid (or hidden by hidepid=): the peer is gone
		 * as far as we can ever prove. */
		WI_CHECK(errno != ENOENT && errno != ESRCH, WI_E_UNAUTHENTICATED, "open %s: %s", path,
			 strerror(errno));
		WI_FAIL(WI_E_IO, "open %s: %s", path, strerror(errno));
	}
	*ret_dirfd = fd;
	return 0;
}

int wi__proc_read(int dirfd, const char *name, char **ret_text, size_t *ret_len)
{
	_cleanup_(closep) int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		WI_CHECK(errno != ENOENT, WI_E_NOT_FOUND, "openat %s: %s", name, strerror(errno));
		WI_FAIL(WI_E_IO, "openat %s: %s", name, strerror(errno));
	}
	/* /proc files report st_size 0, so read to EOF into a buffer that grows
	 * up to the cap; one byte is kept for the convenience NUL. */
	size_t alloc = 4096, len = 0;
	_cleanup_(freep) char *buf = malloc(alloc);
	WI_CHECK_ALLOC(buf);
	for (;;) {
		if (alloc - 1 - len == 0) {
			if (alloc >= WI_PROC_FILE_MAX) {
				/* Full: one probe read tells EOF from a file that is too big. */
				char probe;
				ssize_t p;
				do
					p = read(fd, &probe, 1);
				while (p < 0 && errno == EINTR);
				WI_CHECK_ERRNO(p >= 0, "read %s: %s", name, strerror(errno));
				WI_CHECK(p == 0, WI_E_TOO_BIG, "%s: larger than %u bytes", name,
					 WI_PROC_FILE_MAX - 1);
				break;
			}
			size_t na = alloc * 2 > WI_PROC_FILE_MAX ? WI_PROC_FILE_MAX : alloc * 2;
			char *nb = realloc(buf, na);
			WI_CHECK_ALLOC(nb);
			buf = nb;
			alloc = na;
		}
		ssize_t r = read(fd, buf + len, alloc - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		WI_CHECK_ERRNO(r >= 0, "read %s: %s", name, strerror(errno));
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	*ret_text = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

/* ---- pure parsers --------------------------------------------------------- */

/* Strict unsigned decimal: digits only, no sign, no leading zero (the kernel
 * prints none), no overflow. */
static bool parse_u64(const char *p, size_t n, uint64_t *ret)
{
	if (n == 0 || (n > 1 && p[0] == '0'))
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*ret = v;
	return true;
}

/* An id below 2^32-1: (uid_t)-1 means "no id" to the kernel and is never a
 * process credential. */
static bool parse_id(const char *p, size_t n, uint32_t *ret)
{
	uint64_t v;
	if (!parse_u64(p, n, &v) || v >= UINT32_MAX)
		return false;
	*ret = (uint32_t)v;
	return true;
}

int wi__proc_parse_stat(const char *text, size_t len, pid_t *ret_pid, uint64_t *ret_start_time)
{
	/* proc(5): "pid (comm) state ppid ... starttime(22) ...". */
	WI_CHECK(text != NULL && len > 0, WI_E_PARSE, "stat: empty");
	size_t end = len;
	if (text[end - 1] == '\n')
		end--;
	const char *sp = memchr(text, ' ', end);
	WI_CHECK(sp != NULL, WI_E_PARSE, "stat: no pid field");
	uint64_t pid;
	WI_CHECK(parse_u64(text, (size_t)(sp - text), &pid) && pid > 0 && pid <= INT_MAX, WI_E_PARSE,
		 "stat: bad pid");
	size_t open = (size_t)(sp - text) + 1;
	WI_CHECK(open < end && text[open] == '(', WI_E_PARSE, "stat: no '(' before comm");
	/* The comm is chosen by the process (prctl PR_SET_NAME) and may hold
	 * ')', spaces and newlines; the kernel writes nothing after it that
	 * contains ')', so the LAST ')' closes it. */
	const char *rp = memrchr(text + open + 1, ')', end - open - 1);
	WI_CHECK(rp != NULL, WI_E_PARSE, "stat: no ')' after comm");
	size_t i = (size_t)(rp - text) + 1;
	WI_CHECK(i < end && text[i] == ' ', WI_E_PARSE, "stat: no fields after comm");
	i++;
	/* Fields 3..22, single-space separated. */
	for (unsigned field = 3;; field++) {
		size_t start = i;
		while (i < end && text[i] != ' ')
			i++;
		WI_CHECK(i > start, WI_E_PARSE, "stat: field %u empty or missing", field);
		if (field == 22) {
			uint64_t st;
			WI_CHECK(parse_u64(text + start, i - start, &st), WI_E_PARSE,
				 "stat: starttime is not a decimal number");
			*ret_pid = (pid_t)pid;
			*ret_start_time = st;
			return 0;
		}
		WI_CHECK(i < end, WI_E_PARSE, "stat: truncated at field %u", field);
		i++; /* the separator */
	}
}

/* Splits [p, end) on spaces/tabs; calls back for each token. */
typedef bool (*token_fn)(const char *tok, size_t n, void *ctx);

static bool each_token(const char *p, const char *end, token_fn fn, void *ctx)
{
	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		const char *t = p;
		while (p < end && *p != ' ' && *p != '\t')
			p++;
		if (p > t && !fn(t, (size_t)(p - t), ctx))
			return false;
	}
	return true;
}

struct id_cols {
	uint32_t v[4];
	size_t n;
};

static bool id_col(const char *tok, size_t n, void *ctx)
{
	struct id_cols *c = ctx;
	if (c->n == 4)
		return false;
	return parse_id(tok, n, &c->v[c->n++]);
}

struct gid_list {
	gid_t *v; /* NULL while counting */
	size_t n;
};

static bool gid_tok(const char *tok, size_t n, void *ctx)
{
	struct gid_list *g = ctx;
	uint32_t id;
	if (!parse_id(tok, n, &id))
		return false;
	if (g->v)
		g->v[g->n] = (gid_t)id;
	g->n++;
	return true;
}

void wi__proc_status_done(wi__proc_status *s)
{
	free(s->groups);
	s->groups = NULL;
	s->ngroups = 0;
}

int wi__proc_parse_status(const char *text, size_t len, wi__proc_status *ret)
{
	WI_CHECK(text != NULL, WI_E_PARSE, "status: empty");
	const char *p = text, *end = text + len;
	const char *uid_line = NULL, *gid_line = NULL, *groups_line = NULL;
	const char *uid_end = NULL, *gid_end = NULL, *groups_end = NULL;
	/* Keys are matched whole ("Uid:" and not "Uidx:"); the kernel escapes
	 * newlines in "Name:", so a process cannot forge a line. */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *colon = memchr(p, ':', (size_t)(le - p));
		if (colon) {
			size_t k = (size_t)(colon - p);
			const char **slot = NULL, **slot_end = NULL;
			if (k == 3 && memcmp(p, "Uid", 3) == 0) {
				slot = &uid_line;
				slot_end = &uid_end;
			} else if (k == 3 && memcmp(p, "Gid", 3) == 0) {
				slot = &gid_line;
				slot_end = &gid_end;
			} else if (k == 6 && memcmp(p, "Groups", 6) == 0) {
				slot = &groups_line;
				slot_end = &groups_end;
			}
			if (slot) {
				WI_CHECK(*slot == NULL, WI_E_PARSE, "status: duplicate \"%.*s:\" line", (int)k,
					 p);
				*slot = colon + 1;
				*slot_end = le;
			}
		}
		p = nl ? nl + 1 : end;
	}
	WI_CHECK(uid_line != NULL, WI_E_PARSE, "status: no Uid line");
	WI_CHECK(gid_line != NULL, WI_E_PARSE, "status: no Gid line");
	struct id_cols u = {0}, g = {0};
	WI_CHECK(each_token(uid_line, uid_end, id_col, &u) && u.n == 4, WI_E_PARSE,
		 "status: Uid line must hold four ids");
	WI_CHECK(each_token(gid_line, gid_end, id_col, &g) && g.n == 4, WI_E_PARSE,
		 "status: Gid line must hold four ids");
	struct gid_list gl = {NULL, 0};
	_cleanup_(freep) gid_t *groups = NULL;
	if (groups_line) {
		/* Count, then fill: the count is bounded by the line length. */
		WI_CHECK(each_token(groups_line, groups_end, gid_tok, &gl), WI_E_PARSE,
			 "status: Groups line holds a bad id");
		if (gl.n > 0) {
			groups = calloc(gl.n, sizeof(*groups));
			WI_CHECK_ALLOC(groups);
			gl.v = groups;
			gl.n = 0;
			WI_CHECK(each_token(groups_line, groups_end, gid_tok, &gl), WI_E_INTERNAL,
				 "status: Groups reparse");
		}
	}
	ret->euid = (uid_t)u.v[1];
	ret->egid = (gid_t)g.v[1];
	ret->ngroups = gl.n;
	ret->groups = TAKE_PTR(groups);
	return 0;
}

int wi__proc_parse_cgroup(const char *text, size_t len, const char **ret_path, size_t *ret_path_len)
{
	WI_CHECK(text != NULL, WI_E_PARSE, "cgroup: empty");
	const char *p = text, *end = text + len;
	const char *found = NULL;
	size_t found_len = 0;
	unsigned lineno = 0;
	while (p < end) {
		lineno++;
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		/* cgroups(7): "hierarchy-ID:controller-list:cgroup-path". */
		const char *c1 = memchr(p, ':', (size_t)(le - p));
		WI_CHECK(c1 != NULL, WI_E_PARSE, "cgroup: line %u has no ':'", lineno);
		uint64_t hid;
		WI_CHECK(parse_u64(p, (size_t)(c1 - p), &hid), WI_E_PARSE,
			 "cgroup: line %u: hierarchy id is not a number", lineno);
		const char *c2 = memchr(c1 + 1, ':', (size_t)(le - c1 - 1));
		WI_CHECK(c2 != NULL, WI_E_PARSE, "cgroup: line %u has no second ':'", lineno);
		const char *path = c2 + 1;
		size_t plen = (size_t)(le - path);
		WI_CHECK(plen > 0 && path[0] == '/', WI_E_PARSE, "cgroup: line %u: path is not absolute",
			 lineno);
		if (hid == 0) {
			/* cgroups(7): the unified (v2) hierarchy has id 0 and an empty
			 * controller list; v1 hierarchies on hybrid hosts are ignored. */
			WI_CHECK(c2 == c1 + 1, WI_E_PARSE, "cgroup: line %u: id 0 with controllers",
				 lineno);
			WI_CHECK(found == NULL, WI_E_PARSE, "cgroup: two \"0::\" lines");
			found = path;
			found_len = plen;
		}
		p = nl ? nl + 1 : end;
	}
	WI_CHECK(found != NULL, WI_E_NOT_FOUND, "cgroup: no cgroup v2 (\"0::\") line");
	*ret_path = found;
	*ret_path_len = found_len;
	return 0;
}

static bool ends_with(const char *s, size_t n, const char *suffix, size_t *ret_stem)
{
	size_t sl = strlen(suffix);
	if (n < sl || memcmp(s + n - sl, suffix, sl) != 0)
		return false;
	*ret_stem = n - sl;
	return true;
}

/* systemd.unit(5): unit names use [A-Za-z0-9:_.\-] plus '@' for templates. */
static bool unit_chars(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == ':' || c == '_' || c == '.' || c == '-' || c == '\\' || c == '@'))
			return false;
	}
	return true;
}

/* Walks components of [path, path+len) from the deepest; calls fn for each
 * non-empty one until it returns true. */
typedef bool (*component_fn)(const char *c, size_t n, const char **ret, size_t *ret_len);

static bool deepest(const char *path, size_t len, component_fn fn, const char **ret, size_t *ret_len)
{
	size_t e = len;
	while (e > 0) {
		size_t s = e;
		while (s > 0 && path[s - 1] != '/')
			s--;
		if (e > s && fn(path + s, e - s, ret, ret_len))
			return true;
		if (s == 0)
			break;
		e = s - 1;
	}
	return false;
}

static bool is_unit(const char *c, size_t n, const char **ret, size_t *ret_len)
{
	size_t stem;
	if ((ends_with(c, n, ".service", &stem) || ends_with(c, n, ".scope", &stem)) && stem > 0 &&
	    unit_chars(c, n)) {
		*ret = c;
		*ret_len = n;
		return true;
	}
	return false;
}

int wi__cgroup_systemd_unit(const char *path, size_t len, const char **ret, size_t *ret_len)
{
	WI_CHECK(path != NULL, WI_E_NOT_FOUND, "cgroup path names no systemd unit");
	size_t s = 0;
	while (s < len) {
		size_t e = s;
		while (e < len && path[e] != '/')
			e++;
		size_t n = e - s, stem;
		if (n > 0) {
			if (!(ends_with(path + s, n, ".slice", &stem) && stem > 0 && unit_chars(path + s, n))) {
				WI_CHECK(is_unit(path + s, n, ret, ret_len), WI_E_NOT_FOUND,
					 "cgroup path names no systemd unit");
				return 0;
			}
		}
		s = e + 1;
	}
	WI_FAIL(WI_E_NOT_FOUND, "cgroup path names no systemd unit");
}

#define CONTAINER_ID_LEN 64

static bool hex64(const char *s)
{
	for (size_t i = 0; i < CONTAINER_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool is_container(const char *c, size_t n, const char **ret, size_t *ret_len)
{
	/* Runtimes that name a container's cgroup "<prefix>-<id>": docker and
	 * cri-dockerd with the systemd driver, containerd (CRI and plain), CRI-O,
	 * podman.  "-conmon-" helpers are deliberately absent: conmon is the
	 * runtime's monitor, not the workload. */
	static const char *const prefixes[] = {"docker", "cri-containerd", "containerd", "crio",
					       "libpod"};
	size_t stem;
	if (ends_with(c, n, ".scope", &stem))
		n = stem;
	const char *id = NULL;
	if (n == CONTAINER_ID_LEN) {
		/* cgroupfs drivers: /docker/<id>, /kubepods/.../pod<uid>/<id>. */
		id = c;
	} else if (n > CONTAINER_ID_LEN + 1 && c[n - CONTAINER_ID_LEN - 1] == '-') {
		size_t pl = n - CONTAINER_ID_LEN - 1;
		for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
			if (strlen(prefixes[i]) == pl && memcmp(c, prefixes[i], pl) == 0)
				id = c + pl + 1;
	}
	if (!id || !hex64(id))
		return false;
	*ret = id;
	*ret_len = CONTAINER_ID_LEN;
	return true;
}

int wi__cgroup_container_id(const char *path, size_t len, const char **ret, size_t *ret_len)
{
	const char *id;
	size_t il;
	/* The deepest match is the innermost container (docker-in-docker). */
	WI_CHECK(path != NULL && deepest(path, len, is_container, &id, &il), WI_E_NOT_FOUND,
		 "cgroup path names no container");
	*ret = id;
	*ret_len = il;
	return 0;
}
