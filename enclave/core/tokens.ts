// SRT verification, DAT and DRT issuance, DRT verification (SPEC §2).
//
// Two paths, chosen on purpose:
// - SRTs come from another service, in any of five algorithms and from a key set: they are
//   verified with jose (explicit allow-list, checked before the key lookup; jose's JWKS matching
//   binds a key to its `alg`), then our own claim rules on top.
// - DATs and DRTs are ours: always ES256, one known key, a fixed three-member header. They are
//   signed, and DRTs verified, with node:crypto directly. jose v6 runs every signature through
//   WebCrypto, whose per-call overhead roughly doubles the cost of an ES256 operation; the refresh
//   path does four of them. The DRT check below is stricter than a general JWS verifier: the
//   header must be exactly {alg: ES256, typ: drt+jwt, kid: <the DRT key>}, the signature exactly
//   64 bytes, base64url canonical. core-tokens tests check it against jose on the same tokens.

import { randomBytes, sign, verify } from 'node:crypto';
import { createLocalJWKSet, jwtVerify, type JWK, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { decodeBase64url } from '../../protocol/base64url.js';
import { DipError } from '../../protocol/errors.js';
import { isCanonicalIp } from '../../protocol/ip.js';
import {
  CLOCK_SKEW_SECONDS,
  DAT_LIFETIME_SECONDS,
  DRT_LIFETIME_SECONDS,
  MAX_SRT_LIFETIME_SECONDS,
  MAX_SUBSCRIPTION_ID_CHARS,
} from '../../protocol/limits.js';
import { SRT_ALGORITHMS, type SrtTrust } from './config.js';
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

/** SPEC §2: a subscription id is 1..256 characters (code points). */
export function isSubscriptionId(value: unknown): value is string {
  if (typeof value !== 'string' || value.length === 0) return false;
  let count = 0;
  for (const _ of value) if (++count > MAX_SUBSCRIPTION_ID_CHARS) return false;
  return true;
}

/** SPEC §2: the subscription version `did` is an integer ≥ 0. */
export function isVersion(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Builds the SRT check for one trust configuration; key import happens once, here and on first
 * use, never per request. The returned function throws `DipError` with `srt_invalid`,
 * `srt_expired` or `not_entitled`, and nothing else.
 */
export function createSrtVerifier(trust: SrtTrust): SrtVerifier {
  if (trust.keys.keys.length === 0) throw new TypeError('an SRT trust configuration needs at least one key');
  const keySet = createLocalJWKSet(trust.keys);
  const baseOptions: JWTVerifyOptions = {
    algorithms: [...SRT_ALGORITHMS],
    issuer: trust.issuer,
    clockTolerance: CLOCK_SKEW_SECONDS,
    requiredClaims: ['iss', 'sub', 'exp', 'iat'],
    ...(trust.audience === null ? {} : { audience: trust.audience }),
  };
  return async (srt, now) => {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(srt, keySet, { ...baseOptions, currentDate: new Date(now * 1000) }));
    } catch (error) {
      throw new DipError(isExpired(error) ? 'srt_expired' : 'srt_invalid');
    }
    const { sub, iat, exp } = payload as { sub: unknown; iat: number; exp: number };
    if (!isSubscriptionId(sub)) throw new DipError('srt_invalid');
    // jose only checks iat's type; an SRT from the future is as wrong as an expired one is old.
    if (iat > now + CLOCK_SKEW_SECONDS) throw new DipError('srt_invalid');
    // SPEC §2 lifetime cap: a refunded subscription must lose access within three days.
    if (exp - iat > MAX_SRT_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS) throw new DipError('srt_invalid');
    const entitlements = payload.entitlements;
    const entitlement = isPlainObject(entitlements) ? entitlements[ENTITLEMENT_CLAIM] : undefined;
    const did = isPlainObject(entitlement) ? entitlement.did : undefined;
    if (!isVersion(did)) throw new DipError('not_entitled');
    return { sub, did };
  };
}

function isExpired(error: unknown): boolean {
  return isPlainObject(error) && error.code === 'ERR_JWT_EXPIRED';
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
  return randomBytes(16).toString('base64url');
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

function decodeJsonSegment(segment: string): unknown {
  const bytes = decodeBase64url(segment);
  if (bytes === null) return undefined;
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    return undefined;
  }
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/**
 * Verifies a DRT against the enclave's DRT key and issuer name. Throws `DipError` with
 * `drt_invalid` or `drt_expired` only. A DAT (typ dat+jwt, DAT key) fails on both typ and key.
 */
export function verifyDrt(key: SigningKey, iss: string, drt: string, now: number): DrtClaims {
  const invalid = (): DipError => new DipError('drt_invalid');
  const parts = drt.split('.');
  if (parts.length !== 3) throw invalid();
  const [encodedHead, encodedPayload, encodedSignature] = parts as [string, string, string];
  const header = decodeJsonSegment(encodedHead);
  // The allow-list (ES256 only) comes first, before the key is even looked at.
  if (!isPlainObject(header) || header.alg !== 'ES256') throw invalid();
  const members = Object.keys(header);
  if (members.length !== 3 || header.typ !== DRT_TYP || header.kid !== key.kid) throw invalid();
  const signature = decodeBase64url(encodedSignature);
  const payloadBytes = decodeBase64url(encodedPayload);
  if (signature === null || signature.length !== 64 || payloadBytes === null) throw invalid();
  const input = Buffer.from(`${encodedHead}.${encodedPayload}`, 'latin1');
  if (!verify('sha256', input, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, signature)) throw invalid();

  const claims = decodeJsonSegment(encodedPayload);
  if (!isPlainObject(claims)) throw invalid();
  const { sub, iat, exp, jti } = claims;
  const entitlement = claims[ENTITLEMENT_CLAIM];
  const details = claims[DETAILS_CLAIM];
  if (claims.iss !== iss || !isSubscriptionId(sub) || typeof jti !== 'string') throw invalid();
  if (!isFiniteNumber(iat) || !isFiniteNumber(exp)) throw invalid();
  if (!isPlainObject(entitlement) || !isVersion(entitlement.did)) throw invalid();
  if (!isPlainObject(details) || typeof details.ip !== 'string' || !isCanonicalIp(details.ip)) throw invalid();
  if (exp <= now - CLOCK_SKEW_SECONDS) throw new DipError('drt_expired');
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
      clockTolerance: CLOCK_SKEW_SECONDS,
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

