// Request bodies (common/http-body.ts): the JSON media type rule, and a read that stops at its limit.

import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { BodyError, isJsonContentType, mediaTypeOf, readBody } from '../http-body.js';

test('isJsonContentType takes application/json with parameters, a UTF-8 charset only; mediaTypeOf strips parameters', () => {
  for (const ok of ['application/json', 'Application/JSON; charset=utf-8', 'application/json;charset="UTF-8"', 'application/json; x=y']) {
    assert.equal(isJsonContentType(ok), true, ok);
  }
  for (const bad of [undefined, '', 'text/json', 'application/json; charset=latin1', 'application/jsonx']) {
    assert.equal(isJsonContentType(bad), false, String(bad));
  }
  assert.equal(mediaTypeOf(' Application/Octet-Stream ; q=1'), 'application/octet-stream', 'lower case, no parameters');
  assert.equal(mediaTypeOf(undefined), '', 'absent');
});

async function post(limit: number, body: Buffer): Promise<string> {
  const server = createServer((req, res) => {
    readBody(req, limit).then(
      (read) => res.end(`read ${read.length}`),
      (error: unknown) => res.writeHead(413, { connection: 'close' }).end(error instanceof BodyError ? error.reason : 'other'),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/' }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end(body);
    });
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

test('readBody reads exactly the limit and refuses one byte more with too_large', async () => {
  assert.equal(await post(10, Buffer.alloc(10)), 'read 10', 'at the limit');
  assert.equal(await post(10, Buffer.alloc(11)), 'too_large', 'one byte over');
});
