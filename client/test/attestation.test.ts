import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { p384 } from '@noble/curves/nist.js';
import { fc } from '../../protocol/test/fast-check.js';
import { AWS_NITRO_ROOT_G1_SHA256, AttestationError, PcrMismatchError, verifyAttestation, type VerifyAttestationOptions } from '../attestation.js';
import { decodeCoseSign1, encodeCoseSign1, sigStructure } from '../../protocol/cose.js';
import { ATTESTATION_ERROR_MESSAGES, decodeAttestationPayload, encodeUserData, decodeUserData } from '../../protocol/attestation-document.js';
import { encodeCbor } from '../../protocol/cbor.js';
import { pemToDer } from '../x509.js';
import { createEmulatorNsm, DEV_PCRS } from '../../enclave/nsm/emulator.js';
import { KEY_USAGE, buildChain, signDocument, type CertSpec } from './helpers/documents.js';

const awsDocument = new Uint8Array(readFileSync(new URL('../../test/vectors/aws-attestation-2026-01-03.cbor', import.meta.url)));
const awsRootPem = readFileSync(new URL('../../test/vectors/aws-nitro-root-g1.pem', import.meta.url), 'utf8');
/** The vector README: valid at Unix time 1767472867; its timestamp is 1767472867402 ms. */
const AWS_AT = 1767472867000;
const AWS_TIMESTAMP = 1767472867402;
const awsOptions: VerifyAttestationOptions = { root: awsRootPem, rootSha256: AWS_NITRO_ROOT_G1_SHA256, at: AWS_AT };

function rejects(fn: () => unknown, code: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof AttestationError, `expected AttestationError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

function flip(bytes: Uint8Array, index: number, mask = 0xff): Uint8Array {
  const copy = bytes.slice();
  copy[index]! ^= mask;
  return copy;
}

// --- the real AWS document ---

test('the pinned AWS root hashes to the published Root-G1 fingerprint', () => {
  assert.equal(createHash('sha256').update(pemToDer(awsRootPem)).digest('hex'), AWS_NITRO_ROOT_G1_SHA256);
});

test('a real AWS attestation document is accepted at its own time', () => {
  const result = verifyAttestation(awsDocument, awsOptions);
  assert.equal(result.timestamp, AWS_TIMESTAMP);
  assert.equal(result.digest, 'SHA384');
  assert.equal(Buffer.from(result.pcrs.get(1)!).toString('hex').slice(0, 8), '0343b056');
  assert.equal(result.nonce, null);
  assert.equal(result.publicKey, null);
  assert.deepEqual(result.cabundle[0], pemToDer(awsRootPem));
});

test('a real AWS document is accepted with a DER root, one second later, and with its own PCRs expected', () => {
  const pcrs = decodeAttestationPayload(decodeCoseSign1(awsDocument).payload).pcrs;
  const result = verifyAttestation(awsDocument, {
    root: pemToDer(awsRootPem),
    at: AWS_AT + 1000,
    expectedPcrs: { pcr0: pcrs.get(0)!, pcr1: pcrs.get(1)!, pcr2: pcrs.get(2)! },
  });
  assert.equal(result.moduleId.length > 0, true);
});

test('a real AWS document wrapped in COSE tag 18 is accepted', () => {
  const tagged = new Uint8Array([0xd2, ...awsDocument]);
  assert.equal(verifyAttestation(tagged, awsOptions).timestamp, AWS_TIMESTAMP);
});

test('the AWS signature is high-S: a low-S-only verifier rejects it, and ours must accept it', () => {
  const cose = decodeCoseSign1(awsDocument);
  const n = 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n;
  const s = BigInt(`0x${Buffer.from(cose.signature.subarray(48)).toString('hex')}`);
  assert.ok(s > n / 2n, 'the vector signature has a high S');
  const { certificate } = decodeAttestationPayload(cose.payload);
  const point = pointOf(certificate);
  const message = sigStructure(cose.protected, cose.payload);
  assert.equal(p384.verify(cose.signature, message, point), false);
  assert.equal(p384.verify(cose.signature, message, point, { lowS: false }), true);
  assert.equal(verifyAttestation(awsDocument, awsOptions).timestamp, AWS_TIMESTAMP);
});

function pointOf(certificate: Uint8Array): Uint8Array {
  // The leaf's uncompressed P-384 point: 0x04 followed by 96 bytes, found after its BIT STRING header.
  const der = Buffer.from(certificate);
  const marker = Buffer.from([0x03, 0x62, 0x00, 0x04]);
  const at = der.indexOf(marker);
  assert.ok(at > 0, 'the certificate holds a P-384 public key');
  return new Uint8Array(der.subarray(at + 3, at + 3 + 97));
}

// Every position is flipped (XOR 0xff), split into four tests so that none nears the per-test
// timeout on a loaded machine. Every flip must fail with an AttestationError, never another throw.
const flipCodes = new Map<string, number>();
const FLIP_PARTS = 4;
for (let part = 0; part < FLIP_PARTS; part++) {
  const from = Math.floor((awsDocument.length * part) / FLIP_PARTS);
  const to = Math.floor((awsDocument.length * (part + 1)) / FLIP_PARTS);
  test(`a real AWS document is rejected with each single byte flipped (positions ${from}..${to - 1} of 4482)`, () => {
    assert.equal(awsDocument.length, 4482);
    for (let i = from; i < to; i++) {
      try {
        verifyAttestation(flip(awsDocument, i), awsOptions);
        assert.fail(`flipping byte ${i} was accepted`);
      } catch (error) {
        assert.ok(error instanceof AttestationError, `flipping byte ${i} threw ${String(error)}`);
        flipCodes.set(error.code, (flipCodes.get(error.code) ?? 0) + 1);
      }
    }
  });
}

test('the byte flips landed in every layer: structure, payload, chain and signature', () => {
  assert.equal([...flipCodes.values()].reduce((a, b) => a + b, 0), awsDocument.length);
  for (const code of ['cose_malformed', 'payload_malformed', 'chain_root_mismatch', 'chain_invalid', 'signature_invalid']) {
    assert.ok((flipCodes.get(code) ?? 0) > 0, `no flip failed with ${code}`);
  }
});

test('a real AWS document is rejected with the low bit flipped (sample: every 11th position, XOR 0x01)', () => {
  for (let i = 0; i < awsDocument.length; i += 11) {
    assert.throws(() => verifyAttestation(flip(awsDocument, i, 0x01), awsOptions), AttestationError, `byte ${i}`);
  }
});

test('a real AWS document is rejected under the emulator root', async () => {
  const nsm = await createEmulatorNsm();
  rejects(() => verifyAttestation(awsDocument, { root: nsm.rootCertificatePem, at: AWS_AT }), 'chain_root_mismatch');
  rejects(() => verifyAttestation(awsDocument, { root: nsm.rootCertificateDer, at: AWS_AT }), 'chain_root_mismatch');
});

test('a real AWS document is rejected when the pinned fingerprint differs from the root', () => {
  rejects(() => verifyAttestation(awsDocument, { ...awsOptions, rootSha256: '00'.repeat(32) }), 'chain_root_mismatch');
});

test('a real AWS document is rejected after its leaf certificate expired (2026-01-03T23:40:28Z)', () => {
  const leafNotAfter = Date.UTC(2026, 0, 3, 23, 40, 28);
  assert.equal(verifyAttestation(awsDocument, { ...awsOptions, at: leafNotAfter, maxAgeMs: 24 * 3600_000 }).timestamp, AWS_TIMESTAMP);
  rejects(() => verifyAttestation(awsDocument, { ...awsOptions, at: leafNotAfter + 1000, maxAgeMs: 24 * 3600_000 }), 'certificate_expired');
  rejects(() => verifyAttestation(awsDocument, { ...awsOptions, at: leafNotAfter + 1000 }), 'certificate_expired');
});

test('a real AWS document is rejected before its leaf certificate is valid', () => {
  rejects(() => verifyAttestation(awsDocument, { ...awsOptions, at: Date.UTC(2026, 0, 3, 20, 40, 24) }), 'certificate_expired');
});

test('a real AWS document without a nonce is rejected when the client expects one', () => {
  rejects(() => verifyAttestation(awsDocument, { ...awsOptions, nonce: new Uint8Array(32) }), 'nonce_mismatch');
});

test('a real AWS document is rejected when any expected PCR differs', () => {
  const pcrs = decodeAttestationPayload(decodeCoseSign1(awsDocument).payload).pcrs;
  for (const name of ['pcr0', 'pcr1', 'pcr2'] as const) {
    const index = Number(name.slice(3));
    const wrong = flip(pcrs.get(index)!, 47, 0x01);
    rejects(() => verifyAttestation(awsDocument, { ...awsOptions, expectedPcrs: { [name]: wrong } }), 'pcr_mismatch');
  }
});

test('a real AWS document is stale five minutes after its timestamp, unless maxAgeMs allows more', () => {
  const later = AWS_TIMESTAMP + 5 * 60_000 + 1;
  rejects(() => verifyAttestation(awsDocument, { ...awsOptions, at: later }), 'stale');
  assert.equal(verifyAttestation(awsDocument, { ...awsOptions, at: later, maxAgeMs: 10 * 60_000 }).timestamp, AWS_TIMESTAMP);
  assert.equal(verifyAttestation(awsDocument, { ...awsOptions, at: later - 1 }).timestamp, AWS_TIMESTAMP);
});

// --- the emulator's documents ---

test('an emulator document verifies under the emulator root with DEV_PCRS, and carries what was asked', async () => {
  const nsm = await createEmulatorNsm();
  const nonce = new Uint8Array(32).fill(9);
  const publicKey = new Uint8Array(91).fill(4);
  const userData = encodeUserData({ jwksSha256: new Uint8Array(32).fill(1), mCommit: new Uint8Array(32).fill(2) });
  const document = await nsm.attestation({ nonce, publicKey, userData });
  const result = verifyAttestation(document, { root: nsm.rootCertificatePem, nonce, expectedPcrs: DEV_PCRS });
  assert.ok(result.moduleId.startsWith('dev-'), 'an emulator module id starts with dev-');
  assert.deepEqual(result.nonce, nonce);
  assert.deepEqual(result.publicKey, publicKey);
  assert.deepEqual(decodeUserData(result.userData!).jwksSha256, new Uint8Array(32).fill(1));
  assert.deepEqual(verifyAttestation(document, { root: nsm.rootCertificateDer }).pcrs.get(0), DEV_PCRS.pcr0);
});

test('an emulator document is rejected under another emulator root and under the AWS root', async () => {
  const nsm = await createEmulatorNsm();
  const other = await createEmulatorNsm();
  const document = await nsm.attestation({ nonce: null, publicKey: null, userData: null });
  rejects(() => verifyAttestation(document, { root: other.rootCertificatePem }), 'chain_root_mismatch');
  rejects(() => verifyAttestation(document, { root: awsRootPem }), 'chain_root_mismatch');
  rejects(() => verifyAttestation(document, { root: nsm.rootCertificatePem, rootSha256: AWS_NITRO_ROOT_G1_SHA256 }), 'chain_root_mismatch');
});

test('an emulator document is rejected with the wrong nonce', async () => {
  const nsm = await createEmulatorNsm();
  const document = await nsm.attestation({ nonce: new Uint8Array(16).fill(1), publicKey: null, userData: null });
  rejects(() => verifyAttestation(document, { root: nsm.rootCertificateDer, nonce: new Uint8Array(16).fill(2) }), 'nonce_mismatch');
  rejects(() => verifyAttestation(document, { root: nsm.rootCertificateDer, nonce: new Uint8Array(17).fill(1) }), 'nonce_mismatch');
});

test('an emulator document is stale after maxAgeMs and refused when dated beyond the clock skew', async () => {
  let clock = Date.UTC(2030, 5, 1);
  const nsm = await createEmulatorNsm({ now: () => clock });
  const document = await nsm.attestation({ nonce: null, publicKey: null, userData: null });
  const root = nsm.rootCertificatePem;
  assert.equal(verifyAttestation(document, { root, at: clock + 5 * 60_000 }).timestamp, clock);
  rejects(() => verifyAttestation(document, { root, at: clock + 5 * 60_000 + 1 }), 'stale');
  rejects(() => verifyAttestation(document, { root, at: clock + 1000, maxAgeMs: 999 }), 'stale');
  assert.equal(verifyAttestation(document, { root, at: clock - 60_000 }).timestamp, clock);
  rejects(() => verifyAttestation(document, { root, at: clock - 60_001 }), 'timestamp_future');
  clock += 1;
});

test('an emulator document with all-zero PCR0..2 is debug mode: refused unless allowDebug', async () => {
  const zero = new Uint8Array(48);
  const nsm = await createEmulatorNsm({ pcrs: new Map([[0, zero], [1, zero], [2, zero]]) });
  const document = await nsm.attestation({ nonce: null, publicKey: null, userData: null });
  rejects(() => verifyAttestation(document, { root: nsm.rootCertificatePem }), 'debug_mode');
  rejects(() => verifyAttestation(document, { root: nsm.rootCertificatePem, allowDebug: false }), 'debug_mode');
  assert.deepEqual(verifyAttestation(document, { root: nsm.rootCertificatePem, allowDebug: true }).pcrs.get(0), zero);
  // Debug mode is all three: one zero PCR alone is an ordinary (if odd) measurement.
  const partial = await createEmulatorNsm({ pcrs: new Map([[0, zero]]) });
  const partialDocument = await partial.attestation({ nonce: null, publicKey: null, userData: null });
  assert.equal(verifyAttestation(partialDocument, { root: partial.rootCertificatePem }).pcrs.size, 16);
});

test('an emulator document is rejected when the expected PCRs are production values', async () => {
  const nsm = await createEmulatorNsm();
  const document = await nsm.attestation({ nonce: null, publicKey: null, userData: null });
  rejects(() => verifyAttestation(document, { root: nsm.rootCertificatePem, expectedPcrs: { ...DEV_PCRS, pcr2: new Uint8Array(48).fill(1) } }), 'pcr_mismatch');
});

// --- chain rules, on chains built to break exactly one of them ---

const AT = Date.UTC(2031, 0, 1);
const CA = KEY_USAGE.keyCertSign | KEY_USAGE.cRLSign;

function verifyChainCase(specs: { intermediates?: CertSpec[]; leaf?: CertSpec }, at = AT): ReturnType<typeof verifyAttestation> {
  const chain = buildChain(AT, specs);
  const document = signDocument(chain, { timestamp: AT });
  return verifyAttestation(document, { root: chain.root, at });
}

test('a chain shaped like AWS (pathLen 2, 1, 0) verifies, and so does one without intermediates', () => {
  assert.equal(verifyChainCase({}).timestamp, AT);
  assert.equal(verifyChainCase({ intermediates: [] }).timestamp, AT);
});

test('a chain whose intermediate exceeds its issuer\'s pathLen is rejected', () => {
  rejects(
    () => verifyChainCase({ intermediates: [{ pathLength: 0, keyUsage: CA }, { pathLength: 0, keyUsage: CA }] }),
    'chain_invalid',
  );
  assert.equal(verifyChainCase({ intermediates: [{ pathLength: 1, keyUsage: CA }, { pathLength: 0, keyUsage: CA }] }).timestamp, AT);
});

test('a chain with an intermediate that is not a CA is rejected', () => {
  rejects(() => verifyChainCase({ intermediates: [{ keyUsage: CA }] }), 'chain_invalid');
});

test('a chain with a CA lacking keyCertSign is rejected', () => {
  rejects(() => verifyChainCase({ intermediates: [{ pathLength: 0, keyUsage: KEY_USAGE.cRLSign }] }), 'chain_invalid');
});

test('a leaf without digitalSignature is rejected', () => {
  rejects(() => verifyChainCase({ leaf: { keyUsage: KEY_USAGE.keyCertSign, pathLength: null } }), 'chain_invalid');
});

test('a certificate signed by a key other than its issuer\'s is rejected', () => {
  rejects(() => verifyChainCase({ leaf: { keyUsage: KEY_USAGE.digitalSignature, signWithStranger: true } }), 'chain_invalid');
  rejects(
    () => verifyChainCase({ intermediates: [{ pathLength: 0, keyUsage: CA, signWithStranger: true }] }),
    'chain_invalid',
  );
});

test('a certificate naming another issuer is rejected even with a valid signature', () => {
  rejects(() => verifyChainCase({ leaf: { keyUsage: KEY_USAGE.digitalSignature, issuerName: 'someone-else' } }), 'chain_invalid');
});

test('a P-256 certificate in the chain is rejected', () => {
  rejects(() => verifyChainCase({ leaf: { keyUsage: KEY_USAGE.digitalSignature, curve: 'P-256' } }), 'chain_invalid');
  rejects(() => verifyChainCase({ intermediates: [{ pathLength: 0, keyUsage: CA, curve: 'P-256' }] }), 'chain_invalid');
});

test('an expired intermediate makes the document invalid', () => {
  rejects(
    () => verifyChainCase({ intermediates: [{ pathLength: 0, keyUsage: CA, notBefore: AT - 7200_000, notAfter: AT - 1000 }] }),
    'certificate_expired',
  );
});

// SPEC §7 step 3: every certificate must be valid at the verification time `at` AND at the
// document's `timestamp`. The certificate under test is valid for [NOT_BEFORE, NOT_AFTER]; the
// others are valid well around both; every case stays within the freshness rules (age ≤ 5 min,
// at most 60 s in the future), so only validity decides.
const NOT_BEFORE = AT - 1800_000;
const NOT_AFTER = AT + 1800_000;
const S = 1000;
const validityCases: Array<[string, { timestamp: number; at: number }, 'ok' | 'certificate_expired']> = [
  ['made and verified at notBefore', { timestamp: NOT_BEFORE, at: NOT_BEFORE }, 'ok'],
  ['made and verified at notAfter', { timestamp: NOT_AFTER, at: NOT_AFTER }, 'ok'],
  ['made at notBefore, verified 1 s later', { timestamp: NOT_BEFORE, at: NOT_BEFORE + S }, 'ok'],
  ['made 1 s before notAfter, verified at notAfter', { timestamp: NOT_AFTER - S, at: NOT_AFTER }, 'ok'],
  ['made 1 s before notBefore, verified 1 s after it', { timestamp: NOT_BEFORE - S, at: NOT_BEFORE + S }, 'certificate_expired'],
  ['made 1 s after notAfter, verified 1 s before it', { timestamp: NOT_AFTER + S, at: NOT_AFTER - S }, 'certificate_expired'],
  ['made 1 s after notBefore, verified 1 s before it', { timestamp: NOT_BEFORE + S, at: NOT_BEFORE - S }, 'certificate_expired'],
  ['made 1 s before notAfter, verified 1 s after it', { timestamp: NOT_AFTER - S, at: NOT_AFTER + S }, 'certificate_expired'],
];
const validityAt = { notBefore: NOT_BEFORE, notAfter: NOT_AFTER };
const chainPositions: Array<[string, Parameters<typeof buildChain>[1]]> = [
  ['the root', { root: validityAt }],
  ['an intermediate', { intermediates: [{ pathLength: 0, keyUsage: CA, ...validityAt }] }],
  ['the leaf', { leaf: { keyUsage: KEY_USAGE.digitalSignature, ...validityAt } }],
];
for (const [position, specs] of chainPositions) {
  test(`${position} must be valid at the document's timestamp and at verification time, boundaries included`, () => {
    const chain = buildChain(AT, specs);
    for (const [what, { timestamp, at }, expected] of validityCases) {
      const verify = () => verifyAttestation(signDocument(chain, { timestamp }), { root: chain.root, at });
      if (expected === 'ok') assert.equal(verify().timestamp, timestamp, `${position}: ${what} is accepted`);
      else {
        assert.throws(verify, (e: unknown) => e instanceof AttestationError && e.code === expected, `${position}: ${what} is ${expected}`);
      }
    }
  });
}

test('a certificate in the bundle that is not DER is rejected as chain_invalid', () => {
  const chain = buildChain(AT);
  const document = signDocument(chain, { timestamp: AT, cabundle: [chain.root, new Uint8Array([0x30, 0x00])] });
  rejects(() => verifyAttestation(document, { root: chain.root, at: AT }), 'chain_invalid');
});

test('a document signed by a key other than the leaf\'s is rejected', () => {
  const chain = buildChain(AT);
  const other = buildChain(AT);
  const document = signDocument({ ...chain, leafKey: other.leafKey }, { timestamp: AT });
  rejects(() => verifyAttestation(document, { root: chain.root, at: AT }), 'signature_invalid');
});

test('a signature of zeros or with r and s swapped is rejected', () => {
  const chain = buildChain(AT);
  const cose = decodeCoseSign1(signDocument(chain, { timestamp: AT }));
  const swapped = new Uint8Array([...cose.signature.subarray(48), ...cose.signature.subarray(0, 48)]);
  for (const signature of [new Uint8Array(96), swapped]) {
    const document = encodeCoseSign1({ ...cose, signature });
    rejects(() => verifyAttestation(document, { root: chain.root, at: AT }), 'signature_invalid');
  }
  assert.equal(verifyAttestation(encodeCoseSign1(cose), { root: chain.root, at: AT }).timestamp, AT);
});

test('a document without PCR0..2 is rejected as pcr_mismatch', () => {
  const chain = buildChain(AT);
  const document = signDocument(chain, { timestamp: AT, pcrs: new Map([[3, new Uint8Array(48)]]) });
  rejects(() => verifyAttestation(document, { root: chain.root, at: AT }), 'pcr_mismatch');
});

test('the first failing check names the error: a bad structure wins over a wrong root', () => {
  rejects(() => verifyAttestation(encodeCbor([1, 2, 3]), { root: awsRootPem }), 'cose_malformed');
  rejects(() => verifyAttestation(awsDocument, { ...awsOptions, nonce: new Uint8Array(16), at: AWS_AT + 3600_000 * 24 }), 'certificate_expired');
});

// --- misuse by the caller ---

test('verifyAttestation throws TypeError for bad options', () => {
  assert.throws(() => verifyAttestation('x' as unknown as Uint8Array, awsOptions), TypeError);
  assert.throws(() => verifyAttestation(awsDocument, { root: 'not a pem' }), TypeError);
  assert.throws(() => verifyAttestation(awsDocument, { root: new Uint8Array(0) }), TypeError);
  assert.throws(() => verifyAttestation(awsDocument, { ...awsOptions, at: Number.NaN }), TypeError);
  assert.throws(() => verifyAttestation(awsDocument, { ...awsOptions, maxAgeMs: -1 }), TypeError);
  assert.throws(() => verifyAttestation(awsDocument, { ...awsOptions, nonce: 'abc' as unknown as Uint8Array }), TypeError);
  assert.throws(() => verifyAttestation(awsDocument, { ...awsOptions, rootSha256: 'abc' }), TypeError);
});

test('attestation error messages are fixed and never echo input', () => {
  try {
    verifyAttestation(flip(awsDocument, 100), awsOptions);
    assert.fail('accepted');
  } catch (error) {
    assert.ok(error instanceof AttestationError, 'an AttestationError');
    assert.ok(!error.message.includes('0368fa67'), 'the message holds no input bytes');
    assert.equal(new AttestationError(error.code).message, error.message);
  }
});

// --- hostile bytes of any shape ---

test('random mutations of an emulator document only ever fail with AttestationError', async () => {
  const nsm = await createEmulatorNsm();
  const document = await nsm.attestation({ nonce: new Uint8Array(16), publicKey: new Uint8Array(91), userData: null });
  const options = { root: nsm.rootCertificateDer, nonce: new Uint8Array(16) };
  assert.equal(verifyAttestation(document, options).nonce?.length, 16);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(document.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
      fc.nat(document.length),
      (edits, cut) => {
        const mutated = document.slice(0, Math.max(cut, document.length - 64));
        for (const [at, mask] of edits) if (at < mutated.length) mutated[at]! ^= mask;
        if (mutated.length === document.length && mutated.every((b, i) => b === document[i])) return;
        assert.throws(() => verifyAttestation(mutated, options), AttestationError);
      },
    ),
    { numRuns: 150 },
  );
});

test('random bytes only ever fail with AttestationError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
      assert.throws(() => verifyAttestation(bytes, { root: awsRootPem }), AttestationError);
    }),
    { numRuns: 500 },
  );
});

test('pcr_mismatch names the index of the first PCR that differs, keeping its code and message', () => {
  const pcrs = decodeAttestationPayload(decodeCoseSign1(awsDocument).payload).pcrs;
  for (const index of [0, 1, 2] as const) {
    const expectedPcrs = { pcr0: pcrs.get(0)!, pcr1: pcrs.get(1)!, pcr2: pcrs.get(2)!, [`pcr${index}`]: flip(pcrs.get(index)!, 0, 0x01) };
    assert.throws(() => verifyAttestation(awsDocument, { ...awsOptions, expectedPcrs }), (error: unknown) => {
      assert.ok(error instanceof PcrMismatchError, 'a PcrMismatchError');
      assert.equal(error.code, 'pcr_mismatch', 'the code stays pcr_mismatch');
      assert.equal(error.message, ATTESTATION_ERROR_MESSAGES.pcr_mismatch, 'the fixed message');
      assert.equal(error.pcrIndex, index, `PCR${index} is named`);
      return true;
    });
  }
});
