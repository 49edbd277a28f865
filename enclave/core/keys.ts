// The enclave's two ES256 signing keys (SPEC §3): the DAT key, whose public half is published in
// the JWKS and bound into every attestation document, and the DRT key, which is never published
// and never signs a DAT. Keys live behind `KeyCustody` so that a later issue can persist them.

import { createHash, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';

export interface SigningKey {
  /** RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key. */
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The public key as a JWK with `kid`, `alg: ES256` and `use: sig`. */
  readonly publicJwk: JWK;
}

export interface KeyCustody {
  datKey(): SigningKey;
  drtKey(): SigningKey;
}

/** RFC 7638 §3.2: the thumbprint of an EC key hashes exactly `crv`, `kty`, `x`, `y`, in that order. */
export function ecJwkThumbprint(jwk: JWK): string {
  if (jwk.kty !== 'EC' || typeof jwk.crv !== 'string' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
    throw new TypeError('an EC public JWK is required');
  }
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return createHash('sha256').update(canonical, 'utf8').digest('base64url');
}

/** Wraps a P-256 private key as a signing key; custody implementations build keys through it. */
export function signingKeyFromPrivateKey(privateKey: KeyObject): SigningKey {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new TypeError('a P-256 private key is required');
  }
  const publicKey = createPublicKey(privateKey);
  const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
  const kid = ecJwkThumbprint({ kty, crv, x, y });
  const publicJwk: JWK = Object.freeze({ kty, crv, x, y, kid, alg: 'ES256', use: 'sig' });
  return Object.freeze({ kid, privateKey, publicKey, publicJwk });
}

function generateSigningKey(): SigningKey {
  return signingKeyFromPrivateKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
}

/**
 * Makes a fresh DAT key and DRT key in enclave memory. Until custody is built (SPEC §3), every
 * boot gets new keys, so DRTs issued before a restart stop verifying.
 */
export function createInMemoryKeyCustody(): KeyCustody {
  const dat = generateSigningKey();
  let drt = generateSigningKey();
  // Two independent P-256 keys collide with negligible probability; the rule is absolute anyway.
  while (drt.kid === dat.kid) drt = generateSigningKey();
  return Object.freeze({ datKey: () => dat, drtKey: () => drt });
}
