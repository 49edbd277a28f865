// The KMS emulator's refusals, as KMS's JSON protocol writes them: {"__type": "...Exception",
// "message": ...} with HTTP 400 (KMS API reference, "Errors"). A closed set of reasons, each
// with a fixed message that never echoes the request.

export const KMS_REFUSALS = {
  // HTTP and protocol (server.ts)
  authorization_missing: ['MissingAuthenticationTokenException', 'Missing Authentication Token'],
  operation_unknown: ['UnknownOperationException', 'The X-Amz-Target is not TrentService.GenerateDataKey or TrentService.Decrypt'],
  body_unreadable: ['SerializationException', 'The body must be JSON sent as application/x-amz-json-1.1'],
  body_too_large: ['ValidationException', 'The request body is too large'],
  // Request fields (kms.ts)
  body_not_object: ['ValidationException', 'The request body must be a JSON object'],
  key_id_missing: ['ValidationException', 'KeyId must be a non-empty string'],
  key_spec_invalid: ['ValidationException', 'Specify either KeySpec AES_256 or NumberOfBytes 32'],
  encryption_context_invalid: ['ValidationException', 'EncryptionContext must map strings to strings'],
  ciphertext_blob_missing: ['ValidationException', 'CiphertextBlob must be base64 of 1 to 6144 bytes'],
  recipient_invalid: ['ValidationException', 'Recipient needs KeyEncryptionAlgorithm RSAES_OAEP_SHA_256 and an AttestationDocument of 1 to 262144 bytes'],
  // The recipient's attestation document (recipient.ts)
  attestation_invalid: ['ValidationException', 'The attestation document could not be verified'],
  attestation_stale: ['ValidationException', 'The attestation document is older than 5 minutes or dated in the future'],
  recipient_key_invalid: ['ValidationException', 'The attestation document has no RSA-2048 public_key'],
  pcr0_denied: ['AccessDeniedException', 'The key policy does not allow this image (kms:RecipientAttestation:ImageSha384)'],
  recipient_required: ['AccessDeniedException', 'The key policy requires a Recipient attestation document'],
  // The key and the ciphertext (kms.ts)
  key_not_found: ['NotFoundException', 'The KMS key does not exist'],
  key_pending_deletion: ['KMSInvalidStateException', 'The KMS key is pending deletion'],
  ciphertext_invalid: ['InvalidCiphertextException', 'The ciphertext or its encryption context is not valid'],
} as const satisfies Record<string, readonly [string, string]>;

export type KmsRefusal = keyof typeof KMS_REFUSALS;

export class KmsError extends Error {
  override readonly name = 'KmsError';
  /** KMS's exception name, the `__type` on the wire. */
  readonly type: string;

  constructor(readonly reason: KmsRefusal) {
    super(KMS_REFUSALS[reason][1]);
    this.type = KMS_REFUSALS[reason][0];
  }

  /** KMS answers every client error with 400 (its API reference lists no other for these). */
  get status(): number {
    return 400;
  }

  toJSON(): { __type: string; message: string } {
    return { __type: this.type, message: this.message };
  }
}
