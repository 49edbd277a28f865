// The enclave's socket server: the framing loop of SPEC §5 on a Unix or TCP socket (VSOCK
// reaches it through a bridge). Per connection: frames → parseRequest → handler → response
// frames, many requests in flight, answered in any order and matched by id. Bad input closes
// at most the one connection that sent it; nothing a peer sends can stop the process.

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
// A sanity cap on simultaneous connections (the parent pools a handful).
const MAX_CONNECTIONS = 1024;

class Connection {
  private readonly reader = new FrameReader();
  private inFlight = 0;
  private peerEnded = false;
  private stopping = false;
  private done = false;
  private paused = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly handle: RequestHandler,
    private readonly log: Logger,
    private readonly maxInFlight: number,
  ) {
    // Socket errors (ECONNRESET, EPIPE, …) end this connection only; 'close' follows.
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      if (this.done) return;
      this.reader.push(chunk);
      this.pump();
    });
    socket.on('end', () => {
      this.peerEnded = true;
      this.pump();
    });
    socket.on('drain', () => this.pump());
  }

  /** Server shutdown: read nothing more, finish what is in flight, then close. */
  stop(): void {
    this.stopping = true;
    this.pump();
  }

  destroy(): void {
    this.done = true;
    this.socket.destroy();
  }

  private mustWait(): boolean {
    return this.inFlight >= this.maxInFlight || this.socket.writableLength > MAX_UNSENT_BYTES;
  }

  private pump(): void {
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
    if (!this.done && this.socket.writable) this.socket.write(frame);
  }

  /** SPEC §5: a bad frame gets one error frame with id 0, then the connection is closed. */
  private reject(): void {
    if (this.done) return;
    this.done = true;
    this.log.event('connection_rejected', { code: 'bad_frame' });
    if (this.socket.writable) this.socket.end(encodeFrame(encodeErrorResponse(0, 'bad_frame')));
    // Keep draining what the peer still sends (unread data would turn our close into a reset
    // that can discard the error frame), and cut a peer that never closes its side.
    this.setPaused(false);
    setTimeout(() => this.socket.destroy(), REJECTED_LINGER_MS).unref();
  }

  private finish(): void {
    this.done = true;
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

export async function startServer(options: ServerOptions): Promise<EnclaveServer> {
  const maxInFlight = options.maxInFlightPerConnection ?? DEFAULT_MAX_IN_FLIGHT;
  const closeGraceMs = options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS;
  if (!Number.isSafeInteger(maxInFlight) || maxInFlight < 1) throw new TypeError('maxInFlightPerConnection must be ≥ 1');
  const connections = new Set<Connection>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const connection = new Connection(socket, options.handle, options.log, maxInFlight);
    connections.add(connection);
    socket.once('close', () => connections.delete(connection));
  });
  server.maxConnections = MAX_CONNECTIONS;
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
