// Privacy Pass wire structures for token type 0x0002 (publicly verifiable, blind RSA-2048; SPEC §10):
// TokenChallenge (RFC 9577 §2.1), TokenRequest/TokenResponse (RFC 9578 §6.1–6.2), Token (RFC 9577 §2.2,
// RFC 9578 §6.4), the issuer directory (RFC 9578 §4) and the PrivateToken HTTP headers (RFC 9577 §2).

import { createHash } from 'node:crypto';
import { PrivacyPassError } from './privacypass-error.js';

/** RFC 9578 §8.2.1: Blind RSA (2048-bit), the only token type this project uses. */
export const TOKEN_TYPE_BLIND_RSA = 0x0002;
/** RFC 9578 §6: Nk = 256 for token type 0x0002; Nid = 32 (SHA-256). */
export const NK = 256;
export const NONCE_LENGTH = 32, CHALLENGE_DIGEST_LENGTH = 32, TOKEN_KEY_ID_LENGTH = 32;
export const REDEMPTION_CONTEXT_LENGTHS: readonly number[] = [0, 32];
export const TOKEN_REQUEST_LENGTH = 2 + 1 + NK;
export const TOKEN_LENGTH = 2 + NONCE_LENGTH + CHALLENGE_DIGEST_LENGTH + TOKEN_KEY_ID_LENGTH + NK;
/** No PrivateToken header we send or accept comes near this; longer is refused unread. */
export const MAX_HEADER_LENGTH = 8192;

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

function copy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

// RFC 9577 §2.1.1: issuer_name and origin_info are ASCII; we take the visible characters only.
const VISIBLE_ASCII = /^[\x21-\x7e]*$/;

/** Reads big-endian fields off a view of exactly `bytes` (its byteOffset included). */
class Reader {
  private readonly view: DataView;
  private at = 0;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(length: number): void {
    if (this.at + length > this.bytes.length) throw new PrivacyPassError('bad_request');
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.at++);
  }

  u16(): number {
    this.need(2);
    const value = this.view.getUint16(this.at);
    this.at += 2;
    return value;
  }

  take(length: number): Uint8Array {
    this.need(length);
    return copy(this.bytes.subarray(this.at, (this.at += length)));
  }

  tokenType(): void {
    if (this.u16() !== TOKEN_TYPE_BLIND_RSA) throw new PrivacyPassError('unsupported_token_type');
  }

  /** Trailing bytes are refused: one encoding per value. */
  end(): void {
    if (this.at !== this.bytes.length) throw new PrivacyPassError('bad_request');
  }
}

function u16(value: number): Uint8Array {
  return Uint8Array.of(value >> 8, value & 0xff);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function requireBytes(value: Uint8Array, length: number, name: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) throw new TypeError(`${name} must be ${length} bytes`);
  return copy(value);
}

/** token_key_id = SHA-256 of the issuer key as RFC 9578 §6.5 encodes it (the RSASSA-PSS SPKI). */
export function tokenKeyId(spki: Uint8Array): Uint8Array {
  return sha256(spki);
}

/** RFC 9578 §6.1: the least significant byte of token_key_id. */
export function truncatedTokenKeyId(spki: Uint8Array): number {
  return tokenKeyId(spki)[TOKEN_KEY_ID_LENGTH - 1]!;
}

/*
 * RFC 9577 §2.1.1
 * struct {
 *   uint16_t token_type;
 *   opaque issuer_name<1..2^16-1>;
 *   opaque redemption_context<0..32>;
 *   opaque origin_info<0..2^16-1>;
 * } TokenChallenge;
 */
export class TokenChallenge {
  readonly tokenType = TOKEN_TYPE_BLIND_RSA;
  readonly issuerName: string;
  readonly redemptionContext: Uint8Array;
  readonly originInfo: string;

  constructor(fields: { issuerName: string; redemptionContext: Uint8Array; originInfo: string }) {
    const { issuerName, redemptionContext, originInfo } = fields;
    if (typeof issuerName !== 'string' || !VISIBLE_ASCII.test(issuerName) || issuerName.length < 1 || issuerName.length > 0xffff) {
      throw new TypeError('issuerName must be 1..65535 visible ASCII characters');
    }
    if (!(redemptionContext instanceof Uint8Array) || !REDEMPTION_CONTEXT_LENGTHS.includes(redemptionContext.length)) {
      throw new TypeError('redemptionContext must be 0 or 32 bytes');
    }
    if (typeof originInfo !== 'string' || !VISIBLE_ASCII.test(originInfo) || originInfo.length > 0xffff) {
      throw new TypeError('originInfo must be 0..65535 visible ASCII characters');
    }
    this.issuerName = issuerName;
    this.redemptionContext = copy(redemptionContext);
    this.originInfo = originInfo;
  }

  static decode(bytes: Uint8Array): TokenChallenge {
    const reader = new Reader(bytes);
    reader.tokenType();
    const issuerName = Buffer.from(reader.take(reader.u16())).toString('latin1');
    const redemptionContext = reader.take(reader.u8());
    const originInfo = Buffer.from(reader.take(reader.u16())).toString('latin1');
    reader.end();
    if (issuerName.length === 0 || !VISIBLE_ASCII.test(issuerName) || !VISIBLE_ASCII.test(originInfo)) throw new PrivacyPassError('bad_request');
    if (!REDEMPTION_CONTEXT_LENGTHS.includes(redemptionContext.length)) throw new PrivacyPassError('bad_request');
    return new TokenChallenge({ issuerName, redemptionContext, originInfo });
  }

  encode(): Uint8Array {
    const issuerName = new Uint8Array(Buffer.from(this.issuerName, 'latin1'));
    const originInfo = new Uint8Array(Buffer.from(this.originInfo, 'latin1'));
    return concat(
      u16(this.tokenType),
      u16(issuerName.length), issuerName,
      Uint8Array.of(this.redemptionContext.length), this.redemptionContext,
      u16(originInfo.length), originInfo,
    );
  }

  /** RFC 9578 §6.1: challenge_digest = SHA-256(TokenChallenge). */
  digest(): Uint8Array {
    return sha256(this.encode());
  }
}

/*
 * RFC 9578 §6.1
 * struct {
 *   uint16_t token_type = 0x0002;
 *   uint8_t truncated_token_key_id;
 *   uint8_t blinded_msg[Nk];
 * } TokenRequest;
 */
export class TokenRequest {
  readonly tokenType = TOKEN_TYPE_BLIND_RSA;
  readonly truncatedTokenKeyId: number;
  readonly blindedMsg: Uint8Array;

  constructor(truncatedTokenKeyId: number, blindedMsg: Uint8Array) {
    if (!Number.isInteger(truncatedTokenKeyId) || truncatedTokenKeyId < 0 || truncatedTokenKeyId > 0xff) {
      throw new TypeError('truncatedTokenKeyId must be a byte');
    }
    this.truncatedTokenKeyId = truncatedTokenKeyId;
    this.blindedMsg = requireBytes(blindedMsg, NK, 'blindedMsg');
  }

  static decode(bytes: Uint8Array): TokenRequest {
    const reader = new Reader(bytes);
    reader.tokenType();
    const request = new TokenRequest(reader.u8(), reader.take(NK));
    reader.end();
    return request;
  }

  encode(): Uint8Array {
    return concat(u16(this.tokenType), Uint8Array.of(this.truncatedTokenKeyId), this.blindedMsg);
  }
}

/*
 * RFC 9578 §6.2
 * struct {
 *   uint8_t blind_sig[Nk];
 * } TokenResponse;
 */
export class TokenResponse {
  readonly blindSig: Uint8Array;

  constructor(blindSig: Uint8Array) {
    this.blindSig = requireBytes(blindSig, NK, 'blindSig');
  }

  static decode(bytes: Uint8Array): TokenResponse {
    const reader = new Reader(bytes);
    const response = new TokenResponse(reader.take(NK));
    reader.end();
    return response;
  }

  encode(): Uint8Array {
    return copy(this.blindSig);
  }
}

/*
 * RFC 9577 §2.2, RFC 9578 §6.4
 * struct {
 *   uint16_t token_type = 0x0002;
 *   uint8_t nonce[32];
 *   uint8_t challenge_digest[32];
 *   uint8_t token_key_id[32];
 *   uint8_t authenticator[Nk];
 * } Token;
 */
export class Token {
  readonly tokenType = TOKEN_TYPE_BLIND_RSA;
  readonly nonce: Uint8Array;
  readonly challengeDigest: Uint8Array;
  readonly tokenKeyId: Uint8Array;
  readonly authenticator: Uint8Array;

  constructor(fields: { nonce: Uint8Array; challengeDigest: Uint8Array; tokenKeyId: Uint8Array; authenticator: Uint8Array }) {
    this.nonce = requireBytes(fields.nonce, NONCE_LENGTH, 'nonce');
    this.challengeDigest = requireBytes(fields.challengeDigest, CHALLENGE_DIGEST_LENGTH, 'challengeDigest');
    this.tokenKeyId = requireBytes(fields.tokenKeyId, TOKEN_KEY_ID_LENGTH, 'tokenKeyId');
    this.authenticator = requireBytes(fields.authenticator, NK, 'authenticator');
  }

  static decode(bytes: Uint8Array): Token {
    const reader = new Reader(bytes);
    reader.tokenType();
    const nonce = reader.take(NONCE_LENGTH);
    const challengeDigest = reader.take(CHALLENGE_DIGEST_LENGTH);
    const tokenKeyId = reader.take(TOKEN_KEY_ID_LENGTH);
    const authenticator = reader.take(NK);
    reader.end();
    return new Token({ nonce, challengeDigest, tokenKeyId, authenticator });
  }

  /** RFC 9578 §6.4: the signed message, token_type || nonce || challenge_digest || token_key_id. */
  authenticatorInput(): Uint8Array {
    return tokenInput(this.nonce, this.challengeDigest, this.tokenKeyId);
  }

  encode(): Uint8Array {
    return concat(this.authenticatorInput(), this.authenticator);
  }
}

/** RFC 9578 §6.1: token_input = token_type || nonce || challenge_digest || token_key_id. */
export function tokenInput(nonce: Uint8Array, challengeDigest: Uint8Array, tokenKeyId: Uint8Array): Uint8Array {
  return concat(
    u16(TOKEN_TYPE_BLIND_RSA),
    requireBytes(nonce, NONCE_LENGTH, 'nonce'),
    requireBytes(challengeDigest, CHALLENGE_DIGEST_LENGTH, 'challengeDigest'),
    requireBytes(tokenKeyId, TOKEN_KEY_ID_LENGTH, 'tokenKeyId'),
  );
}
