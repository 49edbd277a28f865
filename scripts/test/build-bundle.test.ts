// Issue 6.1: two builds of the same sources, in two checkouts at different paths (and lengths)
// and at different times, produce the same bundle, byte for byte, with no path of either
// checkout in it; and the production switch is baked in rather than read from the environment.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { BUNDLE_PATH, PARENT_BUNDLE_PATH, TRUST_FILES, buildBundle, buildParentBundle } from '../build-bundle.js';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** A copy of what `git` would check out (tracked and new, not ignored files), sharing node_modules. */
function checkout(parent: string): string {
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT })
    .toString('utf8')
    .split('\0')
    // Regular files only: a node_modules symlink (as in a git worktree) is not ignored by a
    // `node_modules/` pattern and would be listed here; it is linked below instead.
    .filter((f) => f.length > 0 && existsSync(join(ROOT, f)) && statSync(join(ROOT, f)).isFile());
  for (const file of files) {
    mkdirSync(dirname(join(parent, file)), { recursive: true });
    copyFileSync(join(ROOT, file), join(parent, file));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(parent, 'node_modules'));
  return parent;
}

const sha384 = (data: Uint8Array): string => createHash('sha384').update(data).digest('hex');

test('two builds in two checkouts at different paths and times give byte-identical bundles', async (t) => {
  if (!existsSync(join(ROOT, 'enclave/main.ts'))) {
    t.skip('enclave/main.ts does not exist yet: there is no enclave entry point to bundle');
    return;
  }
  const a = mkdtempSync(join(tmpdir(), 'dip-a-'));
  const bParent = mkdtempSync(join(tmpdir(), 'dip-bundle-reproducibility-second-checkout-'));
  t.after(() => {
    rmSync(a, { recursive: true, force: true });
    rmSync(bParent, { recursive: true, force: true });
  });
  const b = join(bParent, 'nested', 'deeper');
  mkdirSync(b, { recursive: true });
  checkout(a);
  checkout(b);

  const first = await buildBundle(a);
  // The second build runs in another process, another time zone and another clock reading.
  const child = spawnSync(process.execPath, ['--import', 'tsx', join(b, 'scripts/build-bundle.ts'), b], {
    cwd: b,
    env: { ...process.env, TZ: 'Pacific/Kiritimati', SOURCE_DATE_EPOCH: '1', LANG: 'C' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(child.status, 0, child.stderr);
  const second = JSON.parse(child.stdout) as { sha384: string; bytes: number; trustFiles: unknown };

  const bytesA = readFileSync(join(a, BUNDLE_PATH));
  const bytesB = readFileSync(join(b, BUNDLE_PATH));
  assert.equal(sha384(bytesA), first.sha384);
  assert.equal(sha384(bytesB), second.sha384);
  assert.equal(first.sha384, second.sha384, 'the two bundles differ');
  assert.ok(bytesA.equals(bytesB), 'two builds are byte-identical');
  assert.deepEqual(second.trustFiles, first.trustFiles);
  assert.deepEqual(first.trustFiles.map((f) => f.path), [...TRUST_FILES]);

  const text = bytesA.toString('utf8');
  for (const path of [a, b, bParent, ROOT, tmpdir() + '/dip-']) {
    assert.ok(!text.includes(path), `the bundle embeds the path ${path}`);
  }
  // The production switch is a constant in the bundle, not a read of the environment.
  assert.ok(!text.includes('process.env.DIP_BUILD'), 'DIP_BUILD is still read from the environment');
  // koffi/indirect: no require of every platform's native module.
  assert.ok(!text.includes('build/koffi/darwin_arm64/koffi.node'), 'every koffi native module is required');

  // Standalone, as in the image (no node_modules; koffi's one native module beside it), the
  // production bundle refuses the emulator whatever the environment says (issue 5.3).
  const app = join(a, 'image-app');
  const triplet = `${process.platform}_${process.arch}`;
  mkdirSync(join(app, 'koffi', triplet), { recursive: true });
  mkdirSync(join(app, 'enclave'), { recursive: true });
  copyFileSync(join(a, BUNDLE_PATH), join(app, 'enclave', 'enclave.mjs'));
  copyFileSync(join(ROOT, 'node_modules/koffi/build/koffi', triplet, 'koffi.node'), join(app, 'koffi', triplet, 'koffi.node'));
  const refused = spawnSync(process.execPath, [join(app, 'enclave', 'enclave.mjs'), '--listen', `unix:${join(a, 'e.sock')}`, '--dev', join(a, 'dev')], {
    cwd: app,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', DIP_BUILD: 'development' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(refused.status, 1, refused.stderr);
  assert.match(refused.stderr, /"reason":"dev_refused"/);
  process.stdout.write(`# bundle ${first.path}: ${first.bytes} bytes, sha384 ${first.sha384}\n`);
});

test('the parent bundle runs on plain Node, without a TypeScript loader', { timeout: 120_000 }, async () => {
  const built = await buildParentBundle(ROOT);
  assert.equal(built.path, PARENT_BUNDLE_PATH);
  const help = spawnSync(process.execPath, [join(ROOT, PARENT_BUNDLE_PATH), '--help'], { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '' } });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /--enclave/);
  assert.doesNotMatch(readFileSync(join(ROOT, PARENT_BUNDLE_PATH), 'utf8'), /from ['"]tsx/);
});
