// Opens KMS's CiphertextForRecipient (SPEC §9): CMS EnvelopedData (RFC 5652 §6) with one
// KeyTransRecipientInfo, RSAES-OAEP-SHA256/MGF1-SHA256 (RFC 8017, RFC 4055) and AES-256-CBC
// content (RFC 3565), holding the 32-byte master secret M. Exactly that shape is accepted; every
// failure is one `bad_request`.
//
// No CBC padding oracle: the encrypted content must be exactly 48 bytes (M and one full block of
// PKCS#7 padding) before any key is used, it is decrypted without OpenSSL's padding check, and the
// last block is compared with 16 × 0x10 in constant time. So no byte of M ever sits where padding
// is checked, and a good and a bad last block take the same path.

import { constants, createDecipheriv, privateDecrypt, timingSafeEqual, type KeyObject } from 'node:crypto';
import { DipError } from '../../protocol/errors.js';
import { readBer, type Ber } from './ber.js';

const INTEGER = 0x02;
const OCTET_STRING = 0x04;
const NULL = 0x05;
const OID = 0x06;
const SEQUENCE = 0x30;
const SET = 0x31;
const CONTEXT_0_PRIMITIVE = 0x80;
const CONTEXT_0 = 0xa0;
const CONTEXT_1 = 0xa1;
const CONTEXT_2 = 0xa2;
const EMPTY = Buffer.alloc(0);
/** SPEC §9: M is 32 bytes; PKCS#7 then adds one whole block of 0x10 (RFC 5652 §6.3). */
const CONTENT_BYTES = 32;
const SEALED_BYTES = 48;
const FULL_PADDING_BLOCK = Buffer.alloc(16, 16);

const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const ID_ENVELOPED_DATA = hex('2a864886f70d010703'); // 1.2.840.113549.1.7.3
const ID_DATA = hex('2a864886f70d010701'); // 1.2.840.113549.1.7.1
const ID_RSAES_OAEP = hex('2a864886f70d010107'); // 1.2.840.113549.1.1.7
const ID_MGF1 = hex('2a864886f70d010108'); // 1.2.840.113549.1.1.8
const ID_P_SPECIFIED = hex('2a864886f70d010109'); // 1.2.840.113549.1.1.9
const ID_SHA256 = hex('608648016503040201'); // 2.16.840.1.101.3.4.2.1
const ID_AES256_CBC = hex('60864801650304012a'); // 2.16.840.1.101.3.4.1.42

function refuse(): never {
  throw new DipError('bad_request');
}

function items(node: Ber | undefined, tag: number, min: number, max = min): readonly Ber[] {
  if (node?.tag !== tag || !('items' in node) || node.items.length < min || node.items.length > max) refuse();
  return node.items;
}

function value(node: Ber | undefined, tag: number, expected?: Buffer): Uint8Array {
  if (node?.tag !== tag || !('value' in node) || (expected && !expected.equals(node.value))) refuse();
  return node.value;
}

/** RFC 4055 §2.1: SHA-256's parameters are absent (OpenSSL) or NULL (KMS); both are accepted. */
function requireSha256(node: Ber | undefined): void {
  const [oid, params] = items(node, SEQUENCE, 1, 2);
  value(oid, OID, ID_SHA256);
  if (params) value(params, NULL, EMPTY);
}

/** RFC 4055 §4.1 RSAES-OAEP-params: SHA-256, MGF1 with SHA-256, and the empty label if any. */
function requireOaepSha256(node: Ber | undefined): void {
  const [oid, params] = items(node, SEQUENCE, 2);
  value(oid, OID, ID_RSAES_OAEP);
  const [hashFunc, maskGenFunc, pSourceFunc] = items(params, SEQUENCE, 2, 3);
  requireSha256(items(hashFunc, CONTEXT_0, 1)[0]);
  const [mgf, mgfHash] = items(items(maskGenFunc, CONTEXT_1, 1)[0], SEQUENCE, 2);
  value(mgf, OID, ID_MGF1);
  requireSha256(mgfHash);
  if (pSourceFunc) {
    const [pSpecified, label] = items(items(pSourceFunc, CONTEXT_2, 1)[0], SEQUENCE, 2);
    value(pSpecified, OID, ID_P_SPECIFIED);
    value(label, OCTET_STRING, EMPTY);
  }
}

/** RFC 5652 §6.1 encryptedContent [0] IMPLICIT OCTET STRING: primitive, or BER chunks (X.690 §8.7.3). */
function encryptedContent(node: Ber | undefined): Uint8Array {
  if (node?.tag === CONTEXT_0_PRIMITIVE) return value(node, CONTEXT_0_PRIMITIVE);
  return Buffer.concat(items(node, CONTEXT_0, 0, Infinity).map((chunk) => value(chunk, OCTET_STRING)));
}

/**
 * Returns the 32-byte content of `ciphertext`, opened with the RSA private key the enclave put in
 * its `key_request` document. Malformed input, another content length, an OAEP failure and a CBC
 * padding failure all throw the same `DipError('bad_request')`, with no cause.
 */
export function openRecipientCiphertext(ciphertext: Uint8Array, recipientKey: KeyObject): Uint8Array {
  if (recipientKey.type !== 'private' || recipientKey.asymmetricKeyType !== 'rsa') {
    throw new TypeError('the recipient key must be an RSA private key');
  }
  let contentKey: Buffer | undefined;
  let plaintext: Buffer | undefined;
  try {
    // RFC 5652 §3 ContentInfo, then §6.1 EnvelopedData: version 2 (what §6.1 gives for a
    // version 2 KeyTransRecipientInfo), no originatorInfo, no unprotectedAttrs (KMS sends neither,
    // and the enclave would have no use for them).
    const [contentType, content] = items(readBer(ciphertext), SEQUENCE, 2);
    value(contentType, OID, ID_ENVELOPED_DATA);
    const [version, recipientInfos, encryptedContentInfo] = items(items(content, CONTEXT_0, 1)[0], SEQUENCE, 3);
    value(version, INTEGER, Buffer.of(2));
    // §6.2.1 KeyTransRecipientInfo version 2: the rid is a [0] subjectKeyIdentifier; the enclave
    // holds one key, so it is not compared (KMS sends 32 bytes, OpenSSL 20).
    const [ktri] = items(recipientInfos, SET, 1);
    const [ktriVersion, rid, keyEncryptionAlgorithm, encryptedKey] = items(ktri, SEQUENCE, 4);
    value(ktriVersion, INTEGER, Buffer.of(2));
    value(rid, CONTEXT_0_PRIMITIVE);
    requireOaepSha256(keyEncryptionAlgorithm);
    // §6.1 EncryptedContentInfo; RFC 3565 §4.1: the AES-CBC parameter is the IV.
    const [eciType, contentEncryptionAlgorithm, encrypted] = items(encryptedContentInfo, SEQUENCE, 3);
    value(eciType, OID, ID_DATA);
    const [aesOid, iv] = items(contentEncryptionAlgorithm, SEQUENCE, 2);
    value(aesOid, OID, ID_AES256_CBC);
    const sealed = encryptedContent(encrypted);
    if (sealed.length !== SEALED_BYTES) refuse();
    // Node's oaepHash sets the OAEP hash and MGF1's hash alike; the label is empty.
    const oaep = { key: recipientKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' };
    contentKey = privateDecrypt(oaep, value(encryptedKey, OCTET_STRING));
    // createDecipheriv refuses a content key that is not 32 bytes and an IV that is not 16.
    const decipher = createDecipheriv('aes-256-cbc', contentKey, value(iv, OCTET_STRING)).setAutoPadding(false);
    plaintext = Buffer.concat([decipher.update(sealed), decipher.final()]);
    if (!timingSafeEqual(plaintext.subarray(CONTENT_BYTES, SEALED_BYTES), FULL_PADDING_BLOCK)) refuse();
    return new Uint8Array(plaintext.subarray(0, CONTENT_BYTES));
  } catch {
    throw new DipError('bad_request');
  } finally {
    contentKey?.fill(0);
    plaintext?.fill(0);
  }
}
