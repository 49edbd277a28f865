// A parent is untrusted (SPEC §6, §11): whatever bytes it answers with, the service answers every
// app with a SPEC §6 status and keeps serving. The parent here is a raw socket, so that it can
// write what no HTTP library would (a status of 000).

import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, beforeEach, test } from 'node:test';
import { encodeBase64url } from '../../protocol/base64url.js';
import { openTestStore, type TestStore } from '../../store/test/support.js';
import { DAY, NOW, call, createIssuerKey, errorCode, keyId, removeTempDirs, startTestService, writeTokenKeys } from './support.js';

const KEY = createIssuerKey(NOW - DAY);
const ENCLAVE = keyId(1);

interface RawParent {
  readonly url: string;
  /** The raw answer (status line, headers, body) to every request but GET /v1/enclaves. */
  answer: string;
  close(): Promise<void>;
}

async function startRawParent(): Promise<RawParent> {
  const sockets = new Set<Socket>();
  const enclaves = JSON.stringify({ enclaves: [{ key_id: encodeBase64url(ENCLAVE), status: 'ok' }] });
  const parent = { url: '', answer: '', close: async () => {} } as RawParent;
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      const line = head.split('\r\n')[0]!;
      socket.end(line.includes(' /v1/enclaves ') ? `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${enclaves.length}\r\nconnection: close\r\n\r\n${enclaves}` : parent.answer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (parent as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  parent.close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return parent;
}

function raw(statusLine: string, body: string, type = 'application/json'): string {
  return `${statusLine}\r\ncontent-type: ${type}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

let t: TestStore;
let parent: RawParent;
let service: Awaited<ReturnType<typeof startTestService>>;

before(async () => {
  t = await openTestStore('embedded');
});
after(async () => {
  await t?.close();
  removeTempDirs();
});
beforeEach(async () => {
  await t.reset();
  parent = await startRawParent();
  service = await startTestService({ parents: [parent.url], tokenKeys: writeTokenKeys([KEY]), store: t.store, now: () => NOW, repollMinMs: 0, args: ['--range', '192.0.2.0/30'] });
});
afterEach(async () => {
  await service.close();
  await parent.close();
});

test('a parent answering a GET with a status SPEC §6 does not allow (000, 099, 302, a 500 without an error body) gets the app 503 enclave_unavailable, and the service keeps serving', async () => {
  const nonce = Buffer.alloc(16, 3).toString('base64url');
  const cases: Array<[string, string]> = [
    ['status 000', raw('HTTP/1.1 000 X', '{}')],
    ['status 099', raw('HTTP/1.1 099 X', '{}')],
    ['status 302', raw('HTTP/1.1 302 Found', '')],
    ['a 500 without an error body', raw('HTTP/1.1 500 Internal Server Error', 'oops', 'text/plain')],
    ['a 503 whose error code is a 400 one', raw('HTTP/1.1 503 Service Unavailable', '{"error":{"code":"bad_request","message":"x"}}')],
  ];
  for (const [what, answer] of cases) {
    parent.answer = answer;
    for (const path of ['/v1/keys', `/v1/attestation?nonce=${nonce}`]) {
      const reply = await call(`${service.url}${path}`);
      assert.equal(reply.status, 503, `${what} on ${path}: ${reply.text}`);
      assert.equal(errorCode(reply), 'enclave_unavailable', `${what} on ${path}`);
    }
  }
  assert.equal((await call(`${service.url}/healthz`)).status, 200, 'the service still serves');
});

test('a parent answering a GET with 200 or with a SPEC §6 error passes through verbatim', async () => {
  parent.answer = raw('HTTP/1.1 200 OK', '{"keys":[]}', 'application/jwk-set+json');
  const keys = await call(`${service.url}/v1/keys`);
  assert.equal(keys.status, 200, keys.text);
  assert.equal(keys.headers.get('content-type'), 'application/jwk-set+json', 'media type');
  assert.equal(keys.text, '{"keys":[]}', 'bytes');
  const keysDown = '{"error":{"code":"keys_unavailable","message":"x"}}';
  parent.answer = raw('HTTP/1.1 503 Service Unavailable', keysDown);
  const refused = await call(`${service.url}/v1/keys`);
  assert.equal(refused.status, 503, refused.text);
  assert.equal(refused.text, keysDown, 'the parent\'s error, verbatim');
});
