// The emulator's key material in its state directory (SPEC §8): DIR/kms-key.json, made on the
// first start and read on every later one, so CiphertextBlobs (the keyset of SPEC §9) keep
// decrypting after a restart. Written atomically with mode 0600: it holds the secret.

import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyState, KmsKey } from './kms.js';

export const KEY_FILE = 'kms-key.json';
/** The development key's ARN: a region and an account that are visibly not real. */
const ARN_PREFIX = 'arn:aws:kms:us-east-1:000000000000:key/';

interface KeyFile {
  v: 1;
  keyId: string;
  arn: string;
  keyState: KeyState;
  material: string;
}

/** The key file is unreadable or not one of ours; main stops rather than make a second key. */
export class KeyFileError extends Error {
  override readonly name = 'KeyFileError';
  constructor() {
    super(`${KEY_FILE} is not a valid KMS emulator key file; move it away to start with a new key`);
  }
}

function parseKeyFile(text: string): KmsKey {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new KeyFileError();
  }
  if (typeof parsed !== 'object' || parsed === null) throw new KeyFileError();
  const file = parsed as Partial<KeyFile>;
  const material = typeof file.material === 'string' && /^[A-Za-z0-9_-]{43}$/.test(file.material) ? Buffer.from(file.material, 'base64url') : null;
  if (
    file.v !== 1 || material === null ||
    typeof file.keyId !== 'string' || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(file.keyId) ||
    file.arn !== ARN_PREFIX + file.keyId || (file.keyState !== 'Enabled' && file.keyState !== 'PendingDeletion')
  ) {
    throw new KeyFileError();
  }
  return { keyId: file.keyId, arn: file.arn, keyState: file.keyState, material: new Uint8Array(material) };
}

function writeAtomically(path: string, text: string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text, { mode: 0o600, flag: 'wx' });
  // The mode of a new file is masked by the umask; the secret must not be group- or world-readable.
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}

/** Reads DIR/kms-key.json, or makes a new key there when the file does not exist. */
export function loadOrCreateKey(stateDir: string): { key: KmsKey; created: boolean } {
  const path = join(stateDir, KEY_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new KeyFileError();
    mkdirSync(stateDir, { recursive: true });
    const keyId = randomUUID();
    const key: KmsKey = { keyId, arn: ARN_PREFIX + keyId, keyState: 'Enabled', material: new Uint8Array(randomBytes(32)) };
    const file: KeyFile = { v: 1, keyId, arn: key.arn, keyState: key.keyState, material: Buffer.from(key.material).toString('base64url') };
    writeAtomically(path, `${JSON.stringify(file, null, 2)}\n`);
    return { key, created: true };
  }
  return { key: parseKeyFile(text), created: false };
}
