// The enclave core benchmark (`make bench`): how close a refresh through
// createEnclaveService().handle comes to the crypto it cannot avoid (SPEC §4/§5: one P-256 ECDH to
// open the request, two ES256 verifies for SRT and DRT, two ES256 signs for the new DAT and DRT).
// It prints figures only; nothing here is a pass/fail test.

import { createECDH, generateKeyPairSync, sign, verify } from 'node:crypto';
import { SignJWT } from 'jose';
import { encodeCbor } from '../protocol/cbor.js';
import { generateBootKey, openResponse, sealRequest } from '../protocol/hpke.js';
import type { EnclaveRequest } from '../protocol/messages.js';
import type { AttestationRequest, Nsm } from '../enclave/nsm/nsm.js';
import { createInMemoryKeyCustody } from '../enclave/core/keys.js';
import { createEnclaveService, type EnclaveService } from '../enclave/core/service.js';
import type { SrtTrust } from '../enclave/core/config.js';

const ROUNDS = 5;
const FLOOR_ITERATIONS = 1500;
const REFRESH_ITERATIONS = 1500;
const SEALED_POOL = 300;
const RSS_REFRESHES = 10_000;
const ATTEST_ITERATIONS = 200;
const NOW = 1_800_000_000;

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** [1 P-256 ECDH + 2 ES256 verify + 2 ES256 sign] with node:crypto alone, on token-sized inputs. */
function makeFloor(): () => number {
  const receiver = createECDH('prime256v1');
  receiver.generateKeys();
  const ephemeral = createECDH('prime256v1').generateKeys();
  const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const input = Buffer.alloc(420, 0x61); // about the signing input of a DRT
  const signature = sign('sha256', input, { key: signer.privateKey, dsaEncoding: 'ieee-p1363' });
  return () => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < FLOOR_ITERATIONS; i++) {
      receiver.computeSecret(ephemeral);
      if (!verify('sha256', input, { key: signer.publicKey, dsaEncoding: 'ieee-p1363' }, signature)) throw new Error('verify');
      if (!verify('sha256', input, { key: signer.publicKey, dsaEncoding: 'ieee-p1363' }, signature)) throw new Error('verify');
      sign('sha256', input, { key: signer.privateKey, dsaEncoding: 'ieee-p1363' });
      sign('sha256', input, { key: signer.privateKey, dsaEncoding: 'ieee-p1363' });
    }
    return FLOOR_ITERATIONS / seconds(start);
  };
}

const fakeNsm: Nsm = {
  async attestation(_request: AttestationRequest) {
    return new Uint8Array(1);
  },
  async close() {},
};

interface RefreshSetup {
  service: EnclaveService;
  pool: EnclaveRequest[];
}

/** A service with an ES256 SRT issuer, one assigned DRT, and a pool of pre-sealed refreshes. */
async function makeRefreshSetup(): Promise<RefreshSetup> {
  const issuerKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const srtTrust: SrtTrust = {
    issuer: 'https://subscriptions.example',
    audience: 'dip-enclave',
    keys: { keys: [{ ...issuerKey.publicKey.export({ format: 'jwk' }), kid: 'bench', alg: 'ES256' }] },
  };
  const bootKey = generateBootKey();
  const service = await createEnclaveService({
    nsm: fakeNsm,
    bootKey,
    custody: createInMemoryKeyCustody(),
    srtTrust,
    datIssuer: 'https://dip.example',
    version: 'bench',
    now: () => NOW,
  });
  const srt = await new SignJWT({ entitlements: { 'xv.vpn.dip': { did: 1 } } })
    .setProtectedHeader({ alg: 'ES256', kid: 'bench' })
    .setIssuer(srtTrust.issuer)
    .setAudience('dip-enclave')
    .setSubject('bench-subscription')
    .setIssuedAt(NOW - 60)
    .setExpirationTime(NOW + 3600)
    .sign(issuerKey.privateKey);
  const assign = sealRequest(bootKey.publicKeySpki, 'assign', encodeCbor({ srt }));
  const assigned = await service.handle({ id: 0, op: 'assign', body: { ip: '203.0.113.9', request: assign.encapsulatedRequest } });
  const tokens = openResponse(assign.context, assigned.response as Uint8Array);
  const { decodeCbor } = await import('../protocol/cbor.js');
  const drt = (decodeCbor(tokens) as Map<string, string>).get('drt')!;
  const pool: EnclaveRequest[] = [];
  for (let i = 0; i < SEALED_POOL; i++) {
    const { encapsulatedRequest } = sealRequest(bootKey.publicKeySpki, 'refresh', encodeCbor({ srt, drt }));
    pool.push({ id: i + 1, op: 'refresh', body: { request: encapsulatedRequest } });
  }
  return { service, pool };
}

async function refreshRun(setup: RefreshSetup, count: number): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) await setup.service.handle(setup.pool[i % setup.pool.length]!);
  return count / seconds(start);
}

async function concurrentRefreshRun(setup: RefreshSetup, count: number, inFlight: number): Promise<number> {
  let next = 0;
  const start = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (next < count) await setup.service.handle(setup.pool[next++ % setup.pool.length]!);
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return count / seconds(start);
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
      custody: createInMemoryKeyCustody(),
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

async function main(): Promise<void> {
  console.log(`bench-core: node ${process.version}, ${ROUNDS} rounds, median reported`);
  console.log('setting up (sealing is done here, outside every timed loop) ...');
  const floor = makeFloor();
  const setup = await makeRefreshSetup();
  await refreshRun(setup, 300); // warm-up: JIT, key caches
  floor();

  const floors: number[] = [];
  const refreshes: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // Interleaved, so that noise from other tenants of the machine hits both figures alike.
    floors.push(floor());
    refreshes.push(await refreshRun(setup, REFRESH_ITERATIONS));
  }
  const floorOps = median(floors);
  const refreshOps = median(refreshes);
  const concurrent = await concurrentRefreshRun(setup, REFRESH_ITERATIONS, 16);

  console.log(`(1) crypto floor, 1 ECDH + 2 ES256 verify + 2 ES256 sign (node:crypto): ${floorOps.toFixed(0)} refresh/s  [rounds: ${floors.map((f) => f.toFixed(0)).join(', ')}]`);
  console.log(`(2) refresh via createEnclaveService().handle, one at a time, pre-sealed requests (sealing not timed): ${refreshOps.toFixed(0)} refresh/s  [rounds: ${refreshes.map((f) => f.toFixed(0)).join(', ')}]`);
  console.log(`    same, 16 in flight (WebCrypto work for the SRT may use a second core): ${concurrent.toFixed(0)} refresh/s`);
  console.log(`(3) ratio refresh / floor: ${(refreshOps / floorOps).toFixed(2)}`);
  console.log(`(4) ${await attestFigure()}`);

  const rssBefore = process.memoryUsage().rss;
  await refreshRun(setup, RSS_REFRESHES);
  const rssAfter = process.memoryUsage().rss;
  console.log(`(5) RSS before ${RSS_REFRESHES} refreshes: ${mib(rssBefore)}; after: ${mib(rssAfter)}; heap used after: ${mib(process.memoryUsage().heapUsed)}`);
}

await main();
