// A strict BER reader (ITU-T X.690 §8) for the one BER structure the enclave reads: the CMS that
// AWS KMS sends as CiphertextForRecipient (SPEC §9, enclave/core/cms.ts). It reads the whole input
// into a tree; cms.ts then checks the tree against the exact shape it accepts.

import { DipError } from '../../protocol/errors.js';

/** One element: `tag` is the whole identifier octet (class, constructed bit, number). */
export type Ber =
  | { readonly tag: number; readonly value: Uint8Array }
  | { readonly tag: number; readonly items: readonly Ber[] };

/**
 * The deepest element of CMS as AWS sends it is the hash OID inside MGF1's parameters, at depth
 * 11 (ContentInfo = 1); nothing deeper is ever valid, and the bound keeps the recursion short.
 */
export const MAX_DEPTH = 11;

const CONSTRUCTED = 0x20;

function refuse(): never {
  throw new DipError('bad_request');
}

/** Reads exactly one element spanning all of `input`; anything else is `bad_request`. */
export function readBer(input: Uint8Array): Ber {
  const [element, end] = readElement(input, 0, input.length, 1);
  if (end !== input.length) refuse();
  return element;
}

function readElement(input: Uint8Array, start: number, limit: number, depth: number): [Ber, number] {
  if (depth > MAX_DEPTH || start + 2 > limit) refuse();
  const tag = input[start]!;
  // X.690 §8.1.2.4: the high-tag-number form, unused by CMS. §8.1.5: 00 is end-of-contents, which
  // may only close an indefinite length (handled below), never stand as an element.
  if ((tag & 0x1f) === 0x1f || tag === 0) refuse();
  let length = input[start + 1]!;
  let pos = start + 2;
  if (length === 0x80) {
    // X.690 §8.1.3.6: the indefinite form, constructed only, closed by end-of-contents 00 00.
    if (!(tag & CONSTRUCTED)) refuse();
    const items: Ber[] = [];
    for (;;) {
      if (pos + 2 > limit) refuse();
      if (input[pos] === 0 && input[pos + 1] === 0) return [{ tag, items }, pos + 2];
      const [item, next] = readElement(input, pos, limit, depth + 1);
      items.push(item);
      pos = next;
    }
  }
  if (length > 0x80) {
    // X.690 §8.1.3.5 long form. A frame is at most 65536 bytes (SPEC §5), so two length octets
    // suffice; like BoringSSL's BER reader (which AWS's own SDK uses) we refuse non-minimal ones.
    const octets = length & 0x7f;
    if (octets > 2 || pos + octets > limit) refuse();
    length = octets === 1 ? input[pos]! : (input[pos]! << 8) | input[pos + 1]!;
    if (length < 0x80 || (octets === 2 && length < 0x100)) refuse();
    pos += octets;
  }
  const end = pos + length;
  if (end > limit) refuse();
  if (!(tag & CONSTRUCTED)) return [{ tag, value: input.subarray(pos, end) }, end];
  const items: Ber[] = [];
  while (pos < end) {
    const [item, next] = readElement(input, pos, end, depth + 1);
    items.push(item);
    pos = next;
  }
  return [{ tag, items }, end];
}
