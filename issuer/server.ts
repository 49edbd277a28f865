// The issuer's HTTP API (SPEC §10, RFC 9578 §4 and §6): the directory and the token request, HTTP
// ⇄ issuance.ts and nothing else. Errors are §6's body; the SRT and the request never reach a log.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { DipError, toDipError, type ErrorCode } from '../protocol/errors.js';
import {
  ISSUER_DIRECTORY_PATH,
  MEDIA_TYPE_ISSUER_DIRECTORY,
  MEDIA_TYPE_TOKEN_REQUEST,
  MEDIA_TYPE_TOKEN_RESPONSE,
  encodeIssuerDirectory,
} from '../protocol/privacypass-http.js';
import { TOKEN_REQUEST_LENGTH } from '../protocol/privacypass.js';
import { issueToken, type Issuer } from './issuance.js';
import type { Logger, RouteLabel } from './log.js';
import { activeKeys, directoryEntry } from './token-keys.js';

export interface IssuerServerOptions {
  issuer: Issuer;
  requestPath: string;
  logger: Logger;
  /** Unix seconds; tests pin it. */
  now?: () => number;
}

/** A TokenRequest is this long exactly; a larger body is refused unread. */
const BODY_LIMIT = TOKEN_REQUEST_LENGTH;

function routeOf(path: string, requestPath: string): RouteLabel {
  if (path === ISSUER_DIRECTORY_PATH) return ISSUER_DIRECTORY_PATH;
  if (path === requestPath) return 'issuer-request-uri';
  if (path === '/healthz') return '/healthz';
  return 'unmatched';
}

/** RFC 6750 §2.1: `Bearer <token>`, the scheme case-insensitive. */
function bearerOf(header: string | undefined): string | null {
  const match = header === undefined ? null : /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(header);
  return match === null ? null : match[1]!;
}

function mediaTypeOf(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

async function readBody(req: IncomingMessage): Promise<Uint8Array> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > BODY_LIMIT) throw new DipError('payload_too_large');
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > BODY_LIMIT) throw new DipError('payload_too_large');
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

function send(res: ServerResponse, status: number, type: string, body: string | Uint8Array): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function sendError(res: ServerResponse, code: ErrorCode): number {
  const error = new DipError(code);
  send(res, error.httpStatus, 'application/json', JSON.stringify({ error: error.toJSON() }));
  return error.httpStatus;
}

export function createIssuerServer(options: IssuerServerOptions): Server {
  const { issuer, requestPath, logger } = options;
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));

  async function handle(req: IncomingMessage, res: ServerResponse, route: RouteLabel): Promise<number> {
    if (route === 'unmatched') return sendError(res, 'not_found');
    if (route === 'issuer-request-uri') {
      if (req.method !== 'POST') return sendError(res, 'method_not_allowed');
      if (mediaTypeOf(req.headers['content-type']) !== MEDIA_TYPE_TOKEN_REQUEST) return sendError(res, 'unsupported_media_type');
      const body = await readBody(req);
      const response = await issueToken(issuer, bearerOf(req.headers.authorization), body, now());
      send(res, 200, MEDIA_TYPE_TOKEN_RESPONSE, response);
      return 200;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 'method_not_allowed');
    if (route === '/healthz') {
      send(res, 200, 'text/plain', 'ok\n');
      return 200;
    }
    const directory = encodeIssuerDirectory({
      issuerRequestUri: requestPath,
      tokenKeys: activeKeys(issuer.keys(), now()).map(directoryEntry),
    });
    send(res, 200, MEDIA_TYPE_ISSUER_DIRECTORY, directory);
    return 200;
  }

  return createServer((req, res) => {
    const started = performance.now();
    const route = routeOf((req.url ?? '').split('?')[0]!, requestPath);
    handle(req, res, route)
      .catch((error: unknown) => (res.headersSent ? 500 : sendError(res, toDipError(error).code)))
      .then((status) => logger.request(req.method, route, status, performance.now() - started));
  });
}
