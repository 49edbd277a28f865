// SPEC §10–11 assign through real HTTP with real Privacy Pass tokens: the token rules (401 with the
// challenge, key lifetimes at their exact boundaries), the body, routing by key_id before the
// store, pending → spent / refused / kept, the in-flight lease (50 concurrent uses of one token),
// and pool_exhausted. One embedded store for the file, emptied before each test.

import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, test } from 'node:test';
import { formatAuthorization, parseWwwAuthenticate } from '../../protocol/privacypass-http.js';
import { TokenChallenge } from '../../protocol/privacypass.js';
import { dayOf } from '../../store/day.js';
import pg from 'pg';
import type { DipError } from '../../protocol/errors.js';
import { expireReservations, poolFigures } from '../../store/ip-pool.js';
import { addRange } from '../../store/ip-range.js';
import { advisoryLockKey } from '../../store/lease.js';
import { openPostgresStore } from '../../store/postgres.js';
import { openTestStore, postgresSkipReason, POSTGRES_URL, type TestStore } from '../../store/test/support.js';
import { MAX_RESERVED_UNTIL_DAYS, RESERVATION_DAYS, assign, type Dip, type ParentRouter } from '../dip.js';
import { KEY_LIFETIME_SECONDS } from '../token-keys.js';
import {
  CHALLENGE, DAY, NOW, RESERVED_UNTIL, assignRequest, call, createIssuerKey, errorCode, ipState, keyId, mintToken, nonceState,
  removeTempDirs, sealedRequest, startFakeParent, startTestService, writeTokenKeys, type CallInit, type FakeParent, type Script,
} from './support.js';

const KEY = createIssuerKey(NOW - DAY);
const NEWER = createIssuerKey(NOW - 60);
const UNPINNED = createIssuerKey(NOW - DAY);
const ENCLAVE = keyId(1);

let t: TestStore;
let parent: FakeParent;
let service: Awaited<ReturnType<typeof startTestService>>;
let clock = NOW;

before(async () => {
  t = await openTestStore('embedded');
});
after(async () => {
  await t?.close();
  removeTempDirs();
});
beforeEach(async () => {
  await t.reset();
  clock = NOW;
  parent = await startFakeParent([{ keyId: ENCLAVE, status: 'ok' }]);
  service = await startTestService({ parents: [parent.url], tokenKeys: writeTokenKeys([KEY, NEWER]), store: t.store, now: () => clock, repollMinMs: 0, args: ['--range', '192.0.2.0/30'] });
});
afterEach(async () => {
  await service.close();
  await parent.close();
});

test('no token, an unparsable one, a forged one or one under an unpinned key is 401 token_invalid with the newest active key\'s challenge', async () => {
  const forged = mintToken(KEY);
  forged.token.authenticator[0]! ^= 1;
  const otherOrigin = mintToken(KEY, new TokenChallenge({ issuerName: 'issuer.test', redemptionContext: new Uint8Array(0), originInfo: 'elsewhere.test' }));
  for (const [what, authorization] of [
    ['no Authorization', null],
    ['another scheme', 'Bearer abc'],
    ['not a token', 'PrivateToken token="AAAA"'],
    ['a forged signature', formatAuthorization(forged.token)],
    ['another origin', otherOrigin.authorization],
    ['an unpinned key', mintToken(UNPINNED).authorization],
  ] as const) {
    const answer = await assignRequest(service.url, authorization, sealedRequest(ENCLAVE));
    assert.equal(answer.status, 401, what);
    assert.equal(errorCode(answer), 'token_invalid', what);
    const challenge = parseWwwAuthenticate(answer.headers.get('www-authenticate')!);
    assert.deepEqual(challenge.challenge.encode(), CHALLENGE.encode(), `${what}: type 2, the issuer, an empty context, this origin`);
    assert.deepEqual(challenge.tokenKey, NEWER.tokenKey.spki, `${what}: the newest active key`);
  }
  assert.equal(parent.sealedCalls().length, 0, 'nothing reached the parent');
  assert.equal((await t.store.query('SELECT 1 AS x FROM token_nonce')).length, 0, 'nothing reached the store');
});

test('a key is accepted from its not-before through not-before + 90 days exactly, and refused one second outside', async () => {
  const cases: Array<[string, number, number]> = [
    ['one second before not-before', KEY.notBefore - 1, 401],
    ['at not-before', KEY.notBefore, 200],
    ['at not-before + 90 days', KEY.notBefore + KEY_LIFETIME_SECONDS, 200],
    ['at not-before + 90 days + 1 s', KEY.notBefore + KEY_LIFETIME_SECONDS + 1, 401],
  ];
  for (const [what, at, status] of cases) {
    clock = at;
    // SPEC §4: the enclave's reservedUntil is a DRT's exp rounded up to 00:00 UTC.
    parent.script = () => ({ kind: 'ok', reservedUntil: Math.ceil((at + 60 * DAY) / DAY) * DAY });
    const answer = await assignRequest(service.url, mintToken(KEY).authorization, sealedRequest(ENCLAVE));
    assert.equal(answer.status, status, what);
    if (status === 401) assert.ok(answer.headers.get('www-authenticate')?.startsWith('PrivateToken challenge='), `${what}: with the challenge`);
  }
});

test('an assign reserves an IP, forwards {ip, request}, answers as the parent did, and spends the token', async () => {
  const { token, authorization } = mintToken(KEY);
  const request = sealedRequest(ENCLAVE);
  const answer = await assignRequest(service.url, authorization, request);
  assert.equal(answer.status, 200, answer.text);
  assert.deepEqual(Object.keys(answer.json!).sort(), ['ip', 'reservedUntil', 'response'], 'exactly the SPEC §11 fields');
  const [forwarded] = parent.sealedCalls();
  assert.deepEqual(forwarded, { method: 'POST', path: '/v1/dip/assign', body: { ip: answer.json!.ip, request } }, 'the parent got {ip, request}');
  assert.equal(answer.json!.reservedUntil, RESERVED_UNTIL, 'reservedUntil as the parent gave it');
  assert.deepEqual(await nonceState(t.store, token.nonce), { state: 'spent', ip: null, refusals: 0 }, 'spent, no IP kept beside it');
  assert.deepEqual(await ipState(t.store, answer.json!.ip as string), { state: 'reserved', reserved_until_day: dayOf(RESERVED_UNTIL), quarantine_until_day: null }, 'reserved to reservedUntil');
  const again = await assignRequest(service.url, authorization, sealedRequest(ENCLAVE));
  assert.equal(again.status, 409, 'a second use');
  assert.equal(errorCode(again), 'token_spent', 'token_spent');
  assert.equal(parent.sealedCalls().length, 1, 'the second use never reached the parent');
});

test('a bad body or sealed header is refused before the store, and leaves the token usable', async () => {
  const { token, authorization } = mintToken(KEY);
  const good = sealedRequest(ENCLAVE);
  const bytes = Buffer.from(good, 'base64url');
  const version1 = Buffer.from(bytes);
  version1[0] = 0x01;
  const cases: Array<[string, CallInit, number, string]> = [
    ['text/plain', { headers: { 'content-type': 'text/plain', authorization }, body: JSON.stringify({ request: good }) }, 415, 'unsupported_media_type'],
    ['not JSON', { headers: { 'content-type': 'application/json', authorization }, body: '{' }, 400, 'bad_request'],
    ['an extra field', { headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify({ request: good, ip: '192.0.2.1' }) }, 400, 'bad_request'],
    ['padded base64url', { headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify({ request: `${good}=` }) }, 400, 'bad_request'],
    ['version 0x01', { headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify({ request: version1.toString('base64url') }) }, 400, 'bad_request'],
    ['96 bytes', { headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify({ request: bytes.subarray(0, 96).toString('base64url') }) }, 400, 'bad_request'],
    ['16,385 bytes', { headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify({ request: 'A'.repeat(16_385 - 14) }) }, 413, 'payload_too_large'],
  ];
  for (const [what, init, status, code] of cases) {
    const answer = await call(`${service.url}/v1/dip/assign`, { method: 'POST', ...init });
    assert.equal(answer.status, status, what);
    assert.equal(errorCode(answer), code, what);
  }
  assert.equal(await nonceState(t.store, token.nonce), undefined, 'no nonce row');
  assert.equal((await assignRequest(service.url, authorization, good)).status, 200, 'the token still works');
});

test('a key_id no parent reaches is 421 key_unknown after a fresh look at the parents, and the store is untouched; a new enclave is found', async () => {
  const { token, authorization } = mintToken(KEY);
  const polls = parent.calls.filter((c) => c.path === '/v1/enclaves').length;
  const answer = await assignRequest(service.url, authorization, sealedRequest(keyId(9)));
  assert.equal(answer.status, 421, 'key_unknown');
  assert.equal(errorCode(answer), 'key_unknown', 'code');
  assert.equal(parent.calls.filter((c) => c.path === '/v1/enclaves').length, polls + 1, 'the parents were asked again first');
  assert.equal(parent.sealedCalls().length, 0, 'not forwarded');
  assert.equal(await nonceState(t.store, token.nonce), undefined, 'no nonce row');
  assert.deepEqual(await poolFigures(t.store), { free: 4, reserved: 0, quarantined: 0, draining: 0 }, 'nothing reserved');
  // An enclave that appears (an upgrade) is found by that fresh look.
  parent.enclaves.push({ keyId: keyId(9), status: 'ok' });
  assert.equal((await assignRequest(service.url, authorization, sealedRequest(keyId(9)))).status, 200, 'routed once the parent lists it');
});

test('an enclave refusal (403 srt_invalid) frees the IP and leaves the token usable; the fifth refusal spends it', async () => {
  const { token, authorization } = mintToken(KEY);
  parent.script = () => ({ kind: 'error', code: 'srt_invalid' });
  for (let refusal = 1; refusal <= 5; refusal++) {
    const answer = await assignRequest(service.url, authorization, sealedRequest(ENCLAVE));
    assert.equal(answer.status, 403, `refusal ${refusal}`);
    assert.equal(errorCode(answer), 'srt_invalid', `refusal ${refusal} passed through`);
    const ip = parent.sealedCalls().at(-1)!.body!.ip!;
    assert.equal((await ipState(t.store, ip))!.state, 'free', `refusal ${refusal}: the IP is back in the pool`);
    if (refusal === 1) {
      parent.script = () => ({ kind: 'ok' });
      const retry = mintToken(KEY);
      assert.equal((await assignRequest(service.url, retry.authorization, sealedRequest(ENCLAVE))).status, 200, 'another token gets an IP meanwhile');
      parent.script = () => ({ kind: 'error', code: 'srt_invalid' });
    }
  }
  assert.equal((await nonceState(t.store, token.nonce))!.state, 'spent', 'spent after 5 refusals');
  const sixth = await assignRequest(service.url, authorization, sealedRequest(ENCLAVE));
  assert.equal(errorCode(sixth), 'token_spent', 'the sixth attempt');
});

test('a refused token can be used again and then succeeds; key_unknown from the parent also refuses', async () => {
  const { token, authorization } = mintToken(KEY);
  parent.script = () => ({ kind: 'error', code: 'key_unknown' });
  const first = await assignRequest(service.url, authorization, sealedRequest(ENCLAVE));
  assert.equal(errorCode(first), 'key_unknown', 'passed through');
  assert.deepEqual(await nonceState(t.store, token.nonce), { state: 'refused', ip: null, refusals: 1 }, 'refused, IP released');
  parent.script = () => ({ kind: 'ok' });
  const second = await assignRequest(service.url, authorization, sealedRequest(ENCLAVE));
  assert.equal(second.status, 200, 'the same token succeeds');
  assert.equal((await nonceState(t.store, token.nonce))!.state, 'spent', 'now spent');
});

test('a parent timeout, a 500, a lost connection or a malformed 200 keep the token pending and the IP reserved; a retry gets the same IP', async () => {
  // Only the parent that never answers meets the short deadline; the others answer long before the default 10 s.
  const short = await startTestService({ parents: [parent.url], tokenKeys: writeTokenKeys([KEY]), store: t.store, now: () => clock, repollMinMs: 0, args: ['--parent-timeout-ms', '300', '--range', '198.51.100.0/29'] });
  const cases: Array<[string, Script, number, string]> = [
    ['a timeout', { kind: 'hang' }, 504, 'enclave_timeout'],
    ['a 500', { kind: 'error', code: 'internal' }, 500, 'internal'],
    ['a 503 without a body', { kind: 'status', status: 503, body: '' }, 503, 'enclave_unavailable'],
    ['a lost connection', { kind: 'close' }, 503, 'enclave_unavailable'],
    ['a malformed 200', { kind: 'status', status: 200, body: '{"ip":"192.0.2.99","reservedUntil":1,"response":"AA"}' }, 500, 'internal'],
    ['a 500 again', { kind: 'error', code: 'internal' }, 500, 'internal'],
  ];
  for (const [what, script, status, code] of cases) {
    const { token, authorization } = mintToken(KEY);
    parent.script = () => script;
    const answer = await assignRequest((script.kind === 'hang' ? short : service).url, authorization, sealedRequest(ENCLAVE));
    assert.equal(answer.status, status, what);
    assert.equal(errorCode(answer), code, what);
    const ip = parent.sealedCalls().at(-1)!.body!.ip!;
    assert.deepEqual(await nonceState(t.store, token.nonce), { state: 'pending', ip, refusals: 0 }, `${what}: pending with its IP`);
    assert.equal((await ipState(t.store, ip))!.state, 'reserved', `${what}: the IP stays reserved`);
    parent.script = () => ({ kind: 'ok' });
    const retry = await assignRequest(service.url, authorization, sealedRequest(ENCLAVE));
    assert.equal(retry.status, 200, `${what}: the retry succeeds`);
    assert.equal(retry.json!.ip, ip, `${what}: with the same IP`);
    assert.equal(parent.sealedCalls().at(-1)!.body!.ip, ip, `${what}: the parent was asked again for the same IP`);
  }
  await short.close();
});

test('50 concurrent redemptions of one token: one 200 and 49 token_spent, and one call at the parent', async () => {
  const { authorization } = mintToken(KEY);
  let spent = 0;
  let releaseParent!: () => void;
  const allRefused = new Promise<void>((resolve) => (releaseParent = resolve));
  // The parent holds the one attempt until all 49 others have been answered: the lease, not timing, decides.
  parent.script = () => ({
    kind: 'custom',
    answer: async (c, res) => {
      await allRefused;
      const body = JSON.stringify({ ip: c.body!.ip, reservedUntil: RESERVED_UNTIL, response: 'AAAA' });
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    },
  });
  const answers = await Promise.all(
    Array.from({ length: 50 }, () =>
      assignRequest(service.url, authorization, sealedRequest(ENCLAVE)).then((answer) => {
        if (errorCode(answer) === 'token_spent' && ++spent === 49) releaseParent();
        return answer;
      }),
    ),
  );
  assert.equal(answers.filter((a) => a.status === 200).length, 1, 'one success');
  assert.equal(answers.filter((a) => errorCode(a) === 'token_spent').length, 49, '49 token_spent');
  assert.equal(parent.sealedCalls().length, 1, 'only one attempt reached the parent');
});

test('an empty pool is 503 pool_exhausted and leaves no trace of the token, which works once an IP is free', async () => {
  const holders = [];
  for (let i = 0; i < 4; i++) {
    const { authorization } = mintToken(KEY);
    holders.push(authorization);
    assert.equal((await assignRequest(service.url, authorization, sealedRequest(ENCLAVE))).status, 200, `IP ${i + 1} of 4`);
  }
  const { token, authorization } = mintToken(KEY);
  const answer = await assignRequest(service.url, authorization, sealedRequest(ENCLAVE));
  assert.equal(answer.status, 503, 'no IP left');
  assert.equal(errorCode(answer), 'pool_exhausted', 'code');
  assert.equal(await nonceState(t.store, token.nonce), undefined, 'no nonce row');
  await call(`${service.adminUrl}/admin/ranges`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ cidr: '198.51.100.0/32' }) });
  assert.equal((await assignRequest(service.url, authorization, sealedRequest(ENCLAVE))).status, 200, 'an added range serves at once');
});

test('closing the service lets an assign at the parent finish and record its outcome', async () => {
  const { token, authorization } = mintToken(KEY);
  let atParent!: () => void;
  const arrived = new Promise<void>((resolve) => (atParent = resolve));
  let answerNow!: () => void;
  const answered = new Promise<void>((resolve) => (answerNow = resolve));
  parent.script = () => ({
    kind: 'custom',
    answer: async (c, res) => {
      atParent();
      await answered;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ip: c.body!.ip, reservedUntil: RESERVED_UNTIL, response: 'AAAA' }));
    },
  });
  const pending = assignRequest(service.url, authorization, sealedRequest(ENCLAVE));
  await arrived;
  const closing = service.close();
  answerNow();
  assert.equal((await pending).status, 200, 'the answer still arrives');
  await closing;
  assert.equal((await nonceState(t.store, token.nonce))!.state, 'spent', 'and was recorded');
  service = await startTestService({ parents: [parent.url], tokenKeys: writeTokenKeys([KEY]), store: t.store, now: () => clock });
});

test('an assign whose token stopped being pending while the parent answered (expiry spent it) drops the parent\'s 200 and answers 409 token_spent', async () => {
  const { token, authorization } = mintToken(KEY);
  parent.script = () => ({
    kind: 'custom',
    answer: async (c, res) => {
      // The expiry job, as of the day after the new reservation's last, runs while the parent works.
      await expireReservations(t.store, dayOf(NOW) + RESERVATION_DAYS + 1);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ip: c.body!.ip, reservedUntil: RESERVED_UNTIL, response: 'AAAA' }));
    },
  });
  const answer = await assignRequest(service.url, authorization, sealedRequest(ENCLAVE));
  assert.equal(answer.status, 409, answer.text);
  assert.equal(errorCode(answer), 'token_spent', 'code');
  const ip = parent.sealedCalls()[0]!.body!.ip!;
  assert.deepEqual(await nonceState(t.store, token.nonce), { state: 'spent', ip: null, refusals: 0 }, 'spent by expiry');
  assert.equal((await ipState(t.store, ip))!.state, 'quarantined', 'the 200 did not reserve the IP again');
});

test('PostgreSQL: when an instance\'s lease session drops while its parent works and a second instance completes the same token, only the second answers 200', async (tc) => {
  const skip = await postgresSkipReason();
  if (skip !== null) return tc.skip(skip);
  const first = await openTestStore('postgres');
  const second = await openPostgresStore({ connectionString: POSTGRES_URL, schema: first.schema! });
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    await addRange(first.store, '192.0.2.0/30');
    const { token } = mintToken(KEY);
    let atParent!: () => void;
    const arrived = new Promise<void>((resolve) => (atParent = resolve));
    let answerNow!: () => void;
    const answered = new Promise<void>((resolve) => (answerNow = resolve));
    const router = (slow: boolean): ParentRouter => ({
      targetsFor: async () => [0],
      keyUnknown() {},
      post: async (_targets, _path, body) => {
        if (slow) {
          atParent();
          await answered;
        }
        const answer = JSON.stringify({ ip: (JSON.parse(body) as { ip: string }).ip, reservedUntil: RESERVED_UNTIL, response: 'AAAA' });
        return { kind: 'answered', status: 200, contentType: 'application/json', body: Buffer.from(answer) };
      },
    });
    // assign() reads no issuer key: redeem() did that before it.
    const tokenKeys = null as unknown as Dip['tokenKeys'];
    const body = new TextEncoder().encode(JSON.stringify({ request: sealedRequest(ENCLAVE) }));
    const one = assign({ store: first.store, parents: router(true), tokenKeys, now: () => NOW }, token, body).then(
      (a) => a.ip,
      (error: DipError) => error.code,
    );
    await arrived;
    // The lease of exactly this token in this schema: pg_locks shows a bigint key as classid (high) and objid (low).
    const key = BigInt.asUintN(64, BigInt(advisoryLockKey(first.schema!, token.nonce)));
    const { rows } = await admin.query(
      "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1",
      [String(key >> 32n), String(key & 0xffffffffn)],
    );
    assert.equal(rows.length, 1, 'the first instance\'s lease session was ended');
    const two = await assign({ store: second, parents: router(false), tokenKeys, now: () => NOW }, token, body);
    answerNow();
    assert.equal(await one, 'token_spent', 'the attempt that lost its lease does not answer 200');
    assert.equal((await nonceState(first.store, token.nonce))!.state, 'spent', 'spent once');
    assert.equal((await ipState(first.store, two.ip))!.state, 'reserved', 'the IP the second attempt answered is reserved');
  } finally {
    await admin.end();
    await second.close();
    await first.close();
  }
});

test(`a parent's reservedUntil is stored only at 00:00 UTC from tomorrow through today + ${MAX_RESERVED_UNTIL_DAYS} days; anything else is a malformed 200 (500 internal) and keeps the token pending`, async () => {
  // Not at 00:00 itself: "today" is the day the clock is in.
  clock = NOW + 3600;
  const wide = await startTestService({ parents: [parent.url], tokenKeys: writeTokenKeys([KEY]), store: t.store, now: () => clock, repollMinMs: 0, args: ['--range', '198.51.100.0/28'] });
  const cases: Array<[string, number, boolean]> = [
    ['today 00:00 (tomorrow - 1 day)', NOW, false],
    ['0', 0, false],
    ['tomorrow 00:00 - 1 s', NOW + DAY - 1, false],
    ['tomorrow 00:00', NOW + DAY, true],
    ['tomorrow 00:00 + 1 s', NOW + DAY + 1, false],
    [`today + ${MAX_RESERVED_UNTIL_DAYS} days - 1 s`, NOW + MAX_RESERVED_UNTIL_DAYS * DAY - 1, false],
    [`today + ${MAX_RESERVED_UNTIL_DAYS} days`, NOW + MAX_RESERVED_UNTIL_DAYS * DAY, true],
    [`today + ${MAX_RESERVED_UNTIL_DAYS + 1} days`, NOW + (MAX_RESERVED_UNTIL_DAYS + 1) * DAY, false],
  ];
  try {
    for (const [what, reservedUntil, accepted] of cases) {
      const { token, authorization } = mintToken(KEY);
      parent.script = () => ({ kind: 'ok', reservedUntil });
      const answer = await assignRequest(wide.url, authorization, sealedRequest(ENCLAVE));
      const ip = parent.sealedCalls().at(-1)!.body!.ip!;
      if (accepted) {
        assert.equal(answer.status, 200, `${what}: ${answer.text}`);
        assert.equal((await ipState(t.store, ip))!.reserved_until_day, dayOf(reservedUntil), `${what}: stored`);
      } else {
        assert.equal(answer.status, 500, `${what}: ${answer.text}`);
        assert.equal(errorCode(answer), 'internal', what);
        assert.deepEqual(await nonceState(t.store, token.nonce), { state: 'pending', ip, refusals: 0 }, `${what}: still pending`);
        assert.deepEqual(await ipState(t.store, ip), { state: 'reserved', reserved_until_day: dayOf(NOW) + RESERVATION_DAYS, quarantine_until_day: null }, `${what}: the service's own reservation stays`);
      }
    }
  } finally {
    await wide.close();
  }
});
