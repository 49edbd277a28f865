// A token issuer of SPEC §10 as a fetch function, built from the protocol's own issuer functions
// on the fixed RSA-2048 key of the RFC 9578 vectors (no key generation). Tests tamper with it to
// play a dishonest or failing issuer and read `calls` to see what the app sent.

import { readFileSync } from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import { publicKeyFromNumbers, publicKeyOf } from '../../protocol/blind-rsa.js';
import { ISSUER_DIRECTORY_PATH, MEDIA_TYPE_ISSUER_DIRECTORY, MEDIA_TYPE_TOKEN_RESPONSE, encodeIssuerDirectory, encodePaddedBase64url, type IssuerTokenKey } from '../../protocol/privacypass-http.js';
import { issueTokenResponse } from '../../protocol/privacypass-issuance.js';
import { TokenRequest, TokenResponse } from '../../protocol/privacypass.js';
import type { Fetch } from '../http.js';

const vector = (JSON.parse(readFileSync(new URL('../../test/vectors/rfc9578-type2-issuance.json', import.meta.url), 'utf8')) as { skS: string }[])[0]!;
export const ISSUER_PRIVATE_KEY = createPrivateKey(Buffer.from(vector.skS, 'hex').toString('latin1'));
export const ISSUER_KEY = publicKeyOf(ISSUER_PRIVATE_KEY);
// Keys nobody pinned: the 2048-bit primes p and q of the RFC 9474 vector taken as moduli. Well-formed
// public keys with no small factors, so blinding under them succeeds like under a real key.
const primes = (JSON.parse(readFileSync(new URL('../../test/vectors/rfc9474-blind-rsa.json', import.meta.url), 'utf8')) as { p: string; q: string }[])[0]!;
export const OTHER_KEY = publicKeyFromNumbers(BigInt(primes.p), 65537n);
export const THIRD_KEY = publicKeyFromNumbers(BigInt(primes.q), 65537n);

export const ISSUER_URL = 'https://issuer.example';
export const ISSUER_NAME = 'issuer.example';
export const ORIGIN_INFO = 'dip.example';
export const SRT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2ln';

/** token-keys.json as SPEC §8 describes it, pinning `keys` (default the issuer's key). */
export function tokenKeysJson(fields: { issuerName?: string; originInfo?: string; keys?: IssuerTokenKey[] } = {}): string {
  const keys = fields.keys ?? [{ tokenType: 2, tokenKey: ISSUER_KEY.spki }];
  return JSON.stringify({
    issuer_name: fields.issuerName ?? ISSUER_NAME,
    origin_info: fields.originInfo ?? ORIGIN_INFO,
    'token-keys': keys.map((key) => ({
      'token-type': key.tokenType,
      'token-key': encodePaddedBase64url(key.tokenKey),
      ...(key.notBefore === undefined ? {} : { 'not-before': key.notBefore }),
    })),
  });
}

export interface IssuerTamper {
  /** The directory's keys (default the issuer's key). */
  keys?: IssuerTokenKey[];
  requestUri?: string;
  /** Answer the POST with this SPEC error code and status. */
  refuse?: { status: number; code: string };
  /** Change the TokenResponse before it is sent. */
  response?: (blindSig: Uint8Array) => Uint8Array;
  contentType?: string;
}

export interface IssuerCall {
  method: string;
  path: string;
  headers: Headers;
  body: Uint8Array;
}

export function fakeIssuer(tamper: IssuerTamper = {}): { fetch: Fetch; calls: IssuerCall[] } {
  const calls: IssuerCall[] = [];
  const fetch: Fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = init?.method ?? 'GET';
    const headers = new Headers(init?.headers);
    const body = init?.body instanceof Uint8Array ? new Uint8Array(init.body) : new Uint8Array(0);
    calls.push({ method, path: url.pathname, headers, body });
    if (method === 'GET' && url.pathname === ISSUER_DIRECTORY_PATH) {
      const directory = encodeIssuerDirectory({
        issuerRequestUri: tamper.requestUri ?? '/token-request',
        tokenKeys: tamper.keys ?? [{ tokenType: 2, tokenKey: ISSUER_KEY.spki }],
      });
      return new Response(directory, { status: 200, headers: { 'content-type': MEDIA_TYPE_ISSUER_DIRECTORY } });
    }
    if (method === 'POST' && url.pathname === '/token-request') {
      if (tamper.refuse) {
        return new Response(JSON.stringify({ error: { code: tamper.refuse.code, message: 'refused' } }), { status: tamper.refuse.status, headers: { 'content-type': 'application/json' } });
      }
      const signed = issueTokenResponse(ISSUER_PRIVATE_KEY, ISSUER_KEY, TokenRequest.decode(body)).encode();
      const sent = tamper.response ? tamper.response(signed) : new TokenResponse(signed).encode();
      return new Response(sent, { status: 200, headers: { 'content-type': tamper.contentType ?? MEDIA_TYPE_TOKEN_RESPONSE } });
    }
    return new Response(JSON.stringify({ error: { code: 'not_found', message: 'No such route.' } }), { status: 404 });
  };
  return { fetch, calls };
}
