// The HTTP faces of Privacy Pass (SPEC §10): the PrivateToken WWW-Authenticate challenge and
// Authorization credential (RFC 9577 §2.1–2.2) and the issuer directory (RFC 9578 §4). Their binary
// values are base64url WITH padding (RFC 9577 §2.1), unlike the unpadded JSON fields of SPEC §6.

import { decodePublicKey, type BlindRsaPublicKey } from './blind-rsa.js';
import { PrivacyPassError } from './privacypass-error.js';
import { MAX_HEADER_LENGTH, NK, TOKEN_TYPE_BLIND_RSA, Token, TokenChallenge } from './privacypass.js';

export const AUTH_SCHEME = 'PrivateToken';
export const ISSUER_DIRECTORY_PATH = '/.well-known/private-token-issuer-directory';
export const MEDIA_TYPE_TOKEN_REQUEST = 'application/private-token-request';
export const MEDIA_TYPE_TOKEN_RESPONSE = 'application/private-token-response';
export const MEDIA_TYPE_ISSUER_DIRECTORY = 'application/private-token-issuer-directory';

export function encodePaddedBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64').replaceAll('+', '-').replaceAll('/', '_');
}

/** Canonical padded base64url only; Node's decoder alone would skip junk and accept missing padding. */
export function decodePaddedBase64url(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(text) || text.length % 4 !== 0) return null;
  const bytes = new Uint8Array(Buffer.from(text, 'base64url'));
  return encodePaddedBase64url(bytes) === text ? bytes : null;
}

/** The issuer key of token type 0x0002 from its SPKI: the RFC 9578 §6.5 encoding with a 2048-bit modulus. */
export function decodeTokenKey(spki: Uint8Array): BlindRsaPublicKey {
  const key = decodePublicKey(spki);
  if (key.modulusBytes !== NK) throw new PrivacyPassError('bad_request');
  return key;
}

// ---- RFC 9110 §11: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ] ----------------

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;
const OWS = /^[ \t]*/;

/**
 * Parses `PrivateToken a=b, c="d"` into its parameters: names lower-cased, values unquoted, a
 * repeated name refused, and nothing after the last parameter (so one challenge per header).
 */
function parseAuthParams(header: string): Map<string, string> {
  if (typeof header !== 'string' || header.length > MAX_HEADER_LENGTH) throw new PrivacyPassError('bad_request');
  let rest = header.replace(OWS, '');
  const scheme = TOKEN.exec(rest)?.[0];
  if (scheme?.toLowerCase() !== AUTH_SCHEME.toLowerCase() || !/^ +/.test(rest.slice(scheme.length))) throw new PrivacyPassError('bad_request');
  rest = rest.slice(scheme.length).replace(/^ +/, '');
  const params = new Map<string, string>();
  for (;;) {
    const name = TOKEN.exec(rest)?.[0];
    if (name === undefined) throw new PrivacyPassError('bad_request');
    rest = rest.slice(name.length).replace(OWS, '');
    if (!rest.startsWith('=')) throw new PrivacyPassError('bad_request');
    rest = rest.slice(1).replace(OWS, '');
    let value: string;
    if (rest.startsWith('"')) {
      // RFC 9110 §5.6.4: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
      const quoted = /^"((?:[\t \x21\x23-\x5b\x5d-\x7e]|\\[\t \x21-\x7e])*)"/.exec(rest);
      if (!quoted) throw new PrivacyPassError('bad_request');
      value = quoted[1]!.replace(/\\(.)/g, '$1');
      rest = rest.slice(quoted[0].length);
    } else {
      const token = TOKEN.exec(rest)?.[0];
      if (token === undefined) throw new PrivacyPassError('bad_request');
      value = token;
      rest = rest.slice(token.length);
    }
    const key = name.toLowerCase();
    if (params.has(key)) throw new PrivacyPassError('bad_request');
    params.set(key, value);
    rest = rest.replace(OWS, '');
    if (rest === '') return params;
    if (!rest.startsWith(',')) throw new PrivacyPassError('bad_request');
    rest = rest.slice(1).replace(OWS, '');
  }
}

function requiredBytes(params: Map<string, string>, name: string): Uint8Array {
  const value = params.get(name);
  const bytes = value === undefined ? null : decodePaddedBase64url(value);
  if (bytes === null) throw new PrivacyPassError('bad_request');
  return bytes;
}

export interface PrivateTokenChallenge {
  readonly challenge: TokenChallenge;
  /** The issuer key's SPKI, exactly as sent. */
  readonly tokenKey: Uint8Array;
  readonly maxAge?: number;
}

/** RFC 9577 §2.1: `WWW-Authenticate: PrivateToken challenge="…", token-key="…"[, max-age=…]`. */
export function formatWwwAuthenticate(value: PrivateTokenChallenge): string {
  const parts = [`challenge="${encodePaddedBase64url(value.challenge.encode())}"`, `token-key="${encodePaddedBase64url(value.tokenKey)}"`];
  if (value.maxAge !== undefined) {
    if (!Number.isSafeInteger(value.maxAge) || value.maxAge < 0) throw new TypeError('maxAge must be a non-negative integer');
    parts.push(`max-age=${value.maxAge}`);
  }
  return `${AUTH_SCHEME} ${parts.join(', ')}`;
}

/**
 * Parses one PrivateToken challenge. Parameters come in any order, quoted or not; unknown ones are
 * ignored (RFC 9110 §11.2 lets a scheme grow); a repeated one, or a token-key that is not an RFC 9578
 * §6.5 key of 2048 bits, is refused.
 */
export function parseWwwAuthenticate(header: string): PrivateTokenChallenge {
  const params = parseAuthParams(header);
  const challenge = TokenChallenge.decode(requiredBytes(params, 'challenge'));
  const tokenKey = requiredBytes(params, 'token-key');
  decodeTokenKey(tokenKey);
  const maxAgeText = params.get('max-age');
  if (maxAgeText === undefined) return { challenge, tokenKey };
  if (!/^[0-9]{1,10}$/.test(maxAgeText)) throw new PrivacyPassError('bad_request');
  return { challenge, tokenKey, maxAge: Number(maxAgeText) };
}

/**
 * RFC 9110 §11.6.1: one WWW-Authenticate field value may list several challenges (an origin that
 * accepts tokens under two issuer keys sends one per key; fetch also joins repeated headers with
 * ", "). Returns every PrivateToken challenge, each parsed as strictly as parseWwwAuthenticate;
 * challenges of other schemes are skipped. A list without a PrivateToken challenge, or with one that
 * does not parse, is refused.
 */
export function parseWwwAuthenticateList(header: string): PrivateTokenChallenge[] {
  if (typeof header !== 'string' || header.length > MAX_HEADER_LENGTH) throw new PrivacyPassError('bad_request');
  const challenges: string[][] = [];
  for (const element of splitList(header).map((e) => e.trim())) {
    if (element === '') continue; // RFC 9110 §5.6.1: empty list elements are ignored
    // "scheme SP …" or a lone scheme starts a challenge; "name = value" continues the current one.
    if (/^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?: +(?![ =])|$)/.test(element)) challenges.push([element]);
    else if (challenges.length > 0) challenges[challenges.length - 1]!.push(element);
    else throw new PrivacyPassError('bad_request');
  }
  const ours = challenges.filter((parts) => parts[0]!.split(' ')[0]!.toLowerCase() === AUTH_SCHEME.toLowerCase());
  if (ours.length === 0) throw new PrivacyPassError('bad_request');
  return ours.map((parts) => parseWwwAuthenticate(parts.join(', ')));
}

/** Splits a list at the commas outside quoted strings (RFC 9110 §5.6.4 quoted-pair honoured). */
function splitList(header: string): string[] {
  const elements: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < header.length; i++) {
    const c = header[i]!;
    if (c === ',' && !quoted) {
      elements.push(current);
      current = '';
      continue;
    }
    current += c;
    if (quoted && c === '\\') current += header[++i] ?? '';
    else if (c === '"') quoted = !quoted;
  }
  if (quoted) throw new PrivacyPassError('bad_request');
  elements.push(current);
  return elements;
}

/** RFC 9577 §2.2: `Authorization: PrivateToken token="…"`. */
export function formatAuthorization(token: Token): string {
  return `${AUTH_SCHEME} token="${encodePaddedBase64url(token.encode())}"`;
}

export function parseAuthorization(header: string): Token {
  return Token.decode(requiredBytes(parseAuthParams(header), 'token'));
}

// ---- RFC 9578 §4: the issuer directory -----------------------------------------------------------

export interface IssuerTokenKey {
  readonly tokenType: number;
  /** The SPKI bytes of the key (RFC 9578 §6.5 for token type 0x0002). */
  readonly tokenKey: Uint8Array;
  /** Unix seconds from which the key may be used. */
  readonly notBefore?: number;
}

export interface IssuerDirectory {
  readonly issuerRequestUri: string;
  readonly tokenKeys: readonly IssuerTokenKey[];
}

export function encodeIssuerDirectory(directory: IssuerDirectory): string {
  return JSON.stringify({
    'issuer-request-uri': directory.issuerRequestUri,
    'token-keys': directory.tokenKeys.map((key) => ({
      'token-type': key.tokenType,
      'token-key': encodePaddedBase64url(key.tokenKey),
      ...(key.notBefore === undefined ? {} : { 'not-before': key.notBefore }),
    })),
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isUint(value: unknown, max: number): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= max;
}

/**
 * Parses a directory from outside. Keys of other token types are dropped, as RFC 9578 §4 lets a
 * client skip types it does not support; a type-0x0002 key must be a valid 2048-bit RSASSA-PSS SPKI.
 */
export function decodeIssuerDirectory(text: string): IssuerDirectory {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new PrivacyPassError('bad_request');
  }
  if (!isRecord(json)) throw new PrivacyPassError('bad_request');
  const uri = json['issuer-request-uri'];
  const keys = json['token-keys'];
  if (typeof uri !== 'string' || uri === '' || !Array.isArray(keys) || keys.length === 0) throw new PrivacyPassError('bad_request');
  const tokenKeys: IssuerTokenKey[] = [];
  for (const entry of keys) {
    if (!isRecord(entry) || !isUint(entry['token-type'], 0xffff) || typeof entry['token-key'] !== 'string') throw new PrivacyPassError('bad_request');
    const notBefore = entry['not-before'];
    if (notBefore !== undefined && !isUint(notBefore, Number.MAX_SAFE_INTEGER)) throw new PrivacyPassError('bad_request');
    if (entry['token-type'] !== TOKEN_TYPE_BLIND_RSA) continue;
    const tokenKey = decodePaddedBase64url(entry['token-key']);
    if (tokenKey === null) throw new PrivacyPassError('bad_request');
    decodeTokenKey(tokenKey);
    tokenKeys.push(notBefore === undefined ? { tokenType: TOKEN_TYPE_BLIND_RSA, tokenKey } : { tokenType: TOKEN_TYPE_BLIND_RSA, tokenKey, notBefore });
  }
  return { issuerRequestUri: uri, tokenKeys };
}
