#!/usr/bin/python3
"""X.509 Workload API interop: the real wimsed driven by Python grpcio, SVIDs checked
with `cryptography` and `openssl verify`."""

import datetime
import os
import stat
import subprocess
import unittest

import grpc

import svidcheck
import wimsed_harness as h
from wimsed_harness import pb

UID_ID = f"{h.TD_ID}/uid/{h.UID}"
PY_ID = f"{h.TD_ID}/py"
OTHER_UID = 65533   # has an entry (templated); 65534 has none

# A grpcio client run as another uid by setpriv: prints "uid=U:G" and, per method,
# "Method=OK:<hex of the first message>" or "Method=<status code name>".
_CHILD = """
import os, sys, grpc
ch = grpc.insecure_channel('unix:' + sys.argv[1])
out = ['uid=%d:%d' % (os.getuid(), os.getgid())]
for m in ('FetchX509SVID', 'FetchX509Bundles'):
    call = ch.unary_stream('/SpiffeWorkloadAPI/' + m)(
        b'', metadata=(('workload.spiffe.io', 'true'),), timeout=5)
    try:
        out.append(m + '=OK:' + next(call).hex())
        call.cancel()
    except grpc.RpcError as e:
        out.append(m + '=' + e.code().name)
print(' '.join(out))
"""


class X509WorkloadApi(unittest.TestCase):
    """One daemon with the contract's sample config, shared by these read-only tests."""

    @classmethod
    def setUpClass(cls):
        entries = h.default_entries() + [
            {"spiffe_id": h.TD_ID + "/uid/{unix:uid}",
             "selectors": [f"unix:uid:{OTHER_UID}", f"unix:gid:{OTHER_UID}"]}]
        cls.d = h.start_daemon(cls, entries=entries)

    def fetch(self):
        t0 = datetime.datetime.now(datetime.timezone.utc)
        return h.fetch_x509_svid(self.d.target), t0

    def test_identities_order_and_hints(self):
        resp, _ = self.fetch()
        ids = [s.spiffe_id for s in resp.svids]
        self.assertEqual(ids, [UID_ID, PY_ID],
                         "this python process matches the uid template entry (first = default) "
                         "and the py entry (unix:path), not the node entry (unix:sha256)")
        self.assertEqual(resp.svids[0].hint, "dev")
        self.assertEqual(resp.svids[1].hint, "", "the py entry has no hint")
        self.assertEqual(len(resp.crl), 0)
        self.assertEqual(dict(resp.federated_bundles), {}, "no federation configured")

    def test_svids_pass_cryptography_checks(self):
        resp, t0 = self.fetch()
        self.assertGreaterEqual(len(resp.svids), 1, "svids must not be empty")
        ttls = {UID_ID: h.TTL_UID_ENTRY, PY_ID: h.TTL_DEFAULT}
        for svid in resp.svids:
            with self.subTest(spiffe_id=svid.spiffe_id):
                svidcheck.check_svid(svid, ttl=ttls.get(svid.spiffe_id), fetched_at=t0)

    def test_svids_pass_openssl_verify(self):
        resp, _ = self.fetch()
        for svid in resp.svids:
            with self.subTest(spiffe_id=svid.spiffe_id):
                chain = svidcheck.load_der_certs(svid.x509_svid, "x509_svid")
                bundle = svidcheck.load_der_certs(svid.bundle, "bundle")
                svidcheck.openssl_verify(chain, bundle)

    def test_all_svids_share_the_trust_domain_bundle(self):
        resp, _ = self.fetch()
        bundles = {s.bundle for s in resp.svids}
        self.assertEqual(len(bundles), 1, "every SVID of one trust domain carries the same bundle")

    def test_x509_bundles(self):
        svids, _ = self.fetch()
        resp = h.fetch_x509_bundles(self.d.target)
        self.assertEqual(list(resp.bundles.keys()), [h.TD_ID],
                         "bundles map key must be the trust domain SPIFFE ID 'spiffe://example.org'")
        got = svidcheck.split_der(resp.bundles[h.TD_ID], "X509BundlesResponse bundle")
        want = svidcheck.split_der(svids.svids[0].bundle, "X509SVID bundle")
        self.assertEqual(sorted(got), sorted(want),
                         "FetchX509Bundles must return the same CA certificates as the SVIDs' bundle")
        for i, c in enumerate(svidcheck.load_der_certs(resp.bundles[h.TD_ID], "bundle")):
            svidcheck.check_ca_cert(c, f"bundles[{h.TD_ID}][{i}]")

    def test_x509_svid_stream_first_message_promptly_and_stays_open(self):
        h.assert_first_promptly_then_open(self, self.d.target, h.x509_svid_stream, "FetchX509SVID")

    def test_x509_bundles_stream_first_message_promptly_and_stays_open(self):
        h.assert_first_promptly_then_open(self, self.d.target, h.x509_bundles_stream,
                                          "FetchX509Bundles")

    def test_security_header_required(self):
        cases = {
            "missing": (),
            "false": (("workload.spiffe.io", "false"),),
            "True (value is case sensitive)": (("workload.spiffe.io", "True"),),
        }
        for label, md in cases.items():
            for method, fetch in (("FetchX509SVID", h.fetch_x509_svid),
                                  ("FetchX509Bundles", h.fetch_x509_bundles)):
                with self.subTest(header=label, method=method):
                    got = h.describe_rpc_error(lambda: fetch(self.d.target, metadata=md, timeout=5))
                    self.assertTrue(got.startswith("INVALID_ARGUMENT"),
                                    f"{method} with header {label}: want INVALID_ARGUMENT, got {got}")

    def test_unimplemented_methods(self):
        # WIT is optional and not implemented: the spec requires UNIMPLEMENTED for both
        # RPCs (clients stop retrying on it); unknown methods too.
        with h.channel(self.d.target) as ch:
            with self.subTest(method="Nope"):
                rpc = ch.unary_unary("/SpiffeWorkloadAPI/Nope", request_serializer=None,
                                     response_deserializer=None)
                got = h.describe_rpc_error(lambda: rpc(b"", metadata=h.HEADER, timeout=5))
                self.assertTrue(got.startswith("UNIMPLEMENTED"),
                                f"/SpiffeWorkloadAPI/Nope: want UNIMPLEMENTED, got {got}")
            streams = {
                "FetchWITSVID": pb.WITSVIDRequest(),
                "FetchWITBundles": pb.WITBundlesRequest(),
            }
            for method, req in streams.items():
                with self.subTest(method=method):
                    rpc = ch.unary_stream(f"/SpiffeWorkloadAPI/{method}",
                                          request_serializer=type(req).SerializeToString,
                                          response_deserializer=lambda b: b)
                    got = h.describe_rpc_error(
                        lambda: h.first_message(rpc(req, metadata=h.HEADER, timeout=5)))
                    self.assertTrue(got.startswith("UNIMPLEMENTED"),
                                    f"/SpiffeWorkloadAPI/{method}: want UNIMPLEMENTED, got {got}")
            with self.subTest(method="/other.Service/Method"):
                rpc = ch.unary_unary("/other.Service/Method", request_serializer=None,
                                     response_deserializer=None)
                got = h.describe_rpc_error(lambda: rpc(b"", metadata=h.HEADER, timeout=5))
                self.assertTrue(got.startswith("UNIMPLEMENTED"),
                                f"unknown service: want UNIMPLEMENTED, got {got}")

    def test_health_serving(self):
        status = h.health_check(self.d.target)
        self.assertEqual(status, h.health_pb2.HealthCheckResponse.SERVING)

    def test_health_unknown_service_not_found(self):
        # gRPC health checking protocol: an unknown service name fails with NOT_FOUND.
        got = h.describe_rpc_error(
            lambda: h.health_check(self.d.target, service="no.such.Service"))
        self.assertTrue(got.startswith("NOT_FOUND"), f"want NOT_FOUND, got {got}")

    def test_request_with_unknown_fields_is_accepted(self):
        # proto3 forward compatibility: a newer client may send fields we do not know.
        with h.channel(self.d.target) as ch:
            rpc = ch.unary_stream("/SpiffeWorkloadAPI/FetchX509SVID",
                                  response_deserializer=pb.X509SVIDResponse.FromString)
            unknown = b"\x08\x01" + b"\x9a\x05\x03abc"   # field 1 varint, field 83 bytes
            try:
                resp = h.first_message(rpc(unknown, metadata=h.HEADER, timeout=5))
            except grpc.RpcError as e:
                self.fail(f"unknown request fields rejected: {e.code().name} {e.details()}")
        self.assertEqual(resp.svids[0].spiffe_id, UID_ID)

    def test_malformed_request_is_rejected_and_daemon_survives(self):
        with h.channel(self.d.target) as ch:
            rpc = ch.unary_stream("/SpiffeWorkloadAPI/FetchX509SVID")
            code = h.rpc_error_code(lambda: h.first_message(
                rpc(b"\xff\xff\xff", metadata=h.HEADER, timeout=5)))
        self.assertIsNotNone(code, "a request that is not protobuf must not be answered")
        self.assertNotEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED, "malformed request hung")
        self.assertEqual(h.health_check(self.d.target), h.health_pb2.HealthCheckResponse.SERVING)

    def run_as(self, uid, gid):
        """Run a Python grpcio client as uid:gid (no supplementary groups); returns
        {method: X509SVIDResponse/X509BundlesResponse or grpc.StatusCode name}."""
        r = subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
             "/usr/bin/python3", "-I", "-c", _CHILD, self.d.socket],
            capture_output=True, text=True, timeout=30, cwd="/")
        self.assertEqual(r.returncode, 0, f"child failed:\n{r.stdout}{r.stderr}")
        fields = dict(f.split("=", 1) for f in r.stdout.split())
        self.assertEqual(fields.pop("uid"), f"{uid}:{gid}", "setpriv did not switch ids")
        out = {}
        for m, v in fields.items():
            if v.startswith("OK:"):
                cls = pb.X509SVIDResponse if m == "FetchX509SVID" else pb.X509BundlesResponse
                out[m] = cls.FromString(bytes.fromhex(v[3:]))
            else:
                out[m] = v
        return out

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run a child as another uid")
    def test_unregistered_uid_permission_denied(self):
        got = self.run_as(65534, 65534)
        self.assertEqual(got, {"FetchX509SVID": "PERMISSION_DENIED",
                               "FetchX509Bundles": "PERMISSION_DENIED"},
                         "a caller (uid 65534) with no matching entry must get PERMISSION_DENIED")

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run a child as another uid")
    def test_template_takes_the_attested_uid(self):
        # Entry: spiffe://example.org/uid/{unix:uid} selected by unix:uid:65533 + unix:gid:65533.
        got = self.run_as(OTHER_UID, OTHER_UID)
        svid_resp = got["FetchX509SVID"]
        self.assertIsInstance(svid_resp, pb.X509SVIDResponse,
                              f"uid {OTHER_UID} matches an entry, got {svid_resp}")
        self.assertEqual([s.spiffe_id for s in svid_resp.svids], [f"{h.TD_ID}/uid/{OTHER_UID}"])
        svidcheck.check_svid(svid_resp.svids[0], ttl=h.TTL_DEFAULT)
        self.assertIsInstance(got["FetchX509Bundles"], pb.X509BundlesResponse)

    def test_data_dir_is_private(self):
        # DESIGN.md §6: data directory 0700, key files 0600 (public certificates may be 0644).
        mode = stat.S_IMODE(os.stat(self.d.data_dir).st_mode)
        self.assertEqual(mode, 0o700, f"data_dir mode is {oct(mode)}, want 0o700")
        keys = 0
        for root, _, files in os.walk(self.d.data_dir):
            for name in files:
                p = os.path.join(root, name)
                with open(p, "rb") as f:
                    secret = b"PRIVATE KEY" in f.read() or "key" in name.lower()
                if secret:
                    keys += 1
                    m = stat.S_IMODE(os.stat(p).st_mode)
                    self.assertEqual(m & 0o077, 0, f"key file {p} is accessible by group/other ({oct(m)})")
        self.assertGreater(keys, 0, "expected the CA key somewhere under data_dir")


class CaPersistence(unittest.TestCase):
    def test_restart_keeps_ca(self):
        d = h.Daemon()
        self.addCleanup(d.kill)
        d.start()
        before = h.fetch_x509_bundles(d.target).bundles[h.TD_ID]
        d.stop()
        d.start()
        after_resp = h.fetch_x509_bundles(d.target)
        self.assertEqual(after_resp.bundles[h.TD_ID], before,
                         "the CA (bundle) must survive a restart on the same data_dir")
        svids = h.fetch_x509_svid(d.target)
        chain = svidcheck.load_der_certs(svids.svids[0].x509_svid, "x509_svid")
        svidcheck.openssl_verify(chain, svidcheck.load_der_certs(before, "old bundle"), modes=((),))
        d.stop()


if __name__ == "__main__":
    h.main()
