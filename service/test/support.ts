// What the DIP service tests share: real Privacy Pass tokens (RFC 9578 type 2, blind RSA-2048, made
// with the repo's own protocol/ code against a key generated once per test file), token-keys.json,
// sealed requests with a chosen key_id (the service reads only their header), a scripted fake parent
// that speaks SPEC §6 over real HTTP, an in-process service, and small HTTP helpers.

import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeBase64url } from '../../protocol/base64url.js';
import { publicKeyOf, type BlindRsaPublicKey } from '../../protocol/blind-rsa.js';
import { ERROR_MESSAGES, httpStatusOf, type ErrorCode } from '../../protocol/errors.js';
import { SEALED_REQUEST_BYTES, SEALED_REQUEST_VERSION } from '../../protocol/limits.js';
import { encodePaddedBase64url, formatAuthorization } from '../../protocol/privacypass-http.js';
import { createTokenRequest, finalizeToken, issueTokenResponse } from '../../protocol/privacypass-issuance.js';
import { TokenChallenge, type Token } from '../../protocol/privacypass.js';
import type { Store } from '../../store/store.js';
import { parseConfig } from '../config.js';
import { silentLogger, type Logger } from '../log.js';
import { startService, type RunningService, type ServiceOptions } from '../main.js';

/** A fixed "now" (2026-01-01T00:00:00Z) for in-process services: no test depends on the machine's clock. */
export const NOW = 1_767_225_600;
export const DAY = 86_400;
export const ISSUER_NAME = 'issuer.test';
export const ORIGIN_INFO = 'dip.test';
export const CHALLENGE = new TokenChallenge({ issuerName: ISSUER_NAME, redemptionContext: new Uint8Array(0), originInfo: ORIGIN_INFO });

export interface TestIssuerKey {
  readonly privateKey: KeyObject;
  readonly tokenKey: BlindRsaPublicKey;
  readonly notBefore: number;
}

/** An RSA-2048 issuer key (slow: make a few per file). */
export function createIssuerKey(notBefore: number): TestIssuerKey {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, tokenKey: publicKeyOf(privateKey), notBefore };
}

/** A real token: blinded by the "app", signed blindly by the "issuer", finalized (RFC 9578 §6). */
export function mintToken(key: TestIssuerKey, challenge: TokenChallenge = CHALLENGE): { token: Token; authorization: string } {
  const { request, pending } = createTokenRequest(challenge, key.tokenKey);
  const token = finalizeToken(pending, issueTokenResponse(key.privateKey, key.tokenKey, request));
  return { token, authorization: formatAuthorization(token) };
}

/** SPEC §8 token-keys.json for `keys`. */
export function tokenKeysJson(keys: readonly TestIssuerKey[], issuerName = ISSUER_NAME, originInfo = ORIGIN_INFO): string {
  return JSON.stringify({
    issuer_name: issuerName,
    origin_info: originInfo,
    'token-keys': keys.map((key) => ({ 'token-type': 2, 'token-key': encodePaddedBase64url(key.tokenKey.spki), 'not-before': key.notBefore })),
  });
}

const dirs: string[] = [];
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'service-test-'));
  dirs.push(dir);
  return dir;
}
export function removeTempDirs(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export function writeTokenKeys(keys: readonly TestIssuerKey[]): string {
  const path = join(tempDir(), 'token-keys.json');
  writeFileSync(path, tokenKeysJson(keys));
  return path;
}

/** An 8-byte key_id as the fake parent lists it. */
export function keyId(fill: number): Uint8Array {
  return new Uint8Array(8).fill(fill);
}

/** A sealed request of SPEC §4's length naming `id` (random bytes after the header; only the parent would open it). */
export function sealedRequest(id: Uint8Array, op = 0x01): string {
  const bytes = new Uint8Array(randomBytes(SEALED_REQUEST_BYTES));
  bytes[0] = SEALED_REQUEST_VERSION;
  bytes.set(id, 1);
  bytes[15] = op;
  return encodeBase64url(bytes);
}

export interface ParentCall {
  method: string;
  path: string;
  body: { ip?: string; request?: string } | null;
}

/** How the fake parent answers one sealed request. */
export type Script =
  | { kind: 'ok'; reservedUntil?: number }
  | { kind: 'error'; code: ErrorCode }
  | { kind: 'status'; status: number; body: string }
  | { kind: 'hang' }
  | { kind: 'close' }
  | { kind: 'custom'; answer(call: ParentCall, res: ServerResponse): void | Promise<void> };

export interface FakeParent {
  readonly url: string;
  readonly calls: ParentCall[];
  /** The enclaves GET /v1/enclaves lists. */
  enclaves: Array<{ keyId: Uint8Array; status: 'ok' | 'locked' }>;
  /** While true, GET /v1/enclaves answers 503. */
  enclavesFail: boolean;
  /** How the next sealed requests are answered (default ok). */
  script: (call: ParentCall) => Script;
  sealedCalls(): ParentCall[];
  close(): Promise<void>;
}

/** `reservedUntil` the fake enclave gives: 60 days from NOW, at 00:00 UTC. */
export const RESERVED_UNTIL = NOW + 60 * DAY;

/** `reservedUntil` is what an "ok" answer carries unless its script says otherwise. */
export async function startFakeParent(enclaves: Array<{ keyId: Uint8Array; status: 'ok' | 'locked' }>, reservedUntil = RESERVED_UNTIL): Promise<FakeParent> {
  const calls: ParentCall[] = [];
  const sockets = new Set<Socket>();
  const hanging: ServerResponse[] = [];
  const parent: FakeParent = {
    url: '',
    calls,
    enclaves,
    enclavesFail: false,
    script: () => ({ kind: 'ok' }),
    sealedCalls: () => calls.filter((call) => call.method === 'POST'),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      for (const res of hanging) res.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const json = (res: ServerResponse, status: number, value: unknown): void => {
    const body = JSON.stringify(value);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = req.url ?? '';
      const text = Buffer.concat(chunks).toString('utf8');
      const call: ParentCall = { method: req.method ?? '', path, body: text === '' ? null : (JSON.parse(text) as ParentCall['body']) };
      calls.push(call);
      if (path === '/v1/enclaves' && parent.enclavesFail) return json(res, 503, { error: { code: 'enclave_unavailable', message: ERROR_MESSAGES.enclave_unavailable } });
      if (path === '/v1/enclaves') return json(res, 200, { enclaves: parent.enclaves.map((e) => ({ key_id: encodeBase64url(e.keyId), status: e.status })) });
      if (path.startsWith('/v1/attestation')) return json(res, 200, { document: 'ZG9j', jwks: 'andrcw' });
      if (path === '/v1/keys') {
        res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end('{"keys":[]}');
        return;
      }
      const script = parent.script(call);
      switch (script.kind) {
        case 'ok':
          return json(res, 200, { ip: call.body!.ip, reservedUntil: script.reservedUntil ?? reservedUntil, response: encodeBase64url(randomBytes(4160)) });
        case 'error':
          return json(res, httpStatusOf(script.code), { error: { code: script.code, message: ERROR_MESSAGES[script.code] } });
        case 'status':
          res.writeHead(script.status, { 'content-type': 'application/json' }).end(script.body);
          return;
        case 'hang':
          hanging.push(res);
          return;
        case 'close':
          req.socket.destroy();
          return;
        case 'custom':
          void script.answer(call, res);
      }
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (parent as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return parent;
}

export interface TestServiceOptions extends ServiceOptions {
  parents: string[];
  tokenKeys: string;
  args?: string[];
  logger?: Logger;
}

/**
 * The service in this process on a free loopback port (admin routes too). The parents are read at
 * start-up and then only when a request names an unknown key_id: no timer decides a test.
 */
export async function startTestService(options: TestServiceOptions): Promise<RunningService & { url: string; adminUrl: string }> {
  const argv = ['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--poll-interval-ms', '600000', '--token-keys', options.tokenKeys, ...options.parents.flatMap((url) => ['--parent', url]), ...(options.args ?? [])];
  const config = parseConfig(argv, {})!;
  const running = await startService(config, options.logger ?? silentLogger, options);
  return { ...running, close: running.close, url: `http://127.0.0.1:${running.port}`, adminUrl: `http://127.0.0.1:${running.adminPort}` };
}

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed JSON body, or null. */
  json: Record<string, unknown> | null;
  bytes: Buffer;
}

export interface CallInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

/**
 * One HTTP request with node:http, not fetch: Node's fetch (undici) sends a request answered 421
 * once more on a new connection, which would hide what the service answered to one request.
 */
export function call(url: string, init: CallInit = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers = { ...init.headers, ...(init.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(init.body)) }) };
    const req = httpRequest(url, { method: init.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', reject);
      res.once('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const headers = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          for (const one of Array.isArray(value) ? value : value === undefined ? [] : [value]) headers.append(name, one);
        }
        let json: Record<string, unknown> | null = null;
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          json = null;
        }
        resolve({ status: res.statusCode ?? 0, headers, text, json, bytes: Buffer.concat(chunks) });
      });
    });
    req.once('error', reject);
    req.end(init.body);
  });
}

export function errorCode(answer: Answer): string | undefined {
  return (answer.json?.error as { code?: string } | undefined)?.code;
}

export function assignRequest(base: string, authorization: string | null, request: string): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (authorization !== null) headers.authorization = authorization;
  return call(`${base}/v1/dip/assign`, { method: 'POST', headers, body: JSON.stringify({ request }) });
}

export function refreshRequest(base: string, ip: string, request: string): Promise<Answer> {
  return call(`${base}/v1/dip/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ip, request }) });
}

/** Runs `jobs` with at most `limit` in flight, results in order. */
export async function limited<T>(jobs: Array<() => Promise<T>>, limit: number): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, jobs.length) }, async () => {
      while (next < jobs.length) {
        const i = next++;
        results[i] = await jobs[i]!();
      }
    }),
  );
  return results;
}

/** A store state read for assertions: the row of one address. */
export async function ipState(store: Store, ip: string): Promise<{ state: string; reserved_until_day: number | null; quarantine_until_day: number | null } | undefined> {
  const [row] = await store.query<{ state: string; reserved_until_day: number | null; quarantine_until_day: number | null }>(
    'SELECT state, reserved_until_day, quarantine_until_day FROM ip_pool WHERE ip = $1::inet',
    [ip],
  );
  return row;
}

export async function nonceState(store: Store, nonce: Uint8Array): Promise<{ state: string; ip: string | null; refusals: number } | undefined> {
  const [row] = await store.query<{ state: string; ip: string | null; refusals: number }>('SELECT state, host(ip) AS ip, refusals FROM token_nonce WHERE nonce = $1', [nonce]);
  return row;
}
