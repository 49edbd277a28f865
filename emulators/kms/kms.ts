// The KMS emulator's domain (SPEC §9): GenerateDataKey and Decrypt for one symmetric key, with
// KMS's field names and refusals, answering a Recipient in AWS's CMS format and never with
// Plaintext then. Pure apart from randomness: no sockets, no files.

import { randomBytes } from 'node:crypto';
import { openBlob, sealBlob, type EncryptionContext } from './blob.js';
import { envelopeForRecipient } from './cms.js';
import { KmsError } from './errors.js';
import { decodeBase64, recipientKey, type RecipientPolicy } from './recipient.js';

/** CiphertextBlob: 1..6144 bytes (KMS API reference, Decrypt). */
export const MAX_CIPHERTEXT_BLOB_BYTES = 6144;
/** The only data key this emulator makes: AES_256, i.e. NumberOfBytes 32 (SPEC §3, M). */
const DATA_KEY_BYTES = 32;

export type KeyState = 'Enabled' | 'PendingDeletion';

export interface KmsKey {
  /** The key's UUID. */
  keyId: string;
  arn: string;
  keyState: KeyState;
  /** 32 bytes of AES-256 key material; never leaves the emulator. */
  material: Uint8Array;
}

export interface KmsOptions {
  key: KmsKey;
  policy: RecipientPolicy;
  /** Answer requests without a Recipient with Plaintext (the key policy of SPEC §9 denies them). */
  allowNoRecipient: boolean;
  /** Unix ms; recipient documents must be fresh at this time. */
  now?: () => number;
}

export type KmsAnswer = Record<string, string>;

export interface Kms {
  generateDataKey(request: unknown): KmsAnswer;
  decrypt(request: unknown): KmsAnswer;
}

const base64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

function fields(request: unknown): Record<string, unknown> {
  if (typeof request !== 'object' || request === null || Array.isArray(request)) throw new KmsError('body_not_object');
  return request as Record<string, unknown>;
}

function encryptionContext(value: unknown): EncryptionContext {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new KmsError('encryption_context_invalid');
  const context: Record<string, string> = {};
  for (const [name, text] of Object.entries(value)) {
    if (typeof text !== 'string') throw new KmsError('encryption_context_invalid');
    context[name] = text;
  }
  return context;
}

function dataKeyBytes(keySpec: unknown, numberOfBytes: unknown): number {
  // KMS: exactly one of KeySpec and NumberOfBytes.
  if (keySpec !== undefined && numberOfBytes === undefined && keySpec === 'AES_256') return DATA_KEY_BYTES;
  if (keySpec === undefined && numberOfBytes === DATA_KEY_BYTES) return DATA_KEY_BYTES;
  throw new KmsError('key_spec_invalid');
}

export function createKms(options: KmsOptions): Kms {
  const { key, policy, allowNoRecipient } = options;
  const now = options.now ?? Date.now;

  /** A KeyId names this key by its UUID or its ARN; anything else does not exist here. */
  const usableKey = (keyId: unknown): void => {
    if (typeof keyId !== 'string' || keyId.length === 0) throw new KmsError('key_id_missing');
    if (keyId !== key.keyId && keyId !== key.arn) throw new KmsError('key_not_found');
    if (key.keyState !== 'Enabled') throw new KmsError('key_pending_deletion');
  };

  /** Plaintext goes back only inside CMS for an attested recipient, unless configured otherwise. */
  const deliver = (recipient: unknown, plaintext: Uint8Array): KmsAnswer => {
    if (recipient === undefined) {
      if (!allowNoRecipient) throw new KmsError('recipient_required');
      return { Plaintext: base64(plaintext) };
    }
    return { CiphertextForRecipient: base64(envelopeForRecipient(plaintext, recipientKey(recipient, policy, now()))) };
  };

  return {
    generateDataKey(request) {
      const input = fields(request);
      usableKey(input['KeyId']);
      const bytes = dataKeyBytes(input['KeySpec'], input['NumberOfBytes']);
      const context = encryptionContext(input['EncryptionContext']);
      const plaintext = new Uint8Array(randomBytes(bytes));
      // The recipient is checked before the blob exists, so a refused request leaves nothing behind.
      const delivered = deliver(input['Recipient'], plaintext);
      return { KeyId: key.arn, CiphertextBlob: base64(sealBlob(key.material, key.keyId, context, plaintext)), ...delivered };
    },

    decrypt(request) {
      const input = fields(request);
      const blob = decodeBase64(input['CiphertextBlob']);
      if (blob === null || blob.length < 1 || blob.length > MAX_CIPHERTEXT_BLOB_BYTES) throw new KmsError('ciphertext_blob_missing');
      // A symmetric ciphertext names its key; KeyId is optional and, when given, must be this key.
      usableKey(input['KeyId'] ?? key.keyId);
      const context = encryptionContext(input['EncryptionContext']);
      const plaintext = openBlob(key.material, key.keyId, context, blob);
      if (plaintext === null) throw new KmsError('ciphertext_invalid');
      return { KeyId: key.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT', ...deliver(input['Recipient'], plaintext) };
    },
  };
}
