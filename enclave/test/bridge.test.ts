// The bridge supervisor with socat's TCP variant (no VSOCK peer exists off Nitro), plus a check
// that socat can open and bind a real AF_VSOCK listener on this machine when /dev/vsock exists.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  enclaveBridgeArgs,
  parentBridgeArgs,
  startVsockBridge,
  superviseBridge,
  takeVsockFlag,
  bridgeVsockToServer,
  type BridgeExit,
  tcpBridgeArgs,
  type Bridge,
} from '../io/bridge.js';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'dip-bridge-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function echoServer(path: string): Promise<Server> {
  const server = createServer((socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return server;
}

function portOf(listening: string): number {
  const match = /AF=2 127\.0\.0\.1:(\d+)$/.exec(listening);
  assert.ok(match, `unexpected listening line: ${listening}`);
  return Number(match[1]);
}

async function roundTrip(port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (received.length >= payload.length) socket.end();
    });
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
    socket.write(payload);
  });
}

function stopAfter(t: { after: (fn: () => Promise<unknown>) => void }, bridge: Bridge): void {
  t.after(() => bridge.stop());
}

test('bytes flow through the bridge to the Unix socket server and back', async (t) => {
  const dir = tempDir(t);
  const sock = join(dir, 'enclave.sock');
  const server = await echoServer(sock);
  t.after(() => server.close());
  const bridge = superviseBridge({ args: tcpBridgeArgs('127.0.0.1', 0, sock) });
  stopAfter(t, bridge);
  const port = portOf(await bridge.ready);
  assert.equal(await roundTrip(port, 'frame bytes \u0000\u0001'), 'frame bytes \u0000\u0001');
  // fork: a second connection works too.
  assert.equal(await roundTrip(port, 'again'), 'again');
  const exit = await bridge.stop();
  assert.equal(exit.requested, true);
});

test('the supervisor reports a bridge that dies (killed socat), so the enclave can exit', async (t) => {
  const dir = tempDir(t);
  const bridge = superviseBridge({ args: tcpBridgeArgs('127.0.0.1', 0, join(dir, 'enclave.sock')) });
  stopAfter(t, bridge);
  await bridge.ready;
  assert.ok(bridge.pid > 0, 'the bridge has a pid');
  process.kill(bridge.pid, 'SIGKILL');
  const exit = await bridge.exited;
  assert.deepEqual(exit, { code: null, signal: 'SIGKILL', requested: false });
  // stop() after death neither throws nor claims it asked for the exit.
  assert.equal((await bridge.stop()).requested, false);
});

test('a bridge that cannot listen rejects ready, reports the error line and exits', async (t) => {
  const dir = tempDir(t);
  const errors: string[] = [];
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.after(() => holder.close());
  const taken = (holder.address() as { port: number }).port;
  const bridge = superviseBridge({
    args: [`TCP-LISTEN:${taken},bind=127.0.0.1`, `UNIX-CONNECT:${join(dir, 's.sock')}`],
    onError: (line) => errors.push(line),
  });
  stopAfter(t, bridge);
  await assert.rejects(bridge.ready, /exited before it listened/);
  const exit = await bridge.exited;
  assert.notEqual(exit.code, 0);
  assert.ok(errors.some((line) => /^E .*Address already in use/.test(line)), errors.join('\n'));
});

test('a missing socat binary is reported as an exit, not a crash', async () => {
  const bridge = superviseBridge({ command: '/nonexistent/socat', args: ['STDIO', 'STDIO'] });
  await assert.rejects(bridge.ready);
  const exit = await bridge.exited;
  assert.equal(exit.requested, false);
  assert.notEqual(exit.code, 0);
});

test('bridge arguments are explicit socat addresses, and unsafe values are refused', () => {
  assert.deepEqual(enclaveBridgeArgs(5000, '/run/dip/enclave.sock'), ['VSOCK-LISTEN:5000,fork,reuseaddr', 'UNIX-CONNECT:/run/dip/enclave.sock']);
  assert.deepEqual(parentBridgeArgs('/run/dip/enclave.sock', 16, 5000), [
    'UNIX-LISTEN:/run/dip/enclave.sock,fork,unlink-early,mode=660',
    'VSOCK-CONNECT:16:5000',
  ]);
  assert.deepEqual(tcpBridgeArgs('127.0.0.1', 0, '/tmp/x.sock'), ['TCP-LISTEN:0,bind=127.0.0.1,fork,reuseaddr', 'UNIX-CONNECT:/tmp/x.sock']);
  for (const bad of ['', '/tmp/a,fork', '/tmp/a b', '/tmp/a!!b', '/tmp/a:b']) {
    assert.throws(() => enclaveBridgeArgs(5000, bad), TypeError, bad);
  }
  for (const port of [-1, 1.5, 2 ** 32]) assert.throws(() => enclaveBridgeArgs(port, '/tmp/x'), TypeError);
  assert.throws(() => parentBridgeArgs('/tmp/x', -1, 5000), TypeError);
  assert.throws(() => tcpBridgeArgs('127.0.0.1', 65536, '/tmp/x'), TypeError);
  assert.throws(() => tcpBridgeArgs('a,b', 0, '/tmp/x'), TypeError);
});

test('an AF_VSOCK listener can be created and bound on this machine (socat VSOCK-LISTEN)', async (t) => {
  if (!existsSync('/dev/vsock')) {
    t.skip('/dev/vsock is absent: this kernel offers no AF_VSOCK, so no VSOCK listener can be bound here');
    return;
  }
  const dir = tempDir(t);
  const port = 20000 + Math.floor(Math.random() * 40000);
  const bridge = startVsockBridge(port, join(dir, 'enclave.sock'));
  stopAfter(t, bridge);
  const listening = await bridge.ready;
  assert.equal(listening, `listening on AF=40 cid:4294967295 port:${port}`);
  assert.equal((await bridge.stop()).requested, true);
});

test('--vsock PORT is split off the argv; a bad, missing or repeated port is refused', () => {
  assert.deepEqual(takeVsockFlag(['--listen', 'unix:/run/x.sock', '--vsock', '5000']), { vsockPort: 5000, rest: ['--listen', 'unix:/run/x.sock'] });
  assert.deepEqual(takeVsockFlag(['--vsock=7', '--dev', 'd']), { vsockPort: 7, rest: ['--dev', 'd'] });
  assert.deepEqual(takeVsockFlag(['--listen', 'tcp:127.0.0.1:0']), { vsockPort: null, rest: ['--listen', 'tcp:127.0.0.1:0'] });
  for (const argv of [['--vsock'], ['--vsock', 'x'], ['--vsock', '-1'], ['--vsock', '4294967296'], ['--vsock', '1', '--vsock', '2'], ['--vsock=']]) {
    assert.throws(() => takeVsockFlag(argv), TypeError, argv.join(' '));
  }
});

test('bridgeVsockToServer needs a Unix listen address, and reports a bridge that dies after listening', async (t) => {
  await assert.rejects(bridgeVsockToServer(5000, { kind: 'tcp' }, () => {}), TypeError);
  if (!existsSync('/dev/vsock')) {
    t.skip('/dev/vsock is absent: no VSOCK listener can be bound here');
    return;
  }
  const dir = tempDir(t);
  let died: BridgeExit | null = null;
  const deathReported = new Promise<void>((resolve) => {
    void bridgeVsockToServer(20000 + Math.floor(Math.random() * 40000), { kind: 'unix', path: join(dir, 'e.sock') }, (exit) => {
      died = exit;
      resolve();
    }).then((bridge) => {
      stopAfter(t, bridge);
      process.kill(bridge.pid, 'SIGTERM');
    });
  });
  await deathReported;
  assert.deepEqual(died, { code: 143, signal: null, requested: false });
});

test('the enclave started with --vsock exits when its socat bridge dies', async (t) => {
  if (!existsSync('/dev/vsock')) {
    t.skip('/dev/vsock is absent: no VSOCK listener can be bound here');
    return;
  }
  const dir = tempDir(t);
  const root = join(import.meta.dirname, '..', '..');
  const port = 20000 + Math.floor(Math.random() * 40000);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'enclave/main.ts', '--listen', `unix:${join(dir, 'e.sock')}`, '--dev', join(dir, 'dev'), '--vsock', String(port)],
    { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // The bridge is a child of the enclave process; wait (bounded) until it is running.
  let socatPid: number | null = null;
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  for (let i = 0; i < 600 && socatPid === null && child.exitCode === null; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const children = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    for (const pid of children) {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`VSOCK-LISTEN:${port}`) && stderr.includes('"listening"')) socatPid = Number(pid);
    }
  }
  assert.ok(socatPid !== null, `the bridge never started: ${stderr}`);
  process.kill(socatPid, 'SIGKILL');
  assert.equal(await exited, 75);
  assert.match(stderr, /"event":"bridge_exited"/);
});
