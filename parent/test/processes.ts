// Child processes for the parent's process-level tests: the parent itself (parent/main.ts) and,
// for the end-to-end tests, the real enclave (enclave/main.ts). Output is collected in full so
// tests can check what the parent printed; children are stopped with SIGTERM (so coverage is
// written) and killed if they do not stop.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeKeysetOnce } from '../keyset.js';
import { FAKE_M_COMMIT } from './fake-enclave.js';
import { waitFor } from './helpers.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface Child {
  readonly process: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  stdout(): string;
  stderr(): string;
  /** Waits until the combined output matches; returns the match. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or signal) once the process has gone. */
  readonly exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has gone. */
  stop(graceMs?: number): Promise<number | string>;
}

export function startTs(script: string, args: readonly string[], env: Record<string, string> = {}): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | string>((resolve) => child.once('close', (code, signal) => resolve(code ?? signal ?? -1)));
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  return {
    process: child,
    stdout: () => out,
    stderr: () => err,
    exited,
    async waitForOutput(pattern, timeoutMs = 30_000) {
      let match: RegExpMatchArray | null = null;
      await waitFor(() => (match = (out + err).match(pattern)) !== null || gone(), timeoutMs, `output ${pattern}`);
      if (match === null) throw new Error(`process exited before printing ${pattern}: ${out}${err}`);
      return match;
    },
    async stop(graceMs = 15_000) {
      if (!gone()) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    },
  };
}

/** Starts parent/main.ts and waits for its `listening` line; returns the child and its port. */
export async function startParent(args: readonly string[], env: Record<string, string> = {}): Promise<{ parent: Child; port: number }> {
  const parent = startTs('parent/main.ts', ['--listen', '127.0.0.1:0', ...args], env);
  const match = await parent.waitForOutput(/"event":"listening","scheme":"https?","port":(\d+)/);
  return { parent, port: Number(match[1]) };
}

/**
 * Writes a keyset whose m_commit is `mCommit` (the fake enclave's by default, which answers
 * health ok with it, so KMS is never asked) to a fresh temporary directory; returns its path.
 */
export function testKeyset(mCommit: Uint8Array = FAKE_M_COMMIT): string {
  const path = join(mkdtempSync(join(tmpdir(), 'dip-keyset-')), 'keyset.json');
  writeKeysetOnce(path, { kmsKeyId: 'test-key', deployment: 'test', ciphertextBlob: Uint8Array.of(1), mCommit });
  return path;
}
