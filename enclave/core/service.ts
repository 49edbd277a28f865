// The enclave's request handlers (SPEC §5): attest, jwks, assign, refresh, health. Pure request →
// response: the io layer frames and parses; this file opens sealed requests (SPEC §4), checks
// tokens (SPEC §2) and seals the answer. Every bad input ends as a DipError with a fixed message.

import { createHash } from 'node:crypto';
import { encodeUserData } from '../../protocol/attestation-document.js';
import { decodePaddedCbor, encodePaddedCbor, isCborMap } from '../../protocol/cbor.js';
import { DipError } from '../../protocol/errors.js';
import { keyIdOf, openRequest, sealResponse, type BootKey, type ResponseContext, type SealedOp } from '../../protocol/hpke.js';
import { isCanonicalIp } from '../../protocol/ip.js';
import { MAX_NONCE_BYTES, MIN_NONCE_BYTES, REQUEST_PLAINTEXT_BYTES, RESPONSE_PLAINTEXT_BYTES, reservedUntilOf } from '../../protocol/limits.js';
import type { EnclaveRequest } from '../../protocol/messages.js';
import type { Nsm } from '../nsm/nsm.js';
import type { SrtTrust } from './config.js';
import type { KeyCustody } from './keys.js';
import { createSrtVerifier, issueDat, issueDrt, verifyDrt, type SrtClaims } from './tokens.js';

export interface EnclaveServiceOptions {
  nsm: Nsm;
  bootKey: BootKey;
  custody: KeyCustody;
  srtTrust: SrtTrust;
  /** The `iss` of the DATs and DRTs this enclave issues. */
  datIssuer: string;
  version: string;
  /** Unix seconds; tests fix it. */
  now?: () => number;
}

export interface EnclaveService {
  /** The ok body for `request`; throws DipError for bad input. */
  handle(request: EnclaveRequest): Promise<Record<string, unknown>>;
  /** The exact bytes the `jwks` op returns and every attestation document's user_data hashes. */
  readonly jwksBytes: Uint8Array;
}

const utf8 = new TextEncoder();

function unixNow(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * Opens a sealed request and reads its payload map, which must have exactly `keys`, all text,
 * padded to exactly REQUEST_PLAINTEXT_BYTES with zeros (SPEC §4).
 */
function openPayload(bootKey: BootKey, op: SealedOp, request: Uint8Array, keys: readonly string[]): { fields: string[]; context: ResponseContext } {
  const { plaintext, context } = openRequest(bootKey, op, request);
  let map;
  try {
    map = decodePaddedCbor(plaintext, REQUEST_PLAINTEXT_BYTES);
  } catch {
    throw new DipError('bad_request');
  }
  if (!isCborMap(map) || map.size !== keys.length) throw new DipError('bad_request');
  const fields = keys.map((key) => {
    const value = map.get(key);
    if (typeof value !== 'string') throw new DipError('bad_request');
    return value;
  });
  return { fields, context };
}

export async function createEnclaveService(options: EnclaveServiceOptions): Promise<EnclaveService> {
  const { nsm, bootKey, custody, srtTrust, datIssuer, version } = options;
  const now = options.now ?? unixNow;
  if (typeof datIssuer !== 'string' || datIssuer.length === 0) throw new TypeError('datIssuer must be non-empty text');
  if (typeof version !== 'string') throw new TypeError('version must be text');
  const datKey = custody.datKey();
  const drtKey = custody.drtKey();
  if (datKey.kid === drtKey.kid) throw new TypeError('the DAT key and the DRT key must differ');
  const verifySrt = createSrtVerifier(srtTrust);
  const keyId = keyIdOf(bootKey.publicKeySpki);

  // SPEC §3: computed once, so the jwks op and every attestation document agree byte for byte.
  const jwksBytes = utf8.encode(JSON.stringify({ keys: [datKey.publicJwk] }));
  const userData = encodeUserData(new Uint8Array(createHash('sha256').update(jwksBytes).digest()));

  /** DAT(ip) and DRT(sub, did, ip), sealed for the app; the clear part is what the parent needs. */
  function answer(context: ResponseContext, srt: SrtClaims, ip: string, issuedAt: number): Record<string, unknown> {
    const dat = issueDat(datKey, datIssuer, ip, issuedAt);
    const drt = issueDrt(drtKey, datIssuer, { sub: srt.sub, did: srt.did, ip }, issuedAt);
    // SPEC §4: padded, so the response's length says nothing about the subscription id.
    const response = sealResponse(context, encodePaddedCbor({ dat: dat.token, drt: drt.token }, RESPONSE_PLAINTEXT_BYTES));
    // SPEC §4: the untrusted side keeps no time finer than a day.
    return { ip, reservedUntil: reservedUntilOf(drt.exp), response };
  }

  async function assign(ip: string, request: Uint8Array): Promise<Record<string, unknown>> {
    if (!isCanonicalIp(ip)) throw new DipError('bad_request');
    const { fields, context } = openPayload(bootKey, 'assign', request, ['srt']);
    const issuedAt = now();
    const srt = await verifySrt(fields[0]!, issuedAt);
    return answer(context, srt, ip, issuedAt);
  }

  async function refresh(ip: string, request: Uint8Array): Promise<Record<string, unknown>> {
    if (!isCanonicalIp(ip)) throw new DipError('bad_request');
    const { fields, context } = openPayload(bootKey, 'refresh', request, ['srt', 'drt']);
    const issuedAt = now();
    const srt = await verifySrt(fields[0]!, issuedAt);
    const drt = verifyDrt(drtKey, datIssuer, fields[1]!, issuedAt);
    if (drt.sub !== srt.sub) throw new DipError('subject_mismatch');
    // SPEC §5: a support reset raises the version, so every older DRT stops refreshing.
    if (drt.did !== srt.did) throw new DipError('version_mismatch');
    // SPEC §5: the DIP service checked its reservation for the clear IP; the DRT must be for that IP.
    if (drt.ip !== ip) throw new DipError('ip_mismatch');
    return answer(context, srt, ip, issuedAt);
  }

  async function handle(request: EnclaveRequest): Promise<Record<string, unknown>> {
    switch (request.op) {
      case 'assign':
        return assign(request.body.ip, request.body.request);
      case 'refresh':
        return refresh(request.body.ip, request.body.request);
      case 'attest': {
        const { nonce } = request.body;
        if (!(nonce instanceof Uint8Array) || nonce.length < MIN_NONCE_BYTES || nonce.length > MAX_NONCE_BYTES) {
          throw new DipError('bad_request');
        }
        const document = await nsm.attestation({ userData, nonce, publicKey: bootKey.publicKeySpki });
        return { document, jwks: jwksBytes.slice() };
      }
      case 'jwks':
        return { jwks: jwksBytes.slice() };
      case 'health':
        return { status: 'ok', version, key_id: keyId.slice() };
      default:
        throw new DipError('unknown_op');
    }
  }

  return { handle, jwksBytes: jwksBytes.slice() };
}
