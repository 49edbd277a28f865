// The NSM driver against hand-assembled CBOR (aws-nitro-enclaves-nsm-api's serde encoding) and
// against the two failures this machine can produce: no device, and a file that is not one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeCbor } from '../../protocol/cbor.js';
import {
  NSM_RAW_BYTES,
  NSM_IOCTL_REQUEST,
  NsmDevice,
  encodeNsmRaw,
  ioctlReadWrite,
  ioctlTransport,
  openNsmDevice,
  responseLengthOf,
} from '../nsm/device.js';
import {
  NSM_ERROR_CODES,
  NSM_REQUEST_MAX_BYTES,
  NsmDeviceError,
  decodeNsmResponse,
  encodeNsmRequest,
  expectResponse,
  type NsmRequest,
} from '../nsm/nsm-cbor.js';

const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// Hand-assembled: each line is one CBOR head followed by its content, ASCII spelled out in hex.
const TEXT_DESCRIBE_NSM = '6b 44657363726962654e534d'; // text(11) "DescribeNSM"
const TEXT_GET_RANDOM = '69 47657452616e646f6d'; // text(9) "GetRandom"
const TEXT_DESCRIBE_PCR = '6b 4465736372696265504352'; // text(11) "DescribePCR"
const TEXT_ATTESTATION = '6b 4174746573746174696f6e'; // text(11) "Attestation"
const TEXT_USER_DATA = '69 757365725f64617461'; // text(9) "user_data"
const TEXT_NONCE = '65 6e6f6e6365'; // text(5) "nonce"
const TEXT_PUBLIC_KEY = '6a 7075626c69635f6b6579'; // text(10) "public_key"
const TEXT_INDEX = '65 696e646578'; // text(5) "index"
const TEXT_DOCUMENT = '68 646f63756d656e74'; // text(8) "document"

test('every NSM request encodes to the exact bytes serde_cbor writes for nsm-api Request', () => {
  const cases: [NsmRequest, string][] = [
    [{ kind: 'DescribeNSM' }, TEXT_DESCRIBE_NSM],
    [{ kind: 'GetRandom' }, TEXT_GET_RANDOM],
    [{ kind: 'DescribePCR', index: 2 }, `a1 ${TEXT_DESCRIBE_PCR} a1 ${TEXT_INDEX} 02`],
    [{ kind: 'DescribePCR', index: 300 }, `a1 ${TEXT_DESCRIBE_PCR} a1 ${TEXT_INDEX} 19012c`],
    [
      { kind: 'Attestation', userData: null, nonce: null, publicKey: null },
      `a1 ${TEXT_ATTESTATION} a3 ${TEXT_USER_DATA} f6 ${TEXT_NONCE} f6 ${TEXT_PUBLIC_KEY} f6`,
    ],
    [
      { kind: 'Attestation', userData: hex('aa'), nonce: hex('0102'), publicKey: hex('') },
      `a1 ${TEXT_ATTESTATION} a3 ${TEXT_USER_DATA} 41aa ${TEXT_NONCE} 420102 ${TEXT_PUBLIC_KEY} 40`,
    ],
  ];
  for (const [request, expected] of cases) {
    assert.equal(toHex(encodeNsmRequest(request)), toHex(hex(expected)), request.kind);
  }
});

test('a request larger than 0x1000 bytes is refused before it reaches the device', () => {
  const big = new Uint8Array(NSM_REQUEST_MAX_BYTES);
  assert.throws(
    () => encodeNsmRequest({ kind: 'Attestation', userData: big, nonce: null, publicKey: null }),
    (e: unknown) => e instanceof NsmDeviceError && e.code === 'nsm_request_too_large',
  );
  const fits = encodeNsmRequest({ kind: 'Attestation', userData: new Uint8Array(NSM_REQUEST_MAX_BYTES - 60), nonce: null, publicKey: null });
  assert.ok(fits.length <= NSM_REQUEST_MAX_BYTES, 'the request fits the NSM limit');
});

test('our own misuse (PCR index outside u16, unknown request) is a TypeError', () => {
  for (const index of [-1, 65536, 1.5]) assert.throws(() => encodeNsmRequest({ kind: 'DescribePCR', index }), TypeError);
  assert.throws(() => encodeNsmRequest({ kind: 'ExtendPCR' } as unknown as NsmRequest), TypeError);
});

test('every NSM response shape decodes', () => {
  assert.deepEqual(decodeNsmResponse(hex(`a1 ${TEXT_ATTESTATION} a1 ${TEXT_DOCUMENT} 43 d28443`)), {
    kind: 'Attestation',
    document: hex('d28443'),
  });
  assert.deepEqual(
    decodeNsmResponse(
      encodeCbor({
        DescribeNSM: {
          version_major: 1,
          version_minor: 0,
          version_patch: 3,
          module_id: 'i-0123-enc0123',
          max_pcrs: 32,
          locked_pcrs: [0, 1, 2, 3, 4, 8],
          digest: 'SHA384',
        },
      }),
    ),
    {
      kind: 'DescribeNSM',
      versionMajor: 1,
      versionMinor: 0,
      versionPatch: 3,
      moduleId: 'i-0123-enc0123',
      maxPcrs: 32,
      lockedPcrs: [0, 1, 2, 3, 4, 8],
      digest: 'SHA384',
    },
  );
  const pcr = new Uint8Array(48).fill(7);
  assert.deepEqual(decodeNsmResponse(encodeCbor({ DescribePCR: { lock: true, data: pcr } })), { kind: 'DescribePCR', lock: true, data: pcr });
  assert.deepEqual(decodeNsmResponse(encodeCbor({ ExtendPCR: { data: pcr } })), { kind: 'ExtendPCR', data: pcr });
  assert.deepEqual(decodeNsmResponse(encodeCbor({ GetRandom: { random: hex('0001ff') } })), { kind: 'GetRandom', random: hex('0001ff') });
  // A unit variant is a bare text string.
  assert.deepEqual(decodeNsmResponse(hex('67 4c6f636b504352')), { kind: 'LockPCR' });
  assert.deepEqual(decodeNsmResponse(encodeCbor('LockPCRs')), { kind: 'LockPCRs' });
  // Indefinite-length map and byte string, as other CBOR writers may produce.
  assert.deepEqual(decodeNsmResponse(hex(`bf ${TEXT_ATTESTATION} bf ${TEXT_DOCUMENT} 5f 4101 4102 ff ff ff`)), {
    kind: 'Attestation',
    document: hex('0102'),
  });
});

test('every NSM error code decodes, and expectResponse turns it into a coded nsm_error', () => {
  for (const code of NSM_ERROR_CODES) {
    const response = decodeNsmResponse(encodeCbor({ Error: code }));
    assert.deepEqual(response, { kind: 'Error', code });
    assert.throws(
      () => expectResponse(response, 'Attestation'),
      (e: unknown) => e instanceof NsmDeviceError && e.code === 'nsm_error' && e.detail.nsmCode === code && e.message.includes(code),
    );
  }
  // Hand-checked: {"Error": "InvalidArgument"}.
  assert.deepEqual(decodeNsmResponse(hex('a1 654572726f72 6f 496e76616c6964417267756d656e74')), { kind: 'Error', code: 'InvalidArgument' });
});

test('malformed or unknown NSM responses are nsm_bad_response, never an exception of another kind', () => {
  const cases: Uint8Array[] = [
    hex(''),
    hex('ff'),
    hex('a1'), // truncated
    hex('f6'), // null
    encodeCbor('DescribeNSM'), // a unit text that is not a unit response
    encodeCbor({}),
    encodeCbor({ Attestation: { document: hex('01') }, GetRandom: { random: hex('01') } }),
    encodeCbor({ Attestation: { document: 'text' } }),
    encodeCbor({ Attestation: {} }),
    encodeCbor({ Attestation: 'document' }),
    encodeCbor({ DescribePCR: { lock: 1, data: hex('00') } }),
    encodeCbor({ DescribeNSM: { version_major: 1, version_minor: 0, version_patch: 0, module_id: 'm', max_pcrs: 32, locked_pcrs: [70000], digest: 'SHA384' } }),
    encodeCbor({ DescribeNSM: { version_major: 1, version_minor: 0, version_patch: 0, module_id: 'm', max_pcrs: 32, locked_pcrs: [], digest: 'MD5' } }),
    encodeCbor({ DescribeNSM: { version_major: 1, version_minor: 0, version_patch: 0, module_id: 7, max_pcrs: 32, locked_pcrs: [], digest: 'SHA384' } }),
    encodeCbor({ Error: 'NoSuchError' }),
    encodeCbor({ Unknown: {} }),
    encodeCbor(new Map([[1, 'x']])),
  ];
  for (const bytes of cases) {
    assert.throws(
      () => decodeNsmResponse(bytes),
      (e: unknown) => e instanceof NsmDeviceError && e.code === 'nsm_bad_response',
      toHex(bytes),
    );
  }
  assert.throws(
    () => expectResponse({ kind: 'GetRandom', random: hex('00') }, 'Attestation'),
    (e: unknown) => e instanceof NsmDeviceError && e.code === 'nsm_bad_response',
  );
});

test('the ioctl is _IOWR(0x0A, 0, 32) = 0xC0200A00 and struct nsm_raw is four little-endian u64', () => {
  assert.equal(NSM_IOCTL_REQUEST, 0xc0200a00);
  assert.equal(ioctlReadWrite(0x0a, 0, NSM_RAW_BYTES), 0xc0200a00);
  assert.equal(ioctlReadWrite(0x0a, 1, 16), 0xc0100a01);
  const raw = encodeNsmRaw(0x1122334455667788n, 0x10, 0xaabbccdd00112233n, 0x3000);
  assert.equal(
    toHex(raw),
    '8877665544332211' + '1000000000000000' + '33221100ddccbbaa' + '0030000000000000',
  );
  assert.equal(responseLengthOf(raw), 0x3000);
  const shorter = encodeNsmRaw(1n, 1, 2n, 0x123);
  assert.equal(responseLengthOf(shorter.subarray(0)), 0x123);
  assert.throws(() => responseLengthOf(encodeNsmRaw(1n, 1, 2n, 0x3001)), (e: unknown) => e instanceof NsmDeviceError && e.code === 'nsm_bad_response');
});

test('NsmDevice sends the encoded request and returns the attestation document', async () => {
  const sent: string[] = [];
  let released = 0;
  const device = new NsmDevice(
    (request) => {
      sent.push(toHex(request));
      return encodeCbor({ Attestation: { document: hex('d2840102') } });
    },
    async () => {
      released++;
    },
  );
  const doc = await device.attestation({ userData: null, nonce: hex('0102'), publicKey: null });
  assert.equal(toHex(doc), 'd2840102');
  assert.deepEqual(sent, [toHex(hex(`a1 ${TEXT_ATTESTATION} a3 ${TEXT_USER_DATA} f6 ${TEXT_NONCE} 420102 ${TEXT_PUBLIC_KEY} f6`))]);
  await device.close();
  await device.close();
  assert.equal(released, 1);
  await assert.rejects(device.attestation({ userData: null, nonce: null, publicKey: null }), TypeError);
});

test('NsmDevice answers DescribeNSM, DescribePCR and GetRandom, and reports an NSM error by code', async () => {
  const answers = new Map<string, Uint8Array>([
    [toHex(encodeNsmRequest({ kind: 'DescribeNSM' })), encodeCbor({ DescribeNSM: { version_major: 1, version_minor: 0, version_patch: 0, module_id: 'm', max_pcrs: 32, locked_pcrs: [], digest: 'SHA384' } })],
    [toHex(encodeNsmRequest({ kind: 'DescribePCR', index: 0 })), encodeCbor({ DescribePCR: { lock: true, data: new Uint8Array(48) } })],
    [toHex(encodeNsmRequest({ kind: 'DescribePCR', index: 99 })), encodeCbor({ Error: 'InvalidIndex' })],
    [toHex(encodeNsmRequest({ kind: 'GetRandom' })), encodeCbor({ GetRandom: { random: new Uint8Array(32).fill(1) } })],
  ]);
  const device = new NsmDevice((request) => answers.get(toHex(request))!);
  assert.equal((await device.describeNsm()).maxPcrs, 32);
  assert.deepEqual(await device.describePcr(0), { kind: 'DescribePCR', lock: true, data: new Uint8Array(48) });
  assert.deepEqual(await device.getRandom(), new Uint8Array(32).fill(1));
  await assert.rejects(device.describePcr(99), (e: unknown) => e instanceof NsmDeviceError && e.code === 'nsm_error' && e.detail.nsmCode === 'InvalidIndex');
  await device.close();
});

test('an absent /dev/nsm is a clean nsm_unavailable error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dip-nsm-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await assert.rejects(openNsmDevice(join(dir, 'nsm')), (e: unknown) => {
    assert.ok(e instanceof NsmDeviceError, 'an NsmDeviceError');
    assert.equal(e.code, 'nsm_unavailable');
    assert.equal(e.detail.errno, 'ENOENT');
    assert.ok(!e.message.includes(dir), 'the error names no path');
    return true;
  });
});

test('a file that is not the NSM fails the ioctl cleanly (ENOTTY) and is closed again', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dip-nsm-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'not-nsm');
  writeFileSync(path, 'not a device');
  await assert.rejects(openNsmDevice(path), (e: unknown) => {
    assert.ok(e instanceof NsmDeviceError, 'an NsmDeviceError');
    assert.equal(e.code, 'nsm_ioctl_failed');
    assert.equal(e.detail.errno, 'ENOTTY');
    return true;
  });
});

test('the ioctl transport refuses an oversized request without calling the device', () => {
  const transport = ioctlTransport(-1);
  assert.throws(() => transport(new Uint8Array(NSM_REQUEST_MAX_BYTES + 1)), (e: unknown) => e instanceof NsmDeviceError && e.code === 'nsm_request_too_large');
  // A bad descriptor reaches the kernel and comes back as EBADF, still a coded error.
  assert.throws(() => transport(encodeNsmRequest({ kind: 'GetRandom' })), (e: unknown) => e instanceof NsmDeviceError && e.detail.errno === 'EBADF');
});
