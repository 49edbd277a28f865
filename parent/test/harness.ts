// Starts the parent's HTTP server in-process against a fake enclave (already unlocked with the
// keyset's m_commit, so KMS is never asked), for the route tests.

import { EnclaveFleet } from '../fleet.js';
import { KmsCallError, type KeyCustody } from '../kms.js';
import { createLogger } from '../log.js';
import { createMetrics, type ParentMetrics } from '../metrics.js';
import { EnclavePool, type PoolOptions } from '../pool.js';
import { RateLimiter } from '../ratelimit.js';
import { createParentServer, type ParentServer, type ParentServerOptions } from '../server.js';
import { FAKE_M_COMMIT, FakeEnclave } from './fake-enclave.js';
import { waitFor } from './helpers.js';

export interface Harness {
  enclave: FakeEnclave;
  pool: EnclavePool;
  fleet: EnclaveFleet;
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

/** A KMS that never answers: the harness's enclaves need none. */
export const unreachableKms: KeyCustody = {
  generateDataKey: () => Promise.reject(new KmsCallError('kms_unreachable')),
  decrypt: () => Promise.reject(new KmsCallError('kms_unreachable')),
  close() {},
};

/** The parent server's settings in tests: generous limits, every log line kept in `lines`. */
export function testServerOptions(enclave: ParentServerOptions['enclave'], metrics: ParentMetrics, lines: string[]): ParentServerOptions {
  return {
    enclave,
    metrics,
    logger: createLogger((line) => lines.push(line)),
    attestationLimiter: new RateLimiter({ ratePerSecond: 1000, burst: 1000 }),
    bodyLimit: 16 * 1024,
    headerTimeoutMs: 10_000,
    requestTimeoutMs: 30_000,
    keepAliveTimeoutMs: 5000,
  };
}

export async function startHarness(t: { after: (fn: () => Promise<void>) => void }, options: HarnessOptions = {}): Promise<Harness> {
  const enclave = await new FakeEnclave().start();
  const metrics = createMetrics();
  let pool!: EnclavePool;
  const fleet = new EnclaveFleet({
    count: 1,
    keyset: { kmsKeyId: 'test-key', deployment: 'test', ciphertextBlob: new Uint8Array(8), mCommit: FAKE_M_COMMIT },
    custody: unreachableKms,
    observer: metrics.fleetObserver,
    createPool: (_index, fleetObserver) =>
      (pool = new EnclavePool({
        connectOptions: { path: enclave.path },
        size: 2,
        pipelineDepth: 32,
        queueLimit: 1000,
        timeoutMs: 10_000,
        backoff: { initialMs: 10, maxMs: 100 },
        ...options.pool,
        observer: {
          ...metrics.poolObserver,
          connected: (c) => fleetObserver.connected!(c),
          disconnected: (c, failed) => {
            metrics.poolObserver.disconnected!(c, failed);
            fleetObserver.disconnected!(c, failed);
          },
          connectFailed: (c, reached) => {
            metrics.poolObserver.connectFailed!(c, reached);
            fleetObserver.connectFailed!(c, reached);
          },
        },
      })),
  });
  metrics.setPoolState(() => fleet.state);
  metrics.setEnclaveCounts(() => fleet.counts());
  const lines: string[] = [];
  const parent = createParentServer({ ...testServerOptions(fleet, metrics, lines), ...options.server });
  const { port } = await parent.listen('127.0.0.1', 0);
  t.after(async () => {
    await parent.shutdown(0);
    await fleet.close();
    await enclave.dispose();
  });
  await waitFor(() => pool.state.ready === pool.state.size && fleet.stateOf(0) === 'ready', 10_000, 'pool and enclave ready');
  // The fleet asks `health` once per new connection; tests count only their own requests.
  await waitFor(() => enclave.requests >= pool.state.size, 10_000, 'one health per connection');
  enclave.requests = 0;
  return { enclave, pool, fleet, parent, metrics, port, lines };
}
