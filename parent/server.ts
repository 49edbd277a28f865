// The parent's HTTP(S) front (SPEC §6): exactly the routes of the spec, mapped between
// JSON/base64url and enclave ops. The parent is untrusted by design: it forwards ciphertext,
// adds nothing to and removes nothing from what the enclave returns, and logs only method,
// route, status and latency.
//
// Decisions where the spec is silent: HEAD and every other method is 405 with `Allow`; a query
// string is accepted only on /v1/attestation and must be exactly `nonce=` (else 400); a POST
// body must be `application/json` (parameters allowed, but a charset other than UTF-8 is 415).

import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import { decodeBase64url, encodeBase64url } from '../protocol/base64url.js';
import { DipError, ERROR_MESSAGES, httpStatusOf, toDipError, type ErrorCode } from '../protocol/errors.js';
import { isCanonicalIp } from '../protocol/ip.js';
import { MAX_NONCE_BYTES, MIN_NONCE_BYTES, MIN_SEALED_REQUEST_BYTES } from '../protocol/limits.js';
import type { Op, RequestBodies, ResponseBodies } from '../protocol/messages.js';
import { sealedRequestKeyId } from '../protocol/sealed-header.js';
import { BodyError, isJsonContentType, readBody } from '../common/http-body.js';
import { methodLabel, type Logger, type RouteLabel } from './log.js';
import type { ParentMetrics } from './metrics.js';
import type { RateLimiter } from './ratelimit.js';

/** What the server needs of the enclaves (parent/fleet.ts): routing, and what it knows of each. */
export interface EnclaveClient {
  call<K extends Op>(op: K, body: RequestBodies[K]): Promise<ResponseBodies[K]>;
  /** The enclaves reached now (SPEC §6 GET /v1/enclaves). */
  list(): Array<{ key_id: Uint8Array; status: 'ok' | 'locked' }>;
  /** Null when an enclave is ready to serve; else the code /readyz answers with. */
  unavailable(): ErrorCode | null;
}

export interface ParentServerOptions {
  enclave: EnclaveClient;
  metrics: ParentMetrics;
  logger: Logger;
  attestationLimiter: RateLimiter;
  bodyLimit: number;
  headerTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** False when /metrics has its own listener (--metrics-listen): here it is then 404. */
  serveMetrics?: boolean;
  /** PEM certificate chain and key: HTTPS when given. */
  tls?: { cert: string | Buffer; key: string | Buffer };
}

export interface ParentServer {
  readonly server: Server | HttpsServer;
  listen(host: string, port: number): Promise<AddressInfo>;
  /** Replaces the certificate for new TLS handshakes; open connections keep theirs. */
  reloadTls(cert: string | Buffer, key: string | Buffer): void;
  /** Stops accepting, lets in-flight requests finish for up to `graceMs`, then closes the rest. */
  shutdown(graceMs: number): Promise<void>;
  readonly inFlight: number;
}

interface Reply {
  status: number;
  type: string;
  // JSON stays text: Node encodes it into the socket write, with no Buffer made in between.
  body: string | Uint8Array;
  headers?: Record<string, string>;
}

type Route = Exclude<RouteLabel, 'unmatched'>;
/** SPEC §6's route table; test/routes compares it with the spec's markdown table. */
export const ROUTES: ReadonlyMap<string, { route: Route; method: 'GET' | 'POST' }> = new Map([
  ['/v1/attestation', { route: '/v1/attestation', method: 'GET' }],
  ['/v1/enclaves', { route: '/v1/enclaves', method: 'GET' }],
  ['/v1/keys', { route: '/v1/keys', method: 'GET' }],
  ['/v1/dip/assign', { route: '/v1/dip/assign', method: 'POST' }],
  ['/v1/dip/refresh', { route: '/v1/dip/refresh', method: 'POST' }],
  ['/healthz', { route: '/healthz', method: 'GET' }],
  ['/readyz', { route: '/readyz', method: 'GET' }],
  ['/metrics', { route: '/metrics', method: 'GET' }],
] as const);

const JSON_TYPE = 'application/json';

function json(status: number, value: unknown): Reply & { body: string } {
  return { status, type: JSON_TYPE, body: JSON.stringify(value) };
}

export function errorReply(code: ErrorCode, headers?: Record<string, string>): Reply & { body: string } {
  const reply = json(httpStatusOf(code), { error: { code, message: ERROR_MESSAGES[code] } });
  if (headers !== undefined) reply.headers = headers;
  return reply;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses a JSON object with exactly `keys`, each a string. */
function parseJsonFields<K extends string>(body: Buffer, keys: readonly K[]): Record<K, string> {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(body));
  } catch {
    throw new DipError('bad_request');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DipError('bad_request');
  const record = value as Record<string, unknown>;
  const present = Object.keys(record);
  if (present.length !== keys.length || !keys.every((k) => typeof record[k] === 'string')) throw new DipError('bad_request');
  return record as Record<K, string>;
}

function bytesField(text: string, min: number, max: number): Uint8Array {
  const bytes = decodeBase64url(text);
  if (bytes === null || bytes.length < min || bytes.length > max) throw new DipError('bad_request');
  return bytes;
}

/**
 * The fields of an assign or refresh body, checked before anything reaches the enclave: `ip` in
 * SPEC §2's canonical form (so no text that is not well-formed Unicode is ever framed) and a
 * sealed request whose header is version 0x02 and that is at least hdr || enc || tag long (SPEC §4).
 */
function sealedFields(raw: Buffer): { ip: string; request: Uint8Array } {
  const fields = parseJsonFields(raw, ['ip', 'request']);
  if (!isCanonicalIp(fields.ip)) throw new DipError('bad_request');
  const request = bytesField(fields.request, MIN_SEALED_REQUEST_BYTES, Infinity);
  if (sealedRequestKeyId(request) === null) throw new DipError('bad_request');
  return { ip: fields.ip, request };
}

/**
 * The JSON that JSON.stringify would write for { ip, reservedUntil, response }, without having it
 * scan the ~5.5 kB of base64url for characters to escape: base64url has none. The reply is only
 * valid JSON if `reservedUntil` is an unsigned integer and `ip` a canonical address, so this
 * checks them here rather than trusting that every EnclaveClient ran parseResponseBody.
 */
function dipResult(result: ResponseBodies['assign']): Reply {
  const { ip, reservedUntil, response } = result;
  if (!isCanonicalIp(ip) || !Number.isSafeInteger(reservedUntil) || reservedUntil < 0 || !(response instanceof Uint8Array)) {
    throw new DipError('internal');
  }
  const body = `{"ip":${JSON.stringify(ip)},"reservedUntil":${reservedUntil},"response":"${encodeBase64url(response)}"}`;
  return { status: 200, type: JSON_TYPE, body };
}

export function createParentServer(options: ParentServerOptions): ParentServer {
  const { enclave, metrics, logger, attestationLimiter, bodyLimit } = options;
  let active = 0;
  let draining = false;
  let onIdle: (() => void) | null = null;

  async function dispatch(req: IncomingMessage, setRoute: (route: Route) => void): Promise<Reply> {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const spec = ROUTES.get(path);
    if (spec === undefined || (spec.route === '/metrics' && options.serveMetrics === false)) return errorReply('not_found');
    setRoute(spec.route);
    if (req.method !== spec.method) return errorReply('method_not_allowed', { allow: spec.method });
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > bodyLimit) return errorReply('payload_too_large', { connection: 'close' });
    const query = q < 0 ? null : url.slice(q + 1);
    if (query !== null && spec.route !== '/v1/attestation') return errorReply('bad_request');

    switch (spec.route) {
      case '/v1/attestation': {
        const params = new URLSearchParams(query ?? '');
        const names = [...params.keys()];
        const nonce = params.get('nonce');
        if (names.length !== 1 || nonce === null) throw new DipError('bad_request');
        const body = { nonce: bytesField(nonce, MIN_NONCE_BYTES, MAX_NONCE_BYTES) };
        if (!attestationLimiter.take(req.socket.remoteAddress ?? '')) {
          metrics.rateLimited(spec.route);
          return errorReply('rate_limited', { 'retry-after': '1' });
        }
        const { document, jwks } = await enclave.call('attest', body);
        return json(200, { document: encodeBase64url(document), jwks: encodeBase64url(jwks) });
      }
      case '/v1/enclaves':
        return json(200, { enclaves: enclave.list().map((e) => ({ key_id: encodeBase64url(e.key_id), status: e.status })) });
      case '/v1/keys': {
        const { jwks } = await enclave.call('jwks', {});
        return { status: 200, type: 'application/jwk-set+json', body: Buffer.from(jwks.buffer, jwks.byteOffset, jwks.byteLength) };
      }
      case '/v1/dip/assign':
      case '/v1/dip/refresh': {
        if (!isJsonContentType(req.headers['content-type'])) return errorReply('unsupported_media_type');
        let raw: Buffer;
        try {
          raw = await readBody(req, bodyLimit);
        } catch (error) {
          const code = error instanceof BodyError && error.reason === 'too_large' ? 'payload_too_large' : 'bad_request';
          return errorReply(code, { connection: 'close' });
        }
        const body = sealedFields(raw);
        return dipResult(await enclave.call(spec.route === '/v1/dip/assign' ? 'assign' : 'refresh', body));
      }
      case '/healthz':
        return json(200, { status: 'ok' });
      case '/readyz':
        if (draining) return errorReply('enclave_unavailable');
        {
          // The body says why: no enclave reached, or reached but still locked (KMS not answering).
          const why = enclave.unavailable();
          if (why !== null) return errorReply(why);
        }
        await enclave.call('health', {});
        return json(200, { status: 'ok' });
      case '/metrics':
        return { status: 200, type: metrics.registry.contentType, body: await metrics.render() };
    }
  }

  function send(res: ServerResponse, reply: Reply): void {
    if (res.headersSent || res.destroyed) return;
    const headers: Record<string, string | number> = { 'content-type': reply.type, 'content-length': Buffer.byteLength(reply.body), ...reply.headers };
    if (draining) headers['connection'] = 'close';
    res.writeHead(reply.status, headers);
    res.end(reply.body);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    let route: RouteLabel = 'unmatched';
    active++;
    res.once('close', () => {
      active--;
      // 499: the client went away before its response was complete.
      const status = res.writableFinished ? res.statusCode : 499;
      const ms = performance.now() - started;
      logger.request(req.method, route, status, ms);
      metrics.observeRequest(methodLabel(req.method), route, status, ms / 1000);
      if (active === 0) onIdle?.();
    });
    let reply: Reply;
    try {
      reply = await dispatch(req, (r) => (route = r));
    } catch (error) {
      reply = errorReply(toDipError(error).code);
    }
    send(res, reply);
  }

  const serverOptions = {
    headersTimeout: options.headerTimeoutMs,
    requestTimeout: options.requestTimeoutMs,
    keepAliveTimeout: options.keepAliveTimeoutMs,
    // Node checks the two timeouts above on this interval (default 30 s, too coarse here).
    connectionsCheckingInterval: Math.min(1000, options.headerTimeoutMs),
    requireHostHeader: false,
  };
  const listener = (req: IncomingMessage, res: ServerResponse): void => void handle(req, res);
  const server: Server | HttpsServer =
    options.tls === undefined
      ? createHttpServer(serverOptions, listener)
      : createHttpsServer(
          // A client that stalls the TLS handshake is held to the header deadline too.
          { ...serverOptions, cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.2', handshakeTimeout: options.headerTimeoutMs },
          listener,
        );

  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    metrics.clientError();
    // A client that timed out or hung up gets nothing more; malformed HTTP gets the SPEC body.
    if (error.code === 'ECONNRESET' || error.code === 'ERR_HTTP_REQUEST_TIMEOUT' || !socket.writable) {
      socket.destroy();
      return;
    }
    const reply = errorReply('bad_request');
    socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: ${reply.type}\r\ncontent-length: ${Buffer.byteLength(reply.body)}\r\nconnection: close\r\n\r\n${reply.body}`);
  });

  return {
    server,
    get inFlight() {
      return active;
    },
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port }, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    reloadTls(cert, key) {
      if (!('setSecureContext' in server)) throw new TypeError('this server does not serve TLS');
      createSecureContext({ cert, key }); // throws on a bad pair before anything changes
      server.setSecureContext({ cert, key, minVersion: 'TLSv1.2' });
    },
    async shutdown(graceMs) {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (active > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, graceMs);
          onIdle = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      server.closeAllConnections();
      await closed;
    },
  };
}
