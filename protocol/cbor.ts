// CBOR for everything this project writes and reads (SPEC §5 "CBOR rules").
// Writing uses cbor-x with the options that give preferred serialization (RFC 8949 §4.1),
// plain byte strings and untagged maps. Reading uses the strict decoder below, because cbor-x
// silently keeps the last of duplicate map keys: here duplicates, trailing bytes, malformed
// UTF-8 and over-deep nesting are errors, while any well-formed CBOR of the data model
// (indefinite lengths included, as real AWS attestation documents use them) is accepted.

import { Encoder, type Options } from 'cbor-x';
import { isWellFormedUnicode } from './text.js';

/** A CBOR tag and its content, kept as-is so that callers can refuse tags they do not expect. */
export class Tagged {
  constructor(
    readonly tag: number | bigint,
    readonly value: CborValue,
  ) {}
}

/**
 * A floating-point value. Kept apart from integers: in the CBOR data model 1.0 and 1 differ,
 * and nothing in this protocol is a float, so a float never passes where an integer is due.
 */
export class CborFloat {
  constructor(readonly value: number) {}
}

export type CborKey = string | number | bigint;
export type CborMap = Map<CborKey, CborValue>;
export type CborValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | undefined
  | Uint8Array
  | CborValue[]
  | CborMap
  | Tagged
  | CborFloat;

/** Every decoding failure; the message is fixed and names the rule, never the input. */
export class CborDecodeError extends Error {
  override readonly name = 'CborDecodeError';
}

// RFC 8949 §4.1 preferred serialization; no tag 64 for byte strings, no tag 259 for maps.
// cbor-x honours `useTag259ForMaps` at run time but its type declarations omit it.
const encoder = new Encoder({
  tagUint8Array: false,
  variableMapSize: true,
  useRecords: false,
  useTag259ForMaps: false,
  pack: false,
  bundleStrings: false,
} as Options & { useTag259ForMaps: boolean });

const UINT32_MAX = 0xffff_ffff;

// cbor-x writes integers outside ±2^32 as float64; preferred serialization wants an integer
// head, which cbor-x writes for bigint. cbor-x writes a lone surrogate as invalid UTF-8 (a
// CESU-style `ed a0 80`) that every strict reader, the enclave's included, refuses; callers
// validate text first, so such a string here is our own misuse, like anything not plain data.
function normalizeForEncoding(value: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new TypeError('CBOR value nests too deeply');
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new TypeError('this project writes no floating-point CBOR');
    return value > UINT32_MAX || value < -UINT32_MAX - 1 ? BigInt(value) : value;
  }
  if (typeof value === 'string') {
    if (!isWellFormedUnicode(value)) throw new TypeError('CBOR text must be well-formed Unicode');
    return value;
  }
  if (
    value === null ||
    typeof value === 'boolean' ||
    typeof value === 'bigint' ||
    value instanceof Uint8Array
  ) {
    return value;
  }
  if (Array.isArray(value)) return value.map((item) => normalizeForEncoding(item, depth + 1));
  if (value instanceof Map) {
    const out = new Map<unknown, unknown>();
    for (const [k, v] of value) out.set(normalizeForEncoding(k, depth + 1), normalizeForEncoding(v, depth + 1));
    return out;
  }
  if (typeof value === 'object' && (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)) {
    const out = new Map<string, unknown>();
    for (const [k, v] of Object.entries(value)) {
      if (v !== undefined) out.set(normalizeForEncoding(k, depth + 1) as string, normalizeForEncoding(v, depth + 1));
    }
    return out;
  }
  throw new TypeError('value cannot be written as CBOR');
}

/**
 * Encodes plain data (objects and Maps as maps, Uint8Array as byte strings, integers, text,
 * booleans, null) in preferred serialization. Object properties whose value is `undefined` are
 * left out; keys keep their insertion order.
 */
export function encodeCbor(value: unknown): Uint8Array {
  const out = encoder.encode(normalizeForEncoding(value, 0));
  // A plain Uint8Array view, not cbor-x's Buffer: callers compare and slice it as bytes.
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

const MAX_DEPTH = 32;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Reader {
  private offset = 0;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    // Honour byteOffset: the input is often a subarray of a larger buffer.
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get done(): boolean {
    return this.offset === this.bytes.length;
  }

  get position(): number {
    return this.offset;
  }

  private need(n: number): void {
    if (this.offset + n > this.bytes.length) throw new CborDecodeError('CBOR data is truncated');
  }

  private byte(): number {
    this.need(1);
    return this.bytes[this.offset++]!;
  }

  private take(n: number): Uint8Array {
    this.need(n);
    // A copy, never a view: decoded values must not alias the frame buffer they came from.
    const out = new Uint8Array(this.bytes.subarray(this.offset, this.offset + n));
    this.offset += n;
    return out;
  }

  /** Reads the argument of a head; returns -1 for an indefinite length (info 31). */
  private argument(info: number): number | bigint {
    if (info < 24) return info;
    switch (info) {
      case 24:
        return this.byte();
      case 25: {
        this.need(2);
        const v = this.view.getUint16(this.offset);
        this.offset += 2;
        return v;
      }
      case 26: {
        this.need(4);
        const v = this.view.getUint32(this.offset);
        this.offset += 4;
        return v;
      }
      case 27: {
        this.need(8);
        const v = this.view.getBigUint64(this.offset);
        this.offset += 8;
        return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
      }
      case 31:
        return -1;
      default:
        throw new CborDecodeError('CBOR head uses a reserved additional information value');
    }
  }

  private length(info: number): number {
    const n = this.argument(info);
    if (typeof n === 'bigint' || n > this.bytes.length) throw new CborDecodeError('CBOR length exceeds the input');
    return n;
  }

  private isBreak(): boolean {
    this.need(1);
    if (this.bytes[this.offset] === 0xff) {
      this.offset++;
      return true;
    }
    return false;
  }

  private chunks(major: 2 | 3): Uint8Array {
    const parts: Uint8Array[] = [];
    let total = 0;
    while (!this.isBreak()) {
      const head = this.byte();
      if (head >> 5 !== major || (head & 0x1f) === 31) {
        throw new CborDecodeError('CBOR indefinite-length string has an invalid chunk');
      }
      const part = this.take(this.length(head & 0x1f));
      parts.push(part);
      total += part.length;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  private text(bytes: Uint8Array): string {
    try {
      return utf8.decode(bytes);
    } catch {
      throw new CborDecodeError('CBOR text string is not valid UTF-8');
    }
  }

  item(depth: number): CborValue {
    if (depth > MAX_DEPTH) throw new CborDecodeError('CBOR data nests too deeply');
    const head = this.byte();
    const major = head >> 5;
    const info = head & 0x1f;
    switch (major) {
      case 0: {
        const v = this.argument(info);
        if (v === -1) throw new CborDecodeError('CBOR integer cannot have an indefinite length');
        return v;
      }
      case 1: {
        const v = this.argument(info);
        if (v === -1) throw new CborDecodeError('CBOR integer cannot have an indefinite length');
        if (typeof v === 'bigint') return -1n - v;
        const n = -1 - v;
        return Number.isSafeInteger(n) ? n : -1n - BigInt(v);
      }
      case 2:
        return info === 31 ? this.chunks(2) : this.take(this.length(info));
      case 3:
        return this.text(info === 31 ? this.chunks(3) : this.take(this.length(info)));
      case 4: {
        const out: CborValue[] = [];
        if (info === 31) {
          while (!this.isBreak()) out.push(this.item(depth + 1));
        } else {
          const n = this.length(info);
          for (let i = 0; i < n; i++) out.push(this.item(depth + 1));
        }
        return out;
      }
      case 5: {
        const out: CborMap = new Map();
        const entry = (): void => {
          const key = this.item(depth + 1);
          if (typeof key !== 'string' && typeof key !== 'number' && typeof key !== 'bigint') {
            throw new CborDecodeError('CBOR map key is not an integer or text');
          }
          if (out.has(key)) throw new CborDecodeError('CBOR map has a duplicate key');
          out.set(key, this.item(depth + 1));
        };
        if (info === 31) {
          while (!this.isBreak()) entry();
        } else {
          const n = this.length(info);
          for (let i = 0; i < n; i++) entry();
        }
        return out;
      }
      case 6: {
        const tag = this.argument(info);
        if (tag === -1) throw new CborDecodeError('CBOR tag cannot have an indefinite length');
        return new Tagged(tag, this.item(depth + 1));
      }
      default:
        return this.simple(info);
    }
  }

  private simple(info: number): CborValue {
    switch (info) {
      case 20:
        return false;
      case 21:
        return true;
      case 22:
        return null;
      case 23:
        return undefined;
      case 25: {
        this.need(2);
        const v = halfToNumber(this.view.getUint16(this.offset));
        this.offset += 2;
        return new CborFloat(v);
      }
      case 26: {
        this.need(4);
        const v = this.view.getFloat32(this.offset);
        this.offset += 4;
        return new CborFloat(v);
      }
      case 27: {
        this.need(8);
        const v = this.view.getFloat64(this.offset);
        this.offset += 8;
        return new CborFloat(v);
      }
      case 31:
        throw new CborDecodeError('CBOR break outside an indefinite-length item');
      default:
        throw new CborDecodeError('CBOR simple value is not supported');
    }
  }
}

// RFC 8949 Appendix D.
function halfToNumber(half: number): number {
  const exp = (half >> 10) & 0x1f;
  const mant = half & 0x3ff;
  const sign = half & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (mant + 1024) * 2 ** (exp - 25);
}

/**
 * Decodes exactly one CBOR data item. Maps become `Map`s whose keys are integers or text;
 * byte strings become fresh `Uint8Array`s (never views of the input). Throws
 * `CborDecodeError` on malformed input, duplicate keys or trailing bytes.
 */
export function decodeCbor(bytes: Uint8Array): CborValue {
  const reader = new Reader(bytes);
  const value = reader.item(0);
  if (!reader.done) throw new CborDecodeError('CBOR data has trailing bytes');
  return value;
}

const ZEROS = Buffer.alloc(8192);

/**
 * SPEC §4 padding: `plaintext` must be exactly `size` bytes holding one CBOR data item followed
 * only by 0x00 bytes. Returns the item; throws `CborDecodeError` for anything else.
 */
export function decodePaddedCbor(plaintext: Uint8Array, size: number): CborValue {
  if (plaintext.length !== size) throw new CborDecodeError('CBOR padding has the wrong length');
  const reader = new Reader(plaintext);
  const value = reader.item(0);
  // The padding is most of the plaintext: compared natively, not byte by byte in JS.
  const padding = Buffer.from(plaintext.buffer, plaintext.byteOffset + reader.position, plaintext.length - reader.position);
  if (padding.length > ZEROS.length ? padding.some((b) => b !== 0) : !padding.equals(ZEROS.subarray(0, padding.length))) {
    throw new CborDecodeError('CBOR padding is not all zero');
  }
  return value;
}

/** SPEC §4 padding: one CBOR item, then 0x00 up to exactly `size` bytes; a larger item is misuse. */
export function encodePaddedCbor(value: unknown, size: number): Uint8Array {
  const item = encodeCbor(value);
  if (item.length > size) throw new TypeError('the CBOR item does not fit the padded size');
  const out = new Uint8Array(size);
  out.set(item);
  return out;
}

export function isCborMap(value: CborValue): value is CborMap {
  return value instanceof Map;
}
