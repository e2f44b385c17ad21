/* bench/grpc_load.c — Workload API load on gRPC C core.
 *
 *   wi-bench grpc --socket PATH --mode jwt-warm|jwt-cold|validate|x509
 *                 [--concurrency N] [--channels N] [--duration S] [--warmup S]
 *                 [--connect] [--streams N] [--pid SERVER_PID]
 *                 [--echo --resp-size BYTES] [--rotation S] [--tokens N]
 *
 * --pid: the server's process; a load run reports its CPU seconds over the
 * measured window (server_cpu_s: warm-up and set-up excluded, like
 * client_cpu_s), a --streams run reads its RSS.
 *
 * One client thread drives one completion queue and keeps `concurrency`
 * calls in flight over `channels` channels (each its own connection: local
 * subchannel pools).  Every call is one batch (send metadata, message,
 * close; receive metadata and the first message) followed by a status batch,
 * as libwimse does.  --connect: every call opens a new channel (first-message
 * latency of a new connection).  --streams N: opens N FetchX509SVID streams
 * over `channels` connections, waits until every one has its first message,
 * reads the daemon's RSS, then ends them.  --rotation S (with --streams): after
 * that, keeps reading every stream for up to S seconds until each has
 * received an SVID whose leaf serial differs from its first one, and reports
 * the spread from the first to the last stream to see it, and the delay from
 * the new leaf's mint time (notBefore + WI_CERT_BACKDATE_SECONDS, whole
 * seconds) to the last.  --echo: sends the same request
 * bytes to the bare echo server (bench/echo_grpc.c), asking for a response of
 * --resp-size bytes.  --tokens N (validate): fetches N distinct JWT-SVIDs
 * first (each with an audience of its own beside the validated one) and
 * validates them in turn, so the daemon's cache of tokens that passed
 * (1 024 slots, direct-mapped) answers next to none: every call verifies a
 * signature.  Without it, every call validates the same token. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <openssl/asn1.h>
#include <openssl/x509.h>
#include <time.h>

#include "bench/bench.h"
#include "bench/common.h"
#include "core/limits.h"
#include "wimse/wimse.h"
#include "workload.pb-c.h"

#define MAX_CHANNELS 4096
#define MAX_INFLIGHT 20000
#define REQ_MAX 16384
#define MAX_TOKENS 65536

enum mode { M_JWT_WARM, M_JWT_COLD, M_VALIDATE, M_X509 };

typedef struct load load;

typedef struct slot {
	load *L;
	grpc_call *call;
	grpc_channel *own; /* --connect: this call's channel */
	grpc_byte_buffer *recv;
	grpc_metadata_array init_md, trail_md;
	grpc_status_code status;
	grpc_slice details;
	uint64_t t0, t1;
	int phase;
	bool got;
	bool live;
	/* --rotation: the leaf serial of the first message, the pending
	 * follow-up read, and when a different serial arrived. */
	grpc_byte_buffer *next;
	uint64_t serial0;
	uint64_t t_rot;	      /* monotonic ns */
	int64_t t_rot_wall_ms; /* CLOCK_REALTIME */
	bool reading, rotated;
} slot;

struct load {
	enum mode mode;
	bool echo, connect;
	char target[4200];
	const char *socket;
	int resp_size;
	grpc_completion_queue *cq;
	grpc_channel_credentials *creds;
	grpc_channel **ch;
	int n_ch;
	char **tokens; /* validate: n_tokens JWT-SVIDs, used in turn */
	size_t n_tokens, next_token;
	uint64_t cold_n;
	uint64_t win_start, win_end;
	bool no_record; /* streams: first messages are recorded by run_streams */
	int inflight;
	size_t resp_bytes;
	wi_bench_lat lat;
	char size_str[24];
};

static grpc_channel *open_channel(load *L, int i)
{
	grpc_arg args[3] = {
		{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1},
		{.type = GRPC_ARG_INTEGER, .key = "wi.bench.channel", .value.integer = i},
		{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
		 .value.integer = 4 * 1024 * 1024},
	};
	grpc_channel_args ca = {.num_args = 3, .args = args};
	return grpc_channel_create(L->target, L->creds, &ca);
}

/* Packs this call's request into buf; returns its length or -1. */
static long build_request(load *L, uint8_t *buf, size_t cap)
{
	char aud[64];
	const char *auds[1] = {aud};
	size_t len;
	switch (L->mode) {
	case M_JWT_WARM:
	case M_JWT_COLD: {
		if (L->mode == M_JWT_WARM)
			snprintf(aud, sizeof(aud), "bench-warm");
		else
			snprintf(aud, sizeof(aud), "cold-%d-%llu", (int)getpid(), (unsigned long long)L->cold_n++);
		JWTSVIDRequest r = JWTSVIDREQUEST__INIT;
		r.n_audience = 1;
		r.audience = (char **)auds;
		len = protobuf_c_message_get_packed_size(&r.base);
		if (len > cap)
			return -1;
		protobuf_c_message_pack(&r.base, buf);
		return (long)len;
	}
	case M_VALIDATE: {
		ValidateJWTSVIDRequest r = VALIDATE_JWTSVIDREQUEST__INIT;
		r.audience = (char *)"bench-validate";
		r.svid = L->tokens[L->next_token++ % L->n_tokens];
		len = protobuf_c_message_get_packed_size(&r.base);
		if (len > cap)
			return -1;
		protobuf_c_message_pack(&r.base, buf);
		return (long)len;
	}
	case M_X509: return 0; /* X509SVIDRequest is empty */
	}
	return -1;
}

static const char *method_of(const load *L)
{
	if (L->echo)
		return "/wi.bench.Echo/Unary";
	switch (L->mode) {
	case M_JWT_WARM:
	case M_JWT_COLD: return "/SpiffeWorkloadAPI/FetchJWTSVID";
	case M_VALIDATE: return "/SpiffeWorkloadAPI/ValidateJWTSVID";
	case M_X509: return "/SpiffeWorkloadAPI/FetchX509SVID";
	}
	return "";
}

static bool start_call(load *L, slot *s, int idx)
{
	uint8_t req[REQ_MAX];
	long len = build_request(L, req, sizeof(req));
	if (len < 0)
		return false;
	memset(s, 0, sizeof(*s));
	s->L = L;
	grpc_channel *ch;
	if (L->connect) {
		s->own = open_channel(L, idx);
		ch = s->own;
	} else {
		ch = L->ch[idx % L->n_ch];
	}
	s->t0 = wi_bench_now_ns();
	gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_seconds(60, GPR_TIMESPAN));
	s->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, L->cq,
					   grpc_slice_from_static_string(method_of(L)), NULL, deadline, NULL);
	grpc_metadata md[2] = {
		{.key = grpc_slice_from_static_string("workload.spiffe.io"),
		 .value = grpc_slice_from_static_string("true")},
		{.key = grpc_slice_from_static_string("wi-bench-size"),
		 .value = grpc_slice_from_static_string(L->size_str)},
	};
	grpc_slice rs = grpc_slice_from_copied_buffer((const char *)req, (size_t)len);
	grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&rs, 1);
	grpc_slice_unref(rs);
	grpc_metadata_array_init(&s->init_md);
	grpc_metadata_array_init(&s->trail_md);
	s->details = grpc_empty_slice();
	grpc_op ops[5];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = L->echo ? 2 : 1;
	ops[0].data.send_initial_metadata.metadata = md;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &s->recv;
	s->phase = 1;
	s->live = true;
	grpc_call_error e = grpc_call_start_batch(s->call, ops, 5, s, NULL);
	grpc_byte_buffer_destroy(send); /* the batch holds its own reference */
	if (e != GRPC_CALL_OK) {
		fprintf(stderr, "wi-bench: start_batch: %d\n", (int)e);
		s->live = false;
		grpc_call_unref(s->call);
		if (s->own)
			grpc_channel_destroy(s->own);
		grpc_metadata_array_destroy(&s->init_md);
		grpc_metadata_array_destroy(&s->trail_md);
		return false;
	}
	L->inflight++;
	return true;
}

static void start_status(slot *s)
{
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	op.data.recv_status_on_client.trailing_metadata = &s->trail_md;
	op.data.recv_status_on_client.status = &s->status;
	op.data.recv_status_on_client.status_details = &s->details;
	s->phase = 2;
	if (grpc_call_start_batch(s->call, &op, 1, s, NULL) != GRPC_CALL_OK) {
		fprintf(stderr, "wi-bench: cannot receive status\n");
		exit(1);
	}
}

static void finish(slot *s)
{
	load *L = s->L;
	bool streaming = L->mode == M_X509 && !L->echo;
	bool ok = s->got && (s->status == GRPC_STATUS_OK || (streaming && s->status == GRPC_STATUS_CANCELLED));
	if (!ok) {
		if (L->lat.errors < 5) {
			char *d = grpc_slice_to_c_string(s->details);
			fprintf(stderr, "wi-bench: %s: status %d: %s\n", method_of(L), (int)s->status, d ? d : "");
			gpr_free(d);
		}
		L->lat.errors++;
	} else if (!L->no_record && s->t0 >= L->win_start && s->t1 <= L->win_end) {
		wi_bench_lat_add(&L->lat, s->t1 - s->t0);
	}
	if (s->recv)
		grpc_byte_buffer_destroy(s->recv);
	grpc_slice_unref(s->details);
	grpc_metadata_array_destroy(&s->init_md);
	grpc_metadata_array_destroy(&s->trail_md);
	grpc_call_unref(s->call);
	if (s->own)
		grpc_channel_destroy(s->own);
	s->live = false;
	L->inflight--;
}

/* Phase-1 completion: note the first message (its size), then end a stream
 * (unless holding streams) and ask for the status. */
static void on_first(slot *s, bool cancel)
{
	s->t1 = wi_bench_now_ns();
	s->got = s->recv != NULL;
	if (s->recv)
		s->L->resp_bytes = grpc_byte_buffer_length(s->recv);
	if (cancel)
		grpc_call_cancel(s->call, NULL);
	start_status(s);
}

/* --tokens: n JWT-SVIDs that differ (each also names an audience of its
 * own, so the daemon's JWT cache cannot hand out one token twice). */
static int fetch_tokens(load *L, size_t n)
{
	char addr[4200];
	snprintf(addr, sizeof(addr), "unix://%s", L->socket);
	wimse_client *c = NULL;
	if (wimse_client_open(addr, &c) < 0) {
		fprintf(stderr, "wi-bench: %s\n", wimse_last_error());
		return -1;
	}
	L->tokens = calloc(n, sizeof(*L->tokens));
	int rc = L->tokens ? 0 : -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char own[64];
		snprintf(own, sizeof(own), "bench-validate-%d-%zu", (int)getpid(), i);
		const char *aud[2] = {"bench-validate", own};
		wimse_jwt_svids *s = NULL;
		rc = wimse_fetch_jwt_svids(c, aud, n > 1 ? 2 : 1, NULL, 10000, &s);
		if (rc < 0)
			fprintf(stderr, "wi-bench: FetchJWTSVID: %s\n", wimse_last_error());
		else if (!(L->tokens[i] = strdup(s->svids[0].token)))
			rc = -1;
		wimse_jwt_svids_free(s);
		if (rc == 0)
			L->n_tokens = i + 1;
	}
	wimse_client_close(c);
	return rc < 0 ? -1 : 0;
}

/* FNV-1a of the leaf certificate's serial, and its notBefore (seconds since
 * the epoch), from the bytes of an X509SVIDResponse; 0 when unreadable. */
static uint64_t parse_leaf_serial(const uint8_t *msg, size_t len, time_t *ret_not_before)
{
	uint64_t h = 0;
	X509SVIDResponse *r = x509_svidresponse__unpack(NULL, len, msg);
	if (r && r->n_svids > 0) {
		const unsigned char *p = r->svids[0]->x509_svid.data;
		X509 *x = d2i_X509(NULL, &p, (long)r->svids[0]->x509_svid.len); /* the leaf comes first */
		const ASN1_INTEGER *sn = x ? X509_get0_serialNumber(x) : NULL;
		if (sn) {
			h = 1469598103934665603ull;
			const unsigned char *d = ASN1_STRING_get0_data(sn);
			for (int i = 0; i < ASN1_STRING_length(sn); i++)
				h = (h ^ d[i]) * 1099511628211ull;
			struct tm tm;
			if (ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm) == 1)
				*ret_not_before = timegm(&tm);
		}
		X509_free(x);
	}
	x509_svidresponse__free_unpacked(r, NULL);
	return h;
}

/* Every stream of one identity receives the same bytes, so certificates are
 * parsed once per distinct message (a small cache keyed by a hash of the
 * whole message), not once per stream: parsing 10 000 copies would make the
 * one-thread client, not the daemon, the bound of the rotation figure. */
#define SEEN_MAX 8
static struct {
	uint64_t msg_hash, serial;
	time_t not_before;
} seen[SEEN_MAX];
static size_t n_seen;

static uint64_t leaf_serial(grpc_byte_buffer *bb, time_t *ret_not_before)
{
	grpc_byte_buffer_reader rd;
	if (!bb || !grpc_byte_buffer_reader_init(&rd, bb))
		return 0;
	grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	const uint8_t *m = GRPC_SLICE_START_PTR(all);
	size_t len = GRPC_SLICE_LENGTH(all);
	uint64_t mh = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		mh = (mh ^ m[i]) * 1099511628211ull;
	uint64_t h = 0;
	time_t nb = 0;
	size_t i = 0;
	while (i < n_seen && seen[i].msg_hash != mh)
		i++;
	if (i < n_seen) {
		h = seen[i].serial;
		nb = seen[i].not_before;
	} else {
		h = parse_leaf_serial(m, len, &nb);
		size_t k = n_seen < SEEN_MAX ? n_seen++ : (size_t)(mh % SEEN_MAX);
		seen[k].msg_hash = mh;
		seen[k].serial = h;
		seen[k].not_before = nb;
	}
	grpc_slice_unref(all);
	if (ret_not_before)
		*ret_not_before = nb;
	return h;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Follow-up reads carry the slot's address + 1 as their tag (slots are
 * aligned), so they are told apart from the status batch's tag. */
static bool start_read(slot *s)
{
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &s->next;
	s->next = NULL;
	if (grpc_call_start_batch(s->call, &op, 1, (char *)s + 1, NULL) != GRPC_CALL_OK)
		return false;
	s->reading = true;
	return true;
}

static int run_streams(load *L, int n, int pid, double hold, double rotation)
{
	slot *slots = calloc((size_t)n, sizeof(*slots));
	if (!slots)
		return 1;
	L->no_record = true;
	uint64_t t0 = wi_bench_now_ns();
	for (int i = 0; i < n; i++)
		if (!start_call(L, &slots[i], i))
			return 1;
	int first = 0, failed = 0, rotated = 0, reading = 0;
	uint64_t t_all = 0, t_rot_first = 0, t_rot_last = 0;
	int64_t rot_last_wall = 0;
	time_t new_nb = 0;
	bool serials_differ = false;
	uint64_t serial_first = 0;
	/* Phase A: every stream's first message.  Phase B (--rotation): every
	 * stream's next SVID, until the deadline. */
	uint64_t deadline = 0;
	bool phase_b = false;
	for (;;) {
		if (!phase_b && first + failed >= n) {
			t_all = wi_bench_now_ns();
			if (rotation <= 0 || failed > 0)
				break;
			phase_b = true;
			deadline = t_all + (uint64_t)(rotation * 1e9);
		}
		if (phase_b && (rotated >= first || wi_bench_now_ns() >= deadline))
			break;
		grpc_event ev = grpc_completion_queue_next(L->cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
									gpr_time_from_millis(phase_b ? 200 : 60000, GPR_TIMESPAN)),
							   NULL);
		if (ev.type == GRPC_QUEUE_TIMEOUT && phase_b)
			continue;
		if (ev.type != GRPC_OP_COMPLETE) {
			fprintf(stderr, "wi-bench: streams: timed out with %d of %d\n", first, n);
			break;
		}
		if ((uintptr_t)ev.tag & 1) { /* a follow-up read */
			slot *s = (slot *)((char *)ev.tag - 1);
			s->reading = false;
			reading--;
			if (!s->next)
				continue; /* the stream ended; counted by its status */
			time_t nb = 0;
			uint64_t sn = leaf_serial(s->next, &nb);
			grpc_byte_buffer_destroy(s->next);
			s->next = NULL;
			if (sn != 0 && sn != s->serial0 && !s->rotated) {
				s->rotated = true;
				s->t_rot = wi_bench_now_ns();
				s->t_rot_wall_ms = wall_ms();
				if (!t_rot_first)
					t_rot_first = s->t_rot;
				t_rot_last = s->t_rot;
				rot_last_wall = s->t_rot_wall_ms;
				if (nb > new_nb)
					new_nb = nb;
				rotated++;
			} else if (!s->rotated && start_read(s)) {
				reading++;
			}
			continue;
		}
		slot *s = ev.tag;
		if (s->phase == 1) {
			s->t1 = wi_bench_now_ns();
			s->got = s->recv != NULL;
			if (s->got) {
				s->L->resp_bytes = grpc_byte_buffer_length(s->recv);
				wi_bench_lat_add(&L->lat, s->t1 - s->t0);
				first++;
				if (rotation > 0) {
					s->serial0 = leaf_serial(s->recv, NULL);
					if (!serial_first)
						serial_first = s->serial0;
					else if (s->serial0 != serial_first)
						serials_differ = true;
					if (start_read(s))
						reading++;
				}
			} else {
				failed++;
			}
			start_status(s); /* completes when the stream ends */
		} else {
			if (!s->got) {
				char *d = grpc_slice_to_c_string(s->details);
				if (failed < 5)
					fprintf(stderr, "wi-bench: stream: status %d: %s\n", (int)s->status, d);
				gpr_free(d);
			}
			finish(s);
		}
	}
	if (!t_all)
		t_all = wi_bench_now_ns();
	if (serials_differ)
		fprintf(stderr, "wi-bench: streams: a rotation happened while streams were opening; "
			"the spread below covers only the next one\n");
	if (hold > 0)
		usleep((useconds_t)(hold * 1e6));
	long rss = pid > 0 ? wi_bench_proc_kb(pid, "VmRSS") : -1;
	for (int i = 0; i < n; i++)
		if (slots[i].live)
			grpc_call_cancel(slots[i].call, NULL);
	while (L->inflight > 0 || reading > 0) {
		grpc_event ev = grpc_completion_queue_next(L->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			break;
		if ((uintptr_t)ev.tag & 1) {
			slot *s = (slot *)((char *)ev.tag - 1);
			if (s->next)
				grpc_byte_buffer_destroy(s->next);
			s->next = NULL;
			reading--;
			continue;
		}
		slot *s = ev.tag;
		if (s->phase == 1)
			on_first(s, false);
		else
			finish(s);
	}
	L->lat.errors = (uint64_t)failed + (uint64_t)(n - first - failed);
	if (rotation > 0 && rotated < first) {
		fprintf(stderr, "wi-bench: streams: %d of %d streams saw a new SVID within %.0f s\n", rotated, first,
			rotation);
		L->lat.errors += (uint64_t)(first - rotated);
	}
	char extra[512];
	int k = snprintf(extra, sizeof(extra), ",\"streams\":%d,\"established\":%d,\"connections\":%d,"
			 "\"all_first_ms\":%.2f,\"daemon_rss_kb\":%ld,\"resp_bytes\":%zu",
			 n, first, L->n_ch, (double)(t_all - t0) / 1e6, rss, L->resp_bytes);
	if (rotation > 0 && k > 0 && (size_t)k < sizeof(extra))
		snprintf(extra + k, sizeof(extra) - (size_t)k,
			 ",\"rotated\":%d,\"rotation_spread_ms\":%.2f,\"rotation_from_mint_ms\":%lld,"
			 "\"rotation_after_open_s\":%.2f",
			 rotated, rotated ? (double)(t_rot_last - t_rot_first) / 1e6 : -1.0,
			 rotated && new_nb ? (long long)(rot_last_wall - ((int64_t)new_nb + WI_CERT_BACKDATE_SECONDS) * 1000)
					   : -1LL,
			 rotated ? (double)(t_rot_first - t_all) / 1e9 : -1.0);
	wi_bench_print_result(&L->lat, (double)(t_all - t0) / 1e9, extra);
	free(slots);
	return first == n && (rotation <= 0 || rotated == first) ? 0 : 1;
}

int wi_bench_grpc(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},  {"mode", required_argument, NULL, 'm'},
		{"concurrency", required_argument, NULL, 'c'}, {"channels", required_argument, NULL, 'n'},
		{"duration", required_argument, NULL, 'd'}, {"warmup", required_argument, NULL, 'w'},
		{"connect", no_argument, NULL, 'C'},	   {"streams", required_argument, NULL, 'S'},
		{"pid", required_argument, NULL, 'p'},	   {"echo", no_argument, NULL, 'e'},
		{"resp-size", required_argument, NULL, 'r'}, {"hold", required_argument, NULL, 'h'},
		{"rotation", required_argument, NULL, 'R'}, {"tokens", required_argument, NULL, 'T'}, {0},
	};
	static load Lz;
	load *L = &Lz;
	int conc = 1, n_ch = 0, streams = 0, pid = 0, n_tokens = 1;
	double duration = 2.0, warmup = 0.3, hold = 0.5, rotation = 0;
	const char *mode = NULL;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 's': L->socket = optarg; break;
		case 'm': mode = optarg; break;
		case 'c': conc = (int)wi_bench_num("--concurrency", optarg); break;
		case 'n': n_ch = (int)wi_bench_num("--channels", optarg); break;
		case 'd': duration = wi_bench_num("--duration", optarg); break;
		case 'w': warmup = wi_bench_num("--warmup", optarg); break;
		case 'C': L->connect = true; break;
		case 'S': streams = (int)wi_bench_num("--streams", optarg); break;
		case 'p': pid = (int)wi_bench_num("--pid", optarg); break;
		case 'e': L->echo = true; break;
		case 'r': L->resp_size = (int)wi_bench_num("--resp-size", optarg); break;
		case 'h': hold = wi_bench_num("--hold", optarg); break;
		case 'R': rotation = wi_bench_num("--rotation", optarg); break;
		case 'T': n_tokens = (int)wi_bench_num("--tokens", optarg); break;
		default: return 2;
		}
	}
	if (!L->socket || !mode) {
		fprintf(stderr, "wi-bench grpc: --socket and --mode are required\n");
		return 2;
	}
	if (strcmp(mode, "jwt-warm") == 0)
		L->mode = M_JWT_WARM;
	else if (strcmp(mode, "jwt-cold") == 0)
		L->mode = M_JWT_COLD;
	else if (strcmp(mode, "validate") == 0)
		L->mode = M_VALIDATE;
	else if (strcmp(mode, "x509") == 0)
		L->mode = M_X509;
	else {
		fprintf(stderr, "wi-bench grpc: unknown mode %s\n", mode);
		return 2;
	}
	if (conc < 1 || conc > MAX_INFLIGHT || streams > MAX_INFLIGHT) {
		fprintf(stderr, "wi-bench grpc: concurrency out of range\n");
		return 2;
	}
	if (n_ch <= 0)
		n_ch = streams ? streams : (conc < 4 ? conc : 4);
	if (n_ch > MAX_CHANNELS)
		n_ch = MAX_CHANNELS;
	snprintf(L->target, sizeof(L->target), "unix:%s", L->socket);
	snprintf(L->size_str, sizeof(L->size_str), "%d", L->resp_size);
	grpc_init();
	if (n_tokens < 1 || n_tokens > MAX_TOKENS) {
		fprintf(stderr, "wi-bench grpc: --tokens out of range (1..%d)\n", MAX_TOKENS);
		return 2;
	}
	if (L->mode == M_VALIDATE && !L->echo && fetch_tokens(L, (size_t)n_tokens) < 0)
		return 1;
	if (L->mode == M_VALIDATE && L->echo) {
		/* Same request size as the daemon run: a token-sized string. */
		L->tokens = calloc(1, sizeof(*L->tokens));
		if (!L->tokens || !(L->tokens[0] = malloc(700)))
			return 1;
		memset(L->tokens[0], 'x', 699);
		L->tokens[0][699] = '\0';
		L->n_tokens = 1;
	}
	if (wi_bench_lat_init(&L->lat, 1u << 16) < 0)
		return 1;
	L->creds = grpc_insecure_credentials_create();
	L->cq = grpc_completion_queue_create_for_next(NULL);
	L->n_ch = L->connect ? 0 : n_ch;
	L->ch = calloc((size_t)n_ch, sizeof(*L->ch));
	if (!L->ch)
		return 1;
	for (int i = 0; i < L->n_ch; i++)
		L->ch[i] = open_channel(L, i);

	int rc;
	if (streams > 0) {
		rc = run_streams(L, streams, pid, hold, rotation);
	} else {
		if (L->connect)
			conc = 1;
		slot *slots = calloc((size_t)conc, sizeof(*slots));
		if (!slots)
			return 1;
		uint64_t t0 = wi_bench_now_ns();
		L->win_start = t0 + (uint64_t)(warmup * 1e9);
		L->win_end = L->win_start + (uint64_t)(duration * 1e9);
		for (int i = 0; i < conc; i++)
			if (!start_call(L, &slots[i], i))
				return 1;
		int next_idx = conc;
		/* The generator's own CPU (its thread and gRPC's) over the window,
		 * read at the first completion past each edge: it shares the cores
		 * with the server, so a row can say what the client took. */
		double cpu_start = -1, cpu_end = -1, srv_start = -1, srv_end = -1;
		while (L->inflight > 0) {
			grpc_event ev = grpc_completion_queue_next(L->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
			if (ev.type != GRPC_OP_COMPLETE)
				break;
			uint64_t now = wi_bench_now_ns();
			if (cpu_start < 0 && now >= L->win_start) {
				cpu_start = wi_bench_self_cpu_s();
				srv_start = pid > 0 ? wi_bench_proc_cpu_s(pid) : -1;
			}
			if (cpu_end < 0 && now >= L->win_end) {
				cpu_end = wi_bench_self_cpu_s();
				srv_end = pid > 0 ? wi_bench_proc_cpu_s(pid) : -1;
			}
			slot *s = ev.tag;
			if (s->phase == 1) {
				on_first(s, L->mode == M_X509 && !L->echo);
				continue;
			}
			finish(s);
			if (now < L->win_end && L->lat.errors < 1000)
				(void)start_call(L, s, next_idx++);
		}
		double client_cpu = cpu_start >= 0 && cpu_end >= cpu_start ? cpu_end - cpu_start : -1;
		char extra[224];
		int len = snprintf(extra, sizeof(extra),
				   ",\"concurrency\":%d,\"channels\":%d,\"resp_bytes\":%zu,\"client_cpu_s\":%.3f", conc,
				   L->connect ? -1 : L->n_ch, L->resp_bytes, client_cpu);
		if (srv_start >= 0 && srv_end >= srv_start)
			snprintf(extra + len, sizeof(extra) - (size_t)len, ",\"server_cpu_s\":%.3f", srv_end - srv_start);
		wi_bench_print_result(&L->lat, duration, extra);
		rc = L->lat.ok > 0 && L->lat.errors == 0 ? 0 : 1;
		free(slots);
	}
	for (int i = 0; i < L->n_ch; i++)
		grpc_channel_destroy(L->ch[i]);
	free(L->ch);
	grpc_completion_queue_shutdown(L->cq);
	while (grpc_completion_queue_next(L->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(L->cq);
	grpc_channel_credentials_release(L->creds);
	wi_bench_lat_free(&L->lat);
	for (size_t i = 0; i < L->n_tokens; i++)
		free(L->tokens[i]);
	free(L->tokens);
	grpc_shutdown();
	return rc;
}
