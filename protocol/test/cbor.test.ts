import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fc } from './fast-check.js';
import { CborDecodeError, CborFloat, Tagged, decodeCbor, encodeCbor } from '../cbor.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const unhex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text.replace(/\s+/g, ''), 'hex'));

test('writing uses preferred serialization: shortest integer and length heads (RFC 8949 §4.1)', () => {
  const cases: Array<[unknown, string]> = [
    [0, '00'], [23, '17'], [24, '1818'], [255, '18ff'], [256, '190100'], [65535, '19ffff'], [65536, '1a00010000'],
    [0xffffffff, '1affffffff'], [2 ** 32, '1b0000000100000000'], [Number.MAX_SAFE_INTEGER, '1b001fffffffffffff'],
    [-1, '20'], [-24, '37'], [-25, '3818'], [-(2 ** 32), '3affffffff'], [-(2 ** 32) - 1, '3b0000000100000000'],
    ['', '60'], ['a'.repeat(23), '77' + '61'.repeat(23)], ['a'.repeat(24), '7818' + '61'.repeat(24)],
    [true, 'f5'], [false, 'f4'], [null, 'f6'], [[], '80'], [{}, 'a0'],
  ];
  for (const [value, expected] of cases) assert.equal(hex(encodeCbor(value)), expected, String(value));
});

test('byte strings are plain major type 2, never tag 64, including misaligned subarrays', () => {
  const backing = new Uint8Array([9, 9, 1, 2, 3, 9]);
  assert.equal(hex(encodeCbor(backing.subarray(2, 5))), '43010203');
  assert.equal(hex(encodeCbor(Buffer.from([1, 2]))), '420102');
  assert.equal(hex(encodeCbor(new Uint8Array(300)).subarray(0, 3)), '59012c');
});

test('maps are untagged with shortest heads, from objects and Maps alike, in insertion order', () => {
  assert.equal(hex(encodeCbor({ v: 1, id: 2 })), 'a2617601626964' + '02');
  assert.equal(hex(encodeCbor(new Map<unknown, unknown>([[1, -35]]))), 'a1013822');
  const wide: Record<string, number> = {};
  for (let i = 0; i < 24; i++) wide[`k${i}`] = i;
  assert.equal(hex(encodeCbor(wide)).slice(0, 4), 'b818');
  assert.equal(hex(encodeCbor({ a: 1, skipped: undefined })), 'a1616101');
});

test('writing refuses what this project never writes', () => {
  assert.throws(() => encodeCbor(1.5), TypeError);
  assert.throws(() => encodeCbor(new Date()), TypeError);
  assert.throws(() => encodeCbor(undefined), TypeError);
  let deep: unknown = 1;
  for (let i = 0; i < 40; i++) deep = [deep];
  assert.throws(() => encodeCbor(deep), TypeError);
});

test('writing refuses text that is not well-formed Unicode, as a value or a map key, at any depth', () => {
  // cbor-x would write '\ud800' as ed a0 80, invalid UTF-8 that the enclave's reader refuses.
  const loneHigh = '\ud800';
  const loneLow = 'x\udc00';
  const cases: Array<[string, unknown]> = [
    ['a text value', loneHigh],
    ['an object value', { ip: loneHigh }],
    ['an object key', { [loneLow]: 1 }],
    ['a Map key', new Map([[loneLow, 1]])],
    ['a nested array item', { body: [[1, { sub: loneHigh }]] }],
    ['a nested object key', { body: { inner: { [loneHigh]: 'ok' } } }],
    ['a reversed pair', '\ude00\ud83d'],
  ];
  for (const [where, value] of cases) {
    assert.throws(() => encodeCbor(value), TypeError, `lone surrogate in ${where} must be refused`);
  }
  assert.equal(hex(encodeCbor('\ud83d\ude00')), '64f09f9880', 'a surrogate pair is one code point, written as 4 UTF-8 bytes');
});

test('arbitrary strings round-trip exactly when well-formed and are refused when not (property)', () => {
  // Units mix whole code points with lone surrogates, so both outcomes come up often.
  const unit = fc.oneof(
    fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
    fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
  );
  // The oracle is independent of the writer: a UTF-8 round trip changes only ill-formed text.
  const wellFormed = (s: string): boolean => new TextDecoder().decode(new TextEncoder().encode(s)) === s;
  fc.assert(
    fc.property(fc.string({ unit, maxLength: 12 }), fc.boolean(), (text, asKey) => {
      const value = asKey ? { [text]: 1 } : { v: text };
      if (wellFormed(text)) {
        const back = decodeCbor(encodeCbor(value));
        assert.deepEqual(back, new Map<string, unknown>([asKey ? [text, 1] : ['v', text]]), 'well-formed text round-trips exactly');
      } else {
        assert.throws(() => encodeCbor(value), TypeError, 'ill-formed text is refused');
      }
    }),
    { numRuns: 1000, seed: 9 },
  );
});

test('reading accepts indefinite-length strings, arrays and maps (real AWS documents use them)', () => {
  assert.deepEqual(decodeCbor(unhex('5f 42 0102 41 03 ff')), new Uint8Array([1, 2, 3]));
  assert.equal(decodeCbor(unhex('7f 62 6869 61 21 ff')), 'hi!');
  assert.deepEqual(decodeCbor(unhex('9f 01 02 ff')), [1, 2]);
  assert.deepEqual(decodeCbor(unhex('bf 61 61 01 01 02 ff')), new Map<unknown, unknown>([['a', 1], [1, 2]]));
});

test('reading accepts non-preferred but well-formed heads and every simple value and float', () => {
  assert.equal(decodeCbor(unhex('1b0000000000000001')), 1);
  assert.equal(decodeCbor(unhex('1bffffffffffffffff')), 2n ** 64n - 1n);
  assert.equal(decodeCbor(unhex('3bffffffffffffffff')), -(2n ** 64n));
  assert.equal(decodeCbor(unhex('3b0020000000000000')), -(2n ** 53n) - 1n);
  assert.equal(decodeCbor(unhex('f7')), undefined);
  const float = (bytes: string): number => {
    const value = decodeCbor(unhex(bytes));
    assert.ok(value instanceof CborFloat, bytes);
    return value.value;
  };
  assert.equal(float('f93c00'), 1);
  assert.equal(float('f90001'), 2 ** -24);
  assert.equal(float('f97bff'), 65504);
  assert.equal(float('f97c00'), Infinity);
  assert.equal(float('f9fc00'), -Infinity);
  assert.ok(Number.isNaN(float('f97e00')), 'f97e00 is NaN');
  assert.equal(float('fa3fc00000'), 1.5);
  assert.equal(float('fb3ff8000000000000'), 1.5);
  const tagged = decodeCbor(unhex('d2 80'));
  assert.ok(tagged instanceof Tagged, 'a Tagged value');
  assert.equal(tagged.tag, 18);
  assert.deepEqual(tagged.value, []);
});

test('a float is never read as an integer, even when it holds a whole number', () => {
  assert.notEqual(decodeCbor(unhex('fb3ff0000000000000')), 1);
  assert.notEqual(decodeCbor(unhex('f93c00')), 1);
  assert.equal(decodeCbor(unhex('01')), 1);
});

test('encoding returns plain bytes, not a Node Buffer', () => {
  const out = encodeCbor({ a: new Uint8Array([1]) });
  assert.equal(Object.getPrototypeOf(out), Uint8Array.prototype);
  assert.deepEqual(out, new Uint8Array([0xa1, 0x61, 0x61, 0x41, 0x01]));
});

test('decoded byte strings are copies that do not alias the input', () => {
  const input = unhex('43010203');
  const out = decodeCbor(input) as Uint8Array;
  input[1] = 0xff;
  assert.deepEqual(out, new Uint8Array([1, 2, 3]));
});

test('reading a subarray honours its byteOffset', () => {
  const backing = new Uint8Array([0xff, 0xff, 0x82, 0x01, 0x02, 0xff]);
  assert.deepEqual(decodeCbor(backing.subarray(2, 5)), [1, 2]);
});

const hostile: Array<[string, string]> = [
  ['empty input', ''],
  ['trailing bytes', '0101'],
  ['duplicate text key', 'a2 6161 01 6161 02'],
  ['duplicate integer key', 'a2 01 01 01 02'],
  ['duplicate key in an indefinite map', 'bf 6161 01 6161 02 ff'],
  ['a map key that is a byte string', 'a1 4101 01'],
  ['truncated integer', '19 01'],
  ['truncated byte string', '45 0102'],
  ['length beyond the input', '5a ffffffff 00'],
  ['64-bit length beyond the input', '5b ffffffffffffffff'],
  ['reserved additional information', '1c'],
  ['indefinite integer', '1f'],
  ['indefinite negative integer', '3f'],
  ['indefinite tag', 'df 00'],
  ['break outside an indefinite item', 'ff'],
  ['unterminated indefinite array', '9f 01'],
  ['chunk of the wrong type in an indefinite byte string', '5f 61 61 ff'],
  ['nested indefinite chunk', '5f 5f ff ff'],
  ['invalid UTF-8 in text', '62 c328'],
  ['unassigned simple value', 'f0'],
  ['simple value in two bytes', 'f8 20'],
  ['truncated half float', 'f9 00'],
  ['truncated float', 'fa 0000'],
  ['truncated double', 'fb 0000'],
];

for (const [name, bytes] of hostile) {
  test(`reading refuses ${name}`, () => {
    assert.throws(() => decodeCbor(unhex(bytes)), CborDecodeError);
  });
}

test('reading refuses data nested deeper than 32 levels', () => {
  assert.throws(() => decodeCbor(new Uint8Array([...new Array<number>(40).fill(0x81), 0x01])), CborDecodeError);
  assert.deepEqual(decodeCbor(new Uint8Array([0x81, 0x81, 0x01])), [[1]]);
});

test('what we write, we read back unchanged (property)', () => {
  const key = fc.oneof(fc.string({ maxLength: 8 }), fc.integer({ min: -1000, max: 1000 }));
  const { value } = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      fc.integer(),
      fc.maxSafeInteger(),
      fc.string(),
      fc.boolean(),
      fc.constant(null),
      fc.uint8Array({ maxLength: 64 }),
      fc.array(tie('value'), { maxLength: 5 }),
      fc.uniqueArray(fc.tuple(key, tie('value')), { maxLength: 5, selector: ([k]) => k }).map((entries) => new Map(entries)),
    ),
  }));
  fc.assert(
    fc.property(value, (v) => {
      assert.deepEqual(decodeCbor(encodeCbor(v)), v);
    }),
    { numRuns: 300 },
  );
});

test('arbitrary bytes either decode or raise CborDecodeError, nothing else (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 128 }), (bytes) => {
      try {
        decodeCbor(bytes);
      } catch (error) {
        assert.ok(error instanceof CborDecodeError, 'a CborDecodeError');
      }
    }),
    { numRuns: 2000 },
  );
});
