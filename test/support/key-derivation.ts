// An implementation of SPEC §3's key derivation written apart from enclave/core/keys.ts, with
// @noble/curves and @noble/hashes instead of node:crypto, to check it against. Run as a script, it
// prints the vector file test/vectors/dip-key-derivation.json:
//   node --import tsx test/support/key-derivation.ts > test/vectors/dip-key-derivation.json

import { p256 } from '@noble/curves/nist.js';
import { extract, expand } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';

const utf8 = new TextEncoder();
const b64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

export interface DerivedKey {
  label: 'dat' | 'drt';
  epoch: number;
  /** HKDF output, 48 bytes, hex. */
  okm: string;
  /** The private scalar, 32 bytes big-endian, hex. */
  d: string;
  /** Public key coordinates, base64url (as in a JWK). */
  x: string;
  y: string;
  /** RFC 7638 thumbprint of {crv, kty, x, y}. */
  kid: string;
}

/** SPEC §3: m_commit = SHA-256("dip m commit v1" || M). */
export function nobleMCommit(masterSecret: Uint8Array): Uint8Array {
  return sha256(new Uint8Array([...utf8.encode('dip m commit v1'), ...masterSecret]));
}

/** SPEC §3: prk = HKDF-Extract("dip keys v1", M); okm = HKDF-Expand(prk, label || 0x00 || uint32be(e), 48); d = OS2IP(okm) mod (n-1) + 1. */
export function nobleDerive(masterSecret: Uint8Array, label: 'dat' | 'drt', epoch: number): DerivedKey {
  const prk = extract(sha256, masterSecret, utf8.encode('dip keys v1'));
  const info = new Uint8Array([...utf8.encode(label), 0, (epoch >>> 24) & 0xff, (epoch >>> 16) & 0xff, (epoch >>> 8) & 0xff, epoch & 0xff]);
  const okm = expand(sha256, prk, info, 48);
  const n = p256.Point.Fn.ORDER;
  const d = (BigInt(`0x${hex(okm)}`) % (n - 1n)) + 1n;
  const point = p256.Point.BASE.multiply(d).toBytes(false); // 0x04 || x || y
  const x = b64url(point.subarray(1, 33));
  const y = b64url(point.subarray(33, 65));
  // RFC 7638 §3.2: the required members in lexicographic order, no whitespace.
  const kid = b64url(sha256(utf8.encode(`{"crv":"P-256","kty":"EC","x":"${x}","y":"${y}"}`)));
  return { label, epoch, okm: hex(okm), d: d.toString(16).padStart(64, '0'), x, y, kid };
}

/** The master secrets and epochs of the vector file: uint32 ends, and the epochs around 2027. */
export const VECTOR_SECRETS: readonly Uint8Array[] = [
  new Uint8Array(32).map((_, i) => i),
  new Uint8Array(32).map((_, i) => (i * 37 + 11) & 0xff),
  new Uint8Array(32).fill(0xff),
];
export const VECTOR_EPOCHS: readonly number[] = [0, 694, 695, 0xffff_ffff];

if (import.meta.url === `file://${process.argv[1]}`) {
  const cases = VECTOR_SECRETS.map((m) => ({
    m: hex(m),
    m_commit: hex(nobleMCommit(m)),
    keys: VECTOR_EPOCHS.flatMap((epoch) => (['dat', 'drt'] as const).map((label) => nobleDerive(m, label, epoch))),
  }));
  const file = {
    about: 'SPEC §3 signing-key derivation and m_commit, computed with @noble/curves and @noble/hashes by test/support/key-derivation.ts',
    cases,
  };
  process.stdout.write(`${JSON.stringify(file, null, 2)}\n`);
}
