// Issue 10, key custody inside the enclave (SPEC §3, §5, §9): the locked state, key_request's
// recipient document, epoch keys by an injected clock (DRTs from e-3…e, the JWKS of e-1/e/e+1),
// the derivation against an independent implementation and its vector file, and the clock check.
// The unlock op with real CMS envelopes is in test/key-custody.test.ts (it needs the KMS emulator).

import assert from 'node:assert/strict';
import { constants, createPublicKey, privateDecrypt, publicEncrypt, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { decodeAttestationPayload } from '../../protocol/attestation-document.js';
import { decodePaddedCbor, encodePaddedCbor, isCborMap } from '../../protocol/cbor.js';
import { decodeCoseSign1 } from '../../protocol/cose.js';
import { DipError, type ErrorCode } from '../../protocol/errors.js';
import { generateBootKey, openResponse, sealRequest, type ResponseContext, type SealedOp } from '../../protocol/hpke.js';
import { EPOCH_SECONDS, REQUEST_PLAINTEXT_BYTES, RESPONSE_PLAINTEXT_BYTES } from '../../protocol/limits.js';
import { parseRequest, type EnclaveRequest } from '../../protocol/messages.js';
import { nobleDerive, nobleMCommit, VECTOR_EPOCHS, VECTOR_SECRETS, type DerivedKey } from '../../test/support/key-derivation.js';
import { createClockGuard } from '../core/clock.js';
import { createKeyCustody, createUnlockedKeyCustody, deriveSigningKey, mCommitOf, type KeyCustody } from '../core/keys.js';
import { createEnclaveService, type EnclaveService } from '../core/service.js';
import { createEmulatorNsm } from '../nsm/emulator.js';
import type { Nsm } from '../nsm/nsm.js';
import { DAT_ISSUER, DID, NOW, decodeToken, drtClaims, drtHeader, makeIssuer, mintSrt, signEs256, trustFor } from './core-fixtures.js';

const IP = '198.51.100.23';
const M = new Uint8Array(32).fill(0x42);
const E = Math.floor(NOW / EPOCH_SECONDS);
const START_OF_E = E * EPOCH_SECONDS;
const issuer = makeIssuer('ES256');

const nsm = await createEmulatorNsm();
after(() => nsm.close());

/** Stands in for the CMS reader here (the real one is tested with real envelopes under test/). */
function openTestCiphertext(ciphertext: Uint8Array, key: KeyObject): Uint8Array {
  return new Uint8Array(privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, ciphertext));
}

interface Setup {
  service: EnclaveService;
  custody: KeyCustody;
  bootSpki: Uint8Array;
  clock: { now: number };
}

async function setup(options: { custody?: KeyCustody; nsm?: Nsm; clockGuard?: ReturnType<typeof createClockGuard> } = {}): Promise<Setup> {
  const bootKey = generateBootKey();
  const custody = options.custody ?? createUnlockedKeyCustody(M);
  const clock = { now: NOW };
  const service = await createEnclaveService({
    nsm: options.nsm ?? nsm,
    bootKey,
    custody,
    openRecipientCiphertext: openTestCiphertext,
    srtTrust: trustFor([issuer]),
    datIssuer: DAT_ISSUER,
    version: 'custody-test',
    now: () => clock.now,
    ...(options.clockGuard === undefined ? {} : { clock: options.clockGuard }),
  });
  return { service, custody, bootSpki: bootKey.publicKeySpki, clock };
}

let nextId = 1;
const request = (op: EnclaveRequest['op'], body: Record<string, unknown> = {}): EnclaveRequest => ({ id: nextId++, op, body }) as EnclaveRequest;

function sealed(s: Setup, op: SealedOp, payload: Record<string, string>): { request: Uint8Array; context: ResponseContext } {
  const { encapsulatedRequest, context } = sealRequest(s.bootSpki, op, encodePaddedCbor(payload, REQUEST_PLAINTEXT_BYTES));
  return { request: encapsulatedRequest, context };
}

function opened(context: ResponseContext, body: Record<string, unknown>): { dat: string; drt: string } {
  const map = decodePaddedCbor(openResponse(context, body['response'] as Uint8Array), RESPONSE_PLAINTEXT_BYTES);
  assert.ok(isCborMap(map), 'the sealed response is a CBOR map');
  return { dat: map.get('dat') as string, drt: map.get('drt') as string };
}

/** An SRT valid at `at` (Unix seconds). */
const srtAt = (at: number) => mintSrt(issuer, { iat: at - 60, exp: at + 3600 });

async function assignAt(s: Setup, at: number): Promise<{ dat: string; drt: string }> {
  s.clock.now = at;
  const { request: sealedRequest, context } = sealed(s, 'assign', { srt: await srtAt(at) });
  return opened(context, await s.service.handle(request('assign', { ip: IP, request: sealedRequest })));
}

async function refreshAt(s: Setup, at: number, drt: string): Promise<{ dat: string; drt: string }> {
  s.clock.now = at;
  const { request: sealedRequest, context } = sealed(s, 'refresh', { srt: await srtAt(at), drt });
  return opened(context, await s.service.handle(request('refresh', { ip: IP, request: sealedRequest })));
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, what: string): Promise<void> {
  await assert.rejects(promise, (e: unknown) => e instanceof DipError && e.code === code, what);
}

function jwksKids(body: Record<string, unknown>): string[] {
  return (JSON.parse(Buffer.from(body['jwks'] as Uint8Array).toString('utf8')) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);
}

describe('a locked enclave (SPEC §3)', () => {
  it('answers keys_unavailable to attest, jwks, assign and refresh', async () => {
    const s = await setup({ custody: createKeyCustody() });
    const { request: assignRequest } = sealed(s, 'assign', { srt: await srtAt(NOW) });
    const { request: refreshRequest } = sealed(s, 'refresh', { srt: await srtAt(NOW), drt: 'x.y.z' });
    await rejectsWith(s.service.handle(request('attest', { nonce: new Uint8Array(32) })), 'keys_unavailable', 'attest');
    await rejectsWith(s.service.handle(request('jwks')), 'keys_unavailable', 'jwks');
    await rejectsWith(s.service.handle(request('assign', { ip: IP, request: assignRequest })), 'keys_unavailable', 'assign');
    await rejectsWith(s.service.handle(request('refresh', { ip: IP, request: refreshRequest })), 'keys_unavailable', 'refresh');
    assert.throws(() => s.service.jwksBytes(), (e: unknown) => e instanceof DipError && e.code === 'keys_unavailable', 'jwksBytes');
  });

  it('health says {status: "locked"} with version and key_id, and no m_commit', async () => {
    const s = await setup({ custody: createKeyCustody() });
    const health = await s.service.handle(request('health'));
    assert.deepEqual(Object.keys(health).sort(), ['key_id', 'status', 'version'], 'no m_commit while locked');
    assert.equal(health['status'], 'locked', 'status');
    const unlocked = await setup();
    const ok = await unlocked.service.handle(request('health'));
    assert.equal(ok['status'], 'ok', 'an unlocked enclave is ok');
    assert.deepEqual(ok['m_commit'], mCommitOf(M), 'and names its m_commit');
  });
});

describe('key_request (SPEC §5, §9)', () => {
  it('returns a document with a fresh RSA-2048 SPKI as public_key, no nonce, user_data exactly {"v":1,"purpose":"kms"}', async () => {
    const s = await setup({ custody: createKeyCustody() });
    const { document } = (await s.service.handle(request('key_request'))) as { document: Uint8Array };
    const payload = decodeAttestationPayload(decodeCoseSign1(document).payload);
    assert.equal(payload.nonce, null, 'no nonce');
    // Preferred CBOR by hand: map(2) "v" 1 "purpose" "kms".
    const expected = Uint8Array.from([0xa2, 0x61, 0x76, 0x01, 0x67, ...Buffer.from('purpose'), 0x63, ...Buffer.from('kms')]);
    assert.deepEqual(payload.userData, expected, 'user_data bytes');
    const key = createPublicKey({ key: Buffer.from(payload.publicKey!), format: 'der', type: 'spki' });
    assert.equal(key.asymmetricKeyType, 'rsa', 'an RSA key');
    assert.equal(key.asymmetricKeyDetails?.modulusLength, 2048, '2048 bits');
  });

  it('makes a new key at each key_request', async () => {
    const s = await setup({ custody: createKeyCustody() });
    const keyOf = async () => {
      const { document } = (await s.service.handle(request('key_request'))) as { document: Uint8Array };
      return Buffer.from(decodeAttestationPayload(decodeCoseSign1(document).payload).publicKey!).toString('hex');
    };
    const first = await keyOf();
    const second = await keyOf();
    assert.notEqual(first, second, 'two key_requests, two keys');
    // The key kept is the latest one: M encrypted to it unlocks.
    const recipient = createPublicKey({ key: Buffer.from(second, 'hex'), format: 'der', type: 'spki' });
    const ciphertext = new Uint8Array(publicEncrypt({ key: recipient, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, M));
    const unlocked = await s.service.handle(request('unlock', { recipient_ciphertext: ciphertext }));
    assert.deepEqual(unlocked['m_commit'], mCommitOf(M), 'unlocked with the key of the latest key_request');
  });
});

describe('epoch keys by the enclave clock (SPEC §3)', () => {
  it('a DRT issued at the end of epoch e-2 refreshes at the start of e', async () => {
    const s = await setup();
    const issued = await assignAt(s, START_OF_E - EPOCH_SECONDS - 1);
    assert.equal(decodeToken(issued.drt).header['kid'], s.custody.keysFor(E - 2).drt.kid, 'signed with the DRT key of e-2');
    const refreshed = await refreshAt(s, START_OF_E, issued.drt);
    assert.equal(decodeToken(refreshed.drt).header['kid'], s.custody.keysFor(E).drt.kid, 'the new DRT uses the key of e');
  });

  it('the JWKS served at e verifies a DAT signed in the last second of e-1', async () => {
    const s = await setup();
    const { dat } = await assignAt(s, START_OF_E - 1);
    s.clock.now = START_OF_E;
    const jwks = JSON.parse(Buffer.from((await s.service.handle(request('jwks')))['jwks'] as Uint8Array).toString('utf8'));
    const { payload } = await jwtVerify(dat, createLocalJWKSet(jwks), { currentDate: new Date(START_OF_E * 1000), typ: 'dat+jwt' });
    assert.equal(payload.iat, START_OF_E - 1, 'the DAT of e-1 verified');
  });

  it('the JWKS lists the DAT keys of e-1, e, e+1 in order, and the next epoch shifts it by one', async () => {
    const s = await setup();
    const kidsAt = async (at: number) => {
      s.clock.now = at;
      return jwksKids(await s.service.handle(request('jwks')));
    };
    const datKid = (e: number) => s.custody.keysFor(e).dat.kid;
    const atE = await kidsAt(START_OF_E + EPOCH_SECONDS - 1);
    assert.deepEqual(atE, [datKid(E - 1), datKid(E), datKid(E + 1)], 'e-1, e, e+1 in the last second of e');
    const atNext = await kidsAt(START_OF_E + EPOCH_SECONDS);
    assert.deepEqual(atNext, [datKid(E), datKid(E + 1), datKid(E + 2)], 'e, e+1, e+2 in the first second of e+1');
    assert.deepEqual(atNext.slice(0, 2), atE.slice(1), 'rollover shifts the set by one');
    const drtKids = [E - 1, E, E + 1].map((e) => s.custody.keysFor(e).drt.kid);
    assert.ok(atE.every((kid) => !drtKids.includes(kid)), 'no DRT key is published');
  });

  it('accepts a DRT signed with the DRT key of e-3 … e and refuses e-4 and e+1 (drt_invalid)', async () => {
    const s = await setup();
    s.clock.now = NOW;
    const refreshWith = async (epoch: number) => {
      const key = s.custody.keysFor(epoch).drt;
      const drt = signEs256(key.privateKey, drtHeader(key), drtClaims({ iss: DAT_ISSUER, 'xv.vpn.dip': { did: DID }, 'xv.vpn.dip.details': { ip: IP } }));
      const { request: sealedRequest } = sealed(s, 'refresh', { srt: await srtAt(NOW), drt });
      return s.service.handle(request('refresh', { ip: IP, request: sealedRequest }));
    };
    for (const epoch of [E - 3, E - 2, E - 1, E]) {
      const body = await refreshWith(epoch);
      assert.equal(body['ip'], IP, `a DRT key of epoch e${epoch - E} is accepted`);
    }
    await rejectsWith(refreshWith(E - 4), 'drt_invalid', 'the DRT key of e-4');
    await rejectsWith(refreshWith(E + 1), 'drt_invalid', 'the DRT key of e+1');
  });
});

describe('derivation vectors (SPEC §3, test/vectors/dip-key-derivation.json)', () => {
  const file = JSON.parse(readFileSync(new URL('../../test/vectors/dip-key-derivation.json', import.meta.url), 'utf8')) as {
    cases: Array<{ m: string; m_commit: string; keys: DerivedKey[] }>;
  };

  it('the vector file is what the independent (noble) implementation computes', () => {
    assert.equal(file.cases.length, VECTOR_SECRETS.length, 'one case per master secret');
    for (const [i, m] of VECTOR_SECRETS.entries()) {
      const entry = file.cases[i]!;
      assert.equal(entry.m, Buffer.from(m).toString('hex'), `case ${i}: M`);
      assert.equal(entry.m_commit, Buffer.from(nobleMCommit(m)).toString('hex'), `case ${i}: m_commit`);
      const expected = VECTOR_EPOCHS.flatMap((epoch) => (['dat', 'drt'] as const).map((label) => nobleDerive(m, label, epoch)));
      assert.deepEqual(entry.keys, expected, `case ${i}: keys`);
    }
  });

  it('enclave/core/keys.ts derives the same kids, public keys, private keys and m_commit', () => {
    for (const entry of file.cases) {
      const m = new Uint8Array(Buffer.from(entry.m, 'hex'));
      assert.equal(Buffer.from(mCommitOf(m)).toString('hex'), entry.m_commit, 'm_commit');
      for (const vector of entry.keys) {
        const key = deriveSigningKey(m, vector.label, vector.epoch);
        const where = `${vector.label} epoch ${vector.epoch}`;
        assert.equal(key.kid, vector.kid, `${where}: kid`);
        assert.deepEqual([key.publicJwk.x, key.publicJwk.y], [vector.x, vector.y], `${where}: public key`);
        const d = key.privateKey.export({ format: 'jwk' }).d!;
        assert.equal(Buffer.from(d, 'base64url').toString('hex'), vector.d, `${where}: private scalar`);
      }
    }
  });

  it('the DAT and DRT keys of one epoch differ, and so do one label\'s keys of consecutive epochs', () => {
    for (const entry of file.cases) {
      const kids = entry.keys.map((k) => k.kid);
      assert.equal(new Set(kids).size, kids.length, `every key of M ${entry.m.slice(0, 8)}… is distinct`);
    }
  });
});

describe('the clock check (SPEC §3 "Time")', () => {
  const BASE_MS = NOW * 1000;
  const guardWithDrift = async (driftMs: number) => {
    const drifted = await createEmulatorNsm({ now: () => BASE_MS + driftMs });
    after(() => drifted.close());
    return createClockGuard(drifted, () => BASE_MS);
  };

  it('trusts a clock that differs from the NSM by exactly 30 s, either way', async () => {
    for (const drift of [30_000, -30_000, 0]) {
      const guard = await guardWithDrift(drift);
      assert.equal(guard.trusted, false, 'untrusted before the first check');
      assert.equal(await guard.check(), true, `drift ${drift} ms is trusted`);
      assert.equal(guard.trusted, true, `drift ${drift} ms: trusted afterwards`);
    }
  });

  it('does not trust a clock 30.001 s off, either way', async () => {
    for (const drift of [30_001, -30_001]) {
      assert.equal(await (await guardWithDrift(drift)).check(), false, `drift ${drift} ms is untrusted`);
    }
  });

  it('while untrusted, attest, assign and refresh answer clock_untrusted; jwks and health still answer; a later good check trusts again', async () => {
    let drift = 30_001;
    const drifting = await createEmulatorNsm({ now: () => BASE_MS + drift });
    after(() => drifting.close());
    const guard = createClockGuard(drifting, () => BASE_MS);
    const s = await setup({ clockGuard: guard });
    assert.equal(await guard.check(), false, 'the first check fails');
    const { request: assignRequest } = sealed(s, 'assign', { srt: await srtAt(NOW) });
    const { request: refreshRequest } = sealed(s, 'refresh', { srt: await srtAt(NOW), drt: 'x.y.z' });
    await rejectsWith(s.service.handle(request('attest', { nonce: new Uint8Array(32) })), 'clock_untrusted', 'attest');
    await rejectsWith(s.service.handle(request('assign', { ip: IP, request: assignRequest })), 'clock_untrusted', 'assign');
    await rejectsWith(s.service.handle(request('refresh', { ip: IP, request: refreshRequest })), 'clock_untrusted', 'refresh');
    assert.equal(jwksKids(await s.service.handle(request('jwks'))).length, 3, 'jwks answers');
    assert.equal((await s.service.handle(request('health')))['status'], 'ok', 'health answers');
    drift = 29_999;
    assert.equal(await guard.check(), true, 'a later check that agrees');
    const attested = await s.service.handle(request('attest', { nonce: new Uint8Array(32) }));
    assert.ok(attested['document'] instanceof Uint8Array, 'attest answers again');
    assert.ok(typeof (await assignAt(s, NOW)).dat === 'string', 'assign answers again');
  });

  it('an NSM that fails makes the clock untrusted, even after a good check', async () => {
    let failing = false;
    const flaky: Nsm = {
      attestation: (req) => (failing ? Promise.reject(new Error('nsm down')) : nsm.attestation(req)),
      close: async () => {},
    };
    const guard = createClockGuard(flaky);
    assert.equal(await guard.check(), true, 'the emulator agrees with the system clock');
    failing = true;
    assert.equal(await guard.check(), false, 'a failing NSM cannot vouch for the clock');
    assert.equal(guard.trusted, false, 'and trusted says so');
  });
});

describe('a parent cannot move the enclave clock (SPEC §3)', () => {
  const TIME_FIELDS = { now: 0, time: 4_000_000_000, epoch: E + 5, timestamp: 1, iat: 2 };
  const bodies: Record<EnclaveRequest['op'], Record<string, unknown>> = {
    attest: { nonce: new Uint8Array(32) },
    jwks: {},
    assign: { ip: IP, request: new Uint8Array(200) },
    refresh: { ip: IP, request: new Uint8Array(200) },
    health: {},
    key_request: {},
    unlock: { recipient_ciphertext: new Uint8Array(256) },
  };

  it('no op takes a time: a body with any time field is bad_request at the frame parser', () => {
    for (const [op, body] of Object.entries(bodies)) {
      const frame = new Map<string, unknown>([['v', 1], ['id', 7], ['op', op], ['body', new Map(Object.entries({ ...body, ...TIME_FIELDS }))]]);
      assert.throws(() => parseRequest(frame as never), (e: unknown) => (e as { code?: string }).code === 'bad_request', `${op} with time fields`);
      assert.doesNotThrow(() => parseRequest(new Map<string, unknown>([['v', 1], ['id', 7], ['op', op], ['body', new Map(Object.entries(body))]]) as never), `${op} without them`);
    }
  });

  it('requests of every op, time fields included, leave the enclave\'s now and epoch unchanged', async () => {
    const s = await setup({ custody: createKeyCustody() });
    s.clock.now = NOW;
    for (const [op, body] of Object.entries(bodies)) {
      await s.service.handle(request(op as EnclaveRequest['op'], { ...body, ...TIME_FIELDS })).catch(() => undefined);
    }
    // Unlock for real: the epoch it reports is the enclave's own.
    const { document } = (await s.service.handle(request('key_request'))) as { document: Uint8Array };
    const recipient = createPublicKey({ key: Buffer.from(decodeAttestationPayload(decodeCoseSign1(document).payload).publicKey!), format: 'der', type: 'spki' });
    const ciphertext = new Uint8Array(publicEncrypt({ key: recipient, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, M));
    const unlocked = await s.service.handle(request('unlock', { recipient_ciphertext: ciphertext, ...TIME_FIELDS }));
    assert.equal(unlocked['epoch'], E, 'unlock reports the epoch of the enclave clock');
    const kidsOfE = [E - 1, E, E + 1].map((e) => s.custody.keysFor(e).dat.kid);
    for (const [op, body] of Object.entries(bodies)) {
      const answer = await s.service.handle(request(op as EnclaveRequest['op'], { ...body, ...TIME_FIELDS })).catch(() => undefined);
      if (answer?.['jwks'] !== undefined) assert.deepEqual(jwksKids(answer), kidsOfE, `${op} with time fields answers with the JWKS of epoch e`);
    }
    assert.deepEqual(jwksKids(await s.service.handle(request('jwks'))), kidsOfE, 'the JWKS is still that of epoch e');
    const { dat } = await assignAt(s, NOW);
    assert.equal(decodeToken(dat).claims['iat'], NOW, 'tokens are dated by the enclave clock');
  });
});
