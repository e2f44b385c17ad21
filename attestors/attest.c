/* attestors/attest.c — the unix, cgroup, systemd and container selectors of a
 * peer, with an attestation cache per process identity and a digest cache per
 * executable file. */
#include "attestors/attest.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "attestors/procfs.h"
#include "core/cleanup.h"
#include "core/digest.h"
#include "core/hist.h"
#include "core/limits.h"

/* Not limits but shapes: the read size for hashing (streaming keeps memory
 * flat for any binary size) and the cache associativity (a few ways make a
 * collision between two hot keys unlikely without a global LRU list). */
#define HASH_CHUNK (64u * 1024u)
#define CACHE_WAYS 4u
#define EXE_SETS (WI_EXE_HASH_CACHE_SLOTS / CACHE_WAYS)
#define PROC_SETS (WI_ATTEST_CACHE_SLOTS / CACHE_WAYS)
_Static_assert(EXE_SETS > 0 && WI_EXE_HASH_CACHE_SLOTS % CACHE_WAYS == 0, "exe cache shape");
_Static_assert(PROC_SETS > 0 && WI_ATTEST_CACHE_SLOTS % CACHE_WAYS == 0, "attest cache shape");

/* The file that was hashed.  ctime is in the key besides the contract's
 * (dev, ino, mtime, size) because mtime can be set back with utimensat(2)
 * after rewriting a file of the same size, while ctime cannot. */
struct exe_key {
	dev_t dev;
	ino_t ino;
	int64_t mtime_ns;
	int64_t ctime_ns;
	off_t size;
};

struct exe_slot {
	bool used;
	uint64_t stamp;
	struct exe_key k;
	unsigned char digest[WI_SHA256_LEN];
};

/* The process identity (DESIGN §3): an exec changes exe's inode. */
struct proc_key {
	pid_t pid;
	uint64_t start_time;
	uid_t uid;
	gid_t gid;
	dev_t exe_dev;
	ino_t exe_ino;
};

struct proc_slot {
	bool used;
	uint64_t stamp;
	struct proc_key k;
	wi_selector_set *set; /* one reference owned by the slot */
};

struct wi_attestor {
	bool hash_executables;
	/* One mutex per set (striping): lookups of different processes do
	 * not contend, and no lock is held while reading /proc or hashing. */
	pthread_mutex_t exe_locks[EXE_SETS];
	pthread_mutex_t proc_locks[PROC_SETS];
	size_t exe_locks_init, proc_locks_init;
	struct exe_slot exe[EXE_SETS][CACHE_WAYS];
	struct proc_slot proc[PROC_SETS][CACHE_WAYS];
	atomic_uint_fast64_t clock; /* recency stamps for eviction */
	atomic_uint_fast64_t attestations, cache_hits, hash_computed, hash_cache_hits;
	atomic_uint_fast64_t cache_misses; /* calls whose first pass read /proc */
	wi_hist latency;                   /* every attestation, hit, miss or failure */
};

/* ---- caches --------------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
	/* splitmix64 finaliser: spreads pids and inodes over the sets. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static bool exe_key_eq(const struct exe_key *a, const struct exe_key *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->mtime_ns == b->mtime_ns &&
	       a->ctime_ns == b->ctime_ns && a->size == b->size;
}

static bool proc_key_eq(const struct proc_key *a, const struct proc_key *b)
{
	return a->pid == b->pid && a->start_time == b->start_time && a->uid == b->uid &&
	       a->gid == b->gid && a->exe_dev == b->exe_dev && a->exe_ino == b->exe_ino;
}

static size_t exe_set_of(const struct exe_key *k)
{
	return (size_t)(mix((uint64_t)k->ino ^ mix((uint64_t)k->dev)) % EXE_SETS);
}

static size_t proc_set_of(const struct proc_key *k)
{
	return (size_t)(mix((uint64_t)k->pid ^ mix(k->start_time ^ mix((uint64_t)k->exe_ino))) %
			PROC_SETS);
}

static uint64_t next_stamp(wi_attestor *a)
{
	return atomic_fetch_add_explicit(&a->clock, 1, memory_order_relaxed) + 1;
}

/* The way to overwrite in a set: the matching key, else a free way, else the
 * least recently used one (the "oldest/colliding" slot). */
static size_t exe_pick(const struct exe_slot *ways, const struct exe_key *k)
{
	size_t lru = 0;
	for (size_t i = 0; i < CACHE_WAYS; i++)
		if (ways[i].used && exe_key_eq(&ways[i].k, k))
			return i;
	for (size_t i = 0; i < CACHE_WAYS; i++) {
		if (!ways[i].used)
			return i;
		if (ways[i].stamp < ways[lru].stamp)
			lru = i;
	}
	return lru;
}

static size_t proc_pick(const struct proc_slot *ways, const struct proc_key *k)
{
	size_t lru = 0;
	for (size_t i = 0; i < CACHE_WAYS; i++)
		if (ways[i].used && proc_key_eq(&ways[i].k, k))
			return i;
	for (size_t i = 0; i < CACHE_WAYS; i++) {
		if (!ways[i].used)
			return i;
		if (ways[i].stamp < ways[lru].stamp)
			lru = i;
	}
	return lru;
}

static bool exe_cache_get(wi_attestor *a, const struct exe_key *k, unsigned char out[WI_SHA256_LEN])
{
	size_t s = exe_set_of(k);
	bool hit = false;
	pthread_mutex_lock(&a->exe_locks[s]);
	for (size_t i = 0; i < CACHE_WAYS; i++) {
		struct exe_slot *e = &a->exe[s][i];
		if (e->used && exe_key_eq(&e->k, k)) {
			memcpy(out, e->digest, WI_SHA256_LEN);
			e->stamp = next_stamp(a);
			hit = true;
			break;
		}
	}
	pthread_mutex_unlock(&a->exe_locks[s]);
	return hit;
}

static void exe_cache_put(wi_attestor *a, const struct exe_key *k, const unsigned char d[WI_SHA256_LEN])
{
	size_t s = exe_set_of(k);
	pthread_mutex_lock(&a->exe_locks[s]);
	struct exe_slot *e = &a->exe[s][exe_pick(a->exe[s], k)];
	e->used = true;
	e->k = *k;
	memcpy(e->digest, d, WI_SHA256_LEN);
	e->stamp = next_stamp(a);
	pthread_mutex_unlock(&a->exe_locks[s]);
}

/* A new reference to the cached set, or NULL. */
static wi_selector_set *proc_cache_get(wi_attestor *a, const struct proc_key *k)
{
	size_t s = proc_set_of(k);
	wi_selector_set *set = NULL;
	pthread_mutex_lock(&a->proc_locks[s]);
	for (size_t i = 0; i < CACHE_WAYS; i++) {
		struct proc_slot *e = &a->proc[s][i];
		if (e->used && proc_key_eq(&e->k, k)) {
			set = wi_selector_set_ref(e->set);
			e->stamp = next_stamp(a);
			break;
		}
	}
	pthread_mutex_unlock(&a->proc_locks[s]);
	return set;
}

static void proc_cache_put(wi_attestor *a, const struct proc_key *k, wi_selector_set *set)
{
	size_t s = proc_set_of(k);
	pthread_mutex_lock(&a->proc_locks[s]);
	struct proc_slot *e = &a->proc[s][proc_pick(a->proc[s], k)];
	wi_selector_set *old = e->used ? e->set : NULL;
	e->used = true;
	e->k = *k;
	e->set = wi_selector_set_ref(set);
	e->stamp = next_stamp(a);
	pthread_mutex_unlock(&a->proc_locks[s]);
	/* The last reference may go here: free outside the lock. */
	wi_selector_set_unref(old);
}

/* ---- selectors --------------------------------------------------------------- */

/* Adds a value whose shape the process or the system chose (names, paths).
 * A value that fails validation (a space in an LDAP name, a path longer than
 * WI_SELECTOR_MAX) could not be named by any registration entry, so dropping
 * it fails closed: matching is by subset, fewer selectors match fewer
 * entries. */
static int add_optional(wi_selector_set *s, wi_selector_kind kind, const char *value)
{
	int r = wi_selector_set_add(s, kind, value);
	return r == WI_E_SELECTOR ? 0 : r;
}

static int add_id(wi_selector_set *s, wi_selector_kind kind, uint32_t id)
{
	char v[16];
	int n = snprintf(v, sizeof(v), "%u", id);
	WI_CHECK(n > 0 && (size_t)n < sizeof(v), WI_E_INTERNAL, "id format");
	return wi_selector_set_add(s, kind, v);
}

/* The NSS name of a uid or gid: 0 with *ret set, WI_E_NOT_FOUND when the id
 * has no name, WI_E_UNAVAILABLE when NSS fails (not cached as "no name": the
 * result would be wrong for as long as the process lives). */
static int nss_name(bool group, uint32_t id, char **ret)
{
	long hint = sysconf(group ? _SC_GETGR_R_SIZE_MAX : _SC_GETPW_R_SIZE_MAX);
	size_t size = hint > 0 && (unsigned long)hint < WI_NSS_BUFFER_MAX ? (size_t)hint : 1024;
	for (;;) {
		_cleanup_(freep) char *buf = malloc(size);
		WI_CHECK_ALLOC(buf);
		const char *name = NULL;
		int e;
		if (group) {
			struct group gr, *res = NULL;
			e = getgrgid_r((gid_t)id, &gr, buf, size, &res);
			if (e == 0 && res)
				name = gr.gr_name;
		} else {
			struct passwd pw, *res = NULL;
			e = getpwuid_r((uid_t)id, &pw, buf, size, &res);
			if (e == 0 && res)
				name = pw.pw_name;
		}
		if (name) {
			char *dup = strdup(name);
			WI_CHECK_ALLOC(dup);
			*ret = dup;
			return 0;
		}
		if (e == ERANGE) {
			WI_CHECK(size < WI_NSS_BUFFER_MAX, WI_E_UNAVAILABLE,
				 "%s entry of %u needs more than %u bytes", group ? "group" : "passwd", id,
				 WI_NSS_BUFFER_MAX);
			size = size > WI_NSS_BUFFER_MAX / 2 ? WI_NSS_BUFFER_MAX : size * 2;
			continue;
		}
		/* getpwuid_r(3): 0, ENOENT, ESRCH, EBADF and EPERM all mean "no
		 * such entry" depending on the NSS module. */
		if (e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM)
			return WI_E_NOT_FOUND;
		WI_FAIL(WI_E_UNAVAILABLE, "%s(%u): %s", group ? "getgrgid_r" : "getpwuid_r", id,
			strerror(e));
	}
}

static int add_name(wi_selector_set *s, wi_selector_kind kind, bool group, uint32_t id)
{
	_cleanup_(freep) char *name = NULL;
	int r = nss_name(group, id, &name);
	if (r == WI_E_NOT_FOUND)
		return 0; /* attest.h: omitted when the id has no name */
	WI_TRY(r);
	return add_optional(s, kind, name);
}

static void proc_status_donep(wi__proc_status *st)
{
	wi__proc_status_done(st);
}

static int add_unix_ids(wi_selector_set *s, int dirfd)
{
	_cleanup_(freep) char *text = NULL;
	size_t len;
	WI_TRY(wi__proc_read(dirfd, "status", &text, &len));
	_cleanup_(proc_status_donep) wi__proc_status st = {0};
	WI_TRY(wi__proc_parse_status(text, len, &st));
	/* reference §4.4: SPIRE's unix attestor uses the effective ids. */
	WI_TRY(add_id(s, WI_SEL_UNIX_UID, (uint32_t)st.euid));
	WI_TRY(add_id(s, WI_SEL_UNIX_GID, (uint32_t)st.egid));
	WI_TRY(add_name(s, WI_SEL_UNIX_USER, false, (uint32_t)st.euid));
	WI_TRY(add_name(s, WI_SEL_UNIX_GROUP, true, (uint32_t)st.egid));
	for (size_t i = 0; i < st.ngroups; i++) {
		WI_TRY(add_id(s, WI_SEL_UNIX_SUPPLEMENTARY_GID, (uint32_t)st.groups[i]));
		WI_TRY(add_name(s, WI_SEL_UNIX_SUPPLEMENTARY_GROUP, true, (uint32_t)st.groups[i]));
	}
	return 0;
}

static int add_slice(wi_selector_set *s, wi_selector_kind kind, const char *p, size_t n)
{
	_cleanup_(freep) char *v = strndup(p, n);
	WI_CHECK_ALLOC(v);
	return add_optional(s, kind, v);
}

static int add_cgroup(wi_selector_set *s, int dirfd)
{
	_cleanup_(freep) char *text = NULL;
	size_t len;
	int r = wi__proc_read(dirfd, "cgroup", &text, &len);
	if (r == WI_E_NOT_FOUND)
		return 0; /* kernel without cgroups */
	WI_TRY(r);
	const char *path, *v;
	size_t plen, vlen;
	r = wi__proc_parse_cgroup(text, len, &path, &plen);
	if (r == WI_E_NOT_FOUND)
		return 0; /* v1-only host: no unified path to report */
	WI_TRY(r);
	WI_TRY(add_slice(s, WI_SEL_CGROUP_PATH, path, plen));
	if (wi__cgroup_systemd_unit(path, plen, &v, &vlen) == 0)
		WI_TRY(add_slice(s, WI_SEL_SYSTEMD_UNIT, v, vlen));
	if (wi__cgroup_container_id(path, plen, &v, &vlen) == 0)
		WI_TRY(add_slice(s, WI_SEL_CONTAINER_ID, v, vlen));
	return 0;
}

/* errno values that mean "this process's exe cannot be shown to us": no
 * ptrace read access (another user's or a non-dumpable process) or no exe at
 * all (exiting).  The selectors are omitted rather than failing the whole
 * attestation, which fails closed (see add_optional). */
static bool exe_hidden(int e)
{
	return e == EACCES || e == EPERM || e == ENOENT;
}

static struct exe_key exe_key_of(const struct stat *st)
{
	struct exe_key k = {
		.dev = st->st_dev,
		.ino = st->st_ino,
		.mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec,
		.ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec,
		.size = st->st_size,
	};
	return k;
}

/* SHA-256 of the open file, streamed; *ret_changed when it changed while read. */
static int hash_fd(int fd, const struct exe_key *k, unsigned char out[WI_SHA256_LEN], bool *ret_changed)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	WI_CHECK_SSL(ctx != NULL, "EVP_MD_CTX_new");
	const EVP_MD *sha256 = wi_digest_md("SHA256");
	WI_CHECK_SSL(sha256 != NULL && EVP_DigestInit_ex(ctx, sha256, NULL) == 1, "EVP_DigestInit_ex");
	_cleanup_(freep) unsigned char *buf = malloc(HASH_CHUNK);
	WI_CHECK_ALLOC(buf);
	uint64_t total = 0;
	for (;;) {
		ssize_t n = read(fd, buf, HASH_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		WI_CHECK_ERRNO(n >= 0, "read exe: %s", strerror(errno));
		if (n == 0)
			break;
		total += (uint64_t)n;
		/* Bounded even if the file grows under us. */
		if (total > (uint64_t)k->size) {
			*ret_changed = true;
			return 0;
		}
		WI_CHECK_SSL(EVP_DigestUpdate(ctx, buf, (size_t)n) == 1, "EVP_DigestUpdate");
	}
	unsigned int dl = 0;
	WI_CHECK_SSL(EVP_DigestFinal_ex(ctx, out, &dl) == 1 && dl == WI_SHA256_LEN, "EVP_DigestFinal_ex");
	struct stat after;
	WI_CHECK_ERRNO(fstat(fd, &after) == 0, "fstat exe: %s", strerror(errno));
	struct exe_key ka = exe_key_of(&after);
	if (total != (uint64_t)k->size || !exe_key_eq(&ka, k))
		*ret_changed = true;
	return 0;
}

static int add_exe_hash(wi_attestor *a, wi_selector_set *s, int dirfd, const struct stat *exe0,
			bool *ret_changed)
{
	/* attest.h: read through /proc/<pid>/exe (a magic link, so no
	 * O_NOFOLLOW) to hash the very binary that runs, even from another
	 * mount namespace (SPIRE #1403). */
	_cleanup_(closep) int fd = openat(dirfd, "exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (exe_hidden(errno))
			return 0;
		WI_FAIL(WI_E_IO, "openat exe: %s", strerror(errno));
	}
	struct stat st;
	WI_CHECK_ERRNO(fstat(fd, &st) == 0, "fstat exe: %s", strerror(errno));
	if (st.st_dev != exe0->st_dev || st.st_ino != exe0->st_ino) {
		*ret_changed = true; /* exec'd since the identity was taken */
		return 0;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < 0 || st.st_size > WI_EXE_HASH_SIZE_MAX)
		return 0; /* attest.h: omitted above WI_EXE_HASH_SIZE_MAX */
	struct exe_key k = exe_key_of(&st);
	unsigned char d[WI_SHA256_LEN];
	if (exe_cache_get(a, &k, d)) {
		atomic_fetch_add_explicit(&a->hash_cache_hits, 1, memory_order_relaxed);
	} else {
		WI_TRY(hash_fd(fd, &k, d, ret_changed));
		if (*ret_changed)
			return 0;
		atomic_fetch_add_explicit(&a->hash_computed, 1, memory_order_relaxed);
		exe_cache_put(a, &k, d);
	}
	char hex[2 * WI_SHA256_LEN + 1];
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < WI_SHA256_LEN; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 15];
	}
	hex[2 * WI_SHA256_LEN] = '\0';
	return wi_selector_set_add(s, WI_SEL_UNIX_SHA256, hex);
}

static int add_exe(wi_attestor *a, wi_selector_set *s, int dirfd, const struct stat *exe0,
		   bool *ret_changed)
{
	char path[WI_SELECTOR_MAX + 2];
	ssize_t n = readlinkat(dirfd, "exe", path, sizeof(path) - 1);
	if (n < 0) {
		if (exe_hidden(errno))
			return 0;
		WI_FAIL(WI_E_IO, "readlinkat exe: %s", strerror(errno));
	}
	/* A longer path was truncated: it cannot be a selector anyway. */
	if ((size_t)n <= WI_SELECTOR_MAX) {
		path[n] = '\0';
		WI_TRY(add_optional(s, WI_SEL_UNIX_PATH, path));
	}
	if (a->hash_executables)
		WI_TRY(add_exe_hash(a, s, dirfd, exe0, ret_changed));
	return 0;
}

/* One pass of /proc reads.  exe0 is exe's stat taken before, or NULL when it
 * could not be taken (then no exe selectors: they could not be tied to the
 * identity).  *ret_changed when the process exec'd during the pass, so that
 * the selectors would mix two programs. */
static int attest_once(wi_attestor *a, const wi_peer *peer, const struct stat *exe0, bool *ret_changed,
		       wi_selector_set **ret)
{
	int dirfd = wi_peer_proc_dirfd(peer);
	_cleanup_(wi_selector_set_unrefp) wi_selector_set *s = NULL;
	WI_TRY(wi_selector_set_new(&s));
	WI_TRY(add_unix_ids(s, dirfd));
	WI_TRY(add_cgroup(s, dirfd));
	if (exe0) {
		WI_TRY(add_exe(a, s, dirfd, exe0, ret_changed));
		struct stat exe1;
		if (!*ret_changed && (fstatat(dirfd, "exe", &exe1, 0) != 0 ||
				      exe1.st_dev != exe0->st_dev || exe1.st_ino != exe0->st_ino))
			*ret_changed = true;
	}
	if (*ret_changed)
		return 0;
	*ret = TAKE_PTR(s);
	return 0;
}

/* Maps a failed read to the contract's errors: gone beats everything. */
static int read_failure(const wi_peer *peer, int r)
{
	if (wi_peer_check_alive(peer) < 0)
		return WI_E_UNAUTHENTICATED;
	if (r == WI_E_NOMEM || r == WI_E_TOO_BIG || r == WI_E_UNAUTHENTICATED)
		return r;
	return wi__error_set(WI_E_UNAVAILABLE, __FILE__, __LINE__, "attesting pid %d: %s",
			     (int)wi_peer_pid(peer), wi_error_detail());
}

static int attest(wi_attestor *a, const wi_peer *peer, wi_selector_set **ret)
{
	int dirfd = wi_peer_proc_dirfd(peer);
	/* An exec in the middle of a pass is retried a few times, then
	 * reported as transient: a process that execs in a loop is not worth
	 * chasing further. */
	for (int attempt = 0; attempt < 3; attempt++) {
		/* stat follows the magic link to the running binary. */
		struct stat exe0;
		bool have_exe = fstatat(dirfd, "exe", &exe0, 0) == 0;
		struct proc_key k = {0};
		if (have_exe) {
			k.pid = wi_peer_pid(peer);
			k.start_time = wi_peer_start_time(peer);
			k.uid = wi_peer_uid(peer);
			k.gid = wi_peer_gid(peer);
			k.exe_dev = exe0.st_dev;
			k.exe_ino = exe0.st_ino;
			_cleanup_(wi_selector_set_unrefp) wi_selector_set *hit = proc_cache_get(a, &k);
			if (hit) {
				/* Prove the pinned process still runs: the pid (and so
				 * the exe read above) could belong to a successor. */
				WI_TRY(wi_peer_check_alive(peer));
				atomic_fetch_add_explicit(&a->cache_hits, 1, memory_order_relaxed);
				*ret = TAKE_PTR(hit);
				return 0;
			}
		}
		if (attempt == 0)
			atomic_fetch_add_explicit(&a->cache_misses, 1, memory_order_relaxed);
		bool changed = false;
		_cleanup_(wi_selector_set_unrefp) wi_selector_set *s = NULL;
		int r = attest_once(a, peer, have_exe ? &exe0 : NULL, &changed, &s);
		if (r < 0)
			return read_failure(peer, r);
		/* SPIRE's IsAlive after the reads (reference §4.2): what was read
		 * belonged to this process, not to a successor with its pid. */
		WI_TRY(wi_peer_check_alive(peer));
		if (changed)
			continue;
		/* Without exe's inode an exec could not be noticed: no caching. */
		if (have_exe)
			proc_cache_put(a, &k, s);
		*ret = TAKE_PTR(s);
		return 0;
	}
	WI_FAIL(WI_E_UNAVAILABLE, "pid %d exec'd or its executable changed during every attempt",
		(int)wi_peer_pid(peer));
}

int wi_attestor_attest(wi_attestor *a, const wi_peer *peer, wi_selector_set **ret)
{
	WI_CHECK(a != NULL && peer != NULL && ret != NULL, WI_E_INVAL, "attest: missing argument");
	atomic_fetch_add_explicit(&a->attestations, 1, memory_order_relaxed);
	uint64_t t0 = wi_hist_now_ns();
	int rc = attest(a, peer, ret);
	wi_hist_observe_since(&a->latency, t0);
	return rc;
}

/* ---- lifetime ------------------------------------------------------------------ */

wi_attestor *wi_attestor_free(wi_attestor *a)
{
	if (!a)
		return NULL;
	for (size_t i = 0; i < PROC_SETS; i++)
		for (size_t w = 0; w < CACHE_WAYS; w++)
			wi_selector_set_unref(a->proc[i][w].set);
	for (size_t i = 0; i < a->exe_locks_init; i++)
		pthread_mutex_destroy(&a->exe_locks[i]);
	for (size_t i = 0; i < a->proc_locks_init; i++)
		pthread_mutex_destroy(&a->proc_locks[i]);
	free(a);
	return NULL;
}

static inline void wi_attestor_freep(wi_attestor **a)
{
	wi_attestor_free(*a);
}

int wi_attestor_new(const wi_attestor_options *opts, wi_attestor **ret)
{
	_cleanup_(wi_attestor_freep) wi_attestor *a = calloc(1, sizeof(*a));
	WI_CHECK_ALLOC(a);
	a->hash_executables = opts && opts->hash_executables;
	for (; a->exe_locks_init < EXE_SETS; a->exe_locks_init++) {
		int e = pthread_mutex_init(&a->exe_locks[a->exe_locks_init], NULL);
		WI_CHECK(e == 0, WI_E_NOMEM, "pthread_mutex_init: %s", strerror(e));
	}
	for (; a->proc_locks_init < PROC_SETS; a->proc_locks_init++) {
		int e = pthread_mutex_init(&a->proc_locks[a->proc_locks_init], NULL);
		WI_CHECK(e == 0, WI_E_NOMEM, "pthread_mutex_init: %s", strerror(e));
	}
	atomic_init(&a->clock, 0);
	atomic_init(&a->attestations, 0);
	atomic_init(&a->cache_hits, 0);
	atomic_init(&a->hash_computed, 0);
	atomic_init(&a->hash_cache_hits, 0);
	*ret = TAKE_PTR(a);
	return 0;
}

void wi_attestor_get_stats(const wi_attestor *a, wi_attestor_stats *ret)
{
	const wi_attestor *m = a;
	ret->attestations = atomic_load_explicit(&m->attestations, memory_order_relaxed);
	ret->cache_hits = atomic_load_explicit(&m->cache_hits, memory_order_relaxed);
	ret->hash_computed = atomic_load_explicit(&m->hash_computed, memory_order_relaxed);
	ret->hash_cache_hits = atomic_load_explicit(&m->hash_cache_hits, memory_order_relaxed);
	ret->cache_misses = atomic_load_explicit(&m->cache_misses, memory_order_relaxed);
	wi_hist_read(&m->latency, &ret->latency);
}
