// Issues 6.3 and 14: the committed pcr-manifest.json parses against its schema, is what the
// Docker-free build of its commit measures (bundle, every input's hash, PCR2), holds no PCR value
// that no build measured, and write/verify refuse what they must (disagreeing or unpinned Docker
// measurements, a manifest that differs from the rebuild).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildBundle } from '../build-bundle.js';
import { describeEif } from '../eif.js';
import { PENDING_WITHOUT_BLOBS } from '../eif-build.js';
import {
  DOCKER_SOURCE,
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

test('PCR2 is measured; a pending PCR is null with its reason; the schema refuses invented or malformed values', () => {
  assert.match(committed.pcrs.PCR2, /^[0-9a-f]{96}$/);
  for (const k of ['PCR0', 'PCR1'] as const) {
    if (committed.pcrs[k] === null) assert.equal(committed.pcrs.pending[k], PENDING_WITHOUT_BLOBS, `${k} says why it is pending`);
    else assert.equal(committed.pcrs.pending[k], undefined, `${k} is measured, so not pending`);
  }
  if (committed.pcrs.PCR1 !== null) assert.ok(committed.native.blobs !== null, 'a measured PCR1 names the blobs it measured');
  if (committed.docker.pcrs !== null) assert.deepEqual(committed.docker.unpinned, [], 'Docker measurements need every Docker input pinned');
  const onlyPcr2 = { source: 's', PCR0: null, PCR1: null, PCR2: HEX('c'), pending: { PCR0: 'r', PCR1: 'r' } };
  const variants: [string, unknown][] = [
    ['PCR0 measured while PCR1 is pending', { ...committed, pcrs: { ...onlyPcr2, PCR0: HEX('a'), pending: { PCR1: 'r' } } }],
    ['no PCR2', { ...committed, pcrs: { ...onlyPcr2, PCR2: null } }],
    ['a pending PCR without its reason', { ...committed, pcrs: { ...onlyPcr2, pending: { PCR1: 'r' } } }],
    ['a reason for a measured PCR', { ...committed, pcrs: { source: 's', PCR0: HEX('a'), PCR1: HEX('b'), PCR2: HEX('c'), pending: { PCR0: 'r' } } }],
    ['a PCR that is not 48 bytes of hex', { ...committed, pcrs: { ...onlyPcr2, PCR2: 'ab' } }],
    ['a PCR in upper case', { ...committed, pcrs: { ...onlyPcr2, PCR2: HEX('C') } }],
    ['an unknown top-level field', { ...committed, extra: 1 }],
    ['a short commit', { ...committed, commit: 'abc' }],
    ['the older format', { ...committed, format: 'dip-pcr-manifest/1' }],
    ['a rootfs file without its hash', { ...committed, native: { ...committed.native, rootfs: [{ path: '/x', mode: '0644', bytes: 1, source: 's' }] } }],
    ['Docker PCRs without a source', { ...committed, docker: { ...committed.docker, pcrs: { PCR0: HEX('a'), PCR1: HEX('b'), PCR2: HEX('c') } } }],
  ];
  for (const [what, manifest] of variants) assert.notDeepEqual(validateSchema(schema, manifest), [], what);
  const accepted: [string, unknown][] = [
    ['PCR2 only', { ...committed, pcrs: onlyPcr2 }],
    ['PCR1 and PCR2, PCR0 pending', { ...committed, pcrs: { source: 's', PCR0: null, PCR1: HEX('b'), PCR2: HEX('c'), pending: { PCR0: 'r' } } }],
    ['all three', { ...committed, pcrs: { source: 's', PCR0: HEX('a'), PCR1: HEX('b'), PCR2: HEX('c'), pending: {} } }],
    ['Docker measurements', { ...committed, docker: { ...committed.docker, nitroCli: { version: '1.4.2', blobs: [{ name: 'bzImage', sha384: HEX('e') }] }, pcrs: { source: 's', PCR0: HEX('a'), PCR1: HEX('b'), PCR2: HEX('c'), PCR8: HEX('d') } } }],
  ];
  for (const [what, manifest] of accepted) assert.deepEqual(validateSchema(schema, manifest), [], what);
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
  changed['pcrs']!['PCR2'] = HEX('1');
  const lines = diffManifests(committed, changed);
  assert.ok(lines.some((l) => l.startsWith('bundle.sha384: ')), 'the bundle hash change is listed');
  assert.ok(lines.some((l) => l.startsWith(`pcrs.PCR2: "${committed.pcrs.PCR2}" → "${HEX('1')}"`)), 'the PCR2 change is listed');
});

test("Docker measurements are recorded only when our EIF reader agrees with nitro-cli, and never from unpinned inputs", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dip-manifest-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const eifPath = join(dir, 'x.eif');
  writeFileSync(eifPath, writeEif([{ type: 1, data: text('k') }, { type: 2, data: text('c') }, { type: 3, data: text('r1') }, { type: 3, data: text('r2') }]));
  const ours = describeEif(eifPath).pcrs;
  const measurements = JSON.stringify({ Measurements: { HashAlgorithm: 'Sha384 { ... }', ...ours } });
  const measured = await buildManifest(ROOT, committed.commit, { measurements, eifPath });
  assert.deepEqual(measured.docker.pcrs, { source: DOCKER_SOURCE, ...ours });
  assert.deepEqual(measured.pcrs, committed.pcrs, 'the PCRs clients pin stay the Docker-free build\'s');
  assert.deepEqual(validateSchema(schema, measured), []);

  const wrong = JSON.stringify({ Measurements: { ...ours, PCR2: HEX('0') } });
  await assert.rejects(buildManifest(ROOT, committed.commit, { measurements: wrong, eifPath }), /disagree on PCR2/);
  await assert.rejects(buildManifest(ROOT, committed.commit, { imageBundle: new Uint8Array([1]) }), /bundle inside the image differs/);

  if (committed.docker.unpinned.length > 0) {
    const measurementsFile = join(dir, 'm.json');
    writeFileSync(measurementsFile, measurements);
    await assert.rejects(
      runManifestCli(['write', '--manifest', join(dir, 'out.json'), '--commit', committed.commit, '--measurements', measurementsFile, '--eif', eifPath], ROOT, () => {}),
      /unpinned inputs/,
    );
  }
});

test('verify rebuilds the committed manifest from its commit without Docker: every field and PCR2 match', async () => {
  let out = '';
  const code = await runManifestCli(['verify'], ROOT, (s) => (out += s));
  assert.doesNotMatch(out, /DIFFERENT/);
  assert.equal(code, 0, out);
  assert.match(out, new RegExp(`^PCR2 ${committed.pcrs.PCR2}$`, 'm'));
  if (committed.pcrs.PCR0 === null) assert.match(out, /^PCR0 pending: needs AWS's kernel blob/m);
  let usage = '';
  assert.equal(await runManifestCli(['frobnicate'], ROOT, (s) => (usage += s)), 2);
  assert.match(usage, /usage: pcr-manifest\.ts write\|verify/);
});

test('verify names a manifest field that the rebuild does not reproduce, and exits 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dip-manifest-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tampered = structuredClone(committed);
  tampered.pcrs.PCR2 = HEX('0');
  const file = join(dir, 'pcr-manifest.json');
  writeFileSync(file, JSON.stringify(tampered));
  let out = '';
  assert.equal(await runManifestCli(['verify', '--manifest', file], ROOT, (s) => (out += s)), 1);
  assert.match(out, new RegExp(`^DIFFERENT pcrs\\.PCR2: "${HEX('0')}" → "${committed.pcrs.PCR2}"$`, 'm'));
  assert.doesNotMatch(out, /^OK/m);
});

const pcr1Pending = committed.pcrs.PCR1 === null;
test('verify --blobs on a manifest with PCR0 and PCR1 pending prints them beside it, compares the rest, and exits 0', { skip: !pcr1Pending && 'the manifest has PCR1 measured' }, async (t) => {
  // STAND-IN blobs written here, not AWS's: the printed PCR0/PCR1 only show the path works.
  const blobs = mkdtempSync(join(tmpdir(), 'dip-standin-blobs-'));
  t.after(() => rmSync(blobs, { recursive: true, force: true }));
  for (const name of ['bzImage', 'cmdline', 'init', 'nsm.ko']) writeFileSync(join(blobs, name), `STAND-IN ${name}, not an AWS blob\n`);
  let out = '';
  assert.equal(await runManifestCli(['verify', '--blobs', blobs], ROOT, (s) => (out += s)), 0, out);
  assert.doesNotMatch(out, /DIFFERENT/);
  assert.match(out, /^PCR0 [0-9a-f]{96} \(measured here with --blobs; pending in the manifest, not compared\)$/m);
  assert.match(out, /^PCR1 [0-9a-f]{96} \(measured here with --blobs; pending in the manifest, not compared\)$/m);
  assert.match(out, new RegExp(`^PCR2 ${committed.pcrs.PCR2}$`, 'm'));
});
