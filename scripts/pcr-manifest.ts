// pcr-manifest.json (issues 6.3 and 14): what a commit's enclave measures to, in a versioned format
// (pcr-manifest.schema.json). `write` records a build; `verify` rebuilds and compares field by
// field. PCR2 is measured by our own Docker-free builder (scripts/eif-build.ts) from the commit
// and the pinned inputs; PCR0 and PCR1 only when AWS's blobs are given (--blobs DIR), else they are
// pending with the reason. A Docker + nitro-cli build of Dockerfile.enclave is a second, separate
// image: its measurements, when a Docker host supplied them, are kept under "docker", cross-checked
// by our own EIF reader, and are not the PCRs clients pin. No PCR value is ever typed in by hand.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BUNDLE_PATH, buildBundle } from './build-bundle.js';
import { describeEif } from './eif.js';
import { buildNative, defaultCacheDir, type NativeBuild } from './eif-build.js';

export const MANIFEST_FORMAT = 'dip-pcr-manifest/2';
const HEX96 = /^[0-9a-f]{96}$/;

type Hex = string;

export interface PcrManifest {
  format: typeof MANIFEST_FORMAT;
  commit: string;
  bundle: { path: string; sha384: string; bytes: number; esbuild: string };
  trustFiles: { path: string; sha384: string }[];
  /** The Docker-free build (dip-eif build) whose PCRs are the ones below. */
  native: Omit<NativeBuild, 'pcrs'>;
  /** null when not measured, with the reason under `pending`; PCR1 only with the blobs that `native.blobs` names. */
  pcrs: { source: string; PCR0: Hex | null; PCR1: Hex | null; PCR2: Hex; pending: { PCR0?: string; PCR1?: string } };
  /** The Docker + nitro-cli build of Dockerfile.enclave: its pins, and what a Docker host measured. */
  docker: {
    packageLockSha384: string;
    dockerfileSha384: string;
    eifBuilderDockerfileSha384: string;
    baseImages: Record<string, string>;
    buildArgs: Record<string, string>;
    unpinned: string[];
    nitroCli: null | { version: string; blobs: { name: string; sha384: string }[] };
    pcrs: null | { source: string; PCR0: Hex; PCR1: Hex; PCR2: Hex; PCR8?: Hex };
  };
}

const sha384 = (data: Uint8Array | string): string => createHash('sha384').update(data).digest('hex');

/** `ARG NAME=value` lines before and between stages; an image is any ARG whose value has a registry path. */
export function dockerfileArgs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^ARG\s+([A-Z0-9_]+)=(\S+)\s*$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** Splits ARGs into image references and other build arguments, and lists what is not pinned. */
export function pinnedInputs(dockerfiles: string[]): Pick<PcrManifest['docker'], 'baseImages' | 'buildArgs' | 'unpinned'> {
  const baseImages: Record<string, string> = {};
  const buildArgs: Record<string, string> = {};
  const unpinned: string[] = [];
  for (const text of dockerfiles) {
    for (const [name, value] of Object.entries(dockerfileArgs(text))) {
      if (name.endsWith('_IMAGE')) {
        baseImages[name] = value;
        if (!/@sha256:[0-9a-f]{64}$/.test(value)) unpinned.push(name);
      } else {
        buildArgs[name] = value;
        if (value.includes('PIN-ME')) unpinned.push(name);
      }
    }
  }
  return { baseImages, buildArgs, unpinned: unpinned.sort() };
}

/** nitro-cli build-enclave prints {"Measurements": {"HashAlgorithm", "PCR0", "PCR1", "PCR2"[, "PCR8"]}}. */
export function parseMeasurements(text: string): { PCR0: string; PCR1: string; PCR2: string; PCR8?: string } {
  // nitro-cli may print progress lines before the JSON object: start at the first line that opens it.
  const start = text.search(/^\{/m);
  const parsed = JSON.parse(start >= 0 ? text.slice(start) : text) as { Measurements?: Record<string, unknown> };
  const m = parsed.Measurements;
  if (!m || typeof m !== 'object') throw new Error('measurements: no "Measurements" object (is this nitro-cli build-enclave output?)');
  const pick = (k: string): string => {
    const v = m[k];
    if (typeof v !== 'string' || !HEX96.test(v)) throw new Error(`measurements: ${k} is not 48 bytes of lowercase hex`);
    return v;
  };
  return { PCR0: pick('PCR0'), PCR1: pick('PCR1'), PCR2: pick('PCR2'), ...(m['PCR8'] !== undefined ? { PCR8: pick('PCR8') } : {}) };
}

/** `nitro-cli --version` and `sha384sum blobs/*` as the builder container prints them. */
export function parseBuilderInfo(text: string): NonNullable<PcrManifest['docker']['nitroCli']> {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const versionLine = lines.find((l) => /^Nitro CLI /i.test(l));
  if (!versionLine) throw new Error('builder info: no "Nitro CLI <version>" line');
  const blobs = lines
    .map((l) => /^([0-9a-f]{96})\s+\*?(\S+)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ name: m[2]!.split('/').pop()!, sha384: m[1]! }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (blobs.length === 0) throw new Error('builder info: no blob hashes');
  return { version: versionLine.replace(/^Nitro CLI /i, ''), blobs };
}

export const NATIVE_SOURCE = 'dip-eif build (scripts/eif-build.ts) from the commit and scripts/eif-pins.json, without Docker';
export const DOCKER_SOURCE = 'nitro-cli build-enclave of Dockerfile.enclave, cross-checked by dip-eif describe';

export interface BuildEvidence {
  /** AWS's blobs directory: with it, PCR0 and PCR1 are measured too. */
  blobsDir?: string;
  /** The input cache of the native build (default: the repository's .cache/eif-inputs). */
  cacheDir?: string;
  measurements?: string;
  eifPath?: string;
  builderInfo?: string;
  /** The bundle copied out of the Docker image; must equal the bundle built here. */
  imageBundle?: Uint8Array;
}

/** Exports `commit` with git archive into a fresh directory (a clean checkout), runs `fn`, removes it. */
export async function withCheckout<T>(root: string, commit: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'dip-manifest-'));
  try {
    const tar = execFileSync('git', ['archive', '--format=tar', commit], { cwd: root, maxBuffer: 1 << 30 });
    execFileSync('tar', ['-x', '-C', dir], { input: tar });
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The manifest's PCRs from a native build: whatever it measured, the rest pending with its reason. */
export function manifestPcrs(build: NativeBuild): PcrManifest['pcrs'] {
  return { source: NATIVE_SOURCE, PCR0: build.pcrs.PCR0, PCR1: build.pcrs.PCR1, PCR2: build.pcrs.PCR2, pending: build.pcrs.pending };
}

/** Builds the manifest of `commit` from a clean export of it, plus what a Docker host measured. */
export async function buildManifest(root: string, commit: string, evidence: BuildEvidence = {}): Promise<PcrManifest> {
  return withCheckout(root, commit, async (dir) => {
    const bundle = await buildBundle(dir);
    if (evidence.imageBundle && sha384(evidence.imageBundle) !== bundle.sha384) {
      throw new Error('the bundle inside the image differs from the bundle built from the commit');
    }
    const native = buildNative({
      root: dir,
      bundle,
      cacheDir: evidence.cacheDir ?? defaultCacheDir(root),
      ...(evidence.blobsDir !== undefined ? { blobsDir: evidence.blobsDir } : {}),
    });
    const read = (p: string): string => readFileSync(join(dir, p), 'utf8');
    const dockerfile = read('Dockerfile.enclave');
    const builder = read('deploy/eif-builder.Dockerfile');
    let dockerPcrs: PcrManifest['docker']['pcrs'] = null;
    if (evidence.measurements !== undefined) {
      const measured = parseMeasurements(evidence.measurements);
      if (evidence.eifPath === undefined) throw new Error('measurements need the EIF they describe, to cross-check them');
      const ours = describeEif(evidence.eifPath).pcrs;
      for (const k of ['PCR0', 'PCR1', 'PCR2', 'PCR8'] as const) {
        if (measured[k] !== ours[k]) throw new Error(`nitro-cli and dip-eif disagree on ${k}`);
      }
      dockerPcrs = { source: DOCKER_SOURCE, ...measured };
    }
    const { pcrs: _measured, ...nativeWithoutPcrs } = native;
    return {
      format: MANIFEST_FORMAT,
      commit,
      bundle: { path: BUNDLE_PATH, sha384: bundle.sha384, bytes: bundle.bytes, esbuild: bundle.esbuild },
      trustFiles: bundle.trustFiles,
      native: nativeWithoutPcrs,
      pcrs: manifestPcrs(native),
      docker: {
        packageLockSha384: sha384(readFileSync(join(dir, 'package-lock.json'))),
        dockerfileSha384: sha384(dockerfile),
        eifBuilderDockerfileSha384: sha384(builder),
        ...pinnedInputs([dockerfile, builder]),
        nitroCli: evidence.builderInfo !== undefined ? parseBuilderInfo(evidence.builderInfo) : null,
        pcrs: dockerPcrs,
      },
    };
  });
}

/**
 * What `verify` compares when the manifest was written without blobs but this build had them:
 * the same build with the blob-only fields as a blob-less build has them.
 */
export function withoutBlobs(manifest: PcrManifest, pending: PcrManifest['pcrs']['pending']): PcrManifest {
  return {
    ...manifest,
    native: { ...manifest.native, blobs: null, eif: null, ramdisks: { ...manifest.native.ramdisks, bootstrap: null } },
    pcrs: { ...manifest.pcrs, PCR0: null, PCR1: null, pending },
  };
}

/** Every leaf that differs, as `path: expected → actual`. */
export function diffManifests(expected: unknown, actual: unknown, path = ''): string[] {
  if (typeof expected === 'object' && expected !== null && typeof actual === 'object' && actual !== null) {
    const keys = [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort();
    return keys.flatMap((k) =>
      diffManifests((expected as Record<string, unknown>)[k], (actual as Record<string, unknown>)[k], path ? `${path}.${k}` : k),
    );
  }
  return JSON.stringify(expected) === JSON.stringify(actual) ? [] : [`${path}: ${JSON.stringify(expected)} → ${JSON.stringify(actual)}`];
}

// A validator for the subset of JSON Schema that pcr-manifest.schema.json uses (no dependency).
type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  pattern?: string;
  enum?: unknown[];
  const?: unknown;
  oneOf?: Schema[];
  minimum?: number;
  minItems?: number;
};

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

export function validateSchema(schema: Schema, value: unknown, path = '$'): string[] {
  const errors: string[] = [];
  const actual = typeOf(value);
  if (schema.type !== undefined) {
    const allowed = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!allowed.includes(actual) && !(actual === 'integer' && allowed.includes('number'))) return [`${path}: expected ${allowed.join('|')}, got ${actual}`];
  }
  if (schema.const !== undefined && JSON.stringify(schema.const) !== JSON.stringify(value)) errors.push(`${path}: must be ${JSON.stringify(schema.const)}`);
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) errors.push(`${path}: not one of ${JSON.stringify(schema.enum)}`);
  if (schema.pattern && typeof value === 'string' && !new RegExp(schema.pattern, 'u').test(value)) errors.push(`${path}: does not match ${schema.pattern}`);
  if (schema.minimum !== undefined && typeof value === 'number' && value < schema.minimum) errors.push(`${path}: below ${schema.minimum}`);
  if (actual === 'object') {
    const obj = value as Record<string, unknown>;
    for (const key of schema.required ?? []) if (!(key in obj)) errors.push(`${path}: missing ${key}`);
    for (const [key, v] of Object.entries(obj)) {
      const sub = schema.properties?.[key];
      if (sub) errors.push(...validateSchema(sub, v, `${path}.${key}`));
      else if (schema.additionalProperties === false) errors.push(`${path}: unexpected ${key}`);
      else if (typeof schema.additionalProperties === 'object') errors.push(...validateSchema(schema.additionalProperties, v, `${path}.${key}`));
    }
  }
  if (actual === 'array') {
    const arr = value as unknown[];
    if (schema.minItems !== undefined && arr.length < schema.minItems) errors.push(`${path}: fewer than ${schema.minItems} items`);
    if (schema.items) arr.forEach((item, i) => errors.push(...validateSchema(schema.items!, item, `${path}[${i}]`)));
  }
  if (schema.oneOf) {
    const matching = schema.oneOf.filter((s) => validateSchema(s, value, path).length === 0).length;
    if (matching !== 1) errors.push(`${path}: matches ${matching} of the oneOf alternatives, not exactly 1`);
  }
  return errors;
}

function gitHead(root: string): string {
  return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function evidenceFrom(args: string[]): BuildEvidence {
  const file = (name: string): string | undefined => {
    const p = option(args, name);
    return p !== undefined && existsSync(p) ? p : undefined;
  };
  const measurements = file('--measurements');
  const eifPath = file('--eif');
  const builderInfo = file('--builder-info');
  const imageBundle = file('--image-bundle');
  const blobsDir = option(args, '--blobs');
  const cacheDir = option(args, '--cache');
  return {
    ...(blobsDir ? { blobsDir: resolve(blobsDir) } : {}),
    ...(cacheDir ? { cacheDir: resolve(cacheDir) } : {}),
    ...(measurements ? { measurements: readFileSync(measurements, 'utf8') } : {}),
    ...(eifPath ? { eifPath } : {}),
    ...(builderInfo ? { builderInfo: readFileSync(builderInfo, 'utf8') } : {}),
    ...(imageBundle ? { imageBundle: new Uint8Array(readFileSync(imageBundle)) } : {}),
  };
}

const USAGE =
  'usage: pcr-manifest.ts write|verify [--manifest FILE] [--commit SHA] [--blobs DIR] [--cache DIR] [--measurements FILE --eif FILE] [--builder-info FILE] [--image-bundle FILE]\n';

export async function runManifestCli(args: string[], root: string, out: (t: string) => void): Promise<number> {
  const [command] = args;
  if (command !== 'write' && command !== 'verify') {
    out(USAGE);
    return 2;
  }
  const manifestPath = resolve(root, option(args, '--manifest') ?? 'pcr-manifest.json');
  const evidence = evidenceFrom(args);
  const refuseUnpinned = (manifest: PcrManifest): void => {
    if (manifest.docker.pcrs !== null && manifest.docker.unpinned.length > 0) {
      throw new Error(`measured PCRs from unpinned inputs (${manifest.docker.unpinned.join(', ')}) cannot be reproduced: pin them first`);
    }
  };
  if (command === 'write') {
    const commit = option(args, '--commit') ?? gitHead(root);
    const manifest = await buildManifest(root, commit, evidence);
    refuseUnpinned(manifest);
    writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
    const pending = Object.keys(manifest.pcrs.pending);
    out(`wrote ${manifestPath}: commit ${commit}, PCR2 ${manifest.pcrs.PCR2}${pending.length > 0 ? `, ${pending.join(' and ')} pending` : ''}\n`);
    return 0;
  }
  const expected = JSON.parse(readFileSync(manifestPath, 'utf8')) as PcrManifest;
  const built = await buildManifest(root, expected.commit, evidence);
  refuseUnpinned(built);
  // Measured here but pending in the manifest (blobs given now, not when it was written): shown, not compared.
  const extra = (['PCR0', 'PCR1'] as const).filter((k) => expected.pcrs?.[k] === null && built.pcrs[k] !== null);
  let actual = extra.length > 0 ? withoutBlobs(built, expected.pcrs.pending) : built;
  // The Docker measurements can only be compared with the Docker evidence of `make verify-pcrs-docker`.
  const dockerCompared = evidence.measurements !== undefined;
  if (!dockerCompared) actual = { ...actual, docker: { ...actual.docker, nitroCli: expected.docker?.nitroCli ?? null, pcrs: expected.docker?.pcrs ?? null } };
  const differences = diffManifests(expected, actual);
  for (const line of differences) out(`DIFFERENT ${line}\n`);
  for (const k of extra) out(`${k} ${built.pcrs[k]} (measured here with --blobs; pending in the manifest, not compared)\n`);
  if (differences.length > 0) return 1;
  const pendingNote = Object.entries(expected.pcrs.pending).map(([k, reason]) => `\n${k} pending: ${reason}`).join('');
  const measured = (['PCR0', 'PCR1', 'PCR2'] as const).filter((k) => expected.pcrs[k] !== null).map((k) => `${k} ${expected.pcrs[k]}`);
  out(`OK: commit ${expected.commit} rebuilds to the manifest, field by field\n${measured.join('\n')}${pendingNote}\n`);
  if (!dockerCompared && expected.docker.pcrs !== null) out('docker.pcrs not compared: run make verify-pcrs-docker on a Docker host\n');
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runManifestCli(process.argv.slice(2), process.cwd(), (t) => process.stdout.write(t)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`pcr-manifest: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
