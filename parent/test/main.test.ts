import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { FakeEnclave, defaultHandler } from './fake-enclave.js';
import { http, waitFor } from './helpers.js';
import { startParent, startTs, testKeyset } from './processes.js';

async function fakeEnclave(t: { after: (fn: () => Promise<void>) => void }): Promise<FakeEnclave> {
  const enclave = await new FakeEnclave().start();
  t.after(() => enclave.dispose());
  return enclave;
}

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'dip-parent-main-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function makeCert(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' });
  return { cert, key };
}

/** One HTTPS GET; resolves with the status and the CN of the certificate the server showed. */
function httpsGet(port: number, path: string, agent: HttpsAgent): Promise<{ status: number; cn: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, agent, rejectUnauthorized: false }, (res) => {
      const cn = String((res.socket as import('node:tls').TLSSocket).getPeerCertificate().subject?.CN);
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, cn }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('parent/main.ts --help prints every flag with its environment variable and exits 0', async () => {
  const child = startTs('parent/main.ts', ['--help']);
  assert.equal(await child.exited, 0);
  for (const name of ['--enclave', '--allow-plain-http', '--attestation-burst', 'DIP_PARENT_QUEUE_LIMIT']) assert.ok(child.stdout().includes(name), name);
});

test('parent/main.ts refuses bad configuration with exit 2: no enclave, plain HTTP off loopback', async () => {
  const missing = startTs('parent/main.ts', []);
  assert.equal(await missing.exited, 2);
  assert.match(missing.stderr(), /--enclave/);
  const plain = startTs('parent/main.ts', ['--listen', '0.0.0.0:0', '--enclave', 'unix:/nonexistent', '--keyset', '/nonexistent.json']);
  assert.equal(await plain.exited, 2);
  assert.match(plain.stderr(), /plain HTTP is served only on a loopback address/);
});

test('a parent without a keyset, or with a file that is no keyset, refuses to start with a coded error', async (t) => {
  const dir = tempDir(t);
  const missing = startTs('parent/main.ts', ['--enclave', 'unix:/nonexistent', '--keyset', join(dir, 'keyset.json')]);
  assert.equal(await missing.exited, 1, 'exit 1');
  assert.match(missing.stderr(), /^parent: keyset_missing: the --keyset file does not exist: create it once per deployment with `keyset create`/, 'the coded cause');
  writeFileSync(join(dir, 'keyset.json'), '{"v":1}');
  const invalid = startTs('parent/main.ts', ['--enclave', 'unix:/nonexistent', '--keyset', join(dir, 'keyset.json')]);
  assert.equal(await invalid.exited, 1, 'exit 1');
  assert.match(invalid.stderr(), /^parent: keyset_invalid: /, 'the coded cause');
  const unset = startTs('parent/main.ts', ['--enclave', 'unix:/nonexistent']);
  assert.equal(await unset.exited, 2, 'a configuration mistake');
  assert.match(unset.stderr(), /--keyset \(or DIP_PARENT_KEYSET\) is required/, 'names the setting');
});

test('parent/main.ts exits 1 when the TLS files cannot be read or the address is taken', async (t) => {
  const dir = tempDir(t);
  const unreadable = startTs('parent/main.ts', ['--enclave', 'unix:/nonexistent', '--keyset', testKeyset(), '--tls-cert', join(dir, 'no.crt'), '--tls-key', join(dir, 'no.key')]);
  assert.equal(await unreadable.exited, 1);
  assert.match(unreadable.stderr(), /cannot read --tls-cert/);
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const port = (blocker.address() as import('node:net').AddressInfo).port;
  const taken = startTs('parent/main.ts', ['--enclave', 'unix:/nonexistent', '--keyset', testKeyset(), '--listen', `127.0.0.1:${port}`]);
  assert.equal(await taken.exited, 1);
  assert.match(taken.stderr(), /^parent: listen_address_in_use: --listen: /, 'the coded cause');
});

test('parent/main.ts takes its settings from DIP_PARENT_* variables and serves the routes', async (t) => {
  const enclave = await fakeEnclave(t);
  const { parent, port } = await startParent([], { DIP_PARENT_ENCLAVE: enclave.address, DIP_PARENT_KEYSET: testKeyset(), DIP_PARENT_POOL_SIZE: '3' });
  t.after(() => parent.stop());
  await waitFor(async () => (await http(port, '/readyz')).status === 200, 20_000, 'ready');
  await waitFor(() => enclave.sockets.size === 3, 10_000, 'three enclave connections');
  assert.equal((await http(port, '/v1/keys')).status, 200);
  assert.match((await http(port, '/metrics')).text, /dip_parent_process_cpu_seconds_total/);
});

test('parent/main.ts logs the loss of the enclave and reconnects when it returns', async (t) => {
  const enclave = await fakeEnclave(t);
  const { parent, port } = await startParent(['--keyset', testKeyset(), '--enclave', enclave.address, '--pool-size', '1']);
  t.after(() => parent.stop());
  await parent.waitForOutput(/"event":"enclave_connected","connection":0/);
  await enclave.stop();
  await parent.waitForOutput(/"event":"enclave_disconnected","connection":0,"enclave":0,"failed":0/);
  assert.equal((await http(port, '/readyz')).status, 503);
  await enclave.start();
  await waitFor(async () => (await http(port, '/readyz')).status === 200, 20_000, 'ready again');
});

test('SIGTERM lets an in-flight request finish, then the parent exits 0', async (t) => {
  const enclave = await fakeEnclave(t);
  let release: () => void = () => {};
  enclave.handler = async (request) => {
    if (request.op === 'jwks') await new Promise<void>((resolve) => (release = resolve));
    return defaultHandler(request);
  };
  const { parent, port } = await startParent(['--keyset', testKeyset(), '--enclave', enclave.address]);
  t.after(() => parent.stop());
  await waitFor(async () => (await http(port, '/readyz')).status === 200, 20_000, 'ready');
  // Before: the connection probes and /readyz's health.
  const before = enclave.requests;
  const inFlight = http(port, '/v1/keys');
  await waitFor(() => enclave.requests > before, 10_000, 'jwks at the enclave');
  parent.process.kill('SIGTERM');
  await parent.waitForOutput(/"event":"stopping","signal":"SIGTERM","inFlight":1/);
  release();
  assert.equal((await inFlight).status, 200);
  assert.equal(await parent.exited, 0);
  assert.match(parent.stdout(), /"event":"stopped"/);
});

test('HTTPS with --tls-cert/--tls-key; SIGHUP loads a new certificate without dropping open connections', async (t) => {
  const enclave = await fakeEnclave(t);
  const dir = tempDir(t);
  const first = makeCert(dir, 'dip-first');
  const second = makeCert(dir, 'dip-second');
  const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
  copyFileSync(first.cert, live.cert);
  copyFileSync(first.key, live.key);
  const { parent, port } = await startParent(['--keyset', testKeyset(), '--enclave', enclave.address, '--tls-cert', live.cert, '--tls-key', live.key, '--listen', '127.0.0.1:0']);
  t.after(() => parent.stop());
  const kept = new HttpsAgent({ keepAlive: true, maxSockets: 1 });
  t.after(() => kept.destroy());
  assert.deepEqual(await httpsGet(port, '/healthz', kept), { status: 200, cn: 'dip-first' });

  copyFileSync(second.cert, live.cert);
  copyFileSync(second.key, live.key);
  parent.process.kill('SIGHUP');
  await parent.waitForOutput(/"event":"tls_reloaded","ok":true/);
  // The open keep-alive connection still works with the certificate it was set up with.
  assert.deepEqual(await httpsGet(port, '/healthz', kept), { status: 200, cn: 'dip-first' });
  // No session cache: a resumed TLS session does not show the peer certificate.
  const fresh = new HttpsAgent({ keepAlive: false, maxCachedSessions: 0 });
  assert.deepEqual(await httpsGet(port, '/healthz', fresh), { status: 200, cn: 'dip-second' });

  // A broken pair is refused and the served certificate stays.
  writeFileSync(live.key, 'not a key');
  parent.process.kill('SIGHUP');
  await parent.waitForOutput(/"event":"tls_reloaded","ok":false/);
  assert.deepEqual(await httpsGet(port, '/healthz', fresh), { status: 200, cn: 'dip-second' });
  // Plain HTTP is not served on the TLS port.
  await assert.rejects(http(port, '/healthz'));
});

test('SIGHUP without TLS changes nothing and does not stop the parent', async (t) => {
  const enclave = await fakeEnclave(t);
  const { parent, port } = await startParent(['--keyset', testKeyset(), '--enclave', enclave.address]);
  t.after(() => parent.stop());
  parent.process.kill('SIGHUP');
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal((await http(port, '/healthz')).status, 200);
  assert.equal(await parent.stop(), 0);
});
