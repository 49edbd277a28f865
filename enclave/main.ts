// The enclave process (SPEC §3, §5, §8): reads its flags, builds the NSM (the device in
// production, the emulator with --dev), makes the boot key and the service — in this thread, or
// in a pool of worker threads that run this same file (issue 13) — and serves the wire protocol
// on --listen until SIGTERM or SIGINT.
// Run: node --import tsx enclave/main.ts --listen unix:PATH|tcp:HOST:PORT [--vsock PORT] [--dev DIR]
//      [--idle-timeout-ms N] [--frame-timeout-ms N] [--max-connections N] [--workers N]

import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread } from 'node:worker_threads';
import packageJson from '../package.json' with { type: 'json' };
import { generateBootKey } from '../protocol/hpke.js';
import { parseIssuerConfig, parseSrtTrust, srtTrustFromDevIssuer, type SrtTrust } from './core/config.js';
import { CLOCK_CHECK_INTERVAL_MS, createClockGuard, type ClockGuard } from './core/clock.js';
import { openRecipientCiphertext } from './core/cms.js';
import { createKeyCustody, ecJwkThumbprint } from './core/keys.js';
import { createEnclaveService } from './core/service.js';
import { parseListenAddress, type ListenAddress } from './io/address.js';
import { bridgeVsockToServer, takeVsockFlag, type Bridge } from './io/bridge.js';
import { createLogger, safeAddress, safeVersion, STARTUP_FAILURES, type Logger, type Mode, type StartupFailure, type StopSignal } from './io/log.js';
import { startWorkerPool, type WorkerPool } from './io/pool.js';
import { DEFAULT_FRAME_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS, startServer, type RequestHandler } from './io/server.js';
import { serveWorker } from './io/worker.js';
// The production issuer trust is imported, not read at run time, so that it is inside the
// bundle and measured into PCR2 with the code (SPEC §2, enclave/issuers/README.md).
import issuerConfigJson from './issuers/config.json' with { type: 'json' };
import issuerJwksJson from './issuers/srt-issuer.jwks.json' with { type: 'json' };
import { createEmulatorNsm } from './nsm/emulator.js';
import type { Nsm } from './nsm/nsm.js';

/**
 * Whether this is a production build, which refuses --dev (SPEC §8). The enclave image's esbuild
 * bundle defines `process.env.DIP_BUILD` as "production", which bakes the answer into the
 * measured code: no environment of the running enclave can change it. Under tsx (development,
 * tests) it is read from the environment. This is the only place that reads it.
 */
const PRODUCTION_BUILD = process.env.DIP_BUILD === 'production';

const VERSION = safeVersion(packageJson.version);

/** SPEC §8: the development SRT issuer written to DIR/srt-issuer.json when it does not exist. */
const DEV_SRT_ISSUER = 'https://dev-subscriptions.invalid';
const DEV_SRT_AUDIENCE = 'dip-dev';
/** The `iss` of development DATs and DRTs: visibly not the production issuer. */
const DEV_DAT_ISSUER = 'https://dip-dev.invalid';

const USAGE = `usage: node --import tsx enclave/main.ts --listen ADDRESS [--vsock PORT] [--dev DIR]

  --listen ADDRESS  where to serve the enclave wire protocol: unix:PATH or tcp:HOST:PORT
  --vsock PORT      also accept VSOCK connections on PORT (production; needs --listen unix:PATH),
                    through a supervised socat bridge; the enclave exits if the bridge dies
  --dev DIR         development mode: the NSM emulator instead of /dev/nsm, trusting the SRT
                    issuer in DIR/srt-issuer.json (created when missing) and writing the
                    emulator's root certificate to DIR/nsm-root.pem. Refused by production builds.
  --idle-timeout-ms N   close a connection idle (nothing in flight or unsent) for N ms
                        (default ${DEFAULT_IDLE_TIMEOUT_MS})
  --frame-timeout-ms N  close a connection whose frame is not whole N ms after its first
                        byte (default ${DEFAULT_FRAME_TIMEOUT_MS})
  --max-connections N   at most N connections; a new one past it evicts the longest-idle
                        (default ${DEFAULT_MAX_CONNECTIONS}; keep it below the file descriptor limit)
  --workers N       worker threads for the crypto of assign, refresh and attest (default: the
                    vCPUs this process may use, here ${availableParallelism()}); 1 serves in this one thread
  -h, --help        this text
`;

class StartupError extends Error {
  constructor(readonly reason: StartupFailure) {
    super(STARTUP_FAILURES[reason]);
  }
}

interface Config {
  listen: ListenAddress;
  /** The development state directory, or null in production mode. */
  devDir: string | null;
  idleTimeoutMs: number;
  frameTimeoutMs: number;
  maxConnections: number;
  workers: number;
}

// Upper bounds only catch typos (a day; more connections than any fd limit allows; more threads
// than any enclave has vCPUs).
const COUNT_FLAGS = {
  'idle-timeout-ms': { fallback: DEFAULT_IDLE_TIMEOUT_MS, max: 86_400_000 },
  'frame-timeout-ms': { fallback: DEFAULT_FRAME_TIMEOUT_MS, max: 86_400_000 },
  'max-connections': { fallback: DEFAULT_MAX_CONNECTIONS, max: 1_048_576 },
  // Inside a Nitro Enclave: the --cpu-count given to nitro-cli run-enclave.
  workers: { fallback: availableParallelism(), max: 256 },
} as const;

function readCount(text: string | undefined, flag: keyof typeof COUNT_FLAGS): number {
  const { fallback, max } = COUNT_FLAGS[flag];
  if (text === undefined) return fallback;
  const value = /^[1-9][0-9]{0,9}$/.test(text) ? Number(text) : NaN;
  if (!(value <= max)) throw new StartupError('usage');
  return value;
}

interface Environment {
  mode: Mode;
  nsm: Nsm;
  srtTrust: SrtTrust;
  datIssuer: string;
}

function readConfig(argv: string[]): Config | 'help' {
  let values: { listen?: string; dev?: string; help?: boolean } & { [flag in keyof typeof COUNT_FLAGS]?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        listen: { type: 'string' },
        dev: { type: 'string' },
        'idle-timeout-ms': { type: 'string' },
        'frame-timeout-ms': { type: 'string' },
        'max-connections': { type: 'string' },
        workers: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch {
    throw new StartupError('usage');
  }
  if (values.help === true) return 'help';
  if (values.listen === undefined || values.dev === '') throw new StartupError('usage');
  let listen: ListenAddress;
  try {
    listen = parseListenAddress(values.listen);
  } catch {
    throw new StartupError('bad_listen_address');
  }
  const idleTimeoutMs = readCount(values['idle-timeout-ms'], 'idle-timeout-ms');
  const frameTimeoutMs = readCount(values['frame-timeout-ms'], 'frame-timeout-ms');
  const maxConnections = readCount(values['max-connections'], 'max-connections');
  const workers = readCount(values.workers, 'workers');
  if (values.dev !== undefined && PRODUCTION_BUILD) throw new StartupError('dev_refused');
  return { listen, devDir: values.dev ?? null, idleTimeoutMs, frameTimeoutMs, maxConnections, workers };
}

/** Writes through a temporary file and a rename, so a reader never sees half a file. */
function writeFileAtomic(path: string, text: string, mode: number): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text, { mode });
  chmodSync(temporary, mode);
  renameSync(temporary, path);
}

/** SPEC §8 `srt-issuer.json`: `{"iss", "aud", "jwk": private ES256 JWK with kid and alg}`. */
function readOrCreateDevIssuer(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
    const issuer = {
      iss: DEV_SRT_ISSUER,
      aud: DEV_SRT_AUDIENCE,
      jwk: { ...jwk, kid: ecJwkThumbprint(jwk), alg: 'ES256', use: 'sig' },
    };
    // The private key lets anyone mint development SRTs: owner-only.
    writeFileAtomic(path, `${JSON.stringify(issuer, null, 2)}\n`, 0o600);
    return issuer;
  }
  return JSON.parse(text);
}

async function development(dir: string): Promise<Environment> {
  let srtTrust: SrtTrust;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    srtTrust = srtTrustFromDevIssuer(readOrCreateDevIssuer(join(dir, 'srt-issuer.json')));
  } catch {
    throw new StartupError('dev_state_unusable');
  }
  const nsm = await createEmulatorNsm();
  try {
    // The trust anchor for development documents (SPEC §7 step 3): public, readable by all.
    writeFileAtomic(join(dir, 'nsm-root.pem'), nsm.rootCertificatePem, 0o644);
  } catch {
    await nsm.close();
    throw new StartupError('dev_state_unusable');
  }
  return { mode: 'development', nsm, srtTrust, datIssuer: DEV_DAT_ISSUER };
}

/** The real NSM. Imported only here, so development never loads the native ioctl code. */
async function openDeviceNsm(): Promise<Nsm> {
  try {
    const { openNsmDevice } = await import('./nsm/device.js');
    return await openNsmDevice();
  } catch {
    throw new StartupError('nsm_unavailable');
  }
}

async function production(): Promise<Environment> {
  let trust: { srtTrust: SrtTrust; datIssuer: string } | null = null;
  try {
    trust = { srtTrust: parseSrtTrust(issuerJwksJson, issuerConfigJson), datIssuer: parseIssuerConfig(issuerConfigJson).datIssuer };
  } catch {
    // Reported after the NSM check: off Nitro, "use --dev" is the more useful message.
  }
  const nsm = await openDeviceNsm();
  if (trust === null) {
    await nsm.close();
    throw new StartupError('issuer_config_invalid');
  }
  return { mode: 'production', nsm, ...trust };
}

/** Builds the NSM and the issuer trust for the mode the flags select. */
function prepare(config: Config): Promise<Environment> {
  return config.devDir === null ? production() : development(config.devDir);
}

/** SPEC §3: checks the clock now, then hourly, or every minute while it is untrusted. */
async function watchClock(clock: ClockGuard, log: Logger, checked: (trusted: boolean) => void): Promise<{ stop(): void }> {
  let timer: NodeJS.Timeout | undefined;
  const check = async (): Promise<void> => {
    const trusted = await clock.check();
    checked(trusted);
    log.event('clock_checked', { clock: trusted ? 'trusted' : 'untrusted' });
    timer = setTimeout(() => void check(), trusted ? CLOCK_CHECK_INTERVAL_MS : CLOCK_RECHECK_UNTRUSTED_MS);
    timer.unref();
  };
  await check();
  return { stop: () => clearTimeout(timer) };
}

const CLOCK_RECHECK_UNTRUSTED_MS = 60_000;

function failStartup(log: Logger, error: unknown): never {
  const reason = error instanceof StartupError ? error.reason : 'service_failed';
  log.event('startup_failed', { reason });
  process.exit(reason === 'usage' || reason === 'bad_listen_address' ? 2 : 1);
}

async function main(argv: string[]): Promise<void> {
  const log = createLogger();
  // Node's default handler would print the error's text, which could hold request data. A bug
  // that escapes every handler ends the process; the enclave reboots with a new boot key.
  process.on('uncaughtException', () => {
    log.event('crashed', { kind: 'exception' });
    process.exit(70);
  });
  process.on('unhandledRejection', () => {
    log.event('crashed', { kind: 'rejection' });
    process.exit(70);
  });

  let config: Config | 'help';
  let environment: Environment;
  let vsockPort: number | null;
  try {
    // --vsock PORT (production, issue 5): see the bridge below.
    let rest: string[];
    try {
      ({ vsockPort, rest } = takeVsockFlag(argv));
    } catch {
      throw new StartupError('usage');
    }
    config = readConfig(rest);
    if (config === 'help') {
      process.stdout.write(USAGE);
      return;
    }
    environment = await prepare(config);
  } catch (error) {
    failStartup(log, error);
  }

  // SPEC §3: locked until the parent relays M from KMS (key_request, unlock); the clock is checked
  // against the NSM's before anything is served, then hourly (every minute while it disagrees).
  const clock = createClockGuard(environment.nsm);
  let handle: RequestHandler;
  let pool: WorkerPool | null = null;
  if (config.workers === 1) {
    const service = await createEnclaveService({
      nsm: environment.nsm,
      bootKey: generateBootKey(),
      custody: createKeyCustody(),
      clock,
      openRecipientCiphertext,
      srtTrust: environment.srtTrust,
      datIssuer: environment.datIssuer,
      version: VERSION,
    }).catch((error: unknown) => failStartup(log, error));
    handle = service.handle;
  } else {
    // The same service in every worker; this thread keeps the sockets, the frames and the NSM,
    // and never holds the boot key or M (enclave/io/pool.ts).
    pool = await startWorkerPool({
      entry: new URL(import.meta.url),
      size: config.workers,
      nsm: environment.nsm,
      srtTrust: environment.srtTrust,
      datIssuer: environment.datIssuer,
      version: VERSION,
      clockTrusted: clock.trusted,
      log,
      onFatal: () => process.exit(70),
    }).catch(() => failStartup(log, new StartupError('service_failed')));
    handle = pool.handle;
  }
  log.event('started', { mode: environment.mode, version: VERSION, workers: config.workers });
  const clockTimer = await watchClock(clock, log, (trusted) => pool?.setClockTrusted(trusted));

  const server = await startServer({
    address: config.listen,
    handle,
    log,
    idleTimeoutMs: config.idleTimeoutMs,
    frameTimeoutMs: config.frameTimeoutMs,
    maxConnections: config.maxConnections,
  }).catch(() =>
    failStartup(log, new StartupError('listen_failed')),
  );
  log.event('listening', { address: safeAddress(server.address) });

  // socat carries VSOCK-LISTEN:PORT to the Unix socket. If it ever dies the enclave exits (AWS's
  // init then reboots it with a new boot key) rather than running unreachable.
  let bridge: Bridge | null = null;
  if (vsockPort !== null) {
    bridge = await bridgeVsockToServer(vsockPort, config.listen, () => {
      log.event('bridge_exited', {});
      process.exit(75);
    }).catch(() => failStartup(log, new StartupError('listen_failed')));
  }

  let stopping = false;
  const stop = async (signal: StopSignal): Promise<void> => {
    // A second signal while draining means "now".
    if (stopping) process.exit(1);
    stopping = true;
    const started = performance.now();
    log.event('stopping', { signal, connections: server.connections });
    clockTimer.stop();
    await bridge?.stop();
    await server.close();
    await pool?.close();
    await environment.nsm.close();
    log.event('stopped', { ms: performance.now() - started });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

// The pool's worker threads run this file too (one measured bundle in the image): off the main
// thread it serves the pool instead.
if (isMainThread) await main(process.argv.slice(2));
else await serveWorker();
