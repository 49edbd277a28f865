// Day numbers (days since 1970-01-01 UTC): the only time the store keeps (SPEC §10: no time
// finer than a day next to a redemption).

const SECONDS_PER_DAY = 86_400;

/** The day that contains `epochSeconds`. */
export function dayOf(epochSeconds: number): number {
  if (!Number.isFinite(epochSeconds)) throw new TypeError('epochSeconds must be a finite number');
  return Math.floor(epochSeconds / SECONDS_PER_DAY);
}
