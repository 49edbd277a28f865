// The expiry job (SPEC §11 Expiry, §10 spent nonces): reservations past their last day go into
// quarantine and quarantines that ran out free their IPs (store/ip-pool.ts), and the nonces of
// keys retired from token-keys.json are forgotten — their tokens are refused before the store.
// It runs at start-up and then on a timer; with several instances on one PostgreSQL each runs it,
// which is harmless: every step follows from the stored days alone.

import { dayOf } from '../store/day.js';
import { expireReservations } from '../store/ip-pool.js';
import type { Store } from '../store/store.js';
import { forgetRetiredKey } from '../store/token-nonce.js';
import { keyState, type TokenKeys } from './token-keys.js';

export interface ExpiryResult {
  /** The day the job ran as, YYYY-MM-DD. */
  today: string;
  quarantined: number;
  freed: number;
  /** Nonces of retired keys dropped. */
  forgotten: number;
}

export function dayText(day: number): string {
  return new Date(day * 86_400_000).toISOString().slice(0, 10);
}

/** The day number of `YYYY-MM-DD`, or null when it is not a real calendar day. */
export function parseDay(text: string): number | null {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) return null;
  const ms = Date.parse(`${text}T00:00:00Z`);
  if (!Number.isFinite(ms) || new Date(ms).toISOString().slice(0, 10) !== text) return null;
  return ms / 86_400_000;
}

/**
 * One run as of `today` (a day number) at the real time `now` (Unix seconds). Which keys are retired
 * follows `now` only: forgetting the spent nonces of a key whose tokens still verify would let them
 * be spent again, so an accelerated `today` never decides it.
 */
export async function runExpiry(store: Store, tokenKeys: TokenKeys, today: number, quarantineDays: number, now: number): Promise<ExpiryResult> {
  const { quarantined, freed } = await expireReservations(store, today, quarantineDays);
  let forgotten = 0;
  for (const key of tokenKeys.keys) {
    if (keyState(key, now) === 'retired') forgotten += await forgetRetiredKey(store, key.tokenKeyId);
  }
  return { today: dayText(today), quarantined, freed, forgotten };
}

export interface ExpiryJob {
  /** Runs now as of `today` (default: the clock's day); a later day only with an accelerated clock. */
  run(today?: number): Promise<ExpiryResult>;
  stop(): void;
}

export interface ExpiryJobOptions {
  store: Store;
  tokenKeys: TokenKeys;
  quarantineDays: number;
  now: () => number;
  /** `run(today)` may take a day after the clock's (development and demos only). */
  acceleratedClock: boolean;
  intervalMs: number;
  onRun(result: ExpiryResult): void;
  onError(error: unknown): void;
}

/** Starts the timer; the first run is the caller's (start-up awaits it). */
export function startExpiryJob(options: ExpiryJobOptions): ExpiryJob {
  const run = async (today = dayOf(options.now())): Promise<ExpiryResult> => {
    const now = options.now();
    if (!Number.isSafeInteger(today) || today < dayOf(now)) throw new RangeError('the expiry job never runs as of a day before today');
    if (today > dayOf(now) && !options.acceleratedClock) throw new RangeError('the expiry job runs as of a later day only with an accelerated clock');
    const result = await runExpiry(options.store, options.tokenKeys, today, options.quarantineDays, now);
    options.onRun(result);
    return result;
  };
  const timer = setInterval(() => {
    run().catch(options.onError);
  }, options.intervalMs);
  timer.unref();
  return { run, stop: () => clearInterval(timer) };
}
