/* bench/echo_grpc.c — the transport ceiling: a bare gRPC C-core server with
 * the daemon's threading (one completion queue served by one thread per
 * core, a pool of pending request_call slots) and the daemon's transport (it
 * accepts on a Unix socket itself and hands each fd to gRPC with
 * grpc_server_add_channel_from_fd).  Every call, whatever its method, is
 * answered with one message of the size the client asks for in the
 * `wi-bench-size` metadata, then OK.
 *
 *   wi-bench-echo-grpc SOCKET_PATH      (runs until SIGTERM/SIGINT) */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>

#define PENDING 64
#define RESP_MAX (1024 * 1024)

typedef struct ecall {
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array md;
	grpc_byte_buffer *recv;
	int cancelled;
	int phase; /* 0: waiting for a call, 1: reply sent */
} ecall;

static grpc_server *server;
static grpc_completion_queue *cq;
static char payload[RESP_MAX];

static void request_call(void)
{
	ecall *c = calloc(1, sizeof(*c));
	if (!c) {
		fprintf(stderr, "echo: out of memory\n");
		exit(1);
	}
	grpc_call_details_init(&c->details);
	grpc_metadata_array_init(&c->md);
	if (grpc_server_request_call(server, &c->call, &c->details, &c->md, cq, cq, c) != GRPC_CALL_OK) {
		fprintf(stderr, "echo: request_call failed\n");
		exit(1);
	}
}

static size_t wanted_size(const grpc_metadata_array *md)
{
	for (size_t i = 0; i < md->count; i++)
		if (grpc_slice_str_cmp(md->metadata[i].key, "wi-bench-size") == 0) {
			char v[24];
			size_t n = GRPC_SLICE_LENGTH(md->metadata[i].value);
			if (n >= sizeof(v))
				return 0;
			memcpy(v, GRPC_SLICE_START_PTR(md->metadata[i].value), n);
			v[n] = '\0';
			long s = strtol(v, NULL, 10);
			return s < 0 ? 0 : s > RESP_MAX ? RESP_MAX : (size_t)s;
		}
	return 0;
}

static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			return NULL;
		if (ev.type != GRPC_OP_COMPLETE || !ev.tag)
			continue;
		ecall *c = ev.tag;
		if (c->phase == 0) {
			request_call(); /* keep the pool full */
			if (!ev.success) {
				grpc_call_details_destroy(&c->details);
				grpc_metadata_array_destroy(&c->md);
				free(c);
				continue;
			}
			size_t n = wanted_size(&c->md);
			grpc_slice s = grpc_slice_from_static_buffer(payload, n);
			grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
			grpc_op ops[6];
			memset(ops, 0, sizeof(ops));
			ops[0].op = GRPC_OP_RECV_MESSAGE;
			ops[0].data.recv_message.recv_message = &c->recv;
			ops[1].op = GRPC_OP_SEND_INITIAL_METADATA;
			ops[2].op = GRPC_OP_SEND_MESSAGE;
			ops[2].data.send_message.send_message = bb;
			ops[3].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
			ops[3].data.send_status_from_server.status = GRPC_STATUS_OK;
			ops[4].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
			ops[4].data.recv_close_on_server.cancelled = &c->cancelled;
			c->phase = 1;
			if (grpc_call_start_batch(c->call, ops, 5, c, NULL) != GRPC_CALL_OK) {
				fprintf(stderr, "echo: start_batch failed\n");
				exit(1);
			}
			grpc_byte_buffer_destroy(bb);
		} else {
			if (c->recv)
				grpc_byte_buffer_destroy(c->recv);
			grpc_call_unref(c->call);
			grpc_call_details_destroy(&c->details);
			grpc_metadata_array_destroy(&c->md);
			free(c);
		}
	}
}

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: wi-bench-echo-grpc SOCKET_PATH\n");
		return 2;
	}
	memset(payload, 'e', sizeof(payload));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "echo: socket path too long\n");
		return 2;
	}
	memcpy(sa.sun_path, argv[1], strlen(argv[1]) + 1);
	unlink(argv[1]);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 512) < 0) {
		fprintf(stderr, "echo: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	struct sigaction act = {.sa_handler = on_signal};
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);

	grpc_init();
	grpc_arg args[1] = {{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
			     .value.integer = 4 * 1024 * 1024}};
	grpc_channel_args ca = {.num_args = 1, .args = args};
	server = grpc_server_create(&ca, NULL);
	cq = grpc_completion_queue_create_for_next(NULL);
	grpc_server_register_completion_queue(server, cq, NULL);
	grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
	grpc_server_start(server);
	for (int i = 0; i < PENDING; i++)
		request_call();
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int n = cores > 0 && cores < 16 ? (int)cores : 1;
	pthread_t th[16];
	for (int i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, worker, NULL) != 0) {
			fprintf(stderr, "echo: cannot start threads\n");
			return 1;
		}
	printf("ready\n");
	fflush(stdout);
	while (!stop) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			fprintf(stderr, "echo: accept: %s\n", strerror(errno));
			break;
		}
		grpc_server_add_channel_from_fd(server, fd, creds);
	}
	close(lfd);
	unlink(argv[1]);
	/* A measuring tool: the process ends here, the kernel reclaims the rest. */
	(void)creds;
	(void)th;
	_exit(0);
}
