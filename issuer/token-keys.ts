// The issuer's token keys (SPEC §10, RFC 9578 §4): at most two active at once, each used for at
// most 90 days from its not-before; what the directory lists and what an app release pins
// (token-keys.json, SPEC §8). Pure: key files are read by key-file.ts.

import type { KeyObject } from 'node:crypto';
import { publicKeyOf, type BlindRsaPublicKey } from '../protocol/blind-rsa.js';
import { encodePaddedBase64url, type IssuerTokenKey } from '../protocol/privacypass-http.js';
import { NK, TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId } from '../protocol/privacypass.js';

export const MAX_ACTIVE_KEYS = 2;
export const KEY_LIFETIME_SECONDS = 90 * 86_400;

export interface IssuerKey {
  readonly privateKey: KeyObject;
  /** RFC 9578 §6.5: token_key_id is computed from this SPKI only, never node's own export. */
  readonly tokenKey: BlindRsaPublicKey;
  readonly truncatedId: number;
  /** Unix seconds from which the key signs and is listed. */
  readonly notBefore: number;
}

export function issuerKey(privateKey: KeyObject, notBefore: number): IssuerKey {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'rsa') throw new TypeError('an RSA private key is required');
  if (!Number.isSafeInteger(notBefore) || notBefore < 0) throw new TypeError('notBefore must be Unix seconds');
  const tokenKey = publicKeyOf(privateKey);
  if (tokenKey.modulusBytes !== NK) throw new TypeError('token type 0x0002 needs an RSA-2048 key');
  return Object.freeze({ privateKey, tokenKey, truncatedId: truncatedTokenKeyId(tokenKey.spki), notBefore });
}

function isActive(key: IssuerKey, now: number): boolean {
  return key.notBefore <= now && now < key.notBefore + KEY_LIFETIME_SECONDS;
}

/**
 * The keys that sign and that the directory lists at `now`: begun, not older than 90 days, the
 * newest two when more qualify (a third key takes over from the oldest at its not-before).
 */
export function activeKeys(keys: readonly IssuerKey[], now: number): IssuerKey[] {
  return keys.filter((key) => isActive(key, now)).sort((a, b) => b.notBefore - a.notBefore).slice(0, MAX_ACTIVE_KEYS);
}

/** What an app release pins: the active keys and those still to begin, oldest first. */
export function pinnedKeys(keys: readonly IssuerKey[], now: number): IssuerKey[] {
  const active = activeKeys(keys, now);
  const coming = keys.filter((key) => key.notBefore > now);
  return [...active, ...coming].sort((a, b) => a.notBefore - b.notBefore);
}

export function directoryEntry(key: IssuerKey): IssuerTokenKey {
  return { tokenType: TOKEN_TYPE_BLIND_RSA, tokenKey: key.tokenKey.spki, notBefore: key.notBefore };
}

/** SPEC §8 token-keys.json: {"issuer_name", "origin_info", "token-keys": [RFC 9578 §4 entries]}. */
export function encodeTokenKeysFile(issuerName: string, originInfo: string, keys: readonly IssuerKey[]): string {
  const entries = keys.map((key) => ({
    'token-type': TOKEN_TYPE_BLIND_RSA,
    'token-key': encodePaddedBase64url(key.tokenKey.spki),
    'not-before': key.notBefore,
  }));
  return `${JSON.stringify({ issuer_name: issuerName, origin_info: originInfo, 'token-keys': entries }, null, 2)}\n`;
}
