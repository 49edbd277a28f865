// The app's whole flow through the Dedicated IP service (SPEC §10–11): ask assign without a token →
// check the 401 challenge against the pinned issuer → a token (kept from the issuer, or fetched now)
// → wait the redemption delay → attest → sealed assign with the token → open and check the DAT and
// DRT as the parent flow does (client/flows.ts). Refresh goes the same way without a token. A DRT
// backup is sealed under a generated access code and stored under a random id: the backup code
// holds both, the service only ever sees the id and a blob of fixed size.

import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleepFor } from 'node:timers/promises';
import { AWS_NITRO_ROOT_G1_SHA256 } from './attestation.js';
import { DEFAULT_SCRYPT_PARAMS, decodeBackupCode, encodeBackupCode, generateAccessCode, openBackup, sealBackup, type ScryptParams } from './backup.js';
import { ClientError } from './errors.js';
import { refresh, sealAndSend, type ConnectOptions, type DipTokens, type Trust } from './flows.js';
import type { Fetch } from './http.js';
import { checkChallenges, getToken, pinnedChallenge, redemptionDelayMs, verifySavedToken, type PinnedIssuer } from './privacy-pass.js';
import { BACKUP_ID_BYTES, MAX_BACKUP_BLOB_BYTES, ServiceClient } from './service.js';
import { isDrtShaped, readDrt, type DrtClaims } from './tokens.js';
import { pemToDer } from './x509.js';

/** The DIP service: `url` is its base URL (SPEC §8: http://127.0.0.1:8081 in development). */
export interface ServiceOptions {
  url: string;
  fetch?: Fetch;
  timeoutMs?: number;
}

function serviceOf(options: ServiceOptions): ServiceClient {
  return new ServiceClient(options.url, {
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
  });
}

/**
 * A redemption that failed but left the token usable: the service released it (a refusal, no IP
 * free) or keeps the IP for it (a timeout, a 5xx, a lost answer; SPEC §11). Retry later with the
 * same token — never a new one: the issuer signs one per subscription version. The code stays the
 * server's (or `http_failed` with the network cause).
 */
export class RetryWithSameTokenError extends ClientError {
  readonly retry = 'same_token';

  constructor(cause: ClientError) {
    super(cause.code, cause.fromServer, cause.detail);
  }

  override toJSON(): ReturnType<ClientError['toJSON']> & { retry: 'same_token' } {
    return { ...super.toJSON(), retry: 'same_token' };
  }
}

/** Only these answers to a redemption mean the token is gone (SPEC §10). */
const TOKEN_GONE = new Set(['token_spent', 'token_invalid']);

/** SPEC §8, §10: the delay protects production users; a trust that cannot accept a real Nitro enclave is development. */
export function pinsAwsNitroRoot(trust: Trust): boolean {
  let der: Uint8Array;
  try {
    der = typeof trust.root === 'string' ? pemToDer(trust.root) : trust.root;
  } catch {
    return false;
  }
  return createHash('sha256').update(der).digest('hex') === AWS_NITRO_ROOT_G1_SHA256;
}

export interface AssignThroughServiceOptions extends ConnectOptions {
  /** The subscription receipt token: sealed to the enclave, and sent to the issuer when a token is fetched. */
  srt: string;
  /** The issuer keys and challenge this release pins (token-keys.json, SPEC §8). */
  pinned: PinnedIssuer;
  /** A token kept from getToken / `dip token get` (padded base64url); verified before anything is sent. */
  token?: string;
  /** Without `token`: get one from this issuer. `keepToken` must store it before it is redeemed. */
  issuer?: { url: string; fetch?: Fetch; timeoutMs?: number; keepToken(encoded: string): void | Promise<void> };
  /** When the token was obtained (ms since the epoch); the delay counts from there. Default: now. */
  tokenObtainedAtMs?: number;
  /**
   * The redemption delay in ms. Default: uniform in 1–24 h (RFC 9576 §3.5.2), or 0 when the trust
   * does not pin AWS Nitro Enclaves Root-G1 (development).
   */
  delayMs?: number;
  /** For the default delay: a uniform integer in [0, bound); tests pass seededRandom(…). */
  random?: (bound: number) => number;
  /** Injected so that tests never wait; default a timer. */
  sleep?: (ms: number) => Promise<void>;
  /** ms since the epoch; default Date.now. */
  now?: () => number;
}

export interface ServiceTokens extends DipTokens {
  /** How long the redemption waited, in ms. */
  redemptionDelayMs: number;
}

/** SPEC §10–11: the whole assign through the DIP service, which chooses the IP. */
export async function assignThroughService(options: AssignThroughServiceOptions): Promise<ServiceTokens> {
  const { pinned, srt } = options;
  if ((options.token === undefined) === (options.issuer === undefined)) throw new TypeError('give a token or an issuer to get one from');
  if (options.delayMs !== undefined && (!Number.isSafeInteger(options.delayMs) || options.delayMs < 0)) throw new TypeError('delayMs must be an integer ≥ 0');
  const service = serviceOf(options);

  // SPEC §10: the challenge is checked before any token is fetched, or a kept one is sent.
  const challenge = await service.challenge();
  const offered = checkChallenges(challenge, pinned);
  let encoded: string;
  if (options.token !== undefined) {
    encoded = options.token.trim();
    const { pinned: key } = verifySavedToken(encoded, pinned, pinnedChallenge(pinned));
    if (!offered.includes(key)) throw new ClientError('token_invalid', false, 'not_offered');
  } else {
    const issuer = options.issuer!;
    const issued = await getToken({
      issuerUrl: issuer.url, srt, config: pinned, challenge,
      ...(issuer.fetch ?? options.fetch ? { fetch: (issuer.fetch ?? options.fetch)! } : {}),
      ...(issuer.timeoutMs ? { timeoutMs: issuer.timeoutMs } : {}),
    });
    encoded = issued.encoded;
    await issuer.keepToken(encoded);
  }

  const now = (options.now ?? Date.now)();
  const delay = options.delayMs ?? redemptionDelayMs({ development: !pinsAwsNitroRoot(options.trust), ...(options.random ? { random: options.random } : {}) });
  const obtainedAt = Math.min(options.tokenObtainedAtMs ?? now, now);
  const wait = Math.max(0, obtainedAt + delay - now);
  if (wait > 0) await (options.sleep ?? sleepFor)(wait);

  const authorization = `PrivateToken token="${encoded}"`;
  const send = async (request: Uint8Array) => {
    try {
      return await service.assign(request, authorization);
    } catch (error) {
      // key_unknown is retried once by sealAndSend with a fresh attestation and the same token.
      if (error instanceof ClientError && error.code !== 'key_unknown' && !TOKEN_GONE.has(error.code)) throw new RetryWithSameTokenError(error);
      throw error;
    }
  };
  try {
    return { ...(await sealAndSend(service, options.trust, { op: 'assign', srt }, send, undefined)), redemptionDelayMs: wait };
  } catch (error) {
    // A second key_unknown leaves the token released as well (SPEC §11).
    if (error instanceof ClientError && error.code === 'key_unknown' && !(error instanceof RetryWithSameTokenError)) throw new RetryWithSameTokenError(error);
    throw error;
  }
}

/** SPEC §11: refresh through the DIP service, which checks the reservation of the DRT's IP first. */
export function refreshThroughService(options: ConnectOptions & { srt: string; drt: string }): Promise<DipTokens> {
  return refresh(options, serviceOf(options));
}

export interface PushBackupOptions extends ServiceOptions {
  drt: string;
  /** Replace the backup of this code (after a refresh) instead of making a new one. */
  backupCode?: string;
  /** For tests and slow devices; within backup.ts's bounds. */
  scryptParams?: ScryptParams;
}

/**
 * Seals the DRT under a fresh access code, padded so the blob is exactly MAX_BACKUP_BLOB_BYTES,
 * and stores it under a fresh random id. Returns the backup code a second device needs.
 */
export async function pushBackup(options: PushBackupOptions): Promise<{ backupCode: string }> {
  if (typeof options.drt !== 'string' || !isDrtShaped(options.drt)) throw new ClientError('token_unreadable');
  const { id, accessCode } = options.backupCode !== undefined
    ? decodeBackupCode(options.backupCode)
    : { id: new Uint8Array(randomBytes(BACKUP_ID_BYTES)), accessCode: generateAccessCode() };
  const blob = await sealBackup(options.drt, accessCode, options.scryptParams ?? DEFAULT_SCRYPT_PARAMS, MAX_BACKUP_BLOB_BYTES);
  await serviceOf(options).putBackup(id, blob);
  return { backupCode: encodeBackupCode(id, accessCode) };
}

/** On a second device: fetch the backup of a backup code, open it and check that it holds a DRT. */
export async function pullBackup(options: ServiceOptions & { backupCode: string }): Promise<{ drt: string; drtClaims: Omit<DrtClaims, 'kid'> }> {
  const { id, accessCode } = decodeBackupCode(options.backupCode);
  const drt = await openBackup(await serviceOf(options).getBackup(id), accessCode);
  let claims;
  try {
    claims = readDrt(drt);
  } catch {
    throw new ClientError('backup_invalid');
  }
  const { kid: _kid, ...drtClaims } = claims;
  return { drt, drtClaims };
}

/** Removes the backup of a backup code from the service. */
export async function deleteBackup(options: ServiceOptions & { backupCode: string }): Promise<void> {
  const { id } = decodeBackupCode(options.backupCode);
  await serviceOf(options).deleteBackup(id);
}
