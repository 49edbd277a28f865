// Test helper: builds attestation chains and documents with chosen faults, using the emulator's
// X.509 writer and the shared codecs, so the verifier can be driven through every chain rule.

import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { encodeAttestationPayload, type AttestationPayload } from '../../../protocol/attestation-document.js';
import { encodeCoseSign1, es384ProtectedHeader, sigStructure } from '../../../protocol/cose.js';
import { KEY_USAGE, createCertificate, type DistinguishedName } from '../../../enclave/nsm/x509.js';

export { KEY_USAGE };

export interface TestKey {
  key: KeyObject;
  spki: Uint8Array;
}

export function newKey(curve: 'P-384' | 'P-256' = 'P-384'): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
  return { key: privateKey, spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })) };
}

const dn = (cn: string): DistinguishedName => [['C', 'US'], ['O', 'Test'], ['CN', cn]];

export interface CertSpec {
  /** undefined → end entity (CA false); null → CA without limit; number → CA with that pathLen. */
  pathLength?: number | null;
  keyUsage: number;
  curve?: 'P-384' | 'P-256';
  /** Write this issuer name instead of the real issuer's subject. */
  issuerName?: string;
  /** Sign with a key other than the issuer's. */
  signWithStranger?: boolean;
  notBefore?: number;
  notAfter?: number;
}

export interface TestChain {
  root: Uint8Array;
  cabundle: Uint8Array[];
  certificate: Uint8Array;
  leafKey: KeyObject;
}

const HOUR = 3600_000;

/** A chain [root, ...intermediates] + leaf; by default shaped like AWS's and valid around `at`. */
export function buildChain(
  at: number,
  specs?: { root?: Pick<CertSpec, 'notBefore' | 'notAfter'>; intermediates?: CertSpec[]; leaf?: CertSpec },
): TestChain {
  const intermediates = specs?.intermediates ?? [
    { pathLength: 2, keyUsage: KEY_USAGE.keyCertSign | KEY_USAGE.cRLSign },
    { pathLength: 1, keyUsage: KEY_USAGE.keyCertSign | KEY_USAGE.cRLSign },
    { pathLength: 0, keyUsage: KEY_USAGE.keyCertSign },
  ];
  const leafSpec = specs?.leaf ?? { keyUsage: KEY_USAGE.digitalSignature };
  const rootKey = newKey();
  const rootName = dn('test-root');
  const root = createCertificate(
    {
      subject: rootName,
      issuer: rootName,
      subjectPublicKey: rootKey.spki,
      issuerPublicKey: rootKey.spki,
      notBefore: specs?.root?.notBefore ?? at - 1000 * HOUR,
      notAfter: specs?.root?.notAfter ?? at + 1000 * HOUR,
      pathLength: null,
      keyUsage: KEY_USAGE.keyCertSign | KEY_USAGE.cRLSign,
    },
    rootKey.key,
  );
  let issuer = { ...rootKey, name: rootName };
  const cabundle = [root];
  let certificate = root;
  let leafKey = rootKey.key;
  [...intermediates, leafSpec].forEach((spec, i) => {
    const isLeaf = i === intermediates.length;
    const key = newKey(spec.curve);
    const name = dn(isLeaf ? 'test-leaf' : `test-intermediate-${i + 1}`);
    const der = createCertificate(
      {
        subject: name,
        issuer: spec.issuerName === undefined ? issuer.name : dn(spec.issuerName),
        subjectPublicKey: key.spki,
        issuerPublicKey: issuer.spki,
        notBefore: spec.notBefore ?? at - HOUR,
        notAfter: spec.notAfter ?? at + HOUR,
        pathLength: spec.pathLength,
        keyUsage: spec.keyUsage,
      },
      spec.signWithStranger === true ? newKey().key : issuer.key,
    );
    if (isLeaf) {
      certificate = der;
      leafKey = key.key;
    } else {
      cabundle.push(der);
    }
    issuer = { ...key, name };
  });
  return { root, cabundle, certificate, leafKey };
}

/** A signed, untagged COSE_Sign1 document for `payload` with the chain's leaf key. */
export function signDocument(chain: TestChain, fields: Partial<AttestationPayload> & { timestamp: number }): Uint8Array {
  const pcrs = new Map<number, Uint8Array>();
  for (let i = 0; i < 16; i++) pcrs.set(i, new Uint8Array(48).fill(i < 3 ? 0x11 * (i + 1) : 0));
  const payload = encodeAttestationPayload({
    moduleId: 'test-module',
    digest: 'SHA384',
    pcrs,
    certificate: chain.certificate,
    cabundle: chain.cabundle,
    publicKey: null,
    userData: null,
    nonce: null,
    ...fields,
  });
  const protectedHeader = es384ProtectedHeader();
  let signature = new Uint8Array(96);
  if (chain.leafKey.asymmetricKeyDetails?.namedCurve === 'secp384r1') {
    signature = new Uint8Array(sign('sha384', sigStructure(protectedHeader, payload), { key: chain.leafKey, dsaEncoding: 'ieee-p1363' }));
  }
  return encodeCoseSign1({ protected: protectedHeader, payload, signature });
}
