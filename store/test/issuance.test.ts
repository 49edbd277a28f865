// SPEC §10 issuer record: (sub, did) issued once, atomically, on both engines and across processes.

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { StoreError } from '../errors.js';
import { recordIssuance, type IssuanceOutcome } from '../token-issuance.js';
import type { Queryable } from '../store.js';
import { ENGINES, POSTGRES_URL, openTestStore, postgresSkipReason, type TestStore } from './support.js';
import { runWorkers } from './processes.js';

const sha256 = (text: string): Uint8Array => new Uint8Array(createHash('sha256').update(text).digest());
const postgresSkip = await postgresSkipReason();

const count = (outcomes: IssuanceOutcome[], kind: IssuanceOutcome['kind']): number => outcomes.filter((o) => o.kind === kind).length;

for (const engine of ENGINES) {
  describe(`token_issuance on the ${engine} engine`, { skip: engine === 'postgres' ? (postgresSkip ?? false) : false }, () => {
    let t: TestStore;
    before(async () => {
      t = await openTestStore(engine);
    });
    after(() => t?.close());
    beforeEach(() => t.reset());

    test('the first request is issued, the same request again gets the same response, another is already_issued', async () => {
      const response = sha256('response');
      assert.deepEqual(await recordIssuance(t.store, 'sub-a', 3, sha256('request'), response), { kind: 'issued' }, 'first issuance');
      const again = await recordIssuance(t.store, 'sub-a', 3, sha256('request'), sha256('a different response'));
      assert.equal(again.kind, 'same', 'the same TokenRequest again');
      assert.deepEqual(again.kind === 'same' && [...again.response], [...response], 'the stored TokenResponse, not the new one');
      assert.deepEqual(await recordIssuance(t.store, 'sub-a', 3, sha256('other'), response), { kind: 'already_issued' }, 'another TokenRequest');
    });

    test('a support reset raises did, which opens one new issuance; another sub is independent', async () => {
      await recordIssuance(t.store, 'sub-a', 3, sha256('r1'), sha256('x'));
      assert.deepEqual(await recordIssuance(t.store, 'sub-a', 4, sha256('r2'), sha256('x')), { kind: 'issued' }, 'did 4');
      assert.deepEqual(await recordIssuance(t.store, 'sub-b', 3, sha256('r3'), sha256('x')), { kind: 'issued' }, 'sub-b');
      assert.deepEqual(await recordIssuance(t.store, 'sub-a', 4, sha256('r4'), sha256('x')), { kind: 'already_issued' }, 'did 4 again');
    });

    test('50 concurrent issuances for one (sub, did) with different requests: exactly one issued, 49 already_issued', async () => {
      const outcomes = await Promise.all(
        Array.from({ length: 50 }, (_, i) => recordIssuance(t.store, 'sub-c', 1, sha256(`request ${i}`), sha256(`response ${i}`))),
      );
      assert.equal(count(outcomes, 'issued'), 1, 'issued');
      assert.equal(count(outcomes, 'already_issued'), 49, 'already_issued');
    });

    test('50 concurrent issuances of the same request all end with the same response', async () => {
      const outcomes = await Promise.all(
        Array.from({ length: 50 }, (_, i) => recordIssuance(t.store, 'sub-d', 1, sha256('one request'), sha256(`response ${i}`))),
      );
      assert.equal(count(outcomes, 'issued'), 1, 'one caller stored its response');
      assert.equal(count(outcomes, 'same'), 49, 'the others got the stored one');
      const [stored] = await t.store.query<{ token_response: Uint8Array }>('SELECT token_response FROM token_issuance');
      for (const o of outcomes) {
        if (o.kind === 'same') assert.deepEqual([...o.response], [...new Uint8Array(stored!.token_response)], 'every caller sees the stored response');
      }
    });
  });
}

describe('token_issuance across processes', { skip: postgresSkip ?? false }, () => {
  let t: TestStore;
  before(async () => {
    t = await openTestStore('postgres');
  });
  after(() => t?.close());

  test('two OS processes issuing for one (sub, did) at once: exactly one issued', async () => {
    const results = await runWorkers<IssuanceOutcome>('issue', POSTGRES_URL, t.schema!, 2, 25);
    const outcomes = results.flat();
    assert.equal(outcomes.length, 50, 'every issuance answered');
    assert.equal(count(outcomes, 'issued'), 1, 'issued once over both processes');
    assert.equal(count(outcomes, 'already_issued'), 49, 'the rest already_issued');
  });
});

describe('recordIssuance refuses misuse', () => {
  const store: Queryable = { query: async () => [] };

  test('a hash that is not 32 bytes, a negative or fractional did, an empty sub throw TypeError', async () => {
    await assert.rejects(recordIssuance(store, 's', 1, new Uint8Array(31), new Uint8Array(1)), TypeError, '31-byte hash');
    await assert.rejects(recordIssuance(store, 's', -1, sha256('r'), new Uint8Array(1)), TypeError, 'negative did');
    await assert.rejects(recordIssuance(store, 's', 1.5, sha256('r'), new Uint8Array(1)), TypeError, 'fractional did');
    await assert.rejects(recordIssuance(store, '', 1, sha256('r'), new Uint8Array(1)), TypeError, 'empty sub');
  });

  test('a conflict whose row cannot be read back is store_failed, not a guess', async () => {
    await assert.rejects(
      recordIssuance(store, 's', 1, sha256('r'), new Uint8Array(1)),
      (e: unknown) => e instanceof StoreError && e.code === 'store_failed',
      'neither inserted nor found',
    );
  });
});
