// The in-process refresh that both benchmarks measure against (bench-core's figure (2), and the
// denominator of bench-parent's ratio): one enclave service with an ES256 SRT issuer, one assigned
// DRT, and a pool of refresh requests sealed in advance so that sealing is never timed. The same
// with the worker pool (issue 13: enclave/io/pool.ts, in this process, no sockets), and the enclave
// process as the image runs it (a development build of the bundle) for its memory.

import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SignJWT } from 'jose';
import { decodePaddedCbor, encodePaddedCbor } from '../protocol/cbor.js';
import { REQUEST_PLAINTEXT_BYTES, RESPONSE_PLAINTEXT_BYTES } from '../protocol/limits.js';
import { generateBootKey, openResponse, sealRequest } from '../protocol/hpke.js';
import type { EnclaveRequest } from '../protocol/messages.js';
import type { SrtTrust } from '../enclave/core/config.js';
import { openRecipientCiphertext } from '../enclave/core/cms.js';
import { createUnlockedKeyCustody } from '../enclave/core/keys.js';
import { createEnclaveService, type EnclaveService } from '../enclave/core/service.js';
import type { Nsm } from '../enclave/nsm/nsm.js';
import { createLogger } from '../enclave/io/log.js';
import { startWorkerPool, type WorkerPool } from '../enclave/io/pool.js';
import { createEmulatorNsm } from '../enclave/nsm/emulator.js';
import { envelopeForRecipient, rsa2048PublicKey } from '../emulators/kms/cms.js';
import { decodeAttestationPayload } from '../protocol/attestation-document.js';
import { decodeCoseSign1 } from '../protocol/cose.js';
import { parseResponseBody } from '../protocol/messages.js';
import { mintSrt, type SpawnedEnclave } from '../test/support/enclave.js';

export interface RefreshSetup {
  service: EnclaveService;
  pool: EnclaveRequest[];
}

const benchNsm: Nsm = {
  attestation: async () => new Uint8Array(1),
  close: async () => {},
};

function benchIssuer() {
  const issuerKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const srtTrust: SrtTrust = {
    issuer: 'https://subscriptions.example',
    audience: 'dip-enclave',
    keys: { keys: [{ ...issuerKey.publicKey.export({ format: 'jwk' }), kid: 'bench', alg: 'ES256' }] },
  };
  const mint = (now: number): Promise<string> =>
    new SignJWT({ entitlements: { 'xv.vpn.dip': { did: 1 } } })
      .setProtectedHeader({ alg: 'ES256', kid: 'bench' })
      .setIssuer(srtTrust.issuer)
      .setAudience('dip-enclave')
      .setSubject('bench-subscription')
      .setIssuedAt(now - 60)
      .setExpirationTime(now + 3600)
      .sign(issuerKey.privateKey);
  return { srtTrust, mint };
}

/** Assigns once through `handle`, then seals `count` refresh requests for the DRT it got. */
async function sealRefreshes(handle: (request: EnclaveRequest) => Promise<Record<string, unknown>>, bootKeySpki: Uint8Array, srt: string, count: number): Promise<EnclaveRequest[]> {
  const assign = sealRequest(bootKeySpki, 'assign', encodePaddedCbor({ srt }, REQUEST_PLAINTEXT_BYTES));
  const assigned = await handle({ id: 0, op: 'assign', body: { ip: '203.0.113.9', request: assign.encapsulatedRequest } });
  const tokens = decodePaddedCbor(openResponse(assign.context, assigned['response'] as Uint8Array), RESPONSE_PLAINTEXT_BYTES) as Map<string, string>;
  const drt = tokens.get('drt')!;
  return Array.from({ length: count }, (_, i) => {
    const { encapsulatedRequest } = sealRequest(bootKeySpki, 'refresh', encodePaddedCbor({ srt, drt }, REQUEST_PLAINTEXT_BYTES));
    return { id: i + 1, op: 'refresh', body: { ip: '203.0.113.9', request: encapsulatedRequest } };
  });
}

export async function makeRefreshSetup(options: { poolSize: number; now: () => number }): Promise<RefreshSetup> {
  const { now } = options;
  const { srtTrust, mint } = benchIssuer();
  const bootKey = generateBootKey();
  const service = await createEnclaveService({
    nsm: benchNsm,
    bootKey,
    custody: createUnlockedKeyCustody(new Uint8Array(32).fill(0x42)),
    openRecipientCiphertext,
    srtTrust,
    datIssuer: 'https://dip.example',
    version: 'bench',
    now,
  });
  const pool = await sealRefreshes(service.handle, bootKey.publicKeySpki, await mint(now()), options.poolSize);
  return { service, pool };
}

/** Runs `count` refreshes from the pool with `inFlight` of them awaited concurrently. */
export async function runRefreshes(setup: { service: Pick<EnclaveService, 'handle'>; pool: EnclaveRequest[] }, count: number, inFlight: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await setup.service.handle(setup.pool[next++ % setup.pool.length]!);
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}

export interface PoolRefreshSetup {
  workerPool: WorkerPool;
  service: Pick<EnclaveService, 'handle'>;
  pool: EnclaveRequest[];
  close(): Promise<void>;
}

/**
 * The worker pool of the enclave (enclave/io/pool.ts) in this process, unlocked as the parent
 * would do it (key_request, a KMS-shaped envelope, unlock), with refreshes sealed in advance.
 * The workers read the real clock.
 */
export async function makePoolRefreshSetup(options: { size: number; poolSize: number }): Promise<PoolRefreshSetup> {
  const { srtTrust, mint } = benchIssuer();
  const nsm = await createEmulatorNsm();
  const workerPool = await startWorkerPool({
    entry: new URL('../enclave/main.ts', import.meta.url),
    size: options.size,
    nsm,
    srtTrust,
    datIssuer: 'https://dip.example',
    version: 'bench',
    clockTrusted: true,
    log: createLogger(() => {}),
    onFatal: () => {
      throw new Error('the worker pool lost every worker');
    },
  });
  const { document } = (await workerPool.handle({ id: 0, op: 'key_request', body: {} })) as { document: Uint8Array };
  const recipient = rsa2048PublicKey(decodeAttestationPayload(decodeCoseSign1(document).payload).publicKey!)!;
  await workerPool.handle({ id: 0, op: 'unlock', body: { recipient_ciphertext: envelopeForRecipient(new Uint8Array(32).fill(0x42), recipient) } });
  const pool = await sealRefreshes(workerPool.handle, workerPool.bootPublicKeySpki, await mint(Math.floor(Date.now() / 1000)), options.poolSize);
  return {
    workerPool,
    service: { handle: workerPool.handle },
    pool,
    async close() {
      await workerPool.close();
      await nsm.close();
    },
  };
}

/** /proc/<pid>/status VmRSS in bytes (Linux). */
export function residentBytesOf(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error('no VmRSS in /proc status');
  return Number(match[1]) * 1024;
}

/**
 * `count` refreshes through a running enclave process's socket, `inFlight` at a time on one
 * connection (as the parent pipelines them), from refresh requests sealed in advance.
 */
export async function refreshThroughSocket(enclave: SpawnedEnclave, count: number, inFlight: number): Promise<void> {
  const client = await enclave.connect();
  try {
    const attested = await client.request('attest', { nonce: new Uint8Array(32) });
    if (!attested.ok) throw new Error(`attest: ${attested.error.code}`);
    const bootKey = decodeAttestationPayload(decodeCoseSign1(parseResponseBody('attest', attested.body)!.document).payload).publicKey!;
    const srt = await mintSrt(enclave.issuer(), { sub: 'bench-subscription' });
    const handle = async (request: EnclaveRequest): Promise<Record<string, unknown>> => {
      const response = await client.request(request.op, request.body as Record<string, unknown>);
      if (!response.ok) throw new Error(`${request.op}: ${response.error.code}`);
      return Object.fromEntries(response.body) as Record<string, unknown>;
    };
    const pool = await sealRefreshes(handle, bootKey, srt, 300);
    await runRefreshes({ service: { handle }, pool }, count, inFlight);
  } finally {
    client.close();
  }
}

