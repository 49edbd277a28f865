// The engine table every store test runs twice: the embedded engine in memory, and PostgreSQL in
// a fresh schema per run (dropped after), so parallel runs never share rows. Without PostgreSQL
// the PostgreSQL half is skipped with a message, except under CI, where that is a failure.

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate } from '../migrate.js';
import { openEmbeddedStore } from '../pglite.js';
import { openPostgresStore } from '../postgres.js';
import type { Store } from '../store.js';

export const POSTGRES_URL = process.env.STORE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export type EngineName = 'embedded' | 'postgres';

export interface TestStore {
  store: Store;
  /** PostgreSQL only: the schema this run works in. */
  schema?: string;
  /** Empties every table (the schema stays). */
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** Null when PostgreSQL answers; else why the PostgreSQL tests are skipped. Throws under CI. */
export async function postgresSkipReason(
  connectionString: string = POSTGRES_URL,
  ci: boolean = process.env.CI === 'true',
): Promise<string | null> {
  const pool = new pg.Pool({ connectionString, max: 1, connectionTimeoutMillis: 5000 });
  pool.on('error', () => {});
  try {
    await pool.query('SELECT 1');
    return null;
  } catch {
    if (ci) throw new Error('PostgreSQL is required under CI: nothing answers at STORE_TEST_POSTGRES_URL');
    return 'PostgreSQL does not answer at STORE_TEST_POSTGRES_URL (default 127.0.0.1:5432/test): PostgreSQL tests skipped';
  } finally {
    await pool.end();
  }
}

/** A new, empty schema on the test PostgreSQL; `drop` removes it with everything in it. */
export async function createSchema(): Promise<{ schema: string; drop(): Promise<void> }> {
  const schema = `store_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
  await pool.query(`CREATE SCHEMA ${schema}`);
  await pool.end();
  return {
    schema,
    drop: async () => {
      const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    },
  };
}

const TABLES = 'token_nonce, ip_pool, ip_range, token_issuance, backup';

/** A migrated store on `engine`. */
export async function openTestStore(engine: EngineName): Promise<TestStore> {
  if (engine === 'embedded') {
    const store = await openEmbeddedStore();
    await migrate(store);
    return { store, reset: () => store.query(`TRUNCATE ${TABLES}`).then(() => undefined), close: () => store.close() };
  }
  const { schema, drop } = await createSchema();
  const store = await openPostgresStore({ connectionString: POSTGRES_URL, schema });
  await migrate(store);
  return {
    store,
    schema,
    reset: () => store.query(`TRUNCATE ${TABLES}`).then(() => undefined),
    close: async () => {
      await store.close();
      await drop();
    },
  };
}

export const ENGINES: readonly EngineName[] = ['embedded', 'postgres'];

export function bytes(length: number, fill: number): Uint8Array {
  return new Uint8Array(length).fill(fill);
}
