// The real enclave process in development mode (SPEC §5, §8), over its Unix socket: every op,
// the full assign → refresh flow as an app would run it, and the state directory it keeps.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import packageJson from '../package.json' with { type: 'json' };
import { verifyAttestation } from '../client/attestation.js';
import { DEV_PCRS } from '../client/manifest.js';
import { verifyDat } from '../client/tokens.js';
import { decodeUserData } from '../protocol/attestation-document.js';
import { ERROR_MESSAGES } from '../protocol/errors.js';
import { keyIdOf } from '../protocol/hpke.js';
import { reservedUntilOf } from '../protocol/limits.js';
import { parseResponseBody, type EnclaveResponse, type Op, type ResponseBodies } from '../protocol/messages.js';
import type { FrameClient } from './support/frame-client.js';
import { TEST_MASTER_SECRET, jwtClaims, mintSrt, openTokens, sealAssign, sealRefresh, spawnEnclave, type SpawnedEnclave } from './support/enclave.js';
import { mCommitOf } from '../enclave/core/keys.js';

function okBody<K extends Op>(op: K, response: EnclaveResponse): ResponseBodies[K] {
  assert.ok(response.ok, `expected ok, got ${JSON.stringify(!response.ok && response.error)}`);
  const body = parseResponseBody(op, response.body);
  assert.ok(body !== null, `the ${op} body does not fit SPEC §5`);
  return body;
}

function errorCode(response: EnclaveResponse): string | null {
  return response.ok ? null : response.error.code;
}

// Issue 13: the same behaviour served in one thread (--workers 1) and by a pool of worker threads.
for (const workers of [1, 2]) describe(`enclave process in development mode (--workers ${workers})`, () => {
  let enclave: SpawnedEnclave;
  let client: FrameClient;
  let bootKey: Uint8Array;

  before(async () => {
    enclave = await spawnEnclave({ workers });
    client = await enclave.connect();
    const nonce = randomBytes(32);
    const { document } = okBody('attest', await client.request('attest', { nonce }));
    bootKey = verifyAttestation(document, { root: enclave.rootPem(), nonce, expectedPcrs: DEV_PCRS }).publicKey!;
  });
  after(async () => {
    client?.close();
    await enclave?.stop();
  });

  it('answers health with status ok, the package version and the key_id of the attested boot key', async () => {
    assert.deepEqual(
      okBody('health', await client.request('health')),
      { status: 'ok', version: packageJson.version, key_id: keyIdOf(bootKey), m_commit: mCommitOf(TEST_MASTER_SECRET) },
      'health names the boot key that attestation documents carry, and the M it was unlocked with',
    );
  });

  it('returns an attestation document that verifies against DIR/nsm-root.pem and binds the boot key and the JWKS', async () => {
    const nonce = randomBytes(16);
    const { document, jwks: attestedJwks } = okBody('attest', await client.request('attest', { nonce }));
    const verified = verifyAttestation(document, { root: enclave.rootPem(), nonce, expectedPcrs: DEV_PCRS });
    assert.ok(verified.moduleId.startsWith('dev-'), 'development documents are visibly development');
    assert.deepEqual(verified.publicKey, bootKey, 'one boot key per process');
    const { jwks } = okBody('jwks', await client.request('jwks'));
    assert.deepEqual(attestedJwks, jwks, 'attest returns the JWKS the jwks op serves');
    const userData = decodeUserData(verified.userData!);
    assert.deepEqual(userData.jwksSha256, new Uint8Array(createHash('sha256').update(attestedJwks).digest()), 'user_data binds the returned JWKS');
  });

  it('publishes a JWKS of three public ES256 DAT keys (epochs e-1, e, e+1)', async () => {
    const { jwks } = okBody('jwks', await client.request('jwks'));
    const set = JSON.parse(Buffer.from(jwks).toString('utf8'));
    assert.equal(set.keys.length, 3, 'three DAT keys');
    for (const key of set.keys) {
      assert.equal(key.alg, 'ES256', 'ES256');
      assert.equal(key.d, undefined, 'public only');
    }
  });

  it('assigns, then refreshes, as an app would: sealed SRT in, sealed DAT and DRT out', async () => {
    const issuer = enclave.issuer();
    const sub = `sub-${randomBytes(8).toString('hex')}`;
    const ip = '198.51.100.23';
    const srt = await mintSrt(issuer, { sub, did: 0 });

    const assignSealed = sealAssign(bootKey, srt);
    const assigned = okBody('assign', await client.request('assign', { ip, request: assignSealed.request }));
    assert.equal(assigned.ip, ip);
    const first = openTokens(assignSealed.context, assigned.response);
    const { jwks } = okBody('jwks', await client.request('jwks'));
    const dat = await verifyDat(first.dat, jwks, { ip });
    assert.equal(dat.ip, ip);
    const drtClaims = jwtClaims(first.drt);
    assert.equal(drtClaims['sub'], sub);
    assert.deepEqual(drtClaims['xv.vpn.dip'], { did: 0 });
    assert.equal(assigned.reservedUntil, reservedUntilOf(drtClaims['exp'] as number), 'reservedUntil is the DRT exp rounded up to 00:00 UTC');

    // Refresh names the IP in the clear (the DIP service checks its reservation); it must be the DRT's.
    const wrongIp = sealRefresh(bootKey, srt, first.drt);
    assert.equal(errorCode(await client.request('refresh', { ip: '198.51.100.24', request: wrongIp.request })), 'ip_mismatch', 'a DRT for another IP');
    const refreshSealed = sealRefresh(bootKey, srt, first.drt);
    const refreshed = okBody('refresh', await client.request('refresh', { ip, request: refreshSealed.request }));
    assert.equal(refreshed.ip, ip);
    const second = openTokens(refreshSealed.context, refreshed.response);
    assert.equal((await verifyDat(second.dat, jwks, { ip })).ip, ip);
    assert.notEqual(second.drt, first.drt);
    assert.equal(jwtClaims(second.drt)['sub'], sub);
  });

  it('rejects a request sealed for assign and sent as refresh with decrypt_failed', async () => {
    const srt = await mintSrt(enclave.issuer(), { sub: 'sub-cross-op' });
    const sealed = sealAssign(bootKey, srt);
    const response = await client.request('refresh', { ip: '192.0.2.1', request: sealed.request }, 4242);
    assert.deepEqual(response, { id: 4242, ok: false, error: { code: 'decrypt_failed', message: ERROR_MESSAGES.decrypt_failed } });
  });

  it('rejects an SRT without the dedicated IP entitlement with not_entitled', async () => {
    const srt = await mintSrt(enclave.issuer(), { sub: 'sub-no-dip', did: null });
    const response = await client.request('assign', { ip: '192.0.2.1', request: sealAssign(bootKey, srt).request });
    assert.equal(errorCode(response), 'not_entitled');
  });

  it('keeps its development state in DIR: srt-issuer.json owner-only, nsm-root.pem world-readable', () => {
    const issuer = enclave.issuer();
    assert.equal(issuer.iss, 'https://dev-subscriptions.invalid');
    assert.equal(issuer.aud, 'dip-dev');
    assert.equal(issuer.jwk.alg, 'ES256');
    assert.equal(typeof issuer.jwk.kid, 'string');
    assert.equal(typeof issuer.jwk.d, 'string', 'the private half, so tests and demos can mint SRTs');
    assert.equal(statSync(join(enclave.dir, 'srt-issuer.json')).mode & 0o777, 0o600);
    assert.equal(statSync(join(enclave.dir, 'nsm-root.pem')).mode & 0o777, 0o644);
    assert.equal(statSync(join(enclave.dir, 'enclave.sock')).mode & 0o777, 0o600);
    assert.match(enclave.rootPem(), /^-----BEGIN CERTIFICATE-----\n/);
  });

  it('logs only fixed events, the first three being started (development), clock_checked and listening', () => {
    const events = enclave.events();
    assert.deepEqual(events.slice(0, 3).map((e) => e['event']), ['started', 'clock_checked', 'listening'], 'started, the SPEC §3 clock check, listening');
    assert.equal(events[1]!['clock'], 'trusted', 'the emulator\'s clock is this clock');
    assert.equal(events[0]!['mode'], 'development');
    assert.equal(events[0]!['workers'], workers, 'started names the number of worker threads');
    const lines = enclave.output().split('\n').filter((l) => l.length > 0);
    assert.ok(lines.every((l) => l.startsWith('{"time":')), 'every output line is a JSON event');
  });
});
