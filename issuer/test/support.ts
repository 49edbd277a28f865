// What the issuer tests share: a development SRT issuer that mints (and mis-mints) SRTs, the key
// of a test issuer, an in-process issuer on either engine, and the app's side of a TokenRequest.

import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createTokenRequest, finalizeToken, type PendingToken } from '../../protocol/privacypass-issuance.js';
import { MEDIA_TYPE_TOKEN_REQUEST, MEDIA_TYPE_TOKEN_RESPONSE } from '../../protocol/privacypass-http.js';
import { Token, TokenChallenge, TokenResponse } from '../../protocol/privacypass.js';
import { createSrtVerifier, srtTrustFromDevIssuer } from '../../protocol/srt.js';
import { openEmbeddedStore } from '../../store/pglite.js';
import { migrate } from '../../store/migrate.js';
import { openPostgresStore } from '../../store/postgres.js';
import type { Store } from '../../store/store.js';
import { recordIssuance } from '../../store/token-issuance.js';
import { createSchema, POSTGRES_URL } from '../../store/test/support.js';
import { silentLogger, type Logger } from '../log.js';
import { createIssuerServer } from '../server.js';
import { issuerKey, type IssuerKey } from '../token-keys.js';
import type { AddressInfo } from 'node:net';

/** A fixed "now" (2026-01-01T00:00:00Z): no test depends on the machine's clock. */
export const NOW = 1_767_225_600;
export const ISS = 'https://subscriptions.test';

export interface SrtIssuer {
  /** SPEC §8 srt-issuer.json. */
  readonly devIssuer: { iss: string; aud: null; jwk: Record<string, unknown> };
  mint(claims?: Record<string, unknown>, header?: Record<string, unknown>, key?: KeyObject): string;
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export function createSrtIssuer(kid = 'srt-test'): SrtIssuer {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'ES256' };
  return {
    devIssuer: { iss: ISS, aud: null, jwk },
    mint(claims = {}, header = {}, key = privateKey) {
      const body = { iss: ISS, sub: 'sub-1', iat: NOW - 10, exp: NOW + 3600, entitlements: { 'xv.vpn.dip': { did: 0 } }, ...claims };
      const input = `${b64({ alg: 'ES256', kid, ...header })}.${b64(body)}`;
      const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
      return `${input}.${signature.toString('base64url')}`;
    },
  };
}

/** One RSA-2048 issuer key, made once per test file (key generation is slow). */
export function createIssuerKey(notBefore = NOW - 86_400): IssuerKey {
  return issuerKey(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, notBefore);
}

export const CHALLENGE = new TokenChallenge({ issuerName: '127.0.0.1:8082', redemptionContext: new Uint8Array(0), originInfo: '127.0.0.1:8081' });

/** The app's side: a TokenRequest for `key`, and how to finalize its answer. */
export function appRequest(key: IssuerKey): { body: Uint8Array; pending: PendingToken; finalize(response: Uint8Array): Token } {
  const { request, pending } = createTokenRequest(CHALLENGE, key.tokenKey);
  return { body: request.encode(), pending, finalize: (response) => finalizeToken(pending, TokenResponse.decode(response)) };
}

export type Engine = 'embedded' | 'postgres';

export async function openEngine(engine: Engine): Promise<{ store: Store; schema?: string; close(): Promise<void> }> {
  if (engine === 'embedded') {
    const store = await openEmbeddedStore();
    await migrate(store);
    return { store, close: () => store.close() };
  }
  const { schema, drop } = await createSchema();
  const store = await openPostgresStore({ connectionString: POSTGRES_URL, schema });
  await migrate(store);
  return { store, schema, close: async () => (await store.close(), await drop()) };
}

export interface TestIssuer {
  readonly url: string;
  readonly store: Store;
  post(srt: string | null, body: Uint8Array, contentType?: string): Promise<{ status: number; body: Uint8Array; type: string | null }>;
  close(): Promise<void>;
}

/** The issuer's server in this process, on a free loopback port. */
export async function startTestIssuer(options: { engine: Engine; srtIssuer: SrtIssuer; keys: IssuerKey[]; now?: number; logger?: Logger }): Promise<TestIssuer> {
  const { store, close } = await openEngine(options.engine);
  const server = createIssuerServer({
    issuer: {
      verifySrt: createSrtVerifier(srtTrustFromDevIssuer(options.srtIssuer.devIssuer)),
      keys: () => options.keys,
      record: (sub, did, sha, response) => recordIssuance(store, sub, did, sha, response),
    },
    requestPath: '/token-request',
    logger: options.logger ?? silentLogger,
    now: () => options.now ?? NOW,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    store,
    post: (srt, body, contentType = MEDIA_TYPE_TOKEN_REQUEST) => postTokenRequest(url, srt, body, contentType),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await close();
    },
  };
}

export async function postTokenRequest(url: string, srt: string | null, body: Uint8Array, contentType = MEDIA_TYPE_TOKEN_REQUEST): Promise<{ status: number; body: Uint8Array; type: string | null }> {
  const headers: Record<string, string> = { 'content-type': contentType };
  if (srt !== null) headers.authorization = `Bearer ${srt}`;
  const res = await fetch(`${url}/token-request`, { method: 'POST', headers, body });
  return { status: res.status, body: new Uint8Array(await res.arrayBuffer()), type: res.headers.get('content-type') };
}

export function errorCodeOf(body: Uint8Array): string {
  return (JSON.parse(Buffer.from(body).toString('utf8')) as { error: { code: string } }).error.code;
}

export const RESPONSE_TYPE = MEDIA_TYPE_TOKEN_RESPONSE;

export function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}
