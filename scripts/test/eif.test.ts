// The independent EIF PCR calculator (issue 6.4) against values computed outside this code
// (Python hashlib/zlib, see the comments), on EIFs from the test-only writer, and against
// truncated, corrupted and lying files, which must all be refused with a coded EifError.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { encodeCbor } from '../../protocol/cbor.js';
import { EifError, SECTION_TYPES, bytesSource, describeEif, describeEifSource, pcrOf, toNitroCliShape } from '../eif.js';
import { runEifCli } from '../eif-cli.js';
import { text, writeEif, type WriterSection } from './eif-writer.js';

const { kernel, cmdline, ramdisk, signature, metadata } = SECTION_TYPES;
const describe = (bytes: Uint8Array) => describeEifSource(bytesSource(bytes));
const isEifError = (code: string) => (e: unknown) => e instanceof EifError && e.code === code;

// python3: H=sha384; (H(b'\0'*48 + H(data))).hex()
const PCR_OF_EMPTY = '21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a';
const PCR0_K_C_R1_R2 = '555f1d9d026d216bb526429ff854dbec8713c438da0655a4cb23b4c6fda4a1e00d480bb4ae3db85a9e7e309025974323';
const PCR1_K_C_R1 = 'df1d84cc88f7af3a4a3d5f91ab4785f11a87ca2501d876e35a6187589594f270280d7b4a3c92b86675155c545d237faa';
const PCR2_R2 = 'a05551978c32c7b7705a8195e182add98906516f3e0106753cd11765685366bb9c94f05a5ef203b75283b12bf8294fe4';
// PCR of the DER of test/vectors/aws-nitro-root-g1.pem (base64 body decoded), same formula.
const PCR8_AWS_ROOT = 'df3a0511a411c6a5628d91a189a052d281dec8153ffecde6bdc1a059825c32e4bfb7fc95b367564a64812a8795af8f8a';

const AWS_ROOT_PEM = readFileSync(new URL('../../test/vectors/aws-nitro-root-g1.pem', import.meta.url));

function twoRamdisks(extra: WriterSection[] = [], meta = '{"ImageName":"dip"}'): WriterSection[] {
  return [
    { type: kernel, data: text('kernel-bytes') },
    { type: cmdline, data: text('console=ttyS0\0') },
    { type: metadata, data: text(meta) },
    { type: ramdisk, data: text('ramdisk-1') },
    { type: ramdisk, data: text('ramdisk-2') },
    ...extra,
  ];
}

/** Recomputes the CRC after a test has edited the header on purpose. */
function withFixedCrc(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes);
  const crc = crc32(out.subarray(548), crc32(out.subarray(0, 544)));
  new DataView(out.buffer).setUint32(544, crc);
  return out;
}

test('CRC-32 is CRC-32/ISO-HDLC (check value of "123456789" is cbf43926)', () => {
  assert.equal(crc32(text('123456789')), 0xcbf43926);
});

test('PCR2 of an EIF with one ramdisk is SHA-384(0^48 ‖ SHA-384("")) = 21b9efbc…', () => {
  const eif = describe(writeEif([
    { type: kernel, data: text('k') },
    { type: cmdline, data: text('c') },
    { type: ramdisk, data: text('r') },
  ]));
  assert.equal(eif.pcrs.PCR2, PCR_OF_EMPTY);
  assert.equal(pcrOf(new Uint8Array(0)), PCR_OF_EMPTY);
  assert.equal(eif.pcrs.PCR8, undefined);
  assert.equal(eif.signed, false);
});

test('PCR0 covers kernel, cmdline and all ramdisks; PCR1 the first ramdisk; PCR2 the rest; metadata none', () => {
  const bytes = writeEif(twoRamdisks());
  const eif = describe(bytes);
  assert.deepEqual(eif.pcrs, { PCR0: PCR0_K_C_R1_R2, PCR1: PCR1_K_C_R1, PCR2: PCR2_R2 });
  assert.deepEqual(eif.sections.map((s) => s.type), ['kernel', 'cmdline', 'metadata', 'ramdisk', 'ramdisk']);
  assert.equal(eif.sections[0]!.offset, 548);
  assert.deepEqual(eif.metadata, { ImageName: 'dip' });
  assert.equal(eif.arch, 'x86_64');
  assert.equal(eif.header.version, 4);
  // Other metadata (nitro-cli writes the build time there): same PCRs, different CRC.
  const other = describe(writeEif(twoRamdisks([], '{"BuildTime":"later"}')));
  assert.deepEqual(other.pcrs, eif.pcrs);
  assert.notEqual(other.crc32, eif.crc32);
  // Unparseable metadata is reported as null, not an error: it is measured by nothing.
  assert.equal(describe(writeEif(twoRamdisks([], 'not json'))).metadata, null);
});

test('PCR8 is the PCR of the signing certificate in DER, whether serde wrote it as an array or a byte string', () => {
  const asArray = encodeCbor([new Map<string, unknown>([['signing_certificate', Array.from(AWS_ROOT_PEM)], ['signature', [0xd2, 0x84]]])]);
  const signed = describe(writeEif(twoRamdisks([{ type: signature, data: asArray }])));
  assert.equal(signed.pcrs.PCR8, PCR8_AWS_ROOT);
  assert.equal(signed.signed, true);
  // The signature section is outside PCR0..2.
  assert.equal(signed.pcrs.PCR0, PCR0_K_C_R1_R2);
  const asBytes = encodeCbor([{ signing_certificate: new Uint8Array(AWS_ROOT_PEM), signature: new Uint8Array([1]) }]);
  assert.equal(describe(writeEif(twoRamdisks([{ type: signature, data: asBytes }]))).pcrs.PCR8, PCR8_AWS_ROOT);
});

test('a malformed signature section or certificate is refused', () => {
  const cases = [
    text('not cbor'),
    encodeCbor([]),
    encodeCbor([{ signature: [1] }]),
    encodeCbor([{ signing_certificate: [256, 1] }]),
    encodeCbor([{ signing_certificate: 'text' }]),
    encodeCbor([{ signing_certificate: Array.from(text('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')) }]),
  ];
  for (const data of cases) {
    assert.throws(() => describe(writeEif(twoRamdisks([{ type: signature, data }]))), isEifError('eif_bad_signature'));
  }
});

test('the aarch64 flag is reported', () => {
  assert.equal(describe(writeEif(twoRamdisks(), { flags: 1 })).arch, 'aarch64');
});

test('a CRC mismatch is refused, and every single flipped byte is caught', () => {
  const good = writeEif(twoRamdisks([{ type: signature, data: encodeCbor([{ signing_certificate: Array.from(AWS_ROOT_PEM) }]) }]));
  assert.throws(() => describe(writeEif(twoRamdisks(), { crc: 0x12345678 })), isEifError('eif_crc_mismatch'));
  for (let i = 0; i < good.length; i++) {
    const bad = new Uint8Array(good);
    bad[i] = bad[i]! ^ 0x01;
    assert.throws(() => describe(bad), (e: unknown) => e instanceof EifError, `byte ${i}`);
  }
  // Metadata and signature bytes are outside the PCRs but inside the CRC.
  const metaAt = describe(good).sections.find((s) => s.type === 'metadata')!.offset + 12;
  const flipped = new Uint8Array(good);
  flipped[metaAt] = flipped[metaAt]! ^ 0x20;
  assert.throws(() => describe(flipped), isEifError('eif_crc_mismatch'));
});

test('every truncation of an EIF is refused with a coded error', () => {
  const good = writeEif(twoRamdisks());
  for (let n = 0; n < good.length; n++) {
    assert.throws(() => describe(good.subarray(0, n)), (e: unknown) => e instanceof EifError && (e.code === 'eif_truncated' || e.code === 'eif_crc_mismatch' || e.code === 'eif_header_mismatch' || e.code === 'eif_layout'), `length ${n}`);
  }
  assert.throws(() => describe(good.subarray(0, 547)), isEifError('eif_truncated'));
  assert.throws(() => describe(good.subarray(0, 548 + 5)), isEifError('eif_truncated'));
  assert.throws(() => describe(good.subarray(0, 548 + 12 + 3)), isEifError('eif_truncated'));
});

test('a wrong magic, an invalid section type, an oversized section count and a lying section table are refused', () => {
  const good = writeEif(twoRamdisks());
  const badMagic = new Uint8Array(good);
  badMagic[0] = 0x2f;
  assert.throws(() => describe(badMagic), isEifError('eif_bad_magic'));
  assert.throws(() => describe(writeEif([{ type: 0, data: text('x') }])), isEifError('eif_bad_section'));
  assert.throws(() => describe(writeEif([{ type: 6, data: text('x') }])), isEifError('eif_bad_section'));
  const tooMany = new Uint8Array(good);
  new DataView(tooMany.buffer).setUint16(26, 33);
  assert.throws(() => describe(withFixedCrc(tooMany)), isEifError('eif_bad_header'));
  const wrongCount = new Uint8Array(good);
  new DataView(wrongCount.buffer).setUint16(26, 4);
  assert.throws(() => describe(withFixedCrc(wrongCount)), isEifError('eif_header_mismatch'));
  const wrongOffset = new Uint8Array(good);
  new DataView(wrongOffset.buffer).setBigUint64(28 + 8, 600n);
  assert.throws(() => describe(withFixedCrc(wrongOffset)), isEifError('eif_header_mismatch'));
  const strayEntry = new Uint8Array(good);
  new DataView(strayEntry.buffer).setBigUint64(284 + 8 * 10, 1n);
  assert.throws(() => describe(withFixedCrc(strayEntry)), isEifError('eif_header_mismatch'));
});

test('an EIF without exactly one kernel and cmdline and at least one ramdisk is refused', () => {
  const k = { type: kernel, data: text('k') };
  const c = { type: cmdline, data: text('c') };
  const r = { type: ramdisk, data: text('r') };
  for (const sections of [[c, r], [k, r], [k, c], [k, k, c, r], [k, c, r, { type: metadata, data: text('{}') }, { type: metadata, data: text('{}') }]]) {
    assert.throws(() => describe(writeEif(sections)), isEifError('eif_layout'));
  }
});

test('describeEif reads a file in chunks and matches the in-memory result; a missing file is eif_unreadable', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dip-eif-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const big = new Uint8Array(1_500_000).map((_, i) => i % 251);
  const sections = [
    { type: kernel, data: text('kernel') },
    { type: cmdline, data: text('cmdline') },
    { type: ramdisk, data: text('init') },
    { type: ramdisk, data: big },
  ];
  const path = join(dir, 'big.eif');
  writeFileSync(path, writeEif(sections));
  const fromFile = describeEif(path);
  const inner = createHash('sha384').update(big).digest();
  assert.equal(fromFile.pcrs.PCR2, createHash('sha384').update(new Uint8Array(48)).update(inner).digest('hex'));
  assert.deepEqual(fromFile.pcrs, describe(writeEif(sections)).pcrs);
  assert.throws(() => describeEif(join(dir, 'missing.eif')), isEifError('eif_unreadable'));
  writeFileSync(join(dir, 'short.eif'), writeEif(sections).subarray(0, 1_000_000));
  assert.throws(() => describeEif(join(dir, 'short.eif')), isEifError('eif_truncated'));
});

test('dip-eif describe prints nitro-cli-shaped Measurements, and errors cleanly', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dip-eif-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'x.eif');
  writeFileSync(path, writeEif(twoRamdisks()));
  let out = '';
  let err = '';
  assert.equal(runEifCli(['describe', path], (s) => (out += s), (s) => (err += s)), 0);
  const printed = JSON.parse(out) as { Measurements: Record<string, string>; CheckCRC: boolean };
  assert.deepEqual(printed.Measurements, { HashAlgorithm: 'Sha384 { ... }', PCR0: PCR0_K_C_R1_R2, PCR1: PCR1_K_C_R1, PCR2: PCR2_R2 });
  assert.equal(printed.CheckCRC, true);
  assert.deepEqual(JSON.parse(JSON.stringify(toNitroCliShape(describeEif(path)))), printed);
  out = '';
  writeFileSync(path, 'garbage');
  assert.equal(runEifCli(['describe', path], (s) => (out += s), (s) => (err += s)), 1);
  assert.match(err, /dip-eif: the EIF file is truncated \(eif_truncated\)/);
  assert.equal(out, '');
  assert.equal(runEifCli(['frobnicate'], () => {}, (s) => (err += s)), 2);
  assert.match(err, /usage: dip-eif describe FILE\.eif/);
});
