// The emulator's process (SPEC §8, §9): --help, refusal in a production build, and refusing
// to start without a readable root, a valid PCR policy or a sound key file.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { KEY_FILE } from '../keystore.js';
import { MAIN, newNsm, stateDir, type TestNsm } from './helpers.js';

let nsm: TestNsm;
before(async () => {
  nsm = await newNsm();
});
after(() => nsm.close());

function run(args: readonly string[], build = 'development'): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', env: { ...process.env, DIP_BUILD: build }, timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('--help prints every flag and exits 0', () => {
  const { status, stdout } = run(['--help']);
  assert.equal(status, 0, 'exit status');
  for (const flag of ['--listen', '--state-dir', '--root', '--pcr-policy', '--allow-no-recipient']) assert.ok(stdout.includes(flag), `--help lists ${flag}`);
});

test('a production build refuses to run the emulator, even for --help', () => {
  const { status, stderr, stdout } = run(['--help'], 'production');
  assert.equal(status, 1, 'exit status');
  assert.match(stderr, /production build/, 'says why');
  assert.equal(stdout, '', 'prints nothing else');
});

test('a bad flag exits 2 with a message', () => {
  const { status, stderr } = run(['--listen', '192.0.2.1:8083']);
  assert.equal(status, 2, 'exit status');
  assert.match(stderr, /loopback/, 'names the rule');
});

test('it will not start without a readable root, a valid PCR policy or a sound key file', () => {
  const noRoot = stateDir(nsm);
  writeFileSync(join(noRoot, 'nsm-root.pem'), 'not a certificate');
  assert.match(run(['--state-dir', noRoot, '--listen', '127.0.0.1:0']).stderr, /--root/, 'an invalid root');

  const noPolicy = stateDir(nsm);
  assert.match(run(['--state-dir', noPolicy, '--listen', '127.0.0.1:0', '--pcr-policy', join(noPolicy, 'missing')]).stderr, /--pcr-policy .* is not readable/, 'a missing policy');
  writeFileSync(join(noPolicy, 'kms-pcr-policy.txt'), '# nothing\n');
  const empty = run(['--state-dir', noPolicy, '--listen', '127.0.0.1:0']);
  assert.equal(empty.status, 1, 'an empty policy: exit status');
  assert.match(empty.stderr, /at least one PCR0/, 'an empty policy');

  const badKey = stateDir(nsm);
  writeFileSync(join(badKey, KEY_FILE), '{}');
  assert.match(run(['--state-dir', badKey, '--listen', '127.0.0.1:0']).stderr, /not a valid KMS emulator key file/, 'a damaged key file');
});

test('an address in use stops it with exit 1 and the reason', async () => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  try {
    const { status, stderr } = run(['--state-dir', stateDir(nsm), '--listen', `127.0.0.1:${(taken.address() as AddressInfo).port}`]);
    assert.equal(status, 1, 'exit status');
    assert.match(stderr, /EADDRINUSE/, 'the reason');
  } finally {
    await new Promise((resolve) => taken.close(resolve));
  }
});
