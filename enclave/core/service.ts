// The enclave's request handlers (SPEC §5): attest, jwks, assign, refresh, health, key_request,
// unlock. Pure request → response: the io layer frames and parses; this file opens sealed requests
// (SPEC §4), checks tokens (SPEC §2), signs with the current epoch's keys (SPEC §3) and seals the
// answer. Every bad input ends as a DipError with a fixed message.

import { createHash, generateKeyPair, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { encodeKmsUserData, encodeUserData } from '../../protocol/attestation-document.js';
import { decodePaddedCbor, encodePaddedCbor, isCborMap } from '../../protocol/cbor.js';
import { DipError } from '../../protocol/errors.js';
import { keyIdOf, openRequest, sealResponse, type BootKey, type ResponseContext, type SealedOp } from '../../protocol/hpke.js';
import { isCanonicalIp } from '../../protocol/ip.js';
import {
  EPOCH_SECONDS,
  MAX_SUBSCRIPTION_ID_CHARS,
  MAX_NONCE_BYTES,
  MIN_NONCE_BYTES,
  REQUEST_PLAINTEXT_BYTES,
  RESPONSE_PLAINTEXT_BYTES,
  reservedUntilOf,
} from '../../protocol/limits.js';
import type { EnclaveRequest } from '../../protocol/messages.js';
import type { Nsm } from '../nsm/nsm.js';
import type { ClockGuard } from './clock.js';
import type { SrtTrust } from './config.js';
import { signingKeyFromPrivateKey, type KeyCustody } from './keys.js';
import { createSrtVerifier, issueDat, issueDrt, verifyDrt, type SrtClaims } from './tokens.js';

/** Opens KMS's CiphertextForRecipient with the recipient key; any failure is one `bad_request`. */
export type RecipientCiphertextOpener = (ciphertext: Uint8Array, recipientKey: KeyObject) => Uint8Array;

export interface EnclaveServiceOptions {
  nsm: Nsm;
  bootKey: BootKey;
  custody: KeyCustody;
  srtTrust: SrtTrust;
  /** The `iss` of the DATs and DRTs this enclave issues. */
  datIssuer: string;
  version: string;
  /** SPEC §9: opens the `unlock` op's CMS (enclave/core/cms.ts in production). */
  openRecipientCiphertext: RecipientCiphertextOpener;
  /** SPEC §3: the check of this clock against the NSM's; none means always trusted (tests only). */
  clock?: ClockGuard;
  /** Unix seconds; tests fix it. */
  now?: () => number;
}

export interface EnclaveService {
  /** The ok body for `request`; throws DipError for bad input. */
  handle(request: EnclaveRequest): Promise<Record<string, unknown>>;
  /** The JWKS bytes the `jwks` and `attest` ops return now; `keys_unavailable` while locked. */
  jwksBytes(): Uint8Array;
}

const utf8 = new TextEncoder();
const generateRsaKeyPair = promisify(generateKeyPair);
const KMS_USER_DATA = encodeKmsUserData();

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

/** What the JWKS of one epoch is, and the user_data that binds it (SPEC §3). */
interface PublishedKeys {
  readonly epoch: number;
  readonly jwks: Uint8Array;
  readonly userData: Uint8Array;
}

/**
 * SPEC §4: the sealed response is padded to RESPONSE_PLAINTEXT_BYTES, so the longest DAT and DRT
 * this enclave can issue must fit, or long subscription ids alone would fail (and show by failing).
 * The worst case: 256 control characters (each escaped as \u00XX), the longest canonical IP.
 */
function requireResponseRoom(datIssuer: string): void {
  const key = signingKeyFromPrivateKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
  const ip = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
  const dat = issueDat(key, datIssuer, ip, 0);
  const drt = issueDrt(key, datIssuer, { sub: '\u0001'.repeat(MAX_SUBSCRIPTION_ID_CHARS), did: Number.MAX_SAFE_INTEGER, ip }, 0);
  try {
    encodePaddedCbor({ dat: dat.token, drt: drt.token }, RESPONSE_PLAINTEXT_BYTES);
  } catch {
    throw new TypeError('datIssuer is too long: the largest DAT and DRT would not fit the padded response');
  }
}

export async function createEnclaveService(options: EnclaveServiceOptions): Promise<EnclaveService> {
  const { nsm, bootKey, custody, srtTrust, datIssuer, version, clock } = options;
  const now = options.now ?? unixNow;
  if (typeof datIssuer !== 'string' || datIssuer.length === 0) throw new TypeError('datIssuer must be non-empty text');
  if (typeof version !== 'string') throw new TypeError('version must be text');
  if (typeof options.openRecipientCiphertext !== 'function') throw new TypeError('openRecipientCiphertext is required');
  requireResponseRoom(datIssuer);
  const verifySrt = createSrtVerifier(srtTrust);
  const keyId = keyIdOf(bootKey.publicKeySpki);
  // SPEC §9: the RSA recipient key of the latest key_request, forgotten after any unlock attempt.
  let recipientKey: KeyObject | null = null;
  let keyRequests = 0;
  let published: PublishedKeys | null = null;

  function epochOf(seconds: number): number {
    return Math.floor(seconds / EPOCH_SECONDS);
  }

  /** SPEC §3: the DAT keys of e-1, e and e+1, in that order; computed once per epoch. */
  function publishedKeys(epoch: number): PublishedKeys {
    if (published?.epoch === epoch) return published;
    const keys = [epoch - 1, epoch, epoch + 1].map((e) => custody.keysFor(e).dat.publicJwk);
    const jwks = utf8.encode(JSON.stringify({ keys }));
    const mCommit = custody.mCommit!;
    const jwksSha256 = new Uint8Array(createHash('sha256').update(jwks).digest());
    return (published = { epoch, jwks, userData: encodeUserData({ jwksSha256, mCommit }) });
  }

  function requireTrustedClock(): void {
    if (clock !== undefined && !clock.trusted) throw new DipError('clock_untrusted');
  }

  /** DAT(ip) and DRT(sub, did, ip) with the current epoch's keys, sealed for the app. */
  function answer(context: ResponseContext, srt: SrtClaims, ip: string, issuedAt: number): Record<string, unknown> {
    const keys = custody.keysFor(epochOf(issuedAt));
    const dat = issueDat(keys.dat, datIssuer, ip, issuedAt);
    const drt = issueDrt(keys.drt, datIssuer, { sub: srt.sub, did: srt.did, ip }, issuedAt);
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
    const epoch = epochOf(issuedAt);
    const drt = verifyDrt((kid) => custody.drtKeyFor(kid, epoch), datIssuer, fields[1]!, issuedAt);
    if (drt.sub !== srt.sub) throw new DipError('subject_mismatch');
    // SPEC §5: a support reset raises the version, so every older DRT stops refreshing.
    if (drt.did !== srt.did) throw new DipError('version_mismatch');
    // SPEC §5: the DIP service checked its reservation for the clear IP; the DRT must be for that IP.
    if (drt.ip !== ip) throw new DipError('ip_mismatch');
    return answer(context, srt, ip, issuedAt);
  }

  async function keyRequest(): Promise<Record<string, unknown>> {
    // Key generation is asynchronous: of two overlapping key_requests, the one sent last holds
    // the key, whichever generation finishes first.
    const ticket = ++keyRequests;
    const { privateKey, publicKey } = await generateRsaKeyPair('rsa', { modulusLength: 2048 });
    if (ticket === keyRequests) recipientKey = privateKey;
    const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
    return { document: await nsm.attestation({ userData: KMS_USER_DATA, nonce: null, publicKey: spki }) };
  }

  function unlock(ciphertext: Uint8Array): Record<string, unknown> {
    const key = recipientKey;
    recipientKey = null; // SPEC §9: whatever the outcome, this key opens nothing more.
    if (key === null) throw new DipError('bad_request');
    let secret: Uint8Array;
    try {
      secret = options.openRecipientCiphertext(ciphertext, key);
    } catch {
      throw new DipError('bad_request');
    }
    try {
      return { status: 'ok', epoch: epochOf(now()), m_commit: custody.unlock(secret) };
    } finally {
      secret.fill(0);
    }
  }

  async function handle(request: EnclaveRequest): Promise<Record<string, unknown>> {
    switch (request.op) {
      case 'assign':
        custody.keysFor(epochOf(now()));
        requireTrustedClock();
        return assign(request.body.ip, request.body.request);
      case 'refresh':
        custody.keysFor(epochOf(now()));
        requireTrustedClock();
        return refresh(request.body.ip, request.body.request);
      case 'attest': {
        const { nonce } = request.body;
        if (!(nonce instanceof Uint8Array) || nonce.length < MIN_NONCE_BYTES || nonce.length > MAX_NONCE_BYTES) {
          throw new DipError('bad_request');
        }
        const { jwks, userData } = publishedKeys(epochOf(now()));
        requireTrustedClock();
        const document = await nsm.attestation({ userData, nonce, publicKey: bootKey.publicKeySpki });
        return { document, jwks: jwks.slice() };
      }
      case 'jwks':
        return { jwks: publishedKeys(epochOf(now())).jwks.slice() };
      case 'health': {
        const mCommit = custody.mCommit;
        return mCommit === null
          ? { status: 'locked', version, key_id: keyId.slice() }
          : { status: 'ok', version, key_id: keyId.slice(), m_commit: mCommit };
      }
      case 'key_request':
        return keyRequest();
      case 'unlock':
        return unlock(request.body.recipient_ciphertext);
      default:
        throw new DipError('unknown_op');
    }
  }

  return { handle, jwksBytes: () => publishedKeys(epochOf(now())).jwks.slice() };
}
