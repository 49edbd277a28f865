// `make dev` as a newcomer runs it: the development stack comes up with an enclave on a Unix
// socket and the parent on 127.0.0.1, writes the SPEC §8 state files, answers /readyz, and stops
// both processes cleanly on Ctrl-C (SIGINT).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

test('the development stack starts, writes .dev state, answers /readyz and stops on SIGINT', { timeout: 180_000 }, async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'dip-dev-stack-'));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  const stack = spawn(process.execPath, ['--import', 'tsx', 'scripts/dev-stack.ts', '--state', state, '--port', '0'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (stack.exitCode === null) stack.kill('SIGKILL');
  });
  let output = '';
  stack.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  stack.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => stack.on('exit', (code) => resolve(code)));

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const match = /parent {4}(http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match) {
        clearInterval(timer);
        resolve(match[1]!);
      } else if (stack.exitCode !== null) {
        clearInterval(timer);
        reject(new Error(`dev-stack exited early:\n${output}`));
      }
    }, 100);
  });

  assert.match(output, /Development stack is up/);
  assert.equal((await fetch(`${url}/readyz`)).status, 200);
  assert.match(readFileSync(join(state, 'nsm-root.pem'), 'utf8'), /^-----BEGIN CERTIFICATE-----/);
  const issuer = JSON.parse(readFileSync(join(state, 'srt-issuer.json'), 'utf8')) as { iss: unknown; aud: unknown; jwk: Record<string, unknown> };
  assert.equal(typeof issuer.iss, 'string');
  assert.ok(issuer.aud === null || typeof issuer.aud === 'string', 'aud is null or text');
  assert.equal(typeof issuer.jwk.d, 'string');
  assert.equal(typeof issuer.jwk.kid, 'string');
  assert.equal(typeof issuer.jwk.alg, 'string');
  assert.ok(existsSync(join(state, 'enclave.sock')), 'the enclave socket exists');

  stack.kill('SIGINT');
  assert.equal(await exited, 0, output);
  await assert.rejects(fetch(`${url}/healthz`));
  assert.equal(existsSync(join(state, 'enclave.sock')), false);
});
