// protocol/test/fast-check.ts: every property runs from one fixed seed unless FC_SEED names another,
// so a property test cannot pass on one run and fail on the next.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_FC_SEED, fastCheckSeed, fc } from './fast-check.js';

test('the seed is fixed by default and FC_SEED overrides it', () => {
  assert.equal(fastCheckSeed({}), DEFAULT_FC_SEED, 'no FC_SEED: the fixed seed');
  assert.equal(fastCheckSeed({ FC_SEED: '' }), DEFAULT_FC_SEED, 'an empty FC_SEED: the fixed seed');
  assert.equal(fastCheckSeed({ FC_SEED: '42' }), 42, 'FC_SEED=42');
  assert.equal(fastCheckSeed({ FC_SEED: '-7' }), -7, 'a negative seed');
});

test('an FC_SEED that is not an integer is refused', () => {
  for (const text of ['x', '1.5', '1e3', '99999999999']) assert.throws(() => fastCheckSeed({ FC_SEED: text }), TypeError, text);
});

test('importing the helper sets the global seed, so two runs draw the same values', () => {
  assert.equal(fc.readConfigureGlobal().seed, fastCheckSeed(), 'the global configuration holds the seed');
  const draw = (): number[] => fc.sample(fc.integer(), 5);
  assert.deepEqual(draw(), draw(), 'the same seed gives the same sample');
});
