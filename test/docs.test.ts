// The documents a newcomer and an operator read stay true to the code: the parent's flag table
// lists exactly the settings parent/config.ts parses, with their environment names and defaults,
// and the README keeps the two set-up commands and links that resolve.

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
