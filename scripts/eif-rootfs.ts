// The enclave's root filesystem and the two ramdisks of its EIF, from pinned inputs only
// (docs/auditing.md). The layout is Dockerfile.enclave's: Node at /usr/local/bin/node, socat at
// /usr/bin/socat, the bundle under /app/enclave, koffi's addon where koffi/indirect looks for it
// (/app/koffi/linux_x64), and exactly the shared libraries the three binaries need, followed
// through DT_NEEDED (scripts/elf.ts) in Debian's loader order and copied as regular files.
// The customer ramdisk is what nitro-cli's yaml_generator.rs asks linuxkit for: the tree under
// rootfs/, rootfs/{dev,run,sys,var,proc,tmp} for AWS's init to mount over, and /cmd and /env.

import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { join, posix } from 'node:path';
import type { CpioEntry } from './cpio.js';
import { readElfDynamic } from './elf.js';
import { EifBuildError } from './eif-inputs.js';

/** Dockerfile.enclave's CMD and ENV: what AWS's init reads from /cmd and /env (one item a line). */
export const ENCLAVE_CMD = ['/usr/local/bin/node', '/app/enclave/enclave.mjs', '--listen', 'unix:/run/dip-enclave.sock', '--vsock', '5000'] as const;
export const ENCLAVE_ENV = ['PATH=/usr/local/bin:/usr/bin:/bin'] as const;

/** nitro-cli's customer ramdisk directories: init mounts over dev, proc, run, sys and tmp. */
export const MOUNT_POINTS = ['dev', 'proc', 'run', 'sys', 'tmp', 'var'] as const;

/** Debian bookworm's ld.so search path without an ld.so.cache (`ld.so --list-diagnostics`: system_dirs). */
export const LIBRARY_DIRS = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'lib', 'usr/lib'] as const;

export const NODE_PATH = 'usr/local/bin/node';
export const SOCAT_PATH = 'usr/bin/socat';
export const KOFFI_PATH = 'app/koffi/linux_x64/koffi.node';
export const BUNDLE_TARGET = 'app/enclave/enclave.mjs';

/** One regular file of the root filesystem; `path` is relative to it. */
export interface RootfsFile {
  path: string;
  mode: number;
  data: Uint8Array;
  /** The pinned input it comes from (for the manifest and for auditors). */
  source: string;
}

/** An unpacked Debian package: its name=version and the directory its files were unpacked into. */
export interface UnpackedPackage {
  label: string;
  name: string;
  dir: string;
}

/** Follows symlinks inside one unpacked package (absolute targets are relative to the package). */
function resolveInPackage(pkg: UnpackedPackage, path: string): string | null {
  let current = path;
  for (let hops = 0; hops < 16; hops++) {
    const full = join(pkg.dir, current);
    // lstat, never stat: an absolute link target means the package's own tree, not this host's.
    let stat;
    try {
      stat = lstatSync(full);
    } catch {
      return null;
    }
    if (stat.isFile()) return current;
    if (!stat.isSymbolicLink()) return null;
    const target = readlinkSync(full);
    current = target.startsWith('/') ? posix.normalize(target.slice(1)) : posix.normalize(posix.join(posix.dirname(current), target));
    if (current.startsWith('..')) return null;
  }
  return null;
}

interface Found {
  pkg: UnpackedPackage;
  /** Where the loader finds it (the soname's path), relative to the root. */
  path: string;
  data: Uint8Array;
}

function findFile(packages: readonly UnpackedPackage[], path: string): Found | null {
  for (const pkg of packages) {
    const real = resolveInPackage(pkg, path);
    if (real !== null) return { pkg, path, data: new Uint8Array(readFileSync(join(pkg.dir, real))) };
  }
  return null;
}

function findLibrary(packages: readonly UnpackedPackage[], soname: string): Found | null {
  for (const dir of LIBRARY_DIRS) {
    const found = findFile(packages, `${dir}/${soname}`);
    if (found !== null) return found;
  }
  return null;
}

export interface RootfsInputs {
  /** The built bundle and the trust files, as written under the checkout's dist/enclave/. */
  bundle: Uint8Array;
  trustFiles: { path: string; data: Uint8Array }[];
  node: { data: Uint8Array; source: string };
  koffi: { data: Uint8Array; source: string };
  /** In pin order: the first package holding a path wins, as the first matching directory does for ld.so. */
  packages: readonly UnpackedPackage[];
}

/** The files of the root filesystem, sorted by path. */
export function assembleRootfs(inputs: RootfsInputs): RootfsFile[] {
  const files = new Map<string, RootfsFile>();
  const add = (file: RootfsFile): void => {
    if (files.has(file.path)) throw new TypeError(`rootfs: two files at ${file.path}`);
    files.set(file.path, file);
  };
  add({ path: NODE_PATH, mode: 0o755, data: inputs.node.data, source: inputs.node.source });
  add({ path: KOFFI_PATH, mode: 0o644, data: inputs.koffi.data, source: inputs.koffi.source });
  add({ path: BUNDLE_TARGET, mode: 0o644, data: inputs.bundle, source: 'the enclave bundle (make bundle)' });
  for (const trust of inputs.trustFiles) {
    // enclave/issuers/x.json → app/enclave/issuers/x.json, as the Dockerfile copies dist/enclave.
    add({ path: `app/${trust.path}`, mode: 0o644, data: trust.data, source: trust.path });
  }
  const socat = findFile(inputs.packages, SOCAT_PATH);
  if (socat === null) throw new EifBuildError('library_missing', '/usr/bin/socat');
  add({ path: SOCAT_PATH, mode: 0o755, data: socat.data, source: socat.pkg.label });

  const used = new Set<string>([socat.pkg.name]);
  const nodeElf = readElfDynamic(inputs.node.data);
  if (nodeElf.interpreter === null) throw new EifBuildError('input_unreadable', `${inputs.node.source}: no program interpreter`);
  const interpreter = findFile(inputs.packages, nodeElf.interpreter.replace(/^\//, ''));
  if (interpreter === null) throw new EifBuildError('library_missing', nodeElf.interpreter);
  add({ path: interpreter.path, mode: 0o755, data: interpreter.data, source: interpreter.pkg.label });
  used.add(interpreter.pkg.name);
  // The interpreter is loaded first; a DT_NEEDED of its soname is that same object.
  const loaded = new Set<string>([readElfDynamic(interpreter.data).soname ?? posix.basename(nodeElf.interpreter)]);

  const pending = [...nodeElf.needed, ...readElfDynamic(socat.data).needed, ...readElfDynamic(inputs.koffi.data).needed];
  while (pending.length > 0) {
    const soname = pending.shift()!;
    if (loaded.has(soname)) continue;
    loaded.add(soname);
    const library = findLibrary(inputs.packages, soname);
    if (library === null) throw new EifBuildError('library_missing', soname);
    add({ path: library.path, mode: 0o755, data: library.data, source: library.pkg.label });
    used.add(library.pkg.name);
    pending.push(...readElfDynamic(library.data).needed);
  }
  const unused = inputs.packages.filter((p) => !used.has(p.name));
  if (unused.length > 0) throw new EifBuildError('pin_unused', unused.map((p) => p.label).join(', '));
  return [...files.values()].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

const lines = (items: readonly string[]): Uint8Array => new TextEncoder().encode(items.map((item) => `${item}\n`).join(''));

/** Sorted by name bytes: a parent directory always comes before what it holds. */
function byPath(a: CpioEntry, b: CpioEntry): number {
  return Buffer.compare(Buffer.from(a.path), Buffer.from(b.path));
}

/** The customer ramdisk's entries: rootfs/ with every directory 0755, the files, /cmd and /env (0644). */
export function customerRamdiskEntries(files: readonly RootfsFile[], cmd: readonly string[] = ENCLAVE_CMD, env: readonly string[] = ENCLAVE_ENV): CpioEntry[] {
  const directories = new Set<string>(['rootfs', ...MOUNT_POINTS.map((d) => `rootfs/${d}`)]);
  for (const file of files) {
    for (let dir = posix.dirname(`rootfs/${file.path}`); dir !== 'rootfs'; dir = posix.dirname(dir)) directories.add(dir);
  }
  const entries: CpioEntry[] = [
    ...[...directories].map((path): CpioEntry => ({ path, type: 'directory', mode: 0o755 })),
    ...files.map((file): CpioEntry => ({ path: `rootfs/${file.path}`, type: 'file', mode: file.mode, data: file.data })),
    { path: 'cmd', type: 'file', mode: 0o644, data: lines(cmd) },
    { path: 'env', type: 'file', mode: 0o644, data: lines(env) },
  ];
  return entries.sort(byPath);
}

/** nitro-cli's bootstrap ramdisk (yaml_generator.rs, in its order): dev/, init and nsm.ko, all 0755. */
export function bootstrapRamdiskEntries(init: Uint8Array, nsm: Uint8Array): CpioEntry[] {
  return [
    { path: 'dev', type: 'directory', mode: 0o755 },
    { path: 'init', type: 'file', mode: 0o755, data: init },
    { path: 'nsm.ko', type: 'file', mode: 0o755, data: nsm },
  ];
}

/** Dockerfile.enclave's CMD and ENV lines, for the test that keeps both builds' commands equal. */
export function dockerfileCommand(dockerfile: string): { cmd: string[]; env: string[] } {
  const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1];
  const env = [...dockerfile.matchAll(/^ENV ([A-Z_][A-Z0-9_]*)=(\S+)$/gm)].map((m) => `${m[1]}=${m[2]}`);
  return { cmd: cmd === undefined ? [] : (JSON.parse(cmd) as string[]), env };
}
