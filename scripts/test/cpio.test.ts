// The newc writer of scripts/cpio.ts against a table checked by hand from cpio(5) and gocpio's
// writer.go (field by field, offset by offset), and read back by Debian's own cpio, which must list
// exactly the entries written, with their types, modes, owners, sizes and link targets.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LINUXKIT_MTIME, concatChunks, writeCpio, type CpioEntry } from '../cpio.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const ascii = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1');

const ENTRIES: CpioEntry[] = [
  { path: 'd', type: 'directory', mode: 0o755 },
  { path: 'd/f', type: 'file', mode: 0o644, data: text('hi') },
  { path: 'l', type: 'symlink', mode: 0o777, target: 'd/f' },
];

// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
const header = (...fields: string[]): string => `070701${fields.join('')}`;
// 1492533000 = 0x58f63f08 = 2017-04-18T16:30:00Z, linuxkit's defaultModTime.
const T = '58f63f08';
const TABLE: [offset: number, bytes: string][] = [
  // "d": inode 721 = 0x2d1, 040755, nlink 2 (a directory), 0 bytes, name "d\0" (2); 110 + 2 = 112, aligned.
  [0, header('000002d1', '000041ed', '00000000', '00000000', '00000002', T, '00000000', '00000003', '00000001', '00000000', '00000000', '00000002', '00000000') + 'd\0'],
  // "d/f": inode 722, 0100644, nlink 1, 2 bytes, name (4); 112 + 110 + 4 = 226 → 2 zeros → data at 228.
  [112, header('000002d2', '000081a4', '00000000', '00000000', '00000001', T, '00000002', '00000003', '00000001', '00000000', '00000000', '00000004', '00000000') + 'd/f\0\0\0hi\0\0'],
  // "l" → "d/f": inode 723, 0120777, the target is the data (3 bytes); 232 + 112 = 344, data, 1 zero → 348.
  [232, header('000002d3', '0000a1ff', '00000000', '00000000', '00000001', T, '00000003', '00000003', '00000001', '00000000', '00000000', '00000002', '00000000') + 'l\0d/f\0'],
  // The trailer: inode 724, mode 0, nlink 1, mtime 0, name "TRAILER!!!\0" (11); 348 + 121 = 469 → 472.
  [348, header('000002d4', '00000000', '00000000', '00000000', '00000001', '00000000', '00000000', '00000003', '00000001', '00000000', '00000000', '0000000b', '00000000') + 'TRAILER!!!\0\0\0\0'],
];

test('writeCpio lays out headers, names, data, padding and the trailer as the hand-checked table says', () => {
  const archive = concatChunks(writeCpio(ENTRIES));
  for (const [offset, expected] of TABLE) assert.equal(ascii(archive.subarray(offset, offset + expected.length)), expected, `bytes at ${offset}`);
  // Zeros from 472 up to the 512-byte boundary, and nothing after it.
  assert.equal(archive.length, 512);
  assert.ok(archive.subarray(472).every((b) => b === 0), 'the archive is padded with zeros to 512 bytes');
  assert.equal(LINUXKIT_MTIME, Date.UTC(2017, 3, 18, 16, 30) / 1000);
});

test('an archive of no entries is its trailer padded to 512; one crossing 512 bytes pads to the next 512', () => {
  const empty = concatChunks(writeCpio([]));
  assert.equal(empty.length, 512);
  assert.equal(ascii(empty.subarray(0, 6)), '070701');
  assert.equal(ascii(empty.subarray(6, 14)), '000002d1', 'the trailer takes the first inode');
  assert.equal(ascii(empty.subarray(110, 121)), 'TRAILER!!!\0');
  // 110 + 2 ("f\0") = 112, then 389 data bytes to 501, 3 zeros to 504, trailer 121 → 625 → 628 → 1024.
  const big = concatChunks(writeCpio([{ path: 'f', type: 'file', mode: 0o600, data: new Uint8Array(389).fill(7) }]));
  assert.equal(big.length, 1024);
  assert.equal(ascii(big.subarray(504, 510)), '070701', 'the trailer starts at the next 4-byte boundary after the data');
});

test('setuid, setgid and sticky bits are kept, as gocpio keeps mode & 0xfff', () => {
  const archive = concatChunks(writeCpio([{ path: 't', type: 'directory', mode: 0o1777 }, { path: 's', type: 'file', mode: 0o6755, data: new Uint8Array(0) }]));
  assert.equal(ascii(archive.subarray(14, 22)), '000043ff');
  assert.equal(ascii(archive.subarray(112 + 14, 112 + 22)), '00008ded');
});

test('misuse by our own code is a TypeError: absolute or dotted paths, non-permission modes, data on a directory', () => {
  const bad: CpioEntry[] = [
    { path: '/abs', type: 'file', mode: 0o644, data: text('x') },
    { path: 'a/../b', type: 'file', mode: 0o644, data: text('x') },
    { path: 'a//b', type: 'directory', mode: 0o755 },
    { path: '', type: 'directory', mode: 0o755 },
    { path: 'x', type: 'file', mode: 0o10644, data: text('x') },
    { path: 'x', type: 'file', mode: 0o644 },
    { path: 'x', type: 'directory', mode: 0o755, data: text('x') },
    { path: 'x', type: 'symlink', mode: 0o777 },
    { path: 'x', type: 'file', mode: 0o644, data: text('x'), target: 'y' },
  ];
  for (const entry of bad) assert.throws(() => writeCpio([entry]), TypeError, JSON.stringify(entry));
  assert.throws(() => writeCpio([], -1), TypeError);
});

function cpio(args: string[], input: Uint8Array, cwd?: string) {
  const result = spawnSync('cpio', args, { input, cwd, encoding: 'latin1', env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' } });
  assert.equal(result.error, undefined, "Debian's cpio runs (scripts/ensure-system-deps.sh installs it)");
  return result;
}

test("Debian's cpio -t lists exactly the written entries, with types, modes, owners, sizes and targets", () => {
  const entries: CpioEntry[] = [...ENTRIES, { path: 'd/tmp', type: 'directory', mode: 0o1777 }, { path: 'd/x', type: 'file', mode: 0o755, data: new Uint8Array(1000).fill(1) }];
  const archive = concatChunks(writeCpio(entries));
  // 112 + 120 + 116 + 116 (d/tmp) + 116 + 1000 (d/x) + 124 (trailer) = 1704 → 2048: four blocks.
  assert.equal(archive.length, 2048);
  const listing = cpio(['-itv', '--numeric-uid-gid'], archive);
  assert.equal(listing.status, 0, listing.stderr);
  const rows = listing.stdout.trim().split('\n').map((line) => line.trim().split(/\s+/));
  assert.deepEqual(
    rows.map(([mode, nlink, uid, gid, size, month, day, year, ...name]) => [mode, nlink, uid, gid, size, `${month} ${day} ${year}`, name.join(' ')]),
    [
      ['drwxr-xr-x', '2', '0', '0', '0', 'Apr 18 2017', 'd'],
      ['-rw-r--r--', '1', '0', '0', '2', 'Apr 18 2017', 'd/f'],
      ['lrwxrwxrwx', '1', '0', '0', '3', 'Apr 18 2017', 'l -> d/f'],
      ['drwxrwxrwt', '2', '0', '0', '0', 'Apr 18 2017', 'd/tmp'],
      ['-rwxr-xr-x', '1', '0', '0', '1000', 'Apr 18 2017', 'd/x'],
    ],
  );
  assert.match(listing.stderr, /^4 blocks$/m, 'cpio read the four 512-byte blocks written');
});

test("Debian's cpio -i unpacks the same bytes, modes and times", (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dip-cpio-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const unpacked = cpio(['-idm', '--no-absolute-filenames', '--quiet'], concatChunks(writeCpio(ENTRIES)), dir);
  assert.equal(unpacked.status, 0, unpacked.stderr);
  assert.equal(readFileSync(join(dir, 'd/f'), 'utf8'), 'hi');
  assert.equal(statSync(join(dir, 'd/f')).mode & 0o7777, 0o644);
  assert.equal(statSync(join(dir, 'd/f')).mtimeMs, LINUXKIT_MTIME * 1000);
  assert.equal(readlinkSync(join(dir, 'l')), 'd/f');
});
