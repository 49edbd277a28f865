// Redeemed Privacy Pass tokens by nonce (SPEC §10–11 Assign): pending with a reserved IP while
// the parent answers, spent on 200, refused (IP released, token usable again) on a definitive
// refusal, spent after MAX_REFUSALS of those. Spent nonces stay until their issuer key retires.

import { releaseIp, reserveFreeIp } from './ip-pool.js';
import type { Store } from './store.js';

export const MAX_REFUSALS = 5;

export type BeginAssignOutcome =
  | { kind: 'reserved'; ip: string }
  /** The token is already pending: a retry gets the same IP. */
  | { kind: 'pending'; ip: string }
  | { kind: 'spent' }
  | { kind: 'exhausted' };

interface NonceRow {
  state: 'pending' | 'refused' | 'spent';
  ip: string | null;
}

function checkBytes(nonce: Uint8Array, keyId?: Uint8Array): void {
  if (nonce.length !== 32) throw new TypeError('a token nonce is 32 bytes');
  if (keyId !== undefined && keyId.length !== 32) throw new TypeError('a token key id is 32 bytes');
}

/** Rolls the transaction back when the pool is empty, so an unused token leaves no row. */
class PoolExhausted extends Error {}

/** In one transaction: mark the token's nonce pending and reserve a free IP through `reservedUntilDay`. */
export async function beginAssign(
  store: Store,
  nonce: Uint8Array,
  keyId: Uint8Array,
  reservedUntilDay: number,
): Promise<BeginAssignOutcome> {
  checkBytes(nonce, keyId);
  try {
    return await store.transaction(async (tx) => {
      // Claim the nonce first: a concurrent claim of the same nonce waits here for this one.
      await tx.query(
        "INSERT INTO token_nonce (nonce, key_id, state) VALUES ($1, $2, 'refused') ON CONFLICT (nonce) DO NOTHING",
        [nonce, keyId],
      );
      const [row] = await tx.query<NonceRow>(
        'SELECT state, host(ip) AS ip FROM token_nonce WHERE nonce = $1 FOR UPDATE',
        [nonce],
      );
      if (row!.state === 'spent') return { kind: 'spent' };
      if (row!.state === 'pending') return { kind: 'pending', ip: row!.ip! };
      const ip = await reserveFreeIp(tx, reservedUntilDay);
      if (ip === null) throw new PoolExhausted();
      await tx.query("UPDATE token_nonce SET state = 'pending', ip = $2::inet WHERE nonce = $1", [nonce, ip]);
      return { kind: 'reserved', ip };
    });
  } catch (error) {
    if (error instanceof PoolExhausted) return { kind: 'exhausted' };
    throw error;
  }
}

/** The pending row of `nonce`, locked for this transaction, or undefined when it is not pending. */
async function lockPending(tx: Pick<Store, 'query'>, nonce: Uint8Array): Promise<NonceRow | undefined> {
  const [row] = await tx.query<NonceRow>(
    "SELECT state, host(ip) AS ip FROM token_nonce WHERE nonce = $1 AND state = 'pending' FOR UPDATE",
    [nonce],
  );
  return row;
}

export type CompleteAssignOutcome = { kind: 'spent'; ip: string } | { kind: 'not_pending' };

/** The parent answered 200: the nonce is spent (its IP link dropped) and the reservation runs to `reservedUntilDay`. */
export async function completeAssign(store: Store, nonce: Uint8Array, reservedUntilDay: number): Promise<CompleteAssignOutcome> {
  checkBytes(nonce);
  return store.transaction(async (tx) => {
    const row = await lockPending(tx, nonce);
    if (row === undefined) return { kind: 'not_pending' };
    await tx.query(
      "UPDATE ip_pool SET reserved_until_day = $2 WHERE ip = $1::inet AND state = 'reserved'",
      [row.ip, reservedUntilDay],
    );
    await tx.query("UPDATE token_nonce SET state = 'spent', ip = NULL WHERE nonce = $1", [nonce]);
    return { kind: 'spent', ip: row.ip! };
  });
}

export type RefuseAssignOutcome = { kind: 'refused'; refusals: number } | { kind: 'spent' } | { kind: 'not_pending' };

/**
 * A definitive refusal (a 400 or 403 code from the enclave, or key_unknown): the IP goes back to
 * the pool and the token may be tried again, unless this was its MAX_REFUSALS-th refusal.
 */
export async function refuseAssign(store: Store, nonce: Uint8Array): Promise<RefuseAssignOutcome> {
  checkBytes(nonce);
  return store.transaction(async (tx) => {
    const row = await lockPending(tx, nonce);
    if (row === undefined) return { kind: 'not_pending' };
    await releaseIp(tx, row.ip!);
    const [updated] = await tx.query<{ state: 'refused' | 'spent'; refusals: number }>(
      `UPDATE token_nonce SET ip = NULL, refusals = refusals + 1,
         state = CASE WHEN refusals + 1 >= $2 THEN 'spent' ELSE 'refused' END
       WHERE nonce = $1 RETURNING state, refusals`,
      [nonce, MAX_REFUSALS],
    );
    return updated!.state === 'spent' ? { kind: 'spent' } : { kind: 'refused', refusals: updated!.refusals };
  });
}

/**
 * The issuer key `keyId` is retired, so its tokens are refused before they reach the store: its
 * spent and refused nonces can go. Pending ones stay until their assign ends or expires.
 */
export async function forgetRetiredKey(store: Store, keyId: Uint8Array): Promise<number> {
  if (keyId.length !== 32) throw new TypeError('a token key id is 32 bytes');
  const rows = await store.query("DELETE FROM token_nonce WHERE key_id = $1 AND state <> 'pending' RETURNING true AS deleted", [
    keyId,
  ]);
  return rows.length;
}
