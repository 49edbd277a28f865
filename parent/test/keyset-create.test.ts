import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DipError } from '../../protocol/errors.js';
import type { Op, RequestBodies, ResponseBodies } from '../../protocol/messages.js';
import { createKeyset, type EnclaveCaller } from '../keyset-create.js';
import { parseKeyset } from '../keyset.js';
import { KmsCallError, kmsFailureOf, type KeyCustody } from '../kms.js';
import { StartupError } from '../startup.js';

const M_COMMIT = new Uint8Array(32).fill(0x33);

/** An enclave answering from a table; `health` says locked unless told otherwise. */
function enclave(answers: Partial<{ [K in Op]: ResponseBodies[K] | DipError }>, seen: Array<[Op, unknown]> = []): EnclaveCaller {
  return {
    async call<K extends Op>(op: K, body: RequestBodies[K]): Promise<ResponseBodies[K]> {
      seen.push([op, body]);
      const answer = answers[op] ?? (op === 'health' ? { status: 'locked', version: 'v', key_id: new Uint8Array(8) } : undefined);
      if (answer instanceof DipError || answer === undefined) throw answer ?? new DipError('unknown_op');
      return answer as ResponseBodies[K];
    },
  };
}

const LOCKED_OK = { key_request: { document: Uint8Array.of(0xd2, 1) }, unlock: { status: 'ok' as const, epoch: 700, m_commit: M_COMMIT } };

function kms(fail: KmsCallError | null = null): KeyCustody & { calls: unknown[][] } {
  const calls: unknown[][] = [];
  return {
    calls,
    async generateDataKey(...args) {
      calls.push(args);
      if (fail) throw fail;
      return { ciphertextBlob: Uint8Array.of(9, 9), ciphertextForRecipient: Uint8Array.of(7) };
    },
    decrypt: () => Promise.reject(new TypeError('unused')),
    close() {},
  };
}

function tempPath(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'dip-keyset-create-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'keyset.json');
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof StartupError, 'a coded StartupError');
    return error.code;
  }
  return 'ok';
}

test('keyset create asks GenerateDataKey with the enclave\'s document, unlocks with CiphertextForRecipient and writes blob and m_commit', async (t) => {
  const path = tempPath(t);
  const seen: Array<[Op, unknown]> = [];
  const custody = kms();
  const keyset = await createKeyset(enclave(LOCKED_OK, seen), custody, { path, kmsKeyId: 'key-1', deployment: 'prod' });
  assert.deepEqual(custody.calls, [['key-1', 'prod', Uint8Array.of(0xd2, 1)]], 'GenerateDataKey for the key_request document');
  assert.deepEqual(seen.map(([op]) => op), ['health', 'key_request', 'unlock'], 'SPEC §9 order');
  assert.deepEqual(seen[2]![1], { recipient_ciphertext: Uint8Array.of(7) }, 'unlock carries CiphertextForRecipient');
  assert.deepEqual(parseKeyset(readFileSync(path, 'utf8')), keyset, 'the file holds the keyset');
  assert.deepEqual(keyset.mCommit, M_COMMIT, 'm_commit from unlock');
  assert.deepEqual(keyset.ciphertextBlob, Uint8Array.of(9, 9), 'the CiphertextBlob');
});

test('keyset create refuses an enclave already unlocked, before KMS is asked', async (t) => {
  const custody = kms();
  const unlocked = enclave({ ...LOCKED_OK, health: { status: 'ok', version: 'v', key_id: new Uint8Array(8), m_commit: M_COMMIT } });
  assert.equal(await codeOf(createKeyset(unlocked, custody, { path: tempPath(t), kmsKeyId: 'k', deployment: 'd' })), 'enclave_already_unlocked', 'refused');
  assert.equal(custody.calls.length, 0, 'KMS not asked');
});

test('keyset create names the failing side: KMS refusing or unreachable, the enclave refusing or gone, the file existing', async (t) => {
  const request = { path: tempPath(t), kmsKeyId: 'k', deployment: 'd' };
  assert.equal(await codeOf(createKeyset(enclave(LOCKED_OK), kms(new KmsCallError('kms_refused')), request)), 'kms_refused', 'KMS refused');
  assert.equal(await codeOf(createKeyset(enclave(LOCKED_OK), kms(new KmsCallError('kms_unreachable')), request)), 'kms_unreachable', 'KMS unreachable');
  assert.equal(await codeOf(createKeyset(enclave({ ...LOCKED_OK, unlock: new DipError('bad_request') }), kms(), request)), 'enclave_refused', 'unlock refused');
  assert.equal(await codeOf(createKeyset(enclave({ ...LOCKED_OK, key_request: new DipError('enclave_unavailable') }), kms(), request)), 'enclave_unavailable', 'enclave gone');
  writeFileSync(request.path, 'an earlier keyset');
  assert.equal(await codeOf(createKeyset(enclave(LOCKED_OK), kms(), request)), 'keyset_exists', 'never over an existing file');
  assert.equal(readFileSync(request.path, 'utf8'), 'an earlier keyset', 'the file is unchanged');
});

test('an SDK failure with a 4xx status is kms_refused; no status or 5xx is kms_unreachable', () => {
  assert.equal(kmsFailureOf({ $metadata: { httpStatusCode: 400 } }), 'kms_refused', '400');
  assert.equal(kmsFailureOf({ $metadata: { httpStatusCode: 499 } }), 'kms_refused', '499');
  assert.equal(kmsFailureOf({ $metadata: { httpStatusCode: 500 } }), 'kms_unreachable', '500');
  assert.equal(kmsFailureOf(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), 'kms_unreachable', 'no answer');
  assert.equal(kmsFailureOf(null), 'kms_unreachable', 'nothing');
});
