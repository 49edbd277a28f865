// The SRT rules of SPEC §2, shared by the enclave (assign, refresh) and the token issuer (§10) so
// both accept exactly the same tokens: which issuer keys may be trusted (validated public JWKs,
// one alg each) and the claim checks. Pure: the callers read the trust files. Signatures are
// checked by jws.ts; the claim order follows jose's jwtVerify, so that the code of a token
// breaking several rules is stable (enclave core-tokens tests compare with jose).

import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { DipError } from './errors.js';
import { importVerificationKey, verifyCompactJws, type JwsAlgorithm, type VerificationKey } from './jws.js';
import { CLOCK_SKEW_SECONDS, MAX_SRT_LIFETIME_SECONDS } from './limits.js';
import { isSubscriptionId } from './text.js';

export const ENTITLEMENT_CLAIM = 'xv.vpn.dip';

/**
 * SRT signature algorithms the enclave and the issuer accept. Asymmetric only, each bound to one key type:
 * the ECDSA curves and RSA schemes subscription services commonly use, and Ed25519.
 * `none`, every HS* and everything else is refused before any key is looked up.
 */
export const SRT_ALGORITHMS = ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'] as const;
export type SrtAlgorithm = (typeof SRT_ALGORITHMS)[number];

export interface SrtTrust {
  issuer: string;
  /** The audience an SRT's `aud` must contain, or null when none is configured. */
  audience: string | null;
  /** Public JWKS of the trusted issuer keys; each has `kid` and `alg`. */
  keys: { keys: JsonWebKey[] };
}

/** A broken trust configuration: the service must refuse to start. Never carries key material. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const KEY_TYPE_OF: Readonly<Record<SrtAlgorithm, { kty: string; crv?: string }>> = {
  ES256: { kty: 'EC', crv: 'P-256' },
  ES384: { kty: 'EC', crv: 'P-384' },
  RS256: { kty: 'RSA' },
  PS256: { kty: 'RSA' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
};

const PUBLIC_MEMBERS: Readonly<Record<string, readonly string[]>> = {
  EC: ['crv', 'x', 'y'],
  RSA: ['n', 'e'],
  OKP: ['crv', 'x'],
};

const MIN_RSA_BITS = 2048;

function isSrtAlgorithm(value: unknown): value is SrtAlgorithm {
  return typeof value === 'string' && (SRT_ALGORITHMS as readonly string[]).includes(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseJsonText(value: unknown, what: string): unknown {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value);
  } catch {
    throw new ConfigError(`${what} is not valid JSON`);
  }
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

/**
 * Validates one trusted issuer key and returns exactly its public members. Only public EC, RSA
 * or OKP keys with `kid` and an allowed `alg` that fits the key type pass; any private member
 * (`d`, or RSA's primes) is an error rather than something to strip silently.
 */
export function parseTrustedJwk(value: unknown, index: number): JsonWebKey {
  const where = `trusted SRT issuer key #${index}`;
  if (!isPlainObject(value)) throw new ConfigError(`${where} is not a JSON object`);
  const { kty, kid, alg, use } = value;
  if (!nonEmptyString(kid)) throw new ConfigError(`${where} has no kid`);
  if (!isSrtAlgorithm(alg)) throw new ConfigError(`${where} has no alg, or one SPEC §2 does not accept`);
  for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']) {
    if (member in value) throw new ConfigError(`${where} holds private key material ("${member}")`);
  }
  const expected = KEY_TYPE_OF[alg];
  if (kty !== expected.kty || (expected.crv !== undefined && value.crv !== expected.crv)) {
    throw new ConfigError(`${where} does not fit its alg ${alg}`);
  }
  if (use !== undefined && use !== 'sig') throw new ConfigError(`${where} is not a signature key`);
  const keyOps = value.key_ops;
  if (keyOps !== undefined && !(Array.isArray(keyOps) && keyOps.includes('verify'))) {
    throw new ConfigError(`${where} is not a verification key`);
  }
  const jwk: JsonWebKey = { kty, kid, alg, use: 'sig' };
  for (const member of PUBLIC_MEMBERS[kty]!) {
    const part = value[member];
    if (!nonEmptyString(part)) throw new ConfigError(`${where} lacks "${member}"`);
    (jwk as Record<string, unknown>)[member] = part;
  }
  let key;
  try {
    key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  } catch {
    throw new ConfigError(`${where} is not a valid public key`);
  }
  if (kty === 'RSA' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
    throw new ConfigError(`${where} is an RSA key shorter than ${MIN_RSA_BITS} bits`);
  }
  return Object.freeze(jwk);
}

function parseTrustedKeys(value: unknown): JsonWebKey[] {
  if (!isPlainObject(value) || !Array.isArray(value.keys)) throw new ConfigError('the SRT issuer JWKS has no "keys" array');
  if (value.keys.length === 0) {
    throw new ConfigError('the SRT issuer JWKS is empty: no subscription would be accepted; configure the production issuer keys');
  }
  const keys = value.keys.map((jwk, index) => parseTrustedJwk(jwk, index));
  const kids = new Set(keys.map((jwk) => jwk.kid));
  if (kids.size !== keys.length) throw new ConfigError('the SRT issuer JWKS repeats a kid');
  return keys;
}

/**
 * Production trust: the trusted issuer JWKS (JSON text or parsed) with the `iss` and `aud` an SRT
 * must carry. Throws `ConfigError` — a startup failure — when anything is off, an empty set included.
 */
export function srtTrustFromJwks(jwksJson: unknown, issuer: string, audience: string | null): SrtTrust {
  if (!nonEmptyString(issuer)) throw new ConfigError('the SRT issuer name is empty');
  if (audience !== null && !nonEmptyString(audience)) throw new ConfigError('the SRT audience must be text or null');
  return { issuer, audience, keys: { keys: parseTrustedKeys(parseJsonText(jwksJson, 'the SRT issuer JWKS')) } };
}

/**
 * Development trust (SPEC §8): the parsed `.dev/srt-issuer.json`,
 * `{"iss": text, "aud": text | null, "jwk": <private JWK with kid and alg>}`. Only the public half
 * of the key is kept.
 */
export function srtTrustFromDevIssuer(devIssuer: unknown): SrtTrust {
  if (!isPlainObject(devIssuer)) throw new ConfigError('the development SRT issuer is not a JSON object');
  const { iss, aud, jwk } = devIssuer;
  if (!nonEmptyString(iss)) throw new ConfigError('the development SRT issuer has no "iss"');
  if (aud !== null && !nonEmptyString(aud)) throw new ConfigError('the development SRT issuer "aud" must be text or null');
  if (!isPlainObject(jwk)) throw new ConfigError('the development SRT issuer has no "jwk"');
  const publicPart: Record<string, unknown> = {};
  for (const member of ['kty', 'kid', 'alg', 'use', 'key_ops', 'crv', 'x', 'y', 'n', 'e']) {
    if (member in jwk) publicPart[member] = jwk[member];
  }
  // A private JsonWebKey's key_ops name "sign"; its public half verifies.
  if (publicPart.key_ops !== undefined) publicPart.key_ops = ['verify'];
  return { issuer: iss, audience: aud, keys: { keys: [parseTrustedJwk(publicPart, 0)] } };
}

/** What the enclave and the issuer take from a valid SRT. */
export interface SrtClaims {
  readonly sub: string;
  readonly did: number;
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

export type SrtVerifier = (srt: string, now: number) => Promise<SrtClaims>;

/** SPEC §2: the subscription version `did` is an integer ≥ 0. */
export function isVersion(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

const SRT_ALLOWED: ReadonlySet<string> = new Set(SRT_ALGORITHMS);

/** RFC 7519 §4.1.3 / jose: `aud` is one text or an array of them, and must name the audience. */
function hasAudience(aud: unknown, audience: string): boolean {
  return aud === audience || (Array.isArray(aud) && aud.includes(audience));
}

/**
 * Builds the SRT check for one trust configuration. Each trusted JWK is validated and imported
 * once, here, bound to its own `alg`. The returned function throws `DipError` with `srt_invalid`,
 * `srt_expired` or `not_entitled`, and nothing else.
 */
export function createSrtVerifier(trust: SrtTrust): SrtVerifier {
  if (trust.keys.keys.length === 0) throw new TypeError('an SRT trust configuration needs at least one key');
  const keys: VerificationKey[] = trust.keys.keys.map((jwk, index) => {
    const checked = parseTrustedJwk(jwk, index);
    return importVerificationKey(checked, checked.kid as string, checked.alg as JwsAlgorithm);
  });
  const byKid = new Map(keys.map((key) => [key.kid, [key]]));
  // A token without kid may be checked against every trusted key (each bound to its alg).
  const candidates = (header: Record<string, unknown>): readonly VerificationKey[] =>
    header.kid === undefined ? keys : typeof header.kid === 'string' ? (byKid.get(header.kid) ?? []) : [];
  const { issuer, audience } = trust;

  return async (srt, now) => {
    const verified = typeof srt === 'string' ? verifyCompactJws(srt, SRT_ALLOWED, candidates) : null;
    if (verified === null) throw new DipError('srt_invalid');
    const claims = verified.payload;
    const { iss, sub, iat, exp, nbf } = claims;
    // The order of jose's jwtVerify: presence, iss, aud, types, nbf, then exp.
    if (iss === undefined || sub === undefined || exp === undefined || iat === undefined) throw new DipError('srt_invalid');
    if (iss !== issuer || (audience !== null && !hasAudience(claims.aud, audience))) throw new DipError('srt_invalid');
    if (!isFiniteNumber(iat) || !isFiniteNumber(exp) || (nbf !== undefined && !isFiniteNumber(nbf))) throw new DipError('srt_invalid');
    if (nbf !== undefined && nbf > now + CLOCK_SKEW_SECONDS) throw new DipError('srt_invalid');
    // SPEC §2, 60 s of skew both ways and inclusive (issue 9): exp = now - 60 is still accepted.
    if (exp < now - CLOCK_SKEW_SECONDS) throw new DipError('srt_expired');
    if (!isSubscriptionId(sub)) throw new DipError('srt_invalid');
    // An SRT from the future is as wrong as an expired one is old.
    if (iat > now + CLOCK_SKEW_SECONDS) throw new DipError('srt_invalid');
    // SPEC §2 lifetime cap: a refunded subscription must lose access within three days.
    if (exp - iat > MAX_SRT_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS) throw new DipError('srt_invalid');
    const entitlements = claims.entitlements;
    const entitlement = isPlainObject(entitlements) ? entitlements[ENTITLEMENT_CLAIM] : undefined;
    const did = isPlainObject(entitlement) ? entitlement.did : undefined;
    if (!isVersion(did)) throw new DipError('not_entitled');
    return { sub, did };
  };
}
