// The DIP service as two OS processes on one PostgreSQL (issue 12): 1,000 concurrent assigns
// against a pool of 100 give exactly 100 distinct IPs, and 50 concurrent redemptions of one token
// split between the two processes give one 200 and 49 token_spent.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSchema, postgresSkipReason, POSTGRES_URL } from '../../store/test/support.js';
import { DAY, assignRequest, errorCode, limited, mintToken, sealedRequest, writeTokenKeys } from './support.js';
import { ENCLAVE, KEY, POOL_OF_100, assertPoolOf100, realNow, runService, running, useFakeParent, type ServiceProcess } from './processes.js';

const fakeParent = useFakeParent();

test('two service processes on one PostgreSQL: 1,000 concurrent assigns with 1,000 tokens against a pool of 100 give 100 distinct IPs and 900 pool_exhausted', async (t) => {
  const skip = await postgresSkipReason();
  if (skip !== null) return t.skip(skip);
  const { schema, drop } = await createSchema();
  const tokenKeys = writeTokenKeys([KEY]);
  const args = ['--parent', fakeParent().url, '--token-keys', tokenKeys, '--database-url', POSTGRES_URL, '--database-schema', schema, ...POOL_OF_100];
  // Both start at once with the same --range: one adds it, the other finds it there.
  const [a, b] = (await Promise.all([runService(args), runService(args)])).map(running) as [ServiceProcess, ServiceProcess];
  try {
    const tokens = Array.from({ length: 1000 }, () => mintToken(KEY).authorization);
    const answers = await limited(tokens.map((authorization, i) => () => assignRequest((i % 2 === 0 ? a : b).url, authorization, sealedRequest(ENCLAVE))), 50);
    assertPoolOf100(answers, 'two processes');
  } finally {
    assert.equal(await a.stop(), 0, 'a stops cleanly');
    assert.equal(await b.stop(), 0, 'b stops cleanly');
    await drop();
  }
});

test('two service processes on one PostgreSQL: 50 concurrent redemptions of one token, split between them, give one 200 and 49 token_spent', async (t) => {
  const skip = await postgresSkipReason();
  if (skip !== null) return t.skip(skip);
  const { schema, drop } = await createSchema();
  const args = ['--parent', fakeParent().url, '--token-keys', writeTokenKeys([KEY]), '--database-url', POSTGRES_URL, '--database-schema', schema, '--range', '192.0.2.0/28'];
  const [a, b] = (await Promise.all([runService(args), runService(args)])).map(running) as [ServiceProcess, ServiceProcess];
  const before = fakeParent().sealedCalls().length;
  let spent = 0;
  let releaseParent!: () => void;
  const allRefused = new Promise<void>((resolve) => (releaseParent = resolve));
  // The one attempt waits at the parent until the 49 others are answered: the lease decides, not timing.
  fakeParent().script = () => ({
    kind: 'custom',
    answer: async (c, res) => {
      await allRefused;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ip: c.body!.ip, reservedUntil: Math.ceil((realNow + 60 * DAY) / DAY) * DAY, response: 'AAAA' }));
    },
  });
  try {
    const { authorization } = mintToken(KEY);
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        assignRequest((i % 2 === 0 ? a : b).url, authorization, sealedRequest(ENCLAVE)).then((answer) => {
          if (errorCode(answer) === 'token_spent' && ++spent === 49) releaseParent();
          return answer;
        }),
      ),
    );
    assert.equal(answers.filter((x) => x.status === 200).length, 1, 'one success');
    assert.equal(answers.filter((x) => errorCode(x) === 'token_spent').length, 49, '49 token_spent');
    assert.equal(fakeParent().sealedCalls().length - before, 1, 'one attempt reached the parent');
  } finally {
    fakeParent().script = () => ({ kind: 'ok' });
    assert.equal(await a.stop(), 0, 'a stops cleanly');
    assert.equal(await b.stop(), 0, 'b stops cleanly');
    await drop();
  }
});
