"""Interop: live registration-entry changes through the admin socket (issue 5 item 2).

Two client processes hold FetchX509SVID streams (grpcio) under distinct identities: A runs
the system Python, B runs a hard link (or copy) of it at another path, so the daemon
attests them with different unix:path selectors.
- Creating an entry for B: B's stream gets a new full-state message within 100 ms of the
  API's answer; A's stream gets nothing. Deleting it: B gets the reduced state. Deleting
  B's last identity: B's stream ends with PERMISSION_DENIED.
- Entries survive a restart and kill -9.
- `wimsectl entry create|list|show|delete|import`.
- Hostile inputs: malformed JSON, unknown keys, duplicate names, a SPIFFE ID of another
  trust domain, a huge body, wrong content type, duplicates, config entries.
- A config entry removed from the file disappears on SIGHUP (and its stream ends).
"""
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wimsed_harness as h  # noqa: E402

PROPAGATION_MAX = 0.100  # seconds, from the API's answer to the stream message
UID = os.getuid()

# Holds one FetchX509SVID stream; prints one JSON line per message, and one at the end.
STREAM_CLIENT = r"""
import json, os, sys, time
sys.path.insert(0, os.environ["WIMSED_PYSTUBS"])
import grpc, workload_pb2 as pb
with grpc.insecure_channel(sys.argv[1]) as ch:
    rpc = ch.unary_stream("/SpiffeWorkloadAPI/FetchX509SVID",
                          request_serializer=pb.X509SVIDRequest.SerializeToString,
                          response_deserializer=pb.X509SVIDResponse.FromString)
    call = rpc(pb.X509SVIDRequest(), metadata=(("workload.spiffe.io", "true"),), timeout=300)
    try:
        for m in call:
            print(json.dumps({"t": time.monotonic(), "ids": [s.spiffe_id for s in m.svids]}),
                  flush=True)
        print(json.dumps({"t": time.monotonic(), "end": "OK"}), flush=True)
    except grpc.RpcError as e:
        print(json.dumps({"t": time.monotonic(), "error": e.code().name,
                          "details": e.details()}), flush=True)
"""


UnixHTTP = h.UnixHTTP


admin_socket = h.admin_socket


def admin(d, method, path, body=None, ctype="application/json"):
    """One admin request; returns (status, parsed JSON body or None, monotonic time of answer)."""
    c = UnixHTTP(admin_socket(d))
    headers = {}
    if body is not None:
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        headers["Content-Type"] = ctype
    try:
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        t = time.monotonic()
    finally:
        c.close()
    return r.status, (json.loads(data) if data else None), t


def alt_python(workdir):
    """A second path to the interpreter: another unix:path selector for the same code."""
    dst = os.path.join(workdir, "python-b")
    src = h.python_exe_path()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


class StreamClient:
    def __init__(self, exe, target):
        self.exe = exe
        self.q = queue.Queue()
        self.p = subprocess.Popen([exe, "-c", STREAM_CLIENT, target], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env=dict(os.environ, WIMSED_PYSTUBS=h.PYSTUBS))
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.q.put(json.loads(line))
        self.q.put(None)

    def next(self, timeout=5.0):
        try:
            m = self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.exe}: no stream message within {timeout} s")
        if m is None:
            raise AssertionError(f"{self.exe}: client exited: {self.p.stderr.read()[-2000:]}")
        return m

    def assert_quiet(self, seconds):
        try:
            m = self.q.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(f"{self.exe}: unexpected stream message {m}")

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(5)
        self.t.join(5)
        self.p.stdout.close()
        self.p.stderr.close()


def entry(path, exe):
    return {"spiffe_id": h.TD_ID + path, "selectors": [f"unix:uid:{UID}", "unix:path:" + exe]}


class LiveChanges(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = h.make_workdir("wimsed-entries-")
        cls.exe_a = h.python_exe_path()
        cls.exe_b = alt_python(cls.workdir)
        cls.d = h.start_daemon(cls, workdir=cls.workdir, entries=[entry("/a", cls.exe_a)],
                               log_level="info")

    def test_propagation(self):
        d = self.d
        a = StreamClient(self.exe_a, d.target)
        self.addCleanup(a.close)
        self.assertEqual(a.next()["ids"], [h.TD_ID + "/a"])

        st, e1, _ = admin(d, "POST", "/entries", entry("/b1", self.exe_b))
        self.assertEqual(st, 201, e1)
        self.assertEqual(e1["source"], "api")
        b = StreamClient(self.exe_b, d.target)
        self.addCleanup(b.close)
        self.assertEqual(b.next()["ids"], [h.TD_ID + "/b1"])

        lat = {}
        # An identity added to B: B gets the new full state at once; A nothing.
        t0 = time.monotonic()
        st, e2, t_resp = admin(d, "POST", "/entries", dict(entry("/b2", self.exe_b), hint="second"))
        self.assertEqual(st, 201, e2)
        m = b.next(timeout=2.0)
        self.assertEqual(m.get("ids"), [h.TD_ID + "/b1", h.TD_ID + "/b2"], m)
        lat["create"] = (m["t"] - t_resp, m["t"] - t0)
        self.assertLessEqual(m["t"] - t_resp, PROPAGATION_MAX, lat)

        # Removed again: the reduced state.
        t0 = time.monotonic()
        st, body, t_resp = admin(d, "DELETE", "/entries/" + e2["id"])
        self.assertEqual((st, body), (200, {"id": e2["id"], "deleted": True}))
        m = b.next(timeout=2.0)
        self.assertEqual(m.get("ids"), [h.TD_ID + "/b1"], m)
        lat["delete"] = (m["t"] - t_resp, m["t"] - t0)
        self.assertLessEqual(m["t"] - t_resp, PROPAGATION_MAX, lat)

        # B's last identity gone: its stream ends with PERMISSION_DENIED.
        t0 = time.monotonic()
        st, _, t_resp = admin(d, "DELETE", "/entries/" + e1["id"])
        self.assertEqual(st, 200)
        m = b.next(timeout=2.0)
        self.assertEqual(m.get("error"), "PERMISSION_DENIED", m)
        lat["last"] = (m["t"] - t_resp, m["t"] - t0)
        self.assertLessEqual(m["t"] - t_resp, PROPAGATION_MAX, lat)

        # A was never disturbed, and its stream is still open.
        a.assert_quiet(1.0)
        self.assertIsNone(a.p.poll())
        sys.stderr.write("propagation (after answer, after request) in ms: " + ", ".join(
            f"{k} {x * 1000:.1f}/{y * 1000:.1f}" for k, (x, y) in lat.items()) + "\n")

        # One log line per change.
        with open(d.log_path) as f:
            log = f.read()
        self.assertIn("entry_created id=" + e1["id"], log)
        self.assertIn("entry_deleted id=" + e2["id"], log)


class Persistence(unittest.TestCase):
    def test_restart_and_kill9(self):
        d = h.Daemon(entries=[{"spiffe_id": h.TD_ID + "/cfg", "selectors": [f"unix:uid:{UID}"]}])
        self.addCleanup(d.kill)
        d.start()
        st, e1, _ = admin(d, "POST", "/entries", entry("/persisted", h.python_exe_path()))
        self.assertEqual(st, 201, e1)
        d.stop()
        d.start()
        ids = [s.spiffe_id for s in h.fetch_x509_svid(d.target).svids]
        self.assertEqual(ids, [h.TD_ID + "/cfg", h.TD_ID + "/persisted"])
        st, e2, _ = admin(d, "POST", "/entries", entry("/after-kill", h.python_exe_path()))
        self.assertEqual(st, 201, e2)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(5)
        d.kill()
        d.start()
        st, body, _ = admin(d, "GET", "/entries")
        self.assertEqual(st, 200)
        got = [(e["spiffe_id"], e["source"]) for e in body["entries"]]
        self.assertEqual(got, [(h.TD_ID + "/cfg", "config"), (h.TD_ID + "/persisted", "api"),
                               (h.TD_ID + "/after-kill", "api")])
        self.assertEqual([e["id"] for e in body["entries"][1:]], [e1["id"], e2["id"]])
        ids = [s.spiffe_id for s in h.fetch_x509_svid(d.target).svids]
        self.assertEqual(ids, [h.TD_ID + "/cfg", h.TD_ID + "/persisted", h.TD_ID + "/after-kill"])
        d.stop()


class CliAndHostile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = h.start_daemon(cls, entries=[{"spiffe_id": h.TD_ID + "/cfg",
                                              "selectors": [f"unix:uid:{UID}"]}],
                               log_level="info")

    def ctl(self, *args):
        p = subprocess.run([h.WIMSECTL, "entry", *args, "--admin-socket", admin_socket(self.d)],
                           capture_output=True, text=True, timeout=20)
        return p.returncode, p.stdout, p.stderr

    def count(self):
        st, body, _ = admin(self.d, "GET", "/entries")
        self.assertEqual(st, 200)
        return len(body["entries"])

    def test_cli(self):
        rc, out, err = self.ctl("create", "--spiffe-id", h.TD_ID + "/cli", "--selector", "unix:uid:4242",
                                "--selector", "unix:gid:4242", "--hint", "h1", "--x509-svid-ttl", "600")
        self.assertEqual(rc, 0, err)
        e = json.loads(out)
        self.assertEqual((e["spiffe_id"], e["selectors"], e["hint"], e["x509_svid_ttl"], e["source"]),
                         (h.TD_ID + "/cli", ["unix:gid:4242", "unix:uid:4242"], "h1", 600, "api"))
        rc, out, err = self.ctl("list")
        self.assertEqual(rc, 0, err)
        line = [ln for ln in out.splitlines() if ln.startswith(e["id"])]
        self.assertEqual(len(line), 1, out)
        self.assertIn(h.TD_ID + "/cli", line[0])
        self.assertTrue(any(" config " in ln and h.TD_ID + "/cfg" in ln for ln in out.splitlines()), out)
        rc, out, err = self.ctl("show", e["id"])
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), e)
        # The same again: refused, one line.
        rc, out, err = self.ctl("create", "--spiffe-id", h.TD_ID + "/cli", "--selector", "unix:uid:4242",
                                "--selector", "unix:gid:4242")
        self.assertEqual(rc, 1)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("already exists", err)
        rc, out, err = self.ctl("delete", e["id"])
        self.assertEqual((rc, out.strip()), (0, "deleted " + e["id"]), err)
        rc, out, err = self.ctl("show", e["id"])
        self.assertEqual(rc, 1)
        self.assertIn("no entry with id", err)
        # import: an array file, then {"entries": [...]}.
        path = os.path.join(self.d.workdir, "import.json")
        with open(path, "w") as f:
            json.dump([{"spiffe_id": h.TD_ID + "/i1", "selectors": ["unix:uid:5001"]},
                       {"spiffe_id": h.TD_ID + "/i2", "selectors": ["unix:uid:5002"], "x509_svid_ttl": "5m"}], f)
        n = self.count()
        rc, out, err = self.ctl("import", path)
        self.assertEqual((rc, out.strip()), (0, "imported 2 entries"), err)
        self.assertEqual(self.count(), n + 2)
        with open(path, "w") as f:
            json.dump({"entries": [{"spiffe_id": h.TD_ID + "/i3", "selectors": ["unix:uid:5003"]}]}, f)
        rc, out, err = self.ctl("import", path)
        self.assertEqual((rc, out.strip()), (0, "imported 1 entries"), err)
        # A config entry cannot be deleted through the API.
        st, body, _ = admin(self.d, "GET", "/entries")
        cfg = [x for x in body["entries"] if x["source"] == "config"][0]
        rc, out, err = self.ctl("delete", cfg["id"])
        self.assertEqual(rc, 1)
        self.assertIn("managed by the config file", err)
        rc, out, err = self.ctl("frobnicate")
        self.assertEqual(rc, 2)
        rc, out, err = self.ctl("create", "--selector", "unix:uid:1")
        self.assertEqual(rc, 2)
        self.assertIn("--spiffe-id", err)

    def refused(self, status, fragment, method, path, body=None, ctype="application/json"):
        n = self.count()
        st, resp, _ = admin(self.d, method, path, body, ctype)
        self.assertEqual(st, status, resp)
        self.assertIn(fragment, resp["error_description"])
        self.assertEqual(self.count(), n)

    def test_hostile(self):
        ok = {"spiffe_id": h.TD_ID + "/h", "selectors": ["unix:uid:6000"]}
        self.refused(400, "not valid JSON", "POST", "/entries", "{\"spiffe_id\": ")
        self.refused(400, "unknown key 'ttl'", "POST", "/entries", dict(ok, ttl=5))
        self.refused(400, "not valid JSON", "POST", "/entries",
                     '{"spiffe_id": "spiffe://example.org/h", "spiffe_id": "spiffe://example.org/x",'
                     ' "selectors": ["unix:uid:6000"]}')  # duplicate names
        self.refused(400, "trust domain", "POST", "/entries",
                     {"spiffe_id": "spiffe://evil.example/h", "selectors": ["unix:uid:6000"]})
        self.refused(400, "selectors[0]", "POST", "/entries", dict(ok, selectors=["k8s:ns:x"]))
        self.refused(400, "non-empty array", "POST", "/entries", dict(ok, selectors=[]))
        self.refused(400, "must be an object", "POST", "/entries", [ok])
        self.refused(415, "application/json", "POST", "/entries", json.dumps(ok), "text/plain")
        self.refused(413, "larger than", "POST", "/entries",
                     dict(ok, hint="x" * (100 * 1024)))
        self.refused(400, "nested deeper", "POST", "/entries", "[" * 100 + "]" * 100)
        # Beyond the admin socket's body limit: the HTTP layer's 413.
        self.refused(413, "too large", "POST", "/entries/import", "[" + " " * (2 * 1024 * 1024) + "]")
        self.refused(404, "no such entry", "GET", "/entries/../../etc")
        self.refused(404, "no entry with id", "DELETE", "/entries/" + "0" * 32)
        self.refused(405, "use GET, DELETE", "PUT", "/entries/" + "0" * 32, "{}")
        # Duplicate: 409.
        st, e, _ = admin(self.d, "POST", "/entries", ok)
        self.assertEqual(st, 201, e)
        self.refused(409, "already exists", "POST", "/entries", dict(ok, hint="other"))
        # Import is all or nothing, and names the bad entry.
        self.refused(400, "entries[1]: unknown key", "POST", "/entries/import",
                     [{"spiffe_id": h.TD_ID + "/j1", "selectors": ["unix:uid:7001"]},
                      {"spiffe_id": h.TD_ID + "/j2", "selectors": ["unix:uid:7002"], "bad": 1}])
        self.refused(409, "already exists", "POST", "/entries/import",
                     {"entries": [{"spiffe_id": h.TD_ID + "/j1", "selectors": ["unix:uid:7001"]}, ok]})
        self.refused(400, "unknown key 'items'", "POST", "/entries/import", {"items": []})
        with open(self.d.log_path) as f:
            log = f.read()
        self.assertIn("entry_refused method=POST path=/entries status=400", log)
        self.assertIn("entry_refused method=POST path=/entries status=409", log)


class Reload(unittest.TestCase):
    def test_sighup_removes_config_entry(self):
        workdir = h.make_workdir("wimsed-entries-")
        exe_b = alt_python(workdir)
        keep = {"spiffe_id": h.TD_ID + "/keep", "selectors": [f"unix:uid:{UID}"]}
        doomed = entry("/doomed", exe_b)
        d = h.Daemon(workdir=workdir, entries=[keep, doomed], log_level="info")
        self.addCleanup(d.kill)
        d.start()
        st, api, _ = admin(d, "POST", "/entries", {"spiffe_id": h.TD_ID + "/api", "selectors": ["unix:uid:8000"]})
        self.assertEqual(st, 201, api)
        b = StreamClient(exe_b, d.target)
        self.addCleanup(b.close)
        self.assertEqual(b.next()["ids"], [h.TD_ID + "/keep", h.TD_ID + "/doomed"])

        d.config["entries"] = [keep]
        with open(d.config_path, "w") as f:
            json.dump(d.config, f)
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGHUP)
        m = b.next(timeout=3.0)
        self.assertEqual(m.get("ids"), [h.TD_ID + "/keep"], m)
        sys.stderr.write(f"SIGHUP to stream update: {(m['t'] - t0) * 1000:.1f} ms\n")
        st, body, _ = admin(d, "GET", "/entries")
        self.assertEqual([(e["spiffe_id"], e["source"]) for e in body["entries"]],
                         [(h.TD_ID + "/keep", "config"), (h.TD_ID + "/api", "api")])
        # A bad file is refused and the running entries are kept.
        with open(d.config_path, "w") as f:
            f.write("{")
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        st, body2, _ = admin(d, "GET", "/entries")
        self.assertEqual(body2, body)
        d.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
