// The Recipient of GenerateDataKey and Decrypt, checked as strictly as AWS KMS does (SPEC §9):
// the attestation document must verify against the development root (SPEC §7 steps 1–5,
// 5 minutes' freshness), its PCR0 must be allowed by the key policy (AWS's condition key
// kms:RecipientAttestation:ImageSha384), and its public_key must be an RSA-2048 SPKI.

import type { KeyObject } from 'node:crypto';
import { AttestationError, verifyAttestation } from '../../client/attestation.js';
import { DEFAULT_ATTESTATION_MAX_AGE_MS } from '../../protocol/limits.js';
import { rsa2048PublicKey } from './cms.js';
import { KmsError } from './errors.js';

/** RecipientInfo.AttestationDocument: 1..262144 bytes (KMS API reference). */
export const MAX_ATTESTATION_DOCUMENT_BYTES = 262_144;

export interface RecipientPolicy {
  /** The development root (PEM) every recipient document must chain to. */
  rootPem: string;
  /** Allowed PCR0 values, lowercase hex (the key policy's ImageSha384 condition). */
  allowedPcr0: ReadonlySet<string>;
}

/** A Recipient field as KMS's JSON carries it; the document is standard base64. */
export interface RecipientField {
  KeyEncryptionAlgorithm?: unknown;
  AttestationDocument?: unknown;
}

function decodeDocument(field: unknown): Uint8Array {
  if (typeof field !== 'object' || field === null || Array.isArray(field)) throw new KmsError('recipient_invalid');
  const { KeyEncryptionAlgorithm: algorithm, AttestationDocument: document } = field as RecipientField;
  // RSAES_OAEP_SHA_256 is the only valid value and so also what an absent one means.
  if (algorithm !== undefined && algorithm !== 'RSAES_OAEP_SHA_256') throw new KmsError('recipient_invalid');
  const bytes = decodeBase64(document);
  if (bytes === null || bytes.length < 1 || bytes.length > MAX_ATTESTATION_DOCUMENT_BYTES) throw new KmsError('recipient_invalid');
  return bytes;
}

/** Standard base64 as the JSON protocol sends blobs, or null for anything else. */
export function decodeBase64(value: unknown): Uint8Array | null {
  if (typeof value !== 'string' || value.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) return null;
  return new Uint8Array(Buffer.from(value, 'base64'));
}

/** Returns the recipient's RSA key once every check has passed; throws KmsError otherwise. */
export function recipientKey(field: unknown, policy: RecipientPolicy, at: number): KeyObject {
  const document = decodeDocument(field);
  let verified;
  try {
    // The policy, not the verifier, decides about debug-mode PCRs, as AWS's condition keys do.
    verified = verifyAttestation(document, { root: policy.rootPem, at, maxAgeMs: DEFAULT_ATTESTATION_MAX_AGE_MS, allowDebug: true });
  } catch (error) {
    if (!(error instanceof AttestationError)) throw error;
    throw new KmsError(error.code === 'stale' || error.code === 'timestamp_future' ? 'attestation_stale' : 'attestation_invalid');
  }
  const pcr0 = Buffer.from(verified.pcrs.get(0)!).toString('hex');
  if (!policy.allowedPcr0.has(pcr0)) throw new KmsError('pcr0_denied');
  const key = verified.publicKey === null ? null : rsa2048PublicKey(verified.publicKey);
  if (key === null) throw new KmsError('recipient_key_invalid');
  return key;
}

/**
 * The PCR policy file: one allowed PCR0 per line, 96 hex digits (SHA-384); blank lines and
 * lines starting with # are ignored. Returns null when a line is anything else or none is listed.
 */
export function parsePcr0Policy(text: string): Set<string> | null {
  const allowed = new Set<string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (!/^[0-9a-fA-F]{96}$/.test(line)) return null;
    allowed.add(line.toLowerCase());
  }
  return allowed.size > 0 ? allowed : null;
}
