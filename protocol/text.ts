// Text rules shared by every side: well-formed Unicode (a CBOR text string is UTF-8, RFC 8949
// §3.1, and UTF-8 cannot carry a lone surrogate) and the length of `sub` (SPEC §2).

// With the u flag a surrogate pair is one code point, so this matches lone surrogates only.
const LONE_SURROGATE = /\p{Cs}/u;

/** True when the string has no lone surrogate, so it has exactly one UTF-8 encoding. */
export function isWellFormedUnicode(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}
