import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameReader, encodeFrame } from '../frame.js';

test('a frame round-trips', () => {
  const r = new FrameReader();
  r.push(encodeFrame({ v: 1 }));
  assert.deepEqual(r.next(), new Map([['v', 1]]));
});
