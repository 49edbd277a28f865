// CiphertextForRecipient's bytes (SPEC §9): AWS's CMS shape, checked byte by byte where it
// matters to a reader, and opened by openssl; and the BER writer's encodings at their limits.

import assert from 'node:assert/strict';
import { createHash, createPublicKey } from 'node:crypto';
import { test } from 'node:test';
import { TAG, indefinite, integer, oid, tlv } from '../ber.js';
import { CONTENT_CHUNK_BYTES, envelopeForRecipient, rsa2048PublicKey } from '../cms.js';
import { newRecipient, opensslDecrypt } from './helpers.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

test('the envelope is BER with indefinite lengths around EnvelopedData v2 and a v2 KeyTransRecipientInfo with a subjectKeyIdentifier', () => {
  const recipient = newRecipient();
  const key = createPublicKey({ key: Buffer.from(recipient.spki), format: 'der', type: 'spki' });
  const contentKey = new Uint8Array(32).fill(1);
  const iv = new Uint8Array(16).fill(2);
  const cms = envelopeForRecipient(new Uint8Array(32).fill(3), key, { contentKey, iv });
  const text = hex(cms);
  // ContentInfo SEQUENCE (indefinite), OID envelopedData, [0] (indefinite), EnvelopedData SEQUENCE (indefinite), INTEGER 2
  assert.ok(text.startsWith('3080' + '06092a864886f70d010703' + 'a080' + '3080' + '020102'), 'the outer structures and version 2');
  const ski = createHash('sha1').update(key.export({ type: 'pkcs1', format: 'der' })).digest('hex');
  assert.ok(text.includes('020102' + '8014' + ski), 'KeyTransRecipientInfo version 2, rid [0] = SHA-1 of the public key bits');
  assert.ok(text.includes('06092a864886f70d010107' + '302b' + 'a00d300b0609608648016503040201' + 'a11a301806092a864886f70d010108300b0609608648016503040201'), 'RSAES-OAEP with SHA-256 and MGF1-SHA-256');
  assert.ok(text.includes('3080' + '06092a864886f70d010701' + '301d' + '060960864801650304012a' + '0410' + hex(iv)), 'id-data, AES-256-CBC with its 16-byte IV');
  assert.ok(text.endsWith('0000'.repeat(5)), 'five end-of-contents: content, EncryptedContentInfo, EnvelopedData, [0], ContentInfo');
  // 32 bytes of plaintext are 48 bytes of CBC ciphertext: a chunk of 32 and one of 16.
  assert.equal(CONTENT_CHUNK_BYTES, 32, 'the chunk size this test assumes');
  assert.match(text, /a0800420[0-9a-f]{64}0410[0-9a-f]{32}0000/, 'the encrypted content comes in two OCTET STRING chunks');
  assert.deepEqual(opensslDecrypt(cms, recipient), new Uint8Array(32).fill(3), 'openssl opens it');
});

test('every envelope has a fresh content key and IV', () => {
  const recipient = newRecipient();
  const key = rsa2048PublicKey(recipient.spki)!;
  const plaintext = new Uint8Array(32);
  assert.notEqual(hex(envelopeForRecipient(plaintext, key)), hex(envelopeForRecipient(plaintext, key)), 'two envelopes of the same plaintext differ');
  assert.throws(() => envelopeForRecipient(plaintext, key, { contentKey: new Uint8Array(16), iv: new Uint8Array(16) }), TypeError, 'an AES-128 key is misuse');
});

test('only an RSA-2048 SPKI is a recipient key', () => {
  assert.ok(rsa2048PublicKey(newRecipient().spki) !== null, 'RSA-2048');
  assert.equal(rsa2048PublicKey(newRecipient(1024).spki), null, 'RSA-1024');
  assert.equal(rsa2048PublicKey(Uint8Array.of(0x30, 0x00)), null, 'not an SPKI');
});

test('BER lengths are short below 128 and long from 128, in the fewest octets', () => {
  assert.equal(hex(tlv(TAG.octetString, new Uint8Array(127))).slice(0, 4), '047f', '127: short form');
  assert.equal(hex(tlv(TAG.octetString, new Uint8Array(128))).slice(0, 6), '048180', '128: one length octet');
  assert.equal(hex(tlv(TAG.octetString, new Uint8Array(255))).slice(0, 6), '0481ff', '255: one length octet');
  assert.equal(hex(tlv(TAG.octetString, new Uint8Array(256))).slice(0, 8), '04820100', '256: two length octets');
  assert.equal(hex(indefinite(TAG.sequence, integer(0))), '30800201000000', 'indefinite: 0x80 ... 00 00');
  assert.throws(() => indefinite(TAG.octetString), TypeError, 'a primitive element has no indefinite length');
  assert.throws(() => tlv(0x1f), TypeError, 'high tag numbers are not needed');
});

test('INTEGERs and OIDs encode as X.690 says', () => {
  assert.equal(hex(integer(0)), '020100', '0');
  assert.equal(hex(integer(127)), '02017f', '127');
  assert.equal(hex(integer(128)), '02020080', '128 needs a leading zero');
  assert.equal(hex(integer(256)), '02020100', '256');
  assert.throws(() => integer(-1), TypeError, 'negative integers are not needed');
  assert.equal(hex(oid('1.2.840.113549')), '06062a864886f70d', 'rsadsi: multi-byte arcs');
  assert.equal(hex(oid('2.999.3')), '0603883703', 'joint-iso-itu-t: first arc 2 with a large second arc');
  for (const bad of ['1', '3.1', '1.40', '1.2.x', '1.02']) assert.throws(() => oid(bad), TypeError, `${bad} is no OID`);
});
