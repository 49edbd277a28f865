// COSE_Sign1 (RFC 9052 §4.2) exactly as Nitro attestation documents use it (SPEC §7 step 1):
// an untagged array [protected bstr, unprotected map, payload bstr, signature bstr], protected
// header {1: -35} (alg ES384) and a raw r‖s signature. Pure codec; signing and verifying live
// with the enclave's emulator and the client's verifier.

import { CborDecodeError, Tagged, decodeCbor, encodeCbor, isCborMap, type CborMap, type CborValue } from './cbor.js';
import { AttestationError } from './attestation-document.js';

/** RFC 9053 §2.1: ES384 is COSE algorithm -35; label 1 is `alg`. */
export const COSE_ALG_ES384 = -35;
const COSE_HEADER_ALG = 1;
/** RFC 9052 §4.2: the CBOR tag of COSE_Sign1. */
export const COSE_SIGN1_TAG = 18;
/** RFC 9053 §2.1: an ES384 signature is r‖s, 48 bytes each. */
export const ES384_SIGNATURE_BYTES = 96;

export interface CoseSign1 {
  /** The serialized protected header, exactly as signed. */
  protected: Uint8Array;
  unprotected: CborMap;
  payload: Uint8Array;
  signature: Uint8Array;
}

/** The protected header bytes of every document this project writes: CBOR {1: -35} = a1 01 38 22. */
export function es384ProtectedHeader(): Uint8Array {
  return encodeCbor(new Map([[COSE_HEADER_ALG, COSE_ALG_ES384]]));
}

/** RFC 9052 §4.4: Sig_structure = ["Signature1", body_protected, external_aad = h'', payload]. */
export function sigStructure(protectedHeader: Uint8Array, payload: Uint8Array): Uint8Array {
  return encodeCbor(['Signature1', protectedHeader, new Uint8Array(0), payload]);
}

/** Writes an untagged COSE_Sign1 with an empty unprotected map, as AWS does. */
export function encodeCoseSign1(message: { protected: Uint8Array; payload: Uint8Array; signature: Uint8Array }): Uint8Array {
  if (!(message.protected instanceof Uint8Array) || !(message.payload instanceof Uint8Array)) {
    throw new TypeError('COSE_Sign1 protected header and payload must be byte strings');
  }
  if (!(message.signature instanceof Uint8Array) || message.signature.length !== ES384_SIGNATURE_BYTES) {
    throw new TypeError('an ES384 signature is 96 bytes');
  }
  return encodeCbor([message.protected, new Map(), message.payload, message.signature]);
}

function isEs384Only(protectedHeader: Uint8Array): boolean {
  let header: CborValue;
  try {
    header = decodeCbor(protectedHeader);
  } catch (error) {
    if (error instanceof CborDecodeError) return false;
    throw error;
  }
  return isCborMap(header) && header.size === 1 && header.get(COSE_HEADER_ALG) === COSE_ALG_ES384;
}

/**
 * Reads a COSE_Sign1, tagged (18) or not. The protected header must decode to exactly
 * {1: -35}; anything else is `protected_header`. Structural faults are `cose_malformed`.
 */
export function decodeCoseSign1(bytes: Uint8Array): CoseSign1 {
  let item: CborValue;
  try {
    item = decodeCbor(bytes);
  } catch (error) {
    if (error instanceof CborDecodeError) throw new AttestationError('cose_malformed');
    throw error;
  }
  if (item instanceof Tagged) {
    if (item.tag !== COSE_SIGN1_TAG) throw new AttestationError('cose_malformed');
    item = item.value;
  }
  if (!Array.isArray(item) || item.length !== 4) throw new AttestationError('cose_malformed');
  const [protectedHeader, unprotected, payload, signature] = item as [CborValue, CborValue, CborValue, CborValue];
  if (
    !(protectedHeader instanceof Uint8Array) ||
    !isCborMap(unprotected) ||
    !(payload instanceof Uint8Array) ||
    !(signature instanceof Uint8Array) ||
    signature.length !== ES384_SIGNATURE_BYTES
  ) {
    throw new AttestationError('cose_malformed');
  }
  // An `alg` outside the signed header could only be there to confuse a verifier.
  if (!isEs384Only(protectedHeader) || unprotected.has(COSE_HEADER_ALG)) throw new AttestationError('protected_header');
  return { protected: protectedHeader, unprotected, payload, signature };
}
