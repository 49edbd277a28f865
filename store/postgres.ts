// The PostgreSQL engine, for several issuer or DIP-service instances sharing one database
// (SPEC §11). A pool of connections; the same SQL as the embedded engine.

import pg from 'pg';
import { toStoreError } from './errors.js';
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
  return {
    engine: 'postgres',
    query,
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
    close: () => pool.end(),
  };
}
