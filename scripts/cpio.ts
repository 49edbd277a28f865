// The newc ("070701") cpio writer that nitro-cli's ramdisks come from, so that `dip-eif build`
// lays out a ramdisk byte for byte as nitro-cli 1.5 would lay out the same entries: linuxkit 1.5.2
// (initrd/initrd.go, AWS's "kernel+initrd-nogz" patch: no gzip) over its vendored
// github.com/surma/gocpio writer.go. Format: cpio(5) "New ASCII Format"; rules taken from gocpio:
//   - 13 header fields of 8 lowercase hex digits after the magic; inodes count up from 721, one
//     per entry, the trailer included; uid/gid 0; dev 3:1 on every entry; rdev 0:0; check 0;
//   - nlink 2 for a directory, 1 otherwise; mode = permission bits (0o7777) | file type << 12;
//   - the name and its NUL, then the data, are each padded with zeros to a multiple of 4 bytes
//     counted from the start of the archive;
//   - a "TRAILER!!!" entry (mode 0, mtime 0), then zeros up to a multiple of 512 bytes.

/** linuxkit's moby/build/dir.go defaultModTime, 2017-04-18T16:30:00Z: every entry it writes has it. */
export const LINUXKIT_MTIME = 1_492_533_000;

export const CPIO_MAGIC = '070701';
/** gocpio: the first inode number. */
export const FIRST_INODE = 721;
export const HEADER_BYTES = 110;

const TYPE_BITS = { directory: 0o040000, file: 0o100000, symlink: 0o120000 } as const;
export type CpioEntryType = keyof typeof TYPE_BITS;

export interface CpioEntry {
  /** Relative, '/'-separated, no '.', '..' or empty component (as linuxkit writes names). */
  path: string;
  type: CpioEntryType;
  /** Permission bits only (0..0o7777): setuid, setgid and sticky are kept, as gocpio keeps them. */
  mode: number;
  /** File contents (files only). */
  data?: Uint8Array;
  /** Link target (symlinks only). */
  target?: string;
}

const encoder = new TextEncoder();
const MAX_FIELD = 0xffff_ffff;

function hex8(value: number): string {
  return value.toString(16).padStart(8, '0');
}

function checkEntry(entry: CpioEntry): Uint8Array {
  const { path, type, mode } = entry;
  if (!(type in TYPE_BITS)) throw new TypeError('cpio: unknown entry type');
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new TypeError('cpio: mode must be permission bits 0..0o7777');
  if (path === '' || path.includes('\0') || path.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new TypeError('cpio: an entry path must be relative with no empty, "." or ".." component');
  }
  if (type === 'file' && entry.data === undefined) throw new TypeError('cpio: a file needs data');
  if (type !== 'file' && entry.data !== undefined) throw new TypeError('cpio: only a file has data');
  if ((type === 'symlink') !== (entry.target !== undefined)) throw new TypeError('cpio: a symlink, and only a symlink, has a target');
  const data = type === 'symlink' ? encoder.encode(entry.target) : (entry.data ?? new Uint8Array(0));
  if (data.length > MAX_FIELD) throw new TypeError('cpio: an entry is larger than newc can describe');
  return data;
}

/**
 * The archive as a list of chunks (headers, names, padding and the callers' own data arrays, not
 * copied), to be written or hashed in order. `mtime` is the one modification time of every entry.
 */
export function writeCpio(entries: readonly CpioEntry[], mtime = LINUXKIT_MTIME): Uint8Array[] {
  if (!Number.isInteger(mtime) || mtime < 0 || mtime > MAX_FIELD) throw new TypeError('cpio: mtime must fit 8 hex digits');
  const chunks: Uint8Array[] = [];
  let length = 0;
  let inode = FIRST_INODE;
  const push = (chunk: Uint8Array): void => {
    if (chunk.length === 0) return;
    chunks.push(chunk);
    length += chunk.length;
  };
  const pad = (to: number): void => push(new Uint8Array((to - (length % to)) % to));
  const header = (name: string, mode: number, nlink: number, time: number, size: number): void => {
    const nameBytes = encoder.encode(name);
    const fields = [inode, mode, 0, 0, nlink, time, size, 3, 1, 0, 0, nameBytes.length + 1, 0];
    push(encoder.encode(CPIO_MAGIC + fields.map(hex8).join('')));
    push(nameBytes);
    push(new Uint8Array(1));
    pad(4);
    inode++;
  };
  for (const entry of entries) {
    const data = checkEntry(entry);
    header(entry.path, entry.mode | TYPE_BITS[entry.type], entry.type === 'directory' ? 2 : 1, mtime, data.length);
    push(data);
    pad(4);
  }
  header('TRAILER!!!', 0, 1, 0, 0);
  pad(512);
  return chunks;
}

/** The chunks of writeCpio as one array (for tests and small archives). */
export function concatChunks(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}
