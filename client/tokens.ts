// What the client checks of the tokens it gets back (SPEC §2): the DAT is verified against the
// attested JWKS; the DRT can only be read, since no DRT key is ever published (the enclave alone
// verifies DRTs). Also reads the app's own SRT and mints development SRTs (SPEC §8).

import { SignJWT, calculateJwkThumbprint, createLocalJWKSet, decodeJwt, decodeProtectedHeader, importJWK, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { isCanonicalIp } from '../protocol/ip.js';
import { CLOCK_SKEW_SECONDS, DAT_LIFETIME_SECONDS, DRT_LIFETIME_SECONDS, MAX_SRT_LIFETIME_SECONDS } from '../protocol/limits.js';
import { isSubscriptionId } from '../protocol/text.js';
import { ClientError } from './errors.js';

export const DIP_ENTITLEMENT = 'xv.vpn.dip';
export const DIP_DETAILS = 'xv.vpn.dip.details';

export interface DatClaims {
  iss: string;
  iat: number;
  exp: number;
  jti: string;
  ip: string;
}

export interface DrtClaims extends DatClaims {
  sub: string;
  did: number;
}

export interface SrtClaims {
  sub: string;
  /** `entitlements["xv.vpn.dip"].did`, or null when the SRT carries no Dedicated IP entitlement. */
  did: number | null;
}

const JTI = /^[A-Za-z0-9_-]{22}$/; // 128 bits, base64url

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isDid(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function detailsIp(payload: JWTPayload): string | null {
  const details = payload[DIP_DETAILS];
  const ip = isRecord(details) ? details['ip'] : undefined;
  return typeof ip === 'string' && isCanonicalIp(ip) ? ip : null;
}

/** The claims a DAT and a DRT share, or null when one is missing or has the wrong shape. */
function commonClaims(payload: JWTPayload, lifetime: number): DatClaims | null {
  const { iss, iat, exp, jti } = payload;
  const ip = detailsIp(payload);
  if (typeof iss !== 'string' || iss.length === 0 || !isTime(iat) || !isTime(exp) || exp - iat !== lifetime) return null;
  if (typeof jti !== 'string' || !JTI.test(jti) || ip === null) return null;
  return { iss, iat, exp, jti, ip };
}

/**
 * Verifies a DAT against the JWKS bytes the attestation document binds: ES256 only, `typ`
 * dat+jwt, `kid` the RFC 7638 thumbprint of the key that verifies it, SPEC §2 claims, no `sub`,
 * `iat` not ahead of now and `exp` not past it (60 s skew each way), `iss` when the caller names
 * one, and the IP the caller expects (`ip_unexpected` when it differs, `dat_invalid` for anything else).
 */
export async function verifyDat(dat: string, jwks: Uint8Array, expected: { ip: string; now?: Date; iss?: string }): Promise<DatClaims> {
  let payload: JWTPayload;
  try {
    const set: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(jwks));
    if (!isRecord(set) || !Array.isArray(set['keys'])) throw new Error('not a JWKS');
    const keys = set['keys'] as JWK[];
    const result = await jwtVerify(dat, createLocalJWKSet({ keys }), {
      algorithms: ['ES256'],
      typ: 'dat+jwt',
      // jose expires a token when exp <= now - tolerance; SPEC §2's 60 s skew is inclusive, as the
      // enclave applies it to SRTs and DRTs: exp + 60 s still verifies, exp + 61 s does not.
      clockTolerance: CLOCK_SKEW_SECONDS + 1,
      ...(expected.now ? { currentDate: expected.now } : {}),
      ...(expected.iss === undefined ? {} : { issuer: expected.iss }),
    });
    const kid = result.protectedHeader.kid;
    const key = keys.find((k) => k.kid === kid);
    if (kid === undefined || key === undefined || (await calculateJwkThumbprint(key, 'sha256')) !== kid) {
      throw new Error('kid is not the thumbprint');
    }
    payload = result.payload;
  } catch {
    throw new ClientError('dat_invalid');
  }
  const claims = commonClaims(payload, DAT_LIFETIME_SECONDS);
  if (claims === null || payload.sub !== undefined || payload[DIP_ENTITLEMENT] !== undefined) throw new ClientError('dat_invalid');
  // jose checks iat only against a maximum age; SPEC §2 also refuses a token issued in the future.
  const now = Math.floor((expected.now ?? new Date()).getTime() / 1000);
  if (claims.iat > now + CLOCK_SKEW_SECONDS) throw new ClientError('dat_invalid');
  if (claims.ip !== expected.ip) throw new ClientError('ip_unexpected');
  return claims;
}

/**
 * Reads a DRT's header and claims and checks their shape (SPEC §2). Its signature cannot be
 * checked here: the DRT key is never published, only the enclave verifies DRTs.
 */
export function readDrt(drt: string): DrtClaims & { kid: string } {
  try {
    const header = decodeProtectedHeader(drt);
    const payload = decodeJwt(drt);
    const claims = commonClaims(payload, DRT_LIFETIME_SECONDS);
    const entitlement = payload[DIP_ENTITLEMENT];
    const did = isRecord(entitlement) ? entitlement['did'] : undefined;
    if (header.alg === 'ES256' && header.typ === 'drt+jwt' && typeof header.kid === 'string' && claims !== null && isSubscriptionId(payload.sub) && isDid(did)) {
      return { ...claims, sub: payload.sub, did, kid: header.kid };
    }
  } catch {
    // decodeJwt's own message names the malformed part; ours is fixed.
  }
  throw new ClientError('drt_unexpected');
}

/**
 * Whether text is shaped like a DRT: a compact JWS whose protected header has `typ` drt+jwt.
 * Only the shape: the signature cannot be checked outside the enclave (SPEC §2).
 */
export function isDrtShaped(text: string): boolean {
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(text)) return false;
  try {
    return decodeProtectedHeader(text).typ === 'drt+jwt';
  } catch {
    return false;
  }
}

/** Reads the app's own SRT without verifying it (only the enclave trusts the issuer's keys). */
export function readSrt(srt: string): SrtClaims {
  let payload: JWTPayload;
  try {
    payload = decodeJwt(srt);
  } catch {
    throw new ClientError('token_unreadable');
  }
  if (!isSubscriptionId(payload.sub)) throw new ClientError('token_unreadable');
  const entitlements = payload['entitlements'];
  const dip = isRecord(entitlements) ? entitlements[DIP_ENTITLEMENT] : undefined;
  const did = isRecord(dip) && isDid(dip['did']) ? dip['did'] : null;
  return { sub: payload.sub, did };
}

/** The development SRT issuer that the dev stack writes to `.dev/srt-issuer.json` (SPEC §8). */
export interface DevIssuer {
  iss: string;
  aud: string | null;
  jwk: JWK & { kid: string; alg: string };
}

export function parseDevIssuer(text: string): DevIssuer {
  const value: unknown = JSON.parse(text);
  if (!isRecord(value) || typeof value['iss'] !== 'string' || !(value['aud'] === null || typeof value['aud'] === 'string')) {
    throw new TypeError('srt-issuer.json must be {"iss": text, "aud": text | null, "jwk": private JWK}');
  }
  const jwk = value['jwk'];
  if (!isRecord(jwk) || typeof jwk['kid'] !== 'string' || typeof jwk['alg'] !== 'string' || typeof jwk['d'] !== 'string') {
    throw new TypeError('srt-issuer.json "jwk" must be a private JWK with kid and alg');
  }
  return { iss: value['iss'], aud: value['aud'], jwk: jwk as DevIssuer['jwk'] };
}

/** Mints an SRT with the development issuer (development and tests only; SPEC §8). */
export async function mintDevSrt(
  issuer: DevIssuer,
  claims: { sub: string; did: number | null; lifetimeSeconds?: number; now?: number },
): Promise<string> {
  const now = claims.now ?? Math.floor(Date.now() / 1000);
  const lifetime = claims.lifetimeSeconds ?? 24 * 3600;
  if (!isSubscriptionId(claims.sub)) throw new TypeError('sub must be 1..256 characters');
  if (claims.did !== null && !isDid(claims.did)) throw new TypeError('did must be an integer ≥ 0');
  if (!Number.isSafeInteger(lifetime) || lifetime < 1 || lifetime > MAX_SRT_LIFETIME_SECONDS) {
    throw new TypeError('an SRT lives at most 72 hours');
  }
  const key = await importJWK(issuer.jwk, issuer.jwk.alg);
  const jwt = new SignJWT({
    sub: claims.sub,
    ...(claims.did === null ? {} : { entitlements: { [DIP_ENTITLEMENT]: { did: claims.did } } }),
  })
    .setProtectedHeader({ alg: issuer.jwk.alg, kid: issuer.jwk.kid, typ: 'JWT' })
    .setIssuer(issuer.iss)
    .setIssuedAt(now)
    .setExpirationTime(now + lifetime);
  if (issuer.aud !== null) jwt.setAudience(issuer.aud);
  return jwt.sign(key);
}
