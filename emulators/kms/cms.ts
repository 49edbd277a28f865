// CiphertextForRecipient as AWS KMS answers it (SPEC §9; RFC 5652 CMS): a ContentInfo holding
// EnvelopedData version 2 with one KeyTransRecipientInfo version 2 (rid = subjectKeyIdentifier),
// RSAES-OAEP SHA-256/MGF1-SHA-256 (RFC 8017, RFC 4055) and AES-256-CBC content (RFC 3565).

import { constants, createCipheriv, createHash, createPublicKey, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { TAG, indefinite, integer, octetString, oid, sequence, set, tlv } from './ber.js';

const OID = {
  envelopedData: '1.2.840.113549.1.7.3', // RFC 5652 §6.1
  data: '1.2.840.113549.1.7.1', // RFC 5652 §4
  rsaesOaep: '1.2.840.113549.1.1.7', // RFC 4055 §4.1
  mgf1: '1.2.840.113549.1.1.8',
  sha256: '2.16.840.1.101.3.4.2.1',
  aes256Cbc: '2.16.840.1.101.3.4.1.42', // RFC 3565 §4.1
} as const;

/**
 * AWS sends the encrypted content as a constructed OCTET STRING of several chunks. Chunks this
 * small make even a 32-byte key (48 bytes of CBC ciphertext) arrive in two pieces, so a reader
 * that only handles one primitive piece fails against the emulator as it would against AWS.
 */
export const CONTENT_CHUNK_BYTES = 32;

/** The recipient's key: an RSA-2048 public key. Anything else is a caller's mistake. */
export function rsa2048PublicKey(spki: Uint8Array): KeyObject | null {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch {
    return null;
  }
  return key.asymmetricKeyType === 'rsa' && key.asymmetricKeyDetails?.modulusLength === 2048 ? key : null;
}

// RFC 4055 §2.1: SHA-2 AlgorithmIdentifiers with absent parameters.
const sha256Algorithm = (): Uint8Array => sequence(oid(OID.sha256));

/** RFC 4055 §4.1 RSAES-OAEP-params: [0] sha256, [1] mgf1(sha256), pSourceAlgorithm default (empty label). */
function oaepAlgorithm(): Uint8Array {
  return sequence(
    oid(OID.rsaesOaep),
    sequence(
      tlv(TAG.contextConstructed(0), sha256Algorithm()),
      tlv(TAG.contextConstructed(1), sequence(oid(OID.mgf1), sha256Algorithm())),
    ),
  );
}

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. KMS readers ignore it. */
function subjectKeyIdentifier(key: KeyObject): Uint8Array {
  return new Uint8Array(createHash('sha1').update(key.export({ type: 'pkcs1', format: 'der' })).digest());
}

function chunks(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let offset = 0; offset < bytes.length; offset += CONTENT_CHUNK_BYTES) {
    out.push(octetString(bytes.subarray(offset, offset + CONTENT_CHUNK_BYTES)));
  }
  return out;
}

export interface EnvelopeRandom {
  /** The AES-256 content-encryption key (32 bytes) and the CBC IV (16 bytes). */
  contentKey: Uint8Array;
  iv: Uint8Array;
}

/**
 * Encrypts `plaintext` to `recipient` (an RSA-2048 key) as BER CMS EnvelopedData. The outer
 * structures use indefinite lengths and the content comes in chunks, as in AWS's answers.
 */
export function envelopeForRecipient(plaintext: Uint8Array, recipient: KeyObject, random?: EnvelopeRandom): Uint8Array {
  const contentKey = random?.contentKey ?? new Uint8Array(randomBytes(32));
  const iv = random?.iv ?? new Uint8Array(randomBytes(16));
  if (contentKey.length !== 32 || iv.length !== 16) throw new TypeError('an AES-256-CBC key is 32 bytes and its IV 16');

  // PKCS#7 padding is createCipheriv's default, as RFC 5652 §6.3 requires.
  const cipher = createCipheriv('aes-256-cbc', contentKey, iv);
  const encryptedContent = new Uint8Array(Buffer.concat([cipher.update(plaintext), cipher.final()]));
  // Node sets the MGF1 hash to oaepHash, which is what RSAES_OAEP_SHA_256 means.
  const encryptedKey = new Uint8Array(
    publicEncrypt({ key: recipient, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, contentKey),
  );

  const keyTransRecipientInfo = sequence(
    integer(2), // RFC 5652 §6.2.1: version 2 because rid is a subjectKeyIdentifier
    tlv(TAG.contextPrimitive(0), subjectKeyIdentifier(recipient)),
    oaepAlgorithm(),
    octetString(encryptedKey),
  );
  const encryptedContentInfo = indefinite(
    TAG.sequence,
    oid(OID.data),
    sequence(oid(OID.aes256Cbc), octetString(iv)),
    indefinite(TAG.contextConstructed(0), ...chunks(encryptedContent)),
  );
  const envelopedData = indefinite(TAG.sequence, integer(2), set(keyTransRecipientInfo), encryptedContentInfo);
  return indefinite(TAG.sequence, oid(OID.envelopedData), indefinite(TAG.contextConstructed(0), envelopedData));
}
