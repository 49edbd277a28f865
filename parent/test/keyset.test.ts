import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeKeyset, parseKeyset, readKeyset, writeKeysetOnce, type Keyset } from '../keyset.js';

const KEYSET: Keyset = { kmsKeyId: 'arn:aws:kms:us-east-1:000000000000:key/k', deployment: 'prod', ciphertextBlob: Uint8Array.of(1, 2, 3), mCommit: new Uint8Array(32).fill(9) };

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'dip-keyset-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('the keyset file is exactly SPEC §9\'s JSON and reads back to the same keyset', () => {
  const text = encodeKeyset(KEYSET);
  assert.deepEqual(JSON.parse(text), {
    v: 1,
    kms_key_id: KEYSET.kmsKeyId,
    encryption_context: { 'dip:deployment': 'prod' },
    ciphertext_blob: 'AQID',
    m_commit: Buffer.alloc(32, 9).toString('base64url'),
  }, 'the fields of SPEC §9');
  assert.deepEqual(parseKeyset(text), KEYSET, 'round trip');
});

test('a keyset with a missing, extra or malformed field is refused', () => {
  const good = JSON.parse(encodeKeyset(KEYSET)) as Record<string, unknown>;
  const variants: Array<[string, unknown]> = [
    ['not JSON', '{'],
    ['v 2', { ...good, v: 2 }],
    ['extra field', { ...good, extra: 1 }],
    ['no m_commit', { ...good, m_commit: undefined }],
    ['m_commit of 31 bytes', { ...good, m_commit: Buffer.alloc(31).toString('base64url') }],
    ['padded base64', { ...good, ciphertext_blob: 'AQI=' }],
    ['empty blob', { ...good, ciphertext_blob: '' }],
    ['another context key', { ...good, encryption_context: { deployment: 'prod' } }],
    ['two context keys', { ...good, encryption_context: { 'dip:deployment': 'prod', x: 'y' } }],
    ['empty key id', { ...good, kms_key_id: '' }],
    ['an array', [good]],
  ];
  for (const [what, value] of variants) assert.equal(parseKeyset(typeof value === 'string' ? value : JSON.stringify(value)), null, what);
});

test('readKeyset tells a missing file from an invalid one', (t) => {
  const dir = tempDir(t);
  assert.equal(readKeyset(join(dir, 'none.json')), 'keyset_missing', 'missing');
  writeFileSync(join(dir, 'bad.json'), '{}');
  assert.equal(readKeyset(join(dir, 'bad.json')), 'keyset_invalid', 'invalid');
  assert.equal(readKeyset(dir), 'keyset_unreadable', 'a directory cannot be read');
});

test('writeKeysetOnce writes the file mode 0644 with no temporary left, and never replaces an existing keyset', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'keyset.json');
  assert.equal(writeKeysetOnce(path, KEYSET), true, 'written');
  assert.equal(statSync(path).mode & 0o777, 0o644, 'nothing secret: world-readable');
  const first = readFileSync(path, 'utf8');
  assert.equal(writeKeysetOnce(path, { ...KEYSET, mCommit: new Uint8Array(32).fill(1) }), false, 'refused');
  assert.equal(readFileSync(path, 'utf8'), first, 'the first keyset stays');
  assert.deepEqual(readdirSync(dir), ['keyset.json'], 'no temporary file left');
});
