// The documents a newcomer and an operator read stay true to the code: the parent's flag table
// lists exactly the settings parent/config.ts parses, with their environment names and defaults,
// the README keeps the two set-up commands and links that resolve, and docs/operations.md names
// only files, make targets and settings that exist, one EIF path, and a fresh AL2023 host's steps.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { OPTIONS, envName } from '../parent/config.js';

const root = new URL('../', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8');

test('docs/parent.md documents every parent setting with its flag, environment name and default', () => {
  const rows = read('docs/parent.md')
    .split('\n')
    .filter((line) => line.startsWith('| `--'))
    .map((line) => line.split('|').map((cell) => cell.trim()));
  const documented = new Map(rows.map((cells) => [cells[1]!.replace(/`/g, '').split(' ')[0]!, cells]));
  assert.deepEqual([...documented.keys()].sort(), OPTIONS.map((o) => `--${o.flag}`).sort());
  for (const option of OPTIONS) {
    const cells = documented.get(`--${option.flag}`)!;
    assert.equal(cells[2], `\`${envName(option)}\``, option.flag);
    const expectedDefault = option.default === null ? ['—', 'required'] : [`\`${option.default}\``];
    assert.ok(expectedDefault.includes(cells[3]!), `${option.flag}: documented default ${cells[3]}`);
  }
});

test('the README gives the two set-up commands and its relative links resolve', () => {
  const readme = read('README.md');
  assert.match(readme, /^make dev\b/m);
  assert.match(readme, /^make test\b/m);
  const links = [...readme.matchAll(/\]\(((?!https?:)[^)#]+)\)/g)].map((m) => m[1]!);
  assert.ok(links.length >= 4, 'the README links at least 4 local files');
  for (const link of links) assert.ok(existsSync(new URL(link, root)), link);
});

test('docs/operations.md names only files, make targets, parent settings and one EIF path that exist and agree', () => {
  const ops = read('docs/operations.md');
  // Repository paths it names exist.
  const paths = new Set([...ops.matchAll(/(?<![\w/.])((?:deploy|docs|scripts|parent|enclave)\/[\w./-]*\w)/g)].map((m) => m[1]!));
  assert.ok(paths.size >= 8, 'the paths were found');
  for (const path of paths) assert.ok(existsSync(new URL(path, root)), `${path} exists`);
  // Every `make X` is a target of the Makefile.
  const makefile = read('Makefile');
  const targets = new Set([...makefile.matchAll(/^([a-z][\w-]*):/gm)].map((m) => m[1]!));
  const named = new Set([...ops.matchAll(/(?:^|`|sudo |&& )make ([a-z][\w-]*)/gm)].map((m) => m[1]!));
  assert.ok(named.size >= 8, 'the make commands were found');
  for (const target of named) assert.ok(targets.has(target), `make ${target} is a Makefile target`);
  // Parent settings: every DIP_PARENT_* variable and parent flag it names is parsed by parent/config.ts.
  const envNames = new Set(OPTIONS.map(envName));
  for (const [name] of ops.matchAll(/DIP_PARENT_[A-Z_]+/g)) assert.ok(envNames.has(name), `${name} is a parent setting`);
  for (const flag of ['--metrics-listen', '--shutdown-grace-ms']) {
    assert.ok(ops.includes(flag), `${flag} is named`);
    assert.ok(OPTIONS.some((o) => `--${o.flag}` === flag), `${flag} is a parent flag`);
  }
  // One EIF path: the Makefile's EIF under /opt/dip, deploy/enclave.env's EIF_PATH and the docs.
  const makeEif = /^EIF \?= \$\(EIF_DIR\)\/(\S+)$/m.exec(makefile)![1]!;
  const eifDir = /^EIF_DIR \?= (\S+)$/m.exec(makefile)![1]!;
  const eif = `/opt/dip/${eifDir}/${makeEif}`;
  assert.equal(/^EIF_PATH=(.*)$/m.exec(read('deploy/enclave.env'))![1], eif, 'deploy/enclave.env uses the Makefile path');
  for (const [path] of ops.matchAll(/\/opt\/dip\/[\w./-]*\.eif\b/g)) assert.equal(path, eif, 'every absolute EIF path in the docs is the one path');
  for (const [path] of ops.matchAll(/(?<![\w/])build\/[\w./-]*\.eif\b/g)) assert.equal(path, `${eifDir}/${makeEif}`, 'every relative EIF path in the docs is the one path');
});

test('docs/operations.md can be followed on a fresh Amazon Linux 2023 host', () => {
  const ops = read('docs/operations.md');
  assert.match(ops, /--enclave-options Enabled=true/, 'launching with enclave support');
  assert.match(ops, /dnf install -y [^\n]*\bgit\b[^\n]*\bmake\b/, 'git and make are installed');
  assert.match(ops, /dnf install -y [^\n]*\bnodejs(20|22)\b/, "AL2023's Node package name");
  assert.doesNotMatch(ops, /dnf install[^\n]*\bnodejs(?![0-9])/, 'no unversioned nodejs (Node 18 on AL2023)');
  assert.ok(ops.indexOf('git clone') < ops.indexOf('sudo cp deploy/'), 'the clone comes before copying files from it');
  assert.match(ops, /nitro-cli console/, 'how to read a failing boot');
  assert.match(ops, /--debug-mode[\s\S]{0,400}all-zero PCRs|all-zero PCRs[\s\S]{0,400}--debug-mode/, 'debug mode has zero PCRs');
  // The allocator's vCPUs leave CPU 0 and its sibling to the host on the instance the docs name.
  const vcpus: Record<string, number> = { 'm5.xlarge': 4, 'm5.2xlarge': 8 };
  const instance = /--instance-type (\S+)/.exec(ops)![1]!;
  const allocated = Number(/^cpu_count:\s*(\d+)/m.exec(read('deploy/allocator.yaml'))![1]);
  assert.ok(vcpus[instance] !== undefined, `${instance} is a known instance type`);
  assert.ok(allocated <= vcpus[instance]! - 2, `${allocated} enclave vCPUs fit ${instance} with 2 left for the host`);
});
