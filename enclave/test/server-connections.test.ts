// Issue #9: idle and half-sent connections must not hold the enclave's sockets forever, and a
// flood of them must not lock the parent out. Real Unix sockets, short configured timeouts;
// assertions are on order and outcome, never on how precisely a timer fired.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { encodeFrame } from '../../protocol/frame.js';
import type { ListenAddress } from '../io/address.js';
import { createLogger } from '../io/log.js';
import { startServer, type EnclaveServer, type RequestHandler, type ServerOptions } from '../io/server.js';
import { connectTo, FrameClient, lengthHeader, within } from '../../test/support/frame-client.js';

const dir = mkdtempSync(join(tmpdir(), 'dip-conn-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let socketCount = 0;
const freshSocket = (): ListenAddress => ({ kind: 'unix', path: join(dir, `c${socketCount++}.sock`) });

const health: RequestHandler = async () => ({ status: 'ok', version: 'test' });

interface Started {
  server: EnclaveServer;
  events: () => Array<Record<string, unknown>>;
}

async function start(options: Partial<Omit<ServerOptions, 'address' | 'log'>>): Promise<Started> {
  const lines: string[] = [];
  const server = await startServer({ address: freshSocket(), handle: health, log: createLogger((l) => lines.push(l)), ...options });
  after(() => server.close());
  return { server, events: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await sleep(20);
  assert.ok(condition(), `never happened: ${what}`);
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A raw socket and a flag that turns true when the server closes it. */
async function rawConnection(address: ListenAddress): Promise<{ socket: net.Socket; closed: () => boolean }> {
  const socket = await connectTo(address);
  socket.on('error', () => {});
  socket.on('data', () => {});
  let closed = false;
  socket.once('close', () => (closed = true));
  after(() => socket.destroy());
  return { socket, closed: () => closed };
}

const closings = (started: Started, cause: string) =>
  started.events().filter((e) => e['event'] === 'connection_closed' && e['cause'] === cause);

describe('enclave socket server: idle and partial-frame timeouts', () => {
  it('closes a connection idle for idleTimeoutMs, while one that keeps sending requests stays open', async () => {
    const started = await start({ idleTimeoutMs: 300 });
    const idle = await FrameClient.connect(started.server.address);
    const busy = await FrameClient.connect(started.server.address);
    after(() => busy.close());
    assert.equal((await idle.request('health')).ok, true, 'the idle connection was served once');
    // Requests every 50 ms span far more than one idle period of the other connection.
    let answered = 0;
    while (idle.isOpen && answered < 200) {
      assert.equal((await busy.request('health')).ok, true, 'the busy connection is served');
      answered++;
      await sleep(50);
    }
    await within(idle.closed, 10_000, 'the idle connection is closed');
    assert.ok(busy.isOpen, 'a connection that keeps sending requests is not idle');
    assert.ok(answered > 0, 'the busy connection was used while the other idled');
    const [event] = closings(started, 'idle_timeout');
    assert.ok(event !== undefined, 'the closing is logged as connection_closed idle_timeout');
    assert.deepEqual(Object.keys(event).sort(), ['cause', 'connections', 'event', 'time'], 'the event carries no address');
  });

  it('never closes a connection with a request in flight as idle, and closes it once answered and idle', async () => {
    const gate = deferred();
    const reached = deferred();
    const started = await start({
      idleTimeoutMs: 200,
      handle: async () => {
        reached.resolve();
        await gate.promise;
        return { status: 'ok', version: 'test' };
      },
    });
    const waiting = await FrameClient.connect(started.server.address);
    const pending = waiting.request('health', {}, 5);
    await reached.promise;
    // A connection opened after the request started, left idle, is closed first.
    const witness = await rawConnection(started.server.address);
    await waitFor(witness.closed, 'the later idle connection is closed');
    assert.ok(waiting.isOpen, 'the connection waiting for its response is still open');
    gate.resolve();
    assert.equal((await pending).id, 5, 'the in-flight request is answered');
    await within(waiting.closed, 10_000, 'the answered connection is then closed as idle');
    assert.equal(closings(started, 'idle_timeout').length, 2, 'both closings are logged');
  });

  it('closes a connection whose frame stops arriving, but serves a frame sent in two parts', async () => {
    const started = await start({ idleTimeoutMs: 60_000, frameTimeoutMs: 300 });
    const stalled = await rawConnection(started.server.address);
    stalled.socket.write(lengthHeader(100).subarray(0, 2));
    const split = await FrameClient.connect(started.server.address);
    after(() => split.close());
    const frame = encodeFrame({ v: 1, id: 9, op: 'health', body: {} });
    const answered = new Promise<void>((resolve) => split.socket.once('data', () => resolve()));
    split.sendRaw(frame.subarray(0, 6));
    await sleep(20);
    split.sendRaw(frame.subarray(6));
    await within(answered, 10_000, 'the split frame is answered');
    await waitFor(stalled.closed, 'the stalled connection is closed');
    assert.ok(split.isOpen, 'the connection that completed its frame is open');
    assert.equal(closings(started, 'frame_timeout').length, 1, 'logged as connection_closed frame_timeout');
    assert.equal(closings(started, 'idle_timeout').length, 0, 'not mistaken for idle');
  });

  it('counts the frame timeout from its first byte: trickling one byte at a time does not keep it open', async () => {
    const started = await start({ idleTimeoutMs: 60_000, frameTimeoutMs: 300 });
    const trickler = await rawConnection(started.server.address);
    const frame = encodeFrame({ v: 1, id: 1, op: 'health', body: { pad: 'x'.repeat(200) } });
    // One byte per 20 ms would need over 4 s for this frame, far beyond the 300 ms allowed.
    let sent = 0;
    while (!trickler.closed() && sent < frame.length - 1) {
      trickler.socket.write(frame.subarray(sent, sent + 1));
      sent++;
      await sleep(20);
    }
    assert.ok(trickler.closed(), 'the trickling connection is closed before its frame is complete');
    assert.equal(closings(started, 'frame_timeout').length, 1, 'logged as connection_closed frame_timeout');
  });
});

describe('enclave socket server: connection cap', () => {
  it('under a flood of idle and half-sent connections, the parent still connects and is served', async () => {
    const cap = 16;
    // Timeouts far beyond the test: only the cap keeps the flood in check here.
    const started = await start({ maxConnections: cap, idleTimeoutMs: 600_000, frameTimeoutMs: 600_000 });
    const flood: Array<{ socket: net.Socket; closed: () => boolean }> = [];
    for (let i = 0; i < 4 * cap; i++) {
      const connection = await rawConnection(started.server.address);
      if (i % 2 === 1) connection.socket.write(lengthHeader(1000).subarray(0, 3));
      flood.push(connection);
    }
    await waitFor(() => flood.filter((c) => !c.closed()).length === cap, 'the flood is cut to the cap');
    assert.ok(started.server.connections <= cap, `at most ${cap} connections are held`);
    const parent = await FrameClient.connect(started.server.address);
    after(() => parent.close());
    assert.equal((await parent.request('health')).ok, true, 'the parent is served during the flood');
    assert.ok(started.server.connections <= cap, 'the cap holds with the parent in');
    assert.equal(closings(started, 'evicted').length, 3 * cap + 1, 'every eviction is logged');
    // The earliest flood connections were the longest idle: they went first. (A half-sent
    // one's bytes may land just after the next accept, so neighbours can swap places.)
    assert.ok(flood.slice(0, 2 * cap).every((c) => c.closed()), 'the oldest were evicted');
  });

  it('evicts the longest-idle connection, not the most recent one nor one that was just used', async () => {
    const started = await start({ maxConnections: 3, idleTimeoutMs: 600_000 });
    const a = await FrameClient.connect(started.server.address);
    await waitFor(() => started.server.connections === 1, 'a is accepted');
    const b = await FrameClient.connect(started.server.address);
    await waitFor(() => started.server.connections === 2, 'b is accepted');
    const c = await FrameClient.connect(started.server.address);
    await waitFor(() => started.server.connections === 3, 'c is accepted');
    assert.equal((await a.request('health')).ok, true, 'a was used last');
    await sleep(20);
    const d = await FrameClient.connect(started.server.address);
    for (const client of [a, c, d]) after(() => client.close());
    await within(b.closed, 10_000, 'b, the longest idle, is evicted');
    assert.ok(a.isOpen && c.isOpen, 'the recently used and the later connections stay');
    assert.equal((await d.request('health')).ok, true, 'the newcomer is served');
  });

  it('never evicts a connection with a request in flight; when all are busy the newcomer is refused', async () => {
    const gate = deferred();
    let reached = 0;
    const started = await start({
      maxConnections: 2,
      handle: async () => {
        reached++;
        await gate.promise;
        return { status: 'ok', version: 'test' };
      },
    });
    const first = await FrameClient.connect(started.server.address);
    const second = await FrameClient.connect(started.server.address);
    const answers = [first.request('health', {}, 1), second.request('health', {}, 2)];
    await waitFor(() => reached === 2, 'both requests are in flight');
    const newcomer = await rawConnection(started.server.address);
    await waitFor(newcomer.closed, 'the newcomer is refused');
    assert.ok(first.isOpen && second.isOpen, 'busy connections are never evicted');
    assert.equal(closings(started, 'over_capacity').length, 1, 'logged as connection_closed over_capacity');
    gate.resolve();
    assert.deepEqual((await Promise.all(answers)).map((r) => r.id), [1, 2], 'both in-flight requests are answered');
    first.close();
    second.close();
  });

  it('evicts a peer that stopped reading its responses before a connection used more recently', async () => {
    const started = await start({ maxConnections: 2, handle: async () => ({ document: new Uint8Array(60_000) }) });
    const stuck = await FrameClient.connect(started.server.address);
    stuck.socket.pause();
    // 40 × 60 kB of answers exceed the kernel's buffers: some stay unsent in the server.
    for (let i = 0; i < 40; i++) void stuck.request('attest', { nonce: new Uint8Array(16) }).catch(() => {});
    const other = await FrameClient.connect(started.server.address);
    after(() => other.close());
    await sleep(200);
    assert.equal((await other.request('health')).ok, true, 'the other connection was used after the stuck one stalled');
    const newcomer = await FrameClient.connect(started.server.address);
    after(() => newcomer.close());
    await waitFor(() => closings(started, 'evicted').length === 1, 'one connection is evicted');
    // Paused, the stuck peer cannot see its connection close until it reads again.
    stuck.socket.resume();
    await within(stuck.closed, 10_000, 'the stuck connection was the one evicted');
    assert.ok(other.isOpen, 'the recently used connection stays');
    assert.equal((await newcomer.request('health')).ok, true, 'the newcomer is served');
  });

  it('refuses limits that are not integers ≥ 1', async () => {
    for (const bad of [{ idleTimeoutMs: 0 }, { frameTimeoutMs: 1.5 }, { maxConnections: -1 }]) {
      await assert.rejects(
        startServer({ address: freshSocket(), handle: health, log: createLogger(() => {}), ...bad }),
        TypeError,
        JSON.stringify(bad),
      );
    }
  });
});
