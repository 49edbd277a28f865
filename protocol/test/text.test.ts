import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isSubscriptionId, isWellFormedUnicode } from '../text.js';

test('well-formed Unicode: surrogate pairs pass, lone or reversed surrogates do not', () => {
  assert.ok(isWellFormedUnicode(''), 'the empty string is well-formed');
  assert.ok(isWellFormedUnicode('a😀\u{10ffff}é'), 'pairs and BMP text are well-formed');
  for (const bad of ['\ud800', '\udfff', 'a\ud83d', '\ude00a', '\ude00\ud83d']) {
    assert.ok(!isWellFormedUnicode(bad), `${JSON.stringify(bad)} has a lone surrogate`);
  }
});

test('sub is 1..256 code points: 256 pass and 257 fail, for ASCII and for emoji (SPEC §2)', () => {
  assert.ok(isSubscriptionId('x'.repeat(256)), '256 ASCII code points are accepted');
  assert.ok(!isSubscriptionId('x'.repeat(257)), '257 ASCII code points are refused');
  assert.ok(isSubscriptionId('😀'.repeat(256)), '256 emoji (512 UTF-16 units) are accepted');
  assert.ok(isSubscriptionId('😀'.repeat(129)), '129 emoji (258 UTF-16 units) are accepted');
  assert.ok(!isSubscriptionId('😀'.repeat(257)), '257 emoji are refused');
  assert.ok(!isSubscriptionId('😀'.repeat(255) + 'xx'), '255 emoji and 2 ASCII are 257 code points');
  assert.ok(isSubscriptionId('x'), 'one code point is accepted');
});

test('sub refuses the empty string, a lone surrogate and anything not a string', () => {
  for (const bad of ['', '\ud800', 'sub-\udc00', '😀'.repeat(10) + '\ud83d', 42, null, undefined, ['a']]) {
    assert.ok(!isSubscriptionId(bad), `${JSON.stringify(bad)} is not a subscription id`);
  }
});
