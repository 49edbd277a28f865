import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PrivacyPassError, type PrivacyPassErrorCode } from '../privacypass-error.js';
import {
  decodeIssuerDirectory, decodePaddedBase64url, decodeTokenKey, encodeIssuerDirectory, encodePaddedBase64url,
  formatAuthorization, formatWwwAuthenticate, parseAuthorization, parseWwwAuthenticate, parseWwwAuthenticateList,
} from '../privacypass-http.js';
import { publicKeyFromNumbers } from '../blind-rsa.js';
import { MAX_HEADER_LENGTH, Token, TokenChallenge } from '../privacypass.js';

const vectors = JSON.parse(readFileSync(new URL('../../test/vectors/rfc9578-type2-issuance.json', import.meta.url), 'utf8')) as { pkS: string; token_challenge: string; token: string }[];
const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));
const pkS = hex(vectors[0]!.pkS);
const challengeBytes = hex(vectors[0]!.token_challenge);
const token = Token.decode(hex(vectors[0]!.token));
const b = encodePaddedBase64url;

function rejects(fn: () => unknown, code: PrivacyPassErrorCode, what: string): void {
  assert.throws(fn, (error: unknown) => error instanceof PrivacyPassError && error.code === code, what);
}

test('padded base64url round-trips every length and refuses unpadded, standard-alphabet or non-canonical text', () => {
  for (let n = 0; n < 12; n++) {
    const bytes = new Uint8Array(n).map((_, i) => 0xfb ^ i);
    assert.deepEqual(decodePaddedBase64url(encodePaddedBase64url(bytes)), bytes, `length ${n}`);
  }
  assert.equal(encodePaddedBase64url(Uint8Array.of(0xfb, 0xff)), '-_8=', 'url alphabet with padding');
  for (const text of ['-_8', '+/8=', 'AA=A', 'A===', 'AB==', 'AAA', 'AA==AA==', ' AA=']) assert.equal(decodePaddedBase64url(text), null, text);
});

test('the PrivateToken challenge round-trips and its values are padded base64url (RFC 9577 §2.1)', () => {
  const challenge = TokenChallenge.decode(challengeBytes);
  const header = formatWwwAuthenticate({ challenge, tokenKey: pkS });
  assert.equal(header, `PrivateToken challenge="${b(challengeBytes)}", token-key="${b(pkS)}"`, 'exact form');
  assert.ok(b(challengeBytes).endsWith('=='), 'the 67-byte challenge needs padding');
  const parsed = parseWwwAuthenticate(header);
  assert.deepEqual(parsed.challenge, challenge, 'challenge');
  assert.deepEqual(parsed.tokenKey, pkS, 'token-key');
  assert.equal(parsed.maxAge, undefined, 'no max-age');
  assert.equal(parseWwwAuthenticate(formatWwwAuthenticate({ challenge, tokenKey: pkS, maxAge: 10 })).maxAge, 10, 'max-age');
  assert.throws(() => formatWwwAuthenticate({ challenge, tokenKey: pkS, maxAge: -1 }), TypeError, 'negative max-age is misuse');
});

test('the challenge parser takes parameters in any order, quoted or not, any case, with optional whitespace', () => {
  const c = b(challengeBytes); // 67 bytes: ends with "==", so it must be quoted
  const accepted = [
    `PrivateToken token-key="${b(pkS)}", challenge="${c}"`,
    `privatetoken Challenge = "${c}" ,TOKEN-KEY="${b(pkS)}", max-age=0, future="x"`,
    `  PrivateToken challenge="${c}",\ttoken-key="${b(pkS)}"  `,
    `PrivateToken challenge="${c.replace('A', '\\A')}", token-key="${b(pkS)}"`,
  ];
  for (const header of accepted) assert.deepEqual(parseWwwAuthenticate(header).tokenKey, pkS, header.slice(0, 40));
  const unpadded = TokenChallenge.decode(challengeBytes);
  const threeAligned = new TokenChallenge({ issuerName: 'issuer.example', redemptionContext: new Uint8Array(0), originInfo: 'origin.examp' });
  assert.equal(threeAligned.encode().length % 3, 0, 'a challenge without padding');
  assert.deepEqual(parseWwwAuthenticate(`PrivateToken challenge=${b(threeAligned.encode())}, token-key="${b(pkS)}"`).challenge, threeAligned, 'unquoted token value');
  assert.ok(unpadded, 'vector challenge decodes');
});

test('the challenge parser refuses duplicates, missing or malformed parameters, other schemes and other keys', () => {
  const c = `challenge="${b(challengeBytes)}"`;
  const k = `token-key="${b(pkS)}"`;
  const otherKey = publicKeyFromNumbers((1n << 4095n) + 1n, 65537n).spki;
  const table: [string, string][] = [
    ['duplicate challenge', `PrivateToken ${c}, ${c}, ${k}`],
    ['duplicate in another case', `PrivateToken ${c}, ${k}, Token-Key="${b(pkS)}"`],
    ['duplicate max-age', `PrivateToken ${c}, ${k}, max-age=1, max-age=1`],
    ['missing token-key', `PrivateToken ${c}`],
    ['missing challenge', `PrivateToken ${k}`],
    ['another scheme', `Bearer ${c}, ${k}`],
    ['no space after the scheme', `PrivateToken,${c}, ${k}`],
    ['a second challenge', `PrivateToken ${c}, ${k}, PrivateToken ${c}`],
    ['unquoted padding', `PrivateToken challenge=${b(challengeBytes)}, ${k}`],
    ['unpadded value', `PrivateToken challenge="${b(challengeBytes).replace(/=+$/, '')}", ${k}`],
    ['standard base64', `PrivateToken challenge="${Buffer.from(challengeBytes).toString('base64')}x", ${k}`],
    ['unterminated quote', `PrivateToken ${k}, challenge="${b(challengeBytes)}`],
    ['empty element', `PrivateToken ${c},, ${k}`],
    ['trailing comma', `PrivateToken ${c}, ${k},`],
    ['missing =', `PrivateToken challenge ${k}`],
    ['empty value', `PrivateToken challenge=, ${k}`],
    ['junk after a value', `PrivateToken ${c} x, ${k}`],
    ['max-age not a number', `PrivateToken ${c}, ${k}, max-age=-1`],
    ['max-age of 11 digits', `PrivateToken ${c}, ${k}, max-age=12345678901`],
    ['a 4096-bit token-key', `PrivateToken ${c}, token-key="${b(otherKey)}"`],
    ['token type 1 challenge', `PrivateToken challenge="${b(Uint8Array.from([0, 1, ...challengeBytes.subarray(2)]))}", ${k}`],
    ['too long', `PrivateToken ${c}, ${k}, x="${'a'.repeat(MAX_HEADER_LENGTH)}"`],
    ['not a string', 42 as unknown as string],
  ];
  for (const [what, header] of table) {
    assert.throws(() => parseWwwAuthenticate(header), (error: unknown) => error instanceof PrivacyPassError && error.code !== undefined, what);
  }
  rejects(() => parseWwwAuthenticate(table[20]![1]), 'unsupported_token_type', 'token type is its own code');
  const exact = `PrivateToken ${c}, ${k}, x="`;
  const filler = 'a'.repeat(MAX_HEADER_LENGTH - exact.length - 1);
  assert.deepEqual(parseWwwAuthenticate(`${exact}${filler}"`).tokenKey, pkS, `a header of exactly ${MAX_HEADER_LENGTH} characters`);
});

test('a WWW-Authenticate value listing several challenges gives each PrivateToken one (RFC 9110 §11.6.1)', () => {
  const challenge = TokenChallenge.decode(challengeBytes);
  const secondKey = publicKeyFromNumbers((1n << 2047n) + 1n, 65537n).spki;
  const one = formatWwwAuthenticate({ challenge, tokenKey: pkS });
  const two = formatWwwAuthenticate({ challenge, tokenKey: secondKey, maxAge: 5 });
  assert.deepEqual(parseWwwAuthenticateList(one).map((c) => c.tokenKey), [pkS], 'one challenge');
  const keysOf = (header: string) => parseWwwAuthenticateList(header).map((c) => b(c.tokenKey));
  // Two header fields joined by fetch, one field listing both, other schemes around them, empty elements.
  assert.deepEqual(keysOf(`${one}, ${two}`), [b(pkS), b(secondKey)], 'two challenges, in order');
  assert.deepEqual(keysOf(`Basic realm="a, b", charset=UTF-8, ${one},, Negotiate abc==, ${two}, Bearer`), [b(pkS), b(secondKey)], 'other schemes skipped');
  assert.equal(parseWwwAuthenticateList(`${one},${two}`)[1]!.maxAge, 5, 'parameters stay with their challenge');
  const c = `challenge="${b(challengeBytes)}"`;
  const k = `token-key="${b(pkS)}"`;
  const refused: [string, string][] = [
    ['no PrivateToken challenge', 'Basic realm="x", Bearer'],
    ['empty', ''],
    ['a parameter before any scheme', `${c}, PrivateToken ${k}`],
    ['one good and one malformed challenge', `${one}, PrivateToken ${c}`],
    ['a lone PrivateToken', `${one}, PrivateToken`],
    ['an unterminated quote', `${one}, PrivateToken ${k}, challenge="abc`],
    ['a quote escaping its end', `PrivateToken ${k}, challenge="abc\\"`],
    ['too long', `${one}, Basic realm="${'a'.repeat(MAX_HEADER_LENGTH)}"`],
    ['not a string', 42 as unknown as string],
  ];
  for (const [what, header] of refused) {
    assert.throws(() => parseWwwAuthenticateList(header), (error: unknown) => error instanceof PrivacyPassError, what);
  }
});

test('the Authorization credential round-trips and is parsed as strictly (RFC 9577 §2.2)', () => {
  const header = formatAuthorization(token);
  assert.equal(header, `PrivateToken token="${b(token.encode())}"`, 'exact form');
  assert.deepEqual(parseAuthorization(header), token, 'round trip');
  assert.deepEqual(parseAuthorization(`privatetoken TOKEN=${b(token.encode())}`), token, 'unquoted (354 bytes need no padding), any case');
  rejects(() => parseAuthorization(`PrivateToken token="${b(token.encode())}", token="${b(token.encode())}"`), 'bad_request', 'duplicate');
  rejects(() => parseAuthorization('PrivateToken token=""'), 'bad_request', 'empty token');
  rejects(() => parseAuthorization(`PrivateToken token="${b(token.encode().subarray(0, 353))}"`), 'bad_request', 'short token');
  rejects(() => parseAuthorization(`Basic token="${b(token.encode())}"`), 'bad_request', 'another scheme');
  rejects(() => parseAuthorization(`PrivateToken tok="${b(token.encode())}"`), 'bad_request', 'no token parameter');
});

test('the issuer directory round-trips, skips other token types and keeps not-before (RFC 9578 §4)', () => {
  const text = encodeIssuerDirectory({ issuerRequestUri: '/token-request', tokenKeys: [{ tokenType: 2, tokenKey: pkS, notBefore: 1700000000 }, { tokenType: 2, tokenKey: pkS }] });
  const json = JSON.parse(text) as { 'token-keys': Record<string, unknown>[] };
  assert.equal(json['token-keys'][0]!['token-key'], b(pkS), 'token-key is padded base64url');
  assert.deepEqual(decodeIssuerDirectory(text), { issuerRequestUri: '/token-request', tokenKeys: [{ tokenType: 2, tokenKey: pkS, notBefore: 1700000000 }, { tokenType: 2, tokenKey: pkS }] }, 'round trip');
  const mixed = JSON.stringify({ 'issuer-request-uri': 'https://issuer.example/t', 'token-keys': [{ 'token-type': 1, 'token-key': 'AAAA' }, { 'token-type': 2, 'token-key': b(pkS) }], extra: true });
  assert.equal(decodeIssuerDirectory(mixed).tokenKeys.length, 1, 'the VOPRF key is skipped');
  assert.equal(decodeTokenKey(pkS).modulusBytes, 256, 'the key decodes');
});

test('the issuer directory parser refuses malformed documents', () => {
  const key = (entry: Record<string, unknown>): string => JSON.stringify({ 'issuer-request-uri': '/t', 'token-keys': [{ 'token-type': 2, 'token-key': b(pkS), ...entry }] });
  const table: [string, string][] = [
    ['not JSON', '{'],
    ['an array', '[]'],
    ['null', 'null'],
    ['no uri', JSON.stringify({ 'token-keys': [] })],
    ['empty uri', JSON.stringify({ 'issuer-request-uri': '', 'token-keys': [{ 'token-type': 2, 'token-key': b(pkS) }] })],
    ['no keys', JSON.stringify({ 'issuer-request-uri': '/t', 'token-keys': [] })],
    ['keys not a list', JSON.stringify({ 'issuer-request-uri': '/t', 'token-keys': {} })],
    ['entry not an object', JSON.stringify({ 'issuer-request-uri': '/t', 'token-keys': ['x'] })],
    ['token-type a string', key({ 'token-type': '2' })],
    ['token-type 65536', key({ 'token-type': 65536 })],
    ['token-key missing', key({ 'token-key': undefined })],
    ['token-key unpadded', key({ 'token-key': b(pkS).slice(0, -1) })],
    ['token-key not RFC 9578 SPKI', key({ 'token-key': b(pkS.subarray(1)) })],
    ['not-before negative', key({ 'not-before': -1 })],
    ['not-before fractional', key({ 'not-before': 1.5 })],
  ];
  for (const [what, text] of table) rejects(() => decodeIssuerDirectory(text), 'bad_request', what);
  assert.equal(decodeIssuerDirectory(key({ 'not-before': 0 })).tokenKeys[0]!.notBefore, 0, 'not-before 0 is kept');
});
