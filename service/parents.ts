// The parents this service calls (SPEC §6, §11): one HTTP client each, the enclaves each reaches
// (GET /v1/enclaves, polled), and the routing: a sealed request goes to a parent that reaches the
// enclave of its key_id; attestation and keys go to any parent with a ready enclave. Only what is
// safe is retried: a GET on another parent after a connection failure, a POST only when the
// connection was refused before a byte of it was sent.

import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { decodeBase64url } from '../protocol/base64url.js';
import { KEY_ID_BYTES } from '../protocol/limits.js';

/** What became of one call to a parent. */
export type Upstream =
  | { kind: 'answered'; status: number; contentType: string | null; body: Buffer }
  /** The connection was refused: the parent received nothing. */
  | { kind: 'refused' }
  | { kind: 'timeout' }
  /** The connection failed after it opened, or the answer was cut or too long: the parent may have acted. */
  | { kind: 'lost' };

/** No answer of SPEC §6 comes near this; a longer one is treated as lost. */
const MAX_ANSWER_BYTES = 1 << 20;

export type ParentState = 'ok' | 'locked' | 'unreachable';

export interface ParentObserver {
  stateChanged?(parent: number, state: ParentState): void;
  /** An upstream failure, by a code from a closed set (SPEC §6 codes or a transport kind). */
  failed?(code: string): void;
}

export interface ParentDirectoryOptions {
  urls: readonly URL[];
  timeoutMs: number;
  /** How often every parent's /v1/enclaves is read (default 5 s). */
  pollIntervalMs?: number;
  /** An unknown key_id asks for a fresh poll at most this often (default 1 s). */
  repollMinMs?: number;
  observer?: ParentObserver;
}

/**
 * A parent that misses this many polls in a row (a timeout under load, a restart) loses its
 * key_ids: until then sealed requests still go to the enclaves it last listed, rather than every
 * app being told key_unknown and attesting again over one slow answer.
 */
export const FORGET_AFTER_FAILED_POLLS = 3;

interface Parent {
  readonly index: number;
  readonly url: URL;
  readonly agent: HttpAgent;
  /** key_id (hex) → status, from the latest poll that answered; null before one or once forgotten. */
  enclaves: Map<string, 'ok' | 'locked'> | null;
  failedPolls: number;
  state: ParentState;
}

/** One HTTP call with a deadline; never throws. */
export function callParent(url: URL, agent: HttpAgent, method: 'GET' | 'POST', path: string, body: string | null, timeoutMs: number): Promise<Upstream> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: Upstream): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const headers: Record<string, string | number> = { accept: 'application/json' };
    if (body !== null) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    const req = send({ protocol: url.protocol, hostname: url.hostname.replace(/^\[|\]$/g, ''), port: url.port, method, path, agent, headers }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) {
          req.destroy();
          settle({ kind: 'lost' });
          return;
        }
        chunks.push(chunk);
      });
      res.once('end', () => settle({ kind: 'answered', status: res.statusCode ?? 0, contentType: res.headers['content-type'] ?? null, body: Buffer.concat(chunks, size) }));
      res.once('aborted', () => settle({ kind: 'lost' }));
      res.once('error', () => settle({ kind: 'lost' }));
      // After 'end' this changes nothing; without it, the answer was cut.
      res.once('close', () => settle({ kind: 'lost' }));
    });
    const timer = setTimeout(() => {
      settle({ kind: 'timeout' });
      req.destroy();
    }, timeoutMs);
    req.once('error', (error: NodeJS.ErrnoException) => settle(error.code === 'ECONNREFUSED' ? { kind: 'refused' } : { kind: 'lost' }));
    req.end(body ?? undefined);
  });
}

function parseEnclaves(outcome: Upstream): Map<string, 'ok' | 'locked'> | null {
  if (outcome.kind !== 'answered' || outcome.status !== 200) return null;
  let json: unknown;
  try {
    json = JSON.parse(outcome.body.toString('utf8'));
  } catch {
    return null;
  }
  const list = (json as { enclaves?: unknown } | null)?.enclaves;
  if (!Array.isArray(list)) return null;
  const enclaves = new Map<string, 'ok' | 'locked'>();
  for (const entry of list as unknown[]) {
    const { key_id: keyIdText, status } = (entry ?? {}) as { key_id?: unknown; status?: unknown };
    const keyId = typeof keyIdText === 'string' ? decodeBase64url(keyIdText) : null;
    if (keyId === null || keyId.length !== KEY_ID_BYTES || (status !== 'ok' && status !== 'locked')) return null;
    enclaves.set(Buffer.from(keyId).toString('hex'), status);
  }
  return enclaves;
}

export class ParentDirectory {
  private readonly parents: Parent[];
  private readonly timeoutMs: number;
  private readonly pollIntervalMs: number;
  private readonly repollMinMs: number;
  private readonly observer: ParentObserver;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | null = null;
  private lastPollStarted = -Infinity;
  private next = 0;

  constructor(options: ParentDirectoryOptions) {
    if (options.urls.length === 0) throw new TypeError('at least one parent is needed');
    this.timeoutMs = options.timeoutMs;
    this.pollIntervalMs = options.pollIntervalMs ?? 5000;
    this.repollMinMs = options.repollMinMs ?? 1000;
    this.observer = options.observer ?? {};
    this.parents = options.urls.map((url, index) => {
      const Agent = url.protocol === 'https:' ? HttpsAgent : HttpAgent;
      return { index, url, agent: new Agent({ keepAlive: true, maxSockets: 64 }), enclaves: null, failedPolls: 0, state: 'unreachable' };
    });
  }

  /** Reads every parent's enclaves once, then keeps doing so on a timer. */
  async start(): Promise<void> {
    await this.poll();
    this.timer = setInterval(() => void this.poll(), this.pollIntervalMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
    for (const parent of this.parents) parent.agent.destroy();
  }

  /** Parents that reach at least one ready enclave. */
  readyCount(): number {
    return this.parents.filter((parent) => parent.state === 'ok').length;
  }

  /** Polls every parent now; a poll already running is joined, not repeated. */
  poll(): Promise<void> {
    this.polling ??= (async () => {
      this.lastPollStarted = performance.now();
      await Promise.all(this.parents.map((parent) => this.pollOne(parent)));
    })().finally(() => {
      this.polling = null;
    });
    return this.polling;
  }

  /** A poll unless one started less than repollMinMs ago (then that one, or nothing). */
  private pollSoon(): Promise<void> {
    if (this.polling !== null) return this.polling;
    if (performance.now() - this.lastPollStarted < this.repollMinMs) return Promise.resolve();
    return this.poll();
  }

  /** A parent answered key_unknown: its enclaves changed; look again soon. */
  keyUnknown(): void {
    void this.pollSoon();
  }

  private async pollOne(parent: Parent): Promise<void> {
    const outcome = await callParent(parent.url, parent.agent, 'GET', '/v1/enclaves', null, this.timeoutMs);
    const enclaves = parseEnclaves(outcome);
    if (enclaves !== null) {
      parent.enclaves = enclaves;
      parent.failedPolls = 0;
    } else if (++parent.failedPolls >= FORGET_AFTER_FAILED_POLLS) {
      parent.enclaves = null;
    }
    const state: ParentState = enclaves === null ? 'unreachable' : [...enclaves.values()].includes('ok') ? 'ok' : 'locked';
    if (state !== parent.state) {
      parent.state = state;
      this.observer.stateChanged?.(parent.index, state);
    }
  }

  private reaching(keyId: string): number[] {
    return this.parents.filter((parent) => parent.enclaves?.has(keyId) === true).map((parent) => parent.index);
  }

  /**
   * The parents whose enclaves include `keyId` — those where it is ready first, parents that missed
   * their latest poll last; when none does, after
   * a fresh (rate-limited) poll, null: the request is key_unknown and the app attests again.
   */
  async targetsFor(keyId: Uint8Array): Promise<number[] | null> {
    const hex = Buffer.from(keyId).toString('hex');
    let found = this.reaching(hex);
    if (found.length === 0) {
      await this.pollSoon();
      found = this.reaching(hex);
    }
    if (found.length === 0) return null;
    const rank = (index: number): number => {
      const parent = this.parents[index]!;
      return (parent.state === 'unreachable' ? 2 : 0) + (parent.enclaves!.get(hex) === 'ok' ? 0 : 1);
    };
    return found.sort((a, b) => rank(a) - rank(b));
  }

  /**
   * A sealed request to the first of `targets` that takes the connection: the next one only when a
   * connection was refused (nothing was sent). Every other outcome is final.
   */
  async post(targets: readonly number[], path: string, body: string): Promise<Upstream> {
    let outcome: Upstream = { kind: 'refused' };
    for (const index of targets) {
      const parent = this.parents[index]!;
      outcome = await callParent(parent.url, parent.agent, 'POST', path, body, this.timeoutMs);
      if (outcome.kind !== 'refused') break;
      this.observer.failed?.('connection_refused');
    }
    return outcome;
  }

  /**
   * A GET (attestation, keys) to a parent with a ready enclave, round robin; on a connection failure
   * or a timeout the next such parent is tried (a GET changes nothing). Null when no parent has a
   * ready enclave.
   */
  async get(pathAndQuery: string): Promise<Upstream | null> {
    const ready = this.parents.filter((parent) => parent.state === 'ok');
    if (ready.length === 0) return null;
    const start = this.next++ % ready.length;
    let outcome: Upstream = { kind: 'refused' };
    for (let i = 0; i < ready.length; i++) {
      const parent = ready[(start + i) % ready.length]!;
      outcome = await callParent(parent.url, parent.agent, 'GET', pathAndQuery, null, this.timeoutMs);
      if (outcome.kind === 'answered') return outcome;
      this.observer.failed?.(outcome.kind === 'refused' ? 'connection_refused' : outcome.kind === 'timeout' ? 'timeout' : 'connection_lost');
      // The parent may be gone: look again soon rather than at the next tick.
      void this.pollSoon();
    }
    return outcome;
  }
}
