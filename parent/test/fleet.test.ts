// The fleet of enclaves behind one parent (SPEC §6, §9), in-process against fake enclaves and a
// stand-in KMS: unlock on (re)connect, the m_commit check, routing by key_id, readiness.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DipError } from '../../protocol/errors.js';
import { EnclaveFleet, type UnlockFailure } from '../fleet.js';
import type { Keyset } from '../keyset.js';
import { KmsCallError, type KeyCustody } from '../kms.js';
import { EnclavePool } from '../pool.js';
import { FAKE_M_COMMIT, FakeEnclave, defaultHandler } from './fake-enclave.js';
import { waitFor } from './helpers.js';

const KEYSET: Keyset = { kmsKeyId: 'key', deployment: 'test', ciphertextBlob: Uint8Array.of(0xcb, 1, 2, 3), mCommit: FAKE_M_COMMIT };
const OTHER_M_COMMIT = new Uint8Array(32).fill(0x6f);
const RECIPIENT_CIPHERTEXT = Uint8Array.of(0xc0, 0xff, 0xee);

/** A fake enclave with its own key_id that starts locked and unlocks to `mCommit` when handed RECIPIENT_CIPHERTEXT. */
function lockedEnclave(keyId: number, mCommit: Uint8Array = FAKE_M_COMMIT): { enclave: FakeEnclave; seen: string[] } {
  const enclave = new FakeEnclave();
  const seen: string[] = [];
  let unlocked = false;
  enclave.handler = (request) => {
    seen.push(request.op);
    const key_id = new Uint8Array(8).fill(keyId);
    switch (request.op) {
      case 'health':
        return { body: unlocked ? { status: 'ok', version: 'fake', key_id, m_commit: mCommit } : { status: 'locked', version: 'fake', key_id } };
      case 'unlock':
        if (Buffer.compare(request.body.recipient_ciphertext, RECIPIENT_CIPHERTEXT) !== 0) return { error: 'bad_request' };
        unlocked = true;
        return { body: { status: 'ok', epoch: 700, m_commit: mCommit } };
      case 'attest':
      case 'jwks':
      case 'assign':
      case 'refresh':
        if (!unlocked) return { error: 'keys_unavailable' };
        return defaultHandler(request);
      default:
        return defaultHandler(request);
    }
  };
  return { enclave, seen };
}

/** A KMS whose Decrypt answers RECIPIENT_CIPHERTEXT, or fails with `failure` while it is set. */
function stubKms(): KeyCustody & { failure: KmsCallError | null; decrypts: number } {
  return {
    failure: null,
    decrypts: 0,
    generateDataKey: () => Promise.reject(new TypeError('not used here')),
    async decrypt(keyset) {
      this.decrypts++;
      assert.equal(keyset, KEYSET, 'Decrypt is asked with the keyset');
      if (this.failure !== null) throw this.failure;
      return RECIPIENT_CIPHERTEXT;
    },
    close() {},
  };
}

interface Setup {
  fleet: EnclaveFleet;
  failures: Array<[number, UnlockFailure]>;
  unlocks: number[];
}

async function startFleet(t: { after: (fn: () => Promise<void>) => void }, enclaves: FakeEnclave[], custody: KeyCustody): Promise<Setup> {
  for (const e of enclaves) if (!e.sockets.size) await e.start();
  const failures: Setup['failures'] = [];
  const unlocks: number[] = [];
  const fleet = new EnclaveFleet({
    count: enclaves.length,
    keyset: KEYSET,
    custody,
    backoff: { initialMs: 10, maxMs: 50 },
    observer: { unlocked: (i) => unlocks.push(i), unlockFailed: (i, reason) => failures.push([i, reason]) },
    createPool: (index, observer) =>
      new EnclavePool({ connectOptions: { path: enclaves[index]!.path }, size: 2, pipelineDepth: 8, queueLimit: 10, timeoutMs: 5000, backoff: { initialMs: 10, maxMs: 50 }, observer }),
  });
  t.after(async () => {
    await fleet.close();
    for (const e of enclaves) await e.dispose();
  });
  return { fleet, failures, unlocks };
}

const sealedFor = (keyId: number): Uint8Array => new Uint8Array(97).map((_, i) => (i === 0 ? 0x02 : i <= 8 ? keyId : 0x55));

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as DipError).code;
  }
  return 'ok';
}

test('a locked enclave is unlocked on connect: key_request, KMS Decrypt with the keyset, unlock; then it is ready and counted', async (t) => {
  const a = lockedEnclave(0xa1);
  const kms = stubKms();
  const { fleet, unlocks, failures } = await startFleet(t, [a.enclave], kms);
  await waitFor(() => fleet.stateOf(0) === 'ready', 10_000, 'unlocked');
  assert.deepEqual(a.seen.slice(0, 3), ['health', 'key_request', 'unlock'], 'SPEC §9 order');
  assert.equal(kms.decrypts, 1, 'one Decrypt');
  assert.deepEqual(unlocks, [0], 'one unlock counted');
  assert.deepEqual(failures, [], 'no failure');
  assert.deepEqual(fleet.list(), [{ key_id: new Uint8Array(8).fill(0xa1), status: 'ok' }], 'listed ok with its key_id');
  assert.equal(fleet.unavailable(), null, 'ready');
});

test('an enclave whose m_commit after unlock differs from the keyset\'s is out of service and gets no request', async (t) => {
  const good = lockedEnclave(0x01);
  const rogue = lockedEnclave(0x02, OTHER_M_COMMIT);
  const { fleet, failures } = await startFleet(t, [good.enclave, rogue.enclave], stubKms());
  await waitFor(() => fleet.stateOf(0) === 'ready' && fleet.stateOf(1) === 'out_of_service', 10_000, 'judged');
  assert.deepEqual(failures, [[1, 'm_commit_mismatch']], 'the mismatch is counted once');
  assert.deepEqual(fleet.counts(), { ready: 1, locked: 0, unreachable: 0, out_of_service: 1 }, 'by state');
  assert.deepEqual(
    fleet.list().map((e) => e.status),
    ['ok', 'locked'],
    'the out-of-service enclave is listed, not ok',
  );
  const before = rogue.seen.length;
  for (let i = 0; i < 6; i++) await fleet.call('attest', { nonce: new Uint8Array(16) });
  assert.equal(await codeOf(fleet.call('assign', { ip: '192.0.2.1', request: sealedFor(0x02) })), 'key_unknown', 'its key_id is not served');
  assert.equal(rogue.seen.length, before, 'no request reached the out-of-service enclave');
});

test('an enclave already unlocked with another secret (health ok, other m_commit) is out of service without an unlock', async (t) => {
  const rogue = new FakeEnclave();
  rogue.handler = (request) => (request.op === 'health' ? { body: { status: 'ok', version: 'f', key_id: new Uint8Array(8).fill(3), m_commit: OTHER_M_COMMIT } } : defaultHandler(request));
  const { fleet, failures } = await startFleet(t, [rogue], stubKms());
  await waitFor(() => fleet.stateOf(0) === 'out_of_service', 10_000, 'judged');
  assert.deepEqual(failures, [[0, 'm_commit_mismatch']], 'counted');
  assert.equal(fleet.unavailable(), 'enclave_unavailable', 'nothing to serve with');
  assert.equal(await codeOf(fleet.call('jwks', {})), 'enclave_unavailable', 'no traffic to it');
});

test('KMS unreachable: the enclave stays locked, readiness says keys_unavailable, its ops answer keys_unavailable; it unlocks once KMS answers', async (t) => {
  const a = lockedEnclave(0x0a);
  const kms = stubKms();
  kms.failure = new KmsCallError('kms_unreachable');
  const { fleet, failures } = await startFleet(t, [a.enclave], kms);
  await waitFor(() => kms.decrypts >= 2, 10_000, 'retried with backoff');
  assert.equal(fleet.stateOf(0), 'locked', 'still locked');
  assert.equal(fleet.unavailable(), 'keys_unavailable', 'readiness names the reason');
  assert.ok(failures.every(([i, reason]) => i === 0 && reason === 'kms_unreachable'), 'each failure counted as kms_unreachable');
  assert.equal(await codeOf(fleet.call('attest', { nonce: new Uint8Array(16) })), 'keys_unavailable', 'the locked enclave answers');
  assert.equal(await codeOf(fleet.call('assign', { ip: '192.0.2.1', request: sealedFor(0x0a) })), 'keys_unavailable', 'a request for its key goes to it');
  kms.failure = null;
  await waitFor(() => fleet.stateOf(0) === 'ready', 10_000, 'unlocked after KMS came back');
  assert.equal(fleet.unavailable(), null, 'ready');
});

test('KMS refusing and the enclave refusing unlock are told apart', async (t) => {
  const a = lockedEnclave(0x0b);
  const kms = stubKms();
  kms.failure = new KmsCallError('kms_refused');
  const { fleet, failures } = await startFleet(t, [a.enclave], kms);
  await waitFor(() => failures.length >= 1, 10_000, 'a failure');
  assert.deepEqual(failures[0], [0, 'kms_refused'], 'KMS said no');
  kms.failure = null;
  const original = a.enclave.handler;
  a.enclave.handler = (request) => (request.op === 'unlock' ? { error: 'bad_request' } : original(request));
  await waitFor(() => failures.some(([, reason]) => reason === 'enclave_refused'), 10_000, 'the enclave refused');
  assert.equal(fleet.stateOf(0), 'locked', 'still locked');
});

test('sealed requests go to the enclave whose key_id they name; attest alternates between ready enclaves; an unknown key_id is key_unknown without forwarding', async (t) => {
  const one = lockedEnclave(0x11);
  const two = lockedEnclave(0x22);
  const { fleet } = await startFleet(t, [one.enclave, two.enclave], stubKms());
  await waitFor(() => fleet.counts().ready === 2, 10_000, 'both ready');
  const count = (seen: string[], op: string): number => seen.filter((o) => o === op).length;
  await fleet.call('assign', { ip: '192.0.2.1', request: sealedFor(0x22) });
  await fleet.call('refresh', { ip: '192.0.2.1', request: sealedFor(0x11) });
  assert.deepEqual([count(one.seen, 'assign'), count(two.seen, 'assign')], [0, 1], 'assign by key_id');
  assert.deepEqual([count(one.seen, 'refresh'), count(two.seen, 'refresh')], [1, 0], 'refresh by key_id');
  for (let i = 0; i < 4; i++) await fleet.call('attest', { nonce: new Uint8Array(16) });
  assert.deepEqual([count(one.seen, 'attest'), count(two.seen, 'attest')], [2, 2], 'attest spread over both');
  const before = one.seen.length + two.seen.length;
  assert.equal(await codeOf(fleet.call('assign', { ip: '192.0.2.1', request: sealedFor(0x33) })), 'key_unknown', 'no enclave has key 33…');
  assert.equal(one.seen.length + two.seen.length, before, 'neither enclave saw it');
  assert.throws(() => fleet.call('unlock', { recipient_ciphertext: new Uint8Array(1) }), TypeError, 'custody ops are not routed');
});

test('an enclave that restarts is unreachable, then checked again on reconnect: its new key_id is learnt and it is unlocked again', async (t) => {
  const first = lockedEnclave(0x41);
  const kms = stubKms();
  const { fleet, unlocks } = await startFleet(t, [first.enclave], kms);
  await waitFor(() => fleet.stateOf(0) === 'ready', 10_000, 'first unlock');
  await first.enclave.stop();
  await waitFor(() => fleet.stateOf(0) === 'unreachable', 10_000, 'lost');
  assert.deepEqual(fleet.list(), [], 'an unreachable enclave is not listed');
  assert.equal(await codeOf(fleet.call('assign', { ip: '192.0.2.1', request: sealedFor(0x41) })), 'key_unknown', 'its old key is not served');
  // The same socket path, a new process: a new boot key, locked again.
  const restarted = lockedEnclave(0x42);
  first.enclave.handler = restarted.enclave.handler;
  await first.enclave.start();
  await waitFor(() => fleet.stateOf(0) === 'ready' && unlocks.length === 2, 10_000, 'unlocked again');
  assert.deepEqual(fleet.list(), [{ key_id: new Uint8Array(8).fill(0x42), status: 'ok' }], 'the new key_id');
  assert.equal(kms.decrypts, 2, 'one Decrypt per start');
});
