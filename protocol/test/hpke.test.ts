import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { fc } from './fast-check.js';
import { DipError, ERROR_MESSAGES } from '../errors.js';
import {
  AEAD_ID,
  HpkeContext,
  KDF_ID,
  KEM_ID,
  KEM_SUITE_ID,
  HPKE_SUITE_ID,
  decap,
  deriveKeyPair,
  deriveKeySchedule,
  encap,
  generateBootKey,
  hkdfExpand,
  hkdfExtract,
  keyIdOf,
  keyScheduleContext,
  labeledExpand,
  labeledExtract,
  openRequest,
  openResponse,
  sealRequest,
  sealResponse,
  setupBaseR,
  setupBaseS,
  type BootKey,
  type SealedOp,
} from '../hpke.js';
import {
  oracleAssertPoint,
  oracleLabeledExpand,
  oracleLabeledExtract,
  oracleOpenRequest,
  oracleOpenResponse,
  oraclePointFromSpki,
  oracleSealRequest,
  oracleSealResponse,
  oracleSetupS,
} from './hpke-oracle.js';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Copies `bytes` to an odd offset inside a larger buffer of junk and returns that subarray. */
function misaligned(bytes: Uint8Array, offset = 3): Uint8Array {
  const big = new Uint8Array(bytes.length + offset + 5).fill(0xa5);
  big.set(bytes, offset);
  return big.subarray(offset, offset + bytes.length);
}

function withByte(bytes: Uint8Array, index: number, value: number): Uint8Array {
  const out = new Uint8Array(bytes);
  out[index] = value;
  return out;
}

function flip(bytes: Uint8Array, index: number): Uint8Array {
  return withByte(bytes, index, bytes.at(index)! ^ 0x01);
}

function assertCode(fn: () => unknown, code: 'decrypt_failed' | 'bad_request' | 'key_unknown'): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof DipError, `expected DipError, got ${String(error)}`);
    assert.equal(error.code, code, `expected ${code}`);
    assert.equal(error.message, ERROR_MESSAGES[code], 'the fixed message of the code');
    return true;
  });
}

function assertDecryptFailed(fn: () => unknown): void {
  assertCode(fn, 'decrypt_failed');
}

function skRmOf(bootKey: BootKey): Uint8Array {
  return new Uint8Array(Buffer.from(bootKey.privateKey.export({ format: 'jwk' }).d!, 'base64url'));
}

// ---- 1. RFC 9180 test vectors ----

interface Vector {
  mode: number; kem_id: number; kdf_id: number; aead_id: number;
  info: string; ikmE: string; ikmR: string; skEm: string; skRm: string; pkEm: string; pkRm: string;
  enc: string; shared_secret: string; key_schedule_context?: string; secret: string; key: string;
  base_nonce: string; exporter_secret: string;
  encryptions: { aad: string; ciphertext: string; nonce: string; plaintext: string }[];
  exports: { exporter_context: string; L: number; exported_value: string }[];
}

const VECTOR_FILE = new URL('../../test/vectors/hpke-p256-sha256-aes256gcm-base.json', import.meta.url);
const vectors = (JSON.parse(readFileSync(VECTOR_FILE, 'utf8')) as Vector[]).filter(
  (v) => v.mode === 0 && v.kem_id === KEM_ID && v.kdf_id === KDF_ID && v.aead_id === AEAD_ID,
);

test('the RFC 9180 vector file holds base-mode vectors for our exact suite', () => {
  assert.ok(vectors.length >= 1, 'the vector file has vectors');
  for (const v of vectors) assert.ok(v.encryptions.length >= 2 && v.exports.length >= 1, 'each vector has encryptions and exports');
});

for (const [n, v] of vectors.entries()) {
  test(`RFC 9180 vector ${n}: DeriveKeyPair reproduces skEm/pkEm and skRm/pkRm from ikmE/ikmR`, () => {
    const e = deriveKeyPair(hex(v.ikmE));
    const r = deriveKeyPair(hex(v.ikmR));
    assert.equal(toHex(e.privateKey), v.skEm);
    assert.equal(toHex(e.publicKey), v.pkEm);
    assert.equal(toHex(r.privateKey), v.skRm);
    assert.equal(toHex(r.publicKey), v.pkRm);
  });

  test(`RFC 9180 vector ${n}: Encap/Decap give enc and shared_secret`, () => {
    const { sharedSecret, enc } = encap(hex(v.pkRm), hex(v.ikmE));
    assert.equal(toHex(enc), v.enc);
    assert.equal(toHex(sharedSecret), v.shared_secret);
    assert.equal(toHex(decap(hex(v.enc), hex(v.skRm))), v.shared_secret);
  });

  test(`RFC 9180 vector ${n}: the key schedule gives key_schedule_context, secret, key, base_nonce, exporter_secret`, () => {
    const ksc = keyScheduleContext(hex(v.info));
    if (v.key_schedule_context !== undefined) assert.equal(toHex(ksc), v.key_schedule_context);
    const s = deriveKeySchedule(hex(v.shared_secret), ksc);
    assert.equal(toHex(s.secret), v.secret);
    assert.equal(toHex(s.key), v.key);
    assert.equal(toHex(s.baseNonce), v.base_nonce);
    assert.equal(toHex(s.exporterSecret), v.exporter_secret);
  });

  test(`RFC 9180 vector ${n}: SetupBaseS seals every encryption at its sequence number and SetupBaseR opens it`, () => {
    const { enc, context: sender } = setupBaseS(hex(v.pkRm), hex(v.info), hex(v.ikmE));
    assert.equal(toHex(enc), v.enc);
    assert.equal(toHex(sender.key), v.key);
    assert.equal(toHex(sender.baseNonce), v.base_nonce);
    assert.equal(toHex(sender.exporterSecret), v.exporter_secret);
    const recipient = setupBaseR(enc, hex(v.skRm), hex(v.info));
    for (const [seq, e] of v.encryptions.entries()) {
      assert.equal(toHex(sender.computeNonce(seq)), e.nonce);
      assert.equal(sender.seq, seq);
      assert.equal(toHex(sender.seal(hex(e.aad), hex(e.plaintext))), e.ciphertext);
      assert.equal(toHex(recipient.open(hex(e.aad), hex(e.ciphertext))), e.plaintext);
    }
    assert.equal(sender.seq, v.encryptions.length);
  });

  test(`RFC 9180 vector ${n}: both contexts export every exported_value`, () => {
    const { enc, context: sender } = setupBaseS(hex(v.pkRm), hex(v.info), hex(v.ikmE));
    const recipient = setupBaseR(enc, hex(v.skRm), hex(v.info));
    for (const x of v.exports) {
      assert.equal(toHex(sender.export(hex(x.exporter_context), x.L)), x.exported_value);
      assert.equal(toHex(recipient.export(hex(x.exporter_context), x.L)), x.exported_value);
    }
  });

  test(`RFC 9180 vector ${n}: the noble oracle itself reproduces enc, key, base_nonce and exporter_secret`, () => {
    const s = oracleSetupS(hex(v.pkRm), hex(v.info), hex(v.skEm));
    assert.equal(toHex(s.enc), v.enc);
    assert.equal(toHex(s.key), v.key);
    assert.equal(toHex(s.baseNonce), v.base_nonce);
    assert.equal(toHex(s.exporterSecret), v.exporter_secret);
  });
}

test('HKDF-SHA256 matches RFC 5869 test case 1', () => {
  const prk = hkdfExtract(hex('000102030405060708090a0b0c'), new Uint8Array(22).fill(0x0b));
  assert.equal(toHex(prk), '077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5');
  assert.equal(
    toHex(hkdfExpand(prk, hex('f0f1f2f3f4f5f6f7f8f9'), 42)),
    '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
  );
});

test('LabeledExtract and multi-block LabeledExpand agree with the noble oracle for both suite ids', () => {
  const prk = labeledExtract(KEM_SUITE_ID, text('salt'), 'eae_prk', text('ikm'));
  assert.equal(toHex(prk), toHex(oracleLabeledExtract('KEM', text('salt'), 'eae_prk', text('ikm'))));
  for (const length of [1, 12, 32, 33, 100, 255 * 32]) {
    assert.equal(
      toHex(labeledExpand(HPKE_SUITE_ID, prk, text('sec'), text('ctx'), length)),
      toHex(oracleLabeledExpand('HPKE', prk, 'sec', text('ctx'), length)),
    );
  }
  assert.throws(() => labeledExpand(HPKE_SUITE_ID, prk, 'sec', text('ctx'), 255 * 32 + 1), TypeError);
  assert.throws(() => hkdfExpand(prk, text(''), -1), TypeError);
});

// ---- 2. An independent oracle (@noble/*) on random inputs ----

const bootKey = generateBootKey();
const skRm = skRmOf(bootKey);
const pkRm = oraclePointFromSpki(bootKey.publicKeySpki);
const opArb = fc.constantFrom<SealedOp>('assign', 'refresh');
const bytesArb = fc.uint8Array({ maxLength: 600 });

test('the noble oracle opens what sealRequest sealed, and openResponse opens the oracle\'s response', () => {
  fc.assert(
    fc.property(opArb, bytesArb, bytesArb, (op, payload, answer) => {
      const sealed = sealRequest(bootKey.publicKeySpki, op, payload);
      const opened = oracleOpenRequest(skRm, op, sealed.encapsulatedRequest);
      assert.equal(toHex(opened.plaintext), toHex(payload), 'the oracle opens our plaintext');
      assert.equal(toHex(opened.context.enc), toHex(sealed.context.enc));
      assert.equal(toHex(opened.context.secret), toHex(sealed.context.secret));
      assert.equal(toHex(openResponse(sealed.context, oracleSealResponse(opened.context, answer))), toHex(answer));
    }),
    { numRuns: 50 },
  );
});

test('openRequest opens what the noble oracle sealed, and the oracle opens sealResponse\'s response', () => {
  fc.assert(
    fc.property(opArb, bytesArb, bytesArb, (op, payload, answer) => {
      const sealed = oracleSealRequest(pkRm, op, payload);
      const opened = openRequest(bootKey, op, sealed.encapsulatedRequest);
      assert.equal(toHex(opened.plaintext), toHex(payload), 'we open the oracle\'s plaintext');
      assert.equal(toHex(opened.context.enc), toHex(sealed.context.enc));
      assert.equal(toHex(opened.context.secret), toHex(sealed.context.secret));
      assert.equal(toHex(oracleOpenResponse(sealed.context, sealResponse(opened.context, answer))), toHex(answer));
    }),
    { numRuns: 50 },
  );
});

test('an exporter value of any length agrees with the noble oracle\'s LabeledExpand', () => {
  const { context } = setupBaseS(pkRm, text('info'));
  for (const length of [0, 16, 64, 100]) {
    assert.equal(
      toHex(context.export(text('dip response'), length)),
      toHex(oracleLabeledExpand('HPKE', context.exporterSecret, 'sec', text('dip response'), length)),
    );
  }
});

// ---- 3. Round trips, op binding and hostile input ----

for (const op of ['assign', 'refresh'] as const) {
  test(`a ${op} request and its response round-trip`, () => {
    const payload = text(`{"srt":"${op}"}`);
    const sealed = sealRequest(bootKey.publicKeySpki, op, payload);
    const req = sealed.encapsulatedRequest;
    const keyId = toHex(keyIdOf(bootKey.publicKeySpki));
    assert.equal(keyId, createHash('sha256').update(bootKey.publicKeySpki).digest('hex').slice(0, 16), 'key_id = SHA-256(SPKI)[0..8]');
    assert.equal(toHex(req.subarray(0, 16)), `02${keyId}${'0010'}${'0001'}${'0002'}0${op === 'assign' ? 1 : 2}`, 'SPEC §4 hdr');
    assert.equal(req.length, 16 + 65 + payload.length + 16, 'hdr || enc || ct');
    assert.equal(toHex(req.subarray(16, 81)), toHex(sealed.context.enc), 'enc follows hdr');
    const opened = openRequest(bootKey, op, req);
    assert.equal(toHex(opened.plaintext), toHex(payload), 'the plaintext round-trips');
    assert.equal(toHex(opened.context.secret), toHex(sealed.context.secret));
    const response = sealResponse(opened.context, text('{"dat":"d","drt":"r"}'));
    assert.equal(response.length, 32 + 21 + 16);
    assert.equal(toHex(openResponse(sealed.context, response)), toHex(text('{"dat":"d","drt":"r"}')));
  });
}

test('an empty payload and an empty response round-trip', () => {
  const sealed = sealRequest(bootKey.publicKeySpki, 'assign', new Uint8Array(0));
  const opened = openRequest(bootKey, 'assign', sealed.encapsulatedRequest);
  assert.equal(opened.plaintext.length, 0, 'an empty plaintext opens empty');
  assert.equal(openResponse(sealed.context, sealResponse(opened.context, new Uint8Array(0))).length, 0);
});

test('every request has a fresh enc and every response a fresh response_nonce', () => {
  const a = sealRequest(bootKey.publicKeySpki, 'assign', text('x'));
  const b = sealRequest(bootKey.publicKeySpki, 'assign', text('x'));
  assert.notEqual(toHex(a.context.enc), toHex(b.context.enc));
  assert.notEqual(toHex(a.context.secret), toHex(b.context.secret));
  const r1 = sealResponse(a.context, text('y'));
  const r2 = sealResponse(a.context, text('y'));
  assert.notEqual(toHex(r1.subarray(0, 32)), toHex(r2.subarray(0, 32)));
  assert.notEqual(toHex(r1), toHex(r2));
});

test('a request sealed for assign is rejected when opened as refresh, and the other way round', () => {
  const assign = sealRequest(bootKey.publicKeySpki, 'assign', text('p')).encapsulatedRequest;
  const refresh = sealRequest(bootKey.publicKeySpki, 'refresh', text('p')).encapsulatedRequest;
  assertDecryptFailed(() => openRequest(bootKey, 'refresh', assign));
  assertDecryptFailed(() => openRequest(bootKey, 'assign', refresh));
  // Rewriting the op byte does not help: hdr is both the AAD and part of info.
  assertDecryptFailed(() => openRequest(bootKey, 'refresh', withByte(assign, 15, 0x02)));
  assertDecryptFailed(() => openRequest(bootKey, 'assign', withByte(refresh, 15, 0x01)));
});

test('a request sealed to another boot key is key_unknown, by its key_id, before any decryption', () => {
  const other = generateBootKey();
  const toOther = sealRequest(other.publicKeySpki, 'assign', text('p')).encapsulatedRequest;
  const toBoot = sealRequest(bootKey.publicKeySpki, 'assign', text('p')).encapsulatedRequest;
  const toOtherAgain = sealRequest(other.publicKeySpki, 'assign', text('p')).encapsulatedRequest;
  assertCode(() => openRequest(bootKey, 'assign', toOther), 'key_unknown');
  assertCode(() => openRequest(bootKey, 'assign', toOtherAgain), 'key_unknown');
  assertCode(() => openRequest(other, 'assign', toBoot), 'key_unknown');
  assert.equal(openRequest(other, 'assign', toOtherAgain).plaintext.length, 1, 'the other key opens its own request');
  assert.equal(openRequest(bootKey, 'assign', toBoot).plaintext.length, 1, 'the boot key opens its own request');
  // A request to another key with our key_id written in: the header is bound, so it is decrypt_failed.
  const relabelled = new Uint8Array(toOther);
  relabelled.set(keyIdOf(bootKey.publicKeySpki), 1);
  assertDecryptFailed(() => openRequest(bootKey, 'assign', relabelled));
  // No decryption is attempted for another key_id: a body that could never open is still key_unknown.
  const garbageForOther = new Uint8Array(toOther.length).fill(0xee);
  garbageForOther.set(toOther.subarray(0, 16));
  assertCode(() => openRequest(bootKey, 'assign', garbageForOther), 'key_unknown');
});

test('subarray inputs at odd offsets still seal and open', () => {
  const payload = text('payload at an odd offset');
  const sealed = sealRequest(misaligned(bootKey.publicKeySpki), 'refresh', misaligned(payload, 1));
  const opened = openRequest(bootKey, 'refresh', misaligned(sealed.encapsulatedRequest, 7));
  assert.equal(toHex(opened.plaintext), toHex(payload), 'a misaligned request opens');
  const response = sealResponse(
    { enc: misaligned(opened.context.enc), secret: misaligned(opened.context.secret, 5) },
    misaligned(text('answer'), 9),
  );
  assert.equal(toHex(openResponse(sealed.context, misaligned(response, 11))), toHex(text('answer')));
});

test('openRequest gives plain Uint8Arrays of their own: reusing a Buffer input afterwards changes neither enc nor the plaintext', () => {
  const payload = text('a Buffer the caller reuses');
  const sealed = sealRequest(bootKey.publicKeySpki, 'assign', payload);
  const input = Buffer.from(sealed.encapsulatedRequest);
  const opened = openRequest(bootKey, 'assign', input);
  input.fill(0);
  assert.equal(Object.getPrototypeOf(opened.plaintext), Uint8Array.prototype, 'not a Buffer, whose slice() would be a view');
  assert.equal(Object.getPrototypeOf(opened.context.enc), Uint8Array.prototype);
  assert.equal(toHex(opened.context.enc), toHex(sealed.context.enc), 'enc is a copy, not a view of the input');
  assert.equal(toHex(opened.plaintext), toHex(payload));
  assert.equal(toHex(openResponse(sealed.context, sealResponse(opened.context, text('ok')))), toHex(text('ok')));
});

// Long enough that a 33-byte (compressed) enc in its place still leaves 97 bytes or more.
const GOOD_PLAINTEXT = text('{"srt":"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p"}');
const good = sealRequest(bootKey.publicKeySpki, 'assign', GOOD_PLAINTEXT);
const req = good.encapsulatedRequest;
const enc = req.subarray(16, 81);
const ct = req.subarray(81);
const hdr = req.subarray(0, 16);
const x = enc.subarray(1, 33);
const y = enc.subarray(33, 65);
const compressed = new Uint8Array([0x02 | (y.at(-1)! & 1), ...x]);
const offCurve = new Uint8Array([0x04, ...x, ...flip(y, 31)]);
const hybrid = new Uint8Array([0x06 | (y.at(-1)! & 1), ...x, ...y]);
// x = p (the field prime), with the y of the valid point x = 0: a broken decoder reducing x mod p accepts it.
const xIsP = hex('04ffffffff00000001000000000000000000000000ffffffffffffffffffffffff66485c780e2f83d72433bd5d84a06bb6541c2af31dae871728bf856a174f93f4');
const withEnc = (e: Uint8Array): Uint8Array => new Uint8Array([...hdr, ...e, ...ct]);
const otherEnc = sealRequest(bootKey.publicKeySpki, 'assign', GOOD_PLAINTEXT).context.enc;

test('the hostile enc points of the table are indeed not valid uncompressed P-256 points', () => {
  for (const bad of [offCurve, xIsP, new Uint8Array([0x04, ...new Uint8Array(64)])]) {
    assert.throws(() => oracleAssertPoint(bad));
  }
  oracleAssertPoint(enc);
  oracleAssertPoint(compressed); // valid, but not the form SPEC §4 allows
  oracleAssertPoint(otherEnc);
});

// SPEC §4: another version or fewer than 16 + 65 + 16 bytes is bad_request, another key_id is
// key_unknown, and everything else that does not open is decrypt_failed.
const malformedRequests: [string, Uint8Array][] = [
  ['empty', new Uint8Array(0)],
  ['a truncated header', req.subarray(0, 5)],
  ['the header alone', req.subarray(0, 16)],
  ['header and enc without ct', req.subarray(0, 81)],
  ['a ct shorter than the 16-byte tag (96 bytes in all)', req.subarray(0, 81 + 15)],
  ['version byte 0x01 (the old header)', withByte(req, 0, 0x01)],
  ['version byte 0x00', withByte(req, 0, 0x00)],
  ['version byte 0x03', withByte(req, 0, 0x03)],
];

for (const [name, bad] of malformedRequests) {
  test(`openRequest rejects ${name} with bad_request`, () => {
    assertCode(() => openRequest(bootKey, 'assign', bad), 'bad_request');
  });
}

test('a request of exactly 16 + 65 + 16 bytes is long enough to be tried (decrypt_failed, not bad_request)', () => {
  assertDecryptFailed(() => openRequest(bootKey, 'assign', req.subarray(0, 97)));
});

for (const index of [1, 4, 8]) {
  test(`openRequest rejects a key_id changed in byte ${index} with key_unknown`, () => {
    assertCode(() => openRequest(bootKey, 'assign', flip(req, index)), 'key_unknown');
  });
}

const hostileRequests: [string, Uint8Array][] = [
  ['a ct cut by one byte', req.subarray(0, req.length - 1)],
  ['one trailing byte', new Uint8Array([...req, 0])],
  ['kem id 0x0011', withByte(req, 10, 0x11)],
  ['kem id 0x0110', withByte(req, 9, 0x01)],
  ['kdf id 0x0002', withByte(req, 12, 0x02)],
  ['aead id 0x0001', withByte(req, 14, 0x01)],
  ['aead id 0x0003', withByte(req, 14, 0x03)],
  ['op byte 0x00', withByte(req, 15, 0x00)],
  ['op byte 0x03', withByte(req, 15, 0x03)],
  ['op byte 0xff', withByte(req, 15, 0xff)],
  ['enc not on the curve', withEnc(offCurve)],
  ['enc with x = p', withEnc(xIsP)],
  ['enc in compressed form', withEnc(compressed)],
  ['enc in compressed form padded to 65 bytes', withEnc(new Uint8Array([...compressed, ...new Uint8Array(32)]))],
  ['enc in hybrid form (0x06/0x07)', withEnc(hybrid)],
  ['enc with the 0x04 prefix and all zeros', withEnc(new Uint8Array([0x04, ...new Uint8Array(64)]))],
  ['enc all zeros', withEnc(new Uint8Array(65))],
  ['enc of another request', withEnc(otherEnc)],
  ['a flipped byte in enc', flip(req, 20)],
  ['a flipped first ct byte', flip(req, 81)],
  ['a flipped tag byte', flip(req, req.length - 1)],
  ['a flipped op byte on a misaligned subarray', misaligned(withByte(req, 15, 0x02), 3)],
];

for (const [name, bad] of hostileRequests) {
  test(`openRequest rejects ${name} with decrypt_failed`, () => {
    assertDecryptFailed(() => openRequest(bootKey, 'assign', bad));
  });
}

test('openRequest turns any single-byte change and any random body behind a valid header into its coded error', () => {
  fc.assert(
    fc.property(fc.nat({ max: req.length - 1 }), fc.integer({ min: 1, max: 255 }), (index, mask) => {
      const code = index === 0 ? 'bad_request' : index < 9 ? 'key_unknown' : 'decrypt_failed';
      assertCode(() => openRequest(bootKey, 'assign', withByte(req, index, req[index]! ^ mask)), code);
    }),
    { numRuns: 150 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (body) => {
      const code = body.length < 81 ? 'bad_request' : 'decrypt_failed';
      assertCode(() => openRequest(bootKey, 'assign', new Uint8Array([...hdr, ...body])), code);
      assertCode(() => openRequest(bootKey, 'assign', new Uint8Array([...hdr, 0x04, ...x, ...y, ...body])), body.length < 16 ? 'bad_request' : 'decrypt_failed');
      assertDecryptFailed(() => openResponse(good.context, body));
    }),
    { numRuns: 150 },
  );
});

test('the untampered request of the hostile table does open (so each case fails for its own reason)', () => {
  assert.equal(toHex(openRequest(bootKey, 'assign', misaligned(req)).plaintext), toHex(GOOD_PLAINTEXT), 'the untampered request opens');
});

const opened = openRequest(bootKey, 'assign', req);
const resp = sealResponse(opened.context, text('{"dat":"d","drt":"r"}'));
const otherContext = openRequest(bootKey, 'assign', sealRequest(bootKey.publicKeySpki, 'assign', text('q')).encapsulatedRequest).context;

const hostileResponses: [string, Uint8Array][] = [
  ['empty', new Uint8Array(0)],
  ['a response_nonce alone', resp.subarray(0, 32)],
  ['one byte short of nonce and tag', resp.subarray(0, 47)],
  ['nonce and tag with zeros', new Uint8Array(48)],
  ['a wrong response_nonce', flip(resp, 0)],
  ['a flipped last nonce byte', flip(resp, 31)],
  ['a flipped ct byte', flip(resp, 32)],
  ['a flipped tag byte', flip(resp, resp.length - 1)],
  ['a ct cut by one byte', resp.subarray(0, resp.length - 1)],
  ['one trailing byte', new Uint8Array([...resp, 0])],
];

for (const [name, bad] of hostileResponses) {
  test(`openResponse rejects ${name} with decrypt_failed`, () => {
    assertDecryptFailed(() => openResponse(good.context, bad));
  });
}

test('openResponse rejects a response sealed for another request\'s context', () => {
  assertDecryptFailed(() => openResponse(otherContext, resp));
  assert.equal(toHex(openResponse(good.context, misaligned(resp))), toHex(text('{"dat":"d","drt":"r"}')));
});

// ---- 4. Misuse by our own code is a TypeError ----

test('sealRequest rejects a non-P-256 SPKI (Ed25519, P-384, RSA, garbage) with TypeError', () => {
  const spki = (k: ReturnType<typeof generateKeyPairSync>['publicKey']): Uint8Array =>
    new Uint8Array(k.export({ type: 'spki', format: 'der' }));
  const ed25519 = spki(generateKeyPairSync('ed25519').publicKey);
  const p384 = spki(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey);
  const rsa = spki(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey);
  for (const bad of [ed25519, p384, rsa, new Uint8Array(0), new Uint8Array(91), bootKey.publicKeySpki.subarray(0, 90)]) {
    assert.throws(() => sealRequest(bad, 'assign', text('p')), TypeError);
  }
});

test('misuse of the request/response API throws TypeError, not DipError', () => {
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const p384Boot = { privateKey: p384.privateKey, publicKeySpki: new Uint8Array(p384.publicKey.export({ type: 'spki', format: 'der' })) };
  const mismatched = { privateKey: generateBootKey().privateKey, publicKeySpki: bootKey.publicKeySpki };
  const publicAsPrivate = { privateKey: createPublicKey(bootKey.privateKey), publicKeySpki: bootKey.publicKeySpki };
  const reimported = { privateKey: createPrivateKey({ key: bootKey.privateKey.export({ type: 'pkcs8', format: 'der' }), format: 'der', type: 'pkcs8' }), publicKeySpki: bootKey.publicKeySpki };
  assert.throws(() => openRequest(p384Boot, 'assign', req), TypeError);
  assert.throws(() => openRequest(mismatched, 'assign', req), TypeError);
  assert.throws(() => openRequest({} as BootKey, 'assign', req), TypeError);
  assert.throws(() => openRequest(publicAsPrivate, 'assign', req), TypeError);
  // A boot key re-imported as another KeyObject is still the same key.
  assert.equal(toHex(openRequest(reimported, 'assign', req).plaintext), toHex(GOOD_PLAINTEXT), 'a re-imported boot key opens');
  assert.throws(() => openRequest(bootKey, 'bogus' as SealedOp, req), TypeError);
  assert.throws(() => openRequest(bootKey, 'assign', [...req] as unknown as Uint8Array), TypeError);
  assert.throws(() => sealRequest(bootKey.publicKeySpki, 'bogus' as SealedOp, text('p')), TypeError);
  assert.throws(() => sealRequest(bootKey.publicKeySpki, 'assign', 'p' as unknown as Uint8Array), TypeError);
  assert.throws(() => sealResponse({ enc: new Uint8Array(33), secret: new Uint8Array(32) }, text('p')), TypeError);
  assert.throws(() => sealResponse({ enc: good.context.enc, secret: new Uint8Array(16) }, text('p')), TypeError);
  assert.throws(() => openResponse({ enc: good.context.enc, secret: new Uint8Array(16) }, resp), TypeError);
  assert.throws(() => openResponse({ enc: good.context.enc, secret: new Uint8Array(16) }, new Uint8Array(0)), TypeError);
  assert.throws(() => openResponse(good.context, 'r' as unknown as Uint8Array), TypeError);
});

test('misuse of the RFC 9180 layer throws TypeError; a bad enc or ct is decrypt_failed', () => {
  assert.throws(() => deriveKeyPair(new Uint8Array(31)), TypeError);
  assert.throws(() => encap(new Uint8Array(65)), TypeError);
  assert.throws(() => decap(enc, new Uint8Array(32)), TypeError); // sk = 0 is not a private key
  assert.throws(() => decap(enc, new Uint8Array(32).fill(0xff)), TypeError); // sk >= n
  assertDecryptFailed(() => decap(offCurve, skRm));
  // RFC 9180 §7.1.1: only the uncompressed form; OpenSSL alone would accept the hybrid form.
  assertDecryptFailed(() => decap(hybrid, skRm));
  assert.equal(decap(enc, skRm).length, 32);
  assertDecryptFailed(() => setupBaseR(compressed, skRm, text('info')));
  assert.throws(() => new HpkeContext('sender', new Uint8Array(16), new Uint8Array(12), new Uint8Array(32)), TypeError);
  const { enc: e, context: sender } = setupBaseS(pkRm, text('info'));
  const recipient = setupBaseR(e, bootKey, text('info'));
  assert.throws(() => recipient.seal(text(''), text('p')), TypeError);
  assert.throws(() => sender.open(text(''), new Uint8Array(16)), TypeError);
  assert.throws(() => sender.computeNonce(-1), TypeError);
  assert.throws(() => sender.computeNonce(0.5), TypeError);
  const sealed = sender.seal(text('aad'), text('first'));
  // RFC 9180 §5.2: a failed Open does not advance the sequence number.
  assertDecryptFailed(() => recipient.open(text('other aad'), sealed));
  assertDecryptFailed(() => recipient.open(text('aad'), sealed.subarray(0, 15)));
  assert.equal(recipient.seq, 0);
  assert.equal(toHex(recipient.open(text('aad'), sealed)), toHex(text('first')));
  assert.equal(recipient.seq, 1);
});

test('computeNonce XORs the big-endian sequence number into the low bytes of base_nonce', () => {
  const ctx = new HpkeContext('sender', new Uint8Array(32), new Uint8Array(12).fill(0xff), new Uint8Array(32));
  assert.equal(toHex(ctx.computeNonce(0)), 'ff'.repeat(12));
  assert.equal(toHex(ctx.computeNonce(0x0102)), `${'ff'.repeat(10)}fefd`);
  assert.equal(toHex(ctx.computeNonce(Number.MAX_SAFE_INTEGER)), `${'ff'.repeat(5)}e0${'00'.repeat(6)}`);
});
