// Test-only EIF writer: lays sections out as aws-nitro-enclaves-image-format's EifBuilder does
// (kernel, cmdline, metadata, ramdisks, signature; section_offsets point at section headers) and
// fills in the CRC-32. Deliberately simple so that the reader's tests check the reader, not it.

import { crc32 } from 'node:zlib';

export interface WriterSection {
  type: number;
  data: Uint8Array;
  flags?: number;
}

const HEADER = 548;
const SECTION_HEADER = 12;

export function writeEif(sections: WriterSection[], options: { version?: number; flags?: number; crc?: number } = {}): Uint8Array {
  const total = HEADER + sections.reduce((n, s) => n + SECTION_HEADER + s.data.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set([0x2e, 0x65, 0x69, 0x66], 0);
  view.setUint16(4, options.version ?? 4);
  view.setUint16(6, options.flags ?? 0);
  view.setBigUint64(8, 1024n * 1024n * 1024n);
  view.setBigUint64(16, 2n);
  view.setUint16(26, sections.length);
  let at = HEADER;
  sections.forEach((s, i) => {
    view.setBigUint64(28 + 8 * i, BigInt(at));
    view.setBigUint64(284 + 8 * i, BigInt(s.data.length));
    view.setUint16(at, s.type);
    view.setUint16(at + 2, s.flags ?? 0);
    view.setBigUint64(at + 4, BigInt(s.data.length));
    out.set(s.data, at + SECTION_HEADER);
    at += SECTION_HEADER + s.data.length;
  });
  const crc = crc32(out.subarray(HEADER, total), crc32(out.subarray(0, HEADER - 4)));
  view.setUint32(HEADER - 4, options.crc ?? crc);
  return out;
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);
