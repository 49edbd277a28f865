// Shared by the untrusted HTTP services: request-log labels from closed sets, so no method text
// a client sent reaches a log or a metric label.

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);

/** Methods are logged from this closed set; anything else is `OTHER`. */
export function methodLabel(method: string | undefined): string {
  return method !== undefined && METHODS.has(method) ? method : 'OTHER';
}

/** One request-log line: method (closed set), route template, status and latency only (SPEC §6). */
export function requestLine(method: string | undefined, route: string, status: number, ms: number): string {
  return `${JSON.stringify({ method: methodLabel(method), route, status, ms: Math.round(ms * 100) / 100 })}\n`;
}

/** One event line: the time, a fixed event name and fields the caller's types already closed. */
export function eventLine(name: string, fields: object): string {
  return `${JSON.stringify({ time: new Date().toISOString(), event: name, ...fields })}\n`;
}

/**
 * An event line without its time, for a service whose lines sit next to redemptions (SPEC §10:
 * no time finer than a day there): a log collector that stamps lines adds its own.
 */
export function undatedEventLine(name: string, fields: object): string {
  return `${JSON.stringify({ event: name, ...fields })}\n`;
}
