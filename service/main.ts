// The DIP service's entry point (SPEC §11; docs/service.md): reads its flags, the pinned issuer
// keys and its store, makes sure the --range blocks are in the pool, finds the parents' enclaves,
// runs the expiry job, and serves until SIGTERM or SIGINT. `ranges …` is the operator's command.
// Run: node --import tsx service/main.ts --parent URL --token-keys FILE [--help]

import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dayOf } from '../store/day.js';
import { StoreError } from '../store/errors.js';
import { addRange, listRanges } from '../store/ip-range.js';
import { openStore } from '../store/open.js';
import type { Store } from '../store/store.js';
import { createAdminServer } from './admin.js';
import { ConfigError, parseConfig, usage, type ServiceConfig } from './config.js';
import type { Dip } from './dip.js';
import { startExpiryJob, type ExpiryJob } from './expiry.js';
import { createFiguresCache } from './figures.js';
import { createLogger, type Logger } from './log.js';
import { createMetrics } from './metrics.js';
import { ParentDirectory } from './parents.js';
import { runRangesCommand } from './ranges-cli.js';
import { createServiceServer } from './server.js';
import { keyState, parseTokenKeys, TokenKeysError, type TokenKeys } from './token-keys.js';
import { closeOnSignals } from '../common/process.js';

/** Why the service refuses to start; each prints a fixed sentence and exits 1. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
  constructor(readonly code: 'range_overlaps' | 'range_invalid' | 'range_too_large' | 'listen_failed') {
    super(
      {
        range_overlaps: 'A --range overlaps a different range already in the pool.',
        range_invalid: 'A --range or --exclude is not a CIDR block the pool takes.',
        range_too_large: 'A --range holds more addresses than one range may add.',
        listen_failed: 'The listen address is in use or cannot be bound.',
      }[code],
    );
  }
}

export interface ServiceOptions {
  /** Unix seconds; tests and demos move it (SPEC §11 expiry with an accelerated clock). */
  now?: () => number;
  /** An open store to use instead of the configured one (tests); it is not closed by close(). */
  store?: Store;
  /** An unknown key_id asks the parents again at most this often (default 1 s). */
  repollMinMs?: number;
  expiryIntervalMs?: number;
  /** How long pool figures are cached for the readiness routes and /metrics (default 5 s). */
  figuresMaxAgeMs?: number;
}

export interface RunningService {
  readonly port: number;
  readonly adminPort: number | null;
  readonly store: Store;
  readonly expiry: ExpiryJob;
  close(): Promise<void>;
}

function readTokenKeys(path: string): TokenKeys {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new TokenKeysError('token_keys_unreadable');
  }
  return parseTokenKeys(text);
}

/** Adds each --range that the pool lacks; a range another instance added at the same moment counts as there. */
async function ensureRanges(store: Store, ranges: readonly string[], excludes: readonly string[]): Promise<{ added: number; addresses: number }> {
  let added = 0;
  let addresses = 0;
  for (const cidr of ranges) {
    if ((await listRanges(store)).some((range) => range.cidr === cidr)) continue;
    try {
      addresses += await addRange(store, cidr, excludes);
      added++;
    } catch (error) {
      if (error instanceof StoreError && error.code === 'range_overlaps' && (await listRanges(store)).some((range) => range.cidr === cidr)) continue;
      if (error instanceof StoreError && (error.code === 'range_overlaps' || error.code === 'range_invalid' || error.code === 'range_too_large')) {
        throw new StartupError(error.code);
      }
      throw error;
    }
  }
  return { added, addresses };
}

function listen(server: Server, address: { host: string; port: number }): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', () => reject(new StartupError('listen_failed')));
    server.listen(address.port, address.host, () => resolve((server.address() as AddressInfo).port));
  });
}

/**
 * Stops accepting and lets requests in flight finish for up to `graceMs` (an assign at the parent
 * then records its outcome), then closes what is left. An assign cut here stays pending: its retry
 * gets the same IP.
 */
async function closeServer(server: Server, graceMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), graceMs);
  await closed;
  clearTimeout(timer);
}

/** Everything but the process: the development stack and tests start a service in their own process with this. */
export async function startService(config: ServiceConfig, logger: Logger, options: ServiceOptions = {}): Promise<RunningService> {
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  const tokenKeys = readTokenKeys(config.tokenKeys);
  logger.event('keys_loaded', { keys: tokenKeys.keys.length, active: tokenKeys.keys.filter((key) => keyState(key, now()) === 'active').length });
  const ownStore = options.store === undefined;
  const store =
    options.store ??
    (await openStore(
      config.store.engine === 'embedded'
        ? config.store
        : { engine: 'postgres', connectionString: config.store.connectionString, ...(config.store.schema === null ? {} : { schema: config.store.schema }) },
    ));
  const cleanups: Array<() => Promise<void> | void> = [async () => (ownStore ? store.close() : undefined)];
  const close = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  };
  try {
    logger.event('store_opened', { engine: store.engine });
    const ensured = await ensureRanges(store, config.ranges, config.excludes);
    logger.event('ranges_ensured', { given: config.ranges.length, ...ensured });

    const metrics = createMetrics();
    const parents = new ParentDirectory({
      urls: config.parents,
      timeoutMs: config.parentTimeoutMs,
      pollIntervalMs: config.pollIntervalMs,
      ...(options.repollMinMs === undefined ? {} : { repollMinMs: options.repollMinMs }),
      observer: {
        stateChanged: (parent, state) => logger.event('parent_state', { parent, state }),
        failed: (code) => metrics.parentError(code),
      },
    });
    cleanups.push(() => parents.close());
    await parents.start();

    const expiry = startExpiryJob({
      store,
      tokenKeys,
      quarantineDays: config.quarantineDays,
      now,
      acceleratedClock: config.acceleratedClock,
      intervalMs: options.expiryIntervalMs ?? 3_600_000,
      onRun: (result) => logger.event('expiry_ran', { quarantined: result.quarantined, freed: result.freed, forgotten: result.forgotten }),
      onError: (error) => logger.event('expiry_failed', { code: error instanceof StoreError ? error.code : 'internal' }),
    });
    cleanups.push(() => expiry.stop());
    await expiry.run(dayOf(now())).catch((error: unknown) => logger.event('expiry_failed', { code: error instanceof StoreError ? error.code : 'internal' }));

    const figures = createFiguresCache(store, options.figuresMaxAgeMs ?? 5000);
    metrics.setSources({ pool: () => figures.get(), parentsReady: () => parents.readyCount() });
    const dip: Dip = {
      store,
      parents,
      tokenKeys,
      now,
      observer: { assign: (outcome) => metrics.assign(outcome), parentError: (code) => metrics.parentError(code) },
    };
    const server = createServiceServer({ dip, parents, figures, metrics, logger, bodyLimit: config.bodyLimit, maxConnections: config.maxConnections });
    const port = await listen(server, config.listen);
    cleanups.push(() => closeServer(server, config.parentTimeoutMs + 1000));
    let adminPort: number | null = null;
    if (config.adminListen !== null) {
      const admin = createAdminServer({ store, expiry, logger, figures, metrics, parentsReady: () => parents.readyCount(), poolChanged: () => figures.invalidate() });
      adminPort = await listen(admin, config.adminListen);
      cleanups.push(() => closeServer(admin, 0));
      logger.event('admin_listening', { port: adminPort });
    }
    logger.event('listening', { port });
    return { port, adminPort, store, expiry, close };
  } catch (error) {
    await close();
    throw error;
  }
}

function fail(message: string, code: number): never {
  process.stderr.write(`service: ${message}\n`);
  process.exit(code);
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv[0] === 'ranges') {
    process.exitCode = await runRangesCommand(argv.slice(1), process.env, (text) => process.stdout.write(text), (text) => process.stderr.write(text));
    return;
  }
  let config: ServiceConfig | null;
  try {
    config = parseConfig(argv, process.env);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, 2);
    throw error;
  }
  if (config === null) {
    process.stdout.write(usage());
    return;
  }
  const logger = createLogger();
  const starting = startService(config, logger);
  // Installed before "listening" is logged: a supervisor may stop us as soon as it reads it.
  closeOnSignals(starting, (signal) => logger.event('stopping', { signal }));
  try {
    await starting;
  } catch (error) {
    if (error instanceof TokenKeysError || error instanceof StartupError || (error instanceof StoreError && !error.code.startsWith('range_'))) {
      logger.event('startup_failed', { code: error.code });
      fail(error.message, 1);
    }
    throw error;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
