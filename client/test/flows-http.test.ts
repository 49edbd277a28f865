// The parent HTTP client (client/http.ts) on its own: URLs, validation of every answer, errors.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { encodeBase64url } from '../../protocol/base64url.js';
import { ClientError } from '../errors.js';
import { ParentClient, type Fetch } from '../http.js';

const respond = (status: number, body: string | Uint8Array, calls: Array<{ url: string; init?: RequestInit }> = []): Fetch =>
  (async (input: string | URL | Request, init?: RequestInit) => {
    calls.push({ url: String(input), ...(init ? { init } : {}) });
    return new Response(body, { status });
  }) as Fetch;

function isCode(code: string, fromServer = false) {
  return (error: unknown) => error instanceof ClientError && error.code === code && error.fromServer === fromServer;
}

const GOOD = JSON.stringify({ ip: '2001:db8::7', reservedUntil: 1_900_000_000, response: encodeBase64url(new Uint8Array([1, 2, 3])) });

describe('parent HTTP client', () => {
  it('sends the nonce as unpadded base64url and decodes the document and the JWKS beside it', async () => {
    const calls: Array<{ url: string; init?: RequestInit }> = [];
    const parent = new ParentClient('http://p.test/base', { fetch: respond(200, JSON.stringify({ document: 'AAEC', jwks: 'e30' }), calls) });
    assert.deepEqual(await parent.attestation(new Uint8Array([0xfb, 0xff])), { document: new Uint8Array([0, 1, 2]), jwks: new TextEncoder().encode('{}') }, 'document and jwks');
    assert.equal(calls[0]!.url, 'http://p.test/base/v1/attestation?nonce=-_8');
  });

  it('returns the JWKS bytes verbatim', async () => {
    const bytes = new TextEncoder().encode('{ "keys" : [] }\n');
    assert.deepEqual(await new ParentClient('http://p.test', { fetch: respond(200, bytes) }).keys(), bytes);
  });

  it('posts assign and refresh as JSON and validates the answer', async () => {
    const calls: Array<{ url: string; init?: RequestInit }> = [];
    const parent = new ParentClient('http://p.test/', { fetch: respond(200, GOOD, calls) });
    const answer = await parent.assign('2001:db8::7', new Uint8Array([9]));
    assert.deepEqual(answer, { ip: '2001:db8::7', reservedUntil: 1_900_000_000, response: new Uint8Array([1, 2, 3]) });
    await parent.refresh('192.0.2.8', new Uint8Array([8]));
    assert.equal(calls[0]!.url, 'http://p.test/v1/dip/assign');
    assert.deepEqual(JSON.parse(String(calls[0]!.init!.body)), { ip: '2001:db8::7', request: 'CQ' });
    assert.equal(calls[1]!.url, 'http://p.test/v1/dip/refresh');
    assert.deepEqual(JSON.parse(String(calls[1]!.init!.body)), { ip: '192.0.2.8', request: 'CA' }, 'refresh carries the clear IP');
    assert.equal((calls[1]!.init!.headers as Record<string, string>)['content-type'], 'application/json');
  });

  it('an error body with a SPEC code becomes a ClientError with that code, from the server', async () => {
    for (const [status, code] of [[403, 'version_mismatch'], [429, 'rate_limited'], [503, 'enclave_unavailable']] as const) {
      const parent = new ParentClient('http://p.test', { fetch: respond(status, JSON.stringify({ error: { code, message: 'm' } })) });
      await assert.rejects(parent.refresh('192.0.2.1', new Uint8Array([1])), isCode(code, true));
    }
  });

  it('an answer that is not the API is http_failed', async () => {
    const bad: Array<[number, string]> = [
      [500, '<html>oops</html>'],
      [403, JSON.stringify({ error: { code: 'no_such_code' } })],
      [200, 'not json'],
      [200, JSON.stringify({ ip: '1.2.3.4', reservedUntil: 1, response: 'A=' })],
      [200, JSON.stringify({ ip: '1.2.3.4', reservedUntil: 1, response: '' })],
      [200, JSON.stringify({ ip: '01.2.3.4', reservedUntil: 1, response: 'AA' })],
      [200, JSON.stringify({ ip: '1.2.3.4', reservedUntil: -1, response: 'AA' })],
      [200, JSON.stringify({ ip: '1.2.3.4', reservedUntil: 1.5, response: 'AA' })],
      [200, JSON.stringify([1])],
    ];
    for (const [status, body] of bad) {
      await assert.rejects(new ParentClient('http://p.test', { fetch: respond(status, body) }).assign('1.2.3.4', new Uint8Array([1])), isCode('http_failed'), body);
    }
    await assert.rejects(new ParentClient('http://p.test', { fetch: respond(200, '{}') }).attestation(new Uint8Array(16)), isCode('http_failed'));
    await assert.rejects(new ParentClient('http://p.test', { fetch: respond(200, JSON.stringify({ document: 'AAEC' })) }).attestation(new Uint8Array(16)), isCode('http_failed'), 'a document without its JWKS');
  });

  it('a network failure is http_failed and its message does not carry the URL', async () => {
    const fetch = (async () => {
      throw new Error('connect ECONNREFUSED http://secret.test');
    }) as Fetch;
    await assert.rejects(new ParentClient('http://secret.test', { fetch }).keys(), (e: unknown) => isCode('http_failed')(e) && !(e as Error).message.includes('secret'));
  });

  it('a body over 1 MiB is refused while it streams, and an empty 200 body is an empty JWKS', async () => {
    await assert.rejects(new ParentClient('http://p.test', { fetch: respond(200, new Uint8Array(1024 * 1024 + 1)) }).keys(), isCode('http_failed'));
    assert.equal((await new ParentClient('http://p.test', { fetch: (async () => new Response(null, { status: 200 })) as Fetch }).keys()).length, 0);
  });

  it('talks to a real HTTP server with the global fetch, and times out', async (t) => {
    const server = createServer((req, res) => {
      if (req.url === '/v1/keys') res.end('{"keys":[]}');
      // any other route never answers
    });
    t.after(() => {
      server.closeAllConnections();
      server.close();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const parent = new ParentClient(`http://127.0.0.1:${port}`, { timeoutMs: 500 });
    assert.equal(new TextDecoder().decode(await parent.keys()), '{"keys":[]}');
    await assert.rejects(parent.attestation(new Uint8Array(16)), isCode('http_failed'));
  });

  it('refuses a redirect instead of carrying a sealed request elsewhere', async (t) => {
    let reachedTarget = 0;
    const target = createServer((_req, res) => {
      reachedTarget++;
      res.end('{}');
    });
    const redirecting = createServer((_req, res) => {
      res.writeHead(307, { location: `http://127.0.0.1:${(target.address() as AddressInfo).port}/v1/dip/assign` });
      res.end();
    });
    t.after(() => {
      target.close();
      redirecting.close();
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => redirecting.listen(0, '127.0.0.1', resolve));
    const parent = new ParentClient(`http://127.0.0.1:${(redirecting.address() as AddressInfo).port}`);
    await assert.rejects(parent.assign('192.0.2.1', new Uint8Array([1])), isCode('http_failed'));
    assert.equal(reachedTarget, 0, 'the redirect was not followed');
  });

  it('refuses a URL that is not http(s)', () => {
    assert.throws(() => new ParentClient('ftp://p.test'), TypeError);
    assert.throws(() => new ParentClient('not a url'), TypeError);
  });
});
