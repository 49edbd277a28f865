// The parent's side of key custody with AWS KMS (SPEC §9), through the official SDK: credentials
// from the SDK's default provider chain (the host's IAM role in production), region and endpoint
// configurable. Failures are two closed reasons; nothing of KMS's answer or error text is kept.

import { DecryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { DEPLOYMENT_CONTEXT_KEY, type Keyset } from './keyset.js';

/** `kms_unreachable`: no answer, a timeout or a KMS fault (worth retrying); `kms_refused`: KMS said no. */
export type KmsFailure = 'kms_unreachable' | 'kms_refused';

export class KmsCallError extends Error {
  override readonly name = 'KmsCallError';
  constructor(readonly reason: KmsFailure) {
    super(reason === 'kms_refused' ? 'KMS refused the request' : 'KMS did not answer');
  }
}

export interface GeneratedKey {
  ciphertextBlob: Uint8Array;
  ciphertextForRecipient: Uint8Array;
}

/** What the parent asks of KMS; a test may stand in for it. */
export interface KeyCustody {
  /** GenerateDataKey for the enclave whose key_request document is `document` (creating the keyset). */
  generateDataKey(kmsKeyId: string, deployment: string, document: Uint8Array): Promise<GeneratedKey>;
  /** Decrypt the keyset's blob for the enclave whose key_request document is `document`. */
  decrypt(keyset: Keyset, document: Uint8Array): Promise<Uint8Array>;
  close(): void;
}

export interface KmsSettings {
  region: string | null;
  endpoint: string | null;
  /** Per-call limit; the SDK's own retries happen inside it. */
  timeoutMs?: number;
}

/** Sorts an SDK failure: a service exception with a 4xx status is a refusal, anything else is not reaching KMS. */
export function kmsFailureOf(error: unknown): KmsFailure {
  const status = (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
  return status !== undefined && status >= 400 && status < 500 ? 'kms_refused' : 'kms_unreachable';
}

export function createKmsCustody(settings: KmsSettings): KeyCustody {
  // The SDK warns on Node < 22 about its releases after January 2027; the lockfile pins this one,
  // which supports the project's Node >= 20.19, and the warning would break the one-line journal.
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
  const client = new KMSClient({
    ...(settings.region === null ? {} : { region: settings.region }),
    ...(settings.endpoint === null ? {} : { endpoint: settings.endpoint }),
    maxAttempts: 3,
  });
  const timeoutMs = settings.timeoutMs ?? 10_000;
  const recipient = (document: Uint8Array) => ({ KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256' as const, AttestationDocument: document });

  async function send<T>(call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      return await call(AbortSignal.timeout(timeoutMs));
    } catch (error) {
      throw new KmsCallError(kmsFailureOf(error));
    }
  }

  return {
    async generateDataKey(kmsKeyId, deployment, document) {
      const answer = await send((abortSignal) =>
        client.send(
          new GenerateDataKeyCommand({ KeyId: kmsKeyId, KeySpec: 'AES_256', EncryptionContext: { [DEPLOYMENT_CONTEXT_KEY]: deployment }, Recipient: recipient(document) }),
          { abortSignal },
        ),
      );
      // With a recipient KMS never returns Plaintext (SPEC §9); an answer without both fields is not KMS's.
      if (answer.CiphertextBlob === undefined || answer.CiphertextForRecipient === undefined || answer.Plaintext !== undefined) throw new KmsCallError('kms_refused');
      return { ciphertextBlob: answer.CiphertextBlob, ciphertextForRecipient: answer.CiphertextForRecipient };
    },
    async decrypt(keyset, document) {
      const answer = await send((abortSignal) =>
        client.send(
          new DecryptCommand({
            CiphertextBlob: keyset.ciphertextBlob,
            KeyId: keyset.kmsKeyId,
            EncryptionContext: { [DEPLOYMENT_CONTEXT_KEY]: keyset.deployment },
            Recipient: recipient(document),
          }),
          { abortSignal },
        ),
      );
      if (answer.CiphertextForRecipient === undefined || answer.Plaintext !== undefined) throw new KmsCallError('kms_refused');
      return answer.CiphertextForRecipient;
    },
    close() {
      client.destroy();
    },
  };
}
