import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCbor, encodeCbor, type CborMap, type CborValue } from '../cbor.js';
import { ERROR_MESSAGES } from '../errors.js';
import {
  RequestError,
  encodeErrorResponse,
  encodeOkResponse,
  encodeRequest,
  isOp,
  parseRequest,
  parseResponse,
  parseResponseBody,
  type EnclaveRequest,
} from '../messages.js';

/** What a peer would send: plain data through the real codec. */
const wire = (value: unknown): CborValue => decodeCbor(encodeCbor(value));

const expectRequestError = (value: unknown, code: string, id: number, fatal: boolean): void => {
  assert.throws(
    () => parseRequest(wire(value)),
    (error: unknown) => error instanceof RequestError && error.code === code && error.id === id && error.fatal === fatal,
  );
};

const nonce16 = new Uint8Array(16).fill(7);

test('every op request round-trips through encodeRequest and parseRequest', () => {
  const requests: EnclaveRequest[] = [
    { id: 1, op: 'attest', body: { nonce: nonce16 } },
    { id: 2, op: 'jwks', body: {} },
    { id: 3, op: 'assign', body: { ip: '192.0.2.7', request: new Uint8Array([1, 2, 3]) } },
    { id: 4, op: 'refresh', body: { ip: '2001:db8::4', request: new Uint8Array([4]) } },
    { id: 2 ** 40, op: 'health', body: {} },
  ];
  for (const request of requests) assert.deepEqual(parseRequest(wire(encodeRequest(request))), request);
});

test('a frame that is not a request map with a uint id is a fatal bad_frame with id 0', () => {
  expectRequestError([1, 2], 'bad_frame', 0, true);
  expectRequestError({ v: 1, op: 'health', body: {} }, 'bad_frame', 0, true);
  expectRequestError({ v: 1, id: -1, op: 'health', body: {} }, 'bad_frame', 0, true);
  expectRequestError({ v: 1, id: 'x', op: 'health', body: {} }, 'bad_frame', 0, true);
  expectRequestError({ v: 1, id: 2n ** 60n, op: 'health', body: {} }, 'bad_frame', 0, true);
  // id 1 written as float64 1.0: a float is not a uint.
  const floatId = new Uint8Array([0xa4, 0x61, 0x76, 0x01, 0x62, 0x69, 0x64, 0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0,
    0x62, 0x6f, 0x70, 0x66, 0x68, 0x65, 0x61, 0x6c, 0x74, 0x68, 0x64, 0x62, 0x6f, 0x64, 0x79, 0xa0]);
  assert.throws(() => parseRequest(decodeCbor(floatId)), (e: unknown) => e instanceof RequestError && e.code === 'bad_frame');
});

test('a request with a readable id but a bad envelope is bad_request with that id', () => {
  expectRequestError({ v: 2, id: 5, op: 'health', body: {} }, 'bad_request', 5, false);
  expectRequestError({ v: 1, id: 5, op: 'health' }, 'bad_request', 5, false);
  expectRequestError({ v: 1, id: 5, op: 'health', body: {}, extra: 1 }, 'bad_request', 5, false);
  expectRequestError({ v: 1, id: 5, op: 7, body: {} }, 'bad_request', 5, false);
  expectRequestError({ v: 1, id: 5, op: 'health', body: [] }, 'bad_request', 5, false);
});

test('an op outside the five of SPEC §5 is unknown_op', () => {
  for (const op of ['sign', 'HEALTH', '', 'toString']) expectRequestError({ v: 1, id: 9, op, body: {} }, 'unknown_op', 9, false);
  assert.equal(isOp('assign'), true);
  assert.equal(isOp('constructor'), false);
});

test('attest takes a nonce of 16..64 bytes: 15 and 65 are bad_request', () => {
  assert.equal(parseRequest(wire({ v: 1, id: 1, op: 'attest', body: { nonce: new Uint8Array(64) } })).op, 'attest');
  for (const nonce of [new Uint8Array(15), new Uint8Array(65), 'x'.repeat(16), null]) {
    expectRequestError({ v: 1, id: 1, op: 'attest', body: { nonce } }, 'bad_request', 1, false);
  }
  expectRequestError({ v: 1, id: 1, op: 'attest', body: {} }, 'bad_request', 1, false);
  expectRequestError({ v: 1, id: 1, op: 'attest', body: { nonce: nonce16, user_data: nonce16 } }, 'bad_request', 1, false);
});

test('assign needs a canonical IP and a non-empty sealed request, and nothing else', () => {
  const bad = [
    { ip: '2001:DB8::1', request: new Uint8Array(1) },
    { ip: 'example.com', request: new Uint8Array(1) },
    { ip: 7, request: new Uint8Array(1) },
    { ip: '192.0.2.1', request: new Uint8Array(0) },
    { ip: '192.0.2.1', request: 'AAAA' },
    { ip: '192.0.2.1' },
    { ip: '192.0.2.1', request: new Uint8Array(1), sub: 'x' },
  ];
  for (const body of bad) expectRequestError({ v: 1, id: 3, op: 'assign', body }, 'bad_request', 3, false);
});

test('key_request takes an empty body; unlock exactly a non-empty recipient_ciphertext', () => {
  assert.deepEqual(parseRequest(wire({ v: 1, id: 9, op: 'key_request', body: {} })), { id: 9, op: 'key_request', body: {} }, 'key_request');
  expectRequestError({ v: 1, id: 9, op: 'key_request', body: { x: 1 } }, 'bad_request', 9, false);
  const ciphertext = new Uint8Array([1, 2, 3]);
  assert.deepEqual(parseRequest(wire({ v: 1, id: 9, op: 'unlock', body: { recipient_ciphertext: ciphertext } })), { id: 9, op: 'unlock', body: { recipient_ciphertext: ciphertext } }, 'unlock');
  expectRequestError({ v: 1, id: 9, op: 'unlock', body: { recipient_ciphertext: new Uint8Array(0) } }, 'bad_request', 9, false);
  expectRequestError({ v: 1, id: 9, op: 'unlock', body: { recipient_ciphertext: 'AQID' } }, 'bad_request', 9, false);
  expectRequestError({ v: 1, id: 9, op: 'unlock', body: { recipient_ciphertext: ciphertext, m: ciphertext } }, 'bad_request', 9, false);
  expectRequestError({ v: 1, id: 9, op: 'unlock', body: {} }, 'bad_request', 9, false);
});

test('refresh needs exactly a canonical clear IP and a sealed request; jwks and health take an empty body', () => {
  assert.equal(parseRequest(wire({ v: 1, id: 4, op: 'refresh', body: { request: new Uint8Array(1), ip: '192.0.2.1' } })).op, 'refresh', 'ip and request');
  expectRequestError({ v: 1, id: 4, op: 'refresh', body: { request: new Uint8Array(1) } }, 'bad_request', 4, false);
  expectRequestError({ v: 1, id: 4, op: 'refresh', body: { request: new Uint8Array(1), ip: '192.0.2.01' } }, 'bad_request', 4, false);
  expectRequestError({ v: 1, id: 4, op: 'refresh', body: { request: new Uint8Array(1), ip: '192.0.2.1', sub: 'x' } }, 'bad_request', 4, false);
  expectRequestError({ v: 1, id: 4, op: 'refresh', body: {} }, 'bad_request', 4, false);
  expectRequestError({ v: 1, id: 4, op: 'jwks', body: { all: true } }, 'bad_request', 4, false);
  expectRequestError({ v: 1, id: 4, op: 'health', body: { x: 1 } }, 'bad_request', 4, false);
  const withIntKey = new Map<unknown, unknown>([[1, 1]]);
  expectRequestError({ v: 1, id: 4, op: 'refresh', body: withIntKey }, 'bad_request', 4, false);
});

test('responses round-trip: ok bodies per op and error bodies with fixed messages', () => {
  const assigned = { ip: '2001:db8::7', reservedUntil: 1_800_000_000, response: new Uint8Array([9]) };
  const ok = parseResponse(wire(encodeOkResponse(12, 'assign', assigned)));
  assert.ok(ok?.ok, 'the ok response parses');
  assert.equal(ok.id, 12);
  assert.deepEqual(parseResponseBody('assign', ok.body), assigned);

  const failed = parseResponse(wire(encodeErrorResponse(13, 'version_mismatch')));
  assert.deepEqual(failed, { id: 13, ok: false, error: { code: 'version_mismatch', message: ERROR_MESSAGES.version_mismatch } });
});

test('an error code outside the closed set is read as internal, and its message is replaced', () => {
  const parsed = parseResponse(wire({ v: 1, id: 1, ok: false, error: { code: 'sub=alice', message: 'leaked 10.0.0.1' } }));
  assert.deepEqual(parsed, { id: 1, ok: false, error: { code: 'internal', message: ERROR_MESSAGES.internal } });
});

test('malformed responses are not responses', () => {
  const cases: unknown[] = [
    [1],
    { v: 2, id: 1, ok: true, body: {} },
    { v: 1, ok: true, body: {} },
    { v: 1, id: 1, ok: true },
    { v: 1, id: 1, ok: true, body: {}, extra: 1 },
    { v: 1, id: 1, ok: 'yes', body: {} },
    { v: 1, id: 1, ok: false },
    { v: 1, id: 1, ok: false, error: { code: 'internal' } },
    { v: 1, id: 1, ok: false, error: { code: 'internal', message: 3 } },
  ];
  for (const value of cases) assert.equal(parseResponse(wire(value)), null, JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? String(v) : v)));
});

test('ok bodies are checked against the op they answer', () => {
  const body = (value: unknown): CborMap => wire(value) as CborMap;
  const one = new Uint8Array([1]);
  const keyId = new Uint8Array(8).fill(3);
  assert.deepEqual(parseResponseBody('attest', body({ document: one, jwks: one })), { document: one, jwks: one }, 'attest: document and jwks');
  assert.equal(parseResponseBody('attest', body({ document: one })), null, 'attest without the JWKS it binds');
  assert.equal(parseResponseBody('attest', body({ document: one, jwks: new Uint8Array(0) })), null, 'attest with an empty JWKS');
  assert.deepEqual(parseResponseBody('jwks', body({ jwks: one })), { jwks: one });
  const mCommit = new Uint8Array(32).fill(4);
  assert.deepEqual(
    parseResponseBody('health', body({ status: 'ok', version: '1', key_id: keyId, m_commit: mCommit })),
    { status: 'ok', version: '1', key_id: keyId, m_commit: mCommit },
    'health ok carries key_id and m_commit',
  );
  assert.deepEqual(parseResponseBody('health', body({ status: 'locked', version: '1', key_id: keyId })), { status: 'locked', version: '1', key_id: keyId }, 'health locked carries no m_commit');
  assert.equal(parseResponseBody('health', body({ status: 'locked', version: '1', key_id: keyId, m_commit: mCommit })), null, 'locked with an m_commit');
  assert.equal(parseResponseBody('health', body({ status: 'ok', version: '1', key_id: keyId })), null, 'ok without m_commit');
  assert.equal(parseResponseBody('health', body({ status: 'ok', version: '1', m_commit: mCommit })), null, 'health without key_id');
  for (const length of [7, 9]) {
    assert.equal(parseResponseBody('health', body({ status: 'ok', version: '1', key_id: new Uint8Array(length), m_commit: mCommit })), null, `a ${length}-byte key_id`);
  }
  for (const length of [31, 33]) {
    assert.equal(parseResponseBody('health', body({ status: 'ok', version: '1', key_id: keyId, m_commit: new Uint8Array(length) })), null, `a ${length}-byte m_commit`);
    assert.equal(parseResponseBody('unlock', body({ status: 'ok', epoch: 1, m_commit: new Uint8Array(length) })), null, `unlock with a ${length}-byte m_commit`);
  }
  assert.deepEqual(parseResponseBody('key_request', body({ document: one })), { document: one }, 'key_request: a document');
  assert.equal(parseResponseBody('key_request', body({ document: one, jwks: one })), null, 'key_request: nothing else');
  assert.deepEqual(parseResponseBody('unlock', body({ status: 'ok', epoch: 694, m_commit: mCommit })), { status: 'ok', epoch: 694, m_commit: mCommit }, 'unlock: status, epoch, m_commit');
  assert.equal(parseResponseBody('unlock', body({ status: 'ok', epoch: -1, m_commit: mCommit })), null, 'unlock: a negative epoch');
  assert.equal(parseResponseBody('unlock', body({ status: 'locked', epoch: 1, m_commit: mCommit })), null, 'unlock: only ok');
  assert.equal(parseResponseBody('attest', body({ document: new Uint8Array(0), jwks: one })), null);
  assert.equal(parseResponseBody('jwks', body({ jwks: '{}' })), null);
  assert.equal(parseResponseBody('health', body({ status: 'down', version: '1', key_id: keyId })), null);
  assert.equal(parseResponseBody('refresh', body({ ip: '10.0.0.1', reservedUntil: -1, response: new Uint8Array(1) })), null);
  assert.equal(parseResponseBody('refresh', body({ ip: '10.0.0.01', reservedUntil: 1, response: new Uint8Array(1) })), null);
  assert.equal(parseResponseBody('refresh', body({ ip: '10.0.0.1', reservedUntil: 1, response: new Uint8Array(0) })), null);
  assert.equal(parseResponseBody('assign', body({ ip: '10.0.0.1', reservedUntil: 1 })), null);
});

test('a tagged byte string (tag 64, a typed array) where a byte string is expected is bad_request', () => {
  // {"v":1,"id":7,"op":"refresh","body":{"ip":"10.0.0.1","request": 64(h'0102')}}
  const utf8 = (t: string): number[] => [...new TextEncoder().encode(t)];
  const bytes = new Uint8Array([
    0xa4, 0x61, 0x76, 0x01, 0x62, 0x69, 0x64, 0x07, 0x62, 0x6f, 0x70, 0x67, ...utf8('refresh'),
    0x64, ...utf8('body'), 0xa2, 0x62, ...utf8('ip'), 0x68, ...utf8('10.0.0.1'), 0x67, ...utf8('request'), 0xd8, 0x40, 0x42, 0x01, 0x02,
  ]);
  assert.throws(
    () => parseRequest(decodeCbor(bytes)),
    (error: unknown) => error instanceof RequestError && error.code === 'bad_request' && error.id === 7,
  );
  // The same bytes untagged are a valid request: the tag alone is what is refused.
  const untagged = bytes.filter((_, i) => i !== bytes.indexOf(0xd8) && i !== bytes.indexOf(0xd8) + 1);
  assert.equal(parseRequest(decodeCbor(untagged)).op, 'refresh');
});
