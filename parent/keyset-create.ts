// `keyset create` (SPEC §9): the operator's one-time step that has KMS make a deployment's master
// secret for one freshly started enclave: key_request → GenerateDataKey with the enclave as
// recipient → unlock → the keyset file, written once. M never exists in the clear outside the enclave.

import { toDipError } from '../protocol/errors.js';
import type { Op, RequestBodies, ResponseBodies } from '../protocol/messages.js';
import { writeKeysetOnce, type Keyset } from './keyset.js';
import { KmsCallError, type KeyCustody } from './kms.js';
import { StartupError } from './startup.js';

export interface EnclaveCaller {
  call<K extends Op>(op: K, body: RequestBodies[K]): Promise<ResponseBodies[K]>;
}

export interface KeysetRequest {
  path: string;
  kmsKeyId: string;
  deployment: string;
}

/** Runs the exchange and writes the keyset; every failure is a StartupError with its code. */
export async function createKeyset(enclave: EnclaveCaller, custody: KeyCustody, request: KeysetRequest): Promise<Keyset> {
  const ask = async <K extends Op>(op: K, body: RequestBodies[K]): Promise<ResponseBodies[K]> => {
    try {
      return await enclave.call(op, body);
    } catch (error) {
      const code = toDipError(error).code;
      throw new StartupError(code === 'enclave_unavailable' || code === 'enclave_timeout' ? 'enclave_unavailable' : 'enclave_refused');
    }
  };
  // An enclave that holds some M already would refuse a new one, or worse, the keyset would name
  // a secret that enclave was never given; refuse before KMS makes a key.
  if ((await ask('health', {})).status === 'ok') throw new StartupError('enclave_already_unlocked');
  const { document } = await ask('key_request', {});
  let generated;
  try {
    generated = await custody.generateDataKey(request.kmsKeyId, request.deployment, document);
  } catch (error) {
    throw new StartupError(error instanceof KmsCallError ? error.reason : 'kms_unreachable');
  }
  const unlocked = await ask('unlock', { recipient_ciphertext: generated.ciphertextForRecipient });
  const keyset: Keyset = { kmsKeyId: request.kmsKeyId, deployment: request.deployment, ciphertextBlob: generated.ciphertextBlob, mCommit: unlocked.m_commit };
  let written: boolean;
  try {
    written = writeKeysetOnce(request.path, keyset);
  } catch {
    throw new StartupError('keyset_write_failed');
  }
  if (!written) throw new StartupError('keyset_exists');
  return keyset;
}
