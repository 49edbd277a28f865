// Test helper: the KMS emulator's real domain and HTTP server (emulators/kms), in-process, for the
// parent's key custody tests (SPEC §9). Every development enclave start makes a new NSM root, so
// this double trusts a list of roots (`trust`), trying each as AWS would try its one root; it
// records what it answered so privacy tests can look for it in the parent's output.

import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { DEV_PCRS } from '../../enclave/nsm/emulator.js';
import { openBlob, sealBlob } from '../../emulators/kms/blob.js';
import { KmsError } from '../../emulators/kms/errors.js';
import { loadOrCreateKey } from '../../emulators/kms/keystore.js';
import { createKms, type Kms, type KmsAnswer, type KmsKey } from '../../emulators/kms/kms.js';
import { createKmsServer } from '../../emulators/kms/server.js';
import { TEST_MASTER_SECRET } from './enclave.js';

/** Dummy credentials for the SDK's default provider chain (the emulator checks none). */
export const DUMMY_AWS_ENV = { AWS_ACCESS_KEY_ID: 'AKIDTESTDUMMY', AWS_SECRET_ACCESS_KEY: 'dummy-secret', AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true' };

export interface TestKms {
  readonly url: string;
  readonly port: number;
  readonly key: KmsKey;
  /** Trusts documents under this root too (a development enclave's nsm-root.pem). */
  trust(rootPem: string): void;
  /** Every CiphertextBlob and CiphertextForRecipient answered, base64 as on the wire. */
  readonly answered: string[];
  /** Operation and outcome of every request. */
  readonly log: string[];
  /** The 32 bytes a CiphertextBlob holds (SPEC §3 M), for privacy checks. */
  plaintextOf(blob: Uint8Array, deployment: string): Uint8Array | null;
  close(): Promise<void>;
}

/** Starts the emulator on 127.0.0.1:`port` (0: any) with the key in `stateDir`/kms-key.json. */
export async function startTestKms(stateDir: string, port = 0): Promise<TestKms> {
  const { key } = loadOrCreateKey(stateDir);
  const allowedPcr0 = new Set([Buffer.from(DEV_PCRS.pcr0).toString('hex')]);
  const domains: Kms[] = [];
  const answered: string[] = [];
  const log: string[] = [];
  const tryEach = (operation: keyof Kms) => (request: unknown): KmsAnswer => {
    let refusal: unknown = new KmsError('attestation_invalid');
    for (const kms of domains) {
      try {
        const answer = kms[operation](request);
        for (const field of ['CiphertextBlob', 'CiphertextForRecipient']) if (answer[field] !== undefined) answered.push(answer[field]!);
        return answer;
      } catch (error) {
        refusal = error;
        // Another root may have signed it; any other refusal is the answer.
        if (!(error instanceof KmsError) || error.reason !== 'attestation_invalid') throw error;
      }
    }
    throw refusal;
  };
  const server: Server = createKmsServer({ generateDataKey: tryEach('generateDataKey'), decrypt: tryEach('decrypt') }, (operation, outcome) => log.push(`${operation} ${outcome}`));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    key,
    trust: (rootPem) => void domains.push(createKms({ key, policy: { rootPem, allowedPcr0 }, allowNoRecipient: false })),
    answered,
    log,
    plaintextOf: (blob, deployment) => openBlob(key.material, key.keyId, { 'dip:deployment': deployment }, blob),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface TestCustody {
  kms: TestKms;
  keysetPath: string;
  /** The parent's --keyset, --kms-endpoint and --kms-region. */
  args: string[];
  env: Record<string, string>;
  close(): Promise<void>;
}

/**
 * A KMS emulator and a keyset whose blob holds TEST_MASTER_SECRET, the M spawnEnclave unlocks
 * with by default: a parent with these unlocks locked enclaves to the same secret (SPEC §9).
 */
export async function startTestCustody(): Promise<TestCustody> {
  const dir = mkdtempSync(join(tmpdir(), 'dip-custody-'));
  const kms = await startTestKms(dir);
  const deployment = 'test';
  const blob = sealBlob(kms.key.material, kms.key.keyId, { 'dip:deployment': deployment }, TEST_MASTER_SECRET);
  const mCommit = createHash('sha256').update('dip m commit v1').update(TEST_MASTER_SECRET).digest();
  const keysetPath = join(dir, 'keyset.json');
  writeFileSync(
    keysetPath,
    JSON.stringify({ v: 1, kms_key_id: kms.key.arn, encryption_context: { 'dip:deployment': deployment }, ciphertext_blob: Buffer.from(blob).toString('base64url'), m_commit: mCommit.toString('base64url') }),
  );
  return {
    kms,
    keysetPath,
    args: ['--keyset', keysetPath, '--kms-endpoint', kms.url, '--kms-region', 'us-east-1'],
    env: DUMMY_AWS_ENV,
    async close() {
      await kms.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
