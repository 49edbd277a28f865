// enclave/core/cms.ts and ber.ts (SPEC §9, CiphertextForRecipient): OpenSSL's envelopes from
// test/vectors/cms (scripts/make-cms-vectors.sh), the layout KMS sends, and hostile inputs that
// must all end in the one indistinguishable `bad_request`.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { constants, createCipheriv, createPrivateKey, createPublicKey, privateDecrypt, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { DipError, ERROR_MESSAGES } from '../../protocol/errors.js';
import { MAX_DEPTH, readBer, type Ber } from '../core/ber.js';
import { openRecipientCiphertext } from '../core/cms.js';

const VECTORS = new URL('../../test/vectors/cms/', import.meta.url);
const vector = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, VECTORS)));
const recipientKey = createPrivateKey(readFileSync(new URL('recipient-key.pem', VECTORS)));
const otherKey = createPrivateKey(readFileSync(new URL('other-key.pem', VECTORS)));
const LENGTHS = [0, 1, 16, 32, 100, 5000];

function caught(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

function assertTheOneError(error: unknown, what: string): void {
  assert.ok(error instanceof DipError, `${what}: a DipError, not ${String(error)}`);
  assert.equal(error.code, 'bad_request', `${what}: code`);
  assert.equal(error.message, ERROR_MESSAGES.bad_request, `${what}: the fixed message`);
  assert.equal('cause' in error, false, `${what}: no cause kept`);
}

function assertRefused(bytes: Uint8Array, what: string, key: KeyObject = recipientKey): void {
  assertTheOneError(caught(() => openRecipientCiphertext(bytes, key)), what);
}

// ---- a DER/BER writer for envelopes the vectors do not cover ----

function lengthOctets(n: number): number[] {
  return n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
}
const tlv = (tag: number, ...parts: Uint8Array[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.of(tag, ...lengthOctets(body.length)), body]);
};
const indefinite = (tag: number, ...parts: Uint8Array[]): Buffer => Buffer.concat([Buffer.of(tag, 0x80), ...parts, Buffer.of(0, 0)]);
const oid = (hex: string): Buffer => tlv(0x06, Buffer.from(hex, 'hex'));
const int = (...bytes: number[]): Buffer => tlv(0x02, Buffer.of(...bytes));
const octets = (bytes: Uint8Array): Buffer => tlv(0x04, bytes);
const NULL = tlv(0x05);

const ENVELOPED_DATA = '2a864886f70d010703';
const SIGNED_DATA = '2a864886f70d010702';
const DATA = '2a864886f70d010701';
const RSA_ENCRYPTION = '2a864886f70d010101';
const RSAES_OAEP = '2a864886f70d010107';
const MGF1 = '2a864886f70d010108';
const P_SPECIFIED = '2a864886f70d010109';
const SHA1 = '2b0e03021a';
const SHA256 = '608648016503040201';
const SHA384 = '608648016503040202';
const AES128_CBC = '608648016503040102';
const AES256_CBC = '60864801650304012a';
const AES256_GCM = '60864801650304012e';

const hashAlg = (hex = SHA256, ...params: Uint8Array[]): Buffer => tlv(0x30, oid(hex), ...params);
const oaepParams = (...items: Uint8Array[]): Buffer => tlv(0x30, oid(RSAES_OAEP), tlv(0x30, ...items));
const hashFunc = (alg = hashAlg()): Buffer => tlv(0xa0, alg);
const maskGenFunc = (alg = hashAlg(), mgf = MGF1): Buffer => tlv(0xa1, tlv(0x30, oid(mgf), alg));
const pSourceFunc = (label: Uint8Array, source = P_SPECIFIED): Buffer => tlv(0xa2, tlv(0x30, oid(source), octets(label)));
const OAEP_SHA256 = oaepParams(hashFunc(), maskGenFunc());

/** The element at `path` (item indices from the root), read with the reader the vector tests prove. */
function at(envelope: Uint8Array, ...path: number[]): Ber {
  return path.reduce((node: Ber, i) => ('items' in node ? node.items[i]! : assert.fail(`no item ${i}`)), readBer(envelope));
}
const bytesOf = (node: Ber): Uint8Array => ('value' in node ? node.value : assert.fail('not primitive'));
const RID = [1, 0, 1, 0, 1];
const ENCRYPTED_KEY = [1, 0, 1, 0, 3];
const IV = [1, 0, 2, 1, 1];
const ENCRYPTED_CONTENT = [1, 0, 2, 2];

function piecesOf(envelope: Uint8Array): { encryptedKey: Uint8Array; iv: Uint8Array; sealed: Uint8Array } {
  const content = at(envelope, ...ENCRYPTED_CONTENT);
  const sealed = 'value' in content ? content.value : Buffer.concat(content.items.map(bytesOf));
  return { encryptedKey: bytesOf(at(envelope, ...ENCRYPTED_KEY)), iv: bytesOf(at(envelope, ...IV)), sealed };
}
const content32 = vector('content-32.bin');
const pieces = piecesOf(vector('content-32.der'));
const contentKey = privateDecrypt({ key: recipientKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, pieces.encryptedKey);

/** AES-256-CBC under the vector's own content key and IV, with the padding the caller chose. */
function sealUnpadded(plaintext: Uint8Array): Buffer {
  const cipher = createCipheriv('aes-256-cbc', contentKey, pieces.iv).setAutoPadding(false);
  return Buffer.concat([cipher.update(plaintext), cipher.final()]);
}

interface Layout {
  contentType: Uint8Array[];
  version: Uint8Array[];
  originatorInfo: Uint8Array[];
  recipients?: Uint8Array[];
  ktriVersion: Uint8Array[];
  rid: Uint8Array[];
  keyEncryptionAlgorithm: Uint8Array[];
  encryptedKey: Uint8Array[];
  eciType: Uint8Array[];
  contentEncryptionAlgorithm: Uint8Array[];
  encryptedContent: Uint8Array[];
  unprotectedAttrs: Uint8Array[];
}
const LAYOUT: Layout = {
  contentType: [oid(ENVELOPED_DATA)],
  version: [int(2)],
  originatorInfo: [],
  ktriVersion: [int(2)],
  rid: [tlv(0x80, Buffer.alloc(20, 0x11))],
  keyEncryptionAlgorithm: [OAEP_SHA256],
  encryptedKey: [octets(pieces.encryptedKey)],
  eciType: [oid(DATA)],
  contentEncryptionAlgorithm: [tlv(0x30, oid(AES256_CBC), octets(pieces.iv))],
  encryptedContent: [tlv(0x80, pieces.sealed)],
  unprotectedAttrs: [],
};

/** RFC 5652 ContentInfo(EnvelopedData) in DER, each piece replaceable (an empty list omits it). */
function envelope(changes: Partial<Layout> = {}): Buffer {
  const p = { ...LAYOUT, ...changes };
  const ktri = tlv(0x30, ...p.ktriVersion, ...p.rid, ...p.keyEncryptionAlgorithm, ...p.encryptedKey);
  const eci = tlv(0x30, ...p.eciType, ...p.contentEncryptionAlgorithm, ...p.encryptedContent);
  const envelopedData = tlv(0x30, ...p.version, ...p.originatorInfo, tlv(0x31, ...(p.recipients ?? [ktri])), eci, ...p.unprotectedAttrs);
  return tlv(0x30, ...p.contentType, tlv(0xa0, envelopedData));
}

/**
 * The layout of KMS's CiphertextForRecipient as the examples in aws-nitro-enclaves-sdk-c's CMS
 * tests show it: indefinite ContentInfo, [0], EnvelopedData and EncryptedContentInfo; a definite
 * SET; a 32-byte rid; SHA-256 with NULL parameters (OpenSSL omits them); the encrypted content
 * either as [0] chunks or as one primitive [0].
 */
function kmsShaped(content: Uint8Array): Buffer {
  const sha256 = hashAlg(SHA256, NULL);
  const ktri = tlv(0x30, int(2), tlv(0x80, Buffer.alloc(32, 0x22)), oaepParams(hashFunc(sha256), maskGenFunc(sha256)), octets(pieces.encryptedKey));
  const eci = indefinite(0x30, oid(DATA), tlv(0x30, oid(AES256_CBC), octets(pieces.iv)), content);
  return indefinite(0x30, oid(ENVELOPED_DATA), indefinite(0xa0, indefinite(0x30, int(2), tlv(0x31, ktri), eci)));
}

const opens = (bytes: Uint8Array, key = recipientKey): Buffer => Buffer.from(openRecipientCiphertext(bytes, key));

describe('openRecipientCiphertext', () => {
  it("returns exactly the 32-byte content of OpenSSL's DER and streamed-BER envelopes", () => {
    const content = vector('content-32.bin');
    assert.deepEqual(opens(vector('content-32.der')), Buffer.from(content), 'DER');
    assert.deepEqual(opens(vector('content-32.ber')), Buffer.from(content), 'BER with indefinite lengths');
  });

  for (const n of LENGTHS.filter((length) => length !== 32)) {
    it(`refuses OpenSSL's envelopes of a ${n}-byte content: only M, 32 bytes, is ever opened (SPEC §9)`, () => {
      assertRefused(vector(`content-${n}.der`), `DER, ${n} bytes`);
      assertRefused(vector(`content-${n}.ber`), `BER, ${n} bytes`);
    });
  }

  it('refuses a 47-byte content with valid one-byte PKCS#7 padding: the last block must be one whole block of 0x10', () => {
    // OpenSSL's own padding check would accept this block and return 47 bytes; a padding oracle
    // would then hinge on bytes of M. Here the last block is compared whole, in constant time.
    const oneBytePad = sealUnpadded(Buffer.concat([content32, Buffer.alloc(15, 7), Buffer.of(1)]));
    assertRefused(envelope({ encryptedContent: [tlv(0x80, oneBytePad)] }), '47 bytes with 0x01 padding');
    const twoBlocksOfPadding = sealUnpadded(Buffer.concat([content32, Buffer.alloc(32, 16)]));
    assertRefused(envelope({ encryptedContent: [tlv(0x80, twoBlocksOfPadding)] }), '64 bytes ending in padding');
  });

  it('opens the envelope layout KMS sends: indefinite lengths, 32-byte rid, NULL hash parameters, chunked or primitive content', () => {
    const chunks = indefinite(0xa0, octets(pieces.sealed.subarray(0, 16)), octets(new Uint8Array(0)), octets(pieces.sealed.subarray(16)));
    assert.deepEqual(opens(kmsShaped(chunks)), Buffer.from(content32), 'content in chunks');
    assert.deepEqual(opens(kmsShaped(tlv(0x80, pieces.sealed))), Buffer.from(content32), 'content as one primitive [0]');
  });

  it('accepts what RFC 4055 allows as equal: an explicit empty pSourceFunc, content chunks of definite length', () => {
    const withLabel = oaepParams(hashFunc(), maskGenFunc(), pSourceFunc(new Uint8Array(0)));
    assert.deepEqual(opens(envelope({ keyEncryptionAlgorithm: [withLabel] })), Buffer.from(content32), 'empty pSpecified');
    const definiteChunks = tlv(0xa0, octets(pieces.sealed.subarray(0, 32)), octets(pieces.sealed.subarray(32)));
    assert.deepEqual(opens(envelope({ encryptedContent: [definiteChunks] })), Buffer.from(content32), 'definite chunks');
    assert.deepEqual(opens(envelope()), Buffer.from(content32), 'the test layout itself opens');
  });

  it('ignores the rid: any subjectKeyIdentifier, even an empty one, opens', () => {
    for (const rid of [new Uint8Array(0), Buffer.alloc(20, 0xff), Buffer.alloc(64, 1)]) {
      assert.deepEqual(opens(envelope({ rid: [tlv(0x80, rid)] })), Buffer.from(content32), `${rid.length}-byte rid`);
    }
  });

  it('reads a subarray at a non-zero offset of a larger buffer', () => {
    const der = vector('content-32.der');
    const larger = new Uint8Array(der.length + 10);
    larger.set(der, 7);
    assert.deepEqual(opens(larger.subarray(7, 7 + der.length)), Buffer.from(content32), 'subarray');
  });

  it('round-trips a live `openssl cms -encrypt` envelope', { skip: spawnSync('openssl', ['version']).status !== 0 }, () => {
    const cert = fileURLToPath(new URL('recipient-cert.pem', VECTORS));
    const oaep = ['rsa_padding_mode:oaep', 'rsa_oaep_md:sha256', 'rsa_mgf1_md:sha256'].flatMap((o) => ['-keyopt', o]);
    const options = ['-keyid', '-aes-256-cbc', '-recip', cert, ...oaep];
    for (const form of [['-outform', 'DER'], ['-stream', '-outform', 'DER']]) {
      const run = spawnSync('openssl', ['cms', '-encrypt', '-binary', ...options, ...form], { input: content32 });
      assert.equal(run.status, 0, `openssl ${form.join(' ')} exit status`);
      assert.deepEqual(opens(run.stdout), Buffer.from(content32), form.join(' '));
    }
  });

  it("refuses OpenSSL's SHA-1 OAEP, MGF1-SHA1, labelled, PKCS#1 v1.5, AES-128-CBC, issuerAndSerialNumber and two-recipient envelopes", () => {
    for (const name of ['oaep-sha1', 'oaep-mgf1-sha1', 'oaep-label', 'pkcs1v15', 'aes-128-cbc', 'issuer-and-serial', 'two-recipients']) {
      assertRefused(vector(`refuse-${name}.der`), name);
    }
  });

  it('refuses a ciphertext for another RSA key, and a good one opened with another key', () => {
    assertRefused(vector('refuse-for-other-key.der'), 'made for the other key');
    assertRefused(vector('content-32.der'), 'opened with the other key', otherKey);
    assert.deepEqual(opens(vector('refuse-for-other-key.der'), otherKey), Buffer.from(content32), 'its own key opens it');
  });

  it('refuses bad CBC padding under the right content key', () => {
    const lastBlocks = [Buffer.alloc(16, 0), Buffer.alloc(16, 0x11), Buffer.concat([Buffer.alloc(15, 1), Buffer.of(2)])];
    for (const last of lastBlocks) {
      const sealed = sealUnpadded(Buffer.concat([content32, last]));
      assertRefused(envelope({ encryptedContent: [tlv(0x80, sealed)] }), `last block ${last.toString('hex')}`);
    }
    const wellPadded = sealUnpadded(Buffer.concat([content32, Buffer.alloc(16, 16)]));
    assert.deepEqual(opens(envelope({ encryptedContent: [tlv(0x80, wellPadded)] })), Buffer.from(content32), 'a good last block opens');
  });

  it('an OAEP failure, a CBC padding failure and malformed input throw the same error: one class, code, message, no cause, one place', () => {
    const flippedKey = Buffer.from(pieces.encryptedKey);
    flippedKey[100]! ^= 1;
    const oaepFailure = envelope({ encryptedKey: [octets(flippedKey)] });
    const cbcFailure = envelope({ encryptedContent: [tlv(0x80, sealUnpadded(Buffer.concat([content32, Buffer.alloc(16)])))] });
    const malformed = envelope({ version: [int(3)] });
    const oaep = { key: recipientKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' };
    assert.throws(() => privateDecrypt(oaep, flippedKey), 'the flipped key fails OAEP itself');
    const errors = [oaepFailure, cbcFailure, malformed].map((bytes) => caught(() => openRecipientCiphertext(bytes, recipientKey)));
    errors.forEach((error, i) => assertTheOneError(error, ['OAEP', 'CBC', 'malformed'][i]!));
    for (const error of errors) {
      assert.equal(Object.getPrototypeOf(error), DipError.prototype, 'the same class');
      assert.deepEqual(Object.keys(error as object), Object.keys(errors[0] as object), 'the same own properties');
      assert.equal((error as Error).stack, (errors[0] as Error).stack, 'thrown from one place');
    }
  });

  const refusals: Array<[string, Partial<Layout> | Uint8Array]> = [
    ['ContentInfo of id-data', { contentType: [oid(DATA)] }],
    ['ContentInfo of id-signedData', { contentType: [oid(SIGNED_DATA)] }],
    ['ContentInfo without content', tlv(0x30, oid(ENVELOPED_DATA))],
    ['ContentInfo content not [0]', tlv(0x30, oid(ENVELOPED_DATA), tlv(0xa1, tlv(0x30)))],
    ['EnvelopedData version 0', { version: [int(0)] }],
    ['EnvelopedData version 1', { version: [int(1)] }],
    ['EnvelopedData version 3', { version: [int(3)] }],
    ['EnvelopedData version 2 in two octets', { version: [int(0, 2)] }],
    ['EnvelopedData with originatorInfo', { originatorInfo: [tlv(0xa0, tlv(0xa0))] }],
    ['EnvelopedData with unprotectedAttrs', { unprotectedAttrs: [tlv(0xa1, tlv(0x30, oid(DATA), tlv(0x31, NULL)))] }],
    ['no recipient', { recipients: [] }],
    ['two recipients', { recipients: [envelopeKtri(), envelopeKtri()] }],
    ['a KEKRecipientInfo', { recipients: [tlv(0xa2, int(4))] }],
    ['KeyTransRecipientInfo version 0', { ktriVersion: [int(0)] }],
    ['KeyTransRecipientInfo version 1', { ktriVersion: [int(1)] }],
    ['KeyTransRecipientInfo version 3', { ktriVersion: [int(3)] }],
    ['rid as issuerAndSerialNumber with version 2', { rid: [tlv(0x30, tlv(0x30), int(1))] }],
    ['rid [0] constructed', { rid: [tlv(0xa0, octets(Buffer.alloc(20)))] }],
    ['no rid', { rid: [] }],
    ['PKCS#1 v1.5 rsaEncryption', { keyEncryptionAlgorithm: [tlv(0x30, oid(RSA_ENCRYPTION), NULL)] }],
    ['OAEP without parameters', { keyEncryptionAlgorithm: [tlv(0x30, oid(RSAES_OAEP))] }],
    ['OAEP with all defaults (SHA-1)', { keyEncryptionAlgorithm: [oaepParams()] }],
    ['OAEP with SHA-1', { keyEncryptionAlgorithm: [oaepParams(hashFunc(hashAlg(SHA1)), maskGenFunc())] }],
    ['OAEP with SHA-384', { keyEncryptionAlgorithm: [oaepParams(hashFunc(hashAlg(SHA384)), maskGenFunc())] }],
    ['OAEP with MGF1-SHA1', { keyEncryptionAlgorithm: [oaepParams(hashFunc(), maskGenFunc(hashAlg(SHA1)))] }],
    ['OAEP with the default MGF (MGF1-SHA1)', { keyEncryptionAlgorithm: [oaepParams(hashFunc())] }],
    ['OAEP with a mask generation function other than MGF1', { keyEncryptionAlgorithm: [oaepParams(hashFunc(), maskGenFunc(hashAlg(), SHA256))] }],
    ['OAEP hash with non-NULL parameters', { keyEncryptionAlgorithm: [oaepParams(hashFunc(hashAlg(SHA256, octets(Buffer.of(0)))), maskGenFunc())] }],
    ['OAEP hash with a non-empty NULL', { keyEncryptionAlgorithm: [oaepParams(hashFunc(hashAlg(SHA256, tlv(0x05, Buffer.of(0)))), maskGenFunc())] }],
    ['OAEP hash with two parameters', { keyEncryptionAlgorithm: [oaepParams(hashFunc(hashAlg(SHA256, NULL, NULL)), maskGenFunc())] }],
    ['OAEP hash not wrapped in [0]', { keyEncryptionAlgorithm: [oaepParams(hashAlg(), maskGenFunc())] }],
    ['OAEP [0] and [1] swapped', { keyEncryptionAlgorithm: [oaepParams(maskGenFunc(), hashFunc())] }],
    ['OAEP with a label', { keyEncryptionAlgorithm: [oaepParams(hashFunc(), maskGenFunc(), pSourceFunc(Buffer.of(1)))] }],
    ['OAEP pSource not pSpecified', { keyEncryptionAlgorithm: [oaepParams(hashFunc(), maskGenFunc(), pSourceFunc(new Uint8Array(0), SHA256))] }],
    ['OAEP with a fourth parameter', { keyEncryptionAlgorithm: [oaepParams(hashFunc(), maskGenFunc(), pSourceFunc(new Uint8Array(0)), NULL)] }],
    ['OAEP algorithm with an extra element', { keyEncryptionAlgorithm: [tlv(0x30, oid(RSAES_OAEP), tlv(0x30, hashFunc(), maskGenFunc()), NULL)] }],
    ['encryptedKey as a constructed OCTET STRING', { encryptedKey: [tlv(0x24, octets(pieces.encryptedKey))] }],
    ['no encryptedKey', { encryptedKey: [] }],
    ['content type id-envelopedData', { eciType: [oid(ENVELOPED_DATA)] }],
    ['content AES-128-CBC', { contentEncryptionAlgorithm: [tlv(0x30, oid(AES128_CBC), octets(pieces.iv))] }],
    ['content AES-256-GCM', { contentEncryptionAlgorithm: [tlv(0x30, oid(AES256_GCM), octets(pieces.iv))] }],
    ['a 15-byte IV', { contentEncryptionAlgorithm: [tlv(0x30, oid(AES256_CBC), octets(pieces.iv.subarray(0, 15)))] }],
    ['a 17-byte IV', { contentEncryptionAlgorithm: [tlv(0x30, oid(AES256_CBC), octets(Buffer.concat([pieces.iv, Buffer.of(0)])))] }],
    ['an empty IV', { contentEncryptionAlgorithm: [tlv(0x30, oid(AES256_CBC), octets(new Uint8Array(0)))] }],
    ['no IV', { contentEncryptionAlgorithm: [tlv(0x30, oid(AES256_CBC))] }],
    ['IV as NULL', { contentEncryptionAlgorithm: [tlv(0x30, oid(AES256_CBC), NULL)] }],
    ['no encryptedContent', { encryptedContent: [] }],
    ['encryptedContent as a universal OCTET STRING', { encryptedContent: [octets(pieces.sealed)] }],
    ['encryptedContent chunks nested in a constructed chunk', { encryptedContent: [indefinite(0xa0, tlv(0x24, octets(pieces.sealed)))] }],
    ['encryptedContent chunk that is not an OCTET STRING', { encryptedContent: [indefinite(0xa0, tlv(0x80, pieces.sealed))] }],
    ['encryptedContent with no chunks', { encryptedContent: [indefinite(0xa0)] }],
    ['empty encryptedContent', { encryptedContent: [tlv(0x80)] }],
    ['encryptedContent not a whole number of blocks', { encryptedContent: [tlv(0x80, pieces.sealed.subarray(1))] }],
    ['a 16-byte content key under the AES-256-CBC OID', { encryptedKey: [octets(piecesOf(vector('refuse-aes-128-cbc.der')).encryptedKey)] }],
    ['a trailing byte', Buffer.concat([envelope(), Buffer.of(0)])],
    ['a trailing end-of-contents', Buffer.concat([envelope(), Buffer.of(0, 0)])],
    ['a trailing element', Buffer.concat([envelope(), NULL])],
    ['an indefinite envelope without its last end-of-contents', vector('content-32.ber').subarray(0, -2)],
    ['empty input', new Uint8Array(0)],
  ];
  it(`refuses a table of ${refusals.length} hostile envelopes with the one error`, () => {
    for (const [what, changes] of refusals) assertRefused(changes instanceof Uint8Array ? changes : envelope(changes), what);
  });

  for (const name of ['content-32.der', 'content-32.ber']) {
    it(`refuses every truncation of ${name}`, () => {
      const whole = vector(name);
      for (let n = 0; n < whole.length; n++) assertRefused(whole.subarray(0, n), `${n} of ${whole.length} bytes`);
    });

    it(`every single-byte flip of ${name} throws the one error, or opens only where CBC has no integrity`, () => {
      const whole = vector(name);
      const offsetOf = (part: Uint8Array): [number, number] => [part.byteOffset - whole.byteOffset, part.byteOffset - whole.byteOffset + part.length];
      const content = at(whole, ...ENCRYPTED_CONTENT);
      // CMS EnvelopedData has no MAC: a flipped IV byte or early ciphertext byte changes the content
      // yet keeps its padding valid. The rid is ignored. Everything else must be refused.
      const rid = offsetOf(bytesOf(at(whole, ...RID)));
      const malleable = [bytesOf(at(whole, ...IV)), ...('value' in content ? [content.value] : content.items.map(bytesOf))].map(offsetOf);
      const inside = ([from, to]: [number, number], i: number): boolean => i >= from && i < to;
      for (let i = 0; i < whole.length; i++) {
        for (const mask of [0x01, 0x80]) {
          const flipped = Uint8Array.from(whole);
          flipped[i]! ^= mask;
          const error = caught(() => openRecipientCiphertext(flipped, recipientKey));
          if (error !== undefined) {
            assertTheOneError(error, `flip ${mask} at ${i}`);
            continue;
          }
          const content = opens(flipped);
          if (inside(rid, i)) assert.deepEqual(content, Buffer.from(content32), `rid flip at ${i} opens the same content`);
          else assert.ok(malleable.some((range) => inside(range, i)) && !content.equals(content32), `flip ${mask} at ${i} opened`);
        }
      }
    });
  }

  it('throws TypeError, not bad_request, when our own code passes a key that is not an RSA private key', () => {
    const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.alloc(32, 7)]);
    const ed25519 = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
    for (const key of [createPublicKey(recipientKey), ed25519]) {
      assert.throws(() => openRecipientCiphertext(vector('content-32.der'), key), TypeError, `${key.type} ${key.asymmetricKeyType} key`);
    }
  });
});

function envelopeKtri(): Buffer {
  return tlv(0x30, int(2), ...LAYOUT.rid, OAEP_SHA256, octets(pieces.encryptedKey));
}

describe('readBer', () => {
  const refused = (bytes: Uint8Array, what: string): void => assertTheOneError(caught(() => readBer(bytes)), what);
  const nest = (levels: number, wrap: (inner: Uint8Array) => Uint8Array): Uint8Array => {
    let element: Uint8Array = NULL;
    for (let level = 1; level < levels; level++) element = wrap(element);
    return element;
  };

  it('reads definite and indefinite lengths into the same tree', () => {
    const definite = readBer(tlv(0x30, int(2), tlv(0xa0, octets(Buffer.of(1, 2)))));
    const open = readBer(indefinite(0x30, int(2), indefinite(0xa0, octets(Buffer.of(1, 2)))));
    assert.deepEqual(open, definite, 'same elements');
    const tree = { tag: 0x30, items: [{ tag: 0x02, value: Buffer.of(2) }, { tag: 0xa0, items: [{ tag: 0x04, value: Buffer.of(1, 2) }] }] };
    assert.deepEqual(definite, tree, 'tree');
  });

  it('accepts the shortest length form at each boundary and refuses longer or non-minimal ones', () => {
    const string = (head: number[], n: number): Buffer => Buffer.concat([Buffer.of(0x04, ...head), Buffer.alloc(n, 0xaa)]);
    const shortest = [[[0x7f], 127], [[0x81, 0x80], 128], [[0x81, 0xff], 255], [[0x82, 0x01, 0x00], 256], [[0x82, 0xff, 0xff], 65535]] as const;
    for (const [head, n] of shortest) {
      assert.equal(bytesOf(readBer(string([...head], n))).length, n, `${n} bytes with length ${Buffer.from(head).toString('hex')}`);
    }
    const refusedForms = [[[0x81, 0x7f], 127], [[0x81, 0x00], 0], [[0x82, 0x00, 0xff], 255], [[0x82, 0x00, 0x80], 128], [[0x83, 0x01, 0x00, 0x00], 65536], [[0xff], 0]] as const;
    for (const [head, n] of refusedForms) {
      refused(string([...head], n), `length ${Buffer.from(head).toString('hex')}`);
    }
  });

  it(`nests exactly ${MAX_DEPTH} levels, definite or indefinite, and refuses one more`, () => {
    for (const [form, wrap] of [['definite', (e: Uint8Array) => tlv(0x30, e)], ['indefinite', (e: Uint8Array) => indefinite(0x30, e)]] as const) {
      assert.ok(readBer(nest(MAX_DEPTH, wrap)), `${MAX_DEPTH} ${form} levels`);
      refused(nest(MAX_DEPTH + 1, wrap), `${MAX_DEPTH + 1} ${form} levels`);
    }
  });

  it('refuses 100000 nested indefinite sequences with bad_request, not a stack overflow', () => {
    refused(Buffer.alloc(200_000, Buffer.of(0x30, 0x80)), 'deep nesting');
  });

  it('refuses high tag numbers, misplaced end-of-contents, indefinite primitives and lengths beyond their element or the input', () => {
    const table: Array<[string, number[]]> = [
      ['empty input', []],
      ['a lone identifier', [0x30]],
      ['a high-tag-number identifier', [0x1f, 0x00]],
      ['a constructed high-tag-number identifier', [0xbf, 0x00]],
      ['end-of-contents as the element', [0x00, 0x00]],
      ['end-of-contents inside a definite length', [0x30, 0x02, 0x00, 0x00]],
      ['a primitive with an indefinite length', [0x04, 0x80, 0x00, 0x00]],
      ['an indefinite length never closed', [0x30, 0x80, 0x05, 0x00]],
      ['an indefinite length closed by one zero', [0x30, 0x80, 0x00]],
      ['an end-of-contents beyond its enclosing element', [0x30, 0x03, 0x30, 0x80, 0x00, 0x00]],
      ['an end-of-contents straddling its enclosing element', [0x30, 0x80, 0x30, 0x03, 0x30, 0x80, 0x00, 0x00, 0x00]],
      ['a child overrunning its definite parent', [0x30, 0x80, 0x30, 0x03, 0x04, 0x05, 0xaa, 0x05, 0x00, 0x00, 0x00]],
      ['a length beyond the input', [0x04, 0x05, 0x00]],
      ['a child beyond its parent', [0x30, 0x02, 0x04, 0x02, 0x00, 0x00]],
      ['long-form length octets beyond the input', [0x04, 0x82, 0x01]],
      ['a trailing byte', [0x05, 0x00, 0x00]],
    ];
    for (const [what, bytes] of table) refused(Uint8Array.from(bytes), what);
  });
});
