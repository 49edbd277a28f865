// What the operator sees when the parent cannot start or cannot reach the enclave (issue #9):
// one coded line and exit 1, never a stack trace; a vsock bridge with no enclave behind it is
// "not answering", never "connected"; /metrics can move to its own listener.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeEnclave } from './fake-enclave.js';
import { http, waitFor } from './helpers.js';
import { startParent, startTs, testKeyset } from './processes.js';

type T = { after: (fn: () => Promise<void> | void) => void };

function tempDir(t: T): string {
  const dir = mkdtempSync(join(tmpdir(), 'dip-parent-startup-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function makeCert(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`,
  ], { stdio: 'ignore' });
  return { cert, key };
}

async function takenPort(t: T): Promise<number> {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  return (blocker.address() as AddressInfo).port;
}

/** Runs the parent to its exit and checks the one coded line it must print. */
async function refusesToStart(args: string[], line: RegExp, env: Record<string, string> = {}): Promise<void> {
  const child = startTs('parent/main.ts', ['--keyset', testKeyset(), ...args], env);
  assert.equal(await child.exited, 1, `exit 1: ${child.stderr()}`);
  const lines = child.stderr().trim().split('\n');
  assert.equal(lines.length, 1, `one line, no stack trace: ${child.stderr()}`);
  assert.match(lines[0]!, line, 'the coded cause');
}

test('a taken --listen or --metrics-listen port is listen_address_in_use, naming the setting', async (t) => {
  const port = await takenPort(t);
  await refusesToStart(['--enclave', 'unix:/nonexistent', '--listen', `127.0.0.1:${port}`], /^parent: listen_address_in_use: --listen: the address is already in use/);
  await refusesToStart(['--enclave', 'unix:/nonexistent', '--listen', '127.0.0.1:0', '--metrics-listen', `127.0.0.1:${port}`], /^parent: listen_address_in_use: --metrics-listen: /);
});

test('an address that is not on this host is listen_address_unavailable', async () => {
  // 192.0.2.0/24 is TEST-NET-1: never assigned to a real interface.
  await refusesToStart(['--enclave', 'unix:/nonexistent', '--listen', '192.0.2.1:8080', '--allow-plain-http'], /^parent: listen_address_unavailable: --listen: /);
});

test('a TLS key that does not match the certificate is tls_key_mismatch; a file that is not PEM is tls_invalid', async (t) => {
  const dir = tempDir(t);
  const first = makeCert(dir, 'first');
  const second = makeCert(dir, 'second');
  const tlsArgs = (cert: string, key: string): string[] => ['--enclave', 'unix:/nonexistent', '--listen', '127.0.0.1:0', '--tls-cert', cert, '--tls-key', key];
  await refusesToStart(tlsArgs(first.cert, second.key), /^parent: tls_key_mismatch: the TLS private key does not match the certificate$/);
  writeFileSync(join(dir, 'junk.pem'), 'not a key');
  await refusesToStart(tlsArgs(first.cert, join(dir, 'junk.pem')), /^parent: tls_invalid: /);
});

test('vsock:CID:PORT without socat on PATH stops at startup with socat_missing', async (t) => {
  const empty = tempDir(t);
  await refusesToStart(['--enclave', 'vsock:16:5000'], /^parent: socat_missing: socat is not installed or not on PATH/, { PATH: empty });
});

test('a vsock bridge with no enclave behind it is logged enclave_not_answering once per connection, never enclave_connected', async (t) => {
  // This machine has socat but no enclave at CID 16: socat accepts locally, then cannot connect.
  const { parent } = await startParent(['--keyset', testKeyset(), '--enclave', 'vsock:16:5000', '--pool-size', '2']);
  t.after(() => parent.stop());
  await parent.waitForOutput(/"event":"enclave_not_answering","connection":1/);
  await parent.waitForOutput(/"event":"enclave_not_answering","connection":0/);
  await new Promise((resolve) => setTimeout(resolve, 1000)); // several reconnect attempts
  const out = parent.stdout();
  assert.doesNotMatch(out, /enclave_connected/, 'never claims a connection');
  assert.equal(out.match(/enclave_not_answering/g)!.length, 2, 'said once per connection, not on every retry');
});

test('with --metrics-listen, /metrics is served there only and the main listener answers 404', async (t) => {
  const enclave = await new FakeEnclave().start();
  t.after(() => enclave.dispose());
  const { parent, port } = await startParent(['--keyset', testKeyset(), '--enclave', enclave.address, '--metrics-listen', '127.0.0.1:0']);
  t.after(() => parent.stop());
  const metricsPort = Number((await parent.waitForOutput(/"event":"metrics_listening","port":(\d+)/))[1]);
  await waitFor(async () => (await http(port, '/readyz')).status === 200, 20_000, 'ready');
  assert.equal((await http(port, '/metrics')).status, 404, 'not on the public listener');
  const scraped = await http(metricsPort, '/metrics');
  assert.equal(scraped.status, 200, 'served on the metrics listener');
  assert.match(scraped.text, /dip_parent_http_requests_total\{route="\/readyz"/, 'the parent\'s own metrics');
  assert.equal((await http(metricsPort, '/v1/keys')).status, 404, 'nothing else on the metrics listener');
  assert.equal((await http(metricsPort, '/metrics', { method: 'POST' })).status, 405, 'GET only');
});
