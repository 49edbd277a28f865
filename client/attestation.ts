// Verifies a Nitro attestation document (SPEC §7), real (AWS Nitro Enclaves Root-G1) or from the
// development emulator (SPEC §8), following AWS's "Verifying the root of trust" procedure. Checks
// run in SPEC §7's order and the first one that fails names the AttestationError code.

import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { AttestationError, decodeAttestationPayload, type AttestationPayload } from '../protocol/attestation-document.js';
import { decodeCoseSign1, sigStructure } from '../protocol/cose.js';
import { CLOCK_SKEW_SECONDS, DEFAULT_ATTESTATION_MAX_AGE_MS } from '../protocol/limits.js';
import {
  CertificateParseError,
  KEY_USAGE_DIGITAL_SIGNATURE,
  KEY_USAGE_KEY_CERT_SIGN,
  parseCertificate,
  pemToDer,
  type Certificate,
} from './x509.js';

export { AttestationError } from '../protocol/attestation-document.js';

/** SHA-256 of the DER of AWS Nitro Enclaves Root-G1, as AWS publishes it. */
export const AWS_NITRO_ROOT_G1_SHA256 = '641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b';

export interface VerifyAttestationOptions {
  /** The pinned root: DER bytes or PEM text. */
  root: Uint8Array | string;
  /** Hex SHA-256 of the root's DER; when given, the document's root must also hash to it. */
  rootSha256?: string;
  /** Unix ms at which certificates must be valid and the document fresh; default Date.now(). */
  at?: number;
  /** The nonce the client sent; the document must carry exactly it. */
  nonce?: Uint8Array;
  /** Oldest acceptable document age; default 5 minutes. */
  maxAgeMs?: number;
  /** Measurements from pcr-manifest.json. */
  expectedPcrs?: { pcr0?: Uint8Array; pcr1?: Uint8Array; pcr2?: Uint8Array };
  /** Accept a debug-mode enclave (PCR0..2 all zero). Never in production. */
  allowDebug?: boolean;
}

/** pcr_mismatch with the index of the first PCR that differs (same code and fixed message). */
export class PcrMismatchError extends AttestationError {
  constructor(readonly pcrIndex: 0 | 1 | 2) {
    super('pcr_mismatch');
  }
}

/** A document's payload, returned only once every check of SPEC §7 has passed. */
export type VerifiedAttestation = AttestationPayload;

/** How far ahead of `at` a document's timestamp may be (the enclave's clock may lead ours). */
const FUTURE_SKEW_MS = CLOCK_SKEW_SECONDS * 1000;

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function rootDer(root: Uint8Array | string): Uint8Array {
  if (typeof root === 'string') return pemToDer(root);
  if (root instanceof Uint8Array && root.length > 0) return root;
  throw new TypeError('root must be DER bytes or PEM text');
}

function checkOptions(options: VerifyAttestationOptions): void {
  if (options.at !== undefined && !Number.isFinite(options.at)) throw new TypeError('at must be Unix milliseconds');
  if (options.maxAgeMs !== undefined && !(Number.isFinite(options.maxAgeMs) && options.maxAgeMs >= 0)) {
    throw new TypeError('maxAgeMs must be a non-negative number');
  }
  if (options.nonce !== undefined && !(options.nonce instanceof Uint8Array)) throw new TypeError('nonce must be bytes');
  if (options.rootSha256 !== undefined && !/^[0-9a-f]{64}$/i.test(options.rootSha256)) {
    throw new TypeError('rootSha256 must be 64 hex digits');
  }
}

function parseChainCertificate(der: Uint8Array): Certificate {
  try {
    return parseCertificate(der);
  } catch (error) {
    if (error instanceof CertificateParseError) throw new AttestationError('chain_invalid');
    throw error;
  }
}

/** A P-384 public key from a SubjectPublicKeyInfo, or null when it is anything else. */
function p384Key(spki: Uint8Array): KeyObject | null {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch {
    return null;
  }
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? key : null;
}

function verifiesWith(key: KeyObject, data: Uint8Array, signature: Uint8Array, encoding: 'der' | 'ieee-p1363'): boolean {
  try {
    return verify('sha384', data, { key, dsaEncoding: encoding }, signature);
  } catch {
    // OpenSSL throws on signatures it cannot even parse; that is a failed check, not a crash.
    return false;
  }
}

/**
 * SPEC §7 step 3: the chain [root = pinned, intermediates…, leaf]. Each certificate is issued by
 * the previous one (name and ECDSA-SHA384 signature with a P-384 key); every issuer is a CA with
 * keyCertSign whose pathLen admits the CAs below it; the leaf has digitalSignature; every
 * certificate is valid at each of `times` (RFC 5280 §4.1.2.5: notBefore and notAfter included).
 * Returns the leaf key.
 */
function verifyChain(certs: readonly Certificate[], times: readonly number[]): KeyObject {
  const issuerCount = certs.length - 1;
  const keys: KeyObject[] = [];
  for (let i = 0; i < certs.length; i++) {
    const cert = certs[i]!;
    const key = p384Key(cert.subjectPublicKeyInfo);
    if (key === null || !cert.ecdsaSha384) throw new AttestationError('chain_invalid');
    keys.push(key);
    if (i < issuerCount) {
      const bc = cert.basicConstraints;
      // RFC 5280 §4.2.1.9: pathLen counts the intermediate CAs that may follow this one.
      const casBelow = issuerCount - 1 - i;
      if (bc === null || !bc.ca || (bc.pathLength !== null && bc.pathLength < casBelow)) {
        throw new AttestationError('chain_invalid');
      }
      if (cert.keyUsage === null || (cert.keyUsage & KEY_USAGE_KEY_CERT_SIGN) === 0) throw new AttestationError('chain_invalid');
    } else if (cert.keyUsage === null || (cert.keyUsage & KEY_USAGE_DIGITAL_SIGNATURE) === 0) {
      throw new AttestationError('chain_invalid');
    }
    if (i > 0) {
      // Names must be byte-equal, as they are in AWS's chains: stricter than RFC 5280 §7.1 matching.
      const issuer = certs[i - 1]!;
      if (!bytesEqual(cert.issuer, issuer.subject) || !verifiesWith(keys[i - 1]!, cert.tbs, cert.signature, 'der')) {
        throw new AttestationError('chain_invalid');
      }
    }
  }
  for (const cert of certs) {
    for (const at of times) {
      if (at < cert.notBefore || at > cert.notAfter) throw new AttestationError('certificate_expired');
    }
  }
  return keys[issuerCount]!;
}

function isAllZero(bytes: Uint8Array): boolean {
  return bytes.every((byte) => byte === 0);
}

/**
 * Verifies an attestation document and returns its payload. Throws `AttestationError` whose
 * `code` names the first failed check; throws `TypeError` for bad options.
 */
export function verifyAttestation(document: Uint8Array, options: VerifyAttestationOptions): VerifiedAttestation {
  if (!(document instanceof Uint8Array)) throw new TypeError('document must be bytes');
  checkOptions(options);
  const pinnedRoot = rootDer(options.root);
  const at = options.at ?? Date.now();

  // Steps 1 and 2: structure and field types.
  const cose = decodeCoseSign1(document);
  const payload = decodeAttestationPayload(cose.payload);

  // Step 3: the chain starts at the pinned root, byte for byte.
  const bundleRoot = payload.cabundle[0]!;
  if (!bytesEqual(bundleRoot, pinnedRoot)) throw new AttestationError('chain_root_mismatch');
  if (
    options.rootSha256 !== undefined &&
    createHash('sha256').update(bundleRoot).digest('hex') !== options.rootSha256.toLowerCase()
  ) {
    throw new AttestationError('chain_root_mismatch');
  }
  const certs = [...payload.cabundle, payload.certificate].map(parseChainCertificate);
  // Valid now, and valid when the document says it was made: a leaf that had expired (or was
  // not yet valid) at the document's timestamp could not have signed it honestly.
  const leafKey = verifyChain(certs, [at, payload.timestamp]);

  // Step 4: ES384 over the Sig_structure, r‖s. High-S values are valid ECDSA and occur in real
  // documents; OpenSSL accepts them, as it must here.
  if (!verifiesWith(leafKey, sigStructure(cose.protected, cose.payload), cose.signature, 'ieee-p1363')) {
    throw new AttestationError('signature_invalid');
  }

  // Step 5: the nonce, then freshness.
  if (options.nonce !== undefined && (payload.nonce === null || !bytesEqual(payload.nonce, options.nonce))) {
    throw new AttestationError('nonce_mismatch');
  }
  if (at - payload.timestamp > (options.maxAgeMs ?? DEFAULT_ATTESTATION_MAX_AGE_MS)) throw new AttestationError('stale');
  if (payload.timestamp - at > FUTURE_SKEW_MS) throw new AttestationError('timestamp_future');

  // Step 6: measurements, then debug mode.
  const pcr0 = payload.pcrs.get(0);
  const pcr1 = payload.pcrs.get(1);
  const pcr2 = payload.pcrs.get(2);
  if (pcr0 === undefined || pcr1 === undefined || pcr2 === undefined) throw new AttestationError('pcr_mismatch');
  const expected = options.expectedPcrs ?? {};
  for (const [index, want, got] of [
    [0, expected.pcr0, pcr0],
    [1, expected.pcr1, pcr1],
    [2, expected.pcr2, pcr2],
  ] as const) {
    if (want !== undefined && !bytesEqual(want, got)) throw new PcrMismatchError(index);
  }
  if (isAllZero(pcr0) && isAllZero(pcr1) && isAllZero(pcr2) && options.allowDebug !== true) {
    throw new AttestationError('debug_mode');
  }

  return {
    moduleId: payload.moduleId,
    timestamp: payload.timestamp,
    digest: payload.digest,
    pcrs: payload.pcrs,
    certificate: payload.certificate,
    cabundle: payload.cabundle,
    publicKey: payload.publicKey,
    userData: payload.userData,
    nonce: payload.nonce,
  };
}
