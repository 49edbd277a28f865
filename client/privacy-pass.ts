// The app's side of SPEC §10: the issuer keys a release pins (token-keys.json, SPEC §8), the one
// challenge it accepts, fetching a token from the issuer with the SRT (RFC 9578 §5–6), and the
// random delay before redemption (RFC 9576 §3.5.2). Any key, issuer or origin not pinned is refused.

import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import type { BlindRsaPublicKey } from '../protocol/blind-rsa.js';
import { PrivacyPassError } from '../protocol/privacypass-error.js';
import {
  ISSUER_DIRECTORY_PATH, MEDIA_TYPE_TOKEN_REQUEST, MEDIA_TYPE_TOKEN_RESPONSE,
  decodeIssuerDirectory, decodePaddedBase64url, decodeTokenKey, encodePaddedBase64url, formatAuthorization, parseWwwAuthenticate,
  parseWwwAuthenticateList, type PrivateTokenChallenge,
} from '../protocol/privacypass-http.js';
import { createTokenRequest, finalizeToken, verifyToken } from '../protocol/privacypass-issuance.js';
import { TOKEN_TYPE_BLIND_RSA, Token, TokenChallenge, TokenResponse, tokenKeyId } from '../protocol/privacypass.js';
import { ClientError } from './errors.js';
import { networkFailure, readBody, refusalOf, type Fetch } from './http.js';

/** SPEC §10: at most two issuer keys are active, so a release pins at most two. */
export const MAX_PINNED_KEYS = 2;

export interface PinnedKey {
  /** The SPKI bytes as the directory encodes them (RFC 9578 §6.5). */
  readonly spki: Uint8Array;
  readonly key: BlindRsaPublicKey;
  readonly tokenKeyId: Uint8Array;
  readonly notBefore?: number;
}

/** The content of token-keys.json, as an app release pins it. */
export interface PinnedIssuer {
  readonly issuerName: string;
  readonly originInfo: string;
  readonly tokenKeys: readonly PinnedKey[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function onlyKeys(record: Record<string, unknown>, allowed: readonly string[]): boolean {
  return Object.keys(record).every((key) => allowed.includes(key));
}

const VISIBLE_ASCII = /^[\x21-\x7e]+$/;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Parses token-keys.json strictly: exactly `issuer_name`, `origin_info` and `token-keys`, each
 * entry exactly `token-type` 2, a 2048-bit `token-key` in padded base64url and an optional
 * `not-before`; 1..2 distinct keys. A pin that is not exactly right is no pin.
 */
export function parseTokenKeys(text: string): PinnedIssuer {
  const invalid = () => new ClientError('token_keys_invalid');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw invalid();
  }
  if (!isRecord(json) || !onlyKeys(json, ['issuer_name', 'origin_info', 'token-keys'])) throw invalid();
  const { issuer_name: issuerName, origin_info: originInfo, 'token-keys': entries } = json;
  if (typeof issuerName !== 'string' || !VISIBLE_ASCII.test(issuerName) || issuerName.length > 0xffff) throw invalid();
  if (typeof originInfo !== 'string' || !VISIBLE_ASCII.test(originInfo) || originInfo.length > 0xffff) throw invalid();
  if (!Array.isArray(entries) || entries.length < 1 || entries.length > MAX_PINNED_KEYS) throw invalid();
  const tokenKeys: PinnedKey[] = [];
  for (const entry of entries) {
    if (!isRecord(entry) || !onlyKeys(entry, ['token-type', 'token-key', 'not-before'])) throw invalid();
    if (entry['token-type'] !== TOKEN_TYPE_BLIND_RSA || typeof entry['token-key'] !== 'string') throw invalid();
    const notBefore = entry['not-before'];
    if (notBefore !== undefined && (!Number.isSafeInteger(notBefore) || (notBefore as number) < 0)) throw invalid();
    const spki = decodePaddedBase64url(entry['token-key']);
    if (spki === null) throw invalid();
    let key: BlindRsaPublicKey;
    try {
      key = decodeTokenKey(spki);
    } catch {
      throw invalid();
    }
    if (tokenKeys.some((pinned) => sameBytes(pinned.spki, spki))) throw invalid();
    tokenKeys.push({ spki, key, tokenKeyId: tokenKeyId(spki), ...(notBefore === undefined ? {} : { notBefore: notBefore as number }) });
  }
  return { issuerName, originInfo, tokenKeys };
}

/** SPEC §10: token type 2, the pinned issuer name, an empty redemption context, the pinned origin. */
export function pinnedChallenge(config: PinnedIssuer): TokenChallenge {
  return new TokenChallenge({ issuerName: config.issuerName, redemptionContext: new Uint8Array(0), originInfo: config.originInfo });
}

function pinnedKeyOf(config: PinnedIssuer, spki: Uint8Array): PinnedKey | undefined {
  return config.tokenKeys.find((pinned) => sameBytes(pinned.spki, spki));
}

/**
 * Checks the DIP service's `WWW-Authenticate: PrivateToken …` against the pin and returns the
 * pinned key it names. The detail says which part differs, from a fixed set.
 */
export function checkChallenge(header: string, config: PinnedIssuer): PinnedKey {
  let offered;
  try {
    offered = parseWwwAuthenticate(header);
  } catch {
    throw new ClientError('challenge_unexpected', false, 'malformed');
  }
  return checkOffered(offered, config);
}

/**
 * The same for a WWW-Authenticate that may list several PrivateToken challenges (one per key the
 * service accepts): every one must be the pinned challenge under a pinned key — one that differs
 * taints the answer, as one unpinned key taints an issuer directory. Returns the keys named.
 */
export function checkChallenges(header: string, config: PinnedIssuer): PinnedKey[] {
  let offered;
  try {
    offered = parseWwwAuthenticateList(header);
  } catch {
    throw new ClientError('challenge_unexpected', false, 'malformed');
  }
  const keys = offered.map((challenge) => checkOffered(challenge, config));
  return keys.filter((key, i) => keys.indexOf(key) === i);
}

function checkOffered({ challenge, tokenKey }: PrivateTokenChallenge, config: PinnedIssuer): PinnedKey {
  if (challenge.issuerName !== config.issuerName) throw new ClientError('challenge_unexpected', false, 'issuer_name');
  if (challenge.originInfo !== config.originInfo) throw new ClientError('challenge_unexpected', false, 'origin_info');
  // A per-user redemption context would let the DIP service link the token to the request.
  if (challenge.redemptionContext.length !== 0) throw new ClientError('challenge_unexpected', false, 'redemption_context');
  const pinned = pinnedKeyOf(config, tokenKey);
  if (pinned === undefined) throw new ClientError('challenge_unexpected', false, 'token_key');
  return pinned;
}

/** The newest pinned key that the issuer also offers and that is in force at `nowSeconds`. */
function chooseKey(config: PinnedIssuer, offered: readonly Uint8Array[], nowSeconds: number): PinnedKey {
  const usable = config.tokenKeys
    .filter((pinned) => (pinned.notBefore ?? 0) <= nowSeconds && offered.some((spki) => sameBytes(spki, pinned.spki)))
    .sort((a, b) => (b.notBefore ?? 0) - (a.notBefore ?? 0));
  if (usable[0] === undefined) throw new ClientError('issuer_key_unpinned');
  return usable[0];
}

export interface GetTokenOptions {
  /** The issuer's base URL; its directory is at /.well-known/private-token-issuer-directory. */
  issuerUrl: string;
  /** The subscription receipt token, sent only to the issuer's own origin. */
  srt: string;
  config: PinnedIssuer;
  /**
   * The DIP service's WWW-Authenticate, when one was received: checked before anything is sent
   * (every challenge it lists), and the token is made for a key it names.
   */
  challenge?: string;
  fetch?: Fetch;
  timeoutMs?: number;
  /** Unix seconds, for the keys' not-before; default now. */
  nowSeconds?: number;
}

export interface IssuedToken {
  readonly token: Token;
  /** The Token bytes (RFC 9577 §2.2). */
  readonly bytes: Uint8Array;
  /** The bytes in base64url WITH padding, as the header carries them. */
  readonly encoded: string;
  /** `PrivateToken token="…"` for the Authorization header of the assign request. */
  readonly authorization: string;
  readonly tokenKeyId: Uint8Array;
}

async function call(fetch: Fetch, url: URL, init: RequestInit, timeoutMs: number): Promise<{ response: Response; body: Uint8Array }> {
  try {
    const response = await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
    return { response, body: await readBody(response) };
  } catch (error) {
    if (error instanceof ClientError) throw error;
    throw new ClientError('http_failed', false, networkFailure(error));
  }
}

function mediaType(response: Response): string {
  return (response.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
}

/**
 * RFC 9578 §5–6 against a pinned issuer: directory → refuse unpinned keys → blind → POST with the
 * SRT → finalize → verify under the pinned key and the pinned challenge. Returns a token to keep
 * until its redemption (see redemptionDelayMs).
 */
export async function getToken(options: GetTokenOptions): Promise<IssuedToken> {
  const { config, srt } = options;
  if (typeof srt !== 'string' || srt === '' || /[\s]/.test(srt)) throw new TypeError('srt must be one token without spaces');
  let base: URL;
  try {
    base = new URL(options.issuerUrl);
  } catch {
    throw new TypeError('the issuer URL is not a URL');
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError('the issuer URL must be http(s)');
  const fetch = options.fetch ?? globalThis.fetch;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const challenge = pinnedChallenge(config);
  const wanted = options.challenge === undefined ? undefined : checkChallenges(options.challenge, config);

  const directoryUrl = new URL(ISSUER_DIRECTORY_PATH, base);
  const directory = await call(fetch, directoryUrl, { method: 'GET' }, timeoutMs);
  if (directory.response.status !== 200) throw refusalOf(directory.body);
  let offered;
  try {
    offered = decodeIssuerDirectory(new TextDecoder('utf-8', { fatal: true }).decode(directory.body));
  } catch {
    throw new ClientError('issuer_directory_invalid');
  }
  // RFC 9576 §6.2: one unpinned key is enough to single a user out, so it taints the whole directory.
  if (offered.tokenKeys.length === 0) throw new ClientError('issuer_directory_invalid');
  if (offered.tokenKeys.some((entry) => pinnedKeyOf(config, entry.tokenKey) === undefined)) throw new ClientError('issuer_key_unpinned');
  let requestUrl: URL;
  try {
    requestUrl = new URL(offered.issuerRequestUri, directoryUrl);
  } catch {
    throw new ClientError('issuer_directory_invalid');
  }
  // The SRT carries identity: it goes to the issuer's own origin and nowhere a directory points.
  if (requestUrl.origin !== base.origin) throw new ClientError('issuer_directory_invalid');
  const offeredKeys = offered.tokenKeys.map((entry) => entry.tokenKey);
  const nowSeconds = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  // A challenge's key, though pinned, may not be one this issuer signs with now.
  if (wanted !== undefined && !wanted.some((key) => offeredKeys.some((spki) => sameBytes(spki, key.spki)))) {
    throw new ClientError('issuer_key_unpinned', false, 'not_offered');
  }
  const pinned = chooseKey(wanted === undefined ? config : { ...config, tokenKeys: wanted }, offeredKeys, nowSeconds);

  const { request, pending } = createTokenRequest(challenge, pinned.key);
  const answer = await call(fetch, requestUrl, {
    method: 'POST',
    headers: { 'content-type': MEDIA_TYPE_TOKEN_REQUEST, accept: MEDIA_TYPE_TOKEN_RESPONSE, authorization: `Bearer ${srt}` },
    body: request.encode(),
  }, timeoutMs);
  if (answer.response.status !== 200) throw refusalOf(answer.body);
  if (mediaType(answer.response) !== MEDIA_TYPE_TOKEN_RESPONSE) throw new ClientError('http_failed');
  let token: Token;
  try {
    token = finalizeToken(pending, TokenResponse.decode(answer.body));
    verifyToken(token, pinned.key, challenge);
  } catch (error) {
    if (error instanceof PrivacyPassError) throw new ClientError('token_response_invalid');
    throw error;
  }
  const bytes = token.encode();
  return { token, bytes, encoded: encodePaddedBase64url(bytes), authorization: formatAuthorization(token), tokenKeyId: pinned.tokenKeyId };
}

/**
 * Verifies a saved token (padded base64url, as the header carries it) under the pinned keys and
 * a challenge (default the pinned one). Returns the pinned key it names.
 */
export function verifySavedToken(encoded: string, config: PinnedIssuer, challenge: TokenChallenge = pinnedChallenge(config)): { token: Token; pinned: PinnedKey } {
  const bytes = decodePaddedBase64url(encoded);
  let token: Token;
  try {
    if (bytes === null) throw new PrivacyPassError('bad_request');
    token = Token.decode(bytes);
  } catch {
    throw new ClientError('token_invalid', false, 'malformed');
  }
  const pinned = config.tokenKeys.find((key) => sameBytes(key.tokenKeyId, token.tokenKeyId));
  if (pinned === undefined) throw new ClientError('token_invalid', false, 'token_key');
  try {
    verifyToken(token, pinned.key, challenge);
  } catch (error) {
    if (error instanceof PrivacyPassError) throw new ClientError('token_invalid', false, 'signature');
    throw error;
  }
  return { token, pinned };
}

// ---- RFC 9576 §3.5.2: redeem after a random delay ----------------------------------------------

export const HOUR_MS = 3_600_000;
export const DEFAULT_MIN_DELAY_MS = HOUR_MS;
export const DEFAULT_MAX_DELAY_MS = 24 * HOUR_MS;

export interface RedemptionDelayOptions {
  /** SPEC §10: no delay in development. */
  development?: boolean;
  minMs?: number;
  maxMs?: number;
  /** A uniform integer in [0, bound); default crypto.randomInt. Tests pass seededRandom(…). */
  random?: (bound: number) => number;
}

/** Milliseconds to wait between fetching a token and redeeming it: uniform in [minMs, maxMs]. */
export function redemptionDelayMs(options: RedemptionDelayOptions = {}): number {
  if (options.development === true) return 0;
  const min = options.minMs ?? DEFAULT_MIN_DELAY_MS;
  const max = options.maxMs ?? DEFAULT_MAX_DELAY_MS;
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min < 0 || max < min) throw new TypeError('need 0 <= minMs <= maxMs');
  const bound = max - min + 1;
  const draw = (options.random ?? randomInt)(bound);
  if (!Number.isSafeInteger(draw) || draw < 0 || draw >= bound) throw new TypeError('random must return an integer in [0, bound)');
  return min + draw;
}

/** A deterministic `random` for tests: SHA-256(seed || counter), reduced without bias by rejection. */
export function seededRandom(seed: string): (bound: number) => number {
  let counter = 0;
  return (bound) => {
    if (!Number.isSafeInteger(bound) || bound < 1 || bound > 2 ** 48) throw new TypeError('bound must be 1..2^48');
    const limit = Math.floor(2 ** 48 / bound) * bound;
    for (;;) {
      const value = createHash('sha256').update(`${seed}\0${counter++}`).digest().readUIntBE(0, 6);
      if (value < limit) return value % bound;
    }
  };
}
