// `make bundle`: the enclave as one deterministic ESM file (issue 6.1); `--parent` (`make
// parent-bundle`) builds the parent proxy the same way for the EC2 host. Two builds of the same
// commit, at different paths and times, give byte-identical output: no absolute paths (every
// path esbuild prints is relative to the repo root, symlinks kept), no timestamps, no source map.
// DIP_BUILD=production is baked in here, so nothing outside the image can switch it off.

import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { build, version as esbuildVersion, type BuildOptions } from 'esbuild';

/** Trust files measured into PCR2 with the bundle (SPEC §2: the SRT issuer keys are built in). */
export const TRUST_FILES = ['enclave/issuers/srt-issuer.jwks.json', 'enclave/issuers/config.json'] as const;

export const BUNDLE_PATH = 'dist/enclave/enclave.mjs';

/** The parent proxy for the EC2 host: plain Node, no TypeScript loader in production. */
export const PARENT_BUNDLE_PATH = 'dist/parent/parent.mjs';

// koffi's default entry `require`s every platform's .node file; koffi/indirect finds the one
// native module at run time next to the bundle (dist/koffi/<triplet>/koffi.node in the image).
// An ESM bundle has no require/__dirname, which the CommonJS dependencies need: define both.
const BANNER = [
  "import { createRequire as __dipCreateRequire } from 'node:module';",
  "import { fileURLToPath as __dipFileURLToPath } from 'node:url';",
  'const require = __dipCreateRequire(import.meta.url);',
  'const __filename = __dipFileURLToPath(import.meta.url);',
  "const __dirname = __dipFileURLToPath(new URL('.', import.meta.url));",
].join('\n');

export function bundleOptions(root: string, entry = 'enclave/main.ts'): BuildOptions {
  return {
    absWorkingDir: root,
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    write: false,
    outfile: BUNDLE_PATH,
    sourcemap: false,
    minify: false,
    legalComments: 'eof',
    charset: 'utf8',
    preserveSymlinks: true,
    alias: { koffi: 'koffi/indirect' },
    // cbor-x's optional native string extractor: a speed-up that would put native code and its
    // file-system probing into the image. cbor-x catches its absence and stays pure JavaScript.
    external: ['cbor-extract'],
    define: { 'process.env.DIP_BUILD': '"production"' },
    banner: { js: BANNER },
    logLevel: 'silent',
  };
}

export interface BundleResult {
  path: string;
  bytes: number;
  sha384: string;
  esbuild: string;
  trustFiles: { path: string; sha384: string }[];
}

const sha384 = (data: Uint8Array): string => createHash('sha384').update(data).digest('hex');

/** Builds the bundle under `root` (a checkout) and writes it, with the trust files, under root/dist. */
export async function buildBundle(root: string, entry?: string): Promise<BundleResult> {
  const result = await build(bundleOptions(root, entry));
  const file = result.outputFiles?.[0];
  if (!file || result.outputFiles!.length !== 1) throw new Error('esbuild produced no single output file');
  const out = join(root, BUNDLE_PATH);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, file.contents);
  const trustFiles = TRUST_FILES.map((path) => {
    const target = join(root, 'dist', path);
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(join(root, path), target);
    return { path, sha384: sha384(readFileSync(target)) };
  });
  return { path: BUNDLE_PATH, bytes: file.contents.length, sha384: sha384(file.contents), esbuild: esbuildVersion, trustFiles };
}

/**
 * Builds the parent proxy into one file (dist/parent/parent.mjs). It is untrusted and not
 * measured, so only the enclave's options that matter for running apply: no DIP_BUILD, no koffi.
 */
export async function buildParentBundle(root: string): Promise<{ path: string; bytes: number; sha384: string }> {
  const { alias: _alias, define: _define, ...common } = bundleOptions(root, 'parent/main.ts');
  const result = await build({ ...common, outfile: PARENT_BUNDLE_PATH });
  const file = result.outputFiles?.[0];
  if (!file || result.outputFiles!.length !== 1) throw new Error('esbuild produced no single output file');
  const out = join(root, PARENT_BUNDLE_PATH);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, file.contents);
  return { path: PARENT_BUNDLE_PATH, bytes: file.contents.length, sha384: sha384(file.contents) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const parent = args.includes('--parent');
  const root = resolve(args.find((a) => a !== '--parent') ?? '.');
  (parent ? buildParentBundle(root) : buildBundle(root)).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    },
    (error: unknown) => {
      process.stderr.write(`build-bundle: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
