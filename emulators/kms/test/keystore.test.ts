// The emulator's key file (SPEC §8): made once with mode 0600 and no temporary left behind,
// read back unchanged, and a damaged one refused rather than replaced.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { KEY_FILE, KeyFileError, loadOrCreateKey } from '../keystore.js';

const fresh = (): string => mkdtempSync(join(tmpdir(), 'dip-kms-keys-'));

test('the first start makes a key file with mode 0600; later starts read the same key', () => {
  const dir = join(fresh(), 'nested');
  const first = loadOrCreateKey(dir);
  assert.equal(first.created, true, 'made');
  assert.equal(statSync(join(dir, KEY_FILE)).mode & 0o777, 0o600, 'owner-only');
  assert.deepEqual(readdirSync(dir), [KEY_FILE], 'no temporary file is left');
  const second = loadOrCreateKey(dir);
  assert.equal(second.created, false, 'read, not made');
  assert.deepEqual(second.key, first.key, 'the same key');
  assert.equal(first.key.keyState, 'Enabled', 'a new key is enabled');
});

test('a damaged key file is refused, never replaced by a new key', () => {
  const good = loadOrCreateKey(fresh()).key;
  const file = { v: 1, keyId: good.keyId, arn: good.arn, keyState: 'Enabled', material: Buffer.from(good.material).toString('base64url') };
  const damaged = ['{', JSON.stringify({ ...file, v: 2 }), JSON.stringify({ ...file, material: 'short' }), JSON.stringify({ ...file, arn: 'arn:other' }), JSON.stringify({ ...file, keyId: 'x' }), JSON.stringify({ ...file, keyState: 'Disabled' }), 'null'];
  for (const text of damaged) {
    const dir = fresh();
    writeFileSync(join(dir, KEY_FILE), text);
    assert.throws(() => loadOrCreateKey(dir), KeyFileError, text.slice(0, 40));
  }
  const dir = fresh();
  writeFileSync(join(dir, KEY_FILE), JSON.stringify({ ...file, keyState: 'PendingDeletion' }));
  assert.equal(loadOrCreateKey(dir).key.keyState, 'PendingDeletion', 'a key pending deletion is kept as such');
  const unreadable = fresh();
  mkdirSync(join(unreadable, KEY_FILE));
  assert.throws(() => loadOrCreateKey(unreadable), KeyFileError, 'a key file that cannot be read');
});
