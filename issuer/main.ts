// The token issuer's entry point (SPEC §10; docs/issuer.md): reads its flags, its keys and the
// trusted SRT issuer, opens its store, writes token-keys.json when asked, and serves until
// SIGTERM or SIGINT. Run: node --import tsx issuer/main.ts [--help]

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { ConfigError as TrustError, createSrtVerifier, srtTrustFromDevIssuer, srtTrustFromJwks, type SrtTrust } from '../protocol/srt.js';
import { openStore } from '../store/open.js';
import type { Store } from '../store/store.js';
import { recordIssuance } from '../store/token-issuance.js';
import { ConfigError, parseConfig, usage, type IssuerConfig } from './config.js';
import { KeyFileError, loadKeyFile, loadOrCreateDevKeyFile } from './key-file.js';
import { createLogger, type Logger } from './log.js';
import { createIssuerServer } from './server.js';
import { activeKeys, encodeTokenKeysFile, pinnedKeys, type IssuerKey } from './token-keys.js';
import { closeOnSignals } from '../common/process.js';

/** Why the issuer refuses to start; each prints a fixed sentence and exits 1. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
  constructor(readonly code: 'srt_trust_unreadable' | 'no_active_key') {
    super(code === 'no_active_key' ? 'The key file holds no key usable now (each serves 90 days from its not-before).' : 'The trusted SRT issuer file is missing or not JSON.');
  }
}

function readTrust(config: IssuerConfig): SrtTrust {
  let text: string;
  try {
    text = readFileSync(config.devSrtIssuer ?? config.srtJwks!, 'utf8');
  } catch {
    throw new StartupError('srt_trust_unreadable');
  }
  if (config.devSrtIssuer === null) return srtTrustFromJwks(text, config.srtIssuer!, config.srtAudience);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new StartupError('srt_trust_unreadable');
  }
  return srtTrustFromDevIssuer(json);
}

function readKeys(config: IssuerConfig, now: number, logger: Logger): IssuerKey[] {
  if (!config.dev) return loadKeyFile(config.keyFile);
  mkdirSync(dirname(config.keyFile), { recursive: true });
  const { keys, created } = loadOrCreateDevKeyFile(config.keyFile, now);
  if (created !== null) logger.event('key_created', { not_before: created.notBefore });
  return keys;
}

export interface RunningIssuer {
  readonly port: number;
  readonly store: Store;
  close(): Promise<void>;
}

/** Everything but the process: tests start an issuer in their own process with this. */
export async function startIssuer(config: IssuerConfig, logger: Logger, clock: () => number = () => Math.floor(Date.now() / 1000)): Promise<RunningIssuer> {
  const trust = readTrust(config);
  const keys = readKeys(config, clock(), logger);
  const active = activeKeys(keys, clock()).length;
  if (active === 0) throw new StartupError('no_active_key');
  const pinned = pinnedKeys(keys, clock());
  logger.event('keys_loaded', { active, pinned: pinned.length });
  if (config.tokenKeysOut !== null) {
    mkdirSync(dirname(config.tokenKeysOut), { recursive: true });
    writeFileSync(config.tokenKeysOut, encodeTokenKeysFile(config.issuerName, config.originInfo, pinned));
    logger.event('token_keys_written', { keys: pinned.length });
  }
  const store = await openStore(
    config.store.engine === 'embedded'
      ? config.store
      : { engine: 'postgres', connectionString: config.store.connectionString, ...(config.store.schema === null ? {} : { schema: config.store.schema }) },
  );
  logger.event('store_opened', { engine: store.engine });
  const server = createIssuerServer({
    issuer: {
      verifySrt: createSrtVerifier(trust),
      keys: () => keys,
      record: (sub, did, requestSha256, response) => recordIssuance(store, sub, did, requestSha256, response),
    },
    requestPath: config.requestPath,
    logger,
    now: clock,
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  logger.event('listening', { port });
  return {
    port,
    store,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store.close();
    },
  };
}

function fail(message: string, code: number): never {
  process.stderr.write(`issuer: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  let config: IssuerConfig | null;
  try {
    config = parseConfig(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, 2);
    throw error;
  }
  if (config === null) {
    process.stdout.write(usage());
    return;
  }
  const logger = createLogger();
  const starting = startIssuer(config, logger);
  // Installed before "listening" is logged: a supervisor may stop us as soon as it reads it.
  closeOnSignals(starting, (signal) => logger.event('stopping', { signal }));
  try {
    await starting;
  } catch (error) {
    if (error instanceof KeyFileError || error instanceof StartupError) {
      logger.event('startup_failed', { code: error.code });
      fail(error.message, 1);
    }
    if (error instanceof TrustError) fail(error.message, 1);
    throw error;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
