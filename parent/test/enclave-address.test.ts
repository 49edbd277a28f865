import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BridgeStartError, formatEnclaveAddress, openEnclaveDialer, parseEnclaveAddress } from '../enclave-address.js';
import { waitFor } from './helpers.js';

const hasSocat = spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0;

test('enclave addresses parse into unix, tcp and vsock forms and format back', () => {
  const cases: Array<[string, unknown]> = [
    ['unix:/run/dip/enclave.sock', { kind: 'unix', path: '/run/dip/enclave.sock' }],
    ['unix:.dev/enclave.sock', { kind: 'unix', path: '.dev/enclave.sock' }],
    ['tcp:127.0.0.1:7000', { kind: 'tcp', host: '127.0.0.1', port: 7000 }],
    ['tcp:[::1]:7000', { kind: 'tcp', host: '::1', port: 7000 }],
    ['tcp:enclave.internal:1', { kind: 'tcp', host: 'enclave.internal', port: 1 }],
    ['vsock:16:5000', { kind: 'vsock', cid: 16, port: 5000 }],
    ['vsock:4294967295:4294967295', { kind: 'vsock', cid: 4294967295, port: 4294967295 }],
  ];
  for (const [text, expected] of cases) {
    const parsed = parseEnclaveAddress(text);
    assert.deepEqual(parsed, expected, text);
    assert.equal(formatEnclaveAddress(parsed), text);
  }
});

test('malformed enclave addresses are refused with a usage hint', () => {
  const bad = [
    '', 'enclave.sock', 'unix:', `unix:${'a'.repeat(108)}`, 'unix:/a\0b', 'tcp:', 'tcp:127.0.0.1', 'tcp::7000', 'tcp:127.0.0.1:0',
    'tcp:127.0.0.1:65536', 'tcp:::1:7000', 'tcp:127.0.0.1:70x', 'vsock:16', 'vsock:-1:5000', 'vsock:x:5000',
    'vsock:16:4294967296', 'vsock:4294967296:1', 'http://127.0.0.1:7000', 'udp:1.2.3.4:5',
  ];
  for (const text of bad) assert.throws(() => parseEnclaveAddress(text), TypeError, JSON.stringify(text));
});

test('unix and tcp addresses connect directly', async () => {
  const unix = await openEnclaveDialer({ kind: 'unix', path: '/run/x.sock' });
  assert.deepEqual(unix.connectOptions, { path: '/run/x.sock' });
  await unix.close();
  const tcp = await openEnclaveDialer({ kind: 'tcp', host: '::1', port: 7 });
  assert.deepEqual(tcp.connectOptions, { host: '::1', port: 7 });
  await tcp.close();
});

test('the vsock bridge carries connections through a supervised socat and restarts it when it dies', { skip: !hasSocat && 'socat is not installed (make installs it)' }, async (t) => {
  // The far side is TCP here: no VSOCK peer exists off a Nitro host. socat is otherwise run as in production.
  const echo = createServer((socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => echo.close(() => resolve())));
  const port = (echo.address() as AddressInfo).port;
  const restarts: Array<number | null> = [];
  const dialer = await openEnclaveDialer({ kind: 'vsock', cid: 16, port: 5000 }, { target: `TCP:127.0.0.1:${port}`, onRestart: (code) => restarts.push(code) });
  const path = (dialer.connectOptions as { path: string }).path;
  assert.ok(existsSync(path), 'the socket file exists');

  const roundTrip = (text: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const socket = connect(dialer.connectOptions);
      socket.on('error', reject);
      socket.once('data', (data: Buffer) => {
        resolve(data.toString());
        socket.destroy();
      });
      socket.write(text);
    });
  assert.equal(await roundTrip('ping'), 'ping');

  // The oldest match is the listening socat; younger ones are its per-connection forks.
  const pid = Number(spawnSync('pgrep', ['-o', '-f', `UNIX-LISTEN:${path}`]).stdout.toString().trim());
  assert.ok(pid > 0, 'socat has a pid');
  process.kill(pid, 'SIGKILL');
  await waitFor(() => restarts.length === 1, 10_000, 'bridge restart');
  await waitFor(async () => (await roundTrip('again').catch(() => '')) === 'again', 10_000, 'bridge back');

  await dialer.close();
  assert.ok(!existsSync(path), 'the socket file is removed');
  assert.equal(restarts.length, 1);
});

test('the vsock bridge refuses a temporary directory whose path socat cannot parse', { skip: !hasSocat && 'socat is not installed' }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'dip-tmp-'));
  const odd = join(root, 'a,b');
  mkdirSync(odd);
  const saved = process.env['TMPDIR'];
  process.env['TMPDIR'] = odd;
  t.after(() => {
    if (saved === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = saved;
    rmSync(root, { recursive: true, force: true });
  });
  await assert.rejects(openEnclaveDialer({ kind: 'vsock', cid: 3, port: 1 }), TypeError);
});

test('a bridge whose socat cannot be started at all is refused with BridgeStartError, and no restart follows', async () => {
  const restarts: Array<number | null> = [];
  await assert.rejects(
    openEnclaveDialer({ kind: 'vsock', cid: 3, port: 1 }, { socat: '/nonexistent/socat', readyTimeoutMs: 100, onRestart: (c) => restarts.push(c) }),
    (e: unknown) => e instanceof BridgeStartError,
    'a missing socat is a startup error',
  );
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(restarts, [], 'nothing keeps retrying');
});

test('a bridge whose socat starts and exits keeps restarting, and close() stops it', async () => {
  const restarts: Array<number | null> = [];
  const dialer = await openEnclaveDialer({ kind: 'vsock', cid: 3, port: 1 }, { socat: '/bin/false', readyTimeoutMs: 100, onRestart: (c) => restarts.push(c) });
  await waitFor(() => restarts.length >= 2, 10_000, 'restarts');
  await dialer.close();
  const seen = restarts.length;
  await new Promise((resolve) => setTimeout(resolve, 600));
  assert.equal(restarts.length, seen, 'no restart after close()');
  assert.equal(restarts[0], 1, 'the exit code is reported');
});
