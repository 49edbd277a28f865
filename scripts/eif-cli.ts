// `dip-eif describe FILE.eif`: prints the PCRs of an EIF computed without nitro-cli (scripts/eif.ts),
// in the shape of `nitro-cli describe-eif`, so auditors can compare the two side by side.
// `dip-eif build`: builds the enclave's ramdisks (and, given AWS's blobs, the EIF) without Docker
// from this checkout and the pinned inputs, and prints the PCRs they measure to (scripts/eif-build.ts).
// Usage: npx tsx scripts/eif-cli.ts describe FILE.eif | build [...]   (make describe-eif, make eif-native)

import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { EifError, describeEif, toNitroCliShape } from './eif.js';
import { OUTPUT_FILES, buildNative, defaultCacheDir, type BundleInfo, type NativeBuild } from './eif-build.js';
import { EifBuildError } from './eif-inputs.js';

const USAGE = `Usage: dip-eif describe FILE.eif
       dip-eif build [--out DIR] [--blobs DIR] [--cache DIR] [--json]

describe  prints PCR0, PCR1, PCR2 (and PCR8 when signed) of an EIF, computed without nitro-cli, in
          the shape of \`nitro-cli describe-eif\`.
build     builds the enclave bundle from this checkout (needs \`npm ci\`), assembles the root
          file system from the pinned inputs of scripts/eif-pins.json (fetched into --cache,
          default DIP_EIF_CACHE or .cache/eif-inputs, and checked against their hashes), writes
          the customer ramdisk to --out (default build/eif) and prints PCR2. With --blobs DIR
          (bzImage, cmdline, init and nsm.ko, as aws-nitro-enclaves-cli-devel installs them in
          /usr/share/nitro_enclaves/blobs) it also writes the bootstrap ramdisk and
          dip-enclave.eif and prints PCR0 and PCR1; without, they are reported pending.
          --json prints one JSON object (the build report, or {"error": {code, message}}).

Exit status: 0 ok, 1 the file is not a readable EIF or the build was refused, 2 usage.
`;

/** The checkout this file belongs to: scripts/eif-cli.ts and bin/dip-eif.js are both one level down. */
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * The enclave bundle through scripts/build-bundle.ts in a child process: esbuild is a
 * devDependency, which bin/dip-eif.js may not import, so both entry points build it this way.
 */
function buildBundleInChild(root: string): BundleInfo {
  const result = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts', 'build-bundle.ts'), root], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 20,
  });
  try {
    if (result.status !== 0) throw new Error('build-bundle failed');
    return JSON.parse(result.stdout) as BundleInfo;
  } catch {
    throw new EifBuildError('bundle_failed', 'dist/enclave/enclave.mjs', 'dip-eif build runs in a checkout after npm ci: it needs esbuild and tsx');
  }
}

function describeCommand(file: string, out: (text: string) => void, err: (text: string) => void): number {
  try {
    // A directory opens for reading on Linux and fails only at the first read: refuse it here.
    let isFile = false;
    try {
      isFile = statSync(file).isFile();
    } catch {
      // reported as eif_unreadable below
    }
    if (!isFile) throw new EifError('eif_unreadable');
    out(`${JSON.stringify(toNitroCliShape(describeEif(file)), null, 2)}\n`);
    return 0;
  } catch (error) {
    // A read error after the file opened (an I/O error) is still the same coded refusal.
    const refusal = error instanceof EifError ? error : new EifError('eif_unreadable');
    err(`dip-eif: ${refusal.message} (${refusal.code})\n`);
    return 1;
  }
}

function summary(report: NativeBuild, outDir: string): string {
  const lines = [
    `customer ramdisk  ${join(outDir, OUTPUT_FILES.customer)}  ${report.ramdisks.customer.bytes} bytes  sha384 ${report.ramdisks.customer.sha384}`,
  ];
  if (report.ramdisks.bootstrap !== null) {
    lines.push(`bootstrap ramdisk ${join(outDir, OUTPUT_FILES.bootstrap)}  ${report.ramdisks.bootstrap.bytes} bytes  sha384 ${report.ramdisks.bootstrap.sha384}`);
  }
  if (report.eif !== null) lines.push(`EIF               ${join(outDir, OUTPUT_FILES.eif)}  ${report.eif.bytes} bytes  sha384 ${report.eif.sha384}`);
  for (const pcr of ['PCR0', 'PCR1', 'PCR2'] as const) {
    const value = report.pcrs[pcr];
    lines.push(value !== null ? `${pcr} ${value}` : `${pcr} pending: ${report.pcrs.pending[pcr as 'PCR0' | 'PCR1']}`);
  }
  return `${lines.join('\n')}\n`;
}

function buildCommand(args: string[], out: (text: string) => void, err: (text: string) => void): number {
  let values: { out?: string; blobs?: string; cache?: string; json?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: { out: { type: 'string' }, blobs: { type: 'string' }, cache: { type: 'string' }, json: { type: 'boolean' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch {
    err('dip-eif: usage: dip-eif build [--out DIR] [--blobs DIR] [--cache DIR] [--json] (dip-eif --help)\n');
    return 2;
  }
  const outDir = values.out !== undefined ? resolve(values.out) : join(ROOT, 'build', 'eif');
  try {
    const report = buildNative({
      root: ROOT,
      bundle: buildBundleInChild(ROOT),
      cacheDir: values.cache !== undefined ? resolve(values.cache) : defaultCacheDir(ROOT),
      outDir,
      ...(values.blobs !== undefined ? { blobsDir: resolve(values.blobs) } : {}),
    });
    out(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : summary(report, outDir));
    return 0;
  } catch (error) {
    if (!(error instanceof EifBuildError)) throw error;
    if (values.json === true) out(`${JSON.stringify({ error: { code: error.code, message: error.message } })}\n`);
    else err(`dip-eif: ${error.message} (${error.code})\n`);
    return 1;
  }
}

/** Runs one `dip-eif` invocation; every refusal is one coded line on stderr, never a stack trace. */
export function runEifCli(argv: readonly string[], out: (text: string) => void, err: (text: string) => void): number {
  if (argv.length === 1 && (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help')) {
    out(USAGE);
    return 0;
  }
  const [command, ...rest] = argv;
  if (command === 'build') return buildCommand(rest, out, err);
  const [file, ...extra] = rest;
  if (command !== 'describe' || file === undefined || file.startsWith('-') || extra.length > 0) {
    err('dip-eif: usage: dip-eif describe FILE.eif | dip-eif build [...] (dip-eif --help)\n');
    return 2;
  }
  return describeCommand(file, out, err);
}

// Run as a script only from the TypeScript source (`npx tsx scripts/eif-cli.ts`); bin/dip-eif.js,
// the bundle, runs runEifCli itself, and there import.meta.url is the bundle's.
if (import.meta.url.endsWith('/scripts/eif-cli.ts') && import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = runEifCli(process.argv.slice(2), (t) => process.stdout.write(t), (t) => process.stderr.write(t));
}
