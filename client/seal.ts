// The app's side of SPEC §4: seals an assign or refresh payload to the attested boot key and
// opens the enclave's response, using protocol/hpke.ts. The CBOR payloads are exactly
// assign {"srt"}, refresh {"srt", "drt"}; the response is exactly {"dat", "drt"}. Both directions
// are padded to fixed sizes, so their lengths say nothing about the subscription.

import { decodePaddedCbor, encodePaddedCbor, encodeCbor, isCborMap } from '../protocol/cbor.js';
import { openResponse, sealRequest, type ResponseContext, type SealedOp } from '../protocol/hpke.js';
import { REQUEST_PLAINTEXT_BYTES, RESPONSE_PLAINTEXT_BYTES } from '../protocol/limits.js';
import { ClientError } from './errors.js';

export type DipRequest = { op: 'assign'; srt: string } | { op: 'refresh'; srt: string; drt: string };

export interface SealedRequest {
  op: SealedOp;
  encapsulatedRequest: Uint8Array;
  /** Kept by the app until the response arrives; it alone opens the response. */
  context: ResponseContext;
}

export interface OpenedResponse {
  dat: string;
  drt: string;
}

function nonEmpty(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new TypeError(`${what} must be a non-empty string`);
  return value;
}

/** Seals a request to the boot key taken from a verified attestation document (SPEC §7 step 7). */
export function seal(bootPublicKeySpki: Uint8Array, request: DipRequest): SealedRequest {
  const payload =
    request.op === 'assign'
      ? { srt: nonEmpty(request.srt, 'srt') }
      : request.op === 'refresh'
        ? { srt: nonEmpty(request.srt, 'srt'), drt: nonEmpty(request.drt, 'drt') }
        : null;
  if (payload === null) throw new TypeError('op must be "assign" or "refresh"');
  if (encodeCbor(payload).length > REQUEST_PLAINTEXT_BYTES) throw new ClientError('request_too_large');
  const plaintext = encodePaddedCbor(payload, REQUEST_PLAINTEXT_BYTES);
  const { encapsulatedRequest, context } = sealRequest(bootPublicKeySpki, request.op, plaintext);
  return { op: request.op, encapsulatedRequest, context };
}

/** Opens the enclave's response; anything that does not open or is not {"dat","drt"} is `response_invalid`. */
export function open(context: ResponseContext, encapsulatedResponse: Uint8Array): OpenedResponse {
  let value;
  try {
    value = decodePaddedCbor(openResponse(context, encapsulatedResponse), RESPONSE_PLAINTEXT_BYTES);
  } catch (error) {
    if (error instanceof TypeError) throw error; // our own misuse of the context
    throw new ClientError('response_invalid');
  }
  if (!isCborMap(value) || value.size !== 2) throw new ClientError('response_invalid');
  const dat = value.get('dat');
  const drt = value.get('drt');
  if (typeof dat !== 'string' || typeof drt !== 'string' || dat.length === 0 || drt.length === 0) {
    throw new ClientError('response_invalid');
  }
  return { dat, drt };
}
