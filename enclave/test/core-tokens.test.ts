// SPEC §2: SRT verification rules, DAT and DRT formats, DRT verification.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fc } from '../../protocol/test/fast-check.js';
import { SignJWT, calculateJwkThumbprint, compactVerify, createLocalJWKSet, jwtVerify, type JWTPayload } from 'jose';
import { DipError, type ErrorCode } from '../../protocol/errors.js';
import { createUnlockedKeyCustody, type SigningKey } from '../core/keys.js';
import { ConfigError, type SrtTrust } from '../core/config.js';
import { createSrtVerifier, issueDat, issueDrt, verifyDat, verifyDrt, InvalidDatError } from '../core/tokens.js';
import {
  AUDIENCE,
  DAT_ISSUER,
  DID,
  NOW,
  SUB,
  b64json,
  ISSUER,
  decodeToken,
  drtClaims,
  drtHeader,
  makeIssuer,
  mintSrt,
  signEs256,
  srtClaims,
  trustFor,
  unsignedToken,
} from './core-fixtures.js';

/** The SRT rules on top of jose's jwtVerify: the reference the enclave's own verifier must match. */
function joseReferenceVerifier(trust: SrtTrust): (srt: string, now: number) => Promise<{ sub: string; did: number }> {
  const keySet = createLocalJWKSet(trust.keys);
  return async (srt, now) => {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(srt, keySet, {
        algorithms: ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'],
        issuer: trust.issuer,
        // jose expires a token when exp <= now - tolerance; SPEC §2's skew is inclusive (issue 9:
        // exp = now - 60 is accepted), so 61 here and the nbf bound checked below at 60.
        clockTolerance: 61,
        requiredClaims: ['iss', 'sub', 'exp', 'iat'],
        ...(trust.audience === null ? {} : { audience: trust.audience }),
        currentDate: new Date(now * 1000),
      }));
    } catch (error) {
      throw new DipError((error as { code?: string }).code === 'ERR_JWT_EXPIRED' ? 'srt_expired' : 'srt_invalid');
    }
    const { sub, iat, exp, nbf } = payload as { sub: unknown; iat: number; exp: number; nbf?: number };
    if (nbf !== undefined && nbf > now + 60) throw new DipError('srt_invalid');
    // Well-formed iff a UTF-8 round trip keeps it: independent of protocol/text.ts.
    const wellFormed = typeof sub === 'string' && new TextDecoder().decode(new TextEncoder().encode(sub)) === sub;
    if (typeof sub !== 'string' || sub.length === 0 || [...sub].length > 256 || !wellFormed) throw new DipError('srt_invalid');
    if (iat > now + 60 || exp - iat > 72 * 3600 + 60) throw new DipError('srt_invalid');
    const did = (payload.entitlements as Record<string, { did?: unknown }> | undefined)?.['xv.vpn.dip']?.did;
    if (typeof did !== 'number' || !Number.isSafeInteger(did) || did < 0) throw new DipError('not_entitled');
    return { sub, did };
  };
}

async function rejectsWith(promise: Promise<unknown> | (() => unknown), code: ErrorCode): Promise<void> {
  await assert.rejects(
    async () => (typeof promise === 'function' ? promise() : promise),
    (error: unknown) => error instanceof DipError && error.code === code,
  );
}

const es256 = makeIssuer('ES256');
const verifySrt = createSrtVerifier(trustFor([es256]));

describe('SRT verification', () => {
  it('accepts a good SRT and returns its sub and did', async () => {
    assert.deepEqual(await verifySrt(await mintSrt(es256), NOW), { sub: SUB, did: DID });
  });

  for (const alg of ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA']) {
    it(`accepts an SRT signed with ${alg} by a trusted key`, async () => {
      const issuer = makeIssuer(alg);
      const verify = createSrtVerifier(trustFor([issuer]));
      assert.deepEqual(await verify(await mintSrt(issuer), NOW), { sub: SUB, did: DID });
    });
  }

  it('rejects an SRT with alg none', async () => {
    const token = unsignedToken({ alg: 'none', kid: es256.kid }, srtClaims());
    await rejectsWith(verifySrt(token, NOW), 'srt_invalid');
  });

  it("rejects an HS256 SRT keyed with the issuer's public key bytes", async () => {
    const secrets = [
      Buffer.from(es256.publicKey.export({ format: 'pem', type: 'spki' }) as string),
      es256.publicKey.export({ format: 'der', type: 'spki' }),
      Buffer.from(JSON.stringify(es256.publicJwk)),
    ];
    for (const secret of secrets) {
      const token = await new SignJWT(srtClaims()).setProtectedHeader({ alg: 'HS256', kid: es256.kid }).sign(new Uint8Array(secret));
      await rejectsWith(verifySrt(token, NOW), 'srt_invalid');
    }
  });

  it('refuses to trust a key whose alg is outside the allow-list, and rejects such tokens', async () => {
    const es512 = makeIssuer('ES512');
    assert.throws(() => createSrtVerifier(trustFor([es512])), ConfigError);
    // An ES512 token that names the trusted ES256 key's kid is refused on its alg.
    await rejectsWith(verifySrt(await mintSrt({ ...es512, kid: es256.kid }), NOW), 'srt_invalid');
  });

  it("rejects an SRT whose alg is not the one the trusted key declares", async () => {
    const rs256 = makeIssuer('RS256');
    const verify = createSrtVerifier(trustFor([rs256]));
    // Same RSA key, same kid, but PS256: the JWK says RS256, so it must not verify.
    const token = await mintSrt({ ...rs256, alg: 'PS256' });
    await rejectsWith(verify(token, NOW), 'srt_invalid');
    assert.deepEqual(await verify(await mintSrt(rs256), NOW), { sub: SUB, did: DID });
  });

  it('rejects an SRT signed by an untrusted key, even one that claims a trusted kid', async () => {
    const stranger = makeIssuer('ES256', { kid: es256.kid, fresh: true });
    await rejectsWith(verifySrt(await mintSrt(stranger), NOW), 'srt_invalid');
    const noKid = await new SignJWT(srtClaims()).setProtectedHeader({ alg: 'ES256' }).sign(stranger.privateKey);
    await rejectsWith(verifySrt(noKid, NOW), 'srt_invalid');
  });

  it('rejects a tampered SRT and text that is not a JWS', async () => {
    const token = await mintSrt(es256);
    const [h, , s] = token.split('.');
    await rejectsWith(verifySrt(`${h}.${b64json(srtClaims({ sub: 'someone-else' }))}.${s}`, NOW), 'srt_invalid');
    for (const junk of ['', 'a.b.c', 'not a token', `${token}.x`]) await rejectsWith(verifySrt(junk, NOW), 'srt_invalid');
  });

  it('rejects an SRT with a crit header it does not understand', async () => {
    const token = signEs256(es256.privateKey, { alg: 'ES256', kid: es256.kid, crit: ['x-unknown'], 'x-unknown': 1 }, srtClaims());
    await rejectsWith(verifySrt(token, NOW), 'srt_invalid');
    assert.equal((await verifySrt(signEs256(es256.privateKey, { alg: 'ES256', kid: es256.kid }, srtClaims()), NOW)).sub, SUB);
  });

  it('answers not_entitled when the entitlement is missing or its did is not an integer ≥ 0', async () => {
    const variants: unknown[] = [
      undefined,
      {},
      { 'xv.vpn.other': { did: 1 } },
      { 'xv.vpn.dip': {} },
      { 'xv.vpn.dip': { did: -1 } },
      { 'xv.vpn.dip': { did: 1.5 } },
      { 'xv.vpn.dip': { did: '3' } },
      { 'xv.vpn.dip': { did: null } },
      { 'xv.vpn.dip': [3] },
      'xv.vpn.dip',
    ];
    for (const entitlements of variants) {
      await rejectsWith(verifySrt(await mintSrt(es256, { entitlements }), NOW), 'not_entitled');
    }
    assert.deepEqual(await verifySrt(await mintSrt(es256, { entitlements: { 'xv.vpn.dip': { did: 0 } } }), NOW), { sub: SUB, did: 0 });
  });

  it('caps the lifetime exp - iat at 72 h plus 60 s of skew', async () => {
    const iat = NOW - 100;
    const atCap = await mintSrt(es256, { iat, exp: iat + 72 * 3600 + 60 });
    assert.equal((await verifySrt(atCap, NOW)).sub, SUB);
    await rejectsWith(verifySrt(await mintSrt(es256, { iat, exp: iat + 72 * 3600 + 61 }), NOW), 'srt_invalid');
  });

  it('allows 60 s of skew on exp: 30 s ago is accepted, 90 s ago is srt_expired', async () => {
    assert.equal((await verifySrt(await mintSrt(es256, { exp: NOW - 30 }), NOW)).sub, SUB);
    await rejectsWith(verifySrt(await mintSrt(es256, { exp: NOW - 90 }), NOW), 'srt_expired');
  });

  // SPEC §2, 60 s of skew, at the exact second: these fail if 60 becomes 59 or 61, or a < becomes <=.
  // The skew is inclusive both ways (issue 9): nbf/iat = now + 60 and exp = now - 60 are accepted.
  it('accepts an SRT whose exp is exactly 60 s ago and refuses one whose exp is exactly 61 s ago', async () => {
    assert.equal((await verifySrt(await mintSrt(es256, { exp: NOW - 60 }), NOW)).sub, SUB, 'exp = now - 60 is within the skew');
    await rejectsWith(verifySrt(await mintSrt(es256, { exp: NOW - 61 }), NOW), 'srt_expired');
  });

  it('accepts an SRT whose nbf is exactly now + 60 s and refuses now + 61 s', async () => {
    assert.equal((await verifySrt(await mintSrt(es256, { nbf: NOW + 60 }), NOW)).sub, SUB, 'nbf = now + 60 is within the skew');
    await rejectsWith(verifySrt(await mintSrt(es256, { nbf: NOW + 61 }), NOW), 'srt_invalid');
  });

  it('accepts an SRT whose iat is exactly now + 60 s and refuses now + 61 s', async () => {
    assert.equal((await verifySrt(await mintSrt(es256, { iat: NOW + 60 }), NOW)).sub, SUB, 'iat = now + 60 is within the skew');
    await rejectsWith(verifySrt(await mintSrt(es256, { iat: NOW + 61 }), NOW), 'srt_invalid');
  });

  it('honours nbf with 60 s of skew', async () => {
    assert.equal((await verifySrt(await mintSrt(es256, { nbf: NOW + 30 }), NOW)).sub, SUB);
    await rejectsWith(verifySrt(await mintSrt(es256, { nbf: NOW + 120 }), NOW), 'srt_invalid');
  });

  it('rejects an SRT issued in the future beyond the skew', async () => {
    assert.equal((await verifySrt(await mintSrt(es256, { iat: NOW + 30 }), NOW)).sub, SUB);
    await rejectsWith(verifySrt(await mintSrt(es256, { iat: NOW + 120 }), NOW), 'srt_invalid');
  });

  it('requires iss equal to the configured issuer', async () => {
    await rejectsWith(verifySrt(await mintSrt(es256, { iss: 'https://evil.example' }), NOW), 'srt_invalid');
    await rejectsWith(verifySrt(await mintSrt(es256, { iss: undefined }), NOW), 'srt_invalid');
  });

  it('requires aud to contain the configured audience, and ignores aud when none is configured', async () => {
    await rejectsWith(verifySrt(await mintSrt(es256, { aud: 'someone-else' }), NOW), 'srt_invalid');
    await rejectsWith(verifySrt(await mintSrt(es256, { aud: undefined }), NOW), 'srt_invalid');
    assert.equal((await verifySrt(await mintSrt(es256, { aud: ['x', AUDIENCE] }), NOW)).sub, SUB);
    const anyAudience = createSrtVerifier(trustFor([es256], null));
    assert.equal((await anyAudience(await mintSrt(es256, { aud: undefined }), NOW)).sub, SUB);
    assert.equal((await anyAudience(await mintSrt(es256, { aud: 'whatever' }), NOW)).sub, SUB);
  });

  it('requires sub of 1 to 256 characters', async () => {
    for (const sub of [undefined, '', 'x'.repeat(257), '😀'.repeat(257), 42]) {
      await rejectsWith(verifySrt(await mintSrt(es256, { sub }), NOW), 'srt_invalid');
    }
    assert.equal((await verifySrt(await mintSrt(es256, { sub: 'x'.repeat(256) }), NOW)).sub, 'x'.repeat(256));
    assert.equal((await verifySrt(await mintSrt(es256, { sub: '😀'.repeat(256) }), NOW)).sub, '😀'.repeat(256));
  });

  it('rejects a sub with a lone surrogate, which JSON can carry but CBOR cannot', async () => {
    // JSON.stringify writes a lone surrogate as the escape \ud800, which JSON.parse restores.
    for (const sub of ['\ud800', 'sub-\udc00', '😀'.repeat(255) + '\ud83d']) {
      await rejectsWith(verifySrt(await mintSrt(es256, { sub }), NOW), 'srt_invalid');
    }
  });

  it('requires exp and iat', async () => {
    await rejectsWith(verifySrt(await mintSrt(es256, { exp: undefined }), NOW), 'srt_invalid');
    await rejectsWith(verifySrt(await mintSrt(es256, { iat: undefined }), NOW), 'srt_invalid');
    await rejectsWith(verifySrt(await mintSrt(es256, { exp: 'tomorrow' }), NOW), 'srt_invalid');
  });

  it('trusts several keys and picks the one named by kid', async () => {
    const other = makeIssuer('ES256', { fresh: true });
    const verify = createSrtVerifier(trustFor([es256, other]));
    assert.equal((await verify(await mintSrt(other), NOW)).sub, SUB);
    assert.equal((await verify(await mintSrt(es256), NOW)).sub, SUB);
  });

  it('agrees with jose, as reference, on the outcome of every SRT variant', async () => {
    const issuers = ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'].map((alg) => makeIssuer(alg));
    const trust = trustFor(issuers);
    const ours = createSrtVerifier(trust);
    const reference = joseReferenceVerifier(trust);
    const stranger = makeIssuer('ES256', { fresh: true });
    // The first value is the good one, drawn most of the time so that accepted tokens occur too.
    const claim = (good: unknown, ...bad: unknown[]): fc.Arbitrary<unknown> =>
      fc.oneof({ arbitrary: fc.constant(good), weight: 6 }, { arbitrary: fc.constantFrom(...bad), weight: 1 });
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          signer: fc.oneof({ arbitrary: fc.nat(issuers.length - 1), weight: 8 }, { arbitrary: fc.constant(issuers.length), weight: 1 }), // the stranger
          kid: fc.oneof({ arbitrary: fc.constant('own'), weight: 6 }, { arbitrary: fc.constantFrom('other', 'missing', 'number'), weight: 2 }),
          extraHeader: fc.constantFrom<Record<string, unknown>>({}, { typ: 'JWT' }, { cty: 'x' }, { jku: 'https://evil.example' }),
          iss: claim(ISSUER, 'https://evil.example', undefined),
          sub: claim(SUB, '', 'x'.repeat(257), undefined, 5, null, 'x'.repeat(256), '😀'.repeat(256), '\ud800'),
          aud: claim(AUDIENCE, ['x', AUDIENCE], 'other', undefined, ['other']),
          iat: claim(NOW - 600, NOW + 30, NOW + 120, undefined, 'yesterday'),
          exp: claim(3600, -30, -90, -60, -61, 72 * 3600, undefined, 'soon'),
          nbf: claim(undefined, NOW + 30, NOW + 60, NOW + 61, NOW + 120, 'later'),
          entitlements: claim({ 'xv.vpn.dip': { did: 2 } }, undefined, { 'xv.vpn.dip': { did: -1 } }, { 'xv.vpn.dip': { did: 1.5 } }),
        }),
        async (v) => {
          const issuer = v.signer < issuers.length ? issuers[v.signer]! : stranger;
          const kid = { own: issuer.kid, other: issuers[(v.signer + 1) % issuers.length]!.kid, missing: undefined, number: 7 }[v.kid];
          const iat = typeof v.iat === 'number' ? v.iat : NOW - 600;
          const exp = typeof v.exp === 'number' ? (v.exp === 72 * 3600 ? iat + 72 * 3600 + 61 : NOW + v.exp) : v.exp;
          const token = await new SignJWT(srtClaims({ iss: v.iss, sub: v.sub, aud: v.aud, iat: v.iat, exp, nbf: v.nbf, entitlements: v.entitlements }))
            .setProtectedHeader({ alg: issuer.alg, ...(kid === undefined ? {} : { kid }), ...v.extraHeader } as { alg: string })
            .sign(issuer.privateKey);
          const outcome = (p: Promise<unknown>) =>
            p.then(
              (r) => JSON.stringify(r),
              (e: unknown) => (e instanceof DipError ? e.code : `unexpected ${String(e)}`),
            );
          const result = await outcome(ours(token, NOW));
          assert.equal(result, await outcome(reference(token, NOW)));
          const kind = result.startsWith('{') ? 'ok' : result;
          seen.set(kind, (seen.get(kind) ?? 0) + 1);
        },
      ),
      { numRuns: 300 },
    );
    // The comparison means something only if both acceptance and every code occurred.
    for (const kind of ['ok', 'srt_invalid', 'srt_expired', 'not_entitled']) assert.ok((seen.get(kind) ?? 0) > 0, kind);
  });

  it('refuses to build a verifier with no trusted key', () => {
    assert.throws(() => createSrtVerifier(trustFor([])), TypeError);
  });
});

const { dat: datKey, drt: drtKey } = createUnlockedKeyCustody(new Uint8Array(32).fill(7)).keysFor(694);
/** The DRT key resolver of one key: the enclave's is custody.drtKeyFor (epochs e-3 … e). */
const onlyDrt = (kid: string): SigningKey | null => (kid === drtKey.kid ? drtKey : null);
const IP = '203.0.113.7';

describe('DAT issuance', () => {
  it('writes exactly the header and claims of SPEC §2', async () => {
    const { token, exp } = issueDat(datKey, DAT_ISSUER, IP, NOW);
    const { header, claims, signature } = decodeToken(token);
    assert.deepEqual(header, { alg: 'ES256', typ: 'dat+jwt', kid: await calculateJwkThumbprint(datKey.publicJwk, 'sha256') });
    assert.deepEqual(Object.keys(claims).sort(), ['exp', 'iat', 'iss', 'jti', 'xv.vpn.dip.details']);
    assert.equal(claims.iss, DAT_ISSUER);
    assert.equal(claims.iat, NOW);
    assert.equal(claims.exp, NOW + 259_200);
    assert.equal(exp, NOW + 259_200);
    assert.deepEqual(claims['xv.vpn.dip.details'], { ip: IP });
    assert.equal(claims.sub, undefined);
    assert.match(claims.jti as string, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(Buffer.from(claims.jti as string, 'base64url').length, 16);
    assert.equal(signature.length, 64);
  });

  it('gives every DAT a fresh jti', () => {
    const jtis = new Set(Array.from({ length: 50 }, () => decodeToken(issueDat(datKey, DAT_ISSUER, IP, NOW).token).claims.jti));
    assert.equal(jtis.size, 50);
  });

  it('verifies against the DAT key with jose, and not against the DRT key', async () => {
    const { token } = issueDat(datKey, DAT_ISSUER, IP, NOW);
    await compactVerify(token, datKey.publicKey, { algorithms: ['ES256'] });
    await assert.rejects(compactVerify(token, drtKey.publicKey, { algorithms: ['ES256'] }));
    assert.deepEqual(await verifyDat({ keys: [datKey.publicJwk] }, DAT_ISSUER, token, NOW), { ip: IP, exp: NOW + 259_200 });
  });

  it('refuses an IP that is not in canonical form', () => {
    for (const ip of ['2001:DB8::1', '2001:db8:0:0:0:0:0:1', '010.0.0.1', 'localhost', '']) {
      assert.throws(() => issueDat(datKey, DAT_ISSUER, ip, NOW), (e: unknown) => e instanceof DipError && e.code === 'bad_request');
    }
    assert.equal(decodeToken(issueDat(datKey, DAT_ISSUER, '2001:db8::1', NOW).token).claims['xv.vpn.dip.details'] instanceof Object, true);
  });
});

describe('DRT issuance', () => {
  it('writes exactly the header and claims of SPEC §2', async () => {
    const { token, exp } = issueDrt(drtKey, DAT_ISSUER, { sub: SUB, did: DID, ip: IP }, NOW);
    const { header, claims, signature } = decodeToken(token);
    assert.deepEqual(header, { alg: 'ES256', typ: 'drt+jwt', kid: await calculateJwkThumbprint(drtKey.publicJwk, 'sha256') });
    assert.deepEqual(Object.keys(claims).sort(), ['exp', 'iat', 'iss', 'jti', 'sub', 'xv.vpn.dip', 'xv.vpn.dip.details']);
    assert.equal(claims.iss, DAT_ISSUER);
    assert.equal(claims.sub, SUB);
    assert.equal(claims.iat, NOW);
    assert.equal(claims.exp, NOW + 5_184_000);
    assert.equal(exp, NOW + 5_184_000);
    assert.deepEqual(claims['xv.vpn.dip'], { did: DID });
    assert.deepEqual(claims['xv.vpn.dip.details'], { ip: IP });
    assert.equal(Buffer.from(claims.jti as string, 'base64url').length, 16);
    assert.equal(signature.length, 64);
  });

  it('is signed with the DRT key, never the DAT key', async () => {
    const { token } = issueDrt(drtKey, DAT_ISSUER, { sub: SUB, did: DID, ip: IP }, NOW);
    await compactVerify(token, drtKey.publicKey, { algorithms: ['ES256'] });
    await assert.rejects(compactVerify(token, datKey.publicKey, { algorithms: ['ES256'] }));
  });

  it('refuses a bad IP (bad_request) and a bad sub or did (our own misuse)', () => {
    assert.throws(() => issueDrt(drtKey, DAT_ISSUER, { sub: SUB, did: DID, ip: '1.2.3' }, NOW), DipError);
    assert.throws(() => issueDrt(drtKey, DAT_ISSUER, { sub: '', did: DID, ip: IP }, NOW), TypeError);
    assert.throws(() => issueDrt(drtKey, DAT_ISSUER, { sub: 'sub-\ud800', did: DID, ip: IP }, NOW), TypeError);
    assert.throws(() => issueDrt(drtKey, DAT_ISSUER, { sub: SUB, did: -1, ip: IP }, NOW), TypeError);
  });
});

describe('DRT verification', () => {
  const good = (now = NOW) => issueDrt(drtKey, DAT_ISSUER, { sub: SUB, did: DID, ip: IP }, now).token;

  it('accepts a DRT it issued and returns sub, did, ip and exp', () => {
    assert.deepEqual(verifyDrt(onlyDrt, DAT_ISSUER, good(), NOW + 10), { sub: SUB, did: DID, ip: IP, exp: NOW + 5_184_000 });
  });

  it('accepts a sub of 256 emoji (512 UTF-16 units) and rejects 257 or a lone surrogate', async () => {
    const withSub = (sub: string) => signEs256(drtKey.privateKey, drtHeader(drtKey), drtClaims({ sub }));
    assert.equal(verifyDrt(onlyDrt, DAT_ISSUER, withSub('😀'.repeat(256)), NOW).sub, '😀'.repeat(256), '256 emoji');
    await rejectsWith(() => verifyDrt(onlyDrt, DAT_ISSUER, withSub('😀'.repeat(257)), NOW), 'drt_invalid');
    await rejectsWith(() => verifyDrt(onlyDrt, DAT_ISSUER, withSub('sub-\ud800'), NOW), 'drt_invalid');
  });

  it('allows 60 s of skew on exp: 30 s ago is accepted, 90 s ago is drt_expired', async () => {
    const issuedAt = NOW - 5_184_000;
    assert.equal(verifyDrt(onlyDrt, DAT_ISSUER, good(issuedAt - 30), NOW).sub, SUB);
    await rejectsWith(() => verifyDrt(onlyDrt, DAT_ISSUER, good(issuedAt - 90), NOW), 'drt_expired');
  });

  it('accepts a DRT whose exp is exactly 60 s ago and refuses one whose exp is exactly 61 s ago', async () => {
    const issuedAt = NOW - 5_184_000;
    assert.equal(verifyDrt(onlyDrt, DAT_ISSUER, good(issuedAt - 60), NOW).sub, SUB, 'exp = now - 60 is within the skew');
    await rejectsWith(() => verifyDrt(onlyDrt, DAT_ISSUER, good(issuedAt - 61), NOW), 'drt_expired');
  });

  it('rejects a DAT presented as a DRT', async () => {
    await rejectsWith(() => verifyDrt(onlyDrt, DAT_ISSUER, issueDat(datKey, DAT_ISSUER, IP, NOW).token, NOW), 'drt_invalid');
  });

  it('rejects a token signed with the DRT key but typed dat+jwt', async () => {
    const token = signEs256(drtKey.privateKey, drtHeader(drtKey, { typ: 'dat+jwt' }), drtClaims());
    await rejectsWith(() => verifyDrt(onlyDrt, DAT_ISSUER, token, NOW), 'drt_invalid');
    // The control: the same claims with typ drt+jwt verify.
    assert.equal(verifyDrt(onlyDrt, DAT_ISSUER, signEs256(drtKey.privateKey, drtHeader(drtKey), drtClaims()), NOW).sub, SUB);
  });

  it('rejects a token typed drt+jwt but signed with the DAT key', async () => {
    await rejectsWith(() => verifyDrt(onlyDrt, DAT_ISSUER, issueDrt(datKey, DAT_ISSUER, { sub: SUB, did: DID, ip: IP }, NOW).token, NOW), 'drt_invalid');
    const sameKidDatKey = signEs256(datKey.privateKey, drtHeader(drtKey), drtClaims());
    await rejectsWith(() => verifyDrt(onlyDrt, DAT_ISSUER, sameKidDatKey, NOW), 'drt_invalid');
  });

  it('rejects alg none, HS256 and any other alg before looking at the key', async () => {
    const publicDer = drtKey.publicKey.export({ format: 'der', type: 'spki' });
    const hs256 = await new SignJWT(drtClaims()).setProtectedHeader({ alg: 'HS256', typ: 'drt+jwt', kid: drtKey.kid }).sign(new Uint8Array(publicDer));
    const none = unsignedToken({ alg: 'none', typ: 'drt+jwt', kid: drtKey.kid }, drtClaims());
    const es384 = signEs256(drtKey.privateKey, drtHeader(drtKey, { alg: 'ES384' }), drtClaims());
    for (const token of [hs256, none, es384]) await rejectsWith(() => verifyDrt(onlyDrt, DAT_ISSUER, token, NOW), 'drt_invalid');
  });

  it('rejects extra header members, a DER signature and malformed tokens', async () => {
    const tokens = [
      signEs256(drtKey.privateKey, drtHeader(drtKey, { crit: ['b64'], b64: false }), drtClaims()),
      signEs256(drtKey.privateKey, drtHeader(drtKey, { jku: 'https://evil.example/jwks' }), drtClaims()),
      signEs256(drtKey.privateKey, { alg: 'ES256', typ: 'drt+jwt' }, drtClaims()),
      signEs256(drtKey.privateKey, drtHeader(drtKey), drtClaims(), true),
      'a.b',
      'a.b.c.d',
      '..',
      `${b64json('ES256')}.${b64json(drtClaims())}.`,
      `!!!.${b64json(drtClaims())}.AAAA`,
      `${b64json(drtHeader(drtKey))}.!!!.${'A'.repeat(86)}`,
      `${Buffer.from('{not json').toString('base64url')}.${b64json(drtClaims())}.AAAA`,
    ];
    for (const token of tokens) await rejectsWith(() => verifyDrt(onlyDrt, DAT_ISSUER, token, NOW), 'drt_invalid');
  });

  it('rejects signed DRTs whose claims break the rules', async () => {
    const variants: Record<string, unknown>[] = [
      { iss: 'https://other.example' },
      { iss: undefined },
      { sub: '' },
      { sub: 'x'.repeat(257) },
      { sub: undefined },
      { jti: undefined },
      { iat: undefined },
      { exp: 'later' },
      { 'xv.vpn.dip': undefined },
      { 'xv.vpn.dip': { did: -1 } },
      { 'xv.vpn.dip': { did: 2.5 } },
      { 'xv.vpn.dip.details': undefined },
      { 'xv.vpn.dip.details': { ip: '2001:DB8::1' } },
      { 'xv.vpn.dip.details': { ip: 7 } },
    ];
    for (const overrides of variants) {
      const token = signEs256(drtKey.privateKey, drtHeader(drtKey), drtClaims(overrides));
      await rejectsWith(() => verifyDrt(onlyDrt, DAT_ISSUER, token, NOW), 'drt_invalid');
    }
    const notAnObject = signEs256(drtKey.privateKey, drtHeader(drtKey), [1, 2] as unknown as Record<string, unknown>);
    await rejectsWith(() => verifyDrt(onlyDrt, DAT_ISSUER, notAnObject, NOW), 'drt_invalid');
  });

  it('is at least as strict as jose: every mutation it accepts, jose accepts too, and all failures are drt_invalid', async () => {
    const token = good();
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';
    await fc.assert(
      fc.asyncProperty(fc.nat(token.length - 1), fc.constantFrom(...alphabet), async (at, char) => {
        const mutated = token.slice(0, at) + char + token.slice(at + 1);
        let ours: boolean;
        try {
          verifyDrt(onlyDrt, DAT_ISSUER, mutated, NOW);
          ours = true;
        } catch (error) {
          assert.ok(error instanceof DipError && error.code === 'drt_invalid', 'drt_invalid');
          ours = false;
        }
        const theirs = await jwtVerify(mutated, drtKey.publicKey, { algorithms: ['ES256'], typ: 'drt+jwt', issuer: DAT_ISSUER }).then(
          () => true,
          () => false,
        );
        if (ours) assert.equal(theirs, true);
        if (mutated === token) assert.equal(ours, true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('DAT verification helper', () => {
  const jwks = { keys: [datKey.publicJwk] };

  it('rejects a DRT presented as a DAT', async () => {
    const drt = issueDrt(drtKey, DAT_ISSUER, { sub: SUB, did: DID, ip: IP }, NOW).token;
    await assert.rejects(verifyDat(jwks, DAT_ISSUER, drt, NOW), InvalidDatError);
    // Even with the DRT key published, typ still refuses it.
    await assert.rejects(verifyDat({ keys: [drtKey.publicJwk] }, DAT_ISSUER, drt, NOW), InvalidDatError);
  });

  it('rejects a DAT that names a subscription or lacks a canonical IP', async () => {
    const withSub = signEs256(datKey.privateKey, { alg: 'ES256', typ: 'dat+jwt', kid: datKey.kid }, { ...drtClaims({ 'xv.vpn.dip': undefined }) });
    await assert.rejects(verifyDat(jwks, DAT_ISSUER, withSub, NOW), (e: unknown) => e instanceof InvalidDatError && e.reason === 'sub');
    const badIp = signEs256(datKey.privateKey, { alg: 'ES256', typ: 'dat+jwt', kid: datKey.kid }, drtClaims({ sub: undefined, 'xv.vpn.dip.details': { ip: 'x' } }));
    await assert.rejects(verifyDat(jwks, DAT_ISSUER, badIp, NOW), (e: unknown) => e instanceof InvalidDatError && e.reason === 'details');
  });

  it('accepts a DAT whose exp is exactly 60 s ago and refuses one whose exp is exactly 61 s ago', async () => {
    const { token, exp } = issueDat(datKey, DAT_ISSUER, IP, NOW - 259_200 - 60);
    assert.equal((await verifyDat(jwks, DAT_ISSUER, token, NOW)).exp, exp, 'exp = now - 60 is within the skew');
    const expired = issueDat(datKey, DAT_ISSUER, IP, NOW - 259_200 - 61).token;
    await assert.rejects(verifyDat(jwks, DAT_ISSUER, expired, NOW), (e: unknown) => e instanceof InvalidDatError && e.reason === 'ERR_JWT_EXPIRED');
  });

  it('rejects an expired DAT and a DAT from another issuer', async () => {
    const { token } = issueDat(datKey, DAT_ISSUER, IP, NOW - 259_200 - 90);
    await assert.rejects(verifyDat(jwks, DAT_ISSUER, token, NOW), (e: unknown) => e instanceof InvalidDatError && e.reason === 'ERR_JWT_EXPIRED');
    await assert.rejects(verifyDat(jwks, 'https://other.example', issueDat(datKey, DAT_ISSUER, IP, NOW).token, NOW), InvalidDatError);
    await assert.rejects(verifyDat(jwks, DAT_ISSUER, 'junk', NOW), InvalidDatError);
  });

  it('has the fixed message, never the token content', async () => {
    const error = await verifyDat(jwks, 'https://other.example', issueDat(datKey, DAT_ISSUER, IP, NOW).token, NOW).catch((e: unknown) => e);
    assert.ok(error instanceof InvalidDatError, 'an InvalidDatError');
    assert.ok(!error.message.includes(IP), 'the message holds no IP');
  });
});
