// The Nitro attestation document payload (SPEC §7 step 2) and the `user_data` it carries
// (SPEC §3), as pure codecs shared by the enclave's emulator and the client's verifier.
// Field names, types and sizes follow AWS's nitro-enclaves-nsm-api "Attestation document
// specification"; the encoder writes the fields in AWS's order so emulated documents look real.

import { CborDecodeError, decodeCbor, encodeCbor, isCborMap, type CborMap, type CborValue } from './cbor.js';

/** Every check of SPEC §7, named so that a caller (and a test) can tell which one failed. */
export const ATTESTATION_ERROR_MESSAGES = Object.freeze({
  cose_malformed: 'The attestation document is not a well-formed COSE_Sign1.',
  protected_header: 'The attestation document does not use ES384 as its only protected header.',
  payload_malformed: 'The attestation document payload is malformed.',
  field_type: 'An attestation document field has the wrong type or size.',
  chain_root_mismatch: 'The attestation certificate chain does not start at the pinned root.',
  chain_invalid: 'The attestation certificate chain is invalid.',
  certificate_expired: 'A certificate in the attestation chain is not valid at the verification time.',
  signature_invalid: 'The attestation document signature is invalid.',
  nonce_mismatch: 'The attestation document does not carry the expected nonce.',
  stale: 'The attestation document is too old.',
  timestamp_future: 'The attestation document is dated in the future.',
  pcr_mismatch: 'The attestation document PCRs differ from the expected measurements.',
  debug_mode: 'The attestation document comes from an enclave in debug mode.',
  user_data_malformed: 'The attestation document user_data is malformed.',
} as const);

export type AttestationErrorCode = keyof typeof ATTESTATION_ERROR_MESSAGES;

/** A failed attestation check. The message is fixed per code and never contains input. */
export class AttestationError extends Error {
  override readonly name = 'AttestationError';
  readonly code: AttestationErrorCode;

  constructor(code: AttestationErrorCode) {
    super(ATTESTATION_ERROR_MESSAGES[code]);
    this.code = code;
  }
}

/**
 * The payload of an attestation document.
 *
 *   { module_id: tstr, digest: "SHA384", timestamp: uint (ms), pcrs: { uint => bstr },
 *     certificate: bstr, cabundle: [* bstr], public_key: bstr / null,
 *     user_data: bstr / null, nonce: bstr / null }
 */
export interface AttestationPayload {
  moduleId: string;
  digest: 'SHA384';
  timestamp: number;
  pcrs: Map<number, Uint8Array>;
  certificate: Uint8Array;
  cabundle: Uint8Array[];
  publicKey: Uint8Array | null;
  userData: Uint8Array | null;
  nonce: Uint8Array | null;
}

// AWS's bounds: https://github.com/aws/aws-nitro-enclaves-nsm-api/blob/main/docs/attestation_process.md
const MAX_PCRS = 32;
const PCR_LENGTHS = new Set([32, 48, 64]);
const MAX_CERT_BYTES = 1024;
const MAX_FIELD_BYTES = 1024;
const MAX_NONCE_FIELD_BYTES = 512;

/** AWS's key order, which the emulator reproduces. */
const PAYLOAD_KEYS = [
  'module_id',
  'digest',
  'timestamp',
  'pcrs',
  'certificate',
  'cabundle',
  'public_key',
  'user_data',
  'nonce',
] as const;

function bytesIn(value: unknown, min: number, max: number): value is Uint8Array {
  return value instanceof Uint8Array && value.length >= min && value.length <= max;
}

function isPcrIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < MAX_PCRS;
}

function isTimestamp(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

/** Why a payload field is invalid, or null; shared by the encoder (misuse) and decoder (input). */
function payloadProblem(p: AttestationPayload): string | null {
  if (typeof p.moduleId !== 'string' || p.moduleId.length === 0) return 'module_id';
  if (p.digest !== 'SHA384') return 'digest';
  if (!isTimestamp(p.timestamp)) return 'timestamp';
  if (!(p.pcrs instanceof Map) || p.pcrs.size < 1 || p.pcrs.size > MAX_PCRS) return 'pcrs';
  for (const [index, value] of p.pcrs) {
    if (!isPcrIndex(index) || !(value instanceof Uint8Array) || !PCR_LENGTHS.has(value.length)) return 'pcrs';
  }
  if (!bytesIn(p.certificate, 1, MAX_CERT_BYTES)) return 'certificate';
  if (!Array.isArray(p.cabundle) || p.cabundle.length === 0) return 'cabundle';
  if (!p.cabundle.every((cert) => bytesIn(cert, 1, MAX_CERT_BYTES))) return 'cabundle';
  if (p.publicKey !== null && !bytesIn(p.publicKey, 1, MAX_FIELD_BYTES)) return 'public_key';
  if (p.userData !== null && !bytesIn(p.userData, 1, MAX_FIELD_BYTES)) return 'user_data';
  if (p.nonce !== null && !bytesIn(p.nonce, 1, MAX_NONCE_FIELD_BYTES)) return 'nonce';
  return null;
}

/** Writes the payload map in AWS's key order, with `null` for absent optional fields. */
export function encodeAttestationPayload(payload: AttestationPayload): Uint8Array {
  const problem = payloadProblem(payload);
  if (problem !== null) throw new TypeError(`attestation payload field ${problem} is invalid`);
  const pcrs = new Map([...payload.pcrs].sort(([a], [b]) => a - b));
  return encodeCbor(
    new Map<string, unknown>([
      ['module_id', payload.moduleId],
      ['digest', payload.digest],
      ['timestamp', payload.timestamp],
      ['pcrs', pcrs],
      ['certificate', payload.certificate],
      ['cabundle', payload.cabundle],
      ['public_key', payload.publicKey],
      ['user_data', payload.userData],
      ['nonce', payload.nonce],
    ]),
  );
}

function optionalBytes(map: CborMap, key: string): Uint8Array | null {
  const value = map.get(key);
  if (value === undefined || value === null) return null;
  if (!(value instanceof Uint8Array)) throw new AttestationError('field_type');
  return value;
}

function decodePcrs(value: CborValue): Map<number, Uint8Array> {
  if (!isCborMap(value)) throw new AttestationError('field_type');
  const pcrs = new Map<number, Uint8Array>();
  for (const [index, pcr] of value) {
    if (!isPcrIndex(index) || !(pcr instanceof Uint8Array)) throw new AttestationError('field_type');
    pcrs.set(index, pcr);
  }
  return pcrs;
}

/**
 * Reads and checks an attestation payload. Keys may come in any order and with any well-formed
 * CBOR lengths (AWS writes an indefinite-length map); unknown text keys are ignored, as AWS's
 * own parser does, so that a field AWS adds later does not break every client.
 * Throws `AttestationError` with `payload_malformed` or `field_type`.
 */
export function decodeAttestationPayload(bytes: Uint8Array): AttestationPayload {
  let map: CborValue;
  try {
    map = decodeCbor(bytes);
  } catch (error) {
    if (error instanceof CborDecodeError) throw new AttestationError('payload_malformed');
    throw error;
  }
  if (!isCborMap(map)) throw new AttestationError('payload_malformed');
  for (const key of map.keys()) if (typeof key !== 'string') throw new AttestationError('payload_malformed');
  for (const key of PAYLOAD_KEYS.slice(0, 6)) if (!map.has(key)) throw new AttestationError('payload_malformed');

  const moduleId = map.get('module_id');
  const digest = map.get('digest');
  const timestamp = map.get('timestamp');
  const cabundle = map.get('cabundle');
  if (typeof moduleId !== 'string' || digest !== 'SHA384' || !isTimestamp(timestamp)) {
    throw new AttestationError('field_type');
  }
  if (!Array.isArray(cabundle)) throw new AttestationError('field_type');
  const certificate = map.get('certificate');
  if (!(certificate instanceof Uint8Array)) throw new AttestationError('field_type');
  const payload: AttestationPayload = {
    moduleId,
    digest,
    timestamp,
    pcrs: decodePcrs(map.get('pcrs')!),
    certificate,
    cabundle: cabundle.map((cert) => {
      if (!(cert instanceof Uint8Array)) throw new AttestationError('field_type');
      return cert;
    }),
    publicKey: optionalBytes(map, 'public_key'),
    userData: optionalBytes(map, 'user_data'),
    nonce: optionalBytes(map, 'nonce'),
  };
  if (payloadProblem(payload) !== null) throw new AttestationError('field_type');
  return payload;
}

/** SPEC §3: `user_data` = CBOR `{"v": 1, "jwks_sha256": bstr(32), "m_commit": bstr(32)}`. */
export interface UserData {
  v: 1;
  jwksSha256: Uint8Array;
  mCommit: Uint8Array;
}

const USER_DATA_VERSION = 1;
const SHA256_BYTES = 32;

function requireDigest(value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== SHA256_BYTES) throw new TypeError(`${what} must be 32 bytes`);
}

export function encodeUserData(userData: { jwksSha256: Uint8Array; mCommit: Uint8Array }): Uint8Array {
  requireDigest(userData?.jwksSha256, 'jwksSha256');
  requireDigest(userData.mCommit, 'mCommit');
  return encodeCbor(
    new Map<string, unknown>([
      ['v', USER_DATA_VERSION],
      ['jwks_sha256', userData.jwksSha256],
      ['m_commit', userData.mCommit],
    ]),
  );
}

/** Reads SPEC §3's `user_data`: exactly `v` (= 1), `jwks_sha256` and `m_commit` (32 bytes each). */
export function decodeUserData(bytes: Uint8Array): UserData {
  let map: CborValue;
  try {
    map = decodeCbor(bytes);
  } catch (error) {
    if (error instanceof CborDecodeError) throw new AttestationError('user_data_malformed');
    throw error;
  }
  if (!isCborMap(map) || map.size !== 3 || map.get('v') !== USER_DATA_VERSION) {
    throw new AttestationError('user_data_malformed');
  }
  const jwksSha256 = map.get('jwks_sha256');
  const mCommit = map.get('m_commit');
  if (!bytesIn(jwksSha256, SHA256_BYTES, SHA256_BYTES) || !bytesIn(mCommit, SHA256_BYTES, SHA256_BYTES)) {
    throw new AttestationError('user_data_malformed');
  }
  return { v: USER_DATA_VERSION, jwksSha256, mCommit };
}

/** SPEC §5 `key_request`: the `user_data` of a KMS recipient document, CBOR `{"v": 1, "purpose": "kms"}`. */
export function encodeKmsUserData(): Uint8Array {
  return encodeCbor(new Map<string, unknown>([['v', USER_DATA_VERSION], ['purpose', 'kms']]));
}
