// Runs the real `dip` command (bin/dip.js, the committed bundle: no TypeScript loader) in a child
// process, as a user would, and returns its exit code and output instead of throwing on a non-zero
// exit. scripts/test/bin-bundles.test.ts keeps that bundle equal to the source.

import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const REPO = resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

export interface DipResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runDip(...args: string[]): Promise<DipResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(REPO, 'bin/dip.js'), ...args], { cwd: REPO, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as DipResult;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
