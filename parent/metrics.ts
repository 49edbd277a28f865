// Prometheus metrics of the parent (GET /metrics, SPEC §6). Labels come from closed sets —
// route names, methods, status codes, pool states — never from request data.

import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ENCLAVE_STATES, UNLOCK_FAILURES, type EnclaveState, type FleetObserver } from './fleet.js';
import type { RouteLabel } from './log.js';
import type { PoolObserver, PoolState } from './pool.js';

export interface ParentMetrics {
  readonly registry: Registry;
  /** Hooks for the enclave pool. */
  readonly poolObserver: PoolObserver;
  observeRequest(method: string, route: RouteLabel, status: number, seconds: number): void;
  rateLimited(route: RouteLabel): void;
  clientError(): void;
  /** Hooks for the enclave fleet (unlocks and their failures). */
  readonly fleetObserver: FleetObserver;
  /** Where the pool's gauges read from; set once the pool exists. */
  setPoolState(read: () => PoolState): void;
  /** Where the enclaves-by-state gauge reads from; set once the fleet exists. */
  setEnclaveCounts(read: () => Record<EnclaveState, number>): void;
  render(): Promise<string>;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): ParentMetrics {
  const registry = new Registry();
  if (options.defaultMetrics === true) collectDefaultMetrics({ register: registry, prefix: 'dip_parent_' });
  let readPool: () => PoolState = () => ({ size: 0, ready: 0, inFlight: 0, queued: 0 });
  let readEnclaves: () => Record<EnclaveState, number> = () => ({ ready: 0, locked: 0, unreachable: 0, out_of_service: 0 });

  const requests = new Counter({
    name: 'dip_parent_http_requests_total',
    help: 'HTTP requests answered, by route, method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'dip_parent_http_request_duration_seconds',
    help: 'Time from request to response, by route.',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const rateLimited = new Counter({
    name: 'dip_parent_rate_limited_total',
    help: 'Requests refused with 429 by the per-client token bucket.',
    labelNames: ['route'] as const,
    registers: [registry],
  });
  const clientErrors = new Counter({
    name: 'dip_parent_http_client_errors_total',
    help: 'Connections closed for malformed HTTP or header/request timeouts before a route was known.',
    registers: [registry],
  });
  new Gauge({
    name: 'dip_parent_enclave_connections',
    help: 'Enclave connections by state.',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const s = readPool();
      this.set({ state: 'ready' }, s.ready);
      this.set({ state: 'down' }, s.size - s.ready);
    },
  });
  new Gauge({
    name: 'dip_parent_enclave_in_flight',
    help: 'Requests sent to the enclave and not yet answered.',
    registers: [registry],
    collect() {
      this.set(readPool().inFlight);
    },
  });
  new Gauge({
    name: 'dip_parent_queue_depth',
    help: 'Requests waiting for a free enclave connection.',
    registers: [registry],
    collect() {
      this.set(readPool().queued);
    },
  });
  new Gauge({
    name: 'dip_parent_enclaves',
    help: 'Enclaves by state: ready (unlocked, m_commit matches), locked, unreachable, out_of_service (another m_commit).',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const counts = readEnclaves();
      for (const state of ENCLAVE_STATES) this.set({ state }, counts[state]);
    },
  });
  const unlocks = new Counter({ name: 'dip_parent_enclave_unlocks_total', help: 'Enclaves unlocked through KMS with the keyset\'s master secret.', registers: [registry] });
  const unlockFailures = new Counter({
    name: 'dip_parent_enclave_unlock_failures_total',
    help: 'Failed unlocks, by reason: kms_unreachable, kms_refused, enclave_refused, m_commit_mismatch.',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of UNLOCK_FAILURES) unlockFailures.inc({ reason }, 0);
  const counter = (name: string, help: string): Counter => new Counter({ name, help, registers: [registry] });
  const overflow = counter('dip_parent_queue_rejections_total', 'Requests refused with 503 because the queue was full.');
  const timeouts = counter('dip_parent_enclave_timeouts_total', 'Requests answered 504 because the enclave did not answer in time.');
  const orphans = counter('dip_parent_enclave_orphan_responses_total', 'Enclave responses dropped because no pending request had their id.');
  const disconnects = counter('dip_parent_enclave_disconnects_total', 'Established enclave connections that were lost.');
  const connectFailures = counter('dip_parent_enclave_connect_failures_total', 'Attempts to connect to the enclave that failed.');
  const protocolErrors = counter('dip_parent_enclave_protocol_errors_total', 'Enclave connections closed because a frame was not a valid response.');

  return {
    registry,
    poolObserver: {
      disconnected: () => disconnects.inc(),
      connectFailed: () => connectFailures.inc(),
      orphanResponse: () => orphans.inc(),
      timedOut: () => timeouts.inc(),
      overflow: () => overflow.inc(),
      protocolError: () => protocolErrors.inc(),
    },
    fleetObserver: {
      unlocked: () => unlocks.inc(),
      unlockFailed: (_enclave, reason) => unlockFailures.inc({ reason }),
    },
    setEnclaveCounts(read) {
      readEnclaves = read;
    },
    observeRequest(method, route, status, seconds) {
      requests.inc({ route, method, status: String(status) });
      latency.observe({ route }, seconds);
    },
    rateLimited(route) {
      rateLimited.inc({ route });
    },
    clientError() {
      clientErrors.inc();
    },
    setPoolState(read) {
      readPool = read;
    },
    render() {
      return registry.metrics();
    },
  };
}

/**
 * A plain-HTTP listener for GET /metrics alone (--metrics-listen), so that the metrics need not
 * be served where the public API is. Anything else is 404, another method 405.
 */
export function createMetricsServer(metrics: ParentMetrics): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const status = path !== '/metrics' ? 404 : req.method !== 'GET' ? 405 : 200;
    if (status !== 200) {
      res.writeHead(status, status === 405 ? { allow: 'GET' } : {}).end();
      return;
    }
    void metrics.render().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
}
