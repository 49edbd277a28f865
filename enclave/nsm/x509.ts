// A minimal DER / X.509 v3 writer (RFC 5280, X.690) for the NSM emulator's development chain
// (SPEC §8), because node:crypto can verify certificates but not create them. It writes only
// what an AWS-shaped chain needs: P-384 keys, ecdsa-with-SHA384, basicConstraints, keyUsage.

import { createHash, randomBytes, sign, type KeyObject } from 'node:crypto';

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** X.690 §8.1: tag, definite length in the shortest form, contents. */
function tlv(tag: number, ...contents: Uint8Array[]): Uint8Array {
  const body = concat(contents);
  const n = body.length;
  let length: number[];
  if (n < 0x80) length = [n];
  else if (n < 0x100) length = [0x81, n];
  else if (n < 0x10000) length = [0x82, n >> 8, n & 0xff];
  else throw new TypeError('DER item too long for this writer');
  return concat([Uint8Array.of(tag, ...length), body]);
}

const sequence = (...items: Uint8Array[]): Uint8Array => tlv(0x30, ...items);
const set = (...items: Uint8Array[]): Uint8Array => tlv(0x31, ...items);
const explicit = (n: number, item: Uint8Array): Uint8Array => tlv(0xa0 + n, item);
const octetString = (bytes: Uint8Array): Uint8Array => tlv(0x04, bytes);
const booleanTrue = (): Uint8Array => Uint8Array.of(0x01, 0x01, 0xff);

/** X.690 §8.3: a non-negative INTEGER from big-endian magnitude bytes, minimal and positive. */
function integer(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const bytes = magnitude.subarray(start);
  return tlv(0x02, (bytes[0] ?? 0) & 0x80 ? concat([Uint8Array.of(0), bytes]) : bytes.length ? bytes : Uint8Array.of(0));
}

const smallInteger = (n: number): Uint8Array => integer(Uint8Array.of(n));

/** X.690 §8.19: an OBJECT IDENTIFIER from its dotted form. */
function oid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map(Number);
  const out = [arcs[0]! * 40 + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const chunk = [arc & 0x7f];
    for (let v = arc >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Uint8Array.from(out));
}

/** X.690 §8.6: a BIT STRING whose last byte leaves `unusedBits` bits unused. */
const bitString = (bytes: Uint8Array, unusedBits = 0): Uint8Array => tlv(0x03, Uint8Array.of(unusedBits), bytes);

const OID_ECDSA_SHA384 = '1.2.840.10045.4.3.3';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_SUBJECT_KEY_ID = '2.5.29.14';
const OID_AUTHORITY_KEY_ID = '2.5.29.35';
const NAME_OIDS = { C: '2.5.4.6', O: '2.5.4.10', OU: '2.5.4.11', CN: '2.5.4.3' } as const;

/** RFC 5280 §4.1.2.4: a Name as one RDN per attribute, PrintableString for C, UTF8String else. */
export type DistinguishedName = ReadonlyArray<readonly [keyof typeof NAME_OIDS, string]>;

function name(dn: DistinguishedName): Uint8Array {
  const utf8 = new TextEncoder();
  return sequence(
    ...dn.map(([type, value]) => set(sequence(oid(NAME_OIDS[type]), tlv(type === 'C' ? 0x13 : 0x0c, utf8.encode(value))))),
  );
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, Z. */
function time(ms: number): Uint8Array {
  const iso = new Date(Math.floor(ms / 1000) * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  const year = Number(iso.slice(0, 4));
  if (year < 1950 || year > 9999) throw new TypeError('certificate time out of range');
  const text = year < 2050 ? `${digits.slice(2)}Z` : `${digits}Z`;
  return tlv(year < 2050 ? 0x17 : 0x18, new TextEncoder().encode(text));
}

/** RFC 5280 §4.2.1.3 bits, most significant bit first. */
export const KEY_USAGE = { digitalSignature: 0x80, keyCertSign: 0x04, cRLSign: 0x02 } as const;

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical ? sequence(oid(id), booleanTrue(), octetString(value)) : sequence(oid(id), octetString(value));
}

function keyUsage(bits: number): Uint8Array {
  let unused = 0;
  while (unused < 7 && !(bits & (1 << unused))) unused++;
  return bitString(Uint8Array.of(bits), unused);
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
function keyIdentifier(spki: Uint8Array): Uint8Array {
  // The P-384 SPKI is SEQUENCE { AlgorithmIdentifier, BIT STRING 00 || point }; the point is its last 97 bytes.
  return new Uint8Array(createHash('sha1').update(spki.subarray(spki.length - 97)).digest());
}

export interface CertificateTemplate {
  subject: DistinguishedName;
  issuer: DistinguishedName;
  /** SubjectPublicKeyInfo DER of the certified P-384 key. */
  subjectPublicKey: Uint8Array;
  /** SubjectPublicKeyInfo DER of the issuer's key (the same as `subjectPublicKey` for a root). */
  issuerPublicKey: Uint8Array;
  notBefore: number;
  notAfter: number;
  /** `undefined`: an end-entity; `null`: a CA without a path length limit; a number: that limit. */
  pathLength?: number | null;
  keyUsage: number;
}

/** Writes an X.509 v3 certificate signed with ECDSA P-384 / SHA-384 by `issuerKey`. */
export function createCertificate(template: CertificateTemplate, issuerKey: KeyObject): Uint8Array {
  const algorithm = sequence(oid(OID_ECDSA_SHA384));
  const isCa = template.pathLength !== undefined;
  const basicConstraints = isCa
    ? sequence(booleanTrue(), ...(template.pathLength === null ? [] : [smallInteger(template.pathLength!)]))
    : sequence();
  const extensions = [
    extension(OID_BASIC_CONSTRAINTS, true, basicConstraints),
    extension(OID_KEY_USAGE, true, keyUsage(template.keyUsage)),
    extension(OID_SUBJECT_KEY_ID, false, octetString(keyIdentifier(template.subjectPublicKey))),
    extension(OID_AUTHORITY_KEY_ID, false, sequence(tlv(0x80, keyIdentifier(template.issuerPublicKey)))),
  ];
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const tbs = sequence(
    explicit(0, smallInteger(2)),
    integer(serial),
    algorithm,
    name(template.issuer),
    sequence(time(template.notBefore), time(template.notAfter)),
    name(template.subject),
    template.subjectPublicKey,
    explicit(3, sequence(...extensions)),
  );
  const signature = sign('sha384', tbs, { key: issuerKey, dsaEncoding: 'der' });
  return sequence(tbs, algorithm, bitString(new Uint8Array(signature)));
}

/** PEM text of a DER certificate (RFC 7468 §5). */
export function certificateToPem(der: Uint8Array): string {
  const base64 = Buffer.from(der).toString('base64');
  return `-----BEGIN CERTIFICATE-----\n${base64.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
}
