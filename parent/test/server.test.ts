import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { connect } from 'node:net';
import { encodeBase64url } from '../../protocol/base64url.js';
import { encodeFrame } from '../../protocol/frame.js';
import { assertNoLeak } from '../../test/support/secrets.js';
import { createMetrics } from '../metrics.js';
import { RateLimiter } from '../ratelimit.js';
import { createParentServer, type EnclaveClient } from '../server.js';
import { FAKE_JWKS, FAKE_KEY_ID, defaultHandler } from './fake-enclave.js';
import { startHarness, testServerOptions } from './harness.js';
import { errorBody, http, postJson, waitFor } from './helpers.js';

const nonce = encodeBase64url(new Uint8Array(32).fill(7));
// The shortest request the parent forwards (SPEC §4): version 0x02, then key_id (the fake
// enclave's, so it is routed there), suite, op, enc and tag.
const sealed = new Uint8Array(97).map((_, i) => (i === 0 ? 0x02 : i <= 8 ? FAKE_KEY_ID[i - 1]! : (i * 7) & 0xff));

/** Writes raw bytes on a fresh connection and returns everything the server sends until it closes. */
function raw(port: number, text: string | Buffer, endAfterMs = 0): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
    socket.write(text);
    if (endAfterMs > 0) setTimeout(() => socket.end(), endAfterMs);
  });
}

test('GET /v1/attestation passes the nonce to attest and returns the document as base64url', async (t) => {
  const h = await startHarness(t);
  const reply = await http(h.port, `/v1/attestation?nonce=${nonce}`);
  assert.equal(reply.status, 200);
  assert.equal(reply.headers['content-type'], 'application/json');
  assert.deepEqual(
    reply.json,
    { document: encodeBase64url(new Uint8Array([0xd2, ...new Uint8Array(32).fill(7)])), jwks: encodeBase64url(FAKE_JWKS) },
    'the document and the JWKS it binds',
  );
});

test('GET /v1/attestation refuses a missing, short, long, padded or non-base64url nonce and any other parameter', async (t) => {
  const h = await startHarness(t);
  const queries = [
    '',
    '?',
    '?nonce=',
    `?nonce=${encodeBase64url(new Uint8Array(15))}`,
    `?nonce=${encodeBase64url(new Uint8Array(65))}`,
    `?nonce=${encodeBase64url(new Uint8Array(16))}==`,
    `?nonce=${encodeBase64url(new Uint8Array(32)).replace(/A/, '+')}`,
    `?nonce=${nonce}&nonce=${nonce}`,
    `?nonce=${nonce}&x=1`,
    `?other=${nonce}`,
  ];
  for (const q of queries) {
    const reply = await http(h.port, `/v1/attestation${q}`);
    assert.equal(reply.status, 400, q);
    assert.deepEqual(reply.json, errorBody('bad_request'), q);
  }
  assert.equal(h.enclave.requests, 0, 'no refused nonce reached the enclave');
  assert.equal(h.enclave.unparsed, 0, 'the parent refused them itself, not the enclave');
});

test('GET /v1/attestation passes a nonce of exactly 16 and of exactly 64 bytes to the enclave (SPEC §5 bounds)', async (t) => {
  const h = await startHarness(t);
  for (const size of [16, 64]) {
    const reply = await http(h.port, `/v1/attestation?nonce=${encodeBase64url(new Uint8Array(size).fill(7))}`);
    assert.equal(reply.status, 200, `a ${size}-byte nonce is within 16..64`);
  }
  assert.equal(h.enclave.requests, 2, 'both nonces reached the enclave');
});

test('GET /v1/attestation is rate limited per client with 429 rate_limited once the bucket is empty', async (t) => {
  const h = await startHarness(t, { server: { attestationLimiter: new RateLimiter({ ratePerSecond: 0.001, burst: 2 }) } });
  assert.equal((await http(h.port, `/v1/attestation?nonce=${nonce}`)).status, 200);
  assert.equal((await http(h.port, `/v1/attestation?nonce=${nonce}`)).status, 200);
  const refused = await http(h.port, `/v1/attestation?nonce=${nonce}`);
  assert.equal(refused.status, 429);
  assert.equal(refused.headers['retry-after'], '1');
  assert.deepEqual(refused.json, errorBody('rate_limited'));
  assert.equal(h.enclave.requests, 2);
  assert.match(await h.metrics.render(), /dip_parent_rate_limited_total\{route="\/v1\/attestation"\} 1/);
});

test('GET /v1/keys returns the enclave JWKS bytes verbatim as application/jwk-set+json', async (t) => {
  const h = await startHarness(t);
  const reply = await http(h.port, '/v1/keys');
  assert.equal(reply.status, 200);
  assert.equal(reply.headers['content-type'], 'application/jwk-set+json');
  assert.deepEqual(reply.body, FAKE_JWKS);
});

test('POST /v1/dip/assign maps JSON/base64url to the assign op and back', async (t) => {
  const h = await startHarness(t);
  const reply = await postJson(h.port, '/v1/dip/assign', { ip: '2001:db8::1', request: encodeBase64url(sealed) });
  assert.equal(reply.status, 200);
  assert.deepEqual(reply.json, { ip: '2001:db8::1', reservedUntil: 1_900_000_000, response: encodeBase64url(new Uint8Array(sealed).reverse()) });
});

test('POST /v1/dip/refresh maps JSON/base64url to the refresh op and back, charset=utf-8 allowed', async (t) => {
  const h = await startHarness(t);
  const reply = await http(h.port, '/v1/dip/refresh', {
    method: 'POST',
    headers: { 'content-type': 'Application/JSON; charset="UTF-8"' },
    body: JSON.stringify({ ip: '192.0.2.7', request: encodeBase64url(sealed) }),
  });
  assert.equal(reply.status, 200);
  assert.deepEqual(reply.json, { ip: '192.0.2.7', reservedUntil: 1_900_000_001, response: encodeBase64url(new Uint8Array(sealed).reverse()) });
});

test('POST bodies that are not exactly the SPEC JSON are 400 bad_request and never reach the enclave', async (t) => {
  const h = await startHarness(t);
  const r = encodeBase64url(sealed);
  const assignBodies: unknown[] = [
    'not json',
    '',
    '[]',
    'null',
    '"text"',
    { ip: '192.0.2.1' },
    { request: r },
    { ip: '192.0.2.1', request: r, extra: 1 },
    { ip: 1, request: r },
    { ip: '192.0.2.1', request: 5 },
    { ip: '192.0.2.1', request: `${r}=` },
    { ip: '192.0.2.1', request: 'a+b/' },
    { ip: '192.0.2.1', request: '' },
    { ip: '192.0.2.1', request: 'A' },
    // SPEC §2: the clear IP is canonical; a lone surrogate must never be framed (invalid UTF-8).
    { ip: '\ud800', request: r },
    { ip: '192.0.2.01', request: r },
    { ip: '2001:DB8::1', request: r },
    { ip: ' 192.0.2.1', request: r },
    // SPEC §4: version 0x02 and at least 16 + 65 + 16 bytes, checked before anything is routed.
    { ip: '192.0.2.1', request: encodeBase64url(sealed.subarray(0, 96)) },
    { ip: '192.0.2.1', request: encodeBase64url(sealed.map((b, i) => (i === 0 ? 0x01 : b))) },
    { ip: '192.0.2.1', request: encodeBase64url(sealed.map((b, i) => (i === 0 ? 0x03 : b))) },
  ];
  for (const route of ['/v1/dip/assign', '/v1/dip/refresh']) {
    for (const body of assignBodies) {
      const reply = await postJson(h.port, route, body);
      assert.equal(reply.status, 400, `${route} ${JSON.stringify(body)}`);
      assert.deepEqual(reply.json, errorBody('bad_request'), `${route} answers bad_request`);
    }
  }
  const invalidUtf8 = await http(h.port, '/v1/dip/refresh', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: Buffer.concat([Buffer.from('{"request":"'), Buffer.from([0xff]), Buffer.from('"}')]),
  });
  assert.equal(invalidUtf8.status, 400);
  assert.equal(h.enclave.requests, 0);
});

test('POST without an application/json body type is 415 unsupported_media_type', async (t) => {
  const h = await startHarness(t);
  const body = JSON.stringify({ ip: '192.0.2.7', request: encodeBase64url(sealed) });
  for (const type of [undefined, 'text/plain', 'application/jsonx', 'application/json; charset=latin1', 'multipart/form-data']) {
    const headers: Record<string, string> = type === undefined ? {} : { 'content-type': type };
    const reply = await http(h.port, '/v1/dip/refresh', { method: 'POST', headers, body });
    assert.equal(reply.status, 415, String(type));
    assert.deepEqual(reply.json, errorBody('unsupported_media_type'));
  }
});

test('a body over the cap is refused with 413 before it is sent in full', async (t) => {
  const h = await startHarness(t, { server: { bodyLimit: 1024 } });
  // Only the headers are sent: the answer must come without waiting for the announced body.
  const reply = await raw(h.port, 'POST /v1/dip/assign HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n');
  assert.match(reply, /^HTTP\/1\.1 413 /);
  assert.match(reply, /connection: close/i);
  assert.ok(reply.endsWith(JSON.stringify(errorBody('payload_too_large'))), 'the body is the payload_too_large error');
  // A chunked body has no length up front: it is cut off once it passes the cap.
  const chunk = 'a'.repeat(800);
  const chunked = await raw(
    h.port,
    `POST /v1/dip/refresh HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n${(800).toString(16)}\r\n${chunk}\r\n${(800).toString(16)}\r\n${chunk}\r\n`,
  );
  assert.match(chunked, /^HTTP\/1\.1 413 /);
  assert.equal(h.enclave.requests, 0);
});

test('unknown paths are 404, wrong methods 405 with Allow, and a query string on other routes 400', async (t) => {
  const h = await startHarness(t);
  for (const path of ['/', '/v1', '/v1/keys/', '/v1/dip/assign/x', '/V1/keys', '/v2/keys', '/v1/%6beys', 'http://x/v1/keys']) {
    const reply = await http(h.port, path);
    assert.equal(reply.status, 404, path);
    assert.deepEqual(reply.json, errorBody('not_found'));
  }
  const cases: Array<[string, string, string]> = [
    ['POST', '/v1/keys', 'GET'],
    ['GET', '/v1/dip/assign', 'POST'],
    ['PUT', '/v1/dip/refresh', 'POST'],
    ['DELETE', '/healthz', 'GET'],
    ['POST', '/metrics', 'GET'],
    ['OPTIONS', '/v1/attestation', 'GET'],
  ];
  for (const [method, path, allow] of cases) {
    const reply = await http(h.port, path, { method });
    assert.equal(reply.status, 405, `${method} ${path}`);
    assert.equal(reply.headers['allow'], allow);
    assert.deepEqual(reply.json, errorBody('method_not_allowed'));
  }
  const head = await http(h.port, '/healthz', { method: 'HEAD' });
  assert.equal(head.status, 405);
  assert.equal(head.headers['allow'], 'GET');
  for (const path of ['/v1/keys?x=1', '/healthz?', '/v1/dip/refresh?a']) {
    const method = path.startsWith('/v1/dip') ? 'POST' : 'GET';
    const reply = await http(h.port, path, { method, headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(reply.status, 400, path);
  }
});

test('enclave error codes come back with their SPEC status; an unknown code is 500 internal', async (t) => {
  const h = await startHarness(t);
  const expected: Array<[string, number]> = [
    ['decrypt_failed', 403],
    ['srt_expired', 403],
    ['version_mismatch', 403],
    ['bad_request', 400],
    ['internal', 500],
  ];
  for (const [code, status] of expected) {
    h.enclave.handler = () => ({ error: code as 'internal' });
    const reply = await postJson(h.port, '/v1/dip/refresh', { ip: '192.0.2.7', request: encodeBase64url(sealed) });
    assert.equal(reply.status, status, code);
    assert.deepEqual(reply.json, errorBody(code as 'internal'));
  }
  h.enclave.handler = (request) => ({ raw: encodeFrame({ v: 1, id: request.id, ok: false, error: { code: 'brand_new', message: 'secret 10.0.0.1' } }) });
  const unknown = await postJson(h.port, '/v1/dip/refresh', { ip: '192.0.2.7', request: encodeBase64url(sealed) });
  assert.equal(unknown.status, 500);
  assert.deepEqual(unknown.json, errorBody('internal'));
});

test('GET /v1/enclaves lists the enclave this parent reaches by key_id and status, and none while it is gone', async (t) => {
  const h = await startHarness(t);
  const reply = await http(h.port, '/v1/enclaves');
  assert.equal(reply.status, 200, 'GET /v1/enclaves answers');
  assert.deepEqual(reply.json, { enclaves: [{ key_id: encodeBase64url(FAKE_KEY_ID), status: 'ok' }] }, 'one enclave, named by its boot key');
  await h.enclave.stop();
  await waitFor(() => h.pool.state.ready === 0, 10_000, 'pool down');
  assert.deepEqual((await http(h.port, '/v1/enclaves')).json, { enclaves: [] }, 'no enclave reached, none listed');
  assert.equal((await http(h.port, '/v1/enclaves', { method: 'POST' })).status, 405, 'GET only');
});

test('/healthz is 200 while /readyz follows the enclave health op', async (t) => {
  const h = await startHarness(t);
  assert.deepEqual((await http(h.port, '/healthz')).json, { status: 'ok' });
  assert.equal((await http(h.port, '/readyz')).status, 200);
  h.enclave.handler = (request) => (request.op === 'health' ? { error: 'internal' } : defaultHandler(request));
  assert.equal((await http(h.port, '/readyz')).status, 500);
  h.enclave.handler = defaultHandler;
  await h.enclave.stop();
  await waitFor(() => h.pool.state.ready === 0, 10_000, 'pool down');
  const down = await http(h.port, '/readyz');
  assert.equal(down.status, 503);
  assert.deepEqual(down.json, errorBody('enclave_unavailable'));
  assert.equal((await http(h.port, '/healthz')).status, 200);
  const assign = await postJson(h.port, '/v1/dip/assign', { ip: '192.0.2.1', request: encodeBase64url(sealed) });
  assert.deepEqual([assign.status, assign.json], [421, errorBody('key_unknown')], 'no enclave reached has the key: the app attests again');
  await h.enclave.start();
  await waitFor(async () => (await http(h.port, '/readyz')).status === 200, 20_000, 'ready again');
});

test('a stalled enclave is answered 504 enclave_timeout and counted', async (t) => {
  const h = await startHarness(t, { pool: { timeoutMs: 200 } });
  h.enclave.handler = () => 'stall';
  const reply = await postJson(h.port, '/v1/dip/refresh', { ip: '192.0.2.7', request: encodeBase64url(sealed) });
  assert.equal(reply.status, 504);
  assert.deepEqual(reply.json, errorBody('enclave_timeout'));
  assert.match(await h.metrics.render(), /dip_parent_enclave_timeouts_total 1/);
});

test('a full queue is answered 503 at once', async (t) => {
  const h = await startHarness(t, { pool: { size: 1, pipelineDepth: 1, queueLimit: 1, timeoutMs: 5000 } });
  const held: Array<() => void> = [];
  h.enclave.handler = async (request) => {
    await new Promise<void>((resolve) => held.push(resolve));
    return defaultHandler(request);
  };
  const body = { ip: '192.0.2.7', request: encodeBase64url(sealed) };
  const first = postJson(h.port, '/v1/dip/refresh', body);
  await waitFor(() => held.length === 1, 5000, 'first in flight');
  const second = postJson(h.port, '/v1/dip/refresh', body);
  await waitFor(() => h.pool.state.queued === 1, 5000, 'second queued');
  const third = await postJson(h.port, '/v1/dip/refresh', body);
  assert.equal(third.status, 503);
  assert.match(await h.metrics.render(), /dip_parent_queue_rejections_total 1/);
  assert.match(await h.metrics.render(), /dip_parent_queue_depth 1/);
  held.shift()!();
  await waitFor(() => held.length === 1, 5000, 'second in flight');
  held.shift()!();
  assert.equal((await first).status, 200);
  assert.equal((await second).status, 200);
});

test('/metrics serves Prometheus text with requests by route and status, latency, pool state and queue depth', async (t) => {
  const h = await startHarness(t);
  await http(h.port, '/v1/keys');
  await http(h.port, '/nope');
  const reply = await http(h.port, '/metrics');
  assert.equal(reply.status, 200);
  assert.match(String(reply.headers['content-type']), /^text\/plain/);
  assert.match(reply.text, /dip_parent_http_requests_total\{route="\/v1\/keys",method="GET",status="200"\} 1/);
  assert.match(reply.text, /dip_parent_http_requests_total\{route="unmatched",method="GET",status="404"\} 1/);
  assert.match(reply.text, /dip_parent_http_request_duration_seconds_bucket\{le="[0-9.]+",route="\/v1\/keys"\}/);
  assert.match(reply.text, /dip_parent_enclave_connections\{state="ready"\} 2/);
  assert.match(reply.text, /dip_parent_enclave_in_flight 0/);
  assert.match(reply.text, /dip_parent_queue_depth 0/);
});

test('each request is logged as one JSON line of method, route, status and latency only', async (t) => {
  const h = await startHarness(t);
  await http(h.port, `/v1/attestation?nonce=${nonce}`, { headers: { authorization: 'Bearer secret-header' } });
  await postJson(h.port, '/v1/dip/assign', { ip: '198.51.100.23', request: encodeBase64url(sealed) });
  await http(h.port, '/secret-path-198.51.100.23');
  await http(h.port, '/v1/keys', { method: 'BREW' as string }).catch(() => undefined);
  await waitFor(() => h.lines.length >= 3, 5000, 'log lines');
  const entries = h.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  for (const entry of entries) {
    assert.deepEqual(Object.keys(entry), ['method', 'route', 'status', 'ms']);
    assert.equal(typeof entry['ms'], 'number');
  }
  assert.deepEqual(entries.slice(0, 3).map((e) => [e['method'], e['route'], e['status']]), [
    ['GET', '/v1/attestation', 200],
    ['POST', '/v1/dip/assign', 200],
    ['GET', 'unmatched', 404],
  ]);
  const all = h.lines.join('');
  assertNoLeak(all, [
    { what: 'nonce', value: nonce },
    { what: 'IP', value: '198.51.100.23', hashed: true },
    { what: 'client address', value: '127.0.0.1', hashed: true },
    { what: 'authorization header', value: 'secret-header' },
    { what: 'sealed request', value: sealed },
  ], "the parent's log lines");
});

test('malformed HTTP is answered 400 with the SPEC error body and the connection closed', async (t) => {
  const h = await startHarness(t);
  const reply = await raw(h.port, 'THIS IS NOT HTTP\r\n\r\n');
  assert.match(reply, /^HTTP\/1\.1 400 /);
  assert.ok(reply.endsWith(JSON.stringify(errorBody('bad_request'))), 'the body is the bad_request error');
  assert.match(await h.metrics.render(), /dip_parent_http_client_errors_total 1/);
});

test('a slow-loris client does not block others and is cut off by the header timeout', async (t) => {
  const h = await startHarness(t, { server: { headerTimeoutMs: 500, requestTimeoutMs: 1000 } });
  const socket = connect({ host: '127.0.0.1', port: h.port });
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => {});
  socket.write('GET /v1/keys HTTP/1.1\r\nhost: x\r\n');
  const drip = setInterval(() => socket.write('x-slow: 1\r\n'), 100);
  t.after(() => {
    clearInterval(drip);
    socket.destroy();
  });
  const others = await Promise.all(Array.from({ length: 20 }, () => http(h.port, '/v1/keys')));
  assert.ok(others.every((r) => r.status === 200), 'the other requests are answered 200');
  await closed;
  clearInterval(drip);
  assert.ok(socket.destroyed, 'the socket is closed');
});

test('a client that hangs up before its answer is logged with status 499', async (t) => {
  const h = await startHarness(t);
  let release: () => void = () => {};
  h.enclave.handler = async (request) => {
    await new Promise<void>((resolve) => (release = resolve));
    return defaultHandler(request);
  };
  const socket = connect({ host: '127.0.0.1', port: h.port });
  socket.on('error', () => {});
  socket.write('GET /v1/keys HTTP/1.1\r\nhost: x\r\n\r\n');
  await waitFor(() => h.enclave.requests === 1, 5000, 'request at the enclave');
  socket.destroy();
  await waitFor(() => h.lines.length === 1, 5000, 'log line');
  assert.equal((JSON.parse(h.lines[0]!) as { status: number }).status, 499);
  release();
});

test('shutdown finishes in-flight requests, closes keep-alive connections and refuses new ones', async (t) => {
  const h = await startHarness(t);
  let release: () => void = () => {};
  h.enclave.handler = async (request) => {
    if (request.op === 'refresh') await new Promise<void>((resolve) => (release = resolve));
    return defaultHandler(request);
  };
  const agent = new Agent({ keepAlive: true });
  t.after(() => agent.destroy());
  assert.equal((await http(h.port, '/healthz', { agent })).status, 200);
  const inFlight = postJson(h.port, '/v1/dip/refresh', { ip: '192.0.2.7', request: encodeBase64url(sealed) });
  await waitFor(() => h.enclave.requests === 1, 5000, 'request at the enclave');
  const stopped = h.parent.shutdown(10_000);
  assert.equal((await http(h.port, '/readyz').catch(() => ({ status: 0 }))).status, 0);
  release();
  const reply = await inFlight;
  assert.equal(reply.status, 200);
  assert.equal(reply.headers['connection'], 'close');
  await stopped;
  assert.equal(h.parent.inFlight, 0);
});

test('shutdown gives up on requests still running after the grace period', async (t) => {
  const h = await startHarness(t);
  h.enclave.handler = () => 'stall';
  const inFlight = postJson(h.port, '/v1/dip/refresh', { ip: '192.0.2.7', request: encodeBase64url(sealed) }).catch((e: Error) => e);
  await waitFor(() => h.enclave.requests === 1, 5000, 'request at the enclave');
  await h.parent.shutdown(100);
  assert.ok((await inFlight) instanceof Error, 'the in-flight request fails');
});

test('/readyz reports not ready while draining', async (t) => {
  const h = await startHarness(t);
  let release: () => void = () => {};
  h.enclave.handler = async (request) => {
    if (request.op === 'refresh') await new Promise<void>((resolve) => (release = resolve));
    return defaultHandler(request);
  };
  const inFlight = postJson(h.port, '/v1/dip/refresh', { ip: '192.0.2.7', request: encodeBase64url(sealed) });
  await waitFor(() => h.enclave.requests === 1, 5000, 'request at the enclave');
  // A request whose headers are still arriving when shutdown starts is answered, not ready.
  const socket = connect({ host: '127.0.0.1', port: h.port });
  socket.on('error', () => {});
  const received: Buffer[] = [];
  socket.on('data', (c: Buffer) => received.push(c));
  socket.write('GET /readyz HTTP/1.1\r\nhost: x\r\n');
  await waitFor(() => new Promise((resolve) => h.parent.server.getConnections((_, n) => resolve(n === 2))), 5000, 'two connections');
  // Let the server parse the partial headers: a connection that has begun a request is not idle.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const stopped = h.parent.shutdown(10_000);
  socket.write('\r\n');
  await waitFor(() => received.length > 0, 5000, 'readyz answer');
  const text = Buffer.concat(received).toString();
  assert.match(text, /^HTTP\/1\.1 503 /);
  assert.match(text, /connection: close/i);
  assert.ok(text.endsWith(JSON.stringify(errorBody('enclave_unavailable'))), 'the body is the enclave_unavailable error');
  release();
  assert.equal((await inFlight).status, 200);
  await stopped;
  socket.destroy();
});

test('an assign or refresh answer the server cannot write as valid JSON is 500 internal, whatever the enclave client let through', async (t) => {
  // parent/pool.ts checks every answer with parseResponseBody; the server builds the reply's JSON
  // by hand, so it checks what it writes itself rather than relying on every client doing so.
  let answer: Record<string, unknown> = {};
  const enclave: EnclaveClient = {
    call: async () => answer as never,
    list: () => [],
    unavailable: () => null,
  };
  const parent = createParentServer(testServerOptions(enclave, createMetrics(), []));
  const { port } = await parent.listen('127.0.0.1', 0);
  t.after(() => parent.shutdown(0));
  const body = { ip: '192.0.2.7', request: encodeBase64url(sealed) };
  const good = { ip: '192.0.2.7', reservedUntil: 0, response: new Uint8Array([1, 2]) };
  answer = good;
  const ok = await postJson(port, '/v1/dip/refresh', body);
  assert.equal(ok.status, 200, 'the control: a well-formed answer passes');
  assert.deepEqual(ok.json, { ip: '192.0.2.7', reservedUntil: 0, response: 'AQI' });
  const bad: Array<[string, Record<string, unknown>]> = [
    ['reservedUntil NaN', { ...good, reservedUntil: Number.NaN }],
    ['reservedUntil as text that would inject a field', { ...good, reservedUntil: '1,"x":2' }],
    ['reservedUntil -1', { ...good, reservedUntil: -1 }],
    ['reservedUntil 2^53', { ...good, reservedUntil: 2 ** 53 }],
    ['reservedUntil 1.5', { ...good, reservedUntil: 1.5 }],
    ['reservedUntil a bigint', { ...good, reservedUntil: 10n ** 20n }],
    ['an ip that is not canonical', { ...good, ip: '192.0.2.07' }],
    ['an ip with a quote', { ...good, ip: 'a"}' }],
    ['a response that is not bytes', { ...good, response: 'AQI' }],
  ];
  for (const [name, value] of bad) {
    answer = value;
    for (const route of ['/v1/dip/assign', '/v1/dip/refresh']) {
      const reply = await postJson(port, route, body);
      assert.equal(reply.status, 500, `${route}: ${name}`);
      assert.deepEqual(reply.json, errorBody('internal'), `${route}: ${name}`);
    }
  }
});
