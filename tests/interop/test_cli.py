#!/usr/bin/python3
"""wimsectl against the real daemon: files it writes are checked with `cryptography`
and `openssl verify`, exit codes and error output with a stopped daemon."""

import os
import stat
import subprocess
import tempfile
import unittest

from cryptography import x509
from cryptography.hazmat.primitives import serialization

import svidcheck
import wimsed_harness as h

UID_ID = f"{h.TD_ID}/uid/{h.UID}"
CLI_TIMEOUT = 15


def run_ctl(*args, endpoint_env=None):
    env = {k: v for k, v in os.environ.items() if k != "SPIFFE_ENDPOINT_SOCKET"}
    if endpoint_env is not None:
        env["SPIFFE_ENDPOINT_SOCKET"] = endpoint_env
    try:
        return subprocess.run([h.WIMSECTL, *args], capture_output=True, text=True,
                              timeout=CLI_TIMEOUT, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"wimsectl {' '.join(args)} did not finish within {CLI_TIMEOUT} s")


def show(r):
    return f"rc={r.returncode}\n--- stdout ---\n{r.stdout}--- stderr ---\n{r.stderr}"


class CliAgainstRunningDaemon(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = h.start_daemon(cls)

    def outdir(self):
        d = tempfile.mkdtemp(prefix="wimsectl-out-", dir=self.d.workdir)
        return d

    def assert_written_svid(self, out):
        """svid.0.pem / svid.0.key / bundle.0.pem exist, parse, verify; only one SVID."""
        names = sorted(os.listdir(out))
        self.assertEqual(names, ["bundle.0.pem", "svid.0.key", "svid.0.pem"],
                         "wimsectl matches only the uid entry (not py, not node): one SVID")
        key_path = os.path.join(out, "svid.0.key")
        mode = stat.S_IMODE(os.stat(key_path).st_mode)
        self.assertEqual(mode, 0o600, f"svid.0.key mode is {oct(mode)}, want 0o600")

        with open(os.path.join(out, "svid.0.pem"), "rb") as f:
            chain_pem = f.read()
        with open(os.path.join(out, "bundle.0.pem"), "rb") as f:
            bundle_pem = f.read()
        with open(key_path, "rb") as f:
            key_pem = f.read()
        chain = x509.load_pem_x509_certificates(chain_pem) if hasattr(
            x509, "load_pem_x509_certificates") else _load_pems(chain_pem)
        bundle = x509.load_pem_x509_certificates(bundle_pem) if hasattr(
            x509, "load_pem_x509_certificates") else _load_pems(bundle_pem)
        self.assertGreaterEqual(len(chain), 1)
        self.assertGreaterEqual(len(bundle), 1)
        self.assertTrue(key_pem.startswith(b"-----BEGIN PRIVATE KEY-----"),
                        "svid.0.key must be PKCS#8 PEM ('BEGIN PRIVATE KEY')")
        key = serialization.load_pem_private_key(key_pem, password=None)
        self.assertEqual(key.public_key().public_numbers(), chain[0].public_key().public_numbers(),
                         "svid.0.key does not match svid.0.pem's leaf")
        uris = chain[0].extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.UniformResourceIdentifier)
        self.assertEqual(uris, [UID_ID])
        # Re-check the whole SVID with the same rules as the gRPC test.
        svid = h.pb.X509SVID(
            spiffe_id=UID_ID,
            x509_svid=b"".join(c.public_bytes(serialization.Encoding.DER) for c in chain),
            x509_svid_key=key.private_bytes(serialization.Encoding.DER,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()),
            bundle=b"".join(c.public_bytes(serialization.Encoding.DER) for c in bundle))
        svidcheck.check_svid(svid, ttl=h.TTL_UID_ENTRY)
        extra = []
        if len(chain) > 1:
            extra = ["-untrusted", os.path.join(out, "svid.0.pem")]
        # openssl verify reads the first certificate of svid.0.pem as the leaf.
        svidcheck.openssl_verify_files(os.path.join(out, "bundle.0.pem"),
                                       os.path.join(out, "svid.0.pem"), extra)

    def test_fetch_x509_write_with_socket_flag(self):
        out = self.outdir()
        r = run_ctl("fetch", "x509", "--write", out, "--socket", self.d.endpoint)
        self.assertEqual(r.returncode, 0, show(r))
        self.assert_written_svid(out)

    def test_fetch_x509_write_with_env_socket(self):
        out = self.outdir()
        r = run_ctl("fetch", "x509", "--write", out, endpoint_env=self.d.endpoint)
        self.assertEqual(r.returncode, 0, show(r))
        self.assert_written_svid(out)

    def test_fetch_x509_without_write(self):
        r = run_ctl("fetch", "x509", "--socket", self.d.endpoint)
        self.assertEqual(r.returncode, 0, show(r))

    def test_rewrite_tightens_existing_key_file(self):
        out = self.outdir()
        key_path = os.path.join(out, "svid.0.key")
        with open(key_path, "w") as f:
            f.write("stale\n")
        os.chmod(key_path, 0o644)
        r = run_ctl("fetch", "x509", "--write", out, "--socket", self.d.endpoint)
        self.assertEqual(r.returncode, 0, show(r))
        mode = stat.S_IMODE(os.stat(key_path).st_mode)
        self.assertEqual(mode, 0o600,
                         f"overwriting a pre-existing 0644 svid.0.key left mode {oct(mode)}")
        self.assert_written_svid(out)

    def test_exec_into_wimsectl_is_reattested(self):
        """DESIGN.md §3: the attestation cache is keyed by process identity including the
        executable, so one pid that execs another binary gets that binary's identities."""
        out = self.outdir()
        child = (
            "import os, sys, grpc\n"
            "ch = grpc.insecure_channel('unix:' + sys.argv[1])\n"
            "call = ch.unary_stream('/SpiffeWorkloadAPI/FetchX509SVID')(\n"
            "    b'', metadata=(('workload.spiffe.io', 'true'),), timeout=10)\n"
            "print(next(call).hex(), flush=True)\n"
            "call.cancel(); ch.close()\n"
            "os.execv(sys.argv[2], sys.argv[2:])\n")
        r = subprocess.run(
            ["/usr/bin/python3", "-I", "-c", child, self.d.socket,
             h.WIMSECTL, "fetch", "x509", "--write", out, "--socket", self.d.endpoint],
            capture_output=True, text=True, timeout=CLI_TIMEOUT)
        self.assertEqual(r.returncode, 0, show(r))
        as_python = h.pb.X509SVIDResponse.FromString(bytes.fromhex(r.stdout.splitlines()[0]))
        self.assertEqual([s.spiffe_id for s in as_python.svids], [UID_ID, f"{h.TD_ID}/py"],
                         "before exec the process is python (uid + py entries)")
        self.assertEqual(sorted(os.listdir(out)), ["bundle.0.pem", "svid.0.key", "svid.0.pem"],
                         "after exec into wimsectl the same pid must no longer get the py SVID "
                         "(stale attestation cache?)")

    def test_healthcheck(self):
        r = run_ctl("healthcheck", "--socket", self.d.endpoint)
        self.assertEqual(r.returncode, 0, show(r))
        r = run_ctl("healthcheck", endpoint_env=self.d.endpoint)
        self.assertEqual(r.returncode, 0, "healthcheck via SPIFFE_ENDPOINT_SOCKET\n" + show(r))


class CliWithoutDaemon(unittest.TestCase):
    def assert_one_line_failure(self, r, what):
        self.assertNotEqual(r.returncode, 0, f"{what}: want non-zero exit\n{show(r)}")
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, f"{what}: want exactly one line on stderr\n{show(r)}")
        self.assertTrue(lines[0].strip(), f"{what}: empty error line")

    def test_stopped_daemon(self):
        d = h.Daemon()
        self.addCleanup(d.kill)
        d.start()
        d.stop()
        out = tempfile.mkdtemp(prefix="wimsectl-out-", dir=d.workdir)
        for args in (("fetch", "x509", "--write", out), ("healthcheck",)):
            with self.subTest(args=args, via="--socket"):
                self.assert_one_line_failure(run_ctl(*args, "--socket", d.endpoint),
                                             "wimsectl " + " ".join(args))
            with self.subTest(args=args, via="SPIFFE_ENDPOINT_SOCKET"):
                self.assert_one_line_failure(run_ctl(*args, endpoint_env=d.endpoint),
                                             "wimsectl " + " ".join(args))
        self.assertEqual(os.listdir(out), [], "nothing may be written when the fetch fails")

    def test_socket_that_never_existed(self):
        d = h.make_workdir()
        ep = "unix://" + os.path.join(d, "nothing-here.sock")
        for args in (("fetch", "x509"), ("healthcheck",)):
            with self.subTest(args=args):
                self.assert_one_line_failure(run_ctl(*args, "--socket", ep),
                                             "wimsectl " + " ".join(args))

    def test_invalid_socket_uri(self):
        # SPIFFE_Workload_Endpoint: unix URIs need an absolute path and no authority.
        for ep in ("unix:relative.sock", "unix://host/abs.sock"):
            with self.subTest(endpoint=ep):
                self.assert_one_line_failure(run_ctl("healthcheck", endpoint_env=ep),
                                             f"SPIFFE_ENDPOINT_SOCKET={ep}")


def _load_pems(data):
    out, marker = [], b"-----END CERTIFICATE-----"
    for part in data.split(marker)[:-1]:
        out.append(x509.load_pem_x509_certificate(part + marker + b"\n"))
    return out


if __name__ == "__main__":
    h.main()
