// Requests and responses of the enclave wire protocol (SPEC §5), validated field by field:
// exact key sets, types and lengths. Parsing takes a decoded CBOR item (see frame.ts) and
// returns plain typed objects; encoding returns the item to put in a frame.
//
//   request  = {"v": 1, "id": uint, "op": text, "body": map}
//   response = {"v": 1, "id": uint, "ok": true, "body": map}
//            / {"v": 1, "id": uint, "ok": false, "error": {"code": text, "message": text}}

import { isCborMap, type CborMap, type CborValue } from './cbor.js';
import { DipError, ERROR_MESSAGES, isErrorCode, type ErrorCode } from './errors.js';
import { isCanonicalIp } from './ip.js';
import { KEY_ID_BYTES, M_COMMIT_BYTES, MAX_FRAME_BYTES, MAX_NONCE_BYTES, MIN_NONCE_BYTES, PROTOCOL_VERSION } from './limits.js';

export const OPS = ['attest', 'jwks', 'assign', 'refresh', 'health', 'key_request', 'unlock'] as const;
export type Op = (typeof OPS)[number];

export interface RequestBodies {
  attest: { nonce: Uint8Array };
  jwks: Record<string, never>;
  assign: { ip: string; request: Uint8Array };
  refresh: { ip: string; request: Uint8Array };
  health: Record<string, never>;
  key_request: Record<string, never>;
  unlock: { recipient_ciphertext: Uint8Array };
}

export interface DipResult {
  ip: string;
  reservedUntil: number;
  response: Uint8Array;
}

export interface ResponseBodies {
  attest: { document: Uint8Array; jwks: Uint8Array };
  jwks: { jwks: Uint8Array };
  assign: DipResult;
  refresh: DipResult;
  /** SPEC §3: `m_commit` is there exactly when the enclave holds M ("ok"), absent while "locked". */
  health: { status: 'ok'; version: string; key_id: Uint8Array; m_commit: Uint8Array } | { status: 'locked'; version: string; key_id: Uint8Array };
  key_request: { document: Uint8Array };
  unlock: { status: 'ok'; epoch: number; m_commit: Uint8Array };
}

export type EnclaveRequest = { [K in Op]: { id: number; op: K; body: RequestBodies[K] } }[Op];

export type EnclaveResponse =
  | { id: number; ok: true; body: CborMap }
  | { id: number; ok: false; error: { code: ErrorCode; message: string } };

/**
 * A request that cannot be answered normally. `id` is the request's id when it could be read,
 * else 0; `fatal` means the peer is not speaking the protocol and the connection must close.
 */
export class RequestError extends DipError {
  constructor(
    code: ErrorCode,
    readonly id: number,
    readonly fatal: boolean,
  ) {
    super(code);
  }
}

export function isOp(value: unknown): value is Op {
  return typeof value === 'string' && (OPS as readonly string[]).includes(value);
}

function isUint(value: CborValue): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Checks that `map` has exactly the `required` keys plus any of the `optional` ones. */
function hasExactKeys(map: CborMap, required: readonly string[], optional: readonly string[] = []): boolean {
  for (const key of required) if (!map.has(key)) return false;
  for (const key of map.keys()) {
    if (typeof key !== 'string' || (!required.includes(key) && !optional.includes(key))) return false;
  }
  return true;
}

function bytesIn(value: CborValue, min: number, max: number): value is Uint8Array {
  return value instanceof Uint8Array && value.length >= min && value.length <= max;
}

function parseBody(op: Op, body: CborMap): RequestBodies[Op] | null {
  switch (op) {
    case 'attest': {
      const nonce = body.get('nonce');
      if (!hasExactKeys(body, ['nonce']) || !bytesIn(nonce, MIN_NONCE_BYTES, MAX_NONCE_BYTES)) return null;
      return { nonce };
    }
    case 'assign':
    case 'refresh': {
      const ip = body.get('ip');
      const request = body.get('request');
      if (!hasExactKeys(body, ['ip', 'request']) || typeof ip !== 'string' || !isCanonicalIp(ip)) return null;
      if (!bytesIn(request, 1, MAX_FRAME_BYTES)) return null;
      return { ip, request };
    }
    case 'unlock': {
      const ciphertext = body.get('recipient_ciphertext');
      return hasExactKeys(body, ['recipient_ciphertext']) && bytesIn(ciphertext, 1, MAX_FRAME_BYTES) ? { recipient_ciphertext: ciphertext } : null;
    }
    case 'jwks':
    case 'health':
    case 'key_request':
      return body.size === 0 ? {} : null;
  }
}

/** Validates a decoded request frame. Throws `RequestError` with the code to answer. */
export function parseRequest(item: CborValue): EnclaveRequest {
  if (!isCborMap(item)) throw new RequestError('bad_frame', 0, true);
  const id = item.get('id');
  if (!isUint(id)) throw new RequestError('bad_frame', 0, true);
  if (!hasExactKeys(item, ['v', 'id', 'op', 'body']) || item.get('v') !== PROTOCOL_VERSION) {
    throw new RequestError('bad_request', id, false);
  }
  const op = item.get('op');
  const body = item.get('body');
  if (typeof op !== 'string' || !isCborMap(body)) throw new RequestError('bad_request', id, false);
  if (!isOp(op)) throw new RequestError('unknown_op', id, false);
  const parsed = parseBody(op, body);
  if (parsed === null) throw new RequestError('bad_request', id, false);
  return { id, op, body: parsed } as EnclaveRequest;
}

export function encodeRequest(request: EnclaveRequest): Record<string, unknown> {
  return { v: PROTOCOL_VERSION, id: request.id, op: request.op, body: request.body };
}

export function encodeOkResponse<K extends Op>(id: number, _op: K, body: ResponseBodies[K]): Record<string, unknown> {
  return { v: PROTOCOL_VERSION, id, ok: true, body };
}

export function encodeErrorResponse(id: number, code: ErrorCode): Record<string, unknown> {
  return { v: PROTOCOL_VERSION, id, ok: false, error: { code, message: ERROR_MESSAGES[code] } };
}

/**
 * Validates a decoded response frame's envelope. Returns null when it is not a response at all;
 * an error code outside the closed set is reported as `internal`.
 */
export function parseResponse(item: CborValue): EnclaveResponse | null {
  if (!isCborMap(item) || item.get('v') !== PROTOCOL_VERSION) return null;
  const id = item.get('id');
  const ok = item.get('ok');
  if (!isUint(id)) return null;
  if (ok === true) {
    const body = item.get('body');
    if (!hasExactKeys(item, ['v', 'id', 'ok', 'body']) || !isCborMap(body)) return null;
    return { id, ok: true, body };
  }
  const error = item.get('error');
  if (ok !== false || !hasExactKeys(item, ['v', 'id', 'ok', 'error']) || !isCborMap(error)) return null;
  const code = error.get('code');
  if (!hasExactKeys(error, ['code', 'message']) || typeof error.get('message') !== 'string') return null;
  const known: ErrorCode = isErrorCode(code) ? code : 'internal';
  return { id, ok: false, error: { code: known, message: ERROR_MESSAGES[known] } };
}

/** Validates the body of a successful response to `op`; null when it does not fit the op. */
export function parseResponseBody<K extends Op>(op: K, body: CborMap): ResponseBodies[K] | null {
  return parseOkBody(op, body) as ResponseBodies[K] | null;
}

function parseOkBody(op: Op, body: CborMap): ResponseBodies[Op] | null {
  switch (op) {
    case 'attest': {
      const document = body.get('document');
      const jwks = body.get('jwks');
      if (!hasExactKeys(body, ['document', 'jwks'])) return null;
      return bytesIn(document, 1, MAX_FRAME_BYTES) && bytesIn(jwks, 1, MAX_FRAME_BYTES) ? { document, jwks } : null;
    }
    case 'jwks': {
      const jwks = body.get('jwks');
      return hasExactKeys(body, ['jwks']) && bytesIn(jwks, 1, MAX_FRAME_BYTES) ? { jwks } : null;
    }
    case 'assign':
    case 'refresh': {
      const ip = body.get('ip');
      const reservedUntil = body.get('reservedUntil');
      const response = body.get('response');
      if (!hasExactKeys(body, ['ip', 'reservedUntil', 'response'])) return null;
      if (typeof ip !== 'string' || !isCanonicalIp(ip) || !isUint(reservedUntil)) return null;
      return bytesIn(response, 1, MAX_FRAME_BYTES) ? { ip, reservedUntil, response } : null;
    }
    case 'health': {
      const status = body.get('status');
      const version = body.get('version');
      const keyId = body.get('key_id');
      if (typeof version !== 'string' || !bytesIn(keyId, KEY_ID_BYTES, KEY_ID_BYTES)) return null;
      if (status === 'locked') return hasExactKeys(body, ['status', 'version', 'key_id']) ? { status, version, key_id: keyId } : null;
      const mCommit = body.get('m_commit');
      if (status !== 'ok' || !hasExactKeys(body, ['status', 'version', 'key_id', 'm_commit'])) return null;
      return bytesIn(mCommit, M_COMMIT_BYTES, M_COMMIT_BYTES) ? { status, version, key_id: keyId, m_commit: mCommit } : null;
    }
    case 'key_request': {
      const document = body.get('document');
      return hasExactKeys(body, ['document']) && bytesIn(document, 1, MAX_FRAME_BYTES) ? { document } : null;
    }
    case 'unlock': {
      const status = body.get('status');
      const epoch = body.get('epoch');
      const mCommit = body.get('m_commit');
      if (!hasExactKeys(body, ['status', 'epoch', 'm_commit']) || status !== 'ok' || !isUint(epoch)) return null;
      return bytesIn(mCommit, M_COMMIT_BYTES, M_COMMIT_BYTES) ? { status, epoch, m_commit: mCommit } : null;
    }
  }
}
