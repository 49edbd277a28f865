// The closed set of error codes (SPEC §6 and the codes §10–11 add), shared by the enclave wire protocol, the parent's
// HTTP API, the client and the tests. Messages are fixed strings chosen here: no error ever
// carries a token, a subscription id, an IP or any other input.

export const ERROR_HTTP_STATUS = {
  bad_request: 400,
  bad_frame: 400,
  unknown_op: 400,
  decrypt_failed: 403,
  srt_invalid: 403,
  srt_expired: 403,
  not_entitled: 403,
  drt_invalid: 403,
  drt_expired: 403,
  subject_mismatch: 403,
  version_mismatch: 403,
  ip_mismatch: 403,
  not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  unsupported_media_type: 415,
  already_issued: 409,
  token_spent: 409,
  token_invalid: 401,
  ip_unavailable: 410,
  pool_exhausted: 503,
  key_unknown: 421,
  rate_limited: 429,
  internal: 500,
  enclave_unavailable: 503,
  keys_unavailable: 503,
  clock_untrusted: 503,
  enclave_timeout: 504,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_HTTP_STATUS;

export const ERROR_CODES = Object.freeze(Object.keys(ERROR_HTTP_STATUS)) as readonly ErrorCode[];

export const ERROR_MESSAGES: Readonly<Record<ErrorCode, string>> = Object.freeze({
  bad_request: 'The request is malformed.',
  bad_frame: 'The frame is malformed.',
  unknown_op: 'The operation is unknown.',
  decrypt_failed: 'The sealed request could not be opened.',
  srt_invalid: 'The subscription receipt token is invalid.',
  srt_expired: 'The subscription receipt token has expired.',
  not_entitled: 'The subscription does not include a dedicated IP.',
  drt_invalid: 'The dedicated IP refresh token is invalid.',
  drt_expired: 'The dedicated IP refresh token has expired.',
  subject_mismatch: 'The refresh token belongs to another subscription.',
  version_mismatch: 'The refresh token is for an older subscription version.',
  ip_mismatch: 'The refresh token is for another IP.',
  not_found: 'No such route.',
  method_not_allowed: 'Method not allowed on this route.',
  payload_too_large: 'The request body is too large.',
  unsupported_media_type: 'The request body must be application/json.',
  already_issued: 'A token was already issued for this subscription version.',
  token_spent: 'The token has already been spent.',
  token_invalid: 'The token is invalid.',
  ip_unavailable: 'The IP is not reserved.',
  pool_exhausted: 'No dedicated IP is available.',
  key_unknown: 'The request is sealed to a key this enclave does not hold; attest again.',
  rate_limited: 'Too many requests; try again later.',
  internal: 'Internal error.',
  enclave_unavailable: 'The enclave is unavailable.',
  keys_unavailable: 'The enclave does not hold its keys yet.',
  clock_untrusted: 'The enclave clock is not trusted yet.',
  enclave_timeout: 'The enclave did not answer in time.',
});

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_HTTP_STATUS, value);
}

export function httpStatusOf(code: ErrorCode): number {
  return ERROR_HTTP_STATUS[code];
}

/**
 * The one error type for bad input from outside. Its message is always the fixed string of its
 * code, so nothing an attacker sent (nor anything secret) can end up in a log through it.
 * The cause of a crypto or parse failure is deliberately not kept.
 */
export class DipError extends Error {
  override readonly name = 'DipError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode) {
    super(ERROR_MESSAGES[code]);
    this.code = code;
  }

  get httpStatus(): number {
    return ERROR_HTTP_STATUS[this.code];
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Maps anything thrown to a wire error: a DipError keeps its code, anything else is `internal`. */
export function toDipError(error: unknown): DipError {
  return error instanceof DipError ? error : new DipError('internal');
}
