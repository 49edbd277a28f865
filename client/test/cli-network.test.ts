// Issue 9.4: when the parent cannot be reached, the error names the cause (refused, DNS, TLS,
// timeout), shown with real sockets on 127.0.0.1. "Refused" is never said of a timeout.

import assert from 'node:assert/strict';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { main, type CliIo } from '../cli.js';
import { networkFailure } from '../http.js';
import { SELF_SIGNED_CERT, SELF_SIGNED_KEY } from './helpers/tls-self-signed.js';

const AWS_ROOT = fileURLToPath(new URL('../../test/vectors/aws-nitro-root-g1.pem', import.meta.url));
const PCRS = ['--pcr0', '00'.repeat(48), '--pcr1', '00'.repeat(48), '--pcr2', '00'.repeat(48)];

async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { out: (t) => void (stdout += t), err: (t) => void (stderr += t), cwd: process.cwd(), env: {} };
  const code = await main(args, io);
  return { code, stdout, stderr };
}

const sockets: Socket[] = [];
async function listen(server: Server): Promise<number> {
  server.on('connection', (socket: Socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

/** Accepts connections and never answers. */
const silent = createTcpServer(() => {});
const silentPort = await listen(silent);
const tls = createTlsServer({ key: SELF_SIGNED_KEY, cert: SELF_SIGNED_CERT }, (socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'));
const tlsPort = await listen(tls);
/** A port that was just free: nothing listens there any more. */
const closedPort = await (async () => {
  const server = createTcpServer();
  const port = await listen(server);
  await new Promise((resolve) => server.close(resolve));
  return port;
})();
after(() => {
  for (const socket of sockets) socket.destroy();
  silent.close();
  tls.close();
});

describe('dip names why the parent could not be reached', () => {
  const cases: Array<[string, string, string, RegExp]> = [
    ['a closed port', `http://127.0.0.1:${closedPort}`, 'connection_refused', /connection refused/],
    ['an unresolvable name', 'http://nonexistent.invalid:8080', 'dns_failed', /could not be resolved \(DNS\)/],
    ['a self-signed certificate', `https://127.0.0.1:${tlsPort}`, 'tls_failed', /TLS handshake failed/],
    ['a server that never answers', `http://127.0.0.1:${silentPort}`, 'timeout', /no answer before the deadline \(timeout\)/],
  ];
  for (const [what, url, detail, text] of cases) {
    it(`${what} is http_failed (${detail})`, async () => {
      const result = await cli(['attest', '--url', url, '--root', AWS_ROOT, ...PCRS, '--timeout', '1', '--json']);
      assert.equal(result.code, 1, 'a failure, not a usage error');
      const error = JSON.parse(result.stdout).error;
      assert.equal(error.code, 'http_failed', 'code');
      assert.equal(error.detail, detail, 'the cause');
      assert.match(error.hint, text, 'the hint says it in words');
      assert.match(result.stderr, text, 'so does the text');
      if (detail !== 'connection_refused') assert.doesNotMatch(result.stderr, /refused/, 'refused is said only of a refusal');
      assert.ok(!result.stderr.includes(url) && !result.stdout.includes(url), 'the URL is not echoed');
    });
  }

  it('verify-dat fetching a JWKS from a server that never answers times out, too', async () => {
    const result = await cli(['verify-dat', 'x.y.z', '--jwks', `http://127.0.0.1:${silentPort}/v1/keys`, '--ip', '198.51.100.23', '--timeout', '1', '--json']);
    assert.equal(result.code, 1, 'a failure');
    assert.equal(JSON.parse(result.stdout).error.detail, 'timeout', 'the cause');
  });

  it('a failure without a known code is connection_failed', () => {
    assert.equal(networkFailure(new TypeError('fetch failed', { cause: { code: 'ECONNRESET' } })), 'connection_failed', 'reset');
    assert.equal(networkFailure('not an error'), 'connection_failed', 'anything else');
    assert.equal(networkFailure(new TypeError('fetch failed', { cause: { code: 'CERT_HAS_EXPIRED' } })), 'tls_failed', 'an expired certificate');
    assert.equal(networkFailure(new TypeError('fetch failed', { cause: { code: 'EAI_AGAIN' } })), 'dns_failed', 'a resolver that cannot answer');
  });
});
