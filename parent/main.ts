// The parent proxy's entry point (SPEC §6): reads flags and DIP_PARENT_* variables, connects the
// enclave pool, serves HTTP(S), reloads the TLS certificate on SIGHUP and drains in-flight
// requests on SIGTERM/SIGINT. Run: node --import tsx parent/main.ts --enclave unix:PATH

import { readFileSync } from 'node:fs';
import { ConfigError, parseConfig, usage, type ParentConfig } from './config.js';
import { openEnclaveDialer } from './enclave-address.js';
import { bufferedStdout, createLogger } from './log.js';
import { createMetrics } from './metrics.js';
import { EnclavePool } from './pool.js';
import { RateLimiter } from './ratelimit.js';
import { createParentServer } from './server.js';

function fail(message: string, code: number): never {
  process.stderr.write(`parent: ${message}\n`);
  process.exit(code);
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
    fail('cannot read --tls-cert or --tls-key', 1);
  }

  const logger = createLogger(bufferedStdout());
  const metrics = createMetrics({ defaultMetrics: true });
  const dialer = await openEnclaveDialer(config.enclave, { onRestart: (code) => logger.event('bridge_restarted', { code: code ?? -1 }) });
  const pool = new EnclavePool({
    connectOptions: dialer.connectOptions,
    size: config.poolSize,
    pipelineDepth: config.pipelineDepth,
    queueLimit: config.queueLimit,
    timeoutMs: config.timeoutMs,
    observer: {
      ...metrics.poolObserver,
      connected: (connection) => logger.event('enclave_connected', { connection }),
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
      ...(tls === undefined ? {} : { tls }),
    });
    const address = await server.listen(config.listen.host, config.listen.port);
    logger.event('listening', { scheme: tls === undefined ? 'http' : 'https', port: address.port });
  } catch {
    await pool.close();
    await dialer.close();
    fail('cannot serve on --listen (address in use or not permitted), or the TLS certificate and key do not match', 1);
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
