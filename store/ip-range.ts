// The operator's ranges (SPEC §11 "configured from CIDR ranges, IPv4 and IPv6, with exclusions;
// add and drain ranges without downtime"). Adding a range writes one free row per address;
// draining stops handing out its addresses while their reservations run out.

import { StoreError } from './errors.js';
import type { Queryable, Store, Transaction } from './store.js';

/** One range may add at most this many addresses (an IPv6 /112). */
export const MAX_RANGE_ADDRESSES = 65_536;

const CIDR_TEXT = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-f:.]{2,45})\/\d{1,3}$/;

/**
 * The number of addresses in `cidr` when PostgreSQL reads it back exactly as written (lower
 * case, host bits zero, explicit prefix length); otherwise range_invalid.
 */
async function addressCount(store: Queryable, cidr: string): Promise<bigint> {
  if (!CIDR_TEXT.test(cidr)) throw new StoreError('range_invalid');
  let rows: { canonical: string; bits: number; prefix: number }[];
  try {
    rows = await store.query(
      `SELECT text($1::cidr) AS canonical, CASE family($1::cidr) WHEN 4 THEN 32 ELSE 128 END AS bits,
              masklen($1::cidr) AS prefix`,
      [cidr],
    );
  } catch (error) {
    if (error instanceof StoreError && error.sqlState === '22P02') throw new StoreError('range_invalid');
    throw error;
  }
  const row = rows[0]!;
  if (row.canonical !== cidr) throw new StoreError('range_invalid');
  return 1n << BigInt(row.bits - row.prefix);
}

/**
 * Adds `cidr` to the pool, every address free except those inside one of `exclusions`; returns
 * how many addresses it added. Refuses a range that overlaps one already there.
 */
export async function addRange(store: Store, cidr: string, exclusions: readonly string[] = []): Promise<number> {
  const count = await addressCount(store, cidr);
  for (const exclusion of exclusions) await addressCount(store, exclusion);
  if (count > BigInt(MAX_RANGE_ADDRESSES)) throw new StoreError('range_too_large');
  return store.transaction(async (tx) => {
    // Two operators adding overlapping ranges at once must not both pass the overlap check.
    await tx.exec('LOCK TABLE ip_range IN SHARE ROW EXCLUSIVE MODE');
    const overlapping = await tx.query('SELECT 1 AS overlap FROM ip_range WHERE cidr && $1::cidr', [cidr]);
    if (overlapping.length > 0) throw new StoreError('range_overlaps');
    await tx.query('INSERT INTO ip_range (cidr) VALUES ($1::cidr)', [cidr]);
    const added = await tx.query(
      `INSERT INTO ip_pool (ip, range, state)
       SELECT address, $1::cidr, 'free' FROM (
         SELECT set_masklen($1::cidr::inet + n, CASE family($1::cidr) WHEN 4 THEN 32 ELSE 128 END) AS address
         FROM generate_series(0::bigint, $2::bigint - 1) AS n
       ) AS addresses
       WHERE NOT address <<= ANY (string_to_array($3, ',')::cidr[])
       RETURNING true AS added`,
      [cidr, count, exclusions.join(',')],
    );
    return added.length;
  });
}

/** Stops handing out the range's free addresses; reserved ones keep their reservations. */
export async function drainRange(store: Store, cidr: string): Promise<void> {
  await addressCount(store, cidr);
  const rows = await store.query('UPDATE ip_range SET draining = true WHERE cidr = $1::cidr RETURNING true AS drained', [cidr]);
  if (rows.length === 0) throw new StoreError('range_unknown');
}

/** Removes a range none of whose addresses is reserved or in quarantine. */
export async function removeRange(store: Store, cidr: string): Promise<void> {
  await addressCount(store, cidr);
  await store.transaction(async (tx: Transaction) => {
    const ranges = await tx.query('SELECT 1 AS found FROM ip_range WHERE cidr = $1::cidr FOR UPDATE', [cidr]);
    if (ranges.length === 0) throw new StoreError('range_unknown');
    // Locking every address keeps a concurrent reservation (SKIP LOCKED) away from them.
    const inUse = await tx.query<{ state: string }>(
      "SELECT state FROM ip_pool WHERE range = $1::cidr FOR UPDATE",
      [cidr],
    );
    if (inUse.some((row) => row.state !== 'free')) throw new StoreError('range_busy');
    await tx.query('DELETE FROM ip_pool WHERE range = $1::cidr', [cidr]);
    await tx.query('DELETE FROM ip_range WHERE cidr = $1::cidr', [cidr]);
  });
}

export interface RangeFigures {
  cidr: string;
  draining: boolean;
  free: number;
  reserved: number;
  quarantined: number;
}

/** Every range with its counts, for the operator: how many addresses, never which are in use. */
export async function listRanges(store: Queryable): Promise<RangeFigures[]> {
  return store.query<RangeFigures>(
    `SELECT text(r.cidr) AS cidr, r.draining,
            count(p.ip) FILTER (WHERE p.state = 'free')::int AS free,
            count(p.ip) FILTER (WHERE p.state = 'reserved')::int AS reserved,
            count(p.ip) FILTER (WHERE p.state = 'quarantined')::int AS quarantined
     FROM ip_range r LEFT JOIN ip_pool p ON p.range = r.cidr
     GROUP BY r.cidr, r.draining ORDER BY r.cidr`,
  );
}
