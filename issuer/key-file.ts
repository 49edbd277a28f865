// The issuer's key file (SPEC §10; docs/issuer.md): {"keys": [{"not_before": seconds,
// "private_key": PKCS#8 PEM}]}, readable by its owner only. Development creates it on first start
// with one RSA-2048 key whose not-before is the start of the day (no finer time is published),
// and adds one when every key has aged past 90 days.

import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dayOf } from '../store/day.js';
import { activeKeys, issuerKey, type IssuerKey } from './token-keys.js';

export const KEY_FILE_ERROR_MESSAGES = Object.freeze({
  key_file_missing: 'The issuer key file does not exist; create it, or start with --dev.',
  key_file_mode: 'The issuer key file must be readable by its owner only (mode 0600).',
  key_file_invalid: 'The issuer key file is not a list of RSA-2048 keys with distinct truncated key ids.',
} as const);

export type KeyFileErrorCode = keyof typeof KEY_FILE_ERROR_MESSAGES;

/** The issuer refuses to start. Fixed messages: a key file's content never reaches a log. */
export class KeyFileError extends Error {
  override readonly name = 'KeyFileError';
  constructor(readonly code: KeyFileErrorCode) {
    super(KEY_FILE_ERROR_MESSAGES[code]);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses the file's text; exported for tests of the format. */
export function parseKeyFile(text: string): IssuerKey[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new KeyFileError('key_file_invalid');
  }
  if (!isRecord(json) || !Array.isArray(json.keys) || json.keys.length === 0) throw new KeyFileError('key_file_invalid');
  const keys = json.keys.map((entry: unknown) => {
    if (!isRecord(entry) || typeof entry.private_key !== 'string' || !Number.isSafeInteger(entry.not_before) || (entry.not_before as number) < 0) {
      throw new KeyFileError('key_file_invalid');
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: entry.private_key, format: 'pem' });
      return issuerKey(privateKey, entry.not_before as number);
    } catch {
      throw new KeyFileError('key_file_invalid');
    }
  });
  // A TokenRequest names its key by one byte (RFC 9578 §6.1): two keys sharing it would be ambiguous.
  if (new Set(keys.map((key) => key.truncatedId)).size !== keys.length) throw new KeyFileError('key_file_invalid');
  return keys;
}

export function encodeKeyFile(keys: readonly { privateKey: KeyObject; notBefore: number }[]): string {
  const entries = keys.map((key) => ({ not_before: key.notBefore, private_key: key.privateKey.export({ type: 'pkcs8', format: 'pem' }) }));
  return `${JSON.stringify({ keys: entries }, null, 2)}\n`;
}

export function loadKeyFile(path: string): IssuerKey[] {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch {
    throw new KeyFileError('key_file_missing');
  }
  if ((mode & 0o077) !== 0) throw new KeyFileError('key_file_mode');
  return parseKeyFile(readFileSync(path, 'utf8'));
}

function newKey(now: number): { privateKey: KeyObject; notBefore: number } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, notBefore: dayOf(now) * 86_400 };
}

/**
 * Development: the key file, created with one fresh key when missing, and given a fresh key when
 * none of its keys is active any more (a state directory kept past 90 days).
 */
export function loadOrCreateDevKeyFile(path: string, now: number): { keys: IssuerKey[]; created: IssuerKey | null } {
  const keys = existsSync(path) ? loadKeyFile(path) : [];
  if (activeKeys(keys, now).length > 0) return { keys, created: null };
  let fresh = newKey(now);
  // One byte names a key in a TokenRequest: draw again on the rare clash with a kept key.
  while (keys.some((key) => key.truncatedId === issuerKey(fresh.privateKey, fresh.notBefore).truncatedId)) fresh = newKey(now);
  const created = issuerKey(fresh.privateKey, fresh.notBefore);
  const all = [...keys, created];
  const text = encodeKeyFile(all);
  // 'wx' for a new file: never overwrite a key another process wrote meanwhile.
  if (keys.length === 0) writeFileSync(path, text, { mode: 0o600, flag: 'wx' });
  else writeFileSync(path, text, { mode: 0o600 });
  return { keys: all, created };
}
