// The DIP service's addresses (SPEC §11): reserve a free one atomically, extend a reservation on
// refresh, release one after a definitive refusal, expire reservations through a quarantine, and
// count. Days are day numbers (day.ts); a reservation holds through its reserved_until_day.

import { isCanonicalIp } from '../protocol/ip.js';
import type { Queryable, Store } from './store.js';

export const DEFAULT_QUARANTINE_DAYS = 7;

/**
 * Reserves one free address of a range that is not draining, through `reservedUntilDay`; null
 * when none is left. SKIP LOCKED lets concurrent reservations each take a different address
 * instead of queueing on the same one, so two requests never get the same IP.
 */
export async function reserveFreeIp(tx: Queryable, reservedUntilDay: number): Promise<string | null> {
  const [row] = await tx.query<{ ip: string }>(
    `UPDATE ip_pool SET state = 'reserved', reserved_until_day = $1
     WHERE ip = (
       SELECT p.ip FROM ip_pool p JOIN ip_range r ON r.cidr = p.range
       WHERE p.state = 'free' AND NOT r.draining
       LIMIT 1 FOR UPDATE OF p SKIP LOCKED)
     RETURNING host(ip) AS ip`,
    [reservedUntilDay],
  );
  return row?.ip ?? null;
}

/** Returns a reserved address straight to the pool (a definitive refusal: no token exists for it). */
export async function releaseIp(tx: Queryable, ip: string): Promise<void> {
  await tx.query(
    "UPDATE ip_pool SET state = 'free', reserved_until_day = NULL WHERE ip = $1::inet AND state = 'reserved'",
    [ip],
  );
}

/** Refresh may go on for an address that is reserved or in quarantine (else ip_unavailable). */
export async function isRefreshable(store: Queryable, ip: string): Promise<boolean> {
  if (!isCanonicalIp(ip)) return false;
  const rows = await store.query(
    "SELECT 1 AS found FROM ip_pool WHERE ip = $1::inet AND state IN ('reserved', 'quarantined')",
    [ip],
  );
  return rows.length === 1;
}

/**
 * After a refresh: the address is reserved through `reservedUntilDay` (never less than it
 * already was), also when it was in quarantine. False when it is neither reserved nor quarantined.
 */
export async function extendReservation(store: Queryable, ip: string, reservedUntilDay: number): Promise<boolean> {
  if (!isCanonicalIp(ip)) return false;
  const rows = await store.query(
    `UPDATE ip_pool SET
       reserved_until_day = CASE WHEN state = 'reserved' THEN greatest(reserved_until_day, $2) ELSE $2 END,
       state = 'reserved', quarantine_until_day = NULL
     WHERE ip = $1::inet AND state IN ('reserved', 'quarantined')
     RETURNING true AS extended`,
    [ip, reservedUntilDay],
  );
  return rows.length === 1;
}

export interface ExpiryCounts {
  quarantined: number;
  freed: number;
}

/**
 * The expiry job for `today`: a reservation whose last day has passed goes into quarantine until
 * `quarantineDays` days after that last day, and a quarantine that has run out makes its address
 * free. Both follow from the stored days alone, so a job that ran late catches up exactly. A
 * token still pending on an expired reservation counts as spent: its 60 days are over.
 */
export async function expireReservations(
  store: Store,
  today: number,
  quarantineDays: number = DEFAULT_QUARANTINE_DAYS,
): Promise<ExpiryCounts> {
  if (!Number.isSafeInteger(today) || !Number.isSafeInteger(quarantineDays) || quarantineDays < 0) {
    throw new TypeError('today and quarantineDays must be whole days');
  }
  return store.transaction(async (tx) => {
    await tx.query(
      `UPDATE token_nonce SET state = 'spent', ip = NULL
       WHERE state = 'pending' AND ip IN (SELECT ip FROM ip_pool WHERE state = 'reserved' AND reserved_until_day < $1)`,
      [today],
    );
    const quarantined = await tx.query(
      `UPDATE ip_pool SET state = 'quarantined', reserved_until_day = NULL,
         quarantine_until_day = reserved_until_day + 1 + $2
       WHERE state = 'reserved' AND reserved_until_day < $1
       RETURNING true AS quarantined`,
      [today, quarantineDays],
    );
    const freed = await tx.query(
      `UPDATE ip_pool SET state = 'free', quarantine_until_day = NULL
       WHERE state = 'quarantined' AND quarantine_until_day <= $1
       RETURNING true AS freed`,
      [today],
    );
    return { quarantined: quarantined.length, freed: freed.length };
  });
}

export interface PoolFigures {
  /** Free addresses that may be handed out. */
  free: number;
  reserved: number;
  quarantined: number;
  /** Free addresses of draining ranges, which are no longer handed out. */
  draining: number;
}

export async function poolFigures(store: Queryable): Promise<PoolFigures> {
  const [row] = await store.query<PoolFigures>(
    `SELECT count(*) FILTER (WHERE p.state = 'free' AND NOT r.draining)::int AS free,
            count(*) FILTER (WHERE p.state = 'reserved')::int AS reserved,
            count(*) FILTER (WHERE p.state = 'quarantined')::int AS quarantined,
            count(*) FILTER (WHERE p.state = 'free' AND r.draining)::int AS draining
     FROM ip_pool p JOIN ip_range r ON r.cidr = p.range`,
  );
  return row!;
}
