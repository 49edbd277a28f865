// The closed set of failures of the Privacy Pass protocol layer (SPEC §10; RFC 9578, RFC 9474).
// Like DipError, messages are fixed strings: a bad token, request or header never reaches a log
// through an error. The services map these codes to their HTTP answers (SPEC §10–11).

export const PRIVACY_PASS_ERROR_MESSAGES = Object.freeze({
  bad_request: 'The Privacy Pass message is malformed.',
  unsupported_token_type: 'The token type is not supported.',
  blinded_msg_out_of_range: 'The blinded message is not smaller than the key modulus.',
  signing_failed: 'The blind signature failed its own check.',
  blind_sig_invalid: 'The blind signature does not verify under the issuer key.',
  token_invalid: 'The token is invalid.',
} as const);

export type PrivacyPassErrorCode = keyof typeof PRIVACY_PASS_ERROR_MESSAGES;

export const PRIVACY_PASS_ERROR_CODES = Object.freeze(Object.keys(PRIVACY_PASS_ERROR_MESSAGES)) as readonly PrivacyPassErrorCode[];

/** Bad input from outside. The cause is deliberately not kept: it could quote the input. */
export class PrivacyPassError extends Error {
  override readonly name = 'PrivacyPassError';
  readonly code: PrivacyPassErrorCode;

  constructor(code: PrivacyPassErrorCode) {
    super(PRIVACY_PASS_ERROR_MESSAGES[code]);
    this.code = code;
  }
}
