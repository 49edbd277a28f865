// The parent proxy end to end (SPEC §6): the real parent process (parent/main.ts) in front of the
// real development enclave process (enclave/main.ts), over real sockets. Requests are sealed and
// responses opened as an app does, so a response matched to the wrong request would show.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { connect } from 'node:net';
import { decodeBase64url, encodeBase64url } from '../protocol/base64url.js';
import { Tagged, decodeCbor, isCborMap } from '../protocol/cbor.js';
import { ERROR_MESSAGES, type ErrorCode } from '../protocol/errors.js';
import { keyIdOf } from '../protocol/hpke.js';
import { reservedUntilOf } from '../protocol/limits.js';
import { formatListenAddress } from '../enclave/io/address.js';
import { errorBody, http, postJson, waitFor, type HttpReply } from '../parent/test/helpers.js';
import { startParent, type Child } from '../parent/test/processes.js';
import { jwtClaims, mintSrt, openTokens, sealAssign, sealRefresh, spawnEnclave, type SpawnedEnclave } from './support/enclave.js';
import { startTestCustody, type TestCustody } from './support/kms.js';
import { assertNoLeak } from './support/secrets.js';

let custody: TestCustody;

interface Stack {
  enclave: SpawnedEnclave;
  parent: Child;
  port: number;
}

async function startStack(parentArgs: string[] = [], dir?: string): Promise<Stack> {
  const enclave = await spawnEnclave(dir === undefined ? {} : { dir });
  try {
    const { parent, port } = await startParent(['--enclave', formatListenAddress(enclave.address), '--timeout-ms', '120000', ...custody.args, ...parentArgs], custody.env);
    await waitFor(async () => (await http(port, '/readyz')).status === 200, 60_000, 'parent ready');
    return { enclave, parent, port };
  } catch (error) {
    await enclave.stop();
    throw error;
  }
}

async function stopStack(stack: Stack | undefined): Promise<void> {
  if (stack === undefined) return;
  await stack.parent.stop();
  await stack.enclave.stop();
}

const randomNonce = (): string => encodeBase64url(crypto.getRandomValues(new Uint8Array(32)));

/** GET /v1/attestation and take the boot key from the document (SPEC §7 step 7, unverified: tests only). */
async function bootKeyOf(port: number): Promise<Uint8Array> {
  const reply = await http(port, `/v1/attestation?nonce=${randomNonce()}`);
  assert.equal(reply.status, 200);
  let cose = decodeCbor(decodeBase64url((reply.json as { document: string }).document)!);
  if (cose instanceof Tagged) cose = cose.value;
  assert.ok(Array.isArray(cose), 'the COSE_Sign1 is an array');
  const payload = decodeCbor(cose[2] as Uint8Array);
  assert.ok(isCborMap(payload), 'the payload is a map');
  return payload.get('public_key') as Uint8Array;
}

const isError = (reply: HttpReply, code: ErrorCode, status: number): void => {
  assert.equal(reply.status, status, `${code}: ${reply.text}`);
  assert.deepEqual(reply.json, { error: { code, message: ERROR_MESSAGES[code] } });
};

let shared: Stack | undefined;
before(async () => {
  custody = await startTestCustody();
  shared = await startStack(['--body-limit', '16384']);
});
after(async () => {
  await stopStack(shared);
  await custody.close();
});

test('every route answers through the real enclave: attestation, keys, assign, refresh, healthz, readyz, metrics', async () => {
  const { port, enclave } = shared!;
  const nonce = randomNonce();
  const attestation = await http(port, `/v1/attestation?nonce=${nonce}`);
  assert.equal(attestation.status, 200);
  let cose = decodeCbor(decodeBase64url((attestation.json as { document: string }).document)!);
  if (cose instanceof Tagged) cose = cose.value;
  const payload = decodeCbor((cose as Uint8Array[])[2]!) as Map<string, unknown>;
  assert.deepEqual(payload.get('nonce'), decodeBase64url(nonce));
  assert.match(String(payload.get('module_id')), /^dev-/);

  // The JWKS bytes are exactly what the enclave's jwks op returns.
  const keys = await http(port, '/v1/keys');
  assert.equal(keys.status, 200);
  assert.equal(keys.headers['content-type'], 'application/jwk-set+json');
  const direct = await enclave.connect();
  const jwks = await direct.request('jwks');
  direct.close();
  assert.ok(jwks.ok, 'the jwks op answered ok');
  assert.deepEqual(new Uint8Array(keys.body), jwks.body.get('jwks'));

  const bootKey = payload.get('public_key') as Uint8Array;
  const srt = await mintSrt(enclave.issuer(), { sub: 'sub-e2e-routes' });
  const sealedAssign = sealAssign(bootKey, srt);
  const assign = await postJson(port, '/v1/dip/assign', { ip: '198.51.100.4', request: encodeBase64url(sealedAssign.request) });
  assert.equal(assign.status, 200);
  const assigned = assign.json as { ip: string; reservedUntil: number; response: string };
  assert.deepEqual(Object.keys(assigned), ['ip', 'reservedUntil', 'response']);
  assert.equal(assigned.ip, '198.51.100.4');
  const tokens = openTokens(sealedAssign.context, decodeBase64url(assigned.response)!);
  assert.equal(assigned.reservedUntil, reservedUntilOf(jwtClaims(tokens.drt)['exp'] as number), 'reservedUntil is the DRT exp rounded up');

  const sealedRefresh = sealRefresh(bootKey, srt, tokens.drt);
  const refresh = await postJson(port, '/v1/dip/refresh', { ip: '198.51.100.4', request: encodeBase64url(sealedRefresh.request) });
  assert.equal(refresh.status, 200);
  const refreshed = refresh.json as { ip: string; response: string };
  assert.equal(refreshed.ip, '198.51.100.4');
  const fresh = openTokens(sealedRefresh.context, decodeBase64url(refreshed.response)!);
  assert.deepEqual((jwtClaims(fresh.dat)['xv.vpn.dip.details'] as { ip: string }).ip, '198.51.100.4');

  assert.deepEqual((await http(port, '/healthz')).json, { status: 'ok' });
  assert.deepEqual((await http(port, '/readyz')).json, { status: 'ok' });
  assert.deepEqual(
    (await http(port, '/v1/enclaves')).json,
    { enclaves: [{ key_id: encodeBase64url(keyIdOf(bootKey)), status: 'ok' }] },
    'GET /v1/enclaves names the attested boot key',
  );
  assert.deepEqual(
    decodeBase64url((attestation.json as { jwks: string }).jwks),
    jwks.body.get('jwks'),
    'the attestation answer carries the JWKS the jwks op serves',
  );
  const metrics = await http(port, '/metrics');
  assert.match(metrics.text, /dip_parent_http_requests_total\{route="\/v1\/dip\/refresh",method="POST",status="200"\} 1/);
  assert.match(metrics.text, /dip_parent_enclave_connections\{state="ready"\} 4/);
});

test('the enclave\'s refusals come back with their SPEC status through the parent', async () => {
  const { port, enclave } = shared!;
  const bootKey = await bootKeyOf(port);
  const issuer = enclave.issuer();
  const srt = await mintSrt(issuer, { sub: 'sub-e2e-errors' });
  const assignFor = (request: Uint8Array, ip = '192.0.2.10'): Promise<HttpReply> =>
    postJson(port, '/v1/dip/assign', { ip, request: encodeBase64url(request) });

  // The parent passes the ip through as text; the enclave refuses a non-canonical one.
  isError(await assignFor(sealAssign(bootKey, srt).request, '2001:DB8::1'), 'bad_request', 400);
  // SPEC §4: the parent refuses a request of another version or under 97 bytes; the enclave one for another key.
  isError(await assignFor(new Uint8Array(200).fill(1)), 'bad_request', 400);
  isError(await assignFor(new Uint8Array(96).fill(2)), 'bad_request', 400);
  isError(await assignFor(new Uint8Array(200).fill(2)), 'key_unknown', 421);
  // A request sealed for refresh is refused by assign (SPEC §4).
  isError(await assignFor(sealRefresh(bootKey, srt, 'x.y.z').request), 'decrypt_failed', 403);
  isError(await assignFor(sealAssign(bootKey, await mintSrt(issuer, { sub: 's', did: null })).request), 'not_entitled', 403);
  const old = Math.floor(Date.now() / 1000) - 7200;
  isError(await assignFor(sealAssign(bootKey, await mintSrt(issuer, { sub: 's', iat: old, exp: old + 60 })).request), 'srt_expired', 403);
  isError(await assignFor(sealAssign(bootKey, `${srt.slice(0, -4)}AAAA`).request), 'srt_invalid', 403);

  const first = sealAssign(bootKey, srt);
  const assigned = (await assignFor(first.request)).json as { response: string };
  const { drt } = openTokens(first.context, decodeBase64url(assigned.response)!);
  const other = await mintSrt(issuer, { sub: 'sub-e2e-someone-else' });
  const refreshWith = async (s: string, d: string, ip = '192.0.2.10'): Promise<HttpReply> =>
    postJson(port, '/v1/dip/refresh', { ip, request: encodeBase64url(sealRefresh(bootKey, s, d).request) });
  isError(await refreshWith(other, drt), 'subject_mismatch', 403);
  isError(await refreshWith(await mintSrt(issuer, { sub: 'sub-e2e-errors', did: 1 }), drt), 'version_mismatch', 403);
  isError(await refreshWith(srt, 'not.a.drt'), 'drt_invalid', 403);
  isError(await refreshWith(srt, drt, '192.0.2.11'), 'ip_mismatch', 403);
  isError(await refreshWith(srt, drt, '\ud800'), 'bad_request', 400);
});

test('the parent\'s own refusals: bad nonce 400, unknown route 404, wrong method 405, body type 415, body over the cap 413', async () => {
  const { port } = shared!;
  isError(await http(port, '/v1/attestation?nonce=short'), 'bad_request', 400);
  isError(await http(port, '/v1/attestation'), 'bad_request', 400);
  isError(await postJson(port, '/v1/dip/assign', { ip: '192.0.2.1', request: 'not base64url!' }), 'bad_request', 400);
  isError(await postJson(port, '/v1/dip/refresh', '{"request":'), 'bad_request', 400);
  isError(await http(port, '/v1/tokens'), 'not_found', 404);
  isError(await http(port, '/v1/dip/assign'), 'method_not_allowed', 405);
  isError(await http(port, '/v1/dip/refresh', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' }), 'unsupported_media_type', 415);
  isError(await postJson(port, '/v1/dip/refresh', { ip: '192.0.2.1', request: 'A'.repeat(17_000) }), 'payload_too_large', 413);
});

test('1,000 concurrent assigns are each answered with their own response', async () => {
  const { port, enclave } = shared!;
  const bootKey = await bootKeyOf(port);
  // One sealed request, 1,000 different clear IPs: each answer must echo its own IP and carry a
  // DAT, sealed inside the response, for that same IP.
  const sealed = sealAssign(bootKey, await mintSrt(enclave.issuer(), { sub: 'sub-e2e-load' }));
  const request = encodeBase64url(sealed.request);
  const ips = Array.from({ length: 1000 }, (_, i) => `10.77.${i >> 8}.${i & 255}`);
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  try {
    const replies = await Promise.all(ips.map((ip) => postJson(port, '/v1/dip/assign', { ip, request }, agent)));
    replies.forEach((reply, i) => {
      assert.equal(reply.status, 200, reply.text);
      const body = reply.json as { ip: string; response: string };
      assert.equal(body.ip, ips[i]);
      const { dat } = openTokens(sealed.context, decodeBase64url(body.response)!);
      assert.equal((jwtClaims(dat)['xv.vpn.dip.details'] as { ip: string }).ip, ips[i]);
    });
  } finally {
    agent.destroy();
  }
});

test('a slow-loris client does not block others', async () => {
  const { port } = shared!;
  const sockets = Array.from({ length: 50 }, () => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    socket.write('POST /v1/dip/refresh HTTP/1.1\r\nhost: x\r\n');
    return socket;
  });
  const drip = setInterval(() => sockets.forEach((s) => s.write('x-a: b\r\n')), 200);
  try {
    const replies = await Promise.all(Array.from({ length: 30 }, () => http(port, '/v1/keys')));
    assert.ok(replies.every((r) => r.status === 200), 'every slow-header request is answered 200');
  } finally {
    clearInterval(drip);
    sockets.forEach((s) => s.destroy());
  }
});

test('after a full assign and refresh, no subscription id, IP or token, in any encoding, appears in the parent\'s or the enclave\'s output or metrics', async () => {
  const stack = await startStack();
  try {
    const { port, enclave, parent } = stack;
    const sub = 'sub-privacy-7f3c9e21';
    const ip = '203.0.113.177';
    const bootKey = await bootKeyOf(port);
    const srt = await mintSrt(enclave.issuer(), { sub });
    const sealedAssign = sealAssign(bootKey, srt);
    const assign = await postJson(port, '/v1/dip/assign', { ip, request: encodeBase64url(sealedAssign.request) });
    assert.equal(assign.status, 200);
    const first = openTokens(sealedAssign.context, decodeBase64url((assign.json as { response: string }).response)!);
    const sealedRefresh = sealRefresh(bootKey, srt, first.drt);
    const refresh = await postJson(port, '/v1/dip/refresh', { ip, request: encodeBase64url(sealedRefresh.request) });
    assert.equal(refresh.status, 200);
    const second = openTokens(sealedRefresh.context, decodeBase64url((refresh.json as { response: string }).response)!);
    const metrics = (await http(port, '/metrics')).text;
    await parent.stop();
    await enclave.stop();

    assert.match(parent.stdout(), /"route":"\/v1\/dip\/refresh","status":200/, 'the parent did log the requests');
    const secrets = [
      { what: 'subscription id', value: sub, hashed: true },
      { what: 'IP', value: ip, hashed: true },
      ...Object.entries({ srt, firstDat: first.dat, firstDrt: first.drt, secondDat: second.dat, secondDrt: second.drt }).map(([what, value]) => ({ what, value })),
      { what: 'sealed request', value: sealedAssign.request.subarray(8, 40) },
      { what: 'sealed response', value: decodeBase64url((assign.json as { response: string }).response)!.subarray(8, 40) },
    ];
    assertNoLeak(parent.stdout() + parent.stderr(), secrets, "the parent's output");
    assertNoLeak(metrics, secrets, "the parent's metrics");
    assertNoLeak(enclave.output(), secrets, "the enclave's output");
  } finally {
    await stopStack(stack);
  }
});

test('the enclave killed mid-load gives 503s, and the parent recovers without restarting when it is back', async () => {
  const stack = await startStack(['--pool-size', '2']);
  let restarted: SpawnedEnclave | undefined;
  try {
    const { port, enclave } = stack;
    const bootKey = await bootKeyOf(port);
    const request = encodeBase64url(sealAssign(bootKey, await mintSrt(enclave.issuer(), { sub: 'sub-e2e-kill' })).request);
    const statuses: number[] = [];
    let running = true;
    const agent = new Agent({ keepAlive: true });
    const worker = async (): Promise<void> => {
      while (running) {
        const reply = await postJson(port, '/v1/dip/assign', { ip: '192.0.2.55', request }, agent);
        statuses.push(reply.status);
        // In flight when it died: 503; sealed for its boot key after it died: no enclave has the key.
        if (reply.status === 503) isError(reply, 'enclave_unavailable', 503);
        else if (reply.status !== 200) isError(reply, 'key_unknown', 421);
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    await waitFor(() => statuses.filter((s) => s === 200).length >= 20, 60_000, 'load running');
    enclave.child.kill('SIGKILL');
    await enclave.exited;
    await waitFor(() => statuses.filter((s) => s === 421).length >= 20, 60_000, '421s while the enclave is gone');
    running = false;
    await Promise.all(workers);
    agent.destroy();
    assert.ok([...new Set(statuses)].every((s) => [200, 421, 503].includes(s)), 'only 200, 503 and 421');
    isError(await http(port, '/readyz'), 'enclave_unavailable', 503);
    assert.equal((await http(port, '/healthz')).status, 200);

    // Back locked, with a new NSM root: the parent unlocks it through KMS (SPEC §9).
    restarted = await spawnEnclave({ dir: enclave.dir, masterSecret: null });
    custody.kms.trust(restarted.rootPem());
    await waitFor(async () => (await http(port, '/readyz')).status === 200, 60_000, 'ready again');
    // The log line reaches this process through a pipe, maybe after /readyz answered: wait for it.
    assert.ok(await stack.parent.waitForOutput(/"event":"enclave_unlocked","enclave":0/, 10_000), 'unlocked by the parent');
    // A new boot: a new boot key, so the app attests again and seals anew.
    const newKey = await bootKeyOf(port);
    assert.notDeepEqual(newKey, bootKey);
    const srt = await mintSrt(restarted.issuer(), { sub: 'sub-e2e-kill' });
    const reply = await postJson(port, '/v1/dip/assign', { ip: '192.0.2.56', request: encodeBase64url(sealAssign(newKey, srt).request) });
    assert.equal(reply.status, 200);
    assert.equal(stack.parent.process.exitCode, null);
    assert.match(stack.parent.stdout(), /"event":"enclave_disconnected"/);
  } finally {
    await restarted?.stop();
    await stopStack(stack);
  }
});

test('a stalled enclave is answered 504 enclave_timeout once the timeout has passed', async () => {
  const stack = await startStack(['--timeout-ms', '1500']);
  try {
    const { port, enclave } = stack;
    enclave.child.kill('SIGSTOP');
    try {
      const started = Date.now();
      const reply = await http(port, '/v1/keys');
      isError(reply, 'enclave_timeout', 504);
      assert.ok(Date.now() - started >= 1400, 'the timeout waited about 1.5 s');
      const readyz = await http(port, '/readyz');
      assert.equal(readyz.status, 504);
    } finally {
      enclave.child.kill('SIGCONT');
    }
    await waitFor(async () => (await http(port, '/readyz')).status === 200, 30_000, 'ready after the stall');
    assert.match((await http(port, '/metrics')).text, /dip_parent_enclave_timeouts_total [1-9]/);
  } finally {
    await stopStack(stack);
  }
});

test('GET /v1/attestation beyond the per-client burst is 429 rate_limited', async () => {
  const { enclave } = shared!;
  const { parent, port } = await startParent(['--enclave', formatListenAddress(enclave.address), ...custody.args, '--attestation-burst', '2', '--attestation-rate', '0.001'], custody.env);
  try {
    await waitFor(async () => (await http(port, '/readyz')).status === 200, 60_000, 'ready');
    assert.equal((await http(port, `/v1/attestation?nonce=${randomNonce()}`)).status, 200);
    assert.equal((await http(port, `/v1/attestation?nonce=${randomNonce()}`)).status, 200);
    const limited = await http(port, `/v1/attestation?nonce=${randomNonce()}`);
    assert.deepEqual(limited.json, errorBody('rate_limited'));
    assert.equal(limited.status, 429);
  } finally {
    await parent.stop();
  }
});
