// Measures the embedded engine (PGlite is PostgreSQL in WASM): start time (new data directory,
// reopened one) and write throughput of the issuer's and DIP service's writes; the same writes on
// PostgreSQL when one answers. Usage: npx tsx scripts/bench-store.ts [postgres connection string]

import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { addRange } from '../store/ip-range.js';
import { openStore, type StoreConfig } from '../store/open.js';
import type { Store } from '../store/store.js';
import { recordIssuance } from '../store/token-issuance.js';
import { beginAssign, completeAssign } from '../store/token-nonce.js';

const ISSUANCES = 2000;
const ASSIGNS = 1000;
const sha256 = (text: string): Uint8Array => new Uint8Array(createHash('sha256').update(text).digest());

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const result = await work();
  return [result, performance.now() - start];
}

async function writes(label: string, store: Store): Promise<void> {
  const [, issueMs] = await timed(async () => {
    for (let i = 0; i < ISSUANCES; i++) await recordIssuance(store, `sub-${i}`, 1, sha256(`r${i}`), sha256(`s${i}`));
  });
  await addRange(store, '2001:db8::/112');
  const [, assignMs] = await timed(async () => {
    for (let i = 0; i < ASSIGNS; i++) {
      await beginAssign(store, sha256(`n${i}`), sha256('key'), 20_060);
      await completeAssign(store, sha256(`n${i}`), 20_060);
    }
  });
  const [, concurrentMs] = await timed(() =>
    Promise.all(Array.from({ length: ASSIGNS }, (_, i) => beginAssign(store, sha256(`c${i}`), sha256('key'), 20_060))),
  );
  console.log(`${label}: recordIssuance ${Math.round((ISSUANCES / issueMs) * 1000)}/s sequential; ` +
    `assign (pending+reserve, then spent) ${Math.round((ASSIGNS / assignMs) * 1000)}/s sequential; ` +
    `pending+reserve ${Math.round((ASSIGNS / concurrentMs) * 1000)}/s with ${ASSIGNS} concurrent`);
}

const dataDir = mkdtempSync(join(tmpdir(), 'bench-store-'));
try {
  const [fresh, freshMs] = await timed(() => openStore({ engine: 'embedded', dataDir }));
  await fresh.close();
  const [embedded, reopenMs] = await timed(() => openStore({ engine: 'embedded', dataDir }));
  console.log(`embedded start: ${Math.round(freshMs)} ms with a new data directory (initdb + migrations), ${Math.round(reopenMs)} ms reopening it`);
  await writes('embedded (on disk)', embedded);
  await embedded.close();
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}

const connectionString = process.argv[2] ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `bench_store_${process.pid}`;
const admin = new pg.Pool({ connectionString, max: 1, connectionTimeoutMillis: 3000 });
admin.on('error', () => {});
try {
  await admin.query(`CREATE SCHEMA ${schema}`);
} catch {
  console.log('postgres: no server answers; skipped');
  await admin.end();
  process.exit(0);
}
try {
  const config: StoreConfig = { engine: 'postgres', connectionString, schema };
  const store = await openStore(config);
  await writes('postgres', store);
  await store.close();
} finally {
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  await admin.end();
}
