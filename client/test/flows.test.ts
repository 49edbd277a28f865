// The flows against a fake parent built from the real NSM emulator and protocol/hpke, with
// tokens minted here, so that each check after opening can be made to fail on its own.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { decodeBase64url } from '../../protocol/base64url.js';
import { reservedUntilOf } from '../../protocol/limits.js';
import { ClientError } from '../errors.js';
import { assign, attest, refresh, type Trust } from '../flows.js';
import { DEV_PCRS } from '../manifest.js';
import { IP, JWKS, M_COMMIT, SRT, URL_BASE, datKey, fakeParent, srtFor, trust, type Tamper } from './fake-parent.js';

function isCode(code: string, detail?: string) {
  return (error: unknown) => {
    assert.ok(error instanceof ClientError, String(error));
    assert.equal(error.code, code);
    if (detail !== undefined) assert.equal(error.detail, detail);
    assert.ok(!error.message.includes(SRT) && !error.message.includes(IP), 'the error message holds no SRT or IP');
    return true;
  };
}

describe('assign and refresh flows', () => {
  it('assign attests with a fresh 32-byte nonce, seals, opens and returns checked tokens for the requested IP', async () => {
    const seen = { nonces: [] as string[], paths: [] as string[] };
    const fetch = fakeParent({}, seen);
    const result = await assign({ url: URL_BASE, srt: SRT, ip: IP, trust, fetch });
    await assign({ url: `${URL_BASE}/`, srt: SRT, ip: IP, trust, fetch });
    assert.deepEqual(seen.paths.slice(0, 2), ['/v1/attestation', '/v1/dip/assign'], 'the JWKS comes with the attestation, not from /v1/keys');
    assert.equal(seen.nonces.length, 2);
    assert.notEqual(seen.nonces[0], seen.nonces[1]);
    assert.equal(decodeBase64url(seen.nonces[0]!)!.length, 32);
    assert.equal(result.ip, IP);
    assert.equal(result.datClaims.ip, IP);
    assert.equal(result.drtClaims.sub, 'subscription-1');
    assert.equal(result.drtClaims.did, 2);
    assert.equal(result.reservedUntil, reservedUntilOf(result.drtClaims.exp), 'reservedUntil is the DRT exp rounded up to 00:00 UTC');
    assert.equal(decodeJwt(result.dat).sub, undefined);
  });

  it('refresh keeps the IP of the DRT and returns new tokens', async () => {
    const fetch = fakeParent();
    const first = await assign({ url: URL_BASE, srt: SRT, ip: IP, trust, fetch });
    const second = await refresh({ url: URL_BASE, srt: SRT, drt: first.drt, trust, fetch });
    assert.equal(second.ip, IP);
    assert.notEqual(second.drt, first.drt);
    assert.notEqual(second.datClaims.jti, first.datClaims.jti);
  });

  it('attest returns the verified document, the boot key and the bound JWKS', async () => {
    const enclave = await attest({ url: URL_BASE, trust, fetch: fakeParent() });
    assert.ok(enclave.attestation.moduleId.startsWith('dev-'), 'an emulator module id starts with dev-');
    assert.deepEqual(enclave.jwks, JWKS);
    assert.equal(enclave.bootPublicKey, enclave.attestation.publicKey);
  });

  it('a server error surfaces with its SPEC code (version_mismatch after a support reset)', async () => {
    const fetch = fakeParent({ error: { status: 403, code: 'version_mismatch' } });
    await assert.rejects(refresh({ url: URL_BASE, srt: SRT, drt: (await assign({ url: URL_BASE, srt: SRT, ip: IP, trust, fetch: fakeParent() })).drt, trust, fetch }), (e: unknown) => isCode('version_mismatch')(e) && (e as ClientError).fromServer);
  });

  const attestationCases: Array<[string, Tamper, Partial<Trust>, string]> = [
    ['PCRs other than the expected ones', {}, { expectedPcrs: { ...DEV_PCRS, pcr2: new Uint8Array(48).fill(7) } }, 'pcr_mismatch'],
    ['a document under another root', { otherNsm: true }, {}, 'chain_root_mismatch'],
    ['a document for another nonce (replay)', { otherNonce: true }, {}, 'nonce_mismatch'],
    ['no user_data', { noUserData: true }, {}, 'user_data_malformed'],
    ['no public_key to seal to', { noPublicKey: true }, {}, 'public_key_missing'],
    ['a root hash that differs from the pin', {}, { rootSha256: '00'.repeat(32) }, 'chain_root_mismatch'],
  ];
  for (const [what, tamper, trustChange, detail] of attestationCases) {
    it(`assign refuses ${what}: attestation_failed (${detail}) and nothing is sent`, async () => {
      const seen = { nonces: [] as string[], paths: [] as string[] };
      await assert.rejects(
        assign({ url: URL_BASE, srt: SRT, ip: IP, trust: { ...trust, ...trustChange, allowDebug: false, maxAgeMs: 60_000 }, fetch: fakeParent(tamper, seen) }),
        isCode('attestation_failed', detail),
      );
      assert.ok(!seen.paths.includes('/v1/dip/assign'), 'assign was never sent');
    });
  }

  it('a JWKS whose SHA-256 is not the one in user_data is jwks_mismatch, even if it only differs in spacing', async () => {
    const spaced = new TextEncoder().encode(JSON.stringify({ keys: [datKey.jwk] }, null, 1));
    await assert.rejects(assign({ url: URL_BASE, srt: SRT, ip: IP, trust, fetch: fakeParent({ servedJwks: spaced }) }), isCode('jwks_mismatch'));
  });

  const checks: Array<[string, Tamper, string]> = [
    ['a clear IP other than the requested one', { clearIp: '198.51.100.24' }, 'ip_unexpected'],
    ['a DAT for another IP', { datIp: '198.51.100.24' }, 'ip_unexpected'],
    ['a DRT for another IP', { drtIp: '198.51.100.24' }, 'ip_unexpected'],
    ['a reservedUntil one second after the rounded DRT exp', { reservedUntilDelta: 1 }, 'reservation_mismatch'],
    ['a reservedUntil one second before the rounded DRT exp', { reservedUntilDelta: -1 }, 'reservation_mismatch'],
    ['a DRT whose kid is a DAT key', { drtKid: datKey.jwk.kid! }, 'drt_unexpected'],
    ['a DRT for another subscription', { drtSub: 'subscription-2' }, 'drt_unexpected'],
    ['a response sealed under another context', { wrongContext: true }, 'response_invalid'],
  ];
  for (const [what, tamper, code] of checks) {
    it(`assign refuses ${what}: ${code}`, async () => {
      await assert.rejects(assign({ url: URL_BASE, srt: SRT, ip: IP, trust, fetch: fakeParent(tamper) }), isCode(code));
    });
  }

  it('a DRT whose did differs from the SRT\'s is drt_unexpected', async () => {
    await assert.rejects(assign({ url: URL_BASE, srt: SRT, ip: IP, trust, fetch: fakeParent({ drtDid: 3 }) }), isCode('drt_unexpected'));
  });

  it('refresh refuses a DRT it cannot read before contacting anyone', async () => {
    const seen = { nonces: [] as string[], paths: [] as string[] };
    await assert.rejects(refresh({ url: URL_BASE, srt: SRT, drt: 'not-a-jwt', trust, fetch: fakeParent({}, seen) }), isCode('token_unreadable'));
    assert.equal(seen.paths.length, 0);
  });
});

describe('key_unknown: attest again and retry once (SPEC §6)', () => {
  const seenOf = () => ({ nonces: [] as string[], paths: [] as string[] });

  it('assign attests again with a fresh nonce and succeeds when the first sealed request gets key_unknown', async () => {
    const seen = seenOf();
    const result = await assign({ url: URL_BASE, srt: SRT, ip: IP, trust, fetch: fakeParent({ keyUnknown: 1 }, seen) });
    assert.equal(result.ip, IP, 'the retried assign returned tokens for the IP');
    assert.deepEqual(seen.paths, ['/v1/attestation', '/v1/dip/assign', '/v1/attestation', '/v1/dip/assign'], 'attest, refused, attest again, sealed to the new boot key');
    assert.notEqual(seen.nonces[0], seen.nonces[1], 'the second attestation uses a fresh nonce');
  });

  it('refresh attests again and succeeds when the first sealed request gets key_unknown', async () => {
    const { drt } = await assign({ url: URL_BASE, srt: SRT, ip: IP, trust, fetch: fakeParent() });
    const seen = seenOf();
    const result = await refresh({ url: URL_BASE, srt: SRT, drt, trust, fetch: fakeParent({ keyUnknown: 1 }, seen) });
    assert.equal(result.ip, IP, 'the retried refresh kept the IP');
    assert.deepEqual(seen.paths, ['/v1/attestation', '/v1/dip/refresh', '/v1/attestation', '/v1/dip/refresh'], 'one retry after a new attestation');
  });

  it('a second key_unknown is returned to the caller: exactly one retry', async () => {
    const seen = seenOf();
    await assert.rejects(
      assign({ url: URL_BASE, srt: SRT, ip: IP, trust, fetch: fakeParent({ keyUnknown: 2 }, seen) }),
      (e: unknown) => isCode('key_unknown')(e) && (e as ClientError).fromServer,
    );
    assert.equal(seen.paths.filter((p) => p === '/v1/dip/assign').length, 2, 'the request was sent twice, not more');
  });

  it('another server refusal is not retried', async () => {
    const seen = seenOf();
    await assert.rejects(assign({ url: URL_BASE, srt: SRT, ip: IP, trust, fetch: fakeParent({ error: { status: 503, code: 'keys_unavailable' } }, seen) }), isCode('keys_unavailable'));
    assert.deepEqual(seen.paths, ['/v1/attestation', '/v1/dip/assign'], 'one attempt only');
  });
});

describe('a pinned m_commit (SPEC §3, §7 step 7)', () => {
  it('accepts a document whose user_data.m_commit equals the pin', async () => {
    const enclave = await attest({ url: URL_BASE, trust: { ...trust, mCommit: M_COMMIT.slice() }, fetch: fakeParent() });
    assert.deepEqual(enclave.jwks, JWKS, 'the JWKS is returned');
  });

  it('refuses a document naming another m_commit: attestation_failed (m_commit_mismatch), nothing is sent', async () => {
    const other = M_COMMIT.slice();
    other[31] = 0x6c; // M_COMMIT is all 0x6d: one byte differs
    const seen = { nonces: [] as string[], paths: [] as string[] };
    await assert.rejects(
      assign({ url: URL_BASE, srt: SRT, ip: IP, trust: { ...trust, mCommit: M_COMMIT }, fetch: fakeParent({ mCommit: other }, seen) }),
      isCode('attestation_failed', 'm_commit_mismatch'),
    );
    assert.deepEqual(seen.paths, ['/v1/attestation'], 'assign was never sent');
    await assert.rejects(attest({ url: URL_BASE, trust: { ...trust, mCommit: other }, fetch: fakeParent() }), isCode('attestation_failed', 'm_commit_mismatch'));
  });

  it('without a pin any m_commit is accepted', async () => {
    const enclave = await attest({ url: URL_BASE, trust, fetch: fakeParent({ mCommit: new Uint8Array(32).fill(9) }) });
    assert.ok(enclave.attestation.userData !== null, 'the document verified');
  });

  it('a pin that is not 32 bytes is a TypeError (misuse), before any request', async () => {
    const seen = { nonces: [] as string[], paths: [] as string[] };
    for (const length of [31, 33]) {
      await assert.rejects(attest({ url: URL_BASE, trust: { ...trust, mCommit: new Uint8Array(length) }, fetch: fakeParent({}, seen) }), TypeError, `${length} bytes`);
    }
    assert.equal(seen.paths.length, 0, 'nothing was fetched');
  });
});
