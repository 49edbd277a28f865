// The pool's view of the enclave is truthful (issue #9): with `probe`, a connection counts as
// up only once the enclave answered, so a vsock bridge that accepts with no enclave behind it is
// reported as such; and a request too large for one frame (SPEC §5) is 413, not 500.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeCbor } from '../../protocol/cbor.js';
import { DipError } from '../../protocol/errors.js';
import { MAX_FRAME_BYTES } from '../../protocol/limits.js';
import { encodeRequest } from '../../protocol/messages.js';
import { EnclavePool, type PoolOptions } from '../pool.js';
import { FakeEnclave } from './fake-enclave.js';
import { waitFor } from './helpers.js';

type T = { after: (fn: () => Promise<void> | void) => void };

interface Seen {
  connected: number;
  failed: boolean[];
}

function pool(t: T, connectOptions: PoolOptions['connectOptions'], options: Partial<PoolOptions> = {}): { pool: EnclavePool; seen: Seen } {
  const seen: Seen = { connected: 0, failed: [] };
  const p = new EnclavePool({
    connectOptions,
    size: 1,
    pipelineDepth: 4,
    queueLimit: 4,
    timeoutMs: 5000,
    backoff: { initialMs: 10, maxMs: 20 },
    connectTimeoutMs: 300,
    observer: { connected: () => void seen.connected++, connectFailed: (_c, reached) => void seen.failed.push(reached) },
    ...options,
  });
  t.after(() => p.close());
  return { pool: p, seen };
}

/** Like socat with no enclave behind it: accepts the local connection, then closes or stays silent. */
async function bridgeWithoutEnclave(t: T, behaviour: 'close' | 'silent'): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'dip-bridge-'));
  const path = join(dir, 'enclave.sock');
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    if (behaviour === 'close') socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });
  return path;
}

test('with probe, a bridge that accepts and hangs up is never "connected": it is reported reached but not answering', async (t) => {
  const { pool: p, seen } = pool(t, { path: await bridgeWithoutEnclave(t, 'close') }, { probe: true });
  await waitFor(() => seen.failed.length >= 3, 10_000, 'three failed attempts');
  assert.equal(seen.connected, 0, 'never connected');
  assert.equal(p.state.ready, 0, 'no ready connection');
  assert.ok(seen.failed.every((reached) => reached), 'each attempt reached the bridge and got no answer');
  await assert.rejects(p.call('health', {}), (e: unknown) => e instanceof DipError && e.code === 'enclave_unavailable', 'requests fail at once');
});

test('with probe, a bridge that accepts and stays silent is given up after the connect timeout', async (t) => {
  const { pool: p, seen } = pool(t, { path: await bridgeWithoutEnclave(t, 'silent') }, { probe: true });
  await waitFor(() => seen.failed.length >= 1, 10_000, 'one failed attempt');
  assert.deepEqual(seen.failed.slice(0, 1), [true], 'reached, not answering');
  assert.equal(p.state.ready, 0, 'no ready connection');
});

test('with probe, a connection is ready once the enclave answers health, even with an error code', async (t) => {
  const enclave = await new FakeEnclave().start();
  t.after(() => enclave.dispose());
  enclave.handler = (request) => (request.op === 'health' ? { error: 'internal' } : { body: { jwks: new Uint8Array([1]) } });
  const { pool: p, seen } = pool(t, { path: enclave.path }, { probe: true });
  await waitFor(() => p.state.ready === 1, 10_000, 'ready');
  assert.equal(seen.connected, 1, 'connected once');
  assert.equal(enclave.requests, 1, 'the probe is the only request so far');
  assert.deepEqual(await p.call('jwks', {}), { jwks: new Uint8Array([1]) }, 'requests flow after the probe');
});

test('a connection that cannot open at all is reported as not reached', async (t) => {
  const { seen } = pool(t, { path: join(tmpdir(), 'dip-no-such-dir', 'enclave.sock') }, { probe: true });
  await waitFor(() => seen.failed.length >= 1, 10_000, 'one failed attempt');
  assert.equal(seen.failed[0], false, 'not reached');
});

test('a request whose frame would be 65537 bytes is refused payload_too_large; 65536 bytes is sent', async (t) => {
  const enclave = await new FakeEnclave().start();
  t.after(() => enclave.dispose());
  enclave.handler = () => ({ body: { ip: '192.0.2.1', reservedUntil: 1, response: new Uint8Array([1]) } });
  const { pool: p } = pool(t, { path: enclave.path });
  await waitFor(() => p.state.ready === 1, 10_000, 'ready');
  const ip = '192.0.2.1';
  // Ids 1 and 2 (the first two on this connection) both take one CBOR byte.
  const size = (n: number): number => encodeCbor(encodeRequest({ id: 1, op: 'assign', body: { ip, request: new Uint8Array(n) } })).length;
  const fits = MAX_FRAME_BYTES - (size(1000) - 1000);
  assert.equal(size(fits), MAX_FRAME_BYTES, 'the test request is exactly at the frame limit');
  assert.equal((await p.call('assign', { ip, request: new Uint8Array(fits) })).ip, ip, 'a frame of exactly 65536 bytes reaches the enclave');
  await assert.rejects(p.call('assign', { ip, request: new Uint8Array(fits + 1) }), (e: unknown) => e instanceof DipError && e.code === 'payload_too_large', 'one byte more is 413');
  assert.equal(enclave.requests, 1, 'the oversized request never reached the enclave');
  // A caller that bypassed the server's checks with text that is not well-formed Unicode.
  await assert.rejects(p.call('assign', { ip: '\ud800', request: new Uint8Array(1) }), (e: unknown) => e instanceof DipError && e.code === 'bad_request', 'no frame for a lone surrogate');
  assert.equal(enclave.requests, 1, 'and it never reached the enclave');
  assert.equal(p.state.ready, 1, 'the connection stays up');
});
