// A small DER/BER writer (ITU-T X.690) for the KMS emulator's CMS answers: definite lengths in
// their shortest form (DER §10.1) and, where AWS's answers use them, BER indefinite lengths
// (X.690 §8.1.3.6: 0x80, the contents, then the end-of-contents octets 00 00).

export const TAG = {
  integer: 0x02,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  sequence: 0x30,
  set: 0x31,
  /** [n] IMPLICIT, constructed (X.690 §8.1.2: class context-specific, bit 6 set). */
  contextConstructed: (n: number): number => 0xa0 | n,
  /** [n] IMPLICIT, primitive. */
  contextPrimitive: (n: number): number => 0x80 | n,
} as const;

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** X.690 §8.1.3.4/5: short form below 128, else 0x80|n followed by n big-endian bytes. */
function lengthOctets(length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(length);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

function checkTag(tag: number): void {
  // Only single-byte tags (numbers below 31) are needed for CMS.
  if (!Number.isInteger(tag) || tag < 0 || tag > 0xff || (tag & 0x1f) === 0x1f) throw new TypeError('tag must be one low-number tag byte');
}

/** A definite-length element. */
export function tlv(tag: number, ...contents: readonly Uint8Array[]): Uint8Array {
  checkTag(tag);
  const body = concat(contents);
  return concat([Uint8Array.of(tag), lengthOctets(body.length), body]);
}

/** An indefinite-length element (constructed tags only, X.690 §8.1.3.2). */
export function indefinite(tag: number, ...contents: readonly Uint8Array[]): Uint8Array {
  checkTag(tag);
  if ((tag & 0x20) === 0) throw new TypeError('only a constructed element may have an indefinite length');
  return concat([Uint8Array.of(tag, 0x80), ...contents, Uint8Array.of(0, 0)]);
}

/** X.690 §8.3: a non-negative INTEGER, two's complement, minimal octets. */
export function integer(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new TypeError('integer must be a non-negative safe integer');
  const bytes: number[] = [];
  for (let n = value; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
  if (bytes.length === 0 || bytes[0]! >= 0x80) bytes.unshift(0);
  return tlv(TAG.integer, Uint8Array.from(bytes));
}

/** X.690 §8.19: the first two arcs in one octet, then base-128 arcs with continuation bits. */
export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map((arc) => (/^(0|[1-9][0-9]{0,14})$/.test(arc) ? Number(arc) : NaN));
  if (arcs.length < 2 || arcs.some((arc) => !Number.isSafeInteger(arc)) || arcs[0]! > 2 || (arcs[0]! < 2 && arcs[1]! > 39)) {
    throw new TypeError('not an object identifier');
  }
  const out: number[] = [];
  for (const arc of [arcs[0]! * 40 + arcs[1]!, ...arcs.slice(2)]) {
    const septets: number[] = [];
    for (let n = arc; ; n = Math.floor(n / 128)) {
      septets.unshift((n % 128) | (septets.length > 0 ? 0x80 : 0));
      if (n < 128) break;
    }
    out.push(...septets);
  }
  return tlv(TAG.oid, Uint8Array.from(out));
}

export const octetString = (bytes: Uint8Array): Uint8Array => tlv(TAG.octetString, bytes);
export const sequence = (...contents: readonly Uint8Array[]): Uint8Array => tlv(TAG.sequence, ...contents);
export const set = (...contents: readonly Uint8Array[]): Uint8Array => tlv(TAG.set, ...contents);
export const nullValue = (): Uint8Array => tlv(TAG.null);
