import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DipError } from '../errors.js';
import { FrameReader, encodeFrame, frameBytes } from '../frame.js';
import { MAX_FRAME_BYTES } from '../limits.js';

const header = (n: number): Uint8Array => {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
};

const expectBadFrame = (reader: FrameReader): void => {
  assert.throws(() => reader.next(), (error: unknown) => error instanceof DipError && error.code === 'bad_frame');
};

test('a frame is a 4-byte big-endian length followed by one CBOR item', () => {
  assert.deepEqual(encodeFrame({ v: 1 }), new Uint8Array([0, 0, 0, 4, 0xa1, 0x61, 0x76, 0x01]));
});

test('frames round-trip, several per chunk and one split across many chunks', () => {
  const reader = new FrameReader();
  const a = encodeFrame({ id: 1 });
  const b = encodeFrame({ id: 2, pad: new Uint8Array(1000) });
  const stream = new Uint8Array([...a, ...b]);
  for (let i = 0; i < stream.length; i += 3) reader.push(stream.subarray(i, i + 3));
  assert.deepEqual(reader.next(), new Map([['id', 1]]));
  assert.deepEqual((reader.next() as Map<string, unknown>).get('id'), 2);
  assert.equal(reader.next(), null);
  assert.equal(reader.pending, 0);
});

test('a reader waits for the rest of a frame and reports the bytes it holds', () => {
  const reader = new FrameReader();
  const frame = encodeFrame([1, 2, 3]);
  reader.push(frame.subarray(0, 2));
  assert.equal(reader.next(), null);
  reader.push(new Uint8Array(0));
  reader.push(frame.subarray(2, 5));
  assert.equal(reader.next(), null);
  assert.equal(reader.pending, 5);
  reader.push(frame.subarray(5));
  assert.deepEqual(reader.next(), [1, 2, 3]);
});

test('a frame of the maximal size (65536 bytes) is accepted', () => {
  const cbor = new Uint8Array(MAX_FRAME_BYTES);
  cbor.set([0x5a, 0x00, 0x00, 0xff, 0xfb]);
  const reader = new FrameReader();
  reader.push(frameBytes(cbor));
  assert.equal((reader.next() as Uint8Array).length, MAX_FRAME_BYTES - 5);
});

test('a frame of the minimal size (1 byte) is read and written', () => {
  const reader = new FrameReader();
  reader.push(new Uint8Array([...header(1), 0x07]));
  assert.equal(reader.next(), 7, 'a 1-byte frame holding the integer 7');
  assert.deepEqual(frameBytes(new Uint8Array([0x07])), new Uint8Array([0, 0, 0, 1, 0x07]), 'a 1-byte frame is encoded');
});

test('an empty frame (length 0) is bad_frame', () => {
  const reader = new FrameReader();
  reader.push(header(0));
  expectBadFrame(reader);
});

test('a frame of 65537 bytes is bad_frame as soon as its length arrives, before its body', () => {
  const reader = new FrameReader();
  reader.push(header(MAX_FRAME_BYTES + 1));
  expectBadFrame(reader);
});

test('a frame that is not CBOR, or holds trailing bytes after the item, is bad_frame', () => {
  for (const body of [[0xff], [0x01, 0x01], [0x62, 0xc3, 0x28]]) {
    const reader = new FrameReader();
    reader.push(new Uint8Array([...header(body.length), ...body]));
    expectBadFrame(reader);
  }
});

test('after a bad frame the reader stays failed and drops what it held', () => {
  const reader = new FrameReader();
  reader.push(header(0));
  expectBadFrame(reader);
  reader.push(encodeFrame(1));
  assert.equal(reader.pending, 0);
  expectBadFrame(reader);
});

test('encoding refuses our own oversized or empty frames', () => {
  assert.throws(() => frameBytes(new Uint8Array(0)), TypeError);
  assert.throws(() => frameBytes(new Uint8Array(MAX_FRAME_BYTES + 1)), TypeError);
});
