// The development stand-in for /dev/nsm (SPEC §8): it writes attestation documents in AWS's
// exact shape (untagged COSE_Sign1, ES384, AWS's payload key order) signed by a chain like AWS's,
// under a root made fresh, in memory, for each emulator. `module_id` starts with "dev-".

import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { encodeAttestationPayload } from '../../protocol/attestation-document.js';
import { encodeCoseSign1, es384ProtectedHeader, sigStructure } from '../../protocol/cose.js';
import type { AttestationRequest, Nsm } from './nsm.js';
import { KEY_USAGE, certificateToPem, createCertificate, type DistinguishedName } from './x509.js';

const PCR_BYTES = 48;
const PCR_COUNT = 16;

function devPcr(label: string): Uint8Array {
  return new Uint8Array(createHash('sha384').update(label, 'ascii').digest());
}

/**
 * The emulator's PCR0..2: SHA-384 of the ASCII labels "dev-pcr0", "dev-pcr1", "dev-pcr2".
 * They are deliberately not zero, because all-zero PCR0..2 means debug mode and a verifier must
 * keep refusing that; they measure nothing real either, so no production manifest can match them.
 * PCR3..15 are 48 zero bytes. Pass these as `expectedPcrs` to verify an emulator document.
 */
export const DEV_PCRS: Readonly<{ pcr0: Uint8Array; pcr1: Uint8Array; pcr2: Uint8Array }> = Object.freeze({
  pcr0: devPcr('dev-pcr0'),
  pcr1: devPcr('dev-pcr1'),
  pcr2: devPcr('dev-pcr2'),
});

export interface EmulatorOptions {
  /** Start of every `module_id`; must start with "dev-" so development documents stay visible. */
  moduleIdPrefix?: string;
  /** PCRs to set, index 0..31 → 48 bytes, over the defaults (see DEV_PCRS). */
  pcrs?: Map<number, Uint8Array>;
  /** The clock, in Unix milliseconds; documents and certificates are dated by it. */
  now?: () => number;
}

export interface EmulatorNsm extends Nsm {
  /** The development trust anchor (SPEC §8 `nsm-root.pem`). */
  readonly rootCertificatePem: string;
  readonly rootCertificateDer: Uint8Array;
}

const HOUR_MS = 3600 * 1000;
const DAY_MS = 24 * HOUR_MS;
// Lifetimes close to AWS's: a 30-year root, shorter intermediates, a leaf of a few hours.
const ROOT_LIFETIME_MS = 30 * 365 * DAY_MS;
const INTERMEDIATE_LIFETIMES_MS = [20 * DAY_MS, 6 * DAY_MS, DAY_MS] as const;
const LEAF_LIFETIME_MS = 3 * HOUR_MS;
// Reissue the leaf while a document made now still has this long to live, so a client does not
// receive a document whose chain expires a moment later.
const LEAF_RENEW_MARGIN_MS = HOUR_MS;
// Certificates start a little in the past so a verifier whose clock lags ours still accepts them.
const BACKDATE_MS = 5 * 60 * 1000;

interface Issued {
  name: DistinguishedName;
  der: Uint8Array;
  spki: Uint8Array;
  key: KeyObject;
  notBefore: number;
  notAfter: number;
}

function newP384Key(): { key: KeyObject; spki: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  return { key: privateKey, spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })) };
}

const dn = (cn: string): DistinguishedName => [
  ['C', 'US'],
  ['O', 'Development'],
  ['OU', 'dip-enclave NSM emulator'],
  ['CN', cn],
];

/**
 * Makes a key and its certificate, signed by `issuer` (or self-signed when null).
 * `pathLength`: undefined for the leaf, null for a CA without limit, else the CA's pathLen.
 */
function issue(issuer: Issued | null, subject: DistinguishedName, at: number, lifetime: number, pathLength: number | null | undefined): Issued {
  const { key, spki } = newP384Key();
  const notBefore = at - BACKDATE_MS;
  const notAfter = issuer === null ? at + lifetime : Math.min(at + lifetime, issuer.notAfter);
  const der = createCertificate(
    {
      subject,
      issuer: issuer?.name ?? subject,
      subjectPublicKey: spki,
      issuerPublicKey: issuer?.spki ?? spki,
      notBefore,
      notAfter,
      pathLength,
      keyUsage: pathLength === undefined ? KEY_USAGE.digitalSignature : KEY_USAGE.keyCertSign | KEY_USAGE.cRLSign,
    },
    issuer?.key ?? key,
  );
  return { name: subject, der, spki, key, notBefore, notAfter };
}

function checkOptions(options: EmulatorOptions): void {
  const prefix = options.moduleIdPrefix;
  if (prefix !== undefined && (typeof prefix !== 'string' || !prefix.startsWith('dev-'))) {
    throw new TypeError('moduleIdPrefix must start with "dev-"');
  }
  for (const [index, value] of options.pcrs ?? []) {
    if (!Number.isInteger(index) || index < 0 || index > 31 || !(value instanceof Uint8Array) || value.length !== PCR_BYTES) {
      throw new TypeError('emulator PCRs are indexed 0..31 and 48 bytes long');
    }
  }
  if (options.now !== undefined && typeof options.now !== 'function') throw new TypeError('now must be a function');
}

export async function createEmulatorNsm(options: EmulatorOptions = {}): Promise<EmulatorNsm> {
  checkOptions(options);
  const now = options.now ?? Date.now;
  const moduleId = `${options.moduleIdPrefix ?? 'dev-'}i-${randomBytes(8).toString('hex')}-enc${randomBytes(8).toString('hex')}`;
  const pcrs = new Map<number, Uint8Array>();
  for (let i = 0; i < PCR_COUNT; i++) pcrs.set(i, new Uint8Array(PCR_BYTES));
  pcrs.set(0, devPcr('dev-pcr0'));
  pcrs.set(1, devPcr('dev-pcr1'));
  pcrs.set(2, devPcr('dev-pcr2'));
  for (const [index, value] of options.pcrs ?? []) pcrs.set(index, new Uint8Array(value));

  const created = now();
  const root = issue(null, dn('dev.nitro-enclaves'), created, ROOT_LIFETIME_MS, null);
  let chain: { intermediates: Issued[]; leaf: Issued } | null = null;
  let closed = false;

  // Intermediates and leaf are (re)issued together whenever the leaf nears its end, so every
  // document's chain is valid for at least LEAF_RENEW_MARGIN_MS after it is made.
  const currentChain = (at: number): { intermediates: Issued[]; leaf: Issued } => {
    if (chain !== null && at >= chain.leaf.notBefore && at + LEAF_RENEW_MARGIN_MS <= chain.leaf.notAfter) return chain;
    const intermediates: Issued[] = [];
    let issuer = root;
    INTERMEDIATE_LIFETIMES_MS.forEach((lifetime, i) => {
      // pathLen 2, 1, 0 below the root, as in AWS's chains.
      issuer = issue(issuer, dn(`dev-intermediate-${i + 1}.nitro-enclaves`), at, lifetime, INTERMEDIATE_LIFETIMES_MS.length - 1 - i);
      intermediates.push(issuer);
    });
    chain = { intermediates, leaf: issue(issuer, dn(`${moduleId}.dev`), at, LEAF_LIFETIME_MS, undefined) };
    return chain;
  };

  return {
    rootCertificateDer: new Uint8Array(root.der),
    rootCertificatePem: certificateToPem(root.der),

    async attestation(request: AttestationRequest): Promise<Uint8Array> {
      if (closed) throw new TypeError('the NSM emulator is closed');
      const timestamp = now();
      const { intermediates, leaf } = currentChain(timestamp);
      const payload = encodeAttestationPayload({
        moduleId,
        digest: 'SHA384',
        timestamp,
        pcrs,
        certificate: leaf.der,
        cabundle: [root.der, ...intermediates.map((cert) => cert.der)],
        publicKey: request.publicKey,
        userData: request.userData,
        nonce: request.nonce,
      });
      const protectedHeader = es384ProtectedHeader();
      // RFC 9053 §2.1: the COSE signature is r‖s, not DER.
      const signature = sign('sha384', sigStructure(protectedHeader, payload), { key: leaf.key, dsaEncoding: 'ieee-p1363' });
      return encodeCoseSign1({ protected: protectedHeader, payload, signature: new Uint8Array(signature) });
    },

    async close(): Promise<void> {
      closed = true;
      chain = null;
    },
  };
}
