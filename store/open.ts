// The edge where an issuer or DIP service chooses its engine (SPEC §11): embedded by default,
// PostgreSQL when several instances share one database. Either way the schema is brought up to
// date before the store is handed out.

import { migrate } from './migrate.js';
import { openEmbeddedStore } from './pglite.js';
import { openPostgresStore } from './postgres.js';
import type { Store } from './store.js';

export type StoreConfig =
  | { engine: 'embedded'; dataDir?: string }
  | { engine: 'postgres'; connectionString: string; schema?: string; maxConnections?: number };

export async function openStore(config: StoreConfig): Promise<Store> {
  const store = config.engine === 'embedded' ? await openEmbeddedStore(config.dataDir) : await openPostgresStore(config);
  try {
    await migrate(store);
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}
