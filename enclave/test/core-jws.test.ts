// protocol/jws.ts: the strict compact-JWS verifier, checked against jose on the same tokens
// and against a table of hostile inputs.

import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { fc } from '../../protocol/test/fast-check.js';
import { SignJWT, compactVerify } from 'jose';
import { importVerificationKey, verificationKeyFrom, verifyCompactJws, type JwsAlgorithm } from '../../protocol/jws.js';
import { b64json, makeIssuer, signEs256 } from './core-fixtures.js';

const ALL: ReadonlySet<string> = new Set(['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA']);
const ALGS: JwsAlgorithm[] = ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'];
const issuers = ALGS.map((alg) => makeIssuer(alg));
const keys = issuers.map((i) => importVerificationKey(i.publicJwk, i.kid, i.alg as JwsAlgorithm));
const all = () => keys;

async function token(alg: JwsAlgorithm, header: Record<string, unknown> = {}): Promise<string> {
  const issuer = issuers[ALGS.indexOf(alg)]!;
  return new SignJWT({ hello: 'world' }).setProtectedHeader({ alg, kid: issuer.kid, ...header } as { alg: string }).sign(issuer.privateKey);
}

describe('verifyCompactJws', () => {
  for (const alg of ALGS) {
    it(`verifies ${alg} tokens made by jose, and only with the key bound to ${alg}`, async () => {
      const t = await token(alg);
      assert.deepEqual(verifyCompactJws(t, ALL, all)?.payload, { hello: 'world' });
      const own = keys[ALGS.indexOf(alg)]!;
      assert.equal(verifyCompactJws(t, ALL, () => keys.filter((k) => k !== own)), null);
      assert.equal(verifyCompactJws(t, new Set(ALGS.filter((a) => a !== alg)), all), null, 'refused when not allowed');
    });
  }

  it('refuses an RS256 token checked against the same RSA key bound to PS256, and the reverse', async () => {
    const rsa = issuers[ALGS.indexOf('RS256')]!;
    const asPs256 = importVerificationKey(rsa.publicJwk, rsa.kid, 'PS256');
    assert.equal(verifyCompactJws(await token('RS256'), ALL, () => [asPs256]), null);
    const ps = await new SignJWT({}).setProtectedHeader({ alg: 'PS256' }).sign(rsa.privateKey);
    assert.equal(verifyCompactJws(ps, ALL, () => [keys[ALGS.indexOf('RS256')]!]), null);
    assert.notEqual(verifyCompactJws(ps, ALL, () => [asPs256]), null);
  });

  it('refuses none, HS256 and unknown algs, even when they are in the allowed set', async () => {
    const es = issuers[0]!;
    const hs = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).sign(new Uint8Array(es.publicKey.export({ format: 'der', type: 'spki' })));
    const allowEverything = new Set(['none', 'HS256', 'ES512', ...ALGS]);
    for (const t of [hs, `${b64json({ alg: 'none' })}.${b64json({})}.`, signEs256(es.privateKey, { alg: 'ES512' }, {})]) {
      assert.equal(verifyCompactJws(t, allowEverything, all), null);
    }
  });

  it('refuses crit and b64 headers, bad shapes, non-canonical base64url and wrong signature sizes', async () => {
    const es = issuers[0]!;
    const good = signEs256(es.privateKey, { alg: 'ES256', kid: es.kid }, { a: 1 });
    assert.notEqual(verifyCompactJws(good, ALL, all), null);
    const [h, p, s] = good.split('.') as [string, string, string];
    const der = signEs256(es.privateKey, { alg: 'ES256' }, { a: 1 }, true);
    const rsaToken = await token('RS256');
    const [rh, rp, rs] = rsaToken.split('.') as [string, string, string];
    const hostile = [
      signEs256(es.privateKey, { alg: 'ES256', crit: ['x'], x: 1 }, { a: 1 }),
      signEs256(es.privateKey, { alg: 'ES256', b64: true }, { a: 1 }),
      signEs256(es.privateKey, { alg: 'ES256' }, [1] as unknown as Record<string, unknown>),
      der,
      `${h}.${p}`,
      `${h}.${p}.${s}.`,
      `${h}.${p}.`,
      `${h}=.${p}.${s}`,
      `${h}.${p}.${s}=`,
      `${h}.${p}.${s.slice(0, -1)}${s.endsWith('A') ? 'B' : 'A'}`,
      `${h}.${p}.${s}AA`,
      `${rh}.${rp}.${rs.slice(0, -4)}`,
      `${b64json([])}.${p}.${s}`,
      `${Buffer.from('{"alg":"ES256"').toString('base64url')}.${p}.${s}`,
      `${h}.${Buffer.from('not json').toString('base64url')}.${s}`,
      '',
      '...',
    ];
    for (const t of hostile) assert.equal(verifyCompactJws(t, ALL, all), null, t.slice(0, 40));
  });

  it('never accepts a mutation that jose refuses', async () => {
    const originals = await Promise.all(ALGS.map((alg) => token(alg)));
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';
    await fc.assert(
      fc.asyncProperty(fc.nat(originals.length - 1), fc.nat(), fc.constantFrom(...alphabet), async (which, position, char) => {
        const original = originals[which]!;
        const at = position % original.length;
        const mutated = original.slice(0, at) + char + original.slice(at + 1);
        const ours = verifyCompactJws(mutated, ALL, all) !== null;
        const alg = ALGS[which]!;
        const theirs = await compactVerify(mutated, issuers[which]!.publicKey, { algorithms: [alg] }).then(
          () => true,
          () => false,
        );
        if (ours) assert.equal(theirs, true);
        if (mutated === original) assert.equal(ours, true);
      }),
      { numRuns: 400 },
    );
  });
});

describe('verification keys', () => {
  it('refuses a key that does not fit its alg, and private keys', () => {
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    assert.throws(() => verificationKeyFrom(p256.publicKey, 'k', 'ES384'), TypeError);
    assert.throws(() => verificationKeyFrom(p256.publicKey, 'k', 'RS256'), TypeError);
    assert.throws(() => verificationKeyFrom(p256.privateKey, 'k', 'ES256'), TypeError);
    assert.throws(() => verificationKeyFrom(p256.publicKey, 'k', 'HS256' as JwsAlgorithm), TypeError);
    assert.throws(() => verificationKeyFrom(generateKeyPairSync('ed448').publicKey, 'k', 'EdDSA'), TypeError);
    assert.equal(verificationKeyFrom(p256.publicKey, 'k', 'ES256').alg, 'ES256');
  });

  it('checks an EdDSA signature made by node:crypto directly', () => {
    const ed = generateKeyPairSync('ed25519');
    const input = `${b64json({ alg: 'EdDSA' })}.${b64json({ x: 1 })}`;
    const t = `${input}.${sign(null, Buffer.from(input), ed.privateKey).toString('base64url')}`;
    assert.deepEqual(verifyCompactJws(t, ALL, () => [verificationKeyFrom(ed.publicKey, 'e', 'EdDSA')])?.payload, { x: 1 });
  });
});
