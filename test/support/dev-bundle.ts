// A development build of the enclave bundle: the image's esbuild options (scripts/build-bundle.ts)
// except the DIP_BUILD=production constant, so that it runs here with --dev and the NSM emulator.
// Tests and benchmarks use it to run the code as the image does — one file, worker threads
// started from that same file (issue 13) — which tsx cannot show.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { bundleOptions } from '../../scripts/build-bundle.js';
import { REPO_ROOT } from './enclave.js';

/** Writes DIR/enclave.mjs and returns its path. */
export async function buildDevelopmentBundle(dir: string): Promise<string> {
  const { define: _production, ...options } = bundleOptions(REPO_ROOT);
  const result = await build(options);
  const file = result.outputFiles?.[0];
  if (file === undefined) throw new Error('esbuild produced no bundle');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'enclave.mjs');
  writeFileSync(path, file.contents);
  return path;
}
