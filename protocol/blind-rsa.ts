// RSABSSA-SHA384-PSS-Deterministic (RFC 9474): blind RSA signatures with EMSA-PSS (SHA-384, MGF1-SHA-384,
// 48-byte salt) and no message randomizer, the scheme of Privacy Pass token type 0x0002 (SPEC §10).
// The client side is bigint arithmetic; the issuer's private operation is OpenSSL's (CRT, blinded).

import { KeyObject, constants, createHash, createPublicKey, publicEncrypt, privateDecrypt, randomBytes, verify as verifySignature } from 'node:crypto';
import { PrivacyPassError } from './privacypass-error.js';

/** RFC 9474 §5: RSABSSA-SHA384-PSS-Deterministic fixes sLen = hLen = 48. */
export const SALT_LENGTH = 48;
const HASH_LENGTH = 48;
export const MIN_MODULUS_BITS = 2048, MAX_MODULUS_BITS = 4096;

/** An issuer public key: the RSASSA-PSS SPKI of RFC 9578 §6.5, its numbers, and node's key for verify. */
export interface BlindRsaPublicKey {
  readonly spki: Uint8Array;
  readonly n: bigint;
  readonly e: bigint;
  readonly modulusBytes: number;
  readonly keyObject: KeyObject;
}

export interface BlindOutput {
  readonly blindedMsg: Uint8Array;
  readonly inv: Uint8Array;
}

// RFC 9578 §6.5 (and RFC 4055 §3.1): AlgorithmIdentifier id-RSASSA-PSS with RSASSA-PSS-params
// { hashAlgorithm sha384, maskGenAlgorithm mgf1(sha384), saltLength 48 }, hash identifiers
// without the NULL parameter. OpenSSL writes NULLs, so node's own SPKI export would hash differently.
const RSASSA_PSS_SHA384_ALGORITHM = hex(
  '303d06092a864886f70d01010a3030a00d300b0609608648016503040202a11a301806092a864886f70d010108300b0609608648016503040202a203020130',
);

function hex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'hex'));
}

export function bytesToInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt('0x' + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex'));
}

/** RFC 8017 §4.1 I2OSP; our own misuse when x does not fit. */
export function intToBytes(x: bigint, length: number): Uint8Array {
  if (x < 0n || x >> BigInt(8 * length) !== 0n) throw new TypeError('integer too large');
  return hex(x.toString(16).padStart(2 * length, '0'));
}

export function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n;
  let b = base % modulus;
  for (let k = exponent; k > 0n; k >>= 1n) {
    if (k & 1n) result = (result * b) % modulus;
    b = (b * b) % modulus;
  }
  return result;
}

/** The inverse of a mod n, or null when gcd(a, n) ≠ 1. */
export function modInverse(a: bigint, n: bigint): bigint | null {
  let [oldR, r] = [((a % n) + n) % n, n];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  return oldR === 1n ? ((oldS % n) + n) % n : null;
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

function bitLength(x: bigint): number {
  return x.toString(2).length;
}

// ---- DER: just enough for one SPKI, with minimal lengths only ------------------------------------

function derLength(length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(length);
  const bytes = intToBytes(BigInt(length), length < 0x100 ? 1 : 2);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

function der(tag: number, content: Uint8Array): Uint8Array {
  return Uint8Array.from([tag, ...derLength(content.length), ...content]);
}

function derInteger(x: bigint): Uint8Array {
  const bytes = intToBytes(x, Math.ceil((bitLength(x) + 1) / 8)); // a leading 0x00 keeps it positive
  return der(0x02, bytes);
}

/** Reads one TLV of `tag` at `at`; null unless its length is minimal and inside `bytes`. */
function readDer(bytes: Uint8Array, at: number, tag: number): { content: Uint8Array; end: number } | null {
  if (bytes[at] !== tag || at + 2 > bytes.length) return null;
  let length = bytes[at + 1]!;
  let start = at + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count < 1 || count > 2 || start + count > bytes.length) return null;
    length = Number(bytesToInt(bytes.subarray(start, start + count)));
    if (length < 0x80 || (count === 2 && length < 0x100)) return null;
    start += count;
  }
  if (start + length > bytes.length) return null;
  return { content: bytes.subarray(start, start + length), end: start + length };
}

/** A positive DER INTEGER with no superfluous leading zero. */
function readPositiveInteger(bytes: Uint8Array, at: number): { value: bigint; end: number } | null {
  const tlv = readDer(bytes, at, 0x02);
  if (!tlv || tlv.content.length === 0 || tlv.content[0]! & 0x80) return null;
  if (tlv.content[0] === 0 && (tlv.content.length === 1 || !(tlv.content[1]! & 0x80))) return null;
  return { value: bytesToInt(tlv.content), end: tlv.end };
}

function publicKey(spki: Uint8Array, n: bigint, e: bigint): BlindRsaPublicKey {
  const keyObject = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  return Object.freeze({ spki, n, e, modulusBytes: bitLength(n) / 8, keyObject });
}

function checkNumbers(n: bigint, e: bigint): boolean {
  const bits = bitLength(n);
  return bits >= MIN_MODULUS_BITS && bits <= MAX_MODULUS_BITS && bits % 8 === 0 && (n & 1n) === 1n && e >= 3n && (e & 1n) === 1n && e < n;
}

/** The RSASSA-PSS SPKI of RFC 9578 §6.5 for (n, e). Our own misuse when the numbers are no key. */
export function publicKeyFromNumbers(n: bigint, e: bigint): BlindRsaPublicKey {
  if (!checkNumbers(n, e)) throw new TypeError('n must be odd of 2048..4096 bits (whole bytes), e odd in 3..n-1');
  const rsaPublicKey = der(0x30, Uint8Array.from([...derInteger(n), ...derInteger(e)]));
  const spki = der(0x30, Uint8Array.from([...RSASSA_PSS_SHA384_ALGORITHM, ...der(0x03, Uint8Array.from([0, ...rsaPublicKey]))]));
  return publicKey(spki, n, e);
}

/** The issuer public key of an RSA KeyObject (private or public, as node loads PKCS#8, PKCS#1 or SPKI). */
export function publicKeyOf(key: KeyObject): BlindRsaPublicKey {
  if (!(key instanceof KeyObject) || key.asymmetricKeyType !== 'rsa') throw new TypeError('an RSA KeyObject is required');
  const jwk = key.export({ format: 'jwk' });
  return publicKeyFromNumbers(bytesToInt(Buffer.from(jwk.n!, 'base64url')), bytesToInt(Buffer.from(jwk.e!, 'base64url')));
}

/** Parses an issuer key from outside: exactly the RFC 9578 §6.5 encoding, nothing before or after. */
export function decodePublicKey(spki: Uint8Array): BlindRsaPublicKey {
  const outer = readDer(spki, 0, 0x30);
  if (!outer || outer.end !== spki.length) throw new PrivacyPassError('bad_request');
  const body = outer.content;
  const algorithm = body.subarray(0, RSASSA_PSS_SHA384_ALGORITHM.length);
  if (Buffer.compare(algorithm, RSASSA_PSS_SHA384_ALGORITHM) !== 0) throw new PrivacyPassError('bad_request');
  const bitString = readDer(body, algorithm.length, 0x03);
  if (!bitString || bitString.end !== body.length || bitString.content[0] !== 0) throw new PrivacyPassError('bad_request');
  const rsaKey = bitString.content.subarray(1);
  const sequence = readDer(rsaKey, 0, 0x30);
  if (!sequence || sequence.end !== rsaKey.length) throw new PrivacyPassError('bad_request');
  const n = readPositiveInteger(sequence.content, 0);
  const e = n && readPositiveInteger(sequence.content, n.end);
  if (!n || !e || e.end !== sequence.content.length || !checkNumbers(n.value, e.value)) throw new PrivacyPassError('bad_request');
  return publicKey(new Uint8Array(spki), n.value, e.value);
}

// ---- EMSA-PSS (RFC 8017 §9.1.1) with SHA-384 and MGF1-SHA-384 -----------------------------------

function sha384(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash('sha384');
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

/** RFC 8017 §B.2.1 MGF1 with SHA-384. */
function mgf1(seed: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(Math.ceil(length / HASH_LENGTH) * HASH_LENGTH);
  for (let counter = 0; counter * HASH_LENGTH < length; counter++) {
    out.set(sha384(seed, intToBytes(BigInt(counter), 4)), counter * HASH_LENGTH);
  }
  return out.subarray(0, length);
}

/** RFC 8017 §9.1.1 EMSA-PSS-ENCODE(M, emBits) with sLen = 48. */
export function encodePss(msg: Uint8Array, salt: Uint8Array, emBits: number): Uint8Array {
  const emLen = Math.ceil(emBits / 8);
  const mHash = sha384(msg);
  const h = sha384(new Uint8Array(8), mHash, salt); // M' = (0x)00 00 00 00 00 00 00 00 || mHash || salt
  const db = new Uint8Array(emLen - HASH_LENGTH - 1); // DB = PS || 0x01 || salt
  db[db.length - salt.length - 1] = 0x01;
  db.set(salt, db.length - salt.length);
  const mask = mgf1(h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0xff >> (8 * emLen - emBits); // clear the leftmost 8·emLen − emBits bits
  return Uint8Array.from([...db, ...h, 0xbc]);
}

// ---- RFC 9474 §4 -------------------------------------------------------------------------------

function randomBelow(n: bigint): bigint {
  const bytes = bitLength(n) / 8;
  for (;;) {
    const r = bytesToInt(randomBytes(bytes));
    if (r > 0n && r < n) return r;
  }
}

/**
 * RFC 9474 §4.2 Blind. `fixed` pins the salt and the blind's inverse, as the published vectors do;
 * without it both are fresh. A key whose modulus shares a factor with the message is bad input.
 */
export function blind(key: BlindRsaPublicKey, msg: Uint8Array, fixed?: { salt: Uint8Array; inv: Uint8Array }): BlindOutput {
  if (!(msg instanceof Uint8Array)) throw new TypeError('msg must be bytes');
  const salt = fixed ? fixed.salt : new Uint8Array(randomBytes(SALT_LENGTH));
  if (salt.length !== SALT_LENGTH) throw new TypeError('salt must be 48 bytes');
  const encodedMsg = encodePss(msg, salt, 8 * key.modulusBytes - 1);
  const m = bytesToInt(encodedMsg);
  // RFC 9474 §4.2 step 3: m must be invertible mod n, else the signature would leak a factor.
  if (gcd(m, key.n) !== 1n) throw new PrivacyPassError('bad_request');
  let r: bigint, inv: bigint | null;
  if (fixed) {
    if (fixed.inv.length !== key.modulusBytes) throw new TypeError('inv must be modulus-sized');
    inv = bytesToInt(fixed.inv);
    r = modInverse(inv, key.n) ?? 0n;
    if (r === 0n || inv >= key.n) throw new TypeError('inv must be invertible mod n');
  } else {
    do {
      r = randomBelow(key.n);
      inv = modInverse(r, key.n);
    } while (inv === null);
  }
  const z = (m * modPow(r, key.e, key.n)) % key.n; // RFC 9474 §4.2 steps 6–7: z = m · r^e mod n
  return { blindedMsg: intToBytes(z, key.modulusBytes), inv: intToBytes(inv, key.modulusBytes) };
}

/** RFC 9474 §4.4 Finalize: s = z · inv mod n, returned only if it verifies. */
export function finalize(key: BlindRsaPublicKey, msg: Uint8Array, blindSig: Uint8Array, inv: Uint8Array): Uint8Array {
  if (inv.length !== key.modulusBytes) throw new TypeError('inv must be modulus-sized');
  if (blindSig.length !== key.modulusBytes) throw new PrivacyPassError('blind_sig_invalid');
  const z = bytesToInt(blindSig);
  if (z >= key.n) throw new PrivacyPassError('blind_sig_invalid');
  const sig = intToBytes((z * bytesToInt(inv)) % key.n, key.modulusBytes);
  if (!verify(key, msg, sig)) throw new PrivacyPassError('blind_sig_invalid');
  return sig;
}

const modulusOfKey = new WeakMap<KeyObject, bigint>();

function modulusOf(privateKey: KeyObject): bigint {
  let n = modulusOfKey.get(privateKey);
  if (n === undefined) {
    n = bytesToInt(Buffer.from(privateKey.export({ format: 'jwk' }).n!, 'base64url'));
    modulusOfKey.set(privateKey, n);
  }
  return n;
}

/**
 * RFC 9474 §4.3 BlindSign on OpenSSL's RSA private operation (CRT, with its own blinding), then
 * the section's check s^e mod n == m, so that a faulty CRT result never leaves (it would leak a
 * factor of n). A blinded message ≥ n is refused before the key is used.
 */
export function blindSign(privateKey: KeyObject, blindedMsg: Uint8Array): Uint8Array {
  if (!(privateKey instanceof KeyObject) || privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'rsa') {
    throw new TypeError('an RSA private KeyObject is required');
  }
  const n = modulusOf(privateKey);
  const modulusBytes = privateKey.asymmetricKeyDetails!.modulusLength! / 8;
  if (blindedMsg.length !== modulusBytes) throw new PrivacyPassError('bad_request');
  if (bytesToInt(blindedMsg) >= n) throw new PrivacyPassError('blinded_msg_out_of_range');
  const input = Buffer.from(blindedMsg.buffer, blindedMsg.byteOffset, blindedMsg.byteLength);
  const s = privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, input);
  const back = publicEncrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, s);
  if (!back.equals(input)) throw new PrivacyPassError('signing_failed');
  return new Uint8Array(s);
}

/** RSASSA-PSS-VERIFY (RFC 8017 §8.1.2) with SHA-384, MGF1-SHA-384 and sLen = 48. */
export function verify(key: BlindRsaPublicKey, msg: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== key.modulusBytes) return false;
  return verifySignature('sha384', msg, { key: key.keyObject, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: SALT_LENGTH }, sig);
}
