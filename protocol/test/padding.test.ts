// SPEC §4 padding: one CBOR item, then zeros up to exactly the fixed size, in both directions;
// and reservedUntil rounded up to 00:00 UTC.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CborDecodeError, decodePaddedCbor, encodeCbor, encodePaddedCbor } from '../cbor.js';
import { REQUEST_PLAINTEXT_BYTES, RESPONSE_PLAINTEXT_BYTES, reservedUntilOf } from '../limits.js';

const isDecodeError = (e: unknown): boolean => e instanceof CborDecodeError;

test('the padded sizes are those of SPEC §4', () => {
  assert.equal(REQUEST_PLAINTEXT_BYTES, 8192, 'requests are 8192 bytes');
  assert.equal(RESPONSE_PLAINTEXT_BYTES, 4096, 'responses are 4096 bytes');
});

test('encodePaddedCbor writes the item then zeros up to the size, and decodePaddedCbor reads it back', () => {
  const padded = encodePaddedCbor({ srt: 'a.b.c' }, 64);
  const item = encodeCbor({ srt: 'a.b.c' });
  assert.equal(padded.length, 64, 'exactly the size');
  assert.deepEqual(padded.subarray(0, item.length), item, 'the item first');
  assert.ok(padded.subarray(item.length).every((b) => b === 0), 'then only zeros');
  assert.deepEqual(decodePaddedCbor(padded, 64), new Map([['srt', 'a.b.c']]), 'round trip');
});

test('an item that fills the size exactly needs no padding; one byte more is misuse', () => {
  const item = encodeCbor('x'.repeat(20));
  assert.deepEqual(decodePaddedCbor(encodePaddedCbor('x'.repeat(20), item.length), item.length), 'x'.repeat(20), 'exact fit');
  assert.throws(() => encodePaddedCbor('x'.repeat(20), item.length - 1), TypeError);
});

test('decodePaddedCbor refuses a wrong length, a non-zero padding byte, or no item at all', () => {
  const padded = encodePaddedCbor({ a: 1 }, 32);
  assert.throws(() => decodePaddedCbor(padded, 31), isDecodeError, 'one byte more than the size');
  assert.throws(() => decodePaddedCbor(padded.subarray(0, 31), 32), isDecodeError, 'one byte short of the size');
  for (const index of [encodeCbor({ a: 1 }).length, 31]) {
    const dirty = new Uint8Array(padded);
    dirty[index] = 1;
    assert.throws(() => decodePaddedCbor(dirty, 32), isDecodeError, `a non-zero byte at ${index}`);
  }
  assert.throws(() => decodePaddedCbor(Uint8Array.of(0x9f, 0, 0, 0), 4), isDecodeError, 'an unterminated item');
  // All zeros is the CBOR integer 0 followed by padding: it decodes, and the caller refuses a non-map.
  assert.equal(decodePaddedCbor(new Uint8Array(8), 8), 0, 'zeros are the integer 0');
});

test('reservedUntil is the DRT exp rounded up to the next 00:00 UTC, and a midnight stays', () => {
  const midnight = Date.UTC(2027, 0, 15) / 1000;
  assert.equal(reservedUntilOf(midnight), midnight, 'exactly midnight stays');
  assert.equal(reservedUntilOf(midnight + 1), midnight + 86_400, 'one second after midnight goes to the next one');
  assert.equal(reservedUntilOf(midnight - 1), midnight, 'one second before midnight goes to it');
  assert.equal(reservedUntilOf(midnight + 86_399), midnight + 86_400, 'the last second of the day');
});

test('a padding longer than the preallocated zeros is checked as strictly', () => {
  const padded = encodePaddedCbor({ a: 1 }, 9000);
  assert.deepEqual(decodePaddedCbor(padded, 9000), new Map([['a', 1]]), 'all zeros decode');
  padded[8999] = 1;
  assert.throws(() => decodePaddedCbor(padded, 9000), isDecodeError, 'a non-zero last byte');
});
