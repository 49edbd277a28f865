// Pool figures for /readyz and the pool gauges (SPEC §11), read at most once per maxAgeMs so that
// a health probe or a scrape never scans the pool on every call. Concurrent readers share one query.

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
