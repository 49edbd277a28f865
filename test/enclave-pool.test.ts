// Issue 13: the enclave's worker pool (enclave/io/pool.ts, worker.ts) with real worker threads
// running enclave/main.ts, real crypto and the NSM emulator. One boot key and one M in every
// worker; unlock answered only once all hold M; key_request and unlock in the same worker (SPEC
// §9); a worker killed mid-request: its requests answered `internal`, the others untouched, a
// replacement with the same keys; no worker left: the process must end. Here in test/ because
// unlock needs the KMS emulator's CMS writer, which enclave/ tests may not import.

import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { verifyAttestation } from '../client/attestation.js';
import { DEV_PCRS } from '../client/manifest.js';
import { verifyDat } from '../client/tokens.js';
import { envelopeForRecipient, rsa2048PublicKey } from '../emulators/kms/cms.js';
import { ecJwkThumbprint, mCommitOf } from '../enclave/core/keys.js';
import { srtTrustFromDevIssuer } from '../enclave/core/config.js';
import { createLogger } from '../enclave/io/log.js';
import { startWorkerPool, type PoolOptions, type WorkerPool } from '../enclave/io/pool.js';
import { createEmulatorNsm, type EmulatorNsm } from '../enclave/nsm/emulator.js';
import type { AttestationRequest } from '../enclave/nsm/nsm.js';
import { decodeAttestationPayload } from '../protocol/attestation-document.js';
import { decodeCoseSign1 } from '../protocol/cose.js';
import { DipError, type ErrorCode } from '../protocol/errors.js';
import { keyIdOf } from '../protocol/hpke.js';
import type { EnclaveRequest } from '../protocol/messages.js';
import { jwtClaims, mintSrt, openTokens, sealAssign, sealRefresh, type DevIssuer } from './support/enclave.js';
import { assertNoLeak } from './support/secrets.js';

const ENTRY = new URL('../enclave/main.ts', import.meta.url);
const M = new Uint8Array(32).map((_, i) => (i * 11 + 3) & 0xff);
const IP = '198.51.100.77';

const issuerKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
const issuer: DevIssuer = { iss: 'https://subscriptions.example', aud: null, jwk: { ...issuerKey, kid: ecJwkThumbprint(issuerKey), alg: 'ES256' } };

const emulator: EmulatorNsm = await createEmulatorNsm();
after(() => emulator.close());

/** The emulator, except that documents asked for with `hold` on are kept until release(). */
function holdingNsm() {
  const held: Array<{ request: AttestationRequest; release: () => void }> = [];
  let hold = false;
  let arrived: (() => void) | null = null;
  return {
    held,
    set hold(on: boolean) {
      hold = on;
    },
    /** Resolves once `count` documents are held. */
    async heldCount(count: number): Promise<void> {
      while (held.length < count) await new Promise<void>((resolve) => (arrived = resolve));
    },
    nsm: {
      attestation: async (request: AttestationRequest) => {
        if (hold) {
          await new Promise<void>((resolve) => {
            held.push({ request, release: resolve });
            arrived?.();
          });
        }
        return emulator.attestation(request);
      },
      close: async () => {},
    },
  };
}

interface Started {
  pool: WorkerPool;
  lines: string[];
  fatal: { count: number };
}

async function startPool(overrides: Partial<PoolOptions> = {}): Promise<Started> {
  const lines: string[] = [];
  const fatal = { count: 0 };
  const pool = await startWorkerPool({
    entry: ENTRY,
    size: 2,
    nsm: emulator,
    srtTrust: srtTrustFromDevIssuer(issuer),
    datIssuer: 'https://dip.example',
    version: 'pool-test',
    clockTrusted: true,
    log: createLogger((line) => lines.push(line)),
    onFatal: () => fatal.count++,
    ...overrides,
  });
  after(() => pool.close());
  return { pool, lines, fatal };
}

let nextId = 1;
function call(pool: WorkerPool, op: EnclaveRequest['op'], body: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  return pool.handle({ id: nextId++, op, body } as EnclaveRequest);
}

async function codeOf(promise: Promise<unknown>): Promise<ErrorCode | 'ok'> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof DipError, 'a refusal is a DipError with a code');
    return error.code;
  }
}

/** SPEC §9 as the parent runs it: key_request → a KMS-shaped envelope of M → unlock. */
async function unlock(pool: WorkerPool, masterSecret: Uint8Array = M): Promise<Record<string, unknown>> {
  const { document } = (await call(pool, 'key_request')) as { document: Uint8Array };
  const recipient = rsa2048PublicKey(decodeAttestationPayload(decodeCoseSign1(document).payload).publicKey!);
  assert.ok(recipient !== null, 'key_request gave an RSA-2048 recipient key');
  return call(pool, 'unlock', { recipient_ciphertext: envelopeForRecipient(masterSecret, recipient) });
}

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1200 && !condition(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(condition(), `never happened: ${what}`);
}

const allReady = (pool: WorkerPool) => () => pool.workers().every((w) => w.ready);

/** Sends `count` health requests at once: with the least-loaded dispatch, every worker answers some. */
async function healthOfEveryWorker(pool: WorkerPool, count = 8): Promise<Array<Record<string, unknown>>> {
  const answers = Array.from({ length: count }, () => call(pool, 'health'));
  assert.ok(pool.workers().every((w) => w.inFlight > 0), 'every worker holds some of the requests');
  return Promise.all(answers);
}

describe('enclave worker pool', () => {
  it('starts size workers that all hold one boot key, locked, and names it in every attestation document', async () => {
    const held = holdingNsm();
    const { pool } = await startPool({ nsm: held.nsm });
    assert.equal(pool.workers().length, 2);
    for (const health of await healthOfEveryWorker(pool)) {
      assert.deepEqual(health, { status: 'locked', version: 'pool-test', key_id: keyIdOf(pool.bootPublicKeySpki) }, 'one boot key, locked');
    }
    assert.equal(await codeOf(call(pool, 'attest', { nonce: randomBytes(16) })), 'keys_unavailable', 'SPEC §3: attest needs M');
    await unlock(pool);
    held.hold = true;
    const nonce = randomBytes(32);
    const attests = [call(pool, 'attest', { nonce }), call(pool, 'attest', { nonce })];
    await held.heldCount(2);
    assert.deepEqual(pool.workers().map((w) => w.inFlight), [1, 1], 'one attest in each worker');
    for (const h of held.held) h.release();
    const documents = (await Promise.all(attests)).map((body) => body['document'] as Uint8Array);
    const jwksOf = (await Promise.all(attests)).map((body) => body['jwks'] as Uint8Array);
    for (const [i, document] of documents.entries()) {
      const verified = verifyAttestation(document, { root: emulator.rootCertificatePem, nonce, expectedPcrs: DEV_PCRS });
      assert.deepEqual(verified.publicKey, pool.bootPublicKeySpki, 'every worker attests the same boot key');
      assert.deepEqual(jwksOf[i], jwksOf[0], 'and serves the same JWKS');
    }
  });

  it('answers unlock only when every worker holds M: then all are ok with one m_commit and the same JWKS', async () => {
    const { pool } = await startPool();
    const unlocked = await unlock(pool);
    assert.equal(unlocked['status'], 'ok');
    assert.deepEqual(unlocked['m_commit'], mCommitOf(M));
    for (const health of await healthOfEveryWorker(pool)) {
      assert.equal(health['status'], 'ok', 'no worker is still locked once unlock is answered');
      assert.deepEqual(health['m_commit'], mCommitOf(M));
    }
    const jwks = await Promise.all([call(pool, 'jwks'), call(pool, 'jwks'), call(pool, 'jwks'), call(pool, 'jwks')]);
    for (const body of jwks) assert.deepEqual(body['jwks'], jwks[0]!['jwks'], 'every worker derives the same DAT keys');
    assert.deepEqual(await unlock(pool), unlocked, 'the same M again is ok (SPEC §5)');
    assert.equal(await codeOf(unlock(pool, new Uint8Array(32).fill(9))), 'bad_request', 'another M is refused');
    for (const health of await healthOfEveryWorker(pool)) assert.deepEqual(health['m_commit'], mCommitOf(M), 'and every worker keeps the first M');
  });

  it('assigns in one worker and refreshes in another: DATs verify against the JWKS every worker serves', async () => {
    const { pool } = await startPool();
    await unlock(pool);
    const srt = await mintSrt(issuer, { sub: 'sub-pool', did: 3 });
    const sealed = sealAssign(pool.bootPublicKeySpki, srt);
    const assigned = await call(pool, 'assign', { ip: IP, request: sealed.request });
    const { drt } = openTokens(sealed.context, assigned['response'] as Uint8Array);
    const jwks = (await call(pool, 'jwks'))['jwks'] as Uint8Array;
    const refreshes = Array.from({ length: 12 }, () => sealRefresh(pool.bootPublicKeySpki, srt, drt));
    const answers = refreshes.map((r) => call(pool, 'refresh', { ip: IP, request: r.request }));
    assert.ok(pool.workers().every((w) => w.inFlight > 0), 'both workers refresh');
    for (const [i, body] of (await Promise.all(answers)).entries()) {
      const tokens = openTokens(refreshes[i]!.context, body['response'] as Uint8Array);
      assert.equal((await verifyDat(tokens.dat, jwks, { ip: IP })).ip, IP);
      assert.equal(jwtClaims(tokens.drt)['sub'], 'sub-pool');
    }
  });

  it('keeps bad input a coded error in a worker: a refresh with a DRT for another IP is ip_mismatch, an unknown boot key key_unknown', async () => {
    const { pool } = await startPool();
    await unlock(pool);
    const srt = await mintSrt(issuer, { sub: 'sub-codes' });
    const sealed = sealAssign(pool.bootPublicKeySpki, srt);
    const { drt } = openTokens(sealed.context, (await call(pool, 'assign', { ip: IP, request: sealed.request }))['response'] as Uint8Array);
    assert.equal(await codeOf(call(pool, 'refresh', { ip: '198.51.100.78', request: sealRefresh(pool.bootPublicKeySpki, srt, drt).request })), 'ip_mismatch');
    const otherBootKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    assert.equal(await codeOf(call(pool, 'assign', { ip: IP, request: sealAssign(new Uint8Array(otherBootKey), srt).request })), 'key_unknown');
  });

  it('passes each clock check on to every worker (SPEC §3: clock_untrusted, then served again)', async () => {
    const { pool } = await startPool({ clockTrusted: false });
    await unlock(pool);
    const srt = await mintSrt(issuer, { sub: 'sub-clock' });
    const assigns = () => Promise.all([1, 2, 3, 4].map(() => codeOf(call(pool, 'assign', { ip: IP, request: sealAssign(pool.bootPublicKeySpki, srt).request }))));
    assert.deepEqual(await assigns(), ['clock_untrusted', 'clock_untrusted', 'clock_untrusted', 'clock_untrusted']);
    pool.setClockTrusted(true);
    assert.deepEqual(await assigns(), ['ok', 'ok', 'ok', 'ok']);
    pool.setClockTrusted(false);
    assert.deepEqual(await assigns(), ['clock_untrusted', 'clock_untrusted', 'clock_untrusted', 'clock_untrusted']);
  });

  it('answers the requests of a worker killed mid-request with internal, serves the others, and replaces it with one holding the same keys', async () => {
    const held = holdingNsm();
    const { pool, lines, fatal } = await startPool({ nsm: held.nsm });
    await unlock(pool);
    held.hold = true;
    const nonce = randomBytes(16);
    const first = call(pool, 'attest', { nonce });
    const second = call(pool, 'attest', { nonce });
    await held.heldCount(2);
    const [victim, survivor] = pool.workers();
    assert.deepEqual([victim!.inFlight, survivor!.inFlight], [1, 1], 'each worker is in the middle of one attest');
    await victim!.thread.terminate();
    const outcomes = [codeOf(first), codeOf(second)];
    assert.equal(await Promise.race(outcomes), 'internal', 'the killed worker\'s request is answered at once, internal');
    for (const h of held.held) h.release();
    held.hold = false;
    assert.deepEqual((await Promise.all(outcomes)).sort(), ['internal', 'ok'], 'the other worker\'s request is untouched');

    await waitFor(allReady(pool), 'the replacement is ready');
    assert.notEqual(pool.workers()[0]!.thread, victim!.thread, 'a new thread in the slot');
    for (const health of await healthOfEveryWorker(pool)) {
      assert.deepEqual(health['key_id'], keyIdOf(pool.bootPublicKeySpki), 'the replacement holds the boot key');
      assert.deepEqual(health['m_commit'], mCommitOf(M), 'and M');
    }
    const srt = await mintSrt(issuer, { sub: 'sub-after-death' });
    const sealed = sealAssign(pool.bootPublicKeySpki, srt);
    const { drt } = openTokens(sealed.context, (await call(pool, 'assign', { ip: IP, request: sealed.request }))['response'] as Uint8Array);
    const refreshes = await Promise.all([1, 2, 3, 4].map(() => codeOf(call(pool, 'refresh', { ip: IP, request: sealRefresh(pool.bootPublicKeySpki, srt, drt).request }))));
    assert.deepEqual(refreshes, ['ok', 'ok', 'ok', 'ok'], 'both workers refresh DRTs again');
    const exits = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e['event'] === 'worker_exited');
    assert.deepEqual(exits.map((e) => e['inFlight']), [1], 'one worker_exited event, with the one request it held');
    assert.equal(fatal.count, 0);
    assertNoLeak(lines.join(''), [{ what: 'M', value: M }, { what: 'nonce', value: nonce }, { what: 'IP', value: IP, hashed: true }], 'the pool\'s log lines');
  });

  it('ends only the worker a bug escapes from, quietly (exit 70, no error text), and replaces it', async () => {
    const { pool, lines, fatal } = await startPool();
    await unlock(pool);
    const victim = pool.workers()[1]!.thread;
    const exit = new Promise<number>((resolve) => victim.once('exit', resolve));
    // A message no pool sends: its handler throws outside every request's try (a TypeError).
    victim.postMessage({ kind: 'give', port: null, secret: 'sub-escaped-bug 203.0.113.99' });
    assert.equal(await exit, 70, 'the worker ends with EXIT_CRASHED');
    await waitFor(allReady(pool), 'the replacement is ready');
    for (const health of await healthOfEveryWorker(pool)) assert.deepEqual(health['m_commit'], mCommitOf(M), 'it holds M');
    const exits = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e['event'] === 'worker_exited');
    assert.deepEqual(exits.map((e) => [e['exitCode'], e['inFlight']]), [[70, 0]]);
    assert.ok(!lines.join('').includes('sub-escaped-bug') && !lines.join('').includes('TypeError'), 'no error text in the log');
    assert.equal(fatal.count, 0);
  });

  it('keeps requests beyond maxInFlightPerWorker in the main thread: a worker\'s death does not touch them', async () => {
    const held = holdingNsm();
    const { pool } = await startPool({ nsm: held.nsm, maxInFlightPerWorker: 1 });
    await unlock(pool);
    held.hold = true;
    const nonce = randomBytes(16);
    const attests = [1, 2, 3, 4].map(() => codeOf(call(pool, 'attest', { nonce })));
    await held.heldCount(2);
    assert.deepEqual(pool.workers().map((w) => w.inFlight), [1, 1], 'each worker holds exactly one (the cap); two wait here');
    await pool.workers()[1]!.thread.terminate();
    held.hold = false;
    for (const h of held.held) h.release();
    assert.deepEqual((await Promise.all(attests)).sort(), ['internal', 'ok', 'ok', 'ok'], 'only the request the dead worker held is lost');
  });

  it('sends unlock to the worker that made the key_request: if that worker died, unlock is bad_request and the enclave stays locked', async () => {
    const { pool } = await startPool();
    const { document } = (await call(pool, 'key_request')) as { document: Uint8Array };
    const recipient = rsa2048PublicKey(decodeAttestationPayload(decodeCoseSign1(document).payload).publicKey!)!;
    const holder = pool.workers().find((w) => w.ready)!;
    await holder.thread.terminate();
    await waitFor(allReady(pool), 'the replacement is ready');
    assert.equal(await codeOf(call(pool, 'unlock', { recipient_ciphertext: envelopeForRecipient(M, recipient) })), 'bad_request', 'SPEC §9: no worker holds that RSA key any more');
    for (const health of await healthOfEveryWorker(pool)) assert.equal(health['status'], 'locked');
    await unlock(pool);
    for (const health of await healthOfEveryWorker(pool)) assert.equal(health['status'], 'ok', 'a fresh key_request and unlock work');
  });

  it('calls onFatal (the process ends) when no worker holding the keys is left', async () => {
    const { pool, lines, fatal } = await startPool();
    await unlock(pool);
    await Promise.all(pool.workers().map((w) => w.thread.terminate()));
    await waitFor(() => fatal.count === 1, 'onFatal is called');
    assert.ok(lines.some((l) => JSON.parse(l).event === 'crashed' && JSON.parse(l).kind === 'workers'), 'crashed (workers) is logged');
    assert.equal(await codeOf(call(pool, 'health')), 'internal', 'nothing is served after that');
  });

  it('refuses to start when its workers cannot start, and a size below 1', async () => {
    await assert.rejects(startPool({ entry: new URL('./support/no-such-entry.ts', import.meta.url) }), /did not start/);
    await assert.rejects(startPool({ size: 0 }), TypeError);
    await assert.rejects(startPool({ maxInFlightPerWorker: 0 }), TypeError);
  });

  it('answers every one of 1,100 requests sent at once (most wait in the main thread for a worker)', async () => {
    const { pool } = await startPool();
    const answers = await Promise.all(Array.from({ length: 1100 }, () => call(pool, 'health')));
    assert.equal(answers.length, 1100);
    assert.ok(answers.every((a) => a['status'] === 'locked'), 'each one answered');
    assert.deepEqual(pool.workers().map((w) => w.inFlight), [0, 0], 'nothing left behind');
  });

  it('keeps the requests of a closed pool from hanging: they are answered internal', async () => {
    const { pool } = await startPool();
    await pool.close();
    assert.equal(await codeOf(call(pool, 'health')), 'internal');
  });
});
