import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  AttestationError,
  decodeAttestationPayload,
  decodeUserData,
  encodeAttestationPayload,
  encodeKmsUserData,
  encodeUserData,
  type AttestationPayload,
} from '../attestation-document.js';
import { decodeCoseSign1, encodeCoseSign1, es384ProtectedHeader, sigStructure } from '../cose.js';
import { decodeCbor, encodeCbor } from '../cbor.js';

const awsDocument = new Uint8Array(readFileSync(new URL('../../test/vectors/aws-attestation-2026-01-03.cbor', import.meta.url)));

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const concat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));
const cbor = (value: unknown): Uint8Array => encodeCbor(value);

function rejects(fn: () => unknown, code: string, label = ''): void {
  assert.throws(
    fn,
    (error: unknown) => error instanceof AttestationError && error.code === code,
    `${label}: expected AttestationError ${code}`,
  );
}

/** An indefinite-length map from already-encoded keys and values, so tests can write what encodeCbor will not. */
function rawMap(entries: ReadonlyArray<readonly [Uint8Array, Uint8Array]>): Uint8Array {
  return concat(Uint8Array.of(0xbf), ...entries.flatMap(([k, v]) => [k, v]), Uint8Array.of(0xff));
}

function validPayload(): AttestationPayload {
  const pcrs = new Map<number, Uint8Array>();
  for (let i = 0; i < 16; i++) pcrs.set(i, new Uint8Array(48).fill(i));
  return {
    moduleId: 'dev-test',
    digest: 'SHA384',
    timestamp: 1_767_472_867_402,
    pcrs,
    certificate: new Uint8Array(600).fill(1),
    cabundle: [new Uint8Array(500).fill(2), new Uint8Array(700).fill(3)],
    publicKey: new Uint8Array(91).fill(4),
    userData: new Uint8Array(46).fill(5),
    nonce: new Uint8Array(32).fill(6),
  };
}

/** The payload's fields as encoded CBOR items, keyed by wire name, in AWS's order. */
function payloadEntries(): Array<[string, Uint8Array]> {
  const p = validPayload();
  return [
    ['module_id', cbor(p.moduleId)],
    ['digest', cbor(p.digest)],
    ['timestamp', cbor(p.timestamp)],
    ['pcrs', cbor(p.pcrs)],
    ['certificate', cbor(p.certificate)],
    ['cabundle', cbor(p.cabundle)],
    ['public_key', cbor(p.publicKey)],
    ['user_data', cbor(p.userData)],
    ['nonce', cbor(p.nonce)],
  ];
}

function payloadWith(changes: Record<string, Uint8Array | null>): Uint8Array {
  const entries = payloadEntries()
    .filter(([key]) => changes[key] !== null)
    .map(([key, value]) => [cbor(key), changes[key] ?? value] as const);
  return rawMap(entries);
}

// --- COSE_Sign1 ---

test('the real AWS document decodes as an untagged COSE_Sign1 with protected header a1 01 38 22', () => {
  const cose = decodeCoseSign1(awsDocument);
  assert.equal(awsDocument[0], 0x84);
  assert.equal(hex(cose.protected), 'a1013822');
  assert.equal(cose.unprotected.size, 0);
  assert.equal(cose.signature.length, 96);
  const payload = decodeAttestationPayload(cose.payload);
  assert.equal(payload.timestamp, 1767472867402);
  assert.equal(hex(payload.pcrs.get(1)!).slice(0, 8), '0343b056');
  assert.equal(payload.cabundle.length, 4);
});

test('re-encoding the decoded AWS COSE_Sign1 gives back its exact bytes', () => {
  assert.equal(hex(encodeCoseSign1(decodeCoseSign1(awsDocument))), hex(awsDocument));
});

test('the real AWS payload (an indefinite-length map) re-encodes to the same data in AWS key order', () => {
  const payload = decodeAttestationPayload(decodeCoseSign1(awsDocument).payload);
  const again = decodeAttestationPayload(encodeAttestationPayload(payload));
  assert.deepEqual(again, payload);
});

test('es384ProtectedHeader is CBOR {1: -35} = a1 01 38 22', () => {
  assert.equal(hex(es384ProtectedHeader()), 'a1013822');
});

test('sigStructure is ["Signature1", protected, h\'\', payload] in preferred serialization', () => {
  const bytes = sigStructure(Uint8Array.of(0xa1, 0x01, 0x38, 0x22), Uint8Array.of(0xaa, 0xbb));
  assert.equal(hex(bytes), `84${'6a' + hex(new TextEncoder().encode('Signature1'))}44a1013822${'40'}42aabb`);
});

test('a COSE_Sign1 round-trips untagged and decodes with tag 18', () => {
  const message = { protected: es384ProtectedHeader(), payload: Uint8Array.of(1, 2, 3), signature: new Uint8Array(96).fill(7) };
  const bytes = encodeCoseSign1(message);
  assert.equal(hex(bytes.subarray(0, 7)), '8444a1013822a0');
  const decoded = decodeCoseSign1(bytes);
  assert.deepEqual(decoded.payload, message.payload);
  assert.deepEqual(decoded.signature, message.signature);
  assert.deepEqual(decodeCoseSign1(concat(Uint8Array.of(0xd2), bytes)).payload, message.payload);
});

const P = es384ProtectedHeader();
const SIG = new Uint8Array(96);
const PAYLOAD = Uint8Array.of(0xa0);
const coseArray = (...items: Uint8Array[]): Uint8Array => concat(Uint8Array.of(0x80 + items.length), ...items);
const good = coseArray(cbor(P), Uint8Array.of(0xa0), cbor(PAYLOAD), cbor(SIG));

const coseHostile: Array<[string, Uint8Array, string]> = [
  ['empty input', new Uint8Array(0), 'cose_malformed'],
  ['truncated by one byte', good.subarray(0, good.length - 1), 'cose_malformed'],
  ['a trailing byte', concat(good, Uint8Array.of(0x00)), 'cose_malformed'],
  ['a map instead of an array', cbor(new Map([[1, 2]])), 'cose_malformed'],
  ['an array of three', coseArray(cbor(P), Uint8Array.of(0xa0), cbor(PAYLOAD)), 'cose_malformed'],
  ['an array of five', coseArray(cbor(P), Uint8Array.of(0xa0), cbor(PAYLOAD), cbor(SIG), cbor(SIG)), 'cose_malformed'],
  ['tag 98 (COSE_Sign)', concat(Uint8Array.of(0xd8, 0x62), good), 'cose_malformed'],
  ['tag 17 (COSE_Mac0)', concat(Uint8Array.of(0xd1), good), 'cose_malformed'],
  ['tag 18 twice', concat(Uint8Array.of(0xd2, 0xd2), good), 'cose_malformed'],
  ['protected header as a map, not a bstr', coseArray(cbor(new Map([[1, -35]])), Uint8Array.of(0xa0), cbor(PAYLOAD), cbor(SIG)), 'cose_malformed'],
  ['unprotected as a bstr', coseArray(cbor(P), cbor(new Uint8Array(0)), cbor(PAYLOAD), cbor(SIG)), 'cose_malformed'],
  ['payload as a map', coseArray(cbor(P), Uint8Array.of(0xa0), Uint8Array.of(0xa0), cbor(SIG)), 'cose_malformed'],
  ['payload as null (detached)', coseArray(cbor(P), Uint8Array.of(0xa0), Uint8Array.of(0xf6), cbor(SIG)), 'cose_malformed'],
  ['payload as a tag-64 byte string', coseArray(cbor(P), Uint8Array.of(0xa0), concat(Uint8Array.of(0xd8, 0x40), cbor(PAYLOAD)), cbor(SIG)), 'cose_malformed'],
  ['a 95-byte signature', coseArray(cbor(P), Uint8Array.of(0xa0), cbor(PAYLOAD), cbor(new Uint8Array(95))), 'cose_malformed'],
  ['a 97-byte signature', coseArray(cbor(P), Uint8Array.of(0xa0), cbor(PAYLOAD), cbor(new Uint8Array(97))), 'cose_malformed'],
  ['a DER-sized (104-byte) signature', coseArray(cbor(P), Uint8Array.of(0xa0), cbor(PAYLOAD), cbor(new Uint8Array(104))), 'cose_malformed'],
  ['signature as text', coseArray(cbor(P), Uint8Array.of(0xa0), cbor(PAYLOAD), cbor('x'.repeat(96))), 'cose_malformed'],
  ['an empty protected header', coseArray(cbor(new Uint8Array(0)), Uint8Array.of(0xa0), cbor(PAYLOAD), cbor(SIG)), 'protected_header'],
  ['alg ES256 (-7)', coseArray(cbor(cbor(new Map([[1, -7]]))), Uint8Array.of(0xa0), cbor(PAYLOAD), cbor(SIG)), 'protected_header'],
  ['alg ES512 (-36)', coseArray(cbor(cbor(new Map([[1, -36]]))), Uint8Array.of(0xa0), cbor(PAYLOAD), cbor(SIG)), 'protected_header'],
  ['alg as text "ES384"', coseArray(cbor(cbor(new Map([[1, 'ES384']]))), Uint8Array.of(0xa0), cbor(PAYLOAD), cbor(SIG)), 'protected_header'],
  ['a protected header with an extra key', coseArray(cbor(cbor(new Map<number, unknown>([[1, -35], [4, Uint8Array.of(1)]]))), Uint8Array.of(0xa0), cbor(PAYLOAD), cbor(SIG)), 'protected_header'],
  ['a protected header with crit', coseArray(cbor(cbor(new Map<number, unknown>([[1, -35], [2, [99]]]))), Uint8Array.of(0xa0), cbor(PAYLOAD), cbor(SIG)), 'protected_header'],
  ['a protected header with a duplicate alg', coseArray(cbor(Uint8Array.of(0xa2, 0x01, 0x38, 0x22, 0x01, 0x38, 0x22)), Uint8Array.of(0xa0), cbor(PAYLOAD), cbor(SIG)), 'protected_header'],
  ['a protected header with trailing bytes', coseArray(cbor(Uint8Array.of(0xa1, 0x01, 0x38, 0x22, 0x00)), Uint8Array.of(0xa0), cbor(PAYLOAD), cbor(SIG)), 'protected_header'],
  ['a protected header that is an array', coseArray(cbor(cbor([1, -35])), Uint8Array.of(0xa0), cbor(PAYLOAD), cbor(SIG)), 'protected_header'],
  ['alg repeated in the unprotected header', coseArray(cbor(P), cbor(new Map([[1, -7]])), cbor(PAYLOAD), cbor(SIG)), 'protected_header'],
];

for (const [label, bytes, code] of coseHostile) {
  test(`decodeCoseSign1 rejects ${label} with ${code}`, () => {
    rejects(() => decodeCoseSign1(bytes), code, label);
  });
}

test('decodeCoseSign1 accepts the hostile table\'s baseline, and a non-empty unprotected header without alg', () => {
  assert.deepEqual(decodeCoseSign1(good).payload, PAYLOAD);
  const kid = coseArray(cbor(P), cbor(new Map([[4, Uint8Array.of(1)]])), cbor(PAYLOAD), cbor(SIG));
  assert.equal(decodeCoseSign1(kid).unprotected.size, 1);
});

test('encodeCoseSign1 refuses a signature that is not 96 bytes, or non-bytes (TypeError)', () => {
  assert.throws(() => encodeCoseSign1({ protected: P, payload: PAYLOAD, signature: new Uint8Array(64) }), TypeError);
  assert.throws(() => encodeCoseSign1({ protected: 'x' as unknown as Uint8Array, payload: PAYLOAD, signature: SIG }), TypeError);
  assert.throws(() => encodeCoseSign1({ protected: P, payload: [] as unknown as Uint8Array, signature: SIG }), TypeError);
});

// --- the attestation payload ---

test('encodeAttestationPayload writes AWS\'s key order and null for absent optional fields', () => {
  const payload = { ...validPayload(), publicKey: null, userData: null, nonce: null };
  const bytes = encodeAttestationPayload(payload);
  assert.equal(bytes[0], 0xa9); // a definite map of nine pairs
  const keys = [...(decodeCbor(bytes) as Map<string, unknown>).keys()];
  assert.deepEqual(keys, ['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce']);
  assert.deepEqual(decodeAttestationPayload(bytes), payload);
});

test('encodeAttestationPayload sorts PCRs by index', () => {
  const payload = validPayload();
  payload.pcrs = new Map([[2, new Uint8Array(48)], [0, new Uint8Array(48)], [1, new Uint8Array(32)]]);
  const pcrs = (decodeCbor(encodeAttestationPayload(payload)) as Map<string, Map<number, unknown>>).get('pcrs')!;
  assert.deepEqual([...pcrs.keys()], [0, 1, 2]);
});

test('a payload round-trips with fields in any order, an unknown key and the largest sizes AWS allows', () => {
  const big = validPayload();
  big.certificate = new Uint8Array(1024);
  big.cabundle = [new Uint8Array(1024)];
  big.publicKey = new Uint8Array(1024);
  big.userData = new Uint8Array(1024);
  big.nonce = new Uint8Array(512);
  big.pcrs = new Map(Array.from({ length: 32 }, (_, i) => [i, new Uint8Array(i % 3 === 0 ? 32 : i % 3 === 1 ? 48 : 64)]));
  const entries = [...(decodeCbor(encodeAttestationPayload(big)) as Map<string, unknown>)].reverse();
  const shuffled = encodeCbor(new Map<string, unknown>([['future_field', 1], ...entries]));
  assert.deepEqual(decodeAttestationPayload(shuffled), big);
});

test('a payload without the optional fields decodes them as null', () => {
  const bytes = payloadWith({ public_key: null, user_data: null, nonce: null });
  const payload = decodeAttestationPayload(bytes);
  assert.equal(payload.publicKey, null);
  assert.equal(payload.userData, null);
  assert.equal(payload.nonce, null);
});

const tag64 = (bytes: Uint8Array): Uint8Array => concat(Uint8Array.of(0xd8, 0x40), cbor(bytes));
const payloadHostile: Array<[string, Uint8Array, string]> = [
  ['an array instead of a map', cbor([1, 2]), 'payload_malformed'],
  ['bytes that are not CBOR', Uint8Array.of(0xff), 'payload_malformed'],
  ['a truncated map', payloadWith({}).subarray(0, 100), 'payload_malformed'],
  ['a trailing byte', concat(payloadWith({}), Uint8Array.of(0)), 'payload_malformed'],
  ['a duplicate key', rawMap([...payloadEntries().map(([k, v]) => [cbor(k), v] as const), [cbor('nonce'), cbor(new Uint8Array(16))]]), 'payload_malformed'],
  ['an integer key', rawMap([...payloadEntries().map(([k, v]) => [cbor(k), v] as const), [cbor(7), cbor(1)]]), 'payload_malformed'],
  ...(['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle'] as const).map(
    (key): [string, Uint8Array, string] => [`no ${key}`, payloadWith({ [key]: null }), 'payload_malformed'],
  ),
  ['module_id as a number', payloadWith({ module_id: cbor(1) }), 'field_type'],
  ['module_id empty', payloadWith({ module_id: cbor('') }), 'field_type'],
  ['module_id as bytes', payloadWith({ module_id: cbor(new Uint8Array(4)) }), 'field_type'],
  ['digest SHA256', payloadWith({ digest: cbor('SHA256') }), 'field_type'],
  ['digest as a number', payloadWith({ digest: cbor(384) }), 'field_type'],
  ['timestamp 0', payloadWith({ timestamp: cbor(0) }), 'field_type'],
  ['timestamp negative', payloadWith({ timestamp: cbor(-1) }), 'field_type'],
  ['timestamp as text', payloadWith({ timestamp: cbor('1767472867402') }), 'field_type'],
  ['timestamp as a float', payloadWith({ timestamp: Uint8Array.of(0xfb, 0x42, 0x79, 0xb8, 0x6f, 0x9c, 0x3f, 0x4a, 0x80) }), 'field_type'],
  ['timestamp beyond 2^53', payloadWith({ timestamp: Uint8Array.of(0x1b, 0xff, 0, 0, 0, 0, 0, 0, 0) }), 'field_type'],
  ['pcrs as an array', payloadWith({ pcrs: cbor([new Uint8Array(48)]) }), 'field_type'],
  ['pcrs empty', payloadWith({ pcrs: cbor(new Map()) }), 'field_type'],
  ['pcrs index 32', payloadWith({ pcrs: cbor(new Map([[32, new Uint8Array(48)]])) }), 'field_type'],
  ['pcrs index -1', payloadWith({ pcrs: cbor(new Map([[-1, new Uint8Array(48)]])) }), 'field_type'],
  ['pcrs index as text', payloadWith({ pcrs: cbor(new Map([['0', new Uint8Array(48)]])) }), 'field_type'],
  ['a 47-byte PCR', payloadWith({ pcrs: cbor(new Map([[0, new Uint8Array(47)]])) }), 'field_type'],
  ['a 49-byte PCR', payloadWith({ pcrs: cbor(new Map([[0, new Uint8Array(49)]])) }), 'field_type'],
  ['a PCR as text', payloadWith({ pcrs: cbor(new Map([[0, 'x'.repeat(48)]])) }), 'field_type'],
  ['a tag-64 PCR', payloadWith({ pcrs: rawMap([[cbor(0), tag64(new Uint8Array(48))]]) }), 'field_type'],
  ['pcrs with a duplicate index', payloadWith({ pcrs: rawMap([[cbor(0), cbor(new Uint8Array(48))], [cbor(0), cbor(new Uint8Array(48))]]) }), 'payload_malformed'],
  ['33 PCRs (indices 0..32)', payloadWith({ pcrs: cbor(new Map(Array.from({ length: 33 }, (_, i) => [i, new Uint8Array(48)]))) }), 'field_type'],
  ['certificate empty', payloadWith({ certificate: cbor(new Uint8Array(0)) }), 'field_type'],
  ['certificate of 1025 bytes', payloadWith({ certificate: cbor(new Uint8Array(1025)) }), 'field_type'],
  ['certificate as text', payloadWith({ certificate: cbor('cert') }), 'field_type'],
  ['certificate tagged 64', payloadWith({ certificate: tag64(new Uint8Array(10)) }), 'field_type'],
  ['cabundle as a bstr', payloadWith({ cabundle: cbor(new Uint8Array(10)) }), 'field_type'],
  ['cabundle empty', payloadWith({ cabundle: cbor([]) }), 'field_type'],
  ['cabundle with text', payloadWith({ cabundle: cbor(['cert']) }), 'field_type'],
  ['cabundle with an empty certificate', payloadWith({ cabundle: cbor([new Uint8Array(10), new Uint8Array(0)]) }), 'field_type'],
  ['cabundle with a 1025-byte certificate', payloadWith({ cabundle: cbor([new Uint8Array(1025)]) }), 'field_type'],
  ...(['public_key', 'user_data'] as const).flatMap((key): Array<[string, Uint8Array, string]> => [
    [`${key} as text`, payloadWith({ [key]: cbor('key') }), 'field_type'],
    [`${key} empty`, payloadWith({ [key]: cbor(new Uint8Array(0)) }), 'field_type'],
    [`${key} of 1025 bytes`, payloadWith({ [key]: cbor(new Uint8Array(1025)) }), 'field_type'],
    [`${key} as false`, payloadWith({ [key]: cbor(false) }), 'field_type'],
  ]),
  ['nonce as text', payloadWith({ nonce: cbor('nonce') }), 'field_type'],
  ['nonce empty', payloadWith({ nonce: cbor(new Uint8Array(0)) }), 'field_type'],
  ['nonce of 513 bytes', payloadWith({ nonce: cbor(new Uint8Array(513)) }), 'field_type'],
  ['nonce tagged 64', payloadWith({ nonce: tag64(new Uint8Array(16)) }), 'field_type'],
];

for (const [label, bytes, code] of payloadHostile) {
  test(`decodeAttestationPayload rejects ${label} with ${code}`, () => {
    rejects(() => decodeAttestationPayload(bytes), code, label);
  });
}

test('the hostile payload table\'s baseline decodes', () => {
  assert.deepEqual(decodeAttestationPayload(payloadWith({})), validPayload());
});

test('encodeAttestationPayload refuses each invalid field with a TypeError', () => {
  const cases: Array<Partial<Record<keyof AttestationPayload, unknown>>> = [
    { moduleId: '' },
    { digest: 'SHA256' },
    { timestamp: 0 },
    { timestamp: 1.5 },
    { pcrs: new Map() },
    { pcrs: new Map([[32, new Uint8Array(48)]]) },
    { pcrs: new Map([[0, new Uint8Array(47)]]) },
    { pcrs: [] },
    { certificate: new Uint8Array(0) },
    { cabundle: [] },
    { cabundle: [new Uint8Array(1025)] },
    { publicKey: new Uint8Array(0) },
    { userData: new Uint8Array(1025) },
    { nonce: new Uint8Array(513) },
  ];
  for (const change of cases) {
    assert.throws(() => encodeAttestationPayload({ ...validPayload(), ...change } as AttestationPayload), TypeError, JSON.stringify(Object.keys(change)));
  }
});

// --- user_data (SPEC §3) ---

test('user_data round-trips and is exactly {"v": 1, "jwks_sha256": bstr(32), "m_commit": bstr(32)} in preferred serialization', () => {
  const digest = new Uint8Array(32).map((_, i) => i);
  const mCommit = new Uint8Array(32).map((_, i) => 255 - i);
  const bytes = encodeUserData({ jwksSha256: digest, mCommit });
  const text = (t: string): string => hex(new TextEncoder().encode(t));
  assert.equal(hex(bytes), `a3617601${'6b' + text('jwks_sha256')}5820${hex(digest)}${'68' + text('m_commit')}5820${hex(mCommit)}`, 'SPEC §3 bytes');
  assert.deepEqual(decodeUserData(bytes), { v: 1, jwksSha256: digest, mCommit }, 'round trip');
});

test('encodeUserData refuses a digest or an m_commit that is not 32 bytes (TypeError)', () => {
  const ok = new Uint8Array(32);
  assert.throws(() => encodeUserData({ jwksSha256: new Uint8Array(31), mCommit: ok }), TypeError);
  assert.throws(() => encodeUserData({ jwksSha256: ok, mCommit: new Uint8Array(33) }), TypeError);
  assert.throws(() => encodeUserData({ jwksSha256: 'x' as unknown as Uint8Array, mCommit: ok }), TypeError);
  assert.throws(() => encodeUserData(new Uint8Array(32) as never), TypeError);
});

test('the KMS recipient document user_data is exactly {"v": 1, "purpose": "kms"} (SPEC §5 key_request)', () => {
  const text = (t: string): string => hex(new TextEncoder().encode(t));
  assert.equal(hex(encodeKmsUserData()), `a2617601${'67' + text('purpose')}63${text('kms')}`, 'SPEC §5 bytes');
  assert.throws(() => decodeUserData(encodeKmsUserData()), (e: unknown) => e instanceof AttestationError && e.code === 'user_data_malformed', 'not a token user_data');
});

const userDataHostile: Array<[string, Uint8Array]> = [
  ['not CBOR', Uint8Array.of(0xff)],
  ['trailing bytes', concat(encodeUserData({ jwksSha256: new Uint8Array(32), mCommit: new Uint8Array(32) }), Uint8Array.of(0))],
  ['no m_commit (the user_data before key custody)', cbor(new Map<string, unknown>([['v', 1], ['jwks_sha256', new Uint8Array(32)]]))],
  ['a 31-byte m_commit', cbor(new Map<string, unknown>([['v', 1], ['jwks_sha256', new Uint8Array(32)], ['m_commit', new Uint8Array(31)]]))],
  ['a 33-byte m_commit', cbor(new Map<string, unknown>([['v', 1], ['jwks_sha256', new Uint8Array(32)], ['m_commit', new Uint8Array(33)]]))],
  ['an array', cbor([1, new Uint8Array(32)])],
  ['version 2', cbor(new Map<string, unknown>([['v', 2], ['jwks_sha256', new Uint8Array(32)]]))],
  ['no version', cbor(new Map<string, unknown>([['jwks_sha256', new Uint8Array(32)], ['x', 1]]))],
  ['no digest', cbor(new Map<string, unknown>([['v', 1]]))],
  ['a 31-byte digest', cbor(new Map<string, unknown>([['v', 1], ['jwks_sha256', new Uint8Array(31)]]))],
  ['a text digest', cbor(new Map<string, unknown>([['v', 1], ['jwks_sha256', 'a'.repeat(32)]]))],
  ['an extra key', cbor(new Map<string, unknown>([['v', 1], ['jwks_sha256', new Uint8Array(32)], ['m_commit', new Uint8Array(32)], ['extra', 1]]))],
  ['m_commit replaced by another key', cbor(new Map<string, unknown>([['v', 1], ['jwks_sha256', new Uint8Array(32)], ['extra', new Uint8Array(32)]]))],
  ['a duplicate key', rawMap([[cbor('v'), cbor(1)], [cbor('jwks_sha256'), cbor(new Uint8Array(32))], [cbor('v'), cbor(1)]])],
];

for (const [label, bytes] of userDataHostile) {
  test(`decodeUserData rejects ${label}`, () => {
    rejects(() => decodeUserData(bytes), 'user_data_malformed', label);
  });
}

test('attestation errors carry fixed messages that never echo input', () => {
  try {
    decodeAttestationPayload(payloadWith({ module_id: cbor('secret-module-name'.repeat(3)), digest: cbor('nope') }));
    assert.fail('accepted');
  } catch (error) {
    assert.ok(error instanceof AttestationError, 'an AttestationError');
    assert.equal(error.name, 'AttestationError');
    assert.ok(!error.message.includes('secret-module-name'), 'the message holds no document content');
    assert.equal(error.message, new AttestationError('field_type').message);
  }
});
