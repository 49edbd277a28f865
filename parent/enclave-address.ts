// Where the parent reaches the enclave (SPEC §5): `unix:PATH` or `tcp:HOST:PORT` in development,
// `vsock:CID:PORT` on a Nitro host. Node cannot open AF_VSOCK sockets, so the vsock case runs a
// supervised socat bridge from a private Unix socket to the enclave and connects to that.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { NetConnectOpts } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type EnclaveAddress =
  | { kind: 'unix'; path: string }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'vsock'; cid: number; port: number };

const USAGE = 'expected unix:PATH, tcp:HOST:PORT or vsock:CID:PORT';
// sockaddr_un.sun_path holds 108 bytes on Linux, including the NUL.
const MAX_UNIX_PATH_BYTES = 107;
const UINT32_MAX = 0xffff_ffff;

function uint(text: string, max: number): number | null {
  return /^[0-9]{1,10}$/.test(text) && Number(text) <= max ? Number(text) : null;
}

/** Parses an enclave address; throws TypeError with a usage hint (operator configuration, never user data). */
export function parseEnclaveAddress(text: string): EnclaveAddress {
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (path.length === 0 || path.includes('\0')) throw new TypeError(`enclave address has an empty or invalid path; ${USAGE}`);
    if (Buffer.byteLength(path) > MAX_UNIX_PATH_BYTES) throw new TypeError(`Unix socket path is longer than ${MAX_UNIX_PATH_BYTES} bytes`);
    return { kind: 'unix', path };
  }
  const sep = text.indexOf(':');
  const scheme = sep < 0 ? '' : text.slice(0, sep);
  const rest = text.slice(sep + 1);
  const colon = rest.lastIndexOf(':');
  if ((scheme !== 'tcp' && scheme !== 'vsock') || colon < 0) throw new TypeError(`unsupported enclave address; ${USAGE}`);
  let host = rest.slice(0, colon);
  const port = uint(rest.slice(colon + 1), scheme === 'tcp' ? 65535 : UINT32_MAX);
  if (port === null || (scheme === 'tcp' && port === 0)) throw new TypeError(`enclave address has an invalid port; ${USAGE}`);
  if (scheme === 'vsock') {
    const cid = uint(host, UINT32_MAX);
    if (cid === null) throw new TypeError(`vsock CID must be an unsigned 32-bit integer; ${USAGE}`);
    return { kind: 'vsock', cid, port };
  }
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  else if (host.includes(':')) throw new TypeError(`an IPv6 host must be in brackets; ${USAGE}`);
  if (host.length === 0) throw new TypeError(`enclave address has an empty host; ${USAGE}`);
  return { kind: 'tcp', host, port };
}

export function formatEnclaveAddress(address: EnclaveAddress): string {
  switch (address.kind) {
    case 'unix':
      return `unix:${address.path}`;
    case 'tcp':
      return `tcp:${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
    case 'vsock':
      return `vsock:${address.cid}:${address.port}`;
  }
}

/** How to open one connection to the enclave, and what to stop when the parent stops. */
export interface EnclaveDialer {
  readonly connectOptions: NetConnectOpts;
  close(): Promise<void>;
}

export interface BridgeOptions {
  /** The socat executable (default `socat` on PATH). */
  socat?: string;
  /** socat's far side; tests replace `VSOCK-CONNECT:CID:PORT` with a TCP target. */
  target?: string;
  /** How long to wait for the bridge's socket to appear before returning anyway. */
  readyTimeoutMs?: number;
  /** Told when the bridge exits unexpectedly and is restarted (no data, only the exit code). */
  onRestart?: (code: number | null) => void;
}

/** socat could not be started at all (ENOENT, EACCES): main reports `socat_missing`. */
export class BridgeStartError extends Error {
  override readonly name = 'BridgeStartError';
}

/** Returns how to reach `address`; for vsock, starts the socat bridge first (BridgeStartError without socat). */
export async function openEnclaveDialer(address: EnclaveAddress, options: BridgeOptions = {}): Promise<EnclaveDialer> {
  switch (address.kind) {
    case 'unix':
      return { connectOptions: { path: address.path }, close: async () => {} };
    case 'tcp':
      return { connectOptions: { host: address.host, port: address.port }, close: async () => {} };
    case 'vsock':
      return startVsockBridge(options.target ?? `VSOCK-CONNECT:${address.cid}:${address.port}`, options);
  }
}

const RESTART_DELAYS_MS = [100, 200, 500, 1000, 2000];

async function startVsockBridge(target: string, options: BridgeOptions): Promise<EnclaveDialer> {
  // mkdtemp makes the directory 0700: no other local user can connect through the bridge.
  const dir = mkdtempSync(join(tmpdir(), 'dip-parent-'));
  const path = join(dir, 'enclave.sock');
  // socat's address syntax gives these characters meaning (a TMPDIR holding one cannot be used).
  if (/[,!:{}"'\\\s]/.test(path)) {
    rmSync(dir, { recursive: true, force: true });
    throw new TypeError('the temporary directory path contains a character socat cannot take');
  }
  let child: ChildProcess | null = null;
  let stopped = false;
  let restarts = 0;
  let restartTimer: NodeJS.Timeout | undefined;
  let everRan = false;

  const run = (): ChildProcess => {
    const started = Date.now();
    const proc = spawn(options.socat ?? 'socat', [`UNIX-LISTEN:${path},fork,unlink-early`, target], {
      stdio: 'ignore',
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
    });
    child = proc;
    const firstRun = !everRan;
    everRan = true;
    let spawned = false;
    proc.once('spawn', () => (spawned = true));
    proc.on('error', () => {}); // a missing executable also ends in 'close'
    proc.on('close', (code) => {
      child = null;
      // A first socat that never started is a startup error (BridgeStartError), not a restart.
      if (stopped || (firstRun && !spawned)) return;
      // A bridge that lived a while starts the backoff again; one that dies at once backs off.
      if (Date.now() - started > 10_000) restarts = 0;
      const delay = RESTART_DELAYS_MS[Math.min(restarts++, RESTART_DELAYS_MS.length - 1)]!;
      options.onRestart?.(code);
      restartTimer = setTimeout(run, delay);
    });
    return proc;
  };
  // If the parent dies without close(), the bridge must not outlive it.
  const killOnExit = (): void => void child?.kill('SIGTERM');
  process.once('exit', killOnExit);
  const first = run();
  // Without a socat binary nothing will ever answer: say so at startup rather than retry forever.
  const started = await new Promise<boolean>((resolve) => {
    first.once('spawn', () => resolve(true));
    first.once('error', () => resolve(false));
  });
  if (!started) {
    stopped = true;
    process.removeListener('exit', killOnExit);
    rmSync(dir, { recursive: true, force: true });
    throw new BridgeStartError('socat could not be started');
  }

  const deadline = Date.now() + (options.readyTimeoutMs ?? 2000);
  while (!existsSync(path) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));

  return {
    connectOptions: { path },
    async close() {
      stopped = true;
      clearTimeout(restartTimer);
      process.removeListener('exit', killOnExit);
      const proc = child;
      if (proc !== null && proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((resolve) => proc.once('close', resolve));
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
