"""Shared harness for the wimsed interop tests (Python side).

Starts the real daemon on a private temporary socket, waits until it answers
grpc.health.v1.Health/Check with SERVING, and stops it with SIGTERM (exit code must
be 0). The Workload API is driven with grpcio's generic multicallables and stubs that
protoc generated at build time (see interop.cmake); nothing here links our own code.

Environment (set by ctest, see interop.cmake; defaults fit a manual run after
`cmake -S . -B build-interop && cmake --build build-interop`):
  WIMSED, WIMSECTL   paths of the binaries
  WIMSED_PYSTUBS     directory holding workload_pb2.py and health_pb2.py
  WIMSED_REPO        repository root
"""

import atexit
import datetime
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

# gRPC's fork handlers are useless here (children exec at once) and noisy.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

REPO = os.environ.get("WIMSED_REPO") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
_BUILD = os.path.join(REPO, "build-interop")
WIMSED = os.environ.get("WIMSED") or os.path.join(_BUILD, "wimsed")
WIMSECTL = os.environ.get("WIMSECTL") or os.path.join(_BUILD, "wimsectl")
PYSTUBS = os.environ.get("WIMSED_PYSTUBS") or os.path.join(_BUILD, "interop", "pystubs")

try:
    import grpc  # noqa: E402
except ImportError as e:  # pragma: no cover - environment problem
    sys.exit(f"interop: cannot import grpc ({e}); run with /usr/bin/python3 and "
             "install python3-grpcio (scripts/install-deps)")

if not os.path.isfile(os.path.join(PYSTUBS, "workload_pb2.py")):
    sys.exit(f"interop: generated stubs not found in {PYSTUBS}; build the project first "
             "(cmake --build <builddir>) or set WIMSED_PYSTUBS")
sys.path.insert(0, PYSTUBS)
import workload_pb2 as pb  # noqa: E402
import health_pb2  # noqa: E402

TRUST_DOMAIN = "example.org"
TD_ID = "spiffe://" + TRUST_DOMAIN
HEADER = (("workload.spiffe.io", "true"),)
UID = os.getuid()

# Expected TTLs of the default config below.
TTL_DEFAULT = datetime.timedelta(hours=1)
TTL_UID_ENTRY = datetime.timedelta(minutes=30)

_WORKDIRS = []   # every temp dir made by this process: logs are printed from here on failure
_DAEMONS = []    # every daemon started: killed at exit whatever happens


def python_exe_path():
    """What the daemon reads from /proc/<our pid>/exe (e.g. /usr/bin/python3.11)."""
    return os.path.realpath(sys.executable)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def node_exe_sha256():
    node = shutil.which("node") or "/bin/true"
    return sha256_file(os.path.realpath(node))


def default_entries(uid=UID):
    """The entries of the contract's sample config, for the calling uid.

    A Python test process matches the first two (uid template, then py); it does not
    match the node entry (sha256 of the node binary).
    """
    return [
        {"spiffe_id": TD_ID + "/uid/{unix:uid}", "selectors": [f"unix:uid:{uid}"],
         "hint": "dev", "x509_svid_ttl": "30m"},
        {"spiffe_id": TD_ID + "/py",
         "selectors": [f"unix:uid:{uid}", "unix:path:" + python_exe_path()]},
        {"spiffe_id": TD_ID + "/node",
         "selectors": [f"unix:uid:{uid}", "unix:sha256:" + node_exe_sha256()]},
    ]


def daemon_env(**extra):
    """This process's environment without a service manager's variables (a test daemon
    must not notify whatever started the test run), plus `extra` (a None value removes
    the variable)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")}
    for k, v in extra.items():  # None: removed
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def bogus_library_dir(soname):
    """A directory holding an empty file named `soname`: with it first on
    LD_LIBRARY_PATH, dlopen(soname) fails as it would on a node without the library."""
    d = make_workdir("wimsed-nolib-")
    open(os.path.join(d, soname), "wb").close()
    return d


def make_workdir(prefix="wimsed-interop-"):
    """A fresh temp dir, mode 0755 so that another uid can reach the socket in it."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    _WORKDIRS.append(d)
    return d


class Daemon:
    """One wimsed process with its own config, data dir, socket and log file."""

    READY_TIMEOUT = 10.0
    STOP_TIMEOUT = 10.0

    def __init__(self, workdir=None, entries=None, data_dir=None, **overrides):
        self.workdir = workdir or make_workdir()
        self.socket = os.path.join(self.workdir, "workload.sock")
        self.data_dir = data_dir or os.path.join(self.workdir, "data")
        self.config_path = os.path.join(self.workdir, "wimsed.json")
        self.log_path = os.path.join(self.workdir, "wimsed.log")
        self.config = {
            "trust_domain": TRUST_DOMAIN,
            "data_dir": self.data_dir,
            "workload_socket": self.socket,
            "log_level": "debug",
            "x509_svid_ttl": "1h",
            "ca": {"ttl": "8760h"},
            "entries": default_entries() if entries is None else entries,
        }
        self.config.update(overrides)
        self.extra_args = []  # appended to the wimsed command line
        self.wrapper = []     # prepended (must exec, keeping the pid: e.g. unshare -m ...)
        self.env = {}         # added to daemon_env() for the daemon
        self.proc = None
        self._log = None
        self.starts = 0

    @property
    def target(self):
        return "unix:" + self.socket

    @property
    def endpoint(self):
        """The SPIFFE_ENDPOINT_SOCKET form."""
        return "unix://" + self.socket

    @property
    def pid(self):
        return self.proc.pid

    def write_config(self):
        with open(self.config_path, "w") as f:
            json.dump(self.config, f, indent=2)

    def run_to_exit(self, env, timeout=20):
        """Runs the daemon on its config to its exit (for starts that must fail)."""
        self.write_config()
        return subprocess.run([WIMSED, "--config", self.config_path], cwd=self.workdir,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              env=env, timeout=timeout)

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "daemon already running"
        if not os.access(WIMSED, os.X_OK):
            raise AssertionError(f"wimsed binary not found or not executable: {WIMSED} "
                                 "(build it first, or set WIMSED)")
        self.write_config()
        self.starts += 1
        self._log = open(self.log_path, "ab")
        self._log.write(f"===== start #{self.starts} =====\n".encode())
        self._log.flush()
        # setpriv --pdeathsig: the daemon gets SIGTERM if this test process dies (e.g. a
        # ctest TIMEOUT kill), so no daemon outlives its test.
        self.proc = subprocess.Popen(
            [*self.wrapper, "setpriv", "--pdeathsig", "TERM", WIMSED, "--config", self.config_path,
             *self.extra_args],
            cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            env=daemon_env(**self.env))
        _DAEMONS.append(self)
        self.wait_ready()
        return self

    def wait_ready(self):
        deadline = time.monotonic() + self.READY_TIMEOUT
        last = "socket not created"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError(
                    f"wimsed exited with code {rc} during startup\n{self.log_tail()}")
            if os.path.exists(self.socket):
                try:
                    status = health_check(self.target, timeout=1.0)
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return
                    last = "health status " + health_pb2.HealthCheckResponse.ServingStatus.Name(status)
                except grpc.RpcError as e:
                    last = f"health check: {e.code().name} {e.details()}"
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"wimsed not SERVING within {self.READY_TIMEOUT} s ({last})\n"
                             f"{self.log_tail()}")

    def stop(self):
        """SIGTERM; the daemon must exit 0 within STOP_TIMEOUT."""
        if self.proc is None:
            return
        rc = self.proc.poll()
        if rc is not None:
            self._close_log()
            raise AssertionError(
                f"wimsed had already exited (code {rc}) before SIGTERM\n{self.log_tail()}")
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(self.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"wimsed did not exit within {self.STOP_TIMEOUT} s of SIGTERM\n{self.log_tail()}")
        self._close_log()
        if rc != 0:
            raise AssertionError(f"wimsed exited with code {rc} after SIGTERM (want 0)\n"
                                 f"{self.log_tail()}")

    def kill(self):
        """Unconditional cleanup, never raises."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._close_log()

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines=80):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace").splitlines()
        except OSError as e:
            return f"(no daemon log: {e})"
        return (f"--- last {min(lines, len(text))} lines of {self.log_path} ---\n"
                + "\n".join(text[-lines:]) + "\n--- end of daemon log ---")

    # ---- /proc probes for the robustness test ------------------------------------
    def environ(self):
        """The environment block the running process was exec'd with (/proc/<pid>/environ),
        raw: NUL-separated, with a NUL put in front so every entry is framed by NULs."""
        with open(f"/proc/{self.pid}/environ", "rb") as f:
            return b"\0" + f.read()

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def mapped_libraries(self):
        """Basenames of the shared objects mapped into the daemon (/proc/<pid>/maps)."""
        libs = set()
        with open(f"/proc/{self.pid}/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and ".so" in parts[5]:
                    libs.add(os.path.basename(parts[5].strip()))
        return libs

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc/<pid>/status")


@atexit.register
def _kill_leftovers():
    for d in _DAEMONS:
        d.kill()


def start_daemon(testcase_cls, **kw):
    """Start a daemon for a TestCase class; it is stopped (and checked) at class cleanup,
    killed in any case."""
    d = Daemon(**kw)
    testcase_cls.addClassCleanup(d.kill)
    d.start()
    testcase_cls.addClassCleanup(d.stop)
    return d


# ---- HTTP over a Unix socket (admin socket, exchange socket) ------------------------
class UnixHTTP(http.client.HTTPConnection):
    """http.client over AF_UNIX."""

    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def admin_socket(d):
    """The admin socket beside a daemon's workload socket."""
    return os.path.join(os.path.dirname(d.socket), "admin.sock")


def get_json(sock, path):
    """GET path over a Unix socket; the JSON body of a 200 answer."""
    c = UnixHTTP(sock)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        assert r.status == 200, (path, r.status, body[:200])
        return json.loads(body)
    finally:
        c.close()


def metrics_text(d):
    """The daemon's /metrics exposition, from its admin socket."""
    c = UnixHTTP(admin_socket(d))
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        body = r.read().decode()
        assert r.status == 200, ("/metrics", r.status, body[:200])
        return body
    finally:
        c.close()


# ---- gRPC helpers ----------------------------------------------------------------
def channel(target):
    return grpc.insecure_channel(target)


def health_check(target, timeout=2.0, service=""):
    with channel(target) as ch:
        check = ch.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString)
        return check(health_pb2.HealthCheckRequest(service=service), timeout=timeout).status


def x509_svid_stream(ch, metadata=HEADER, timeout=10.0):
    """Start FetchX509SVID; returns the call (an iterator of X509SVIDResponse)."""
    rpc = ch.unary_stream("/SpiffeWorkloadAPI/FetchX509SVID",
                          request_serializer=pb.X509SVIDRequest.SerializeToString,
                          response_deserializer=pb.X509SVIDResponse.FromString)
    return rpc(pb.X509SVIDRequest(), metadata=metadata, timeout=timeout)


def x509_bundles_stream(ch, metadata=HEADER, timeout=10.0):
    rpc = ch.unary_stream("/SpiffeWorkloadAPI/FetchX509Bundles",
                          request_serializer=pb.X509BundlesRequest.SerializeToString,
                          response_deserializer=pb.X509BundlesResponse.FromString)
    return rpc(pb.X509BundlesRequest(), metadata=metadata, timeout=timeout)


def first_message(call):
    """First message of a server stream, then cancel the stream."""
    try:
        return next(call)
    finally:
        call.cancel()


def fetch_x509_svid(target, metadata=HEADER, timeout=10.0):
    with channel(target) as ch:
        return first_message(x509_svid_stream(ch, metadata, timeout))


def fetch_x509_bundles(target, metadata=HEADER, timeout=10.0):
    with channel(target) as ch:
        return first_message(x509_bundles_stream(ch, metadata, timeout))


def jwt_bundles_stream(ch, metadata=HEADER, timeout=10.0):
    rpc = ch.unary_stream("/SpiffeWorkloadAPI/FetchJWTBundles",
                          request_serializer=pb.JWTBundlesRequest.SerializeToString,
                          response_deserializer=pb.JWTBundlesResponse.FromString)
    return rpc(pb.JWTBundlesRequest(), metadata=metadata, timeout=timeout)


def fetch_jwt_bundles(target, metadata=HEADER, timeout=10.0):
    with channel(target) as ch:
        return first_message(jwt_bundles_stream(ch, metadata, timeout))


def fetch_jwt_svid(target, audience, spiffe_id="", metadata=HEADER, timeout=10.0):
    with channel(target) as ch:
        rpc = ch.unary_unary("/SpiffeWorkloadAPI/FetchJWTSVID",
                             request_serializer=pb.JWTSVIDRequest.SerializeToString,
                             response_deserializer=pb.JWTSVIDResponse.FromString)
        return rpc(pb.JWTSVIDRequest(audience=list(audience), spiffe_id=spiffe_id),
                   metadata=metadata, timeout=timeout)


def validate_jwt_svid(target, audience, svid, metadata=HEADER, timeout=10.0):
    with channel(target) as ch:
        rpc = ch.unary_unary("/SpiffeWorkloadAPI/ValidateJWTSVID",
                             request_serializer=pb.ValidateJWTSVIDRequest.SerializeToString,
                             response_deserializer=pb.ValidateJWTSVIDResponse.FromString)
        return rpc(pb.ValidateJWTSVIDRequest(audience=audience, svid=svid),
                   metadata=metadata, timeout=timeout)


def assert_first_promptly_then_open(tc, target, start_stream, name, first_within=2.0, hold=3.0):
    """The first message of a server stream arrives within first_within seconds, and the
    stream then stays open: the next recv ends by our own deadline (hold), not by the
    server ending the stream or sending an unprompted second message."""
    with channel(target) as ch:
        t0 = time.monotonic()
        call = start_stream(ch, timeout=hold)
        try:
            next(call)
        except grpc.RpcError as e:
            tc.fail(f"{name}: no first message: {e.code().name} {e.details()}")
        elapsed = time.monotonic() - t0
        tc.assertLess(elapsed, first_within, f"{name}: first message took {elapsed:.2f} s")
        try:
            msg = next(call)
            tc.fail(f"{name}: unexpected second message without any change: {msg}")
        except StopIteration:
            tc.fail(f"{name}: server ended the stream (OK status) instead of keeping it open")
        except grpc.RpcError as e:
            tc.assertEqual(e.code(), grpc.StatusCode.DEADLINE_EXCEEDED,
                           f"{name}: stream ended with {e.code().name}: {e.details()}")


def rpc_error_code(fn):
    """Run fn; return the grpc.StatusCode it failed with (or None if it succeeded)."""
    try:
        fn()
    except grpc.RpcError as e:
        return e.code()
    return None


def describe_rpc_error(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return f"{e.code().name}: {e.details()}"
    return "OK"


# ---- test runner -------------------------------------------------------------------
def main():
    """unittest.main() that, on failure, prints the daemon logs and keeps the temp dirs."""
    prog = unittest.main(verbosity=2, exit=False)
    ok = prog.result.wasSuccessful()
    for d in _DAEMONS:
        d.kill()
    if not ok:
        seen = set()
        for d in _DAEMONS:
            if d.log_path not in seen:
                seen.add(d.log_path)
                sys.stderr.write("\n" + d.log_tail(200) + "\n")
        sys.stderr.write("temp dirs kept for inspection: " + " ".join(_WORKDIRS) + "\n")
    else:
        for w in _WORKDIRS:
            shutil.rmtree(w, ignore_errors=True)
    if prog.result.testsRun == 0:
        sys.stderr.write("no test ran\n")
        sys.exit(1)
    sys.exit(0 if ok else 1)
