import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DipError, ERROR_CODES, ERROR_MESSAGES, httpStatusOf, isErrorCode, toDipError } from '../errors.js';

test('every SPEC §6 error code maps to its HTTP status', () => {
  const spec: Record<string, number> = {
    bad_request: 400, bad_frame: 400, unknown_op: 400,
    decrypt_failed: 403, srt_invalid: 403, srt_expired: 403, not_entitled: 403, drt_invalid: 403,
    drt_expired: 403, subject_mismatch: 403, version_mismatch: 403,
    not_found: 404, method_not_allowed: 405, payload_too_large: 413, unsupported_media_type: 415,
    rate_limited: 429, internal: 500, enclave_unavailable: 503, enclave_timeout: 504,
  };
  assert.deepEqual([...ERROR_CODES].sort(), Object.keys(spec).sort());
  for (const [code, status] of Object.entries(spec)) {
    assert.ok(isErrorCode(code), 'a SPEC §6 code');
    assert.equal(httpStatusOf(code), status);
    assert.equal(new DipError(code).httpStatus, status);
  }
});

test('error messages are fixed strings, one per code, and DipError carries nothing else', () => {
  const error = new DipError('srt_invalid');
  assert.equal(error.message, ERROR_MESSAGES.srt_invalid);
  assert.deepEqual(error.toJSON(), { code: 'srt_invalid', message: ERROR_MESSAGES.srt_invalid });
  assert.equal(error.cause, undefined);
  assert.equal(new Set(Object.values(ERROR_MESSAGES)).size, ERROR_CODES.length);
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
