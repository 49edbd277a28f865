// The issuer's rules (SPEC §10): a TokenRequest under `Authorization: Bearer <SRT>` gets one blind
// signature per subscription version (sub, did), recorded atomically once with the SHA-256 of its
// TokenRequest. Pure of sockets and SQL: the SRT check, the keys and the record are handed in.

import { createHash } from 'node:crypto';
import { blindSign } from '../protocol/blind-rsa.js';
import { DipError } from '../protocol/errors.js';
import { PrivacyPassError } from '../protocol/privacypass-error.js';
import { TokenRequest } from '../protocol/privacypass.js';
import type { SrtVerifier } from '../protocol/srt.js';
import type { IssuanceOutcome } from '../store/token-issuance.js';
import { activeKeys, type IssuerKey } from './token-keys.js';

export type RecordIssuance = (sub: string, did: number, requestSha256: Uint8Array, response: Uint8Array) => Promise<IssuanceOutcome>;

export interface Issuer {
  readonly verifySrt: SrtVerifier;
  readonly keys: () => readonly IssuerKey[];
  readonly record: RecordIssuance;
}

/**
 * Answers one TokenRequest with its TokenResponse bytes, or throws a DipError: the SRT codes of
 * SPEC §2 (srt_invalid, srt_expired, not_entitled), `bad_request` for a request no active key can
 * sign (wrong type, unknown key id, blinded message ≥ n), `already_issued` for a second request.
 */
export async function issueToken(issuer: Issuer, srt: string | null, body: Uint8Array, now: number): Promise<Uint8Array> {
  if (srt === null) throw new DipError('srt_invalid');
  const { sub, did } = await issuer.verifySrt(srt, now);
  let request: TokenRequest;
  try {
    request = TokenRequest.decode(body);
  } catch (error) {
    if (error instanceof PrivacyPassError) throw new DipError('bad_request');
    throw error;
  }
  // RFC 9578 §6.3: a request for a key this issuer does not use now is refused before signing.
  const key = activeKeys(issuer.keys(), now).find((candidate) => candidate.truncatedId === request.truncatedTokenKeyId);
  if (key === undefined) throw new DipError('bad_request');
  let response: Uint8Array;
  try {
    response = blindSign(key.privateKey, request.blindedMsg);
  } catch (error) {
    if (error instanceof PrivacyPassError && error.code !== 'signing_failed') throw new DipError('bad_request');
    throw error;
  }
  const requestSha256 = new Uint8Array(createHash('sha256').update(body).digest());
  const outcome = await issuer.record(sub, did, requestSha256, response);
  if (outcome.kind === 'issued') return response;
  if (outcome.kind === 'same') return outcome.response;
  throw new DipError('already_issued');
}
