import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pooledRandomBytes } from '../random.js';

test('pooledRandomBytes hands out fresh bytes of the asked length, never the same bytes twice', () => {
  const seen = new Set<string>();
  // 1,000 draws of 16 bytes cross the 4096-byte pool several times.
  for (let i = 0; i < 1000; i++) {
    const bytes = pooledRandomBytes(16);
    assert.equal(bytes.length, 16, '16 bytes');
    const hex = Buffer.from(bytes).toString('hex');
    assert.ok(!seen.has(hex), 'no value repeats');
    seen.add(hex);
  }
  assert.notDeepEqual(pooledRandomBytes(4096), pooledRandomBytes(4096), 'two whole pools differ');
});

test('each value is a copy of its own: changing it changes nothing else', () => {
  const a = pooledRandomBytes(32);
  const copy = new Uint8Array(a);
  const b = pooledRandomBytes(32);
  b.fill(0);
  assert.deepEqual(a, copy, 'the first value is unchanged');
  assert.equal(a.buffer.byteLength, 32, 'not a view of the pool');
});

test('lengths 0 and 4096 are served; anything else outside 0..4096 is misuse', () => {
  assert.equal(pooledRandomBytes(0).length, 0, 'zero bytes');
  assert.equal(pooledRandomBytes(4096).length, 4096, 'a whole pool');
  for (const bad of [4097, -1, 1.5, Number.NaN]) assert.throws(() => pooledRandomBytes(bad), TypeError, String(bad));
});
