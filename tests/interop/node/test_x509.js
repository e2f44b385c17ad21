'use strict';
// Workload API interop (X.509, plus one JWT-SVID check) with an independent stack:
// Node's @grpc/grpc-js client, @grpc/proto-loader on the repo's proto/ files, and
// node:crypto for the certificates and the ES256 signature.
// The config puts an entry selected by unix:sha256 of the node binary FIRST, so the
// default identity of this process proves the sha256 selector.
//
// Env (set by ctest): WIMSED (daemon binary), WIMSED_REPO (repo root).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

let grpc, protoLoader;
try {
  grpc = require('@grpc/grpc-js');
  protoLoader = require('@grpc/proto-loader');
} catch (e) {
  console.error(`interop: ${e.message}\nrun scripts/install-deps (npm install in tests/interop/node)`);
  process.exit(1);
}

const REPO = process.env.WIMSED_REPO || path.resolve(__dirname, '..', '..', '..');
const WIMSED = process.env.WIMSED || path.join(REPO, 'build-interop', 'wimsed');
const TD_ID = 'spiffe://example.org';
const UID = process.getuid();
const NODE_ID = `${TD_ID}/node`;
const UID_ID = `${TD_ID}/uid/${UID}`;
const HEADER_KEY = 'workload.spiffe.io';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

// ---- protos ---------------------------------------------------------------------------
const pkgDef = protoLoader.loadSync(['workload.proto', 'grpc/health/v1/health.proto'], {
  includeDirs: [path.join(REPO, 'proto')],
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
});
const loaded = grpc.loadPackageDefinition(pkgDef);
const WorkloadAPI = loaded.SpiffeWorkloadAPI;   // no proto package: service is top-level
const Health = loaded.grpc.health.v1.Health;

// ---- daemon lifecycle ------------------------------------------------------------------
const workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'wimsed-interop-node-'));
fs.chmodSync(workdir, 0o755);
const socketPath = path.join(workdir, 'workload.sock');
const target = `unix://${socketPath}`;
const logPath = path.join(workdir, 'wimsed.log');
let daemon = null;
let daemonExit = null;   // resolves to {code, signal}
let failed = false;

function sha256OfFile(p) {
  return crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
}

function writeConfig() {
  const nodeExe = fs.realpathSync(process.execPath);
  let python = '/nonexistent/python3';
  try { python = fs.realpathSync('/usr/bin/python3'); } catch { /* no python: fine */ }
  const config = {
    trust_domain: 'example.org',
    data_dir: path.join(workdir, 'data'),
    workload_socket: socketPath,
    log_level: 'debug',
    x509_svid_ttl: '1h',
    ca: { ttl: '8760h' },
    entries: [
      { spiffe_id: NODE_ID, selectors: [`unix:uid:${UID}`, `unix:sha256:${sha256OfFile(nodeExe)}`],
        hint: 'node' },
      { spiffe_id: `${TD_ID}/uid/{unix:uid}`, selectors: [`unix:uid:${UID}`], hint: 'dev' },
      // must NOT match this node process
      { spiffe_id: `${TD_ID}/py`, selectors: [`unix:uid:${UID}`, `unix:path:${python}`] },
    ],
  };
  const p = path.join(workdir, 'wimsed.json');
  fs.writeFileSync(p, JSON.stringify(config, null, 2));
  return p;
}

function logTail(lines = 120) {
  let text;
  try { text = fs.readFileSync(logPath, 'utf8').split('\n'); } catch (e) { return `(no log: ${e.message})`; }
  return `--- last lines of ${logPath} ---\n${text.slice(-lines).join('\n')}\n--- end of daemon log ---`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function healthCheck(timeoutMs) {
  const client = new Health(target, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.Check({ service: '' }, { deadline: Date.now() + timeoutMs }, (err, resp) => {
      client.close();
      if (err) reject(err); else resolve(resp.status);
    });
  });
}

async function startDaemon() {
  try { fs.accessSync(WIMSED, fs.constants.X_OK); } catch {
    throw new Error(`wimsed binary not found or not executable: ${WIMSED} (build it first, or set WIMSED)`);
  }
  const cfg = writeConfig();
  const log = fs.openSync(logPath, 'a');
  // setpriv --pdeathsig: the daemon dies with this test process, whatever happens.
  daemon = spawn('setpriv', ['--pdeathsig', 'TERM', WIMSED, '--config', cfg],
    { cwd: workdir, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  daemonExit = new Promise((resolve) => daemon.on('exit', (code, signal) => resolve({ code, signal })));
  let exited = null;
  daemonExit.then((x) => { exited = x; });
  const deadline = Date.now() + 10000;
  let last = 'socket not created';
  while (Date.now() < deadline) {
    if (exited) throw new Error(`wimsed exited during startup: ${JSON.stringify(exited)}\n${logTail()}`);
    if (fs.existsSync(socketPath)) {
      try {
        const status = await healthCheck(1000);
        if (status === 'SERVING') return;
        last = `health status ${status}`;
      } catch (e) { last = `health check: ${e.message}`; }
    }
    await sleep(50);
  }
  throw new Error(`wimsed not SERVING within 10 s (${last})\n${logTail()}`);
}

async function stopDaemon() {
  if (!daemon) return;
  if (daemon.exitCode !== null || daemon.signalCode !== null) {
    throw new Error(`wimsed had already exited (code ${daemon.exitCode}, signal ${daemon.signalCode})\n${logTail()}`);
  }
  daemon.kill('SIGTERM');
  let timer;
  const res = await Promise.race([
    daemonExit,
    new Promise((resolve) => { timer = setTimeout(() => resolve(null), 10000); }),
  ]);
  clearTimeout(timer);
  if (res === null) {
    daemon.kill('SIGKILL');
    throw new Error(`wimsed did not exit within 10 s of SIGTERM\n${logTail()}`);
  }
  if (res.code !== 0) throw new Error(`wimsed exited with ${JSON.stringify(res)} after SIGTERM (want code 0)\n${logTail()}`);
}

process.on('exit', () => {
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
});

// Wrap a test body: on failure print the daemon log once.
function itest(name, fn) {
  test(name, { timeout: 20000 }, async () => {
    try {
      await fn();
    } catch (e) {
      if (!failed) { failed = true; console.error(logTail()); }
      throw e;
    }
  });
}

before(async () => { await startDaemon(); });
after(async () => {
  await stopDaemon();
  if (!failed) fs.rmSync(workdir, { recursive: true, force: true });
  else console.error(`temp dir kept: ${workdir}`);
});

// ---- gRPC helpers ------------------------------------------------------------------------
function header(value = 'true') {
  const md = new grpc.Metadata();
  if (value !== null) md.add(HEADER_KEY, value);
  return md;
}

// First message of a server stream, then cancel it. Rejects with the gRPC error.
function firstMessage(method, md, timeoutMs = 10000) {
  const client = new WorkloadAPI(target, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const call = client[method]({}, md, { deadline: Date.now() + timeoutMs });
    let settled = false;
    const settle = (f, v) => { if (!settled) { settled = true; f(v); } };
    call.on('data', (m) => { settle(resolve, { msg: m, ms: Date.now() - started }); call.cancel(); });
    call.on('error', (e) => settle(reject, e));
    call.on('end', () => settle(reject, new Error(`${method}: stream ended without a message`)));
    call.on('close', () => setImmediate(() => client.close()));
  });
}

// ---- DER / X.509 helpers ------------------------------------------------------------------
function splitDer(buf, what) {
  const out = [];
  let pos = 0;
  assert.ok(buf.length > 0, `${what} is empty`);
  while (pos < buf.length) {
    assert.equal(buf[pos], 0x30, `${what}: element at ${pos} is not a DER SEQUENCE (PEM?)`);
    let len = buf[pos + 1];
    let hdr = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      assert.ok(n >= 1 && n <= 4, `${what}: bad DER length`);
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buf[pos + 2 + i];
      hdr += n;
    }
    assert.ok(pos + hdr + len <= buf.length, `${what}: DER element overruns the buffer`);
    out.push(buf.subarray(pos, pos + hdr + len));
    pos += hdr + len;
  }
  return out;
}

function checkSvid(svid) {
  const what = `SVID ${svid.spiffe_id}`;
  const chain = splitDer(svid.x509_svid, `${what} x509_svid`).map((d) => new crypto.X509Certificate(d));
  const bundle = splitDer(svid.bundle, `${what} bundle`).map((d) => new crypto.X509Certificate(d));
  const leaf = chain[0];

  assert.equal(leaf.subjectAltName, `URI:${svid.spiffe_id}`,
    `${what}: subjectAltName must be exactly the one URI SAN`);
  assert.equal(leaf.ca, false, `${what}: leaf must not be a CA`);
  const eku = leaf.keyUsage || [];   // node: keyUsage lists the *extended* key usages
  assert.ok(eku.includes(OID_SERVER_AUTH) && eku.includes(OID_CLIENT_AUTH),
    `${what}: EKU must contain serverAuth and clientAuth, got ${JSON.stringify(eku)}`);

  const key = crypto.createPrivateKey({ key: svid.x509_svid_key, format: 'der', type: 'pkcs8' });
  assert.equal(key.asymmetricKeyType, 'ec', `${what}: key type`);
  assert.equal(key.asymmetricKeyDetails.namedCurve, 'prime256v1', `${what}: key curve`);
  assert.ok(leaf.checkPrivateKey(key), `${what}: x509_svid_key does not match the leaf`);

  for (const ca of bundle) assert.equal(ca.ca, true, `${what}: bundle certificate is not a CA`);
  // leaf -> (intermediates) -> a bundle CA
  let cur = leaf;
  for (const inter of chain.slice(1)) {
    assert.ok(cur.verify(inter.publicKey), `${what}: chain link not signed by the next certificate`);
    cur = inter;
  }
  const anchor = bundle.find((ca) => cur.checkIssued(ca) && cur.verify(ca.publicKey));
  assert.ok(anchor, `${what}: not signed by any CA of the bundle`);
  const now = Date.now();
  assert.ok(new Date(leaf.validFrom).getTime() <= now + 5000, `${what}: notBefore in the future`);
  assert.ok(new Date(leaf.validTo).getTime() > now, `${what}: already expired`);
  return { leaf, bundle };
}

// ---- tests ---------------------------------------------------------------------------------
itest('FetchX509SVID: sha256-selected node entry is the default identity', async () => {
  const { msg, ms } = await firstMessage('FetchX509SVID', header());
  const ids = msg.svids.map((s) => s.spiffe_id);
  assert.deepEqual(ids, [NODE_ID, UID_ID],
    'node matches the sha256 entry (first in config = default) and the uid template, not py');
  assert.deepEqual(msg.svids.map((s) => s.hint), ['node', 'dev']);
  assert.ok(ms < 2000, `first message took ${ms} ms`);
});

itest('FetchX509SVID: every SVID verifies with node:crypto', async () => {
  const { msg } = await firstMessage('FetchX509SVID', header());
  assert.ok(msg.svids.length >= 1, 'svids must not be empty');
  for (const svid of msg.svids) checkSvid(svid);
});

itest('FetchX509Bundles: trust domain key and same CA as the SVIDs', async () => {
  const svids = (await firstMessage('FetchX509SVID', header())).msg;
  const { msg } = await firstMessage('FetchX509Bundles', header());
  assert.deepEqual(Object.keys(msg.bundles), [TD_ID]);
  const got = splitDer(msg.bundles[TD_ID], 'bundle').map((b) => b.toString('hex')).sort();
  const want = splitDer(svids.svids[0].bundle, 'svid bundle').map((b) => b.toString('hex')).sort();
  assert.deepEqual(got, want, 'FetchX509Bundles must carry the same CA certificates');
});

itest('missing or wrong security header: INVALID_ARGUMENT', async () => {
  for (const method of ['FetchX509SVID', 'FetchX509Bundles']) {
    for (const value of [null, 'false']) {
      await assert.rejects(firstMessage(method, header(value), 5000),
        (e) => {
          assert.equal(e.code, grpc.status.INVALID_ARGUMENT,
            `${method} with header ${value}: want INVALID_ARGUMENT, got ${e.code} ${e.details}`);
          return true;
        });
    }
  }
});

itest('FetchJWTSVID: ES256 JWT-SVID verifies with node:crypto against FetchJWTBundles', async () => {
  const aud = 'spiffe://example.org/backend';
  const client = new WorkloadAPI(target, grpc.credentials.createInsecure());
  let resp;
  try {
    resp = await new Promise((resolve, reject) => {
      client.FetchJWTSVID({ audience: [aud] }, header(), { deadline: Date.now() + 5000 },
        (e, r) => (e ? reject(e) : resolve(r)));
    });
  } finally { client.close(); }
  assert.deepEqual(resp.svids.map((s) => s.spiffe_id), [NODE_ID, UID_ID]);
  const { msg } = await firstMessage('FetchJWTBundles', header());
  assert.deepEqual(Object.keys(msg.bundles), [TD_ID]);
  const jwks = JSON.parse(msg.bundles[TD_ID].toString('utf8'));
  const b64 = (s) => Buffer.from(s, 'base64url');
  for (const s of resp.svids) {
    const [h64, c64, sig] = s.svid.split('.');
    const hdr = JSON.parse(b64(h64));
    const claims = JSON.parse(b64(c64));
    assert.equal(hdr.alg, 'ES256');
    assert.equal(hdr.typ, 'JWT');
    const jwk = jwks.keys.find((k) => k.kid === hdr.kid);
    assert.ok(jwk, `no JWKS key with kid ${hdr.kid}`);
    const ok = crypto.verify('sha256', Buffer.from(`${h64}.${c64}`),
      { key: crypto.createPublicKey({ key: jwk, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, b64(sig));
    assert.ok(ok, `${s.spiffe_id}: JWT-SVID signature does not verify`);
    assert.equal(claims.sub, s.spiffe_id);
    assert.deepEqual([].concat(claims.aud), [aud]);
    assert.ok(claims.exp * 1000 > Date.now(), 'expired');
  }
});

itest('FetchJWTSVID: JWT-SVIDs verify with jose against the FetchJWTBundles JWKS', async () => {
  // jose is an independent JOSE implementation: it picks the key by kid, checks
  // alg against the key type, the signature, exp and the audience itself.
  const jose = await import('jose');
  const aud = 'spiffe://example.org/jose-check';
  const client = new WorkloadAPI(target, grpc.credentials.createInsecure());
  let resp;
  try {
    resp = await new Promise((resolve, reject) => {
      client.FetchJWTSVID({ audience: [aud] }, header(), { deadline: Date.now() + 5000 },
        (e, r) => (e ? reject(e) : resolve(r)));
    });
  } finally { client.close(); }
  const { msg } = await firstMessage('FetchJWTBundles', header());
  const keySet = jose.createLocalJWKSet(JSON.parse(msg.bundles[TD_ID].toString('utf8')));
  for (const s of resp.svids) {
    const { payload, protectedHeader } = await jose.jwtVerify(s.svid, keySet, {
      audience: aud, algorithms: ['ES256'], typ: 'JWT', requiredClaims: ['sub', 'exp', 'iat'],
    });
    assert.equal(payload.sub, s.spiffe_id);
    assert.equal(protectedHeader.alg, 'ES256');
    assert.ok(protectedHeader.kid, 'kid missing');
    // A tampered token (claims changed, signature kept) must be rejected by jose.
    const [h, , sig] = s.svid.split('.');
    const forged = Buffer.from(JSON.stringify({ ...payload, sub: `${TD_ID}/evil` })).toString('base64url');
    await assert.rejects(jose.jwtVerify(`${h}.${forged}.${sig}`, keySet, { audience: aud }),
      (e) => e.code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
    // Wrong audience is rejected too.
    await assert.rejects(jose.jwtVerify(s.svid, keySet, { audience: 'spiffe://example.org/other' }),
      (e) => e.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED');
  }
});

itest('WIT-SVIDs and unknown methods: UNIMPLEMENTED', async () => {
  const client = new WorkloadAPI(target, grpc.credentials.createInsecure());
  try {
    const err = await new Promise((resolve) => {
      const call = client.FetchWITSVID({}, header(), { deadline: Date.now() + 5000 });
      call.on('data', () => resolve(null));
      call.on('error', (e) => resolve(e));
    });
    assert.ok(err, 'FetchWITSVID unexpectedly sent data');
    assert.equal(err.code, grpc.status.UNIMPLEMENTED, `FetchWITSVID: got ${err.code} ${err.details}`);
    const err2 = await new Promise((resolve) => {
      client.makeUnaryRequest('/SpiffeWorkloadAPI/Nope', (x) => x, (x) => x, Buffer.alloc(0),
        header(), { deadline: Date.now() + 5000 }, (e) => resolve(e));
    });
    assert.ok(err2, '/SpiffeWorkloadAPI/Nope unexpectedly succeeded');
    assert.equal(err2.code, grpc.status.UNIMPLEMENTED, `Nope: got ${err2.code} ${err2.details}`);
  } finally { client.close(); }
});

itest('grpc.health.v1.Health/Check: SERVING', async () => {
  assert.equal(await healthCheck(5000), 'SERVING');
});
