// The Store itself on both engines: migrations (ordered, idempotent, recorded, safe when two
// start at once), transaction retries, errors without row values, the embedded engine's data
// directory, and SPEC §1/§10's privacy rules read from information_schema.

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { StoreError, toStoreError } from '../errors.js';
import { loadMigrations, migrate, type Migration } from '../migrate.js';
import { openStore } from '../open.js';
import { openEmbeddedStore } from '../pglite.js';
import { openPostgresStore } from '../postgres.js';
import { MAX_TRANSACTION_ATTEMPTS, type Store } from '../store.js';
import { dayOf } from '../day.js';
import { addRange } from '../ip-range.js';
import { expireReservations, extendReservation, poolFigures } from '../ip-pool.js';
import { beginAssign, completeAssign, refuseAssign } from '../token-nonce.js';
import { recordIssuance } from '../token-issuance.js';
import { putBackup } from '../backup.js';
import { ENGINES, POSTGRES_URL, bytes, createSchema, openTestStore, postgresSkipReason, type TestStore } from './support.js';

const postgresSkip = await postgresSkipReason();
const storeError = (code: string, sqlState?: string) => (e: unknown) =>
  e instanceof StoreError && e.code === code && (sqlState === undefined || e.sqlState === sqlState);
const serializationFailure = (): Error => Object.assign(new Error('could not serialize access'), { code: '40001' });

const TABLES = ['backup', 'ip_pool', 'ip_range', 'schema_migrations', 'token_issuance', 'token_nonce'];

for (const engine of ENGINES) {
  describe(`the store on the ${engine} engine`, { skip: engine === 'postgres' ? (postgresSkip ?? false) : false }, () => {
    let t: TestStore;
    before(async () => {
      t = await openTestStore(engine);
    });
    after(() => t?.close());
    beforeEach(() => t.reset());

    test('migrations are applied in order once, recorded with their hash, and a second run applies none', async () => {
      const [row] = await t.store.query<{ versions: string }>("SELECT string_agg(version::text || ':' || name, ' ' ORDER BY version) AS versions FROM schema_migrations");
      assert.equal(row!.versions, '1:token_issuance 2:ip_pool 3:token_nonce 4:backup', 'recorded in order');
      assert.deepEqual(await migrate(t.store), [], 'nothing left to apply');
      const tables = await t.store.query<{ table_name: string }>(
        'SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name',
      );
      assert.deepEqual(tables.map((r) => r.table_name), TABLES, 'the tables of the schema');
    });

    test('a new migration is applied after the others; an unknown or changed one is refused', async () => {
      const next: Migration = { version: 5, name: 'probe', sql: 'CREATE TABLE probe (id integer PRIMARY KEY)' };
      assert.deepEqual(await migrate(t.store, [...loadMigrations(), next]), [5], 'only the new one');
      await assert.rejects(migrate(t.store), storeError('migration_unknown'), 'the database is ahead of the code');
      await assert.rejects(migrate(t.store, [...loadMigrations(), { ...next, sql: `${next.sql};` }]), storeError('migration_changed'), 'a released migration edited');
      await t.store.transaction(async (tx) => {
        await tx.exec('DROP TABLE probe');
        await tx.query('DELETE FROM schema_migrations WHERE version = 5');
      });
    });

    test(`a transaction that keeps failing to serialize runs ${MAX_TRANSACTION_ATTEMPTS} times and ends store_busy; a passing retry commits once`, async () => {
      let attempts = 0;
      await assert.rejects(
        t.store.transaction(async () => {
          attempts++;
          throw serializationFailure();
        }),
        storeError('store_busy', '40001'),
        'retries exhausted',
      );
      assert.equal(attempts, MAX_TRANSACTION_ATTEMPTS, 'attempts');
      attempts = 0;
      const result = await t.store.transaction(async (tx) => {
        attempts++;
        await tx.query("INSERT INTO ip_range (cidr) VALUES ('192.0.2.0/32')");
        if (attempts < 3) throw Object.assign(new Error('deadlock detected'), { code: '40P01' });
        return 'committed';
      });
      assert.equal(result, 'committed', 'result of the third attempt');
      assert.equal(attempts, 3, 'attempts');
      const [row] = await t.store.query<{ n: number }>('SELECT count(*)::int AS n FROM ip_range');
      assert.equal(row!.n, 1, 'the rolled-back attempts left nothing');
    });

    test('a database error carries its SQLSTATE and a fixed message, never the values of the row', async () => {
      await t.store.query("INSERT INTO ip_range (cidr) VALUES ('192.0.2.0/32')");
      const duplicate = t.store.query("INSERT INTO ip_range (cidr) VALUES ('192.0.2.0/32')");
      await assert.rejects(duplicate, (e: unknown) => e instanceof StoreError && e.code === 'store_failed' && e.sqlState === '23505' && !/192\.0\.2/.test(`${e.message} ${e.stack}`), 'unique violation');
      const inTransaction = t.store.transaction((tx) => tx.query('INSERT INTO ip_range (cidr) VALUES ($1)', ['198.51.100.7/33']));
      await assert.rejects(inTransaction, (e: unknown) => e instanceof StoreError && e.sqlState === '22P02' && !e.message.includes('198.51'), 'bad input in a transaction');
      const own = new Error('the caller’s own error');
      await assert.rejects(t.store.transaction(async () => { throw own; }), (e: unknown) => e === own, 'a callback error passes through unchanged');
    });

    test('after a full set of operations no column holds a time finer than a day, and no table joins a sub to an IP', async () => {
      const today = dayOf(1_750_000_000);
      await recordIssuance(t.store, 'sub-privacy', 1, bytes(32, 1), bytes(64, 2));
      await addRange(t.store, '192.0.2.0/30');
      await addRange(t.store, '2001:db8::/126');
      for (const [i, label] of ['a', 'b', 'c'].entries()) await beginAssign(t.store, bytes(32, 10 + i), bytes(32, 7), today + 60).then(() => label);
      await completeAssign(t.store, bytes(32, 10), today + 60);
      await refuseAssign(t.store, bytes(32, 11));
      await extendReservation(t.store, '192.0.2.0', today + 90);
      await expireReservations(t.store, today + 200);
      await putBackup(t.store, bytes(32, 3), bytes(100, 4));
      assert.ok((await poolFigures(t.store)).free > 0, 'the operations ran');

      const columns = await t.store.query<{ table_name: string; column_name: string; data_type: string }>(
        `SELECT table_name, column_name, data_type FROM information_schema.columns
         WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`,
      );
      assert.ok(columns.length >= 20, 'the columns were read');
      const timeTypes = columns.filter((c) => /time|interval/.test(c.data_type));
      assert.deepEqual(timeTypes, [], 'no timestamp, time or interval column');
      for (const c of columns.filter((c) => /day|date|time|_at$|expir|until/.test(c.column_name) || c.data_type === 'date')) {
        assert.ok(c.column_name.endsWith('_day') && c.data_type === 'integer', `${c.table_name}.${c.column_name} is a day number (${c.data_type})`);
      }
      const byTable = new Map<string, string[]>();
      for (const c of columns) byTable.set(c.table_name, [...(byTable.get(c.table_name) ?? []), c.column_name]);
      for (const [table, names] of byTable) {
        const hasSub = names.some((n) => /sub|did/.test(n));
        const hasIp = names.some((n) => /(^|_)ip($|_)|cidr|range/.test(n)) || columns.some((c) => c.table_name === table && c.data_type === 'inet');
        assert.ok(!(hasSub && hasIp), `${table} holds both a subscription and an IP: ${names.join(', ')}`);
      }
      assert.ok(byTable.get('token_issuance')!.includes('sub'), 'the check sees the sub column');
      assert.ok(byTable.get('ip_pool')!.includes('ip'), 'the check sees the ip column');
    });
  });
}

describe('migrations on one PostgreSQL started by two instances at once', { skip: postgresSkip ?? false }, () => {
  test('both succeed and every migration is applied exactly once', async () => {
    const { schema, drop } = await createSchema();
    const stores: Store[] = [];
    try {
      for (let i = 0; i < 3; i++) stores.push(await openPostgresStore({ connectionString: POSTGRES_URL, schema, maxConnections: 1 }));
      const applied = await Promise.all(stores.map((store) => migrate(store)));
      assert.deepEqual(applied.flat().sort(), [1, 2, 3, 4], `each version once over all instances: ${JSON.stringify(applied)}`);
      const [row] = await stores[0]!.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
      assert.equal(row!.n, 4, 'recorded once each');
    } finally {
      await Promise.all(stores.map((store) => store.close()));
      await drop();
    }
  });
});

describe('a real deadlock on PostgreSQL', { skip: postgresSkip ?? false }, () => {
  test('two transactions locking two rows in opposite orders both commit: the victim runs again', async () => {
    const t = await openTestStore('postgres');
    try {
      await t.store.query("INSERT INTO ip_range (cidr) VALUES ('192.0.2.0/32'), ('198.51.100.0/32')");
      let attempts = 0;
      let arrived = 0;
      let release!: () => void;
      const bothHoldOneRow = new Promise<void>((resolve) => (release = resolve));
      const lockBoth = (first: string, second: string) =>
        t.store.transaction(async (tx) => {
          attempts++;
          await tx.query('UPDATE ip_range SET draining = true WHERE cidr = $1::cidr', [first]);
          if (++arrived === 2) release();
          await bothHoldOneRow;
          await tx.query('UPDATE ip_range SET draining = true WHERE cidr = $1::cidr', [second]);
          return 'committed';
        });
      const results = await Promise.all([lockBoth('192.0.2.0/32', '198.51.100.0/32'), lockBoth('198.51.100.0/32', '192.0.2.0/32')]);
      assert.deepEqual(results, ['committed', 'committed'], 'both transactions commit');
      assert.equal(attempts, 3, 'the deadlock victim ran once more');
    } finally {
      await t.close();
    }
  });
});

describe('opening a store', () => {
  test('openStore on PostgreSQL migrates; a bad schema name is a TypeError; no server is store_unavailable', { skip: postgresSkip ?? false }, async () => {
    const { schema, drop } = await createSchema();
    try {
      const store = await openStore({ engine: 'postgres', connectionString: POSTGRES_URL, schema });
      assert.equal(store.engine, 'postgres', 'engine');
      assert.deepEqual(await migrate(store), [], 'already migrated');
      await store.close();
    } finally {
      await drop();
    }
    await assert.rejects(openPostgresStore({ connectionString: POSTGRES_URL, schema: 'x; DROP TABLE y' }), TypeError, 'schema name');
    await assert.rejects(openPostgresStore({ connectionString: 'postgres://postgres@127.0.0.1:9/test' }), storeError('store_unavailable'), 'nothing listens on port 9');
  });

  test('the embedded engine creates its directory, keeps its data there across a restart, and refuses a database newer than the code', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'store-embedded-'));
    const dataDir = join(parent, '.dev', 'issuer-db');
    try {
      const first = await openStore({ engine: 'embedded', dataDir });
      assert.equal(first.engine, 'embedded', 'engine');
      await recordIssuance(first, 'sub-disk', 1, bytes(32, 5), bytes(8, 6));
      await first.query("INSERT INTO schema_migrations (version, name, sha256) VALUES (99, 'future', '\\x00')");
      await first.close();
      await assert.rejects(openStore({ engine: 'embedded', dataDir }), storeError('migration_unknown'), 'a newer database');
      const second = await openEmbeddedStore(dataDir);
      const [row] = await second.query<{ n: number }>("SELECT count(*)::int AS n FROM token_issuance WHERE sub = 'sub-disk'");
      assert.equal(row!.n, 1, 'the issuance survived the restart');
      await second.close();
      assert.equal(statSync(dataDir).mode & 0o777, 0o700, 'only its owner reads the database');
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  test('migration files must be numbered 1, 2, 3… and named NNN_name.sql', () => {
    assert.deepEqual(loadMigrations().map((m) => m.version), [1, 2, 3, 4], 'the shipped migrations');
    const dir = mkdtempSync(join(tmpdir(), 'store-migrations-'));
    try {
      const url = pathToFileURL(`${dir}/`);
      writeFileSync(join(dir, '002_b.sql'), 'SELECT 2');
      writeFileSync(join(dir, '001_a.sql'), 'SELECT 1');
      writeFileSync(join(dir, 'notes.txt'), 'ignored');
      assert.deepEqual(loadMigrations(url).map((m) => `${m.version}:${m.name}`), ['1:a', '2:b'], 'sorted by number');
      writeFileSync(join(dir, '004_d.sql'), 'SELECT 4');
      assert.throws(() => loadMigrations(url), TypeError, 'a gap');
      rmSync(join(dir, '004_d.sql'));
      writeFileSync(join(dir, '2_c.sql'), 'SELECT 3');
      assert.throws(() => loadMigrations(url), TypeError, 'a badly named file');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('connection failures become store_unavailable and other values pass through', () => {
    assert.ok(storeError('store_unavailable')(toStoreError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))), 'errno');
    assert.ok(storeError('store_unavailable', '57P01')(toStoreError(Object.assign(new Error('x'), { code: '57P01' }))), 'admin shutdown');
    assert.ok(storeError('store_unavailable')(toStoreError(new Error('Connection terminated unexpectedly'))), 'pg lost its socket');
    const other = new Error('other');
    assert.equal(toStoreError(other), other, 'an unrelated error');
    assert.equal(toStoreError(null), null, 'not an error at all');
  });

  test('without PostgreSQL its tests are skipped with a message, but under CI that is a failure', async () => {
    const nowhere = 'postgres://postgres@127.0.0.1:9/test';
    assert.match((await postgresSkipReason(nowhere, false)) ?? '', /PostgreSQL tests skipped/, 'outside CI: a reason to skip');
    await assert.rejects(postgresSkipReason(nowhere, true), /required under CI/, 'under CI: an error');
  });

  test('dayOf counts whole UTC days and refuses what is not a time', () => {
    assert.equal(dayOf(0), 0, 'the epoch');
    assert.equal(dayOf(86_399), 0, 'the last second of day 0');
    assert.equal(dayOf(86_400), 1, 'the first second of day 1');
    assert.equal(dayOf(-1), -1, 'before the epoch');
    assert.throws(() => dayOf(Number.NaN), TypeError, 'NaN');
  });
});
