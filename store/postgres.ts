// The PostgreSQL engine, for several issuer or DIP-service instances sharing one database
// (SPEC §11). A pool of connections; the same SQL as the embedded engine.

import pg, { type Client } from 'pg';
import { toStoreError } from './errors.js';
import { LocalLeases, advisoryLockKey, type ReleaseLease } from './lease.js';
import { withRetries, type SqlValue, type Store, type Transaction } from './store.js';

export interface PostgresOptions {
  connectionString: string;
  /** Schema to work in (its search_path); tests use a fresh one per run. Default: `public`. */
  schema?: string;
  /** Connections in the pool (default 10). */
  maxConnections?: number;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export async function openPostgresStore(options: PostgresOptions): Promise<Store> {
  if (options.schema !== undefined && !SCHEMA_NAME.test(options.schema)) {
    throw new TypeError('schema must be a lower-case SQL identifier');
  }
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: 10_000,
    ...(options.schema === undefined ? {} : { options: `-c search_path=${options.schema}` }),
  });
  // An idle connection that the server drops must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  const query = async <Row extends object>(sql: string, params: readonly SqlValue[] = []): Promise<Row[]> => {
    try {
      return (await pool.query<Row>(sql, [...params])).rows;
    } catch (error) {
      throw toStoreError(error);
    }
  };
  // Fail now, with a clear code, rather than at the first request.
  try {
    await query('SELECT 1');
  } catch (error) {
    await pool.end();
    throw error;
  }
  const leases = new LocalLeases();
  const scope = options.schema ?? '';
  // The leases' own session: its advisory locks end with it, so a killed instance holds none.
  let session: Client | null = null;
  let connecting: Promise<Client> | null = null;
  const leaseSession = (): Promise<Client> => {
    if (session !== null) return Promise.resolve(session);
    connecting ??= (async () => {
      const client = new pg.Client({
        connectionString: options.connectionString,
        connectionTimeoutMillis: 10_000,
        ...(options.schema === undefined ? {} : { options: `-c search_path=${options.schema}` }),
      });
      // A lost session has lost its locks; the next lease opens a new one.
      client.on('error', () => {
        if (session === client) session = null;
        void client.end().catch(() => {});
      });
      await client.connect();
      session = client;
      return client;
    })().finally(() => {
      connecting = null;
    });
    return connecting;
  };
  const tryLease = async (key: Uint8Array): Promise<ReleaseLease | null> => {
    const releaseLocal = leases.take(key);
    if (releaseLocal === null) return null;
    const lockKey = advisoryLockKey(scope, key);
    let client: Client;
    try {
      client = await leaseSession();
      const [row] = (await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [lockKey])).rows;
      if (row?.locked !== true) {
        releaseLocal();
        return null;
      }
    } catch (error) {
      releaseLocal();
      throw toStoreError(error);
    }
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      try {
        // A session that died took the lock with it: nothing left to unlock.
        if (session === client) await client.query('SELECT pg_advisory_unlock($1::bigint)', [lockKey]);
      } catch {
        // The session is failing; its end releases the lock.
      } finally {
        releaseLocal();
      }
    };
  };
  return {
    engine: 'postgres',
    query,
    tryLease,
    transaction: <T>(work: (tx: Transaction) => Promise<T>) =>
      withRetries(async () => {
        const client = await pool.connect();
        let broken: Error | undefined;
        try {
          await client.query('BEGIN');
          const tx: Transaction = {
            query: async <Row extends object>(sql: string, params: readonly SqlValue[] = []) =>
              (await client.query<Row>(sql, [...params])).rows,
            exec: async (script) => {
              await client.query(script);
            },
          };
          const result = await work(tx);
          await client.query('COMMIT');
          return result;
        } catch (error) {
          await client.query('ROLLBACK').catch((rollbackError: Error) => {
            broken = rollbackError;
          });
          throw error;
        } finally {
          client.release(broken);
        }
      }),
    close: async () => {
      const client = session ?? (await connecting?.catch(() => null)) ?? null;
      session = null;
      await client?.end().catch(() => {});
      await pool.end();
    },
  };
}
