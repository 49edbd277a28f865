// An independent PCR calculator for Enclave Image Format files (issue 6.4), so that auditors can
// check nitro-cli's Measurements without nitro-cli. It follows aws-nitro-enclaves-image-format:
// src/defs/mod.rs (layout), src/utils/eif_reader.rs (CRC and PCRs), src/defs/eif_hasher.rs.

import { X509Certificate, createHash, type Hash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { decodeCbor, type CborValue } from '../protocol/cbor.js';

/** defs/mod.rs: magic ".eif", MAX_NUM_SECTIONS = 32, EifHeader::size() = 548, EifSectionHeader::size() = 12. */
export const EIF_MAGIC = Uint8Array.from([0x2e, 0x65, 0x69, 0x66]);
export const EIF_MAX_SECTIONS = 32;
export const EIF_HEADER_BYTES = 548;
export const EIF_SECTION_HEADER_BYTES = 12;
/** defs/mod.rs EIF_HDR_ARCH_ARM64 */
export const EIF_FLAG_ARM64 = 0x1;

export const SECTION_TYPES = { kernel: 1, cmdline: 2, ramdisk: 3, signature: 4, metadata: 5 } as const;
export type SectionName = keyof typeof SECTION_TYPES;
const SECTION_NAMES: Record<number, SectionName> = { 1: 'kernel', 2: 'cmdline', 3: 'ramdisk', 4: 'signature', 5: 'metadata' };

export type EifErrorCode =
  | 'eif_unreadable'
  | 'eif_truncated'
  | 'eif_bad_magic'
  | 'eif_bad_header'
  | 'eif_bad_section'
  | 'eif_header_mismatch'
  | 'eif_crc_mismatch'
  | 'eif_layout'
  | 'eif_bad_signature';

const MESSAGES: Record<EifErrorCode, string> = {
  eif_unreadable: 'the EIF file cannot be read',
  eif_truncated: 'the EIF file is truncated',
  eif_bad_magic: 'not an EIF file (the magic is not ".eif")',
  eif_bad_header: 'the EIF header is malformed',
  eif_bad_section: 'an EIF section header has an invalid type',
  eif_header_mismatch: "the EIF header's section table does not match the sections in the file",
  eif_crc_mismatch: "the EIF's CRC-32 does not match its contents",
  eif_layout: 'the EIF does not have exactly one kernel, one cmdline and at least one ramdisk',
  eif_bad_signature: 'the EIF signature section or its signing certificate is malformed',
};

/** Every refusal of an EIF; the message is fixed per code. */
export class EifError extends Error {
  override readonly name = 'EifError';
  constructor(readonly code: EifErrorCode) {
    super(MESSAGES[code]);
  }
}

export interface EifSection {
  type: SectionName;
  flags: number;
  /** Offset of the section header in the file (what the EIF header's section_offsets holds). */
  offset: number;
  size: number;
}

export interface EifHeader {
  version: number;
  flags: number;
  defaultMem: bigint;
  defaultCpus: bigint;
  numSections: number;
  sectionOffsets: bigint[];
  sectionSizes: bigint[];
  crc32: number;
}

export interface EifDescription {
  header: EifHeader;
  arch: 'x86_64' | 'aarch64';
  sections: EifSection[];
  /** Hex, as nitro-cli prints Measurements. PCR8 only for a signed EIF. */
  pcrs: { PCR0: string; PCR1: string; PCR2: string; PCR8?: string };
  crc32: number;
  signed: boolean;
  /** The metadata section, parsed as JSON (excluded from the PCRs; nitro-cli writes build time there). */
  metadata: unknown;
}

/** Reads `length` bytes at `position`; fewer only at the end of the source. */
export interface ByteSource {
  readonly size: number;
  read(position: number, length: number): Uint8Array;
}

export function bytesSource(bytes: Uint8Array): ByteSource {
  return { size: bytes.length, read: (position, length) => bytes.subarray(position, Math.min(bytes.length, position + length)) };
}

const CHUNK = 1 << 20;

/**
 * EifHasher::new_without_cache + tpm_extend_finalize_reset: the data of every section that belongs
 * to a PCR is hashed as one stream, then PCR = SHA-384(48 zero bytes ‖ SHA-384(stream)).
 */
class PcrHasher {
  private readonly hash: Hash = createHash('sha384');
  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
  }
  finish(): string {
    return createHash('sha384').update(new Uint8Array(48)).update(this.hash.digest()).digest('hex');
  }
}

/** PCR of a single byte string (PCR8 from the certificate's DER). */
export function pcrOf(data: Uint8Array): string {
  return pcrOfParts([data]);
}

/** PCR of the concatenation of `parts` (PCR2 of a customer ramdisk written in chunks). */
export function pcrOfParts(parts: readonly Uint8Array[]): string {
  const h = new PcrHasher();
  for (const part of parts) h.update(part);
  return h.finish();
}

function parseHeader(bytes: Uint8Array): EifHeader {
  for (let i = 0; i < 4; i++) if (bytes[i] !== EIF_MAGIC[i]) throw new EifError('eif_bad_magic');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const sectionOffsets: bigint[] = [];
  const sectionSizes: bigint[] = [];
  for (let i = 0; i < EIF_MAX_SECTIONS; i++) sectionOffsets.push(view.getBigUint64(28 + 8 * i));
  for (let i = 0; i < EIF_MAX_SECTIONS; i++) sectionSizes.push(view.getBigUint64(284 + 8 * i));
  const header: EifHeader = {
    version: view.getUint16(4),
    flags: view.getUint16(6),
    defaultMem: view.getBigUint64(8),
    defaultCpus: view.getBigUint64(16),
    // bytes 24..26: reserved
    numSections: view.getUint16(26),
    sectionOffsets,
    sectionSizes,
    // bytes 540..544: unused
    crc32: view.getUint32(544),
  };
  if (header.numSections > EIF_MAX_SECTIONS) throw new EifError('eif_bad_header');
  return header;
}

function readExact(source: ByteSource, position: number, length: number): Uint8Array {
  const out = source.read(position, length);
  if (out.length !== length) throw new EifError('eif_truncated');
  return out;
}

function certificateDer(signatureSection: Uint8Array): Uint8Array {
  // utils/mod.rs: serde_cbor of Vec<PcrSignature { signing_certificate: Vec<u8> (PEM), signature }>;
  // serde writes a Vec<u8> as an array of integers, a ByteBuf as a byte string: accept both.
  const asBytes = (value: CborValue): Uint8Array | null => {
    if (value instanceof Uint8Array) return value;
    if (Array.isArray(value) && value.every((b) => typeof b === 'number' && Number.isInteger(b) && b >= 0 && b <= 255)) {
      return Uint8Array.from(value as number[]);
    }
    return null;
  };
  try {
    const list = decodeCbor(signatureSection);
    const first = Array.isArray(list) ? list[0] : undefined;
    const pem = first instanceof Map ? asBytes(first.get('signing_certificate')) : null;
    if (pem === null) throw new EifError('eif_bad_signature');
    return new Uint8Array(new X509Certificate(Buffer.from(pem)).raw);
  } catch {
    throw new EifError('eif_bad_signature');
  }
}

/** Reads an EIF, checks its CRC and section table, and computes PCR0, PCR1, PCR2 (and PCR8). */
export function describeEifSource(source: ByteSource): EifDescription {
  if (source.size < EIF_HEADER_BYTES) throw new EifError('eif_truncated');
  const headerBytes = readExact(source, 0, EIF_HEADER_BYTES);
  const header = parseHeader(headerBytes);
  // eif_reader.rs: the CRC covers the header without its last field, then every section header
  // and every section's data in file order (metadata and signature included).
  let crc = crc32(headerBytes.subarray(0, EIF_HEADER_BYTES - 4));
  const pcr0 = new PcrHasher();
  const pcr1 = new PcrHasher();
  const pcr2 = new PcrHasher();
  const sections: EifSection[] = [];
  let ramdisks = 0;
  let signature: Uint8Array | null = null;
  let metadata: Uint8Array | null = null;

  let position = EIF_HEADER_BYTES;
  while (position < source.size) {
    const sectionHeader = readExact(source, position, EIF_SECTION_HEADER_BYTES);
    const view = new DataView(sectionHeader.buffer, sectionHeader.byteOffset, EIF_SECTION_HEADER_BYTES);
    const type = SECTION_NAMES[view.getUint16(0)];
    if (type === undefined) throw new EifError('eif_bad_section');
    const size = view.getBigUint64(4);
    const dataStart = position + EIF_SECTION_HEADER_BYTES;
    if (size > BigInt(source.size - dataStart)) throw new EifError('eif_truncated');
    sections.push({ type, flags: view.getUint16(2), offset: position, size: Number(size) });
    crc = crc32(sectionHeader, crc);

    const keep: Uint8Array[] | null = type === 'signature' || type === 'metadata' ? [] : null;
    for (let at = dataStart, end = dataStart + Number(size); at < end; at += CHUNK) {
      const chunk = readExact(source, at, Math.min(CHUNK, end - at));
      crc = crc32(chunk, crc);
      if (keep) keep.push(new Uint8Array(chunk));
      else if (type === 'kernel' || type === 'cmdline') {
        pcr0.update(chunk);
        pcr1.update(chunk);
      } else {
        pcr0.update(chunk);
        (ramdisks === 0 ? pcr1 : pcr2).update(chunk);
      }
    }
    if (type === 'ramdisk') ramdisks++;
    if (keep) {
      const data = Buffer.concat(keep);
      if (type === 'signature') signature = data;
      else metadata = data;
    }
    position = dataStart + Number(size);
  }

  if ((crc >>> 0) !== header.crc32) throw new EifError('eif_crc_mismatch');
  const tableMatches =
    sections.length === header.numSections &&
    sections.every((s, i) => header.sectionOffsets[i] === BigInt(s.offset) && header.sectionSizes[i] === BigInt(s.size)) &&
    header.sectionOffsets.slice(sections.length).every((v) => v === 0n) &&
    header.sectionSizes.slice(sections.length).every((v) => v === 0n);
  if (!tableMatches) throw new EifError('eif_header_mismatch');
  const count = (name: SectionName): number => sections.filter((s) => s.type === name).length;
  if (count('kernel') !== 1 || count('cmdline') !== 1 || ramdisks < 1 || count('signature') > 1 || count('metadata') > 1) {
    throw new EifError('eif_layout');
  }

  const pcrs: EifDescription['pcrs'] = { PCR0: pcr0.finish(), PCR1: pcr1.finish(), PCR2: pcr2.finish() };
  if (signature !== null) pcrs.PCR8 = pcrOf(certificateDer(signature));
  let parsedMetadata: unknown = null;
  if (metadata !== null) {
    try {
      parsedMetadata = JSON.parse(Buffer.from(metadata).toString('utf8'));
    } catch {
      parsedMetadata = null;
    }
  }
  return {
    header,
    arch: header.flags & EIF_FLAG_ARM64 ? 'aarch64' : 'x86_64',
    sections,
    pcrs,
    crc32: header.crc32,
    signed: signature !== null,
    metadata: parsedMetadata,
  };
}

/** describeEifSource over a file, read in 1 MiB chunks (EIFs are tens to hundreds of MiB). */
export function describeEif(path: string): EifDescription {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    throw new EifError('eif_unreadable');
  }
  try {
    const size = fstatSync(fd).size;
    return describeEifSource({
      size,
      read(position, length) {
        const out = new Uint8Array(length);
        let got = 0;
        while (got < length) {
          const n = readSync(fd, out, got, length - got, position + got);
          if (n === 0) break;
          got += n;
        }
        return out.subarray(0, got);
      },
    });
  } finally {
    closeSync(fd);
  }
}

/** The shape nitro-cli describe-eif prints, for side-by-side comparison. */
export function toNitroCliShape(description: EifDescription): Record<string, unknown> {
  return {
    EifVersion: description.header.version,
    Measurements: { HashAlgorithm: 'Sha384 { ... }', ...description.pcrs },
    IsSigned: description.signed,
    CheckCRC: true,
    ArchType: description.arch,
    Sections: description.sections,
    Metadata: description.metadata,
  };
}
