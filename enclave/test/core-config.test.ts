// SPEC §2/§3/§8: the trusted SRT issuer configuration and the enclave's signing keys.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { calculateJwkThumbprint, type JWK } from 'jose';
import {
  ConfigError,
  parseIssuerConfig,
  parseSrtTrust,
  parseTrustedJwk,
  srtTrustFromDevIssuer,
} from '../core/config.js';
import { createUnlockedKeyCustody, ecJwkThumbprint, signingKeyFromPrivateKey } from '../core/keys.js';
import { createSrtVerifier } from '../core/tokens.js';
import { AUDIENCE, ISSUER, NOW, SUB, makeIssuer, mintSrt } from './core-fixtures.js';

const CONFIG = { issuer: ISSUER, audience: AUDIENCE, datIssuer: 'https://dip.example' };

function configError(pattern: RegExp): (error: unknown) => boolean {
  return (error: unknown) => error instanceof ConfigError && pattern.test(error.message);
}

describe('production issuer trust (parseSrtTrust)', () => {
  it('accepts public keys of every allowed algorithm, from JSON text or parsed values', async () => {
    const issuers = ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'].map((alg) => makeIssuer(alg));
    const trust = parseSrtTrust(JSON.stringify({ keys: issuers.map((i) => i.publicJwk) }), JSON.stringify(CONFIG));
    assert.equal(trust.issuer, ISSUER);
    assert.equal(trust.audience, AUDIENCE);
    assert.deepEqual(trust.keys.keys.map((k) => k.kid), issuers.map((i) => i.kid));
    const verify = createSrtVerifier(trust);
    for (const issuer of issuers) assert.equal((await verify(await mintSrt(issuer), NOW)).sub, SUB);
    assert.deepEqual(parseSrtTrust({ keys: [issuers[0]!.publicJwk] }, { ...CONFIG, audience: null }).audience, null);
  });

  it('makes an empty key set a clear startup error', () => {
    assert.throws(() => parseSrtTrust({ keys: [] }, CONFIG), configError(/empty/));
  });

  it('ships production files that parse, with an empty key set that refuses to start', () => {
    const jwks = readFileSync(new URL('../issuers/srt-issuer.jwks.json', import.meta.url), 'utf8');
    const config = readFileSync(new URL('../issuers/config.json', import.meta.url), 'utf8');
    const parsed = parseIssuerConfig(config);
    assert.ok(parsed.issuer.length > 0 && parsed.datIssuer.length > 0, 'issuer and datIssuer are set');
    assert.throws(() => parseSrtTrust(jwks, config), configError(/empty/));
  });

  it('refuses private key material', () => {
    const issuer = makeIssuer('ES256');
    assert.throws(() => parseSrtTrust({ keys: [issuer.privateJwk] }, CONFIG), configError(/private key material \("d"\)/));
    const rsa = makeIssuer('RS256');
    assert.throws(() => parseTrustedJwk({ ...rsa.publicJwk, p: 'AQAB' }, 0), configError(/"p"/));
    assert.throws(() => parseTrustedJwk({ kty: 'oct', k: 'c2VjcmV0', kid: 'h', alg: 'ES256' }, 0), configError(/"k"/));
  });

  it('refuses keys without kid or alg, with a disallowed alg, or whose type does not fit the alg', () => {
    const { publicJwk } = makeIssuer('ES256');
    const bad: [unknown, RegExp][] = [
      [{ ...publicJwk, kid: undefined }, /no kid/],
      [{ ...publicJwk, kid: '' }, /no kid/],
      [{ ...publicJwk, alg: undefined }, /no alg/],
      [{ ...publicJwk, alg: 'HS256' }, /no alg/],
      [{ ...publicJwk, alg: 'none' }, /no alg/],
      [{ ...publicJwk, alg: 'ES512' }, /no alg/],
      [{ ...publicJwk, alg: 'ES384' }, /does not fit/],
      [{ ...publicJwk, alg: 'RS256' }, /does not fit/],
      [{ ...makeIssuer('EdDSA').publicJwk, alg: 'ES256' }, /does not fit/],
      [{ ...publicJwk, use: 'enc' }, /not a signature key/],
      [{ ...publicJwk, key_ops: ['sign'] }, /not a verification key/],
      [{ ...publicJwk, key_ops: 'verify' }, /not a verification key/],
      [{ ...publicJwk, x: undefined }, /lacks "x"/],
      [{ ...publicJwk, y: publicJwk.x }, /not a valid public key/],
      ['a string', /not a JSON object/],
      [null, /not a JSON object/],
    ];
    for (const [jwk, pattern] of bad) assert.throws(() => parseTrustedJwk(jwk, 3), configError(pattern), String(pattern));
    const accepted = parseTrustedJwk({ ...publicJwk, key_ops: ['verify'], ext: true }, 0);
    assert.deepEqual(Object.keys(accepted).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
  });

  it('refuses an RSA key shorter than 2048 bits', () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'short', alg: 'RS256' };
    assert.throws(() => parseTrustedJwk(jwk, 0), configError(/shorter than 2048/));
  });

  it('refuses a JWKS without a keys array, with a repeated kid, or that is not JSON', () => {
    const { publicJwk } = makeIssuer('ES256');
    assert.throws(() => parseSrtTrust({}, CONFIG), configError(/no "keys" array/));
    assert.throws(() => parseSrtTrust([], CONFIG), configError(/no "keys" array/));
    assert.throws(() => parseSrtTrust({ keys: [publicJwk, publicJwk] }, CONFIG), configError(/repeats a kid/));
    assert.throws(() => parseSrtTrust('{"keys": [', CONFIG), configError(/not valid JSON/));
  });

  it('validates config.json: issuer, audience (text or null) and datIssuer', () => {
    assert.deepEqual(parseIssuerConfig(JSON.stringify(CONFIG)), CONFIG);
    const bad: [unknown, RegExp][] = [
      ['nope', /not valid JSON/],
      ['[]', /not a JSON object/],
      [{ ...CONFIG, issuer: '' }, /no "issuer"/],
      [{ ...CONFIG, audience: undefined }, /"audience" must be text or null/],
      [{ ...CONFIG, audience: '' }, /"audience" must be text or null/],
      [{ ...CONFIG, datIssuer: 7 }, /no "datIssuer"/],
    ];
    for (const [config, pattern] of bad) assert.throws(() => parseIssuerConfig(config), configError(pattern), String(pattern));
  });

  it('never puts key material in its messages', () => {
    const issuer = makeIssuer('ES256');
    try {
      parseSrtTrust({ keys: [issuer.privateJwk] }, CONFIG);
      assert.fail('expected a ConfigError');
    } catch (error) {
      assert.ok(error instanceof ConfigError, 'a ConfigError');
      assert.ok(!error.message.includes(issuer.privateJwk.d!), 'the message holds no private key');
      assert.ok(!error.message.includes(issuer.privateJwk.x!), 'the message holds no public key');
    }
  });
});

describe('development issuer trust (srtTrustFromDevIssuer)', () => {
  it('keeps only the public half of .dev/srt-issuer.json', async () => {
    const issuer = makeIssuer('ES256');
    const trust = srtTrustFromDevIssuer({ iss: ISSUER, aud: null, jwk: { ...issuer.privateJwk, key_ops: ['sign'] } });
    assert.equal(trust.issuer, ISSUER);
    assert.equal(trust.audience, null);
    const [jwk] = trust.keys.keys as [JWK];
    assert.equal(jwk.d, undefined);
    assert.deepEqual(jwk.key_ops, undefined);
    assert.equal(jwk.kid, issuer.kid);
    assert.equal(jwk.alg, 'ES256');
    assert.equal((await createSrtVerifier(trust)(await mintSrt(issuer, { aud: undefined }), NOW)).sub, SUB);
    assert.equal(srtTrustFromDevIssuer({ iss: ISSUER, aud: AUDIENCE, jwk: issuer.privateJwk }).audience, AUDIENCE);
  });

  it('refuses a malformed development issuer', () => {
    const { privateJwk } = makeIssuer('ES256');
    const bad: [unknown, RegExp][] = [
      [null, /not a JSON object/],
      [{ aud: null, jwk: privateJwk }, /no "iss"/],
      [{ iss: ISSUER, aud: 5, jwk: privateJwk }, /"aud" must be text or null/],
      [{ iss: ISSUER, aud: null }, /no "jwk"/],
      [{ iss: ISSUER, aud: null, jwk: { ...privateJwk, alg: undefined } }, /no alg/],
    ];
    for (const [value, pattern] of bad) assert.throws(() => srtTrustFromDevIssuer(value), configError(pattern), String(pattern));
  });
});

describe('signing keys (SPEC §3)', () => {
  it('makes distinct DAT and DRT keys', () => {
    const custody = createUnlockedKeyCustody(new Uint8Array(32).fill(1));
    const keys = custody.keysFor(700);
    assert.notEqual(keys.dat.kid, keys.drt.kid, 'distinct kids');
    assert.notEqual(keys.dat.privateKey, keys.drt.privateKey, 'distinct private keys');
    assert.notDeepEqual(keys.dat.publicJwk, keys.drt.publicJwk, 'distinct public keys');
    assert.equal(custody.keysFor(700), keys, 'an epoch\'s keys are derived once');
  });

  it('uses the RFC 7638 thumbprint as kid and publishes a public ES256 signature JWK', async () => {
    const key = createUnlockedKeyCustody(new Uint8Array(32).fill(2)).keysFor(700).dat;
    assert.equal(key.kid, await calculateJwkThumbprint(key.publicJwk, 'sha256'));
    assert.deepEqual(Object.keys(key.publicJwk).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    assert.equal(key.publicJwk.alg, 'ES256');
    assert.equal(key.publicJwk.use, 'sig');
    assert.equal(key.publicJwk.crv, 'P-256');
    assert.equal(key.publicKey.type, 'public');
  });

  it('computes RFC 7638 thumbprints like jose does, ignoring other members', async () => {
    for (let i = 0; i < 5; i++) {
      const jwk = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' });
      assert.equal(ecJwkThumbprint({ ...jwk, kid: 'x', alg: 'ES384' }), await calculateJwkThumbprint(jwk, 'sha256'));
    }
    assert.throws(() => ecJwkThumbprint({ kty: 'RSA', n: 'AQAB', e: 'AQAB' }), TypeError);
  });

  it('refuses to wrap anything but a P-256 private key', () => {
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    assert.equal(signingKeyFromPrivateKey(p256.privateKey).publicJwk.crv, 'P-256');
    assert.throws(() => signingKeyFromPrivateKey(p256.publicKey), TypeError);
    assert.throws(() => signingKeyFromPrivateKey(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey), TypeError);
    assert.throws(() => signingKeyFromPrivateKey(generateKeyPairSync('ed25519').privateKey), TypeError);
  });
});
