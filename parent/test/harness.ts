// Starts the parent's HTTP server in-process against a fake enclave, for the route tests.

import { createLogger } from '../log.js';
import { createMetrics, type ParentMetrics } from '../metrics.js';
import { EnclavePool, type PoolOptions } from '../pool.js';
import { RateLimiter } from '../ratelimit.js';
import { createParentServer, type ParentServer, type ParentServerOptions } from '../server.js';
import { FakeEnclave } from './fake-enclave.js';
import { waitFor } from './helpers.js';

export interface Harness {
  enclave: FakeEnclave;
  pool: EnclavePool;
  parent: ParentServer;
  metrics: ParentMetrics;
  port: number;
  /** Every line the parent logged. */
  lines: string[];
}

export interface HarnessOptions {
  pool?: Partial<PoolOptions>;
  server?: Partial<Omit<ParentServerOptions, 'enclave' | 'metrics' | 'logger'>>;
}

export async function startHarness(t: { after: (fn: () => Promise<void>) => void }, options: HarnessOptions = {}): Promise<Harness> {
  const enclave = await new FakeEnclave().start();
  const metrics = createMetrics();
  const pool = new EnclavePool({
    connectOptions: { path: enclave.path },
    size: 2,
    pipelineDepth: 32,
    queueLimit: 1000,
    timeoutMs: 10_000,
    backoff: { initialMs: 10, maxMs: 100 },
    observer: metrics.poolObserver,
    ...options.pool,
  });
  metrics.setPoolState(() => pool.state);
  const lines: string[] = [];
  const parent = createParentServer({
    enclave: pool,
    metrics,
    logger: createLogger((line) => lines.push(line)),
    attestationLimiter: new RateLimiter({ ratePerSecond: 1000, burst: 1000 }),
    bodyLimit: 16 * 1024,
    headerTimeoutMs: 10_000,
    requestTimeoutMs: 30_000,
    keepAliveTimeoutMs: 5000,
    ...options.server,
  });
  const { port } = await parent.listen('127.0.0.1', 0);
  t.after(async () => {
    await parent.shutdown(0);
    await pool.close();
    await enclave.dispose();
  });
  await waitFor(() => pool.state.ready === pool.state.size, 10_000, 'pool ready');
  return { enclave, pool, parent, metrics, port, lines };
}
