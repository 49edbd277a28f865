// base64url without padding (RFC 4648 §5), the only binary encoding of the HTTP API (SPEC §6).
// Decoding is strict: Node's own decoder silently skips bad characters, so the alphabet and the
// length are checked first and a non-canonical final character is refused.

const ALPHABET = /^[A-Za-z0-9_-]*$/;

export function encodeBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Returns the bytes, or `null` when the text is not canonical unpadded base64url. */
export function decodeBase64url(text: string): Uint8Array | null {
  if (!ALPHABET.test(text) || text.length % 4 === 1) return null;
  const bytes = new Uint8Array(Buffer.from(text, 'base64url'));
  return encodeBase64url(bytes) === text ? bytes : null;
}
