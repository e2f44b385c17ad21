"""A test identity provider for the Transaction Token interop tests.

Independent of our code: keys are made with `cryptography`, user tokens are signed
with PyJWT (RS256 and ES256), and the JWKS is served by the standard library's
http.server on 127.0.0.1 (a free port, in a thread). Switches make the JWKS endpoint
hostile:

  mode "normal"     the JWKS, Cache-Control: max-age=300
  mode "slow"       the JWKS, after sleeping `slow_seconds`
  mode "huge"       a 50 MB body without Content-Length (close-delimited)
  mode "huge_cl"    a 50 MB body announced by Content-Length
  mode "blackhole"  unreachable: a listening socket whose accept queue is full and
                    never drained, so a TCP connect hangs (SYNs are dropped) until
                    the client's connect timeout
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import socket
import threading
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

HUGE_BYTES = 50 * 1024 * 1024
DEFAULT_AUDIENCE = "wimsed-test"


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj):
    return b64url(json.dumps(obj, separators=(",", ":")))


class IdP:
    """One issuer: an RSA-2048 and an EC P-256 key, tokens, and an optional JWKS server."""

    def __init__(self, issuer, audience=DEFAULT_AUDIENCE):
        self.issuer = issuer
        self.audience = audience
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        tag = os.urandom(4).hex()
        self.rsa_kid = "rsa-" + tag
        self.ec_kid = "ec-" + tag
        self.mode = "normal"
        self.slow_seconds = 8.0
        self.requests = 0          # JWKS requests answered or started
        self._server = None
        self._thread = None
        self._blackhole = None
        self._fillers = []
        self.port = None

    # ---- keys and tokens --------------------------------------------------------
    def jwks(self):
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa_key.public_key()))
        # Not PyJWT's ECAlgorithm.to_jwk: 2.6 (Debian 12) drops leading zero bytes of the
        # coordinates (1 key in ~128), which RFC 7518 §6.2.1.2 forbids (full 32 bytes).
        pn = self.ec_key.public_key().public_numbers()
        ec_jwk = {"kty": "EC", "crv": "P-256", "x": b64url(pn.x.to_bytes(32, "big")),
                  "y": b64url(pn.y.to_bytes(32, "big"))}
        rsa_jwk.update(kid=self.rsa_kid, alg="RS256", use="sig")
        ec_jwk.update(kid=self.ec_kid, alg="ES256", use="sig")
        return {"keys": [rsa_jwk, ec_jwk]}

    def write_jwks(self, path):
        with open(path, "w") as f:
            json.dump(self.jwks(), f)
        return path

    def rsa_public_pem(self):
        return self.rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def claims(self, sub="alice", scope="calendar.read", lifetime=300, now=None, **extra):
        now = int(time.time()) if now is None else now
        c = {"iss": self.issuer, "sub": sub, "aud": self.audience, "iat": now,
             "exp": now + lifetime, "jti": os.urandom(8).hex(), "client_id": "test-app"}
        c["scope"] = scope
        c.update(extra)
        return {k: v for k, v in c.items() if v is not None}   # None: leave the claim out

    def token(self, alg="RS256", typ=None, kid=None, claims=None, **kw):
        """A user token signed with PyJWT. kw go to claims() (None removes a claim)."""
        payload = claims if claims is not None else self.claims(**kw)
        if alg == "RS256":
            key, k = self.rsa_key, self.rsa_kid
        elif alg == "ES256":
            key, k = self.ec_key, self.ec_kid
        else:
            raise ValueError(alg)
        headers = {"kid": kid or k}
        if typ:
            headers["typ"] = typ
        return jwt.encode(payload, key, algorithm=alg, headers=headers)

    def token_alg_none(self, **kw):
        """Unsigned: header alg none, empty signature (PyJWT will not verify these)."""
        hdr = {"alg": "none", "typ": "JWT", "kid": self.rsa_kid}
        return f"{b64url_json(hdr)}.{b64url_json(self.claims(**kw))}."

    def token_hs256_with_public_key(self, **kw):
        """Algorithm confusion: HS256 keyed with the RSA public key PEM (PyJWT refuses
        to make these, so the HMAC is computed here)."""
        hdr = {"alg": "HS256", "typ": "JWT", "kid": self.rsa_kid}
        signing_input = f"{b64url_json(hdr)}.{b64url_json(self.claims(**kw))}"
        mac = hmac.new(self.rsa_public_pem(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"

    # ---- the JWKS endpoint -------------------------------------------------------
    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def start(self, mode="normal"):
        self.mode = mode
        if mode == "blackhole":
            self._start_blackhole()
            return self
        idp = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                idp.requests += 1
                try:
                    if idp.mode == "slow":
                        time.sleep(idp.slow_seconds)
                    if idp.mode in ("huge", "huge_cl"):
                        self._huge(idp.mode == "huge_cl")
                        return
                    body = json.dumps(idp.jwks()).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/jwk-set+json")
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Cache-Control", "max-age=300")
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _huge(self, with_length):
                self.close_connection = True
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if with_length:
                    self.send_header("Content-Length", str(HUGE_BYTES))
                self.send_header("Connection", "close")
                self.end_headers()
                chunk = b" " * (1 << 20)
                self.wfile.write(b'{"keys":[' + chunk[9:])
                for _ in range(HUGE_BYTES // len(chunk) - 1):
                    self.wfile.write(chunk)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass  # a client hanging up on the 50 MB body is expected

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def _start_blackhole(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(0)
        self.port = s.getsockname()[1]
        self._blackhole = s
        # Fill the accept queue; further SYNs are dropped, so connects hang.
        for _ in range(3):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self._fillers.append(c)
        time.sleep(0.1)

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for c in self._fillers:
            c.close()
        self._fillers = []
        if self._blackhole is not None:
            self._blackhole.close()
            self._blackhole = None

    def issuer_config(self, jwks_file=None, **extra):
        """The daemon's txn.issuers[] entry for this IdP (jwks_url unless jwks_file)."""
        c = {"issuer": self.issuer, "audiences": [self.audience]}
        if jwks_file:
            c["jwks_file"] = jwks_file
        else:
            c["jwks_url"] = self.url
        c.update(extra)
        return c
