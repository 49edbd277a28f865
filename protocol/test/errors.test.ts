import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DipError, ERROR_CODES, ERROR_MESSAGES, httpStatusOf, isErrorCode, toDipError } from '../errors.js';

/** The error table of docs/spec.md §6: each row names codes and their HTTP statuses ("a, b / c | 503 / 504"). */
function specErrorTable(): Record<string, number> {
  const spec = readFileSync(new URL('../../docs/spec.md', import.meta.url), 'utf8');
  const section = spec.slice(spec.indexOf('## 6.'), spec.indexOf('## 7.'));
  const table: Record<string, number> = {};
  for (const line of section.split('\n')) {
    const row = /^\| (`[a-z_]+`.*) \| ([\d /]+) \|$/.exec(line);
    if (row === null) continue;
    const groups = row[1]!.split(' / ');
    const statuses = row[2]!.split(' / ').map(Number);
    assert.equal(groups.length, statuses.length, `spec row "${line}" pairs its codes with its statuses`);
    groups.forEach((group, i) => {
      for (const [, code] of group.matchAll(/`([a-z_]+)`/g)) table[code!] = statuses[i]!;
    });
  }
  return table;
}

/**
 * The paragraph "New error codes for §3–11: `a`, `b` (409), `c` (401, with …), …" of SPEC §11: a
 * parenthesised status applies to every code named since the previous one.
 */
function specNewCodes(): Record<string, number> {
  const spec = readFileSync(new URL('../../docs/spec.md', import.meta.url), 'utf8');
  const start = spec.indexOf('New error codes for §3–11:');
  assert.ok(start >= 0, 'SPEC has the line of new error codes');
  const paragraph = spec.slice(start, spec.indexOf('\n\n', start)).replaceAll('\n', ' ');
  const table: Record<string, number> = {};
  let pending: string[] = [];
  for (const [, code, status] of paragraph.matchAll(/`([a-z_]+)`|\((\d{3})\b/g)) {
    if (code !== undefined) pending.push(code);
    else {
      for (const named of pending) table[named] = Number(status);
      pending = [];
    }
  }
  assert.deepEqual(pending, [], 'every new code has a status');
  return table;
}

test('specNewCodes reads a status for every code named before it', () => {
  const table = specNewCodes();
  assert.equal(table.already_issued, 409, 'already_issued shares token_spent\'s 409');
  assert.equal(table.pool_exhausted, 503, 'pool_exhausted shares clock_untrusted\'s 503');
  assert.equal(table.token_invalid, 401, 'token_invalid is 401');
});

test('the closed error set is exactly the table of SPEC §6 plus the new codes of §11, each code with its HTTP status', () => {
  const table = specErrorTable();
  assert.ok(Object.keys(table).length >= 20, 'the spec table was read');
  for (const [code, status] of Object.entries(specNewCodes())) {
    assert.ok(table[code] === undefined || table[code] === status, `${code} has one status in SPEC`);
    table[code] = status;
  }
  const spec = table;
  assert.deepEqual([...ERROR_CODES].sort(), Object.keys(spec).sort(), 'the same codes as SPEC §6 and §11');
  for (const [code, status] of Object.entries(spec)) {
    assert.ok(isErrorCode(code), `${code} is a code`);
    assert.equal(httpStatusOf(code), status, `${code} maps to ${status}`);
    assert.equal(new DipError(code).httpStatus, status, `DipError(${code}) maps to ${status}`);
  }
});

test('error messages are fixed strings, one per code, and DipError carries nothing else', () => {
  const error = new DipError('srt_invalid');
  assert.equal(error.message, ERROR_MESSAGES.srt_invalid, 'the fixed message');
  assert.deepEqual(error.toJSON(), { code: 'srt_invalid', message: ERROR_MESSAGES.srt_invalid }, 'code and message only');
  assert.equal(error.cause, undefined, 'no cause');
  assert.equal(new Set(Object.values(ERROR_MESSAGES)).size, ERROR_CODES.length, 'one distinct message per code');
});

test('codes outside the closed set are not codes', () => {
  for (const value of ['', 'ERR_JWT_EXPIRED', 'toString', '__proto__', 1, null]) assert.equal(isErrorCode(value), false);
});

test('anything that is not a DipError becomes internal, without its message', () => {
  const secret = 'sub-1234 10.0.0.1';
  const mapped = toDipError(new Error(secret));
  assert.equal(mapped.code, 'internal');
  assert.ok(!mapped.message.includes(secret), 'the message holds no input');
  const kept = new DipError('rate_limited');
  assert.equal(toDipError(kept), kept);
});
