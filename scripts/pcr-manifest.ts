// pcr-manifest.json (issue 6.3): what a commit's enclave measures to, in a versioned format
// (pcr-manifest.schema.json). `write` records a build; `verify` rebuilds and compares field by
// field. PCRs come only from nitro-cli's Measurements, cross-checked by our own EIF reader; until
// a Docker host has built the EIF the manifest says "pending" and holds no PCR value at all.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BUNDLE_PATH, buildBundle } from './build-bundle.js';
import { describeEif } from './eif.js';

export const MANIFEST_FORMAT = 'dip-pcr-manifest/1';
const HEX96 = /^[0-9a-f]{96}$/;

export interface PcrManifest {
  format: typeof MANIFEST_FORMAT;
  commit: string;
  bundle: { path: string; sha384: string; bytes: number; esbuild: string };
  trustFiles: { path: string; sha384: string }[];
  inputs: {
    packageLockSha384: string;
    dockerfileSha384: string;
    eifBuilderDockerfileSha384: string;
    baseImages: Record<string, string>;
    buildArgs: Record<string, string>;
    unpinned: string[];
  };
  nitroCli: null | { version: string; blobs: { name: string; sha384: string }[] };
  pcrs:
    | { status: 'pending'; reason: string; PCR0: null; PCR1: null; PCR2: null }
    | { status: 'measured'; source: string; PCR0: string; PCR1: string; PCR2: string; PCR8?: string };
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
export function pinnedInputs(dockerfiles: string[]): Pick<PcrManifest['inputs'], 'baseImages' | 'buildArgs' | 'unpinned'> {
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
export function parseBuilderInfo(text: string): NonNullable<PcrManifest['nitroCli']> {
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

export const PENDING_REASON =
  'No EIF has been built from this commit on a Docker host yet; PCR0, PCR1 and PCR2 are filled by `make pcr-manifest` after `make eif` there. Never fill them by hand.';

export interface BuildEvidence {
  measurements?: string;
  eifPath?: string;
  builderInfo?: string;
  /** The bundle copied out of the built image; must equal the bundle built here. */
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

/** Builds the manifest of `commit` from a clean export of it, plus what a Docker host measured. */
export async function buildManifest(root: string, commit: string, evidence: BuildEvidence = {}): Promise<PcrManifest> {
  return withCheckout(root, commit, async (dir) => {
    const bundle = await buildBundle(dir);
    if (evidence.imageBundle && sha384(evidence.imageBundle) !== bundle.sha384) {
      throw new Error('the bundle inside the image differs from the bundle built from the commit');
    }
    const read = (p: string): string => readFileSync(join(dir, p), 'utf8');
    const dockerfile = read('Dockerfile.enclave');
    const builder = read('deploy/eif-builder.Dockerfile');
    let pcrs: PcrManifest['pcrs'] = { status: 'pending', reason: PENDING_REASON, PCR0: null, PCR1: null, PCR2: null };
    if (evidence.measurements !== undefined) {
      const measured = parseMeasurements(evidence.measurements);
      if (evidence.eifPath === undefined) throw new Error('measurements need the EIF they describe, to cross-check them');
      const ours = describeEif(evidence.eifPath).pcrs;
      for (const k of ['PCR0', 'PCR1', 'PCR2', 'PCR8'] as const) {
        if (measured[k] !== ours[k]) throw new Error(`nitro-cli and dip-eif disagree on ${k}`);
      }
      pcrs = { status: 'measured', source: 'nitro-cli build-enclave, cross-checked by dip-eif describe', ...measured };
    }
    return {
      format: MANIFEST_FORMAT,
      commit,
      bundle: { path: BUNDLE_PATH, sha384: bundle.sha384, bytes: bundle.bytes, esbuild: bundle.esbuild },
      trustFiles: bundle.trustFiles,
      inputs: {
        packageLockSha384: sha384(readFileSync(join(dir, 'package-lock.json'))),
        dockerfileSha384: sha384(dockerfile),
        eifBuilderDockerfileSha384: sha384(builder),
        ...pinnedInputs([dockerfile, builder]),
      },
      nitroCli: evidence.builderInfo !== undefined ? parseBuilderInfo(evidence.builderInfo) : null,
      pcrs,
    };
  });
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
  return {
    ...(measurements ? { measurements: readFileSync(measurements, 'utf8') } : {}),
    ...(eifPath ? { eifPath } : {}),
    ...(builderInfo ? { builderInfo: readFileSync(builderInfo, 'utf8') } : {}),
    ...(imageBundle ? { imageBundle: new Uint8Array(readFileSync(imageBundle)) } : {}),
  };
}

export async function runManifestCli(args: string[], root: string, out: (t: string) => void): Promise<number> {
  const [command] = args;
  const manifestPath = resolve(root, option(args, '--manifest') ?? 'pcr-manifest.json');
  const commit = option(args, '--commit') ?? gitHead(root);
  const refuseUnpinned = (manifest: PcrManifest): void => {
    if (manifest.pcrs.status === 'measured' && manifest.inputs.unpinned.length > 0) {
      throw new Error(`measured PCRs from unpinned inputs (${manifest.inputs.unpinned.join(', ')}) cannot be reproduced: pin them first`);
    }
  };
  if (command === 'write') {
    const manifest = await buildManifest(root, commit, evidenceFrom(args));
    refuseUnpinned(manifest);
    writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
    out(`wrote ${manifestPath}: commit ${commit}, bundle sha384 ${manifest.bundle.sha384}, PCRs ${manifest.pcrs.status}\n`);
    return 0;
  }
  if (command === 'verify') {
    const expected = JSON.parse(readFileSync(manifestPath, 'utf8')) as PcrManifest;
    const actual = await buildManifest(root, expected.commit, evidenceFrom(args));
    refuseUnpinned(actual);
    const differences = diffManifests(expected, actual);
    for (const line of differences) out(`DIFFERENT ${line}\n`);
    if (expected.pcrs.status === 'pending' || actual.pcrs.status === 'pending') {
      out('PCRs not compared: the manifest or this build has no measured PCRs (run `make eif` on a Docker host)\n');
      return differences.length > 0 ? 1 : 2;
    }
    if (differences.length === 0) out(`OK: commit ${expected.commit} rebuilds to PCR0 ${actual.pcrs.PCR0}\n`);
    return differences.length > 0 ? 1 : 0;
  }
  out('usage: pcr-manifest.ts write|verify [--manifest FILE] [--commit SHA] [--measurements FILE --eif FILE] [--builder-info FILE] [--image-bundle FILE]\n');
  return 2;
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
