// The one storage interface the issuer and the DIP service see (SPEC §11 "one schema, two
// engines"): parameterised SQL, transactions, close. Which engine runs it is decided at the edge
// (open.ts); the query modules are the same SQL on both.

import { StoreError, isRetryable, sqlStateOf, toStoreError } from './errors.js';
import type { ReleaseLease } from './lease.js';

export type { ReleaseLease } from './lease.js';

export type SqlValue = string | number | bigint | boolean | Uint8Array | null;

/** What a query module needs: run one statement with `$1…` parameters, get its rows. */
export interface Queryable {
  query<Row extends object>(sql: string, params?: readonly SqlValue[]): Promise<Row[]>;
}

/** Inside a transaction: the same, plus multi-statement scripts without parameters (migrations). */
export interface Transaction extends Queryable {
  exec(script: string): Promise<void>;
}

export interface Store extends Queryable {
  readonly engine: 'embedded' | 'postgres';
  /**
   * Runs `work` in one transaction (READ COMMITTED; the query modules lock the rows they change)
   * and commits it. On a serialization failure or a deadlock the whole callback runs again, at
   * most MAX_TRANSACTION_ATTEMPTS times in all, so `work` must do nothing but database work.
   * Use only `tx` inside `work`: the embedded engine has one connection, and the store itself
   * waits for the transaction to end.
   */
  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T>;
  /**
   * Takes the in-flight lease of `key` (a token nonce) for this instance, or null when any
   * instance holds it (lease.ts). A lease lives until it is released or its instance dies.
   */
  tryLease(key: Uint8Array): Promise<ReleaseLease | null>;
  close(): Promise<void>;
}

export const MAX_TRANSACTION_ATTEMPTS = 5;

/** Runs one attempt of a transaction until it succeeds, fails for good, or runs out of attempts. */
export async function withRetries<T>(attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (!isRetryable(error)) throw toStoreError(error);
      if (n >= MAX_TRANSACTION_ATTEMPTS) throw new StoreError('store_busy', sqlStateOf(error));
      // A short, growing pause lets the transaction we collided with finish first.
      await new Promise((resolve) => setTimeout(resolve, 5 * n));
    }
  }
}
