// Test helper: recipients (a fresh RSA-2048 key and an NSM-emulator document carrying it, as
// the enclave's key_request makes them, SPEC §5), the emulator as a real process, and openssl.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmulatorNsm, DEV_PCRS, type EmulatorOptions } from '../../../enclave/nsm/emulator.js';

export const MAIN = new URL('../main.ts', import.meta.url).pathname;
export const DEV_PCR0_HEX = Buffer.from(DEV_PCRS.pcr0).toString('hex');

export interface Recipient {
  privateKey: KeyObject;
  spki: Uint8Array;
}

export function newRecipient(modulusLength = 2048): Recipient {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength });
  return { privateKey, spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })) };
}

export type TestNsm = Awaited<ReturnType<typeof createEmulatorNsm>>;

export const newNsm = (options: EmulatorOptions = {}): Promise<TestNsm> => createEmulatorNsm(options);

/** The key_request document of SPEC §5: no nonce, user_data {"v": 1, "purpose": "kms"}. */
export function recipientDocument(nsm: TestNsm, spki: Uint8Array | null): Promise<Uint8Array> {
  return nsm.attestation({ publicKey: spki, nonce: null, userData: Uint8Array.of(0xa2, 0x61, 0x76, 0x01, 0x67, ...Buffer.from('purpose'), 0x63, ...Buffer.from('kms')) });
}

/** A state directory holding the NSM emulator's root and a policy allowing exactly `pcr0s`. */
export function stateDir(nsm: TestNsm, pcr0s: readonly string[] = [DEV_PCR0_HEX]): string {
  const dir = mkdtempSync(join(tmpdir(), 'dip-kms-'));
  writeFileSync(join(dir, 'nsm-root.pem'), nsm.rootCertificatePem);
  writeFileSync(join(dir, 'kms-pcr-policy.txt'), `# allowed PCR0 (ImageSha384)\n${pcr0s.join('\n')}\n`);
  return dir;
}

/** Opens a CiphertextForRecipient with openssl, as an independent CMS implementation. */
export function opensslDecrypt(cms: Uint8Array, recipient: Recipient): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'dip-kms-openssl-'));
  writeFileSync(join(dir, 'key.pem'), recipient.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(join(dir, 'cms.der'), cms);
  execFileSync('/usr/bin/openssl', ['cms', '-decrypt', '-inform', 'DER', '-in', join(dir, 'cms.der'), '-inkey', join(dir, 'key.pem'), '-binary', '-out', join(dir, 'out.bin')], { stdio: 'pipe' });
  return new Uint8Array(execFileSync('cat', [join(dir, 'out.bin')]));
}

export interface RunningEmulator {
  child: ChildProcess;
  url: string;
  arn: string;
  output: () => string;
  stop: () => Promise<number | null>;
}

/** Starts emulators/kms/main.ts on an ephemeral loopback port and waits for its two start lines. */
export function startEmulator(dir: string, extraArgs: readonly string[] = []): Promise<RunningEmulator> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--listen', '127.0.0.1:0', '--state-dir', dir, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DIP_BUILD: 'development' },
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the emulator exited with ${code}: ${stderr}`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const arn = /^kms: key (\S+)$/m.exec(stdout)?.[1];
      const url = /^kms: listening on (\S+)$/m.exec(stdout)?.[1];
      if (arn === undefined || url === undefined) return;
      child.removeAllListeners('exit');
      resolve({
        child,
        url,
        arn,
        output: () => stdout + stderr,
        stop: () =>
          new Promise((done) => {
            child.once('exit', (code) => done(code));
            child.kill('SIGTERM');
          }),
      });
    });
  });
}
