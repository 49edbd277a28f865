// The DIP service's HTTP API for apps (SPEC §11, errors as §6): exactly its routes, HTTP ⇄ dip.ts
// and nothing else. Anything else is 404, another method 405 with `Allow` (HEAD included, like the
// parent); a query string is accepted only on /v1/attestation and must be exactly `nonce=`.
// Logs and metrics name the route template, never a backup id, an IP or a token. /readyz here is a
// status only, and /metrics is 404: both with figures are on the admin listener (admin.ts).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { BodyError, isJsonContentType, mediaTypeOf, readBody } from '../common/http-body.js';
import { decodeBase64url } from '../protocol/base64url.js';
import { DipError, ERROR_MESSAGES, httpStatusOf, toDipError, type ErrorCode } from '../protocol/errors.js';
import { MAX_NONCE_BYTES, MIN_NONCE_BYTES } from '../protocol/limits.js';
import { MAX_BACKUP_BYTES } from '../store/backup.js';
import { assign, backupId, errorCodeOf, fetchBackup, redeem, refresh, removeBackup, storeBackup, type Dip } from './dip.js';
import { readiness, type FiguresCache } from './figures.js';
import type { Logger, RouteLabel } from './log.js';
import type { ServiceMetrics } from './metrics.js';
import type { Upstream } from './parents.js';
import { challengeHeader } from './token-keys.js';

/** What the server needs of the parents beyond the assign/refresh routing. */
export interface ParentGateway {
  get(pathAndQuery: string): Promise<Upstream | null>;
  readyCount(): number;
}

export interface ServiceServerOptions {
  dip: Dip;
  parents: ParentGateway;
  figures: FiguresCache;
  metrics: ServiceMetrics;
  logger: Logger;
  bodyLimit: number;
  /** Most connections open at once (server.maxConnections). */
  maxConnections: number;
}

/** A client has this long to send its request headers, and its whole request (a slow-loris bound). */
export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 30_000;

interface Reply {
  status: number;
  type?: string;
  body: Buffer;
  headers?: Record<string, string>;
}

type Route = Exclude<RouteLabel, 'unmatched'>;

/** SPEC §11's routes and the methods each takes. */
export const ROUTES: ReadonlyMap<string, { route: Route; methods: readonly string[] }> = new Map([
  ['/v1/attestation', { route: '/v1/attestation', methods: ['GET'] }],
  ['/v1/keys', { route: '/v1/keys', methods: ['GET'] }],
  ['/v1/dip/assign', { route: '/v1/dip/assign', methods: ['POST'] }],
  ['/v1/dip/refresh', { route: '/v1/dip/refresh', methods: ['POST'] }],
  ['/healthz', { route: '/healthz', methods: ['GET'] }],
  ['/readyz', { route: '/readyz', methods: ['GET'] }],
] as const);

const BACKUP_PREFIX = '/v1/backup/';
const BACKUP_METHODS = ['GET', 'PUT', 'DELETE'] as const;
const OCTET_STREAM = 'application/octet-stream';

function json(status: number, value: unknown): Reply {
  return { status, type: 'application/json', body: Buffer.from(JSON.stringify(value)) };
}

export function errorReply(code: ErrorCode, headers?: Record<string, string>): Reply {
  const reply = json(httpStatusOf(code), { error: { code, message: ERROR_MESSAGES[code] } });
  if (headers !== undefined) reply.headers = headers;
  return reply;
}

/**
 * A parent's answer to a GET, verbatim (status, media type and bytes) when SPEC §6 allows it: a 200,
 * or an error status with its error body. Anything else (a status such as 000 or 302, a 500 without
 * a §6 body) is a malformed answer and becomes enclave_unavailable.
 */
function passThrough(outcome: Upstream | null): Reply {
  if (outcome === null) return errorReply('enclave_unavailable');
  if (outcome.kind === 'timeout') return errorReply('enclave_timeout');
  if (outcome.kind !== 'answered') return errorReply('enclave_unavailable');
  if (outcome.status !== 200 && errorCodeOf(outcome.status, outcome.body) === null) return errorReply('enclave_unavailable');
  return { status: outcome.status, body: outcome.body, ...(outcome.contentType === null ? {} : { type: outcome.contentType }) };
}

function routeOf(path: string): { route: Route; methods: readonly string[] } | null {
  if (path.startsWith(BACKUP_PREFIX) && !path.slice(BACKUP_PREFIX.length).includes('/')) return { route: '/v1/backup/:id', methods: BACKUP_METHODS };
  return ROUTES.get(path) ?? null;
}

export function createServiceServer(options: ServiceServerOptions): Server {
  const { dip, parents, figures, metrics, logger, bodyLimit, maxConnections } = options;

  async function readLimited(req: IncomingMessage, limit: number): Promise<Buffer> {
    try {
      return await readBody(req, limit);
    } catch (error) {
      throw new DipError(error instanceof BodyError && error.reason === 'too_large' ? 'payload_too_large' : 'bad_request');
    }
  }

  async function dispatch(req: IncomingMessage, path: string, query: string | null, route: Route, methods: readonly string[]): Promise<Reply> {
    if (!methods.includes(req.method ?? '')) return errorReply('method_not_allowed', { allow: methods.join(', ') });
    if (query !== null && route !== '/v1/attestation') return errorReply('bad_request');
    const declared = Number(req.headers['content-length'] ?? 0);
    const limit = route === '/v1/backup/:id' ? MAX_BACKUP_BYTES : bodyLimit;
    if (declared > limit) return errorReply('payload_too_large', { connection: 'close' });

    switch (route) {
      case '/v1/attestation': {
        const params = new URLSearchParams(query ?? '');
        const nonceText = params.get('nonce');
        const nonce = nonceText === null || [...params.keys()].length !== 1 ? null : decodeBase64url(nonceText);
        if (nonce === null || nonce.length < MIN_NONCE_BYTES || nonce.length > MAX_NONCE_BYTES) return errorReply('bad_request');
        return passThrough(await parents.get(`/v1/attestation?nonce=${nonceText}`));
      }
      case '/v1/keys':
        return passThrough(await parents.get('/v1/keys'));
      case '/v1/dip/assign':
      case '/v1/dip/refresh': {
        // SPEC §10: every assign without a valid token is 401 with the challenge, before its body is read.
        const token = route === '/v1/dip/assign' ? redeem(dip, req.headers.authorization) : null;
        if (!isJsonContentType(req.headers['content-type'])) return errorReply('unsupported_media_type', { connection: 'close' });
        const body = await readLimited(req, bodyLimit);
        return json(200, token !== null ? await assign(dip, token, body) : await refresh(dip, body));
      }
      case '/v1/backup/:id': {
        const id = backupId(path.slice(BACKUP_PREFIX.length));
        if (req.method === 'GET') return { status: 200, type: OCTET_STREAM, body: Buffer.from(await fetchBackup(dip, id)) };
        if (req.method === 'DELETE') {
          await removeBackup(dip, id);
          return { status: 204, body: Buffer.alloc(0) };
        }
        if (mediaTypeOf(req.headers['content-type']) !== OCTET_STREAM) return errorReply('unsupported_media_type', { connection: 'close' });
        await storeBackup(dip, id, await readLimited(req, MAX_BACKUP_BYTES));
        return { status: 204, body: Buffer.alloc(0) };
      }
      case '/healthz':
        return json(200, { status: 'ok' });
      case '/readyz': {
        // Status only: pool figures polled by anyone would time redemptions (SPEC §10).
        const ready = await readiness(figures, () => parents.readyCount());
        return json(ready.status, ready.status === 200 ? { status: 'ok' } : ready.body);
      }
    }
  }

  function send(res: ServerResponse, reply: Reply): void {
    if (res.headersSent || res.destroyed) return;
    const headers: Record<string, string | number> = { 'content-length': reply.body.length, 'cache-control': 'no-store', ...reply.headers };
    if (reply.type !== undefined) headers['content-type'] = reply.type;
    res.writeHead(reply.status, headers);
    res.end(reply.body);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const spec = routeOf(path);
    const route: RouteLabel = spec?.route ?? 'unmatched';
    res.once('close', () => {
      // 499: the client went away before its response was complete.
      const status = res.writableFinished ? res.statusCode : 499;
      const ms = performance.now() - started;
      logger.request(req.method, route, status, ms);
      metrics.observeRequest(req.method, route, status, ms / 1000);
    });
    let reply: Reply;
    try {
      reply = spec === null ? errorReply('not_found') : await dispatch(req, path, q < 0 ? null : url.slice(q + 1), spec.route, spec.methods);
    } catch (error) {
      const code = toDipError(error).code;
      // RFC 9577 §2.1: a refused token is answered with the challenge to get a valid one. A body
      // refused part-way is left unread: the connection closes after the answer.
      const headers: Record<string, string> | undefined = code === 'token_invalid' ? { 'www-authenticate': challengeHeader(dip.tokenKeys, dip.now()) } : code === 'payload_too_large' ? { connection: 'close' } : undefined;
      reply = errorReply(code, headers);
    }
    send(res, reply);
  }

  // No request may reject unhandled (the process would exit): a failure before the answer is
  // `internal`, one after its head was sent ends the connection.
  function answerFailure(res: ServerResponse): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    try {
      send(res, errorReply('internal'));
    } catch {
      res.destroy();
    }
  }

  const server = createServer(
    { requireHostHeader: false, keepAliveTimeout: 5000, headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS },
    (req, res) => void handle(req, res).catch(() => answerFailure(res)),
  );
  server.maxConnections = maxConnections;
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const reply = errorReply('bad_request');
    socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${reply.body.length}\r\nconnection: close\r\n\r\n${reply.body.toString()}`);
  });
  return server;
}
