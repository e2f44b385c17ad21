#!/usr/bin/env python3
"""Interop: the admin socket's GET /metrics (Prometheus text 0.0.4) and GET /status, and
`wimsectl status`, against the real daemon.

The exposition is read with curl --unix-socket (as an operator or a node exporter's
textfile collector would) and checked by a strict parser written here; when Debian's
python3-prometheus-client is installed its parser must accept it too.
"""

import datetime
import json
import os
import re
import shutil
import stat
import subprocess
import unittest

import wimsed_harness as h

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # optional cross-check
    text_string_to_metric_families = None

IS_ROOT = os.geteuid() == 0

EXPECTED = {
    "wimsed_connections_accepted_total": "counter",
    "wimsed_connections_refused_total": "counter",
    "wimsed_connections_open": "gauge",
    "wimsed_rpc_calls_total": "counter",
    "wimsed_streams_open": "gauge",
    "wimsed_attestations_total": "counter",
    "wimsed_attestation_cache_hits_total": "counter",
    "wimsed_attestation_cache_misses_total": "counter",
    "wimsed_attestation_duration_seconds": "histogram",
    "wimsed_rpc_requests_total": "counter",
    "wimsed_rpc_duration_seconds": "histogram",
    "wimsed_rpc_streams_open": "gauge",
    "wimsed_txn_tokens_issued_total": "counter",
    "wimsed_txn_refusals_total": "counter",
    "wimsed_txn_introspections_total": "counter",
    "wimsed_txn_revocations_total": "counter",
    "wimsed_txn_verified_cache_hits_total": "counter",
    "wimsed_txn_verified_cache_misses_total": "counter",
    "wimsed_rotations_total": "counter",
    "wimsed_executable_hashes_total": "counter",
    "wimsed_x509_svids_minted_total": "counter",
    "wimsed_x509_cache_hits_total": "counter",
    "wimsed_jwt_cache_hits_total": "counter",
    "wimsed_jwt_cache_misses_total": "counter",
    "wimsed_jwt_validation_cache_hits_total": "counter",
    "wimsed_jwt_validation_cache_misses_total": "counter",
    "wimsed_revocations": "gauge",
    "wimsed_revocations_unpersisted": "gauge",
    "wimsed_build_info": "gauge",
    "wimsed_ready": "gauge",
    "process_start_time_seconds": "gauge",
}

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE_RE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?,?\}})? (\S+)(?: (-?\d+))?$")
HELP_RE = re.compile(rf"^# HELP ({NAME}) (.*)$")
TYPE_RE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")
VALUE_RE = re.compile(r"^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$")


LABEL_NAME_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="')


def family_of(name, types):
    """The family a sample belongs to: itself, or a histogram whose _bucket/_sum/_count it is."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
            return name[:-len(suffix)]
    return name


def check_histogram(tc, fam, own):
    """Every series: `le` buckets ascending and cumulative, ending in +Inf, and
    _count equal to the +Inf bucket; a _sum per series."""
    series = {}
    for (name, labels), v in own.items():
        rest = tuple(lb for lb in labels if not lb.startswith("le="))
        ent = series.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if name == fam + "_bucket":
            le = [lb for lb in labels if lb.startswith("le=")]
            tc.assertEqual(len(le), 1, f"{name}{labels}: needs one le label")
            le = le[0][4:-1]
            ent["buckets"].append((float("inf") if le == "+Inf" else float(le), v))
        elif name == fam + "_sum":
            ent["sum"] = v
        elif name == fam + "_count":
            ent["count"] = v
    for rest, ent in series.items():
        b = sorted(ent["buckets"])
        tc.assertTrue(b and b[-1][0] == float("inf"), f"{fam}{rest}: no +Inf bucket")
        for (_, lo), (_, hi) in zip(b, b[1:]):
            tc.assertLessEqual(lo, hi, f"{fam}{rest}: buckets not cumulative")
        tc.assertIsNotNone(ent["sum"], f"{fam}{rest}: no _sum")
        tc.assertEqual(ent["count"], b[-1][1], f"{fam}{rest}: _count != +Inf bucket")


def parse_exposition(tc, text):
    """Strict parse of the text format 0.0.4; returns {(name, labels-tuple): float} and
    {family: type}.  Fails the test on any deviation."""
    tc.assertTrue(text.endswith("\n"), "exposition must end with a newline")
    helps, types, samples = {}, {}, {}
    for n, line in enumerate(text[:-1].split("\n"), 1):
        tc.assertTrue(line, f"line {n}: empty line")
        if line.startswith("#"):
            m = HELP_RE.match(line)
            if m:
                tc.assertNotIn(m.group(1), helps, f"line {n}: second HELP for {m.group(1)}")
                tc.assertTrue(m.group(2).strip(), f"line {n}: empty HELP")
                helps[m.group(1)] = m.group(2)
                continue
            m = TYPE_RE.match(line)
            tc.assertIsNotNone(m, f"line {n}: neither HELP nor valid TYPE: {line!r}")
            tc.assertNotIn(m.group(1), types, f"line {n}: second TYPE for {m.group(1)}")
            tc.assertFalse(any(k[0] == m.group(1) for k in samples),
                           f"line {n}: TYPE after samples of {m.group(1)}")
            types[m.group(1)] = m.group(2)
            continue
        m = SAMPLE_RE.match(line)
        tc.assertIsNotNone(m, f"line {n}: not `name{{labels}} value`: {line!r}")
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        tc.assertRegex(value, VALUE_RE, f"line {n}: bad value")
        fam = family_of(name, types)
        tc.assertIn(fam, types, f"line {n}: sample {name} before/without its TYPE")
        tc.assertIn(fam, helps, f"line {n}: sample {name} without HELP")
        if fam != name:
            tc.assertEqual(types[fam], "histogram", f"line {n}: {name} is not a histogram sample")
        tc.assertEqual(len(LABEL_NAME_RE.findall(labels)), len(set(LABEL_NAME_RE.findall(labels))),
                       f"line {n}: repeated label name")
        key = (name, tuple(re.findall(LABEL, labels)))
        tc.assertNotIn(key, samples, f"line {n}: duplicate sample {key}")
        samples[key] = float(value)
    for fam, typ in types.items():
        tc.assertIn(fam, helps, f"{fam}: TYPE without HELP")
        own = {k: v for k, v in samples.items() if family_of(k[0], types) == fam}
        tc.assertTrue(own, f"{fam}: no sample")
        if typ == "counter":
            tc.assertTrue(fam.endswith("_total"), f"counter {fam} must end in _total")
            for k, v in own.items():
                tc.assertGreaterEqual(v, 0, f"{k}: negative counter")
        if typ == "histogram":
            check_histogram(tc, fam, own)
    for fam in helps:
        tc.assertIn(fam, types, f"{fam}: HELP without TYPE")
    return samples, types


def curl(sock, path, method="GET", uid=None):
    """(exit code, http code, content type, body) of one request on the admin socket."""
    args = ["curl", "-sS", "--max-time", "10", "--unix-socket", sock, "-X", method,
            "-w", "\n%{http_code} %{content_type}", "http://localhost" + path]
    if uid is not None:
        args = ["setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups"] + args
    r = subprocess.run(args, capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        return r.returncode, 0, "", r.stderr
    body, _, tail = r.stdout.rpartition("\n")
    code, _, ctype = tail.partition(" ")
    return 0, int(code), ctype, body


def run_ctl(*args, env_extra=None):
    env = dict(os.environ)
    env.pop("WIMSED_ADMIN_SOCKET", None)
    env.update(env_extra or {})
    return subprocess.run([h.WIMSECTL, *args], capture_output=True, text=True, timeout=30, env=env)


@unittest.skipUnless(shutil.which("curl"), "curl not installed")
class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = h.start_daemon(cls)
        cls.admin = os.path.join(os.path.dirname(cls.d.socket), "admin.sock")

    def scrape(self):
        rc, code, ctype, body = curl(self.admin, "/metrics")
        self.assertEqual(rc, 0, body)
        self.assertEqual(code, 200, body)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        samples, types = parse_exposition(self, body)
        if text_string_to_metric_families is not None:
            fams = list(text_string_to_metric_families(body))
            self.assertGreaterEqual(len(fams), len(EXPECTED))
        return samples, types

    def workload_calls(self):
        h.fetch_x509_svid(self.d.target)
        h.fetch_jwt_bundles(self.d.target)
        h.fetch_jwt_svid(self.d.target, ["metrics-test"])
        h.fetch_jwt_svid(self.d.target, ["metrics-test"])  # second one from the cache

    def test_metrics_parse_and_counters_increase(self):
        self.workload_calls()
        s1, types = self.scrape()
        for name, typ in EXPECTED.items():
            self.assertEqual(types.get(name), typ, name)
        self.assertEqual(s1[("wimsed_build_info", ('version="0.1.0"',))], 1)
        self.assertEqual(s1[("wimsed_ready", ())], 1)
        self.assertGreaterEqual(s1[("wimsed_x509_svids_minted_total", ())], 1)
        self.assertGreaterEqual(s1[("wimsed_jwt_cache_hits_total", ())], 1)
        self.assertGreaterEqual(s1[("wimsed_jwt_cache_misses_total", ())], 1)
        self.assertGreaterEqual(s1[("wimsed_rpc_calls_total", ())], 4)
        self.assertGreaterEqual(s1[("wimsed_attestations_total", ())], 1)
        self.assertEqual(s1[("wimsed_revocations", ())], 0)
        self.assertEqual(s1[("wimsed_revocations_unpersisted", ())], 0)
        now = datetime.datetime.now(datetime.timezone.utc).timestamp()
        self.assertLess(abs(s1[("process_start_time_seconds", ())] - now), 600)

        self.workload_calls()
        s2, _ = self.scrape()
        for key, v in s1.items():
            if types[family_of(key[0], types)] == "counter" or key[0].endswith(("_bucket", "_count")):
                self.assertGreaterEqual(s2.get(key, 0), v, f"{key} went down")
        jwt_ok = ("wimsed_rpc_requests_total", ('method="FetchJWTSVID"', 'code="OK"'))
        self.assertEqual(s2[jwt_ok] - s1[jwt_ok], 2, "two FetchJWTSVID calls between the scrapes")
        for name in ("wimsed_rpc_calls_total", "wimsed_connections_accepted_total",
                     "wimsed_attestations_total", "wimsed_jwt_cache_hits_total"):
            self.assertGreater(s2[(name, ())], s1[(name, ())], f"{name} did not increase")

    def test_open_stream_is_a_gauge(self):
        with h.channel(self.d.target) as ch:
            call = h.x509_svid_stream(ch, timeout=10)
            next(call)
            try:
                s, _ = self.scrape()
                self.assertGreaterEqual(s[("wimsed_streams_open", ())], 1)
                self.assertGreaterEqual(s[("wimsed_connections_open", ())], 1)
            finally:
                call.cancel()

    def test_admin_socket_is_owner_only(self):
        st = os.stat(self.admin)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, os.geteuid())

    @unittest.skipUnless(IS_ROOT and shutil.which("setpriv"), "needs root to run as uid 65534")
    def test_other_uid_cannot_connect(self):
        # The workload socket in the same directory is reachable by that uid...
        self.assertTrue(os.access(os.path.dirname(self.admin), os.X_OK))
        rc, code, _, err = curl(self.admin, "/metrics", uid=65534)
        # ...the admin socket is not: connect(2) fails (curl exit 7), no HTTP at all.
        self.assertEqual(rc, 7, f"uid 65534 reached the admin socket: HTTP {code} {err}")

    def test_unknown_path_and_method(self):
        self.assertEqual(curl(self.admin, "/nope")[1], 404)
        self.assertEqual(curl(self.admin, "/metrics", method="POST")[1], 405)

    def test_status_json(self):
        rc, code, ctype, body = curl(self.admin, "/status")
        self.assertEqual((rc, code), (0, 200), body)
        self.assertTrue(ctype.startswith("application/json"), ctype)
        j = json.loads(body)
        self.assertEqual(j["trust_domain"], h.TRUST_DOMAIN)
        self.assertEqual(j["health"], "SERVING")
        self.assertEqual(j["entries"], len(h.default_entries()))
        self.assertEqual(j["revocations"], 0)
        na = datetime.datetime.strptime(j["ca_not_after"], "%Y-%m-%dT%H:%M:%SZ")
        self.assertEqual(int(na.replace(tzinfo=datetime.timezone.utc).timestamp()),
                         j["ca_not_after_unix"])
        bundles = h.fetch_jwt_bundles(self.d.target)
        jwks = json.loads(bundles.bundles[h.TD_ID])
        self.assertIn(j["jwt_kid"], [k["kid"] for k in jwks["keys"]])
        for k in ("open", "accepted", "refused"):
            self.assertIsInstance(j["connections"][k], int)

    def test_wimsectl_status(self):
        for args, env in ((["status", "--admin-socket", self.admin], None),
                          (["status"], {"WIMSED_ADMIN_SOCKET": self.admin})):
            r = run_ctl(*args, env_extra=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = r.stdout
            for field in ("trust domain:", "CA expires:", "next CA:", "JWT key kid:", "next JWT key:",
                          "entries:", "streams open:", "connections:", "revocations:", "health:"):
                self.assertIn(field, out)
            # A fresh daemon with the default schedules has no successor published yet.
            self.assertRegex(out, r"next CA:\s+none")
            self.assertIn(h.TRUST_DOMAIN, out)
            self.assertRegex(out, r"health:\s+SERVING")
            self.assertRegex(out, rf"entries:\s+{len(h.default_entries())}\n")

    def test_wimsectl_status_unreachable(self):
        r = run_ctl("status", "--admin-socket", os.path.join(self.d.workdir, "missing.sock"))
        self.assertEqual(r.returncode, 1)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertEqual(r.stdout, "")


class AdminSocketLifecycleTest(unittest.TestCase):
    def test_removed_on_sigterm(self):
        d = h.Daemon()
        self.addCleanup(d.kill)
        d.start()
        admin = os.path.join(os.path.dirname(d.socket), "admin.sock")
        self.assertTrue(os.path.exists(admin))
        d.stop()
        self.assertFalse(os.path.exists(admin), "admin socket left behind after SIGTERM")


if __name__ == "__main__":
    h.main()
