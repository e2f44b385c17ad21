#!/usr/bin/python3
"""SPIFFE mTLS interop: the mtls-echo example pair (libwimse's X.509 source and
mTLS helpers) against the real daemon, and Python's `ssl` module as an
independently configured TLS client of the example server.

The two example binaries are copied into the daemon's temp dir, so that the
`unix:path` selectors name exactly these copies and uid 65534 can run them."""

import datetime
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
from concurrent import futures

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import grpc

import wimsed_harness as h
from wimsed_harness import pb

_BUILD = os.path.dirname(h.WIMSED)
ECHO_SERVER = os.environ.get("MTLS_ECHO_SERVER") or os.path.join(_BUILD, "mtls_echo_server")
ECHO_CLIENT = os.environ.get("MTLS_ECHO_CLIENT") or os.path.join(_BUILD, "mtls_echo_client")

SERVER_ID = h.TD_ID + "/echo/server"
CLIENT_ID = h.TD_ID + "/echo/client"
NOBODY_ID = h.TD_ID + "/echo/nobody"
CTL_ID = h.TD_ID + "/echo/python"   # what wimsectl fetches; the Python ssl client presents it
NOBODY_UID = 65534
RUN_TIMEOUT = 30


def entries(server, client):
    return [
        {"spiffe_id": SERVER_ID, "selectors": [f"unix:uid:{h.UID}", "unix:path:" + server]},
        {"spiffe_id": CLIENT_ID, "selectors": [f"unix:uid:{h.UID}", "unix:path:" + client]},
        {"spiffe_id": NOBODY_ID, "selectors": [f"unix:uid:{NOBODY_UID}", "unix:path:" + client]},
        {"spiffe_id": CTL_ID,
         "selectors": [f"unix:uid:{h.UID}", "unix:path:" + os.path.realpath(h.WIMSECTL)]},
    ]


class EchoServer:
    """mtls_echo_server in the background; stderr (one line per event) goes to a file."""

    def __init__(self, workdir, exe, daemon, allow):
        """`daemon`: a wimsed_harness.Daemon, or a SPIFFE_ENDPOINT_SOCKET string."""
        endpoint = daemon if isinstance(daemon, str) else daemon.endpoint
        self.log_path = os.path.join(workdir, f"echo-server-{time.monotonic_ns()}.log")
        self._log = open(self.log_path, "wb")
        args = ["setpriv", "--pdeathsig", "TERM", exe, "--socket", endpoint,
                "--listen", "127.0.0.1:0"]
        for a in allow:
            args += ["--allow", a]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log,
                                     stdin=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()   # "listening on 127.0.0.1:PORT as ID"
        m = re.match(r"listening on 127\.0\.0\.1:(\d+) as (\S+)$", line.strip())
        if not m:
            self.kill()
            raise AssertionError(f"echo server did not start: stdout {line!r}\n{self.log()}")
        self.port = int(m.group(1))
        self.spiffe_id = m.group(2)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, pattern, timeout=10.0):
        """The first log line matching `pattern` (a regex), waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log().splitlines():
                if re.search(pattern, line):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no line matching {pattern!r} in the echo server log:\n"
                                     f"{self.log()}")
            time.sleep(0.05)

    def count(self, pattern):
        return sum(1 for line in self.log().splitlines() if re.search(pattern, line))

    def stop(self):
        """SIGTERM; must exit 0."""
        self.proc.terminate()
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("echo server ignored SIGTERM")
        self._log.close()
        self.proc.stdout.close()
        if rc != 0:
            raise AssertionError(f"echo server exited {rc}\n{self.log()}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if not self._log.closed:
            self._log.close()
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()


def run_client(exe, daemon, server_addr, server_id, message, pre=()):
    args = [*pre, exe, "--socket", daemon.endpoint, "--connect", server_addr,
            "--server-id", server_id, "--message", message]
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                              stdin=subprocess.DEVNULL, cwd="/")
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{' '.join(args)} did not finish within {RUN_TIMEOUT} s")


def show(r):
    return f"rc={r.returncode}\n--- stdout ---\n{r.stdout}--- stderr ---\n{r.stderr}"


def uri_sans(der):
    cert = x509.load_der_x509_certificate(der)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def foreign_svid(dirpath, spiffe_id):
    """A CA of our trust domain's *name* that is not ours, and an otherwise valid
    X509-SVID leaf for `spiffe_id` from it. Returns (chain.pem, key.pem) paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "foreign"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "example.org CA")])
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=1))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectAlternativeName(
              [x509.UniformResourceIdentifier(h.TD_ID)]), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "foreign")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(spiffe_id)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain_path = os.path.join(dirpath, "foreign.pem")
    key_path = os.path.join(dirpath, "foreign.key")
    with open(chain_path, "wb") as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return chain_path, key_path


class MtlsEcho(unittest.TestCase):
    """One daemon, one echo server that allows CLIENT_ID and CTL_ID."""

    @classmethod
    def setUpClass(cls):
        for exe in (ECHO_SERVER, ECHO_CLIENT):
            if not os.access(exe, os.X_OK):
                raise AssertionError(f"{exe} not built (set MTLS_ECHO_SERVER/MTLS_ECHO_CLIENT)")
        workdir = h.make_workdir("wimsed-mtls-")
        cls.server_exe = os.path.join(workdir, "mtls_echo_server")
        cls.client_exe = os.path.join(workdir, "mtls_echo_client")
        for src, dst in ((ECHO_SERVER, cls.server_exe), (ECHO_CLIENT, cls.client_exe)):
            shutil.copy(src, dst)
            os.chmod(dst, 0o755)
        cls.d = h.start_daemon(cls, workdir=workdir, entries=entries(cls.server_exe, cls.client_exe))
        cls.server = EchoServer(workdir, cls.server_exe, cls.d, [CLIENT_ID, CTL_ID])
        cls.addClassCleanup(cls.server.kill)
        # wimsectl's files: the Python ssl client presents CTL_ID and trusts the bundle.
        cls.files = tempfile.mkdtemp(prefix="svid-", dir=workdir)
        r = subprocess.run([h.WIMSECTL, "--socket", cls.d.endpoint, "fetch", "x509", "--write",
                            cls.files], capture_output=True, text=True, timeout=RUN_TIMEOUT)
        if r.returncode != 0:
            raise AssertionError(f"wimsectl fetch x509 --write failed\n{show(r)}")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_server_has_its_own_id(self):
        self.assertEqual(self.server.spiffe_id, SERVER_ID)

    def test_echo_pair(self):
        r = run_client(self.client_exe, self.d, self.server.address, SERVER_ID, "hello pair")
        self.assertEqual(r.returncode, 0, show(r))
        self.assertEqual(r.stdout, "hello pair\n")
        self.assertEqual(r.stderr, "")
        self.server.wait_log(r": accepted " + re.escape(CLIENT_ID) + "$")

    def test_client_authorizes_the_server(self):
        wrong = h.TD_ID + "/echo/impostor"
        r = run_client(self.client_exe, self.d, self.server.address, wrong, "x")
        self.assertNotEqual(r.returncode, 0, show(r))
        self.assertEqual(r.stdout, "")
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, "one clear line on failure:\n" + show(r))
        self.assertIn(f"peer {SERVER_ID} is not authorized", lines[0])

    def test_client_as_other_uid_rejected(self):
        if os.getuid() != 0:
            self.skipTest("needs root to run the client as uid 65534")
        before = self.server.count(re.escape(NOBODY_ID) + " is not authorized")
        r = run_client(self.client_exe, self.d, self.server.address, SERVER_ID, "let me in",
                       pre=("setpriv", f"--reuid={NOBODY_UID}", f"--regid={NOBODY_UID}",
                            "--clear-groups"))
        self.assertNotEqual(r.returncode, 0, show(r))
        self.assertEqual(r.stdout, "", "no echo for a refused client")
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, "one clear line on failure:\n" + show(r))
        self.assertIn(f"refused our SVID {NOBODY_ID}", lines[0])
        deadline = time.monotonic() + 10
        while self.server.count(re.escape(NOBODY_ID) + " is not authorized") == before:
            self.assertLess(time.monotonic(), deadline, self.server.log())
            time.sleep(0.05)

    def test_client_without_workload_api_fails_clearly(self):
        nowhere = "unix://" + os.path.join(self.d.workdir, "nope.sock")
        r = subprocess.run([self.client_exe, "--socket", nowhere, "--timeout-ms", "1500",
                            "--connect", self.server.address, "--server-id", SERVER_ID],
                           capture_output=True, text=True, timeout=RUN_TIMEOUT)
        self.assertNotEqual(r.returncode, 0, show(r))
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, show(r))
        self.assertIn("no X.509-SVID from the Workload API", lines[0])

    # ---- Python's ssl module as the client ---------------------------------------
    def py_context(self, cert=True, chain=None, key=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        # SPIFFE: no host name to check; the server's SPIFFE ID is checked below.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(os.path.join(self.files, "bundle.0.pem"))
        if cert:
            ctx.load_cert_chain(chain or os.path.join(self.files, "svid.0.pem"),
                                key or os.path.join(self.files, "svid.0.key"))
        return ctx

    def py_exchange(self, ctx, line=b"hello from python\n"):
        """Handshake, check the server's SPIFFE ID, send a line; returns the reply
        (b"" when the server closed) or raises ssl.SSLError/OSError."""
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as s:
                self.assertEqual(s.version(), "TLSv1.3")
                self.assertEqual(uri_sans(s.getpeercert(binary_form=True)), [SERVER_ID])
                s.sendall(line)
                got = b""
                while not got.endswith(b"\n"):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                return got

    def assert_py_refused(self, ctx, server_reason):
        pattern = r"rejected: .*" + re.escape(server_reason)
        before = self.server.count(pattern)
        try:
            got = self.py_exchange(ctx)
        except (ssl.SSLError, ConnectionError) as e:
            got = None
            # TLS 1.3: the refusal arrives as an alert after our handshake completed.
            self.assertNotIsInstance(e, ssl.SSLCertVerificationError,
                                     "the Python client must accept the server; the server must refuse")
        self.assertIn(got, (None, b""), "a refused client must get no echo")
        deadline = time.monotonic() + 10
        while self.server.count(pattern) == before:
            self.assertLess(time.monotonic(), deadline,
                            f"server did not log {pattern!r}:\n{self.server.log()}")
            time.sleep(0.05)

    def test_python_ssl_client_with_wimsectl_files(self):
        with open(os.path.join(self.files, "svid.0.pem"), "rb") as f:
            leaf = x509.load_pem_x509_certificate(f.read())
        ids = leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.UniformResourceIdentifier)
        self.assertEqual(ids, [CTL_ID], "wimsectl gets the ID of its unix:path entry")
        got = self.py_exchange(self.py_context())
        self.assertEqual(got, b"hello from python\n")
        self.server.wait_log(r": accepted " + re.escape(CTL_ID) + "$")

    def test_python_ssl_client_without_certificate_rejected(self):
        self.assert_py_refused(self.py_context(cert=False), "peer did not return a certificate")

    def test_python_ssl_client_with_foreign_ca_rejected(self):
        with tempfile.TemporaryDirectory(dir=self.d.workdir) as tmp:
            chain, key = foreign_svid(tmp, CTL_ID)   # an allowed ID, from the wrong CA
            ctx = self.py_context(chain=chain, key=key)
        self.assert_py_refused(ctx, f"peer {CTL_ID}: certificate does not verify against the "
                                    "bundle of example.org")

    def test_python_tls12_refused(self):
        ctx = self.py_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as raw:
            with self.assertRaises(ssl.SSLError):
                ctx.wrap_socket(raw).close()


class MtlsRotationAndRestart(unittest.TestCase):
    """The source follows rotations pushed on the stream and reconnects after a
    daemon restart; handshakes keep working throughout."""

    TTL = "20s"   # lifetime 30 s with the 10 s backdating: rotations come every few seconds

    @classmethod
    def setUpClass(cls):
        workdir = h.make_workdir("wimsed-mtls-rot-")
        cls.server_exe = os.path.join(workdir, "mtls_echo_server")
        cls.client_exe = os.path.join(workdir, "mtls_echo_client")
        for src, dst in ((ECHO_SERVER, cls.server_exe), (ECHO_CLIENT, cls.client_exe)):
            shutil.copy(src, dst)
            os.chmod(dst, 0o755)
        cls.d = h.start_daemon(cls, workdir=workdir, x509_svid_ttl=cls.TTL,
                               entries=entries(cls.server_exe, cls.client_exe))
        cls.server = EchoServer(workdir, cls.server_exe, cls.d, [CLIENT_ID])
        cls.addClassCleanup(cls.server.kill)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def generation(self):
        gens = [int(g) for g in re.findall(r"installed \(generation (\d+)\)", self.server.log())]
        return max(gens) if gens else 0

    def echo(self, msg):
        r = run_client(self.client_exe, self.d, self.server.address, SERVER_ID, msg)
        self.assertEqual(r.returncode, 0, show(r) + self.server.log())
        self.assertEqual(r.stdout, msg + "\n")

    def reload(self, new_entries):
        """SIGHUP with other entries (kept in d.config, so a restart keeps them too)."""
        self.d.config["entries"] = new_entries
        with open(self.d.config_path, "w") as f:
            json.dump(self.d.config, f, indent=2)
        os.kill(self.d.pid, signal.SIGHUP)

    def test_identity_withdrawn_then_restored(self):
        self.echo("before withdrawal")
        original = list(self.d.config["entries"])
        self.addCleanup(self.reload, original)
        # The daemon ends the server's stream with PERMISSION_DENIED: the source drops
        # the SVID at once, and the server refuses handshakes instead of presenting it.
        self.reload([e for e in original if e["spiffe_id"] != SERVER_ID])
        self.server.wait_log(r"identity withdrawn")
        g0 = self.generation()
        r = run_client(self.client_exe, self.d, self.server.address, SERVER_ID, "x")
        self.assertNotEqual(r.returncode, 0, show(r))
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, show(r))
        self.server.wait_log(r"rejected: no SVID to present")
        # The source keeps retrying (with backoff) and picks the identity up again.
        self.reload(original)
        deadline = time.monotonic() + 15
        while self.generation() <= g0:
            self.assertLess(time.monotonic(), deadline, "identity not restored within 15 s\n"
                            + self.server.log())
            time.sleep(0.1)
        self.echo("after restoration")

    def test_rotation_then_restart(self):
        self.echo("before rotation")
        g0 = self.generation()
        self.assertGreaterEqual(g0, 1)
        deadline = time.monotonic() + 30
        while self.generation() <= g0:
            self.assertLess(time.monotonic(), deadline, "no rotation pushed within 30 s\n"
                            + self.server.log() + self.d.log_tail())
            time.sleep(0.1)
        self.echo("after rotation")

        # Restart: the stream ends with UNAVAILABLE, the source backs off and comes back.
        self.d.stop()
        self.server.wait_log(r"Workload API: FetchX509SVID: .*UNAVAILABLE")
        g1 = self.generation()
        time.sleep(1.0)
        self.d.start()
        deadline = time.monotonic() + 15   # backoff is capped at 5 s (+20 % jitter)
        while self.generation() <= g1:
            self.assertLess(time.monotonic(), deadline, "no reconnect within 15 s of the restart\n"
                            + self.server.log())
            time.sleep(0.1)
        self.echo("after restart")


class FakeWorkloadApi(grpc.GenericRpcHandler):
    """A grpcio Workload API whose FetchX509SVID follows a script, one action per call
    (the last action repeats): ("abort", StatusCode) or ("send", [responses]) after
    which the stream stays open."""

    def __init__(self, script):
        self.script = script
        self.calls = []   # monotonic arrival time of every call

    def service(self, details):
        if details.method != "/SpiffeWorkloadAPI/FetchX509SVID":
            return None
        return grpc.unary_stream_rpc_method_handler(
            self.fetch, request_deserializer=pb.X509SVIDRequest.FromString,
            response_serializer=pb.X509SVIDResponse.SerializeToString)

    def fetch(self, request, context):
        if ("workload.spiffe.io", "true") not in tuple(context.invocation_metadata()):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "security header missing")
        self.calls.append(time.monotonic())
        kind, arg = self.script[min(len(self.calls), len(self.script)) - 1]
        if kind == "abort":
            context.abort(arg, f"scripted {arg.name}")
        for resp in arg:
            yield resp
        while context.is_active():
            time.sleep(0.05)


FAKE_ID = h.TD_ID + "/fake"


def fake_response(spiffe_id=FAKE_ID, other_key=False):
    """A valid X509SVIDResponse made with `cryptography` (other_key: a key that does
    not match the certificate)."""
    with tempfile.TemporaryDirectory() as tmp:
        chain_path, key_path = foreign_svid(tmp, spiffe_id)
        with open(chain_path, "rb") as f:
            leaf, ca = x509.load_pem_x509_certificates(f.read()) if hasattr(
                x509, "load_pem_x509_certificates") else _split_pem(f.read())
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    if other_key:
        key = ec.generate_private_key(ec.SECP256R1())
    return pb.X509SVIDResponse(svids=[pb.X509SVID(
        spiffe_id=spiffe_id,
        x509_svid=leaf.public_bytes(serialization.Encoding.DER),
        x509_svid_key=key.private_bytes(serialization.Encoding.DER,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()),
        bundle=ca.public_bytes(serialization.Encoding.DER))])


def _split_pem(data):
    marker = b"-----END CERTIFICATE-----"
    return [x509.load_pem_x509_certificate(p + marker) for p in data.split(marker) if p.strip()]


class WatchRetryPolicy(unittest.TestCase):
    """libwimse's X.509 source (inside mtls_echo_server) against a scripted grpcio
    Workload API: backoff on UNAVAILABLE, no retry on INVALID_ARGUMENT/UNIMPLEMENTED,
    invalid messages discarded."""

    def start_fake(self, script):
        workdir = h.make_workdir("wimse-fake-")
        fake = FakeWorkloadApi(script)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=(fake,))
        sock = os.path.join(workdir, "fake.sock")
        server.add_insecure_port("unix:" + sock)
        server.start()
        self.addCleanup(server.stop, 0)
        return workdir, "unix://" + sock, fake

    def test_backoff_on_unavailable(self):
        script = [("abort", grpc.StatusCode.UNAVAILABLE)] * 5 + [("send", [fake_response()])]
        workdir, endpoint, fake = self.start_fake(script)
        srv = EchoServer(workdir, ECHO_SERVER, endpoint, [CLIENT_ID])
        self.addCleanup(srv.kill)
        self.assertEqual(srv.spiffe_id, FAKE_ID)
        srv.stop()
        t = fake.calls
        self.assertGreaterEqual(len(t), 6, "five refusals, then the message")
        gaps = [b - a for a, b in zip(t, t[1:6])]
        for i, g in enumerate(gaps):
            want = 0.1 * 2 ** i   # 100 ms doubling, +-20 % jitter
            self.assertGreaterEqual(g, 0.75 * want, f"retry {i + 1} after {g:.3f} s: {gaps}")
            self.assertLessEqual(g, 1.25 * want + 0.25, f"retry {i + 1} after {g:.3f} s: {gaps}")

    def assert_stops_at_once(self, code):
        workdir, endpoint, fake = self.start_fake([("abort", code)])
        t0 = time.monotonic()
        r = subprocess.run([ECHO_SERVER, "--socket", endpoint, "--timeout-ms", "10000",
                            "--listen", "127.0.0.1:0", "--allow", CLIENT_ID],
                           capture_output=True, text=True, timeout=RUN_TIMEOUT)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.returncode, 1, show(r))
        # The watcher thread's own "watch stopped" line may be printed after the
        # main thread's verdict: look for the verdict among the lines.
        verdict = [l for l in r.stderr.splitlines() if "no X.509-SVID from the Workload API" in l]
        self.assertTrue(verdict, show(r))
        self.assertIn(f"({code.name})", verdict[-1], show(r))
        self.assertLess(elapsed, 5.0, "the source must stop, not retry until the timeout")
        self.assertEqual(len(fake.calls), 1, f"{code.name} must not be retried")

    def test_invalid_argument_not_retried(self):
        self.assert_stops_at_once(grpc.StatusCode.INVALID_ARGUMENT)

    def test_unimplemented_not_retried(self):
        self.assert_stops_at_once(grpc.StatusCode.UNIMPLEMENTED)

    def test_invalid_message_discarded(self):
        bad = fake_response(other_key=True)
        empty = pb.X509SVIDResponse()
        good = fake_response()
        workdir, endpoint, fake = self.start_fake([("send", [bad, empty, good])])
        srv = EchoServer(workdir, ECHO_SERVER, endpoint, [CLIENT_ID])
        self.addCleanup(srv.kill)
        self.assertEqual(srv.spiffe_id, FAKE_ID)
        srv.wait_log(r"message discarded: .*private key does not match the certificate")
        srv.wait_log(r"message discarded: the X.509 context holds no SVID")
        # The good message's install may be logged a moment later on a loaded machine.
        srv.wait_log(r"installed \(generation")
        self.assertEqual(srv.count(r"installed \(generation"), 1)
        self.assertEqual(len(fake.calls), 1, "a bad message does not end the stream")
        srv.stop()


if __name__ == "__main__":
    h.main()
