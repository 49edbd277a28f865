// Shared fixtures for the enclave/core tests: a fixed clock, SRT issuers of every accepted
// algorithm, and helpers that mint SRTs (good and hostile) and hand-made tokens.

import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { SignJWT, type JWK } from 'jose';
import type { SrtTrust } from '../core/config.js';
import type { SigningKey } from '../core/keys.js';

/** A fixed "now" (Unix seconds) so that every expiry test is deterministic. */
export const NOW = 1_800_000_000;
export const ISSUER = 'https://subscriptions.example';
export const AUDIENCE = 'dip-enclave';
export const DAT_ISSUER = 'https://dip.example';
export const SUB = 'subscription-7d1f0c';
export const DID = 3;

export type SrtAlg = 'ES256' | 'ES384' | 'RS256' | 'PS256' | 'EdDSA';

export interface TestIssuer {
  readonly alg: string;
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The public JWK with kid and alg, as a trusted key set holds it. */
  readonly publicJwk: JWK;
  /** The private JWK, as .dev/srt-issuer.json holds it. */
  readonly privateJwk: JWK;
}

const keyCache = new Map<string, { privateKey: KeyObject; publicKey: KeyObject }>();

function keyPairFor(alg: string): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (alg) {
    case 'ES256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'ES384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' });
    case 'ES512':
      return generateKeyPairSync('ec', { namedCurve: 'P-521' });
    case 'RS256':
    case 'PS256':
      return generateKeyPairSync('rsa', { modulusLength: 2048 });
    case 'EdDSA':
      return generateKeyPairSync('ed25519');
    default:
      throw new TypeError(`no test key for ${alg}`);
  }
}

let issuerCount = 0;

/** An SRT issuer key for `alg` (one cached key pair per alg unless `fresh`), with its own kid. */
export function makeIssuer(alg: string = 'ES256', options: { kid?: string; fresh?: boolean } = {}): TestIssuer {
  let pair = options.fresh ? undefined : keyCache.get(alg);
  if (pair === undefined) {
    pair = keyPairFor(alg);
    if (!options.fresh) keyCache.set(alg, pair);
  }
  const kid = options.kid ?? `issuer-key-${++issuerCount}`;
  const publicJwk: JWK = { ...pair.publicKey.export({ format: 'jwk' }), kid, alg };
  const privateJwk: JWK = { ...pair.privateKey.export({ format: 'jwk' }), kid, alg };
  return { alg, kid, privateKey: pair.privateKey, publicKey: pair.publicKey, publicJwk, privateJwk };
}

export function trustFor(issuers: readonly TestIssuer[], audience: string | null = AUDIENCE): SrtTrust {
  return { issuer: ISSUER, audience, keys: { keys: issuers.map((i) => i.publicJwk) } };
}

/** The claims of a good SRT at NOW; `overrides` replace claims, `undefined` removes one. */
export function srtClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const claims: Record<string, unknown> = {
    iss: ISSUER,
    sub: SUB,
    aud: AUDIENCE,
    iat: NOW - 600,
    exp: NOW + 3600,
    entitlements: { 'xv.vpn.dip': { did: DID } },
    ...overrides,
  };
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
  return claims;
}

/** Mints an SRT with jose; `header` adds to or replaces {alg, kid}. */
export async function mintSrt(
  issuer: TestIssuer,
  overrides: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT(srtClaims(overrides))
    .setProtectedHeader({ alg: issuer.alg, kid: issuer.kid, ...header } as { alg: string })
    .sign(issuer.privateKey);
}

export function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/** An unsigned JWS (`alg: none`, empty signature). */
export function unsignedToken(header: Record<string, unknown>, claims: Record<string, unknown>): string {
  return `${b64json(header)}.${b64json(claims)}.`;
}

/**
 * Signs arbitrary header and claims with an ES256 key, R||S encoded: for tokens our issuers would
 * never make (odd headers, bad claims) but that carry a genuine signature.
 */
export function signEs256(privateKey: KeyObject, header: Record<string, unknown>, claims: Record<string, unknown>, der = false): string {
  const input = `${b64json(header)}.${b64json(claims)}`;
  const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: der ? 'der' : 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

/** Claims of a DRT as the enclave issues it, for hand-made variants. */
export function drtClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const claims: Record<string, unknown> = {
    iss: DAT_ISSUER,
    sub: SUB,
    iat: NOW,
    exp: NOW + 5_184_000,
    jti: 'AAAAAAAAAAAAAAAAAAAAAA',
    'xv.vpn.dip': { did: DID },
    'xv.vpn.dip.details': { ip: '203.0.113.7' },
    ...overrides,
  };
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
  return claims;
}

export function drtHeader(key: SigningKey, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { alg: 'ES256', typ: 'drt+jwt', kid: key.kid, ...overrides };
}

/** Splits a compact JWS into its decoded header and claims. */
export function decodeToken(token: string): { header: Record<string, unknown>; claims: Record<string, unknown>; signature: Buffer } {
  const [h, p, s] = token.split('.') as [string, string, string];
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>,
    claims: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>,
    signature: Buffer.from(s, 'base64url'),
  };
}
