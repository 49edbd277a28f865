// Every enclave the parent fronts (SPEC §6, §9): one connection pool each, the state of each
// (unreachable, locked, ready, out of service) and the routing of requests among them. Each time an
// enclave is reached again it is asked `health`; a locked one is unlocked through KMS with the
// keyset (key_request → KMS Decrypt → unlock), and one whose m_commit differs from the keyset's is
// taken out of service: it gets no request at all until it is reached again and passes.

import { timingSafeEqual } from 'node:crypto';
import { DipError, toDipError } from '../protocol/errors.js';
import type { Op, RequestBodies, ResponseBodies } from '../protocol/messages.js';
import { sealedRequestKeyId } from '../protocol/sealed-header.js';
import { KmsCallError, type KeyCustody } from './kms.js';
import type { Keyset } from './keyset.js';
import type { EnclavePool, PoolObserver, PoolState } from './pool.js';

export const ENCLAVE_STATES = ['ready', 'locked', 'unreachable', 'out_of_service'] as const;
export type EnclaveState = (typeof ENCLAVE_STATES)[number];

export const UNLOCK_FAILURES = ['kms_unreachable', 'kms_refused', 'enclave_refused', 'm_commit_mismatch'] as const;
export type UnlockFailure = (typeof UNLOCK_FAILURES)[number];

/** Told what happens to each enclave (by its position in --enclave); nothing secret in it. */
export interface FleetObserver {
  stateChanged?(enclave: number, state: EnclaveState): void;
  unlocked?(enclave: number): void;
  unlockFailed?(enclave: number, reason: UnlockFailure): void;
}

export interface FleetOptions {
  /** Makes enclave `index`'s pool, which must report to `observer`. */
  createPool(index: number, observer: PoolObserver): EnclavePool;
  count: number;
  keyset: Keyset;
  custody: KeyCustody;
  observer?: FleetObserver;
  /** Unlock retries: doubling from `initialMs` to `maxMs`, ±20 % jitter. */
  backoff?: { initialMs: number; maxMs: number };
}

export interface ListedEnclave {
  key_id: Uint8Array;
  status: 'ok' | 'locked';
}

interface Member {
  readonly index: number;
  pool: EnclavePool;
  state: EnclaveState;
  /** From the latest `health` since the enclave was last reached; null before it. */
  keyId: Uint8Array | null;
  /** Counts losses of the enclave: an answer from an earlier incarnation is not applied. */
  incarnation: number;
  checking: boolean;
  again: boolean;
  attempt: number;
  retry: NodeJS.Timeout | undefined;
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && timingSafeEqual(a, b);

export class EnclaveFleet {
  private readonly members: Member[] = [];
  private readonly observer: FleetObserver;
  private readonly backoff: { initialMs: number; maxMs: number };
  private next = 0;
  private closed = false;

  constructor(private readonly options: FleetOptions) {
    this.observer = options.observer ?? {};
    this.backoff = options.backoff ?? { initialMs: 250, maxMs: 10_000 };
    for (let index = 0; index < options.count; index++) {
      const member = { index, state: 'unreachable', keyId: null, incarnation: 0, checking: false, again: false, attempt: 0, retry: undefined } as unknown as Member;
      this.members.push(member);
      member.pool = options.createPool(index, {
        connected: () => this.check(member),
        disconnected: () => this.maybeLost(member),
        connectFailed: () => this.maybeLost(member),
      });
    }
  }

  /** All pools together, for the metrics. */
  get state(): PoolState {
    const total: PoolState = { size: 0, ready: 0, inFlight: 0, queued: 0 };
    for (const { pool } of this.members) {
      const s = pool.state;
      total.size += s.size;
      total.ready += s.ready;
      total.inFlight += s.inFlight;
      total.queued += s.queued;
    }
    return total;
  }

  /** How many enclaves are in each state. */
  counts(): Record<EnclaveState, number> {
    const counts = { ready: 0, locked: 0, unreachable: 0, out_of_service: 0 };
    for (const m of this.members) counts[m.state]++;
    return counts;
  }

  stateOf(index: number): EnclaveState {
    return this.members[index]!.state;
  }

  /** SPEC §6 GET /v1/enclaves: every enclave reached now; only a ready one is "ok". */
  list(): ListedEnclave[] {
    return this.members.filter((m) => m.state !== 'unreachable' && m.keyId !== null).map((m) => ({ key_id: m.keyId!, status: m.state === 'ready' ? 'ok' : 'locked' }));
  }

  /** Null when some enclave is ready; else why not: `keys_unavailable` while one is reached but locked. */
  unavailable(): 'keys_unavailable' | 'enclave_unavailable' | null {
    if (this.members.some((m) => m.state === 'ready')) return null;
    return this.members.some((m) => m.state === 'locked') ? 'keys_unavailable' : 'enclave_unavailable';
  }

  /**
   * Sends a request to the enclave it belongs to: a sealed assign or refresh to the enclave whose
   * boot key has its key_id (`key_unknown` when none has, without forwarding); attest, jwks and
   * health to any ready enclave, in turn, else to a locked one (which answers `keys_unavailable`).
   */
  call<K extends Op>(op: K, body: RequestBodies[K]): Promise<ResponseBodies[K]> {
    let member: Member | undefined;
    if (op === 'assign' || op === 'refresh') {
      const keyId = sealedRequestKeyId((body as RequestBodies['assign']).request);
      if (keyId === null) return Promise.reject(new DipError('bad_request'));
      member = this.members.find((m) => (m.state === 'ready' || m.state === 'locked') && m.keyId !== null && sameBytes(m.keyId, keyId));
      if (member === undefined) return Promise.reject(new DipError('key_unknown'));
    } else if (op === 'attest' || op === 'jwks' || op === 'health') {
      member = this.pick('ready') ?? this.pick('locked');
      if (member === undefined) return Promise.reject(new DipError('enclave_unavailable'));
    } else {
      throw new TypeError('key custody ops are the fleet\'s own');
    }
    return member.pool.call(op, body);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const m of this.members) clearTimeout(m.retry);
    await Promise.all(this.members.map((m) => m.pool.close()));
  }

  private pick(state: EnclaveState): Member | undefined {
    const n = this.members.length;
    for (let i = 0; i < n; i++) {
      const m = this.members[(this.next + i) % n]!;
      if (m.state === state) {
        this.next = (m.index + 1) % n;
        return m;
      }
    }
    return undefined;
  }

  private setState(m: Member, state: EnclaveState): void {
    if (m.state === state) return;
    m.state = state;
    this.observer.stateChanged?.(m.index, state);
  }

  private maybeLost(m: Member): void {
    if (m.pool.state.ready > 0) return;
    if (m.state !== 'unreachable') m.incarnation++;
    m.keyId = null;
    clearTimeout(m.retry);
    m.attempt = 0;
    this.setState(m, 'unreachable');
  }

  /** Runs `inspect` now, or once more after the one running: never two at once for one enclave. */
  private check(m: Member): void {
    if (this.closed) return;
    if (m.checking) {
      m.again = true;
      return;
    }
    m.checking = true;
    void (async () => {
      do {
        m.again = false;
        clearTimeout(m.retry);
        await this.inspect(m);
      } while (m.again && !this.closed);
      m.checking = false;
    })();
  }

  private async inspect(m: Member): Promise<void> {
    const incarnation = m.incarnation;
    let health: ResponseBodies['health'];
    try {
      health = await m.pool.call('health', {});
    } catch {
      // Lost again (the next connection checks again) or not answering: try later.
      this.retryLater(m);
      return;
    }
    if (incarnation !== m.incarnation || this.closed) return;
    m.keyId = health.key_id;
    if (health.status === 'ok') {
      this.judge(m, health.m_commit, false);
      return;
    }
    this.setState(m, 'locked');
    try {
      const { document } = await m.pool.call('key_request', {});
      const ciphertext = await this.options.custody.decrypt(this.options.keyset, document);
      const answer = await m.pool.call('unlock', { recipient_ciphertext: ciphertext });
      if (incarnation !== m.incarnation) return;
      this.judge(m, answer.m_commit, true);
    } catch (error) {
      if (incarnation !== m.incarnation || this.closed) return;
      const reason: UnlockFailure = error instanceof KmsCallError ? error.reason : 'enclave_refused';
      // A lost connection is not the enclave refusing: the reconnect checks again.
      if (reason === 'enclave_refused' && ['enclave_unavailable', 'enclave_timeout'].includes(toDipError(error).code) && m.pool.state.ready === 0) return;
      this.observer.unlockFailed?.(m.index, reason);
      this.retryLater(m);
    }
  }

  /** SPEC §9: an enclave whose m_commit is not the keyset's holds some other secret. */
  private judge(m: Member, mCommit: Uint8Array, unlockedNow: boolean): void {
    m.attempt = 0;
    if (sameBytes(mCommit, this.options.keyset.mCommit)) {
      this.setState(m, 'ready');
      if (unlockedNow) this.observer.unlocked?.(m.index);
      return;
    }
    if (m.state !== 'out_of_service') this.observer.unlockFailed?.(m.index, 'm_commit_mismatch');
    this.setState(m, 'out_of_service');
  }

  private retryLater(m: Member): void {
    if (this.closed || m.pool.state.ready === 0) return;
    const { initialMs, maxMs } = this.backoff;
    const delay = Math.min(maxMs, initialMs * 2 ** Math.min(m.attempt++, 20)) * (0.8 + 0.4 * Math.random());
    clearTimeout(m.retry);
    m.retry = setTimeout(() => this.check(m), delay);
  }
}
