// Token type 0x0002 end to end (RFC 9578 §6.1–6.4, SPEC §10): the app blinds a token input into a
// TokenRequest and finalizes the TokenResponse into a Token; the issuer signs blindly; the DIP
// service verifies. Wire bytes live in privacypass.ts, the RSA in blind-rsa.ts.

import { randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { blind, blindSign, finalize, verify, type BlindRsaPublicKey } from './blind-rsa.js';
import { PrivacyPassError } from './privacypass-error.js';
import { NK, NONCE_LENGTH, Token, TokenChallenge, TokenRequest, TokenResponse, tokenInput, tokenKeyId } from './privacypass.js';

/** What the app keeps between its TokenRequest and the issuer's TokenResponse. */
export interface PendingToken {
  readonly tokenKey: BlindRsaPublicKey;
  readonly nonce: Uint8Array;
  readonly challengeDigest: Uint8Array;
  readonly tokenKeyId: Uint8Array;
  readonly inv: Uint8Array;
}

function requireTokenKey(tokenKey: BlindRsaPublicKey): Uint8Array {
  if (tokenKey.modulusBytes !== NK) throw new TypeError('token type 0x0002 needs a 2048-bit key');
  return tokenKeyId(tokenKey.spki);
}

/**
 * RFC 9578 §6.1, the client. `fixed` pins the nonce, the PSS salt and the blind's inverse, as the
 * published vectors do; without it all three are fresh.
 */
export function createTokenRequest(
  challenge: TokenChallenge,
  tokenKey: BlindRsaPublicKey,
  fixed?: { nonce: Uint8Array; salt: Uint8Array; inv: Uint8Array },
): { request: TokenRequest; pending: PendingToken } {
  const keyId = requireTokenKey(tokenKey);
  const nonce = fixed ? new Uint8Array(fixed.nonce) : new Uint8Array(randomBytes(NONCE_LENGTH));
  const challengeDigest = challenge.digest();
  const { blindedMsg, inv } = blind(tokenKey, tokenInput(nonce, challengeDigest, keyId), fixed);
  return {
    request: new TokenRequest(keyId[keyId.length - 1]!, blindedMsg),
    pending: { tokenKey, nonce, challengeDigest, tokenKeyId: keyId, inv },
  };
}

/**
 * RFC 9578 §6.3, the issuer: a request for another key is refused (400 there) before signing.
 * `tokenKey` is the public half of `privateKey`, as the issuer publishes it.
 */
export function issueTokenResponse(privateKey: KeyObject, tokenKey: BlindRsaPublicKey, request: TokenRequest): TokenResponse {
  const keyId = requireTokenKey(tokenKey);
  if (request.truncatedTokenKeyId !== keyId[keyId.length - 1]) throw new PrivacyPassError('bad_request');
  return new TokenResponse(blindSign(privateKey, request.blindedMsg));
}

/** RFC 9578 §6.4, the client: a response that does not finalize into a valid signature is refused. */
export function finalizeToken(pending: PendingToken, response: TokenResponse): Token {
  const input = tokenInput(pending.nonce, pending.challengeDigest, pending.tokenKeyId);
  const authenticator = finalize(pending.tokenKey, input, response.blindSig, pending.inv);
  return new Token({ nonce: pending.nonce, challengeDigest: pending.challengeDigest, tokenKeyId: pending.tokenKeyId, authenticator });
}

/**
 * RFC 9578 §5.4 / §6.4, the origin: the token names this key, answers this challenge, and its
 * authenticator is a valid RSASSA-PSS signature of its input. Spending the nonce is the caller's.
 */
export function verifyToken(token: Token, tokenKey: BlindRsaPublicKey, challenge: TokenChallenge): void {
  const keyId = requireTokenKey(tokenKey);
  if (!timingSafeEqual(token.tokenKeyId, keyId)) throw new PrivacyPassError('token_invalid');
  if (!timingSafeEqual(token.challengeDigest, challenge.digest())) throw new PrivacyPassError('token_invalid');
  if (!verify(tokenKey, token.authenticatorInput(), token.authenticator)) throw new PrivacyPassError('token_invalid');
}
