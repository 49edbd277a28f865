// Pool figures for the readiness routes and the pool gauges (SPEC §11), read at most once per
// maxAgeMs so that a health probe or a scrape never scans the pool on every call. Concurrent readers
// share one query. Only the admin listener shows the figures: polled from the app listener they
// would time redemptions more finely than SPEC §10's day.

import { poolFigures, type PoolFigures } from '../store/ip-pool.js';
import type { Queryable } from '../store/store.js';

export interface FiguresCache {
  /** Fresh enough figures; rejects when the store does not answer. */
  get(): Promise<PoolFigures>;
  /** The pool changed: the next get reads it again. */
  invalidate(): void;
}

export function createFiguresCache(store: Queryable, maxAgeMs: number, clock: () => number = () => performance.now()): FiguresCache {
  let cached: { figures: PoolFigures; at: number } | null = null;
  let reading: Promise<PoolFigures> | null = null;
  return {
    get() {
      if (cached !== null && clock() - cached.at < maxAgeMs) return Promise.resolve(cached.figures);
      reading ??= poolFigures(store)
        .then((figures) => {
          cached = { figures, at: clock() };
          return figures;
        })
        .finally(() => {
          reading = null;
        });
      return reading;
    },
    invalidate() {
      cached = null;
    },
  };
}

export type Readiness =
  | { status: 200; body: { status: 'ok'; pool: PoolFigures } }
  | { status: 503; body: { status: 'unavailable'; store: 'ok' | 'down'; parents_ready: number } };

/** Ready when the store answers and a parent reaches a ready enclave; the figures come with it. */
export async function readiness(figures: FiguresCache, parentsReady: () => number): Promise<Readiness> {
  let pool: PoolFigures;
  try {
    pool = await figures.get();
  } catch {
    return { status: 503, body: { status: 'unavailable', store: 'down', parents_ready: parentsReady() } };
  }
  const ready = parentsReady();
  if (ready === 0) return { status: 503, body: { status: 'unavailable', store: 'ok', parents_ready: 0 } };
  return { status: 200, body: { status: 'ok', pool } };
}
