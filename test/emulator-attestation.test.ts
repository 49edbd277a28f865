import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createHash, generateKeyPairSync, verify } from 'node:crypto';
import { createEmulatorNsm, DEV_PCRS } from '../enclave/nsm/emulator.js';
import { KEY_USAGE, createCertificate } from '../enclave/nsm/x509.js';
import { decodeCbor, type CborMap } from '../protocol/cbor.js';
import { sigStructure } from '../protocol/cose.js';
import { encodeUserData } from '../protocol/attestation-document.js';
import { verifyAttestation } from '../client/attestation.js';
import { parseCertificate } from '../client/x509.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const sha384 = (label: string): Uint8Array => new Uint8Array(createHash('sha384').update(label, 'ascii').digest());
const HOUR = 3600_000;

function decodeDocument(document: Uint8Array): { items: Uint8Array[]; payload: CborMap } {
  const items = decodeCbor(document);
  assert.ok(Array.isArray(items), 'the document is an untagged CBOR array');
  return { items: items as Uint8Array[], payload: decodeCbor(items[2] as Uint8Array) as CborMap };
}

test('the emulator writes AWS\'s exact shape: untagged COSE_Sign1, protected a1 01 38 22, empty unprotected map, AWS key order', async () => {
  const clock = Date.UTC(2030, 0, 2, 3, 4, 5, 678);
  const nsm = await createEmulatorNsm({ now: () => clock });
  const nonce = new Uint8Array(32).fill(0x4e);
  const publicKey = new Uint8Array(91).fill(0x50);
  const userData = encodeUserData({ jwksSha256: new Uint8Array(32).fill(0x55), mCommit: new Uint8Array(32).fill(0x56) });
  const document = await nsm.attestation({ nonce, publicKey, userData });

  assert.equal(document[0], 0x84, 'an untagged array of four');
  assert.equal(hex(document.subarray(1, 7)), '44a1013822a0', 'bstr(a1 01 38 22) then the empty map');
  const { items, payload } = decodeDocument(document);
  assert.equal(hex(items[0]!), 'a1013822');
  assert.ok(items[1] instanceof Map && items[1].size === 0, 'an empty unprotected header');
  assert.ok(items[3] instanceof Uint8Array && items[3].length === 96, 'a 96-byte ES384 signature');
  assert.deepEqual([...payload.keys()], [
    'module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce',
  ]);
  assert.match(payload.get('module_id') as string, /^dev-/);
  assert.equal(payload.get('digest'), 'SHA384');
  assert.equal(payload.get('timestamp'), clock);
  assert.deepEqual(payload.get('nonce'), nonce);
  assert.deepEqual(payload.get('public_key'), publicKey);
  assert.deepEqual(payload.get('user_data'), new Uint8Array(userData));
  const cabundle = payload.get('cabundle') as Uint8Array[];
  assert.deepEqual(cabundle[0], nsm.rootCertificateDer);
  assert.equal(cabundle.length, 4, 'root and three intermediates, as AWS sends');
});

test('the emulator writes null for absent public_key, user_data and nonce', async () => {
  const nsm = await createEmulatorNsm();
  const { payload } = decodeDocument(await nsm.attestation({ nonce: null, publicKey: null, userData: null }));
  assert.equal(payload.get('public_key'), null);
  assert.equal(payload.get('user_data'), null);
  assert.equal(payload.get('nonce'), null);
  assert.equal(payload.size, 9);
});

test('the emulator\'s PCR0..2 are SHA-384 of "dev-pcr0".."dev-pcr2"; PCR3..15 are 48 zero bytes', async () => {
  assert.deepEqual(DEV_PCRS.pcr0, sha384('dev-pcr0'));
  assert.deepEqual(DEV_PCRS.pcr1, sha384('dev-pcr1'));
  assert.deepEqual(DEV_PCRS.pcr2, sha384('dev-pcr2'));
  const nsm = await createEmulatorNsm();
  const { payload } = decodeDocument(await nsm.attestation({ nonce: null, publicKey: null, userData: null }));
  const pcrs = payload.get('pcrs') as Map<number, Uint8Array>;
  assert.deepEqual([...pcrs.keys()], Array.from({ length: 16 }, (_, i) => i));
  assert.deepEqual(pcrs.get(0), sha384('dev-pcr0'));
  assert.deepEqual(pcrs.get(1), sha384('dev-pcr1'));
  assert.deepEqual(pcrs.get(2), sha384('dev-pcr2'));
  for (let i = 3; i < 16; i++) assert.deepEqual(pcrs.get(i), new Uint8Array(48), `PCR${i}`);
});

test('the emulator signs ES384 r‖s over the Sig_structure with the leaf certificate\'s key', async () => {
  const nsm = await createEmulatorNsm();
  const { items, payload } = decodeDocument(await nsm.attestation({ nonce: null, publicKey: null, userData: null }));
  const leaf = new X509Certificate(payload.get('certificate') as Uint8Array);
  const data = sigStructure(items[0]!, items[2]!);
  assert.equal(verify('sha384', data, { key: leaf.publicKey, dsaEncoding: 'ieee-p1363' }, items[3]!), true);
  const tampered = items[3]!.slice();
  tampered[10]! ^= 1;
  assert.equal(verify('sha384', data, { key: leaf.publicKey, dsaEncoding: 'ieee-p1363' }, tampered), false);
});

test('the emulator\'s chain is shaped like AWS\'s, as OpenSSL reads it', async () => {
  const clock = Date.UTC(2031, 6, 1);
  const nsm = await createEmulatorNsm({ now: () => clock });
  const { payload } = decodeDocument(await nsm.attestation({ nonce: null, publicKey: null, userData: null }));
  const ders = [...(payload.get('cabundle') as Uint8Array[]), payload.get('certificate') as Uint8Array];
  const certs = ders.map((der) => new X509Certificate(der));
  const parsed = ders.map((der) => parseCertificate(der));

  const root = certs[0]!;
  assert.equal(root.ca, true);
  assert.equal(root.checkIssued(root), true);
  assert.equal(root.verify(root.publicKey), true);
  assert.ok(Date.parse(root.validTo) - clock > 20 * 365 * 24 * HOUR, 'a long-lived root');
  assert.equal(parsed[0]!.basicConstraints?.pathLength, null);

  certs.forEach((cert, i) => {
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1', `cert ${i} is P-384`);
    assert.equal(parsed[i]!.ecdsaSha384, true, `cert ${i} is signed with ecdsa-with-SHA384`);
    assert.ok(Date.parse(cert.validFrom) <= clock && clock <= Date.parse(cert.validTo), `cert ${i} is valid now`);
    if (i > 0) {
      assert.equal(cert.checkIssued(certs[i - 1]!), true, `cert ${i} is issued by cert ${i - 1}`);
      assert.equal(cert.verify(certs[i - 1]!.publicKey), true, `cert ${i} is signed by cert ${i - 1}`);
    }
  });
  assert.deepEqual(parsed.slice(1, 4).map((c) => c.basicConstraints), [
    { ca: true, pathLength: 2 },
    { ca: true, pathLength: 1 },
    { ca: true, pathLength: 0 },
  ]);
  for (const ca of parsed.slice(0, 4)) assert.equal(ca.keyUsage, KEY_USAGE.keyCertSign | KEY_USAGE.cRLSign);

  const leaf = certs[4]!;
  assert.equal(leaf.ca, false);
  assert.deepEqual(parsed[4]!.basicConstraints, { ca: false, pathLength: null });
  assert.equal(parsed[4]!.keyUsage, KEY_USAGE.digitalSignature);
  const leafLifetime = Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
  assert.ok(leafLifetime > HOUR && leafLifetime <= 4 * HOUR, 'a leaf valid for a few hours');
});

test('rootCertificatePem and rootCertificateDer are the same certificate', async () => {
  const nsm = await createEmulatorNsm();
  const fromPem = new X509Certificate(nsm.rootCertificatePem);
  assert.deepEqual(new Uint8Array(fromPem.raw), nsm.rootCertificateDer);
  assert.match(nsm.rootCertificatePem, /^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{1,64}\n)+-----END CERTIFICATE-----\n$/);
});

test('each emulator makes its own root', async () => {
  const a = await createEmulatorNsm();
  const b = await createEmulatorNsm();
  assert.notDeepEqual(a.rootCertificateDer, b.rootCertificateDer);
});

test('roots ending before 2050 use UTCTime and later ones GeneralizedTime, and both parse', async () => {
  const early = await createEmulatorNsm({ now: () => Date.UTC(2001, 0, 1) });
  const late = await createEmulatorNsm({ now: () => Date.UTC(2040, 0, 1) });
  assert.equal(new X509Certificate(early.rootCertificateDer).validTo, 'Dec 25 00:00:00 2030 GMT');
  assert.equal(new X509Certificate(late.rootCertificateDer).validTo, 'Dec 24 00:00:00 2069 GMT');
  assert.equal(parseCertificate(late.rootCertificateDer).notAfter, Date.UTC(2069, 11, 24));
  assert.equal(parseCertificate(early.rootCertificateDer).notAfter, Date.UTC(2030, 11, 25));
});

test('the emulator keeps its leaf while it has over an hour left, then issues a new one', async () => {
  const start = Date.UTC(2032, 2, 3);
  let clock = start;
  const nsm = await createEmulatorNsm({ now: () => clock });
  const leafAt = async (): Promise<Uint8Array> => {
    const document = await nsm.attestation({ nonce: null, publicKey: null, userData: null });
    assert.equal(verifyAttestation(document, { root: nsm.rootCertificateDer, at: clock, expectedPcrs: DEV_PCRS }).timestamp, clock);
    return decodeDocument(document).payload.get('certificate') as Uint8Array;
  };
  const first = await leafAt();
  clock = start + 90 * 60_000;
  assert.deepEqual(await leafAt(), first);
  clock = start + 2.5 * HOUR;
  const second = await leafAt();
  assert.notDeepEqual(second, first);
  clock = start - 2 * 60_000; // a clock set back before the current leaf began
  assert.notDeepEqual(await leafAt(), second);
});

test('the emulator takes a moduleIdPrefix that starts with "dev-" and refuses any other', async () => {
  const nsm = await createEmulatorNsm({ moduleIdPrefix: 'dev-laptop-' });
  const { payload } = decodeDocument(await nsm.attestation({ nonce: null, publicKey: null, userData: null }));
  assert.match(payload.get('module_id') as string, /^dev-laptop-/);
  await assert.rejects(createEmulatorNsm({ moduleIdPrefix: 'i-0368fa67e156d6d23' }), TypeError);
  await assert.rejects(createEmulatorNsm({ moduleIdPrefix: 5 as unknown as string }), TypeError);
});

test('the emulator sets the PCRs it is given over the defaults', async () => {
  const pcr4 = new Uint8Array(48).fill(4);
  const pcr20 = new Uint8Array(48).fill(20);
  const nsm = await createEmulatorNsm({ pcrs: new Map([[4, pcr4], [20, pcr20]]) });
  const { payload } = decodeDocument(await nsm.attestation({ nonce: null, publicKey: null, userData: null }));
  const pcrs = payload.get('pcrs') as Map<number, Uint8Array>;
  assert.deepEqual(pcrs.get(4), pcr4);
  assert.deepEqual(pcrs.get(20), pcr20);
  assert.deepEqual(pcrs.get(0), DEV_PCRS.pcr0);
  assert.deepEqual([...pcrs.keys()].at(-1), 20);
});

test('the emulator refuses PCRs outside 0..31 or not 48 bytes, and a clock that is not a function', async () => {
  await assert.rejects(createEmulatorNsm({ pcrs: new Map([[32, new Uint8Array(48)]]) }), TypeError);
  await assert.rejects(createEmulatorNsm({ pcrs: new Map([[-1, new Uint8Array(48)]]) }), TypeError);
  await assert.rejects(createEmulatorNsm({ pcrs: new Map([[1.5, new Uint8Array(48)]]) }), TypeError);
  await assert.rejects(createEmulatorNsm({ pcrs: new Map([[0, new Uint8Array(32)]]) }), TypeError);
  await assert.rejects(createEmulatorNsm({ now: 5 as unknown as () => number }), TypeError);
});

test('a closed emulator refuses to attest', async () => {
  const nsm = await createEmulatorNsm();
  await nsm.close();
  await assert.rejects(nsm.attestation({ nonce: null, publicKey: null, userData: null }), TypeError);
});

test('the X.509 writer refuses times before 1950 and items longer than it can write', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  const template = {
    subject: [['CN', 'x']] as const,
    issuer: [['CN', 'x']] as const,
    subjectPublicKey: spki,
    issuerPublicKey: spki,
    notBefore: Date.UTC(2030, 0, 1),
    notAfter: Date.UTC(2031, 0, 1),
    keyUsage: KEY_USAGE.digitalSignature,
  };
  assert.ok(parseCertificate(createCertificate(template, privateKey)).tbs.length > 0, 'the certificate parses');
  assert.throws(() => createCertificate({ ...template, notBefore: Date.UTC(1949, 11, 31) }, privateKey), TypeError);
  assert.throws(() => createCertificate({ ...template, subject: [['CN', 'x'.repeat(70_000)]] }, privateKey), TypeError);
});
