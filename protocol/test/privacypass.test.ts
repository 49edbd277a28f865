import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import { intToBytes, modInverse, bytesToInt, publicKeyFromNumbers, publicKeyOf } from '../blind-rsa.js';
import { PrivacyPassError, PRIVACY_PASS_ERROR_CODES, PRIVACY_PASS_ERROR_MESSAGES, type PrivacyPassErrorCode } from '../privacypass-error.js';
import { decodeTokenKey } from '../privacypass-http.js';
import { createTokenRequest, finalizeToken, issueTokenResponse, verifyToken } from '../privacypass-issuance.js';
import { Token, TokenChallenge, TokenRequest, TokenResponse, tokenInput, tokenKeyId, truncatedTokenKeyId } from '../privacypass.js';

interface Type2Vector { skS: string; pkS: string; token_challenge: string; nonce: string; blind: string; salt: string; token_request: string; token_response: string; token: string }
const vectors = JSON.parse(readFileSync(new URL('../../test/vectors/rfc9578-type2-issuance.json', import.meta.url), 'utf8')) as Type2Vector[];

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const at = (bytes: Uint8Array, offset: number): Uint8Array => { const b = new Uint8Array(bytes.length + offset + 3); b.set(bytes, offset); return b.subarray(offset, offset + bytes.length); };

function rejects(fn: () => unknown, code: PrivacyPassErrorCode, what: string): void {
  assert.throws(fn, (error: unknown) => error instanceof PrivacyPassError && error.code === code && error.message === PRIVACY_PASS_ERROR_MESSAGES[code], what);
}

const issuerKey = createPrivateKey(Buffer.from(vectors[0]!.skS, 'hex').toString('latin1'));
const tokenKey = publicKeyOf(issuerKey);
const challenge = new TokenChallenge({ issuerName: 'issuer.example', redemptionContext: new Uint8Array(0), originInfo: 'dip.example' });

vectors.forEach((v, i) => {
  test(`RFC 9578 type-2 issuance vector ${i}: challenge digest, TokenRequest, TokenResponse and Token byte for byte`, () => {
    const key = decodeTokenKey(hex(v.pkS));
    const sk = createPrivateKey(Buffer.from(v.skS, 'hex').toString('latin1'));
    assert.equal(toHex(publicKeyOf(sk).spki), v.pkS, 'pkS is the RFC 9578 §6.5 SPKI of skS');
    const tokenChallenge = TokenChallenge.decode(hex(v.token_challenge));
    assert.equal(toHex(tokenChallenge.encode()), v.token_challenge, 'TokenChallenge round-trips');
    // pat-go's "blind" is r itself; RFC 9474's API carries its inverse.
    const inv = intToBytes(modInverse(bytesToInt(hex(v.blind)), key.n)!, 256);
    const { request, pending } = createTokenRequest(tokenChallenge, key, { nonce: hex(v.nonce), salt: hex(v.salt), inv });
    assert.equal(toHex(request.encode()), v.token_request, 'TokenRequest');
    const response = issueTokenResponse(sk, key, TokenRequest.decode(hex(v.token_request)));
    assert.equal(toHex(response.encode()), v.token_response, 'TokenResponse');
    const token = finalizeToken(pending, TokenResponse.decode(hex(v.token_response)));
    assert.equal(toHex(token.encode()), v.token, 'Token');
    assert.equal(toHex(token.challengeDigest), toHex(tokenChallenge.digest()), 'challenge_digest = SHA-256(TokenChallenge)');
    verifyToken(Token.decode(hex(v.token)), key, tokenChallenge);
  });
});

test('a token issued with fresh randomness verifies, once per challenge and key', () => {
  const { request, pending } = createTokenRequest(challenge, tokenKey);
  assert.equal(request.truncatedTokenKeyId, truncatedTokenKeyId(tokenKey.spki), 'truncated key id is the last byte');
  const token = finalizeToken(pending, issueTokenResponse(issuerKey, tokenKey, request));
  verifyToken(token, tokenKey, challenge);
  const other = new TokenChallenge({ issuerName: 'issuer.example', redemptionContext: new Uint8Array(0), originInfo: 'other.example' });
  rejects(() => verifyToken(token, tokenKey, other), 'token_invalid', 'another challenge');
  const wrongKeyId = new Token({ ...token, tokenKeyId: new Uint8Array(32) });
  rejects(() => verifyToken(wrongKeyId, tokenKey, challenge), 'token_invalid', 'another key id');
  const forged = new Token({ ...token, nonce: new Uint8Array(32) });
  rejects(() => verifyToken(forged, tokenKey, challenge), 'token_invalid', 'another nonce under the same signature');
});

test('the issuer refuses a TokenRequest for another key before signing', () => {
  const { request } = createTokenRequest(challenge, tokenKey);
  const other = new TokenRequest((request.truncatedTokenKeyId + 1) & 0xff, request.blindedMsg);
  rejects(() => issueTokenResponse(issuerKey, tokenKey, other), 'bad_request', 'truncated key id differs');
});

test('finalizeToken refuses a TokenResponse that is not the signature of this request', () => {
  const first = createTokenRequest(challenge, tokenKey);
  const second = createTokenRequest(challenge, tokenKey);
  const response = issueTokenResponse(issuerKey, tokenKey, second.request);
  rejects(() => finalizeToken(first.pending, response), 'blind_sig_invalid', 'response to another request');
});

test('token type 0x0002 refuses a key that is not 2048 bits (misuse)', () => {
  const big = publicKeyFromNumbers((1n << 4095n) + 1n, 65537n);
  assert.throws(() => createTokenRequest(challenge, big), TypeError, '4096-bit key');
});

test('tokenInput is token_type || nonce || challenge_digest || token_key_id', () => {
  const input = tokenInput(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2), new Uint8Array(32).fill(3));
  assert.equal(toHex(input), '0002' + '01'.repeat(32) + '02'.repeat(32) + '03'.repeat(32), 'layout');
  assert.equal(toHex(tokenKeyId(tokenKey.spki)), toHex(Token.decode(hex(vectors[0]!.token)).tokenKeyId), 'token_key_id = SHA-256(SPKI)');
});

test('every structure round-trips, also from a subarray at an odd offset', () => {
  const c = new TokenChallenge({ issuerName: 'i', redemptionContext: new Uint8Array(32).fill(7), originInfo: 'a.example,b.example' });
  assert.deepEqual(TokenChallenge.decode(at(c.encode(), 3)), c, 'TokenChallenge');
  const r = new TokenRequest(0xab, new Uint8Array(256).fill(5));
  assert.deepEqual(TokenRequest.decode(at(r.encode(), 5)), r, 'TokenRequest');
  const s = new TokenResponse(new Uint8Array(256).fill(6));
  assert.deepEqual(TokenResponse.decode(at(s.encode(), 1)), s, 'TokenResponse');
  const t = Token.decode(hex(vectors[1]!.token));
  assert.deepEqual(Token.decode(at(t.encode(), 7)), t, 'Token');
  const maximal = new TokenChallenge({ issuerName: 'x'.repeat(0xffff), redemptionContext: new Uint8Array(0), originInfo: 'y'.repeat(0xffff) });
  assert.deepEqual(TokenChallenge.decode(maximal.encode()), maximal, '2^16 − 1 byte names');
});

test('decoders refuse trailing bytes, wrong lengths, wrong token types and bad names', () => {
  const c = challenge.encode();
  const r = new TokenRequest(1, new Uint8Array(256)).encode();
  const t = hex(vectors[0]!.token);
  const type = (bytes: Uint8Array, value: number): Uint8Array => { const out = new Uint8Array(bytes); out[0] = value >> 8; out[1] = value & 0xff; return out; };
  const challengeWith = (issuer: number[], context: number[], origin: number[]): Uint8Array =>
    Uint8Array.from([0, 2, issuer.length >> 8, issuer.length & 0xff, ...issuer, context.length, ...context, origin.length >> 8, origin.length & 0xff, ...origin]);
  const table: [string, () => unknown, PrivacyPassErrorCode][] = [
    ['challenge: trailing byte', () => TokenChallenge.decode(Uint8Array.from([...c, 0])), 'bad_request'],
    ['challenge: cut short', () => TokenChallenge.decode(c.subarray(0, c.length - 1)), 'bad_request'],
    ['challenge: empty', () => TokenChallenge.decode(new Uint8Array(0)), 'bad_request'],
    ['challenge: token type 1', () => TokenChallenge.decode(type(c, 0x0001)), 'unsupported_token_type'],
    ['challenge: token type 0x0202', () => TokenChallenge.decode(type(c, 0x0202)), 'unsupported_token_type'],
    ['challenge: empty issuer name', () => TokenChallenge.decode(challengeWith([], [], [0x61])), 'bad_request'],
    ['challenge: 31-byte context', () => TokenChallenge.decode(challengeWith([0x61], new Array(31).fill(0), [])), 'bad_request'],
    ['challenge: 33-byte context', () => TokenChallenge.decode(challengeWith([0x61], new Array(33).fill(0), [])), 'bad_request'],
    ['challenge: non-ASCII issuer', () => TokenChallenge.decode(challengeWith([0xc3, 0xa9], [], [])), 'bad_request'],
    ['challenge: space in origin', () => TokenChallenge.decode(challengeWith([0x61], [], [0x20])), 'bad_request'],
    ['request: trailing byte', () => TokenRequest.decode(Uint8Array.from([...r, 0])), 'bad_request'],
    ['request: 258 bytes', () => TokenRequest.decode(r.subarray(0, 258)), 'bad_request'],
    ['request: token type 1', () => TokenRequest.decode(type(r, 1)), 'unsupported_token_type'],
    ['response: 255 bytes', () => TokenResponse.decode(new Uint8Array(255)), 'bad_request'],
    ['response: 257 bytes', () => TokenResponse.decode(new Uint8Array(257)), 'bad_request'],
    ['token: trailing byte', () => Token.decode(Uint8Array.from([...t, 0])), 'bad_request'],
    ['token: 353 bytes', () => Token.decode(t.subarray(0, 353)), 'bad_request'],
    ['token: token type 3', () => Token.decode(type(t, 3)), 'unsupported_token_type'],
  ];
  for (const [what, fn, code] of table) rejects(fn, code, what);
  assert.equal(TokenChallenge.decode(challengeWith([0x61], new Array(32).fill(0), [])).redemptionContext.length, 32, '32-byte context is accepted');
});

test('constructors throw TypeError on misuse', () => {
  const table: [string, () => unknown][] = [
    ['empty issuer', () => new TokenChallenge({ issuerName: '', redemptionContext: new Uint8Array(0), originInfo: '' })],
    ['issuer of 65536', () => new TokenChallenge({ issuerName: 'x'.repeat(0x10000), redemptionContext: new Uint8Array(0), originInfo: '' })],
    ['non-ASCII issuer', () => new TokenChallenge({ issuerName: 'é', redemptionContext: new Uint8Array(0), originInfo: '' })],
    ['16-byte context', () => new TokenChallenge({ issuerName: 'i', redemptionContext: new Uint8Array(16), originInfo: '' })],
    ['origin of 65536', () => new TokenChallenge({ issuerName: 'i', redemptionContext: new Uint8Array(0), originInfo: 'y'.repeat(0x10000) })],
    ['key id 256', () => new TokenRequest(256, new Uint8Array(256))],
    ['key id 1.5', () => new TokenRequest(1.5, new Uint8Array(256))],
    ['blinded 255', () => new TokenRequest(0, new Uint8Array(255))],
    ['blind sig not bytes', () => new TokenResponse([] as unknown as Uint8Array)],
    ['nonce 31', () => tokenInput(new Uint8Array(31), new Uint8Array(32), new Uint8Array(32))],
  ];
  for (const [what, fn] of table) assert.throws(fn, TypeError, what);
});

test('the error set is closed and its messages quote no input', () => {
  assert.deepEqual([...PRIVACY_PASS_ERROR_CODES].sort(), ['bad_request', 'blind_sig_invalid', 'blinded_msg_out_of_range', 'signing_failed', 'token_invalid', 'unsupported_token_type'], 'codes');
  const error = new PrivacyPassError('token_invalid');
  assert.equal(error.name, 'PrivacyPassError', 'name');
  assert.equal(error.message, 'The token is invalid.', 'fixed message');
});
