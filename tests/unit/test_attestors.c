/* tests/unit/test_attestors.c — /proc parsers, cgroup path shapes, peer
 * credentials and attestation of live processes (fork/exec/exit).
 * Runs with working directory tests/data (fixtures under proc/). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "attestors/attest.h"
#include "attestors/peer.h"
#include "attestors/peer_internal.h"
#include "attestors/procfs.h"
#include "attestors/sockdiag.h"
#include "core/limits.h"
#include "core/selector.h"

/* ---- helpers ------------------------------------------------------------ */

/* Copies s into a heap block of exactly strlen(s) bytes (no NUL), so that
 * ASan catches a parser reading past the length it was given. */
static char *exact(const char *s, size_t *ret_len)
{
	size_t n = strlen(s);
	char *p = malloc(n ? n : 1);
	assert_non_null(p);
	memcpy(p, s, n);
	*ret_len = n;
	return p;
}

static int stat_of(const char *s, pid_t *pid, uint64_t *st)
{
	size_t n;
	char *p = exact(s, &n);
	int r = wi__proc_parse_stat(p, n, pid, st);
	free(p);
	return r;
}

static int status_of(const char *s, wi__proc_status *ret)
{
	size_t n;
	char *p = exact(s, &n);
	int r = wi__proc_parse_status(p, n, ret);
	free(p);
	return r;
}

/* Returns the parser's code; on success copies the path into out. */
static int cgroup_of(const char *s, char *out, size_t outsz)
{
	size_t n;
	char *p = exact(s, &n);
	const char *path;
	size_t plen;
	int r = wi__proc_parse_cgroup(p, n, &path, &plen);
	if (r == 0) {
		assert_true(plen < outsz);
		memcpy(out, path, plen);
		out[plen] = '\0';
	}
	free(p);
	return r;
}

static char *read_fixture(const char *name, size_t *ret_len)
{
	int d = open("proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(d >= 0);
	char *text = NULL;
	assert_int_equal(wi__proc_read(d, name, &text, ret_len), 0);
	close(d);
	return text;
}

static char *read_self(const char *name, size_t *ret_len)
{
	int d = open("/proc/self", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(d >= 0);
	char *text = NULL;
	assert_int_equal(wi__proc_read(d, name, &text, ret_len), 0);
	close(d);
	return text;
}

static void sha256_file_hex(const char *path, char out[65])
{
	FILE *f = fopen(path, "rbe");
	assert_non_null(f);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	assert_non_null(ctx);
	assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
	unsigned char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		assert_int_equal(EVP_DigestUpdate(ctx, buf, n), 1);
	fclose(f);
	unsigned char d[32];
	unsigned int dl;
	assert_int_equal(EVP_DigestFinal_ex(ctx, d, &dl), 1);
	EVP_MD_CTX_free(ctx);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static bool has(const wi_selector_set *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool has(const wi_selector_set *s, const char *fmt, ...)
{
	char sel[WI_SELECTOR_MAX + 64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sel, sizeof(sel), fmt, ap);
	va_end(ap);
	return wi_selector_set_contains(s, sel);
}

/* ---- stat ------------------------------------------------------------------ */

static const char STAT_OK[] = "1234 (bash) S 1 1234 1234 34816 1234 4194304 1000 0 0 0 1 2 0 0 20 0 1 0 "
			      "98765 1000000 300 18446744073709551615 1 1 0\n";

static void test_stat_valid(void **state)
{
	pid_t pid;
	uint64_t st;
	assert_int_equal(stat_of(STAT_OK, &pid, &st), 0);
	assert_int_equal(pid, 1234);
	assert_int_equal(st, 98765);
	/* Field 22 last, with and without the newline. */
	assert_int_equal(stat_of("7 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5\n", &pid, &st), 0);
	assert_int_equal(st, 5);
	assert_int_equal(stat_of("7 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 6", &pid, &st), 0);
	assert_int_equal(st, 6);
	/* Largest u64. */
	assert_int_equal(
		stat_of("7 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 18446744073709551615 0", &pid, &st), 0);
	assert_true(st == UINT64_MAX);
}

static void test_stat_tricky_comm(void **state)
{
	pid_t pid;
	uint64_t st;
	/* comm ") (" with spaces and a fake field list inside. */
	assert_int_equal(stat_of("99 (a) (b c) 1 2 3) R 1 99 99 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 4242 7\n", &pid,
				 &st),
			 0);
	assert_int_equal(pid, 99);
	assert_int_equal(st, 4242);
	/* comm "()" and ")" only. */
	assert_int_equal(stat_of("5 ()) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 77 7\n", &pid, &st), 0);
	assert_int_equal(st, 77);
	/* Fixture: comm with a newline and "Uid:" inside, read through the dirfd reader. */
	size_t n;
	char *t = read_fixture("stat.tricky", &n);
	assert_int_equal(wi__proc_parse_stat(t, n, &pid, &st), 0);
	assert_int_equal(pid, 4242);
	assert_int_equal(st, 123456789);
	free(t);
}

static void test_stat_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"1234",
		"1234 ",
		"1234 bash) S 1",
		"1234 (bash S 1 2 3",
		"1234 (bash)",
		"1234 (bash)\n",
		"1234 (bash)S 1 1234 1234 34816 1234 4194304 1000 0 0 0 1 2 0 0 20 0 1 0 98765 1",
		/* truncated before field 22 */
		"1234 (bash) S 1 1234 1234 34816 1234 4194304 1000 0 0 0 1 2 0 0 20 0 1 0",
		"1234 (bash) S 1 1234 1234 34816 1234 4194304 1000 0 0 0 1 2 0 0 20 0 1 0 ",
		"1234 (bash) S 1 1234 1234 34816 1234 4194304 1000 0 0 0 1 2 0 0 20 0 1 0\n",
		/* empty field (double space) */
		"1234 (bash) S 1  1234 34816 1234 4194304 1000 0 0 0 1 2 0 0 20 0 1 0 98765 1",
		/* non-numeric, signed, leading zero, overflow */
		"1234 (bash) S 1 1234 1234 34816 1234 4194304 1000 0 0 0 1 2 0 0 20 0 1 0 98x65 1",
		"1234 (bash) S 1 1234 1234 34816 1234 4194304 1000 0 0 0 1 2 0 0 20 0 1 0 -98765 1",
		"1234 (bash) S 1 1234 1234 34816 1234 4194304 1000 0 0 0 1 2 0 0 20 0 1 0 098765 1",
		"1234 (bash) S 1 1234 1234 34816 1234 4194304 1000 0 0 0 1 2 0 0 20 0 1 0 18446744073709551616 1",
		("1234 (bash) S 1 1234 1234 34816 1234 4194304 1000 0 0 0 1 2 0 0 20 0 1 0 "
		 "99999999999999999999999999 1"),
		/* bad pid */
		"0 (bash) S 1 1234 1234 34816 1234 4194304 1000 0 0 0 1 2 0 0 20 0 1 0 98765 1",
		"x (bash) S 1 1234 1234 34816 1234 4194304 1000 0 0 0 1 2 0 0 20 0 1 0 98765 1",
		"99999999999 (bash) S 1 1234 1234 34816 1234 4194304 1000 0 0 0 1 2 0 0 20 0 1 0 98765 1",
		" 1234 (bash) S 1 1234 1234 34816 1234 4194304 1000 0 0 0 1 2 0 0 20 0 1 0 98765 1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pid_t pid = -7;
		uint64_t st = 7;
		int r = stat_of(bad[i], &pid, &st);
		if (r != WI_E_PARSE)
			fail_msg("stat case %zu \"%s\": got %d", i, bad[i], r);
		assert_int_equal(pid, -7); /* outputs untouched on failure */
		assert_int_equal(st, 7);
	}
	/* Length is honoured: the valid text cut short is rejected. */
	pid_t pid;
	uint64_t st;
	assert_int_equal(wi__proc_parse_stat(STAT_OK, 60, &pid, &st), WI_E_PARSE);
	assert_int_equal(wi__proc_parse_stat(NULL, 0, &pid, &st), WI_E_PARSE);
}

/* ---- status -------------------------------------------------------------------- */

static void test_status_valid(void **state)
{
	size_t n;
	char *t = read_fixture("status.sample", &n);
	wi__proc_status s = {0};
	assert_int_equal(wi__proc_parse_status(t, n, &s), 0);
	free(t);
	assert_int_equal(s.euid, 1001); /* the effective (2nd) column */
	assert_int_equal(s.egid, 101);
	assert_int_equal(s.ngroups, 4);
	assert_int_equal(s.groups[0], 4);
	assert_int_equal(s.groups[1], 24);
	assert_int_equal(s.groups[2], 27);
	assert_int_equal(s.groups[3], 1000);
	wi__proc_status_done(&s);
	assert_null(s.groups);

	/* Empty Groups (as the kernel prints it: a tab, maybe a space) and no Groups. */
	assert_int_equal(status_of("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t \n", &s), 0);
	assert_int_equal(s.ngroups, 0);
	wi__proc_status_done(&s);
	assert_int_equal(status_of("Uid:\t0\t5\t0\t0\nGid:\t0\t6\t0\t0", &s), 0);
	assert_int_equal(s.euid, 5);
	assert_int_equal(s.egid, 6);
	assert_int_equal(s.ngroups, 0);
	wi__proc_status_done(&s);
	/* Largest real id is 2^32-2. */
	assert_int_equal(status_of("Uid:\t1\t4294967294\t1\t1\nGid:\t1\t1\t1\t1\nGroups:\t4294967294\n", &s), 0);
	assert_int_equal(s.euid, 4294967294u);
	assert_int_equal(s.groups[0], 4294967294u);
	wi__proc_status_done(&s);

}

static void test_status_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"Name:\tx\n",
		/* missing Uid, missing Gid */
		"Gid:\t0\t0\t0\t0\nGroups:\t\n",
		"Uid:\t0\t0\t0\t0\nGroups:\t\n",
		/* a key that merely starts with Uid is not Uid */
		"Uidx:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
		/* wrong column counts */
		"Uid:\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
		"Uid:\t0\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
		"Uid:\nGid:\t0\t0\t0\t0\n",
		/* non-numeric, signed, huge, (uid_t)-1 */
		"Uid:\t0\t1x0\t0\t0\nGid:\t0\t0\t0\t0\n",
		"Uid:\t0\t-1\t0\t0\nGid:\t0\t0\t0\t0\n",
		"Uid:\t0\t99999999999999999999999\t0\t0\nGid:\t0\t0\t0\t0\n",
		"Uid:\t0\t4294967296\t0\t0\nGid:\t0\t0\t0\t0\n",
		"Uid:\t0\t4294967295\t0\t0\nGid:\t0\t0\t0\t0\n",
		"Uid:\t0\t0\t0\t0\nGid:\t0\t+5\t0\t0\n",
		/* duplicates */
		"Uid:\t0\t0\t0\t0\nUid:\t1\t1\t1\t1\nGid:\t0\t0\t0\t0\n",
		"Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t1\nGroups:\t2\n",
		/* bad groups */
		"Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t1 two 3\n",
		"Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t1,2\n",
		"Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t4294967295\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wi__proc_status s = {.euid = 7};
		int r = status_of(bad[i], &s);
		if (r != WI_E_PARSE)
			fail_msg("status case %zu: got %d", i, r);
		assert_int_equal(s.euid, 7);
		assert_null(s.groups);
	}
	/* Cut inside the Gid line: no Gid. */
	const char *ok = "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
	wi__proc_status s = {0};
	assert_int_equal(wi__proc_parse_status(ok, 14, &s), WI_E_PARSE);
	assert_int_equal(wi__proc_parse_status(ok, 22, &s), WI_E_PARSE);
}

/* ---- cgroup -------------------------------------------------------------------- */

static void test_cgroup_parse(void **state)
{
	char p[512];
	assert_int_equal(cgroup_of("0::/user.slice/user-1000.slice/session-2.scope\n", p, sizeof(p)), 0);
	assert_string_equal(p, "/user.slice/user-1000.slice/session-2.scope");
	assert_int_equal(cgroup_of("0::/\n", p, sizeof(p)), 0);
	assert_string_equal(p, "/");
	assert_int_equal(cgroup_of("0::/no/newline", p, sizeof(p)), 0);
	assert_string_equal(p, "/no/newline");
	/* ':' and spaces are legal in a cgroup name. */
	assert_int_equal(cgroup_of("0::/a:b/c d\n", p, sizeof(p)), 0);
	assert_string_equal(p, "/a:b/c d");
	/* Hybrid host: v1 lines ignored wherever they are. */
	size_t n;
	char *t = read_fixture("cgroup.hybrid", &n);
	const char *path;
	size_t plen;
	assert_int_equal(wi__proc_parse_cgroup(t, n, &path, &plen), 0);
	assert_int_equal(plen, strlen("/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service"));
	assert_memory_equal(path, "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service", plen);
	free(t);
	assert_int_equal(cgroup_of("0::/x\n12:memory:/y\n", p, sizeof(p)), 0);
	assert_string_equal(p, "/x");
	/* v1 only: well formed, no unified line. */
	t = read_fixture("cgroup.v1only", &n);
	assert_int_equal(wi__proc_parse_cgroup(t, n, &path, &plen), WI_E_NOT_FOUND);
	free(t);
	assert_int_equal(cgroup_of("", p, sizeof(p)), WI_E_NOT_FOUND);
}

static void test_cgroup_malformed(void **state)
{
	static const char *const bad[] = {
		"garbage\n",
		"0:/x\n",
		"::/x\n",
		"x::/x\n",
		"-1::/x\n",
		"0::x\n",
		"0::\n",
		"0::",
		"0:cpu:/x\n",
		"0::/a\n0::/b\n",
		"0::/a\n\n",
		"\n0::/a\n",
		"12:memory:relative\n0::/a\n",
		"99999999999999999999999:memory:/\n0::/a\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char p[64];
		int r = cgroup_of(bad[i], p, sizeof(p));
		if (r != WI_E_PARSE)
			fail_msg("cgroup case %zu \"%s\": got %d", i, bad[i], r);
	}
	/* A valid file cut before the path ends. */
	const char *path;
	size_t plen;
	assert_int_equal(wi__proc_parse_cgroup("0::/abc\n", 3, &path, &plen), WI_E_PARSE);
}

/* ---- unit and container extraction ---------------------------------------------- */

#define ID64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define ID64B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

struct shape {
	const char *path;
	const char *unit;      /* NULL: none */
	const char *container; /* NULL: none */
};

static const struct shape shapes[] = {
	{"/", NULL, NULL},
	{"", NULL, NULL},
	{"/system.slice/sshd.service", "sshd.service", NULL},
	{"/system.slice/getty.slice/getty@tty1.service", "getty@tty1.service", NULL},
	{"/system.slice/system-serial\\x2dgetty.slice/serial-getty@ttyS0.service",
	 "serial-getty@ttyS0.service", NULL},
	{"/user.slice/user-1000.slice/session-3.scope", "session-3.scope", NULL},
	/* A user's own manager: its units are named by the user, so the unit is
	 * the system's user@UID.service, never one below it. */
	{"/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service", "user@1000.service", NULL},
	{"/user.slice/user-1000.slice/user@1000.service/app.slice/agent.service", "user@1000.service", NULL},
	{"/user.slice/user-1000.slice/user@1000.service/agent.service", "user@1000.service", NULL},
	{"/user.slice/user-1000.slice/user@1000.service/init.scope", "user@1000.service", NULL},
	{"/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-1234.scope",
	 "user@1000.service", NULL},
	/* A service with its own sub-cgroups (Delegate=yes). */
	{"/system.slice/nginx.service/workers/w1", "nginx.service", NULL},
	{"/system.slice/docker.service/agent.service", "docker.service", NULL},
	{"/system.slice/docker.service/x.slice/agent.service", "docker.service", NULL},
	{"/user.slice/user-1000.slice", NULL, NULL},
	{"/init.scope", "init.scope", NULL},
	/* docker, systemd driver and cgroupfs driver */
	{"/system.slice/docker-" ID64 ".scope", "docker-" ID64 ".scope", ID64},
	{"/docker/" ID64, NULL, ID64},
	{"/docker/" ID64 "/sub", NULL, ID64},
	/* docker in docker: the innermost container */
	{"/docker/" ID64 "/docker/" ID64B, NULL, ID64B},
	/* rootless docker */
	{"/user.slice/user-1000.slice/user@1000.service/docker.service/docker/" ID64, "user@1000.service", ID64},
	/* containerd / CRI under kubepods, systemd and cgroupfs drivers */
	{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/"
	 "cri-containerd-" ID64 ".scope",
	 "cri-containerd-" ID64 ".scope", ID64},
	{"/kubepods/besteffort/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/" ID64, NULL, ID64},
	{"/kubepods/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/" ID64, NULL, ID64},
	{"/kubepods.slice/kubepods-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/docker-" ID64 ".scope",
	 "docker-" ID64 ".scope", ID64},
	/* The pod cgroup itself holds no container. */
	{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice",
	 NULL, NULL},
	/* containerd outside Kubernetes (cgroupfs: /<namespace>/<id>) */
	{"/default/" ID64, NULL, ID64},
	{"/system.slice/containerd.service", "containerd.service", NULL},
	/* cri-o, and its conmon (not the workload) */
	{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/"
	 "crio-" ID64 ".scope",
	 "crio-" ID64 ".scope", ID64},
	{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/"
	 "crio-conmon-" ID64 ".scope",
	 "crio-conmon-" ID64 ".scope", NULL},
	/* podman rootful (systemd and cgroupfs managers), and its conmon */
	{"/machine.slice/libpod-" ID64 ".scope", "libpod-" ID64 ".scope", ID64},
	{"/machine.slice/libpod-" ID64 ".scope/container", "libpod-" ID64 ".scope", ID64},
	{"/machine.slice/libpod-conmon-" ID64 ".scope", "libpod-conmon-" ID64 ".scope", NULL},
	{"/libpod_parent/libpod-" ID64, NULL, ID64},
	/* podman rootless */
	{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" ID64 ".scope", "user@1000.service", ID64},
	{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" ID64 ".scope/container",
	 "user@1000.service", ID64},
	{"/user.slice/user-1000.slice/user@1000.service/user.slice/podman-1234.scope", "user@1000.service", NULL},
	/* garbage and near misses */
	{"garbage", NULL, NULL},
	{"///", NULL, NULL},
	{"/.service", NULL, NULL},
	{"/.scope/", NULL, NULL},
	{"/system.slice/sshd.service.d", NULL, NULL},
	{"/system.slice/a b.service", NULL, NULL},
	{"/system.slice/x/y.service/", NULL, NULL}, /* below a non-unit */
	{"/docker/" ID64 "0", NULL, NULL},                          /* 65 hex */
	{"/docker/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde", NULL, NULL}, /* 63 */
	{"/docker/0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", NULL, NULL}, /* upper */
	{"/docker/0123456789abcdeg0123456789abcdef0123456789abcdef0123456789abcdef", NULL, NULL}, /* 'g' */
	{"/system.slice/evil-" ID64 ".scope", "evil-" ID64 ".scope", NULL},
	{"/system.slice/-" ID64 ".scope", "-" ID64 ".scope", NULL},
	{"/system.slice/docker" ID64 ".scope", "docker" ID64 ".scope", NULL},
};

static void test_cgroup_shapes(void **state)
{
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		const struct shape *c = &shapes[i];
		size_t n;
		char *p = exact(c->path, &n);
		const char *v;
		size_t vl;
		int r = wi__cgroup_systemd_unit(p, n, &v, &vl);
		if (c->unit) {
			if (r != 0 || vl != strlen(c->unit) || memcmp(v, c->unit, vl) != 0)
				fail_msg("unit of \"%s\": r=%d got \"%.*s\"", c->path, r, r ? 0 : (int)vl,
					 r ? "" : v);
		} else if (r != WI_E_NOT_FOUND) {
			fail_msg("unit of \"%s\": expected none, got \"%.*s\"", c->path, (int)vl, v);
		}
		r = wi__cgroup_container_id(p, n, &v, &vl);
		if (c->container) {
			if (r != 0 || vl != strlen(c->container) || memcmp(v, c->container, vl) != 0)
				fail_msg("container of \"%s\": r=%d", c->path, r);
		} else if (r != WI_E_NOT_FOUND) {
			fail_msg("container of \"%s\": expected none, got \"%.*s\"", c->path, (int)vl, v);
		}
		free(p);
	}
}

/* ---- the /proc reader ---------------------------------------------------------- */

static char tmpdir[64];

static void write_file(const char *path, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	char buf[4096];
	memset(buf, 'a', sizeof(buf));
	while (size > 0) {
		size_t k = size < sizeof(buf) ? size : sizeof(buf);
		assert_int_equal(write(fd, buf, k), (ssize_t)k);
		size -= k;
	}
	close(fd);
}

static void test_proc_read_bounds(void **state)
{
	char path[128];
	int d = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(d >= 0);
	char *t = NULL;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/fits", tmpdir);
	write_file(path, WI_PROC_FILE_MAX - 1);
	assert_int_equal(wi__proc_read(d, "fits", &t, &n), 0);
	assert_int_equal(n, WI_PROC_FILE_MAX - 1);
	assert_int_equal(t[n], '\0');
	free(t);

	snprintf(path, sizeof(path), "%s/big", tmpdir);
	write_file(path, WI_PROC_FILE_MAX);
	t = NULL;
	assert_int_equal(wi__proc_read(d, "big", &t, &n), WI_E_TOO_BIG);
	assert_null(t);

	snprintf(path, sizeof(path), "%s/empty", tmpdir);
	write_file(path, 0);
	assert_int_equal(wi__proc_read(d, "empty", &t, &n), 0);
	assert_int_equal(n, 0);
	free(t);

	/* O_NOFOLLOW: a symlink is refused, a missing file is NOT_FOUND. */
	snprintf(path, sizeof(path), "%s/link", tmpdir);
	assert_int_equal(symlink("fits", path), 0);
	t = NULL;
	assert_int_equal(wi__proc_read(d, "link", &t, &n), WI_E_IO);
	assert_int_equal(wi__proc_read(d, "missing", &t, &n), WI_E_NOT_FOUND);
	assert_null(t);
	close(d);

	/* The real thing, through a /proc/<pid> dirfd. */
	assert_int_equal(wi__proc_open_pid(getpid(), &d), 0);
	assert_int_equal(wi__proc_read(d, "stat", &t, &n), 0);
	pid_t pid;
	uint64_t st;
	assert_int_equal(wi__proc_parse_stat(t, n, &pid, &st), 0);
	assert_int_equal(pid, getpid());
	free(t);
	assert_int_equal(wi__proc_read(d, "status", &t, &n), 0);
	wi__proc_status s = {0};
	assert_int_equal(wi__proc_parse_status(t, n, &s), 0);
	assert_int_equal(s.euid, geteuid());
	assert_int_equal(s.egid, getegid());
	wi__proc_status_done(&s);
	free(t);
	close(d);
	assert_int_equal(wi__proc_open_pid(0, &d), WI_E_INVAL);
}

/* ---- live peers ------------------------------------------------------------------ */

struct child {
	pid_t pid;
	int cmd;       /* parent writes commands: 'e' exec /bin/sleep, 'x' exit */
	int exec_done; /* EOF once the child exec'd or died (CLOEXEC write end) */
	int conn;      /* the accepted connection (parent side) */
};

static int listener = -1;
static char sock_path[100];
static char self_exe[PATH_MAX];
static char self_sha[65];
static char sleep_exe[PATH_MAX];

static void child_main(int cmd_r, int ready_w, int exec_w)
{
	int s = socket(AF_UNIX, SOCK_STREAM, 0); /* no CLOEXEC: survives the exec */
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock_path);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) != 0)
		_exit(2);
	char c = 'c';
	if (write(ready_w, &c, 1) != 1)
		_exit(3);
	for (;;) {
		ssize_t n = read(cmd_r, &c, 1);
		if (n <= 0 || c == 'x')
			_exit(0);
		if (c == 'e') {
			execl("/bin/sleep", "sleep", "1000", (char *)NULL);
			_exit(4);
		}
	}
	(void)exec_w;
}

static void spawn(struct child *ch)
{
	int cmd[2], ready[2], ex[2];
	assert_int_equal(pipe2(cmd, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ex, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(listener);
		close(cmd[1]);
		close(ready[0]);
		close(ex[0]);
		child_main(cmd[0], ready[1], ex[1]);
	}
	close(cmd[0]);
	close(ready[1]);
	close(ex[1]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1); /* connected */
	close(ready[0]);
	ch->pid = pid;
	ch->cmd = cmd[1];
	ch->exec_done = ex[0];
	ch->conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
	assert_true(ch->conn >= 0);
}

static void child_exec_sleep(struct child *ch)
{
	assert_int_equal(write(ch->cmd, "e", 1), 1);
	char c;
	/* EOF: the CLOEXEC write end closed, i.e. the exec happened. */
	assert_int_equal(read(ch->exec_done, &c, 1), 0);
}

static void reap(struct child *ch)
{
	if (ch->pid > 0) {
		kill(ch->pid, SIGKILL);
		int st;
		assert_int_equal(waitpid(ch->pid, &st, 0), ch->pid);
		ch->pid = 0;
	}
	if (ch->cmd >= 0)
		close(ch->cmd);
	if (ch->exec_done >= 0)
		close(ch->exec_done);
	if (ch->conn >= 0)
		close(ch->conn);
	ch->cmd = ch->exec_done = ch->conn = -1;
}

static uint64_t start_time_of(pid_t pid)
{
	int d;
	assert_int_equal(wi__proc_open_pid(pid, &d), 0);
	char *t;
	size_t n;
	assert_int_equal(wi__proc_read(d, "stat", &t, &n), 0);
	pid_t p;
	uint64_t st;
	assert_int_equal(wi__proc_parse_stat(t, n, &p, &st), 0);
	free(t);
	close(d);
	return st;
}

static void test_peer_from_socket(void **state)
{
	struct child ch;
	spawn(&ch);
	wi_peer *p = NULL;
	assert_int_equal(wi_peer_from_socket(ch.conn, &p), 0);
	assert_int_equal(wi_peer_pid(p), ch.pid);
	assert_int_equal(wi_peer_uid(p), geteuid());
	assert_int_equal(wi_peer_gid(p), getegid());
	assert_true(wi_peer_start_time(p) == start_time_of(ch.pid));
	assert_true(wi_peer_pidfd(p) >= 0);
	assert_true(wi_peer_proc_dirfd(p) >= 0);
	assert_true(fcntl(wi_peer_pidfd(p), F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(wi_peer_proc_dirfd(p), F_GETFD) & FD_CLOEXEC);
	assert_int_equal(wi_peer_check_alive(p), 0);
	/* Not a socket. */
	wi_peer *q = NULL;
	assert_int_equal(wi_peer_from_socket(ch.exec_done, &q), WI_E_IO);
	assert_null(q);
	wi_peer_free(p);
	assert_null(wi_peer_free(NULL));
	reap(&ch);
}

static void test_attest_live_and_cache(void **state)
{
	struct child ch;
	spawn(&ch);
	wi_peer *p = NULL;
	assert_int_equal(wi_peer_from_socket(ch.conn, &p), 0);
	wi_attestor_options o = {.hash_executables = true};
	wi_attestor *a = NULL;
	assert_int_equal(wi_attestor_new(&o, &a), 0);

	wi_selector_set *s = NULL;
	assert_int_equal(wi_attestor_attest(a, p, &s), 0);
	assert_true(has(s, "unix:uid:%u", (unsigned)geteuid()));
	assert_true(has(s, "unix:gid:%u", (unsigned)getegid()));
	assert_true(has(s, "unix:path:%s", self_exe));
	assert_true(has(s, "unix:sha256:%s", self_sha));
	struct passwd *pw = getpwuid(geteuid());
	if (pw)
		assert_true(has(s, "unix:user:%s", pw->pw_name));
	size_t cnt;
	assert_non_null(wi_selector_set_value(s, WI_SEL_UNIX_PATH, &cnt));
	assert_int_equal(cnt, 1);
	/* cgroup:path is the child's, which is ours (inherited). */
	size_t n;
	char *t = read_self("cgroup", &n);
	const char *cg;
	size_t cgl;
	if (wi__proc_parse_cgroup(t, n, &cg, &cgl) == 0)
		assert_true(has(s, "cgroup:path:%.*s", (int)cgl, cg));
	free(t);

	wi_attestor_stats st;
	wi_attestor_get_stats(a, &st);
	assert_int_equal(st.attestations, 1);
	assert_int_equal(st.cache_hits, 0);
	assert_int_equal(st.hash_computed, 1);

	/* (2) The same peer again: a cache hit sharing the same set. */
	wi_selector_set *s2 = NULL;
	assert_int_equal(wi_attestor_attest(a, p, &s2), 0);
	assert_ptr_equal(s2, s);
	wi_attestor_get_stats(a, &st);
	assert_int_equal(st.attestations, 2);
	assert_int_equal(st.cache_hits, 1);
	assert_int_equal(st.hash_computed, 1);
	wi_selector_set_unref(s2);

	/* A second peer object for the same process is the same identity. */
	wi_peer *p2 = NULL;
	assert_int_equal(wi_peer_from_pid(ch.pid, &p2), 0);
	assert_int_equal(wi_peer_uid(p2), geteuid());
	assert_true(wi_peer_start_time(p2) == wi_peer_start_time(p));
	assert_int_equal(wi_attestor_attest(a, p2, &s2), 0);
	assert_ptr_equal(s2, s);
	wi_selector_set_unref(s2);
	wi_peer_free(p2);

	/* Another attestor without hashing: no unix:sha256. */
	wi_attestor *b = NULL;
	assert_int_equal(wi_attestor_new(NULL, &b), 0);
	assert_int_equal(wi_attestor_attest(b, p, &s2), 0);
	assert_false(wi_selector_set_has_kind(s2, WI_SEL_UNIX_SHA256));
	assert_true(has(s2, "unix:path:%s", self_exe));
	wi_selector_set_unref(s2);
	wi_attestor_free(b);

	/* (3) exec detection: the same pid and pidfd, another binary. */
	child_exec_sleep(&ch);
	assert_int_equal(wi_peer_check_alive(p), 0);
	assert_int_equal(wi_attestor_attest(a, p, &s2), 0);
	assert_ptr_not_equal(s2, s);
	assert_true(has(s2, "unix:path:%s", sleep_exe));
	assert_false(has(s2, "unix:path:%s", self_exe));
	char sleep_sha[65];
	sha256_file_hex(sleep_exe, sleep_sha);
	assert_true(has(s2, "unix:sha256:%s", sleep_sha));
	wi_attestor_get_stats(a, &st);
	assert_int_equal(st.attestations, 4);
	assert_int_equal(st.cache_hits, 2); /* unchanged by the exec'd attest */
	assert_int_equal(st.hash_computed, 2);
	wi_selector_set_unref(s2);
	/* ... and that result is cached in turn. */
	assert_int_equal(wi_attestor_attest(a, p, &s2), 0);
	wi_attestor_get_stats(a, &st);
	assert_int_equal(st.cache_hits, 3);
	wi_selector_set_unref(s2);

	/* (4) exit and reap: gone, on the cached path and the fresh one. */
	reap(&ch);
	assert_int_equal(wi_peer_check_alive(p), WI_E_UNAUTHENTICATED);
	s2 = NULL;
	assert_int_equal(wi_attestor_attest(a, p, &s2), WI_E_UNAUTHENTICATED);
	assert_null(s2);
	wi_attestor *c = NULL;
	assert_int_equal(wi_attestor_new(&o, &c), 0);
	assert_int_equal(wi_attestor_attest(c, p, &s2), WI_E_UNAUTHENTICATED);
	assert_null(s2);
	wi_attestor_free(c);

	wi_selector_set_unref(s);
	wi_peer_free(p);
	wi_attestor_free(a);
}

static void test_exited_but_not_reaped(void **state)
{
	struct child ch;
	spawn(&ch);
	wi_peer *p = NULL;
	assert_int_equal(wi_peer_from_socket(ch.conn, &p), 0);
	/* The child exits on its own: a zombie still has /proc/<pid>. */
	assert_int_equal(write(ch.cmd, "x", 1), 1);
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)ch.pid, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(wi_peer_check_alive(p), WI_E_UNAUTHENTICATED);
	wi_attestor *a = NULL;
	assert_int_equal(wi_attestor_new(NULL, &a), 0);
	wi_selector_set *s = NULL;
	assert_int_equal(wi_attestor_attest(a, p, &s), WI_E_UNAUTHENTICATED);
	wi_attestor_free(a);
	wi_peer_free(p);
	reap(&ch);
}

static void test_cached_then_exited(void **state)
{
	/* A process attested and cached, then gone: the cached path must
	 * refuse it as a zombie (procfs: no exe, ENOENT) and once reaped
	 * (ESRCH), never serve the cached identity. */
	struct child ch;
	spawn(&ch);
	wi_peer *p = NULL;
	assert_int_equal(wi_peer_from_socket(ch.conn, &p), 0);
	wi_attestor *a = NULL;
	assert_int_equal(wi_attestor_new(NULL, &a), 0);
	wi_selector_set *s = NULL;
	assert_int_equal(wi_attestor_attest(a, p, &s), 0);
	wi_selector_set_unref(s);
	assert_int_equal(wi_attestor_attest(a, p, &s), 0); /* a hit */
	wi_selector_set_unref(s);
	wi_attestor_stats st;
	wi_attestor_get_stats(a, &st);
	assert_int_equal(st.cache_hits, 1);

	/* Exited, not reaped: a zombie keeps /proc/<pid> but has no exe. */
	assert_int_equal(write(ch.cmd, "x", 1), 1);
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)ch.pid, &si, WEXITED | WNOWAIT), 0);
	s = NULL;
	assert_int_equal(wi_attestor_attest(a, p, &s), WI_E_UNAUTHENTICATED);
	assert_null(s);
	/* Reaped, and its pid free for reuse: still refused. */
	int wst;
	assert_int_equal(waitpid(ch.pid, &wst, 0), ch.pid);
	ch.pid = 0;
	assert_int_equal(wi_attestor_attest(a, p, &s), WI_E_UNAUTHENTICATED);
	assert_null(s);
	wi_attestor_get_stats(a, &st);
	assert_int_equal(st.cache_hits, 1);
	wi_attestor_free(a);
	wi_peer_free(p);
	reap(&ch);
}

static void test_peer_gone_before_accept_check(void **state)
{
	/* The peer connects, exits and is reaped before we look: whatever the
	 * kernel answers for SO_PEERPIDFD, the result is UNAUTHENTICATED. */
	struct child ch;
	spawn(&ch);
	assert_int_equal(write(ch.cmd, "x", 1), 1);
	int st;
	assert_int_equal(waitpid(ch.pid, &st, 0), ch.pid);
	ch.pid = 0;
	wi_peer *p = NULL;
	assert_int_equal(wi_peer_from_socket(ch.conn, &p), WI_E_UNAUTHENTICATED);
	assert_null(p);
	reap(&ch);
}

static void test_peer_fallback(void **state)
{
	struct child ch;
	spawn(&ch);
	uint64_t now;
	assert_int_equal(wi__peer_boottime_ticks(&now), 0);
	uint64_t started = start_time_of(ch.pid);
	assert_true(started <= now);

	wi_peer *p = NULL;
	assert_int_equal(wi__peer_from_pid_fallback(ch.conn, ch.pid, geteuid(), getegid(), now, &p), 0);
	assert_int_equal(wi_peer_pid(p), ch.pid);
	assert_null(wi_peer_degraded(p)); /* unix_diag answered, the fds were searched */
	assert_true(wi_peer_start_time(p) == started);
	assert_int_equal(wi_peer_uid(p), geteuid());
	assert_int_equal(wi_peer_check_alive(p), 0);
	assert_true(fcntl(wi_peer_pidfd(p), F_GETFD) & FD_CLOEXEC);

	/* Attestation works on a fallback peer too. */
	wi_attestor *a = NULL;
	assert_int_equal(wi_attestor_new(NULL, &a), 0);
	wi_selector_set *s = NULL;
	assert_int_equal(wi_attestor_attest(a, p, &s), 0);
	assert_true(has(s, "unix:path:%s", self_exe));
	wi_selector_set_unref(s);
	wi_attestor_free(a);
	wi_peer_free(p);

	/* A process that started after the accept is not the one that connected. */
	p = NULL;
	assert_true(started > 0);
	assert_int_equal(wi__peer_from_pid_fallback(ch.conn, ch.pid, geteuid(), getegid(), started - 1, &p),
			 WI_E_UNAUTHENTICATED);
	assert_null(p);
	assert_int_equal(wi__peer_from_pid_fallback(ch.conn, 0, 0, 0, now, &p), WI_E_UNAUTHENTICATED);

	pid_t dead = ch.pid;
	reap(&ch);
	/* Reaped: pidfd_open fails with ESRCH (unless the pid was reused at once,
	 * in which case the socket search must catch it). */
	struct child other;
	spawn(&other);
	assert_int_equal(wi__peer_from_pid_fallback(other.conn, dead, geteuid(), getegid(), now, &p),
			 WI_E_UNAUTHENTICATED);
	reap(&other);
	assert_int_equal(wi__peer_from_pid_fallback(-1, dead, geteuid(), getegid(), now, &p), WI_E_IO);
	assert_int_equal(wi_peer_from_pid(dead, &p), WI_E_UNAUTHENTICATED);
	assert_int_equal(wi_peer_from_pid(0, &p), WI_E_INVAL);
	assert_null(p);
}

/* The window the start-time check leaves on kernels without SO_PEERPIDFD:
 * the process that connected exits and its pid goes to another process that
 * had started before the accept's tick ended.  Simulated with two live
 * children, the connection from one and the pid of the other (which started
 * earlier than the accept): only the socket search tells them apart. */
static void test_peer_fallback_pid_reused(void **state)
{
	(void)state;
	struct child successor, connected;
	spawn(&successor);
	spawn(&connected);
	uint64_t now;
	assert_int_equal(wi__peer_boottime_ticks(&now), 0);
	assert_true(start_time_of(successor.pid) <= now); /* passes the start-time check */

	wi_peer *p = NULL;
	assert_int_equal(wi__peer_from_pid_fallback(connected.conn, successor.pid, geteuid(), getegid(), now, &p),
			 WI_E_UNAUTHENTICATED);
	assert_null(p);
	assert_non_null(strstr(wi_error_detail(), "does not hold the connecting socket"));
	/* Each connection with its own process passes. */
	assert_int_equal(wi__peer_from_pid_fallback(connected.conn, connected.pid, geteuid(), getegid(), now, &p), 0);
	wi_peer_free(p);
	p = NULL;
	assert_int_equal(wi__peer_from_pid_fallback(successor.conn, successor.pid, geteuid(), getegid(), now, &p), 0);
	wi_peer_free(p);
	reap(&connected);
	reap(&successor);
}

/* unix_diag names the other end; a process's open files are searched for it. */
static void test_sockdiag(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct stat st0, st1;
	assert_int_equal(fstat(sv[0], &st0), 0);
	assert_int_equal(fstat(sv[1], &st1), 0);
	uint64_t ino = 0;
	dev_t dev = 0;
	assert_int_equal(wi__unix_peer_ino(sv[0], &dev, &ino), 0);
	assert_true(ino == (uint64_t)st1.st_ino);
	assert_true(dev == st1.st_dev);
	assert_int_equal(wi__unix_peer_ino(sv[1], &dev, &ino), 0);
	assert_true(ino == (uint64_t)st0.st_ino);

	int self;
	assert_int_equal(wi__proc_open_pid(getpid(), &self), 0);
	assert_int_equal(wi__proc_holds_socket(self, st1.st_dev, (uint64_t)st1.st_ino), 0);
	/* Same inode number on another device, or an inode nobody holds. */
	assert_int_equal(wi__proc_holds_socket(self, st1.st_dev + 1, (uint64_t)st1.st_ino), WI_E_UNAUTHENTICATED);
	close(sv[1]);
	assert_int_equal(wi__proc_holds_socket(self, st1.st_dev, (uint64_t)st1.st_ino), WI_E_UNAUTHENTICATED);
	/* The peer closed its end: the kernel names no inode. */
	assert_int_equal(wi__unix_peer_ino(sv[0], &dev, &ino), WI_E_UNAUTHENTICATED);
	close(sv[0]);
	close(self);

	/* Not a socket; a socket with no peer. */
	int pp[2];
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	assert_int_equal(wi__unix_peer_ino(pp[0], &dev, &ino), WI_E_IO);
	close(pp[0]);
	close(pp[1]);
	assert_int_equal(wi__unix_peer_ino(listener, &dev, &ino), WI_E_UNAUTHENTICATED);
}

/* Where unix_diag cannot answer (here: asked from another network namespace,
 * which sees none of our sockets), the fallback keeps the start-time check and
 * says that it did.  Needs CAP_SYS_ADMIN for unshare; skipped without it. */
static void test_sockdiag_unavailable(void **state)
{
	(void)state;
	struct child ch;
	spawn(&ch);
	int res[2];
	assert_int_equal(pipe2(res, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char r = 's';
		if (unshare(CLONE_NEWNET) == 0) {
			uint64_t ino, now;
			dev_t dev;
			wi_peer *p = NULL;
			r = 'f';
			if (wi__unix_peer_ino(ch.conn, &dev, &ino) == WI_E_UNIMPLEMENTED && wi__peer_boottime_ticks(&now) == 0 &&
			    wi__peer_from_pid_fallback(ch.conn, ch.pid, geteuid(), getegid(), now, &p) == 0 &&
			    wi_peer_degraded(p) && strstr(wi_peer_degraded(p), "unix_diag"))
				r = 'y';
			wi_peer_free(p);
		}
		_exit(write(res[1], &r, 1) == 1 ? 0 : 1);
	}
	close(res[1]);
	char r = 0;
	assert_int_equal(read(res[0], &r, 1), 1);
	close(res[0]);
	int wst;
	assert_int_equal(waitpid(pid, &wst, 0), pid);
	reap(&ch);
	if (r == 's')
		skip();
	assert_int_equal(r, 'y');
}

/* A kernel without SO_PEERPIDFD takes the fallback; one that refuses the
 * pidfd because the peer is gone fails closed, never looking the pid up. */
static void test_peer_pidfd_refusal(void **state)
{
	(void)state;
	assert_int_equal(wi__peer_pidfd_refusal(ENOPROTOOPT), 0);
	assert_int_equal(wi__peer_pidfd_refusal(EINVAL), WI_E_UNAUTHENTICATED);
	assert_non_null(strstr(wi_error_detail(), "the peer has exited"));
	assert_int_equal(wi__peer_pidfd_refusal(ENOBUFS), WI_E_IO);
}

struct hammer {
	wi_attestor *a;
	const wi_peer *p;
	int failures;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	for (int i = 0; i < 300; i++) {
		wi_selector_set *s = NULL;
		if (wi_attestor_attest(h->a, h->p, &s) != 0 || !has(s, "unix:path:%s", self_exe))
			h->failures++;
		wi_selector_set_unref(s);
	}
	return NULL;
}

static void test_attest_threads(void **state)
{
	struct child ch;
	spawn(&ch);
	wi_peer *p = NULL;
	assert_int_equal(wi_peer_from_socket(ch.conn, &p), 0);
	wi_attestor_options o = {.hash_executables = true};
	wi_attestor *a = NULL;
	assert_int_equal(wi_attestor_new(&o, &a), 0);
	struct hammer h[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){a, p, 0};
		assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(h[i].failures, 0);
	}
	wi_attestor_stats st;
	wi_attestor_get_stats(a, &st);
	assert_int_equal(st.attestations, 1200);
	assert_true(st.cache_hits >= 1200 - 4);
	assert_true(st.hash_computed >= 1 && st.hash_computed <= 4);
	wi_attestor_free(a);
	wi_peer_free(p);
	reap(&ch);
}

/* ---- setup ----------------------------------------------------------------------- */

static int group_setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/wi-attest-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/sock", tmpdir);
	listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock_path);
	if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(listener, 8) != 0)
		return -1;
	if (!realpath("/proc/self/exe", self_exe) || !realpath("/bin/sleep", sleep_exe))
		return -1;
	sha256_file_hex(self_exe, self_sha);
	return 0;
}

static int group_teardown(void **state)
{
	static const char *const names[] = {"sock", "fits", "big", "empty", "link"};
	char path[160];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	rmdir(tmpdir);
	if (listener >= 0)
		close(listener);
	return 0;
}

int main(void)
{
	/* A child killed by the tests must not take us down through SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stat_valid),
		cmocka_unit_test(test_stat_tricky_comm),
		cmocka_unit_test(test_stat_malformed),
		cmocka_unit_test(test_status_valid),
		cmocka_unit_test(test_status_malformed),
		cmocka_unit_test(test_cgroup_parse),
		cmocka_unit_test(test_cgroup_malformed),
		cmocka_unit_test(test_cgroup_shapes),
		cmocka_unit_test(test_proc_read_bounds),
		cmocka_unit_test(test_peer_from_socket),
		cmocka_unit_test(test_attest_live_and_cache),
		cmocka_unit_test(test_exited_but_not_reaped),
		cmocka_unit_test(test_cached_then_exited),
		cmocka_unit_test(test_peer_gone_before_accept_check),
		cmocka_unit_test(test_peer_fallback),
		cmocka_unit_test(test_peer_pidfd_refusal),
		cmocka_unit_test(test_peer_fallback_pid_reused),
		cmocka_unit_test(test_sockdiag),
		cmocka_unit_test(test_sockdiag_unavailable),
		cmocka_unit_test(test_attest_threads),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
