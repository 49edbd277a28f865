// The enclave's worker pool (issue 13): the main thread keeps the sockets and the frames
// (server.ts) and hands each request to one of N worker threads (worker.ts), N the vCPUs the
// enclave has, so that assign, refresh and attest use every vCPU. Its `handle` is the server's
// RequestHandler: ordering, backpressure, the unsent-bytes cap and error codes stay the server's.
//
// Keys live in the workers only. The first worker makes the boot key; every other worker, and
// every replacement of one that died, gets it — and M, once the enclave is unlocked — from a
// worker that holds them, over a MessagePort this thread creates and hands on without reading.
// An unlock is answered only after every worker holds the same M. The NSM stays in this thread
// (one device fd, one emulator root): a worker asks it for attestation documents here.

import { MessageChannel, Worker, type MessagePort, type TransferListItem } from 'node:worker_threads';
import { DipError, isErrorCode } from '../../protocol/errors.js';
import type { EnclaveRequest } from '../../protocol/messages.js';
import type { SrtTrust } from '../core/config.js';
import type { Nsm } from '../nsm/nsm.js';
import type { Logger } from './log.js';
import type { RequestHandler } from './server.js';
import type { FromWorker, Numbered, ToWorker, WorkerSetup } from './worker-messages.js';

export interface PoolOptions {
  /** The module a worker runs: the enclave's entry (main.ts under tsx, the bundle in the image), which calls serveWorker() off the main thread. */
  entry: URL;
  /** Worker threads, ≥ 1. */
  size: number;
  nsm: Nsm;
  srtTrust: SrtTrust;
  datIssuer: string;
  version: string;
  /** SPEC §3: the clock check's latest result; setClockTrusted() passes later ones on. */
  clockTrusted: boolean;
  log: Logger;
  /**
   * Called once when no worker holds the keys any more (all died) or workers keep failing to start:
   * the process must end (in the enclave: AWS's init reboots it with a new boot key).
   */
  onFatal: () => void;
  /** Requests one worker holds at most; the rest wait in this thread, so a worker's death touches only those it holds. */
  maxInFlightPerWorker?: number;
}

export interface WorkerPool {
  readonly handle: RequestHandler;
  /** SPEC §3: the result of a clock check, for every worker. */
  setClockTrusted(trusted: boolean): void;
  /** What each worker slot holds now (tests and benchmarks look; nothing here is secret). */
  workers(): ReadonlyArray<{ readonly thread: Worker; readonly ready: boolean; readonly inFlight: number }>;
  /** The boot key's SubjectPublicKeyInfo (public: every attestation document carries it). */
  readonly bootPublicKeySpki: Uint8Array;
  /** Terminates every worker; requests still held are answered `internal`. */
  close(): Promise<void>;
}

/** Enough to keep a worker busy while its answer travels back; few enough that a death touches few requests. */
export const DEFAULT_MAX_IN_FLIGHT_PER_WORKER = 8;
/** A replacement that fails to start this many times in a row is a bug, not bad luck: the process ends. */
const MAX_START_ATTEMPTS = 3;

type Body = Record<string, unknown>;

interface Job {
  readonly request: EnclaveRequest;
  readonly resolve: (body: Body) => void;
  readonly reject: (error: Error) => void;
}

class Slot {
  ready = false;
  exited = false;
  /** The m_commit the worker reported (public), or null while it is locked. */
  mCommit: Uint8Array | null = null;
  readonly inFlight = new Map<number, Job>();
  /** true once the worker holds its keys, false if it exits first. */
  readonly started: Promise<boolean>;
  settleStarted!: (ready: boolean) => void;
  /** An ongoing `take`: settles with the m_commit the worker ended with, or undefined if it exited. */
  taking: ((mCommit: Uint8Array | null | undefined) => void) | null = null;

  constructor(readonly thread: Worker) {
    this.started = new Promise((resolve) => (this.settleStarted = resolve));
  }

  post(message: ToWorker, transferList: readonly TransferListItem[] = []): void {
    if (!this.exited) this.thread.postMessage(message, transferList);
  }
}

function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  return a !== null && b !== null && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/**
 * Starts a worker thread running `entry`. Under tsx (development, tests) the entry is
 * TypeScript, and in Node 20 a worker does not inherit tsx's module hooks, so it registers them
 * before importing the entry. The image's entry is the bundle (.mjs), which never takes that path.
 */
function startThread(entry: URL, setup: WorkerSetup, transferList: readonly TransferListItem[]): Worker {
  if (entry.pathname.endsWith('.ts')) {
    const tsx = import.meta.resolve('tsx/esm/api');
    const code = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })`;
    return new Worker(code, { eval: true, workerData: setup, transferList: [...transferList] });
  }
  return new Worker(entry, { workerData: setup, transferList: [...transferList] });
}

/** Starts `size` workers, all holding one boot key, and resolves once every one is ready. */
export async function startWorkerPool(options: PoolOptions): Promise<WorkerPool> {
  const { entry, nsm, log, srtTrust, datIssuer, version } = options;
  if (!Number.isSafeInteger(options.size) || options.size < 1) throw new TypeError('size must be an integer ≥ 1');
  const maxInFlight = options.maxInFlightPerWorker ?? DEFAULT_MAX_IN_FLIGHT_PER_WORKER;
  if (!Number.isSafeInteger(maxInFlight) || maxInFlight < 1) throw new TypeError('maxInFlightPerWorker must be an integer ≥ 1');

  const slots: Slot[] = [];
  // Requests waiting for a worker, oldest first (a queue with a moving head: no O(n) shift).
  let waiting: Job[] = [];
  let head = 0;
  let nextSeq = 1;
  let rotation = 0;
  let clockTrusted = options.clockTrusted;
  let closing = false;
  let bootPublicKeySpki: Uint8Array | null = null;
  /** The worker that made the latest key_request's RSA key: only it can open the unlock (SPEC §9). */
  let recipientHolder: Slot | null = null;
  // Key moves (a new worker taking the keys, M spreading after an unlock) run one at a time, so
  // that no worker can take keys from a donor that a concurrent unlock has not reached yet.
  let keyMoves: Promise<unknown> = Promise.resolve();

  function exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = keyMoves.then(task);
    keyMoves = run.catch(() => {});
    return run;
  }

  // Until every worker of the first set is ready, a failure is the caller's startup error instead.
  let serving = false;

  function fatal(): void {
    if (closing) return;
    closing = true;
    for (const slot of slots) void slot.thread.terminate();
    failWaiting();
    if (!serving) return;
    log.event('crashed', { kind: 'workers' });
    options.onFatal();
  }

  function failWaiting(): void {
    const jobs = waiting.slice(head);
    waiting = [];
    head = 0;
    for (const job of jobs) job.reject(new DipError('internal'));
  }

  function spawn(index: number, keys: MessagePort | null): Slot {
    const setup: WorkerSetup = { srtTrust, datIssuer, version, clockTrusted, keys };
    const slot = new Slot(startThread(entry, setup, keys === null ? [] : [keys]));
    slots[index] = slot;
    slot.thread.on('message', (message: FromWorker) => receive(slot, message));
    // The error's text may hold request data: it is never read. 'exit' follows it.
    slot.thread.on('error', () => {});
    slot.thread.once('exit', (code) => exited(index, slot, code));
    return slot;
  }

  function receive(slot: Slot, message: FromWorker): void {
    switch (message.kind) {
      case 'ready':
        bootPublicKeySpki ??= message.publicKeySpki;
        // One boot key per enclave: two would be a bug, and the parent could not route by key_id.
        if (!sameBytes(bootPublicKeySpki, message.publicKeySpki)) return fatal();
        slot.mCommit = message.mCommit;
        slot.ready = true;
        slot.settleStarted(true);
        return pump();
      case 'replies':
        for (const reply of message.batch) {
          const job = slot.inFlight.get(reply.seq);
          if (job === undefined) continue;
          slot.inFlight.delete(reply.seq);
          if (reply.ok) job.resolve(reply.body);
          else job.reject(new DipError(isErrorCode(reply.code) ? reply.code : 'internal'));
        }
        return pump();
      case 'taken':
        slot.mCommit = message.mCommit;
        slot.taking?.(message.mCommit);
        slot.taking = null;
        return;
      case 'attestation': {
        const { seq } = message;
        nsm.attestation(message.request).then(
          (document) => slot.post({ kind: 'document', seq, document }),
          () => slot.post({ kind: 'document', seq, document: null }),
        );
        return;
      }
    }
  }

  function exited(index: number, slot: Slot, code: number): void {
    const wasReady = slot.ready;
    slot.exited = true;
    slot.ready = false;
    slot.settleStarted(false);
    slot.taking?.(undefined);
    slot.taking = null;
    const lost = [...slot.inFlight.values()];
    slot.inFlight.clear();
    // Only the requests this worker held: the others are untouched.
    for (const job of lost) job.reject(new DipError('internal'));
    if (closing) return;
    log.event('worker_exited', { exitCode: code, inFlight: lost.length });
    // A worker that never got ready is retried by addWorker; one that served is replaced here
    // (a thread that cannot even be created is as fatal as no worker left).
    if (wasReady) addWorker(index).catch(fatal);
    pump();
  }

  /** A ready worker to copy the keys from, preferring one that holds M. */
  function donor(): Slot | null {
    const ready = slots.filter((slot) => slot.ready);
    return ready.find((slot) => slot.mCommit !== null) ?? ready[0] ?? null;
  }

  /** Starts a worker in slot `index` with the keys of a ready worker; retries a few times, then gives up (fatal). */
  async function addWorker(index: number): Promise<void> {
    for (let attempt = 1; !closing; attempt++) {
      const { port1, port2 } = new MessageChannel();
      // Started at once, so that it loads its code while earlier key moves finish.
      const slot = spawn(index, port2);
      const outcome = await exclusive(async () => {
        const from = donor();
        if (from === null) return 'no_donor';
        from.post({ kind: 'give', port: port1 }, [port1]);
        return (await slot.started) ? 'ready' : 'failed';
      });
      if (outcome === 'ready') return;
      if (outcome === 'no_donor' || attempt >= MAX_START_ATTEMPTS) {
        void slot.thread.terminate();
        return fatal();
      }
    }
  }

  /** After an unlock at `from`: every other ready worker takes M from it. True when all hold the same M. */
  function spreadMasterSecret(from: Slot): Promise<boolean> {
    return exclusive(async () => {
      const takers = slots.filter((slot) => slot !== from && slot.ready && !sameBytes(slot.mCommit, from.mCommit));
      const taken = await Promise.all(
        takers.map(
          (taker) =>
            new Promise<boolean>((resolve) => {
              if (from.exited) return resolve(false);
              taker.taking = (mCommit) => resolve(mCommit !== undefined && sameBytes(mCommit, from.mCommit));
              const { port1, port2 } = new MessageChannel();
              taker.post({ kind: 'take', port: port2 }, [port2]);
              from.post({ kind: 'give', port: port1 }, [port1]);
            }),
        ),
      );
      return !from.exited && taken.every(Boolean);
    });
  }

  // Requests dispatched in one run of this thread (the frames of one socket read, say) go to each
  // worker as one message, sent once the run is over.
  const outgoing = new Map<Slot, Numbered[]>();

  function dispatch(slot: Slot, job: Job): void {
    const seq = nextSeq++;
    slot.inFlight.set(seq, job);
    let batch = outgoing.get(slot);
    if (batch === undefined) {
      if (outgoing.size === 0) queueMicrotask(flush);
      outgoing.set(slot, (batch = []));
    }
    batch.push({ seq, request: job.request });
  }

  function flush(): void {
    for (const [slot, batch] of outgoing) slot.post({ kind: 'requests', batch });
    outgoing.clear();
  }

  /** The ready worker holding the fewest requests below the cap; ties rotate. */
  function leastLoaded(): Slot | null {
    let best: Slot | null = null;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[(rotation + i) % slots.length]!;
      if (slot.ready && slot.inFlight.size < maxInFlight && (best === null || slot.inFlight.size < best.inFlight.size)) best = slot;
    }
    rotation = (rotation + 1) % slots.length;
    return best;
  }

  function pump(): void {
    while (head < waiting.length) {
      const slot = leastLoaded();
      if (slot === null) break;
      const job = waiting[head]!;
      waiting[head++] = undefined as never;
      dispatch(slot, job);
    }
    if (head === waiting.length) {
      waiting = [];
      head = 0;
    } else if (head > 1024 && head * 2 > waiting.length) {
      waiting = waiting.slice(head);
      head = 0;
    }
  }

  function send(slot: Slot, request: EnclaveRequest): Promise<Body> {
    return new Promise((resolve, reject) => dispatch(slot, { request, resolve, reject }));
  }

  function firstReady(): Slot {
    const slot = slots.find((s) => s.ready);
    if (slot === undefined) throw new DipError('internal');
    return slot;
  }

  async function handle(request: EnclaveRequest): Promise<Body> {
    if (closing) throw new DipError('internal');
    switch (request.op) {
      case 'key_request': {
        // SPEC §9: the RSA recipient key stays in the worker that made it, until the unlock.
        const slot = firstReady();
        recipientHolder = slot;
        return send(slot, request);
      }
      case 'unlock': {
        // Another worker holds no recipient key and answers bad_request, as SPEC §9 wants.
        const slot = recipientHolder?.ready ? recipientHolder : firstReady();
        const body = await send(slot, request);
        slot.mCommit = body['m_commit'] as Uint8Array;
        // SPEC §3: every worker must sign with the same keys before the parent hears "ok".
        if (!(await spreadMasterSecret(slot))) throw new DipError('internal');
        return body;
      }
      default:
        return new Promise((resolve, reject) => {
          waiting.push({ request, resolve, reject });
          pump();
        });
    }
  }

  spawn(0, null);
  if (await slots[0]!.started) await Promise.all(Array.from({ length: options.size - 1 }, (_, i) => addWorker(i + 1)));
  else fatal();
  if (closing) {
    await Promise.all(slots.map((slot) => slot.thread.terminate()));
    throw new Error('the worker threads did not start');
  }
  serving = true;

  return {
    handle,
    bootPublicKeySpki: bootPublicKeySpki!,
    setClockTrusted(trusted) {
      clockTrusted = trusted;
      for (const slot of slots) slot.post({ kind: 'clock', trusted });
    },
    workers: () => slots.map((slot) => ({ thread: slot.thread, ready: slot.ready, inFlight: slot.inFlight.size })),
    async close() {
      closing = true;
      failWaiting();
      await Promise.all(slots.map((slot) => slot.thread.terminate()));
    },
  };
}
