// The emulator's CiphertextBlob (its own format; real KMS blobs are opaque too): AES-256-GCM
// under the key's material, with the key id and the exact encryption context as associated
// data, so a blob opens only under its key and with the context it was made with (SPEC §9).

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const VERSION = 0x01;
const KEY_ID_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const AAD_LABEL = 'dip kms emulator blob v1';

export type EncryptionContext = Readonly<Record<string, string>>;

/** blob = version(1) || keyId(16, the key's UUID) || iv(12) || ciphertext || tag(16) */
const HEADER_BYTES = 1 + KEY_ID_BYTES + IV_BYTES;

export function uuidBytes(uuid: string): Uint8Array {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(uuid)) throw new TypeError('key id must be a lowercase UUID');
  return new Uint8Array(Buffer.from(uuid.replaceAll('-', ''), 'hex'));
}

/**
 * KMS treats the context as a set of pairs: the same pairs in another order are the same
 * context, anything else (a pair more, less or changed) is not. Sorted pairs in JSON say exactly that.
 */
function canonicalContext(context: EncryptionContext): Buffer {
  const pairs = Object.entries(context).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Buffer.from(JSON.stringify(pairs), 'utf8');
}

function aad(header: Uint8Array, context: EncryptionContext): Buffer {
  return Buffer.concat([Buffer.from(AAD_LABEL, 'ascii'), Buffer.of(0), header, canonicalContext(context)]);
}

export function sealBlob(material: Uint8Array, keyId: string, context: EncryptionContext, plaintext: Uint8Array): Uint8Array {
  const iv = randomBytes(IV_BYTES);
  const header = Buffer.concat([Buffer.of(VERSION), uuidBytes(keyId), iv]);
  const cipher = createCipheriv('aes-256-gcm', material, iv);
  cipher.setAAD(aad(header, context));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return new Uint8Array(Buffer.concat([header, body]));
}

/** The plaintext, or null when the blob is not one of this key's or the context differs. */
export function openBlob(material: Uint8Array, keyId: string, context: EncryptionContext, blob: Uint8Array): Uint8Array | null {
  if (blob.length < HEADER_BYTES + TAG_BYTES || blob[0] !== VERSION) return null;
  if (!Buffer.from(blob.subarray(1, 1 + KEY_ID_BYTES)).equals(uuidBytes(keyId))) return null;
  const header = blob.subarray(0, HEADER_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', material, blob.subarray(1 + KEY_ID_BYTES, HEADER_BYTES));
  decipher.setAAD(aad(header, context));
  decipher.setAuthTag(blob.subarray(blob.length - TAG_BYTES));
  try {
    return new Uint8Array(Buffer.concat([decipher.update(blob.subarray(HEADER_BYTES, blob.length - TAG_BYTES)), decipher.final()]));
  } catch {
    return null;
  }
}
