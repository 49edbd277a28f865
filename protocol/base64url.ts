// base64url without padding (RFC 4648 §5), the only binary encoding of the HTTP API (SPEC §6).
// Decoding is strict: Node's own decoder silently skips bad characters and ignores the unused
// bits of a final partial character, so a text is accepted only when encoding the bytes it
// decodes to gives back the very same text — then it uses the alphabet only, has a possible
// length and leaves the unused bits zero, and every byte string has exactly one encoding.
// (The round trip, not a regular expression over the text: the parent decodes an 8 KiB sealed
// request per assign or refresh, and the expression cost three times the decoding.)

export function encodeBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Whether `text` is canonical unpadded base64url (see above). */
export function isCanonicalBase64url(text: string): boolean {
  return decodeBase64url(text) !== null;
}

/** Returns the bytes, or `null` when the text is not canonical unpadded base64url. */
export function decodeBase64url(text: string): Uint8Array | null {
  // Decoded in place into a buffer of its own (never a slice of Node's shared pool): a canonical
  // text of n characters holds exactly ⌊3n/4⌋ bytes; fewer written means characters were skipped.
  const bytes = new Uint8Array((text.length * 3) >>> 2);
  const written = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).write(text, 'base64url');
  return written === bytes.length && encodeBase64url(bytes) === text ? bytes : null;
}
