import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBase64url, encodeBase64url, isCanonicalBase64url } from '../base64url.js';

test('base64url encodes without padding and honours subarray offsets', () => {
  const backing = new Uint8Array([0xff, 0xfb, 0xff, 0x01]);
  assert.equal(encodeBase64url(backing.subarray(1, 3)), '-_8');
  assert.equal(encodeBase64url(new Uint8Array(0)), '');
});

test('base64url decoding round-trips every length', () => {
  for (let n = 0; n < 40; n++) {
    const bytes = new Uint8Array(n).map((_, i) => (i * 37 + n) & 0xff);
    const decoded = decodeBase64url(encodeBase64url(bytes))!;
    assert.deepEqual(decoded, bytes);
    // Bytes of their own, never a view into a shared pool that other data lives in.
    assert.equal(decoded.buffer.byteLength, n);
  }
});

test('base64url decoding refuses padding, other alphabets, impossible lengths and non-canonical tails', () => {
  // Node's decoder skips or maps each of these; the round trip must still refuse them, wherever they stand.
  const long = 'QUFB'.repeat(2048);
  for (const text of ['AA==', 'AA=', 'AA=A', '+/8', 'a b', 'AA\nA', 'AAA\u0000', 'A', 'AAAAA', 'AB', 'AAB', '\u00e9', 'AA\ud800', `${long}+${long}`, `${long.slice(1)}.`, `${long} `]) {
    assert.equal(decodeBase64url(text), null, text);
  }
});

test('base64url decoding refuses every non-canonical final character and accepts every canonical one', () => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  for (const prefix of ['', 'AAAA']) {
    for (const [length, unused] of [[2, 4], [3, 2]] as const) {
      for (const [value, last] of [...alphabet].entries()) {
        const text = `${prefix}${'Q'.repeat(length - 1)}${last}`;
        const canonical = value % (1 << unused) === 0;
        assert.equal(isCanonicalBase64url(text), canonical, text);
        assert.equal(decodeBase64url(text) !== null, canonical, text);
        // The reference: a canonical text is exactly what encoding its bytes gives back.
        assert.equal(canonical, Buffer.from(Buffer.from(text, 'base64url')).toString('base64url') === text, `reference ${text}`);
      }
    }
  }
});
