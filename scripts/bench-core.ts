// The enclave core benchmark (`make bench`): how close a refresh through
// createEnclaveService().handle comes to the crypto it cannot avoid (SPEC §4/§5: one P-256 ECDH to
// open the request, two ES256 verifies for SRT and DRT, two ES256 signs for the new DAT and DRT),
// on one core and with the worker pool over every core (issue 13), and the enclave process's
// memory with N workers. It prints figures only; nothing here is a pass/fail test.
// Run: npx tsx scripts/bench-core.ts [--workers N]   (default: the CPUs this process may use)

import { createCipheriv, createDecipheriv, createECDH, createHmac, generateKeyPairSync, sign, verify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { generateBootKey } from '../protocol/hpke.js';
import { REQUEST_PLAINTEXT_BYTES, RESPONSE_PLAINTEXT_BYTES } from '../protocol/limits.js';
import { openRecipientCiphertext } from '../enclave/core/cms.js';
import { createKeyCustody, createUnlockedKeyCustody } from '../enclave/core/keys.js';
import { decodeAttestationPayload } from '../protocol/attestation-document.js';
import { decodeCoseSign1 } from '../protocol/cose.js';
import { createEnclaveService } from '../enclave/core/service.js';
import { buildDevelopmentBundle } from '../test/support/dev-bundle.js';
import { spawnEnclave } from '../test/support/enclave.js';
import { makePoolRefreshSetup, makeRefreshSetup, refreshThroughSocket, residentBytesOf, runRefreshes, type PoolRefreshSetup, type RefreshSetup } from './bench-support.js';

const ROUNDS = 9;
const FLOOR_ITERATIONS = 600;
const REFRESH_ITERATIONS = 600;
const SEALED_POOL = 300;
const RSS_REFRESHES = 10_000;
const WARM_UP_REFRESHES = 3000;
const POOL_REFRESH_ITERATIONS = 1200;
// Enough to keep every worker busy while answers travel back (the parent pipelines as many).
const POOL_IN_FLIGHT = 32;
const ATTEST_ITERATIONS = 200;
const UNLOCK_ITERATIONS = 30;
const NOW = 1_800_000_000;

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** Wall-clock ops/s, and CPU time per op over all threads (WebCrypto runs on libuv's pool). */
interface Figure {
  opsPerSecond: number;
  cpuMicros: number;
}

async function measure(count: number, body: () => unknown): Promise<Figure> {
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  await body();
  const wall = seconds(start);
  const used = process.cpuUsage(cpu);
  return { opsPerSecond: count / wall, cpuMicros: (used.user + used.system) / count };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** [1 P-256 ECDH + 2 ES256 verify + 2 ES256 sign] with node:crypto alone, on token-sized inputs. */
function makeFloorOnce(): () => void {
  const receiver = createECDH('prime256v1');
  receiver.generateKeys();
  const ephemeral = createECDH('prime256v1').generateKeys();
  const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const input = Buffer.alloc(420, 0x61); // about the signing input of a DRT
  const signature = sign('sha256', input, { key: signer.privateKey, dsaEncoding: 'ieee-p1363' });
  return () => {
    receiver.computeSecret(ephemeral);
    if (!verify('sha256', input, { key: signer.publicKey, dsaEncoding: 'ieee-p1363' }, signature)) throw new Error('verify');
    if (!verify('sha256', input, { key: signer.publicKey, dsaEncoding: 'ieee-p1363' }, signature)) throw new Error('verify');
    sign('sha256', input, { key: signer.privateKey, dsaEncoding: 'ieee-p1363' });
    sign('sha256', input, { key: signer.privateKey, dsaEncoding: 'ieee-p1363' });
  };
}

function makeFloor(): () => Promise<Figure> {
  const floorOnce = makeFloorOnce();
  return () =>
    measure(FLOOR_ITERATIONS, () => {
      for (let i = 0; i < FLOOR_ITERATIONS; i++) floorOnce();
    });
}

/**
 * The floor plus what SPEC §4 adds that no refresh on node:crypto avoids: the ten HMAC-SHA256 of
 * HPKE (seven to open the request: RFC 9180 §4.1 and §5.1 with the "dip response" export; three
 * for the response, RFC 9458 §4.4) and the two AES-256-GCM operations (open the 8 KiB padded
 * request, seal the 4 KiB padded response). floor / this is the ceiling of figure (3): what a
 * refresh would reach if tokens, CBOR and everything else cost nothing.
 */
function makeProtocolFloor(): () => Promise<Figure> {
  const floorOnce = makeFloorOnce();
  const key = Buffer.alloc(32, 0x6b);
  const nonce = Buffer.alloc(12, 0x6e);
  const aad = Buffer.alloc(16, 0x68);
  const hmacInput = Buffer.alloc(150, 0x69); // about the key schedule's longest input
  const sealer = createCipheriv('aes-256-gcm', key, nonce);
  sealer.setAAD(aad);
  const request = Buffer.concat([sealer.update(Buffer.alloc(REQUEST_PLAINTEXT_BYTES)), sealer.final()]);
  const tag = sealer.getAuthTag();
  const response = Buffer.alloc(RESPONSE_PLAINTEXT_BYTES);
  return () =>
    measure(FLOOR_ITERATIONS, () => {
      for (let i = 0; i < FLOOR_ITERATIONS; i++) {
        floorOnce();
        for (let h = 0; h < 10; h++) createHmac('sha256', key).update(hmacInput).digest();
        const opener = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
        opener.setAuthTag(tag);
        opener.setAAD(aad);
        opener.update(request);
        opener.final();
        const cipher = createCipheriv('aes-256-gcm', key, nonce);
        cipher.update(response);
        cipher.final();
        cipher.getAuthTag();
      }
    });
}

// The floor's loop as a worker thread's own program (CommonJS, eval'd): told a count, it runs it and says so.
const FLOOR_THREAD = `
const { parentPort } = require('node:worker_threads');
const { createECDH, generateKeyPairSync, sign, verify } = require('node:crypto');
const receiver = createECDH('prime256v1');
receiver.generateKeys();
const ephemeral = createECDH('prime256v1').generateKeys();
const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const input = Buffer.alloc(420, 0x61);
const signature = sign('sha256', input, { key: signer.privateKey, dsaEncoding: 'ieee-p1363' });
parentPort.on('message', (count) => {
  for (let i = 0; i < count; i++) {
    receiver.computeSecret(ephemeral);
    verify('sha256', input, { key: signer.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
    verify('sha256', input, { key: signer.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
    sign('sha256', input, { key: signer.privateKey, dsaEncoding: 'ieee-p1363' });
    sign('sha256', input, { key: signer.privateKey, dsaEncoding: 'ieee-p1363' });
  }
  parentPort.postMessage(count);
});
`;

/**
 * The floor's loop in `threads` worker threads at once: how far this machine's CPUs scale the
 * very same work (shared caches, a shared host). floor-on-N / floor is the ceiling of the pool's
 * ratio (3b) on this machine, whatever the pool does.
 */
async function makeThreadedFloor(threads: number): Promise<{ run: () => Promise<number>; close: () => Promise<void> }> {
  const workers = Array.from({ length: threads }, () => new Worker(FLOOR_THREAD, { eval: true }));
  const runAll = (count: number): Promise<unknown[]> =>
    Promise.all(workers.map((worker) => new Promise((resolve) => {
      worker.once('message', resolve);
      worker.postMessage(count);
    })));
  await runAll(FLOOR_ITERATIONS); // warm-up
  return {
    async run() {
      const start = process.hrtime.bigint();
      await runAll(FLOOR_ITERATIONS);
      return (threads * FLOOR_ITERATIONS) / seconds(start);
    },
    close: async () => {
      await Promise.all(workers.map((worker) => worker.terminate()));
    },
  };
}

function refreshRun(setup: RefreshSetup | PoolRefreshSetup, count: number, inFlight = 1): Promise<Figure> {
  return measure(count, () => runRefreshes(setup, count, inFlight));
}

function readWorkers(): number {
  const at = process.argv.indexOf('--workers');
  const value = at < 0 ? availableParallelism() : Number(process.argv[at + 1]);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error('--workers takes an integer ≥ 1');
  return value;
}

/** The enclave process as the image runs it (a development build of the bundle): RSS after `count` refreshes over its socket. */
async function enclaveRss(bundle: string, workers: number, count: number): Promise<{ started: number; after: number }> {
  const enclave = await spawnEnclave({ bundle, workers });
  try {
    const started = residentBytesOf(enclave.pid);
    await refreshThroughSocket(enclave, count, POOL_IN_FLIGHT);
    return { started, after: residentBytesOf(enclave.pid) };
  } finally {
    await enclave.stop();
  }
}

async function attestFigure(): Promise<string> {
  let emulator;
  try {
    emulator = await import('../enclave/nsm/emulator.js');
  } catch {
    return 'emulator not available';
  }
  const nsm = await emulator.createEmulatorNsm();
  try {
    const service = await createEnclaveService({
      nsm,
      bootKey: generateBootKey(),
      custody: createUnlockedKeyCustody(new Uint8Array(32).fill(0x42)),
      openRecipientCiphertext,
      srtTrust: { issuer: 'x', audience: null, keys: { keys: [{ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }), kid: 'k', alg: 'ES256' }] } },
      datIssuer: 'https://dip.example',
      version: 'bench',
    });
    const nonce = new Uint8Array(32).fill(1);
    for (let i = 0; i < 20; i++) await service.handle({ id: i, op: 'attest', body: { nonce } });
    const start = process.hrtime.bigint();
    for (let i = 0; i < ATTEST_ITERATIONS; i++) await service.handle({ id: i, op: 'attest', body: { nonce } });
    return `${(ATTEST_ITERATIONS / seconds(start)).toFixed(0)} attest/s (emulator, sequential)`;
  } finally {
    await nsm.close();
  }
}

/** SPEC §9 in-process: key_request (a fresh RSA-2048 key and a document) + a KMS-shaped CMS + unlock. */
async function unlockFigure(): Promise<string> {
  const emulator = await import('../enclave/nsm/emulator.js');
  const { envelopeForRecipient, rsa2048PublicKey } = await import('../emulators/kms/cms.js');
  const nsm = await emulator.createEmulatorNsm();
  try {
    const masterSecret = new Uint8Array(32).fill(0x42);
    const service = await createEnclaveService({
      nsm,
      bootKey: generateBootKey(),
      custody: createKeyCustody(),
      openRecipientCiphertext,
      srtTrust: { issuer: 'x', audience: null, keys: { keys: [{ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }), kid: 'k', alg: 'ES256' }] } },
      datIssuer: 'https://dip.example',
      version: 'bench',
    });
    let keyRequestSeconds = 0;
    let unlockSeconds = 0;
    for (let i = 0; i < UNLOCK_ITERATIONS; i++) {
      let start = process.hrtime.bigint();
      const { document } = (await service.handle({ id: i, op: 'key_request', body: {} })) as { document: Uint8Array };
      keyRequestSeconds += seconds(start);
      const spki = decodeAttestationPayload(decodeCoseSign1(document).payload).publicKey!;
      const envelope = envelopeForRecipient(masterSecret, rsa2048PublicKey(spki)!);
      start = process.hrtime.bigint();
      await service.handle({ id: i, op: 'unlock', body: { recipient_ciphertext: envelope } });
      unlockSeconds += seconds(start);
    }
    const perPair = (keyRequestSeconds + unlockSeconds) / UNLOCK_ITERATIONS;
    return `key_request + unlock: ${(1 / perPair).toFixed(1)}/s (key_request ${((keyRequestSeconds / UNLOCK_ITERATIONS) * 1000).toFixed(1)} ms, unlock ${((unlockSeconds / UNLOCK_ITERATIONS) * 1000).toFixed(2)} ms; emulator NSM, ${UNLOCK_ITERATIONS} pairs)`;
  } finally {
    await nsm.close();
  }
}

async function main(): Promise<void> {
  const workers = readWorkers();
  console.log(`bench-core: node ${process.version}, ${availableParallelism()} CPUs, ${ROUNDS} interleaved rounds, medians reported; worker pool of ${workers}`);
  console.log('setting up (sealing is done here, outside every timed loop) ...');
  const floor = makeFloor();
  const protocolFloor = makeProtocolFloor();
  const threadedFloor = await makeThreadedFloor(workers);
  const setup = await makeRefreshSetup({ poolSize: SEALED_POOL, now: () => NOW });
  const poolSetup = await makePoolRefreshSetup({ size: workers, poolSize: SEALED_POOL });
  // Warm-up: a long-running enclave is JIT-compiled and its key caches are full.
  await refreshRun(setup, WARM_UP_REFRESHES);
  await refreshRun(poolSetup, WARM_UP_REFRESHES, POOL_IN_FLIGHT);
  for (let i = 0; i < 3; i++) await floor();
  for (let i = 0; i < 3; i++) await protocolFloor();

  const floors: Figure[] = [];
  const protocolFloors: Figure[] = [];
  const threadedFloors: number[] = [];
  const refreshes: Figure[] = [];
  const pooled: Figure[] = [];
  // How busy each worker's event loop was (wall time): near 100% means the pool kept it fed.
  const workerBusy: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // Interleaved, so that noise from other tenants of the machine hits every figure alike.
    floors.push(await floor());
    protocolFloors.push(await protocolFloor());
    threadedFloors.push(await threadedFloor.run());
    refreshes.push(await refreshRun(setup, REFRESH_ITERATIONS));
    const threads = poolSetup.workerPool.workers().map((w) => w.thread.performance);
    const before = threads.map((t) => t.eventLoopUtilization());
    pooled.push(await refreshRun(poolSetup, POOL_REFRESH_ITERATIONS, POOL_IN_FLIGHT));
    workerBusy.push(...threads.map((t, i) => t.eventLoopUtilization(before[i]).utilization));
  }
  const floorOps = median(floors.map((f) => f.opsPerSecond));
  const refreshOps = median(refreshes.map((f) => f.opsPerSecond));
  const pooledOps = median(pooled.map((f) => f.opsPerSecond));
  const pairRatio = median(floors.map((f, i) => refreshes[i]!.opsPerSecond / f.opsPerSecond));
  const poolPairRatio = median(floors.map((f, i) => pooled[i]!.opsPerSecond / f.opsPerSecond));
  const floorCpu = median(floors.map((f) => f.cpuMicros));
  const refreshCpu = median(refreshes.map((f) => f.cpuMicros));
  const pooledCpu = median(pooled.map((f) => f.cpuMicros));
  const concurrent = await refreshRun(setup, REFRESH_ITERATIONS, 16);
  const list = (figures: Figure[]): string => figures.map((f) => f.opsPerSecond.toFixed(0)).join(', ');
  // How noisy this run was: the spread of the floor, which does the same work every round.
  const spread = (figures: Figure[]): string => {
    const ops = figures.map((f) => f.opsPerSecond);
    return `±${((50 * (Math.max(...ops) - Math.min(...ops))) / median(ops)).toFixed(0)}%`;
  };

  console.log(`(1) crypto floor, 1 P-256 ECDH + 2 ES256 verify + 2 ES256 sign (node:crypto, one core): ${floorOps.toFixed(0)} refresh/s, ${floorCpu.toFixed(0)} µs CPU each  [rounds: ${list(floors)}; spread ${spread(floors)}]`);
  const ceiling = median(floors.map((f, i) => f.cpuMicros / protocolFloors[i]!.cpuMicros));
  console.log(`(1b) the floor + the 10 HMAC-SHA256 and 2 AES-256-GCM (8 KiB open, 4 KiB seal) of SPEC §4's HPKE: ${median(protocolFloors.map((f) => f.opsPerSecond)).toFixed(0)} refresh/s, ${median(protocolFloors.map((f) => f.cpuMicros)).toFixed(0)} µs CPU each; (1)/(1b) = ${ceiling.toFixed(2)} by CPU time, median of per-round ratios: the most (3) could reach on node:crypto if all else were free  [rounds: ${list(protocolFloors)}]`);
  console.log(`(2) refresh via createEnclaveService().handle, one at a time, pre-sealed requests (sealing not timed): ${refreshOps.toFixed(0)} refresh/s, ${refreshCpu.toFixed(0)} µs CPU each  [rounds: ${list(refreshes)}]`);
  console.log(`    same, 16 in flight: ${concurrent.opsPerSecond.toFixed(0)} refresh/s, ${concurrent.cpuMicros.toFixed(0)} µs CPU each`);
  console.log(`(3) ratio refresh per core / floor: ${(refreshOps / floorOps).toFixed(2)} by medians of throughput, ${pairRatio.toFixed(2)} median of per-round ratios, ${(floorCpu / refreshCpu).toFixed(2)} by CPU time   (target ≥ 0.8)`);
  // CPU time over wall time: how many CPUs the pool actually got (others' work on the machine takes the rest).
  const cpusUsed = median(pooled.map((f) => (f.opsPerSecond * f.cpuMicros) / 1e6));
  console.log(`(3b) refresh via the worker pool (enclave/io/pool.ts, ${workers} workers, ${POOL_IN_FLIGHT} in flight, in this process, no sockets): ${pooledOps.toFixed(0)} refresh/s, ${pooledCpu.toFixed(0)} µs CPU each over all threads, ${cpusUsed.toFixed(2)} CPUs busy on average, workers' event loops busy ${(100 * median(workerBusy)).toFixed(0)}% of the time  [rounds: ${list(pooled)}]`);
  console.log(`     ratio pool / single-core floor: ${(pooledOps / floorOps).toFixed(2)} by medians, ${poolPairRatio.toFixed(2)} median of per-round ratios   (target ≥ 1.6 on 2 CPUs)`);
  const threadedRatio = median(floors.map((f, i) => threadedFloors[i]! / f.opsPerSecond));
  console.log(`(3c) the floor's loop in ${workers} threads at once: ${median(threadedFloors).toFixed(0)} refresh/s, ${threadedRatio.toFixed(2)}× the single-core floor (median of per-round ratios): how far this machine scales the same work; (3b) cannot pass it  [rounds: ${threadedFloors.map((x) => x.toFixed(0)).join(', ')}]`);
  await threadedFloor.close();
  console.log(`(4) ${await attestFigure()}`);
  console.log(`(4b) ${await unlockFigure()}`);

  const rssBefore = process.memoryUsage().rss;
  await refreshRun(setup, RSS_REFRESHES);
  const rssAfter = process.memoryUsage().rss;
  console.log(`(5) RSS of this process after setup and warm-up, before ${RSS_REFRESHES} more in-process refreshes: ${mib(rssBefore)}; after: ${mib(rssAfter)}; heap used after: ${mib(process.memoryUsage().heapUsed)}`);
  await poolSetup.close();

  const dir = mkdtempSync(join(tmpdir(), 'dip-bench-core-'));
  try {
    const bundle = await buildDevelopmentBundle(dir);
    const counts = [...new Set([1, workers])];
    const figures: string[] = [];
    for (const n of counts) {
      const rss = await enclaveRss(bundle, n, RSS_REFRESHES);
      figures.push(`--workers ${n}: ${mib(rss.started)} unlocked and idle, ${mib(rss.after)} after`);
    }
    console.log(`(6) RSS of the enclave process (development build of the bundle, NSM emulator) after ${RSS_REFRESHES} refreshes over its socket, ${POOL_IN_FLIGHT} in flight: ${figures.join('; ')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
