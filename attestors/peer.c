/* attestors/peer.c — the peer of an accepted Unix socket, pinned by a pidfd. */
#include "attestors/peer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "attestors/peer_internal.h"
#include "attestors/procfs.h"
#include "attestors/sockdiag.h"
#include "core/cleanup.h"
#include "core/limits.h"

/* socket(7): SO_PEERPIDFD since Linux 6.5; Debian 12's headers predate it. */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

struct wi_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	uint64_t start_time;
	int pidfd;
	int dirfd;
	const char *degraded; /* static text, or NULL */
};

wi_peer *wi_peer_free(wi_peer *p)
{
	if (!p)
		return NULL;
	if (p->pidfd >= 0)
		close(p->pidfd);
	if (p->dirfd >= 0)
		close(p->dirfd);
	free(p);
	return NULL;
}

static inline void wi_peer_freep(wi_peer **p)
{
	wi_peer_free(*p);
}

static int peer_alloc(pid_t pid, uid_t uid, gid_t gid, wi_peer **ret)
{
	wi_peer *p = calloc(1, sizeof(*p));
	WI_CHECK_ALLOC(p);
	p->pid = pid;
	p->uid = uid;
	p->gid = gid;
	p->pidfd = -1;
	p->dirfd = -1;
	*ret = p;
	return 0;
}

pid_t wi_peer_pid(const wi_peer *p)
{
	return p->pid;
}

uid_t wi_peer_uid(const wi_peer *p)
{
	return p->uid;
}

gid_t wi_peer_gid(const wi_peer *p)
{
	return p->gid;
}

uint64_t wi_peer_start_time(const wi_peer *p)
{
	return p->start_time;
}

int wi_peer_proc_dirfd(const wi_peer *p)
{
	return p->dirfd;
}

int wi_peer_pidfd(const wi_peer *p)
{
	return p->pidfd;
}

const char *wi_peer_degraded(const wi_peer *p)
{
	return p->degraded;
}

int wi_peer_check_alive(const wi_peer *p)
{
	/* pidfd_open(2): a pidfd polls readable once the process has exited;
	 * newer kernels add POLLHUP once it is reaped.  Any event, and any poll
	 * failure, counts as gone: fail closed. */
	struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN};
	int n;
	do
		n = poll(&pfd, 1, 0);
	while (n < 0 && errno == EINTR);
	WI_CHECK(n >= 0, WI_E_UNAUTHENTICATED, "poll(pidfd of %d): %s", (int)p->pid, strerror(errno));
	WI_CHECK(n == 0, WI_E_UNAUTHENTICATED, "process %d has exited", (int)p->pid);
	return 0;
}

int wi__peer_boottime_ticks(uint64_t *ret)
{
	struct timespec ts;
	WI_CHECK_ERRNO(clock_gettime(CLOCK_BOOTTIME, &ts) == 0, "clock_gettime(CLOCK_BOOTTIME): %s",
		       strerror(errno));
	long hz = sysconf(_SC_CLK_TCK);
	WI_CHECK(hz > 0 && hz <= 1000000000L && 1000000000L % hz == 0, WI_E_INTERNAL,
		 "unexpected _SC_CLK_TCK %ld", hz);
	/* The kernel's nsec_to_clock_t truncates the same way, so a process
	 * that started before now never shows a later tick. */
	uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	*ret = ns / (uint64_t)(1000000000L / hz);
	return 0;
}

static int pidfd_open_sys(pid_t pid, int *ret)
{
	/* Called through syscall(2) so the build does not depend on the glibc
	 * wrapper (2.36+).  pidfd_open(2): the fd is always close-on-exec. */
	long fd = syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return -errno;
	*ret = (int)fd;
	return 0;
}

/* Reads the euid/egid of the process behind dirfd (wi_peer_from_pid has no
 * SO_PEERCRED). */
static int read_creds(int dirfd, uid_t *ret_uid, gid_t *ret_gid)
{
	_cleanup_(freep) char *text = NULL;
	size_t len;
	WI_TRY(wi__proc_read(dirfd, "status", &text, &len));
	wi__proc_status st = {0};
	WI_TRY(wi__proc_parse_status(text, len, &st));
	*ret_uid = st.euid;
	*ret_gid = st.egid;
	wi__proc_status_done(&st);
	return 0;
}

/* Where the connecting socket must be found (fallback only): the peer end's
 * inode, on the sockfs device; ino 0 when it cannot be asked for. */
struct peer_socket {
	dev_t dev;
	uint64_t ino;
};

/* What a degraded check means, appended to each reason. */
#define DEGRADED                                                                                  \
	": without SO_PEERPIDFD (Linux < 6.5) a peer whose pid is reused within the accept's clock " \
	"tick cannot be told from the process that connected"

/* Common tail once p->pidfd is set: open /proc/<pid>, read the start time
 * (optionally checked against the accept time), optionally the credentials,
 * optionally find the connecting socket among the process's open files, then
 * prove by the pidfd that the process read is the one pinned. */
static int peer_finish(wi_peer *p, bool check_start, uint64_t accept_ticks, bool read_ids,
		       const struct peer_socket *sock)
{
	_cleanup_(freep) char *text = NULL;
	size_t len;
	int r = wi__proc_open_pid(p->pid, &p->dirfd);
	if (r >= 0)
		r = wi__proc_read(p->dirfd, "stat", &text, &len);
	if (r >= 0) {
		pid_t spid;
		r = wi__proc_parse_stat(text, len, &spid, &p->start_time);
		/* A different pid means /proc belongs to another pid namespace
		 * than SO_PEERCRED's: nothing read there can be trusted. */
		if (r >= 0 && spid != p->pid)
			r = wi__error_set(WI_E_IO, __FILE__, __LINE__,
					  "/proc/%d/stat names pid %d: foreign /proc mount", (int)p->pid,
					  (int)spid);
	}
	if (r >= 0 && read_ids)
		r = read_creds(p->dirfd, &p->uid, &p->gid);
	if (r >= 0 && sock && sock->ino) {
		/* The pinned process holds the connecting end, so it is the one
		 * that connected (or was handed the socket by it), not a process
		 * that got the pid number afterwards. */
		r = wi__proc_holds_socket(p->dirfd, sock->dev, sock->ino);
		if (r == WI_E_UNIMPLEMENTED) {
			p->degraded = "the peer's open files are not readable by the daemon (it needs CAP_SYS_PTRACE)" DEGRADED;
			r = 0;
		}
	}
	/* Alive first: a read that failed because the process went away is
	 * UNAUTHENTICATED, not an I/O error. */
	WI_TRY(wi_peer_check_alive(p));
	if (r < 0 && r != WI_E_NOMEM && r != WI_E_IO && r != WI_E_UNAUTHENTICATED) {
		/* peer.h promises UNAUTHENTICATED or IO: a /proc file that is
		 * missing, malformed or oversized for a live process is an I/O
		 * failure; keep the parser's reason in the detail. */
		return wi__error_set(WI_E_IO, __FILE__, __LINE__, "reading /proc/%d: %s", (int)p->pid,
				     wi_error_detail());
	}
	if (r < 0)
		return r;
	if (check_start)
		/* SPIRE's pid-reuse defence without a pinned pidfd: a process that
		 * started after the accept cannot be the one that connected. */
		WI_CHECK(p->start_time <= accept_ticks, WI_E_UNAUTHENTICATED,
			 "pid %d started after the connection was accepted (pid reused)", (int)p->pid);
	return 0;
}

static int fallback(int fd, pid_t pid, uid_t uid, gid_t gid, uint64_t accept_ticks, wi_peer **ret)
{
	struct peer_socket sock = {0};
	int r = wi__unix_peer_ino(fd, &sock.dev, &sock.ino);
	if (r < 0 && r != WI_E_UNIMPLEMENTED)
		return r;
	_cleanup_(wi_peer_freep) wi_peer *p = NULL;
	WI_TRY(peer_alloc(pid, uid, gid, &p));
	if (r == WI_E_UNIMPLEMENTED) {
		sock.ino = 0;
		p->degraded = "this kernel answers no unix_diag (sock_diag) query" DEGRADED;
	}
	r = pidfd_open_sys(pid, &p->pidfd);
	if (r < 0) {
		WI_CHECK(r != -ESRCH, WI_E_UNAUTHENTICATED, "pidfd_open(%d): %s", (int)pid, strerror(-r));
		WI_FAIL(WI_E_IO, "pidfd_open(%d): %s", (int)pid, strerror(-r));
	}
	WI_TRY(peer_finish(p, true, accept_ticks, false, &sock));
	*ret = TAKE_PTR(p);
	return 0;
}

int wi__peer_from_pid_fallback(int fd, pid_t pid, uid_t uid, gid_t gid, uint64_t accept_ticks, wi_peer **ret)
{
	WI_CHECK(pid > 0, WI_E_UNAUTHENTICATED, "peer pid %d", (int)pid);
	return fallback(fd, pid, uid, gid, accept_ticks, ret);
}

int wi__peer_pidfd_refusal(int e)
{
	if (e == ENOPROTOOPT)
		return 0;
	/* The peer's pid number may already name another process: no lookup
	 * by number after the kernel said the connecting one is gone. */
	WI_CHECK(e != EINVAL, WI_E_UNAUTHENTICATED, "getsockopt(SO_PEERPIDFD): the peer has exited");
	WI_FAIL(WI_E_IO, "getsockopt(SO_PEERPIDFD): %s", strerror(e));
}

int wi_peer_from_socket(int fd, wi_peer **ret)
{
	/* Taken first: the fallback's start-time check compares against it. */
	uint64_t accept_ticks;
	WI_TRY(wi__peer_boottime_ticks(&accept_ticks));

	struct ucred cr;
	socklen_t cl = sizeof(cr);
	WI_CHECK_ERRNO(getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0,
		       "getsockopt(SO_PEERCRED): %s", strerror(errno));
	WI_CHECK(cl == sizeof(cr), WI_E_IO, "SO_PEERCRED: short answer");
	/* SO_PEERCRED reports pid 0 when the peer's pid has no number in our
	 * namespace; SPIRE rejects it too (reference §4.2). */
	WI_CHECK(cr.pid > 0, WI_E_UNAUTHENTICATED, "peer pid %d is not visible", (int)cr.pid);

	int pidfd = -1;
	socklen_t pl = sizeof(pidfd);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &pl) == 0) {
		_cleanup_(closep) int owned = pidfd;
		WI_CHECK(pl == sizeof(pidfd) && pidfd >= 0, WI_E_IO, "SO_PEERPIDFD: bad answer");
		/* The kernel creates it O_CLOEXEC; make sure, since a leak into an
		 * exec'd helper would pin the peer's identity there. */
		int fl = fcntl(owned, F_GETFD);
		WI_CHECK_ERRNO(fl >= 0, "fcntl(F_GETFD): %s", strerror(errno));
		if (!(fl & FD_CLOEXEC))
			WI_CHECK_ERRNO(fcntl(owned, F_SETFD, fl | FD_CLOEXEC) == 0,
				       "fcntl(F_SETFD): %s", strerror(errno));
		_cleanup_(wi_peer_freep) wi_peer *p = NULL;
		WI_TRY(peer_alloc(cr.pid, cr.uid, cr.gid, &p));
		p->pidfd = TAKE_FD(owned);
		/* The pidfd is pinned to the process that connected: no start
		 * time check is needed, only the alive check after the reads. */
		WI_TRY(peer_finish(p, false, 0, false, NULL));
		*ret = TAKE_PTR(p);
		return 0;
	}
	WI_TRY(wi__peer_pidfd_refusal(errno));
	return fallback(fd, cr.pid, cr.uid, cr.gid, accept_ticks, ret);
}

int wi_peer_from_pid(pid_t pid, wi_peer **ret)
{
	WI_CHECK(pid > 0, WI_E_INVAL, "pid %d", (int)pid);
	_cleanup_(wi_peer_freep) wi_peer *p = NULL;
	WI_TRY(peer_alloc(pid, (uid_t)-1, (gid_t)-1, &p));
	int r = pidfd_open_sys(pid, &p->pidfd);
	if (r < 0) {
		WI_CHECK(r != -ESRCH, WI_E_UNAUTHENTICATED, "pidfd_open(%d): %s", (int)pid, strerror(-r));
		WI_FAIL(WI_E_IO, "pidfd_open(%d): %s", (int)pid, strerror(-r));
	}
	/* pidfd_open pins the process that has this pid now; the alive check
	 * after the reads proves the dirfd and the credentials are its own. */
	WI_TRY(peer_finish(p, false, 0, true, NULL));
	*ret = TAKE_PTR(p);
	return 0;
}
