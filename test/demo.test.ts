// `make demo` as evidence (issue 12): the whole story runs through five real processes (enclave
// with the NSM emulator, KMS emulator, parent, issuer, DIP service), and afterwards no process's
// output holds a token, a subscription id, an IP or a sealed blob of that run, in any encoding
// test/support/secrets.ts knows; and no record in either database joins a subscription id to an
// IP: the issuer's holds subscription ids and no IP, the service's holds IPs and no subscription id.

import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { join } from 'node:path';
import { openStore } from '../store/open.js';
import { startLocalStack, transcript, type DemoSecrets, type LocalStack } from '../scripts/demo.js';
import { assertNoLeak, findLeaks, type Secret } from './support/secrets.js';

let stack: LocalStack;
let secrets: DemoSecrets;
/** Every sealed request and response, token header and backup blob the app sent or received. */
const wire: Secret[] = [];
let logs = '';

/** Keeps what travels sealed or as a credential, to look for it in the logs afterwards. */
const recordingFetch: typeof fetch = async (input, init) => {
  const headers = new Headers(init?.headers);
  const authorization = headers.get('authorization');
  if (authorization !== null) wire.push({ what: 'Authorization header value', value: authorization.replace(/^\S+\s+/, '') });
  if (typeof init?.body === 'string' && init.body.startsWith('{')) {
    const request = (JSON.parse(init.body) as { request?: unknown }).request;
    if (typeof request === 'string') wire.push({ what: 'sealed request', value: request });
  } else if (init?.body instanceof Uint8Array) {
    wire.push({ what: 'backup blob', value: init.body });
  }
  const response = await fetch(input, init);
  if ((response.headers.get('content-type') ?? '').startsWith('application/json')) {
    const text = await response.clone().text();
    const sealed = (JSON.parse(text) as { response?: unknown }).response;
    if (typeof sealed === 'string') wire.push({ what: 'sealed response', value: sealed });
  }
  return response;
};

/** Every row of every table of a database, as JSON text (bytea as hex). */
async function dumpDatabase(dataDir: string): Promise<string> {
  const store = await openStore({ engine: 'embedded', dataDir });
  try {
    const tables = await store.query<{ name: string }>(
      "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
    );
    assert.ok(tables.length > 0, 'the database has tables');
    const rows: string[] = [];
    for (const { name } of tables) {
      const found = await store.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM "${name}" t`);
      rows.push(...found.map(({ row }) => `${name} ${row}`));
    }
    return rows.join('\n');
  } finally {
    await store.close();
  }
}

before(async () => {
  stack = await startLocalStack();
  const write = process.stdout.write;
  // The transcript is the app's own view; it is not what is checked here, so keep the test output short.
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    secrets = await transcript(stack, recordingFetch);
  } finally {
    process.stdout.write = write;
  }
  logs = stack.output();
  await stack.stop();
}, { timeout: 300_000 });

after(async () => {
  await stack?.stop();
});

it('the demo ran the whole story and its five processes logged', () => {
  assert.equal(secrets.ips.length, 2, 'two IPs: before and after the support reset');
  assert.ok(wire.filter((s) => s.what === 'sealed request').length >= 8, 'the sealed requests were recorded');
  assert.ok(wire.some((s) => s.what === 'backup blob'), 'the backup blob was recorded');
  for (const marker of ['"event":"listening"', 'kms: listening on']) assert.ok(logs.includes(marker), `the logs were captured (${marker})`);
});

it('no process output holds a subscription id, IP, token, sealed blob or backup of the run, in any encoding', () => {
  assertNoLeak(logs, [
    { what: 'subscription id', value: secrets.sub, hashed: true },
    ...secrets.ips.map((ip) => ({ what: 'IP', value: ip, hashed: true })),
    ...secrets.tokens.map((value) => ({ what: 'token', value })),
    ...wire,
  ], 'the output of the enclave, KMS emulator, parent, issuer and DIP service');
});

it('no database record joins a subscription id to an IP: the issuer knows subscriptions, the service knows IPs', async () => {
  const issuerRows = await dumpDatabase(join(stack.dir, 'issuer-db'));
  const serviceRows = await dumpDatabase(join(stack.dir, 'service-db'));
  const sub: Secret = { what: 'subscription id', value: secrets.sub, hashed: true };
  const ips: Secret[] = secrets.ips.map((ip) => ({ what: 'IP', value: ip, hashed: true }));
  // Positive controls: each database does hold its own half, so the checks below can fail.
  assert.notEqual(findLeaks(issuerRows, [sub]).length, 0, 'the issuer recorded the subscription as issued');
  for (const ip of ips) assert.notEqual(findLeaks(serviceRows, [ip]).length, 0, 'the service holds the reserved IP');
  assertNoLeak(issuerRows, ips, 'the issuer database');
  assertNoLeak(serviceRows, [sub, ...secrets.tokens.map((value) => ({ what: 'token', value }))], 'the DIP service database');
});
