/* attestors/sockdiag.c — the peer socket's inode (unix_diag) and a search of
 * a process's open files for it. */
#include "attestors/sockdiag.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdalign.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/limits.h"

/* A unix_diag reply for one socket with one u32 attribute is < 100 bytes;
 * room for an error reply carrying the request back, and then some. */
#define REPLY_MAX 1024

/* What a sock_diag failure means: this kernel (or namespace) has no
 * unix_diag, or something else went wrong. */
static int diag_errno(int e, const char *what)
{
	if (e == ENOENT || e == EOPNOTSUPP || e == EPROTONOSUPPORT || e == EAFNOSUPPORT || e == EACCES ||
	    e == EPERM)
		WI_FAIL(WI_E_UNIMPLEMENTED, "%s: unix_diag unavailable: %s", what, strerror(e));
	WI_FAIL(WI_E_IO, "%s: %s", what, strerror(e));
}

/* Finds UNIX_DIAG_PEER in the attributes after a unix_diag_msg. */
static int parse_peer(const struct nlmsghdr *h, uint32_t want_ino, uint64_t *ret_ino)
{
	WI_CHECK(h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct unix_diag_msg)), WI_E_IO, "unix_diag: short reply");
	const struct unix_diag_msg *m = NLMSG_DATA(h);
	WI_CHECK(m->udiag_family == AF_UNIX && m->udiag_ino == want_ino, WI_E_IO,
		 "unix_diag: reply for another socket");
	int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
	for (const struct rtattr *a = (const struct rtattr *)(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type != UNIX_DIAG_PEER)
			continue;
		WI_CHECK(RTA_PAYLOAD(a) == sizeof(uint32_t), WI_E_IO, "unix_diag: bad peer attribute");
		uint32_t peer;
		memcpy(&peer, RTA_DATA(a), sizeof(peer));
		/* The kernel reports 0 once the peer's socket has been released. */
		WI_CHECK(peer != 0, WI_E_UNAUTHENTICATED, "the peer has closed its end of the connection");
		*ret_ino = peer;
		return 0;
	}
	WI_FAIL(WI_E_UNAUTHENTICATED, "the connection has no peer");
}

int wi__unix_peer_ino(int fd, dev_t *ret_dev, uint64_t *ret_ino)
{
	struct stat st;
	WI_CHECK_ERRNO(fstat(fd, &st) == 0, "fstat: %s", strerror(errno));
	*ret_dev = st.st_dev; /* sockfs', which the peer's socket shares */
	WI_CHECK(S_ISSOCK(st.st_mode) && st.st_ino <= UINT32_MAX, WI_E_IO, "not a socket with a 32-bit inode");
	uint32_t ino = (uint32_t)st.st_ino;

	_cleanup_(closep) int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return diag_errno(errno, "socket(NETLINK_SOCK_DIAG)");
	struct {
		struct nlmsghdr h;
		struct unix_diag_req r;
	} req = {
		.h = {.nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST,
		      .nlmsg_seq = 1},
		/* An exact lookup by inode; no cookie to match. */
		.r = {.sdiag_family = AF_UNIX, .udiag_states = ~0u, .udiag_ino = ino, .udiag_show = UDIAG_SHOW_PEER,
		      .udiag_cookie = {INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE}},
	};
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	ssize_t n;
	do
		n = sendto(nl, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return diag_errno(errno, "unix_diag request");
	WI_CHECK(n == (ssize_t)sizeof(req), WI_E_IO, "unix_diag: short send");

	alignas(struct nlmsghdr) char buf[REPLY_MAX];
	struct sockaddr_nl from;
	socklen_t fl = sizeof(from);
	do
		n = recvfrom(nl, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return diag_errno(errno, "unix_diag reply");
	/* Only the kernel (port 0) answers for the kernel. */
	WI_CHECK(fl == sizeof(from) && from.nl_family == AF_NETLINK && from.nl_pid == 0, WI_E_IO,
		 "unix_diag: reply not from the kernel");
	size_t got = (size_t)n;
	for (size_t off = 0; got - off >= sizeof(struct nlmsghdr);) {
		const struct nlmsghdr *h = (const struct nlmsghdr *)(buf + off);
		WI_CHECK(h->nlmsg_len >= sizeof(*h) && h->nlmsg_len <= got - off, WI_E_IO,
			 "unix_diag: malformed reply");
		off += NLMSG_ALIGN(h->nlmsg_len) < got - off ? NLMSG_ALIGN(h->nlmsg_len) : got - off;
		if (h->nlmsg_seq != req.h.nlmsg_seq)
			continue;
		if (h->nlmsg_type == NLMSG_ERROR) {
			WI_CHECK(h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr)), WI_E_IO,
				 "unix_diag: short error reply");
			const struct nlmsgerr *e = NLMSG_DATA(h);
			WI_CHECK(e->error < 0, WI_E_IO, "unix_diag: acknowledged without an answer");
			/* ENOENT for an exact lookup means no such socket, which
			 * for our own open fd means no unix_diag handler answered
			 * it: the same errno the core gives when none is loaded. */
			return diag_errno(-e->error, "unix_diag");
		}
		if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY)
			return parse_peer(h, ino, ret_ino);
	}
	WI_FAIL(WI_E_IO, "unix_diag: no answer in the reply");
}

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

int wi__proc_holds_socket(int procfd, dev_t dev, uint64_t ino)
{
	int fdd = openat(procfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fdd < 0) {
		WI_CHECK(errno != EACCES && errno != EPERM, WI_E_UNIMPLEMENTED, "open fd/: %s", strerror(errno));
		WI_FAIL(WI_E_IO, "open fd/: %s", strerror(errno));
	}
	_cleanup_(closedirp) DIR *d = fdopendir(fdd);
	if (!d) {
		int e = errno;
		close(fdd);
		WI_FAIL(WI_E_IO, "fdopendir fd/: %s", strerror(e));
	}
	size_t seen = 0;
	bool denied = false;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			WI_CHECK(errno == 0, WI_E_IO, "readdir fd/: %s", strerror(errno));
			break;
		}
		if (de->d_name[0] == '.')
			continue;
		WI_CHECK(++seen <= WI_PEER_FDS_SCAN_MAX, WI_E_UNAUTHENTICATED,
			 "the process holds more than %u open files: not searched for the connection",
			 (unsigned)WI_PEER_FDS_SCAN_MAX);
		/* stat follows the magic link to the open file itself; an fd
		 * closed meanwhile is simply not it. */
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, 0) != 0) {
			denied |= errno == EACCES || errno == EPERM;
			continue;
		}
		if (S_ISSOCK(st.st_mode) && st.st_dev == dev && (uint64_t)st.st_ino == ino)
			return 0;
	}
	/* The fd links need ptrace read access: what could not be looked at
	 * might have been it. */
	WI_CHECK(!denied, WI_E_UNIMPLEMENTED, "the process's open files cannot be read by us");
	WI_FAIL(WI_E_UNAUTHENTICATED, "the process does not hold the connecting socket (its pid was reused)");
}
