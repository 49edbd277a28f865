// Issue 10 across packages and processes (SPEC §3, §9): `unlock` with real CMS envelopes (the KMS
// emulator's writer, the enclave's reader) and every way it must stay locked or keep its first M;
// tokens that outlive an enclave restart; and M and the derived private keys never in its output.

import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyAttestation } from '../client/attestation.js';
import { DEV_PCRS } from '../client/manifest.js';
import { verifyDat } from '../client/tokens.js';
import { envelopeForRecipient, rsa2048PublicKey } from '../emulators/kms/cms.js';
import { openRecipientCiphertext } from '../enclave/core/cms.js';
import { createKeyCustody, deriveSigningKey, mCommitOf } from '../enclave/core/keys.js';
import { createEnclaveService, type EnclaveService } from '../enclave/core/service.js';
import { createEmulatorNsm } from '../enclave/nsm/emulator.js';
import { decodeAttestationPayload } from '../protocol/attestation-document.js';
import { decodeCoseSign1 } from '../protocol/cose.js';
import { DipError } from '../protocol/errors.js';
import { generateBootKey } from '../protocol/hpke.js';
import { EPOCH_SECONDS } from '../protocol/limits.js';
import { parseResponseBody, type EnclaveRequest, type EnclaveResponse, type Op, type ResponseBodies } from '../protocol/messages.js';
import { TEST_MASTER_SECRET, jwtClaims, mintSrt, openTokens, sealAssign, sealRefresh, spawnEnclave, type SpawnedEnclave } from './support/enclave.js';
import type { FrameClient } from './support/frame-client.js';
import { assertNoLeak, type Secret } from './support/secrets.js';

const nsm = await createEmulatorNsm();
after(() => nsm.close());

const M = new Uint8Array(32).fill(0x5a);
const SRT_ISSUER_JWK = { ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }), kid: 'srt-issuer', alg: 'ES256' };
const OTHER_M = new Uint8Array(32).fill(0xa5);

async function lockedService(): Promise<EnclaveService> {
  return createEnclaveService({
    nsm,
    bootKey: generateBootKey(),
    custody: createKeyCustody(),
    openRecipientCiphertext,
    srtTrust: { issuer: 'https://subscriptions.example', audience: null, keys: { keys: [SRT_ISSUER_JWK] } },
    datIssuer: 'https://dip.example',
    version: 'custody-test',
  });
}

let nextId = 1;
const call = (service: EnclaveService, op: EnclaveRequest['op'], body: Record<string, unknown> = {}) =>
  service.handle({ id: nextId++, op, body } as EnclaveRequest);

/** key_request → the RSA-2048 recipient key of the document, as the parent hands it to KMS. */
async function recipientOf(service: EnclaveService) {
  const { document } = (await call(service, 'key_request')) as { document: Uint8Array };
  const recipient = rsa2048PublicKey(decodeAttestationPayload(decodeCoseSign1(document).payload).publicKey!);
  assert.ok(recipient !== null, 'key_request gave an RSA-2048 key');
  return recipient;
}

async function unlockRejected(service: EnclaveService, ciphertext: Uint8Array, what: string): Promise<void> {
  await assert.rejects(call(service, 'unlock', { recipient_ciphertext: ciphertext }), (e: unknown) => e instanceof DipError && e.code === 'bad_request', what);
}

async function health(service: EnclaveService): Promise<Record<string, unknown>> {
  return call(service, 'health');
}

async function assertLocked(service: EnclaveService, what: string): Promise<void> {
  const h = await health(service);
  assert.equal(h['status'], 'locked', `${what}: still locked`);
  assert.equal(h['m_commit'], undefined, `${what}: no m_commit`);
}

/** The byte offset of `needle` in `haystack` (it must occur exactly once). */
function offsetOf(haystack: Uint8Array, needle: Uint8Array): number {
  const at = Buffer.from(haystack).indexOf(Buffer.from(needle));
  assert.ok(at >= 0 && Buffer.from(haystack).indexOf(Buffer.from(needle), at + 1) < 0, 'the needle occurs exactly once');
  return at;
}

describe('unlock with KMS-style CMS envelopes (SPEC §5, §9)', () => {
  it('unlocks with M enveloped for the latest key_request, reporting the epoch and m_commit', async () => {
    const service = await lockedService();
    const body = await call(service, 'unlock', { recipient_ciphertext: envelopeForRecipient(M, await recipientOf(service)) });
    assert.equal(body['status'], 'ok', 'status');
    assert.deepEqual(body['m_commit'], mCommitOf(M), 'm_commit of M');
    assert.equal(body['epoch'], Math.floor(Date.now() / 1000 / EPOCH_SECONDS), 'the current epoch');
    assert.deepEqual((await health(service))['m_commit'], mCommitOf(M), 'health names it');
  });

  it('unlock without a key_request is bad_request and stays locked', async () => {
    const service = await lockedService();
    const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    await unlockRejected(service, envelopeForRecipient(M, stranger), 'no key_request');
    await assertLocked(service, 'no key_request');
  });

  it('an envelope for another RSA key is bad_request and stays locked', async () => {
    const service = await lockedService();
    await recipientOf(service);
    const other = await lockedService();
    await unlockRejected(service, envelopeForRecipient(M, await recipientOf(other)), 'another recipient');
    await assertLocked(service, 'another recipient');
  });

  for (const length of [31, 33, 0, 64]) {
    it(`a content of ${length} bytes is bad_request and stays locked`, async () => {
      const service = await lockedService();
      await unlockRejected(service, envelopeForRecipient(new Uint8Array(length).fill(7), await recipientOf(service)), `${length} bytes`);
      await assertLocked(service, `${length} bytes`);
    });
  }

  it('a tampered envelope (encrypted key altered, or cut short) is bad_request and stays locked', async () => {
    const service = await lockedService();
    const envelope = envelopeForRecipient(M, await recipientOf(service));
    // The RSA-OAEP encrypted key: OCTET STRING of 256 bytes.
    const keyAt = offsetOf(envelope, Uint8Array.of(0x04, 0x82, 0x01, 0x00)) + 4;
    const altered = envelope.slice();
    altered[keyAt + 100]! ^= 0x01;
    await unlockRejected(service, altered, 'altered encrypted key');
    await assertLocked(service, 'altered encrypted key');
    const again = await lockedService();
    await unlockRejected(again, envelopeForRecipient(M, await recipientOf(again)).subarray(0, envelope.length - 20), 'truncated');
    await assertLocked(again, 'truncated');
  });

  it('CBC has no integrity: an altered IV opens to another 32-byte M, which m_commit exposes and an unlocked enclave refuses', async () => {
    const iv = new Uint8Array(16).map((_, i) => 0xc0 + i);
    const contentKey = new Uint8Array(32).fill(0x11);
    const fresh = await lockedService();
    const tampered = envelopeForRecipient(M, await recipientOf(fresh), { contentKey, iv });
    tampered[offsetOf(tampered, iv)]! ^= 0x01;
    const opened = await call(fresh, 'unlock', { recipient_ciphertext: tampered });
    assert.notDeepEqual(opened['m_commit'], mCommitOf(M), 'the enclave now holds another M: only a pinned m_commit tells');

    const unlocked = await lockedService();
    await call(unlocked, 'unlock', { recipient_ciphertext: envelopeForRecipient(M, await recipientOf(unlocked)) });
    const again = envelopeForRecipient(M, await recipientOf(unlocked), { contentKey, iv });
    again[offsetOf(again, iv)]! ^= 0x01;
    await unlockRejected(unlocked, again, 'an altered envelope after the first M');
    assert.deepEqual((await health(unlocked))['m_commit'], mCommitOf(M), 'the first M is kept');
  });

  it('a second, different M is bad_request and the first is kept; the same M again is ok', async () => {
    const service = await lockedService();
    await call(service, 'unlock', { recipient_ciphertext: envelopeForRecipient(M, await recipientOf(service)) });
    await unlockRejected(service, envelopeForRecipient(OTHER_M, await recipientOf(service)), 'another M');
    assert.deepEqual((await health(service))['m_commit'], mCommitOf(M), 'm_commit unchanged');
    const same = await call(service, 'unlock', { recipient_ciphertext: envelopeForRecipient(M, await recipientOf(service)) });
    assert.deepEqual(same['m_commit'], mCommitOf(M), 'the same M again is ok');
  });

  it('the recipient key is forgotten after every attempt: the same valid envelope twice is bad_request the second time', async () => {
    const afterSuccess = await lockedService();
    const envelope = envelopeForRecipient(M, await recipientOf(afterSuccess));
    await call(afterSuccess, 'unlock', { recipient_ciphertext: envelope });
    await unlockRejected(afterSuccess, envelope, 'replayed after a success');

    const afterFailure = await lockedService();
    const good = envelopeForRecipient(M, await recipientOf(afterFailure));
    await unlockRejected(afterFailure, good.subarray(0, 10), 'a garbled first attempt');
    await unlockRejected(afterFailure, good, 'the valid envelope after a failed attempt');
    await assertLocked(afterFailure, 'after a failed attempt');
  });
});

function okBody<K extends Op>(op: K, response: EnclaveResponse): ResponseBodies[K] {
  assert.ok(response.ok, `expected ok, got ${JSON.stringify(!response.ok && response.error)}`);
  const body = parseResponseBody(op, response.body);
  assert.ok(body !== null, `the ${op} body fits SPEC §5`);
  return body;
}

async function attested(enclave: SpawnedEnclave, client: FrameClient): Promise<Uint8Array> {
  const nonce = randomBytes(32);
  const { document } = okBody('attest', await client.request('attest', { nonce }));
  return verifyAttestation(document, { root: enclave.rootPem(), nonce, expectedPcrs: DEV_PCRS }).publicKey!;
}

describe('an enclave restart keeps the deployment\'s tokens (SPEC §3; process level)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dip-custody-'));
  const ip = '198.51.100.77';
  let output = '';
  let first: { dat: string; drt: string };
  let srt: string;
  let commitBefore: Uint8Array;
  let restarted: SpawnedEnclave;
  let client: FrameClient;

  before(async () => {
    const enclave = await spawnEnclave({ dir, masterSecret: TEST_MASTER_SECRET });
    try {
      const c = await enclave.connect();
      srt = await mintSrt(enclave.issuer(), { sub: `sub-${randomBytes(6).toString('hex')}`, did: 4 });
      const sealed = sealAssign(await attested(enclave, c), srt);
      first = openTokens(sealed.context, okBody('assign', await c.request('assign', { ip, request: sealed.request })).response);
      const health = okBody('health', await c.request('health'));
      assert.ok(health.status === 'ok', 'unlocked before the restart');
      commitBefore = health.m_commit;
      c.close();
    } finally {
      await enclave.stop();
      output += enclave.output();
    }
    restarted = await spawnEnclave({ dir, masterSecret: TEST_MASTER_SECRET });
    client = await restarted.connect();
  });
  after(async () => {
    client?.close();
    await restarted?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a DRT issued before the restart refreshes after it, and a DAT issued before it verifies against the JWKS served after it', async () => {
    const health = okBody('health', await client.request('health'));
    assert.ok(health.status === 'ok', 'unlocked after the restart');
    assert.deepEqual(health.m_commit, commitBefore, 'the same m_commit after the restart');
    const sealed = sealRefresh(await attested(restarted, client), srt, first.drt);
    const refreshed = openTokens(sealed.context, okBody('refresh', await client.request('refresh', { ip, request: sealed.request })).response);
    assert.equal(jwtClaims(refreshed.drt)['sub'], jwtClaims(first.drt)['sub'], 'the refreshed DRT is for the same subscription');
    const { jwks } = okBody('jwks', await client.request('jwks'));
    assert.equal((await verifyDat(first.dat, jwks, { ip })).ip, ip, 'the old DAT verifies against the new JWKS');
  });

  it('M, the derived private keys and any PEM private key never appear in the enclave\'s output', async () => {
    const all = output + restarted.output();
    assert.ok(all.includes('listening'), 'the output was captured');
    const epoch = Math.floor(Date.now() / 1000 / EPOCH_SECONDS);
    const secrets: Secret[] = [{ what: 'M', value: TEST_MASTER_SECRET }];
    for (let e = epoch - 3; e <= epoch + 1; e++) {
      for (const label of ['dat', 'drt'] as const) {
        const d = deriveSigningKey(TEST_MASTER_SECRET, label, e).privateKey.export({ format: 'jwk' }).d!;
        secrets.push({ what: `${label} key of epoch e${e - epoch}`, value: new Uint8Array(Buffer.from(d, 'base64url')) });
      }
    }
    assertNoLeak(all, secrets, 'the enclave output');
    assert.doesNotMatch(all, /PRIVATE KEY/, 'no PEM private key');
  });
});
