// The issuer's logger (SPEC §10–11, like the parent's §6): one JSON line per request with method,
// route template, status and latency — never an SRT, a subscription id, a token or an address —
// plus a closed set of events whose fields are numbers or fixed words.

import { eventLine, requestLine } from '../common/http-log.js';

export type RouteLabel = '/.well-known/private-token-issuer-directory' | 'issuer-request-uri' | '/healthz' | 'unmatched';

export interface EventFields {
  listening: { port: number };
  store_opened: { engine: 'embedded' | 'postgres' };
  key_created: { not_before: number };
  keys_loaded: { active: number; pinned: number };
  token_keys_written: { keys: number };
  startup_failed: { code: string };
  stopping: { signal: 'SIGTERM' | 'SIGINT' };
}

export interface Logger {
  request(method: string | undefined, route: RouteLabel, status: number, ms: number): void;
  event<E extends keyof EventFields>(name: E, fields: EventFields[E]): void;
}

export function createLogger(write: (line: string) => void = (line) => process.stdout.write(line)): Logger {
  return {
    request(method, route, status, ms) {
      write(requestLine(method, route, status, ms));
    },
    event(name, fields) {
      write(eventLine(name, fields));
    },
  };
}

export const silentLogger: Logger = { request() {}, event() {} };
