// DRT backup (issue 4 §3): lets a customer carry their refresh token to another device, protected
// by an access code. scrypt (RFC 7914) stretches the code; AES-256-GCM seals the DRT with the
// whole header as AAD, so every parameter is authenticated along with the ciphertext.
//
//   backup = "DIPB" (4) || version 0x01 (1) || kdf 0x01 = scrypt (1) || log2(N) (1) || r (1) || p (1)
//            || salt (16) || iv (12) || AES-256-GCM(key, iv, aad = the 37 bytes above, UTF-8 DRT) || tag (16)
//   key    = scrypt(UTF-8(NFKC(accessCode)), salt, N, r, p, 32 bytes)
//
// Version 0x02 is the same with the DRT followed by 0x00 bytes up to a fixed total size: what the
// DIP service stores (SPEC §11) then says nothing about the DRT's length, so nothing about the
// length of the subscription id or of the IP inside it (as SPEC §4 pads sealed requests).
// The text form (`encodeBackupText`) is "dipb1." followed by the bytes in unpadded base64url.
// A wrong access code and an altered backup both fail GCM's tag check and cannot be told apart:
// both are `backup_wrong_code`. The parameters are read from the backup before the tag can be
// checked, so they are bounded first: a hostile backup must not make us allocate gigabytes.

import { createCipheriv, createDecipheriv, createHash, randomBytes, randomInt, scrypt } from 'node:crypto';
import { decodeBase64url, encodeBase64url } from '../protocol/base64url.js';
import { ClientError } from './errors.js';

export interface ScryptParams {
  log2N: number;
  r: number;
  p: number;
}

/** OWASP's scrypt recommendation (N = 2^17, r = 8, p = 1): 128 MiB and about a second on a phone. */
export const DEFAULT_SCRYPT_PARAMS: Readonly<ScryptParams> = Object.freeze({ log2N: 17, r: 8, p: 1 });

/** What `openBackup` accepts; anything outside is refused before any work is done. */
export const SCRYPT_BOUNDS = Object.freeze({
  minLog2N: 14,
  maxLog2N: 20,
  maxR: 32,
  maxP: 16,
  maxMemoryBytes: 256 * 1024 * 1024,
  maxWork: 2 ** 22, // N·r·p, four times the default
});

const MAGIC = [0x44, 0x49, 0x50, 0x42]; // "DIPB"
const VERSION = 0x01;
const VERSION_PADDED = 0x02;
const KDF_SCRYPT = 0x01;
const SALT_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = MAGIC.length + 5 + SALT_BYTES + IV_BYTES;
/** A DRT is well under 2 KiB; anything near this is not one of our backups. */
const MAX_BACKUP_BYTES = 16 * 1024;
const TEXT_PREFIX = 'dipb1.';
const MIN_ACCESS_CODE_CHARS = 8;

function paramsAllowed({ log2N, r, p }: ScryptParams): boolean {
  const b = SCRYPT_BOUNDS;
  if (![log2N, r, p].every(Number.isInteger)) return false;
  if (log2N < b.minLog2N || log2N > b.maxLog2N || r < 1 || r > b.maxR || p < 1 || p > b.maxP) return false;
  const n = 2 ** log2N;
  return 128 * n * r <= b.maxMemoryBytes && n * r * p <= b.maxWork;
}

function normalizeAccessCode(accessCode: string): Buffer {
  return Buffer.from(accessCode.normalize('NFKC').trim(), 'utf8');
}

function deriveKey(accessCode: string, salt: Uint8Array, { log2N, r, p }: ScryptParams): Promise<Buffer> {
  const N = 2 ** log2N;
  return new Promise((resolve, reject) => {
    // maxmem only caps what scrypt may use; the bounds above already keep 128·N·r small.
    scrypt(normalizeAccessCode(accessCode), salt, 32, { N, r, p, maxmem: 128 * N * r + 16 * 1024 * 1024 }, (error, key) => {
      if (error) reject(error);
      else resolve(key);
    });
  });
}

/**
 * Seals a DRT under an access code. `params` exists for tests and slow devices; it must be within
 * bounds. With `padToBytes` the backup is version 0x02 and exactly that long.
 */
export async function sealBackup(drt: string, accessCode: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS, padToBytes?: number): Promise<Uint8Array> {
  if (typeof drt !== 'string' || drt.length === 0 || drt.includes('\0')) throw new TypeError('sealBackup needs a DRT');
  if (typeof accessCode !== 'string' || accessCode.normalize('NFKC').trim().length < MIN_ACCESS_CODE_CHARS) {
    throw new TypeError(`an access code has at least ${MIN_ACCESS_CODE_CHARS} characters`);
  }
  if (!paramsAllowed(params)) throw new TypeError('scrypt parameters are outside the allowed bounds');
  let plaintext = Buffer.from(drt, 'utf8');
  if (padToBytes !== undefined) {
    const room = Math.min(padToBytes, MAX_BACKUP_BYTES) - HEADER_BYTES - TAG_BYTES;
    if (!Number.isSafeInteger(padToBytes) || plaintext.length > room) throw new TypeError('the DRT is too long to back up in that size');
    plaintext = Buffer.concat([plaintext, Buffer.alloc(room - plaintext.length)]);
  }
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(IV_BYTES);
  const version = padToBytes === undefined ? VERSION : VERSION_PADDED;
  const header = Buffer.concat([Buffer.from(MAGIC), Buffer.from([version, KDF_SCRYPT, params.log2N, params.r, params.p]), salt, iv]);
  const key = await deriveKey(accessCode, salt, params);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(header);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  if (header.length + ciphertext.length > MAX_BACKUP_BYTES) throw new TypeError('the DRT is too long to back up');
  return new Uint8Array(Buffer.concat([header, ciphertext]));
}

/** Reads the header of a backup without opening it; `backup_invalid` when it is not one we can open. */
export function readBackupHeader(blob: Uint8Array): ScryptParams {
  if (!(blob instanceof Uint8Array) || blob.length < HEADER_BYTES + TAG_BYTES + 1 || blob.length > MAX_BACKUP_BYTES) {
    throw new ClientError('backup_invalid');
  }
  if (MAGIC.some((byte, i) => blob[i] !== byte) || (blob[4] !== VERSION && blob[4] !== VERSION_PADDED) || blob[5] !== KDF_SCRYPT) {
    throw new ClientError('backup_invalid');
  }
  const params = { log2N: blob[6]!, r: blob[7]!, p: blob[8]! };
  if (!paramsAllowed(params)) throw new ClientError('backup_invalid');
  return params;
}

/** Opens a backup; `backup_wrong_code` for a wrong code or an altered backup, `backup_invalid` when malformed. */
export async function openBackup(blob: Uint8Array, accessCode: string): Promise<string> {
  const params = readBackupHeader(blob);
  const header = blob.subarray(0, HEADER_BYTES);
  const salt = blob.subarray(9, 9 + SALT_BYTES);
  const iv = blob.subarray(9 + SALT_BYTES, HEADER_BYTES);
  const ciphertext = blob.subarray(HEADER_BYTES, blob.length - TAG_BYTES);
  const tag = blob.subarray(blob.length - TAG_BYTES);
  const key = await deriveKey(String(accessCode), salt, params);
  let plaintext: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAAD(header);
    decipher.setAuthTag(tag);
    plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    throw new ClientError('backup_wrong_code');
  }
  // Version 0x02: the DRT, then zeros; version 0x01: the DRT alone. A DRT never holds a 0x00.
  const end = blob[4] === VERSION_PADDED ? plaintext.indexOf(0) : plaintext.length;
  const drt = plaintext.subarray(0, end === -1 ? plaintext.length : end);
  if (drt.length === 0 || drt.includes(0) || plaintext.subarray(drt.length).some((byte) => byte !== 0)) throw new ClientError('backup_invalid');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(drt);
  } catch {
    throw new ClientError('backup_invalid');
  }
}

export function encodeBackupText(blob: Uint8Array): string {
  return TEXT_PREFIX + encodeBase64url(blob);
}

export function decodeBackupText(text: string): Uint8Array {
  const trimmed = text.trim();
  const bytes = trimmed.startsWith(TEXT_PREFIX) ? decodeBase64url(trimmed.slice(TEXT_PREFIX.length)) : null;
  if (bytes === null) throw new ClientError('backup_invalid');
  return bytes;
}

// Crockford's base32 alphabet: no I, L, O or U, so a code read aloud or typed is hard to get wrong.
const CODE_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A fresh access code of 100 random bits, as five groups of four characters (e.g. "7K2M-…"). */
export function generateAccessCode(): string {
  const chars = Array.from({ length: 20 }, () => CODE_ALPHABET[randomInt(CODE_ALPHABET.length)]!);
  return [0, 4, 8, 12, 16].map((i) => chars.slice(i, i + 4).join('')).join('-');
}

// ---- The backup code: what a second device needs to pull a backup from the DIP service ---------
// 76 characters of Crockford's base32 in 19 groups of four: the 32-byte backup id (52 characters,
// its last 4 bits zero), a generated access code (20 characters, 100 bits) and 4 check characters
// (the first 20 bits of a SHA-256 over both), so that a mistyped code is caught before anything is
// sent. Read back case-insensitively, ignoring spaces and dashes, with O read as 0 and I, L as 1.
// Only the id ever reaches the service; the access code stays on the devices.

export const BACKUP_CODE_CHARS = 76;
const ID_CHARS = 52;
const ACCESS_CODE_CHARS = 20;
const CHECK_CHARS = 4;
const GENERATED_CODE = /^[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}$/;

function toBase32(bytes: Uint8Array): string {
  let out = '';
  let value = 0;
  let bits = 0;
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xfff;
    bits += 8;
    for (; bits >= 5; bits -= 5) out += CODE_ALPHABET[(value >>> (bits - 5)) & 31];
  }
  return bits === 0 ? out : out + CODE_ALPHABET[(value << (5 - bits)) & 31];
}

/** The bytes of canonical base32 text (unused final bits zero), or null. */
function fromBase32(text: string, length: number): Uint8Array | null {
  const bytes = new Uint8Array(length);
  let value = 0;
  let bits = 0;
  let at = 0;
  for (const char of text) {
    value = ((value << 5) | CODE_ALPHABET.indexOf(char)) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      if (at === length) return null;
      bytes[at++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  return at === length && (value & ((1 << bits) - 1)) === 0 ? bytes : null;
}

function checkChars(idChars: string, accessChars: string): string {
  const digest = createHash('sha256').update(`dip backup code v1\0${idChars}${accessChars}`).digest();
  return toBase32(digest.subarray(0, 3)).slice(0, CHECK_CHARS);
}

/** The backup code for a backup id and an access code made by generateAccessCode. */
export function encodeBackupCode(id: Uint8Array, accessCode: string): string {
  if (!(id instanceof Uint8Array) || id.length !== 32) throw new TypeError('a backup id is 32 bytes');
  if (typeof accessCode !== 'string' || !GENERATED_CODE.test(accessCode)) throw new TypeError('the access code must be one generateAccessCode made');
  const idChars = toBase32(id);
  const accessChars = accessCode.replaceAll('-', '');
  const chars = idChars + accessChars + checkChars(idChars, accessChars);
  return chars.match(/.{4}/g)!.join('-');
}

/** Reads a backup code back; `backup_code_invalid` when it is not one (or has a typo). */
export function decodeBackupCode(text: string): { id: Uint8Array; accessCode: string } {
  const chars = String(text).replace(/[\s-]/g, '').toUpperCase().replaceAll('O', '0').replace(/[IL]/g, '1');
  if (chars.length !== BACKUP_CODE_CHARS || [...chars].some((char) => !CODE_ALPHABET.includes(char))) throw new ClientError('backup_code_invalid');
  const idChars = chars.slice(0, ID_CHARS);
  const accessChars = chars.slice(ID_CHARS, ID_CHARS + ACCESS_CODE_CHARS);
  const id = fromBase32(idChars, 32);
  if (id === null || chars.slice(ID_CHARS + ACCESS_CODE_CHARS) !== checkChars(idChars, accessChars)) throw new ClientError('backup_code_invalid');
  return { id, accessCode: accessChars.match(/.{4}/g)!.join('-') };
}
