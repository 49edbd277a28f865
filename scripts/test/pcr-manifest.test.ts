// Issue 6.3, what this machine can check: the committed pcr-manifest.json parses against its
// schema, its bundle hash is the bundle built from its commit, it holds no PCR value that no
// build measured, and write/verify refuse what they must (disagreeing or unpinned measurements).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildBundle } from '../build-bundle.js';
import { describeEif } from '../eif.js';
import {
  MANIFEST_FORMAT,
  buildManifest,
  diffManifests,
  dockerfileArgs,
  parseBuilderInfo,
  parseMeasurements,
  pinnedInputs,
  runManifestCli,
  validateSchema,
  withCheckout,
  type PcrManifest,
} from '../pcr-manifest.js';
import { text, writeEif } from './eif-writer.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const schema = JSON.parse(readFileSync(join(ROOT, 'pcr-manifest.schema.json'), 'utf8')) as Parameters<typeof validateSchema>[0];
const committed = JSON.parse(readFileSync(join(ROOT, 'pcr-manifest.json'), 'utf8')) as PcrManifest;
const HEX = (c: string): string => c.repeat(96);

test('pcr-manifest.json parses against pcr-manifest.schema.json', () => {
  assert.deepEqual(validateSchema(schema, committed), []);
  assert.equal(committed.format, MANIFEST_FORMAT);
});

test("the manifest's bundle hash equals the bundle built from the manifest's commit", async () => {
  const rebuilt = await withCheckout(ROOT, committed.commit, (dir) => buildBundle(dir));
  assert.equal(rebuilt.sha384, committed.bundle.sha384);
  assert.equal(rebuilt.bytes, committed.bundle.bytes);
  assert.deepEqual(rebuilt.trustFiles, committed.trustFiles);
});

test('a pending manifest holds no PCR value, and the schema refuses invented or malformed ones', () => {
  if (committed.pcrs.status === 'pending') {
    assert.deepEqual([committed.pcrs.PCR0, committed.pcrs.PCR1, committed.pcrs.PCR2], [null, null, null]);
    assert.match(committed.pcrs.reason, /Docker host/);
  } else {
    assert.deepEqual(committed.inputs.unpinned, [], 'measured PCRs need every input pinned');
  }
  const pending = { status: 'pending', reason: 'r', PCR0: null, PCR1: null, PCR2: null };
  const variants: [string, unknown][] = [
    ['a pending manifest with a PCR value', { ...committed, pcrs: { ...pending, PCR0: HEX('a') } }],
    ['a measured manifest without values', { ...committed, pcrs: { status: 'measured', source: 's', PCR0: null, PCR1: null, PCR2: null } }],
    ['a PCR that is not 48 bytes of hex', { ...committed, pcrs: { status: 'measured', source: 's', PCR0: 'ab', PCR1: HEX('b'), PCR2: HEX('c') } }],
    ['an unknown top-level field', { ...committed, extra: 1 }],
    ['a short commit', { ...committed, commit: 'abc' }],
    ['another format', { ...committed, format: 'dip-pcr-manifest/2' }],
    ['a bundle hash in upper case', { ...committed, bundle: { ...committed.bundle, sha384: HEX('A') } }],
  ];
  for (const [what, manifest] of variants) assert.notDeepEqual(validateSchema(schema, manifest), [], what);
  assert.deepEqual(validateSchema(schema, { ...committed, pcrs: { status: 'measured', source: 's', PCR0: HEX('a'), PCR1: HEX('b'), PCR2: HEX('c'), PCR8: HEX('d') } }), []);
  assert.deepEqual(validateSchema(schema, { ...committed, nitroCli: { version: '1.4.2', blobs: [{ name: 'bzImage', sha384: HEX('e') }] } }), []);
});

test('nitro-cli Measurements, builder info and Dockerfile pins are parsed strictly', () => {
  const m = { Measurements: { HashAlgorithm: 'Sha384 { ... }', PCR0: HEX('a'), PCR1: HEX('b'), PCR2: HEX('c') } };
  assert.deepEqual(parseMeasurements(JSON.stringify(m)), { PCR0: HEX('a'), PCR1: HEX('b'), PCR2: HEX('c') });
  assert.equal(parseMeasurements(JSON.stringify({ Measurements: { ...m.Measurements, PCR8: HEX('d') } })).PCR8, HEX('d'));
  assert.deepEqual(parseMeasurements(`Start building the Enclave Image...\nEnclave Image successfully created.\n${JSON.stringify(m, null, 2)}\n`).PCR2, HEX('c'));
  assert.throws(() => parseMeasurements('{}'), /no "Measurements"/);
  assert.throws(() => parseMeasurements(JSON.stringify({ Measurements: { ...m.Measurements, PCR1: 'zz' } })), /PCR1/);
  const info = parseBuilderInfo(`Nitro CLI 9.9.9\n${HEX('1')}  /usr/share/nitro_enclaves/blobs/init\n${HEX('2')}  /usr/share/nitro_enclaves/blobs/bzImage\n`);
  assert.deepEqual(info, { version: '9.9.9', blobs: [{ name: 'bzImage', sha384: HEX('2') }, { name: 'init', sha384: HEX('1') }] });
  assert.throws(() => parseBuilderInfo(HEX('1') + '  x'), /Nitro CLI/);
  assert.throws(() => parseBuilderInfo('Nitro CLI 1'), /blob/);
  const digest = 'f'.repeat(64);
  assert.deepEqual(dockerfileArgs(`ARG A_IMAGE=x@sha256:${digest}\nFROM x\n  ARG B=1 \nARG C\n`), { A_IMAGE: `x@sha256:${digest}`, B: '1' });
  assert.deepEqual(pinnedInputs([`ARG A_IMAGE=x@sha256:${digest}\nARG B_IMAGE=y:latest\nARG V=PIN-ME\nARG W=2`]), {
    baseImages: { A_IMAGE: `x@sha256:${digest}`, B_IMAGE: 'y:latest' },
    buildArgs: { V: 'PIN-ME', W: '2' },
    unpinned: ['B_IMAGE', 'V'],
  });
});

test('diffManifests names every differing field by its path', () => {
  assert.deepEqual(diffManifests(committed, structuredClone(committed)), []);
  const changed = structuredClone(committed) as unknown as Record<string, Record<string, unknown>>;
  changed['bundle']!['sha384'] = HEX('0');
  changed['pcrs'] = { status: 'measured', PCR0: HEX('1') };
  const lines = diffManifests(committed, changed);
  assert.ok(lines.some((l) => l.startsWith('bundle.sha384: ')), 'the bundle hash change is listed');
  assert.ok(lines.some((l) => l.startsWith('pcrs.PCR0: null → ')), 'the PCR0 change is listed');
  assert.ok(lines.some((l) => l.startsWith('pcrs.status: "pending" → "measured"')), 'the status change is listed');
});

test('measurements are recorded only when our EIF reader agrees with nitro-cli, and never from unpinned inputs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dip-manifest-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const eifPath = join(dir, 'x.eif');
  writeFileSync(eifPath, writeEif([{ type: 1, data: text('k') }, { type: 2, data: text('c') }, { type: 3, data: text('r1') }, { type: 3, data: text('r2') }]));
  const ours = describeEif(eifPath).pcrs;
  const measurements = JSON.stringify({ Measurements: { HashAlgorithm: 'Sha384 { ... }', ...ours } });
  const measured = await buildManifest(ROOT, committed.commit, { measurements, eifPath });
  assert.deepEqual(measured.pcrs, { status: 'measured', source: 'nitro-cli build-enclave, cross-checked by dip-eif describe', ...ours });
  assert.deepEqual(validateSchema(schema, measured), []);

  const wrong = JSON.stringify({ Measurements: { ...ours, PCR2: HEX('0') } });
  await assert.rejects(buildManifest(ROOT, committed.commit, { measurements: wrong, eifPath }), /disagree on PCR2/);
  await assert.rejects(buildManifest(ROOT, committed.commit, { measurements }), /need the EIF/);
  await assert.rejects(buildManifest(ROOT, committed.commit, { imageBundle: new Uint8Array([1]) }), /bundle inside the image differs/);

  if (committed.inputs.unpinned.length > 0) {
    const measurementsFile = join(dir, 'm.json');
    writeFileSync(measurementsFile, measurements);
    await assert.rejects(
      runManifestCli(['write', '--manifest', join(dir, 'out.json'), '--commit', committed.commit, '--measurements', measurementsFile, '--eif', eifPath], ROOT, () => {}),
      /unpinned inputs/,
    );
  }
});

test('verify rebuilds the committed manifest and reports PCRs as not compared while they are pending', async () => {
  let out = '';
  const code = await runManifestCli(['verify'], ROOT, (s) => (out += s));
  assert.doesNotMatch(out, /DIFFERENT/);
  if (committed.pcrs.status === 'pending') {
    assert.equal(code, 2);
    assert.match(out, /PCRs not compared/);
  }
  let usage = '';
  assert.equal(await runManifestCli(['frobnicate'], ROOT, (s) => (usage += s)), 2);
  assert.match(usage, /usage: pcr-manifest\.ts write\|verify/);
});
