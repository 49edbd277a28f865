// Which SRT issuer the enclave trusts (SPEC §2) and under which name it issues DATs and DRTs.
// Production reads enclave/issuers/{srt-issuer.jwks.json,config.json}, files built into the image
// and so measured into PCR2; development takes the public half of .dev/srt-issuer.json (SPEC §8).
// The trust rules themselves live in protocol/srt.ts, shared with the token issuer (SPEC §10).

import { ConfigError, parseJsonText, srtTrustFromJwks, type SrtTrust } from '../../protocol/srt.js';

export { ConfigError, SRT_ALGORITHMS, parseTrustedJwk, srtTrustFromDevIssuer, type SrtAlgorithm, type SrtTrust } from '../../protocol/srt.js';

export interface IssuerConfig {
  issuer: string;
  audience: string | null;
  /** The `iss` of every DAT and DRT this enclave issues. */
  datIssuer: string;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
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
  return srtTrustFromJwks(jwksJson, issuer, audience);
}

