import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodePaddedCbor, encodeCbor, encodePaddedCbor } from '../../protocol/cbor.js';
import { DipError } from '../../protocol/errors.js';
import { generateBootKey, keyIdOf, openRequest, sealResponse } from '../../protocol/hpke.js';
import { REQUEST_PLAINTEXT_BYTES, RESPONSE_PLAINTEXT_BYTES, SEALED_REQUEST_BYTES } from '../../protocol/limits.js';
import { ClientError } from '../errors.js';
import { open, seal } from '../seal.js';

const bootKey = generateBootKey();
const SRT = 'srt.header.sig';
const DRT = 'drt.header.sig';

function isCode(code: string) {
  return (error: unknown) => error instanceof ClientError && error.code === code;
}

describe('sealing requests and opening responses (SPEC §4)', () => {
  it('an assign request opens in the enclave as CBOR {"srt"} and its response opens back to {dat, drt}', () => {
    const sealed = seal(bootKey.publicKeySpki, { op: 'assign', srt: SRT });
    const { plaintext, context } = openRequest(bootKey, 'assign', sealed.encapsulatedRequest);
    assert.equal(plaintext.length, REQUEST_PLAINTEXT_BYTES, 'the request plaintext is padded to 8192 bytes');
    assert.deepEqual(decodePaddedCbor(plaintext, REQUEST_PLAINTEXT_BYTES), new Map([['srt', SRT]]), 'the payload is {"srt"}');
    const response = sealResponse(context, encodePaddedCbor({ dat: 'the-dat', drt: 'the-drt' }, RESPONSE_PLAINTEXT_BYTES));
    assert.deepEqual(open(sealed.context, response), { dat: 'the-dat', drt: 'the-drt' });
  });

  it('a refresh request carries exactly {"srt", "drt"} and is refused as an assign', () => {
    const sealed = seal(bootKey.publicKeySpki, { op: 'refresh', srt: SRT, drt: DRT });
    assert.equal(sealed.encapsulatedRequest[0], 0x02, 'header version 0x02');
    assert.deepEqual(sealed.encapsulatedRequest.subarray(1, 9), keyIdOf(bootKey.publicKeySpki), 'header key_id of the boot key');
    assert.equal(sealed.encapsulatedRequest[15], 0x02, 'header op 0x02 = refresh');
    const { plaintext } = openRequest(bootKey, 'refresh', sealed.encapsulatedRequest);
    assert.deepEqual(decodePaddedCbor(plaintext, REQUEST_PLAINTEXT_BYTES), new Map([['srt', SRT], ['drt', DRT]]), 'the payload is {"srt", "drt"}');
    assert.throws(() => openRequest(bootKey, 'assign', sealed.encapsulatedRequest), (e: unknown) => e instanceof DipError && e.code === 'decrypt_failed');
  });

  it('the tokens never appear in the clear in a sealed request', () => {
    const sealed = seal(bootKey.publicKeySpki, { op: 'refresh', srt: SRT, drt: DRT });
    const bytes = Buffer.from(sealed.encapsulatedRequest);
    assert.ok(!bytes.includes(Buffer.from(SRT)) && !bytes.includes(Buffer.from(DRT)), 'no SRT or DRT in the sealed bytes');
  });

  it('a response for another request, or altered, is response_invalid', () => {
    const first = seal(bootKey.publicKeySpki, { op: 'assign', srt: SRT });
    const second = seal(bootKey.publicKeySpki, { op: 'assign', srt: SRT });
    const { context } = openRequest(bootKey, 'assign', first.encapsulatedRequest);
    const response = sealResponse(context, encodePaddedCbor({ dat: 'a', drt: 'b' }, RESPONSE_PLAINTEXT_BYTES));
    assert.throws(() => open(second.context, response), isCode('response_invalid'));
    const altered = new Uint8Array(response);
    altered[40]! ^= 1;
    assert.throws(() => open(first.context, altered), isCode('response_invalid'));
    assert.throws(() => open(first.context, response.subarray(0, 20)), isCode('response_invalid'));
  });

  it('a response that opens but is not exactly {"dat": text, "drt": text} is response_invalid', () => {
    const bodies: unknown[] = [
      { dat: 'a' },
      { dat: 'a', drt: 'b', extra: 'c' },
      { dat: 'a', drt: 2 },
      { dat: '', drt: 'b' },
      { dat: 'a', ddt: 'b' },
      ['a', 'b'],
    ];
    for (const body of bodies) {
      const sealed = seal(bootKey.publicKeySpki, { op: 'assign', srt: SRT });
      const { context } = openRequest(bootKey, 'assign', sealed.encapsulatedRequest);
      assert.throws(() => open(sealed.context, sealResponse(context, encodePaddedCbor(body, RESPONSE_PLAINTEXT_BYTES))), isCode('response_invalid'), JSON.stringify(body));
    }
    const sealed = seal(bootKey.publicKeySpki, { op: 'assign', srt: SRT });
    const { context } = openRequest(bootKey, 'assign', sealed.encapsulatedRequest);
    assert.throws(() => open(sealed.context, sealResponse(context, Uint8Array.of(0xa1))), isCode('response_invalid'));
  });

  it('a response that is not padded to exactly 4096 bytes with zeros is response_invalid', () => {
    const item = encodeCbor({ dat: 'a', drt: 'b' });
    const padded = (size: number): Uint8Array => {
      const out = new Uint8Array(size);
      out.set(item);
      return out;
    };
    const nonZero = padded(RESPONSE_PLAINTEXT_BYTES);
    nonZero[RESPONSE_PLAINTEXT_BYTES - 1] = 1;
    for (const plaintext of [item, padded(RESPONSE_PLAINTEXT_BYTES - 1), padded(RESPONSE_PLAINTEXT_BYTES + 1), nonZero]) {
      const sealed = seal(bootKey.publicKeySpki, { op: 'assign', srt: SRT });
      const { context } = openRequest(bootKey, 'assign', sealed.encapsulatedRequest);
      assert.throws(() => open(sealed.context, sealResponse(context, plaintext)), isCode('response_invalid'), `a ${plaintext.length}-byte response plaintext`);
    }
    const sealed = seal(bootKey.publicKeySpki, { op: 'assign', srt: SRT });
    const { context } = openRequest(bootKey, 'assign', sealed.encapsulatedRequest);
    assert.deepEqual(open(sealed.context, sealResponse(context, padded(RESPONSE_PLAINTEXT_BYTES))), { dat: 'a', drt: 'b' }, 'exactly padded opens');
  });

  it('every sealed request has the same length, whatever the tokens; tokens that do not fit are request_too_large', () => {
    const lengths = new Set<number>();
    for (const srt of ['s', 'x'.repeat(1000), 'y'.repeat(8000)]) {
      lengths.add(seal(bootKey.publicKeySpki, { op: 'assign', srt }).encapsulatedRequest.length);
      lengths.add(seal(bootKey.publicKeySpki, { op: 'refresh', srt, drt: 'd' }).encapsulatedRequest.length);
    }
    assert.deepEqual([...lengths], [SEALED_REQUEST_BYTES], 'one length for every request');
    // {"srt": text}: 1-byte map head, 4 bytes for the key, a 3-byte text head below 65536 bytes.
    const fits = 'z'.repeat(REQUEST_PLAINTEXT_BYTES - 8);
    assert.equal(encodeCbor({ srt: fits }).length, REQUEST_PLAINTEXT_BYTES, 'the largest SRT fills the plaintext exactly');
    assert.equal(seal(bootKey.publicKeySpki, { op: 'assign', srt: fits }).encapsulatedRequest.length, SEALED_REQUEST_BYTES, 'the largest SRT is sealed');
    assert.throws(() => seal(bootKey.publicKeySpki, { op: 'assign', srt: `${fits}z` }), isCode('request_too_large'));
  });

  it('misuse throws TypeError: empty tokens, an unknown op, a broken context', () => {
    assert.throws(() => seal(bootKey.publicKeySpki, { op: 'assign', srt: '' }), TypeError);
    assert.throws(() => seal(bootKey.publicKeySpki, { op: 'refresh', srt: SRT, drt: '' }), TypeError);
    assert.throws(() => seal(bootKey.publicKeySpki, { op: 'delete', srt: SRT } as never), TypeError);
    assert.throws(() => open({ enc: new Uint8Array(3), secret: new Uint8Array(32) }, new Uint8Array(64)), TypeError);
  });
});
