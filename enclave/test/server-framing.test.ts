// The framing loop of SPEC §5 against a fake handler: multiplexing, bad frames, error
// mapping, backpressure and shutdown. The real service is exercised in main-*.test.ts.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isCborMap } from '../../protocol/cbor.js';
import { DipError, ERROR_MESSAGES } from '../../protocol/errors.js';
import { MAX_FRAME_BYTES } from '../../protocol/limits.js';
import { encodeFrame } from '../../protocol/frame.js';
import type { EnclaveRequest } from '../../protocol/messages.js';
import type { ListenAddress } from '../io/address.js';
import { createLogger } from '../io/log.js';
import { startServer, type EnclaveServer, type RequestHandler } from '../io/server.js';
import { concatBytes, errorOf, exchangeRaw, FrameClient, lengthHeader, within } from '../../test/support/frame-client.js';

const dir = mkdtempSync(join(tmpdir(), 'dip-server-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let socketCount = 0;
const freshSocket = (): ListenAddress => ({ kind: 'unix', path: join(dir, `s${socketCount++}.sock`) });

interface Started {
  server: EnclaveServer;
  logLines: string[];
}

/** Starts a server whose health answers at once and whose attest echoes the nonce as the document. */
async function start(handle?: RequestHandler, options: { maxInFlight?: number; address?: ListenAddress } = {}): Promise<Started> {
  const logLines: string[] = [];
  const server = await startServer({
    address: options.address ?? freshSocket(),
    handle:
      handle ??
      (async (request) => {
        if (request.op === 'attest') return { document: request.body.nonce };
        return { status: 'ok', version: 'test' };
      }),
    log: createLogger((line) => logLines.push(line)),
    ...(options.maxInFlight === undefined ? {} : { maxInFlightPerConnection: options.maxInFlight }),
  });
  after(() => server.close());
  return { server, logLines };
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 600 && !condition(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(condition(), `never happened: ${what}`);
}

async function healthStillAnswers(server: EnclaveServer): Promise<void> {
  const client = await FrameClient.connect(server.address);
  const response = await client.request('health');
  client.close();
  assert.equal(response.ok, true);
}

describe('enclave socket server', () => {
  it('answers many in-flight requests on one connection out of order, matched by id', async () => {
    const n = 40;
    const held: Array<{ request: EnclaveRequest; release: () => void }> = [];
    const allArrived = deferred<void>();
    const { server } = await start(async (request) => {
      const gate = deferred<void>();
      held.push({ request, release: () => gate.resolve() });
      if (held.length === n) allArrived.resolve();
      await gate.promise;
      assert.equal(request.op, 'attest');
      return { document: request.body.nonce };
    });
    const client = await FrameClient.connect(server.address);
    const responses = Array.from({ length: n }, (_, i) => client.request('attest', { nonce: new Uint8Array(16).fill(i) }, 1000 + i));
    await within(allArrived.promise, 30_000, 'all requests reach the handler');
    for (const h of [...held].reverse()) h.release();
    const answered = await Promise.all(responses);
    client.close();

    for (const [i, response] of answered.entries()) {
      assert.equal(response.id, 1000 + i);
      assert.ok(response.ok, 'the request is answered ok');
      assert.deepEqual(response.body.get('document'), new Uint8Array(16).fill(i));
    }
    const order = client.frames.map((f) => (isCborMap(f) ? f.get('id') : null));
    assert.deepEqual(order, Array.from({ length: n }, (_, i) => 1000 + n - 1 - i), 'responses come in completion order');
  });

  for (const [name, bytes, end] of [
    ['an empty frame (length 0)', lengthHeader(0), false],
    ['a frame longer than 65536 bytes (length 65537)', concatBytes(lengthHeader(MAX_FRAME_BYTES + 1), new Uint8Array(100)), false],
    ['a frame truncated by the end of the stream', concatBytes(lengthHeader(10), new Uint8Array([0xa0])), true],
    ['a length header truncated by the end of the stream', new Uint8Array([0, 0]), true],
    ['a frame that is not CBOR', concatBytes(lengthHeader(2), new Uint8Array([0xff, 0xff])), false],
    ['a frame with trailing bytes after its CBOR item', concatBytes(lengthHeader(2), new Uint8Array([0xa0, 0xa0])), false],
    ['a frame whose item is not a map', encodeFrame([1, 2, 3]), false],
    // CBOR null once read as "need more bytes", stalling the request behind it in the same write.
    ['a frame holding CBOR null, followed by a request', concatBytes(lengthHeader(1), new Uint8Array([0xf6]), encodeFrame({ v: 1, id: 1, op: 'health', body: {} })), false],
    ['a request whose id is not an unsigned integer', encodeFrame({ v: 1, id: -1, op: 'health', body: {} }), false],
  ] as const) {
    it(`answers ${name} with one bad_frame error (id 0), closes the connection, and keeps serving others`, async () => {
      const { server, logLines } = await start();
      const other = await FrameClient.connect(server.address);
      const result = await exchangeRaw(server.address, bytes, { end });
      assert.equal(result.closedByServer, true, 'the server closed the connection');
      assert.equal(result.frames.length, 1);
      assert.deepEqual(errorOf(result.frames[0]), { id: 0, code: 'bad_frame', message: ERROR_MESSAGES.bad_frame });
      // A connection opened before and one opened after both still work.
      assert.equal((await other.request('health')).ok, true);
      other.close();
      await healthStillAnswers(server);
      assert.ok(logLines.some((l) => JSON.parse(l).event === 'connection_rejected'), 'connection_rejected is logged');
    });
  }

  it('ignores anything a peer sends after its bad frame and answers none of it', async () => {
    const { server } = await start();
    const bytes = concatBytes(lengthHeader(0), encodeFrame({ v: 1, id: 7, op: 'health', body: {} }));
    const result = await exchangeRaw(server.address, bytes);
    assert.equal(result.frames.length, 1);
    assert.equal(errorOf(result.frames[0])?.code, 'bad_frame');
  });

  it('answers an unknown op with unknown_op and the request id, and keeps the connection', async () => {
    const { server } = await start();
    const client = await FrameClient.connect(server.address);
    const response = await client.request('mint', {}, 42);
    assert.deepEqual(response, { id: 42, ok: false, error: { code: 'unknown_op', message: ERROR_MESSAGES.unknown_op } });
    assert.equal((await client.request('health')).ok, true);
    assert.ok(client.isOpen, 'the connection stays open');
    client.close();
  });

  for (const [length, code] of [
    [15, 'bad_request'],
    [16, null],
    [64, null],
    [65, 'bad_request'],
  ] as const) {
    it(`${code === null ? 'accepts' : 'rejects with bad_request'} an attest nonce of ${length} bytes`, async () => {
      const { server } = await start();
      const client = await FrameClient.connect(server.address);
      const response = await client.request('attest', { nonce: new Uint8Array(length) }, 9);
      client.close();
      assert.equal(response.id, 9);
      if (code === null) assert.equal(response.ok, true);
      else assert.equal(!response.ok && response.error.code, code);
    });
  }

  it('answers a request with a bad envelope (wrong version) with bad_request and its id', async () => {
    const { server } = await start();
    const client = await FrameClient.connect(server.address);
    client.sendItem({ v: 2, id: 5, op: 'health', body: {} });
    await waitFor(() => client.frames.length === 1, 'an answer');
    assert.deepEqual(errorOf(client.frames[0]), { id: 5, code: 'bad_request', message: ERROR_MESSAGES.bad_request });
    assert.equal((await client.request('health')).ok, true);
    client.close();
  });

  it('answers a handler that throws a plain Error with internal and a fixed message, never its text', async () => {
    const secret = 'sub-8f1c2 10.9.8.7';
    const { server, logLines } = await start(async () => {
      throw new Error(secret);
    });
    const client = await FrameClient.connect(server.address);
    const response = await client.request('health', {}, 3);
    client.close();
    assert.deepEqual(response, { id: 3, ok: false, error: { code: 'internal', message: ERROR_MESSAGES.internal } });
    const failed = logLines.map((l) => JSON.parse(l)).find((e) => e.event === 'request_failed');
    assert.equal(failed?.code, 'internal');
    assert.equal(failed?.op, 'health');
    assert.ok(!logLines.join('').includes('8f1c2'), 'the request content is not logged');
  });

  it('answers a handler that throws synchronously with internal', async () => {
    const { server } = await start((() => {
      throw new TypeError('boom');
    }) as unknown as RequestHandler);
    const client = await FrameClient.connect(server.address);
    const response = await client.request('health');
    client.close();
    assert.equal(!response.ok && response.error.code, 'internal');
  });

  it("keeps a DipError's code", async () => {
    const { server } = await start(async () => {
      throw new DipError('srt_expired');
    });
    const client = await FrameClient.connect(server.address);
    const response = await client.request('health');
    client.close();
    assert.equal(!response.ok && response.error.code, 'srt_expired');
  });

  it('answers internal when the ok body cannot be framed (over 65536 bytes)', async () => {
    const { server } = await start(async () => ({ document: new Uint8Array(MAX_FRAME_BYTES + 1) }));
    const client = await FrameClient.connect(server.address);
    const response = await client.request('attest', { nonce: new Uint8Array(16) });
    client.close();
    assert.equal(!response.ok && response.error.code, 'internal');
  });

  it('stops reading a connection at the in-flight cap and resumes as requests complete', async () => {
    const cap = 4;
    const gates: Array<() => void> = [];
    let calls = 0;
    const { server, logLines } = await start(
      async () => {
        calls++;
        const gate = deferred<void>();
        gates.push(() => gate.resolve());
        await gate.promise;
        return { status: 'ok', version: 'test' };
      },
      { maxInFlight: cap },
    );
    const client = await FrameClient.connect(server.address);
    const responses = Array.from({ length: 20 }, () => client.request('health'));
    await waitFor(() => calls === cap, 'the cap is reached');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(calls, cap, 'no request beyond the cap reaches the handler');
    assert.ok(logLines.some((l) => JSON.parse(l).event === 'backpressure'), 'backpressure is logged');
    // Release one at a time until all are answered.
    let released = 0;
    while (released < 20) {
      await waitFor(() => gates.length > released, 'the next request reaches the handler');
      gates[released++]!();
    }
    const answered = await Promise.all(responses);
    client.close();
    assert.ok(answered.every((r) => r.ok), 'every request is answered ok');
    assert.equal(calls, 20);
  });

  it('stops reading requests from a peer that does not read its responses', async () => {
    let calls = 0;
    const { server } = await start(async () => {
      calls++;
      return { document: new Uint8Array(60_000) };
    });
    const client = await FrameClient.connect(server.address);
    client.socket.pause();
    // Sent in small batches, so that later requests arrive after answers have piled up.
    const n = 150;
    const responses: Array<Promise<unknown>> = [];
    for (let batch = 0; batch < n / 10; batch++) {
      for (let i = 0; i < 10; i++) responses.push(client.request('attest', { nonce: new Uint8Array(16) }));
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 1000));
    // 150 × 60 kB = 9 MB of answers; the server holds about 1 MiB plus the kernel's buffers.
    assert.ok(calls < n, `the server kept reading (${calls} of ${n} requests handled)`);
    client.socket.resume();
    const answered = await Promise.all(responses);
    client.close();
    assert.equal(answered.length, n);
    assert.equal(calls, n);
  });

  it('survives a peer that resets its connection while a request is in flight', async () => {
    const gate = deferred<void>();
    const reached = deferred<void>();
    const { server } = await start(async (request) => {
      if (request.op === 'attest') {
        reached.resolve();
        await gate.promise;
      }
      return { document: new Uint8Array(1) };
    }, { address: { kind: 'tcp', host: '127.0.0.1', port: 0 } });
    const client = await FrameClient.connect(server.address);
    void client.request('attest', { nonce: new Uint8Array(16) }).catch(() => {});
    await reached.promise;
    client.socket.resetAndDestroy();
    await client.closed;
    gate.resolve();
    await healthStillAnswers(server);
  });

  it('answers in-flight requests of a peer that ended its side, then closes', async () => {
    const { server } = await start();
    const result = await exchangeRaw(
      server.address,
      concatBytes(encodeFrame({ v: 1, id: 1, op: 'health', body: {} }), encodeFrame({ v: 1, id: 2, op: 'health', body: {} })),
      { end: true },
    );
    assert.equal(result.closedByServer, true);
    assert.deepEqual(
      result.frames.map((f) => (isCborMap(f) ? [f.get('id'), f.get('ok')] : null)),
      [
        [1, true],
        [2, true],
      ],
    );
  });

  it('close() lets in-flight requests finish, then refuses new connections', async () => {
    const gate = deferred<void>();
    const reached = deferred<void>();
    const { server } = await start(async () => {
      reached.resolve();
      await gate.promise;
      return { status: 'ok', version: 'test' };
    });
    const client = await FrameClient.connect(server.address);
    const pending = client.request('health', {}, 77);
    await reached.promise;
    const closed = server.close();
    gate.resolve();
    const response = await pending;
    assert.equal(response.id, 77);
    assert.equal(response.ok, true);
    await within(closed, 30_000, 'server close');
    await client.closed;
    await assert.rejects(FrameClient.connect(server.address));
  });

  it('close() cuts connections whose requests outlive the grace time', async () => {
    const logLines: string[] = [];
    const server = await startServer({
      address: freshSocket(),
      handle: () => new Promise(() => {}),
      log: createLogger((l) => logLines.push(l)),
      closeGraceMs: 200,
    });
    const client = await FrameClient.connect(server.address);
    void client.request('health').catch(() => {});
    await waitFor(() => server.connections === 1, 'the connection is accepted');
    await within(server.close(), 30_000, 'server close');
    await within(client.closed, 30_000, 'client closed');
    await waitFor(() => server.connections === 0, 'the server forgets the connection');
  });

  it('creates its Unix socket readable and writable by the owner only', async () => {
    const { server } = await start();
    assert.equal(server.address.kind, 'unix');
    if (server.address.kind !== 'unix') return;
    assert.equal(statSync(server.address.path).mode & 0o777, 0o600);
  });

  it('replaces a stale socket file left by an earlier run', async () => {
    const address = freshSocket();
    if (address.kind !== 'unix') return;
    // A socket file nobody listens on any more: its server was killed and could not unlink it.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(address.path)}, () => console.log('up'))`]);
    await new Promise((r) => child.stdout.once('data', r));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.ok(statSync(address.path).isSocket(), 'a socket is at the listen path');
    const { server } = await start(undefined, { address });
    await healthStillAnswers(server);
  });

  it('refuses a socket path where another server is listening, or where a regular file is', async () => {
    const { server } = await start();
    await assert.rejects(start(undefined, { address: server.address }), /another process is listening/);
    const file = join(dir, 'not-a-socket');
    writeFileSync(file, 'keep me');
    await assert.rejects(start(undefined, { address: { kind: 'unix', path: file } }), /not a socket/);
    await assert.rejects(start(undefined, { address: { kind: 'unix', path: join(file, 'below-a-file.sock') } }), /ENOTDIR/);
  });

  it('listens on TCP and reports the port chosen for port 0', async () => {
    const { server } = await start(undefined, { address: { kind: 'tcp', host: '127.0.0.1', port: 0 } });
    assert.equal(server.address.kind, 'tcp');
    assert.ok(server.address.kind === 'tcp' && server.address.port > 0, 'listening on a TCP port');
    await healthStillAnswers(server);
  });

  it('rejects a busy TCP port and a bad in-flight cap', async () => {
    const { server } = await start(undefined, { address: { kind: 'tcp', host: '127.0.0.1', port: 0 } });
    await assert.rejects(start(undefined, { address: server.address }), /EADDRINUSE/);
    await assert.rejects(start(undefined, { maxInFlight: 0 }), TypeError);
  });
});
