// Strict JWS compact verification (RFC 7515 §5.2) shared by the enclave and the token issuer (SPEC §2, §10), on node:crypto's
// synchronous one-shot verify. jose v6 routes every signature through WebCrypto, which costs more
// than twice the ECDSA verify itself per call; a refresh verifies two tokens (SRT and DRT).
// Stricter than a general verifier: an explicit alg allow-list checked before any key lookup, keys
// bound to one alg each, canonical base64url only, exact signature sizes, no `crit` extensions.
// core-jws tests compare it with jose on the same tokens.

import { constants, createPublicKey, verify, type JsonWebKey, type KeyObject } from 'node:crypto';
import { decodeBase64url } from './base64url.js';

export type JwsAlgorithm = 'ES256' | 'ES384' | 'RS256' | 'PS256' | 'EdDSA';

/** A public key that verifies exactly one algorithm. */
export interface VerificationKey {
  readonly kid: string;
  readonly alg: JwsAlgorithm;
  readonly key: KeyObject;
}

export interface VerifiedJws {
  readonly header: Record<string, unknown>;
  readonly payload: Record<string, unknown>;
}

interface AlgorithmSpec {
  readonly keyType: string;
  readonly curve?: string;
  /** The signature size in bytes; RSA's is the modulus size, checked per key. */
  readonly signatureBytes?: number;
  readonly check: (data: Buffer, key: KeyObject, signature: Uint8Array) => boolean;
}

const SPECS: Readonly<Record<JwsAlgorithm, AlgorithmSpec>> = {
  // RFC 7518 §3.4: ECDSA signatures are R || S, each the size of the curve order.
  ES256: {
    keyType: 'ec',
    curve: 'prime256v1',
    signatureBytes: 64,
    check: (data, key, sig) => verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig),
  },
  ES384: {
    keyType: 'ec',
    curve: 'secp384r1',
    signatureBytes: 96,
    check: (data, key, sig) => verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, sig),
  },
  // RFC 7518 §3.3 and §3.5 (PSS with MGF1-SHA256 and a salt as long as the hash).
  RS256: {
    keyType: 'rsa',
    check: (data, key, sig) => verify('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING }, sig),
  },
  PS256: {
    keyType: 'rsa',
    check: (data, key, sig) => verify('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig),
  },
  // RFC 8037 §3.1: EdDSA over Ed25519, 64-byte signatures.
  EdDSA: { keyType: 'ed25519', signatureBytes: 64, check: (data, key, sig) => verify(null, data, key, sig) },
};

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Imports a public JWK for exactly `alg`; a key that does not fit the algorithm is our misuse. */
export function importVerificationKey(jwk: JsonWebKey, kid: string, alg: JwsAlgorithm): VerificationKey {
  return verificationKeyFrom(createPublicKey({ key: jwk, format: 'jwk' }), kid, alg);
}

export function verificationKeyFrom(key: KeyObject, kid: string, alg: JwsAlgorithm): VerificationKey {
  const spec = SPECS[alg];
  if (spec === undefined || key.type !== 'public' || key.asymmetricKeyType !== spec.keyType || (spec.curve !== undefined && key.asymmetricKeyDetails?.namedCurve !== spec.curve)) {
    throw new TypeError(`the key does not fit ${alg}`);
  }
  return Object.freeze({ kid, alg, key });
}

function decodeJson(segment: string): Record<string, unknown> | null {
  const bytes = decodeBase64url(segment);
  if (bytes === null) return null;
  try {
    const value: unknown = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
    return isPlainObject(value) ? value : null;
  } catch {
    return null;
  }
}

/**
 * Verifies a compact JWS. `allowed` is checked first; then `candidates(header)` names the keys to
 * try (only those whose alg equals the token's are used). Returns null on any failure, so that
 * callers map every failure to one fixed error code.
 */
export function verifyCompactJws(
  token: string,
  allowed: ReadonlySet<string>,
  candidates: (header: Record<string, unknown>) => readonly VerificationKey[],
): VerifiedJws | null {
  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  if (first < 0 || second < 0 || token.indexOf('.', second + 1) >= 0) return null;
  const header = decodeJson(token.slice(0, first));
  // The allow-list comes before anything else, the key lookup included.
  if (header === null || typeof header.alg !== 'string' || !allowed.has(header.alg)) return null;
  const alg = header.alg as JwsAlgorithm;
  const spec = SPECS[alg];
  // RFC 7515 §4.1.11: extensions we do not understand must be refused; we understand none.
  if (spec === undefined || 'crit' in header || 'b64' in header) return null;
  const signature = decodeBase64url(token.slice(second + 1));
  if (signature === null || signature.length === 0) return null;
  if (spec.signatureBytes !== undefined && signature.length !== spec.signatureBytes) return null;
  const data = Buffer.from(token.slice(0, second), 'latin1');
  let verified = false;
  for (const candidate of candidates(header)) {
    if (candidate.alg !== alg) continue;
    if (spec.keyType === 'rsa' && signature.length !== (candidate.key.asymmetricKeyDetails?.modulusLength ?? 0) / 8) continue;
    if (spec.check(data, candidate.key, signature)) {
      verified = true;
      break;
    }
  }
  if (!verified) return null;
  const payload = decodeJson(token.slice(first + 1, second));
  return payload === null ? null : { header, payload };
}
