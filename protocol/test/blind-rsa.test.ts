import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import {
  blind, blindSign, bytesToInt, decodePublicKey, encodePss, finalize, intToBytes, modInverse, modPow,
  publicKeyFromNumbers, publicKeyOf, verify, type BlindRsaPublicKey,
} from '../blind-rsa.js';
import { PrivacyPassError, type PrivacyPassErrorCode } from '../privacypass-error.js';

interface Rfc9474Vector {
  name: string; p: string; q: string; n: string; e: string; d: string; msg: string; input_msg: string;
  sLen: string; salt: string; encoded_msg?: string; inv: string; blinded_msg: string; blind_sig: string; sig: string;
}
const vectors = JSON.parse(readFileSync(new URL('../../test/vectors/rfc9474-blind-rsa.json', import.meta.url), 'utf8')) as Rfc9474Vector[];
const type2 = JSON.parse(readFileSync(new URL('../../test/vectors/rfc9578-type2-issuance.json', import.meta.url), 'utf8')) as { skS: string; pkS: string }[];

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text.replace(/^0x/, ''), 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const b64 = (x: bigint): string => Buffer.from(intToBytes(x, Math.ceil(x.toString(16).length / 2))).toString('base64url');

function privateKeyOf(v: Rfc9474Vector): KeyObject {
  const [p, q, d] = [BigInt(v.p), BigInt(v.q), BigInt(v.d)];
  const jwk = { kty: 'RSA', n: b64(BigInt(v.n)), e: b64(BigInt(v.e)), d: b64(d), p: b64(p), q: b64(q), dp: b64(d % (p - 1n)), dq: b64(d % (q - 1n)), qi: b64(modInverse(q, p)!) };
  return createPrivateKey({ key: jwk, format: 'jwk' });
}

function rejects(fn: () => unknown, code: PrivacyPassErrorCode, what: string): void {
  assert.throws(fn, (error: unknown) => error instanceof PrivacyPassError && error.code === code, what);
}

const issuerKey = createPrivateKey(Buffer.from(type2[0]!.skS, 'hex').toString('latin1'));
const issuerPublic = publicKeyOf(issuerKey);

const vector = (name: string): Rfc9474Vector => vectors.find((v) => v.name === name)!;

for (const name of ['RSABSSA-SHA384-PSS-Deterministic', 'RSABSSA-SHA384-PSS-Randomized']) {
  test(`RFC 9474 ${name}: blind, blindSign and finalize reproduce the vector byte for byte`, () => {
    const v = vector(name);
    const key = publicKeyFromNumbers(BigInt(v.n), BigInt(v.e));
    // The randomized variant differs only in prepare (a 32-byte prefix, RFC 9474 §4.1), which the
    // vector gives as input_msg: the PSS-48 arithmetic after it is the deterministic variant's.
    const msg = hex(v.input_msg);
    if (v.encoded_msg) assert.equal(toHex(encodePss(msg, hex(v.salt), 8 * key.modulusBytes - 1)), v.encoded_msg, 'encoded_msg');
    const { blindedMsg, inv } = blind(key, msg, { salt: hex(v.salt), inv: hex(v.inv) });
    assert.equal(toHex(blindedMsg), v.blinded_msg, 'blinded_msg');
    assert.equal(toHex(inv), v.inv.replace(/^0x/, ''), 'inv is returned as given');
    const blindSig = blindSign(privateKeyOf(v), blindedMsg);
    assert.equal(toHex(blindSig), v.blind_sig, 'blind_sig');
    assert.equal(toHex(finalize(key, msg, blindSig, inv)), v.sig, 'sig');
    assert.ok(verify(key, msg, hex(v.sig)), 'the vector signature verifies');
  });
}

test('RFC 9474 PSSZERO vectors: blindSign reproduces them, but finalize refuses a zero-salt signature', () => {
  for (const name of ['RSABSSA-SHA384-PSSZERO-Deterministic', 'RSABSSA-SHA384-PSSZERO-Randomized']) {
    const v = vector(name);
    const key = publicKeyFromNumbers(BigInt(v.n), BigInt(v.e));
    assert.equal(toHex(blindSign(privateKeyOf(v), hex(v.blinded_msg))), v.blind_sig, `${name} blind_sig`);
    rejects(() => finalize(key, hex(v.input_msg), hex(v.blind_sig), hex(v.inv)), 'blind_sig_invalid', `${name}: our variant fixes sLen 48`);
    assert.equal(verify(key, hex(v.input_msg), hex(v.sig)), false, `${name} signature is not a PSS-48 signature`);
  }
});

test('blind draws a fresh salt and blind each time, and the result finalizes', () => {
  const msg = new TextEncoder().encode('token input');
  const one = blind(issuerPublic, msg);
  const two = blind(issuerPublic, msg);
  assert.notEqual(toHex(one.blindedMsg), toHex(two.blindedMsg), 'two blindings differ');
  const sig = finalize(issuerPublic, msg, blindSign(issuerKey, one.blindedMsg), one.inv);
  assert.ok(verify(issuerPublic, msg, sig), 'the finalized signature verifies');
  assert.equal(verify(issuerPublic, new TextEncoder().encode('other input'), sig), false, 'not for another message');
  assert.equal(verify(issuerPublic, msg, sig.subarray(1)), false, 'a short signature is false, not a throw');
});

test('blindSign refuses a blinded message equal to n before signing, and signs n − 1', () => {
  const n = issuerPublic.n;
  rejects(() => blindSign(issuerKey, intToBytes(n, 256)), 'blinded_msg_out_of_range', 'm = n');
  rejects(() => blindSign(issuerKey, new Uint8Array(256).fill(0xff)), 'blinded_msg_out_of_range', 'm = 2^2048 − 1');
  const s = blindSign(issuerKey, intToBytes(n - 1n, 256));
  assert.equal(modPow(bytesToInt(s), issuerPublic.e, n), n - 1n, 's^e = n − 1');
  rejects(() => blindSign(issuerKey, new Uint8Array(255)), 'bad_request', '255 bytes');
  rejects(() => blindSign(issuerKey, new Uint8Array(257)), 'bad_request', '257 bytes');
});

test('blindSign honours the byteOffset of a subarray', () => {
  const backing = new Uint8Array(300);
  const { blindedMsg } = blind(issuerPublic, Uint8Array.of(1, 2, 3));
  backing.set(blindedMsg, 7);
  assert.equal(toHex(blindSign(issuerKey, backing.subarray(7, 263))), toHex(blindSign(issuerKey, blindedMsg)), 'same signature');
});

test('blindSign checks s^e = m and refuses a faulty signature (RFC 9474 §4.3)', () => {
  // A key whose CRT exponent and d are both wrong: OpenSSL's own fallback cannot repair it.
  const jwk = issuerKey.export({ format: 'jwk' });
  const broken = createPrivateKey({ key: { ...jwk, d: b64(bytesToInt(Buffer.from(jwk.d!, 'base64url')) + 2n), dp: b64(bytesToInt(Buffer.from(jwk.dp!, 'base64url')) + 2n) }, format: 'jwk' });
  rejects(() => blindSign(broken, blind(issuerPublic, Uint8Array.of(9)).blindedMsg), 'signing_failed', 'faulty CRT result');
});

test('finalize refuses a blind signature of the wrong length, ≥ n, or that does not verify', () => {
  const msg = Uint8Array.of(1);
  const { blindedMsg, inv } = blind(issuerPublic, msg);
  const blindSig = blindSign(issuerKey, blindedMsg);
  rejects(() => finalize(issuerPublic, msg, blindSig.subarray(1), inv), 'blind_sig_invalid', 'short');
  rejects(() => finalize(issuerPublic, msg, intToBytes(issuerPublic.n, 256), inv), 'blind_sig_invalid', 'z = n');
  const flipped = new Uint8Array(blindSig);
  flipped[100]! ^= 1;
  rejects(() => finalize(issuerPublic, msg, flipped, inv), 'blind_sig_invalid', 'one bit flipped');
  rejects(() => finalize(issuerPublic, Uint8Array.of(2), blindSig, inv), 'blind_sig_invalid', 'another message');
  assert.throws(() => finalize(issuerPublic, msg, blindSig, inv.subarray(1)), TypeError, 'inv of the wrong length is misuse');
});

test('blind refuses a message representative that shares a factor with n', () => {
  // n = 3 · (odd cofactor): about a third of all salts give m ≡ 0 mod 3; find one deterministically.
  const n = 3n * ((1n << 2046n) + 1n);
  const key = publicKeyFromNumbers(n, 65537n);
  let salt = 0;
  const saltOf = (i: number): Uint8Array => intToBytes(BigInt(i), 48);
  while (bytesToInt(encodePss(Uint8Array.of(), saltOf(salt), 2047)) % 3n !== 0n) salt++;
  rejects(() => blind(key, Uint8Array.of(), { salt: saltOf(salt), inv: intToBytes(1n, 256) }), 'bad_request', 'gcd(m, n) = 3');
});

test('blind and the key constructors throw TypeError on misuse', () => {
  const inv = intToBytes(1n, 256);
  assert.throws(() => blind(issuerPublic, 'text' as unknown as Uint8Array), TypeError, 'msg not bytes');
  assert.throws(() => blind(issuerPublic, Uint8Array.of(), { salt: new Uint8Array(47), inv }), TypeError, 'salt 47 bytes');
  assert.throws(() => blind(issuerPublic, Uint8Array.of(), { salt: new Uint8Array(48), inv: inv.subarray(1) }), TypeError, 'inv 255 bytes');
  assert.throws(() => blind(issuerPublic, Uint8Array.of(), { salt: new Uint8Array(48), inv: new Uint8Array(256) }), TypeError, 'inv 0');
  assert.throws(() => blind(issuerPublic, Uint8Array.of(), { salt: new Uint8Array(48), inv: intToBytes(issuerPublic.n + 1n, 256) }), TypeError, 'inv ≥ n');
  assert.throws(() => publicKeyFromNumbers((1n << 2047n) + 1n, 4n), TypeError, 'even e');
  assert.throws(() => publicKeyFromNumbers(1n << 2047n, 65537n), TypeError, 'even n');
  assert.throws(() => publicKeyFromNumbers((1n << 2039n) + 1n, 65537n), TypeError, '2040-bit n');
  assert.throws(() => publicKeyFromNumbers((1n << 2048n) + 1n, 65537n), TypeError, '2049-bit n');
  assert.throws(() => publicKeyOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey), TypeError, 'not RSA');
  assert.throws(() => blindSign(issuerPublic.keyObject, new Uint8Array(256)), TypeError, 'a public key');
  assert.throws(() => intToBytes(256n, 1), TypeError, 'does not fit');
  assert.throws(() => intToBytes(-1n, 1), TypeError, 'negative');
  assert.equal(modInverse(6n, 9n), null, 'no inverse when gcd > 1');
  assert.equal(bytesToInt(new Uint8Array(0)), 0n, 'empty is 0');
});

test('the issuer key encodes as RFC 9578 §6.5 SPKI and decodes back to the same numbers', () => {
  assert.equal(toHex(issuerPublic.spki), type2[0]!.pkS, 'SPKI of the vector key');
  const backing = new Uint8Array(issuerPublic.spki.length + 5);
  backing.set(issuerPublic.spki, 5);
  const decoded = decodePublicKey(backing.subarray(5));
  assert.equal(decoded.n, issuerPublic.n, 'n');
  assert.equal(decoded.e, issuerPublic.e, 'e');
  assert.equal(decoded.modulusBytes, 256, 'modulus bytes');
  const big = publicKeyFromNumbers(BigInt(vectors[0]!.n), BigInt(vectors[0]!.e));
  assert.equal(decodePublicKey(big.spki).n, big.n, 'a 4096-bit key round-trips (two-byte DER lengths)');
});

test('decodePublicKey refuses every other encoding', () => {
  const spki = issuerPublic.spki;
  const opensslForm = issuerPublic.keyObject.export({ type: 'spki', format: 'der' }); // OpenSSL re-encodes with NULLs
  const rsaEncryption = createPublicKey(issuerKey).export({ type: 'spki', format: 'der' });
  const edit = (at: number, value: number): Uint8Array => { const out = new Uint8Array(spki); out[at] = value; return out; };
  const rsaKeyAt = 63 + 4 + 1; // algorithm, BIT STRING header, unused-bits byte
  const table: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['trailing byte', Uint8Array.from([...spki, 0])],
    ['cut short', spki.subarray(0, spki.length - 1)],
    ['outer tag', edit(0, 0x31)],
    ['OpenSSL form with NULL hash parameters', new Uint8Array(opensslForm)],
    ['rsaEncryption', new Uint8Array(rsaEncryption)],
    ['salt length 32', edit(62, 32)],
    ['BIT STRING with unused bits', edit(67, 1)],
    ['BIT STRING tag', edit(63, 0x04)],
    ['RSAPublicKey tag', edit(rsaKeyAt, 0x31)],
    ['n tag', edit(rsaKeyAt + 4, 0x03)],
    ['non-minimal long length', Uint8Array.from([0x30, 0x81, 0x05, 0, 0, 0, 0, 0])],
    ['length of length 3', Uint8Array.from([0x30, 0x83, 0, 0, 5])],
    ['length of length 0', Uint8Array.from([0x30, 0x80])],
    ['long form below 128', Uint8Array.from([0x30, 0x81, 0x01, 0])],
    ['long form length past the end', Uint8Array.from([0x30, 0x82, 0x01])],
    ['two-byte length below 256', Uint8Array.from([0x30, 0x82, 0x00, 0x80, ...new Uint8Array(0x80)])],
    ['one byte', Uint8Array.from([0x30])],
  ];
  // n with a superfluous leading zero, and a negative n, re-wrapped with correct lengths
  const n = issuerPublic.n;
  const wrap = (nBytes: number[]): Uint8Array => {
    const der = (tag: number, c: number[]): number[] => c.length < 128 ? [tag, c.length, ...c] : c.length < 256 ? [tag, 0x81, c.length, ...c] : [tag, 0x82, c.length >> 8, c.length & 0xff, ...c];
    const rsa = der(0x30, [...der(0x02, nBytes), ...der(0x02, [1, 0, 1])]);
    return Uint8Array.from(der(0x30, [...spki.subarray(4, 4 + 63), ...der(0x03, [0, ...rsa])]));
  };
  const nPlain = [...intToBytes(n, 256)];
  assert.equal(toHex(wrap([0, ...nPlain])), toHex(spki), 'the wrapper rebuilds the vector key exactly');
  table.push(['n with two leading zeros', wrap([0, 0, ...nPlain])]);
  table.push(['negative n', wrap(nPlain)]);
  table.push(['empty n', wrap([])]);
  table.push(['1024-bit n', wrap([0, ...nPlain.slice(0, 128).map((b, i) => (i === 127 ? b | 1 : b))])]);
  for (const [what, bytes] of table) rejects(() => decodePublicKey(bytes), 'bad_request', what);
});
