#!/usr/bin/python3
"""Persistence and crash safety (issue 5 item 3).

1. kill -9 in a loop during rotation: the CA (10 s SVIDs, rotating every 10 s), the
   JWT-SVID keys and the Txn-Token keys all rotate continuously; entries are created
   through the admin API and revocations through /revoke while the daemon runs, and the
   daemon is killed with SIGKILL at a random moment, 24 times. Every restart must come
   up SERVING with every entry and revocation acknowledged before a kill, and hand out
   an X.509-SVID that verifies (openssl verify) against its bundle and a JWT-SVID that
   verifies against its JWKS.
2. A read-only and a full state directory (a small tmpfs in a private mount namespace,
   root only): health turns NOT_SERVING with a log line saying why while identities are
   still served, and SERVING again once the disk takes writes.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wimsed_harness as h  # noqa: E402

import jwt  # noqa: E402  (PyJWT)
from svidcheck import load_der_certs, openssl_verify  # noqa: E402

ROUNDS = 24
UID = os.getuid()


admin_socket = h.admin_socket
get_json = h.get_json


def ctl(*args, env=None, check=True):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([h.WIMSECTL, *args], capture_output=True, text=True, timeout=30, env=e)
    if check and r.returncode != 0:
        raise AssertionError(f"wimsectl {' '.join(args[:3])}: rc {r.returncode}: {r.stdout}{r.stderr}")
    return r


def status(d):
    return get_json(admin_socket(d), "/status")


def entry_ids(d):
    out = ctl("entry", "list", "--admin-socket", admin_socket(d)).stdout
    return {ln.split()[0] for ln in out.splitlines() if ln.strip()}


def check_identities(tc, d):
    """An X.509-SVID that chains to its bundle and a JWT-SVID valid under the JWKS."""
    resp = h.fetch_x509_svid(d.target)
    tc.assertTrue(resp.svids)
    s = resp.svids[0]
    openssl_verify(load_der_certs(s.x509_svid, "chain"), load_der_certs(s.bundle, "bundle"))
    tok = h.fetch_jwt_svid(d.target, ["crash"]).svids[0].svid
    doc = json.loads(h.fetch_jwt_bundles(d.target).bundles[h.TD_ID])
    kid = jwt.get_unverified_header(tok)["kid"]
    keys = {k["kid"]: jwt.PyJWK(k).key for k in doc["keys"]}
    tc.assertIn(kid, keys)
    jwt.decode(tok, keys[kid], algorithms=["ES256"], audience="crash")


class KillLoop(unittest.TestCase):
    def test_kill_9_during_rotation(self):
        w = h.make_workdir("wimsed-crash-")
        xsock = os.path.join(w, "exchange.sock")
        d = h.Daemon(workdir=w,
                     entries=[{"spiffe_id": h.TD_ID + "/uid/{unix:uid}", "selectors": [f"unix:uid:{UID}"]}],
                     x509_svid_ttl=10, ca={"ttl": 40, "rotate_every": 10},
                     jwt_svid_ttl=10, jwt_key_rotate_every=10, log_level="info",
                     txn={"exchange_socket": xsock, "dev_issuer": True, "key_rotate_every": 10})
        self.addCleanup(d.kill)
        xenv = {"WIMSED_EXCHANGE_SOCKET": xsock}
        rnd = random.Random(5)
        entries, revoked = set(), 0
        starts_with_rotation_files = 0
        for i in range(ROUNDS):
            t0 = time.monotonic()
            d.start()
            self.assertLess(time.monotonic() - t0, 10)
            # Everything acknowledged before the last kill is there.
            self.assertTrue(entries <= entry_ids(d), f"round {i}: lost entries {entries - entry_ids(d)}")
            st = status(d)
            self.assertEqual(st["health"], "SERVING", st)
            self.assertGreaterEqual(st["revocations"], revoked, f"round {i}: lost revocations")
            check_identities(self, d)
            # Txn-Token keys: the successor is published ahead (a 1 h lead, the longest
            # Txn-Token lifetime), so /.well-known/jwks.json lists both.
            txn_jwks = get_json(xsock, "/.well-known/jwks.json")
            self.assertEqual(len(txn_jwks["keys"]), 2, txn_jwks)
            if len(os.listdir(os.path.join(d.data_dir, "ca"))) > 3:
                starts_with_rotation_files += 1
            # Changes, then a kill at a random moment (possibly mid-write).
            r = ctl("entry", "create", "--spiffe-id", f"{h.TD_ID}/crash/{i}", "--selector",
                    f"unix:uid:{10000 + i}", "--admin-socket", admin_socket(d))
            entries.add(json.loads(r.stdout)["id"])
            ctl("revoke", "--spiffe-id", f"{h.TD_ID}/agent/{i}", env=xenv)
            revoked += 1
            time.sleep(rnd.uniform(0.0, 1.5))
            d.proc.kill()
            d.proc.wait(5)
        # A last, clean start and stop.
        d.start()
        self.assertTrue(entries <= entry_ids(d))
        self.assertGreaterEqual(status(d)["revocations"], revoked)
        check_identities(self, d)
        d.stop()
        # The loop did run through rotations (a successor CA on disk at some starts).
        self.assertGreater(starts_with_rotation_files, 0)


def can_mount():
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
        return False
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    return r.returncode == 0


@unittest.skipUnless(can_mount(), "needs root and mount namespaces (unshare -m)")
class UnwritableDisk(unittest.TestCase):
    def setUp(self):
        w = h.make_workdir("wimsed-disk-")
        self.data = os.path.join(w, "data")
        os.mkdir(self.data, 0o700)
        self.d = h.Daemon(workdir=w, data_dir=self.data, log_level="info")
        # The daemon runs in its own mount namespace with its data dir on a 2 MiB tmpfs.
        self.d.wrapper = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                          'mount -t tmpfs -o size=2m,mode=0700 tmpfs "$0" && exec "$@"', self.data]
        self.addCleanup(self.d.kill)
        self.d.start()

    def in_ns(self, *cmd, check=True):
        return subprocess.run(["nsenter", "-t", str(self.d.pid), "-m", *cmd], capture_output=True,
                              text=True, timeout=20, check=check)

    def wait_health(self, want, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = h.health_check(self.d.target)
            if got == want:
                return
            time.sleep(0.1)
        self.fail(f"health not {want} within {timeout} s\n{self.d.log_tail(20)}")

    def log(self):
        with open(self.d.log_path) as f:
            return f.read()

    def test_read_only_then_full(self):
        SERVING = h.health_pb2.HealthCheckResponse.SERVING
        NOT_SERVING = h.health_pb2.HealthCheckResponse.NOT_SERVING
        self.assertEqual(h.health_check(self.d.target), SERVING)
        # Read-only: a read-only file system mounted over the data dir (a remount would be
        # refused while SQLite holds its files open for writing; the kernel's own
        # errors=remount-ro is what this stands for).
        self.in_ns("mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", self.data)
        self.wait_health(NOT_SERVING)
        self.assertRegex(self.log(), r"health_not_serving reason=\"[^\"]*read-only file system")
        h.fetch_x509_svid(self.d.target)             # identities are still served
        h.fetch_jwt_svid(self.d.target, ["still"])
        self.in_ns("umount", self.data)
        self.wait_health(SERVING)
        self.assertIn("health_serving", self.log())
        # Full.
        self.in_ns("sh", "-c", f"cat /dev/zero > {self.data}/fill", check=False)
        self.wait_health(NOT_SERVING)
        self.assertRegex(self.log(), r"health_not_serving reason=\"[^\"]*bytes free")
        h.fetch_x509_svid(self.d.target)
        self.in_ns("rm", "-f", f"{self.data}/fill")
        self.wait_health(SERVING)
        self.d.stop()


if __name__ == "__main__":
    h.main()
