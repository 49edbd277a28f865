// Writes an Enclave Image Format file as aws-nitro-enclaves-image-format's EifBuilder does
// (src/utils/mod.rs, version 4): the 548-byte header, then kernel, cmdline, metadata and the
// ramdisks, each behind a 12-byte section header; the header's section table points at section
// headers and its CRC-32 covers everything but itself. No signature section: PCR8 stays absent.
// The PCRs are computed here from the same bytes, and scripts/eif.ts reads them back independently.

import { crc32 } from 'node:zlib';
import { EIF_HEADER_BYTES, EIF_MAGIC, EIF_MAX_SECTIONS, EIF_SECTION_HEADER_BYTES, SECTION_TYPES, pcrOfParts } from './eif.js';

/** defs/mod.rs CURRENT_VERSION; EifBuilder's defaults (1 GiB, 2 CPUs): nitro-cli run-enclave flags override them. */
export const EIF_VERSION = 4;
export const DEFAULT_MEMORY = 1024n * 1024n * 1024n;
export const DEFAULT_CPUS = 2n;

export interface EifImageInput {
  kernel: Uint8Array;
  /** nitro-cli reads the blobs' cmdline file and trims it; CString::into_bytes adds no NUL. */
  cmdline: string;
  /** JSON, in no PCR (nitro-cli writes the build time there; we write none). */
  metadata: Uint8Array;
  /** Bootstrap ramdisk (PCR1), then the customer ramdisk(s) (PCR2). */
  ramdisks: readonly (readonly Uint8Array[])[];
}

export interface EifImage {
  chunks: Uint8Array[];
  bytes: number;
  pcrs: { PCR0: string; PCR1: string; PCR2: string };
}

function sectionHeader(type: number, size: number): Uint8Array {
  const out = new Uint8Array(EIF_SECTION_HEADER_BYTES);
  const view = new DataView(out.buffer);
  view.setUint16(0, type);
  view.setUint16(2, 0);
  view.setBigUint64(4, BigInt(size));
  return out;
}

const sizeOf = (parts: readonly Uint8Array[]): number => parts.reduce((n, p) => n + p.length, 0);

export function writeEifImage(input: EifImageInput): EifImage {
  if (input.ramdisks.length < 2) throw new TypeError('eif: a bootstrap and a customer ramdisk are needed');
  const cmdline = new TextEncoder().encode(input.cmdline.trim());
  if (cmdline.includes(0)) throw new TypeError('eif: the cmdline holds a NUL byte');
  const sections: { type: number; parts: readonly Uint8Array[] }[] = [
    { type: SECTION_TYPES.kernel, parts: [input.kernel] },
    { type: SECTION_TYPES.cmdline, parts: [cmdline] },
    { type: SECTION_TYPES.metadata, parts: [input.metadata] },
    ...input.ramdisks.map((parts) => ({ type: SECTION_TYPES.ramdisk, parts })),
  ];
  if (sections.length > EIF_MAX_SECTIONS) throw new TypeError('eif: too many sections');

  const header = new Uint8Array(EIF_HEADER_BYTES);
  const view = new DataView(header.buffer);
  header.set(EIF_MAGIC, 0);
  view.setUint16(4, EIF_VERSION);
  view.setUint16(6, 0); // flags: x86_64
  view.setBigUint64(8, DEFAULT_MEMORY);
  view.setBigUint64(16, DEFAULT_CPUS);
  view.setUint16(26, sections.length);
  const body: Uint8Array[] = [];
  let offset = EIF_HEADER_BYTES;
  sections.forEach((section, i) => {
    const size = sizeOf(section.parts);
    view.setBigUint64(28 + 8 * i, BigInt(offset));
    view.setBigUint64(284 + 8 * i, BigInt(size));
    body.push(sectionHeader(section.type, size), ...section.parts);
    offset += EIF_SECTION_HEADER_BYTES + size;
  });
  let crc = crc32(header.subarray(0, EIF_HEADER_BYTES - 4));
  for (const chunk of body) crc = crc32(chunk, crc);
  view.setUint32(EIF_HEADER_BYTES - 4, crc >>> 0);

  // eif_hasher.rs via EifBuilder::measure: PCR0 all but metadata, PCR1 up to the first ramdisk.
  const [bootstrap, ...customer] = input.ramdisks;
  const pcrs = {
    PCR0: pcrOfParts([input.kernel, cmdline, ...input.ramdisks.flat()]),
    PCR1: pcrOfParts([input.kernel, cmdline, ...bootstrap!]),
    PCR2: pcrOfParts(customer.flat()),
  };
  return { chunks: [header, ...body], bytes: offset, pcrs };
}
