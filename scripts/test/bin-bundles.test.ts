// The committed `dip` and `dip-eif` bundles (issue 9.1): equal to a fresh build of their source,
// importing nothing but Node builtins and `dependencies`, and running as plain Node processes.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { builtinModules } from 'node:module';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { BIN_BUNDLES, buildBinBundles } from '../build-bundle.js';
import { DIP_VERSION } from '../../client/version.js';

const REPO = resolve(import.meta.dirname, '../..');
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  version: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
};
const built = await buildBinBundles(REPO);

/** Every module specifier a committed bundle imports: static `import … from`, bare `import "…"`, `import(…)`. */
function importsOf(source: string): string[] {
  const found = new Set<string>();
  for (const match of source.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)|\brequire\(\s*["']([^"']+)["']\s*\)/gm)) {
    found.add((match[1] ?? match[2] ?? match[3] ?? match[4])!);
  }
  return [...found];
}

function isAllowed(specifier: string): boolean {
  if (specifier.startsWith('node:')) return builtinModules.includes(specifier.slice(5));
  const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!;
  return Object.hasOwn(pkg.dependencies, name);
}

const run = promisify(execFile);
async function node(file: string, args: string[], cwd = REPO) {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(REPO, file), ...args], { cwd, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('the committed bin/ bundles', () => {
  it('package.json "bin" names exactly the bundles that build-bundle --bin makes', () => {
    assert.deepEqual(Object.values(pkg.bin).map((p) => p.replace(/^\.\//, '')).sort(), Object.values(BIN_BUNDLES).sort(), 'bin paths');
  });

  for (const { path, contents } of built) {
    it(`${path} equals a fresh build of its source (rebuild with npx tsx scripts/build-bundle.ts --bin)`, () => {
      assert.ok(Buffer.from(readFileSync(join(REPO, path))).equals(Buffer.from(contents)), `${path} has drifted from its source`);
    });

    it(`${path} imports nothing but Node builtins and packages in "dependencies"`, () => {
      const committed = importsOf(readFileSync(join(REPO, path), 'utf8'));
      assert.ok(committed.length > 0, 'the import scan finds the imports');
      assert.deepEqual(committed.filter((s) => !isAllowed(s)), [], `${path} imports something npm ci --omit=dev does not install`);
      const fromEsbuild = built.find((b) => b.path === path)!.imports;
      assert.deepEqual(fromEsbuild.filter((s) => !isAllowed(s)), [], 'esbuild\'s own list of external imports agrees');
      assert.deepEqual([...new Set(fromEsbuild)].sort(), committed.sort(), 'the scan sees what esbuild emitted');
    });
  }

  it('the builds are deterministic: a second build gives the same bytes', async () => {
    const again = await buildBinBundles(REPO);
    for (const [i, b] of again.entries()) assert.ok(Buffer.from(b.contents).equals(Buffer.from(built[i]!.contents)), b.path);
  });

  it('the version dip prints is package.json\'s', () => {
    assert.equal(DIP_VERSION, pkg.version, 'client/version.ts follows package.json');
  });
});

describe('the bundles as plain Node processes (no TypeScript loader)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dip-bin-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('dip --version prints the version and exits 0', async () => {
    const result = await node('bin/dip.js', ['--version']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `dip ${pkg.version}\n`, 'version line');
  });

  it('dip-eif --help prints the usage and exits 0', async () => {
    const result = await node('bin/dip-eif.js', ['--help']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Usage: dip-eif describe FILE\.eif/, 'usage on stdout');
  });

  it('dip-eif describe of a directory or a missing file is one coded line, exit 1, no stack trace', async () => {
    mkdirSync(join(dir, 'a-directory.eif'));
    for (const target of [join(dir, 'a-directory.eif'), join(dir, 'missing.eif')]) {
      const result = await node('bin/dip-eif.js', ['describe', target]);
      assert.equal(result.code, 1, target);
      assert.equal(result.stderr, 'dip-eif: the EIF file cannot be read (eif_unreadable)\n', 'one coded line');
      assert.equal(result.stdout, '', 'nothing on stdout');
    }
  });

  it('dip-eif with a wrong command or extra arguments is a usage error, exit 2', async () => {
    for (const args of [[], ['describe'], ['describe', 'a.eif', 'b.eif'], ['frobnicate']]) {
      const result = await node('bin/dip-eif.js', args);
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, /^dip-eif: usage: dip-eif describe FILE\.eif/, 'usage line');
    }
  });
});
