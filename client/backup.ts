// DRT backup (issue 4 §3): lets a customer carry their refresh token to another device, protected
// by an access code. scrypt (RFC 7914) stretches the code; AES-256-GCM seals the DRT with the
// whole header as AAD, so every parameter is authenticated along with the ciphertext.
//
//   backup = "DIPB" (4) || version 0x01 (1) || kdf 0x01 = scrypt (1) || log2(N) (1) || r (1) || p (1)
//            || salt (16) || iv (12) || AES-256-GCM(key, iv, aad = the 37 bytes above, UTF-8 DRT) || tag (16)
//   key    = scrypt(UTF-8(NFKC(accessCode)), salt, N, r, p, 32 bytes)
//
// The text form (`encodeBackupText`) is "dipb1." followed by the bytes in unpadded base64url.
// A wrong access code and an altered backup both fail GCM's tag check and cannot be told apart:
// both are `backup_wrong_code`. The parameters are read from the backup before the tag can be
// checked, so they are bounded first: a hostile backup must not make us allocate gigabytes.

import { createCipheriv, createDecipheriv, randomBytes, randomInt, scrypt } from 'node:crypto';
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

/** Seals a DRT under an access code. `params` exists for tests and slow devices; it must be within bounds. */
export async function sealBackup(drt: string, accessCode: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): Promise<Uint8Array> {
  if (typeof drt !== 'string' || drt.length === 0) throw new TypeError('sealBackup needs a DRT');
  if (typeof accessCode !== 'string' || accessCode.normalize('NFKC').trim().length < MIN_ACCESS_CODE_CHARS) {
    throw new TypeError(`an access code has at least ${MIN_ACCESS_CODE_CHARS} characters`);
  }
  if (!paramsAllowed(params)) throw new TypeError('scrypt parameters are outside the allowed bounds');
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(IV_BYTES);
  const header = Buffer.concat([Buffer.from(MAGIC), Buffer.from([VERSION, KDF_SCRYPT, params.log2N, params.r, params.p]), salt, iv]);
  const key = await deriveKey(accessCode, salt, params);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(header);
  const ciphertext = Buffer.concat([cipher.update(drt, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  if (header.length + ciphertext.length > MAX_BACKUP_BYTES) throw new TypeError('the DRT is too long to back up');
  return new Uint8Array(Buffer.concat([header, ciphertext]));
}

/** Reads the header of a backup without opening it; `backup_invalid` when it is not one we can open. */
export function readBackupHeader(blob: Uint8Array): ScryptParams {
  if (!(blob instanceof Uint8Array) || blob.length < HEADER_BYTES + TAG_BYTES + 1 || blob.length > MAX_BACKUP_BYTES) {
    throw new ClientError('backup_invalid');
  }
  if (MAGIC.some((byte, i) => blob[i] !== byte) || blob[4] !== VERSION || blob[5] !== KDF_SCRYPT) {
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
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(plaintext);
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
