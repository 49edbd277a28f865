// Key custody figures (SPEC §9, issue 10), development stack on loopback: the time from starting a
// (locked) enclave process to the parent's /readyz saying it is unlocked through the KMS emulator,
// and how many key_request → KMS Decrypt (AWS SDK) → unlock rounds per second one enclave takes.
//
//   npx tsx scripts/bench-kms.ts [--starts N] [--seconds S]

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readKeyset } from '../parent/keyset.js';
import { createKmsCustody } from '../parent/kms.js';
import { parseResponseBody } from '../protocol/messages.js';
import { startParent } from '../parent/test/processes.js';
import { runEnclaveProcess } from '../test/support/enclave.js';
import { FrameClient } from '../test/support/frame-client.js';
import { startTestCustody } from '../test/support/kms.js';

const { values } = parseArgs({ options: { starts: { type: 'string' }, seconds: { type: 'string' } } });
const starts = Number(values.starts ?? '5');
const seconds = Number(values.seconds ?? '5');

const custody = await startTestCustody();
Object.assign(process.env, custody.env);
const dir = mkdtempSync(join(tmpdir(), 'dip-bench-kms-'));
const socket = join(dir, 'enclave.sock');
const { parent, port } = await startParent(['--enclave', `unix:${socket}`, '--pool-size', '1', ...custody.args], custody.env);
const readyz = async (): Promise<boolean> => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status === 200;

const startToUnlocked: number[] = [];
let enclave: ReturnType<typeof runEnclaveProcess> | null = null;
for (let i = 0; i < starts; i++) {
  const started = performance.now();
  enclave = runEnclaveProcess(['--dev', dir, '--listen', `unix:${socket}`]);
  // The emulator trusts each new development root as soon as the enclave has written it.
  let trusted = false;
  while (!(await readyz())) {
    if (!trusted && enclave.output().includes('"event":"listening"')) {
      custody.kms.trust(readFileSync(join(dir, 'nsm-root.pem'), 'utf8'));
      trusted = true;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  startToUnlocked.push(performance.now() - started);
  if (i < starts - 1) {
    enclave.child.kill('SIGTERM');
    await enclave.exited;
    while (await readyz()) await new Promise((r) => setTimeout(r, 10));
  }
}

// Rounds on the live (already unlocked) enclave: unlock with the same M again is ok (SPEC §5).
const keyset = readKeyset(custody.keysetPath);
if (typeof keyset === 'string') throw new Error(keyset);
const kms = createKmsCustody({ region: 'us-east-1', endpoint: custody.kms.url });
const client = await FrameClient.connect({ kind: 'unix', path: socket });
let rounds = 0;
const until = performance.now() + seconds * 1000;
while (performance.now() < until) {
  const requested = await client.request('key_request');
  if (!requested.ok) throw new Error(requested.error.code);
  const ciphertext = await kms.decrypt(keyset, parseResponseBody('key_request', requested.body)!.document);
  const unlocked = await client.request('unlock', { recipient_ciphertext: ciphertext });
  if (!unlocked.ok) throw new Error(unlocked.error.code);
  rounds++;
}
client.close();
kms.close();

const sorted = [...startToUnlocked].sort((a, b) => a - b);
process.stdout.write(
  `enclave start → unlocked through the parent and the KMS emulator, ${starts} starts: median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} ms, min ${sorted[0]!.toFixed(0)} ms, max ${sorted.at(-1)!.toFixed(0)} ms\n` +
    `key_request + KMS Decrypt (SDK, loopback) + unlock, sequential on one enclave: ${(rounds / seconds).toFixed(1)} rounds/s (${rounds} in ${seconds} s)\n`,
);
enclave?.child.kill('SIGTERM');
await enclave?.exited;
await parent.stop();
await custody.close();
rmSync(dir, { recursive: true, force: true });
