// The parent's entry point (SPEC §6, §9): reads flags and DIP_PARENT_* variables; serves HTTP(S)
// in front of every --enclave, unlocking each through KMS with the --keyset, reloads the TLS
// certificate on SIGHUP and drains in-flight requests on SIGTERM/SIGINT. `keyset create` is the
// operator's one-time command that makes the keyset.
// Run: node --import tsx parent/main.ts --enclave unix:PATH --keyset FILE   (or: keyset create …)

import { existsSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { encodeBase64url } from '../protocol/base64url.js';
import { ConfigError, parseConfig, parseKeysetCreateConfig, usage, type KeysetCreateConfig, type ParentConfig } from './config.js';
import { BridgeStartError, openEnclaveDialer, type EnclaveAddress, type EnclaveDialer } from './enclave-address.js';
import { EnclaveFleet } from './fleet.js';
import { createKeyset } from './keyset-create.js';
import { readKeyset } from './keyset.js';
import { createKmsCustody } from './kms.js';
import { bufferedStdout, createLogger, type Logger } from './log.js';
import { createMetrics, createMetricsServer } from './metrics.js';
import { EnclavePool } from './pool.js';
import { RateLimiter } from './ratelimit.js';
import { createParentServer } from './server.js';
import { StartupError, listenError, tlsError } from './startup.js';

function fail(message: string, code: number): never {
  process.stderr.write(`parent: ${message}\n`);
  process.exit(code);
}

/** One line, `parent: CODE: MESSAGE`, and exit 1: the operator's journal shows what to fix. */
function failStartup(error: StartupError): never {
  fail(`${error.code}: ${error.message}`, 1);
}

function readTls(config: ParentConfig): { cert: Buffer; key: Buffer } | undefined {
  if (config.tlsCert === null || config.tlsKey === null) return undefined;
  return { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) };
}

function parseOrFail<T>(parse: () => T | null): T | null {
  try {
    return parse();
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, 2);
    throw error;
  }
}

async function openDialer(address: EnclaveAddress, logger: Logger): Promise<EnclaveDialer> {
  try {
    return await openEnclaveDialer(address, { onRestart: (code) => logger.event('bridge_restarted', { code: code ?? -1 }) });
  } catch (error) {
    if (error instanceof BridgeStartError) failStartup(new StartupError('socat_missing'));
    throw error;
  }
}

/** `keyset create`: exits 0 with the keyset written, or 1 with `parent: CODE: MESSAGE`. */
async function keysetCreate(argv: readonly string[]): Promise<void> {
  const config: KeysetCreateConfig | null = parseOrFail(() => parseKeysetCreateConfig(argv, process.env));
  if (config === null) {
    process.stdout.write(usage());
    return;
  }
  // Said before anything is asked of the enclave or KMS: a deployment never gets a second secret.
  if (existsSync(config.keyset)) failStartup(new StartupError('keyset_exists'));
  const logger = createLogger();
  const dialer = await openDialer(config.enclave, logger);
  const pool = new EnclavePool({ probe: true, connectOptions: dialer.connectOptions, size: 1, pipelineDepth: 1, queueLimit: 0, timeoutMs: 60_000 });
  const custody = createKmsCustody({ region: config.kmsRegion, endpoint: config.kmsEndpoint });
  let outcome: StartupError | null = null;
  try {
    const deadline = Date.now() + 30_000;
    while (pool.state.ready === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    if (pool.state.ready === 0) throw new StartupError('enclave_unavailable');
    const keyset = await createKeyset(pool, custody, { path: config.keyset, kmsKeyId: config.kmsKeyId, deployment: config.deployment });
    logger.event('keyset_created', { m_commit: encodeBase64url(keyset.mCommit) });
  } catch (error) {
    if (!(error instanceof StartupError)) throw error;
    outcome = error;
  } finally {
    custody.close();
    await pool.close();
    await dialer.close();
  }
  if (outcome !== null) failStartup(outcome);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === 'keyset') {
    if (argv[1] !== 'create') fail('the keyset command is `keyset create`; see --help', 2);
    return keysetCreate(argv.slice(2));
  }
  const config: ParentConfig | null = parseOrFail(() => parseConfig(argv, process.env));
  if (config === null) {
    process.stdout.write(usage());
    return;
  }
  let tls: ReturnType<typeof readTls>;
  try {
    tls = readTls(config);
  } catch {
    failStartup(new StartupError('tls_unreadable'));
  }
  if (tls !== undefined) {
    try {
      createSecureContext(tls);
    } catch (error) {
      failStartup(tlsError(error));
    }
  }
  // SPEC §9: no keyset, no start: two hosts must never each make a secret of their own.
  const keyset = readKeyset(config.keyset);
  if (typeof keyset === 'string') failStartup(new StartupError(keyset));

  const logger = createLogger(bufferedStdout());
  logger.event('keyset_loaded', { m_commit: encodeBase64url(keyset.mCommit) });
  const metrics = createMetrics({ defaultMetrics: true });
  const dialers: EnclaveDialer[] = [];
  for (const address of config.enclaves) dialers.push(await openDialer(address, logger));
  const custody = createKmsCustody({ region: config.kmsRegion, endpoint: config.kmsEndpoint });
  const poolConfig = config;
  const fleet = new EnclaveFleet({
    count: dialers.length,
    keyset,
    custody,
    observer: {
      stateChanged: (enclave, state) => logger.event('enclave_state', { enclave, state }),
      unlocked: (enclave) => {
        metrics.fleetObserver.unlocked!(enclave);
        logger.event('enclave_unlocked', { enclave });
      },
      unlockFailed: (enclave, reason) => {
        metrics.fleetObserver.unlockFailed!(enclave, reason);
        logger.event('enclave_unlock_failed', { enclave, reason });
      },
    },
    createPool: (enclave, fleetObserver) => {
      // Said once per connection and state, not on every reconnect attempt.
      const reported = new Map<number, 'enclave_not_answering' | 'enclave_unreachable'>();
      return new EnclavePool({
        probe: true,
        connectOptions: dialers[enclave]!.connectOptions,
        size: poolConfig.poolSize,
        pipelineDepth: poolConfig.pipelineDepth,
        queueLimit: poolConfig.queueLimit,
        timeoutMs: poolConfig.timeoutMs,
        observer: {
          ...metrics.poolObserver,
          connected: (connection) => {
            reported.delete(connection);
            logger.event('enclave_connected', { connection, enclave });
            fleetObserver.connected!(connection);
          },
          connectFailed: (connection, reached) => {
            metrics.poolObserver.connectFailed!(connection, reached);
            fleetObserver.connectFailed!(connection, reached);
            const event = reached ? 'enclave_not_answering' : 'enclave_unreachable';
            if (reported.get(connection) === event) return;
            reported.set(connection, event);
            logger.event(event, { connection, enclave });
          },
          disconnected: (connection, failed) => {
            metrics.poolObserver.disconnected!(connection, failed);
            fleetObserver.disconnected!(connection, failed);
            logger.event('enclave_disconnected', { connection, enclave, failed });
          },
        },
      });
    },
  });
  metrics.setPoolState(() => fleet.state);
  metrics.setEnclaveCounts(() => fleet.counts());
  const closeEnclaves = async (): Promise<void> => {
    await fleet.close();
    custody.close();
    for (const dialer of dialers) await dialer.close();
  };

  let server: ReturnType<typeof createParentServer>;
  try {
    server = createParentServer({
      enclave: fleet,
      metrics,
      logger,
      attestationLimiter: new RateLimiter({ ratePerSecond: config.attestationRate, burst: config.attestationBurst }),
      bodyLimit: config.bodyLimit,
      headerTimeoutMs: config.headerTimeoutMs,
      requestTimeoutMs: config.requestTimeoutMs,
      keepAliveTimeoutMs: config.keepAliveTimeoutMs,
      serveMetrics: config.metricsListen === null,
      ...(tls === undefined ? {} : { tls }),
    });
  } catch (error) {
    await closeEnclaves();
    failStartup(tlsError(error));
  }
  let metricsServer: Server | null = null;
  try {
    const address = await server.listen(config.listen.host, config.listen.port).catch((error: unknown) => Promise.reject(listenError(error, '--listen')));
    if (config.metricsListen !== null) {
      const { host, port } = config.metricsListen;
      const listener = createMetricsServer(metrics);
      metricsServer = listener;
      await new Promise<void>((resolve, reject) => {
        listener.once('error', (error) => reject(listenError(error, '--metrics-listen')));
        listener.listen({ host, port }, resolve);
      });
      logger.event('metrics_listening', { port: (listener.address() as AddressInfo).port });
    }
    logger.event('listening', { scheme: tls === undefined ? 'http' : 'https', port: address.port });
  } catch (error) {
    metricsServer?.close();
    await server.shutdown(0);
    await closeEnclaves();
    failStartup(error instanceof StartupError ? error : new StartupError('listen_failed', '--listen'));
  }

  const tlsConfig = config;
  process.on('SIGHUP', () => {
    if (tls === undefined) return;
    try {
      const fresh = readTls(tlsConfig)!;
      server.reloadTls(fresh.cert, fresh.key);
      logger.event('tls_reloaded', { ok: true });
    } catch {
      // The old certificate stays in use; the operator sees the failure and can fix the files.
      logger.event('tls_reloaded', { ok: false });
    }
  });

  let stopping = false;
  const stop = async (signal: 'SIGTERM' | 'SIGINT'): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const started = performance.now();
    logger.event('stopping', { signal, inFlight: server.inFlight });
    metricsServer?.close();
    await server.shutdown(tlsConfig.shutdownGraceMs);
    await closeEnclaves();
    logger.event('stopped', { ms: Math.round(performance.now() - started) });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

await main();
