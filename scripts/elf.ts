// What the dynamic loader needs to start an x86-64 ELF file: its program interpreter (PT_INTERP)
// and the libraries it names (DT_NEEDED), read without running it (ld.so would; ldd runs it).
// `dip-eif build` follows DT_NEEDED from the Node binary, socat and koffi's addon to put exactly
// those libraries into the enclave's root filesystem. System V gABI, ELF-64 object file format.

export interface ElfDynamic {
  /** PT_INTERP, e.g. /lib64/ld-linux-x86-64.so.2; null for a shared library. */
  interpreter: string | null;
  /** DT_NEEDED in file order. */
  needed: string[];
  /** DT_SONAME, when the file has one. */
  soname: string | null;
}

/** Thrown for anything that is not a well-formed little-endian x86-64 ELF-64 file. */
export class ElfError extends Error {
  override readonly name = 'ElfError';
  constructor() {
    super('not a readable x86-64 ELF file');
  }
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_SONAME = 14n;
const EM_X86_64 = 62;

export function readElfDynamic(bytes: Uint8Array): ElfDynamic {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const within = (offset: number, length: number): boolean => offset >= 0 && length >= 0 && offset + length <= bytes.length;
  const u64 = (offset: number): number => {
    if (!within(offset, 8)) throw new ElfError();
    const value = view.getBigUint64(offset, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfError();
    return Number(value);
  };
  const cString = (offset: number): string => {
    if (!within(offset, 1)) throw new ElfError();
    const end = bytes.indexOf(0, offset);
    if (end < 0) throw new ElfError();
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(offset, end));
  };
  // e_ident: magic, ELFCLASS64 (2), ELFDATA2LSB (1); e_machine at 18.
  if (!within(0, 64) || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) throw new ElfError();
  if (bytes[4] !== 2 || bytes[5] !== 1 || view.getUint16(18, true) !== EM_X86_64) throw new ElfError();
  const phoff = u64(32);
  const phentsize = view.getUint16(54, true);
  const phnum = view.getUint16(56, true);
  if (phentsize < 56 || !within(phoff, phentsize * phnum)) throw new ElfError();

  const loads: { vaddr: number; offset: number; filesz: number }[] = [];
  let interpreter: string | null = null;
  let dynamic: { offset: number; size: number } | null = null;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    const type = view.getUint32(at, true);
    const offset = u64(at + 8);
    const filesz = u64(at + 32);
    if (type === PT_LOAD) loads.push({ vaddr: u64(at + 16), offset, filesz });
    else if (type === PT_INTERP) interpreter = cString(offset);
    else if (type === PT_DYNAMIC) dynamic = { offset, size: filesz };
  }
  if (dynamic === null) return { interpreter, needed: [], soname: null };
  if (!within(dynamic.offset, dynamic.size)) throw new ElfError();

  const entries: [bigint, number][] = [];
  for (let at = dynamic.offset; at + 16 <= dynamic.offset + dynamic.size; at += 16) {
    const tag = view.getBigInt64(at, true);
    if (tag === DT_NULL) break;
    entries.push([tag, u64(at + 8)]);
  }
  // DT_STRTAB holds a virtual address: map it to a file offset through the PT_LOAD segments.
  const strtabAddress = entries.find(([tag]) => tag === DT_STRTAB)?.[1];
  const segment = loads.find((s) => strtabAddress !== undefined && strtabAddress >= s.vaddr && strtabAddress < s.vaddr + s.filesz);
  if (strtabAddress === undefined || segment === undefined) throw new ElfError();
  const strtab = segment.offset + (strtabAddress - segment.vaddr);
  const names = (wanted: bigint): string[] => entries.filter(([tag]) => tag === wanted).map(([, value]) => cString(strtab + value));
  return { interpreter, needed: names(DT_NEEDED), soname: names(DT_SONAME)[0] ?? null };
}
