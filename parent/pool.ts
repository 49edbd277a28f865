// A small pool of persistent connections to the enclave (SPEC §5): requests are pipelined on
// each connection and matched to responses by `id` only, so no request is ever answered with
// another's response. In front of the pool sits a bounded queue; a request waits at most
// `timeoutMs` in all, queueing included.
//
// Retry policy: a request is never sent twice. A request still in the queue has not reached
// the enclave and goes out on whichever connection is free; once written, a lost connection
// fails it with `enclave_unavailable`. Replaying a sealed assign/refresh would not break the
// enclave's guarantees (it keeps no state, and an untrusted parent could replay anyway — it
// would mint a second token pair for the same subscription and IP), but it could hand the
// caller tokens from a request the enclave already answered once, hide an enclave crash loop
// and double the load while the enclave recovers. Whether to retry is the caller's decision.

import { connect, type NetConnectOpts, type Socket } from 'node:net';
import { DipError, type ErrorCode } from '../protocol/errors.js';
import { FrameReader, encodeFrame, frameBytes } from '../protocol/frame.js';
import { encodeRequest, parseResponse, parseResponseBody, type EnclaveRequest, type Op, type RequestBodies, type ResponseBodies } from '../protocol/messages.js';
import { encodeCbor, type CborValue } from '../protocol/cbor.js';
import { MAX_FRAME_BYTES } from '../protocol/limits.js';

/** Told about pool events, for metrics and logs; none carries request data. */
export interface PoolObserver {
  connected?(connection: number): void;
  disconnected?(connection: number, failed: number): void;
  /** `reached`: the socket opened (for vsock, the local bridge answered) but the enclave never did. */
  connectFailed?(connection: number, reached: boolean): void;
  orphanResponse?(): void;
  timedOut?(): void;
  overflow?(): void;
  protocolError?(): void;
}

export interface PoolOptions {
  connectOptions: NetConnectOpts;
  size: number;
  pipelineDepth: number;
  queueLimit: number;
  timeoutMs: number;
  /** Reconnect backoff: doubles from `initialMs` up to `maxMs`, with ±20 % jitter. */
  backoff?: { initialMs: number; maxMs: number };
  connectTimeoutMs?: number;
  /**
   * Sends `health` on every new connection and counts it ready only once the enclave answers.
   * Needed for vsock: socat accepts the local side at once, whether or not the enclave is there.
   */
  probe?: boolean;
  observer?: PoolObserver;
}

export interface PoolState {
  size: number;
  ready: number;
  inFlight: number;
  queued: number;
}

interface Job {
  readonly op: Op;
  readonly body: unknown;
  readonly resolve: (body: never) => void;
  readonly reject: (error: DipError) => void;
  timer: NodeJS.Timeout | undefined;
  connection: Connection | null;
  id: number;
  done: boolean;
}

interface Connection {
  readonly index: number;
  socket: Socket | null;
  ready: boolean;
  /** The socket opened; with `probe`, the enclave has not answered yet. */
  reached: boolean;
  probeId: number;
  nextId: number;
  readonly pending: Map<number, Job>;
  attempt: number;
  retry: NodeJS.Timeout | undefined;
}

export class EnclavePool {
  private readonly connections: Connection[] = [];
  // A Set keeps insertion order and deletes a timed-out job in O(1).
  private readonly queue = new Set<Job>();
  private readonly options: Required<Omit<PoolOptions, 'observer'>> & { observer: PoolObserver };
  private closed = false;

  constructor(options: PoolOptions) {
    this.options = {
      backoff: { initialMs: 100, maxMs: 2000 },
      connectTimeoutMs: 5000,
      probe: false,
      observer: {},
      ...options,
    };
    for (let index = 0; index < options.size; index++) {
      const connection: Connection = { index, socket: null, ready: false, reached: false, probeId: 0, nextId: 1, pending: new Map(), attempt: 0, retry: undefined };
      this.connections.push(connection);
      this.open(connection);
    }
  }

  get state(): PoolState {
    let ready = 0;
    let inFlight = 0;
    for (const c of this.connections) {
      if (c.ready) ready++;
      inFlight += c.pending.size;
    }
    return { size: this.connections.length, ready, inFlight, queued: this.queue.size };
  }

  /**
   * Sends one request and resolves with the enclave's validated ok body. Rejects with the
   * enclave's error code, `enclave_unavailable` (no connection, queue full, connection lost),
   * `enclave_timeout`, or `internal` when the enclave's answer does not fit the op.
   */
  call<K extends Op>(op: K, body: RequestBodies[K]): Promise<ResponseBodies[K]> {
    return new Promise<ResponseBodies[K]>((resolve, reject) => {
      if (this.closed || !this.connections.some((c) => c.ready)) {
        reject(new DipError('enclave_unavailable'));
        return;
      }
      const job: Job = { op, body, resolve, reject, timer: undefined, connection: null, id: 0, done: false };
      const connection = this.pick();
      if (connection !== null) {
        this.send(connection, job);
      } else if (this.queue.size < this.options.queueLimit) {
        this.queue.add(job);
      } else {
        this.options.observer.overflow?.();
        reject(new DipError('enclave_unavailable'));
        return;
      }
      if (!job.done) job.timer = setTimeout(() => this.expire(job), this.options.timeoutMs);
    });
  }

  /** Stops reconnecting, fails what is queued or in flight, and closes every connection. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue) this.settle(job, 'enclave_unavailable');
    this.queue.clear();
    const closing: Promise<unknown>[] = [];
    for (const c of this.connections) {
      clearTimeout(c.retry);
      if (c.socket !== null) {
        closing.push(new Promise((resolve) => c.socket!.once('close', resolve)));
        c.socket.destroy();
      }
    }
    await Promise.all(closing);
  }

  private open(c: Connection): void {
    const reader = new FrameReader();
    const socket = connect(this.options.connectOptions);
    c.socket = socket;
    socket.setTimeout(this.options.connectTimeoutMs, () => socket.destroy());
    socket.on('connect', () => {
      if (socket.remoteAddress !== undefined) socket.setNoDelay(true);
      c.reached = true;
      if (!this.options.probe) {
        this.ready(c);
        return;
      }
      // The connect timeout keeps running until the enclave answers the probe.
      c.probeId = c.nextId++;
      socket.write(encodeFrame(encodeRequest({ id: c.probeId, op: 'health', body: {} })));
    });
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      try {
        for (let item = reader.next(); item !== null; item = reader.next()) {
          if (!c.ready) {
            // Any answer to the probe, ok or an error code, shows the enclave is there.
            if (parseResponse(item)?.id !== c.probeId) throw new TypeError('not the probe response');
            this.ready(c);
          } else if (!this.receive(c, item)) {
            this.options.observer.protocolError?.();
            socket.destroy();
            return;
          }
        }
      } catch {
        this.options.observer.protocolError?.();
        socket.destroy();
        return;
      }
      this.drain();
    });
    socket.on('error', () => {}); // 'close' follows and does the work
    socket.on('close', () => this.lost(c));
  }

  private ready(c: Connection): void {
    c.socket!.setTimeout(0);
    c.ready = true;
    c.attempt = 0;
    this.options.observer.connected?.(c.index);
    this.drain();
  }

  private lost(c: Connection): void {
    const wasReady = c.ready;
    const reached = c.reached;
    c.ready = false;
    c.reached = false;
    c.socket = null;
    const failed = c.pending.size;
    for (const job of c.pending.values()) this.settle(job, 'enclave_unavailable');
    c.pending.clear();
    // Our own close() is not a loss of the enclave: nothing to count or log.
    if (!this.closed && wasReady) this.options.observer.disconnected?.(c.index, failed);
    else if (!this.closed) this.options.observer.connectFailed?.(c.index, reached);
    // Queued requests never reached the enclave: they stay queued while any connection is up.
    if (!this.connections.some((other) => other.ready)) {
      for (const job of this.queue) this.settle(job, 'enclave_unavailable');
      this.queue.clear();
    }
    if (this.closed) return;
    const { initialMs, maxMs } = this.options.backoff;
    const delay = Math.min(maxMs, initialMs * 2 ** Math.min(c.attempt++, 20)) * (0.8 + 0.4 * Math.random());
    c.retry = setTimeout(() => this.open(c), delay);
  }

  /** Handles one response frame; false when the frame is not a response at all. */
  private receive(c: Connection, item: CborValue): boolean {
    const response = parseResponse(item);
    if (response === null) return false;
    const job = c.pending.get(response.id);
    if (job === undefined) {
      // Late (after its timeout), unsolicited, or the enclave's id-0 bad_frame report.
      this.options.observer.orphanResponse?.();
      return true;
    }
    c.pending.delete(response.id);
    if (!response.ok) {
      this.settle(job, response.error.code);
      return true;
    }
    const body = parseResponseBody(job.op, response.body);
    if (body === null) this.settle(job, 'internal');
    else this.settle(job, null, body);
    return true;
  }

  private pick(): Connection | null {
    let best: Connection | null = null;
    for (const c of this.connections) {
      if (c.ready && c.pending.size < this.options.pipelineDepth && (best === null || c.pending.size < best.pending.size)) best = c;
    }
    return best;
  }

  private send(c: Connection, job: Job): void {
    const id = c.nextId++;
    let cbor: Uint8Array;
    try {
      cbor = encodeCbor(encodeRequest({ id, op: job.op, body: job.body } as EnclaveRequest));
    } catch {
      // The CBOR writer refuses text that is not well-formed Unicode; the server validates every
      // field first, so only a caller that bypassed it gets here. Never a frame, never the enclave.
      this.settle(job, 'bad_request');
      return;
    }
    // Only a request over the frame limit (SPEC §5) gets here: config keeps every body it allows
    // below that, so this too is a caller that bypassed it; too large, not our failure.
    if (cbor.length > MAX_FRAME_BYTES) {
      this.settle(job, 'payload_too_large');
      return;
    }
    const frame = frameBytes(cbor);
    job.connection = c;
    job.id = id;
    c.pending.set(id, job);
    c.socket!.write(frame);
  }

  private drain(): void {
    while (this.queue.size > 0) {
      const c = this.pick();
      if (c === null) return;
      const job = this.queue.values().next().value!;
      this.queue.delete(job);
      this.send(c, job);
    }
  }

  private expire(job: Job): void {
    if (job.done) return;
    if (job.connection === null) this.queue.delete(job);
    else job.connection.pending.delete(job.id);
    this.options.observer.timedOut?.();
    this.settle(job, 'enclave_timeout');
    this.drain();
  }

  private settle(job: Job, code: ErrorCode | null, body?: unknown): void {
    if (job.done) return;
    job.done = true;
    clearTimeout(job.timer);
    if (code === null) job.resolve(body as never);
    else job.reject(new DipError(code));
  }
}
