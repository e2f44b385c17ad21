#!/usr/bin/python3
"""JWT Workload API interop: the real wimsed driven by Python grpcio; tokens verified
with PyJWT against the JWKS from FetchJWTBundles (independent of our own verifier),
and ValidateJWTSVID fed good and forged tokens."""

import base64
import hmac
import json
import os
import subprocess
import time
import unittest

import grpc
import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (decode_dss_signature,
                                                              encode_dss_signature)
from google.protobuf import json_format

import wimsed_harness as h

UID_ID = f"{h.TD_ID}/uid/{h.UID}"
PY_ID = f"{h.TD_ID}/py"
AUD = "spiffe://example.org/backend"
# RFC 7518 / JWT-SVID: what a JWK in a public key set must never carry.
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def split_jws(token):
    parts = token.split(".")
    if len(parts) != 3:
        raise AssertionError(f"not a JWS compact serialization (3 parts): {token[:60]}...")
    return parts


class JwtWorkloadApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = h.start_daemon(cls)

    # ---- helpers ---------------------------------------------------------------------
    def jwks(self):
        resp = h.fetch_jwt_bundles(self.d.target)
        self.assertEqual(list(resp.bundles.keys()), [h.TD_ID],
                         "JWT bundles map key must be 'spiffe://example.org'")
        try:
            return json.loads(resp.bundles[h.TD_ID])
        except ValueError as e:
            self.fail(f"JWT bundle is not JSON: {e}: {resp.bundles[h.TD_ID][:200]!r}")

    def public_key_for(self, kid):
        keys = [k for k in self.jwks()["keys"] if k.get("kid") == kid]
        self.assertEqual(len(keys), 1, f"exactly one JWKS key must have the token's kid {kid!r}")
        return jwt.PyJWK(keys[0]).key

    def fetch(self, audience=(AUD,), spiffe_id=""):
        try:
            return h.fetch_jwt_svid(self.d.target, audience, spiffe_id)
        except grpc.RpcError as e:
            self.fail(f"FetchJWTSVID{list(audience)}: {e.code().name} {e.details()}")

    def verify(self, token, audience=AUD):
        """PyJWT verification against the published JWKS; returns the claims."""
        header = jwt.get_unverified_header(token)
        self.assertEqual(header.get("alg"), "ES256", f"header {header}: default alg is ES256")
        self.assertEqual(header.get("typ"), "JWT", f"header {header}: typ must be JWT")
        self.assertTrue(header.get("kid"), f"header {header}: kid is required by every client")
        key = self.public_key_for(header["kid"])
        try:
            return jwt.decode(token, key, algorithms=["ES256"], audience=audience,
                              options={"require": ["sub", "aud", "exp", "iat"]})
        except jwt.PyJWTError as e:
            self.fail(f"PyJWT rejects the JWT-SVID: {type(e).__name__}: {e}")

    def validation_cache(self):
        """(hits, misses) of the daemon's ValidateJWTSVID cache, from /metrics."""
        got = {}
        for line in h.metrics_text(self.d).splitlines():
            name, _, value = line.partition(" ")
            if name in ("wimsed_jwt_validation_cache_hits_total", "wimsed_jwt_validation_cache_misses_total"):
                got[name] = int(float(value))
        self.assertEqual(len(got), 2, "both validation-cache counters must be exported")
        return got["wimsed_jwt_validation_cache_hits_total"], got["wimsed_jwt_validation_cache_misses_total"]

    def validate_ok(self, audience, token):
        """ValidateJWTSVID that must succeed for PY_ID: the response and its claims as a dict."""
        try:
            resp = h.validate_jwt_svid(self.d.target, audience, token)
        except grpc.RpcError as e:
            self.fail(f"ValidateJWTSVID of our own token: {e.code().name} {e.details()}")
        self.assertEqual(resp.spiffe_id, PY_ID)
        return resp, json_format.MessageToDict(resp.claims)

    def validate_code(self, audience, token):
        return h.describe_rpc_error(lambda: h.validate_jwt_svid(self.d.target, audience, token))

    # ---- FetchJWTSVID ------------------------------------------------------------------
    def test_fetch_returns_all_identities_in_order(self):
        resp = self.fetch()
        self.assertEqual([s.spiffe_id for s in resp.svids], [UID_ID, PY_ID],
                         "no spiffe_id requested: one JWT-SVID per identity, config order")
        self.assertEqual([s.hint for s in resp.svids], ["dev", ""])

    def test_tokens_verify_with_pyjwt(self):
        now = time.time()
        for s in self.fetch().svids:
            with self.subTest(spiffe_id=s.spiffe_id):
                split_jws(s.svid)
                claims = self.verify(s.svid)
                self.assertEqual(claims["sub"], s.spiffe_id)
                aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
                self.assertEqual(aud, [AUD])
                self.assertLessEqual(claims["iat"], now + 5, "iat in the future")
                self.assertGreater(claims["exp"], now + 30, "token (nearly) expired at issue")
                lifetime = claims["exp"] - claims["iat"]
                self.assertTrue(30 <= lifetime <= 24 * 3600, f"odd lifetime {lifetime} s")

    def test_signature_is_raw_p1363_es256(self):
        # JWS ES256 signatures are r||s (64 bytes), not DER; check with `cryptography`.
        s = self.fetch().svids[0]
        head, body, sig = split_jws(s.svid)
        raw = b64url_decode(sig)
        self.assertEqual(len(raw), 64, "ES256 JWS signature must be 64 bytes r||s")
        key = self.public_key_for(json.loads(b64url_decode(head))["kid"])
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        key.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))

    def test_multiple_audiences(self):
        resp = self.fetch(audience=("aud-one", "aud-two"))
        for s in resp.svids:
            claims = self.verify(s.svid, audience="aud-one")
            self.assertEqual(sorted(claims["aud"]), ["aud-one", "aud-two"])

    def test_requested_spiffe_id(self):
        resp = self.fetch(spiffe_id=PY_ID)
        self.assertEqual([s.spiffe_id for s in resp.svids], [PY_ID])
        got = h.describe_rpc_error(lambda: h.fetch_jwt_svid(
            self.d.target, [AUD], spiffe_id=f"{h.TD_ID}/not-mine"))
        self.assertTrue(got.startswith("PERMISSION_DENIED"),
                        f"a SPIFFE ID the caller does not hold: want PERMISSION_DENIED, got {got}")

    def test_audience_required(self):
        got = h.describe_rpc_error(lambda: h.fetch_jwt_svid(self.d.target, []))
        self.assertTrue(got.startswith("INVALID_ARGUMENT"), f"no audience: got {got}")

    def test_cached_per_identity_and_sorted_audiences(self):
        # DESIGN.md §3: cache per (SPIFFE ID, sorted audiences).
        a = self.fetch(audience=("x-aud", "y-aud")).svids[0].svid
        b = self.fetch(audience=("x-aud", "y-aud")).svids[0].svid
        c = self.fetch(audience=("y-aud", "x-aud")).svids[0].svid
        d = self.fetch(audience=("x-aud",)).svids[0].svid
        self.assertEqual(a, b, "same identity and audiences: the cached token")
        self.assertEqual(a, c, "audience order must not matter for the cache")
        self.assertNotEqual(a, d, "different audiences: different token")

    def test_security_header_required(self):
        calls = {
            "FetchJWTSVID": lambda md: h.fetch_jwt_svid(self.d.target, [AUD], metadata=md),
            "FetchJWTBundles": lambda md: h.fetch_jwt_bundles(self.d.target, metadata=md),
            "ValidateJWTSVID": lambda md: h.validate_jwt_svid(self.d.target, AUD, "a.b.c",
                                                              metadata=md),
        }
        for method, call in calls.items():
            for label, md in (("missing", ()), ("false", (("workload.spiffe.io", "false"),))):
                with self.subTest(method=method, header=label):
                    got = h.describe_rpc_error(lambda: call(md))
                    self.assertTrue(got.startswith("INVALID_ARGUMENT"),
                                    f"{method} with header {label}: want INVALID_ARGUMENT, got {got}")

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run a child as another uid")
    def test_unregistered_uid_permission_denied(self):
        child = (
            "import sys, grpc\n"
            "ch = grpc.insecure_channel('unix:' + sys.argv[1])\n"
            "rpc = ch.unary_unary('/SpiffeWorkloadAPI/FetchJWTSVID')\n"
            "try:\n"
            "    rpc(bytes.fromhex(sys.argv[2]), metadata=(('workload.spiffe.io', 'true'),),"
            " timeout=5)\n"
            "    print('OK')\n"
            "except grpc.RpcError as e:\n"
            "    print(e.code().name)\n")
        req = h.pb.JWTSVIDRequest(audience=[AUD]).SerializeToString().hex()
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            "/usr/bin/python3", "-I", "-c", child, self.d.socket, req],
                           capture_output=True, text=True, timeout=30, cwd="/")
        self.assertEqual(r.stdout.strip(), "PERMISSION_DENIED", r.stdout + r.stderr)

    # ---- FetchJWTBundles ---------------------------------------------------------------
    def test_jwks(self):
        keys = self.jwks().get("keys")
        self.assertIsInstance(keys, list, "JWKS must have a 'keys' array")
        self.assertGreaterEqual(len(keys), 1)
        kids = [k.get("kid") for k in keys]
        self.assertTrue(all(kids), f"every JWK needs a non-empty kid (go-spiffe, py-spiffe): {kids}")
        self.assertEqual(len(kids), len(set(kids)), f"duplicate kids: {kids}")
        for k in keys:
            self.assertFalse(PRIVATE_JWK_MEMBERS & set(k), f"private key material in the JWKS: {k}")
            self.assertIn(k.get("kty"), ("EC", "RSA"), f"kty: {k}")
            jwt.PyJWK(k)   # parses as a public key

    def test_jwt_bundles_stream_first_message_promptly_and_stays_open(self):
        h.assert_first_promptly_then_open(self, self.d.target, h.jwt_bundles_stream,
                                          "FetchJWTBundles")

    # ---- ValidateJWTSVID ---------------------------------------------------------------
    def test_validate_accepts_a_fresh_token(self):
        token = self.fetch().svids[1].svid
        _, claims = self.validate_ok(AUD, token)
        self.assertEqual(claims.get("sub"), PY_ID)
        self.assertIn(AUD, claims.get("aud") if isinstance(claims.get("aud"), list)
                      else [claims.get("aud")])
        self.assertIsInstance(claims.get("exp"), (int, float), f"exp must be a number: {claims}")

    def test_validate_repeated_token_skips_the_signature_but_not_the_checks(self):
        # A new token (an audience set of its own), validated three times:
        # its signature is checked once, and the claims every time.
        token = self.fetch((AUD, "validation-cache-probe")).svids[1].svid
        hits0, misses0 = self.validation_cache()
        for _ in range(3):
            _, claims = self.validate_ok(AUD, token)
            self.assertEqual(claims.get("aud"), [AUD, "validation-cache-probe"])
        hits, misses = self.validation_cache()
        self.assertEqual((hits - hits0, misses - misses0), (2, 1),
                         "one signature check, then two answers from the cache")
        # Remembered, and still refused for an audience it does not carry.
        got = self.validate_code("spiffe://example.org/someone-else", token)
        self.assertTrue(got.startswith("INVALID_ARGUMENT") and "audience" in got, got)
        # Other bytes (one signature bit) are another token: checked and
        # refused every time, never remembered.
        head, body, sig = split_jws(token)
        raw = bytearray(b64url_decode(sig))
        raw[7] ^= 0x01
        forged = f"{head}.{body}.{b64url(bytes(raw))}"
        for _ in range(2):
            got = self.validate_code(AUD, forged)
            self.assertTrue(got.startswith("INVALID_ARGUMENT"), got)
        hits2, misses2 = self.validation_cache()
        self.assertEqual((hits2 - hits, misses2 - misses), (1, 2))

    def test_nul_bytes_in_strings_refused(self):
        # proto3 strings may hold U+0000; a C server that read them as C strings would
        # serve "backend\0evil" as "backend". Every request string with one is refused.
        token = self.fetch().svids[0].svid
        cases = {
            "FetchJWTSVID audience": lambda: h.fetch_jwt_svid(self.d.target, [AUD + "\x00evil"]),
            "FetchJWTSVID 2nd audience": lambda: h.fetch_jwt_svid(self.d.target, ["x", "\x00"]),
            "FetchJWTSVID spiffe_id": lambda: h.fetch_jwt_svid(self.d.target, [AUD],
                                                               spiffe_id=PY_ID + "\x00x"),
            "ValidateJWTSVID audience": lambda: h.validate_jwt_svid(self.d.target,
                                                                    AUD + "\x00x", token),
            "ValidateJWTSVID svid": lambda: h.validate_jwt_svid(self.d.target, AUD,
                                                                token + "\x00junk"),
            "Health service": lambda: h.health_check(self.d.target,
                                                     service="\x00SpiffeWorkloadAPI"),
        }
        for what, call in cases.items():
            with self.subTest(what):
                got = h.describe_rpc_error(call)
                self.assertEqual(got, "INVALID_ARGUMENT: a string field holds a NUL byte", what)
        self.assertIn("holds a NUL byte", self.d.log_tail(200), "each refusal is logged")
        # The same requests without the NUL are served.
        self.assertEqual(h.validate_jwt_svid(self.d.target, AUD, token).spiffe_id, UID_ID)
        self.assertEqual([s.spiffe_id for s in self.fetch(spiffe_id=PY_ID).svids], [PY_ID])

    def test_validate_rejects_bad_tokens(self):
        good = self.fetch().svids[0].svid
        head, body, sig = split_jws(good)
        header = json.loads(b64url_decode(head))
        claims = json.loads(b64url_decode(body))
        raw = bytearray(b64url_decode(sig))
        raw[5] ^= 0x01
        other_key = ec.generate_private_key(ec.SECP256R1())

        def forge(hdr, cl, key=other_key):
            h64 = b64url(json.dumps(hdr).encode())
            c64 = b64url(json.dumps(cl).encode())
            r, s = decode_dss_signature(key.sign(f"{h64}.{c64}".encode(), ec.ECDSA(hashes.SHA256())))
            return f"{h64}.{c64}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

        cases = {
            "wrong audience": ("spiffe://example.org/someone-else", good),
            "flipped signature bit": (AUD, f"{head}.{body}.{b64url(bytes(raw))}"),
            "claims changed, signature kept": (
                AUD, f"{head}.{b64url(json.dumps({**claims, 'sub': PY_ID}).encode())}.{sig}"),
            "signed by a foreign key with our kid": (AUD, forge(header, claims)),
            "alg none": (AUD, f"{b64url(json.dumps({**header, 'alg': 'none'}).encode())}.{body}."),
            "not a JWS": (AUD, "not-a-token"),
            "empty svid": (AUD, ""),
            "empty audience": ("", good),
        }
        for label, (aud, token) in cases.items():
            with self.subTest(case=label):
                got = self.validate_code(aud, token)
                self.assertTrue(got.startswith("INVALID_ARGUMENT"),
                                f"ValidateJWTSVID({label}): want INVALID_ARGUMENT (as SPIRE), got {got}")

    def test_validate_rejects_hs256_key_confusion(self):
        # Classic alg confusion: HS256 keyed with the public key's bytes.
        good = self.fetch().svids[0].svid
        header = jwt.get_unverified_header(good)
        claims = jwt.decode(good, options={"verify_signature": False})
        jwk = [k for k in self.jwks()["keys"] if k["kid"] == header["kid"]][0]
        secret = json.dumps(jwk).encode()
        h64 = b64url(json.dumps({"alg": "HS256", "kid": header["kid"], "typ": "JWT"}).encode())
        c64 = b64url(json.dumps(claims).encode())
        sig = b64url(hmac.new(secret, f"{h64}.{c64}".encode(), "sha256").digest())
        got = self.validate_code(AUD, f"{h64}.{c64}.{sig}")
        self.assertTrue(got.startswith("INVALID_ARGUMENT"), f"HS256 token accepted? {got}")


class JwtCacheHalfLife(unittest.TestCase):
    """A cached JWT-SVID is handed out byte-identical until half its lifetime,
    then re-signed (30 s tokens, so half-life is 15 s)."""

    @classmethod
    def setUpClass(cls):
        cls.d = h.start_daemon(cls, jwt_svid_ttl="30s")

    def test_identical_until_half_life_then_resigned(self):
        first = h.fetch_jwt_svid(self.d.target, ["half-life-aud"]).svids[0].svid
        iat = json.loads(b64url_decode(split_jws(first)[1]))["iat"]
        exp = json.loads(b64url_decode(split_jws(first)[1]))["exp"]
        self.assertEqual(exp - iat, 30)
        # Repeated fetches before half-life: the very same bytes (no signature).
        while time.time() < iat + 12:
            again = h.fetch_jwt_svid(self.d.target, ["half-life-aud"]).svids[0].svid
            self.assertEqual(again, first, "a cached token must be returned byte-identical")
            time.sleep(2)
        time.sleep(max(0.0, iat + 16 - time.time()))
        fresh = h.fetch_jwt_svid(self.d.target, ["half-life-aud"]).svids[0].svid
        self.assertNotEqual(fresh, first, "past half-life the token must be re-signed")
        fresh_iat = json.loads(b64url_decode(split_jws(fresh)[1]))["iat"]
        self.assertGreaterEqual(fresh_iat, iat + 15)


if __name__ == "__main__":
    h.main()
