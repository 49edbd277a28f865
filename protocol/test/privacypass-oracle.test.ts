// Differential tests against Cloudflare's implementations (devDependencies): on seeded random inputs
// ours and theirs must agree in both directions, for blind RSA and for the token encodings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import { RSABSSA } from '@cloudflare/blindrsa-ts';
import { TOKEN_TYPES, TokenChallenge as TheirChallenge, Token as TheirToken, publicVerif } from '@cloudflare/privacypass-ts';
import { blind, blindSign, finalize, publicKeyOf, verify } from '../blind-rsa.js';
import { createTokenRequest, finalizeToken, issueTokenResponse, verifyToken } from '../privacypass-issuance.js';
import { Token, TokenChallenge, TokenRequest, TokenResponse } from '../privacypass.js';
import { fc } from './fast-check.js';

const vector = (JSON.parse(readFileSync(new URL('../../test/vectors/rfc9578-type2-issuance.json', import.meta.url), 'utf8')) as { skS: string }[])[0]!;
const issuerKey = createPrivateKey(Buffer.from(vector.skS, 'hex').toString('latin1'));
const tokenKey = publicKeyOf(issuerKey);
const suite = RSABSSA.SHA384.PSS.Deterministic();
const algorithm = { name: 'RSA-PSS', hash: 'SHA-384' };
const theirPrivate = await webcrypto.subtle.importKey('pkcs8', issuerKey.export({ type: 'pkcs8', format: 'der' }), algorithm, true, ['sign']);
const theirPublic = await webcrypto.subtle.importKey('spki', createPublicKey(issuerKey).export({ type: 'spki', format: 'der' }), algorithm, true, ['verify']);
const RUNS = { numRuns: 12 };
const message = fc.uint8Array({ minLength: 0, maxLength: 200 });
const ascii = fc.stringMatching(/^[\x21-\x7e]{1,40}$/);

test('our blind, their blindSign, our finalize: a signature both verify', async () => {
  await fc.assert(fc.asyncProperty(message, async (msg) => {
    const { blindedMsg, inv } = blind(tokenKey, msg);
    const blindSig = await suite.blindSign(theirPrivate, blindedMsg);
    assert.deepEqual(blindSig, blindSign(issuerKey, blindedMsg), 'RSA signing is deterministic: the same blind signature');
    const sig = finalize(tokenKey, msg, blindSig, inv);
    assert.ok(await suite.verify(theirPublic, sig, msg), 'they verify our signature');
  }), RUNS);
});

test('their blind, our blindSign, their finalize: a signature both verify', async () => {
  await fc.assert(fc.asyncProperty(message, async (msg) => {
    const { blindedMsg, inv } = await suite.blind(theirPublic, msg);
    const sig = await suite.finalize(theirPublic, msg, blindSign(issuerKey, blindedMsg), inv);
    assert.ok(verify(tokenKey, msg, sig), 'we verify their signature');
    assert.deepEqual(finalize(tokenKey, msg, blindSign(issuerKey, blindedMsg), inv), sig, 'our finalize of the same blind gives the same signature');
  }), RUNS);
});

test('TokenChallenge encodings agree both ways', () => {
  fc.assert(fc.property(ascii, fc.boolean(), fc.array(ascii.filter((s) => !s.includes(',')), { maxLength: 3 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (issuer, withContext, origins, context) => {
    const ours = new TokenChallenge({ issuerName: issuer, redemptionContext: withContext ? context : new Uint8Array(0), originInfo: origins.join(',') });
    const theirs = new TheirChallenge(2, issuer, ours.redemptionContext, origins.length ? origins : undefined);
    assert.deepEqual(theirs.serialize(), ours.encode(), 'the same bytes');
    assert.deepEqual(TokenChallenge.decode(theirs.serialize()), ours, 'we parse theirs');
    assert.equal(TheirChallenge.deserialize(ours.encode()).issuerName, issuer, 'they parse ours');
  }));
});

test('a token from their client verifies with us, and a token from ours with their origin', async () => {
  const challenge = new TokenChallenge({ issuerName: 'issuer.example', redemptionContext: new Uint8Array(32).fill(9), originInfo: 'dip.example' });
  const theirChallenge = TheirChallenge.deserialize(challenge.encode());
  const client = new publicVerif.Client(publicVerif.BlindRSAMode.PSS);
  for (let i = 0; i < 3; i++) {
    const theirRequest = await client.createTokenRequest(theirChallenge, tokenKey.spki);
    const request = TokenRequest.decode(theirRequest.serialize());
    assert.deepEqual(request.encode(), theirRequest.serialize(), 'TokenRequest bytes round-trip');
    const theirToken = await client.finalize(client.deserializeTokenResponse(issueTokenResponse(issuerKey, tokenKey, request).encode()));
    const token = Token.decode(theirToken.serialize());
    verifyToken(token, tokenKey, challenge);

    const ours = createTokenRequest(challenge, tokenKey);
    const issuer = new publicVerif.Issuer(publicVerif.BlindRSAMode.PSS, 'issuer.example', theirPrivate, theirPublic);
    const response = await issuer.issue(publicVerif.TokenRequest.deserialize(TOKEN_TYPES.BLIND_RSA, ours.request.encode()));
    const ourToken = finalizeToken(ours.pending, new TokenResponse(response.serialize()));
    const parsed = TheirToken.deserialize(TOKEN_TYPES.BLIND_RSA, ourToken.encode());
    assert.ok(await new publicVerif.Origin(publicVerif.BlindRSAMode.PSS).verify(parsed, theirPublic), 'their origin verifies our token');
    assert.deepEqual(parsed.serialize(), ourToken.encode(), 'Token bytes round-trip');
  }
});
