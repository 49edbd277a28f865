// DAT and DRT issuance, DRT verification (SPEC §2); SRTs are verified by protocol/srt.ts.
// Signatures are checked by protocol/jws.ts (strict, allow-list first, node:crypto) and made here with
// node:crypto directly: the header of our own tokens is fixed, and jose's WebCrypto path would
// more than double the cost of every ES256 operation on the refresh path. The claim rules follow
// jose's jwtVerify order, so that the error code of a token breaking several rules is stable;
// core-tokens tests run the same tokens through jose as a reference.

import { sign } from 'node:crypto';
import { createLocalJWKSet, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { pooledRandomBytes } from '../../protocol/random.js';
import { DipError } from '../../protocol/errors.js';
import { isCanonicalIp } from '../../protocol/ip.js';
import { CLOCK_SKEW_SECONDS, DAT_LIFETIME_SECONDS, DRT_LIFETIME_SECONDS } from '../../protocol/limits.js';
import { isSubscriptionId } from '../../protocol/text.js';
import { verificationKeyFrom, verifyCompactJws, type VerificationKey } from '../../protocol/jws.js';
import { ENTITLEMENT_CLAIM, isVersion } from '../../protocol/srt.js';
import type { SigningKey } from './keys.js';

export const DAT_TYP = 'dat+jwt';
export const DRT_TYP = 'drt+jwt';
export const DETAILS_CLAIM = 'xv.vpn.dip.details';
// SRT verification is protocol/srt.ts, shared with the token issuer (SPEC §10).
export { ENTITLEMENT_CLAIM, createSrtVerifier, isVersion, type SrtClaims, type SrtVerifier } from '../../protocol/srt.js';

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

const DRT_ALLOWED: ReadonlySet<string> = new Set(['ES256']);

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

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
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

