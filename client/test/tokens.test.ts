import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, jwtVerify, type JWK } from 'jose';
import { ClientError } from '../errors.js';
import { isDrtShaped, mintDevSrt, parseDevIssuer, readDrt, readSrt, verifyDat } from '../tokens.js';

const IP = '203.0.113.7';
const NOW = Math.floor(Date.now() / 1000);
const jti = () => randomBytes(16).toString('base64url');

async function datKey(alg = 'ES256', crv?: string) {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(crv ? { crv } : {}) });
  const jwk: JWK = await exportJWK(publicKey);
  jwk.kid = await calculateJwkThumbprint(jwk, 'sha256');
  jwk.alg = alg;
  jwk.use = 'sig';
  return { privateKey, jwk };
}

const dat = await datKey();
const jwks = new TextEncoder().encode(JSON.stringify({ keys: [dat.jwk] }));

interface Mint {
  header?: Record<string, unknown>;
  claims?: Record<string, unknown>;
  key?: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  alg?: string;
}

function mint({ header = {}, claims = {}, key = dat.privateKey, alg = 'ES256' }: Mint = {}): Promise<string> {
  const payload = { iss: 'dip-enclave', iat: NOW, exp: NOW + 259_200, jti: jti(), 'xv.vpn.dip.details': { ip: IP }, ...claims };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete (payload as Record<string, unknown>)[k];
  return new SignJWT(payload).setProtectedHeader({ alg, typ: 'dat+jwt', kid: dat.jwk.kid!, ...header }).sign(key);
}

function isCode(code: string) {
  return (error: unknown) => error instanceof ClientError && error.code === code && !error.fromServer;
}

describe('DAT verification', () => {
  it('a DAT signed by the attested key with SPEC §2 claims verifies and gives its claims', async () => {
    const claims = await verifyDat(await mint(), jwks, { ip: IP });
    assert.equal(claims.ip, IP);
    assert.equal(claims.exp - claims.iat, 259_200);
    assert.equal(claims.iss, 'dip-enclave');
  });

  it('a DAT for another IP is ip_unexpected', async () => {
    await assert.rejects(verifyDat(await mint(), jwks, { ip: '203.0.113.8' }), isCode('ip_unexpected'));
  });

  const bad: Array<[string, () => Promise<string>]> = [
    ['typ drt+jwt (a DRT presented as a DAT)', () => mint({ header: { typ: 'drt+jwt' } })],
    ['a key outside the attested JWKS', async () => mint({ key: (await datKey()).privateKey })],
    ['a kid that is not the thumbprint of its key', async () => {
      const other = await datKey();
      const set = { keys: [{ ...other.jwk, kid: 'not-a-thumbprint' }] };
      return JSON.stringify(set) + '|' + (await mint({ key: other.privateKey, header: { kid: 'not-a-thumbprint' } }));
    }],
    ['no kid', () => mint({ header: { kid: undefined } })],
    ['a lifetime other than 3 days', () => mint({ claims: { exp: NOW + 3600 } })],
    ['a sub claim', () => mint({ claims: { sub: 'subscription' } })],
    ['a DIP entitlement claim', () => mint({ claims: { 'xv.vpn.dip': { did: 1 } } })],
    ['a short jti', () => mint({ claims: { jti: 'abc' } })],
    ['no iss', () => mint({ claims: { iss: undefined } })],
    ['a non-canonical IP', () => mint({ claims: { 'xv.vpn.dip.details': { ip: '2001:DB8::1' } } })],
    ['expired beyond the skew', () => mint({ claims: { iat: NOW - 259_200 - 120, exp: NOW - 120 } })],
    ['a tampered payload', async () => {
      const [h, , s] = (await mint()).split('.');
      const other = (await mint({ claims: { 'xv.vpn.dip.details': { ip: '203.0.113.9' } } })).split('.')[1];
      return `${h}.${other}.${s}`;
    }],
  ];
  for (const [what, make] of bad) {
    it(`a DAT with ${what} is dat_invalid`, async () => {
      let token = await make();
      let set = jwks;
      if (token.includes('|')) {
        const [j, t] = token.split('|') as [string, string];
        set = new TextEncoder().encode(j);
        token = t;
      }
      await assert.rejects(verifyDat(token, set, { ip: IP }), isCode('dat_invalid'));
    });
  }

  it('an ES384 DAT is refused even when its key is in the JWKS (ES256 only)', async () => {
    const p384 = await datKey('ES384');
    const set = new TextEncoder().encode(JSON.stringify({ keys: [p384.jwk] }));
    const token = await mint({ alg: 'ES384', key: p384.privateKey, header: { kid: p384.jwk.kid } });
    await assert.rejects(verifyDat(token, set, { ip: IP }), isCode('dat_invalid'));
  });

  it('JWKS bytes that are not a JWKS make every DAT dat_invalid', async () => {
    const token = await mint();
    for (const set of ['{', '[]', '{"keys":{}}', '\xff']) {
      await assert.rejects(verifyDat(token, Buffer.from(set, 'latin1'), { ip: IP }), isCode('dat_invalid'));
    }
  });

  it('accepts a DAT 60 s after its exp and refuses it 61 s after (SPEC §2 skew, inclusive, at the exact second)', async () => {
    const token = await mint();
    const exp = NOW + 259_200;
    assert.equal((await verifyDat(token, jwks, { ip: IP, now: new Date((exp + 60) * 1000) })).exp, exp, 'exp + 60 s is within the skew');
    await assert.rejects(verifyDat(token, jwks, { ip: IP, now: new Date((exp + 61) * 1000) }), isCode('dat_invalid'));
  });

  it('verification honours the given time', async () => {
    const token = await mint();
    await assert.rejects(verifyDat(token, jwks, { ip: IP, now: new Date((NOW + 259_200 + 120) * 1000) }), isCode('dat_invalid'));
  });

  it('a DAT issued more than 60 s in the future is dat_invalid; exactly 60 s ahead still verifies', async () => {
    const token = await mint();
    const at = (seconds: number) => ({ ip: IP, now: new Date(seconds * 1000) });
    assert.equal((await verifyDat(token, jwks, at(NOW - 60))).iat, NOW, 'iat 60 s ahead of the verifier is within the skew');
    await assert.rejects(verifyDat(token, jwks, at(NOW - 61)), isCode('dat_invalid'), 'iat 61 s ahead is refused');
  });

  it('an expected issuer must be the DAT\'s iss', async () => {
    const token = await mint();
    assert.equal((await verifyDat(token, jwks, { ip: IP, iss: 'dip-enclave' })).iss, 'dip-enclave', 'the right iss verifies');
    await assert.rejects(verifyDat(token, jwks, { ip: IP, iss: 'someone-else' }), isCode('dat_invalid'), 'another iss is refused');
  });
});

function drt(header: Record<string, unknown> = {}, claims: Record<string, unknown> = {}): Promise<string> {
  const payload: Record<string, unknown> = {
    iss: 'dip-enclave', sub: 'sub-1', iat: NOW, exp: NOW + 5_184_000, jti: jti(),
    'xv.vpn.dip': { did: 3 }, 'xv.vpn.dip.details': { ip: IP }, ...claims,
  };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: 'drt+jwt', kid: 'drt-key', ...header }).sign(dat.privateKey);
}

describe('DRT reading', () => {
  it('reads sub, did, ip and the 60-day lifetime of a DRT', async () => {
    const claims = readDrt(await drt());
    assert.deepEqual([claims.sub, claims.did, claims.ip, claims.kid, claims.exp - claims.iat], ['sub-1', 3, IP, 'drt-key', 5_184_000]);
  });

  const bad: Array<[string, Record<string, unknown>, Record<string, unknown>]> = [
    ['typ dat+jwt (a DAT presented as a DRT)', { typ: 'dat+jwt' }, {}],
    ['alg ES384', { alg: 'ES384' }, {}],
    ['no kid', { kid: undefined }, {}],
    ['no did', {}, { 'xv.vpn.dip': undefined }],
    ['a negative did', {}, { 'xv.vpn.dip': { did: -1 } }],
    ['no sub', {}, { sub: undefined }],
    ['a DAT lifetime', {}, { exp: NOW + 259_200 }],
  ];
  for (const [what, header, claims] of bad) {
    it(`a DRT with ${what} is drt_unexpected`, async () => {
      const forged = header['alg'] === 'ES384';
      let token = await drt(forged ? {} : header, claims);
      if (forged) {
        const [, p, s] = token.split('.');
        token = `${Buffer.from(JSON.stringify({ alg: 'ES384', typ: 'drt+jwt', kid: 'k' })).toString('base64url')}.${p}.${s}`;
      }
      assert.throws(() => readDrt(token), isCode('drt_unexpected'));
    });
  }

  it('isDrtShaped accepts a compact JWS with typ drt+jwt and nothing else', async () => {
    assert.equal(isDrtShaped(await drt()), true, 'a DRT');
    assert.equal(isDrtShaped(await mint()), false, 'a DAT (typ dat+jwt)');
    assert.equal(isDrtShaped('header.payload.signature'), false, 'three parts whose header is not JSON');
    assert.equal(isDrtShaped(`${await drt()}\n`), false, 'trailing text');
    assert.equal(isDrtShaped('dipb1.AAAA'), false, 'a backup');
  });

  it('a DRT whose sub is 256 emoji (512 UTF-16 units) reads, as the enclave accepts it (SPEC §2)', async () => {
    assert.equal(readDrt(await drt({}, { sub: '😀'.repeat(256) })).sub, '😀'.repeat(256), '256 code points');
    assert.equal(readDrt(await drt({}, { sub: 'x'.repeat(256) })).sub, 'x'.repeat(256), '256 ASCII');
  });

  it('a DRT whose sub is empty, 257 code points or has a lone surrogate is drt_unexpected', async () => {
    for (const sub of ['', 'x'.repeat(257), '😀'.repeat(257), 'sub-\ud800']) {
      const token = await drt({}, { sub });
      assert.throws(() => readDrt(token), isCode('drt_unexpected'), `sub of ${sub.length} units`);
    }
  });

  it('something that is not a JWT is drt_unexpected, and the error never quotes it', () => {
    assert.throws(() => readDrt('secret.token'), (e: unknown) => isCode('drt_unexpected')(e) && !String((e as Error).message).includes('secret'));
  });
});

const issuerKey = await (async () => {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: 'dev-1', alg: 'ES256' };
  return { jwk, publicKey };
})();

describe('SRT reading and development SRTs', () => {
  const issuer = parseDevIssuer(JSON.stringify({ iss: 'https://dev.example', aud: 'dip', jwk: issuerKey.jwk }));

  it('a minted development SRT verifies with the issuer key and carries sub, did, aud and a bounded lifetime', async () => {
    const srt = await mintDevSrt(issuer, { sub: 'sub-9', did: 4, lifetimeSeconds: 3600 });
    const { payload, protectedHeader } = await jwtVerify(srt, issuerKey.publicKey, { issuer: 'https://dev.example', audience: 'dip' });
    assert.equal(protectedHeader.kid, 'dev-1');
    assert.deepEqual(payload['entitlements'], { 'xv.vpn.dip': { did: 4 } });
    assert.equal(payload.exp! - payload.iat!, 3600);
    assert.deepEqual(readSrt(srt), { sub: 'sub-9', did: 4 });
  });

  it('an SRT without the entitlement reads with did null; no aud when the issuer has none', async () => {
    const noAud = { ...issuer, aud: null };
    const srt = await mintDevSrt(noAud, { sub: 'sub-9', did: null, now: NOW });
    assert.deepEqual(readSrt(srt), { sub: 'sub-9', did: null });
    const { payload } = await jwtVerify(srt, issuerKey.publicKey);
    assert.equal(payload.aud, undefined);
    assert.equal(payload.exp, NOW + 86_400);
  });

  it('an unreadable SRT is token_unreadable', async () => {
    assert.throws(() => readSrt('nope'), isCode('token_unreadable'));
    const noSub = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).sign(dat.privateKey);
    assert.throws(() => readSrt(noSub), isCode('token_unreadable'));
  });

  it('sub counts code points: 256 emoji read and mint, 257 do not, nor a lone surrogate (SPEC §2)', async () => {
    const emoji256 = '😀'.repeat(256);
    assert.equal(readSrt(await mintDevSrt(issuer, { sub: emoji256, did: 1 })).sub, emoji256, '256 emoji are one valid sub');
    assert.equal(readSrt(await mintDevSrt(issuer, { sub: 'x'.repeat(256), did: 1 })).sub, 'x'.repeat(256), '256 ASCII');
    for (const sub of ['x'.repeat(257), '😀'.repeat(257), '\ud800']) {
      await assert.rejects(mintDevSrt(issuer, { sub, did: 1 }), TypeError, `minting refuses a sub of ${sub.length} units`);
      const srt = await new SignJWT({ sub }).setProtectedHeader({ alg: 'ES256' }).sign(dat.privateKey);
      assert.throws(() => readSrt(srt), isCode('token_unreadable'), `reading refuses a sub of ${sub.length} units`);
    }
  });

  it('minting refuses bad sub, did and lifetimes above 72 hours', async () => {
    await assert.rejects(mintDevSrt(issuer, { sub: '', did: 0 }), TypeError);
    await assert.rejects(mintDevSrt(issuer, { sub: 'a', did: 1.5 }), TypeError);
    await assert.rejects(mintDevSrt(issuer, { sub: 'a', did: 0, lifetimeSeconds: 72 * 3600 + 1 }), TypeError);
  });

  it('an issuer file that is not the SPEC §8 shape is refused', () => {
    assert.throws(() => parseDevIssuer('{"iss":1}'), TypeError);
    assert.throws(() => parseDevIssuer(JSON.stringify({ iss: 'x', aud: null, jwk: { kid: 'k', alg: 'ES256' } })), TypeError);
  });
});
