// The issuer over HTTP (SPEC §10, RFC 9578 §4 and §6): the token the app finalizes verifies, one
// token per (sub, did) under concurrency on both engines, the SPEC §2 SRT codes, coded 400s that
// never sign, the directory, and the routes' error answers.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeIssuerDirectory, ISSUER_DIRECTORY_PATH, MEDIA_TYPE_ISSUER_DIRECTORY } from '../../protocol/privacypass-http.js';
import { verifyToken } from '../../protocol/privacypass-issuance.js';
import { NK, TokenRequest, TOKEN_REQUEST_LENGTH } from '../../protocol/privacypass.js';
import { intToBytes } from '../../protocol/blind-rsa.js';
import { postgresSkipReason } from '../../store/test/support.js';
import { KEY_LIFETIME_SECONDS } from '../token-keys.js';
import { appRequest, CHALLENGE, createIssuerKey, createSrtIssuer, errorCodeOf, NOW, RESPONSE_TYPE, startTestIssuer, type Engine, type TestIssuer } from './support.js';
import { generateKeyPairSync } from 'node:crypto';
import { assertNoLeak, type Secret } from '../../test/support/secrets.js';
import { createLogger } from '../log.js';

const srtIssuer = createSrtIssuer();
const key = createIssuerKey();
const otherKey = createIssuerKey();

async function rowCount(issuer: TestIssuer): Promise<number> {
  const [row] = await issuer.store.query<{ n: number }>('SELECT count(*)::int AS n FROM token_issuance');
  return row!.n;
}

describe('on the embedded engine', () => {
  let issuer: TestIssuer;
  before(async () => {
    issuer = await startTestIssuer({ engine: 'embedded', srtIssuer, keys: [key] });
  });
  after(() => issuer.close());

  test('the token the app finalizes from the TokenResponse verifies under the issuer key', async () => {
    const app = appRequest(key);
    const answer = await issuer.post(srtIssuer.mint({ sub: 'finalize' }), app.body);
    assert.equal(answer.status, 200, 'issued');
    assert.equal(answer.type, RESPONSE_TYPE, 'application/private-token-response');
    assert.equal(answer.body.length, NK, 'a TokenResponse is Nk bytes');
    const token = app.finalize(answer.body);
    assert.doesNotThrow(() => verifyToken(token, key.tokenKey, CHALLENGE), 'the finalized token verifies');
  });

  test('a repeated identical TokenRequest gets the identical TokenResponse; another one is already_issued (409)', async () => {
    const srt = srtIssuer.mint({ sub: 'repeat' });
    const app = appRequest(key);
    const first = await issuer.post(srt, app.body);
    const again = await issuer.post(srt, app.body);
    assert.equal(first.status, 200, 'first issued');
    assert.equal(again.status, 200, 'the same request is answered again');
    assert.deepEqual(again.body, first.body, 'with the same TokenResponse');
    const other = await issuer.post(srt, appRequest(key).body);
    assert.equal(other.status, 409, 'a different request for the same (sub, did)');
    assert.equal(errorCodeOf(other.body), 'already_issued', 'coded already_issued');
  });

  test('a support reset (did + 1) allows exactly one more token', async () => {
    const did0 = srtIssuer.mint({ sub: 'reset' });
    const did1 = srtIssuer.mint({ sub: 'reset', entitlements: { 'xv.vpn.dip': { did: 1 } } });
    assert.equal((await issuer.post(did0, appRequest(key).body)).status, 200, 'did 0 issued');
    assert.equal((await issuer.post(did0, appRequest(key).body)).status, 409, 'did 0 again refused');
    assert.equal((await issuer.post(did1, appRequest(key).body)).status, 200, 'did 1 issued once');
    const second = await issuer.post(did1, appRequest(key).body);
    assert.equal(second.status, 409, 'did 1 a second time refused');
    assert.equal(errorCodeOf(second.body), 'already_issued', 'coded already_issued');
  });

  test('SRTs that SPEC §2 refuses get its codes with 403, and nothing is issued', async () => {
    const untrusted = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const unsigned = (alg: string): string => {
      const part = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
      const claims = { iss: 'https://subscriptions.test', sub: 'x', iat: NOW, exp: NOW + 60, entitlements: { 'xv.vpn.dip': { did: 0 } } };
      return `${part({ alg, kid: 'srt-test' })}.${part(claims)}.${alg === 'none' ? '' : Buffer.alloc(32, 1).toString('base64url')}`;
    };
    const cases: Array<[string, string | null, string]> = [
      ['expired beyond the 60 s skew', srtIssuer.mint({ sub: 'bad', exp: NOW - 61 }), 'srt_expired'],
      ['a lifetime over 72 h + skew', srtIssuer.mint({ sub: 'bad', iat: NOW - 10, exp: NOW - 10 + 72 * 3600 + 61 }), 'srt_invalid'],
      ['no Dedicated IP entitlement', srtIssuer.mint({ sub: 'bad', entitlements: {} }), 'not_entitled'],
      ['signed by an untrusted key', srtIssuer.mint({ sub: 'bad' }, {}, untrusted), 'srt_invalid'],
      ['alg none', unsigned('none'), 'srt_invalid'],
      ['alg HS256', unsigned('HS256'), 'srt_invalid'],
      ['no Authorization', null, 'srt_invalid'],
    ];
    for (const [what, srt, code] of cases) {
      const answer = await issuer.post(srt, appRequest(key).body);
      assert.equal(answer.status, 403, `${what}: 403`);
      assert.equal(errorCodeOf(answer.body), code, `${what}: ${code}`);
    }
    const [row] = await issuer.store.query<{ n: number }>("SELECT count(*)::int AS n FROM token_issuance WHERE sub IN ('bad', 'x')");
    assert.equal(row!.n, 0, 'no refused SRT recorded an issuance');
    // The boundary itself: exp exactly now - 60 and a lifetime of exactly 72 h + 60 s still verify.
    assert.equal((await issuer.post(srtIssuer.mint({ sub: 'edge-exp', exp: NOW - 60 }), appRequest(key).body)).status, 200, 'exp = now - 60 verifies');
    assert.equal((await issuer.post(srtIssuer.mint({ sub: 'edge-life', iat: NOW - 10, exp: NOW - 10 + 72 * 3600 + 60 }), appRequest(key).body)).status, 200, 'a 72 h + 60 s lifetime verifies');
  });

  test('a wrong token type, the truncated key id of an unknown key or a blinded message ≥ n is a coded 400 and never signed', async () => {
    const good = appRequest(key).body;
    const wrongType = new Uint8Array(good);
    wrongType[1] = 0x01;
    let unknownId = (key.truncatedId + 1) & 0xff;
    if (unknownId === otherKey.truncatedId) unknownId = (unknownId + 1) & 0xff;
    const unknownKey = new TokenRequest(unknownId, good.subarray(3)).encode();
    const atN = new TokenRequest(key.truncatedId, intToBytes(key.tokenKey.n, NK)).encode();
    const overN = new TokenRequest(key.truncatedId, new Uint8Array(NK).fill(0xff)).encode();
    const truncated = good.subarray(0, TOKEN_REQUEST_LENGTH - 1);
    const otherKeysRequest = appRequest(otherKey).body;
    const cases: Array<[string, Uint8Array]> = [
      ['token type 0x0001', wrongType],
      ['an unknown truncated key id', unknownKey],
      ['a key this issuer does not hold', otherKeysRequest],
      ['blinded message = n', atN],
      ['blinded message > n', overN],
      ['a truncated TokenRequest', truncated],
    ];
    const before = await rowCount(issuer);
    for (const [what, body] of cases) {
      const answer = await issuer.post(srtIssuer.mint({ sub: `hostile ${what}` }), body);
      assert.equal(answer.status, 400, `${what}: 400`);
      assert.equal(errorCodeOf(answer.body), 'bad_request', `${what}: bad_request`);
    }
    assert.equal(await rowCount(issuer), before, 'no hostile request recorded a signature');
  });

  test('the directory lists the active keys as RFC 9578 §4 entries with token-type 2 and not-before', async () => {
    const res = await fetch(`${issuer.url}${ISSUER_DIRECTORY_PATH}`);
    assert.equal(res.status, 200, 'directory answered');
    assert.equal(res.headers.get('content-type'), MEDIA_TYPE_ISSUER_DIRECTORY, 'its media type');
    const text = await res.text();
    const directory = decodeIssuerDirectory(text);
    assert.equal(directory.issuerRequestUri, '/token-request', 'issuer-request-uri');
    assert.equal(directory.tokenKeys.length, 1, 'one key');
    assert.deepEqual(directory.tokenKeys[0]!.tokenKey, key.tokenKey.spki, 'the RFC 9578 §6.5 SPKI');
    assert.equal(directory.tokenKeys[0]!.notBefore, key.notBefore, 'not-before');
    assert.equal((JSON.parse(text) as { 'token-keys': Array<Record<string, unknown>> })['token-keys'][0]!['token-type'], 2, 'token-type 2');
  });

  test('unknown routes are 404, wrong methods 405, other media types 415 and oversized bodies 413, with the §6 error body', async () => {
    const srt = srtIssuer.mint({ sub: 'routes' });
    const expect = async (what: string, res: Promise<Response>, status: number, code: string): Promise<void> => {
      const answer = await res;
      assert.equal(answer.status, status, `${what}: ${status}`);
      assert.equal(((await answer.json()) as { error: { code: string } }).error.code, code, `${what}: ${code}`);
    };
    await expect('unknown path', fetch(`${issuer.url}/v1/nothing`), 404, 'not_found');
    await expect('GET on the request URI', fetch(`${issuer.url}/token-request`), 405, 'method_not_allowed');
    await expect('POST on the directory', fetch(`${issuer.url}${ISSUER_DIRECTORY_PATH}`, { method: 'POST' }), 405, 'method_not_allowed');
    await expect('JSON body', fetch(`${issuer.url}/token-request`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${srt}` }, body: appRequest(key).body }), 415, 'unsupported_media_type');
    await expect('one byte too many', issuer.post(srt, new Uint8Array(TOKEN_REQUEST_LENGTH + 1)).then((a) => new Response(a.body, { status: a.status })), 413, 'payload_too_large');
    assert.equal((await issuer.post(srt, appRequest(key).body)).status, 200, 'exactly TOKEN_REQUEST_LENGTH bytes is accepted');
  });
});

test('a key older than 90 days is neither listed nor used; at exactly 90 days it is already retired', async () => {
  for (const [age, active] of [[KEY_LIFETIME_SECONDS - 1, true], [KEY_LIFETIME_SECONDS, false]] as const) {
    const issuer = await startTestIssuer({ engine: 'embedded', srtIssuer, keys: [key], now: key.notBefore + age });
    try {
      const srt = srtIssuer.mint({ iat: key.notBefore + age - 10, exp: key.notBefore + age + 3600 });
      const directory = await (await fetch(`${issuer.url}${ISSUER_DIRECTORY_PATH}`)).text();
      assert.equal((JSON.parse(directory) as { 'token-keys': unknown[] })['token-keys'].length, active ? 1 : 0, `age ${age}: listed only while active`);
      assert.equal((await issuer.post(srt, appRequest(key).body)).status, active ? 200 : 400, `age ${age}: signs only while active`);
    } finally {
      await issuer.close();
    }
  }
});

for (const engine of ['embedded', 'postgres'] as Engine[]) {
  test(`50 concurrent token requests for the same (sub, did) over HTTP: exactly one TokenResponse, 49 already_issued (${engine})`, async (t) => {
    if (engine === 'postgres') {
      const skip = await postgresSkipReason();
      if (skip !== null) return t.skip(skip);
    }
    const issuer = await startTestIssuer({ engine, srtIssuer, keys: [key] });
    try {
      const srt = srtIssuer.mint({ sub: 'race' });
      const bodies = Array.from({ length: 50 }, () => appRequest(key).body);
      const answers = await Promise.all(bodies.map((body) => issuer.post(srt, body)));
      assert.equal(answers.filter((a) => a.status === 200).length, 1, 'exactly one TokenResponse');
      assert.equal(answers.filter((a) => a.status === 409 && errorCodeOf(a.body) === 'already_issued').length, 49, '49 already_issued');
    } finally {
      await issuer.close();
    }
  });
}

test('privacy on the embedded engine: the log and the database hold no SRT, no token, no subscription id in the log, and no time', async () => {
  const lines: string[] = [];
  const issuer = await startTestIssuer({ engine: 'embedded', srtIssuer, keys: [key], logger: createLogger((line) => lines.push(line)) });
  try {
    const sub = 'subscription-privacy-0c7e1d55';
    const srt = srtIssuer.mint({ sub });
    const app = appRequest(key);
    const answer = await issuer.post(srt, app.body);
    assert.equal(answer.status, 200, 'issued');
    assert.equal((await issuer.post(srt, appRequest(key).body)).status, 409, 'a refused one is logged too');
    assert.equal((await issuer.post(srtIssuer.mint({ sub, exp: NOW - 3600 }), app.body)).status, 403, 'and an expired SRT');
    const token = app.finalize(answer.body);
    const secrets: Secret[] = [
      { what: 'SRT', value: srt },
      { what: 'token', value: token.encode() },
      { what: 'token nonce', value: token.nonce },
      { what: 'TokenRequest', value: app.body },
    ];
    const log = lines.join('');
    assert.equal(lines.length, 3, 'one line per request');
    assertNoLeak(log, [...secrets, { what: 'subscription id', value: sub, hashed: true }], 'the request log');
    for (const line of lines) assert.deepEqual(Object.keys(JSON.parse(line) as object), ['method', 'route', 'status', 'ms'], 'method, route, status, latency only');
    const rows = await issuer.store.query<Record<string, unknown>>('SELECT * FROM token_issuance WHERE sub = $1', [sub]);
    assert.deepEqual(Object.keys(rows[0]!).sort(), ['did', 'sub', 'token_request_sha256', 'token_response'], 'no time next to (sub, did)');
    assertNoLeak(JSON.stringify(rows, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)), secrets, 'the issuance record');
  } finally {
    await issuer.close();
  }
});
