#!/usr/bin/python3
"""Transaction Token Service interop: hostile inputs (DESIGN §4, RFC 8725, RFC 6749 §5.2).

Each hostile request must be refused with the right OAuth error (JSON, no-store), must
not leak token material into the daemon log, and the daemon must keep serving other
clients meanwhile (checked right after, or concurrently for the slow cases). Hostile
JWKS endpoints come from idp.py: slow (longer than the daemon's 5 s fetch timeout),
50 MB (with and without Content-Length), and unreachable (a TCP connect that hangs).
Helpers are shared with test_txn.py."""

import http.client
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idp as idplib  # noqa: E402
import test_txn as T  # noqa: E402
from test_txn import h  # noqa: E402

SANITIZED = bool(os.environ.get("WIMSED_SANITIZED"))
JWKS_TIMEOUT = 5.0       # WI_JWKS_TOTAL_TIMEOUT_MS
CONNECT_TIMEOUT = 2.0    # WI_JWKS_CONNECT_TIMEOUT_MS


def raw_request(sock_path, head, body_chunks=(), timeout=15.0):
    """Sends `head` then the body chunks from a thread (the server may answer before
    reading them all, and stop reading), and parses the response with http.client."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    s.sendall(head)

    def send():
        try:
            for c in body_chunks:
                s.sendall(c)
        except OSError:
            pass

    t = threading.Thread(target=send, daemon=True)
    t.start()
    try:
        r = http.client.HTTPResponse(s)
        r.begin()
        return T.Resp(r.status, r.getheaders(), r.read())
    finally:
        s.close()
        t.join(5)


class Hostile(T.TxnCase):
    @classmethod
    def setUpClass(cls):
        c = cls.addClassCleanup
        cls.good = T.start_idp(c, "good")
        cls.es = idplib.IdP("https://es-file.idp.test/")
        cls.slow = T.start_idp(c, "slow", "slow")
        cls.slow.slow_seconds = JWKS_TIMEOUT + 3
        cls.huge = T.start_idp(c, "huge", "huge")
        cls.huge_cl = T.start_idp(c, "huge-cl", "huge_cl")
        cls.dead = T.start_idp(c, "dead", "blackhole")
        w = h.make_workdir("wimsed-txn-jwks-")
        jwks_file = cls.es.write_jwks(os.path.join(w, "es.json"))
        cls.d = T.start_txn_daemon(c, issuers=[
            cls.good.issuer_config(), cls.es.issuer_config(jwks_file=jwks_file),
            cls.slow.issuer_config(), cls.huge.issuer_config(), cls.huge_cl.issuer_config(),
            cls.dead.issuer_config()])
        # Prime the good issuer's key cache.
        r = T.unix_http(cls.d.xsock, "POST", "/token", form=T.exchange_form(cls.good.token()))
        if r.status != 200:
            raise AssertionError(f"priming exchange: {r}\n{cls.d.log_tail()}")

    # ---- helpers -------------------------------------------------------------------
    def good_exchange(self, agent=None):
        ut = self.good.token(sub="bystander", alg="ES256")
        r = agent.exchange(ut) if agent else self.exchange(ut)
        self.issued(r)

    def assert_serving_after(self):
        self.assert_serving()
        self.good_exchange()

    def assert_not_logged(self, *tokens):
        with open(self.d.log_path, "rb") as f:
            log = f.read().decode(errors="replace")
        for t in tokens:
            parts = [p for p in t.split(".") if len(p) >= 16]
            for p in parts[1:]:   # payload and signature segments
                self.assertNotIn(p, log, "token material in the daemon log")

    def refused(self, token, status, error, stt="access_token", **kw):
        r = self.exchange(token, stt=stt, **kw)
        j = self.assert_oauth_error(r, status, error)
        self.assert_not_logged(token)
        self.assert_serving_after()
        return j

    # ---- user tokens ---------------------------------------------------------------
    def test_alg_none(self):
        self.refused(self.good.token_alg_none(sub="eve"), 400, "invalid_request")

    def test_hs256_keyed_with_the_public_key(self):
        self.refused(self.good.token_hs256_with_public_key(sub="eve"), 400, "invalid_request")

    def test_expired(self):
        now = int(time.time())
        t = self.good.token(sub="eve", now=now - 900, lifetime=300)   # expired 600 s ago
        self.refused(t, 400, "invalid_request")

    def test_wrong_iss(self):
        evil = idplib.IdP("https://evil.idp.test/")
        self.refused(evil.token(sub="eve"), 400, "invalid_request")
        # A trusted iss and kid, signed by someone else's key.
        forged = evil.token(sub="eve", iss=self.good.issuer, kid=self.good.rsa_kid)
        self.refused(forged, 400, "invalid_request")

    def test_wrong_aud(self):
        self.refused(self.good.token(sub="eve", aud="https://other-api.test"), 400,
                     "invalid_request")
        self.refused(self.good.token(sub="eve", aud=None), 400, "invalid_request")

    def test_missing_sub(self):
        self.refused(self.good.token(sub=None), 400, "invalid_request")

    def test_garbage_tokens(self):
        for t in ("a.b", "not-a-jwt", "e30.e30.", "!!!.???.###", "eyJ" * 7000):
            with self.subTest(token=t[:20]):
                self.refused(t, 400, "invalid_request")

    def test_unknown_kid_with_cached_keys_fails_fast(self):
        t0 = time.monotonic()
        self.refused(self.good.token(sub="eve", kid="rotated-away"), 400, "invalid_request")
        self.assertLess(time.monotonic() - t0, 2.0)

    def test_unknown_kid_with_unreachable_jwks_url(self):
        other = T.Agent(self.d, None, self.addCleanup)
        result = {}

        def first():
            t0 = time.monotonic()
            result["r"] = self.exchange(self.dead.token(sub="eve", kid="never-seen"))
            result["t"] = time.monotonic() - t0

        th = threading.Thread(target=first)
        th.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        self.good_exchange(agent=other)      # another client, meanwhile
        meanwhile = time.monotonic() - t0
        th.join(30)
        self.assertFalse(th.is_alive())
        self.assertLess(meanwhile, 1.5, "another client waited for the dead IdP")
        self.assert_oauth_error(result["r"], 503, "temporarily_unavailable")
        self.assertLess(result["t"], CONNECT_TIMEOUT + 2.5, "the dead JWKS URL took too long")
        # The failure is remembered: the next attempt fails at once.
        t0 = time.monotonic()
        r = self.exchange(self.dead.token(sub="eve", kid="never-seen"))
        self.assertLess(time.monotonic() - t0, 1.0, "a second attempt stacked another timeout")
        self.assert_oauth_error(r, 503, "temporarily_unavailable")
        self.assert_serving_after()

    def test_slow_jwks(self):
        other = T.Agent(self.d, None, self.addCleanup)
        result = {}

        def slow():
            t0 = time.monotonic()
            result["r"] = self.exchange(self.slow.token(sub="eve"))
            result["t"] = time.monotonic() - t0

        th = threading.Thread(target=slow)
        th.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        self.good_exchange(agent=other)      # another client, while the fetch hangs
        self.assertLess(time.monotonic() - t0, 1.5, "another client waited for the slow IdP")
        self.good_exchange()
        th.join(30)
        self.assertFalse(th.is_alive())
        self.assertGreaterEqual(self.slow.requests, 1, "the slow JWKS was never fetched")
        self.assert_oauth_error(result["r"], 503, "temporarily_unavailable")
        self.assertGreater(result["t"], JWKS_TIMEOUT - 1.0)
        self.assertLess(result["t"], self.slow.slow_seconds, "the daemon waited for the slow IdP")
        t0 = time.monotonic()
        self.assert_oauth_error(self.exchange(self.slow.token(sub="eve")), 503,
                                "temporarily_unavailable")
        self.assertLess(time.monotonic() - t0, 1.0, "a second attempt stacked another timeout")
        self.assert_serving_after()

    def _huge(self, idp):
        rss0 = None if SANITIZED else self.d.rss_kib()
        t0 = time.monotonic()
        r = self.exchange(idp.token(sub="eve"))
        self.assertLess(time.monotonic() - t0, JWKS_TIMEOUT + 1)
        self.assert_oauth_error(r, 503, "temporarily_unavailable")
        self.assertGreaterEqual(idp.requests, 1)
        if rss0 is not None:
            self.assertLess(self.d.rss_kib() - rss0, 20 * 1024, "RSS grew by the 50 MB body")
        self.assert_serving_after()

    def test_50mb_jwks_without_content_length(self):
        self._huge(self.huge)

    def test_50mb_jwks_with_content_length(self):
        self._huge(self.huge_cl)

    def test_refresh_token_subject(self):
        self.refused(self.good.token(sub="eve"), 400, "invalid_request", stt="refresh_token")

    def test_other_token_types_and_grants(self):
        ut = self.good.token(sub="eve")
        self.refused(ut, 400, "invalid_request", stt="saml2")
        base = dict(T.exchange_form(ut))
        for name, value, status, error in (
                ("grant_type", "client_credentials", 400, "unsupported_grant_type"),
                ("grant_type", None, 400, "invalid_request"),
                ("requested_token_type", T.TT + "access_token", 400, "invalid_request"),
                ("subject_token_type", None, 400, "invalid_request"),
                ("audience", None, 400, "invalid_target"),
                ("actor_token_type", T.TT + "jwt", 400, "invalid_request")):
            with self.subTest(param=name, value=value):
                form = dict(base)
                if value is None:
                    form.pop(name)
                else:
                    form[name] = value
                self.assert_oauth_error(self.post("/token", list(form.items())), status, error)
        self.assert_serving_after()

    # ---- HTTP and form -------------------------------------------------------------
    def test_one_uid_cannot_take_every_connection(self):
        """WI_TTS_CONNECTIONS_PER_PEER_MAX (256) per uid on the exchange socket: a caller
        holding that many idle connections gets its next one closed at once, while a caller
        of another uid is still served."""
        PER_PEER = 256
        held = []
        try:
            for _ in range(PER_PEER):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.d.xsock)
                held.append(s)
            # the daemon accepts them in order; the next one from this uid is closed
            deadline = time.time() + 10
            while True:
                extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                extra.settimeout(2)
                extra.connect(self.d.xsock)
                try:
                    closed = extra.recv(1) == b""
                except (socket.timeout, ConnectionResetError):
                    closed = False
                finally:
                    extra.close()
                if closed:
                    break
                self.assertLess(time.time(), deadline, "the connection past the cap was held")
            probe = ("import http.client, socket, sys\n"
                     "s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])\n"
                     "s.sendall(b'GET /nothing HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')\n"
                     "r = http.client.HTTPResponse(s); r.begin(); print(r.status)\n")
            if os.geteuid() == 0:
                r = T.subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                      "/usr/bin/python3", "-I", "-c", probe, self.d.xsock],
                                     capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout.strip(), "404", "another uid is served")
        finally:
            for s in held:
                s.close()
        with open(self.d.log_path) as f:
            self.assertIn('reason="connection cap for this uid"', f.read())
        # and once they are gone, this uid is served again
        deadline = time.time() + 10
        while True:
            try:
                r = T.unix_http(self.d.xsock, "GET", "/nothing")
                break
            except OSError:
                self.assertLess(time.time(), deadline)
                time.sleep(0.1)
        self.assertEqual(r.status, 404)

    def test_1mib_body_is_413(self):
        body = b"a=" + b"x" * ((1 << 20) - 2)
        head = (b"POST /token HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body))
        chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)]
        self.assert_oauth_error(raw_request(self.d.xsock, head, chunks), 413, None)
        self.assert_serving_after()
        # The same without Content-Length (chunked).
        head = (b"POST /token HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        chunks = [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks] + [b"0\r\n\r\n"]
        self.assert_oauth_error(raw_request(self.d.xsock, head, chunks), 413, None)
        self.assert_serving_after()

    def test_10000_form_fields(self):
        def name(i):
            s = ""
            while True:
                s = "abcdefghijklmnopqrstuvwxyz0123456789"[i % 36] + s
                i //= 36
                if not i:
                    return "f" + s
        body = "&".join(f"{name(i)}=" for i in range(10000)).encode()
        self.assertLess(len(body), 64 * 1024, "must stay under the body limit to test the count")
        r = T.unix_http(self.d.xsock, "POST", "/token", body=body)
        self.assert_oauth_error(r, 400, "invalid_request")
        self.assert_serving_after()

    def test_deeply_nested_request_details(self):
        ut = self.good.token(sub="eve")
        for depth in (10000, 3000):   # 3000: under the 8 KiB parameter cap, so depth decides
            with self.subTest(depth=depth):
                details = '{"a":' + "[" * depth + "]" * depth + "}"
                form = T.exchange_form(ut, details=details)
                self.assertLess(len(T.urllib.parse.urlencode(form)), 64 * 1024)
                self.assert_oauth_error(self.post("/token", form), 400, "invalid_request")
                self.assert_serving_after()
        # Not a JSON object.
        for bad in ("[1]", '"s"', "{", '{"a":1}x', "{\"a\":\"\\ud800\"}"):
            with self.subTest(details=bad):
                self.assert_oauth_error(self.exchange(ut, details=bad), 400, "invalid_request")
                self.assert_oauth_error(self.exchange(ut, context=bad), 400, "invalid_request")

    def test_duplicate_parameter(self):
        ut = self.good.token(sub="eve", scope="calendar.read calendar.write")
        for dup in (("scope", "calendar.write"), ("subject_token", ut), ("grant_type", T.GRANT)):
            with self.subTest(param=dup[0]):
                r = self.post("/token", T.exchange_form(ut) + [dup])
                self.assert_oauth_error(r, 400, "invalid_request")
        # audience and resource may be given several times (RFC 8693 §2.1, RFC 8707 §2),
        # and a Txn-Token names one of each: invalid_target (RFC 8693 §2.2.2)
        for dup in (("audience", T.TD), ("resource", T.CAL)):
            with self.subTest(param=dup[0]):
                r = self.post("/token", T.exchange_form(ut, resource=T.CAL) + [dup])
                self.assert_oauth_error(r, 400, "invalid_target")
        self.assert_serving_after()

    def test_malformed_form_encoding(self):
        ut = self.good.token(sub="eve")
        good = T.urllib.parse.urlencode(T.exchange_form(ut))
        for bad in (good + "&x=%G1", good + "&x=%", good + "&x=%00", good + "&x=%C0%AF",
                    good + "&=v"):
            with self.subTest(tail=bad[-8:]):
                r = T.unix_http(self.d.xsock, "POST", "/token", body=bad.encode())
                self.assert_oauth_error(r, 400, "invalid_request")
        self.assert_serving_after()

    def test_content_type(self):
        ut = self.good.token(sub="eve")
        form = T.exchange_form(ut)
        for ct, body in (("application/json", json.dumps(dict(form)).encode()),
                         ("text/plain", T.urllib.parse.urlencode(form).encode()),
                         ("multipart/form-data; boundary=x", b"--x--\r\n"),
                         (None, T.urllib.parse.urlencode(form).encode())):
            with self.subTest(content_type=ct):
                r = T.unix_http(self.d.xsock, "POST", "/token", body=body, content_type=ct)
                self.assert_oauth_error(r, 415, None)
        # Media types are case-insensitive and may carry parameters.
        for ct in ("application/x-www-form-urlencoded; charset=UTF-8",
                   "Application/X-WWW-Form-URLEncoded"):
            with self.subTest(content_type=ct):
                r = T.unix_http(self.d.xsock, "POST", "/token",
                                body=T.urllib.parse.urlencode(form).encode(), content_type=ct)
                self.issued(r)
        self.assert_serving_after()

    def test_methods_and_paths(self):
        for method, path, allow in (("GET", "/token", "POST"), ("PUT", "/token", "POST"),
                                    ("GET", "/introspect", "POST"), ("GET", "/revoke", "POST"),
                                    ("POST", "/.well-known/jwks.json", "GET"),
                                    ("DELETE", "/.well-known/oauth-authorization-server", "GET")):
            with self.subTest(method=method, path=path):
                r = T.unix_http(self.d.xsock, method, path,
                                body=b"" if method in ("POST", "PUT") else None)
                self.assert_oauth_error(r, 405, None)
                self.assertEqual(r.headers.get("allow"), allow, r.headers)
        for path in ("/", "/tokens", "/dev/user-token", "/token/../revoke", "/.well-known/"):
            with self.subTest(path=path):
                r = T.unix_http(self.d.xsock, "POST", path, form=[("a", "b")])
                self.assert_oauth_error(r, 404, None)
        self.assert_serving_after()


if __name__ == "__main__":
    h.main()
