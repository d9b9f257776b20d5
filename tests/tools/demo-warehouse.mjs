#!/usr/bin/env node
// A demo warehouse: receives allocation webhooks, verifies each signature (Centra
// `X-Centra-Signature` or Standard Webhooks `webhook-signature`), and prints the events with the
// curl command that confirms each new request or accepts each new check (check_first create). Node core modules only (no npm install), so the
// quickstart needs nothing more; it verifies independently of the C++ code that signs.
//
//   node tests/tools/demo-warehouse.mjs --port 8090 --secret demo-secret \
//        [--api http://127.0.0.1:8080] [--token demo-warehouse-token] [--tolerance 300]
//
// Answers 200 to a valid call, 401 to a bad or missing signature (the dispatcher retries it).
// Any body size: Node's HTTP server has no 8 KB form limit, unlike Debian's cpp-httplib.
import crypto from 'node:crypto';
import http from 'node:http';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => {
    if (a.startsWith('--')) pairs.push([a.slice(2), all[i + 1]]);
    return pairs;
  }, []));
const port = Number(args.port ?? 8090);
const host = args.host ?? '127.0.0.1';
const secret = args.secret ?? '';
const api = args.api ?? 'http://127.0.0.1:8080';
const token = args.token ?? 'demo-warehouse-token';
const toleranceSeconds = Number(args.tolerance ?? 300);

function hmacHex(key, text) {
  return crypto.createHmac('sha256', key).update(text).digest('hex');
}

function equal(a, b) {
  const x = Buffer.from(a), y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

// Centra: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>.
function verifyCentra(header, body) {
  const parts = Object.fromEntries(header.split(',').map((p) => p.trim().split('=', 2)));
  if (!parts.t || !parts.v1) return 'malformed X-Centra-Signature';
  if (!equal(hmacHex(secret, `${parts.t}.${body}`), parts.v1)) return 'signature mismatch';
  if (Math.abs(Date.now() / 1000 - Number(parts.t)) > toleranceSeconds) return 'timestamp too old';
  return null;
}

// Standard Webhooks: base64 HMAC-SHA256(base64-decoded whsec_ key, "<id>.<ts>.<body>").
function verifyStandard(headers, body) {
  const id = headers['webhook-id'], ts = headers['webhook-timestamp'];
  const signatures = (headers['webhook-signature'] ?? '').split(' ');
  if (!id || !ts) return 'missing webhook-id or webhook-timestamp';
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = crypto.createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64');
  if (!signatures.some((s) => s.startsWith('v1,') && equal(s.slice(3), expected))) {
    return 'signature mismatch';
  }
  if (Math.abs(Date.now() / 1000 - Number(ts)) > toleranceSeconds) return 'timestamp too old';
  return null;
}

// The reference test vector (reference/centra-facts.md): refuse to start if HMAC is wrong here.
if (hmacHex('test123', '12345678.payload=%7B%22x%22%3A%22test%22%7D') !==
    '0b9cd84f5d583e5e1aadfb9f160aa8080b51d5b85ff85808d6b75bdac356c549') {
  console.error('demo-warehouse: the Centra test vector does not verify; stopping');
  process.exit(1);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    let problem = null, json = null;
    if (req.headers['x-centra-signature'] !== undefined) {
      problem = verifyCentra(req.headers['x-centra-signature'], body);
      if (!problem) json = new URLSearchParams(body).get('payload');
    } else if (req.headers['webhook-signature'] !== undefined) {
      problem = verifyStandard(req.headers, body);
      json = body;
    } else if (secret) {
      problem = 'no signature header';
    } else {
      json = new URLSearchParams(body).get('payload') ?? body;
    }
    if (problem) {
      console.log(`[demo-warehouse] REFUSED a call (${problem}); answered 401`);
      res.writeHead(401, {'Content-Type': 'text/plain'}).end(problem);
      return;
    }
    let events = [];
    try {
      events = JSON.parse(json).events ?? [];
    } catch (e) {
      console.log(`[demo-warehouse] signature ok but the body is not JSON: ${e.message}`);
    }
    console.log(`[demo-warehouse] ${events.length} event(s), signature verified ` +
                `(${req.headers['user-agent'] ?? 'no user-agent'}):`);
    for (const e of events) {
      const d = e.data ?? {};
      if (e.type === 'check_first') {
        if (e.action !== 'create') {
          console.log(`  check_first ${e.action} of order ${e.id}, warehouse ${d.warehouseId}`);
          continue;
        }
        for (const w of d.warehouses ?? []) {
          console.log(`  check_first create of order ${e.id}: warehouse ${w.warehouseId} is ` +
                      `asked until ${w.expirationAt}`);
          console.log(`  accept it: curl -s -X POST ${api}/check-first ` +
                      `-H 'API-Authorization: ${token}' -H 'Content-Type: application/json' ` +
                      `-d '{"orderNumber": ${e.id}, "warehouseId": ${w.warehouseId}, ` +
                      `"accepted": true}'`);
        }
        continue;
      }
      console.log(`  ${e.action} allocation request ${e.id}: status ${d.status}, order ` +
                  `${d.order?.number}, warehouse ${d.warehouseId}, expires ${d.expirationDate?.date}`);
      if (e.action === 'create') {
        console.log(`  confirm it: curl -s -X PUT ${api}/allocation-request ` +
                    `-H 'API-Authorization: ${token}' -H 'Content-Type: application/json' ` +
                    `-d '{"id": ${e.id}, "status": "confirmed"}'`);
      }
    }
    res.writeHead(200, {'Content-Type': 'text/plain'}).end('ok');
  });
});
server.listen(port, host, () => {
  console.log(`[demo-warehouse] listening on http://${host}:${server.address().port}/hook`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
