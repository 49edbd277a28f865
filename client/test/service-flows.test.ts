// The app's whole flow through the Dedicated IP service (SPEC §10–11) against a real HTTP server
// (fake-service.ts) with the fake parent + enclave behind it and the fake issuer beside it.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { decodeBase64url, encodeBase64url } from '../../protocol/base64url.js';
import { SEALED_REQUEST_BYTES } from '../../protocol/limits.js';
import { formatWwwAuthenticate } from '../../protocol/privacypass-http.js';
import { TokenChallenge } from '../../protocol/privacypass.js';
import { AWS_NITRO_ROOT_G1_SHA256 } from '../attestation.js';
import { decodeBackupCode, openBackup, sealBackup } from '../backup.js';
import { ClientError } from '../errors.js';
import type { Trust } from '../flows.js';
import { getToken, parseTokenKeys, redemptionDelayMs, seededRandom } from '../privacy-pass.js';
import {
  RetryWithSameTokenError, assignThroughService, deleteBackup, pinsAwsNitroRoot, pullBackup, pushBackup, refreshThroughService,
  type AssignThroughServiceOptions,
} from '../service-flows.js';
import { MAX_BACKUP_BLOB_BYTES, ServiceClient } from '../service.js';
import { ISSUER_KEY, ISSUER_NAME, ISSUER_URL, ORIGIN_INFO, OTHER_KEY, fakeIssuer, tokenKeysJson } from './fake-issuer.js';
import { SRT, srtFor, trust } from './fake-parent.js';
import { CHALLENGE, POOL, startFakeService, type FakeService, type ServiceScript } from './fake-service.js';

const pinned = parseTokenKeys(tokenKeysJson());
const FAST = { log2N: 14, r: 8, p: 1 };
const AWS_ROOT = readFileSync(new URL('../../test/vectors/aws-nitro-root-g1.pem', import.meta.url), 'utf8');

const services: FakeService[] = [];
after(() => Promise.all(services.map((service) => service.close())));
async function service(script: ServiceScript = {}): Promise<FakeService> {
  const started = await startFakeService(script);
  services.push(started);
  return started;
}

/** A token from the fake issuer, as `dip token get` keeps it. */
async function freshToken(): Promise<string> {
  return (await getToken({ issuerUrl: ISSUER_URL, srt: SRT, config: pinned, fetch: fakeIssuer().fetch })).encoded;
}

function options(fake: FakeService, extra: Partial<AssignThroughServiceOptions> = {}): AssignThroughServiceOptions {
  return { url: fake.url, trust, srt: SRT, pinned, ...extra };
}

async function refusedWith(promise: Promise<unknown>, code: string, check: (error: ClientError) => void = () => {}): Promise<ClientError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ClientError, `a ClientError, not ${String(error)}`);
    assert.equal(error.code, code, 'the error code');
    check(error);
    return error;
  }
  assert.fail(`expected ${code}`);
}

const tokenRequests = (fake: FakeService) => fake.requests.filter((r) => r.headers.authorization !== undefined);

describe('the whole flow through the DIP service', () => {
  it('challenge → token → attest → assign → backup → pull on a second device → refresh', async () => {
    const fake = await service();
    const issuer = fakeIssuer();
    const kept: string[] = [];
    const slept: number[] = [];
    const assigned = await assignThroughService(options(fake, {
      issuer: { url: ISSUER_URL, fetch: issuer.fetch, keepToken: (encoded) => void kept.push(encoded) },
      sleep: async (ms) => void slept.push(ms),
    }));
    assert.equal(kept.length, 1, 'the token was handed over to be kept before it was redeemed');
    assert.equal(assigned.ip, POOL[0], 'the IP the service chose');
    assert.equal(assigned.datClaims.ip, POOL[0], 'the DAT names it');
    assert.equal(assigned.drtClaims.ip, POOL[0], 'the DRT names it');
    assert.equal(assigned.drtClaims.sub, 'subscription-1', 'the DRT is for this subscription');
    assert.deepEqual(slept, [], 'no delay with a development root');
    assert.equal(assigned.redemptionDelayMs, 0, 'and none reported');
    assert.deepEqual(
      fake.requests.map((r) => `${r.method} ${r.path}${r.headers.authorization ? ' +token' : ''}`),
      ['POST /v1/dip/assign', 'GET /v1/attestation', 'POST /v1/dip/assign +token'],
      'challenge without a token, then attestation, then the sealed assign with it',
    );
    assert.equal(fake.requests[2]!.headers.authorization, `PrivateToken token="${kept[0]}"`, 'the RFC 9577 credential');
    assert.deepEqual(Object.keys(JSON.parse(fake.requests[2]!.body.toString('utf8'))), ['request'], 'the body is exactly {"request"}');
    assert.deepEqual(issuer.calls.map((c) => `${c.method} ${c.path}`), ['GET /.well-known/private-token-issuer-directory', 'POST /token-request'], 'the issuer was asked once');
    assert.equal(fake.reservations.get(POOL[0]!)?.spent, true, 'the service spent the token');

    const { backupCode } = await pushBackup({ url: fake.url, drt: assigned.drt, scryptParams: FAST });
    const put = fake.requests.at(-1)!;
    assert.equal(put.method, 'PUT', 'the backup was put');
    assert.equal(put.headers['content-type'], 'application/octet-stream', 'as raw bytes');
    assert.equal(put.body.length, MAX_BACKUP_BLOB_BYTES, 'padded to exactly 4096 bytes');
    const { id, accessCode } = decodeBackupCode(backupCode);
    assert.equal(put.path, `/v1/backup/${encodeBase64url(id)}`, 'under the id of the backup code, base64url');
    for (const request of fake.requests) {
      assert.ok(!request.body.includes(assigned.drt) && !request.body.includes(accessCode) && !request.body.includes(backupCode), 'neither the DRT nor the codes reach the service');
    }

    // A second device knows only the service and the backup code.
    const pulled = await pullBackup({ url: fake.url, backupCode });
    assert.equal(pulled.drt, assigned.drt, 'the same DRT');
    assert.equal(pulled.drtClaims.ip, POOL[0], 'for the same IP');
    const refreshed = await refreshThroughService({ url: fake.url, trust, srt: SRT, drt: pulled.drt });
    assert.equal(refreshed.ip, POOL[0], 'refresh keeps the IP');
    assert.notEqual(refreshed.drt, assigned.drt, 'a new DRT');
    assert.equal(fake.requests.at(-1)!.path, '/v1/dip/refresh', 'through the service');
    assert.equal(fake.requests.at(-1)!.headers.authorization, undefined, 'refresh carries no token');

    // The token went to the service's assign route once and nowhere else.
    const carriers = fake.requests.filter((r) => JSON.stringify(r.headers).includes(kept[0]!.slice(0, 40)) || r.body.includes(kept[0]!.slice(0, 40)));
    assert.deepEqual(carriers.map((r) => `${r.method} ${r.path}`), ['POST /v1/dip/assign'], 'only the assign route saw the token');
    assert.ok(issuer.calls.every((c) => !JSON.stringify([...c.headers]).includes(kept[0]!.slice(0, 40))), 'the issuer never saw the token');
  });

  it('assigns with a kept token (dip token get) and refuses to use it twice: token_spent, not a retry', async () => {
    const fake = await service();
    const token = await freshToken();
    const first = await assignThroughService(options(fake, { token }));
    assert.equal(first.ip, POOL[0], 'assigned');
    const again = await refusedWith(assignThroughService(options(fake, { token })), 'token_spent', (e) => assert.ok(e.fromServer, 'from the service'));
    assert.ok(!(again instanceof RetryWithSameTokenError), 'a spent token is not to be retried');
  });
});

describe('the challenge is checked before any token is fetched or spent', () => {
  const differing: Array<[string, string, string]> = [
    ['another origin', formatWwwAuthenticate({ challenge: new TokenChallenge({ issuerName: ISSUER_NAME, redemptionContext: new Uint8Array(0), originInfo: 'tracker.example' }), tokenKey: ISSUER_KEY.spki }), 'origin_info'],
    ['a per-user redemption context', formatWwwAuthenticate({ challenge: new TokenChallenge({ issuerName: ISSUER_NAME, redemptionContext: new Uint8Array(32).fill(7), originInfo: ORIGIN_INFO }), tokenKey: ISSUER_KEY.spki }), 'redemption_context'],
    ['an unpinned key beside the pinned one', `${CHALLENGE}, ${formatWwwAuthenticate({ challenge: new TokenChallenge({ issuerName: ISSUER_NAME, redemptionContext: new Uint8Array(0), originInfo: ORIGIN_INFO }), tokenKey: OTHER_KEY.spki })}`, 'token_key'],
    ['no challenge that parses', 'PrivateToken challenge="AAAA"', 'malformed'],
  ];
  for (const [what, challenge, detail] of differing) {
    it(`${what}: challenge_unexpected (${detail}); the issuer is not asked and a kept token is not sent`, async () => {
      const fake = await service({ challenge });
      const issuer = fakeIssuer();
      await refusedWith(
        assignThroughService(options(fake, { issuer: { url: ISSUER_URL, fetch: issuer.fetch, keepToken: () => assert.fail('no token') } })),
        'challenge_unexpected', (e) => assert.equal(e.detail, detail, 'which part differs'),
      );
      assert.equal(issuer.calls.length, 0, 'nothing reached the issuer');
      await refusedWith(assignThroughService(options(fake, { token: await freshToken() })), 'challenge_unexpected');
      assert.equal(tokenRequests(fake).length, 0, 'no token reached the service');
    });
  }

  it('a 401 without WWW-Authenticate is challenge_unexpected (missing); a 200 to the placeholder is http_failed', async () => {
    const bare = await service({ raw: { 'POST /v1/dip/assign': { status: 401, body: JSON.stringify({ error: { code: 'token_invalid', message: 'x' } }) } } });
    await refusedWith(assignThroughService(options(bare, { token: await freshToken() })), 'challenge_unexpected', (e) => assert.equal(e.detail, 'missing', 'detail'));
    const odd = await service({ raw: { 'POST /v1/dip/assign': { status: 200, body: '{}' } } });
    await refusedWith(new ServiceClient(odd.url).challenge(), 'http_failed');
    const down = await service({ raw: { 'POST /v1/dip/assign': { status: 503, body: JSON.stringify({ error: { code: 'pool_exhausted', message: 'x' } }) } } });
    await refusedWith(new ServiceClient(down.url).challenge(), 'pool_exhausted');
  });

  it('the challenge request carries a placeholder of a sealed request\'s size and no token', async () => {
    const fake = await service();
    assert.equal(await new ServiceClient(fake.url).challenge(), CHALLENGE, 'the WWW-Authenticate value');
    const body = JSON.parse(fake.requests[0]!.body.toString('utf8')) as { request: string };
    assert.equal(decodeBase64url(body.request)!.length, SEALED_REQUEST_BYTES, 'the size of a sealed request');
    assert.equal(fake.requests[0]!.headers.authorization, undefined, 'no token');
  });

  it('a kept token under a pinned key the service no longer offers is refused before it is sent (token_invalid, not_offered)', async () => {
    const two = parseTokenKeys(tokenKeysJson({ keys: [{ tokenType: 2, tokenKey: ISSUER_KEY.spki }, { tokenType: 2, tokenKey: OTHER_KEY.spki }] }));
    const otherOnly = formatWwwAuthenticate({ challenge: new TokenChallenge({ issuerName: ISSUER_NAME, redemptionContext: new Uint8Array(0), originInfo: ORIGIN_INFO }), tokenKey: OTHER_KEY.spki });
    const fake = await service({ challenge: otherOnly });
    await refusedWith(assignThroughService({ ...options(fake, { token: await freshToken() }), pinned: two }), 'token_invalid', (e) => assert.equal(e.detail, 'not_offered', 'detail'));
    assert.equal(tokenRequests(fake).length, 0, 'the token was not sent');
  });

  it('a kept token that is not valid under the pin is refused before it is sent', async () => {
    const fake = await service();
    const token = await freshToken();
    const broken = `${token.slice(0, 100)}${token[100] === 'A' ? 'B' : 'A'}${token.slice(101)}`;
    await refusedWith(assignThroughService(options(fake, { token: broken })), 'token_invalid');
    assert.equal(tokenRequests(fake).length, 0, 'the token was not sent');
  });
});

describe('the redemption delay (RFC 9576 §3.5.2)', () => {
  const awsTrust: Trust = { ...trust, root: AWS_ROOT };

  it('is on by default when the root is AWS Nitro Enclaves Root-G1: the injected sleep sees the seeded draw before the token is sent', async () => {
    assert.equal(pinsAwsNitroRoot(awsTrust), true, 'the AWS root pins production');
    assert.equal(pinsAwsNitroRoot(trust), false, 'the emulator root is development');
    assert.equal(pinsAwsNitroRoot({ ...trust, root: 'not a PEM' }), false, 'an unreadable root is not production');
    assert.equal(AWS_NITRO_ROOT_G1_SHA256.length, 64, 'the pinned hash');
    const fake = await service();
    const slept: number[] = [];
    const expected = redemptionDelayMs({ random: seededRandom('delay') });
    assert.ok(expected >= 3_600_000 && expected <= 86_400_000, 'the seeded draw is within 1–24 h');
    // The emulator's documents do not chain to the AWS root, so attestation fails after the wait.
    await refusedWith(
      assignThroughService({ ...options(fake, { token: await freshToken(), random: seededRandom('delay'), now: () => 1_000_000, sleep: async (ms) => void slept.push(ms) }), trust: awsTrust }),
      'attestation_failed',
    );
    assert.deepEqual(slept, [expected], 'the sleep saw exactly the seeded delay');
    assert.equal(tokenRequests(fake).length, 0, 'the token was not sent');
  });

  it('counts from when the token was obtained: the rest of it, or nothing when it has passed', async () => {
    const fake = await service();
    const token = await freshToken();
    const slept: number[] = [];
    const sleep = async (ms: number) => void slept.push(ms);
    const first = await assignThroughService(options(fake, { token, delayMs: 5000, tokenObtainedAtMs: 1_000_000, now: () => 1_001_500, sleep }));
    assert.equal(first.redemptionDelayMs, 3500, 'the rest of the delay');
    const late = await service();
    const second = await assignThroughService(options(late, { token: await freshToken(), delayMs: 5000, tokenObtainedAtMs: 1_000_000, now: () => 1_005_000, sleep }));
    assert.equal(second.redemptionDelayMs, 0, 'exactly at the end: no wait');
    const future = await service();
    await assignThroughService(options(future, { token: await freshToken(), delayMs: 5000, tokenObtainedAtMs: 9_000_000, now: () => 1_000_000, sleep }));
    assert.deepEqual(slept, [3500, 5000], 'a time in the future counts as now');
  });

  it('refuses our own misuse: both or neither token source, a negative or fractional delay', async () => {
    const fake = await service();
    const token = await freshToken();
    await assert.rejects(assignThroughService(options(fake)), TypeError, 'neither');
    await assert.rejects(assignThroughService(options(fake, { token, issuer: { url: ISSUER_URL, keepToken: () => {} } })), TypeError, 'both');
    await assert.rejects(assignThroughService(options(fake, { token, delayMs: -1 })), TypeError, 'negative');
    await assert.rejects(assignThroughService(options(fake, { token, delayMs: 0.5 })), TypeError, 'fractional');
    assert.equal(fake.requests.length, 0, 'nothing was sent');
  });
});

describe('service refusals keep their exact codes and say whether to retry with the same token', () => {
  it('503 pool_exhausted: retry later with the same token, which is not spent', async () => {
    const fake = await service({ pool: [POOL[0]!] });
    await assignThroughService(options(fake, { token: await freshToken() }));
    const token = await freshToken();
    const error = await refusedWith(assignThroughService(options(fake, { token })), 'pool_exhausted', (e) => assert.ok(e.fromServer, 'from the service'));
    assert.ok(error instanceof RetryWithSameTokenError, 'retry with the same token');
    assert.deepEqual(error.toJSON(), { code: 'pool_exhausted', message: error.message, fromServer: true, retry: 'same_token' }, 'the JSON says so');
  });

  it('504 enclave_timeout: the service keeps the IP, and the retry with the same token gets it', async () => {
    const fake = await service({ assign: [{ status: 504, code: 'enclave_timeout' }] });
    const token = await freshToken();
    const error = await refusedWith(assignThroughService(options(fake, { token })), 'enclave_timeout');
    assert.ok(error instanceof RetryWithSameTokenError, 'retry with the same token');
    assert.equal(fake.reservations.get(POOL[0]!)?.spent, false, 'the token is pending with its IP');
    const retried = await assignThroughService(options(fake, { token }));
    assert.equal(retried.ip, POOL[0], 'the same IP');
  });

  it('500 internal and a 403 enclave refusal are retried with the same token too; 401 token_invalid is not', async () => {
    for (const [status, code] of [[500, 'internal'], [403, 'srt_expired'], [502, 'http_failed']] as const) {
      const fake = await service({ assign: [{ status, code: code === 'http_failed' ? 'bad_gateway' : code }] });
      const error = await refusedWith(assignThroughService(options(fake, { token: await freshToken() })), code);
      assert.ok(error instanceof RetryWithSameTokenError, `${code}: retry with the same token`);
    }
    const fake = await service({ assign: [{ status: 401, code: 'token_invalid' }] });
    const error = await refusedWith(assignThroughService(options(fake, { token: await freshToken() })), 'token_invalid');
    assert.ok(!(error instanceof RetryWithSameTokenError), 'an invalid token is not retried');
  });

  it('421 key_unknown: attest again and retry once with the same token; a second one is returned, retryable', async () => {
    const once = await service({ parent: { keyUnknown: 1 } });
    const assigned = await assignThroughService(options(once, { token: await freshToken() }));
    assert.equal(assigned.ip, POOL[0], 'the retry got the IP');
    assert.equal(once.requests.filter((r) => r.path === '/v1/attestation').length, 2, 'attested again');
    // Node's fetch itself sends a request answered 421 once more on a new connection (RFC 9110
    // §15.5.20), so the service sees the first sealed request twice; it refuses it both times.
    const tokens = tokenRequests(once).map((r) => r.headers.authorization);
    assert.ok(tokens.length >= 2, 'redeemed again after attesting again');
    assert.ok(tokens.every((token) => token === tokens[0]), 'always with the same token');
    const twice = await service({ parent: { keyUnknown: 2 } });
    const error = await refusedWith(assignThroughService(options(twice, { token: await freshToken() })), 'key_unknown');
    assert.ok(error instanceof RetryWithSameTokenError, 'retry later with the same token');
    assert.equal(twice.reservations.size, 0, 'the service released the IP');
  });

  it('tokens for another IP than the clear one the service names are refused after opening: ip_unexpected, not a retry', async () => {
    for (const parent of [{ datIp: '192.0.2.99' }, { drtIp: '192.0.2.99' }, { clearIp: '192.0.2.99' }]) {
      const fake = await service({ parent });
      const error = await refusedWith(assignThroughService(options(fake, { token: await freshToken() })), 'ip_unexpected');
      assert.ok(!(error instanceof RetryWithSameTokenError), 'the service spent the token on a 200');
    }
  });

  it('410 ip_unavailable: refresh of an IP the service does not reserve never reaches the enclave', async () => {
    const first = await service();
    const assigned = await assignThroughService(options(first, { token: await freshToken() }));
    const other = await service();
    await refusedWith(refreshThroughService({ url: other.url, trust, srt: SRT, drt: assigned.drt }), 'ip_unavailable', (e) => assert.ok(e.fromServer, 'from the service'));
    assert.deepEqual(other.requests.map((r) => r.path), ['/v1/attestation', '/v1/dip/refresh'], 'attested, refused');
  });

  it('after a support reset, refresh is the enclave\'s version_mismatch, passed through by the service', async () => {
    const fake = await service({ refresh: [{ status: 403, code: 'version_mismatch' }] });
    const assigned = await assignThroughService(options(fake, { token: await freshToken() }));
    await refusedWith(refreshThroughService({ url: fake.url, trust, srt: srtFor('subscription-1', 3), drt: assigned.drt }), 'version_mismatch', (e) => assert.ok(e.fromServer, 'from the server'));
  });
});

describe('backups at the service', () => {
  it('a pushed backup replaces itself under the same backup code, and is gone after delete', async () => {
    const fake = await service();
    const assigned = await assignThroughService(options(fake, { token: await freshToken() }));
    const { backupCode } = await pushBackup({ url: fake.url, drt: assigned.drt, scryptParams: FAST });
    const refreshed = await refreshThroughService({ url: fake.url, trust, srt: SRT, drt: assigned.drt });
    const again = await pushBackup({ url: fake.url, drt: refreshed.drt, backupCode, scryptParams: FAST });
    assert.equal(again.backupCode, backupCode, 'the same backup code');
    assert.equal(fake.backups.size, 1, 'one backup, replaced');
    assert.equal((await pullBackup({ url: fake.url, backupCode })).drt, refreshed.drt, 'the newer DRT');
    await deleteBackup({ url: fake.url, backupCode });
    assert.equal(fake.backups.size, 0, 'deleted');
    await refusedWith(pullBackup({ url: fake.url, backupCode }), 'not_found');
    await refusedWith(deleteBackup({ url: fake.url, backupCode }), 'not_found');
  });

  it('a mistyped backup code is refused before anything is sent; a DRT-less push never reaches the service', async () => {
    const fake = await service();
    await refusedWith(pullBackup({ url: fake.url, backupCode: 'ABCD-EFGH' }), 'backup_code_invalid');
    await refusedWith(pushBackup({ url: fake.url, drt: 'not.a.drt' }), 'token_unreadable');
    await refusedWith(pushBackup({ url: fake.url, drt: SRT }), 'token_unreadable');
    assert.equal(fake.requests.length, 0, 'nothing was sent');
  });

  it('a stored blob that opens to something other than a DRT is backup_invalid; one that is not a backup too', async () => {
    const fake = await service();
    const { backupCode } = await pushBackup({ url: fake.url, drt: (await assignThroughService(options(fake, { token: await freshToken() }))).drt, scryptParams: FAST });
    const [idText] = [...fake.backups.keys()];
    const { accessCode } = decodeBackupCode(backupCode);
    fake.backups.set(idText!, await sealBackup('not-a-drt', accessCode, FAST, MAX_BACKUP_BLOB_BYTES));
    await refusedWith(pullBackup({ url: fake.url, backupCode }), 'backup_invalid');
    fake.backups.set(idText!, new Uint8Array(100));
    await refusedWith(pullBackup({ url: fake.url, backupCode }), 'backup_invalid');
    assert.equal(await openBackup(await sealBackup('x.y.z', accessCode, FAST, 4096), accessCode), 'x.y.z', 'sanity: the code opens what it seals');
  });

  it(`ids are exactly 32 bytes and blobs 1..${MAX_BACKUP_BLOB_BYTES} bytes, on the way out and on the way in`, async () => {
    const fake = await service({ raw: { [`GET /v1/backup/${encodeBase64url(new Uint8Array(32).fill(9))}`]: { status: 200, body: new Uint8Array(MAX_BACKUP_BLOB_BYTES + 1) } } });
    const client = new ServiceClient(fake.url);
    const id = new Uint8Array(32).fill(1);
    await assert.rejects(client.putBackup(new Uint8Array(31), new Uint8Array(10)), TypeError, '31-byte id');
    await assert.rejects(client.putBackup(new Uint8Array(33), new Uint8Array(10)), TypeError, '33-byte id');
    await assert.rejects(client.getBackup(new Uint8Array(31)), TypeError, '31-byte id on get');
    await assert.rejects(client.putBackup(id, new Uint8Array(MAX_BACKUP_BLOB_BYTES + 1)), TypeError, 'a blob one byte too long');
    await assert.rejects(client.putBackup(id, new Uint8Array(0)), TypeError, 'an empty blob');
    assert.equal(fake.requests.length, 0, 'none of these was sent');
    await client.putBackup(id, new Uint8Array(MAX_BACKUP_BLOB_BYTES).fill(3));
    assert.deepEqual(await client.getBackup(id), new Uint8Array(MAX_BACKUP_BLOB_BYTES).fill(3), `${MAX_BACKUP_BLOB_BYTES} bytes round-trip`);
    assert.equal(fake.requests[0]!.path, `/v1/backup/${'AQEB'.repeat(10)}AQE`, 'the id as 43 characters of unpadded base64url');
    await refusedWith(client.getBackup(new Uint8Array(32).fill(9)), 'http_failed');
  });
});
