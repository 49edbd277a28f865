// The parent proxy's entry point (SPEC §6): reads flags and DIP_PARENT_* variables, connects the
// enclave pool, serves HTTP(S), reloads the TLS certificate on SIGHUP and drains in-flight
// requests on SIGTERM/SIGINT. Run: node --import tsx parent/main.ts --enclave unix:PATH

import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { ConfigError, parseConfig, usage, type ParentConfig } from './config.js';
import { BridgeStartError, openEnclaveDialer, type EnclaveDialer } from './enclave-address.js';
import { bufferedStdout, createLogger } from './log.js';
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

async function main(): Promise<void> {
  let config: ParentConfig | null;
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

  const logger = createLogger(bufferedStdout());
  const metrics = createMetrics({ defaultMetrics: true });
  let dialer: EnclaveDialer;
  try {
    dialer = await openEnclaveDialer(config.enclave, { onRestart: (code) => logger.event('bridge_restarted', { code: code ?? -1 }) });
  } catch (error) {
    if (error instanceof BridgeStartError) failStartup(new StartupError('socat_missing'));
    throw error;
  }
  // Said once per connection and state, not on every reconnect attempt.
  const reported = new Map<number, 'enclave_not_answering' | 'enclave_unreachable'>();
  const pool = new EnclavePool({
    probe: true,
    connectOptions: dialer.connectOptions,
    size: config.poolSize,
    pipelineDepth: config.pipelineDepth,
    queueLimit: config.queueLimit,
    timeoutMs: config.timeoutMs,
    observer: {
      ...metrics.poolObserver,
      connected: (connection) => {
        reported.delete(connection);
        logger.event('enclave_connected', { connection });
      },
      connectFailed: (connection, reached) => {
        metrics.poolObserver.connectFailed!(connection, reached);
        const event = reached ? 'enclave_not_answering' : 'enclave_unreachable';
        if (reported.get(connection) === event) return;
        reported.set(connection, event);
        logger.event(event, { connection });
      },
      disconnected: (connection, failed) => {
        metrics.poolObserver.disconnected!(connection, failed);
        logger.event('enclave_disconnected', { connection, failed });
      },
    },
  });
  metrics.setPoolState(() => pool.state);

  let server: ReturnType<typeof createParentServer>;
  try {
    server = createParentServer({
      enclave: pool,
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
    await pool.close();
    await dialer.close();
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
    await pool.close();
    await dialer.close();
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
    await pool.close();
    await dialer.close();
    logger.event('stopped', { ms: Math.round(performance.now() - started) });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

await main();
