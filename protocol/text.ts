// Text rules shared by every side: well-formed Unicode (a CBOR text string is UTF-8, RFC 8949
// §3.1, and UTF-8 cannot carry a lone surrogate) and the length of `sub` (SPEC §2).

import { MAX_SUBSCRIPTION_ID_CHARS } from './limits.js';

// With the u flag a surrogate pair is one code point, so this matches lone surrogates only.
const LONE_SURROGATE = /\p{Cs}/u;

/** True when the string has no lone surrogate, so it has exactly one UTF-8 encoding. */
export function isWellFormedUnicode(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

/**
 * SPEC §2: a subscription id (`sub`) is 1..256 characters, counted as Unicode code points, and
 * well-formed, since a lone surrogate could not be written as CBOR. The enclave and the client
 * both use this rule, so an id the enclave accepts never fails in the client.
 */
export function isSubscriptionId(value: unknown): value is string {
  if (typeof value !== 'string' || value.length === 0 || !isWellFormedUnicode(value)) return false;
  // Each code point is 1 or 2 UTF-16 units: below 257 units it cannot exceed 256 code points.
  if (value.length <= MAX_SUBSCRIPTION_ID_CHARS) return true;
  let count = 0;
  for (const _ of value) if (++count > MAX_SUBSCRIPTION_ID_CHARS) return false;
  return true;
}
