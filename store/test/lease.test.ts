// In-flight leases (SPEC §11: while one attempt with a token is at the parent, another with the same
// token is token_spent): one holder per key on each engine, across two stores on one PostgreSQL,
// and a killed process's lease is free again once its session ends.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { advisoryLockKey, LocalLeases } from '../lease.js';
import { openPostgresStore } from '../postgres.js';
import { ENGINES, POSTGRES_URL, openTestStore, postgresSkipReason, type TestStore } from './support.js';

const postgresSkip = await postgresSkipReason();
const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
const nonce = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(`lease ${label}`).digest());

test('the local set holds each key once; releasing twice is harmless', () => {
  const leases = new LocalLeases();
  const release = leases.take(nonce('a'));
  assert.ok(release !== null, 'the first take');
  assert.equal(leases.take(nonce('a')), null, 'held');
  assert.ok(leases.take(nonce('b')) !== null, 'another key');
  release!();
  release!();
  assert.equal(leases.size, 1, 'only b is left');
  assert.ok(leases.take(nonce('a')) !== null, 'free again');
});

test('lock keys depend on the scope and the key, and are signed 64-bit integers', () => {
  const key = advisoryLockKey('s1', nonce('a'));
  assert.match(key, /^-?\d{1,19}$/, 'decimal bigint');
  assert.ok(BigInt(key) >= -(2n ** 63n) && BigInt(key) < 2n ** 63n, 'in int8 range');
  assert.notEqual(advisoryLockKey('s2', nonce('a')), key, 'another schema');
  assert.notEqual(advisoryLockKey('s1', nonce('b')), key, 'another nonce');
  assert.equal(advisoryLockKey('s1', nonce('a')), key, 'stable');
});

for (const engine of ENGINES) {
  describe(`leases on the ${engine} engine`, { skip: engine === 'postgres' ? (postgresSkip ?? false) : false }, () => {
    let t: TestStore;
    before(async () => {
      t = await openTestStore(engine);
    });
    after(() => t?.close());

    test('a held lease refuses a second taker of the same nonce until it is released', async () => {
      const release = await t.store.tryLease(nonce('one'));
      assert.ok(release !== null, 'taken');
      assert.equal(await t.store.tryLease(nonce('one')), null, 'held by this instance');
      const other = await t.store.tryLease(nonce('two'));
      assert.ok(other !== null, 'another nonce is independent');
      await release!();
      await release!();
      const again = await t.store.tryLease(nonce('one'));
      assert.ok(again !== null, 'free after release');
      await again!();
      await other!();
    });

    test('of 50 concurrent takers of one nonce exactly one wins', async () => {
      const results = await Promise.all(Array.from({ length: 50 }, () => t.store.tryLease(nonce('race'))));
      const won = results.filter((r) => r !== null);
      assert.equal(won.length, 1, 'one lease');
      await won[0]!();
    });
  });
}

describe('leases across PostgreSQL sessions', { skip: postgresSkip ?? false }, () => {
  let t: TestStore;
  before(async () => {
    t = await openTestStore('postgres');
  });
  after(() => t?.close());

  test('two instances on one database never hold the same lease; a closed instance holds none', async () => {
    const second = await openPostgresStore({ connectionString: POSTGRES_URL, schema: t.schema! });
    const release = await t.store.tryLease(nonce('shared'));
    assert.ok(release !== null, 'the first instance');
    assert.equal(await second.tryLease(nonce('shared')), null, 'the second instance is refused');
    await release!();
    const held = await second.tryLease(nonce('shared'));
    assert.ok(held !== null, 'the second instance after the release');
    assert.equal(await t.store.tryLease(nonce('shared')), null, 'and now the first is refused');
    await second.close();
    await held!();
    const after = await t.store.tryLease(nonce('shared'));
    assert.ok(after !== null, 'closing an instance ends its leases');
    await after!();
  });

  test("a SIGKILLed process's lease is free again once its session ends", async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER, 'lease', POSTGRES_URL, t.schema!, '0', '1'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await new Promise<void>((resolve) => {
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
        if (output.includes('leased\n')) resolve();
      });
    });
    assert.equal(await t.store.tryLease(nonce('worker')), null, 'the worker holds it');
    child.kill('SIGKILL');
    await exited;
    // Wait (blocking, no polling) until the server has ended the dead session and its lock.
    const waiter = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
    await waiter.query("SET statement_timeout = '60s'");
    const key = advisoryLockKey(t.schema!, nonce('worker'));
    await waiter.query('SELECT pg_advisory_lock($1::bigint)', [key]);
    await waiter.query('SELECT pg_advisory_unlock($1::bigint)', [key]);
    await waiter.end();
    const release = await t.store.tryLease(nonce('worker'));
    assert.ok(release !== null, 'free after the kill');
    await release!();
  });
});
