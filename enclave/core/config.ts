// Which SRT issuer the enclave trusts (SPEC §2) and under which name it issues DATs and DRTs.
// Production reads enclave/issuers/{srt-issuer.jwks.json,config.json}, files built into the image
// and so measured into PCR2; development takes the public half of .dev/srt-issuer.json (SPEC §8).
// Everything here is pure validation: the caller reads the files.

import { createPublicKey, type JsonWebKey } from 'node:crypto';
import type { JWK } from 'jose';

/**
 * SRT signature algorithms the enclave accepts. Asymmetric only, each bound to one key type:
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
  keys: { keys: JWK[] };
}

export interface IssuerConfig {
  issuer: string;
  audience: string | null;
  /** The `iss` of every DAT and DRT this enclave issues. */
  datIssuer: string;
}

/** A broken configuration file: the enclave must refuse to start. Never carries key material. */
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

function parseJsonText(value: unknown, what: string): unknown {
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
export function parseTrustedJwk(value: unknown, index: number): JWK {
  const where = `trusted SRT issuer key #${index}`;
  if (!isPlainObject(value)) throw new ConfigError(`${where} is not a JSON object`);
  const { kty, kid, alg, use } = value;
  if (!nonEmptyString(kid)) throw new ConfigError(`${where} has no kid`);
  if (!isSrtAlgorithm(alg)) throw new ConfigError(`${where} has no alg, or one the enclave does not accept`);
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
  const jwk: JWK = { kty, kid, alg, use: 'sig' };
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

function parseTrustedKeys(value: unknown): JWK[] {
  if (!isPlainObject(value) || !Array.isArray(value.keys)) throw new ConfigError('the SRT issuer JWKS has no "keys" array');
  if (value.keys.length === 0) {
    throw new ConfigError('the SRT issuer JWKS is empty: the enclave would accept no subscription; build it with the production issuer keys');
  }
  const keys = value.keys.map((jwk, index) => parseTrustedJwk(jwk, index));
  const kids = new Set(keys.map((jwk) => jwk.kid));
  if (kids.size !== keys.length) throw new ConfigError('the SRT issuer JWKS repeats a kid');
  return keys;
}

/** Validates enclave/issuers/config.json (text or parsed): `{"issuer", "audience", "datIssuer"}`. */
export function parseIssuerConfig(configJson: unknown): IssuerConfig {
  const config = parseJsonText(configJson, 'the issuer configuration');
  if (!isPlainObject(config)) throw new ConfigError('the issuer configuration is not a JSON object');
  const { issuer, audience, datIssuer } = config;
  if (!nonEmptyString(issuer)) throw new ConfigError('the issuer configuration has no "issuer"');
  if (audience !== null && !nonEmptyString(audience)) throw new ConfigError('the issuer configuration "audience" must be text or null');
  if (!nonEmptyString(datIssuer)) throw new ConfigError('the issuer configuration has no "datIssuer"');
  return { issuer, audience, datIssuer };
}

/**
 * Production trust: the built-in issuer JWKS and configuration (each as JSON text or parsed).
 * Throws `ConfigError` — a startup failure — when anything is off, including an empty key set.
 */
export function parseSrtTrust(jwksJson: unknown, configJson: unknown): SrtTrust {
  const { issuer, audience } = parseIssuerConfig(configJson);
  const keys = parseTrustedKeys(parseJsonText(jwksJson, 'the SRT issuer JWKS'));
  return { issuer, audience, keys: { keys } };
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
  // A private JWK's key_ops name "sign"; its public half verifies.
  if (publicPart.key_ops !== undefined) publicPart.key_ops = ['verify'];
  return { issuer: iss, audience: aud, keys: { keys: [parseTrustedJwk(publicPart, 0)] } };
}
