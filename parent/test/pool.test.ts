import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DipError, type ErrorCode } from '../../protocol/errors.js';
import { encodeFrame } from '../../protocol/frame.js';
import { EnclavePool, type PoolOptions } from '../pool.js';
import { FakeEnclave, defaultHandler } from './fake-enclave.js';
import { waitFor } from './helpers.js';

const counts = (): Record<string, number> => ({});

async function setup(t: { after: (fn: () => Promise<void>) => void }, options: Partial<PoolOptions> = {}) {
  const enclave = await new FakeEnclave().start();
  const seen = counts();
  const bump = (name: string) => () => void (seen[name] = (seen[name] ?? 0) + 1);
  const pool = new EnclavePool({
    connectOptions: { path: enclave.path },
    size: 2,
    pipelineDepth: 16,
    queueLimit: 100,
    timeoutMs: 10_000,
    backoff: { initialMs: 10, maxMs: 50 },
    observer: {
      connected: bump('connected'),
      disconnected: bump('disconnected'),
      connectFailed: bump('connectFailed'),
      orphanResponse: bump('orphan'),
      timedOut: bump('timeout'),
      overflow: bump('overflow'),
      protocolError: bump('protocolError'),
    },
    ...options,
  });
  t.after(async () => {
    await pool.close();
    await enclave.dispose();
  });
  await waitFor(() => pool.state.ready === pool.state.size, 10_000, 'pool ready');
  return { enclave, pool, seen };
}

/** Attaches a handler at once, so a rejection that arrives before the test awaits it is not "unhandled". */
const caught = <T>(promise: Promise<T>): Promise<T> => {
  promise.catch(() => {});
  return promise;
};

const rejectsWith = async (promise: Promise<unknown>, code: ErrorCode): Promise<void> => {
  await assert.rejects(promise, (error: unknown) => error instanceof DipError && error.code === code);
};

test('pipelined requests answered out of order are each matched to their own response by id', async (t) => {
  const { enclave, pool } = await setup(t, { queueLimit: 1000 });
  // Answer in reverse arrival order: the last request of a burst is answered first.
  enclave.handler = async (request) => {
    const delay = 200 - (request.id % 50) * 4;
    await new Promise((resolve) => setTimeout(resolve, delay));
    return defaultHandler(request);
  };
  const ips = Array.from({ length: 300 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.1`);
  const results = await Promise.all(ips.map((ip, i) => pool.call('assign', { ip, request: new Uint8Array([i & 255, i >> 8]) })));
  results.forEach((result, i) => {
    assert.equal(result.ip, ips[i]);
    assert.deepEqual([...result.response], [i >> 8, i & 255]);
  });
  assert.equal(pool.state.inFlight, 0);
});

test('a response whose id has no pending request is dropped and counted', async (t) => {
  const { enclave, pool, seen } = await setup(t, { size: 1 });
  enclave.handler = (request) => {
    const stray = encodeFrame({ v: 1, id: request.id + 1000, ok: true, body: { status: 'ok', version: 'x', key_id: new Uint8Array(8), m_commit: new Uint8Array(32) } });
    const real = encodeFrame({ v: 1, id: request.id, ok: true, body: { status: 'ok', version: 'real', key_id: new Uint8Array(8), m_commit: new Uint8Array(32) } });
    return { raw: new Uint8Array([...stray, ...real]) };
  };
  const health = await pool.call('health', {});
  assert.equal(health.version, 'real');
  assert.equal(seen['orphan'], 1);
});

test('a request the enclave does not answer in time fails with enclave_timeout and its late answer is dropped', async (t) => {
  const { enclave, pool, seen } = await setup(t, { size: 1, timeoutMs: 150 });
  let release: () => void = () => {};
  enclave.handler = async (request) => {
    await new Promise<void>((resolve) => (release = resolve));
    return defaultHandler(request);
  };
  await rejectsWith(pool.call('health', {}), 'enclave_timeout');
  assert.equal(seen['timeout'], 1);
  assert.equal(pool.state.inFlight, 0);
  enclave.handler = defaultHandler;
  release();
  await waitFor(() => seen['orphan'] === 1, 5000, 'late answer counted');
  assert.equal((await pool.call('health', {})).status, 'ok');
});

test('a full queue refuses at once with enclave_unavailable, and a queued request can time out', async (t) => {
  const { enclave, pool, seen } = await setup(t, { size: 1, pipelineDepth: 1, queueLimit: 1, timeoutMs: 300 });
  enclave.handler = () => 'stall';
  const first = caught(pool.call('health', {}));
  const second = caught(pool.call('health', {}));
  assert.equal(pool.state.queued, 1);
  await rejectsWith(pool.call('health', {}), 'enclave_unavailable');
  assert.equal(seen['overflow'], 1);
  await rejectsWith(first, 'enclave_timeout');
  await rejectsWith(second, 'enclave_timeout');
  assert.equal(pool.state.queued, 0);
});

test('a queued request goes out when a slot frees', async (t) => {
  const { pool } = await setup(t, { size: 1, pipelineDepth: 1, queueLimit: 10 });
  const all = await Promise.all([1, 2, 3, 4].map((n) => pool.call('assign', { ip: `192.0.2.${n}`, request: new Uint8Array([n]) })));
  assert.deepEqual(all.map((r) => r.ip), ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4']);
});

test('enclave error codes pass through; an unknown code or a body that does not fit the op is internal', async (t) => {
  const { enclave, pool } = await setup(t, { size: 1 });
  enclave.handler = () => ({ error: 'subject_mismatch' });
  await rejectsWith(pool.call('refresh', { ip: '192.0.2.1', request: new Uint8Array([1]) }), 'subject_mismatch');
  enclave.handler = (request) => ({ raw: encodeFrame({ v: 1, id: request.id, ok: false, error: { code: 'made_up', message: 'm' } }) });
  await rejectsWith(pool.call('health', {}), 'internal');
  enclave.handler = () => ({ body: { status: 'ok' } });
  await rejectsWith(pool.call('health', {}), 'internal');
  enclave.handler = () => ({ body: { ip: 'not an ip', reservedUntil: 1, response: new Uint8Array([1]) } });
  await rejectsWith(pool.call('refresh', { ip: '192.0.2.1', request: new Uint8Array([1]) }), 'internal');
});

test('the enclave validates requests: a non-canonical ip comes back as bad_request', async (t) => {
  const { pool } = await setup(t, { size: 1 });
  await rejectsWith(pool.call('assign', { ip: '010.0.0.1', request: new Uint8Array([1]) }), 'bad_request');
});

test('a frame that is not a response closes the connection and fails what was in flight', async (t) => {
  const { enclave, pool, seen } = await setup(t, { size: 1 });
  enclave.handler = () => ({ raw: encodeFrame({ hello: 'world' }) });
  await rejectsWith(pool.call('health', {}), 'enclave_unavailable');
  assert.equal(seen['protocolError'], 1);
  enclave.handler = () => ({ raw: new Uint8Array([0, 0, 0, 0]) });
  await waitFor(() => pool.state.ready === 1, 10_000, 'reconnect');
  await rejectsWith(pool.call('health', {}), 'enclave_unavailable');
  assert.equal(seen['protocolError'], 2);
  enclave.handler = defaultHandler;
  await waitFor(() => pool.state.ready === 1, 10_000, 'reconnect');
  assert.equal((await pool.call('health', {})).status, 'ok');
});

test('losing the enclave fails in-flight and queued requests, refuses new ones, and the pool reconnects when it returns', async (t) => {
  const { enclave, pool, seen } = await setup(t, { size: 2, pipelineDepth: 1, queueLimit: 10 });
  enclave.handler = () => 'stall';
  const pending = [1, 2, 3].map(() => caught(pool.call('health', {})));
  await waitFor(() => enclave.requests === 2, 5000, 'two in flight');
  assert.equal(pool.state.queued, 1);
  await enclave.stop();
  for (const p of pending) await rejectsWith(p, 'enclave_unavailable');
  assert.equal(seen['disconnected'], 2);
  await rejectsWith(pool.call('health', {}), 'enclave_unavailable');
  await waitFor(() => (seen['connectFailed'] ?? 0) >= 2, 5000, 'failed reconnects');
  enclave.handler = defaultHandler;
  await enclave.start();
  await waitFor(() => pool.state.ready === 2, 10_000, 'reconnected');
  assert.equal((await pool.call('health', {})).status, 'ok');
});

test('a queued request survives the loss of one connection and goes out on another', async (t) => {
  const { enclave, pool } = await setup(t, { size: 2, pipelineDepth: 1, queueLimit: 10 });
  const held: Array<() => void> = [];
  enclave.handler = async (request) => {
    if (request.op === 'health') await new Promise<void>((resolve) => held.push(resolve));
    return defaultHandler(request);
  };
  const inFlight = [caught(pool.call('health', {})), caught(pool.call('health', {}))];
  const queued = pool.call('jwks', {});
  await waitFor(() => held.length === 2, 5000, 'both connections busy');
  const [first] = [...enclave.sockets];
  first!.destroy();
  await rejectsWith(Promise.race(inFlight), 'enclave_unavailable');
  const jwks = await queued;
  assert.ok(jwks.jwks.length > 0, 'the JWKS is not empty');
  held.forEach((release) => release());
  await Promise.allSettled(inFlight);
});

test('close fails queued and in-flight requests and refuses new ones', async (t) => {
  const { enclave, pool } = await setup(t, { size: 1, pipelineDepth: 1 });
  enclave.handler = () => 'stall';
  const inFlight = caught(pool.call('health', {}));
  const queued = caught(pool.call('health', {}));
  await pool.close();
  await rejectsWith(inFlight, 'enclave_unavailable');
  await rejectsWith(queued, 'enclave_unavailable');
  await rejectsWith(pool.call('health', {}), 'enclave_unavailable');
});

test('a connection attempt that never completes is abandoned after the connect timeout', async (t) => {
  // 192.0.2.0/24 (TEST-NET-1) is never routed: the connect hangs until the timeout.
  const seen = counts();
  const pool = new EnclavePool({
    connectOptions: { host: '192.0.2.1', port: 9 },
    size: 1,
    pipelineDepth: 1,
    queueLimit: 1,
    timeoutMs: 100,
    connectTimeoutMs: 50,
    backoff: { initialMs: 10_000, maxMs: 10_000 },
    observer: { connectFailed: () => void (seen['failed'] = (seen['failed'] ?? 0) + 1) },
  });
  t.after(() => pool.close());
  await waitFor(() => seen['failed'] === 1, 10_000, 'connect failure');
  assert.equal(pool.state.ready, 0);
});
