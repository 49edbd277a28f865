// The parent's logger (SPEC §6): one JSON line per request with method, route, status and
// latency only — never bodies, query strings, headers or client addresses — plus a closed set
// of operational events whose fields are numbers or fixed words.

export type RouteLabel =
  | '/v1/attestation'
  | '/v1/enclaves'
  | '/v1/keys'
  | '/v1/dip/assign'
  | '/v1/dip/refresh'
  | '/healthz'
  | '/readyz'
  | '/metrics'
  | 'unmatched';

import { eventLine, methodLabel, requestLine } from '../common/http-log.js';

export { methodLabel };

export interface EventFields {
  listening: { scheme: 'http' | 'https'; port: number };
  metrics_listening: { port: number };
  /** The enclave answered on this connection (a `health` probe): only then is it connected. */
  enclave_connected: { enclave: number; connection: number };
  /** The socket opened (for vsock: the local socat bridge is up) but the enclave did not answer. */
  enclave_not_answering: { enclave: number; connection: number };
  /** The socket did not open at all (no enclave socket, or the bridge is down). */
  enclave_unreachable: { enclave: number; connection: number };
  enclave_disconnected: { enclave: number; connection: number; failed: number };
  bridge_restarted: { code: number };
  /** The keyset the proxy serves with (SPEC §9); m_commit is public, it names the secret. */
  keyset_loaded: { m_commit: string };
  /** An enclave (its position in --enclave) changed state. */
  enclave_state: { enclave: number; state: 'ready' | 'locked' | 'unreachable' | 'out_of_service' };
  enclave_unlocked: { enclave: number };
  enclave_unlock_failed: { enclave: number; reason: 'kms_unreachable' | 'kms_refused' | 'enclave_refused' | 'm_commit_mismatch' };
  /** `keyset create` wrote the file. */
  keyset_created: { m_commit: string };
  tls_reloaded: { ok: boolean };
  stopping: { signal: 'SIGTERM' | 'SIGINT'; inFlight: number };
  stopped: { ms: number };
}

export interface Logger {
  request(method: string | undefined, route: RouteLabel, status: number, ms: number): void;
  event<E extends keyof EventFields>(name: E, fields: EventFields[E]): void;
}

/**
 * Writes to stdout, batching the lines of one event-loop turn into a single write: under load
 * a write per request (synchronous for files and pipes) costs the parent more than the routing.
 * Whatever is buffered is flushed before the process exits.
 */
export function bufferedStdout(): (line: string) => void {
  let buffered = '';
  const flush = (): void => {
    if (buffered.length === 0) return;
    const text = buffered;
    buffered = '';
    process.stdout.write(text);
  };
  process.on('exit', flush);
  return (line) => {
    if (buffered.length === 0) setImmediate(flush);
    buffered += line;
  };
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
