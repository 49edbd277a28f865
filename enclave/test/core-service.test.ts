// SPEC §5 ops through createEnclaveService().handle: assign and refresh end to end (sealed with
// HPKE as the app does it), the jwks/attest binding of SPEC §3, health, and error hygiene.

import assert from 'node:assert/strict';
import { constants, createHash, createPublicKey, privateDecrypt, publicEncrypt, type KeyObject } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { decodeAttestationPayload, decodeUserData } from '../../protocol/attestation-document.js';
import { decodePaddedCbor, encodeCbor, encodePaddedCbor, isCborMap } from '../../protocol/cbor.js';
import { decodeCoseSign1 } from '../../protocol/cose.js';
import { DipError, type ErrorCode } from '../../protocol/errors.js';
import { generateBootKey, keyIdOf, openResponse, sealRequest, type BootKey, type ResponseContext, type SealedOp } from '../../protocol/hpke.js';
import { EPOCH_SECONDS, REQUEST_PLAINTEXT_BYTES, RESPONSE_PLAINTEXT_BYTES, reservedUntilOf } from '../../protocol/limits.js';
import type { EnclaveRequest } from '../../protocol/messages.js';
import { createEmulatorNsm } from '../nsm/emulator.js';
import type { AttestationRequest, Nsm } from '../nsm/nsm.js';
import { createUnlockedKeyCustody, type EpochKeys, type KeyCustody, type SigningKey } from '../core/keys.js';
import { createEnclaveService, type EnclaveService } from '../core/service.js';
import { issueDat, issueDrt, verifyDat, verifyDrt } from '../core/tokens.js';
import { DAT_ISSUER, DID, NOW, SUB, decodeToken, makeIssuer, mintSrt, trustFor, type TestIssuer } from './core-fixtures.js';

const IP = '198.51.100.23';
const TEST_M = new Uint8Array(32).fill(0x33);
const EPOCH = Math.floor(NOW / EPOCH_SECONDS);

/** Stands in for the CMS reader in these tests: the "ciphertext" is RSA-OAEP-SHA256 of M itself. */
function openTestCiphertext(ciphertext: Uint8Array, key: KeyObject): Uint8Array {
  return new Uint8Array(privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, ciphertext));
}

class RecordingNsm implements Nsm {
  readonly requests: AttestationRequest[] = [];
  async attestation(request: AttestationRequest): Promise<Uint8Array> {
    this.requests.push(request);
    return Uint8Array.of(0xd2, 0x84);
  }
  async close(): Promise<void> {}
}

interface Setup {
  service: EnclaveService;
  bootKey: BootKey;
  custody: KeyCustody;
  /** The keys of NOW's epoch, which sign what the service issues at NOW. */
  keys: EpochKeys;
  nsm: RecordingNsm;
  issuer: TestIssuer;
  clock: { now: number };
}

async function setup(): Promise<Setup> {
  const bootKey = generateBootKey();
  const custody = createUnlockedKeyCustody(TEST_M);
  const nsm = new RecordingNsm();
  const issuer = makeIssuer('ES256');
  const clock = { now: NOW };
  const service = await createEnclaveService({
    nsm,
    bootKey,
    custody,
    openRecipientCiphertext: openTestCiphertext,
    srtTrust: trustFor([issuer]),
    datIssuer: DAT_ISSUER,
    version: '1.2.3-test',
    now: () => clock.now,
  });
  return { service, bootKey, custody, keys: custody.keysFor(EPOCH), nsm, issuer, clock };
}

let nextId = 1;

/** The DRT keys the service accepts at NOW (SPEC §3: epochs e-3 … e). */
function drtKeyOf(s: Setup): (kid: string) => SigningKey | null {
  return (kid) => s.custody.drtKeyFor(kid, EPOCH);
}

/** Seals `payload` as the app does: CBOR padded to exactly REQUEST_PLAINTEXT_BYTES (SPEC §4). */
function seal(s: Setup, op: SealedOp, payload: unknown): { request: Uint8Array; context: ResponseContext } {
  return sealPlaintext(s, op, encodePaddedCbor(payload, REQUEST_PLAINTEXT_BYTES));
}

function sealPlaintext(s: Setup, op: SealedOp, plaintext: Uint8Array): { request: Uint8Array; context: ResponseContext } {
  const { encapsulatedRequest, context } = sealRequest(s.bootKey.publicKeySpki, op, plaintext);
  return { request: encapsulatedRequest, context };
}

function assignRequest(request: Uint8Array, ip = IP): EnclaveRequest {
  return { id: nextId++, op: 'assign', body: { ip, request } };
}

function refreshRequest(request: Uint8Array, ip = IP): EnclaveRequest {
  return { id: nextId++, op: 'refresh', body: { ip, request } };
}

/** Opens the sealed response as the app does and returns its tokens. */
function openTokens(context: ResponseContext, body: Record<string, unknown>): { dat: string; drt: string } {
  const plaintext = openResponse(context, body.response as Uint8Array);
  assert.equal(plaintext.length, RESPONSE_PLAINTEXT_BYTES, 'the response plaintext is padded to 4096 bytes');
  const map = decodePaddedCbor(plaintext, RESPONSE_PLAINTEXT_BYTES);
  assert.ok(isCborMap(map), 'the response is a CBOR map');
  assert.deepEqual([...map.keys()], ['dat', 'drt']);
  return { dat: map.get('dat') as string, drt: map.get('drt') as string };
}

async function assignFor(s: Setup, srtOverrides: Record<string, unknown> = {}): Promise<{ dat: string; drt: string; body: Record<string, unknown> }> {
  const { request, context } = seal(s, 'assign', { srt: await mintSrt(s.issuer, srtOverrides) });
  const body = await s.service.handle(assignRequest(request));
  return { ...openTokens(context, body), body };
}

async function rejects(s: Setup, request: EnclaveRequest, code: ErrorCode): Promise<DipError> {
  let caught: unknown;
  await assert.rejects(
    s.service.handle(request).catch((e: unknown) => {
      caught = e;
      throw e;
    }),
    (e: unknown) => e instanceof DipError && e.code === code,
  );
  return caught as DipError;
}

const s = await setup();

describe('assign', () => {
  it('returns the IP, reservedUntil = the DRT exp rounded up to 00:00 UTC, and a sealed {dat, drt}', async () => {
    const { dat, drt, body } = await assignFor(s);
    assert.deepEqual(Object.keys(body), ['ip', 'reservedUntil', 'response']);
    assert.equal(body.ip, IP);
    // NOW is 08:00:00 UTC and a DRT lives 60 whole days, so its exp is rounded up by 16 h.
    assert.equal(body.reservedUntil, NOW + 5_184_000 + 57_600, 'reservedUntil is the next 00:00 UTC after exp');
    assert.equal((body.reservedUntil as number) % 86_400, 0, 'reservedUntil is a midnight');
    assert.deepEqual(await verifyDat(JSON.parse(Buffer.from(s.service.jwksBytes()).toString()), DAT_ISSUER, dat, NOW), { ip: IP, exp: NOW + 259_200 });
    assert.deepEqual(verifyDrt(drtKeyOf(s), DAT_ISSUER, drt, NOW), { sub: SUB, did: DID, ip: IP, exp: NOW + 5_184_000 });
    assert.equal(decodeToken(dat).header.kid, s.keys.dat.kid);
    assert.equal(decodeToken(drt).header.kid, s.keys.drt.kid);
  });

  it('refuses a request sealed for refresh (decrypt_failed)', async () => {
    const { request } = seal(s, 'refresh', { srt: await mintSrt(s.issuer) });
    await rejects(s, assignRequest(request), 'decrypt_failed');
  });

  it('refuses a payload with extra keys, missing keys or wrong types (bad_request)', async () => {
    const srt = await mintSrt(s.issuer);
    for (const payload of [{ srt, drt: 'x' }, {}, { srt: 7 }, { SRT: srt }, [srt], srt, new Map([[1, srt]])]) {
      await rejects(s, assignRequest(seal(s, 'assign', payload).request), 'bad_request');
    }
  });

  it('refuses a payload that is not CBOR (bad_request)', async () => {
    for (const bytes of [Uint8Array.of(0xa1), Uint8Array.of(0x9f), Uint8Array.of(0xff)]) {
      const padded = new Uint8Array(REQUEST_PLAINTEXT_BYTES);
      padded.set(bytes);
      await rejects(s, assignRequest(sealPlaintext(s, 'assign', padded).request), 'bad_request');
    }
  });

  it('refuses a plaintext that is not padded to exactly 8192 bytes with zeros (bad_request)', async () => {
    const item = encodeCbor({ srt: await mintSrt(s.issuer) });
    const padded = (size: number, fill = 0): Uint8Array => {
      const out = new Uint8Array(size).fill(fill);
      out.set(item);
      return out;
    };
    await s.service.handle(assignRequest(sealPlaintext(s, 'assign', padded(REQUEST_PLAINTEXT_BYTES)).request));
    for (const plaintext of [item, padded(REQUEST_PLAINTEXT_BYTES - 1), padded(REQUEST_PLAINTEXT_BYTES + 1)]) {
      await rejects(s, assignRequest(sealPlaintext(s, 'assign', plaintext).request), 'bad_request');
    }
    const lastByteSet = padded(REQUEST_PLAINTEXT_BYTES);
    lastByteSet[REQUEST_PLAINTEXT_BYTES - 1] = 1;
    await rejects(s, assignRequest(sealPlaintext(s, 'assign', lastByteSet).request), 'bad_request');
    const firstPadByteSet = padded(REQUEST_PLAINTEXT_BYTES);
    firstPadByteSet[item.length] = 0x80;
    await rejects(s, assignRequest(sealPlaintext(s, 'assign', firstPadByteSet).request), 'bad_request');
  });

  it('refuses garbage (bad_request) and a request sealed to another boot key (key_unknown)', async () => {
    await rejects(s, assignRequest(Uint8Array.of(1, 2, 3)), 'bad_request');
    const other = generateBootKey();
    const { request } = sealPlaintext({ ...s, bootKey: other }, 'assign', encodePaddedCbor({ srt: await mintSrt(s.issuer) }, REQUEST_PLAINTEXT_BYTES));
    await rejects(s, assignRequest(request), 'key_unknown');
  });

  it('refuses an IP that is not canonical (bad_request)', async () => {
    const { request } = seal(s, 'assign', { srt: await mintSrt(s.issuer) });
    await rejects(s, assignRequest(request, '2001:0db8::1'), 'bad_request');
  });

  it('passes on the SRT codes', async () => {
    const cases: [Record<string, unknown>, ErrorCode][] = [
      [{ exp: NOW - 90 }, 'srt_expired'],
      [{ iss: 'https://evil.example' }, 'srt_invalid'],
      [{ entitlements: undefined }, 'not_entitled'],
    ];
    for (const [overrides, code] of cases) {
      const { request } = seal(s, 'assign', { srt: await mintSrt(s.issuer, overrides) });
      await rejects(s, assignRequest(request), code);
    }
  });
});

describe('refresh', () => {
  async function refreshWith(srtOverrides: Record<string, unknown>, drt: string): Promise<EnclaveRequest> {
    const { request } = seal(s, 'refresh', { srt: await mintSrt(s.issuer, srtOverrides), drt });
    return refreshRequest(request);
  }

  it("issues a new DAT and DRT for the DRT's IP, same sub and did", async () => {
    const first = await assignFor(s);
    s.clock.now = NOW + 86_400;
    try {
      const { request, context } = seal(s, 'refresh', { srt: await mintSrt(s.issuer, { iat: s.clock.now - 10, exp: s.clock.now + 3600 }), drt: first.drt });
      const body = await s.service.handle(refreshRequest(request));
      assert.equal(body.ip, IP);
      assert.equal(body.reservedUntil, reservedUntilOf(NOW + 86_400 + 5_184_000), 'reservedUntil is the new DRT exp rounded up');
      const { dat, drt } = openTokens(context, body);
      assert.notEqual(drt, first.drt);
      assert.deepEqual(verifyDrt(drtKeyOf(s), DAT_ISSUER, drt, s.clock.now), { sub: SUB, did: DID, ip: IP, exp: NOW + 86_400 + 5_184_000 });
      assert.equal((await verifyDat({ keys: [s.keys.dat.publicJwk] }, DAT_ISSUER, dat, s.clock.now)).ip, IP);
    } finally {
      s.clock.now = NOW;
    }
  });

  it("rejects a DRT whose did differs from the SRT's (version_mismatch)", async () => {
    const { drt } = await assignFor(s);
    await rejects(s, await refreshWith({ entitlements: { 'xv.vpn.dip': { did: DID + 1 } } }, drt), 'version_mismatch');
  });

  it('rejects a DRT for another IP than the clear one (ip_mismatch), after the sub and did checks', async () => {
    const { drt } = await assignFor(s);
    const { request } = seal(s, 'refresh', { srt: await mintSrt(s.issuer), drt });
    await rejects(s, refreshRequest(request, '198.51.100.24'), 'ip_mismatch');
    const other = seal(s, 'refresh', { srt: await mintSrt(s.issuer, { entitlements: { 'xv.vpn.dip': { did: DID + 1 } } }), drt });
    await rejects(s, refreshRequest(other.request, '198.51.100.24'), 'version_mismatch');
    await rejects(s, refreshRequest(seal(s, 'refresh', { srt: await mintSrt(s.issuer), drt }).request, '2001:db8::0:1'), 'bad_request');
  });

  it("rejects a DRT whose sub differs from the SRT's (subject_mismatch)", async () => {
    const { drt } = await assignFor(s);
    await rejects(s, await refreshWith({ sub: 'another-subscription' }, drt), 'subject_mismatch');
  });

  it('rejects an expired DRT (drt_expired)', async () => {
    const old = issueDrt(s.keys.drt, DAT_ISSUER, { sub: SUB, did: DID, ip: IP }, NOW - 5_184_000 - 90).token;
    await rejects(s, await refreshWith({}, old), 'drt_expired');
  });

  it('rejects a DAT presented as a DRT (drt_invalid)', async () => {
    const { dat } = await assignFor(s);
    await rejects(s, await refreshWith({}, dat), 'drt_invalid');
    const datKeyDrt = issueDrt(s.keys.dat, DAT_ISSUER, { sub: SUB, did: DID, ip: IP }, NOW).token;
    await rejects(s, await refreshWith({}, datKeyDrt), 'drt_invalid');
    const drtKeyDat = issueDat(s.keys.drt, DAT_ISSUER, IP, NOW).token;
    await rejects(s, await refreshWith({}, drtKeyDat), 'drt_invalid');
  });

  it('rejects a DRT from another enclave key (drt_invalid)', async () => {
    const stranger = createUnlockedKeyCustody(new Uint8Array(32).fill(0x44)).keysFor(EPOCH).drt;
    await rejects(s, await refreshWith({}, issueDrt(stranger, DAT_ISSUER, { sub: SUB, did: DID, ip: IP }, NOW).token), 'drt_invalid');
  });

  it('checks the SRT too', async () => {
    const { drt } = await assignFor(s);
    await rejects(s, await refreshWith({ exp: NOW - 90 }, drt), 'srt_expired');
    await rejects(s, await refreshWith({ entitlements: {} }, drt), 'not_entitled');
  });

  it('refuses a request sealed for assign (decrypt_failed)', async () => {
    const { drt } = await assignFor(s);
    const { request } = seal(s, 'assign', { srt: await mintSrt(s.issuer), drt });
    await rejects(s, refreshRequest(request), 'decrypt_failed');
  });

  it('refuses a payload with extra or missing keys (bad_request)', async () => {
    const { drt } = await assignFor(s);
    const srt = await mintSrt(s.issuer);
    for (const payload of [{ srt, drt, extra: 'x' }, { srt }, { drt }, { srt, drt: 1 }]) {
      await rejects(s, refreshRequest(seal(s, 'refresh', payload).request), 'bad_request');
    }
  });
});

describe('length hiding (SPEC §4)', () => {
  it('subscription ids of 1 and 256 characters give sealed requests and responses of equal length', async () => {
    const requestLengths = new Set<number>();
    const responseLengths = new Set<number>();
    for (const sub of ['a', 'x'.repeat(256), '\u{1F600}'.repeat(256)]) {
      const srt = await mintSrt(s.issuer, { sub });
      const assign = seal(s, 'assign', { srt });
      const assigned = await s.service.handle(assignRequest(assign.request));
      const { drt } = openTokens(assign.context, assigned);
      const refresh = seal(s, 'refresh', { srt, drt });
      const refreshed = await s.service.handle(refreshRequest(refresh.request));
      for (const request of [assign.request, refresh.request]) requestLengths.add(request.length);
      for (const body of [assigned, refreshed]) responseLengths.add((body.response as Uint8Array).length);
    }
    assert.deepEqual([...requestLengths], [16 + 65 + REQUEST_PLAINTEXT_BYTES + 16], 'one sealed request length');
    assert.deepEqual([...responseLengths], [32 + RESPONSE_PLAINTEXT_BYTES + 16], 'one sealed response length');
  });
});

describe('jwks and attest', () => {
  it('publishes the DAT public key only, as UTF-8 JSON {"keys": [...]}', async () => {
    const body = await s.service.handle({ id: 1, op: 'jwks', body: {} });
    const jwks = body.jwks as Uint8Array;
    assert.deepEqual(jwks, s.service.jwksBytes());
    const parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(jwks)) as { keys: Record<string, unknown>[] };
    assert.deepEqual(Object.keys(parsed), ['keys']);
    assert.equal(parsed.keys.length, 3, 'the DAT keys of e-1, e, e+1');
    assert.deepEqual(parsed.keys[1], { ...s.keys.dat.publicJwk }, 'the current DAT key in the middle');
    for (const key of parsed.keys) {
      assert.notEqual(key.kid, s.keys.drt.kid, 'no DRT key');
      assert.equal('d' in key, false, 'no private part');
    }
    assert.ok(!Buffer.from(jwks).toString().includes(s.keys.drt.publicJwk.x!), 'the DRT key is not in the JWKS');
  });

  it('returns the same bytes every time, unaffected by callers that mutate them', async () => {
    const first = (await s.service.handle({ id: 1, op: 'jwks', body: {} })).jwks as Uint8Array;
    first.fill(0);
    s.service.jwksBytes().fill(0);
    const second = (await s.service.handle({ id: 2, op: 'jwks', body: {} })).jwks as Uint8Array;
    assert.equal(JSON.parse(Buffer.from(second).toString()).keys[1].kid, s.keys.dat.kid, 'the current DAT key is intact');
  });

  it('asks the NSM for a document binding the nonce, the boot key and sha256(jwks)', async () => {
    const fresh = await setup();
    const nonce = new Uint8Array(32).fill(7);
    const body = await fresh.service.handle({ id: 3, op: 'attest', body: { nonce } });
    assert.deepEqual(body, { document: Uint8Array.of(0xd2, 0x84), jwks: fresh.service.jwksBytes() }, 'attest returns the document and the JWKS it binds');
    assert.equal(fresh.nsm.requests.length, 1);
    const sent = fresh.nsm.requests[0]!;
    assert.deepEqual(sent.nonce, nonce);
    assert.deepEqual(sent.publicKey, fresh.bootKey.publicKeySpki);
    const jwks = (await fresh.service.handle({ id: 4, op: 'jwks', body: {} })).jwks as Uint8Array;
    const mCommit = createHash('sha256').update('dip m commit v1').update(TEST_M).digest();
    assert.deepEqual(
      sent.userData,
      encodeCbor(new Map<string, unknown>([['v', 1], ['jwks_sha256', createHash('sha256').update(jwks).digest()], ['m_commit', mCommit]])),
      'SPEC §3 user_data: v, jwks_sha256, m_commit = SHA-256("dip m commit v1" || M)',
    );
    assert.deepEqual(decodeUserData(sent.userData!).jwksSha256, new Uint8Array(createHash('sha256').update(jwks).digest()));
  });

  it('passes a nonce of exactly 16 and of exactly 64 bytes to the NSM', async () => {
    const fresh = await setup();
    for (const size of [16, 64]) await fresh.service.handle({ id: 6, op: 'attest', body: { nonce: new Uint8Array(size) } });
    assert.deepEqual(fresh.nsm.requests.map((r) => r.nonce?.length), [16, 64], 'both bound sizes reach the NSM');
  });

  it('refuses a nonce outside 16..64 bytes (bad_request)', async () => {
    for (const nonce of [new Uint8Array(15), new Uint8Array(65)]) {
      await rejects(s, { id: 5, op: 'attest', body: { nonce } }, 'bad_request');
    }
  });

  it('produces an emulator document whose user_data, nonce and public_key are ours', async () => {
    const nsm = await createEmulatorNsm();
    after(() => nsm.close());
    const bootKey = generateBootKey();
    const service = await createEnclaveService({
      nsm,
      bootKey,
      custody: createUnlockedKeyCustody(TEST_M),
      openRecipientCiphertext: openTestCiphertext,
      srtTrust: trustFor([makeIssuer('ES256')]),
      datIssuer: DAT_ISSUER,
      version: 'v',
    });
    const nonce = new Uint8Array(16).fill(9);
    const { document } = (await service.handle({ id: 1, op: 'attest', body: { nonce } })) as { document: Uint8Array };
    const payload = decodeAttestationPayload(decodeCoseSign1(document).payload);
    assert.deepEqual(payload.nonce, nonce);
    assert.deepEqual(payload.publicKey, bootKey.publicKeySpki);
    assert.deepEqual(decodeUserData(payload.userData!).jwksSha256, new Uint8Array(createHash('sha256').update(service.jwksBytes()).digest()));
  });
});

describe('key_request races and the response room', () => {
  it('of two overlapping key_requests, the one sent last holds the recipient key, whichever finishes first', async () => {
    const sealTo = (spki: Uint8Array): Uint8Array =>
      new Uint8Array(publicEncrypt({ key: createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, TEST_M));
    // An NSM whose "document" is the recipient key it was asked to attest, so each answer names its key.
    const keyEcho: Nsm = { attestation: async (request) => request.publicKey!.slice(), close: async () => {} };
    for (const [unlockWith, expected] of [['second', 'ok'], ['first', 'bad_request']] as const) {
      const service = await createEnclaveService({
        nsm: keyEcho, bootKey: generateBootKey(), custody: createUnlockedKeyCustody(TEST_M), srtTrust: trustFor([makeIssuer()]),
        datIssuer: DAT_ISSUER, version: 'v', openRecipientCiphertext: openTestCiphertext,
      });
      const [first, second] = await Promise.all([1, 2].map(async (id) => (await service.handle({ id, op: 'key_request', body: {} })).document as Uint8Array));
      assert.notDeepEqual(first, second, 'each key_request made its own key');
      const request = { id: 3, op: 'unlock', body: { recipient_ciphertext: sealTo(unlockWith === 'second' ? second! : first!) } } as const;
      if (expected === 'ok') assert.equal((await service.handle(request)).status, 'ok', 'the document of the last key_request unlocks');
      else await assert.rejects(service.handle(request), (e: unknown) => e instanceof DipError && e.code === 'bad_request', 'the superseded key opens nothing');
    }
  });

  it('refuses a datIssuer so long that the largest DAT and DRT would not fit the padded response', async () => {
    const base = { nsm: new RecordingNsm(), bootKey: generateBootKey(), custody: createUnlockedKeyCustody(TEST_M), srtTrust: trustFor([makeIssuer()]), version: 'v', openRecipientCiphertext: openTestCiphertext };
    await assert.rejects(createEnclaveService({ ...base, datIssuer: `https://${'x'.repeat(2000)}` }), TypeError, 'a 2000-character issuer');
    await createEnclaveService({ ...base, datIssuer: `https://${'x'.repeat(100)}` });
  });
});

describe('health and misuse', () => {
  it('answers health with status ok, the version, the boot key id and m_commit', async () => {
    assert.deepEqual(
      await s.service.handle({ id: 1, op: 'health', body: {} }),
      { status: 'ok', version: '1.2.3-test', key_id: keyIdOf(s.bootKey.publicKeySpki), m_commit: s.custody.mCommit },
      'health names the boot key by its key_id and the deployment by m_commit',
    );
  });

  it('dates tokens by the system clock when no clock is given', async () => {
    const bootKey = generateBootKey();
    const issuer = makeIssuer('ES256');
    const service = await createEnclaveService({
      nsm: new RecordingNsm(),
      bootKey,
      custody: createUnlockedKeyCustody(TEST_M),
      openRecipientCiphertext: openTestCiphertext,
      srtTrust: trustFor([issuer]),
      datIssuer: DAT_ISSUER,
      version: 'v',
    });
    const before = Math.floor(Date.now() / 1000);
    const srt = await mintSrt(issuer, { iat: before - 10, exp: before + 3600 });
    const { encapsulatedRequest } = sealRequest(bootKey.publicKeySpki, 'assign', encodePaddedCbor({ srt }, REQUEST_PLAINTEXT_BYTES));
    const body = await service.handle(assignRequest(encapsulatedRequest));
    const later = Math.floor(Date.now() / 1000);
    const reservedUntil = body.reservedUntil as number;
    assert.ok(reservedUntil >= reservedUntilOf(before + 5_184_000) && reservedUntil <= reservedUntilOf(later + 5_184_000), 'reservedUntil follows the system clock');
  });

  it('answers unknown_op for an op outside the set', async () => {
    await rejects(s, { id: 1, op: 'sign', body: {} } as unknown as EnclaveRequest, 'unknown_op');
  });

  it('refuses to start with no datIssuer, no CMS reader or no trusted SRT key', async () => {
    const custody = createUnlockedKeyCustody(TEST_M);
    const base = { nsm: new RecordingNsm(), bootKey: generateBootKey(), srtTrust: trustFor([makeIssuer()]), datIssuer: DAT_ISSUER, version: 'v', openRecipientCiphertext: openTestCiphertext };
    await assert.rejects(createEnclaveService({ ...base, custody, openRecipientCiphertext: undefined as never }), TypeError);
    await assert.rejects(createEnclaveService({ ...base, custody, datIssuer: '' }), TypeError);
    await assert.rejects(createEnclaveService({ ...base, custody, version: 1 as unknown as string }), TypeError);
    await assert.rejects(createEnclaveService({ ...base, custody, srtTrust: trustFor([]) }), TypeError);
  });

  it('never puts the sub, the IP or a token in an error message', async () => {
    const secretSub = 'sub-4f1c9e2b-secret';
    const secretIp = '192.0.2.199';
    const drt = issueDrt(s.keys.drt, DAT_ISSUER, { sub: secretSub, did: DID, ip: secretIp }, NOW).token;
    const expiredDrt = issueDrt(s.keys.drt, DAT_ISSUER, { sub: secretSub, did: DID, ip: secretIp }, NOW - 6_000_000).token;
    const requests: [EnclaveRequest, ErrorCode][] = [];
    const add = async (srtOverrides: Record<string, unknown>, drtToken: string, code: ErrorCode): Promise<void> => {
      const srt = await mintSrt(s.issuer, { sub: secretSub, ...srtOverrides });
      requests.push([refreshRequest(seal(s, 'refresh', { srt, drt: drtToken }).request), code]);
    };
    await add({ sub: 'other-sub' }, drt, 'subject_mismatch');
    await add({ entitlements: { 'xv.vpn.dip': { did: 9 } } }, drt, 'version_mismatch');
    await add({}, expiredDrt, 'drt_expired');
    await add({}, drt.slice(0, -4) + 'AAAA', 'drt_invalid');
    await add({ exp: NOW - 600 }, drt, 'srt_expired');
    await add({ iss: secretSub }, drt, 'srt_invalid');
    await add({ entitlements: undefined }, drt, 'not_entitled');
    requests.push([assignRequest(seal(s, 'assign', { srt: secretSub }).request, secretIp), 'srt_invalid']);
    requests.push([assignRequest(seal(s, 'assign', { srt: secretSub, x: secretIp }).request, secretIp), 'bad_request']);
    for (const [request, code] of requests) {
      const error = await rejects(s, request, code);
      for (const secret of [secretSub, secretIp, drt.slice(0, 20)]) {
        assert.ok(!error.message.includes(secret), `${code} message leaks input`);
        assert.ok(!String(error.stack).includes(secret), `${code} stack leaks input`);
      }
      assert.equal(error.cause, undefined);
    }
  });
});
