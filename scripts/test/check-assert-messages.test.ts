// scripts/check-assert-messages.ts: every assert.ok / assert(...) in a test or test support file
// carries a message, so a failure names what broke instead of hanging until the file's timeout.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkAssertMessages, findMissingMessages, testFiles } from '../check-assert-messages.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const lines = (text: string): number[] => findMissingMessages('x.test.ts', text).map((m) => m.line);

test('finds assert.ok(x) and assert(x) without a message, under any local name of node:assert', () => {
  const text = [
    "import assert from 'node:assert/strict';",
    "import * as a2 from 'node:assert';",
    "import { ok, strict as s } from 'node:assert';",
    'assert.ok(x);',
    'assert(x);',
    'a2.ok(y);',
    'ok(z);',
    's(z);',
    'assert.ok();',
  ].join('\n');
  assert.deepEqual(lines(text), [4, 5, 6, 7, 8, 9], 'each message-less call is found by line');
});

test('accepts calls with a message, spread arguments, other assert methods and unrelated ok()', () => {
  const text = [
    "import assert from 'node:assert/strict';",
    "assert.ok(x, 'why');",
    "assert(x, 'why');",
    'assert.ok(...args);',
    'assert.equal(a, b);',
    'other.ok(x);',
    'ok(x);',
  ].join('\n');
  assert.deepEqual(lines(text), [], 'nothing to report');
});

test('looks at every test file and test support file of the repository', () => {
  const files = testFiles(ROOT);
  for (const file of ['test/support/secrets.ts', 'test/privacy.test.ts', 'parent/test/fake-enclave.ts', 'scripts/test/check-assert-messages.test.ts']) {
    assert.ok(files.includes(file), `${file} is checked`);
  }
  assert.ok(!files.includes('scripts/check-assert-messages.ts'), 'production scripts are not test files');
});

test('every assert.ok and assert(...) in the repository\'s tests carries a message', () => {
  const missing = checkAssertMessages(ROOT).map((m) => `${m.file}:${m.line} ${m.call}`);
  assert.deepEqual(missing, [], 'add a short message saying what the assertion checks');
});
