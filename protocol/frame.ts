// Frames of the enclave wire protocol (SPEC §5): a 4-byte unsigned big-endian length N with
// 1 ≤ N ≤ 65536, then N bytes holding exactly one CBOR data item.
//
//   frame = length:u32be || cbor[length]

import { decodeCbor, encodeCbor, type CborValue } from './cbor.js';
import { DipError } from './errors.js';
import { FRAME_HEADER_BYTES, MAX_FRAME_BYTES } from './limits.js';

/** Encodes one data item as a frame. An item over the limit is our own misuse. */
export function encodeFrame(item: unknown): Uint8Array {
  return frameBytes(encodeCbor(item));
}

/** Frames CBOR bytes that are already encoded. */
export function frameBytes(cbor: Uint8Array): Uint8Array {
  if (cbor.length < 1 || cbor.length > MAX_FRAME_BYTES) throw new TypeError('frame payload size is out of range');
  const out = new Uint8Array(FRAME_HEADER_BYTES + cbor.length);
  new DataView(out.buffer).setUint32(0, cbor.length);
  out.set(cbor, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Splits a byte stream into frames. `push` a chunk, then call `next` until it returns null.
 * A bad length is reported as soon as the 4 length bytes have arrived, before any body is
 * buffered, so a peer cannot make us hold more than one maximal frame.
 */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private failed = false;

  push(chunk: Uint8Array): void {
    if (this.failed || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** Bytes received but not yet returned as a frame: non-zero at end of stream means truncation. */
  get pending(): number {
    return this.buffered;
  }

  /**
   * Returns the next complete frame's CBOR item, `null` when more bytes are needed, or throws
   * `DipError('bad_frame')` for a bad length, undecodable content or a null item. After a throw the reader
   * stays failed: the connection must be closed.
   */
  next(): CborValue | null {
    if (this.failed) throw new DipError('bad_frame');
    if (this.buffered < FRAME_HEADER_BYTES) return null;
    const head = this.peek(FRAME_HEADER_BYTES);
    const length = new DataView(head.buffer, head.byteOffset, FRAME_HEADER_BYTES).getUint32(0);
    if (length < 1 || length > MAX_FRAME_BYTES) return this.fail();
    if (this.buffered < FRAME_HEADER_BYTES + length) return null;
    const frame = this.consume(FRAME_HEADER_BYTES + length).subarray(FRAME_HEADER_BYTES);
    let item: CborValue;
    try {
      item = decodeCbor(frame);
    } catch {
      return this.fail();
    }
    // A frame holding CBOR null would read as "more bytes needed" and stall the frames after it;
    // no SPEC §5 message is null, so it is a bad frame.
    return item === null ? this.fail() : item;
  }

  private fail(): never {
    this.failed = true;
    this.chunks = [];
    this.buffered = 0;
    throw new DipError('bad_frame');
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    return this.flatten().subarray(0, n);
  }

  private flatten(): Uint8Array {
    if (this.chunks.length === 1) return this.chunks[0]!;
    const out = new Uint8Array(this.buffered);
    let at = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    this.chunks = [out];
    return out;
  }

  private consume(n: number): Uint8Array {
    const all = this.flatten();
    const taken = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return taken;
  }
}
