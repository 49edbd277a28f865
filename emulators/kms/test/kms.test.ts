// The KMS emulator's domain without a socket (SPEC §9): KMS's field rules and refusals at their
// exact limits, the recipient checks in order, and the CiphertextBlob's bindings.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, test } from 'node:test';
import { KmsError } from '../errors.js';
import { createKms, MAX_CIPHERTEXT_BLOB_BYTES, type KmsKey, type KmsOptions } from '../kms.js';
import { MAX_ATTESTATION_DOCUMENT_BYTES, parsePcr0Policy } from '../recipient.js';
import { DEV_PCR0_HEX, newNsm, newRecipient, opensslDecrypt, recipientDocument, type TestNsm } from './helpers.js';

const T = 1_760_000_000_000;
const FIVE_MINUTES = 5 * 60 * 1000;
const KEY: KmsKey = {
  keyId: '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0',
  arn: 'arn:aws:kms:us-east-1:000000000000:key/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0',
  keyState: 'Enabled',
  material: new Uint8Array(32).fill(9),
};
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

let nsm: TestNsm;
before(async () => {
  nsm = await newNsm({ now: () => T });
});
after(() => nsm.close());

function kms(overrides: Partial<KmsOptions> = {}) {
  return createKms({ key: KEY, policy: { rootPem: nsm.rootCertificatePem, allowedPcr0: new Set([DEV_PCR0_HEX]) }, allowNoRecipient: false, now: () => T, ...overrides });
}

async function recipientField(spki = newRecipient().spki) {
  return { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: b64(await recipientDocument(nsm, spki)) };
}

function refusedWith(call: () => unknown, type: string, reason: string, why: string): void {
  assert.throws(call, (error: unknown) => error instanceof KmsError && error.type === type && error.reason === reason, why);
}

test('a recipient document exactly 5 minutes old is accepted; 1 ms older is ValidationException', async () => {
  const field = await recipientField();
  const at = (now: number) => kms({ now: () => now }).generateDataKey({ KeyId: KEY.keyId, KeySpec: 'AES_256', Recipient: field });
  assert.ok(at(T + FIVE_MINUTES).CiphertextForRecipient, 'exactly 5 minutes old is fresh');
  refusedWith(() => at(T + FIVE_MINUTES + 1), 'ValidationException', 'attestation_stale', '5 minutes and 1 ms is stale');
});

test('GenerateDataKey takes KeySpec AES_256 or NumberOfBytes 32, exactly one of them', async () => {
  const Recipient = await recipientField();
  assert.ok(kms().generateDataKey({ KeyId: KEY.keyId, NumberOfBytes: 32, Recipient }).CiphertextBlob, 'NumberOfBytes 32');
  for (const spec of [{}, { KeySpec: 'AES_128' }, { NumberOfBytes: 31 }, { NumberOfBytes: 33 }, { KeySpec: 'AES_256', NumberOfBytes: 32 }]) {
    refusedWith(() => kms().generateDataKey({ KeyId: KEY.keyId, ...spec, Recipient }), 'ValidationException', 'key_spec_invalid', JSON.stringify(spec));
  }
});

test('a KeyId names this key by UUID or ARN; any other is NotFoundException, none ValidationException', async () => {
  const Recipient = await recipientField();
  assert.equal(kms().generateDataKey({ KeyId: KEY.arn, KeySpec: 'AES_256', Recipient }).KeyId, KEY.arn, 'by ARN');
  refusedWith(() => kms().generateDataKey({ KeyId: 'alias/other', KeySpec: 'AES_256', Recipient }), 'NotFoundException', 'key_not_found', 'an alias');
  refusedWith(() => kms().generateDataKey({ KeySpec: 'AES_256', Recipient }), 'ValidationException', 'key_id_missing', 'no KeyId');
  refusedWith(() => kms().generateDataKey([]), 'ValidationException', 'body_not_object', 'an array body');
});

test('a key pending deletion is KMSInvalidStateException', async () => {
  const Recipient = await recipientField();
  refusedWith(
    () => kms({ key: { ...KEY, keyState: 'PendingDeletion' } }).generateDataKey({ KeyId: KEY.keyId, KeySpec: 'AES_256', Recipient }),
    'KMSInvalidStateException',
    'key_pending_deletion',
    'PendingDeletion',
  );
});

test('the recipient must name RSAES_OAEP_SHA_256 (or nothing) and carry a document of 1 to 262144 bytes', async () => {
  const field = await recipientField();
  assert.ok(kms().generateDataKey({ KeyId: KEY.keyId, KeySpec: 'AES_256', Recipient: { AttestationDocument: field.AttestationDocument } }).CiphertextForRecipient, 'the algorithm may be left out');
  const call = (Recipient: unknown) => () => kms().generateDataKey({ KeyId: KEY.keyId, KeySpec: 'AES_256', Recipient });
  refusedWith(call({ ...field, KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_1' }), 'ValidationException', 'recipient_invalid', 'SHA-1 OAEP');
  refusedWith(call({ AttestationDocument: '' }), 'ValidationException', 'recipient_invalid', 'an empty document');
  refusedWith(call({ AttestationDocument: 'not base64!' }), 'ValidationException', 'recipient_invalid', 'not base64');
  refusedWith(call('document'), 'ValidationException', 'recipient_invalid', 'not an object');
  refusedWith(call({ AttestationDocument: b64(new Uint8Array(MAX_ATTESTATION_DOCUMENT_BYTES)) }), 'ValidationException', 'attestation_invalid', '262144 bytes are read, and fail to verify');
  refusedWith(call({ AttestationDocument: b64(new Uint8Array(MAX_ATTESTATION_DOCUMENT_BYTES + 1)) }), 'ValidationException', 'recipient_invalid', '262145 bytes are refused unread');
});

test('the recipient key must be an RSA-2048 public_key', async () => {
  const call = (Recipient: unknown) => () => kms().generateDataKey({ KeyId: KEY.keyId, KeySpec: 'AES_256', Recipient });
  const p256 = new Uint8Array(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }));
  refusedWith(call(await recipientField(p256)), 'ValidationException', 'recipient_key_invalid', 'a P-256 key');
  refusedWith(call(await recipientField(newRecipient(3072).spki)), 'ValidationException', 'recipient_key_invalid', 'RSA-3072');
  refusedWith(call({ AttestationDocument: b64(await recipientDocument(nsm, null)) }), 'ValidationException', 'recipient_key_invalid', 'no public_key');
});

test('with allowNoRecipient, a request without a recipient gets Plaintext, and Decrypt returns the same bytes', () => {
  const open = kms({ allowNoRecipient: true });
  const made = open.generateDataKey({ KeyId: KEY.keyId, KeySpec: 'AES_256', EncryptionContext: { a: '1' } });
  assert.equal(Buffer.from(made.Plaintext!, 'base64').length, 32, 'a 32-byte Plaintext');
  assert.equal(made.CiphertextForRecipient, undefined, 'no CMS without a recipient');
  assert.equal(open.decrypt({ CiphertextBlob: made.CiphertextBlob, EncryptionContext: { a: '1' } }).Plaintext, made.Plaintext, 'the same key');
});

test('the EncryptionContext is a set of pairs: order does not matter, a non-string value is ValidationException', async () => {
  const open = kms({ allowNoRecipient: true });
  const made = open.generateDataKey({ KeyId: KEY.keyId, KeySpec: 'AES_256', EncryptionContext: { a: '1', b: '2' } });
  assert.equal(open.decrypt({ CiphertextBlob: made.CiphertextBlob, EncryptionContext: { b: '2', a: '1' } }).Plaintext, made.Plaintext, 'reordered pairs');
  refusedWith(() => open.decrypt({ CiphertextBlob: made.CiphertextBlob, EncryptionContext: { a: '1', b: '2 ' } }), 'InvalidCiphertextException', 'ciphertext_invalid', 'a changed value');
  for (const context of [{ a: 1 }, ['a'], 'a=1', null]) {
    refusedWith(() => open.generateDataKey({ KeyId: KEY.keyId, KeySpec: 'AES_256', EncryptionContext: context }), 'ValidationException', 'encryption_context_invalid', JSON.stringify(context));
  }
});

test('a CiphertextBlob is 1 to 6144 bytes of base64 and opens only under its own key', () => {
  const open = kms({ allowNoRecipient: true });
  const made = open.generateDataKey({ KeyId: KEY.keyId, KeySpec: 'AES_256' });
  refusedWith(() => open.decrypt({ CiphertextBlob: b64(new Uint8Array(MAX_CIPHERTEXT_BLOB_BYTES)) }), 'InvalidCiphertextException', 'ciphertext_invalid', '6144 bytes are read');
  refusedWith(() => open.decrypt({ CiphertextBlob: b64(new Uint8Array(MAX_CIPHERTEXT_BLOB_BYTES + 1)) }), 'ValidationException', 'ciphertext_blob_missing', '6145 bytes are refused');
  refusedWith(() => open.decrypt({ CiphertextBlob: '' }), 'ValidationException', 'ciphertext_blob_missing', 'an empty blob');
  refusedWith(() => open.decrypt({}), 'ValidationException', 'ciphertext_blob_missing', 'no blob');
  refusedWith(() => open.decrypt({ CiphertextBlob: made.CiphertextBlob, KeyId: 'alias/other' }), 'NotFoundException', 'key_not_found', 'another KeyId');
  const otherKeyId = { ...KEY, keyId: 'aaaaaaaa-4b5a-4978-8695-a4b3c2d1e0f0', arn: 'arn:aws:kms:us-east-1:000000000000:key/aaaaaaaa-4b5a-4978-8695-a4b3c2d1e0f0' };
  refusedWith(() => kms({ allowNoRecipient: true, key: otherKeyId }).decrypt({ CiphertextBlob: made.CiphertextBlob }), 'InvalidCiphertextException', 'ciphertext_invalid', 'a blob of another key id');
  const otherMaterial = { ...KEY, material: new Uint8Array(32).fill(8) };
  refusedWith(() => kms({ allowNoRecipient: true, key: otherMaterial }).decrypt({ CiphertextBlob: made.CiphertextBlob }), 'InvalidCiphertextException', 'ciphertext_invalid', 'other key material');
  const versioned = Buffer.from(made.CiphertextBlob!, 'base64');
  versioned[0] = 0x02;
  refusedWith(() => open.decrypt({ CiphertextBlob: b64(versioned) }), 'InvalidCiphertextException', 'ciphertext_invalid', 'an unknown blob version');
});

test('Decrypt checks the recipient as GenerateDataKey does and delivers through CMS', async () => {
  const made = kms({ allowNoRecipient: true }).generateDataKey({ KeyId: KEY.keyId, KeySpec: 'AES_256' });
  const recipient = newRecipient();
  const opened = kms().decrypt({ CiphertextBlob: made.CiphertextBlob, Recipient: await recipientField(recipient.spki) });
  assert.equal(opened.Plaintext, undefined, 'no Plaintext with a recipient');
  assert.deepEqual(b64(opensslDecrypt(Buffer.from(opened.CiphertextForRecipient!, 'base64'), recipient)), made.Plaintext, 'the same key inside the CMS');
  const denied = kms({ policy: { rootPem: nsm.rootCertificatePem, allowedPcr0: new Set(['00'.repeat(48)]) } });
  refusedWith(() => denied.decrypt({ CiphertextBlob: made.CiphertextBlob, Recipient: { AttestationDocument: 'AA==' } }), 'ValidationException', 'attestation_invalid', 'garbage document');
  const field = await recipientField();
  refusedWith(() => denied.decrypt({ CiphertextBlob: made.CiphertextBlob, Recipient: field }), 'AccessDeniedException', 'pcr0_denied', 'PCR0 not listed');
});

test('the PCR policy file lists PCR0 values, 96 hex digits a line, with comments; anything else or nothing is refused', () => {
  assert.deepEqual(parsePcr0Policy(`# c\n\n  ${'AB'.repeat(48)}  \n${'01'.repeat(48)}\n`), new Set(['ab'.repeat(48), '01'.repeat(48)]), 'two values, lowercased');
  assert.equal(parsePcr0Policy(`${'ab'.repeat(47)}a\n`), null, '95 hex digits');
  assert.equal(parsePcr0Policy(`${'ab'.repeat(48)}0\n`), null, '97 hex digits');
  assert.equal(parsePcr0Policy('# nothing allowed\n'), null, 'an empty policy');
});
