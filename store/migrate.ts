// Migrations (STYLE.md "New rooms keep the same shape"): numbered SQL files in migrations/,
// applied in order in one transaction and recorded in schema_migrations with their SHA-256.
// Two processes starting at once on one PostgreSQL take turns on an advisory lock.

import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { StoreError } from './errors.js';
import type { Store } from './store.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

const FILE_NAME = /^(\d{3})_([a-z0-9_]+)\.sql$/;
const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);

/** Reads `NNN_name.sql` files; the numbers must run 1, 2, 3… with no gap or repeat. */
export function loadMigrations(dir: URL = MIGRATIONS_DIR): Migration[] {
  const migrations = readdirSync(dir)
    .filter((file) => file.endsWith('.sql'))
    .map((file) => {
      const match = FILE_NAME.exec(file);
      if (match === null) throw new TypeError('a migration file is not named NNN_name.sql');
      return { version: Number(match[1]), name: match[2]!, sql: readFileSync(new URL(file, dir), 'utf8') };
    })
    .sort((a, b) => a.version - b.version);
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new TypeError('migration numbers must run 1, 2, 3… with no gap or repeat');
  });
  return migrations;
}

function sha256(text: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(text, 'utf8').digest());
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** Applies the migrations the database lacks; returns the versions it applied (none: up to date). */
export async function migrate(store: Store, migrations: readonly Migration[] = loadMigrations()): Promise<number[]> {
  return store.transaction(async (tx) => {
    // Held until this transaction ends; one lock per schema, so test schemas do not wait on each other.
    await tx.query("SELECT pg_advisory_xact_lock(hashtext('dip-store-migrations'), hashtext(current_schema()))");
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      sha256 bytea NOT NULL
    )`);
    const applied = await tx.query<{ version: number; sha256: Uint8Array }>(
      'SELECT version, sha256 FROM schema_migrations ORDER BY version',
    );
    const known = new Map(migrations.map((m) => [m.version, m]));
    for (const row of applied) {
      const migration = known.get(row.version);
      if (migration === undefined) throw new StoreError('migration_unknown');
      if (!sameBytes(new Uint8Array(row.sha256), sha256(migration.sql))) throw new StoreError('migration_changed');
    }
    const done = new Set(applied.map((row) => row.version));
    const versions: number[] = [];
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)', [
        migration.version,
        migration.name,
        sha256(migration.sql),
      ]);
      versions.push(migration.version);
    }
    return versions;
  });
}
