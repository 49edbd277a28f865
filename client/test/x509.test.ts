import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CertificateParseError, parseCertificate, pemToDer } from '../x509.js';

// A hand-written DER builder, independent of enclave/nsm/x509.ts, so each field can be broken alone.
const cat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));
function tlv(tag: number, ...contents: Uint8Array[]): Uint8Array {
  const body = cat(...contents);
  const n = body.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return cat(Uint8Array.of(tag, ...length), body);
}
const seq = (...items: Uint8Array[]): Uint8Array => tlv(0x30, ...items);
const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);

const ECDSA_SHA384 = tlv(0x06, bytes(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03));
const ALG = seq(ECDSA_SHA384);
const NAME = seq(tlv(0x31, seq(tlv(0x06, bytes(0x55, 0x04, 0x03)), tlv(0x0c, ascii('test')))));
const SPKI = seq(seq(tlv(0x06, bytes(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01))), tlv(0x03, bytes(0, 4, 1, 2)));
const TRUE = bytes(0x01, 0x01, 0xff);
const ext = (oid: number[], critical: boolean, value: Uint8Array): Uint8Array =>
  seq(tlv(0x06, bytes(...oid)), ...(critical ? [TRUE] : []), tlv(0x04, value));
const BASIC_CONSTRAINTS = [0x55, 0x1d, 0x13];
const KEY_USAGE = [0x55, 0x1d, 0x0f];
const caExtension = (pathLen: Uint8Array[] = [tlv(0x02, bytes(1))]): Uint8Array =>
  ext(BASIC_CONSTRAINTS, true, seq(TRUE, ...pathLen));
const keyUsageExtension = (bits: Uint8Array = bytes(1, 0x06)): Uint8Array => ext(KEY_USAGE, true, tlv(0x03, bits));

interface Parts {
  version?: Uint8Array[];
  innerAlg?: Uint8Array;
  outerAlg?: Uint8Array;
  notBefore?: Uint8Array;
  notAfter?: Uint8Array;
  uniqueIds?: Uint8Array[];
  extensions?: Uint8Array[] | null;
  signature?: Uint8Array;
}

function certificate(p: Parts = {}): Uint8Array {
  const extensions = p.extensions === undefined ? [caExtension(), keyUsageExtension()] : p.extensions;
  const tbs = seq(
    ...(p.version ?? [tlv(0xa0, tlv(0x02, bytes(2)))]),
    tlv(0x02, bytes(0x01, 0x23)),
    p.innerAlg ?? ALG,
    NAME,
    seq(p.notBefore ?? tlv(0x17, ascii('300101000000Z')), p.notAfter ?? tlv(0x18, ascii('20510101000000Z'))),
    NAME,
    SPKI,
    ...(p.uniqueIds ?? []),
    ...(extensions === null ? [] : [tlv(0xa3, seq(...extensions))]),
  );
  return seq(tbs, p.outerAlg ?? ALG, p.signature ?? tlv(0x03, bytes(0, 0x30, 0x00)));
}

test('the hand-built baseline certificate parses with its fields', () => {
  const cert = parseCertificate(certificate());
  assert.equal(cert.ecdsaSha384, true);
  assert.equal(cert.notBefore, Date.UTC(2030, 0, 1));
  assert.equal(cert.notAfter, Date.UTC(2051, 0, 1));
  assert.deepEqual(cert.basicConstraints, { ca: true, pathLength: 1 });
  assert.equal(cert.keyUsage, 0x06);
  assert.deepEqual(cert.issuer, NAME);
  assert.deepEqual(cert.subjectPublicKeyInfo, SPKI);
  assert.deepEqual(cert.signature, bytes(0x30, 0x00));
});

test('every certificate of the real AWS chain parses, with AWS\'s pathLen and keyUsage', () => {
  const root = parseCertificate(pemToDer(readFileSync(new URL('../../test/vectors/aws-nitro-root-g1.pem', import.meta.url), 'utf8')));
  assert.deepEqual(root.basicConstraints, { ca: true, pathLength: null });
  assert.equal(root.keyUsage, 0x86);
  assert.equal(root.notAfter, Date.UTC(2049, 9, 28, 14, 28, 5));
});

test('UTCTime years 50..99 are 1950..1999; certificates without extensions or with unique ids parse', () => {
  const cert = parseCertificate(certificate({ notBefore: tlv(0x17, ascii('500101000000Z')), extensions: null }));
  assert.equal(cert.notBefore, Date.UTC(1950, 0, 1));
  assert.equal(cert.basicConstraints, null);
  assert.equal(cert.keyUsage, null);
  const withIds = parseCertificate(certificate({ uniqueIds: [tlv(0x81, bytes(0, 1)), tlv(0x82, bytes(0, 2))] }));
  assert.equal(withIds.keyUsage, 0x06);
});

test('an unknown non-critical extension is ignored; a CA flag without pathLen means no limit', () => {
  const cert = parseCertificate(certificate({ extensions: [ext([0x55, 0x1d, 0x0e], false, tlv(0x04, bytes(1))), caExtension([])] }));
  assert.deepEqual(cert.basicConstraints, { ca: true, pathLength: null });
  const endEntity = parseCertificate(certificate({ extensions: [ext(BASIC_CONSTRAINTS, true, seq())] }));
  assert.deepEqual(endEntity.basicConstraints, { ca: false, pathLength: null });
});

test('signature algorithms other than bare ecdsa-with-SHA384, or differing inside and out, are flagged', () => {
  assert.equal(parseCertificate(certificate({ innerAlg: seq(ECDSA_SHA384, bytes(0x05, 0x00)), outerAlg: seq(ECDSA_SHA384, bytes(0x05, 0x00)) })).ecdsaSha384, false);
  const sha256 = seq(tlv(0x06, bytes(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02)));
  assert.equal(parseCertificate(certificate({ innerAlg: sha256, outerAlg: sha256 })).ecdsaSha384, false);
  assert.equal(parseCertificate(certificate({ outerAlg: sha256 })).ecdsaSha384, false);
});

const good = certificate();
const hostile: Array<[string, Uint8Array]> = [
  ['empty input', new Uint8Array(0)],
  ['a truncated certificate', good.subarray(0, good.length - 1)],
  ['a trailing byte', cat(good, bytes(0))],
  ['an indefinite length', bytes(0x30, 0x80, 0x00, 0x00)],
  ['a non-minimal one-byte long length', bytes(0x30, 0x81, 0x03, 0x02, 0x01, 0x00)],
  ['a non-minimal two-byte long length', cat(bytes(0x30, 0x82, 0x00, 0x83), new Uint8Array(0x83))],
  ['a four-byte length', bytes(0x30, 0x84, 0x00, 0x00, 0x00, 0x01, 0x00)],
  ['a length past the end', bytes(0x30, 0x05, 0x00)],
  ['a high-tag-number form tag', bytes(0x3f, 0x01, 0x00)],
  ['a SET instead of a SEQUENCE', cat(bytes(0x31), good.subarray(1))],
  ['a version 1 certificate (no [0])', certificate({ version: [] })],
  ['a version 2 certificate', certificate({ version: [tlv(0xa0, tlv(0x02, bytes(1)))] })],
  ['a version with a padded integer', certificate({ version: [tlv(0xa0, tlv(0x02, bytes(0, 2)))] })],
  ['a version with trailing bytes', certificate({ version: [tlv(0xa0, tlv(0x02, bytes(2)), tlv(0x05))] })],
  ['month 13', certificate({ notBefore: tlv(0x17, ascii('301301000000Z')) })],
  ['hour 24', certificate({ notBefore: tlv(0x17, ascii('300101240000Z')) })],
  ['day 0', certificate({ notBefore: tlv(0x17, ascii('300100000000Z')) })],
  ['a time without Z', certificate({ notBefore: tlv(0x17, ascii('300101000000+0100')) })],
  ['fractional seconds', certificate({ notAfter: tlv(0x18, ascii('20510101000000.5Z')) })],
  ['a time as PrintableString', certificate({ notBefore: tlv(0x13, ascii('300101000000Z')) })],
  ['a UTCTime with four-digit year', certificate({ notBefore: tlv(0x17, ascii('20300101000000Z')) })],
  ['an unknown critical extension', certificate({ extensions: [ext([0x55, 0x1d, 0x1e], true, seq())] })],
  ['a duplicate extension', certificate({ extensions: [keyUsageExtension(), keyUsageExtension()] })],
  ['a BOOLEAN that is not 00 or ff', certificate({ extensions: [ext(BASIC_CONSTRAINTS, false, seq(bytes(0x01, 0x01, 0x01)))] })],
  ['a two-byte BOOLEAN', certificate({ extensions: [ext(BASIC_CONSTRAINTS, false, seq(bytes(0x01, 0x02, 0xff, 0xff)))] })],
  ['a negative pathLen', certificate({ extensions: [caExtension([tlv(0x02, bytes(0xff))])] })],
  ['an empty pathLen', certificate({ extensions: [caExtension([tlv(0x02)])] })],
  ['a five-byte pathLen', certificate({ extensions: [caExtension([tlv(0x02, bytes(1, 0, 0, 0, 0))])] })],
  ['basicConstraints with trailing data', certificate({ extensions: [ext(BASIC_CONSTRAINTS, true, cat(seq(TRUE), bytes(0x05, 0x00)))] })],
  ['basicConstraints with an extra field', certificate({ extensions: [ext(BASIC_CONSTRAINTS, true, seq(TRUE, tlv(0x02, bytes(1)), bytes(0x05, 0x00)))] })],
  ['a keyUsage with 8 unused bits', certificate({ extensions: [keyUsageExtension(bytes(8, 0x80))] })],
  ['an empty keyUsage', certificate({ extensions: [keyUsageExtension(bytes(0))] })],
  ['a keyUsage with trailing data', certificate({ extensions: [ext(KEY_USAGE, true, cat(tlv(0x03, bytes(1, 0x06)), bytes(0x05, 0x00)))] })],
  ['an extension without a value', certificate({ extensions: [seq(tlv(0x06, bytes(...KEY_USAGE)), TRUE)] })],
  ['extensions with trailing data', certificate({ extensions: null, uniqueIds: [tlv(0xa3, seq(keyUsageExtension()), bytes(0x05, 0x00))] })],
  ['an extensions field that is not a SEQUENCE', certificate({ extensions: null, uniqueIds: [tlv(0xa3, tlv(0x31, keyUsageExtension()))] })],
  ['a signature with unused bits', certificate({ signature: tlv(0x03, bytes(1, 0x30, 0x00)) })],
  ['an empty signature', certificate({ signature: tlv(0x03, bytes(0)) })],
  ['a signature algorithm without an OID', certificate({ innerAlg: seq(bytes(0x05, 0x00)) })],
];

for (const [label, der] of hostile) {
  test(`parseCertificate rejects ${label}`, () => {
    assert.throws(() => parseCertificate(der), CertificateParseError, label);
  });
}

test('a certificate parse error has a fixed message', () => {
  assert.throws(() => parseCertificate(bytes(0x30)), (error: unknown) => error instanceof CertificateParseError && error.message === 'The certificate is malformed.');
});

test('pemToDer reads the first CERTIFICATE block and refuses text without one (TypeError)', () => {
  const pem = `junk\n-----BEGIN CERTIFICATE-----\r\n${Buffer.from(good).toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`;
  assert.deepEqual(pemToDer(pem), good);
  assert.throws(() => pemToDer('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----'), TypeError);
  assert.throws(() => pemToDer(''), TypeError);
});
