// The embedded engine (the default, SPEC §11): PGlite, PostgreSQL compiled to WASM, running in
// this process with its data in one directory. One connection: PGlite queues every query and
// transaction behind the one running, so a transaction here never conflicts with another.

import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { toStoreError } from './errors.js';
import { LocalLeases } from './lease.js';
import { withRetries, type SqlValue, type Store, type Transaction } from './store.js';

/** Opens (creating it when missing) the database in `dataDir`; in memory when it is undefined. */
export async function openEmbeddedStore(dataDir?: string): Promise<Store> {
  let db: PGlite;
  try {
    // Only this service reads its database: spent nonces and reservations are nobody else's.
    if (dataDir !== undefined) mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    db = await PGlite.create(dataDir);
  } catch (error) {
    throw toStoreError(error);
  }
  const query = async <Row extends object>(sql: string, params: readonly SqlValue[] = []): Promise<Row[]> => {
    try {
      return (await db.query<Row>(sql, [...params])).rows;
    } catch (error) {
      throw toStoreError(error);
    }
  };
  // One process owns the data directory, so the leases of this process are all the leases there are.
  const leases = new LocalLeases();
  return {
    engine: 'embedded',
    query,
    tryLease: async (key) => {
      const release = leases.take(key);
      return release === null ? null : async () => release();
    },
    transaction: <T>(work: (tx: Transaction) => Promise<T>) =>
      withRetries(() =>
        db.transaction(async (pgTx) => {
          const tx: Transaction = {
            query: async <Row extends object>(sql: string, params: readonly SqlValue[] = []) =>
              (await pgTx.query<Row>(sql, [...params])).rows,
            exec: async (script) => {
              await pgTx.exec(script);
            },
          };
          return work(tx);
        }),
      ),
    close: () => db.close(),
  };
}
