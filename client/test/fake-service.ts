// A fake Dedicated IP service for client tests: a real HTTP server on 127.0.0.1 with the routes of
// SPEC §11 as the client codes against them, its own small IP pool, spent and pending tokens
// (verified with the protocol's own verifyToken under the fake issuer's key) and backups, and the
// fake parent + enclave of fake-parent.ts behind it. Tests script answers and read every request.

import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeBase64url } from '../../protocol/base64url.js';
import { formatWwwAuthenticate, parseAuthorization } from '../../protocol/privacypass-http.js';
import { verifyToken } from '../../protocol/privacypass-issuance.js';
import { pinnedChallenge, parseTokenKeys } from '../privacy-pass.js';
import { ISSUER_KEY, tokenKeysJson } from './fake-issuer.js';
import { URL_BASE, fakeParent, type Tamper } from './fake-parent.js';

export const POOL = ['198.51.100.23', '2001:db8::17'];
const PINNED = parseTokenKeys(tokenKeysJson());

/** The challenge of SPEC §10 for the fake issuer's key: what the client's pin expects. */
export const CHALLENGE = formatWwwAuthenticate({ challenge: pinnedChallenge(PINNED), tokenKey: ISSUER_KEY.spki });

export interface ServiceScript {
  /** Answers the assign route gives instead of forwarding, one per token request, in order. */
  assign?: Array<{ status: number; code: string }>;
  /** The same for refresh. */
  refresh?: Array<{ status: number; code: string }>;
  /** The WWW-Authenticate value of every 401 (default CHALLENGE). */
  challenge?: string;
  /** The IPs to hand out (default POOL). */
  pool?: string[];
  /** How the fake parent + enclave behind the service misbehaves. */
  parent?: Tamper;
  /** Routes answered with this raw status and body instead (e.g. a 200 where a 401 belongs). */
  raw?: Record<string, { status: number; body: string | Uint8Array; headers?: Record<string, string> }>;
}

export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface FakeService {
  url: string;
  requests: SeenRequest[];
  backups: Map<string, Uint8Array>;
  /** IP → the token nonce (hex) that holds it, and whether that token is spent or pending. */
  reservations: Map<string, { nonce: string; spent: boolean }>;
  close(): Promise<void>;
}

const DEFINITIVE = new Set([400, 403, 421]);

export async function startFakeService(script: ServiceScript = {}): Promise<FakeService> {
  const parent = fakeParent(script.parent ?? {});
  const pool = [...(script.pool ?? POOL)];
  const requests: SeenRequest[] = [];
  const backups = new Map<string, Uint8Array>();
  const reservations = new Map<string, { nonce: string; spent: boolean }>();
  const assignScript = [...(script.assign ?? [])];
  const refreshScript = [...(script.refresh ?? [])];

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url ?? '/', 'http://service.test');
      requests.push({ method: req.method ?? '', path: url.pathname, headers: req.headers, body });
      const send = (status: number, payload: string | Uint8Array, headers: Record<string, string> = {}) => {
        res.writeHead(status, headers);
        res.end(payload);
      };
      const error = (status: number, code: string, headers: Record<string, string> = {}) =>
        send(status, JSON.stringify({ error: { code, message: 'refused' } }), { 'content-type': 'application/json', ...headers });
      const relay = async (path: string, init?: RequestInit) => {
        const answer = await parent(`${URL_BASE}${path}`, init);
        const bytes = new Uint8Array(await answer.arrayBuffer());
        return { status: answer.status, bytes, json: answer.status === 200 ? JSON.parse(Buffer.from(bytes).toString('utf8')) as { ip: string } : undefined };
      };
      const handle = async () => {
        const raw = script.raw?.[`${req.method} ${url.pathname}`];
        if (raw) return send(raw.status, raw.body, raw.headers);
        if (req.method === 'GET' && (url.pathname === '/v1/attestation' || url.pathname === '/v1/keys')) {
          const answer = await relay(`${url.pathname}${url.search}`);
          return send(answer.status, answer.bytes, { 'content-type': 'application/json' });
        }
        if (req.method === 'POST' && url.pathname === '/v1/dip/assign') return assign(body, req.headers.authorization);
        if (req.method === 'POST' && url.pathname === '/v1/dip/refresh') return refresh(body);
        const backup = /^\/v1\/backup\/([^/]+)$/.exec(url.pathname);
        if (backup) return backupRoute(req.method ?? '', backup[1]!, body, req.headers['content-type']);
        return error(404, 'not_found');
      };

      const assign = async (raw: Buffer, authorization: string | undefined) => {
        let request: unknown;
        try {
          request = JSON.parse(raw.toString('utf8'));
        } catch {
          return error(400, 'bad_request');
        }
        const challenge = { 'www-authenticate': script.challenge ?? CHALLENGE };
        if (typeof request !== 'object' || request === null || Object.keys(request).join() !== 'request') return error(400, 'bad_request');
        if (authorization === undefined) return error(401, 'token_invalid', challenge);
        let nonce: string;
        try {
          const token = parseAuthorization(authorization);
          verifyToken(token, ISSUER_KEY, pinnedChallenge(PINNED));
          nonce = Buffer.from(token.nonce).toString('hex');
        } catch {
          return error(401, 'token_invalid', challenge);
        }
        const held = [...reservations].find(([, r]) => r.nonce === nonce);
        if (held?.[1].spent) return error(409, 'token_spent');
        const ip = held?.[0] ?? pool.shift();
        if (ip === undefined) return error(503, 'pool_exhausted');
        reservations.set(ip, { nonce, spent: false });
        const scripted = assignScript.shift();
        const answer = scripted ?? await relay('/v1/dip/assign', { method: 'POST', body: JSON.stringify({ ip, ...request }) });
        if (answer.status === 200) {
          reservations.set(ip, { nonce, spent: true });
          return send(200, (answer as { bytes: Uint8Array }).bytes, { 'content-type': 'application/json' });
        }
        // SPEC §11: only a definitive refusal releases the token and the IP.
        if (DEFINITIVE.has(answer.status)) {
          reservations.delete(ip);
          pool.unshift(ip);
        }
        if (scripted) return error(scripted.status, scripted.code);
        return send(answer.status, (answer as { bytes: Uint8Array }).bytes, { 'content-type': 'application/json' });
      };

      const refresh = async (raw: Buffer) => {
        let request: { ip?: unknown };
        try {
          request = JSON.parse(raw.toString('utf8')) as { ip?: unknown };
        } catch {
          return error(400, 'bad_request');
        }
        if (typeof request.ip !== 'string' || !reservations.has(request.ip)) return error(410, 'ip_unavailable');
        const scripted = refreshScript.shift();
        if (scripted) return error(scripted.status, scripted.code);
        const answer = await relay('/v1/dip/refresh', { method: 'POST', body: raw.toString('utf8') });
        return send(answer.status, answer.bytes, { 'content-type': 'application/json' });
      };

      const backupRoute = (method: string, idText: string, blob: Buffer, contentType: string | undefined) => {
        const id = decodeBase64url(idText);
        if (id === null || id.length !== 32) return error(400, 'bad_request');
        if (method === 'PUT') {
          if (contentType !== 'application/octet-stream') return error(415, 'unsupported_media_type');
          if (blob.length === 0 || blob.length > 4096) return error(413, 'payload_too_large');
          backups.set(idText, new Uint8Array(blob));
          return send(204, '');
        }
        const stored = backups.get(idText);
        if (method === 'GET') return stored ? send(200, stored, { 'content-type': 'application/octet-stream' }) : error(404, 'not_found');
        if (method === 'DELETE') return backups.delete(idText) ? send(204, '') : error(404, 'not_found');
        return error(405, 'method_not_allowed');
      };

      handle().catch(() => error(500, 'internal'));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    backups,
    reservations,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
