// The keyset file of SPEC §9: which KMS key and encryption context hold the deployment's master
// secret, its CiphertextBlob and its m_commit. Nothing in it is secret; it is read strictly (exact
// keys, canonical base64url) and written once, atomically, never over an existing file.

import { linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { decodeBase64url, encodeBase64url } from '../protocol/base64url.js';
import { M_COMMIT_BYTES } from '../protocol/limits.js';

export const DEPLOYMENT_CONTEXT_KEY = 'dip:deployment';
/** KMS's limit on a CiphertextBlob (Decrypt API reference). */
const MAX_CIPHERTEXT_BLOB_BYTES = 6144;

export interface Keyset {
  kmsKeyId: string;
  deployment: string;
  ciphertextBlob: Uint8Array;
  mCommit: Uint8Array;
}

function exactKeys(value: unknown, keys: readonly string[]): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const present = Object.keys(value);
  return present.length === keys.length && keys.every((k) => present.includes(k));
}

/** The keyset in `text`, or null when it is not exactly SPEC §9's shape. */
export function parseKeyset(text: string): Keyset | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!exactKeys(value, ['v', 'kms_key_id', 'encryption_context', 'ciphertext_blob', 'm_commit']) || value['v'] !== 1) return null;
  const context = value['encryption_context'];
  if (!exactKeys(context, [DEPLOYMENT_CONTEXT_KEY])) return null;
  const kmsKeyId = value['kms_key_id'];
  const deployment = context[DEPLOYMENT_CONTEXT_KEY];
  const blob = typeof value['ciphertext_blob'] === 'string' ? decodeBase64url(value['ciphertext_blob']) : null;
  const mCommit = typeof value['m_commit'] === 'string' ? decodeBase64url(value['m_commit']) : null;
  if (typeof kmsKeyId !== 'string' || kmsKeyId.length === 0 || typeof deployment !== 'string' || deployment.length === 0) return null;
  if (blob === null || blob.length === 0 || blob.length > MAX_CIPHERTEXT_BLOB_BYTES || mCommit === null || mCommit.length !== M_COMMIT_BYTES) return null;
  return { kmsKeyId, deployment, ciphertextBlob: blob, mCommit };
}

export function encodeKeyset(keyset: Keyset): string {
  const value = {
    v: 1,
    kms_key_id: keyset.kmsKeyId,
    encryption_context: { [DEPLOYMENT_CONTEXT_KEY]: keyset.deployment },
    ciphertext_blob: encodeBase64url(keyset.ciphertextBlob),
    m_commit: encodeBase64url(keyset.mCommit),
  };
  return `${JSON.stringify(value, null, 2)}\n`;
}

export type KeysetReadFailure = 'keyset_missing' | 'keyset_unreadable' | 'keyset_invalid';

/** Reads and parses the keyset; the failure is a code for parent/startup.ts. */
export function readKeyset(path: string): Keyset | KeysetReadFailure {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'keyset_missing' : 'keyset_unreadable';
  }
  return parseKeyset(text) ?? 'keyset_invalid';
}

/**
 * Writes the keyset to `path` whole or not at all, and never over an existing file: the text
 * goes to a temporary file beside it, which is then hard-linked to `path` (link(2) fails with
 * EEXIST when `path` exists, even if another host's create raced ours on a shared disk).
 * Returns false when `path` already exists; throws on any other file-system failure.
 */
export function writeKeysetOnce(path: string, keyset: Keyset): boolean {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  writeFileSync(temporary, encodeKeyset(keyset), { mode: 0o644, flag: 'wx' });
  try {
    linkSync(temporary, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    rmSync(temporary, { force: true });
  }
}
