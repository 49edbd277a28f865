// The KMS emulator through the real @aws-sdk/client-kms and its real process (SPEC §9): what the
// parent will see. Recipient documents come from the NSM emulator with a fresh RSA-2048 key.

import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DecryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { DEV_PCR0_HEX, newNsm, newRecipient, opensslDecrypt, recipientDocument, startEmulator, stateDir, type RunningEmulator, type TestNsm } from './helpers.js';

const CONTEXT = { 'dip:deployment': 'test' };

let nsm: TestNsm;
let dir: string;
let emulator: RunningEmulator;
let client: KMSClient;

function clientFor(url: string): KMSClient {
  return new KMSClient({ endpoint: url, region: 'us-east-1', maxAttempts: 1, credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'dummy-secret' } });
}

before(async () => {
  nsm = await newNsm();
  dir = stateDir(nsm);
  emulator = await startEmulator(dir);
  client = clientFor(emulator.url);
});

after(async () => {
  client.destroy();
  await emulator.stop();
  await nsm.close();
});

async function recipient(source: TestNsm = nsm) {
  const key = newRecipient();
  return { key, field: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256' as const, AttestationDocument: await recipientDocument(source, key.spki) } };
}

async function generate() {
  const r = await recipient();
  const answer = await client.send(new GenerateDataKeyCommand({ KeyId: emulator.arn, KeySpec: 'AES_256', EncryptionContext: CONTEXT, Recipient: r.field }));
  return { r, answer };
}

/** The exception name the SDK surfaces for a refused call. */
async function refusal(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    return (error as Error).name;
  }
  return 'no error';
}

test('GenerateDataKey then Decrypt with a recipient give CMS that openssl opens to the same 32 bytes, and never Plaintext', async () => {
  const { r, answer } = await generate();
  assert.equal(answer.Plaintext, undefined, 'no Plaintext when a recipient is given');
  assert.equal(answer.KeyId, emulator.arn, 'KeyId is the key ARN');
  assert.match(answer.KeyId!, /^arn:aws:kms:[a-z0-9-]+:[0-9]{12}:key\/[0-9a-f-]{36}$/, 'the ARN has KMS shape');
  const generated = opensslDecrypt(answer.CiphertextForRecipient!, r.key);
  assert.equal(generated.length, 32, 'the data key is 32 bytes');

  const other = await recipient();
  const decrypted = await client.send(new DecryptCommand({ CiphertextBlob: answer.CiphertextBlob, KeyId: emulator.arn, EncryptionContext: CONTEXT, Recipient: other.field }));
  assert.equal(decrypted.Plaintext, undefined, 'no Plaintext from Decrypt with a recipient');
  assert.equal(decrypted.KeyId, emulator.arn, 'Decrypt names the key ARN');
  assert.equal(decrypted.EncryptionAlgorithm, 'SYMMETRIC_DEFAULT', 'the symmetric algorithm');
  assert.deepEqual(opensslDecrypt(decrypted.CiphertextForRecipient!, other.key), generated, 'Decrypt delivers the same 32 bytes');
});

test('a recipient whose PCR0 is outside the policy is AccessDeniedException', async () => {
  // A second emulator trusting another NSM's root whose image (PCR0) the policy does not list.
  const otherImage = await newNsm({ pcrs: new Map([[0, new Uint8Array(48).fill(0xab)]]) });
  const other = await startEmulator(stateDir(otherImage, [DEV_PCR0_HEX]));
  const otherClient = clientFor(other.url);
  try {
    const r = await recipient(otherImage);
    const name = await refusal(otherClient.send(new GenerateDataKeyCommand({ KeyId: other.arn, KeySpec: 'AES_256', EncryptionContext: CONTEXT, Recipient: r.field })));
    assert.equal(name, 'AccessDeniedException', 'PCR0 ab…ab is not in the policy');
  } finally {
    otherClient.destroy();
    await other.stop();
    await otherImage.close();
  }
});

test('a recipient document older than 5 minutes is ValidationException', async () => {
  const old = await newNsm({ now: () => Date.now() - 6 * 60 * 1000 });
  const trusted = stateDir(old);
  const other = await startEmulator(trusted);
  const otherClient = clientFor(other.url);
  try {
    const r = await recipient(old);
    const name = await refusal(otherClient.send(new GenerateDataKeyCommand({ KeyId: other.arn, KeySpec: 'AES_256', Recipient: r.field })));
    assert.equal(name, 'ValidationException', 'a 6-minute-old document is refused');
  } finally {
    otherClient.destroy();
    await other.stop();
    await old.close();
  }
});

test('a recipient document signed under another root is ValidationException', async () => {
  const stranger = await newNsm();
  try {
    const r = await recipient(stranger);
    const name = await refusal(client.send(new GenerateDataKeyCommand({ KeyId: emulator.arn, KeySpec: 'AES_256', Recipient: r.field })));
    assert.equal(name, 'ValidationException', 'a document from another NSM root is refused');
  } finally {
    await stranger.close();
  }
});

test('a request without a recipient is AccessDeniedException, for GenerateDataKey and Decrypt', async () => {
  const { answer } = await generate();
  assert.equal(await refusal(client.send(new GenerateDataKeyCommand({ KeyId: emulator.arn, KeySpec: 'AES_256' }))), 'AccessDeniedException', 'GenerateDataKey without Recipient');
  assert.equal(
    await refusal(client.send(new DecryptCommand({ CiphertextBlob: answer.CiphertextBlob, EncryptionContext: CONTEXT }))),
    'AccessDeniedException',
    'Decrypt without Recipient',
  );
});

test('a tampered CiphertextBlob is InvalidCiphertextException', async () => {
  const { answer } = await generate();
  const r = await recipient();
  const blob = new Uint8Array(answer.CiphertextBlob!);
  blob[blob.length - 20]! ^= 0x01;
  const name = await refusal(client.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: CONTEXT, Recipient: r.field })));
  assert.equal(name, 'InvalidCiphertextException', 'one flipped bit');
});

test('Decrypt with another EncryptionContext is InvalidCiphertextException', async () => {
  const { answer } = await generate();
  const r = await recipient();
  const contexts: Record<string, string>[] = [{ 'dip:deployment': 'other' }, {}, { ...CONTEXT, extra: 'pair' }];
  for (const context of contexts) {
    const name = await refusal(client.send(new DecryptCommand({ CiphertextBlob: answer.CiphertextBlob, EncryptionContext: context, Recipient: r.field })));
    assert.equal(name, 'InvalidCiphertextException', `context ${JSON.stringify(context)} differs`);
  }
});

test('key material survives a restart: a CiphertextBlob made before decrypts after, and the key file is mode 0600', async () => {
  const restartDir = stateDir(nsm);
  const first = await startEmulator(restartDir);
  let firstClient = clientFor(first.url);
  const r = await recipient();
  const made = await firstClient.send(new GenerateDataKeyCommand({ KeyId: first.arn, KeySpec: 'AES_256', EncryptionContext: CONTEXT, Recipient: r.field }));
  firstClient.destroy();
  assert.equal(await first.stop(), 0, 'SIGTERM stops the emulator cleanly');
  assert.equal(statSync(join(restartDir, 'kms-key.json')).mode & 0o777, 0o600, 'the key file is readable by its owner only');

  const second = await startEmulator(restartDir);
  firstClient = clientFor(second.url);
  try {
    assert.equal(second.arn, first.arn, 'the same key after a restart');
    const again = await recipient();
    const opened = await firstClient.send(new DecryptCommand({ CiphertextBlob: made.CiphertextBlob, KeyId: second.arn, EncryptionContext: CONTEXT, Recipient: again.field }));
    assert.deepEqual(opensslDecrypt(opened.CiphertextForRecipient!, again.key), opensslDecrypt(made.CiphertextForRecipient!, r.key), 'the same 32 bytes');
  } finally {
    firstClient.destroy();
    await second.stop();
  }
});
