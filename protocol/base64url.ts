// base64url without padding (RFC 4648 §5), the only binary encoding of the HTTP API (SPEC §6).
// Decoding is strict: Node's own decoder silently skips bad characters, so the alphabet and the
// length are checked first and a non-canonical final character is refused.

const ALPHABET = /^[A-Za-z0-9_-]*$/;

/** The 6-bit value of each base64url character, by char code (only checked characters are looked up). */
const VALUES = new Uint8Array(128);
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'].entries()) VALUES[c.charCodeAt(0)] = i;

/** RFC 4648 §3.5: the bits a final partial character leaves unused, by length mod 4 (1 is impossible). */
const UNUSED_BITS = [0, 0, 0x0f, 0x03] as const;

export function encodeBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/**
 * Whether `text` is canonical unpadded base64url: the alphabet only, a possible length, and the
 * unused bits of the last character zero — so that every byte string has exactly one encoding.
 */
export function isCanonicalBase64url(text: string): boolean {
  const rest = text.length % 4;
  if (rest === 1 || !ALPHABET.test(text)) return false;
  return rest === 0 || (VALUES[text.charCodeAt(text.length - 1)]! & UNUSED_BITS[rest as 2 | 3]) === 0;
}

/** Returns the bytes, or `null` when the text is not canonical unpadded base64url. */
export function decodeBase64url(text: string): Uint8Array | null {
  return isCanonicalBase64url(text) ? new Uint8Array(Buffer.from(text, 'base64url')) : null;
}
