/* bench/http_load.c — Transaction Token Service load over its Unix socket,
 * with libcurl's multi interface (HTTP/1.1 keep-alive, one connection per
 * request in flight).
 *
 *   wi-bench http --socket PATH --mode token|introspect|echo [--concurrency N]
 *                 [--duration S] [--warmup S] [--resp-size BYTES]
 *                 [--https HOST:PORT --cert PEM --key PEM --cacert PEM]
 *                 [--threads T] [--subjects N] [--tokens N] [--pid SERVER_PID]
 *
 * --pid: the server's process, whose CPU seconds over the measured window
 * the result reports (server_cpu_s; warm-up and set-up, e.g. fetching the
 * --subjects tokens, excluded).
 *
 * --threads T: the connections are spread over T threads, each with a curl
 * multi handle of its own, so that one client thread is not the bound (the
 * result reports the generator's CPU over the window, client_cpu_s).
 *
 * token: obtains a user token from the development issuer
 * (POST /dev/user-token) once, then POSTs the same RFC 8693 form to /token
 * for every request.  --subjects N (token mode): N distinct user tokens are
 * fetched first and the requests cycle through them, so that (with N well
 * above the daemon's WI_SUBJECT_CACHE_SLOTS) nearly every exchange verifies
 * its subject token's signature instead of finding it verified already.
 * introspect: exchanges once, then POSTs
 * token=<the Txn-Token> to /introspect for every request (the daemon
 * verifies its signature once and then finds it in its cache of Txn-Tokens
 * that passed).  --tokens N (introspect mode): N exchanges first, and the
 * requests cycle through the N Txn-Tokens, so that (N well above
 * WI_TXN_VERIFIED_CACHE_SLOTS) nearly every introspection verifies one.  echo: POSTs the
 * same form to the bare libh2o server (bench/echo_http.c), asking for a
 * --resp-size body; with --https, to its TLS listener (the HTTPS ceiling).
 *
 * --https: the requests go to https://HOST:PORT over TLS 1.3 with SPIFFE
 * mTLS: the client presents the X.509-SVID in --cert/--key (fetched by
 * bench/run with wimsectl), and checks the server's chain against the
 * bundle in --cacert.  The server's SVID has a URI SAN and no DNS name, so
 * curl's host-name check is off; the chain is verified.  The user token
 * still comes from --socket (the development issuer is only served there),
 * or from --token-socket in echo mode. */
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "bench/bench.h"
#include "bench/common.h"

#define MAX_CONC 4096
#define THREADS_MAX 64
#define BODY_MAX (256u * 1024u)

typedef struct hslot {
	CURL *h;
	uint64_t t0;
	size_t got;
	char first[16384]; /* start of the body, for diagnostics and setup */
} hslot;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	hslot *s = ud;
	size_t len = size * n;
	if (s->got < sizeof(s->first) - 1) {
		size_t k = len < sizeof(s->first) - 1 - s->got ? len : sizeof(s->first) - 1 - s->got;
		memcpy(s->first + s->got, p, k);
		s->first[s->got + k] = '\0';
	}
	s->got += len;
	return len;
}

/* --https: the client SVID and the bundle (NULL: plain HTTP on a socket). */
typedef struct tls_files {
	const char *cert, *key, *cacert;
} tls_files;

static void setup_tls(CURL *h, const tls_files *tls)
{
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
	curl_easy_setopt(h, CURLOPT_SSLCERT, tls->cert);
	curl_easy_setopt(h, CURLOPT_SSLKEY, tls->key);
	curl_easy_setopt(h, CURLOPT_CAINFO, tls->cacert);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L); /* SPIFFE: URI SAN, no DNS name */
}

static void set_form(CURL *h, const char *form)
{
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(form));
}

static void setup(CURL *h, const char *socket, const char *url, const char *body, struct curl_slist *hdrs,
		  hslot *s)
{
	if (socket)
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, socket);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60000L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(h, CURLOPT_PRIVATE, s);
}

/* Appends name=escaped(value) to a bounded form body. */
static int form_add(CURL *h, char *body, size_t cap, const char *name, const char *value)
{
	char *e = curl_easy_escape(h, value, (int)strlen(value));
	if (!e)
		return -1;
	size_t len = strlen(body);
	int n = snprintf(body + len, cap - len, "%s%s=%s", len ? "&" : "", name, e);
	curl_free(e);
	return n < 0 || (size_t)n >= cap - len ? -1 : 0;
}

/* One user token from the development issuer, over `h` (kept alive). */
static char *user_token_on(CURL *h, const char *socket, struct curl_slist *hdrs)
{
	hslot s = {0};
	char body[256] = "";
	char *tok = NULL;
	if (form_add(h, body, sizeof(body), "sub", "bench-user") == 0 &&
	    form_add(h, body, sizeof(body), "scope", "calendar.read") == 0) {
		setup(h, socket, "http://localhost/dev/user-token", body, hdrs, &s);
		long status = 0;
		if (curl_easy_perform(h) == CURLE_OK && curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
		    status == 200) {
			json_t *j = json_loads(s.first, 0, NULL);
			const char *t = json_string_value(json_object_get(j, "access_token"));
			tok = t ? strdup(t) : NULL;
			if (!tok)
				fprintf(stderr, "wi-bench: /dev/user-token: no access_token in the answer\n");
			json_decref(j);
		} else {
			fprintf(stderr, "wi-bench: /dev/user-token: HTTP %ld: %s\n", status, s.first);
		}
	}
	return tok;
}

static char *user_token(const char *socket, struct curl_slist *hdrs)
{
	CURL *h = curl_easy_init();
	char *tok = h ? user_token_on(h, socket, hdrs) : NULL;
	curl_easy_cleanup(h);
	return tok;
}

/* The RFC 8693 form for one subject token. */
static int exchange_form(CURL *tmp, char *body, size_t cap, const char *subject)
{
	body[0] = '\0';
	if (form_add(tmp, body, cap, "grant_type", "urn:ietf:params:oauth:grant-type:token-exchange") < 0 ||
	    form_add(tmp, body, cap, "requested_token_type", "urn:ietf:params:oauth:token-type:txn_token") < 0 ||
	    form_add(tmp, body, cap, "audience", "example.org") < 0 ||
	    form_add(tmp, body, cap, "scope", "calendar.read") < 0 ||
	    form_add(tmp, body, cap, "subject_token", subject) < 0 ||
	    form_add(tmp, body, cap, "subject_token_type", "urn:ietf:params:oauth:token-type:access_token") < 0)
		return -1;
	return 0;
}

/* --subjects: n forms, each with a user token of its own (NULL on failure). */
static char **distinct_forms(const char *socket, struct curl_slist *hdrs, int n)
{
	CURL *h = curl_easy_init();
	char **forms = calloc((size_t)n, sizeof(*forms));
	int i = 0;
	for (; h && forms && i < n; i++) {
		char *t = user_token_on(h, socket, hdrs);
		char *b = t ? malloc(4096) : NULL;
		if (!b || exchange_form(h, b, 4096, t) < 0) {
			free(t);
			free(b);
			break;
		}
		free(t);
		forms[i] = b;
	}
	curl_easy_cleanup(h);
	if (i < n) {
		for (int k = 0; forms && k < i; k++)
			free(forms[k]);
		free(forms);
		return NULL;
	}
	return forms;
}

/* POSTs body to url once (keep-alive not needed); the JSON answer's
 * access_token, or NULL. */
static char *exchange_once(const char *socket, const char *url, const char *body, struct curl_slist *hdrs,
			   const tls_files *tls)
{
	CURL *h = curl_easy_init();
	if (!h)
		return NULL;
	hslot *s = calloc(1, sizeof(*s));
	char *tok = NULL;
	if (s) {
		setup(h, socket, url, body, hdrs, s);
		if (tls)
			setup_tls(h, tls);
		long status = 0;
		if (curl_easy_perform(h) == CURLE_OK && curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
		    status == 200) {
			json_t *j = json_loads(s->first, 0, NULL);
			const char *t = json_string_value(json_object_get(j, "access_token"));
			tok = t ? strdup(t) : NULL;
			json_decref(j);
		}
		if (!tok)
			fprintf(stderr, "wi-bench: %s: HTTP %ld: %s\n", url, status, s->first);
	}
	free(s);
	curl_easy_cleanup(h);
	return tok;
}

/* What every load thread shares (read-only once they start). */
typedef struct load_job {
	const char *socket, *url, *body;
	struct curl_slist *hdrs;
	const tls_files *tls;
	bool intro;
	char **forms; /* --subjects: cycled through, or NULL */
	size_t n_forms;
	uint64_t win_start, win_end; /* the measured window, monotonic ns */
} load_job;

/* One load thread: its share of the connections on a curl multi handle of
 * its own, and its own latency record (merged after the join). */
typedef struct load_part {
	pthread_t th;
	const load_job *job;
	int conc;
	size_t next_form;
	wi_bench_lat lat;
	size_t resp_bytes;
	bool failed;
} load_part;

static void sleep_until(uint64_t t_ns)
{
	for (uint64_t now = wi_bench_now_ns(); now < t_ns; now = wi_bench_now_ns()) {
		uint64_t d = t_ns - now;
		struct timespec ts = {.tv_sec = (time_t)(d / 1000000000u), .tv_nsec = (long)(d % 1000000000u)};
		nanosleep(&ts, NULL);
	}
}

static void *load_run(void *arg)
{
	load_part *p = arg;
	const load_job *j = p->job;
	CURLM *m = curl_multi_init();
	hslot *slots = calloc((size_t)p->conc, sizeof(*slots));
	if (wi_bench_lat_init(&p->lat, 1u << 16) < 0 || !m || !slots) {
		p->failed = true;
		goto out;
	}
	for (int i = 0; i < p->conc; i++) {
		slots[i].h = curl_easy_init();
		if (!slots[i].h) {
			p->failed = true;
			goto out;
		}
		setup(slots[i].h, j->socket, j->url, j->body, j->hdrs, &slots[i]);
		if (j->tls)
			setup_tls(slots[i].h, j->tls);
		if (j->forms)
			set_form(slots[i].h, j->forms[p->next_form++ % j->n_forms]);
		slots[i].t0 = wi_bench_now_ns();
		curl_multi_add_handle(m, slots[i].h);
	}
	int active = p->conc;
	wi_bench_lat *lat = &p->lat;
	while (active > 0) {
		int running = 0;
		if (curl_multi_perform(m, &running) != CURLM_OK) {
			p->failed = true;
			break;
		}
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			CURL *h = msg->easy_handle;
			hslot *s = NULL;
			curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&s);
			uint64_t t1 = wi_bench_now_ns();
			long status = 0;
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
			/* Introspection of a live token must say so (RFC 7662 §2.2). */
			bool live = !j->intro || (strstr(s->first, "\"active\":true") || strstr(s->first, "\"active\": true"));
			if (msg->data.result == CURLE_OK && status == 200 && live) {
				p->resp_bytes = s->got;
				if (s->t0 >= j->win_start && t1 <= j->win_end)
					wi_bench_lat_add(lat, t1 - s->t0);
			} else {
				if (lat->errors < 5)
					fprintf(stderr, "wi-bench: %s: %s, HTTP %ld: %s\n", j->url,
						curl_easy_strerror(msg->data.result), status, s->first);
				lat->errors++;
			}
			curl_multi_remove_handle(m, h);
			if (t1 < j->win_end && lat->errors < 1000) {
				if (j->forms)
					set_form(h, j->forms[p->next_form++ % j->n_forms]);
				s->got = 0;
				s->first[0] = '\0';
				s->t0 = wi_bench_now_ns();
				curl_multi_add_handle(m, h);
			} else {
				active--;
			}
		}
		if (active > 0 && curl_multi_poll(m, NULL, 0, 100, NULL) != CURLM_OK) {
			p->failed = true;
			break;
		}
	}
out:
	for (int i = 0; slots && i < p->conc; i++)
		curl_easy_cleanup(slots[i].h);
	curl_multi_cleanup(m);
	free(slots);
	return NULL;
}

int wi_bench_http(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},      {"mode", required_argument, NULL, 'm'},
		{"concurrency", required_argument, NULL, 'c'}, {"duration", required_argument, NULL, 'd'},
		{"warmup", required_argument, NULL, 'w'},      {"resp-size", required_argument, NULL, 'r'},
		{"token-socket", required_argument, NULL, 't'}, {"https", required_argument, NULL, 'H'},
		{"cert", required_argument, NULL, 'E'},	{"key", required_argument, NULL, 'K'},
		{"cacert", required_argument, NULL, 'A'},	{"subjects", required_argument, NULL, 'S'},
		{"threads", required_argument, NULL, 'T'},	{"tokens", required_argument, NULL, 'N'},
		{"pid", required_argument, NULL, 'p'},		{0},
	};
	const char *socket = NULL, *mode = NULL, *token_socket = NULL, *https = NULL;
	tls_files tf = {0};
	int conc = 1, resp_size = 0, n_subjects = 0, threads = 1, n_tokens = 0, pid = 0;
	double duration = 2.0, warmup = 0.3;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 's': socket = optarg; break;
		case 'm': mode = optarg; break;
		case 'c': conc = (int)wi_bench_num("--concurrency", optarg); break;
		case 'd': duration = wi_bench_num("--duration", optarg); break;
		case 'w': warmup = wi_bench_num("--warmup", optarg); break;
		case 'r': resp_size = (int)wi_bench_num("--resp-size", optarg); break;
		case 't': token_socket = optarg; break;
		case 'H': https = optarg; break;
		case 'E': tf.cert = optarg; break;
		case 'K': tf.key = optarg; break;
		case 'A': tf.cacert = optarg; break;
		case 'S': n_subjects = (int)wi_bench_num("--subjects", optarg); break;
		case 'T': threads = (int)wi_bench_num("--threads", optarg); break;
		case 'N': n_tokens = (int)wi_bench_num("--tokens", optarg); break;
		case 'p': pid = (int)wi_bench_num("--pid", optarg); break;
		default: return 2;
		}
	}
	bool echo = mode && strcmp(mode, "echo") == 0;
	bool intro = mode && strcmp(mode, "introspect") == 0;
	if (!socket || !mode || (!echo && !intro && strcmp(mode, "token") != 0) || conc < 1 || conc > MAX_CONC) {
		fprintf(stderr, "wi-bench http: --socket and --mode token|introspect|echo required; "
			"1 <= concurrency <= %d\n", MAX_CONC);
		return 2;
	}
	if (threads < 1 || threads > THREADS_MAX) {
		fprintf(stderr, "wi-bench http: --threads 1..%d\n", THREADS_MAX);
		return 2;
	}
	if (n_subjects < 0 || n_subjects > 65536 || (n_subjects && (echo || intro))) {
		fprintf(stderr, "wi-bench http: --subjects 1..65536, with --mode token only\n");
		return 2;
	}
	if (n_tokens < 0 || n_tokens > 65536 || (n_tokens && !intro)) {
		fprintf(stderr, "wi-bench http: --tokens 1..65536, with --mode introspect only\n");
		return 2;
	}
	if (https && (!tf.cert || !tf.key || !tf.cacert)) {
		fprintf(stderr, "wi-bench http: --https needs --cert, --key and --cacert\n");
		return 2;
	}
	const tls_files *tls = https ? &tf : NULL;
	/* Where the load goes: the Unix socket, or nothing (TCP) with --https. */
	const char *load_socket = https ? NULL : socket;
	char base[300];
	snprintf(base, sizeof(base), "%s%s", https ? "https://" : "http://", https ? https : "localhost");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return 1;
	/* No "Expect: 100-continue" round trip for larger bodies. */
	struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:");
	/* The echo run sends the same form: it needs a token of the same size,
	 * taken from the daemon when --token-socket is given. */
	char *ut = user_token(echo ? (token_socket ? token_socket : socket) : socket, hdrs);
	if (!ut && !echo) {
		curl_slist_free_all(hdrs);
		return 1;
	}
	static char body[BODY_MAX];
	CURL *tmp = curl_easy_init();
	if (!tmp)
		return 1;
	const char *subject = ut ? ut : "x";
	if (exchange_form(tmp, body, sizeof(body), subject) < 0) {
		fprintf(stderr, "wi-bench: form too large\n");
		return 1;
	}
	curl_easy_cleanup(tmp);
	char **forms = n_subjects ? distinct_forms(socket, hdrs, n_subjects) : NULL;
	if (n_subjects && !forms) {
		fprintf(stderr, "wi-bench: cannot obtain %d user tokens\n", n_subjects);
		return 1;
	}
	char url[400];
	snprintf(url, sizeof(url), "%s/token", base);
	if (intro && n_tokens) {
		/* --tokens: n exchanges, and the introspection forms in turn. */
		forms = calloc((size_t)n_tokens, sizeof(*forms));
		CURL *e = curl_easy_init();
		int bad = !forms || !e;
		for (int i = 0; !bad && i < n_tokens; i++) {
			char *tt = exchange_once(load_socket, url, body, hdrs, tls);
			forms[i] = tt ? malloc(4096) : NULL;
			bad = !forms[i];
			if (!bad) {
				forms[i][0] = '\0';
				bad = form_add(e, forms[i], 4096, "token", tt) < 0;
			}
			free(tt);
		}
		curl_easy_cleanup(e);
		n_subjects = n_tokens; /* the forms to cycle through, and free */
		if (bad) {
			fprintf(stderr, "wi-bench: cannot obtain %d Txn-Tokens\n", n_tokens);
			curl_slist_free_all(hdrs);
			return 1;
		}
		snprintf(body, sizeof(body), "%s", forms[0]);
		snprintf(url, sizeof(url), "%s/introspect", base);
	} else if (intro) {
		/* One exchange, then the same introspection form every time. */
		char *tt = exchange_once(load_socket, url, body, hdrs, tls);
		CURL *e = curl_easy_init();
		body[0] = '\0';
		int bad = !tt || !e || form_add(e, body, sizeof(body), "token", tt) < 0;
		curl_easy_cleanup(e);
		free(tt);
		if (bad) {
			curl_slist_free_all(hdrs);
			return 1;
		}
		snprintf(url, sizeof(url), "%s/introspect", base);
	}
	if (echo)
		snprintf(url, sizeof(url), "%s/echo?size=%d", base, resp_size);

	load_job job = {.socket = load_socket, .url = url, .body = body, .hdrs = hdrs, .tls = tls, .intro = intro,
			.forms = forms, .n_forms = (size_t)n_subjects};
	uint64_t t_begin = wi_bench_now_ns();
	job.win_start = t_begin + (uint64_t)(warmup * 1e9);
	job.win_end = job.win_start + (uint64_t)(duration * 1e9);
	if (threads > conc)
		threads = conc;
	load_part parts[THREADS_MAX];
	memset(parts, 0, sizeof(parts));
	int started = 0, rc = 0;
	for (int i = 0; i < threads; i++) {
		parts[i].job = &job;
		parts[i].conc = conc / threads + (i < conc % threads);
		parts[i].next_form = (size_t)i * (job.n_forms / (size_t)threads);
		if (pthread_create(&parts[i].th, NULL, load_run, &parts[i]) != 0) {
			fprintf(stderr, "wi-bench http: cannot start load thread %d\n", i);
			rc = 1;
			break;
		}
		started++;
	}
	/* The load generator's own CPU (all its threads) over the measured
	 * window: at threads x 1.00 core, it is the bound, not the server. */
	double cpu_start = -1, cpu_end = -1, srv_start = -1, srv_end = -1;
	if (rc == 0) {
		sleep_until(job.win_start);
		cpu_start = wi_bench_self_cpu_s();
		srv_start = pid > 0 ? wi_bench_proc_cpu_s(pid) : -1;
		sleep_until(job.win_end);
		cpu_end = wi_bench_self_cpu_s();
		srv_end = pid > 0 ? wi_bench_proc_cpu_s(pid) : -1;
	}
	wi_bench_lat lat;
	bool have_lat = wi_bench_lat_init(&lat, 1u << 16) == 0;
	size_t resp_bytes = 0;
	for (int i = 0; i < started; i++) {
		pthread_join(parts[i].th, NULL);
		if (parts[i].failed || !have_lat || wi_bench_lat_merge(&lat, &parts[i].lat) < 0)
			rc = 1;
		if (parts[i].resp_bytes)
			resp_bytes = parts[i].resp_bytes;
		wi_bench_lat_free(&parts[i].lat);
	}
	if (have_lat && rc == 0) {
		double client_cpu = cpu_start >= 0 && cpu_end >= cpu_start ? cpu_end - cpu_start : -1;
		char extra[256];
		int len = snprintf(extra, sizeof(extra),
				   ",\"concurrency\":%d,\"threads\":%d,\"resp_bytes\":%zu,\"req_bytes\":%zu,"
				   "\"client_cpu_s\":%.3f",
				   conc, threads, resp_bytes, strlen(body), client_cpu);
		if (srv_start >= 0 && srv_end >= srv_start)
			snprintf(extra + len, sizeof(extra) - (size_t)len, ",\"server_cpu_s\":%.3f", srv_end - srv_start);
		wi_bench_print_result(&lat, duration, extra);
		rc = lat.ok > 0 && lat.errors == 0 ? 0 : 1;
	}
	curl_slist_free_all(hdrs);
	free(ut);
	for (int k = 0; forms && k < n_subjects; k++)
		free(forms[k]);
	free(forms);
	if (have_lat)
		wi_bench_lat_free(&lat);
	curl_global_cleanup();
	return rc;
}
