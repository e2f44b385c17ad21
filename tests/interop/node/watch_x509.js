'use strict';
// A Node FetchX509SVID watcher for the rotation test (tests/interop/test_rotation.py):
// holds one stream open for DURATION seconds and prints one JSON line per message,
// after verifying each SVID's leaf against the bundle that came with it (node:crypto:
// the issuing CA is found in the bundle by subject and key id, the signature checked
// with its public key, the validity window checked against the clock).
//
//   node watch_x509.js SOCKET_PATH DURATION_SECONDS
// Env: WIMSED_REPO (repo root, for proto/).

const crypto = require('node:crypto');
const path = require('node:path');

let grpc, protoLoader;
try {
  grpc = require('@grpc/grpc-js');
  protoLoader = require('@grpc/proto-loader');
} catch (e) {
  console.error(`interop: ${e.message}\nrun scripts/install-deps (npm install in tests/interop/node)`);
  process.exit(1);
}

const [socketPath, durationArg] = process.argv.slice(2);
if (!socketPath || !durationArg) {
  console.error('usage: node watch_x509.js SOCKET_PATH DURATION_SECONDS');
  process.exit(2);
}
const REPO = process.env.WIMSED_REPO || path.resolve(__dirname, '..', '..', '..');
const pkgDef = protoLoader.loadSync(['workload.proto'], {
  includeDirs: [path.join(REPO, 'proto')],
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
});
const WorkloadAPI = grpc.loadPackageDefinition(pkgDef).SpiffeWorkloadAPI;

// Splits concatenated DER certificates (each an outer SEQUENCE).
function splitDer(buf) {
  const out = [];
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] !== 0x30) throw new Error('not a DER SEQUENCE');
    let len = buf[pos + 1];
    let hdr = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buf[pos + 2 + i];
      hdr = 2 + n;
    }
    out.push(new crypto.X509Certificate(buf.subarray(pos, pos + hdr + len)));
    pos += hdr + len;
  }
  return out;
}

function verifyAgainst(leaf, anchors, now) {
  const ca = anchors.find((c) => c.subject === leaf.issuer && leaf.checkIssued(c));
  if (!ca) return 'no CA in the bundle issued it';
  if (!leaf.verify(ca.publicKey)) return 'bad signature';
  if (now < new Date(leaf.validFrom) || now > new Date(leaf.validTo)) return 'outside its validity';
  return null;
}

const client = new WorkloadAPI(`unix://${socketPath}`, grpc.credentials.createInsecure());
const md = new grpc.Metadata();
md.set('workload.spiffe.io', 'true');
const call = client.FetchX509SVID({}, md);
let messages = 0;
call.on('data', (resp) => {
  const now = new Date();
  messages++;
  for (const s of resp.svids) {
    const chain = splitDer(Buffer.from(s.x509_svid));
    const anchors = splitDer(Buffer.from(s.bundle));
    const why = verifyAgainst(chain[0], anchors, now);
    console.log(JSON.stringify({
      t: now.getTime() / 1000, spiffe_id: s.spiffe_id, serial: chain[0].serialNumber,
      not_before: new Date(chain[0].validFrom).getTime() / 1000,
      not_after: new Date(chain[0].validTo).getTime() / 1000,
      bundle_size: anchors.length, ok: why === null, why,
    }));
  }
});
call.on('error', (e) => {
  if (e.code !== grpc.status.CANCELLED) {
    console.error(`stream error: ${e.code} ${e.details}`);
    process.exitCode = 1;
  }
});
setTimeout(() => {
  call.cancel();
  client.close();
  if (messages === 0) process.exitCode = 1;
}, Number(durationArg) * 1000);
