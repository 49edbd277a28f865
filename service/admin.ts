// The operator's routes (docs/service.md "Operating the pool"), on their own loopback listener
// (--admin-listen): readiness with the pool figures and the Prometheus metrics (kept off the app
// listener: polled there they would time redemptions more finely than SPEC §10's day), pool
// figures and ranges, adding, draining and removing ranges while the service serves, and running
// the expiry job (as of a later day only with --accelerated-clock).
// Only a Host of a loopback IP literal with this listener's port is served (DNS rebinding).
// Counts and ranges only: no route here answers with an address in use or anything about a token.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { BodyError, isJsonContentType, readBody } from '../common/http-body.js';
import { StoreError, type StoreErrorCode } from '../store/errors.js';
import { poolFigures } from '../store/ip-pool.js';
import { addRange, drainRange, listRanges, removeRange } from '../store/ip-range.js';
import type { Store } from '../store/store.js';
import { parseCidr } from './cidr.js';
import { parseDay, type ExpiryJob } from './expiry.js';
import { readiness, type FiguresCache } from './figures.js';
import type { AdminRouteLabel, Logger } from './log.js';
import type { ServiceMetrics } from './metrics.js';

export interface AdminServerOptions {
  store: Store;
  expiry: ExpiryJob;
  logger: Logger;
  figures: FiguresCache;
  metrics: ServiceMetrics;
  /** Parents that reach a ready enclave. */
  parentsReady(): number;
  /** Called after a range changed, so cached figures are read again. */
  poolChanged(): void;
}

const BODY_LIMIT = 65_536;

/** The admin errors: SPEC §6 codes for the request, the store's range codes for the pool. */
type AdminErrorCode = 'bad_request' | 'not_found' | 'method_not_allowed' | 'payload_too_large' | 'unsupported_media_type' | 'internal' | StoreErrorCode;

const ADMIN_STATUS: Partial<Record<AdminErrorCode, number>> = {
  bad_request: 400,
  not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  unsupported_media_type: 415,
  range_invalid: 400,
  range_too_large: 400,
  range_unknown: 404,
  range_overlaps: 409,
  range_busy: 409,
};

const MESSAGES: Partial<Record<AdminErrorCode, string>> = {
  bad_request: 'The request is malformed.',
  not_found: 'No such route.',
  method_not_allowed: 'Method not allowed on this route.',
  payload_too_large: 'The request body is too large.',
  unsupported_media_type: 'The request body must be application/json.',
  internal: 'Internal error.',
};

class AdminError extends Error {
  constructor(readonly code: AdminErrorCode) {
    super(code);
  }
}

interface Reply {
  status: number;
  /** Sent as JSON, or as it is when `type` is given (the Prometheus text). */
  body: unknown;
  type?: string;
  headers?: Record<string, string>;
}

function errorReply(code: AdminErrorCode, headers?: Record<string, string>): Reply {
  const message = MESSAGES[code] ?? new StoreError(code as StoreErrorCode).message;
  return { status: ADMIN_STATUS[code] ?? 500, body: { error: { code, message } }, ...(headers === undefined ? {} : { headers }) };
}

const ROUTES: ReadonlyMap<string, { route: Exclude<AdminRouteLabel, 'unmatched'>; methods: readonly string[] }> = new Map([
  ['/readyz', { route: '/readyz', methods: ['GET'] }],
  ['/metrics', { route: '/metrics', methods: ['GET'] }],
  ['/admin/pool', { route: '/admin/pool', methods: ['GET'] }],
  ['/admin/ranges', { route: '/admin/ranges', methods: ['POST', 'DELETE'] }],
  ['/admin/ranges/drain', { route: '/admin/ranges/drain', methods: ['POST'] }],
  ['/admin/expire', { route: '/admin/expire', methods: ['POST'] }],
] as const);

/** A JSON object whose members are among `allowed` and include `required`. */
async function jsonBody(req: IncomingMessage, allowed: readonly string[], required: readonly string[]): Promise<Record<string, unknown>> {
  let raw: Buffer;
  try {
    raw = await readBody(req, BODY_LIMIT);
  } catch (error) {
    throw new AdminError(error instanceof BodyError && error.reason === 'too_large' ? 'payload_too_large' : 'bad_request');
  }
  // An empty body is an empty object (`POST /admin/expire` alone); any other is JSON.
  if (raw.length > 0 && !isJsonContentType(req.headers['content-type'])) throw new AdminError('unsupported_media_type');
  let value: unknown;
  try {
    value = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'));
  } catch {
    throw new AdminError('bad_request');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AdminError('bad_request');
  const record = value as Record<string, unknown>;
  if (!Object.keys(record).every((key) => allowed.includes(key)) || !required.every((key) => Object.hasOwn(record, key))) throw new AdminError('bad_request');
  return record;
}

function cidrOf(value: unknown): string {
  if (typeof value !== 'string' || parseCidr(value) === null) throw new AdminError('range_invalid');
  return value;
}

/**
 * A Host of a loopback IP literal with this listener's port: a web page that rebinds its own name
 * to 127.0.0.1 (DNS rebinding) still sends that name, and is refused.
 */
function isLoopbackAuthority(host: string | undefined, port: number | undefined): boolean {
  const match = host === undefined ? null : /^(127(?:\.\d{1,3}){3}|\[::1\]):(\d{1,5})$/.exec(host);
  return match !== null && Number(match[2]) === port && (match[1] === '[::1]' || match[1]!.split('.').every((part) => Number(part) <= 255));
}

export function createAdminServer(options: AdminServerOptions): Server {
  const { store, expiry, logger, figures, metrics } = options;

  async function dispatch(req: IncomingMessage, route: Exclude<AdminRouteLabel, 'unmatched'>): Promise<Reply> {
    switch (route) {
      case '/readyz':
        return await readiness(figures, () => options.parentsReady());
      case '/metrics':
        return { status: 200, type: metrics.registry.contentType, body: await metrics.render() };
      case '/admin/pool':
        return { status: 200, body: { pool: await poolFigures(store), ranges: await listRanges(store) } };
      case '/admin/ranges': {
        if (req.method === 'DELETE') {
          const cidr = cidrOf((await jsonBody(req, ['cidr'], ['cidr'])).cidr);
          const before = (await listRanges(store)).find((range) => range.cidr === cidr);
          await removeRange(store, cidr);
          options.poolChanged();
          logger.event('range_changed', { action: 'removed', addresses: before?.free ?? 0 });
          return { status: 200, body: { cidr, removed: true } };
        }
        const fields = await jsonBody(req, ['cidr', 'exclude'], ['cidr']);
        const cidr = cidrOf(fields.cidr);
        const exclude = fields.exclude ?? [];
        if (!Array.isArray(exclude)) throw new AdminError('bad_request');
        const added = await addRange(store, cidr, exclude.map(cidrOf));
        options.poolChanged();
        logger.event('range_changed', { action: 'added', addresses: added });
        return { status: 200, body: { cidr, added } };
      }
      case '/admin/ranges/drain': {
        const cidr = cidrOf((await jsonBody(req, ['cidr'], ['cidr'])).cidr);
        await drainRange(store, cidr);
        options.poolChanged();
        const drained = (await listRanges(store)).find((range) => range.cidr === cidr);
        logger.event('range_changed', { action: 'drained', addresses: drained?.free ?? 0 });
        return { status: 200, body: { cidr, draining: true } };
      }
      case '/admin/expire': {
        const { today } = await jsonBody(req, ['today'], []);
        const day = today === undefined ? undefined : typeof today === 'string' ? parseDay(today) : null;
        if (day === null) throw new AdminError('bad_request');
        let result;
        try {
          result = await expiry.run(day);
        } catch (error) {
          if (error instanceof RangeError) throw new AdminError('bad_request');
          throw error;
        }
        options.poolChanged();
        return { status: 200, body: result };
      }
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const path = (req.url ?? '').split('?')[0]!;
    const spec = ROUTES.get(path);
    let reply: Reply;
    try {
      if (!isLoopbackAuthority(req.headers.host, req.socket.localPort)) reply = errorReply('bad_request', { connection: 'close' });
      else if (spec === undefined) reply = errorReply('not_found');
      else if (!spec.methods.includes(req.method ?? '')) reply = errorReply('method_not_allowed', { allow: spec.methods.join(', ') });
      else reply = await dispatch(req, spec.route);
    } catch (error) {
      const code: AdminErrorCode = error instanceof AdminError ? error.code : error instanceof StoreError && error.code.startsWith('range_') ? error.code : 'internal';
      reply = errorReply(code, code === 'payload_too_large' || code === 'unsupported_media_type' ? { connection: 'close' } : undefined);
    }
    const body = Buffer.from(reply.type === undefined ? JSON.stringify(reply.body) : String(reply.body));
    res.writeHead(reply.status, { 'content-type': reply.type ?? 'application/json', 'content-length': body.length, 'cache-control': 'no-store', ...reply.headers });
    res.end(body);
    logger.request(req.method, spec?.route ?? 'unmatched', reply.status, performance.now() - started);
  }

  return createServer({ requireHostHeader: false }, (req, res) => void handle(req, res));
}
