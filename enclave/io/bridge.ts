// The VSOCK ⇄ Unix socket bridge (issue 5): Node cannot wrap an AF_VSOCK descriptor, so the
// enclave serves a Unix socket and a supervised socat (Debian's, inside the measured image)
// accepts VSOCK connections for it. Nothing is restarted: if socat dies the caller exits, and
// the enclave reboots with a new boot key instead of half-working (AWS init reboots when CMD exits).

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** VMADDR_CID_ANY; VSOCK ports and CIDs are u32. */
const U32_MAX = 0xffff_ffff;

/** How and why the bridge process ended. */
export interface BridgeExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True only when stop() asked for it. */
  requested: boolean;
}

export interface Bridge {
  readonly pid: number;
  /** Resolves with socat's listening line ("listening on AF=40 …"); rejects if it exits first. */
  readonly ready: Promise<string>;
  /** Resolves once, when the process has gone, for whatever reason. */
  readonly exited: Promise<BridgeExit>;
  /** Terminates the bridge and waits for it. */
  stop(): Promise<BridgeExit>;
}

export interface BridgeOptions {
  /** socat's address arguments, passed as argv (never through a shell). */
  args: readonly string[];
  command?: string;
  /**
   * Receives socat's error and fatal lines ("E …", "F …"): addresses and errno texts only, as
   * socat never sees what it carries. Per-connection notices are dropped, so that no log ever
   * lists connections.
   */
  onError?: (line: string) => void;
}

/** socat's address syntax gives these characters meaning; a path or host containing one is refused. */
const SOCAT_SPECIAL = /[,!:{}"'\\\s\0]/;

function checkPath(path: string): void {
  if (path.length === 0 || SOCAT_SPECIAL.test(path)) throw new TypeError('socket path is empty or contains a socat special character');
}

function checkU32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > U32_MAX) throw new TypeError(`${what} must be a u32`);
}

/** In the enclave: VSOCK-LISTEN:PORT (any CID) → the Node server's Unix socket. */
export function enclaveBridgeArgs(vsockPort: number, unixPath: string): string[] {
  checkU32(vsockPort, 'VSOCK port');
  checkPath(unixPath);
  return [`VSOCK-LISTEN:${vsockPort},fork,reuseaddr`, `UNIX-CONNECT:${unixPath}`];
}

/** On the parent host: a Unix socket the parent proxy connects to → VSOCK-CONNECT:CID:PORT. */
export function parentBridgeArgs(unixPath: string, enclaveCid: number, vsockPort: number): string[] {
  checkPath(unixPath);
  checkU32(enclaveCid, 'enclave CID');
  checkU32(vsockPort, 'VSOCK port');
  return [`UNIX-LISTEN:${unixPath},fork,unlink-early,mode=660`, `VSOCK-CONNECT:${enclaveCid}:${vsockPort}`];
}

/** The TCP variant the tests run (no VSOCK peer exists off Nitro). Port 0 picks a free port. */
export function tcpBridgeArgs(host: string, port: number, unixPath: string): string[] {
  if (host.length === 0 || SOCAT_SPECIAL.test(host)) throw new TypeError('host is empty or contains a socat special character');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError('TCP port must be 0..65535');
  checkPath(unixPath);
  return [`TCP-LISTEN:${port},bind=${host},fork,reuseaddr`, `UNIX-CONNECT:${unixPath}`];
}

/** Starts socat with `-d -d` (so it reports where it listens) and watches it until it exits. */
export function superviseBridge(options: BridgeOptions): Bridge {
  const command = options.command ?? 'socat';
  const child: ChildProcess = spawn(command, ['-d', '-d', ...options.args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    shell: false,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
  });
  let requested = false;
  let listening: string | null = null;

  const killOnExit = (): void => {
    child.kill('SIGTERM');
  };
  process.once('exit', killOnExit);

  const exited = new Promise<BridgeExit>((resolve) => {
    // 'close' waits for stderr to drain, so the ready promise has seen every line first.
    child.once('close', (code, signal) => {
      process.removeListener('exit', killOnExit);
      resolve({ code, signal, requested });
    });
    child.once('error', () => {
      // spawn failed (socat missing): 'close' follows with code -2 or null.
    });
  });

  const ready = new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stderr! });
    lines.on('line', (line) => {
      const body = line.replace(/^\S+ \S+ socat\[\d+\] /, '');
      if (listening === null && /^N listening on /.test(body)) {
        listening = body.slice(2);
        resolve(listening);
      } else if (/^[EF] /.test(body)) {
        options.onError?.(body);
      }
    });
    void exited.then(() => {
      if (listening === null) reject(new Error('the bridge exited before it listened'));
    });
  });
  ready.catch(() => {});

  return {
    pid: child.pid ?? -1,
    ready,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        requested = true;
        child.kill('SIGTERM');
      }
      return exited;
    },
  };
}

/** The enclave's bridge: VSOCK port → Unix socket, supervised. */
export function startVsockBridge(vsockPort: number, unixPath: string, onError?: (line: string) => void): Bridge {
  return superviseBridge({ args: enclaveBridgeArgs(vsockPort, unixPath), ...(onError ? { onError } : {}) });
}

/**
 * Splits `--vsock PORT` off the enclave's argv; main.ts parses the rest. A repeated flag or a
 * port that is not a decimal u32 is a TypeError (the caller reports a usage error).
 */
export function takeVsockFlag(argv: readonly string[]): { vsockPort: number | null; rest: string[] } {
  const rest: string[] = [];
  let vsockPort: number | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const inline = arg.startsWith('--vsock=') ? arg.slice('--vsock='.length) : null;
    if (arg !== '--vsock' && inline === null) {
      rest.push(arg);
      continue;
    }
    const value = inline ?? argv[++i];
    if (vsockPort !== null || value === undefined || !/^[0-9]{1,10}$/.test(value) || Number(value) > U32_MAX) {
      throw new TypeError('--vsock takes one VSOCK port (a u32)');
    }
    vsockPort = Number(value);
  }
  return { vsockPort, rest };
}

/**
 * Bridges VSOCK-LISTEN:PORT to the Unix socket the enclave server listens on, and calls `onDeath`
 * if socat ever exits without stop() asking; resolves once socat listens.
 */
export async function bridgeVsockToServer(
  vsockPort: number,
  listen: { kind: 'unix'; path: string } | { kind: 'tcp' },
  onDeath: (exit: BridgeExit) => void,
): Promise<Bridge> {
  if (listen.kind !== 'unix') throw new TypeError('--vsock needs --listen unix:PATH');
  const bridge = startVsockBridge(vsockPort, listen.path);
  void bridge.exited.then((exit) => {
    if (!exit.requested) onDeath(exit);
  });
  await bridge.ready;
  return bridge;
}
