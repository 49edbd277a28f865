// SPEC §11 beyond assign, over real HTTP: refresh (only reserved or quarantined IPs reach the parent;
// a 200 extends), expiry through quarantine with an accelerated clock, backups at their limits,
// routing among two parents and failover of attestation, health, unknown routes (/metrics among
// them) and methods, and the admin listener: /readyz with the pool figures, /metrics and the
// operator routes. One embedded store for the file, emptied before each test.

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, afterEach, before, beforeEach, test } from 'node:test';
import { dayOf } from '../../store/day.js';
import { openTestStore, type TestStore } from '../../store/test/support.js';
import { MAX_RESERVED_UNTIL_DAYS } from '../dip.js';
import { createFiguresCache, readiness } from '../figures.js';
import { FORGET_AFTER_FAILED_POLLS } from '../parents.js';
import { runRangesCommand } from '../ranges-cli.js';
import {
  DAY, NOW, RESERVED_UNTIL, assignRequest, call, createIssuerKey, errorCode, ipState, keyId, mintToken, refreshRequest,
  removeTempDirs, sealedRequest, startFakeParent, startTestService, writeTokenKeys, type FakeParent,
} from './support.js';

const KEY = createIssuerKey(NOW - DAY);
const ENCLAVE = keyId(1);
const OTHER = keyId(2);

let t: TestStore;
let parent: FakeParent;
let second: FakeParent;
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
  second = await startFakeParent([{ keyId: OTHER, status: 'ok' }]);
  service = await startTestService({
    parents: [parent.url, second.url],
    tokenKeys: writeTokenKeys([KEY]),
    store: t.store,
    now: () => clock,
    repollMinMs: 0,
    figuresMaxAgeMs: 0,
    args: ['--range', '192.0.2.0/30', '--accelerated-clock'],
  });
});
afterEach(async () => {
  await service.close();
  await parent.close();
  await second.close();
});

const json = { 'content-type': 'application/json' };

async function assigned(): Promise<string> {
  const answer = await assignRequest(service.url, mintToken(KEY).authorization, sealedRequest(ENCLAVE));
  assert.equal(answer.status, 200, answer.text);
  return answer.json!.ip as string;
}

async function expireAs(day: number): Promise<Record<string, unknown>> {
  const answer = await call(`${service.adminUrl}/admin/expire`, { method: 'POST', headers: json, body: JSON.stringify({ today: new Date(day * DAY * 1000).toISOString().slice(0, 10) }) });
  assert.equal(answer.status, 200, answer.text);
  return answer.json!;
}

test('refresh forwards {ip, request} for a reserved IP, answers as the parent did, and extends the reservation to reservedUntil', async () => {
  const ip = await assigned();
  clock = NOW + 30 * DAY;
  const later = RESERVED_UNTIL + 30 * DAY;
  parent.script = () => ({ kind: 'ok', reservedUntil: later });
  const request = sealedRequest(ENCLAVE, 0x02);
  const answer = await refreshRequest(service.url, ip, request);
  assert.equal(answer.status, 200, answer.text);
  assert.deepEqual({ ip: answer.json!.ip, reservedUntil: answer.json!.reservedUntil }, { ip, reservedUntil: later }, 'as the parent gave it');
  assert.deepEqual(parent.sealedCalls().at(-1), { method: 'POST', path: '/v1/dip/refresh', body: { ip, request } }, 'forwarded');
  assert.equal((await ipState(t.store, ip))!.reserved_until_day, dayOf(later), 'extended');
});

test(`refresh extends only to a reservedUntil at 00:00 UTC from tomorrow through today + ${MAX_RESERVED_UNTIL_DAYS} days; anything else is 500 internal and extends nothing`, async () => {
  const ip = await assigned();
  const today = NOW + 10 * DAY;
  clock = today + 3600;
  const cases: Array<[string, number, number | null]> = [
    ['today 00:00', today, null],
    ['tomorrow 00:00 - 1 s', today + DAY - 1, null],
    ['tomorrow 00:00 + 1 s', today + DAY + 1, null],
    [`today + ${MAX_RESERVED_UNTIL_DAYS} days + 1 s`, today + MAX_RESERVED_UNTIL_DAYS * DAY + 1, null],
    [`today + ${MAX_RESERVED_UNTIL_DAYS + 1} days`, today + (MAX_RESERVED_UNTIL_DAYS + 1) * DAY, null],
    // Accepted, and never shortens the reservation.
    ['tomorrow 00:00', today + DAY, dayOf(RESERVED_UNTIL)],
    [`today + ${MAX_RESERVED_UNTIL_DAYS} days`, today + MAX_RESERVED_UNTIL_DAYS * DAY, dayOf(today) + MAX_RESERVED_UNTIL_DAYS],
  ];
  for (const [what, reservedUntil, storedDay] of cases) {
    const before = (await ipState(t.store, ip))!.reserved_until_day;
    parent.script = () => ({ kind: 'ok', reservedUntil });
    const answer = await refreshRequest(service.url, ip, sealedRequest(ENCLAVE, 0x02));
    if (storedDay === null) {
      assert.equal(answer.status, 500, `${what}: ${answer.text}`);
      assert.equal(errorCode(answer), 'internal', what);
      assert.equal((await ipState(t.store, ip))!.reserved_until_day, before, `${what}: not extended`);
    } else {
      assert.equal(answer.status, 200, `${what}: ${answer.text}`);
      assert.equal((await ipState(t.store, ip))!.reserved_until_day, storedDay, `${what}: stored`);
    }
  }
});

test('a refresh whose IP was freed while the parent answered is 410 ip_unavailable, not 200, and reserves nothing', async () => {
  const ip = await assigned();
  parent.script = () => ({
    kind: 'custom',
    answer: async (c, res) => {
      await t.store.query("UPDATE ip_pool SET state = 'free', reserved_until_day = NULL WHERE ip = $1::inet", [ip]);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ip: c.body!.ip, reservedUntil: RESERVED_UNTIL, response: 'AAAA' }));
    },
  });
  const answer = await refreshRequest(service.url, ip, sealedRequest(ENCLAVE, 0x02));
  assert.equal(answer.status, 410, answer.text);
  assert.equal(errorCode(answer), 'ip_unavailable', 'code');
  assert.equal((await ipState(t.store, ip))!.state, 'free', 'still free');
});

test('a refresh for an IP with no reservation is 410 ip_unavailable and never reaches the parent; a non-canonical IP is 400', async () => {
  for (const ip of ['192.0.2.1', '203.0.113.9', '2001:db8::1']) {
    const answer = await refreshRequest(service.url, ip, sealedRequest(ENCLAVE, 0x02));
    assert.equal(answer.status, 410, ip);
    assert.equal(errorCode(answer), 'ip_unavailable', ip);
  }
  for (const ip of ['192.0.2.01', '2001:DB8::1', '']) {
    assert.equal(errorCode(await refreshRequest(service.url, ip, sealedRequest(ENCLAVE, 0x02))), 'bad_request', JSON.stringify(ip));
  }
  assert.equal(parent.sealedCalls().length + second.sealedCalls().length, 0, 'the parents saw no sealed request');
});

test('refresh errors pass through and change nothing', async () => {
  const ip = await assigned();
  parent.script = () => ({ kind: 'error', code: 'drt_expired' });
  const answer = await refreshRequest(service.url, ip, sealedRequest(ENCLAVE, 0x02));
  assert.equal(answer.status, 403, 'passed through');
  assert.equal(errorCode(answer), 'drt_expired', 'code');
  assert.equal((await ipState(t.store, ip))!.reserved_until_day, dayOf(RESERVED_UNTIL), 'unchanged');
});

test('an expired reservation frees its IP only after the quarantine; a refreshed IP is never freed; a quarantined IP refreshes back', async () => {
  const expiring = await assigned();
  const refreshed = await assigned();
  const last = dayOf(RESERVED_UNTIL);
  // 30 days on, the refreshed IP is extended 30 days; the other runs out.
  clock = NOW + 30 * DAY;
  parent.script = () => ({ kind: 'ok', reservedUntil: RESERVED_UNTIL + 30 * DAY });
  assert.equal((await refreshRequest(service.url, refreshed, sealedRequest(ENCLAVE, 0x02))).status, 200, 'refreshed');
  clock = (last + 1) * DAY;
  assert.deepEqual(await expireAs(last + 1), { today: new Date((last + 1) * DAY * 1000).toISOString().slice(0, 10), quarantined: 1, freed: 0, forgotten: 0 }, 'one into quarantine');
  assert.equal((await ipState(t.store, expiring))!.state, 'quarantined', 'quarantined the day after its last');
  assert.equal((await ipState(t.store, refreshed))!.state, 'reserved', 'the refreshed IP is still reserved');
  assert.equal((await expireAs(last + 7)).freed, 0, 'still in quarantine on its 7th day');
  // Meanwhile the quarantined IP can be refreshed back by its owner.
  parent.script = () => ({ kind: 'ok', reservedUntil: RESERVED_UNTIL + 60 * DAY });
  assert.equal((await refreshRequest(service.url, expiring, sealedRequest(ENCLAVE, 0x02))).status, 200, 'refreshed out of quarantine');
  assert.deepEqual(await ipState(t.store, expiring), { state: 'reserved', reserved_until_day: dayOf(RESERVED_UNTIL + 60 * DAY), quarantine_until_day: null }, 'reserved again');
  // Let the first refresh's 30 days run out too: quarantine, then free 7 days later.
  const refreshedLast = dayOf(RESERVED_UNTIL + 30 * DAY);
  clock = (refreshedLast + 8) * DAY;
  const late = await expireAs(refreshedLast + 8);
  assert.deepEqual([late.quarantined, late.freed], [1, 1], 'quarantined and freed at once when the job ran late');
  assert.equal((await ipState(t.store, refreshed))!.state, 'free', 'free after its quarantine');
  assert.equal((await ipState(t.store, expiring))!.state, 'reserved', 'the IP refreshed back stays');
});

test('the expiry job refuses a day before today and a day that is not one; which keys are retired follows the real clock, never an accelerated today', async () => {
  clock = NOW + 10 * DAY;
  for (const today of ['2025-12-31', '2026-02-30', '20260101', 5]) {
    const answer = await call(`${service.adminUrl}/admin/expire`, { method: 'POST', headers: json, body: JSON.stringify({ today }) });
    assert.equal(answer.status, 400, String(today));
  }
  const { authorization } = mintToken(KEY);
  assert.equal((await assignRequest(service.url, authorization, sealedRequest(ENCLAVE))).status, 200, 'assigned');
  // The key's last second: its tokens still verify, so its spent nonces stay, whatever day the job runs as.
  clock = KEY.notBefore + 90 * DAY;
  assert.equal((await expireAs(dayOf(clock) + 400)).forgotten, 0, 'an accelerated today retires no key');
  assert.equal(errorCode(await assignRequest(service.url, authorization, sealedRequest(ENCLAVE))), 'token_spent', 'the token is still spent');
  clock = KEY.notBefore + 90 * DAY + 1;
  const answer = await call(`${service.adminUrl}/admin/expire`, { method: 'POST' });
  assert.equal(answer.status, 200, 'no body: as of today');
  assert.equal(answer.json!.forgotten, 1, 'retired one second after its last: the spent nonce goes');
});

test('without --accelerated-clock, POST /admin/expire takes only the real today: the day after is 400 bad_request and changes nothing', async () => {
  const plain = await startTestService({ parents: [parent.url], tokenKeys: writeTokenKeys([KEY]), store: t.store, now: () => clock, figuresMaxAgeMs: 0 });
  try {
    const ip = await assigned();
    clock = RESERVED_UNTIL + 10 * DAY + 3600;
    const expire = (day: number) => call(`${plain.adminUrl}/admin/expire`, { method: 'POST', headers: json, body: JSON.stringify({ today: new Date(day * DAY * 1000).toISOString().slice(0, 10) }) });
    const tomorrow = await expire(dayOf(clock) + 1);
    assert.equal(tomorrow.status, 400, tomorrow.text);
    assert.equal(errorCode(tomorrow), 'bad_request', 'code');
    assert.equal((await ipState(t.store, ip))!.state, 'reserved', 'nothing ran');
    assert.equal((await expire(dayOf(clock) - 1)).status, 400, 'yesterday');
    const today = await expire(dayOf(clock));
    assert.equal(today.status, 200, today.text);
    assert.equal(today.json!.quarantined, 1, 'today runs');
  } finally {
    await plain.close();
  }
});

test('the admin listener refuses a Host that is not a loopback IP literal with its port (DNS rebinding): 400 bad_request', async () => {
  const port = Number(new URL(service.adminUrl).port);
  const refused = ['evil.example', `evil.example:${port}`, `localhost:${port}`, '127.0.0.1', `127.0.0.1:${port + 1}`, `127.0.0.256:${port}`, `[::2]:${port}`, `10.0.0.1:${port}`];
  for (const host of refused) {
    const answer = await call(`${service.adminUrl}/admin/pool`, { headers: { host } });
    assert.equal(answer.status, 400, host);
    assert.equal(errorCode(answer), 'bad_request', host);
  }
  for (const host of [`127.0.0.1:${port}`, `127.1.2.3:${port}`]) {
    assert.equal((await call(`${service.adminUrl}/admin/pool`, { headers: { host } })).status, 200, host);
  }
});

test('backups: put, get, delete round trip; 4096 bytes fit, 4097 are 413, an empty one 400; absent is 404', async () => {
  const id = Buffer.alloc(32, 7).toString('base64url');
  const url = `${service.url}/v1/backup/${id}`;
  const octets = { 'content-type': 'application/octet-stream' };
  assert.equal(errorCode(await call(url)), 'not_found', 'none yet');
  assert.equal((await call(url, { method: 'PUT', headers: octets, body: Buffer.alloc(4096, 1) })).status, 204, '4096 bytes');
  const got = await call(url);
  assert.equal(got.status, 200, 'get');
  assert.equal(got.headers.get('content-type'), 'application/octet-stream', 'octet-stream');
  assert.deepEqual(got.bytes, Buffer.alloc(4096, 1), 'the same bytes');
  assert.equal(errorCode(await call(url, { method: 'PUT', headers: octets, body: Buffer.alloc(4097, 1) })), 'payload_too_large', '4097 bytes');
  assert.equal(errorCode(await call(url, { method: 'PUT', headers: octets, body: Buffer.alloc(0) })), 'bad_request', 'empty');
  assert.equal(errorCode(await call(url, { method: 'PUT', headers: json, body: '{}' })), 'unsupported_media_type', 'JSON');
  assert.equal((await call(url, { method: 'DELETE' })).status, 204, 'deleted');
  assert.equal(errorCode(await call(url, { method: 'DELETE' })), 'not_found', 'gone');
  const post = await call(url, { method: 'POST' });
  assert.equal(post.status, 405, 'POST');
  assert.equal(post.headers.get('allow'), 'GET, PUT, DELETE', 'Allow');
});

test('a backup id must be 32 bytes as 43 base64url characters without padding', async () => {
  const bad = [
    Buffer.alloc(32, 7).toString('base64url').slice(0, 42),
    `${Buffer.alloc(32, 7).toString('base64url')}A`,
    `${Buffer.alloc(32, 7).toString('base64url')}=`,
    Buffer.alloc(31, 7).toString('base64url'),
    Buffer.alloc(33, 7).toString('base64url'),
    Buffer.alloc(32, 7).toString('base64url').replace(/^./, '+'),
    '',
  ];
  for (const id of bad) assert.equal(errorCode(await call(`${service.url}/v1/backup/${id}`)), 'bad_request', `${id.length} characters`);
  assert.equal(errorCode(await call(`${service.url}/v1/backup/a/b`)), 'not_found', 'a longer path is no route');
});

test('sealed requests go to the parent that reaches their key_id; attestation falls over to the second parent when the first refuses connections', async () => {
  await assigned();
  assert.equal(parent.sealedCalls().length, 1, 'key 1 → the first parent');
  assert.equal((await assignRequest(service.url, mintToken(KEY).authorization, sealedRequest(OTHER))).status, 200, 'key 2');
  assert.equal(second.sealedCalls().length, 1, 'key 2 → the second parent');
  const nonce = Buffer.alloc(32, 3).toString('base64url');
  const first = await call(`${service.url}/v1/attestation?nonce=${nonce}`);
  assert.equal(first.status, 200, 'attestation');
  assert.deepEqual(first.json, { document: 'ZG9j', jwks: 'andrcw' }, 'verbatim');
  await parent.close();
  for (let i = 0; i < 2; i++) {
    const answer = await call(`${service.url}/v1/attestation?nonce=${nonce}`);
    assert.equal(answer.status, 200, `attestation ${i + 1} with the first parent gone`);
  }
  const keys = await call(`${service.url}/v1/keys`);
  assert.equal(keys.headers.get('content-type'), 'application/jwk-set+json', 'keys pass through with their media type');
  parent = await startFakeParent([]);
});

test('a sealed request moves to the next parent reaching its key_id only when the connection was refused, never after it was sent', async () => {
  second.enclaves = [{ keyId: ENCLAVE, status: 'ok' }, { keyId: OTHER, status: 'ok' }];
  await assignRequest(service.url, mintToken(KEY).authorization, sealedRequest(keyId(7))); // an unknown key_id makes the service look again
  parent.script = () => ({ kind: 'close' });
  const lost = await assignRequest(service.url, mintToken(KEY).authorization, sealedRequest(ENCLAVE));
  assert.equal(errorCode(lost), 'enclave_unavailable', 'a connection lost after sending');
  assert.equal(second.sealedCalls().length, 0, 'is not sent again elsewhere');
  await parent.close();
  const moved = await assignRequest(service.url, mintToken(KEY).authorization, sealedRequest(ENCLAVE));
  assert.equal(moved.status, 200, 'a refused connection moves on');
  assert.equal(second.sealedCalls().length, 1, 'to the second parent');
  parent = await startFakeParent([]);
});

test(`a parent that misses a poll keeps routing its last key_ids; after ${FORGET_AFTER_FAILED_POLLS} missed polls in a row they are key_unknown`, async () => {
  parent.enclavesFail = true;
  const lookAgain = (): Promise<unknown> => assignRequest(service.url, mintToken(KEY).authorization, sealedRequest(keyId(7)));
  for (let missed = 1; missed < FORGET_AFTER_FAILED_POLLS; missed++) {
    await lookAgain();
    assert.equal((await assignRequest(service.url, mintToken(KEY).authorization, sealedRequest(ENCLAVE))).status, 200, `${missed} missed poll(s): still routed`);
  }
  const nonce = Buffer.alloc(16, 1).toString('base64url');
  await call(`${service.url}/v1/attestation?nonce=${nonce}`);
  assert.equal(parent.calls.filter((c) => c.path.startsWith('/v1/attestation')).length, 0, 'no attestation sent to a parent that missed its poll');
  await lookAgain();
  const forgotten = await assignRequest(service.url, mintToken(KEY).authorization, sealedRequest(ENCLAVE));
  assert.equal(errorCode(forgotten), 'key_unknown', `forgotten after ${FORGET_AFTER_FAILED_POLLS} missed polls`);
  parent.enclavesFail = false;
  assert.equal((await assignRequest(service.url, mintToken(KEY).authorization, sealedRequest(ENCLAVE))).status, 200, 'found again at the next poll that answers');
});

test('a parent whose enclaves are all locked gets no attestation; with none ready, 503 enclave_unavailable and /readyz 503', async () => {
  second.enclaves = [{ keyId: OTHER, status: 'locked' }];
  parent.enclaves = [{ keyId: ENCLAVE, status: 'locked' }];
  await assignRequest(service.url, mintToken(KEY).authorization, sealedRequest(keyId(7))); // an unknown key_id makes the service look again
  const nonce = Buffer.alloc(16, 3).toString('base64url');
  assert.equal(errorCode(await call(`${service.url}/v1/attestation?nonce=${nonce}`)), 'enclave_unavailable', 'no ready enclave');
  for (const url of [service.url, service.adminUrl]) {
    const ready = await call(`${url}/readyz`);
    assert.equal(ready.status, 503, `${url}: not ready`);
    assert.deepEqual(ready.json, { status: 'unavailable', store: 'ok', parents_ready: 0 }, `${url}: why`);
  }
  assert.equal(parent.calls.filter((c) => c.path.startsWith('/v1/attestation')).length, 0, 'no attestation sent to a locked parent');
});

test('healthz, readyz as a status only, 404 for /metrics and other paths, 405 with Allow, 400 for a query elsewhere or a bad nonce', async () => {
  assert.deepEqual((await call(`${service.url}/healthz`)).json, { status: 'ok' }, 'healthz');
  await assigned();
  // SPEC §10: pool figures or assign counters polled by anyone would time redemptions finer than a day.
  const ready = await call(`${service.url}/readyz`);
  assert.equal(ready.status, 200, 'ready');
  assert.equal(ready.text, '{"status":"ok"}', 'no pool figures on the app listener');
  const metrics = await call(`${service.url}/metrics`);
  assert.deepEqual([metrics.status, errorCode(metrics)], [404, 'not_found'], 'no /metrics on the app listener');
  assert.doesNotMatch(metrics.text, /dip_service_/, 'no figure in the 404');
  assert.equal(errorCode(await call(`${service.url}/v1/nothing`)), 'not_found', '404');
  const head = await call(`${service.url}/v1/dip/assign`, { method: 'GET' });
  assert.equal(head.status, 405, 'GET on assign');
  assert.equal(head.headers.get('allow'), 'POST', 'Allow');
  assert.equal(errorCode(await call(`${service.url}/healthz?x=1`)), 'bad_request', 'a query string elsewhere');
  for (const query of ['', 'nonce=', `nonce=${Buffer.alloc(15).toString('base64url')}`, `nonce=${Buffer.alloc(65).toString('base64url')}`, `nonce=${Buffer.alloc(16).toString('base64url')}&x=1`]) {
    assert.equal(errorCode(await call(`${service.url}/v1/attestation?${query}`)), 'bad_request', query);
  }
  assert.equal((await call(`${service.url}/v1/attestation?nonce=${Buffer.alloc(64).toString('base64url')}`)).status, 200, '64 bytes');
});

test('the admin listener serves /readyz with the pool figures, behind its Host check', async () => {
  await assigned();
  const ready = await call(`${service.adminUrl}/readyz`);
  assert.equal(ready.status, 200, 'ready');
  assert.deepEqual(ready.json, { status: 'ok', pool: { free: 3, reserved: 1, quarantined: 0, draining: 0 } }, 'figures');
  assert.equal(ready.headers.get('cache-control'), 'no-store', 'not cached');
  for (const path of ['/readyz', '/metrics']) {
    assert.equal(errorCode(await call(`${service.adminUrl}${path}`, { headers: { host: 'evil.example' } })), 'bad_request', `${path}: a foreign Host`);
    const post = await call(`${service.adminUrl}${path}`, { method: 'POST' });
    assert.deepEqual([post.status, post.headers.get('allow')], [405, 'GET'], `${path}: GET only`);
  }
});

test('readiness with a store that does not answer is 503 store down, with the count of ready parents', async () => {
  const down = createFiguresCache({ query: () => Promise.reject(new Error('connection refused')) }, 0);
  assert.deepEqual(await readiness(down, () => 2), { status: 503, body: { status: 'unavailable', store: 'down', parents_ready: 2 } }, 'why');
});

test('the admin /metrics counts app requests by route template, assigns by outcome, parent errors by code, and the pool by state', async () => {
  await assigned();
  parent.script = () => ({ kind: 'error', code: 'srt_invalid' });
  await assignRequest(service.url, mintToken(KEY).authorization, sealedRequest(ENCLAVE));
  await call(`${service.url}/v1/backup/${Buffer.alloc(32, 9).toString('base64url')}`);
  await call(`${service.url}/metrics`);
  const answer = await call(`${service.adminUrl}/metrics`);
  assert.equal(answer.status, 200, answer.text);
  assert.match(answer.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/, 'Prometheus text');
  const text = answer.text;
  assert.match(text, /dip_service_http_requests_total\{route="unmatched",method="GET",status="404"\} 1/, 'the app listener\'s /metrics is an unmatched 404');
  assert.match(text, /dip_service_http_requests_total\{route="\/v1\/dip\/assign",method="POST",status="200"\} 1/, 'requests');
  assert.match(text, /dip_service_http_requests_total\{route="\/v1\/backup\/:id",method="GET",status="404"\} 1/, 'the backup route template');
  assert.match(text, /dip_service_assign_outcomes_total\{outcome="assigned"\} 1/, 'assigned');
  assert.match(text, /dip_service_assign_outcomes_total\{outcome="refused"\} 1/, 'refused');
  assert.match(text, /dip_service_parent_errors_total\{code="srt_invalid"\} 1/, 'parent errors');
  assert.match(text, /dip_service_pool_addresses\{state="reserved"\} 1/, 'pool gauge');
  assert.match(text, /dip_service_parents_ready 2/, 'parents ready');
});

test('operator routes: figures and ranges, add with exclusions, drain, remove only when unused; refusals are coded', async () => {
  const post = (path: string, body: unknown, method = 'POST') => call(`${service.adminUrl}${path}`, { method, headers: json, body: JSON.stringify(body) });
  assert.deepEqual((await post('/admin/ranges', { cidr: '2001:db8::/126', exclude: ['2001:db8::/127'] })).json, { cidr: '2001:db8::/126', added: 2 }, 'added');
  const ip = await assigned();
  assert.equal(errorCode(await post('/admin/ranges', { cidr: '192.0.2.0/31' })), 'range_overlaps', 'overlapping');
  assert.equal((await post('/admin/ranges', { cidr: '192.0.2.0/31' })).status, 409, '409');
  assert.equal(errorCode(await post('/admin/ranges', { cidr: '192.0.2.1/31' })), 'range_invalid', 'host bits');
  assert.equal(errorCode(await post('/admin/ranges', { cidr: '10.0.0.0/15' })), 'range_too_large', 'too large');
  assert.equal(errorCode(await post('/admin/ranges', { cidr: '198.51.100.0/32', bogus: 1 })), 'bad_request', 'an unknown member');
  assert.equal((await post('/admin/ranges/drain', { cidr: '192.0.2.0/30' })).status, 200, 'drain');
  assert.equal(errorCode(await post('/admin/ranges/drain', { cidr: '203.0.113.0/24' })), 'range_unknown', 'drain unknown');
  const busy = await post('/admin/ranges', { cidr: '192.0.2.0/30' }, 'DELETE');
  assert.equal(errorCode(busy), 'range_busy', `a reserved IP in it: ${busy.status} ${busy.text}`);
  assert.equal((await post('/admin/ranges', { cidr: '2001:db8::/126' }, 'DELETE')).status, 200, 'an unused range');
  const pool = await call(`${service.adminUrl}/admin/pool`);
  assert.deepEqual(pool.json, {
    pool: { free: 0, reserved: 1, quarantined: 0, draining: 3 },
    ranges: [{ cidr: '192.0.2.0/30', draining: true, free: 3, reserved: 1, quarantined: 0 }],
  }, 'figures and ranges, no address');
  assert.ok(!pool.text.includes(`"${ip}"`), 'the admin route names no address in use');
  assert.equal((await call(`${service.adminUrl}/admin/pool`, { method: 'POST' })).status, 405, '405');
  assert.equal((await call(`${service.adminUrl}/admin/nothing`)).status, 404, '404');
  assert.equal(errorCode(await call(`${service.adminUrl}/admin/ranges`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' })), 'unsupported_media_type', '415');
});

test('the ranges command adds, lists, drains and removes through the admin route; usage errors exit 2, refusals 1', async () => {
  const run = async (...argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const code = await runRangesCommand(argv, {}, (text) => (out += text), (text) => (err += text));
    return { code, out, err };
  };
  const admin = ['--admin', service.adminUrl];
  assert.deepEqual(await run('add', '198.51.100.0/30', '--exclude', '198.51.100.3/32', ...admin), { code: 0, out: 'added 198.51.100.0/30: 3 addresses\n', err: '' }, 'add');
  const listed = await run('list', ...admin);
  assert.equal(listed.code, 0, 'list');
  assert.match(listed.out, /198\.51\.100\.0\/30 +free 3 +reserved 0 +quarantined 0\n/, 'the range');
  assert.match(listed.out, /pool: free 7 {2}reserved 0 {2}quarantined 0 {2}draining 0\n/, 'the pool');
  assert.equal((await run('drain', '198.51.100.0/30', ...admin)).out, 'draining 198.51.100.0/30\n', 'drain');
  assert.equal((await run('remove', '198.51.100.0/30', ...admin)).out, 'removed 198.51.100.0/30\n', 'remove');
  const refused = await run('remove', '198.51.100.0/30', ...admin);
  assert.deepEqual([refused.code, refused.err], [1, 'ranges: range_unknown: no such range in the pool\n'], 'a refusal');
  assert.equal(JSON.parse((await run('list', '--json', ...admin)).out).ranges.length, 1, '--json');
  for (const argv of [[], ['grow', ...admin], ['add', ...admin], ['add', '198.51.100.1/30', ...admin], ['list', 'x', ...admin], ['drain', '198.51.100.0/30', '--exclude', '198.51.100.0/32', ...admin], ['list'], ['list', '--admin', 'nope'], ['list', '--bogus']]) {
    assert.equal((await run(...argv)).code, 2, argv.join(' '));
  }
  assert.match((await run('--help')).out, /ranges add CIDR/, '--help');
  const gone = await run('list', '--admin', 'http://127.0.0.1:1');
  assert.equal(gone.code, 1, 'unreachable');
  assert.match(gone.err, /does not answer/, 'says so');
});

/** Sends `head` and `chunks` on a raw socket; the answer's head once the service closes the connection. */
function rawExchange(port: number, head: string, chunks: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (data: Buffer) => (got += data.toString('latin1')));
    socket.on('error', reject);
    socket.once('close', () => resolve(got.split('\r\n\r\n')[0]!));
    socket.write(head);
    for (const chunk of chunks) socket.write(chunk);
  });
}

test('a body over the limit is 413 with connection: close, and the service closes the connection (chunked or declared)', async () => {
  const port = Number(new URL(service.url).port);
  const piece = 'x'.repeat(8192);
  const chunked = await rawExchange(
    port,
    'POST /v1/dip/refresh HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n',
    Array.from({ length: 4 }, () => `${piece.length.toString(16)}\r\n${piece}\r\n`),
  );
  assert.match(chunked, /^HTTP\/1\.1 413 /, chunked);
  assert.match(chunked, /\r\nconnection: close(\r\n|$)/i, `chunked: ${chunked}`);
  const declared = await rawExchange(port, 'POST /v1/dip/refresh HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 16385\r\n\r\n', [piece]);
  assert.match(declared, /^HTTP\/1\.1 413 /, declared);
  assert.match(declared, /\r\nconnection: close(\r\n|$)/i, `declared: ${declared}`);
});
