#!/usr/bin/python3
"""Transaction Token Service interop (DESIGN §4; reference txn-tokens.md §1, §8).

The real wimsed is driven by independent tools only:
  - curl --unix-socket (the exchange, as an operator would type it);
  - a small HTTP/1.1 client over AF_UNIX (http.client), in this process and in child
    processes run as other uids by setpriv (the agents and sub-agents);
  - Python's ssl module with wimsectl's SVID files for HTTPS with SPIFFE mTLS (the
    server is verified against the bundle, then its URI SAN is compared with the
    issuer id: the certificate has no DNS name, so curl could only check it with -k);
  - PyJWT for every Txn-Token signature (keys from /.well-known/jwks.json);
  - a test IdP (idp.py: cryptography keys, PyJWT-signed user tokens, JWKS over HTTP).

Identities (registration entries, one per uid):
  planner    uid of this process (root): this process, curl, wimsectl, root children
  scheduler  uid 65533           a sub-agent
  mailer     uid 65532           a third agent
  nobody     uid 65534           an entry without `txn` (no tokens, not an admin)
Children as other uids need root; those tests are skipped otherwise.

The hostile-input tests are in test_txn_hostile.py (they share the helpers here).
"""

import base64
import datetime
import hashlib
import http.client
import json
import os
import select
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jwt  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

import idp as idplib  # noqa: E402
import wimsed_harness as h  # noqa: E402

TD = h.TRUST_DOMAIN
TD_ID = h.TD_ID
PLANNER = TD_ID + "/agent/planner"
SCHEDULER = TD_ID + "/agent/scheduler"
MAILER = TD_ID + "/agent/mailer"
NOBODY = TD_ID + "/nobody"
SCHEDULER_UID, MAILER_UID, NOBODY_UID, STRANGER_UID = 65533, 65532, 65534, 65531
IS_ROOT = os.geteuid() == 0

CAL = "https://calendar.example.com/"
MAIL = "https://mail.example.com/"
FILES = "https://files.example.com/"

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
TT = "urn:ietf:params:oauth:token-type:"
TXN_TYPE = TT + "txn_token"
FORM_CT = "application/x-www-form-urlencoded"
JWT_SPIFFE = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"
REQUIRED_CLAIMS = ["iss", "iat", "exp", "aud", "txn", "sub", "scope", "req_wl", "tctx", "rctx"]
DEFAULT_TTL = 300
needs_root = unittest.skipUnless(IS_ROOT, "needs root (children as other uids, admin revocation)")


def agent_entries():
    return [
        {"spiffe_id": PLANNER, "selectors": [f"unix:uid:{h.UID}"],
         "txn": {"allowed_scopes": ["calendar.read", "calendar.write", "mail.send", "contacts.read"],
                 "allowed_resources": [CAL, MAIL, FILES], "max_ttl": "5m",
                 "may_exchange_for": [SCHEDULER]}},
        {"spiffe_id": SCHEDULER, "selectors": [f"unix:uid:{SCHEDULER_UID}"],
         "txn": {"allowed_scopes": ["calendar.read", "calendar.write", "mail.send"],
                 "allowed_resources": [CAL, FILES], "max_ttl": "5m"}},
        {"spiffe_id": MAILER, "selectors": [f"unix:uid:{MAILER_UID}"],
         "txn": {"allowed_scopes": ["calendar.read", "mail.send"], "allowed_resources": [MAIL],
                 "max_ttl": "1m"}},
        {"spiffe_id": NOBODY, "selectors": [f"unix:uid:{NOBODY_UID}"]},
    ]


def node_name():
    """What the daemon derives from the host name (rctx.node, the issuer id's last segment)."""
    out = "".join(c if (c.isascii() and (c.isalnum() or c in "._-")) else "-"
                  for c in socket.gethostname().lower())
    return out if out not in ("", ".", "..") else "node"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def free_tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- HTTP over a Unix socket (http.client), and over TLS ---------------------------
class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body if isinstance(body, bytes) else body.encode()

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"HTTP {self.status} {self.body[:400]!r}"


def unix_http(sock, method, path, form=None, body=None, content_type=FORM_CT, headers=None,
              timeout=30.0):
    if form is not None:
        body = urllib.parse.urlencode(form).encode()
    hdrs = dict(headers or {})
    if body is not None and content_type:
        hdrs.setdefault("Content-Type", content_type)
    conn = UnixHTTPConnection(sock, timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return Resp(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def tls_context(files, with_cert=True):
    """Verifies the server against the SPIFFE bundle (no host name: the leaf has a URI SAN
    only); the caller then compares the URI SAN with the issuer id."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(os.path.join(files, "bundle.0.pem"))
    if with_cert:
        ctx.load_cert_chain(os.path.join(files, "svid.0.pem"), os.path.join(files, "svid.0.key"))
    return ctx


def https_request(port, ctx, method, path, form=None, timeout=30.0):
    """(Resp, the server's URI SANs)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
    try:
        conn.connect()
        peer = conn.sock.getpeercert()
        uris = [v for k, v in peer.get("subjectAltName", ()) if k == "URI"]
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        conn.request(method, path, body=body,
                     headers={"Content-Type": FORM_CT} if body is not None else {})
        r = conn.getresponse()
        return Resp(r.status, r.getheaders(), r.read()), uris
    finally:
        conn.close()


def exchange_form(subject_token, stt="access_token", scope="calendar.read", audience=TD,
                  actor_token=None, resource=None, details=None, context=None, extra=()):
    f = [("grant_type", GRANT), ("requested_token_type", TXN_TYPE), ("audience", audience),
         ("scope", scope), ("subject_token", subject_token), ("subject_token_type", TT + stt)]
    if actor_token is not None:
        f += [("actor_token", actor_token), ("actor_token_type", TT + "jwt")]
    if resource is not None:
        f.append(("resource", resource))
    if details is not None:
        f.append(("request_details", details if isinstance(details, str) else json.dumps(details)))
    if context is not None:
        f.append(("request_context", context if isinstance(context, str) else json.dumps(context)))
    f += list(extra)
    return f


# ---- child processes: agents under their own uid ------------------------------------
AGENT_SCRIPT = r'''
import http.client, json, os, socket, subprocess, sys, urllib.parse

class UHC(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.unix_path = path
    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(self.unix_path)
        self.sock = s

print(json.dumps({"pid": os.getpid(), "uid": os.getuid()}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "http":
        form = req.get("form")
        body = urllib.parse.urlencode([tuple(p) for p in form]).encode() if form is not None else None
        c = UHC(sys.argv[1])
        c.request(req["method"], req["path"], body=body,
                  headers={"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {})
        r = c.getresponse()
        data = r.read()
        c.close()
        out = {"status": r.status, "headers": r.getheaders(),
               "body": data.decode("utf-8", "replace")}
    elif req["op"] == "run":
        r = subprocess.run(req["argv"], capture_output=True, text=True, timeout=30)
        out = {"rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr}
    else:
        break
    print(json.dumps(out), flush=True)
'''


class Agent:
    """A long-lived child process (python3) as `uid`, speaking HTTP on the exchange socket
    when asked (one JSON line per request on stdin, one per answer on stdout). Its tokens
    live as long as it does (runs die with their agent)."""

    def __init__(self, d, uid=None, register_cleanup=None):
        self.d = d
        script = os.path.join(d.workdir, "agent.py")
        if not os.path.exists(script):
            with open(script, "w") as f:
                f.write(AGENT_SCRIPT)
            os.chmod(script, 0o644)
        args = ["setpriv", "--pdeathsig", "KILL"]
        if uid is not None and uid != os.getuid():
            args += [f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        args += ["/usr/bin/python3", "-I", script, d.xsock]
        self.err_path = os.path.join(d.workdir, f"agent-{uid}-{time.monotonic_ns()}.err")
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, text=True, cwd="/")
        if register_cleanup:
            register_cleanup(self.close)
        hello = self._read()
        self.pid, self.uid = hello["pid"], hello["uid"]

    def _read(self, timeout=40.0):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if r else ""
        if not line:
            self.close()
            with open(self.err_path, "rb") as f:
                err = f.read().decode(errors="replace")
            raise AssertionError(f"agent child gave no answer (rc={self.proc.poll()}):\n{err}")
        return json.loads(line)

    def _call(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def http(self, method, path, form=None):
        out = self._call(op="http", method=method, path=path, form=form)
        return Resp(out["status"], out["headers"], out["body"])

    def exchange(self, *a, **kw):
        return self.http("POST", "/token", exchange_form(*a, **kw))

    def run(self, argv):
        return self._call(op="run", argv=argv)

    def jwt_svid(self, audience):
        """Its own JWT-SVID, fetched with wimsectl (running as the same uid)."""
        out = self.run([h.WIMSECTL, "--socket", self.d.endpoint, "fetch", "jwt",
                        "--audience", audience])
        if out["rc"] != 0:
            raise AssertionError(f"wimsectl fetch jwt as uid {self.uid}: {out}")
        return out["stdout"].split()[1]

    def exit(self):
        """Ends the process normally (EOF on stdin) and waits for it."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(10)
        self.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for s in (self.proc.stdin, self.proc.stdout):
            try:
                if s and not s.closed:
                    s.close()
            except OSError:
                pass
        if not self._err.closed:
            self._err.close()


# ---- daemons ---------------------------------------------------------------------
def start_txn_daemon(register_cleanup, issuers=(), entries=None, **txn):
    """A daemon with the Transaction Token Service on <workdir>/exchange.sock."""
    w = h.make_workdir("wimsed-txn-")
    cfg = {"exchange_socket": os.path.join(w, "exchange.sock"), "issuers": list(issuers)}
    cfg.update(txn)
    d = h.Daemon(workdir=w, entries=agent_entries() if entries is None else entries, txn=cfg)
    d.xsock = cfg["exchange_socket"]
    register_cleanup(d.kill)
    d.start()
    register_cleanup(d.stop)
    meta = unix_http(d.xsock, "GET", "/.well-known/oauth-authorization-server")
    if meta.status != 200:
        raise AssertionError(f"metadata: {meta}\n{d.log_tail()}")
    d.issuer_id = meta.json["issuer"]
    return d


def start_idp(register_cleanup, name, mode="normal"):
    i = idplib.IdP(f"https://{name}.idp.test/")
    i.start(mode)
    register_cleanup(i.stop)
    return i


# ---- checks ------------------------------------------------------------------------
class TxnCase(unittest.TestCase):
    d = None

    # requests from this process (the planner)
    def post(self, path, form, d=None):
        return unix_http((d or self.d).xsock, "POST", path, form=form)

    def exchange(self, *a, d=None, **kw):
        return self.post("/token", exchange_form(*a, **kw), d=d)

    def introspect(self, token, d=None):
        r = self.post("/introspect", [("token", token)], d=d)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("cache-control"), "no-store", r.headers)
        return r.json

    def verified_cache(self):
        """{(metric, token kind): value} of the token service's verified-token caches."""
        body = h.metrics_text(self.d)
        got = {}
        for line in body.splitlines():
            for name in ("wimsed_txn_verified_cache_hits_total", "wimsed_txn_verified_cache_misses_total"):
                for kind in ("subject", "jwt_svid", "txn_token"):
                    prefix = f'{name}{{token="{kind}"}} '
                    if line.startswith(prefix):
                        got[(name.split("_")[4], kind)] = int(float(line[len(prefix):]))
        self.assertEqual(len(got), 6, body[-600:])
        return got

    def revoke(self, form, d=None):
        return self.post("/revoke", form, d=d)

    def assert_active(self, token, d=None, msg=""):
        j = self.introspect(token, d)
        self.assertIs(j.get("active"), True, f"{msg}: introspection {j}")
        return j

    def assert_inactive(self, token, d=None, msg=""):
        j = self.introspect(token, d)
        self.assertEqual(j, {"active": False}, msg)

    def assert_oauth_error(self, r, status, error):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.headers.get("content-type", "").split(";")[0], "application/json", r)
        self.assertEqual(r.headers.get("cache-control"), "no-store", r.headers)
        j = r.json
        if isinstance(error, (tuple, list)):
            self.assertIn(j.get("error"), error, r)
        elif error is not None:
            self.assertEqual(j.get("error"), error, r)
        self.assertIsInstance(j.get("error"), str, r)
        self.assertIsInstance(j.get("error_description", ""), str, r)
        self.assertNotIn("access_token", j, r)
        return j

    def issued(self, r, expect_max_ttl=DEFAULT_TTL):
        """The token of a successful exchange response (RFC 8693 §2.2.1, draft §6.2)."""
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("content-type", "").split(";")[0], "application/json")
        self.assertEqual(r.headers.get("cache-control"), "no-store", r.headers)
        j = r.json
        self.assertEqual(set(j), {"access_token", "issued_token_type", "token_type", "expires_in"}, j)
        self.assertEqual(j["issued_token_type"], TXN_TYPE)
        self.assertEqual(j["token_type"], "N_A")
        self.assertIsInstance(j["expires_in"], int)
        self.assertTrue(0 < j["expires_in"] <= expect_max_ttl, j["expires_in"])
        self.assertIsInstance(j["access_token"], str)
        return j["access_token"], j

    def verify(self, token, d=None):
        """PyJWT verification against /.well-known/jwks.json: (header, claims)."""
        d = d or self.d
        hdr = jwt.get_unverified_header(token)
        self.assertEqual(hdr.get("typ"), "txntoken+jwt", hdr)
        self.assertEqual(hdr.get("alg"), "ES256", hdr)
        self.assertIsInstance(hdr.get("kid"), str)
        r = unix_http(d.xsock, "GET", "/.well-known/jwks.json")
        self.assertEqual(r.status, 200, r)
        keys = [k for k in r.json["keys"] if k.get("kid") == hdr["kid"]]
        self.assertEqual(len(keys), 1, f"kid {hdr['kid']} not (once) in the JWKS {r.json}")
        self.assertEqual((keys[0].get("kty"), keys[0].get("crv")), ("EC", "P-256"))
        self.assertNotIn("d", keys[0], "private key in the JWKS")
        key = jwt.PyJWK(keys[0]).key
        claims = jwt.decode(token, key, algorithms=["ES256"], audience=TD, issuer=d.issuer_id,
                            options={"require": REQUIRED_CLAIMS})
        return hdr, claims

    def check_claims(self, claims, *, sub, actors, scope, resources=(), transport="uds",
                     authn="unix-attestation", sub_id=None, user_profile=True, consent=None,
                     details=None, context=None, exchanged_by=None, tctx=None, d=None,
                     max_ttl=DEFAULT_TTL, max_exp=None):
        """Every claim, its value, type and nesting. `actors`: the chain root first (the
        last is the current actor); empty for an autonomous run (no act)."""
        d = d or self.d
        now = time.time()
        self.assertEqual(claims["iss"], d.issuer_id)
        self.assertEqual(claims["iss"], f"{TD_ID}/wimsed/{node_name()}")
        for c in ("iat", "exp"):
            self.assertIs(type(claims[c]), int, c)
        self.assertLessEqual(abs(claims["iat"] - now), 5, "iat is not now")
        self.assertGreater(claims["exp"], claims["iat"])
        self.assertLessEqual(claims["exp"] - claims["iat"], max_ttl)
        if max_exp is not None:
            self.assertLessEqual(claims["exp"], max_exp)
        self.assertEqual(claims["aud"], TD)
        self.assertIsInstance(claims["txn"], str)
        self.assertGreaterEqual(len(claims["txn"]), 16)
        self.assertEqual(claims["sub"], sub)
        self.assertEqual(claims["sub_profile"], "user" if user_profile else "ai_agent")
        self.assertIsInstance(claims["scope"], str)
        self.assertEqual(claims["scope"].split(" "), scope.split(" "))
        current = actors[-1] if actors else sub
        self.assertEqual(claims["req_wl"], current)
        expected = {"iss", "iat", "exp", "aud", "txn", "sub", "sub_profile", "scope", "req_wl",
                    "tctx", "rctx", "agentic_ctx"}
        if sub_id is not None:
            expected.add("sub_id")
            self.assertEqual(claims["sub_id"], {"format": "iss_sub", **sub_id})
        if actors:
            expected.add("act")
            act = None
            for a in actors:
                act = {"sub": a, "sub_profile": "ai_agent", **({"act": act} if act else {})}
            self.assertEqual(claims["act"], act, "act (outermost = current actor)")
        self.assertEqual(set(claims), expected, "claim set")
        path = list(actors) if actors else [sub]
        self.assertEqual(claims["agentic_ctx"],
                         {"chain_metadata": {"hop_count": len(path), "txn_path": path}})
        rctx = {"transport": transport, "node": node_name(), "authn": authn}
        if context is not None:
            rctx["request"] = context
        if exchanged_by is not None:
            rctx["exchanged_by"] = exchanged_by
        self.assertEqual(claims["rctx"], rctx)
        if tctx is None:
            tctx = {"resource": list(resources)}
            if details is not None:
                tctx["details"] = details
            if consent is not None:
                user_token, user_claims = consent
                tctx["consent"] = {
                    "issuer": user_claims["iss"],
                    "token_hash": b64url(hashlib.sha256(user_token.encode()).digest()[:16]),
                    "token_iat": user_claims["iat"], "delegated_at": claims["iat"]}
        self.assertEqual(claims["tctx"], tctx)
        for k in ("iat", "token_iat", "delegated_at"):
            v = claims["tctx"].get("consent", {}).get(k)
            self.assertTrue(v is None or type(v) is int, k)
        return claims

    def delegated(self, idp, sub="alice", user_scope="calendar.read calendar.write",
                  scope="calendar.read", alg="RS256", lifetime=300, agent=None, **kw):
        """A user token from `idp`, exchanged by this process (or `agent`): (token, claims)."""
        ut = idp.token(alg=alg, sub=sub, scope=user_scope, lifetime=lifetime)
        r = (agent.exchange if agent else self.exchange)(ut, scope=scope, **kw)
        tok, _ = self.issued(r)
        return tok, self.verify(tok)[1]

    def wait_inactive(self, token, within=3.0, msg=""):
        deadline = time.monotonic() + within
        while True:
            j = self.introspect(token)
            if j == {"active": False}:
                return
            if time.monotonic() > deadline:
                self.fail(f"{msg}: still active after {within} s: {j}")
            time.sleep(0.05)

    def assert_serving(self, d=None):
        d = d or self.d
        self.assertEqual(h.health_check(d.target), h.health_pb2.HealthCheckResponse.SERVING)
        r = unix_http(d.xsock, "GET", "/.well-known/jwks.json")
        self.assertEqual(r.status, 200, r)


# =====================================================================================
# 1. Delegated exchange with curl --unix-socket; PyJWT verification
# =====================================================================================
class DelegatedExchange(TxnCase):
    @classmethod
    def setUpClass(cls):
        cls.rs_idp = start_idp(cls.addClassCleanup, "rs")
        cls.es_idp = idplib.IdP("https://es.idp.test/")
        w = h.make_workdir("wimsed-txn-jwks-")
        jwks_file = cls.es_idp.write_jwks(os.path.join(w, "es-jwks.json"))
        cls.d = start_txn_daemon(cls.addClassCleanup, issuers=[
            cls.rs_idp.issuer_config(),
            cls.es_idp.issuer_config(jwks_file=jwks_file, algorithms=["ES256"])])

    def curl_exchange(self, form):
        w = h.make_workdir("wimsed-txn-curl-")
        hdr, body = os.path.join(w, "headers"), os.path.join(w, "body")
        args = ["curl", "-sS", "--max-time", "20", "--unix-socket", self.d.xsock,
                "-D", hdr, "-o", body, "-w", "%{http_code}", "http://localhost/token"]
        for k, v in form:
            args += ["--data-urlencode", f"{k}={v}"]
        r = subprocess.run(args, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(hdr, newline="") as f:
            blocks = [b for b in f.read().split("\r\n\r\n") if b.startswith("HTTP/")]
        lines = blocks[-1].split("\r\n")
        headers = [tuple(x.strip() for x in ln.split(":", 1)) for ln in lines[1:] if ":" in ln]
        with open(body, "rb") as f:
            return Resp(int(r.stdout), headers, f.read())

    def _curl_case(self, idp, alg):
        ut = idp.token(alg=alg, sub="alice-" + alg, scope="calendar.read calendar.write mail.send",
                       lifetime=600)
        ut_claims = jwt.decode(ut, options={"verify_signature": False})
        details = {"action": "create_event", "calendar": "primary", "n": [1, 2, {"x": None}]}
        context = {"run_id": "run_01J9", "ip": "192.0.2.7"}
        form = exchange_form(ut, scope="calendar.read calendar.write", resource=CAL,
                             details=details, context=context)
        r = self.curl_exchange(form)
        tok, body = self.issued(r)
        self.assertNotIn("refresh_token", body)
        hdr, claims = self.verify(tok)
        self.check_claims(claims, sub="alice-" + alg, actors=[PLANNER],
                          scope="calendar.read calendar.write", resources=[CAL],
                          sub_id={"iss": idp.issuer, "sub": "alice-" + alg},
                          consent=(ut, ut_claims), details=details, context=context,
                          max_exp=ut_claims["exp"])
        self.assertLessEqual(abs(body["expires_in"] - (claims["exp"] - claims["iat"])), 1)
        # Draft §6.1: the Txn-Token never contains the external token.
        self.assertNotIn(ut.split(".")[2], json.dumps(claims))
        self.assertNotIn(ut, tok)
        # curl has exited: its run died with it.
        self.wait_inactive(tok, msg="the run of an exited curl")
        return claims

    def test_rs256_user_token_via_jwks_url_with_curl(self):
        self._curl_case(self.rs_idp, "RS256")
        self.assertGreaterEqual(self.rs_idp.requests, 1, "the daemon never fetched the JWKS URL")

    def test_es256_user_token_via_jwks_file_with_curl(self):
        self._curl_case(self.es_idp, "ES256")

    def test_libcurl_loaded_for_a_jwks_url_issuer(self):
        # The config names a jwks_url: libcurl was opened at start, not at the first token.
        libs = self.d.mapped_libraries()
        self.assertTrue(any(x.startswith("libcurl.so.4") for x in libs), sorted(libs))


    def test_es_issuer_refuses_rs256(self):
        """The issuer's algorithms allow-list (ES256 only) applies."""
        ut = self.es_idp.token(alg="RS256", sub="carol")
        self.assert_oauth_error(self.exchange(ut), 400, "invalid_request")

    def test_in_process_introspection_while_alive(self):
        ut = self.rs_idp.token(sub="dave", scope="calendar.read", lifetime=120)
        tok, j = self.issued(self.exchange(ut, stt="id_token"))
        _, claims = self.verify(tok)
        self.assertLessEqual(claims["exp"], jwt.decode(ut, options={"verify_signature": False})["exp"])
        intro = self.assert_active(tok)
        self.assertEqual(intro["token_type"], TXN_TYPE)
        for k, v in claims.items():
            self.assertEqual(intro[k], v, f"introspection claim {k}")
        # txn is unique per exchange.
        tok2, _ = self.issued(self.exchange(ut))
        self.assertNotEqual(self.verify(tok2)[1]["txn"], claims["txn"])
        # Not ours / malformed / a user token: inactive, never an error.
        self.assertEqual(self.introspect("not.a.token"), {"active": False})
        self.assertEqual(self.introspect(ut), {"active": False})
        tampered = tok[:-8] + ("AAAAAAAA" if not tok.endswith("AAAAAAAA") else "BBBBBBBB")
        self.assertEqual(self.introspect(tampered), {"active": False})

    def test_metadata_and_jwks(self):
        r = unix_http(self.d.xsock, "GET", "/.well-known/oauth-authorization-server")
        self.assertEqual(r.status, 200, r)
        m = r.json
        self.assertEqual(m["issuer"], f"{TD_ID}/wimsed/{node_name()}")
        self.assertIn(GRANT, m["grant_types_supported"])
        self.assertIn(TXN_TYPE, m["issued_token_types_supported"])
        # /revoke is an admin kill switch, not RFC 7009's endpoint: not advertised as one
        self.assertNotIn("revocation_endpoint", m)
        r = unix_http(self.d.xsock, "GET", "/.well-known/jwks.json")
        self.assertEqual(r.status, 200)
        ks = jwt.PyJWKSet.from_dict(r.json)
        self.assertGreaterEqual(len(ks.keys), 1)

    def test_autonomous_run(self):
        """Subject = the agent's own JWT-SVID (aud = issuer id), …:jwt, no iss."""
        svid = h.fetch_jwt_svid(self.d.target, [self.d.issuer_id]).svids[0]
        self.assertEqual(svid.spiffe_id, PLANNER)
        tok, _ = self.issued(self.exchange(svid.svid, stt="jwt", scope="mail.send", resource=MAIL))
        _, claims = self.verify(tok)
        self.check_claims(claims, sub=PLANNER, actors=[], user_profile=False, scope="mail.send",
                          resources=[MAIL])
        # Someone else's audience: refused.
        other = h.fetch_jwt_svid(self.d.target, ["https://elsewhere.test"]).svids[0].svid
        self.assert_oauth_error(self.exchange(other, stt="jwt"), 400, "invalid_request")


class LibrariesOnDemand(TxnCase):
    """Without a jwks_url issuer the daemon never maps libcurl nor what it pulls in, and
    without NOTIFY_SOCKET not libsystemd either (txn-token/jwks_fetch.c, daemon/notify.c)."""
    ON_DEMAND = ("libcurl", "libgnutls", "libkrb5", "libgssapi_krb5", "libldap", "libssh2", "librtmp",
                 "libnghttp2", "libp11-kit", "libsystemd", "libgcrypt", "liblzma", "liblz4")

    @classmethod
    def setUpClass(cls):
        cls.idp = idplib.IdP("https://file.idp.test/")
        w = h.make_workdir("wimsed-txn-file-")
        jwks_file = cls.idp.write_jwks(os.path.join(w, "jwks.json"))
        cls.d = start_txn_daemon(cls.addClassCleanup, issuers=[
            cls.idp.issuer_config(jwks_file=jwks_file, algorithms=["ES256"])])

    def assert_not_mapped(self):
        libs = self.d.mapped_libraries()
        self.assertTrue(any(x.startswith("libgrpc.so") for x in libs), sorted(libs))  # the probe works
        mapped = sorted(x for x in libs if x.split(".so")[0] in self.ON_DEMAND)
        self.assertEqual(mapped, [], sorted(libs))

    def test_exchange_and_form_decoding_without_libcurl(self):
        self.assert_not_mapped()
        # urlencode sends spaces as '+', and '+', '&', '=', '%' percent-encoded: the daemon's
        # decoder (txn-token/form.c) must give back exactly these details.
        details = {"note": "a+b & c=d % e", "path": "/x?y=1&z=%41"}
        ut = self.idp.token(alg="ES256", sub="zoe", scope="calendar.read calendar.write")
        form = exchange_form(ut, scope="calendar.read calendar.write", resource=CAL, details=details)
        self.assertIn("+", urllib.parse.urlencode(form))
        tok, _ = self.issued(self.post("/token", form))
        claims = self.verify(tok)[1]
        self.assertEqual(claims["scope"], "calendar.read calendar.write")
        self.assertEqual(claims["tctx"]["details"], details)
        self.assert_not_mapped()

    def test_jwks_url_without_libcurl_fails_at_start(self):
        """A node that could not fetch its IdP's keys must not start as if it could."""
        w = h.make_workdir("wimsed-txn-nocurl-")
        d = h.Daemon(workdir=w, entries=agent_entries(), txn={
            "exchange_socket": os.path.join(w, "exchange.sock"),
            "issuers": [{"issuer": self.idp.issuer, "audiences": [self.idp.audience],
                         "jwks_url": "http://127.0.0.1:9/jwks"}]})
        r = d.run_to_exit(h.daemon_env(LD_LIBRARY_PATH=h.bogus_library_dir("libcurl.so.4")))
        self.assertNotEqual(r.returncode, 0, r.stderr)
        log = r.stderr + r.stdout
        if os.path.exists(d.log_path):
            with open(d.log_path) as f:
                log += f.read()
        self.assertIn("cannot load libcurl.so.4", log)
        self.assertIn("libcurl.so.4: file too short", log)  # the loader's reason
        self.assertIn(self.idp.issuer, log)
        self.assertFalse(os.path.exists(os.path.join(w, "exchange.sock")), "it never served")

# =====================================================================================
# 2. HTTPS with SPIFFE mTLS, and jwt-spiffe client assertions
# =====================================================================================
class HttpsExchange(TxnCase):
    @classmethod
    def setUpClass(cls):
        cls.idp = start_idp(cls.addClassCleanup, "tls")
        cls.port = free_tcp_port()
        cls.d = start_txn_daemon(cls.addClassCleanup, issuers=[cls.idp.issuer_config()],
                                 https_listen=f"127.0.0.1:{cls.port}")
        cls.files = os.path.join(cls.d.workdir, "svid-files")
        r = subprocess.run([h.WIMSECTL, "--socket", cls.d.endpoint, "fetch", "x509", "--write",
                            cls.files], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError(f"wimsectl fetch x509 --write: {r.stdout}{r.stderr}")

    def https(self, form, with_cert=True, path="/token"):
        r, uris = https_request(self.port, tls_context(self.files, with_cert), "POST", path, form)
        # The server authenticated itself as the TTS: its SVID names our issuer id.
        self.assertEqual(uris, [self.d.issuer_id])
        return r

    def test_x509_svid_client(self):
        ut = self.idp.token(sub="erin", scope="calendar.read mail.send")
        tok, _ = self.issued(self.https(exchange_form(ut, scope="mail.send", resource=MAIL)))
        _, claims = self.verify(tok)
        self.check_claims(claims, sub="erin", actors=[PLANNER], scope="mail.send", resources=[MAIL],
                          transport="https", authn="x509-svid",
                          sub_id={"iss": self.idp.issuer, "sub": "erin"},
                          consent=(ut, jwt.decode(ut, options={"verify_signature": False})))
        # Introspection over HTTPS too.
        r = self.https([("token", tok)], path="/introspect")
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json.get("active"), True, r)

    def test_no_client_authentication_is_invalid_client(self):
        ut = self.idp.token(sub="erin")
        r = self.https(exchange_form(ut), with_cert=False)
        self.assert_oauth_error(r, 401, "invalid_client")

    def test_jwt_spiffe_client_assertion(self):
        svid = h.fetch_jwt_svid(self.d.target, [self.d.issuer_id]).svids[0]
        self.assertEqual(svid.spiffe_id, PLANNER)
        ut = self.idp.token(sub="frank")
        form = exchange_form(ut) + [("client_assertion_type", JWT_SPIFFE),
                                    ("client_assertion", svid.svid)]
        tok, _ = self.issued(self.https(form, with_cert=False))
        _, claims = self.verify(tok)
        self.check_claims(claims, sub="frank", actors=[PLANNER], scope="calendar.read",
                          transport="https", authn="jwt-svid",
                          sub_id={"iss": self.idp.issuer, "sub": "frank"},
                          consent=(ut, jwt.decode(ut, options={"verify_signature": False})))

    def test_repeated_client_assertion_and_subject_verified_once(self):
        # The same JWT-SVID client assertion and the same user token, twice:
        # each signature is checked the first time only, and the second
        # exchange is as valid as the first.
        svid = h.fetch_jwt_svid(self.d.target, [self.d.issuer_id, "cache-probe"]).svids[0]
        ut = self.idp.token(sub="grace")
        form = exchange_form(ut) + [("client_assertion_type", JWT_SPIFFE), ("client_assertion", svid.svid)]
        before = self.verified_cache()
        for _ in range(2):
            tok, _ = self.issued(self.https(form, with_cert=False))
            _, claims = self.verify(tok)
            self.check_claims(claims, sub="grace", actors=[PLANNER], scope="calendar.read",
                              transport="https", authn="jwt-svid",
                              sub_id={"iss": self.idp.issuer, "sub": "grace"},
                              consent=(ut, jwt.decode(ut, options={"verify_signature": False})))
        after = self.verified_cache()
        delta = {k: after[k] - before[k] for k in after}
        self.assertEqual(delta[("misses", "jwt_svid")], 1, delta)
        self.assertGreaterEqual(delta[("hits", "jwt_svid")], 1, delta)
        self.assertEqual(delta[("misses", "subject")], 1, delta)
        self.assertEqual(delta[("hits", "subject")], 1, delta)
        # The remembered assertion with one signature bit flipped is other
        # bytes: checked and refused every time, never remembered.
        head, body, sig = svid.svid.split(".")
        raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
        raw[9] ^= 0x01
        forged = f"{head}.{body}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"
        form2 = exchange_form(ut) + [("client_assertion_type", JWT_SPIFFE), ("client_assertion", forged)]
        for _ in range(2):
            self.assert_oauth_error(self.https(form2, with_cert=False), 401, "invalid_client")
        final = self.verified_cache()
        self.assertEqual(final[("misses", "jwt_svid")] - after[("misses", "jwt_svid")], 2)
        self.assertEqual(final[("hits", "jwt_svid")], after[("hits", "jwt_svid")])

    def test_client_assertion_for_another_audience_is_invalid_client(self):
        svid = h.fetch_jwt_svid(self.d.target, ["https://elsewhere.test"]).svids[0]
        form = exchange_form(self.idp.token(sub="frank")) + [
            ("client_assertion_type", JWT_SPIFFE), ("client_assertion", svid.svid)]
        self.assert_oauth_error(self.https(form, with_cert=False), 401, "invalid_client")

    def test_server_is_verified_and_tls12_refused(self):
        ctx = tls_context(self.files)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with self.assertRaises(ssl.SSLError):
            https_request(self.port, ctx, "GET", "/.well-known/jwks.json")
        # A client trusting another CA refuses the server.
        w = h.make_workdir("wimsed-txn-foreign-")
        k = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "foreign")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(k.public_key()).serial_number(1)
                .not_valid_before(now - datetime.timedelta(minutes=1))
                .not_valid_after(now + datetime.timedelta(hours=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(k, hashes.SHA256()))
        with open(os.path.join(w, "bundle.0.pem"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with self.assertRaises(ssl.SSLCertVerificationError):
            https_request(self.port, tls_context(w, with_cert=False), "GET", "/.well-known/jwks.json")


# =====================================================================================
# 3. Sub-agents: replacement tokens, widening, loops, hops
# =====================================================================================
@needs_root
class SubAgents(TxnCase):
    @classmethod
    def setUpClass(cls):
        cls.idp = start_idp(cls.addClassCleanup, "sub")
        cls.d = start_txn_daemon(cls.addClassCleanup, issuers=[cls.idp.issuer_config()], max_hops=2)
        cls.scheduler = Agent(cls.d, SCHEDULER_UID, cls.addClassCleanup)
        cls.mailer = Agent(cls.d, MAILER_UID, cls.addClassCleanup)

    def parent(self, sub, lifetime=120):
        """T1: the planner (this process) for `sub`, scope calendar.read+write, resource CAL;
        the user token expires in `lifetime` s, so T1.exp = the user token's exp."""
        ut = self.idp.token(sub=sub, scope="calendar.read calendar.write", lifetime=lifetime)
        tok, _ = self.issued(self.exchange(ut, scope="calendar.read calendar.write", resource=CAL))
        return tok, self.verify(tok)[1], ut

    def test_replacement_by_sub_agent(self):
        t1, c1, ut = self.parent("grace")
        self.assertEqual(c1["exp"], jwt.decode(ut, options={"verify_signature": False})["exp"])
        r = self.scheduler.exchange(t1, stt="txn_token", scope="calendar.read", resource=CAL,
                                    details={"step": "freebusy"})
        t2, body = self.issued(r)
        _, c2 = self.verify(t2)
        tctx = dict(c1["tctx"], resource=[CAL], replacement_details={"step": "freebusy"})
        self.check_claims(c2, sub="grace", actors=[PLANNER, SCHEDULER], scope="calendar.read",
                          sub_id={"iss": self.idp.issuer, "sub": "grace"}, tctx=tctx,
                          max_exp=c1["exp"])
        for k in ("txn", "sub", "sub_id", "aud", "sub_profile"):
            self.assertEqual(c2[k], c1[k], f"{k} must be kept")
        self.assertEqual(c2["act"]["sub"], SCHEDULER, "outermost act = current actor")
        self.assertEqual(c2["act"]["act"], c1["act"])
        self.assertEqual(c2["tctx"]["consent"], c1["tctx"]["consent"])
        self.assertGreaterEqual(c2["iat"], c1["iat"])
        self.assertLessEqual(body["expires_in"], c1["exp"] - c2["iat"])
        self.assert_active(t2)

    def test_widening_scope_is_invalid_scope(self):
        t1, _, _ = self.parent("heidi")
        # mail.send: allowed by the scheduler's policy, but not in the parent's scope.
        r = self.scheduler.exchange(t1, stt="txn_token", scope="calendar.read mail.send")
        self.assert_oauth_error(r, 400, "invalid_scope")

    def test_resource_outside_parent_is_invalid_target(self):
        t1, _, _ = self.parent("ivan")
        # FILES: allowed by the scheduler's policy, but not among the parent's resources.
        r = self.scheduler.exchange(t1, stt="txn_token", scope="calendar.read", resource=FILES)
        self.assert_oauth_error(r, 400, "invalid_target")

    def test_loop_is_invalid_request(self):
        t1, _, _ = self.parent("judy")
        # The planner is already in the path; 2 hops would be within max_hops 2.
        self.assert_oauth_error(self.exchange(t1, stt="txn_token"), 400, "invalid_request")
        t2, _ = self.issued(self.scheduler.exchange(t1, stt="txn_token"))
        self.assert_oauth_error(self.exchange(t2, stt="txn_token"), 400, "invalid_request")
        self.assert_oauth_error(self.scheduler.exchange(t2, stt="txn_token"), 400, "invalid_request")

    def test_more_than_max_hops_is_invalid_request(self):
        t1, _, _ = self.parent("mallet")
        t2, _ = self.issued(self.scheduler.exchange(t1, stt="txn_token"))
        # planner -> scheduler -> mailer: 3 hops > max_hops 2.
        self.assert_oauth_error(self.mailer.exchange(t2, stt="txn_token"), 400, "invalid_request")
        # The mailer itself may replace (2 hops): only the hop count refused it.
        t3, body = self.issued(self.mailer.exchange(t1, stt="txn_token"), expect_max_ttl=60)
        c3 = self.verify(t3)[1]
        self.assertEqual(c3["agentic_ctx"]["chain_metadata"]["txn_path"], [PLANNER, MAILER])
        self.assertLessEqual(c3["exp"] - c3["iat"], 60, "the mailer's max_ttl (1m) applies")

    def test_forged_parent_is_invalid_request(self):
        t1, c1, _ = self.parent("oscar")
        forged_key = idplib.IdP("https://forger.test/").ec_key
        hdr = jwt.get_unverified_header(t1)
        forged = jwt.encode(dict(c1, scope="calendar.read mail.send"), forged_key, algorithm="ES256",
                            headers={"kid": hdr["kid"], "typ": "txntoken+jwt"})
        r = self.scheduler.exchange(forged, stt="txn_token", scope="mail.send")
        self.assert_oauth_error(r, 400, "invalid_request")
        # A user token presented as a Txn-Token.
        ut = self.idp.token(sub="oscar")
        self.assert_oauth_error(self.scheduler.exchange(ut, stt="txn_token"), 400, "invalid_request")


# =====================================================================================
# 4. Down-scoping, targets, orchestrators
# =====================================================================================
@needs_root
class ScopesAndTargets(TxnCase):
    @classmethod
    def setUpClass(cls):
        cls.idp = start_idp(cls.addClassCleanup, "scope")
        cls.typed = start_idp(cls.addClassCleanup, "typed")
        cls.lax = start_idp(cls.addClassCleanup, "lax")
        cls.lax_scp = start_idp(cls.addClassCleanup, "laxscp")
        cls.d = start_txn_daemon(cls.addClassCleanup, issuers=[
            cls.idp.issuer_config(),
            cls.typed.issuer_config(token_type="at+jwt", scope_claim="scp"),
            cls.lax.issuer_config(scope_optional=True),
            cls.lax_scp.issuer_config(scope_claim="scp", scope_optional=True)])
        cls.scheduler = Agent(cls.d, SCHEDULER_UID, cls.addClassCleanup)

    def test_granted_is_the_requested_subset(self):
        ut = self.idp.token(sub="peggy", scope="calendar.read calendar.write mail.send")
        tok, _ = self.issued(self.exchange(ut, scope="calendar.write"))
        self.assertEqual(self.verify(tok)[1]["scope"], "calendar.write")

    def test_scope_not_in_user_token(self):
        ut = self.idp.token(sub="peggy", scope="calendar.read")
        self.assert_oauth_error(self.exchange(ut, scope="calendar.read calendar.write"), 400,
                                "invalid_scope")

    def test_scope_not_in_policy(self):
        ut = self.idp.token(sub="peggy", scope="calendar.read admin.all")
        self.assert_oauth_error(self.exchange(ut, scope="admin.all"), 400, "invalid_scope")

    def test_user_token_without_scope(self):
        ut = self.idp.token(sub="peggy", scope=None)
        self.assert_oauth_error(self.exchange(ut, scope="calendar.read"), 400, "invalid_scope")

    def test_scope_optional_issuer(self):
        """scope_optional: a token without the claim is bounded by the policy alone; one
        whose claim is there but empty grants nothing (never read as "absent")."""
        tok, _ = self.issued(self.exchange(self.lax.token(sub="olga", scope=None), scope="calendar.write"))
        self.assertEqual(self.verify(tok)[1]["scope"], "calendar.write")
        self.assert_oauth_error(self.exchange(self.lax.token(sub="olga", scope=None), scope="admin.all"), 400,
                                "invalid_scope")
        for label, ut in (("scope empty", self.lax.token(sub="olga", scope="")),
                          ("scope blank", self.lax.token(sub="olga", scope="   ")),
                          ("scp []", self.lax_scp.token(sub="olga", scope=None, scp=[]))):
            with self.subTest(label):
                self.assert_oauth_error(self.exchange(ut, scope="calendar.read"), 400, "invalid_scope")
        tok, _ = self.issued(self.exchange(self.lax_scp.token(sub="olga", scope=None), scope="calendar.read"))
        self.assertEqual(self.verify(tok)[1]["scope"], "calendar.read")

    def test_missing_or_malformed_scope_parameter(self):
        ut = self.idp.token(sub="peggy")
        self.assert_oauth_error(self.exchange(ut, scope=""), 400, "invalid_scope")
        self.assert_oauth_error(self.exchange(ut, scope='calendar.read "x"'), 400, "invalid_scope")

    def test_audience_not_the_trust_domain(self):
        ut = self.idp.token(sub="peggy")
        for aud in ("other.org", TD_ID, "example.org.", "EXAMPLE.ORG"):
            with self.subTest(audience=aud):
                self.assert_oauth_error(self.exchange(ut, audience=aud), 400, "invalid_target")

    def test_resource_not_allowed(self):
        ut = self.idp.token(sub="peggy")
        for res in ("https://evil.example.com/", CAL + "x", "https://calendar.example.com"):
            with self.subTest(resource=res):
                self.assert_oauth_error(self.exchange(ut, resource=res), 400, "invalid_target")

    def test_typed_issuer_scp_array(self):
        ut = self.typed.token(sub="quinn", typ="at+jwt", scope=None,
                              scp=["calendar.read", "calendar.write"])
        tok, _ = self.issued(self.exchange(ut, scope="calendar.write"))
        self.assertEqual(self.verify(tok)[1]["scope"], "calendar.write")
        self.assert_oauth_error(self.exchange(ut, scope="mail.send"), 400, "invalid_scope")
        # Explicit typing (RFC 8725 §3.11): a token of another typ is refused.
        plain = self.typed.token(sub="quinn", typ="JWT", scope=None, scp=["calendar.read"])
        self.assert_oauth_error(self.exchange(plain), 400, "invalid_request")

    def test_orchestrator_with_may_exchange_for(self):
        actor = self.scheduler.jwt_svid(self.d.issuer_id)
        ut = self.idp.token(sub="rupert", scope="calendar.read contacts.read")
        ut_claims = jwt.decode(ut, options={"verify_signature": False})
        tok, _ = self.issued(self.exchange(ut, scope="calendar.read", actor_token=actor))
        _, claims = self.verify(tok)
        self.check_claims(claims, sub="rupert", actors=[SCHEDULER], scope="calendar.read",
                          sub_id={"iss": self.idp.issuer, "sub": "rupert"},
                          consent=(ut, ut_claims), exchanged_by=PLANNER)
        # The actor's policy applies, not the orchestrator's (contacts.read is the planner's).
        self.assert_oauth_error(self.exchange(ut, scope="contacts.read", actor_token=actor), 400,
                                "invalid_scope")

    def test_actor_token_without_permission(self):
        mailer = Agent(self.d, MAILER_UID, self.addCleanup)
        actor = mailer.jwt_svid(self.d.issuer_id)
        ut = self.idp.token(sub="sybil")
        # The scheduler has no may_exchange_for; neither may the planner act for the mailer.
        self.assert_oauth_error(self.scheduler.exchange(ut, actor_token=actor), 400,
                                "unauthorized_client")
        self.assert_oauth_error(self.exchange(ut, actor_token=actor), 400, "unauthorized_client")

    def test_autonomous_subject_must_be_the_actor(self):
        svid = self.scheduler.jwt_svid(self.d.issuer_id)
        self.assert_oauth_error(self.exchange(svid, stt="jwt"), 400, "invalid_request")

    def test_actor_token_for_another_audience(self):
        svid = h.fetch_jwt_svid(self.d.target, ["https://elsewhere.test"]).svids[0].svid
        ut = self.idp.token(sub="sybil")
        self.assert_oauth_error(self.exchange(ut, actor_token=svid), 400, "invalid_request")

    def test_entry_without_txn_and_unattested_caller(self):
        nobody = Agent(self.d, NOBODY_UID, self.addCleanup)
        ut = self.idp.token(sub="trent")
        self.assert_oauth_error(nobody.exchange(ut), 400, "unauthorized_client")
        stranger = Agent(self.d, STRANGER_UID, self.addCleanup)
        self.assert_oauth_error(stranger.exchange(ut), 401, "invalid_client")


# =====================================================================================
# 5. The kill switch
# =====================================================================================
@needs_root
class KillSwitch(TxnCase):
    def setUp(self):
        self.idp = start_idp(self.addCleanup, "kill")
        self.d = start_txn_daemon(self.addCleanup, issuers=[self.idp.issuer_config()])
        self.scheduler = Agent(self.d, SCHEDULER_UID, self.addCleanup)

    def chain(self, sub):
        """T1 (planner, this process) and T2 (the scheduler's replacement of T1)."""
        t1, c1 = self.delegated(self.idp, sub=sub)
        t2, _ = self.issued(self.scheduler.exchange(t1, stt="txn_token"))
        return t1, c1, t2

    def test_revoke_by_txn(self):
        t1, c1, t2 = self.chain("alice")
        other, _ = self.delegated(self.idp, sub="alice")
        # Both tokens verified once (t1 by the replacement, t2 here), so the
        # daemon remembers them: the answers after the revocation come from
        # that cache and must still be "inactive".
        self.assert_active(t1)
        self.assert_active(t2)
        before = self.verified_cache()
        t0 = time.monotonic()
        r = self.revoke([("txn", c1["txn"])])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json.get("revoked"), True, r)
        self.assertEqual(r.headers.get("cache-control"), "no-store")
        self.assert_inactive(t1, msg="revoked txn")
        self.assert_inactive(t2, msg="the replacement shares the revoked txn")
        after = self.verified_cache()
        self.assertEqual((after[("hits", "txn_token")] - before[("hits", "txn_token")],
                          after[("misses", "txn_token")] - before[("misses", "txn_token")]), (2, 0),
                         "both answers came from the cache of verified Txn-Tokens")
        self.assert_oauth_error(self.scheduler.exchange(t1, stt="txn_token"), 400, "invalid_request")
        self.assertLess(time.monotonic() - t0, 1.0, "revocation took effect within the second")
        self.assert_active(other, msg="another txn of the same user")

    def test_revoke_by_spiffe_id(self):
        t1, _, t2 = self.chain("bob")
        r = self.revoke([("spiffe_id", SCHEDULER)])
        self.assertEqual(r.status, 200, r)
        self.assert_inactive(t2, msg="the revoked agent is in the chain")
        self.assert_active(t1, msg="the planner's own token")
        ut = self.idp.token(sub="bob")
        self.assert_oauth_error(self.scheduler.exchange(ut), 400,
                                ("unauthorized_client", "invalid_request"))
        self.assert_oauth_error(self.scheduler.exchange(t1, stt="txn_token"), 400,
                                ("unauthorized_client", "invalid_request"))
        self.issued(self.exchange(ut))  # the planner is unaffected

    def test_revoke_by_principal_kills_existing_tokens(self):
        tm, _, tm2 = self.chain("mallory")
        tb, _ = self.delegated(self.idp, sub="bob")
        r = self.revoke([("principal_iss", self.idp.issuer), ("principal_sub", "mallory")])
        self.assertEqual(r.status, 200, r)
        self.assert_inactive(tm, msg="revoked principal")
        self.assert_inactive(tm2, msg="revoked principal (replacement)")
        self.assert_active(tb, msg="another principal")
        self.assert_oauth_error(self.scheduler.exchange(tm, stt="txn_token"), 400, "invalid_request")

    def test_revocation_lifetimes(self):
        """A run's revocation lasts as long as its tokens can (1 h + leeway); an agent's or a
        person's keeps them from new tokens for 30 days by default, expires_in chooses
        1 h .. 366 days, and a malformed or out-of-range one is refused."""
        t, _ = self.delegated(self.idp, sub="ursula")
        txn = jwt.decode(t, options={"verify_signature": False})["txn"]
        now = int(time.time())
        r = self.revoke([("txn", txn)])
        self.assertEqual(r.status, 200, r)
        self.assertAlmostEqual(r.json["expires_at"], now + 3600 + 30, delta=5)
        r = self.revoke([("principal_iss", self.idp.issuer), ("principal_sub", "victor")])
        self.assertEqual(r.status, 200, r)
        self.assertAlmostEqual(r.json["expires_at"], now + 30 * 86400, delta=5)
        r = self.revoke([("spiffe_id", TD_ID + "/gone-agent"), ("expires_in", "7200")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["kind"], "spiffe_id")
        self.assertAlmostEqual(r.json["expires_at"], now + 7200, delta=5)
        for bad in ("60", "3629", "31622401", "-7200", "+7200", "7200s", "", "99999999999999999999"):
            with self.subTest(expires_in=bad):
                self.assert_oauth_error(self.revoke([("spiffe_id", TD_ID + "/x"), ("expires_in", bad)]), 400,
                                        "invalid_request")
        # a run's revocation cannot be shortened or stretched
        self.assert_oauth_error(self.revoke([("txn", txn), ("expires_in", "7200")]), 400, "invalid_request")

    def test_revoke_by_principal_refuses_new_exchanges(self):
        r = self.revoke([("principal_iss", self.idp.issuer), ("principal_sub", "mallory")])
        self.assertEqual(r.status, 200, r)
        ut = self.idp.token(sub="mallory")
        r = self.exchange(ut)
        if r.status == 200:
            tok = r.json["access_token"]
            self.fail("a new Txn-Token was issued for a revoked principal (introspection of it: "
                      f"{self.introspect(tok)})")
        self.assert_oauth_error(r, 400, ("invalid_request", "unauthorized_client", "invalid_grant"))
        self.issued(self.exchange(self.idp.token(sub="bob")))

    def test_revoked_orchestrator_gets_no_tokens(self):
        """A revoked agent gets no new tokens, not even as another agent's orchestrator."""
        actor = self.scheduler.jwt_svid(self.d.issuer_id)
        ut = self.idp.token(sub="frank")
        self.issued(self.exchange(ut, actor_token=actor))   # allowed before the revocation
        r = self.revoke([("spiffe_id", PLANNER)])
        self.assertEqual(r.status, 200, r)
        self.assert_oauth_error(self.exchange(ut), 400, ("unauthorized_client", "invalid_request"))
        r = self.exchange(ut, actor_token=actor)
        if r.status == 200:
            self.fail("the revoked planner obtained a token for the scheduler (introspection: "
                      f"{self.introspect(r.json['access_token']).get('active')})")
        self.assert_oauth_error(r, 400, ("unauthorized_client", "invalid_request"))
        self.issued(self.scheduler.exchange(ut))   # the scheduler itself is not revoked

    def test_non_admin_is_forbidden(self):
        t1, c1 = self.delegated(self.idp, sub="carol")
        nobody = Agent(self.d, NOBODY_UID, self.addCleanup)
        for who, agent in (("uid 65534", nobody), ("scheduler", self.scheduler)):
            for form in ([("txn", c1["txn"])], [("spiffe_id", PLANNER)],
                         [("principal_iss", self.idp.issuer), ("principal_sub", "carol")]):
                with self.subTest(caller=who, form=form[0][0]):
                    r = agent.http("POST", "/revoke", form)
                    self.assert_oauth_error(r, 403, None)
        self.assert_active(t1, msg="nothing was revoked")
        self.issued(self.exchange(self.idp.token(sub="carol")))
        # Admin, but not exactly one kind of value.
        for form in ([], [("txn", c1["txn"]), ("spiffe_id", PLANNER)],
                     [("principal_iss", self.idp.issuer)], [("spiffe_id", "not-a-spiffe-id")]):
            with self.subTest(admin_form=form):
                self.assert_oauth_error(self.revoke(form), 400, "invalid_request")

    def test_run_dies_with_its_agent(self):
        parent = Agent(self.d, None, self.addCleanup)   # root: the planner, in another process
        ut = self.idp.token(sub="dave")
        t1, _ = self.issued(parent.exchange(ut, scope="calendar.read"))
        t2, _ = self.issued(self.scheduler.exchange(t1, stt="txn_token"))
        mine, _ = self.delegated(self.idp, sub="dave")
        self.assert_active(t1, msg="the parent is alive")
        self.assert_active(t2, msg="the parent is alive")
        parent.exit()
        self.wait_inactive(t1, msg="the run of an exited agent")
        self.assert_inactive(t2, msg="the sub-agent's replacement of a dead run")
        self.assert_oauth_error(self.scheduler.exchange(t1, stt="txn_token"), 400, "invalid_request")
        self.assert_active(mine, msg="a run of a live agent (this process)")
        # The sub-agent's own exit does not revoke anything of its own parent's runs
        # beyond that (replacements are not runs); a fresh chain still works.
        self.issued(self.exchange(self.idp.token(sub="dave")))

    def unpersisted(self):
        for line in h.metrics_text(self.d).splitlines():
            if line.startswith("wimsed_revocations_unpersisted "):
                return float(line.split()[1])
        self.fail("no wimsed_revocations_unpersisted in /metrics")

    def test_run_dies_while_the_store_refuses_writes(self):
        """A full disk when the agent exits: its run dies anyway (in memory), the
        metric and the log say it is not durable yet, and the tick writes it once
        the store takes writes again, so a restart keeps it dead."""
        parent = Agent(self.d, None, self.addCleanup)
        t1, _ = self.issued(parent.exchange(self.idp.token(sub="fay"), scope="calendar.read"))
        self.assert_active(t1, msg="the agent is alive")
        self.assertEqual(self.unpersisted(), 0)
        # Another connection to the daemon's own database makes every write to
        # the revocation log fail, as a full disk or an I/O error would.
        db = sqlite3.connect(os.path.join(self.d.data_dir, "state.db"), timeout=10)
        self.addCleanup(db.close)
        db.execute("CREATE TRIGGER wi_test_fail BEFORE INSERT ON revocation_log"
                   " BEGIN SELECT RAISE(ABORT, 'injected write failure'); END")
        db.commit()
        parent.exit()
        self.wait_inactive(t1, msg="the run of an agent that exited while the store refused writes")
        self.assertEqual(self.unpersisted(), 1)
        time.sleep(1.5)  # a tick or two: still refused, still in force
        self.assert_inactive(t1, msg="not durable, still revoked")
        self.assertEqual(self.unpersisted(), 1)
        with open(self.d.log_path, encoding="utf-8", errors="replace") as f:
            log = f.read()
        self.assertIn("run_revoked_not_durable", log)
        self.assertIn("injected write failure", log)
        self.assertIn("revocations_persist_failed", log)
        # The operator's kill switch acts too, and says it is not stored yet.
        t2, c2 = self.delegated(self.idp, sub="gil")
        self.assert_active(t2, msg="before the operator revokes it")
        r = self.revoke([("txn", c2["txn"])])
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json["error"], "temporarily_unavailable")
        self.assertIn("not stored", r.json["error_description"])
        self.assert_inactive(t2, msg="revoked by the operator while the store refused writes")
        self.assertEqual(self.unpersisted(), 2)
        db.execute("DROP TRIGGER wi_test_fail")
        db.commit()
        deadline = time.monotonic() + 10
        while self.unpersisted() != 0:
            self.assertLess(time.monotonic(), deadline, "the tick never wrote the revocation\n" + self.d.log_tail())
            time.sleep(0.1)
        self.d.stop()
        self.d.start()
        self.assert_inactive(t1, msg="a run revoked while the store refused writes, after a restart")
        self.assert_inactive(t2, msg="an operator's revocation made while the store refused writes, after a restart")
        self.assertEqual(self.unpersisted(), 0)

    def test_revocations_survive_restart(self):
        t1, c1, _ = self.chain("erin")
        tp, _ = self.delegated(self.idp, sub="eve")
        ctrl, _ = self.delegated(self.idp, sub="erin")
        for form in ([("txn", c1["txn"])], [("spiffe_id", SCHEDULER)],
                     [("principal_iss", self.idp.issuer), ("principal_sub", "eve")]):
            r = self.revoke(form)
            self.assertEqual(r.status, 200, r)
        self.scheduler.close()
        self.d.stop()
        self.d.start()
        self.assert_inactive(t1, msg="revoked by txn, after a restart")
        self.assert_inactive(tp, msg="revoked by principal, after a restart")
        self.assert_active(ctrl, msg="not revoked, after a restart (same keys)")
        scheduler = Agent(self.d, SCHEDULER_UID, self.addCleanup)
        self.assert_oauth_error(scheduler.exchange(self.idp.token(sub="erin")), 400,
                                ("unauthorized_client", "invalid_request"))


# =====================================================================================
# 7. The CLI round trip with the development issuer
# =====================================================================================
class Cli(TxnCase):
    @classmethod
    def setUpClass(cls):
        cls.d = start_txn_daemon(cls.addClassCleanup, dev_issuer=True)

    def ctl(self, *args, env=None, check=True):
        e = dict(os.environ)
        e.update(env or {})
        r = subprocess.run([h.WIMSECTL, *args], capture_output=True, text=True, timeout=30, env=e)
        if check:
            self.assertEqual(r.returncode, 0, f"wimsectl {args[:3]}: {r.stdout}{r.stderr}")
        return r

    def test_dev_user_token_exchange_verify(self):
        s = ["--socket", self.d.xsock]
        ut = self.ctl(*s, "dev", "user-token", "--sub", "alice", "--scope",
                      "calendar.read calendar.write").stdout.strip()
        uh = jwt.get_unverified_header(ut)
        uc = jwt.decode(ut, options={"verify_signature": False})
        self.assertEqual((uh["typ"], uh["alg"]), ("at+jwt", "ES256"))
        self.assertEqual((uc["sub"], uc["scope"], uc["aud"]), ("alice", "calendar.read calendar.write",
                                                              "wimsed"))
        w = h.make_workdir("wimsed-txn-cli-")
        path = os.path.join(w, "user.jwt")
        with open(path, "w") as f:
            f.write(ut + "\n")
        out = self.ctl("exchange", "--subject-token", "@" + path, "--scope", "calendar.read",
                       "--resource", CAL, "--details", '{"k":"v"}', "--context", '{"c":1}',
                       env={"WIMSED_EXCHANGE_SOCKET": self.d.xsock})
        body = json.loads(out.stdout)
        self.assertEqual(body["token_type"], "N_A")
        self.assertEqual(body["issued_token_type"], TXN_TYPE)
        tok = body["access_token"]
        _, claims = self.verify(tok)
        self.check_claims(claims, sub="alice", actors=[PLANNER], scope="calendar.read",
                          resources=[CAL], sub_id={"iss": uc["iss"], "sub": "alice"},
                          consent=(ut, uc), details={"k": "v"}, context={"c": 1},
                          max_exp=uc["exp"])
        v = self.ctl(*s, "token", "verify", tok)
        self.assertTrue(v.stdout.startswith(f"signature valid (kid {jwt.get_unverified_header(tok)['kid']})"),
                        v.stdout)
        printed = json.loads(v.stdout.split("\n", 1)[1])
        self.assertEqual(printed, claims)
        dec = json.loads(self.ctl("token", "decode", tok).stdout)
        self.assertEqual(dec["claims"], claims)
        self.assertEqual(dec["header"]["typ"], "txntoken+jwt")
        # A tampered token does not verify.
        parts = tok.split(".")
        forged_claims = dict(claims, scope="calendar.write")
        forged = ".".join([parts[0], b64url(json.dumps(forged_claims).encode()), parts[2]])
        r = self.ctl(*s, "token", "verify", forged, check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        # wimsectl exchange has exited: its run is dead (introspect exits 1 when inactive).
        deadline = time.monotonic() + 3
        while True:
            r = self.ctl(*s, "introspect", tok, check=False)
            if r.returncode == 1:
                break
            self.assertLess(time.monotonic(), deadline, f"still active: {r.stdout}")
            time.sleep(0.05)
        self.assertEqual(json.loads(r.stdout), {"active": False})
        # Errors come back as one line and exit 1.
        r = self.ctl(*s, "exchange", "--subject-token", ut, "--scope", "mail.send", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("invalid_scope", r.stderr)

    @needs_root
    def test_cli_revoke(self):
        ut = self.ctl("--socket", self.d.xsock, "dev", "user-token", "--sub", "bob", "--scope",
                      "calendar.read").stdout.strip()
        tok, _ = self.issued(self.exchange(ut))
        txn = self.verify(tok)[1]["txn"]
        self.assert_active(tok)
        self.ctl("--socket", self.d.xsock, "revoke", "--txn", txn)
        self.assert_inactive(tok)
        r = self.ctl("--socket", self.d.xsock, "revoke", "--txn", check=False)
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    h.main()
