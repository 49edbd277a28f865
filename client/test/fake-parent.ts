// A fake parent + enclave for client tests: the real NSM emulator and protocol/hpke, with tokens
// minted here, so that each check the client makes after opening can be made to fail on its own.
import { createHash, randomBytes } from 'node:crypto';
import { after } from 'node:test';
import { SignJWT, calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, type JWK } from 'jose';
import { createEmulatorNsm } from '../../enclave/nsm/emulator.js';
import { encodeUserData } from '../../protocol/attestation-document.js';
import { decodeBase64url, encodeBase64url } from '../../protocol/base64url.js';
import { decodePaddedCbor, encodePaddedCbor, type CborMap } from '../../protocol/cbor.js';
import { REQUEST_PLAINTEXT_BYTES, RESPONSE_PLAINTEXT_BYTES, reservedUntilOf } from '../../protocol/limits.js';
import { generateBootKey, keyIdOf, openRequest, sealResponse, type SealedOp } from '../../protocol/hpke.js';
import type { Trust } from '../flows.js';
import { DEV_PCRS } from '../manifest.js';

export const nsm = await createEmulatorNsm();
after(() => nsm.close());
const otherNsm = await createEmulatorNsm();
after(() => otherNsm.close());

async function signingKey() {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk: JWK = await exportJWK(publicKey);
  jwk.kid = await calculateJwkThumbprint(jwk, 'sha256');
  jwk.alg = 'ES256';
  return { privateKey, jwk };
}
export const datKey = await signingKey();
const drtKey = await signingKey();
export const JWKS = new TextEncoder().encode(JSON.stringify({ keys: [datKey.jwk] }));
export const IP = '198.51.100.23';
/** The m_commit the fake enclave's documents carry (SPEC §3). */
export const M_COMMIT = new Uint8Array(32).fill(0x6d);
export const URL_BASE = 'http://parent.test:8080';

export interface Tamper {
  clearIp?: string;
  datIp?: string;
  drtIp?: string;
  reservedUntilDelta?: number;
  drtKid?: string;
  drtSub?: string;
  drtDid?: number;
  servedJwks?: Uint8Array;
  otherNonce?: boolean;
  otherNsm?: boolean;
  noPublicKey?: boolean;
  noUserData?: boolean;
  wrongContext?: boolean;
  error?: { status: number; code: string };
  /** The m_commit in user_data instead of M_COMMIT (an enclave handed another secret). */
  mCommit?: Uint8Array;
  /**
   * The first N sealed requests to the current boot key get 421 key_unknown and the enclave
   * "restarts" (a new boot key), as after an enclave restart or upgrade behind the parent (SPEC §6);
   * a request sealed to an earlier boot key is key_unknown too, as the parent routes by key_id.
   */
  keyUnknown?: number;
}

export const trust: Trust = { root: nsm.rootCertificatePem, expectedPcrs: DEV_PCRS };
const jti = () => randomBytes(16).toString('base64url');

/** A fake parent + enclave: attests with the emulator, opens the request, mints tokens. */
export function fakeParent(tamper: Tamper = {}, seen: { nonces: string[]; paths: string[] } = { nonces: [], paths: [] }) {
  let bootKey = generateBootKey();
  let keyUnknownLeft = tamper.keyUnknown ?? 0;
  const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  return async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input));
    seen.paths.push(url.pathname);
    if (url.pathname === '/v1/attestation') {
      const nonceText = url.searchParams.get('nonce')!;
      seen.nonces.push(nonceText);
      const nonce = tamper.otherNonce ? new Uint8Array(randomBytes(32)) : decodeBase64url(nonceText)!;
      const document = await (tamper.otherNsm ? otherNsm : nsm).attestation({
        nonce,
        publicKey: tamper.noPublicKey ? null : bootKey.publicKeySpki,
        userData: tamper.noUserData ? null : encodeUserData({ jwksSha256: new Uint8Array(createHash('sha256').update(JWKS).digest()), mCommit: tamper.mCommit ?? M_COMMIT }),
      });
      return json(200, { document: encodeBase64url(document), jwks: encodeBase64url(tamper.servedJwks ?? JWKS) });
    }
    if (url.pathname === '/v1/keys') return new Response(JWKS, { status: 200 });
    if (tamper.error) return json(tamper.error.status, { error: { code: tamper.error.code, message: 'x' } });
    const body = JSON.parse(String(init?.body)) as { ip?: string; request: string };
    const op: SealedOp = url.pathname === '/v1/dip/assign' ? 'assign' : 'refresh';
    const sealed = decodeBase64url(body.request)!;
    // SPEC §6: a request sealed to a boot key no enclave holds any more is key_unknown, unopened.
    if (Buffer.compare(sealed.subarray(1, 9), keyIdOf(bootKey.publicKeySpki)) !== 0) return json(421, { error: { code: 'key_unknown', message: 'x' } });
    if (keyUnknownLeft > 0) {
      keyUnknownLeft--;
      bootKey = generateBootKey();
      return json(421, { error: { code: 'key_unknown', message: 'x' } });
    }
    const { plaintext, context } = openRequest(bootKey, op, sealed);
    const fields = decodePaddedCbor(plaintext, REQUEST_PLAINTEXT_BYTES) as CborMap;
    const srt = decodeJwt(fields.get('srt') as string);
    const ip = body.ip!;
    const now = Math.floor(Date.now() / 1000);
    const dat = await new SignJWT({ jti: jti(), 'xv.vpn.dip.details': { ip: tamper.datIp ?? ip } })
      .setProtectedHeader({ alg: 'ES256', typ: 'dat+jwt', kid: datKey.jwk.kid! })
      .setIssuer('dip-enclave').setIssuedAt(now).setExpirationTime(now + 259_200).sign(datKey.privateKey);
    const did = (srt['entitlements'] as Record<string, { did: number }>)['xv.vpn.dip']!.did;
    const drt = await new SignJWT({ sub: tamper.drtSub ?? srt.sub, jti: jti(), 'xv.vpn.dip': { did: tamper.drtDid ?? did }, 'xv.vpn.dip.details': { ip: tamper.drtIp ?? ip } })
      .setProtectedHeader({ alg: 'ES256', typ: 'drt+jwt', kid: tamper.drtKid ?? drtKey.jwk.kid! })
      .setIssuer('dip-enclave').setIssuedAt(now).setExpirationTime(now + 5_184_000).sign(drtKey.privateKey);
    const sealTo = tamper.wrongContext ? { ...context, secret: new Uint8Array(32) } : context;
    return json(200, {
      ip: tamper.clearIp ?? ip,
      reservedUntil: reservedUntilOf(now + 5_184_000) + (tamper.reservedUntilDelta ?? 0),
      response: encodeBase64url(sealResponse(sealTo, encodePaddedCbor({ dat, drt }, RESPONSE_PLAINTEXT_BYTES))),
    });
  };
}

export function srtFor(sub: string, did: number): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${enc({ alg: 'ES256', typ: 'JWT' })}.${enc({ iss: 'dev', sub, iat: now, exp: now + 3600, entitlements: { 'xv.vpn.dip': { did } } })}.c2ln`;
}
export const SRT = srtFor('subscription-1', 2);

