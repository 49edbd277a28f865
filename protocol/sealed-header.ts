// The public header of a sealed request (SPEC §4): what the untrusted side may read of it
// without any key. hpke.ts builds and binds the header; the parent only reads it.
//
//   hdr = 0x02 (version) || key_id(8) || kem_id(2) || kdf_id(2) || aead_id(2) || op(1)

import { KEY_ID_BYTES, MIN_SEALED_REQUEST_BYTES, SEALED_REQUEST_VERSION } from './limits.js';

export const KEY_ID_AT = 1;
export const SUITE_AT = KEY_ID_AT + KEY_ID_BYTES;

/**
 * The `key_id` a sealed request names (bytes 1..8), or null when the request is not version 0x02
 * or is shorter than hdr || enc || tag: such a request is `bad_request` wherever it is seen.
 */
export function sealedRequestKeyId(request: Uint8Array): Uint8Array | null {
  if (request.length < MIN_SEALED_REQUEST_BYTES || request[0] !== SEALED_REQUEST_VERSION) return null;
  return request.slice(KEY_ID_AT, SUITE_AT);
}
