// The in-process refresh that both benchmarks measure against (bench-core's figure (2), and the
// denominator of bench-parent's ratio): one enclave service with an ES256 SRT issuer, one assigned
// DRT, and a pool of refresh requests sealed in advance so that sealing is never timed.

import { generateKeyPairSync } from 'node:crypto';
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

export interface RefreshSetup {
  service: EnclaveService;
  pool: EnclaveRequest[];
}

const benchNsm: Nsm = {
  attestation: async () => new Uint8Array(1),
  close: async () => {},
};

export async function makeRefreshSetup(options: { poolSize: number; now: () => number }): Promise<RefreshSetup> {
  const { now } = options;
  const issuerKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const srtTrust: SrtTrust = {
    issuer: 'https://subscriptions.example',
    audience: 'dip-enclave',
    keys: { keys: [{ ...issuerKey.publicKey.export({ format: 'jwk' }), kid: 'bench', alg: 'ES256' }] },
  };
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
  const srt = await new SignJWT({ entitlements: { 'xv.vpn.dip': { did: 1 } } })
    .setProtectedHeader({ alg: 'ES256', kid: 'bench' })
    .setIssuer(srtTrust.issuer)
    .setAudience('dip-enclave')
    .setSubject('bench-subscription')
    .setIssuedAt(now() - 60)
    .setExpirationTime(now() + 3600)
    .sign(issuerKey.privateKey);
  const assign = sealRequest(bootKey.publicKeySpki, 'assign', encodePaddedCbor({ srt }, REQUEST_PLAINTEXT_BYTES));
  const assigned = await service.handle({ id: 0, op: 'assign', body: { ip: '203.0.113.9', request: assign.encapsulatedRequest } });
  const tokens = decodePaddedCbor(openResponse(assign.context, assigned['response'] as Uint8Array), RESPONSE_PLAINTEXT_BYTES) as Map<string, string>;
  const drt = tokens.get('drt')!;
  const pool: EnclaveRequest[] = [];
  for (let i = 0; i < options.poolSize; i++) {
    const { encapsulatedRequest } = sealRequest(bootKey.publicKeySpki, 'refresh', encodePaddedCbor({ srt, drt }, REQUEST_PLAINTEXT_BYTES));
    pool.push({ id: i + 1, op: 'refresh', body: { ip: '203.0.113.9', request: encapsulatedRequest } });
  }
  return { service, pool };
}

/** Runs `count` refreshes from the pool with `inFlight` of them awaited concurrently. */
export async function runRefreshes(setup: RefreshSetup, count: number, inFlight: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await setup.service.handle(setup.pool[next++ % setup.pool.length]!);
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}
