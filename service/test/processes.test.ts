// The service as an OS process (service/main.ts): a process SIGKILLed while the parent holds an
// assign loses nothing after a restart on the same store; a run of every route leaves no token,
// IP, backup id, blob or sealed request in the output or the admin /metrics; bad settings exit 2
// naming the flag, start-up failures exit 1 with their code. (Pool sharing: processes-postgres and
// processes-embedded.)

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { createSchema, postgresSkipReason, POSTGRES_URL } from '../../store/test/support.js';
import { assertNoLeak, type Secret } from '../../test/support/secrets.js';
import { assignRequest, call, errorCode, mintToken, refreshRequest, sealedRequest, tempDir, writeTokenKeys } from './support.js';
import { MAIN, ENCLAVE, KEY, exitOf, runService, running, useFakeParent } from './processes.js';

const fakeParent = useFakeParent();

const embeddedDir = join(tempDir(), 'service-db');

test('a service SIGKILLed while the parent holds an assign: after a restart the IP is still reserved, no other token gets it, and the first token\'s retry does', async () => {
  const tokenKeys = writeTokenKeys([KEY]);
  const args = ['--parent', fakeParent().url, '--token-keys', tokenKeys, '--store', embeddedDir, '--range', '192.0.2.0/31'];
  const first = running(await runService(args));
  let arrived!: (ip: string) => void;
  const atParent = new Promise<string>((resolve) => (arrived = resolve));
  fakeParent().script = (c) => ({ kind: 'custom', answer: () => arrived(c.body!.ip!) });
  const holder = mintToken(KEY).authorization;
  const lost = assignRequest(first.url, holder, sealedRequest(ENCLAVE)).catch(() => null);
  const held = await atParent;
  await first.kill();
  assert.equal(await lost, null, 'the client lost its answer');
  fakeParent().script = () => ({ kind: 'ok' });
  const second = running(await runService(args));
  try {
    const other = await assignRequest(second.url, mintToken(KEY).authorization, sealedRequest(ENCLAVE));
    assert.equal(other.status, 200, 'another token gets an IP');
    assert.notEqual(other.json!.ip, held, 'but not the one held for the first token');
    assert.equal(errorCode(await assignRequest(second.url, mintToken(KEY).authorization, sealedRequest(ENCLAVE))), 'pool_exhausted', 'the held IP is not free');
    const retry = await assignRequest(second.url, holder, sealedRequest(ENCLAVE));
    assert.equal(retry.status, 200, 'the first token\'s retry');
    assert.equal(retry.json!.ip, held, 'gets the IP held for it');
  } finally {
    assert.equal(await second.stop(), 0, 'stops cleanly');
  }
});

test('privacy: a run of every route with real tokens, IPs and backup ids leaves none of them in the output, the admin /metrics or /readyz', async () => {
  const tokenKeys = writeTokenKeys([KEY]);
  const service = running(await runService(['--parent', fakeParent().url, '--token-keys', tokenKeys, '--store', embeddedDir, '--range', '198.51.100.0/30', '--admin-listen', '127.0.0.1:0']));
  const secrets: Secret[] = [];
  let metrics = '';
  let rangesOutput = '';
  try {
    const { token, authorization } = mintToken(KEY);
    const request = sealedRequest(ENCLAVE);
    secrets.push({ what: 'token', value: authorization }, { what: 'token nonce', value: token.nonce }, { what: 'token authenticator', value: token.authenticator }, { what: 'sealed request', value: Buffer.from(request, 'base64url') });
    const assigned = await assignRequest(service.url, authorization, request);
    assert.equal(assigned.status, 200, assigned.text);
    const ip = assigned.json!.ip as string;
    secrets.push({ what: 'IP', value: ip, hashed: true }, { what: 'sealed response', value: Buffer.from(assigned.json!.response as string, 'base64url') });
    assert.equal(errorCode(await assignRequest(service.url, authorization, sealedRequest(ENCLAVE))), 'token_spent', 'spent');
    const forged = `${authorization.slice(0, -6)}AAAA="`;
    secrets.push({ what: 'forged token', value: forged });
    assert.equal((await assignRequest(service.url, forged, sealedRequest(ENCLAVE))).status, 401, 'a forged token');
    const refreshed = await refreshRequest(service.url, ip, sealedRequest(ENCLAVE, 0x02));
    assert.equal(refreshed.status, 200, 'refresh');
    secrets.push({ what: 'refresh response', value: Buffer.from(refreshed.json!.response as string, 'base64url') });
    assert.equal((await refreshRequest(service.url, '198.51.100.3', sealedRequest(ENCLAVE, 0x02))).status, 410, 'an unreserved IP');
    secrets.push({ what: 'unreserved IP', value: '198.51.100.3', hashed: true });
    const id = Buffer.alloc(32, 0x5a).toString('base64url');
    const blob = Buffer.from('an encrypted DRT backup, opaque to the service');
    secrets.push({ what: 'backup id', value: id }, { what: 'backup id bytes', value: Buffer.alloc(32, 0x5a) }, { what: 'backup blob', value: blob });
    assert.equal((await call(`${service.url}/v1/backup/${id}`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: blob })).status, 204, 'put');
    assert.equal((await call(`${service.url}/v1/backup/${id}`)).status, 200, 'get');
    assert.equal((await call(`${service.url}/v1/backup/${id}`, { method: 'DELETE' })).status, 204, 'delete');
    const nonce = Buffer.alloc(32, 0x33).toString('base64url');
    secrets.push({ what: 'attestation nonce', value: nonce });
    assert.equal((await call(`${service.url}/v1/attestation?nonce=${nonce}`)).status, 200, 'attestation');
    assert.equal((await call(`${service.url}/v1/keys`)).status, 200, 'keys');
    assert.equal((await call(`${service.url}/healthz`)).status, 200, 'healthz');
    assert.equal((await call(`${service.url}/readyz`)).status, 200, 'readyz');
    assert.equal((await call(`${service.url}/v1/${ip}`)).status, 404, 'an IP in an unknown path');
    assert.equal((await call(`${service.adminUrl}/admin/pool`)).status, 200, 'admin pool');
    assert.equal((await call(`${service.adminUrl}/admin/expire`, { method: 'POST' })).status, 200, 'admin expire');
    assert.equal((await call(`${service.url}/metrics`)).status, 404, 'no /metrics on the app listener');
    const ready = await call(`${service.adminUrl}/readyz`);
    assert.equal(ready.status, 200, 'admin readyz');
    const scraped = await call(`${service.adminUrl}/metrics`);
    assert.equal(scraped.status, 200, 'admin metrics');
    metrics = `${scraped.text}\n${ready.text}`;
    rangesOutput = await new Promise<string>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'ranges', 'list', '--admin', service.adminUrl!], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      child.once('close', (code) => resolve(`${code}\n${text}`));
    });
  } finally {
    assert.equal(await service.stop(), 0, 'stops cleanly');
  }
  assert.match(rangesOutput, /^0\n(.*\n)*198\.51\.100\.0\/30 +free 3 +reserved 1 /, 'the ranges command through main.ts');
  assert.match(service.output(), /"route":"\/v1\/backup\/:id"/, 'the backup route is logged as its template');
  assert.doesNotMatch(service.output(), /"time"|\d{4}-\d{2}-\d{2}T\d{2}:/, 'no line carries a time');
  assertNoLeak(service.output(), secrets, 'the service output');
  assertNoLeak(metrics, secrets, 'the admin /metrics and /readyz');
});

test('bad settings exit 2 naming the flag; a missing token-keys file or an overlapping range exit 1 with their code', async (t) => {
  const tokenKeys = writeTokenKeys([KEY]);
  const cases: Array<[string[], RegExp]> = [
    [['--parent', fakeParent().url, '--token-keys', tokenKeys, '--admin-listen', '0.0.0.0:8091'], /--admin-listen must be a loopback address/],
    [['--parent', fakeParent().url, '--token-keys', tokenKeys, '--quarantine-days', '366'], /--quarantine-days must be a whole number from 0 to 365/],
    [['--token-keys', tokenKeys], /--parent is required/],
    [['--parent', fakeParent().url, '--token-keys', tokenKeys, '--range', '192.0.2.1/24'], /--range must be a CIDR block/],
  ];
  for (const [args, message] of cases) {
    const exited = exitOf(await runService(args));
    assert.equal(exited.code, 2, args.join(' '));
    assert.match(exited.output, message, args.join(' '));
  }
  const missing = exitOf(await runService(['--parent', fakeParent().url, '--token-keys', join(tempDir(), 'none.json'), '--store', join(tempDir(), 'db')]));
  assert.equal(missing.code, 1, 'no token-keys file');
  assert.match(missing.output, /"event":"startup_failed","code":"token_keys_unreadable"/, 'coded');
  const skip = await postgresSkipReason();
  if (skip !== null) return t.skip(skip);
  const { schema, drop } = await createSchema();
  try {
    const db = ['--database-url', POSTGRES_URL, '--database-schema', schema];
    const first = running(await runService(['--parent', fakeParent().url, '--token-keys', tokenKeys, ...db, '--range', '192.0.2.0/24']));
    assert.equal(await first.stop(), 0, 'the first start adds the range');
    const same = running(await runService(['--parent', fakeParent().url, '--token-keys', tokenKeys, ...db, '--range', '192.0.2.0/24']));
    assert.match(same.output(), /"event":"ranges_ensured","given":1,"added":0,"addresses":0/, 'the same range again is left as it is');
    assert.equal(await same.stop(), 0, 'stopped');
    const overlapping = exitOf(await runService(['--parent', fakeParent().url, '--token-keys', tokenKeys, ...db, '--range', '192.0.2.0/25']));
    assert.equal(overlapping.code, 1, 'an overlapping range');
    assert.match(overlapping.output, /"event":"startup_failed","code":"range_overlaps"/, 'coded');
  } finally {
    await drop();
  }
});
