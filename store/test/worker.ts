// A second (and third) OS process for the multi-process tests: opens the PostgreSQL schema it is
// given, says "ready", waits for "go" on stdin so that both processes start together, runs its
// share of concurrent operations and prints what it got as one JSON line.
// In `lease` mode it takes the lease of one nonce, says "leased" and waits to be killed.
// Usage: worker.ts issue|reserve|lease <connectionString> <schema> <process index> <count>

import { createHash } from 'node:crypto';
import { openPostgresStore } from '../postgres.js';
import { recordIssuance } from '../token-issuance.js';
import { beginAssign } from '../token-nonce.js';

const [mode, connectionString, schema, index, count] = process.argv.slice(2) as [string, string, string, string, string];
const sha256 = (text: string): Uint8Array => new Uint8Array(createHash('sha256').update(text).digest());

const store = await openPostgresStore({ connectionString, schema });
if (mode === 'lease') {
  const release = await store.tryLease(new Uint8Array(createHash('sha256').update('lease worker').digest()));
  if (release === null) process.exit(3);
  process.stdout.write('leased\n');
  await new Promise(() => {});
}
process.stdout.write('ready\n');
await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));

const jobs = Array.from({ length: Number(count) }, (_, i) =>
  mode === 'issue'
    ? recordIssuance(store, 'sub-shared', 1, sha256(`request ${index}-${i}`), sha256(`response ${index}-${i}`))
    : beginAssign(store, sha256(`nonce ${index}-${i}`), new Uint8Array(32).fill(7), 20_000),
);
const outcomes = await Promise.all(jobs);
process.stdout.write(`${JSON.stringify(outcomes)}\n`);
await store.close();
process.exit(0);
