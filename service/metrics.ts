// Prometheus metrics of the DIP service (SPEC §11), served by GET /metrics on the admin listener
// only. Labels come from closed sets — route templates, methods, status codes, pool states, SPEC §6
// codes, outcome words — never from request data: no IP, token, backup id or range becomes a label.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { methodLabel } from '../common/http-log.js';
import { ERROR_CODES } from '../protocol/errors.js';
import type { PoolFigures } from '../store/ip-pool.js';
import { ASSIGN_OUTCOMES, type AssignOutcome } from './dip.js';
import type { RouteLabel } from './log.js';

/** Upstream failures that are not a SPEC §6 code. */
const TRANSPORT_FAILURES = ['connection_refused', 'connection_lost', 'timeout', 'malformed'] as const;
const PARENT_ERROR_CODES = new Set<string>([...ERROR_CODES, ...TRANSPORT_FAILURES]);
const POOL_STATES = ['free', 'reserved', 'quarantined', 'draining'] as const;

export interface ServiceMetrics {
  readonly registry: Registry;
  observeRequest(method: string | undefined, route: RouteLabel, status: number, seconds: number): void;
  assign(outcome: AssignOutcome): void;
  parentError(code: string): void;
  /** Where the pool gauges read from (cached figures), and the count of parents with a ready enclave. */
  setSources(sources: { pool: () => Promise<PoolFigures>; parentsReady: () => number }): void;
  render(): Promise<string>;
}

export function createMetrics(): ServiceMetrics {
  const registry = new Registry();
  let sources: { pool: () => Promise<PoolFigures>; parentsReady: () => number } | null = null;
  const requests = new Counter({
    name: 'dip_service_http_requests_total',
    help: 'HTTP requests answered, by route template, method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'dip_service_http_request_duration_seconds',
    help: 'Time from request to response, by route template.',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const assigns = new Counter({
    name: 'dip_service_assign_outcomes_total',
    help: 'Assigns by outcome: assigned, token_invalid, bad_request, key_unknown, in_use, spent, exhausted, refused (released), kept (pending).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  for (const outcome of ASSIGN_OUTCOMES) assigns.inc({ outcome }, 0);
  const parentErrors = new Counter({
    name: 'dip_service_parent_errors_total',
    help: 'Parent calls that did not answer 200, by SPEC §6 code or connection_refused, connection_lost, timeout, malformed.',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'dip_service_pool_addresses',
    help: 'Pool addresses by state (free: may be handed out; draining: free in a draining range); cached for a few seconds.',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      if (sources === null) return;
      try {
        const figures = await sources.pool();
        for (const state of POOL_STATES) this.set({ state }, figures[state]);
      } catch {
        // The store does not answer: the gauges keep their last values; /readyz says 503.
      }
    },
  });
  new Gauge({
    name: 'dip_service_parents_ready',
    help: 'Parents that reach at least one ready enclave (from the latest /v1/enclaves poll).',
    registers: [registry],
    collect() {
      this.set(sources?.parentsReady() ?? 0);
    },
  });
  return {
    registry,
    observeRequest(method, route, status, seconds) {
      requests.inc({ route, method: methodLabel(method), status: String(status) });
      latency.observe({ route }, seconds);
    },
    assign(outcome) {
      assigns.inc({ outcome });
    },
    parentError(code) {
      parentErrors.inc({ code: PARENT_ERROR_CODES.has(code) ? code : 'malformed' });
    },
    setSources(next) {
      sources = next;
    },
    render() {
      return registry.metrics();
    },
  };
}
