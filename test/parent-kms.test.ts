// Key custody through the real parent (SPEC §6, §9; issue 10): real development enclaves started
// locked, the KMS emulator's domain and server in-process, the AWS SDK in the parent process.
// `keyset create`, unlock on connect and reconnect, the m_commit check, several enclaves routed by
// key_id, a KMS that does not answer, and what never reaches the parent's output.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeBase64url, encodeBase64url } from '../protocol/base64url.js';
import { Tagged, decodeCbor, isCborMap } from '../protocol/cbor.js';
import { ERROR_MESSAGES } from '../protocol/errors.js';
import { keyIdOf } from '../protocol/hpke.js';
import { http, postJson, waitFor } from '../parent/test/helpers.js';
import { startParent, startTs, type Child } from '../parent/test/processes.js';
import { mintSrt, openTokens, runEnclaveProcess, sealAssign, sealRefresh, spawnEnclave, type DevIssuer } from './support/enclave.js';
import { FrameClient } from './support/frame-client.js';
import { DUMMY_AWS_ENV, startTestKms, type TestKms } from './support/kms.js';
import { assertNoLeak } from './support/secrets.js';

interface LockedEnclave {
  socket: string;
  address: string;
  stop(): Promise<void>;
  output(): string;
}

let dir: string;
let kms: TestKms;
let keysetPath: string;
const DEPLOYMENT = 'test-deployment';
const parents: Child[] = [];
const enclaves: LockedEnclave[] = [];

/** A development enclave on DIR/NAME.sock, left locked; KMS is told to trust its fresh NSM root. */
async function startLockedEnclave(name: string): Promise<LockedEnclave> {
  const socket = join(dir, `${name}.sock`);
  const run = runEnclaveProcess(['--dev', dir, '--listen', `unix:${socket}`]);
  const enclave: LockedEnclave = {
    socket,
    address: `unix:${socket}`,
    output: run.output,
    async stop() {
      if (run.child.exitCode === null && run.child.signalCode === null) {
        run.child.kill('SIGTERM');
        await run.exited;
      }
    },
  };
  enclaves.push(enclave);
  await waitFor(() => run.output().includes('"event":"listening"') || run.child.exitCode !== null, 90_000, `enclave ${name} listening`);
  assert.equal(run.child.exitCode, null, `enclave ${name} started: ${run.output()}`);
  kms.trust(readFileSync(join(dir, 'nsm-root.pem'), 'utf8'));
  return enclave;
}

async function parentFor(addresses: string[], kmsUrl = kms.url, extra: string[] = []): Promise<{ parent: Child; port: number }> {
  const args = ['--keyset', keysetPath, '--kms-endpoint', kmsUrl, '--kms-region', 'us-east-1', '--timeout-ms', '60000', '--pool-size', '2', ...extra];
  for (const address of addresses) args.push('--enclave', address);
  const started = await startParent(args, DUMMY_AWS_ENV);
  parents.push(started.parent);
  return started;
}

async function healthOf(socket: string): Promise<Map<unknown, unknown>> {
  const client = await FrameClient.connect({ kind: 'unix', path: socket });
  try {
    const answer = await client.request('health');
    assert.ok(answer.ok, 'health answers');
    return answer.body as Map<unknown, unknown>;
  } finally {
    client.close();
  }
}

/** GET /v1/attestation; returns the boot key of the enclave that answered (unverified: tests only). */
async function bootKeyOf(port: number): Promise<Uint8Array> {
  const reply = await http(port, `/v1/attestation?nonce=${encodeBase64url(crypto.getRandomValues(new Uint8Array(32)))}`);
  assert.equal(reply.status, 200, `attestation: ${reply.text}`);
  let cose = decodeCbor(decodeBase64url((reply.json as { document: string }).document)!);
  if (cose instanceof Tagged) cose = cose.value;
  const payload = decodeCbor((cose as Uint8Array[])[2]!);
  assert.ok(isCborMap(payload), 'the payload is a map');
  return payload.get('public_key') as Uint8Array;
}

const listed = async (port: number): Promise<Array<{ key_id: string; status: string }>> =>
  ((await http(port, '/v1/enclaves')).json as { enclaves: Array<{ key_id: string; status: string }> }).enclaves;

const keysetCreate = (extra: string[] = []): Child =>
  startTs(
    'parent/main.ts',
    ['keyset', 'create', '--enclave', enclaves[0]!.address, '--keyset', keysetPath, '--kms-key-id', kms.key.arn, '--deployment', DEPLOYMENT, '--kms-endpoint', kms.url, ...extra],
    DUMMY_AWS_ENV,
  );

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dip-parent-kms-'));
  keysetPath = join(dir, 'keyset.json');
  kms = await startTestKms(dir);
  await startLockedEnclave('first');
});

after(async () => {
  for (const parent of parents) await parent.stop();
  for (const enclave of enclaves) await enclave.stop();
  await kms.close();
  rmSync(dir, { recursive: true, force: true });
});

test('keyset create: GenerateDataKey for the locked enclave, unlock, and a keyset file of SPEC §9 fields; never over an existing one', async () => {
  const create = keysetCreate(['--kms-region', 'us-east-1']);
  assert.equal(await create.exited, 0, `keyset create succeeds: ${create.stderr()}`);
  const keyset = JSON.parse(readFileSync(keysetPath, 'utf8')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(keyset).sort(), ['ciphertext_blob', 'encryption_context', 'kms_key_id', 'm_commit', 'v'], 'exactly the SPEC §9 fields');
  assert.equal(keyset['v'], 1, 'v');
  assert.equal(keyset['kms_key_id'], kms.key.arn, 'the key asked for');
  assert.deepEqual(keyset['encryption_context'], { 'dip:deployment': DEPLOYMENT }, 'the deployment as encryption context');
  const blob = decodeBase64url(keyset['ciphertext_blob'] as string);
  assert.ok(blob !== null && kms.plaintextOf(blob, DEPLOYMENT)?.length === 32, 'the blob is KMS\'s, holding 32 bytes under this context');
  const health = await healthOf(enclaves[0]!.socket);
  assert.equal(health.get('status'), 'ok', 'the enclave was unlocked');
  assert.deepEqual(decodeBase64url(keyset['m_commit'] as string), health.get('m_commit'), 'm_commit is the one the enclave answered unlock with');
  assert.deepEqual(kms.log.filter((l) => l.startsWith('TrentService.GenerateDataKey')), ['TrentService.GenerateDataKey ok'], 'one GenerateDataKey');
  assert.match(create.stdout(), /"event":"keyset_created","m_commit":"[A-Za-z0-9_-]{43}"/, 'says so with the public m_commit');

  const before = readFileSync(keysetPath, 'utf8');
  const again = keysetCreate();
  assert.equal(await again.exited, 1, 'refused');
  assert.match(again.stderr(), /^parent: keyset_exists: /, 'the coded cause');
  assert.equal(readFileSync(keysetPath, 'utf8'), before, 'the keyset is unchanged');
  assert.equal(kms.log.filter((l) => l.startsWith('TrentService.GenerateDataKey')).length, 1, 'KMS was not asked again');
});

test('KMS unreachable: a locked enclave stays locked, /readyz is 503 keys_unavailable and its ops answer keys_unavailable, until KMS answers', async () => {
  const locked = await startLockedEnclave('second');
  // A port nothing listens on yet: take one, free it, and start KMS there later.
  const probe = await startTestKms(dir);
  const port = probe.port;
  await probe.close();
  const { parent, port: parentPort } = await parentFor([locked.address], `http://127.0.0.1:${port}`);
  await parent.waitForOutput(/"event":"enclave_unlock_failed","enclave":0,"reason":"kms_unreachable"/, 60_000);
  const ready = await http(parentPort, '/readyz');
  assert.deepEqual([ready.status, ready.json], [503, { error: { code: 'keys_unavailable', message: ERROR_MESSAGES.keys_unavailable } }], '/readyz says why');
  const attest = await http(parentPort, `/v1/attestation?nonce=${encodeBase64url(new Uint8Array(32))}`);
  assert.deepEqual([attest.status, (attest.json as { error: { code: string } }).error.code], [503, 'keys_unavailable'], 'the locked enclave answers through the parent');
  assert.deepEqual((await listed(parentPort)).map((e) => e.status), ['locked'], 'listed locked');
  assert.match((await http(parentPort, '/metrics')).text, /dip_parent_enclave_unlock_failures_total\{reason="kms_unreachable"\} [1-9]/, 'counted');

  const late = await startTestKms(dir, port);
  late.trust(readFileSync(join(dir, 'nsm-root.pem'), 'utf8'));
  try {
    await waitFor(async () => (await http(parentPort, '/readyz')).status === 200, 60_000, 'unlocked once KMS answers');
    assert.deepEqual((await listed(parentPort)).map((e) => e.status), ['ok'], 'listed ok');
    assert.deepEqual(late.log, ['TrentService.Decrypt ok'], 'one Decrypt, with the keyset');
  } finally {
    await parent.stop();
    await late.close();
  }
});

test('two enclaves behind one parent: attest lands on either, the DRT of a killed one refreshes at the other, an unknown key_id is 421, and a restarted enclave is unlocked again without restarting the parent', async () => {
  const [first, second] = enclaves as [LockedEnclave, LockedEnclave];
  const { parent, port } = await parentFor([first.address, second.address]);
  await waitFor(async () => (await listed(port)).filter((e) => e.status === 'ok').length === 2, 60_000, 'both ok');
  const keyIds = new Set((await listed(port)).map((e) => e.key_id));
  assert.equal(keyIds.size, 2, 'two boot keys');
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) seen.add(encodeBase64url(keyIdOf(await bootKeyOf(port))));
  assert.deepEqual(seen, keyIds, 'attestations land on both enclaves');

  const issuer = JSON.parse(readFileSync(join(dir, 'srt-issuer.json'), 'utf8')) as DevIssuer;
  const srt = await mintSrt(issuer, { sub: 'sub-kms-two-enclaves' });
  const bootKey = await bootKeyOf(port);
  const assignedBy = encodeBase64url(keyIdOf(bootKey));
  const sealed = sealAssign(bootKey, srt);
  const assign = await postJson(port, '/v1/dip/assign', { ip: '198.51.100.9', request: encodeBase64url(sealed.request) });
  assert.equal(assign.status, 200, `assign: ${assign.text}`);
  const { drt } = openTokens(sealed.context, decodeBase64url((assign.json as { response: string }).response)!);

  const unknown = new Uint8Array(200).fill(0x5a);
  unknown[0] = 0x02;
  const refused = await postJson(port, '/v1/dip/assign', { ip: '198.51.100.9', request: encodeBase64url(unknown) });
  assert.deepEqual([refused.status, refused.json], [421, { error: { code: 'key_unknown', message: ERROR_MESSAGES.key_unknown } }], 'no enclave has key 5a…');

  // Kill the enclave that assigned; the other, unlocked with the same M through KMS, refreshes its DRT.
  // /v1/enclaves lists in --enclave order, which is the order they were started in.
  const killed = enclaves[(await listed(port)).findIndex((e) => e.key_id === assignedBy)]!;
  await killed.stop();
  await waitFor(async () => (await listed(port)).length === 1, 30_000, 'one enclave left');
  assert.notEqual((await listed(port))[0]!.key_id, assignedBy, '/v1/enclaves no longer lists the killed enclave');
  const otherBootKey = await bootKeyOf(port);
  assert.notEqual(encodeBase64url(keyIdOf(otherBootKey)), assignedBy, 'attesting again reaches the other enclave');
  const refresh = sealRefresh(otherBootKey, srt, drt);
  const refreshed = await postJson(port, '/v1/dip/refresh', { ip: '198.51.100.9', request: encodeBase64url(refresh.request) });
  assert.equal(refreshed.status, 200, `refresh at the other enclave: ${refreshed.text}`);
  assert.ok(openTokens(refresh.context, decodeBase64url((refreshed.json as { response: string }).response)!).drt.length > 0, 'new tokens');

  // The killed enclave comes back on its socket, locked with a new boot key: the parent unlocks it.
  const unlocksBefore = (parent.stdout().match(/"event":"enclave_unlocked"/g) ?? []).length;
  const name = killed.socket.endsWith('first.sock') ? 'first' : 'second';
  await startLockedEnclave(name);
  await waitFor(async () => (await listed(port)).filter((e) => e.status === 'ok').length === 2, 60_000, 'the restarted enclave is ok again');
  // The log line is written on the parent's next turn and reaches this process through a pipe: wait
  // for it rather than assume it arrived with the /v1/enclaves answer.
  const unlocks = (): number => (parent.stdout().match(/"event":"enclave_unlocked"/g) ?? []).length;
  await waitFor(() => unlocks() > unlocksBefore, 10_000, 'the unlock is logged');
  assert.equal(unlocks(), unlocksBefore + 1, 'unlocked through KMS once more');
  const now = new Set((await listed(port)).map((e) => e.key_id));
  assert.ok(!now.has(assignedBy), 'the restarted enclave has a new key_id');
  assert.match((await http(port, '/metrics')).text, /dip_parent_enclaves\{state="ready"\} 2/, 'two ready');

  // Privacy (SPEC §1, §9): M, the blob and KMS's CMS answers never reach the parent's output or metrics.
  const keyset = JSON.parse(readFileSync(keysetPath, 'utf8')) as { ciphertext_blob: string };
  const masterSecret = kms.plaintextOf(decodeBase64url(keyset.ciphertext_blob)!, DEPLOYMENT)!;
  const metrics = (await http(port, '/metrics')).text;
  await parent.stop();
  const secrets = [
    { what: 'M', value: masterSecret },
    { what: 'CiphertextBlob', value: decodeBase64url(keyset.ciphertext_blob)!.subarray(0, 48) },
    ...kms.answered.map((b64, i) => ({ what: `KMS answer ${i}`, value: Buffer.from(b64, 'base64').subarray(16, 64) })),
  ];
  assert.ok(kms.answered.length >= 3, 'KMS answered GenerateDataKey and Decrypts');
  assertNoLeak(parent.stdout() + parent.stderr(), secrets, "the parent's output");
  assertNoLeak(metrics, secrets, "the parent's metrics");
});

test('an enclave handed another secret is caught by the m_commit check: out of service, listed not ok, counted, no traffic', async () => {
  // Unlocked beforehand with some other M, as a compromised parent could do (SPEC §9).
  const rogue = await spawnEnclave({ masterSecret: new Uint8Array(32).fill(0x42) });
  try {
    const { parent, port } = await parentFor([`unix:${rogue.address.path}`]);
    await parent.waitForOutput(/"event":"enclave_unlock_failed","enclave":0,"reason":"m_commit_mismatch"/, 60_000);
    assert.ok(await parent.waitForOutput(/"event":"enclave_state","enclave":0,"state":"out_of_service"/, 10_000), 'logged');
    const rogueKeyId = encodeBase64url((await healthOf(rogue.address.path)).get('key_id') as Uint8Array);
    assert.deepEqual(await listed(port), [{ key_id: rogueKeyId, status: 'locked' }], 'listed, and not ok');
    const metrics = (await http(port, '/metrics')).text;
    assert.match(metrics, /dip_parent_enclaves\{state="out_of_service"\} 1/, 'by state');
    assert.match(metrics, /dip_parent_enclave_unlock_failures_total\{reason="m_commit_mismatch"\} 1/, 'counted once');
    assert.equal((await http(port, '/readyz')).status, 503, 'not ready');
    const attest = await http(port, `/v1/attestation?nonce=${encodeBase64url(new Uint8Array(32))}`);
    assert.equal((attest.json as { error: { code: string } }).error.code, 'enclave_unavailable', 'no attestation from it');
    await parent.stop();
  } finally {
    await rogue.stop();
  }
});
