/* daemon/main.c — wimsed: loads the config, opens the CA, starts the
 * Workload API server and runs the libuv loop (accept, signals, sweeps). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "attestors/attest.h"
#include "core/ca.h"
#include "core/clock.h"
#include "core/jwt_keys.h"
#include "core/config.h"
#include "core/limits.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/malloc_tune.h"
#include "daemon/admin_entries.h"
#include "daemon/logsink.h"
#include "daemon/metrics.h"
#include "daemon/notify.h"
#include "daemon/storage.h"
#include "daemon/tts.h"
#include "workload-api/server.h"

/* Stream pushes are checked every tick; closed connections swept less often.
 * The tick runs just after each wall-clock tick boundary: SVID refresh
 * times, key rotations and revocation expiries are whole seconds, so a push
 * due at second S goes out at S plus a few milliseconds, not at whatever
 * offset into the second a free-running timer had drifted to. */
#define TICK_INTERVAL_MS (WI_TICK_SECONDS * 1000)
#define TICK_AFTER_BOUNDARY_MS 2
#define SWEEP_EVERY_TICKS 2

typedef struct daemon_state {
	const char *config_path;
	wi_config *config;
	wi_config *tts_config; /* the config the token service started with; its
				  issuers point into it, so it lives until exit */
	wi_daemon_tts *tts;
	wi_ca *ca;
	wi_jwt_keys *jwt_keys;
	wi_attestor *attestor;
	wi_wl_server *wl;
	wi_daemon_metrics *metrics; /* admin socket: /metrics, /status, /entries */
	wi_store *store;            /* state.db: one connection, shared by entries and tts */
	wi_admin_entries *entries;  /* the entries in the store; publishes the registry */
	uv_loop_t *loop;
	uv_poll_t accept_poll;
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t sweep_timer;
	uv_timer_t watchdog_timer; /* initialised only when systemd asks for keep-alives */
	bool watchdog_on;
	bool unhealthy;          /* reported NOT_SERVING */
	char write_error[256];   /* the last failed write of a rotation; "" once one succeeds */
	unsigned long ticks;
	int exit_code;
} daemon_state;

static void usage(FILE *f)
{
	fprintf(f, "usage: wimsed --config FILE [--check-config] [--log-format text|json] [--log-level LEVEL]\n"
		   "  --config FILE    the JSON config (see README.md)\n"
		   "  --check-config   validate the config and exit\n"
		   "  --log-format F   text or json (one JSON object per line); overrides log_format\n"
		   "  --log-level L    debug, info, warn or error; overrides log_level\n"
		   "  --version        print the version\n");
}

/* STYLE §10: the keys and tokens in our memory stay out of core dumps, and
 * no process of our own uid may ptrace us or read /proc/<pid>/mem or
 * environ (a workload running as the daemon's user, as in development, could
 * otherwise read the CA key).  Root keeps both. */
static int harden_process(void)
{
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		fprintf(stderr, "wimsed: prctl(PR_SET_DUMPABLE): %s\n", strerror(errno));
		return -1;
	}
	const struct rlimit none = {0, 0};
	if (setrlimit(RLIMIT_CORE, &none) != 0) {
		fprintf(stderr, "wimsed: setrlimit(RLIMIT_CORE): %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static void on_accept(uv_poll_t *h, int status, int events)
{
	daemon_state *d = h->data;
	if (status < 0) {
		wi_log(WI_LOG_WARN, "accept_poll", "error=%s", uv_strerror(status));
		return;
	}
	wi_wl_server_accept(d->wl);
}

/* CA and JWT-key rotation: prepare, activate and retire on schedule; a
 * failure (read-only or full disk) keeps the current keys and is retried. */
static void rotate_keys(daemon_state *d, time_t now)
{
	bool changed = false;
	bool failed = false;
	if (wi_ca_tick(d->ca, now, &changed) < 0) {
		failed = true;
		snprintf(d->write_error, sizeof(d->write_error), "CA rotation: %s", wi_error_detail());
		wi_log(WI_LOG_ERROR, "ca_rotation_failed", "keeping the current CA: %s", wi_error_detail());
	} else if (changed)
		wi_log(WI_LOG_INFO, "ca_rotated", "not_after=%lld events=%" PRIu64, (long long)wi_ca_not_after(d->ca),
		       wi_ca_rotation_events(d->ca));
	changed = false;
	if (wi_jwt_keys_tick(d->jwt_keys, now, &changed) < 0) {
		failed = true;
		snprintf(d->write_error, sizeof(d->write_error), "JWT key rotation: %s", wi_error_detail());
		wi_log(WI_LOG_ERROR, "jwt_key_rotation_failed", "keeping the current keys: %s", wi_error_detail());
	} else if (changed) {
		wi_log(WI_LOG_INFO, "jwt_keys_rotated", "active_kid=%s events=%" PRIu64, wi_jwt_keys_kid(d->jwt_keys),
		       wi_jwt_keys_rotation_events(d->jwt_keys));
	}
	if (!failed)
		d->write_error[0] = '\0';
}

/* Health: NOT_SERVING while the state directory cannot take writes (read-only,
 * full, or our last rotation write failed); the identities held are still
 * served.  One log line per transition, saying why. */
static void check_health(daemon_state *d)
{
	char why[512];
	bool ok = wi_daemon_storage_writable(wi_config_data_dir(d->config), why, sizeof(why));
	if (ok && d->write_error[0]) {
		ok = false;
		snprintf(why, sizeof(why), "%s", d->write_error);
	}
	if (ok == !d->unhealthy)
		return;
	d->unhealthy = !ok;
	wi_wl_server_set_serving(d->wl, ok);
	if (ok) {
		wi_log(WI_LOG_INFO, "health_serving", "the state directory takes writes again");
		wi_daemon_notify("STATUS=serving");
	} else {
		wi_log(WI_LOG_ERROR, "health_not_serving", "reason=\"%s\"; current identities are still served", why);
		wi_daemon_notifyf("STATUS=NOT_SERVING: %s", why);
	}
}

/* Milliseconds from now to TICK_AFTER_BOUNDARY_MS past the next tick
 * boundary of the wall clock.  A timer that fires a little before a boundary
 * is re-armed for just after it. */
static uint64_t ms_to_next_tick(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return TICK_INTERVAL_MS;
	uint64_t into = (uint64_t)(ts.tv_sec % WI_TICK_SECONDS) * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	return TICK_INTERVAL_MS - into + TICK_AFTER_BOUNDARY_MS;
}

static void on_tick(uv_timer_t *t)
{
	daemon_state *d = t->data;
	rotate_keys(d, wi_clock_now());
	check_health(d);
	wi_wl_server_tick(d->wl);
	wi_daemon_tts_tick(d->tts);
	if (++d->ticks % SWEEP_EVERY_TICKS == 0)
		wi_wl_server_sweep(d->wl);
	/* Pushes to many streams take a while: measure from after them. */
	uv_update_time(d->loop);
	uv_timer_start(t, on_tick, ms_to_next_tick(), 0);
}

/* One short STATUS= line for systemctl status: what is served and how busy. */
static void notify_status(daemon_state *d, const char *prefix)
{
	wi_wl_stats st;
	wi_wl_server_get_stats(d->wl, &st);
	wi_registry *reg = wi_admin_entries_registry(d->entries);
	wi_daemon_notifyf("%sSTATUS=serving %s: %zu entries, %" PRIu64 " connections, %" PRIu64 " streams", prefix,
			  wi_config_workload_socket(d->config), wi_registry_count(reg), st.connections_open,
			  st.streams_open);
	wi_registry_unref(reg);
}

/* Keep-alive from the loop thread: a wedged loop stops it and systemd
 * restarts us (WatchdogSec=). */
static void on_watchdog(uv_timer_t *t)
{
	notify_status(t->data, "WATCHDOG=1\n");
}

static void close_cb_noop(uv_handle_t *h)
{
}

static void shutdown_loop(daemon_state *d)
{
	wi_daemon_notify("STOPPING=1\nSTATUS=stopping: draining connections");
	uv_poll_stop(&d->accept_poll);
	uv_close((uv_handle_t *)&d->accept_poll, close_cb_noop);
	uv_close((uv_handle_t *)&d->sig_term, close_cb_noop);
	uv_close((uv_handle_t *)&d->sig_int, close_cb_noop);
	uv_close((uv_handle_t *)&d->sig_hup, close_cb_noop);
	uv_close((uv_handle_t *)&d->sweep_timer, close_cb_noop);
	if (d->watchdog_on)
		uv_close((uv_handle_t *)&d->watchdog_timer, close_cb_noop);
	wi_daemon_tts_stop(d->tts);
	wi_admin_entries_stop(d->entries); /* admin requests waiting on a publish answer now */
	wi_daemon_metrics_stop(d->metrics); /* metrics: closes the admin socket */
	/* Now, not after the loop: new Workload API calls are refused at once
	 * and its drain overlaps the token service's (whose requests finish on
	 * its worker threads meanwhile), so both fit in one stop budget. */
	wi_wl_server_stop(d->wl);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
	daemon_state *d = h->data;
	wi_log(WI_LOG_INFO, "stopping", "signal=%s", strsignal(signum));
	shutdown_loop(d);
}

static void on_reload(uv_signal_t *h, int signum)
{
	daemon_state *d = h->data;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* MONOTONIC_USEC: sd_notify(3) asks for it with RELOADING=1. */
	wi_daemon_notifyf("RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=reloading %s",
			  (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u, d->config_path);
	wi_config *nc = NULL;
	if (wi_config_load_file(d->config_path, &nc) < 0) {
		wi_log(WI_LOG_ERROR, "reload_failed", "keeping the running config: %s", wi_error_detail());
		notify_status(d, "READY=1\n");
		return;
	}
	/* Entries of another trust domain would not load into the running
	 * registry (and stored API entries would stop loading after a restart
	 * that adopts it): a trust-domain change is for a restart only. */
	if (strcmp(wi_config_trust_domain(nc), wi_config_trust_domain(d->config)) != 0) {
		wi_log(WI_LOG_ERROR, "reload_failed", "trust_domain changes need a restart; keeping the running entries");
		wi_config_free(nc);
		notify_status(d, "READY=1\n");
		return;
	}
	if (strcmp(wi_config_workload_socket(nc), wi_config_workload_socket(d->config)) != 0 ||
	    strcmp(wi_config_data_dir(nc), wi_config_data_dir(d->config)) != 0) {
		wi_log(WI_LOG_WARN, "reload_partial",
		       "workload_socket and data_dir changes need a restart; entries reloaded");
	}
	/* The file's entries replace the config-sourced ones in the store;
	 * API entries stay.  Published (and pushed to streams) at once. */
	wi_registry *before = wi_admin_entries_registry(d->entries);
	if (wi_admin_entries_reload(d->entries, nc) < 0) {
		wi_log(WI_LOG_ERROR, "reload_failed", "keeping the running entries: %s", wi_error_detail());
		wi_registry_unref(before);
		wi_config_free(nc);
		notify_status(d, "READY=1\n");
		return;
	}
	wi_registry *reg = wi_admin_entries_registry(d->entries);
	wi_log(WI_LOG_INFO, "reloaded", "entries=%zu", wi_registry_count(reg));
	if (wi_registry_uses_kind(reg, WI_SEL_UNIX_SHA256) && !wi_registry_uses_kind(before, WI_SEL_UNIX_SHA256))
		wi_log(WI_LOG_WARN, "reload_partial",
		       "unix:sha256 selectors were added; restart to enable executable hashing");
	wi_registry_unref(before);
	wi_registry_unref(reg);
	if (d->config != d->tts_config)
		wi_config_free(d->config);
	d->config = nc;
	notify_status(d, "READY=1\n");
}

/* mkdir 0755 whatever the umask; an existing directory is left as it is. */
static int mkdir_public(const char *dir)
{
	if (mkdir(dir, 0755) < 0)
		return errno == EEXIST ? 0 : -1;
	return chmod(dir, 0755);
}

static int ensure_socket_dir(const char *sock)
{
	char dir[4096];
	size_t n = strlen(sock);
	if (n >= sizeof(dir))
		return -1;
	memcpy(dir, sock, n + 1);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	struct stat st;
	if (stat(dir, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : -1;
	/* Create missing parents readable by all: workloads of every user must
	 * reach the socket; the operator owns the directory. */
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir_public(dir) < 0)
			return -1;
		*p = '/';
	}
	return mkdir_public(dir);
}

static int run(daemon_state *d)
{
	wi_config *c = d->config;
	const char *sockets[2] = {wi_config_workload_socket(c), wi_config_exchange_socket(c)};
	for (int i = 0; i < 2; i++) {
		if (sockets[i] && ensure_socket_dir(sockets[i]) < 0) {
			wi_log(WI_LOG_ERROR, "socket_dir", "cannot create the directory of %s: %s", sockets[i],
			       strerror(errno));
			return 1;
		}
	}
	if (wi_fs_mkdir_private(wi_config_data_dir(c)) < 0) {
		wi_log(WI_LOG_ERROR, "data_dir", "%s", wi_error_detail());
		return 1;
	}
	wi_ca_options ca_opts = {
		.trust_domain = wi_config_trust_domain(c),
		.data_dir = wi_config_data_dir(c),
		.ttl = wi_config_ca_ttl(c),
		.max_svid_ttl = wi_config_max_x509_svid_ttl(c),
		.upstream_cert_path = wi_config_ca_upstream_cert(c),
		.upstream_key_path = wi_config_ca_upstream_key(c),
		.rotate_every = wi_config_ca_rotate_every(c),
	};
	if (wi_ca_open(&ca_opts, wi_clock_now(), &d->ca) < 0) {
		wi_log(WI_LOG_ERROR, "ca_failed", "%s", wi_error_detail());
		return 1;
	}
	wi_jwt_keys_options jopts = {
		.dir = wi_config_data_dir(c),
		.type = (wi_jwt_key_type)wi_config_jwt_key_type(c),
		.rotate_every = wi_config_jwt_key_rotate_every(c),
		.token_ttl = wi_config_jwt_svid_ttl(c),
	};
	if (wi_jwt_keys_open_rotating(&jopts, wi_clock_now(), &d->jwt_keys) < 0) {
		wi_log(WI_LOG_ERROR, "jwt_keys_failed", "%s", wi_error_detail());
		return 1;
	}
	/* The store is the source of the entries served; the file seeds it.
	 * Opened once: its integrity check reads the whole file. */
	if (wi_store_open(wi_config_data_dir(c), &d->store) < 0) {
		wi_log(WI_LOG_ERROR, "store_failed", "%s", wi_error_detail());
		return 1;
	}
	if (wi_admin_entries_open(c, d->store, &d->entries) < 0) {
		wi_log(WI_LOG_ERROR, "entries_failed", "%s", wi_error_detail());
		return 1;
	}
	wi_registry *reg = wi_admin_entries_registry(d->entries);
	wi_attestor_options aopts = {.hash_executables = wi_registry_uses_kind(reg, WI_SEL_UNIX_SHA256)};
	if (wi_attestor_new(&aopts, &d->attestor) < 0) {
		wi_log(WI_LOG_ERROR, "attestor_failed", "%s", wi_error_detail());
		wi_registry_unref(reg);
		return 1;
	}
	wi_wl_options wopts = {
		.socket_path = wi_config_workload_socket(c),
		.threads = 0,
		.default_x509_ttl = wi_config_x509_svid_ttl(c),
		.attestor = d->attestor,
		.ca = d->ca,
		.jwt_keys = d->jwt_keys,
		.jwt_ttl = wi_config_jwt_svid_ttl(c),
		.registry = reg,
	};
	int rc = wi_wl_server_start(&wopts, &d->wl);
	wi_registry_unref(reg);
	if (rc < 0) {
		wi_log(WI_LOG_ERROR, "workload_api_failed", "%s", wi_error_detail());
		return 1;
	}

	d->loop = uv_default_loop();
	if (wi_daemon_tts_start(d->loop, c, d->store, d->attestor, d->jwt_keys, d->ca, &d->tts) < 0) {
		wi_log(WI_LOG_ERROR, "tts_failed", "%s", wi_error_detail());
		return 1;
	}
	if (d->tts)
		d->tts_config = c;
	if (wi_admin_entries_attach(d->entries, d->loop, d->wl, d->tts) < 0) {
		wi_log(WI_LOG_ERROR, "entries_failed", "%s", wi_error_detail());
		wi_daemon_tts_stop(d->tts);
		return 1;
	}
	/* ---- metrics: admin socket next to the workload socket ---- */
	wi_daemon_metrics_options mopts = {
		.loop = d->loop,
		.workload_socket = wi_config_workload_socket(c),
		.trust_domain = wi_config_trust_domain(c),
		.wl = d->wl,
		.attestor = d->attestor,
		.ca = d->ca,
		.jwt_keys = d->jwt_keys,
		.revocations = wi_daemon_tts_revocations(d->tts),
		.entries = d->entries,
		.tts = wi_daemon_tts_service(d->tts),
		.txn_keys = wi_daemon_tts_txn_keys(d->tts),
		.metrics_listen = wi_config_metrics_listen(c),
	};
	if (wi_daemon_metrics_start(&mopts, &d->metrics) < 0) {
		wi_log(WI_LOG_ERROR, "admin_socket_failed", "%s", wi_error_detail());
		wi_daemon_tts_stop(d->tts);
		wi_admin_entries_stop(d->entries);
		return 1;
	}
	/* ---- end metrics ---- */
	uv_poll_init(d->loop, &d->accept_poll, wi_wl_server_listen_fd(d->wl));
	d->accept_poll.data = d;
	uv_poll_start(&d->accept_poll, UV_READABLE, on_accept);
	uv_signal_init(d->loop, &d->sig_term);
	uv_signal_init(d->loop, &d->sig_int);
	uv_signal_init(d->loop, &d->sig_hup);
	d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
	uv_signal_start(&d->sig_term, on_stop_signal, SIGTERM);
	uv_signal_start(&d->sig_int, on_stop_signal, SIGINT);
	uv_signal_start(&d->sig_hup, on_reload, SIGHUP);
	uv_timer_init(d->loop, &d->sweep_timer);
	d->sweep_timer.data = d;
	uv_timer_start(&d->sweep_timer, on_tick, ms_to_next_tick(), 0);

	wi_log(WI_LOG_INFO, "ready", "trust_domain=%s socket=%s entries=%zu jwt_kid=%s", wi_config_trust_domain(c),
	       wi_config_workload_socket(c), wi_registry_count(wopts.registry), wi_jwt_keys_kid(d->jwt_keys));
	notify_status(d, "READY=1\n");
	uint64_t wd_usec = 0;
	if (wi_daemon_notify_watchdog(&wd_usec)) {
		uint64_t every_ms = wd_usec / 2000u > 0 ? wd_usec / 2000u : 1;
		uv_timer_init(d->loop, &d->watchdog_timer);
		d->watchdog_timer.data = d;
		uv_timer_start(&d->watchdog_timer, on_watchdog, every_ms, every_ms);
		d->watchdog_on = true;
		wi_log(WI_LOG_INFO, "watchdog", "keep-alive every %" PRIu64 " ms", every_ms);
	}
	uv_run(d->loop, UV_RUN_DEFAULT);

	wi_wl_server_stop(d->wl);
	wi_log(WI_LOG_INFO, "stopped", "bye");
	return 0;
}

/* 1 for json, 0 for text, -1 otherwise. */
static int parse_log_format(const char *s)
{
	return strcmp(s, "json") == 0 ? 1 : strcmp(s, "text") == 0 ? 0 : -1;
}

/* A wi_log_level, or -1. */
static int parse_log_level(const char *s)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 'k'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{"log-format", required_argument, NULL, 'F'},
		{"log-level", required_argument, NULL, 'L'},
		{0},
	};
	daemon_state d = {0};
	bool check_only = false;
	int log_json = -1, log_level = -1; /* -1: as the config says */
	int ch;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': d.config_path = optarg; break;
		case 'k': check_only = true; break;
		case 'V': printf("wimsed 0.1.0\n"); return 0;
		case 'h': usage(stdout); return 0;
		case 'F':
			if ((log_json = parse_log_format(optarg)) < 0) {
				fprintf(stderr, "wimsed: --log-format must be text or json, not \"%s\"\n", optarg);
				return 2;
			}
			break;
		case 'L':
			if ((log_level = parse_log_level(optarg)) < 0) {
				fprintf(stderr, "wimsed: --log-level must be debug, info, warn or error, not \"%s\"\n",
					optarg);
				return 2;
			}
			break;
		default: usage(stderr); return 2;
		}
	}
	if (!d.config_path || optind != argc) {
		usage(stderr);
		return 2;
	}
	/* Before anything else is made: a re-exec keeps only argv, the
	 * environment and the fds this process was given. */
	char tune_failed[WI_ERROR_DETAIL_MAX] = "";
	if (!check_only && wi_malloc_tune_reexec(argv) < 0)
		snprintf(tune_failed, sizeof(tune_failed), "%s", wi_error_detail());
	if (wi_config_load_file(d.config_path, &d.config) < 0) {
		fprintf(stderr, "wimsed: %s\n", wi_error_detail());
		return 2;
	}
	if (check_only) {
		printf("%s: ok\n", d.config_path);
		wi_config_free(d.config);
		return 0;
	}
	/* Before any key is read. */
	if (harden_process() < 0) {
		wi_config_free(d.config);
		return 1;
	}
	/* Command-line flags override the config's log settings. */
	wi_logsink_install(log_level >= 0 ? (wi_log_level)log_level : wi_config_log_level(d.config),
			   log_json >= 0 ? log_json == 1 : wi_config_log_json(d.config));
	if (tune_failed[0])
		wi_log(WI_LOG_WARN, "malloc_tune", "running with glibc's default malloc cache: %s", tune_failed);
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	if (wi_daemon_notify_open() < 0) {
		fprintf(stderr, "wimsed: %s\n", wi_error_detail());
		wi_config_free(d.config);
		return 1;
	}
	/* Every connection is an fd (plus a pidfd): take the hard limit. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			wi_log(WI_LOG_WARN, "rlimit", "cannot raise RLIMIT_NOFILE: %s", strerror(errno));
	}

	d.exit_code = run(&d);

	if (d.loop) {
		/* Let close callbacks run (listeners, watchers), then free. */
		uv_run(d.loop, UV_RUN_DEFAULT);
		/* Every request has finished: now the last handles can go. */
		wi_daemon_tts_close(d.tts);
		uv_run(d.loop, UV_RUN_DEFAULT);
		if (uv_loop_close(d.loop) != 0)
			wi_log(WI_LOG_WARN, "loop_close", "handles still open at exit");
	}
	wi_daemon_metrics_free(d.metrics); /* metrics: after the loop drained */
	wi_admin_entries_free(d.entries);   /* after the admin handlers finished */
	wi_daemon_tts_free(d.tts);
	wi_store_close(d.store); /* after both of its users */
	wi_wl_server_free(d.wl);
	wi_attestor_free(d.attestor);
	wi_jwt_keys_free(d.jwt_keys);
	wi_ca_free(d.ca);
	if (d.tts_config && d.tts_config != d.config)
		wi_config_free(d.tts_config);
	wi_config_free(d.config);
	return d.exit_code;
}
