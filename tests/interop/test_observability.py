#!/usr/bin/env python3
"""Interop: observability of a running wimsed.

- Workload API calls counted by method and final gRPC status, and their latency
  histograms, checked by exact deltas around known calls (3 FetchJWTSVID OK, one without
  the security header, one from uid 65534 which holds no identity when run as root);
- histogram structure (cumulative buckets, _count equal to the +Inf bucket), checked with
  Debian's python3-prometheus-client parser;
- the attestation histogram and cache hit/miss counters;
- token-service issuance and refusals by OAuth error, introspections;
- `metrics_listen`: plain HTTP on TCP serving GET /metrics and nothing else;
- `--log-format json`: every stderr line one JSON object, one line per refusal, no token;
- a malformed `metrics_listen` or `--log-format` refused at start with a clear error.
"""

import json
import os
import socket
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import wimsed_harness as h

from prometheus_client.parser import text_string_to_metric_families

IS_ROOT = os.geteuid() == 0
TD = h.TRUST_DOMAIN
AGENT = h.TD_ID + "/agent"
CAL = "https://calendar.example.com/"
TT = "urn:ietf:params:oauth:token-type:"
FORM = "application/x-www-form-urlencoded"

# Log events that accompany a Workload API refusal (non-OK status we decided).
WL_REFUSAL_EVENTS = {"security_header_missing", "bad_request", "request_refused", "no_identity",
                     "caller_unknown", "attestation_failed", "match_failed", "request_too_large",
                     "jwt_svid_invalid", "jwt_svid_failed", "stream_build_failed", "reply_failed",
                     "validate_failed", "stream_revoked"}

CHILD = r'''
import sys, grpc
ch = grpc.insecure_channel("unix:" + sys.argv[1])
call = ch.unary_unary("/SpiffeWorkloadAPI/FetchJWTSVID")
try:
    call(bytes.fromhex(sys.argv[2]), metadata=(("workload.spiffe.io", "true"),), timeout=10)
    print("OK")
except grpc.RpcError as e:
    print(e.code().name)
'''


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def http_get(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


UnixHTTP = h.UnixHTTP


def unix_post(sock, path, form):
    """From this process (a run dies with the process that exchanged for it)."""
    c = UnixHTTP(sock)
    try:
        c.request("POST", path, body=urllib.parse.urlencode(form), headers={"Content-Type": FORM})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


class Scrape:
    """One scrape, parsed by prometheus_client: families by name, and sample lookup."""

    def __init__(self, tc, text):
        self.tc = tc
        self.fams = {f.name: f for f in text_string_to_metric_families(text)}
        self.text = text

    def family(self, name):
        self.tc.assertIn(name, self.fams, f"family {name} missing")
        return self.fams[name]

    def value(self, fam, sample_name=None, **labels):
        f = self.family(fam)
        name = sample_name or (f.name + "_total" if f.type == "counter" else f.name)
        for s in f.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()) \
                    and set(s.labels) - {"le"} == set(labels) - {"le"}:
                return s.value
        return 0.0  # a labelled series not yet seen is zero

    def histogram(self, fam, **labels):
        """{le: cumulative count}, sum, count of one histogram series."""
        f = self.family(fam)
        self.tc.assertEqual(f.type, "histogram", fam)
        buckets, total, count = {}, None, None
        for s in f.samples:
            rest = {k: v for k, v in s.labels.items() if k != "le"}
            if rest != labels:
                continue
            if s.name == fam + "_bucket":
                buckets[s.labels["le"]] = s.value
            elif s.name == fam + "_sum":
                total = s.value
            elif s.name == fam + "_count":
                count = s.value
        self.tc.assertTrue(buckets, f"{fam}{labels}: no buckets")
        self.tc.assertIsNotNone(count, f"{fam}{labels}: no _count")
        self.tc.assertIsNotNone(total, f"{fam}{labels}: no _sum")
        return buckets, total, count

    def check_histogram(self, fam, **labels):
        buckets, total, count = self.histogram(fam, **labels)
        les = sorted(buckets, key=lambda x: float("inf") if x == "+Inf" else float(x))
        self.tc.assertEqual(les[-1], "+Inf", f"{fam}: no +Inf bucket")
        self.tc.assertEqual(float(les[0]), 0.0001, f"{fam}: first bucket")
        self.tc.assertEqual(float(les[-2]), 1.0, f"{fam}: last finite bucket")
        prev = 0
        for le in les:
            self.tc.assertGreaterEqual(buckets[le], prev, f"{fam}{labels}: buckets not cumulative at le={le}")
            prev = buckets[le]
        self.tc.assertEqual(count, buckets["+Inf"], f"{fam}{labels}: _count != +Inf bucket")
        self.tc.assertGreaterEqual(total, 0)
        return count


class ObservabilityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        w = h.make_workdir("wimsed-obs-")
        entries = [{"spiffe_id": AGENT, "selectors": [f"unix:uid:{h.UID}"],
                    "txn": {"allowed_scopes": ["calendar.read", "mail.send"],
                            "allowed_resources": [CAL], "max_ttl": "5m"}}]
        cls.xsock = os.path.join(w, "exchange.sock")
        cls.d = h.Daemon(workdir=w, entries=entries, metrics_listen=f"127.0.0.1:{cls.port}",
                         txn={"exchange_socket": cls.xsock, "dev_issuer": True})
        cls.d.extra_args = ["--log-format", "json"]
        cls.addClassCleanup(cls.d.kill)
        cls.d.start()
        cls.addClassCleanup(cls.d.stop)
        cls.url = f"http://127.0.0.1:{cls.port}"

    def scrape(self):
        code, ctype, body = http_get(self.url + "/metrics")
        self.assertEqual(code, 200, body)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        return Scrape(self, body)

    def rpc(self, s, method, code):
        return s.value("wimsed_rpc_requests", method=method, code=code)

    # ---- Workload API --------------------------------------------------------------
    def test_rpc_counts_by_method_and_status(self):
        s1 = self.scrape()
        for _ in range(3):
            h.fetch_jwt_svid(self.d.target, ["obs-test"])
        code = h.rpc_error_code(lambda: h.fetch_jwt_svid(self.d.target, ["obs-test"], metadata=()))
        self.assertEqual(code and code.name, "INVALID_ARGUMENT")
        denied = 0
        if IS_ROOT:
            req = h.pb.JWTSVIDRequest(audience=["obs-test"]).SerializeToString().hex()
            r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                "/usr/bin/python3", "-I", "-c", CHILD, self.d.socket, req],
                               capture_output=True, text=True, timeout=30, cwd="/")
            self.assertEqual(r.stdout.strip(), "PERMISSION_DENIED", r.stderr)
            denied = 1
        s2 = self.scrape()
        m = "FetchJWTSVID"
        self.assertEqual(self.rpc(s2, m, "OK") - self.rpc(s1, m, "OK"), 3)
        self.assertEqual(self.rpc(s2, m, "INVALID_ARGUMENT") - self.rpc(s1, m, "INVALID_ARGUMENT"), 1)
        self.assertEqual(self.rpc(s2, m, "PERMISSION_DENIED") - self.rpc(s1, m, "PERMISSION_DENIED"),
                         denied)
        c1 = s1.check_histogram("wimsed_rpc_duration_seconds", method=m)
        c2 = s2.check_histogram("wimsed_rpc_duration_seconds", method=m)
        self.assertEqual(c2 - c1, 4 + denied, "one latency observation per call")
        # every finished call is in exactly one (method, code) series
        total = sum(smp.value for smp in s2.family("wimsed_rpc_requests").samples
                    if smp.labels["method"] == m)
        self.assertEqual(total, c2)
        # the old all-methods counter agrees
        self.assertGreaterEqual(s2.value("wimsed_rpc_calls") - s1.value("wimsed_rpc_calls"), 4 + denied)
        for meth in ("FetchX509SVID", "FetchX509Bundles", "FetchJWTBundles", "ValidateJWTSVID",
                     "grpc.health.v1.Health/Check"):
            s2.check_histogram("wimsed_rpc_duration_seconds", method=meth)

    def test_stream_gauge_and_cancelled_status(self):
        s1 = self.scrape()
        m = "FetchX509SVID"
        with h.channel(self.d.target) as ch:
            call = h.x509_svid_stream(ch, timeout=10)
            next(call)
            s2 = self.scrape()
            self.assertEqual(s2.value("wimsed_rpc_streams_open", method=m)
                             - s1.value("wimsed_rpc_streams_open", method=m), 1)
            self.assertEqual(s2.value("wimsed_rpc_streams_open", method="FetchJWTBundles"),
                             s1.value("wimsed_rpc_streams_open", method="FetchJWTBundles"))
            # time to first message is observed while the stream is still open
            self.assertEqual(s2.check_histogram("wimsed_rpc_duration_seconds", method=m)
                             - s1.check_histogram("wimsed_rpc_duration_seconds", method=m), 1)
            call.cancel()
        deadline = time.monotonic() + 5
        while True:
            s3 = self.scrape()
            if s3.value("wimsed_rpc_streams_open", method=m) == s1.value("wimsed_rpc_streams_open", method=m):
                break
            self.assertLess(time.monotonic(), deadline, "stream gauge did not come down")
            time.sleep(0.05)
        self.assertEqual(self.rpc(s3, m, "CANCELLED") - self.rpc(s1, m, "CANCELLED"), 1)

    def test_attestation_histogram_and_cache(self):
        s1 = self.scrape()
        with h.channel(self.d.target) as ch:  # one connection, one process: the second call hits
            for _ in range(2):
                ch.unary_unary("/SpiffeWorkloadAPI/FetchJWTSVID")(
                    h.pb.JWTSVIDRequest(audience=["obs-cache"]).SerializeToString(),
                    metadata=h.HEADER, timeout=10)
        s2 = self.scrape()
        att = s2.value("wimsed_attestations") - s1.value("wimsed_attestations")
        self.assertEqual(att, 2)
        hits = s2.value("wimsed_attestation_cache_hits") - s1.value("wimsed_attestation_cache_hits")
        misses = s2.value("wimsed_attestation_cache_misses") - s1.value("wimsed_attestation_cache_misses")
        self.assertEqual(hits + misses, 2)
        self.assertGreaterEqual(hits, 1, "the same process attested twice must hit the cache")
        c1 = s1.check_histogram("wimsed_attestation_duration_seconds")
        c2 = s2.check_histogram("wimsed_attestation_duration_seconds")
        self.assertEqual(c2 - c1, 2)
        self.assertEqual(c2, s2.value("wimsed_attestations"))

    # ---- token service ---------------------------------------------------------------
    def exchange(self, subject_token, scope="calendar.read", stt="access_token"):
        return unix_post(self.xsock, "/token", [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("requested_token_type", TT + "txn_token"), ("audience", TD), ("scope", scope),
            ("subject_token", subject_token), ("subject_token_type", TT + stt), ("resource", CAL)])

    def test_token_issued_and_refused_by_reason(self):
        s1 = self.scrape()
        code, body = unix_post(self.xsock, "/dev/user-token", [("sub", "alice"),
                                                               ("scope", "calendar.read mail.send")])
        self.assertEqual(code, 200, body)
        ut = json.loads(body)["access_token"]
        code, body = self.exchange(ut)
        self.assertEqual(code, 200, body)
        txn = json.loads(body)["access_token"]
        code, body = self.exchange("not-a-jwt")
        self.assertEqual((code, json.loads(body)["error"]), (400, "invalid_request"), body)
        code, body = self.exchange(ut, scope="calendar.write")  # not granted by the user
        self.assertEqual((code, json.loads(body)["error"]), (400, "invalid_scope"), body)
        code, body = unix_post(self.xsock, "/introspect", [("token", txn)])
        self.assertEqual((code, json.loads(body)["active"]), (200, True), body)
        code, body = unix_post(self.xsock, "/introspect", [("token", "garbage")])
        self.assertEqual((code, json.loads(body)["active"]), (200, False), body)
        s2 = self.scrape()

        def d(fam, **labels):
            return s2.value(fam, **labels) - s1.value(fam, **labels)
        self.assertEqual(d("wimsed_txn_tokens_issued", grant="delegated"), 1)
        self.assertEqual(d("wimsed_txn_tokens_issued", grant="autonomous"), 0)
        self.assertEqual(d("wimsed_txn_refusals", endpoint="/token", error="invalid_request"), 1)
        self.assertEqual(d("wimsed_txn_refusals", endpoint="/token", error="invalid_scope"), 1)
        self.assertEqual(d("wimsed_txn_introspections", active="true"), 1)
        self.assertEqual(d("wimsed_txn_introspections", active="false"), 1)

    # ---- metrics_listen ------------------------------------------------------------
    def test_tcp_listener_serves_only_metrics(self):
        s = self.scrape()
        self.assertEqual(s.value("wimsed_ready"), 1)
        for path in ("/status", "/", "/revoke", "/token", "/metrics/", "/metricsx"):
            code, _, body = http_get(self.url + path)
            self.assertEqual(code, 404, f"{path}: {body}")
            self.assertNotIn("trust_domain", body)
        code, _, _ = http_get(self.url + "/metrics", method="POST")
        self.assertEqual(code, 405)

    # ---- logs ------------------------------------------------------------------------
    def log_records(self):
        with open(self.d.log_path, encoding="utf-8") as f:
            lines = [ln for ln in f.read().splitlines() if not ln.startswith("===== start")]
        recs = []
        for n, ln in enumerate(lines, 1):
            try:
                r = json.loads(ln)
            except ValueError as e:
                self.fail(f"log line {n} is not JSON ({e}): {ln!r}")
            self.assertIsInstance(r, dict, ln)
            self.assertEqual(set(r), {"ts", "level", "event", "msg"}, ln)
            self.assertIn(r["level"], ("debug", "info", "warn", "error"))
            self.assertNotIn("eyJ", ln, "a JWT (or JSON in base64url) reached the log")
            recs.append(r)
        self.assertTrue(any(r["event"] == "ready" for r in recs))
        return recs

    def test_zz_json_logs_one_line_per_refusal(self):
        # Runs last (name order): counts every refusal the other tests caused.
        s = self.scrape()
        recs = self.log_records()
        wl_refusals = sum(smp.value for smp in s.family("wimsed_rpc_requests").samples
                          if smp.labels["code"] not in ("OK", "CANCELLED", "UNIMPLEMENTED"))
        self.assertGreaterEqual(wl_refusals, 1)
        self.assertEqual(sum(1 for r in recs if r["event"] in WL_REFUSAL_EVENTS), wl_refusals,
                         "Workload API: one log line per refused call")
        txn_refusals = sum(smp.value for smp in s.family("wimsed_txn_refusals").samples)
        self.assertGreaterEqual(txn_refusals, 2)
        self.assertEqual(sum(1 for r in recs if r["event"] == "txn_refused"), txn_refusals,
                         "token service: one log line per refusal")
        for r in recs:
            if r["event"] == "txn_refused":
                self.assertRegex(r["msg"], r'error=\S+ reason="')


class StartupErrorsTest(unittest.TestCase):
    def run_wimsed(self, config_overrides, *args):
        d = h.Daemon(**config_overrides)
        with open(d.config_path, "w") as f:
            json.dump(d.config, f, indent=2)
        r = subprocess.run([h.WIMSED, "--config", d.config_path, *args], capture_output=True,
                           text=True, timeout=30, cwd=d.workdir)
        return d, r

    def test_bad_metrics_listen_refused(self):
        for bad in ("localhost:9464", "127.0.0.1:0", "127.0.0.1", "::1:9464", "[::1]:99999"):
            d, r = self.run_wimsed({"metrics_listen": bad})
            self.assertEqual(r.returncode, 2, f"{bad}: {r.stderr}")
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertIn(d.config_path + ":", r.stderr)
            self.assertIn('"metrics_listen" must be IPV4:PORT or [IPV6]:PORT', r.stderr)
            self.assertFalse(os.path.exists(d.socket), "nothing may start on a bad config")
        d, r = self.run_wimsed({"metrics_listen": "localhost:9464"}, "--check-config")
        self.assertEqual(r.returncode, 2, r.stderr)

    def test_bad_log_flags_refused(self):
        _, r = self.run_wimsed({}, "--log-format", "xml")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--log-format must be text or json", r.stderr)
        _, r = self.run_wimsed({}, "--log-level", "loud")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--log-level must be debug, info, warn or error", r.stderr)

    def test_flags_override_config(self):
        # config says json at debug; the flags say text at warn: no info line, no JSON.
        d = h.Daemon(log_format="json", log_level="debug")
        d.extra_args = ["--log-format", "text", "--log-level", "warn"]
        self.addCleanup(d.kill)
        d.start()
        h.fetch_jwt_svid(d.target, ["flags"])
        d.stop()
        with open(d.log_path, encoding="utf-8") as f:
            lines = [ln for ln in f.read().splitlines() if not ln.startswith("===== start")]
        for ln in lines:
            self.assertFalse(ln.startswith("{"), ln)
            self.assertNotRegex(ln, r"^\S+ (info|debug) ", ln)

    @unittest.skipUnless(ipv6_loopback(), "no IPv6 loopback")
    def test_ipv6_metrics_listen(self):
        port = free_port(socket.AF_INET6, "::1")
        d = h.Daemon(metrics_listen=f"[::1]:{port}")
        self.addCleanup(d.kill)
        d.start()
        self.addCleanup(d.stop)
        code, _, body = http_get(f"http://[::1]:{port}/metrics")
        self.assertEqual(code, 200)
        fams = {f.name for f in text_string_to_metric_families(body)}
        self.assertIn("wimsed_rpc_requests", fams)
        self.assertEqual(http_get(f"http://[::1]:{port}/status")[0], 404)


if __name__ == "__main__":
    h.main()
