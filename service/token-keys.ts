// The issuer keys the DIP service accepts tokens under (SPEC §8 token-keys.json, §10): exactly the
// keys an app release pins, each from its not-before for 90 days; the challenge every refused
// assign carries (RFC 9577 §2.1); and the redemption check of one `Authorization: PrivateToken`.

import { timingSafeEqual } from 'node:crypto';
import type { BlindRsaPublicKey } from '../protocol/blind-rsa.js';
import { DipError } from '../protocol/errors.js';
import { decodePaddedBase64url, decodeTokenKey, formatWwwAuthenticate, parseAuthorization } from '../protocol/privacypass-http.js';
import { verifyToken } from '../protocol/privacypass-issuance.js';
import { TOKEN_TYPE_BLIND_RSA, TokenChallenge, tokenKeyId, type Token } from '../protocol/privacypass.js';

/** SPEC §10: a key is used for at most 90 days from its not-before; then its tokens are refused. */
export const KEY_LIFETIME_SECONDS = 90 * 86_400;

export interface ServiceTokenKey {
  readonly spki: Uint8Array;
  readonly key: BlindRsaPublicKey;
  readonly tokenKeyId: Uint8Array;
  /** Unix seconds; tokens under the key are accepted from then through notBefore + 90 days. */
  readonly notBefore: number;
}

export interface TokenKeys {
  /** SPEC §10: token type 2, the issuer's name, an empty redemption context, this service as origin. */
  readonly challenge: TokenChallenge;
  readonly keys: readonly ServiceTokenKey[];
}

/** Why token-keys.json cannot be used; the service refuses to start. */
export class TokenKeysError extends Error {
  override readonly name = 'TokenKeysError';
  constructor(readonly code: 'token_keys_unreadable' | 'token_keys_invalid') {
    super(code === 'token_keys_unreadable' ? 'The token-keys file is missing or unreadable.' : 'The token-keys file is not SPEC §8 token-keys.json with a not-before for every key.');
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasOnly(record: Record<string, unknown>, allowed: readonly string[], required: readonly string[]): boolean {
  return Object.keys(record).every((key) => allowed.includes(key)) && required.every((key) => Object.hasOwn(record, key));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Parses token-keys.json strictly: exactly `issuer_name`, `origin_info` and `token-keys`; each entry
 * `token-type` 2, a 2048-bit `token-key` (padded base64url) and a `not-before`, which the service
 * needs to retire the key; one or more distinct keys.
 */
export function parseTokenKeys(text: string): TokenKeys {
  const invalid = (): TokenKeysError => new TokenKeysError('token_keys_invalid');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw invalid();
  }
  const members = ['issuer_name', 'origin_info', 'token-keys'];
  if (!isRecord(json) || !hasOnly(json, members, members)) throw invalid();
  const { issuer_name: issuerName, origin_info: originInfo, 'token-keys': entries } = json;
  if (typeof issuerName !== 'string' || typeof originInfo !== 'string' || !Array.isArray(entries) || entries.length === 0) throw invalid();
  let challenge: TokenChallenge;
  try {
    challenge = new TokenChallenge({ issuerName, redemptionContext: new Uint8Array(0), originInfo });
  } catch {
    throw invalid();
  }
  const keys: ServiceTokenKey[] = [];
  for (const entry of entries) {
    if (!isRecord(entry) || !hasOnly(entry, ['token-type', 'token-key', 'not-before'], ['token-type', 'token-key', 'not-before'])) throw invalid();
    const notBefore = entry['not-before'];
    if (entry['token-type'] !== TOKEN_TYPE_BLIND_RSA || typeof entry['token-key'] !== 'string') throw invalid();
    if (!Number.isSafeInteger(notBefore) || (notBefore as number) < 0) throw invalid();
    const spki = decodePaddedBase64url(entry['token-key']);
    if (spki === null) throw invalid();
    let key: BlindRsaPublicKey;
    try {
      key = decodeTokenKey(spki);
    } catch {
      throw invalid();
    }
    if (keys.some((known) => sameBytes(known.spki, spki))) throw invalid();
    keys.push({ spki, key, tokenKeyId: tokenKeyId(spki), notBefore: notBefore as number });
  }
  return { challenge, keys };
}

export type KeyState = 'future' | 'active' | 'retired';

/** SPEC §10: from not-before, for 90 days; the last second of the 90th day still counts. */
export function keyState(key: ServiceTokenKey, now: number): KeyState {
  if (now < key.notBefore) return 'future';
  return now <= key.notBefore + KEY_LIFETIME_SECONDS ? 'active' : 'retired';
}

/**
 * The one challenge a 401 carries: the newest active key (the one an app holding the newest release
 * fetches tokens under), or the newest key when none is active. One header, not one per key: an
 * HTTP client may join repeated WWW-Authenticate headers into one line that no challenge parser
 * reads back.
 */
export function challengeHeader(tokenKeys: TokenKeys, now: number): string {
  const byAge = [...tokenKeys.keys].sort((a, b) => b.notBefore - a.notBefore);
  const chosen = byAge.find((key) => keyState(key, now) === 'active') ?? byAge[0]!;
  return formatWwwAuthenticate({ challenge: tokenKeys.challenge, tokenKey: chosen.spki });
}

/**
 * The token of `Authorization: PrivateToken token=…` when it is valid now: it parses, names a
 * pinned key that is active, answers this service's challenge and carries a valid signature
 * (RFC 9578 §6.4). Anything else is token_invalid. Spending its nonce is the caller's.
 */
export function redeemableToken(tokenKeys: TokenKeys, authorization: string | undefined, now: number): Token {
  if (authorization === undefined) throw new DipError('token_invalid');
  try {
    const token = parseAuthorization(authorization);
    const pinned = tokenKeys.keys.find((key) => sameBytes(key.tokenKeyId, token.tokenKeyId));
    if (pinned === undefined || keyState(pinned, now) !== 'active') throw new DipError('token_invalid');
    verifyToken(token, pinned.key, tokenKeys.challenge);
    return token;
  } catch {
    throw new DipError('token_invalid');
  }
}
