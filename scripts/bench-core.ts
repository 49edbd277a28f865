// The enclave core benchmark (`make bench`): how close a refresh through
// createEnclaveService().handle comes to the crypto it cannot avoid (SPEC §4/§5: one P-256 ECDH to
// open the request, two ES256 verifies for SRT and DRT, two ES256 signs for the new DAT and DRT).
// It prints figures only; nothing here is a pass/fail test.

import { createECDH, generateKeyPairSync, sign, verify } from 'node:crypto';
import { generateBootKey } from '../protocol/hpke.js';
import { openRecipientCiphertext } from '../enclave/core/cms.js';
import { createKeyCustody, createUnlockedKeyCustody } from '../enclave/core/keys.js';
import { decodeAttestationPayload } from '../protocol/attestation-document.js';
import { decodeCoseSign1 } from '../protocol/cose.js';
import { createEnclaveService } from '../enclave/core/service.js';
import { makeRefreshSetup, runRefreshes, type RefreshSetup } from './bench-support.js';

const ROUNDS = 9;
const FLOOR_ITERATIONS = 600;
const REFRESH_ITERATIONS = 600;
const SEALED_POOL = 300;
const RSS_REFRESHES = 10_000;
const WARM_UP_REFRESHES = 3000;
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
function makeFloor(): () => Promise<Figure> {
  const receiver = createECDH('prime256v1');
  receiver.generateKeys();
  const ephemeral = createECDH('prime256v1').generateKeys();
  const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const input = Buffer.alloc(420, 0x61); // about the signing input of a DRT
  const signature = sign('sha256', input, { key: signer.privateKey, dsaEncoding: 'ieee-p1363' });
  return () =>
    measure(FLOOR_ITERATIONS, () => {
      for (let i = 0; i < FLOOR_ITERATIONS; i++) {
        receiver.computeSecret(ephemeral);
        if (!verify('sha256', input, { key: signer.publicKey, dsaEncoding: 'ieee-p1363' }, signature)) throw new Error('verify');
        if (!verify('sha256', input, { key: signer.publicKey, dsaEncoding: 'ieee-p1363' }, signature)) throw new Error('verify');
        sign('sha256', input, { key: signer.privateKey, dsaEncoding: 'ieee-p1363' });
        sign('sha256', input, { key: signer.privateKey, dsaEncoding: 'ieee-p1363' });
      }
    });
}

function refreshRun(setup: RefreshSetup, count: number): Promise<Figure> {
  return measure(count, () => runRefreshes(setup, count, 1));
}

function concurrentRefreshRun(setup: RefreshSetup, count: number, inFlight: number): Promise<Figure> {
  return measure(count, () => runRefreshes(setup, count, inFlight));
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
  console.log(`bench-core: node ${process.version}, ${ROUNDS} interleaved rounds, medians reported`);
  console.log('setting up (sealing is done here, outside every timed loop) ...');
  const floor = makeFloor();
  const setup = await makeRefreshSetup({ poolSize: SEALED_POOL, now: () => NOW });
  // Warm-up: a long-running enclave is JIT-compiled and its key caches are full.
  await refreshRun(setup, WARM_UP_REFRESHES);
  for (let i = 0; i < 3; i++) await floor();

  const floors: Figure[] = [];
  const refreshes: Figure[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // Interleaved, so that noise from other tenants of the machine hits both figures alike.
    floors.push(await floor());
    refreshes.push(await refreshRun(setup, REFRESH_ITERATIONS));
  }
  const floorOps = median(floors.map((f) => f.opsPerSecond));
  const refreshOps = median(refreshes.map((f) => f.opsPerSecond));
  const pairRatio = median(floors.map((f, i) => refreshes[i]!.opsPerSecond / f.opsPerSecond));
  const floorCpu = median(floors.map((f) => f.cpuMicros));
  const refreshCpu = median(refreshes.map((f) => f.cpuMicros));
  const concurrent = await concurrentRefreshRun(setup, REFRESH_ITERATIONS, 16);
  const list = (figures: Figure[]): string => figures.map((f) => f.opsPerSecond.toFixed(0)).join(', ');

  console.log(`(1) crypto floor, 1 P-256 ECDH + 2 ES256 verify + 2 ES256 sign (node:crypto): ${floorOps.toFixed(0)} refresh/s, ${floorCpu.toFixed(0)} µs CPU each  [rounds: ${list(floors)}]`);
  console.log(`(2) refresh via createEnclaveService().handle, one at a time, pre-sealed requests (sealing not timed): ${refreshOps.toFixed(0)} refresh/s, ${refreshCpu.toFixed(0)} µs CPU each  [rounds: ${list(refreshes)}]`);
  console.log(`    same, 16 in flight: ${concurrent.opsPerSecond.toFixed(0)} refresh/s, ${concurrent.cpuMicros.toFixed(0)} µs CPU each`);
  console.log(`(3) ratio refresh / floor: ${(refreshOps / floorOps).toFixed(2)} by medians of throughput, ${pairRatio.toFixed(2)} median of per-round ratios, ${(floorCpu / refreshCpu).toFixed(2)} by CPU time`);
  console.log(`(4) ${await attestFigure()}`);
  console.log(`(4b) ${await unlockFigure()}`);

  const rssBefore = process.memoryUsage().rss;
  await refreshRun(setup, RSS_REFRESHES);
  const rssAfter = process.memoryUsage().rss;
  console.log(`(5) RSS after setup and warm-up, before ${RSS_REFRESHES} more refreshes: ${mib(rssBefore)}; after: ${mib(rssAfter)}; heap used after: ${mib(process.memoryUsage().heapUsed)}`);
}

await main();
