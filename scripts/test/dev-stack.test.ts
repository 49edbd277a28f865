// `make dev` as a newcomer runs it: the development stack comes up with an enclave on a Unix
// socket, the KMS emulator, the parent, the token issuer and the DIP service (with its operator
// routes) on 127.0.0.1, writes the SPEC §8 state files (the keyset and the issuer key once,
// token-keys.json), answers /readyz and the issuer's directory, assigns through the service with
// a token from the issuer, stops cleanly on Ctrl-C (SIGINT), and after a restart with the same
// state directory still refreshes, through the service, a DRT issued before it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEV_PCRS } from '../../client/manifest.js';
import { mintDevSrt, parseDevIssuer } from '../../client/tokens.js';
import { ClientError } from '../../client/errors.js';
import { getToken, parseTokenKeys, verifySavedToken } from '../../client/privacy-pass.js';
import { assignThroughService, refreshThroughService } from '../../client/service-flows.js';
import { DEV_RANGES } from '../dev-pool.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Running {
  url: string;
  serviceUrl: string;
  adminUrl: string;
  issuerUrl: string;
  kmsUrl: string;
  output: () => string;
  interrupt(): Promise<number | null>;
}

async function startStack(t: { after: (fn: () => void) => void }, state: string): Promise<Running> {
  const stack = spawn(process.execPath, ['--import', 'tsx', 'scripts/dev-stack.ts', '--state', state, '--port', '0', '--kms-port', '0', '--issuer-port', '0', '--service-port', '0', '--admin-port', '0'], {
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
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setInterval(() => {
      const found = /service {3}(http:\/\/127\.0\.0\.1:\d+)[^]*admin {5}(http:\/\/127\.0\.0\.1:\d+)[^]*kms {7}(http:\/\/127\.0\.0\.1:\d+)[^]*parent {4}(http:\/\/127\.0\.0\.1:\d+)[^]*issuer {4}(http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (found) {
        clearInterval(timer);
        resolve(found);
      } else if (stack.exitCode !== null) {
        clearInterval(timer);
        reject(new Error(`dev-stack exited early:\n${output}`));
      }
    }, 100);
  });
  return {
    serviceUrl: match[1]!,
    adminUrl: match[2]!,
    kmsUrl: match[3]!,
    url: match[4]!,
    issuerUrl: match[5]!,
    output: () => output,
    interrupt: async () => {
      stack.kill('SIGINT');
      return exited;
    },
  };
}

test('the development stack starts with the KMS emulator, creates the keyset once, answers /readyz, stops on SIGINT, and refreshes an old DRT after a restart', { timeout: 300_000 }, async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'dip-dev-stack-'));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  const first = await startStack(t, state);

  assert.match(first.output(), /Development stack is up/, 'says it is up');
  assert.match(first.output(), /keyset\.json .*created now/, 'the keyset was created on the first start');
  assert.equal((await fetch(`${first.url}/readyz`)).status, 200, 'ready: the enclave was unlocked');
  assert.match(readFileSync(join(state, 'nsm-root.pem'), 'utf8'), /^-----BEGIN CERTIFICATE-----/, 'nsm-root.pem');
  const issuerText = readFileSync(join(state, 'srt-issuer.json'), 'utf8');
  const issuer = JSON.parse(issuerText) as { iss: unknown; aud: unknown; jwk: Record<string, unknown> };
  assert.equal(typeof issuer.iss, 'string', 'iss');
  assert.ok(issuer.aud === null || typeof issuer.aud === 'string', 'aud is null or text');
  assert.equal(typeof issuer.jwk.d, 'string', 'the private key');
  assert.ok(existsSync(join(state, 'enclave.sock')), 'the enclave socket exists');
  const keyset = readFileSync(join(state, 'keyset.json'), 'utf8');
  const directory = await fetch(`${first.issuerUrl}/.well-known/private-token-issuer-directory`);
  assert.equal(directory.status, 200, 'the issuer answers its directory');
  const listed = (await directory.json()) as { 'token-keys': Array<{ 'token-type': number; 'token-key': string }> };
  assert.equal(listed['token-keys'][0]?.['token-type'], 2, 'a token type 0x0002 key');
  const tokenKeys = readFileSync(join(state, 'token-keys.json'), 'utf8');
  const pinned = JSON.parse(tokenKeys) as { 'token-keys': Array<{ 'token-key': string }> };
  assert.deepEqual(pinned['token-keys'].map((k) => k['token-key']), listed['token-keys'].map((k) => k['token-key']), 'token-keys.json pins the listed key');
  assert.deepEqual(JSON.parse(keyset).encryption_context, { 'dip:deployment': 'dev' }, 'the development keyset');

  const trust = (): { root: string; expectedPcrs: typeof DEV_PCRS } => ({ root: readFileSync(join(state, 'nsm-root.pem'), 'utf8'), expectedPcrs: DEV_PCRS });
  const dev = parseDevIssuer(issuerText);
  const srt = await mintDevSrt(dev, { sub: 'sub-dev-stack-restart', did: 0 });

  // SPEC §10–11 end to end: a token from the real issuer, pinned by token-keys.json, redeemed at the service.
  const config = parseTokenKeys(tokenKeys);
  const token = await getToken({ issuerUrl: first.issuerUrl, srt, config });
  verifySavedToken(token.encoded, config);
  const assigned = await assignThroughService({ url: first.serviceUrl, trust: trust(), srt, pinned: config, token: token.encoded });
  assert.match(assigned.ip, /^(198\.51\.100\.\d{1,3}|2001:db8:d1::[0-9a-f]{1,2})$/, `the service handed out an address of the development pool (${DEV_RANGES.join(', ')})`);
  const pool = (await (await fetch(`${first.adminUrl}/admin/pool`)).json()) as { pool: { reserved: number } };
  assert.equal(pool.pool.reserved, 1, 'the operator route counts the reservation');
  await assert.rejects(
    getToken({ issuerUrl: first.issuerUrl, srt, config }),
    (e: unknown) => e instanceof ClientError && e.code === 'already_issued' && e.fromServer,
    'a second token for the same subscription version is already_issued',
  );
  const afterReset = await getToken({ issuerUrl: first.issuerUrl, srt: await mintDevSrt(dev, { sub: 'sub-dev-stack-restart', did: 1 }), config });
  assert.notEqual(afterReset.encoded, token.encoded, 'a support reset (did + 1) opens one more token');

  assert.equal(await first.interrupt(), 0, 'SIGINT stops the stack cleanly');
  await assert.rejects(fetch(`${first.url}/healthz`), 'the parent is gone');
  await assert.rejects(fetch(`${first.kmsUrl}/`), 'the KMS emulator is gone');
  await assert.rejects(fetch(`${first.issuerUrl}/healthz`), 'the issuer is gone');
  await assert.rejects(fetch(`${first.serviceUrl}/healthz`), 'the DIP service is gone');
  assert.equal(existsSync(join(state, 'enclave.sock')), false, 'the socket is removed');

  const second = await startStack(t, state);
  assert.doesNotMatch(second.output(), /created now/, 'the keyset is kept');
  assert.equal(readFileSync(join(state, 'keyset.json'), 'utf8'), keyset, 'unchanged');
  assert.equal(readFileSync(join(state, 'token-keys.json'), 'utf8'), tokenKeys, 'the issuer keeps its key across a restart');
  const refreshed = await refreshThroughService({ url: second.serviceUrl, trust: trust(), srt, drt: assigned.drt });
  assert.equal(refreshed.ip, assigned.ip, 'the DRT from before the restart still refreshes through the service: its reservation is kept, and the same M through KMS');
  await assert.rejects(
    assignThroughService({ url: second.serviceUrl, trust: trust(), srt, pinned: config, token: token.encoded }),
    (e: unknown) => e instanceof ClientError && e.code === 'token_spent',
    'the spent token stays spent across the restart',
  );
  assert.equal(await second.interrupt(), 0, 'stops again');
});
