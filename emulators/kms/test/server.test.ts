// The KMS emulator's HTTP side (SPEC §9): KMS's JSON 1.1 protocol rules and error shape, the
// body limit at its exact boundary, and an internal failure that says nothing of the request.

import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import type { Kms } from '../kms.js';
import { KmsError } from '../errors.js';
import { createKmsServer, MAX_BODY_BYTES } from '../server.js';

const JSON_11 = 'application/x-amz-json-1.1';

const echo: Kms = {
  generateDataKey: (request) => {
    if (typeof request !== 'object' || request === null || !('KeyId' in request)) throw new KmsError('key_id_missing');
    return { KeyId: 'arn' };
  },
  decrypt: () => {
    throw new TypeError('secret detail 10.0.0.1');
  },
};

async function withServer(kms: Kms, run: (url: string, seen: string[]) => Promise<void>): Promise<void> {
  const seen: string[] = [];
  const server = createKmsServer(kms, (operation, outcome) => seen.push(`${operation} ${outcome}`));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, seen);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

const headers = (target: string, extra: Record<string, string> = {}) => ({
  'x-amz-target': target,
  'content-type': JSON_11,
  authorization: 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00',
  ...extra,
});

async function post(url: string, init: RequestInit): Promise<{ status: number; body: { __type?: string; message?: string; KeyId?: string }; type: string | null }> {
  const response = await fetch(url, { method: 'POST', ...init });
  return { status: response.status, type: response.headers.get('content-type'), body: (await response.json()) as never };
}

test('a signed GenerateDataKey reaches the domain and answers 200 in application/x-amz-json-1.1', () =>
  withServer(echo, async (url, seen) => {
    const answer = await post(url, { headers: headers('TrentService.GenerateDataKey'), body: '{"KeyId":"k"}' });
    assert.equal(answer.status, 200, 'status');
    assert.equal(answer.type, JSON_11, 'content type');
    assert.equal(answer.body.KeyId, 'arn', 'the domain answer');
    assert.deepEqual(seen, ['TrentService.GenerateDataKey ok'], 'the observer sees the operation and outcome only');
  }));

test('requests KMS would refuse get its error shape with status 400', () =>
  withServer(echo, async (url) => {
    const cases: [string, RequestInit, string][] = [
      ['no Authorization', { headers: { 'x-amz-target': 'TrentService.Decrypt', 'content-type': JSON_11 }, body: '{}' }, 'MissingAuthenticationTokenException'],
      ['an unknown operation', { headers: headers('TrentService.Encrypt'), body: '{}' }, 'UnknownOperationException'],
      ['another content type', { headers: headers('TrentService.GenerateDataKey', { 'content-type': 'application/json' }), body: '{}' }, 'SerializationException'],
      ['a body that is not JSON', { headers: headers('TrentService.GenerateDataKey'), body: '{' }, 'SerializationException'],
      ['a domain refusal', { headers: headers('TrentService.GenerateDataKey'), body: '{}' }, 'ValidationException'],
    ];
    for (const [what, init, type] of cases) {
      const answer = await post(url, init);
      assert.equal(answer.status, 400, `${what}: status`);
      assert.equal(answer.body.__type, type, `${what}: __type`);
      assert.equal(typeof answer.body.message, 'string', `${what}: a message`);
    }
    const get = await fetch(url, { headers: headers('TrentService.GenerateDataKey') });
    assert.equal(((await get.json()) as { __type: string }).__type, 'UnknownOperationException', 'GET is no operation');
  }));

test('a body of exactly MAX_BODY_BYTES is read; one byte more is refused', () =>
  withServer(echo, async (url) => {
    const body = (size: number) => '{"KeyId":"k"}'.padEnd(size, ' ');
    const at = await post(url, { headers: headers('TrentService.GenerateDataKey'), body: body(MAX_BODY_BYTES) });
    assert.equal(at.status, 200, 'exactly the limit');
    const over = await post(url, { headers: headers('TrentService.GenerateDataKey'), body: body(MAX_BODY_BYTES + 1) });
    assert.equal(over.body.__type, 'ValidationException', 'one byte over');
    assert.equal(over.body.message, 'The request body is too large', 'the body-limit message');
  }));

test('an internal failure is KMSInternalException 500 and carries nothing of the request or the exception', () =>
  withServer(echo, async (url, seen) => {
    const response = await fetch(url, { method: 'POST', headers: headers('TrentService.Decrypt'), body: '{"CiphertextBlob":"AAAA"}' });
    const text = await response.text();
    assert.equal(response.status, 500, 'status');
    assert.equal((JSON.parse(text) as { __type: string }).__type, 'KMSInternalException', '__type');
    assert.ok(!text.includes('secret') && !text.includes('10.0.0.1') && !text.includes('AAAA'), 'no detail leaks');
    assert.deepEqual(seen, ['null KMSInternalException'], 'the observer sees only the outcome');
  }));
