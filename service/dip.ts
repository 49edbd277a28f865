// The rules of SPEC §11: assign (token → in-flight lease → pending nonce and reserved IP → parent →
// spent, or released on a definitive refusal, or kept), refresh (only a reserved or quarantined IP
// is forwarded; a 200 extends it) and backups. HTTP is server.ts's; SQL is store/'s; the parents
// are parents.ts's. Every refusal is a DipError whose message is the fixed text of its code.

import { decodeBase64url } from '../protocol/base64url.js';
import { DipError, httpStatusOf, isErrorCode, type ErrorCode } from '../protocol/errors.js';
import { isCanonicalIp } from '../protocol/ip.js';
import { DRT_LIFETIME_SECONDS, MIN_SEALED_REQUEST_BYTES } from '../protocol/limits.js';
import { sealedRequestKeyId } from '../protocol/sealed-header.js';
import { MAX_BACKUP_BYTES, deleteBackup, getBackup, putBackup } from '../store/backup.js';
import { dayOf } from '../store/day.js';
import { extendReservation, isRefreshable } from '../store/ip-pool.js';
import type { Store } from '../store/store.js';
import { beginAssign, completeAssign, refuseAssign } from '../store/token-nonce.js';
import type { Upstream } from './parents.js';
import type { Token } from '../protocol/privacypass.js';
import { redeemableToken, type TokenKeys } from './token-keys.js';

/** SPEC §11: a new reservation holds until now + 60 days (a DRT's life) until the parent says. */
export const RESERVATION_DAYS = DRT_LIFETIME_SECONDS / 86_400;

/**
 * The latest `reservedUntil` a parent may give, in days after today's 00:00 UTC: a DRT's life,
 * one day for its expiry rounded up to 00:00 (SPEC §4), and one for an enclave clock a day ahead.
 */
export const MAX_RESERVED_UNTIL_DAYS = RESERVATION_DAYS + 2;
/** The earliest: tomorrow's 00:00 UTC (a DRT made now expires no sooner). */
export const MIN_RESERVED_UNTIL_DAYS = 1;

export const ASSIGN_OUTCOMES = ['assigned', 'token_invalid', 'bad_request', 'key_unknown', 'in_use', 'spent', 'exhausted', 'refused', 'kept'] as const;
/** How an assign ended, for the metrics: a fixed word, never a value from the request. */
export type AssignOutcome = (typeof ASSIGN_OUTCOMES)[number];

export interface DipObserver {
  assign?(outcome: AssignOutcome): void;
  /** A parent call that did not answer 200, by SPEC §6 code or transport kind. */
  parentError?(code: string): void;
}

/** What the rules need of the parents (parents.ts). */
export interface ParentRouter {
  targetsFor(keyId: Uint8Array): Promise<number[] | null>;
  post(targets: readonly number[], path: string, body: string): Promise<Upstream>;
  keyUnknown(): void;
}

export interface Dip {
  readonly store: Store;
  readonly parents: ParentRouter;
  readonly tokenKeys: TokenKeys;
  /** Unix seconds; injectable so that tests and demos can move the clock. */
  readonly now: () => number;
  readonly observer?: DipObserver;
}

/** SPEC §11's 200 answer of assign and refresh, as the parent gave it. */
export interface DipAnswer {
  ip: string;
  reservedUntil: number;
  response: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A JSON object with exactly `keys`, each a string. */
function jsonFields<K extends string>(body: Uint8Array, keys: readonly K[]): Record<K, string> {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(body));
  } catch {
    throw new DipError('bad_request');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DipError('bad_request');
  const record = value as Record<string, unknown>;
  if (Object.keys(record).length !== keys.length || !keys.every((key) => typeof record[key] === 'string')) throw new DipError('bad_request');
  return record as Record<K, string>;
}

/** A sealed request (SPEC §4): canonical base64url, version 0x02, at least hdr || enc || tag; its key_id. */
function sealedRequest(text: string): Uint8Array {
  const bytes = decodeBase64url(text);
  const keyId = bytes === null || bytes.length < MIN_SEALED_REQUEST_BYTES ? null : sealedRequestKeyId(bytes);
  if (keyId === null) throw new DipError('bad_request');
  return keyId;
}

type ParentResult =
  | { kind: 'ok'; answer: DipAnswer }
  /** SPEC §11: a 400 or 403 code from the enclave, or key_unknown — no token was made. */
  | { kind: 'refused'; code: ErrorCode }
  /** Anything else: tokens may exist, so the reservation stays. */
  | { kind: 'failed'; code: ErrorCode };

/** The SPEC §6 code of a parent's error answer, when its body is one and matches its status. */
export function errorCodeOf(status: number, body: Buffer): ErrorCode | null {
  try {
    const code = (JSON.parse(body.toString('utf8')) as { error?: { code?: unknown } } | null)?.error?.code;
    return isErrorCode(code) && httpStatusOf(code) === status ? code : null;
  } catch {
    return null;
  }
}

/**
 * Whether a parent's `reservedUntil` can be stored: a 00:00 UTC instant from tomorrow through
 * MAX_RESERVED_UNTIL_DAYS after today. Anything else would free or hold an IP on the parent's word.
 */
export function isPlausibleReservedUntil(reservedUntil: number, now: number): boolean {
  const today = dayOf(now);
  const day = reservedUntil / 86_400;
  return Number.isSafeInteger(day) && day >= today + MIN_RESERVED_UNTIL_DAYS && day <= today + MAX_RESERVED_UNTIL_DAYS;
}

/** Reads what the parent did with a sealed request for `ip`, at `now`. */
function parentResult(outcome: Upstream, ip: string, now: number, observer: DipObserver | undefined): ParentResult {
  if (outcome.kind !== 'answered') {
    if (outcome.kind !== 'refused') observer?.parentError?.(outcome.kind === 'timeout' ? 'timeout' : 'connection_lost');
    return { kind: 'failed', code: outcome.kind === 'timeout' ? 'enclave_timeout' : 'enclave_unavailable' };
  }
  if (outcome.status === 200) {
    const answer = readAnswer(outcome.body);
    if (answer !== null && answer.ip === ip && isPlausibleReservedUntil(answer.reservedUntil, now)) return { kind: 'ok', answer };
    observer?.parentError?.('malformed');
    return { kind: 'failed', code: 'internal' };
  }
  const code = errorCodeOf(outcome.status, outcome.body);
  observer?.parentError?.(code ?? 'malformed');
  if (code === null) return { kind: 'failed', code: outcome.status === 504 ? 'enclave_timeout' : outcome.status === 503 ? 'enclave_unavailable' : 'internal' };
  const definitive = code === 'key_unknown' || outcome.status === 400 || outcome.status === 403;
  return { kind: definitive ? 'refused' : 'failed', code };
}

/** `{"ip", "reservedUntil", "response"}` exactly, with a canonical IP, whole seconds and base64url. */
function readAnswer(body: Buffer): DipAnswer | null {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(body));
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const { ip, reservedUntil, response, ...rest } = value as Record<string, unknown>;
  if (Object.keys(rest).length > 0 || typeof ip !== 'string' || !isCanonicalIp(ip)) return null;
  if (!Number.isSafeInteger(reservedUntil) || (reservedUntil as number) < 0) return null;
  if (typeof response !== 'string' || response.length === 0 || decodeBase64url(response) === null) return null;
  return { ip, reservedUntil: reservedUntil as number, response };
}

/** SPEC §10: the token of an assign, valid now, or token_invalid (401 with the challenge). */
export function redeem(dip: Dip, authorization: string | undefined): Token {
  try {
    return redeemableToken(dip.tokenKeys, authorization, dip.now());
  } catch (error) {
    dip.observer?.assign?.('token_invalid');
    throw error;
  }
}

/**
 * POST /v1/dip/assign (SPEC §11) with the token redeem() accepted. Order: the body and its sealed
 * header (400), the key_id's parent (421, before the store is touched), the token's in-flight lease
 * (409 while another attempt with it is at the parent), then pending + reserve, the parent, and the
 * outcome recorded before the lease is released.
 */
export async function assign(dip: Dip, token: Token, body: Uint8Array): Promise<DipAnswer> {
  const observe = (outcome: AssignOutcome): void => dip.observer?.assign?.(outcome);
  const now = dip.now();
  let request: string;
  let keyId: Uint8Array;
  try {
    request = jsonFields(body, ['request'] as const).request;
    keyId = sealedRequest(request);
  } catch (error) {
    observe('bad_request');
    throw error;
  }
  const targets = await dip.parents.targetsFor(keyId);
  if (targets === null) {
    observe('key_unknown');
    throw new DipError('key_unknown');
  }
  const release = await dip.store.tryLease(token.nonce);
  if (release === null) {
    observe('in_use');
    throw new DipError('token_spent');
  }
  try {
    const begun = await beginAssign(dip.store, token.nonce, token.tokenKeyId, dayOf(now) + RESERVATION_DAYS);
    if (begun.kind === 'spent') {
      observe('spent');
      throw new DipError('token_spent');
    }
    if (begun.kind === 'exhausted') {
      observe('exhausted');
      throw new DipError('pool_exhausted');
    }
    const { ip } = begun;
    const outcome = await dip.parents.post(targets, '/v1/dip/assign', JSON.stringify({ ip, request }));
    const result = parentResult(outcome, ip, now, dip.observer);
    if (result.kind === 'ok') {
      // Not pending any more: this attempt lost its lease (the PostgreSQL session dropped and
      // another attempt ran), or expiry spent the token. Only the attempt that completes answers.
      if ((await completeAssign(dip.store, token.nonce, dayOf(result.answer.reservedUntil))).kind === 'not_pending') {
        observe('spent');
        throw new DipError('token_spent');
      }
      observe('assigned');
      return result.answer;
    }
    if (result.kind === 'refused') {
      await refuseAssign(dip.store, token.nonce);
      if (result.code === 'key_unknown') dip.parents.keyUnknown();
      observe('refused');
    } else {
      observe('kept');
    }
    throw new DipError(result.code);
  } finally {
    await release();
  }
}

/**
 * POST /v1/dip/refresh (SPEC §11): the IP must be canonical (400) and reserved or in quarantine
 * (410 ip_unavailable, never forwarded); a 200 extends its reservation to reservedUntil, or is
 * ip_unavailable when the IP was freed meanwhile.
 */
export async function refresh(dip: Dip, body: Uint8Array): Promise<DipAnswer> {
  const { ip, request } = jsonFields(body, ['ip', 'request'] as const);
  if (!isCanonicalIp(ip)) throw new DipError('bad_request');
  const keyId = sealedRequest(request);
  const targets = await dip.parents.targetsFor(keyId);
  if (targets === null) throw new DipError('key_unknown');
  if (!(await isRefreshable(dip.store, ip))) throw new DipError('ip_unavailable');
  const outcome = await dip.parents.post(targets, '/v1/dip/refresh', JSON.stringify({ ip, request }));
  const result = parentResult(outcome, ip, dip.now(), dip.observer);
  if (result.kind !== 'ok') {
    if (result.code === 'key_unknown') dip.parents.keyUnknown();
    throw new DipError(result.code);
  }
  // The IP stopped being reserved or quarantined while the parent worked (expiry freed it).
  if (!(await extendReservation(dip.store, ip, dayOf(result.answer.reservedUntil)))) throw new DipError('ip_unavailable');
  return result.answer;
}

/** SPEC §11 `<id>`: 32 bytes as base64url without padding (43 characters), else bad_request. */
export function backupId(text: string): Uint8Array {
  const bytes = text.length === 43 ? decodeBase64url(text) : null;
  if (bytes === null || bytes.length !== 32) throw new DipError('bad_request');
  return bytes;
}

export async function storeBackup(dip: Dip, id: Uint8Array, blob: Uint8Array): Promise<void> {
  if (blob.length === 0) throw new DipError('bad_request');
  if (blob.length > MAX_BACKUP_BYTES) throw new DipError('payload_too_large');
  await putBackup(dip.store, id, blob);
}

export async function fetchBackup(dip: Dip, id: Uint8Array): Promise<Uint8Array> {
  const blob = await getBackup(dip.store, id);
  if (blob === null) throw new DipError('not_found');
  return blob;
}

export async function removeBackup(dip: Dip, id: Uint8Array): Promise<void> {
  if (!(await deleteBackup(dip.store, id))) throw new DipError('not_found');
}
