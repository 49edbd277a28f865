// The parent serves exactly the route table of docs/spec.md §6 (read from the markdown, so an
// extra, missing or wrongly-methoded route fails here), and every body it accepts fits a frame.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { encodeBase64url } from '../../protocol/base64url.js';
import { encodeFrame } from '../../protocol/frame.js';
import { FRAME_HEADER_BYTES, MAX_FRAME_BYTES } from '../../protocol/limits.js';
import { encodeRequest, type EnclaveRequest } from '../../protocol/messages.js';
import { MAX_BODY_LIMIT } from '../config.js';
import { ROUTES } from '../server.js';
import { startHarness } from './harness.js';
import { http } from './helpers.js';

/** `METHOD /path` for each row of the first table under "## 6." in docs/spec.md. */
function specRoutes(): string[] {
  const spec = readFileSync(new URL('../../docs/spec.md', import.meta.url), 'utf8');
  const section = spec.split(/^## /m).find((part) => part.startsWith('6. '));
  assert.ok(section !== undefined, 'docs/spec.md has a section 6');
  const rows = section.split('\n').filter((line) => /^\| `(GET|POST|PUT|DELETE|PATCH|HEAD) /.test(line));
  return rows.map((row) => /^\| `([A-Z]+) ([^?` ]+)/.exec(row)!.slice(1, 3).join(' ')).sort();
}

test('the parent routes exactly the methods and paths of the SPEC §6 route table', () => {
  const served = [...ROUTES].map(([path, { method }]) => `${method} ${path}`).sort();
  assert.ok(specRoutes().length >= 7, 'the spec table was found and parsed');
  assert.deepEqual(served, specRoutes(), 'parent/server.ts ROUTES against docs/spec.md §6');
});

test('every route in the table is served with its method and 405 with another', async (t) => {
  const h = await startHarness(t);
  for (const [path, { method }] of ROUTES) {
    const right = await http(h.port, path, { method, headers: { 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined });
    assert.notEqual(right.status, 404, `${method} ${path} is routed`);
    const wrong = await http(h.port, path, { method: method === 'GET' ? 'POST' : 'GET' });
    assert.equal(wrong.status, 405, `${path} refuses another method`);
  }
});

test('the largest body --body-limit allows, with the longest canonical IP, fits one frame with the largest id and op', async (t) => {
  const ip = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'; // 39 characters, the longest canonical IP
  const skeleton = JSON.stringify({ ip, request: '' });
  // base64url without padding: 4 characters for every 3 bytes, so fill the rest of the body exactly.
  const chars = MAX_BODY_LIMIT - skeleton.length;
  const request = new Uint8Array(Math.floor((chars * 3) / 4)).map((_, i) => (i === 0 ? 0x02 : i & 0xff));
  const body = JSON.stringify({ ip, request: encodeBase64url(request) });
  assert.ok(Buffer.byteLength(body) <= MAX_BODY_LIMIT && Buffer.byteLength(body) >= MAX_BODY_LIMIT - 1, 'the body is at the limit');
  const frame = encodeFrame(encodeRequest({ id: Number.MAX_SAFE_INTEGER, op: 'refresh', body: { ip, request } } as EnclaveRequest));
  assert.ok(frame.length <= FRAME_HEADER_BYTES + MAX_FRAME_BYTES, `worst-case frame ${frame.length} bytes`);
  const h = await startHarness(t, { server: { bodyLimit: MAX_BODY_LIMIT } });
  const reply = await http(h.port, '/v1/dip/refresh', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  assert.equal(reply.status, 200, `framed, sent and answered, neither 413 nor 500: ${reply.text}`);
});

test('an ip that is no IP is refused by the parent before framing, however large the body limit', async (t) => {
  const h = await startHarness(t, { server: { bodyLimit: 65536 } });
  const body = JSON.stringify({ ip: 'x'.repeat(65536 - 30), request: 'AA' });
  const reply = await http(h.port, '/v1/dip/assign', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  assert.equal(reply.status, 400, `bad_request: ${reply.text}`);
  assert.equal((reply.json as { error: { code: string } }).error.code, 'bad_request', 'the SPEC code');
  assert.equal(h.enclave.requests, 0, 'nothing reached the enclave');
});
