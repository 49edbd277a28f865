// The DIP service's logger (SPEC §11 Logs): one JSON line per request with method, route template
// (never a backup id), status and latency — never a token, a body, an IP or a client address —
// plus a closed set of events whose fields are numbers or fixed words. No line carries a time:
// these lines sit next to redemptions (SPEC §10), and a collector that wants one stamps its own.

import { requestLine, undatedEventLine } from '../common/http-log.js';

export type RouteLabel =
  | '/v1/attestation'
  | '/v1/keys'
  | '/v1/dip/assign'
  | '/v1/dip/refresh'
  | '/v1/backup/:id'
  | '/healthz'
  | '/readyz'
  | 'unmatched';

export type AdminRouteLabel = '/readyz' | '/metrics' | '/admin/pool' | '/admin/ranges' | '/admin/ranges/drain' | '/admin/expire' | 'unmatched';

export interface EventFields {
  listening: { port: number };
  admin_listening: { port: number };
  store_opened: { engine: 'embedded' | 'postgres' };
  keys_loaded: { keys: number; active: number };
  /** Ranges given with --range: how many were new, and how many addresses they added. */
  ranges_ensured: { given: number; added: number; addresses: number };
  /** A parent (its position in --parent) changed state. */
  parent_state: { parent: number; state: 'ok' | 'locked' | 'unreachable' };
  expiry_ran: { quarantined: number; freed: number; forgotten: number };
  expiry_failed: { code: string };
  /** An operator route changed the pool; counts only, never the range. */
  range_changed: { action: 'added' | 'drained' | 'removed'; addresses: number };
  startup_failed: { code: string };
  stopping: { signal: 'SIGTERM' | 'SIGINT' };
}

export interface Logger {
  request(method: string | undefined, route: RouteLabel | AdminRouteLabel, status: number, ms: number): void;
  event<E extends keyof EventFields>(name: E, fields: EventFields[E]): void;
}

export function createLogger(write: (line: string) => void = (line) => process.stdout.write(line)): Logger {
  return {
    request(method, route, status, ms) {
      write(requestLine(method, route, status, ms));
    },
    event(name, fields) {
      write(undatedEventLine(name, fields));
    },
  };
}

export const silentLogger: Logger = { request() {}, event() {} };
