// SRT verification, DAT and DRT issuance, DRT verification (SPEC §2).
// Signatures are checked by jws.ts (strict, allow-list first, node:crypto) and made here with
// node:crypto directly: the header of our own tokens is fixed, and jose's WebCrypto path would
// more than double the cost of every ES256 operation on the refresh path. The claim rules follow
// jose's jwtVerify order, so that the error code of a token breaking several rules is stable;
// core-tokens tests run the same tokens through jose as a reference.

import { sign, type JsonWebKey } from 'node:crypto';
import { createLocalJWKSet, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { pooledRandomBytes } from '../../protocol/random.js';
import { DipError } from '../../protocol/errors.js';
import { isCanonicalIp } from '../../protocol/ip.js';
import {
  CLOCK_SKEW_SECONDS,
  DAT_LIFETIME_SECONDS,
  DRT_LIFETIME_SECONDS,
  MAX_SRT_LIFETIME_SECONDS,
} from '../../protocol/limits.js';
import { isSubscriptionId } from '../../protocol/text.js';
import { SRT_ALGORITHMS, parseTrustedJwk, type SrtTrust } from './config.js';
import { importVerificationKey, verificationKeyFrom, verifyCompactJws, type JwsAlgorithm, type VerificationKey } from './jws.js';
import type { SigningKey } from './keys.js';

export const DAT_TYP = 'dat+jwt';
export const DRT_TYP = 'drt+jwt';
export const ENTITLEMENT_CLAIM = 'xv.vpn.dip';
export const DETAILS_CLAIM = 'xv.vpn.dip.details';

/** What the enclave takes from a valid SRT. */
export interface SrtClaims {
  readonly sub: string;
  readonly did: number;
}

/** What the enclave takes from a valid DRT. */
export interface DrtClaims {
  readonly sub: string;
  readonly did: number;
  readonly ip: string;
  readonly exp: number;
}

export interface IssuedToken {
  readonly token: string;
  readonly exp: number;
}

export type SrtVerifier = (srt: string, now: number) => Promise<SrtClaims>;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** SPEC §2: the subscription version `did` is an integer ≥ 0. */
export function isVersion(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

const SRT_ALLOWED: ReadonlySet<string> = new Set(SRT_ALGORITHMS);
const DRT_ALLOWED: ReadonlySet<string> = new Set(['ES256']);

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
    return importVerificationKey(checked as JsonWebKey, checked.kid!, checked.alg as JwsAlgorithm);
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

const headerCache = new WeakMap<SigningKey, Map<string, string>>();

function encodedHeader(key: SigningKey, typ: string): string {
  let byTyp = headerCache.get(key);
  if (byTyp === undefined) headerCache.set(key, (byTyp = new Map()));
  let header = byTyp.get(typ);
  if (header === undefined) {
    header = Buffer.from(JSON.stringify({ alg: 'ES256', typ, kid: key.kid }), 'utf8').toString('base64url');
    byTyp.set(typ, header);
  }
  return header;
}

/** RFC 7515 §7.1 compact serialization, ES256 (RFC 7518 §3.4: R || S, 64 bytes). */
function signJwt(key: SigningKey, typ: string, claims: Record<string, unknown>): string {
  const input = `${encodedHeader(key, typ)}.${Buffer.from(JSON.stringify(claims), 'utf8').toString('base64url')}`;
  const signature = sign('sha256', Buffer.from(input, 'latin1'), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

/** 128 random bits, base64url (SPEC §2 `jti`). */
function newJti(): string {
  return Buffer.from(pooledRandomBytes(16)).toString('base64url');
}

function requireIp(ip: string): void {
  if (!isCanonicalIp(ip)) throw new DipError('bad_request');
}

/** SPEC §2 DAT: no `sub`, nothing that names the subscription. */
export function issueDat(key: SigningKey, iss: string, ip: string, now: number): IssuedToken {
  requireIp(ip);
  const exp = now + DAT_LIFETIME_SECONDS;
  const token = signJwt(key, DAT_TYP, { iss, iat: now, exp, jti: newJti(), [DETAILS_CLAIM]: { ip } });
  return { token, exp };
}

/** SPEC §2 DRT, signed with the DRT key only. */
export function issueDrt(key: SigningKey, iss: string, claims: { sub: string; did: number; ip: string }, now: number): IssuedToken {
  requireIp(claims.ip);
  if (!isSubscriptionId(claims.sub) || !isVersion(claims.did)) throw new TypeError('a DRT needs a valid sub and did');
  const exp = now + DRT_LIFETIME_SECONDS;
  const token = signJwt(key, DRT_TYP, {
    iss,
    sub: claims.sub,
    iat: now,
    exp,
    jti: newJti(),
    [ENTITLEMENT_CLAIM]: { did: claims.did },
    [DETAILS_CLAIM]: { ip: claims.ip },
  });
  return { token, exp };
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

const drtVerificationKeys = new WeakMap<SigningKey, readonly VerificationKey[]>();

function drtVerificationKey(key: SigningKey): readonly VerificationKey[] {
  let keys = drtVerificationKeys.get(key);
  if (keys === undefined) drtVerificationKeys.set(key, (keys = [verificationKeyFrom(key.publicKey, key.kid, 'ES256')]));
  return keys;
}

/**
 * Verifies a DRT against the DRT key its `kid` names — `drtKeyFor` answers only for the DRT keys
 * the enclave accepts now (SPEC §3: epochs e-3 … e) — and the enclave's issuer name. Throws
 * `DipError` with `drt_invalid` or `drt_expired` only. The header must be exactly {alg: ES256,
 * typ: drt+jwt, kid}, so a DAT (typ dat+jwt, a DAT key) fails on both typ and key.
 */
export function verifyDrt(drtKeyFor: (kid: string) => SigningKey | null, iss: string, drt: string, now: number): DrtClaims {
  const verified = verifyCompactJws(drt, DRT_ALLOWED, (header) => {
    const key = typeof header.kid === 'string' ? drtKeyFor(header.kid) : null;
    return key === null ? [] : drtVerificationKey(key);
  });
  if (verified === null) throw new DipError('drt_invalid');
  const { header, payload: claims } = verified;
  if (header.typ !== DRT_TYP || Object.keys(header).length !== 3) throw new DipError('drt_invalid');
  const { sub, iat, exp, jti } = claims;
  const entitlement = claims[ENTITLEMENT_CLAIM];
  const details = claims[DETAILS_CLAIM];
  if (claims.iss !== iss || !isSubscriptionId(sub) || typeof jti !== 'string') throw new DipError('drt_invalid');
  if (!isFiniteNumber(iat) || !isFiniteNumber(exp)) throw new DipError('drt_invalid');
  if (!isPlainObject(entitlement) || !isVersion(entitlement.did)) throw new DipError('drt_invalid');
  if (!isPlainObject(details) || typeof details.ip !== 'string' || !isCanonicalIp(details.ip)) throw new DipError('drt_invalid');
  if (exp < now - CLOCK_SKEW_SECONDS) throw new DipError('drt_expired');
  return { sub, did: entitlement.did, ip: details.ip, exp };
}

/** A DAT that does not verify; `reason` is jose's error code or a rule name, never token content. */
export class InvalidDatError extends Error {
  override readonly name = 'InvalidDatError';
  constructor(readonly reason: string) {
    super('The dedicated IP access token is invalid.');
  }
}

/**
 * Verifies a DAT as a VPN server would: against the published JWKS, ES256 only, typ dat+jwt,
 * the enclave's issuer name. For tests and clients; the enclave itself never verifies DATs.
 */
export async function verifyDat(jwks: { keys: JWK[] }, iss: string, dat: string, now: number): Promise<{ ip: string; exp: number }> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(dat, createLocalJWKSet(jwks), {
      algorithms: ['ES256'],
      typ: DAT_TYP,
      issuer: iss,
      // Inclusive 60 s skew, as for SRTs and DRTs: jose expires at exp <= now - tolerance.
      clockTolerance: CLOCK_SKEW_SECONDS + 1,
      requiredClaims: ['iss', 'iat', 'exp', 'jti'],
      currentDate: new Date(now * 1000),
    }));
  } catch (error) {
    throw new InvalidDatError(isPlainObject(error) && typeof error.code === 'string' ? error.code : 'unknown');
  }
  if ('sub' in payload) throw new InvalidDatError('sub');
  const details = payload[DETAILS_CLAIM];
  if (!isPlainObject(details) || typeof details.ip !== 'string' || !isCanonicalIp(details.ip)) throw new InvalidDatError('details');
  return { ip: details.ip, exp: payload.exp! };
}

