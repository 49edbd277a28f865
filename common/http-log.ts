// Shared by the untrusted HTTP services: request-log labels from closed sets, so no method text
// a client sent reaches a log or a metric label.

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);

/** Methods are logged from this closed set; anything else is `OTHER`. */
export function methodLabel(method: string | undefined): string {
  return method !== undefined && METHODS.has(method) ? method : 'OTHER';
}
