// The client of the parent's HTTP API (SPEC §6) and the part the DIP service's API (SPEC §11,
// client/service.ts) shares with it. Every answer is validated before use; an error body's SPEC
// code surfaces as a ClientError with that code, anything else that goes wrong on the way
// (network, timeout, an answer that is not the API) as `http_failed`, whose detail names the
// cause when the network failed: refused, DNS, TLS or timeout (a timeout is not a refusal).

import { decodeBase64url, encodeBase64url } from '../protocol/base64url.js';
import { isErrorCode } from '../protocol/errors.js';
import { isCanonicalIp } from '../protocol/ip.js';
import { ClientError } from './errors.js';

export type Fetch = typeof globalThis.fetch;

export interface ParentOptions {
  /** Injected for tests and other runtimes; default the global fetch. */
  fetch?: Fetch;
  /** Per-request deadline; default 30 s. */
  timeoutMs?: number;
}

export interface DipAnswer {
  ip: string;
  reservedUntil: number;
  response: Uint8Array;
}

/** Why the server could not be reached: the `detail` of an `http_failed` ClientError. */
export const NETWORK_FAILURE_MESSAGES = Object.freeze({
  connection_refused: 'nothing accepted the connection (connection refused)',
  dns_failed: 'the host name could not be resolved (DNS)',
  tls_failed: 'the TLS handshake failed (certificate or protocol)',
  timeout: 'no answer before the deadline (timeout)',
  connection_failed: 'the connection failed',
} as const);

export type NetworkFailure = keyof typeof NETWORK_FAILURE_MESSAGES;

const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL', 'EAI_NODATA']);
const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Classifies a fetch failure by the codes on it and its causes; only codes are read, never text. */
export function networkFailure(error: unknown): NetworkFailure {
  for (let e: unknown = error, depth = 0; typeof e === 'object' && e !== null; depth++) {
    if (depth > 8) break;
    const { name, code } = e as { name?: unknown; code?: unknown };
    if (name === 'TimeoutError' || (typeof code === 'string' && TIMEOUT_CODES.has(code))) return 'timeout';
    if (code === 'ECONNREFUSED') return 'connection_refused';
    if (typeof code === 'string' && DNS_CODES.has(code)) return 'dns_failed';
    // OpenSSL's verification codes (DEPTH_ZERO_SELF_SIGNED_CERT, CERT_HAS_EXPIRED, …) and Node's ERR_TLS_*/ERR_SSL_*.
    if (typeof code === 'string' && (/^ERR_(TLS|SSL)_/.test(code) || /CERT|SIGNATURE|ISSUER/.test(code))) return 'tls_failed';
    e = (e as { cause?: unknown }).cause;
  }
  return 'connection_failed';
}

/** An attestation document is a few KiB and a JWKS less; nothing the API returns comes near this. */
const MAX_BODY_BYTES = 1024 * 1024;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export async function readBody(response: Response): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (response.body !== null) {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > MAX_BODY_BYTES) {
        await reader.cancel();
        throw new ClientError('http_failed');
      }
      chunks.push(value);
    }
  }
  return new Uint8Array(Buffer.concat(chunks));
}

export function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return undefined;
  }
}

function bytesField(body: unknown, name: string): Uint8Array {
  const text = isRecord(body) ? body[name] : undefined;
  const bytes = typeof text === 'string' ? decodeBase64url(text) : null;
  if (bytes === null || bytes.length === 0) throw new ClientError('http_failed');
  return bytes;
}

/**
 * GET of a published JWKS (what `dip verify-dat --jwks URL` reads): the bytes of a 200 answer,
 * otherwise `http_failed` with the network cause as detail when there is one.
 */
export async function fetchJwks(url: string, options: ParentOptions = {}): Promise<Uint8Array> {
  let response: Response;
  let body: Uint8Array;
  try {
    response = await (options.fetch ?? globalThis.fetch)(url, { signal: AbortSignal.timeout(options.timeoutMs ?? 30_000) });
    body = await readBody(response);
  } catch (error) {
    if (error instanceof ClientError) throw error;
    throw new ClientError('http_failed', false, networkFailure(error));
  }
  if (response.status !== 200) throw new ClientError('http_failed');
  return body;
}

/**
 * What the parent's API (SPEC §6) and the DIP service's (SPEC §11) have in common: one base URL,
 * answers read with a size cap, errors mapped to ClientError, the attestation and key routes and
 * refresh. Redirects are not followed (a 3xx is `http_failed`): the API never sends one, and
 * following it would carry a sealed request, or the service's token, to another place.
 */
export class ApiClient {
  protected readonly base: URL;
  private readonly fetch: Fetch;
  private readonly timeoutMs: number;

  constructor(url: string, options: ParentOptions = {}) {
    let base: URL;
    try {
      base = new URL(url.endsWith('/') ? url : `${url}/`);
    } catch {
      throw new TypeError('the server URL is not a URL');
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError('the server URL must be http(s)');
    this.base = base;
    this.fetch = options.fetch ?? globalThis.fetch;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** One request; any status comes back. Only a network failure or an oversized body throws. */
  protected async send(path: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; body: Uint8Array }> {
    try {
      // 'manual', not 'error': Node's fetch then fails the retry it makes of a 421 (key_unknown).
      const response = await this.fetch(new URL(path, this.base), { ...init, redirect: 'manual', signal: AbortSignal.timeout(this.timeoutMs) });
      return { status: response.status, headers: response.headers, body: await readBody(response) };
    } catch (error) {
      // The network error's text may carry the URL; the fixed message and the cause's code never do.
      if (error instanceof ClientError) throw error;
      throw new ClientError('http_failed', false, networkFailure(error));
    }
  }

  /** The body of a 200 answer; any other answer is the error its body names. */
  protected async call(path: string, init: RequestInit = {}): Promise<Uint8Array> {
    const { status, body } = await this.send(path, init);
    if (status === 200) return body;
    throw refusalOf(body);
  }

  protected async post(path: string, body: Record<string, string>, headers: Record<string, string> = {}): Promise<DipAnswer> {
    const answer = parseJson(
      await this.call(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) }),
    );
    const response = bytesField(answer, 'response');
    const { ip, reservedUntil } = answer as Record<string, unknown>;
    if (typeof ip !== 'string' || !isCanonicalIp(ip) || typeof reservedUntil !== 'number' || !Number.isSafeInteger(reservedUntil) || reservedUntil < 0) {
      throw new ClientError('http_failed');
    }
    return { ip, reservedUntil, response };
  }

  /** GET /v1/attestation?nonce=… → the document and the JWKS it binds (neither verified yet). */
  async attestation(nonce: Uint8Array): Promise<{ document: Uint8Array; jwks: Uint8Array }> {
    const answer = parseJson(await this.call(`v1/attestation?nonce=${encodeBase64url(nonce)}`));
    return { document: bytesField(answer, 'document'), jwks: bytesField(answer, 'jwks') };
  }

  /** GET /v1/keys → the JWKS bytes verbatim: their SHA-256 is what user_data binds. */
  keys(): Promise<Uint8Array> {
    return this.call('v1/keys');
  }

  /** POST /v1/dip/refresh {ip, request}: the same route and body at the parent and at the service. */
  refresh(ip: string, request: Uint8Array): Promise<DipAnswer> {
    return this.post('v1/dip/refresh', { ip, request: encodeBase64url(request) });
  }
}

/** An error body's SPEC code as a ClientError from the server; anything else is `http_failed`. */
export function refusalOf(body: Uint8Array): ClientError {
  const error = parseJson(body);
  const code = isRecord(error) && isRecord(error['error']) ? error['error']['code'] : undefined;
  return isErrorCode(code) ? new ClientError(code, true) : new ClientError('http_failed');
}

/** The parent (SPEC §6): assign names the IP the DIP service chose. */
export class ParentClient extends ApiClient {
  assign(ip: string, request: Uint8Array): Promise<DipAnswer> {
    return this.post('v1/dip/assign', { ip, request: encodeBase64url(request) });
  }
}
