// The client's one error type. A failure reported by the parent or the enclave keeps its SPEC §6
// code (`fromServer` is true); a check the client makes itself fails with one of the local codes
// below. Messages are fixed strings per code: no token, subscription id or IP ever reaches one.

import { ERROR_MESSAGES, isErrorCode, type ErrorCode } from '../protocol/errors.js';

export const LOCAL_ERROR_MESSAGES = Object.freeze({
  attestation_failed: 'The attestation document did not verify.',
  jwks_mismatch: 'The published JWKS is not the one the attestation document binds.',
  http_failed: 'The server could not be reached or did not answer with the API.',
  response_invalid: 'The sealed response could not be opened or is malformed.',
  dat_invalid: 'The returned access token does not verify against the attested keys.',
  drt_unexpected: 'The returned refresh token does not have the expected header or claims.',
  token_unreadable: 'A token given to the client is not a readable JWT.',
  ip_unexpected: 'The returned IP is not the one expected.',
  request_too_large: 'The tokens do not fit the padded request size of SPEC §4.',
  reservation_mismatch: 'The reservation time does not match the refresh token.',
  backup_wrong_code: 'The backup could not be opened: wrong access code or altered backup.',
  backup_invalid: 'The backup is malformed or uses unsupported parameters.',
  backup_code_invalid: 'The backup code is mistyped or is not a backup code.',
  manifest_invalid: 'The PCR manifest is malformed.',
  manifest_empty: 'manifest lacks the measured PCR1 and PCR2 a client needs (make pcr-manifest writes them)',
  token_keys_invalid: 'The pinned token-keys configuration is malformed.',
  issuer_directory_invalid: 'The issuer directory is malformed or sends requests to another origin.',
  issuer_key_unpinned: 'The issuer offers a token key this release does not pin.',
  challenge_unexpected: 'The PrivateToken challenge differs from the one this release pins.',
  token_response_invalid: 'The TokenResponse does not finalize into a valid token under the pinned key.',
} as const);

export type LocalErrorCode = keyof typeof LOCAL_ERROR_MESSAGES;
export type ClientErrorCode = LocalErrorCode | ErrorCode;

export class ClientError extends Error {
  override readonly name = 'ClientError';

  /**
   * @param detail a further code from a fixed set (for example the failed attestation check),
   *   never input or secret data.
   */
  constructor(
    readonly code: ClientErrorCode,
    readonly fromServer = false,
    readonly detail?: string,
  ) {
    super(isErrorCode(code) ? ERROR_MESSAGES[code] : LOCAL_ERROR_MESSAGES[code]);
  }

  toJSON(): { code: ClientErrorCode; message: string; fromServer: boolean; detail?: string } {
    return { code: this.code, message: this.message, fromServer: this.fromServer, ...(this.detail === undefined ? {} : { detail: this.detail }) };
  }
}
