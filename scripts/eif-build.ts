// `dip-eif build` without Docker (issue 14, docs/auditing.md): the enclave bundle built from the
// checkout plus pinned inputs (scripts/eif-pins.json) → the root filesystem (scripts/eif-rootfs.ts)
// → the customer ramdisk (scripts/cpio.ts) → PCR2. Given AWS's blobs (bzImage, cmdline, init,
// nsm.ko from aws-nitro-enclaves-cli-devel) it also writes the bootstrap ramdisk and the EIF and
// measures PCR0 and PCR1; without them those two stay pending and the report says why. Nothing
// here reads the clock, the time zone, the user or the checkout's path: same inputs, same bytes.

import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LINUXKIT_MTIME, writeCpio } from './cpio.js';
import { pcrOfParts } from './eif.js';
import { writeEifImage } from './eif-image.js';
import {
  EifBuildError,
  PINS_PATH,
  debianPackage,
  koffiAddon,
  nodeBinary,
  nodeTarball,
  readPins,
  sha256Hex,
  unpackDebian,
  type Pins,
} from './eif-inputs.js';
import { ENCLAVE_CMD, ENCLAVE_ENV, assembleRootfs, bootstrapRamdiskEntries, customerRamdiskEntries, type UnpackedPackage } from './eif-rootfs.js';

/** What scripts/build-bundle.ts reports for the enclave bundle it wrote under the checkout's dist/. */
export interface BundleInfo {
  path: string;
  bytes: number;
  sha384: string;
  esbuild: string;
  trustFiles: { path: string; sha384: string }[];
}

/** The x86_64 blobs nitro-cli builds from (/usr/share/nitro_enclaves/blobs). */
export const BLOB_FILES = ['bzImage', 'cmdline', 'init', 'nsm.ko'] as const;

export const PENDING_WITHOUT_BLOBS =
  "needs AWS's kernel blob: PCR0 and PCR1 measure bzImage, its cmdline, init and nsm.ko (aws-nitro-enclaves-cli-devel, /usr/share/nitro_enclaves/blobs), which are not in this repository and for which AWS publishes no checksums; `make eif-native BLOBS=DIR` measures them on a host that has them";

export interface NativeBuildOptions {
  /** A checkout whose dist/ holds the bundle just built (`bundle`) and whose node_modules has koffi. */
  root: string;
  bundle: BundleInfo;
  cacheDir: string;
  blobsDir?: string;
  /** Where to write the ramdisks, the EIF and native-build.json; nothing is written without it. */
  outDir?: string;
  pins?: Pins;
}

export interface NativeBuild {
  builder: string;
  inputs: {
    pinsSha384: string;
    node: Pins['node'];
    koffi: Pins['koffi'];
    debian: { name: string; version: string; sha256: string }[];
  };
  /** Every file of the root filesystem, sorted by path; modes in octal. */
  rootfs: { path: string; mode: string; bytes: number; sha256: string; source: string }[];
  cmd: string[];
  env: string[];
  ramdisks: {
    customer: { bytes: number; sha384: string };
    bootstrap: { bytes: number; sha384: string } | null;
  };
  blobs: { name: string; sha384: string }[] | null;
  eif: { bytes: number; sha384: string } | null;
  pcrs: { PCR0: string | null; PCR1: string | null; PCR2: string; pending: { PCR0?: string; PCR1?: string } };
}

/** Paths written by a build with `outDir` (not part of the report: they depend on where it ran). */
export const OUTPUT_FILES = {
  customer: 'customer-initrd.img',
  bootstrap: 'bootstrap-initrd.img',
  eif: 'dip-enclave.eif',
  report: 'native-build.json',
} as const;

const sha384Parts = (parts: readonly Uint8Array[]): string => {
  const hash = createHash('sha384');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
};
const sizeOf = (parts: readonly Uint8Array[]): number => parts.reduce((n, p) => n + p.length, 0);

/** Writes chunks through a temporary file and a rename: no half-written image is ever left. */
function writeChunks(path: string, chunks: readonly Uint8Array[]): void {
  const temporary = `${path}.${process.pid}.tmp`;
  const fd = openSync(temporary, 'w', 0o644);
  try {
    for (const chunk of chunks) {
      for (let at = 0; at < chunk.length; ) at += writeSync(fd, chunk, at, chunk.length - at);
    }
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
}

function readBlobs(dir: string): Record<(typeof BLOB_FILES)[number], Uint8Array> & { config: Uint8Array | null } {
  const read = (name: string): Uint8Array => {
    try {
      return new Uint8Array(readFileSync(join(dir, name)));
    } catch {
      throw new EifBuildError('blob_missing', name, `expected in the --blobs directory, as aws-nitro-enclaves-cli-devel installs them`);
    }
  };
  let config: Uint8Array | null = null;
  try {
    config = new Uint8Array(readFileSync(join(dir, 'bzImage.config')));
  } catch {
    // Optional: only the metadata's KernelVersion comes from it.
  }
  return { bzImage: read('bzImage'), cmdline: read('cmdline'), init: read('init'), 'nsm.ko': read('nsm.ko'), config };
}

/**
 * EifIdentityInfo as serde writes it (defs/mod.rs field order). In no PCR; deterministic: no
 * build time (the epoch stands in), no Docker inspect output, the bundle hash as ImageVersion.
 */
function metadata(bundle: BundleInfo, version: string, kernelConfig: Uint8Array | null): Uint8Array {
  // identity.rs generate_build_info: the config's third line, "# Linux/x86_64 6.1.x Kernel Configuration".
  const words = kernelConfig === null ? [] : (new TextDecoder().decode(kernelConfig).split('\n')[2] ?? '').split(/[ /-]/);
  return new TextEncoder().encode(
    JSON.stringify({
      ImageName: 'dip-enclave',
      ImageVersion: bundle.sha384,
      BuildMetadata: {
        BuildTime: '1970-01-01T00:00:00+00:00',
        BuildTool: 'dip-eif',
        BuildToolVersion: version,
        OperatingSystem: words[1] ?? 'Unknown',
        KernelVersion: words[3] ?? 'Unknown',
      },
      DockerInfo: null,
      CustomMetadata: { builder: 'dip-eif build, without Docker', manifest: 'pcr-manifest.json' },
    }),
  );
}

/** Builds the customer ramdisk (and, with blobs, the bootstrap ramdisk and the EIF) and measures them. */
export function buildNative(options: NativeBuildOptions): NativeBuild {
  const { root, bundle, cacheDir } = options;
  const pins = options.pins ?? readPins(root);
  // Refused before anything is fetched: a missing blob is a mistake in the command line.
  const blob = options.blobsDir !== undefined ? readBlobs(options.blobsDir) : null;
  const work = mkdtempSync(join(tmpdir(), 'dip-eif-build-'));
  try {
    // The bundle and trust files exactly as build-bundle reported them (dist/ of this checkout).
    const readDist = (path: string, sha384: string): Uint8Array => {
      let data: Uint8Array;
      try {
        data = new Uint8Array(readFileSync(join(root, 'dist', path.replace(/^dist\//, ''))));
      } catch {
        throw new EifBuildError('input_unreadable', path, 'build the bundle first (make bundle)');
      }
      if (sha384Parts([data]) !== sha384) throw new EifBuildError('input_hash_mismatch', path, 'it changed after the bundle was built');
      return data;
    };
    const bundleBytes = readDist(bundle.path, bundle.sha384);
    const trustFiles = bundle.trustFiles.map((t) => ({ path: t.path, data: readDist(t.path, t.sha384) }));

    const tarball = nodeTarball(pins, cacheDir);
    const node = nodeBinary(pins, tarball.file, work);
    const koffi = koffiAddon(pins, root);
    const packages: UnpackedPackage[] = pins.debian.packages.map((pin) => {
      const { file } = debianPackage(pin, cacheDir);
      const label = `${pin.name}=${pin.version}`;
      const dir = join(work, 'deb', pin.name);
      unpackDebian(file, dir, `Debian package ${label}`);
      return { label, name: pin.name, dir };
    });

    const files = assembleRootfs({
      bundle: bundleBytes,
      trustFiles,
      node: { data: node, source: `${pins.node.package}@${pins.node.version}` },
      koffi: { data: koffi, source: `${pins.koffi.package}@${pins.koffi.version}` },
      packages,
    });
    const customer = writeCpio(customerRamdiskEntries(files), LINUXKIT_MTIME);
    const pcr2 = pcrOfParts(customer);

    let bootstrap: Uint8Array[] | null = null;
    let blobs: NativeBuild['blobs'] = null;
    let eif: ReturnType<typeof writeEifImage> | null = null;
    if (blob !== null) {
      blobs = BLOB_FILES.map((name) => ({ name, sha384: sha384Parts([blob[name]]) }));
      bootstrap = writeCpio(bootstrapRamdiskEntries(blob.init, blob['nsm.ko']), LINUXKIT_MTIME);
      const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
      eif = writeEifImage({
        kernel: blob.bzImage,
        cmdline: new TextDecoder().decode(blob.cmdline),
        metadata: metadata(bundle, version, blob.config),
        ramdisks: [bootstrap, customer],
      });
      if (eif.pcrs.PCR2 !== pcr2) throw new TypeError('eif: PCR2 of the image differs from the customer ramdisk');
    }

    const report: NativeBuild = {
      builder: 'dip-eif build (scripts/eif-build.ts), without Docker',
      inputs: {
        pinsSha384: sha384Parts([readFileSync(join(root, PINS_PATH))]),
        node: pins.node,
        koffi: pins.koffi,
        debian: pins.debian.packages.map(({ name, version, sha256 }) => ({ name, version, sha256 })),
      },
      rootfs: files.map((f) => ({ path: `/${f.path}`, mode: f.mode.toString(8).padStart(4, '0'), bytes: f.data.length, sha256: sha256Hex(f.data), source: f.source })),
      cmd: [...ENCLAVE_CMD],
      env: [...ENCLAVE_ENV],
      ramdisks: {
        customer: { bytes: sizeOf(customer), sha384: sha384Parts(customer) },
        bootstrap: bootstrap === null ? null : { bytes: sizeOf(bootstrap), sha384: sha384Parts(bootstrap) },
      },
      blobs,
      eif: eif === null ? null : { bytes: eif.bytes, sha384: sha384Parts(eif.chunks) },
      pcrs:
        eif === null
          ? { PCR0: null, PCR1: null, PCR2: pcr2, pending: { PCR0: PENDING_WITHOUT_BLOBS, PCR1: PENDING_WITHOUT_BLOBS } }
          : { PCR0: eif.pcrs.PCR0, PCR1: eif.pcrs.PCR1, PCR2: pcr2, pending: {} },
    };

    if (options.outDir !== undefined) {
      mkdirSync(options.outDir, { recursive: true });
      writeChunks(join(options.outDir, OUTPUT_FILES.customer), customer);
      if (bootstrap !== null) writeChunks(join(options.outDir, OUTPUT_FILES.bootstrap), bootstrap);
      if (eif !== null) writeChunks(join(options.outDir, OUTPUT_FILES.eif), eif.chunks);
      writeFileSync(join(options.outDir, OUTPUT_FILES.report), `${JSON.stringify(report, null, 2)}\n`);
    }
    return report;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The cache of pinned inputs: --cache, else DIP_EIF_CACHE, else .cache/eif-inputs in the checkout. */
export function defaultCacheDir(root: string, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['DIP_EIF_CACHE'];
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(root, '.cache', 'eif-inputs');
}
