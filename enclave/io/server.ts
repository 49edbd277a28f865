// The enclave's socket server: the framing loop of SPEC §5 on a Unix or TCP socket (VSOCK
// reaches it through a bridge). Per connection: frames → parseRequest → handler → response
// frames, many requests in flight, answered in any order and matched by id. Bad input closes
// at most the one connection that sent it; nothing a peer sends can stop the process, and no
// number of idle or half-sent connections can lock the parent out (issue #9).

import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { CborValue } from '../../protocol/cbor.js';
import { toDipError, type ErrorCode } from '../../protocol/errors.js';
import { encodeFrame, FrameReader } from '../../protocol/frame.js';
import { encodeErrorResponse, encodeOkResponse, parseRequest, RequestError, type EnclaveRequest, type Op } from '../../protocol/messages.js';
import type { ListenAddress } from './address.js';
import type { Logger } from './log.js';

/** Answers one request with its ok body, or throws (a DipError keeps its code; anything else is `internal`). */
export type RequestHandler = (request: EnclaveRequest) => Promise<Record<string, unknown>>;

export interface ServerOptions {
  address: ListenAddress;
  handle: RequestHandler;
  log: Logger;
  /** Requests one connection may have in flight before the server stops reading it. */
  maxInFlightPerConnection?: number;
  /** How long close() waits for in-flight requests before cutting connections. */
  closeGraceMs?: number;
  /** A connection with nothing in flight, nothing unsent and no partial frame is closed after this long. */
  idleTimeoutMs?: number;
  /** A frame must arrive whole within this long of its first byte, or the connection is closed. */
  frameTimeoutMs?: number;
  /** Open connections at most; a new one past this evicts the longest-idle one. */
  maxConnections?: number;
}

export interface EnclaveServer {
  /** The address actually bound (a TCP port 0 becomes the chosen port). */
  readonly address: ListenAddress;
  readonly connections: number;
  /** Stops accepting, lets in-flight requests finish (within the grace time), closes everything. */
  close(): Promise<void>;
}

// The parent multiplexes many requests on few connections; 256 in flight is far above what
// one connection needs, and bounds what a single peer can make us hold (256 × one frame).
export const DEFAULT_MAX_IN_FLIGHT = 256;
// Responses a peer does not read pile up in the socket's write buffer; past this we stop
// reading its requests until the buffer drains.
const MAX_UNSENT_BYTES = 1024 * 1024;
const DEFAULT_CLOSE_GRACE_MS = 5000;
// After a bad frame we have sent the error and closed our side; a peer that never closes its
// side is cut after this long so that it cannot hold a socket forever.
const REJECTED_LINGER_MS = 2000;
// The parent pools a handful of connections and keeps them open. An idle one is closed after
// 10 min (the parent's pool simply reconnects); a frame's bytes come from the same host, so a
// frame still incomplete after 10 s is a peer holding a socket, not a slow link.
export const DEFAULT_IDLE_TIMEOUT_MS = 600_000;
export const DEFAULT_FRAME_TIMEOUT_MS = 10_000;
// Well below the usual limit of 1024 file descriptors, so that accepting never fails with
// EMFILE: at the cap a new connection evicts the longest-idle one, and the parent always gets in.
export const DEFAULT_MAX_CONNECTIONS = 512;

interface ConnectionLimits {
  readonly maxInFlight: number;
  readonly idleTimeoutMs: number;
  readonly frameTimeoutMs: number;
}

class Connection {
  private readonly reader = new FrameReader();
  private inFlight = 0;
  private peerEnded = false;
  private stopping = false;
  private done = false;
  private paused = false;
  /** performance.now() of the last byte received or response flushed. */
  private lastActivity = performance.now();
  private timer: NodeJS.Timeout | undefined;
  private timerKind: 'idle' | 'frame' | null = null;
  /** A frame was completed since the frame timer was armed: the next partial frame starts afresh. */
  private frameCompleted = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly handle: RequestHandler,
    private readonly log: Logger,
    private readonly limits: ConnectionLimits,
    private readonly count: () => number,
  ) {
    // Socket errors (ECONNRESET, EPIPE, …) end this connection only; 'close' follows.
    socket.on('error', () => {});
    socket.on('close', () => this.clearTimer());
    socket.on('data', (chunk: Buffer) => {
      if (this.done) return;
      this.lastActivity = performance.now();
      this.reader.push(chunk);
      this.pump();
    });
    socket.on('end', () => {
      this.peerEnded = true;
      this.pump();
    });
    socket.on('drain', () => this.pump());
    // A peer that connects and sends nothing is idle from the start.
    this.schedule();
  }

  /** Server shutdown: read nothing more, finish what is in flight, then close. */
  stop(): void {
    this.stopping = true;
    this.pump();
  }

  destroy(): void {
    this.done = true;
    this.clearTimer();
    this.socket.destroy();
  }

  /**
   * How long since this connection last moved a byte either way, for eviction; null while
   * requests are in flight (never evicted then). Unsent responses do not protect a connection:
   * a peer that stopped reading them could otherwise hold its socket for good. A connection
   * that is already closing ranks first.
   */
  idleFor(now: number): number | null {
    if (this.done) return Infinity;
    if (this.inFlight > 0) return null;
    return now - this.lastActivity;
  }

  /** Closed to make room for a new connection (the connection cap is reached). */
  evict(): void {
    this.closeFor('evicted');
  }

  private closeFor(cause: 'idle_timeout' | 'frame_timeout' | 'evicted'): void {
    if (this.done) return this.destroy();
    this.destroy();
    this.log.event('connection_closed', { cause, connections: this.count() });
  }

  private clearTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerKind = null;
  }

  private arm(kind: 'idle' | 'frame', ms: number): void {
    this.clearTimer();
    this.timerKind = kind;
    this.timer = setTimeout(() => this.expire(kind), ms);
    this.timer.unref();
  }

  /**
   * After every change: a connection serving something has no timer; one in the middle of a
   * frame must finish it within frameTimeoutMs of its first byte; any other is idle.
   */
  private schedule(): void {
    if (this.done || this.stopping || this.inFlight > 0 || this.socket.writableLength > 0 || this.paused) {
      return this.clearTimer();
    }
    if (this.reader.pending > 0) {
      // Not re-armed on every chunk: a peer trickling one byte at a time must not hold it forever.
      if (this.timerKind !== 'frame' || this.frameCompleted) this.arm('frame', this.limits.frameTimeoutMs);
      this.frameCompleted = false;
      return;
    }
    // The hot path (after every response): refresh the idle timer rather than make a new one.
    if (this.timerKind === 'idle') this.timer!.refresh();
    else this.arm('idle', this.limits.idleTimeoutMs);
  }

  private expire(kind: 'idle' | 'frame'): void {
    this.timer = undefined;
    this.timerKind = null;
    this.closeFor(kind === 'idle' ? 'idle_timeout' : 'frame_timeout');
  }

  private mustWait(): boolean {
    return this.inFlight >= this.limits.maxInFlight || this.socket.writableLength > MAX_UNSENT_BYTES;
  }

  private pump(): void {
    this.flow();
    this.schedule();
  }

  private flow(): void {
    if (this.done) return;
    if (this.stopping) {
      this.setPaused(true);
      if (this.inFlight === 0) this.finish();
      return;
    }
    while (!this.mustWait()) {
      let item: CborValue | null;
      try {
        item = this.reader.next();
      } catch {
        return this.reject();
      }
      if (item === null) break;
      this.frameCompleted = true;
      this.dispatch(item);
      if (this.done) return;
    }
    if (this.mustWait()) {
      if (!this.paused) this.log.event('backpressure', { inFlight: this.inFlight });
      return this.setPaused(true);
    }
    if (this.peerEnded) {
      // The stream ended inside a frame: that frame is truncated.
      if (this.reader.pending > 0) return this.reject();
      if (this.inFlight === 0) this.finish();
      return;
    }
    this.setPaused(false);
  }

  private setPaused(paused: boolean): void {
    if (paused === this.paused) return;
    this.paused = paused;
    if (paused) this.socket.pause();
    else this.socket.resume();
  }

  private dispatch(item: CborValue): void {
    let request: EnclaveRequest;
    try {
      request = parseRequest(item);
    } catch (error) {
      if (error instanceof RequestError && !error.fatal) {
        this.log.event('request_failed', { code: error.code, ms: 0 });
        this.send(encodeFrame(encodeErrorResponse(error.id, error.code)));
        return;
      }
      return this.reject();
    }
    this.inFlight++;
    void this.run(request);
  }

  private async run(request: EnclaveRequest): Promise<void> {
    const started = performance.now();
    let frame: Uint8Array;
    try {
      const body = await this.handle(request);
      frame = encodeFrame(encodeOkResponse(request.id, request.op, body as never));
    } catch (error) {
      frame = this.failure(request.op, toDipError(error).code, request.id, started);
    }
    this.inFlight--;
    this.send(frame);
    this.pump();
  }

  private failure(op: Op, code: ErrorCode, id: number, started: number): Uint8Array {
    this.log.event('request_failed', { op, code, ms: performance.now() - started });
    return encodeFrame(encodeErrorResponse(id, code));
  }

  private send(frame: Uint8Array): void {
    if (this.done || !this.socket.writable) return;
    // Flushed to the kernel: the connection may be idle from now on. No 'drain' event comes
    // for a write that stayed below the high-water mark, so this callback is the signal.
    this.socket.write(frame, () => {
      this.lastActivity = performance.now();
      this.schedule();
    });
  }

  /** SPEC §5: a bad frame gets one error frame with id 0, then the connection is closed. */
  private reject(): void {
    if (this.done) return;
    this.done = true;
    this.clearTimer();
    this.log.event('connection_rejected', { code: 'bad_frame' });
    if (this.socket.writable) this.socket.end(encodeFrame(encodeErrorResponse(0, 'bad_frame')));
    // Keep draining what the peer still sends (unread data would turn our close into a reset
    // that can discard the error frame), and cut a peer that never closes its side.
    this.setPaused(false);
    setTimeout(() => this.socket.destroy(), REJECTED_LINGER_MS).unref();
  }

  private finish(): void {
    this.done = true;
    this.clearTimer();
    if (this.socket.writable) this.socket.end();
    setTimeout(() => this.socket.destroy(), REJECTED_LINGER_MS).unref();
  }
}

/** A stale socket file from an earlier run is removed; a live one, or any other file, is refused. */
async function clearUnixPath(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!isSocket) throw new Error('listen path exists and is not a socket');
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) throw new Error('another process is listening on this socket');
  unlinkSync(path);
}

function listen(server: net.Server, address: ListenAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if (address.kind === 'tcp') {
      server.listen({ host: address.host, port: address.port, exclusive: true }, done);
      return;
    }
    // Only the owner may connect: inside the enclave that is the VSOCK bridge (same user), in
    // development the developer. The umask covers the moment between bind and chmod.
    const previous = process.umask(0o177);
    try {
      server.listen({ path: address.path, exclusive: true }, done);
    } finally {
      process.umask(previous);
    }
  });
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`${name} must be an integer ≥ 1`);
  return value;
}

/** The connection that has held a socket longest without serving anything, or null if all are busy. */
function longestIdle(connections: Iterable<Connection>): Connection | null {
  const now = performance.now();
  let victim: Connection | null = null;
  let longest = -1;
  for (const connection of connections) {
    const idle = connection.idleFor(now);
    if (idle !== null && idle > longest) {
      victim = connection;
      longest = idle;
    }
  }
  return victim;
}

export async function startServer(options: ServerOptions): Promise<EnclaveServer> {
  const closeGraceMs = options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS;
  const limits: ConnectionLimits = {
    maxInFlight: positiveInteger(options.maxInFlightPerConnection ?? DEFAULT_MAX_IN_FLIGHT, 'maxInFlightPerConnection'),
    idleTimeoutMs: positiveInteger(options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS, 'idleTimeoutMs'),
    frameTimeoutMs: positiveInteger(options.frameTimeoutMs ?? DEFAULT_FRAME_TIMEOUT_MS, 'frameTimeoutMs'),
  };
  const maxConnections = positiveInteger(options.maxConnections ?? DEFAULT_MAX_CONNECTIONS, 'maxConnections');
  const connections = new Set<Connection>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    if (connections.size >= maxConnections) {
      const victim = longestIdle(connections);
      if (victim === null) {
        // Every connection is serving requests: the newcomer waits for none of them.
        socket.on('error', () => {});
        socket.destroy();
        options.log.event('connection_closed', { cause: 'over_capacity', connections: connections.size });
        return;
      }
      // Forgotten at once, so that the count is right before its 'close' event comes.
      connections.delete(victim);
      victim.evict();
    }
    const connection = new Connection(socket, options.handle, options.log, limits, () => connections.size);
    connections.add(connection);
    socket.once('close', () => connections.delete(connection));
  });
  // After listening, a server error (e.g. EMFILE on accept) must not crash the process.
  server.on('error', () => {});

  if (options.address.kind === 'unix') await clearUnixPath(options.address.path);
  await listen(server, options.address);
  let bound: ListenAddress = options.address;
  if (options.address.kind === 'unix') {
    chmodSync(options.address.path, 0o600);
  } else {
    const info = server.address() as net.AddressInfo;
    bound = { kind: 'tcp', host: options.address.host, port: info.port };
  }

  let closing: Promise<void> | null = null;
  return {
    address: bound,
    get connections() {
      return connections.size;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const connection of connections) connection.stop();
        setTimeout(() => {
          for (const connection of connections) connection.destroy();
        }, closeGraceMs).unref();
      });
      return closing;
    },
  };
}
