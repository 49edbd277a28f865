import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeCbor, encodeCbor } from '../../protocol/cbor.js';
import { DipError } from '../../protocol/errors.js';
import { generateBootKey, openRequest, sealResponse } from '../../protocol/hpke.js';
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
    const { payload, context } = openRequest(bootKey, 'assign', sealed.encapsulatedRequest);
    assert.deepEqual(decodeCbor(payload), new Map([['srt', SRT]]));
    const response = sealResponse(context, encodeCbor({ dat: 'the-dat', drt: 'the-drt' }));
    assert.deepEqual(open(sealed.context, response), { dat: 'the-dat', drt: 'the-drt' });
  });

  it('a refresh request carries exactly {"srt", "drt"} and is refused as an assign', () => {
    const sealed = seal(bootKey.publicKeySpki, { op: 'refresh', srt: SRT, drt: DRT });
    assert.equal(sealed.encapsulatedRequest[8 - 1], 0x02);
    const { payload } = openRequest(bootKey, 'refresh', sealed.encapsulatedRequest);
    assert.deepEqual(decodeCbor(payload), new Map([['srt', SRT], ['drt', DRT]]));
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
    const response = sealResponse(context, encodeCbor({ dat: 'a', drt: 'b' }));
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
      assert.throws(() => open(sealed.context, sealResponse(context, encodeCbor(body))), isCode('response_invalid'), JSON.stringify(body));
    }
    const sealed = seal(bootKey.publicKeySpki, { op: 'assign', srt: SRT });
    const { context } = openRequest(bootKey, 'assign', sealed.encapsulatedRequest);
    assert.throws(() => open(sealed.context, sealResponse(context, Uint8Array.of(0xa1))), isCode('response_invalid'));
  });

  it('misuse throws TypeError: empty tokens, an unknown op, a broken context', () => {
    assert.throws(() => seal(bootKey.publicKeySpki, { op: 'assign', srt: '' }), TypeError);
    assert.throws(() => seal(bootKey.publicKeySpki, { op: 'refresh', srt: SRT, drt: '' }), TypeError);
    assert.throws(() => seal(bootKey.publicKeySpki, { op: 'delete', srt: SRT } as never), TypeError);
    assert.throws(() => open({ enc: new Uint8Array(3), secret: new Uint8Array(32) }, new Uint8Array(64)), TypeError);
  });
});
