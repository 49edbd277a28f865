// An independent implementation of SPEC §4 (HPKE base mode, DHKEM(P-256, HKDF-SHA256),
// HKDF-SHA256, AES-256-GCM, and the RFC 9458-style response) written with @noble/* only, so the
// tests can check protocol/hpke.ts (node:crypto) against code that shares nothing with it.

import { gcm } from '@noble/ciphers/aes.js';
import { p256 } from '@noble/curves/nist.js';
import { expand, extract } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';

export type OracleOp = 'assign' | 'refresh';
export interface OracleResponseContext {
  enc: Uint8Array;
  secret: Uint8Array;
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function i2osp(value: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = length - 1, v = value; i >= 0; i--, v = Math.floor(v / 256)) out[i] = v % 256;
  return out;
}

const KEM_SUITE = cat(text('KEM'), i2osp(0x10, 2));
const HPKE_SUITE = cat(text('HPKE'), i2osp(0x10, 2), i2osp(0x01, 2), i2osp(0x02, 2));

export function oracleLabeledExtract(suite: 'KEM' | 'HPKE', salt: Uint8Array, label: string, ikm: Uint8Array): Uint8Array {
  return extract(sha256, cat(text('HPKE-v1'), suite === 'KEM' ? KEM_SUITE : HPKE_SUITE, text(label), ikm), salt);
}

export function oracleLabeledExpand(
  suite: 'KEM' | 'HPKE', prk: Uint8Array, label: string, info: Uint8Array, length: number,
): Uint8Array {
  const labeledInfo = cat(i2osp(length, 2), text('HPKE-v1'), suite === 'KEM' ? KEM_SUITE : HPKE_SUITE, text(label), info);
  return expand(sha256, prk, labeledInfo, length);
}

function sharedSecretOf(dhX: Uint8Array, enc: Uint8Array, pkRm: Uint8Array): Uint8Array {
  const eaePrk = oracleLabeledExtract('KEM', new Uint8Array(0), 'eae_prk', dhX);
  return oracleLabeledExpand('KEM', eaePrk, 'shared_secret', cat(enc, pkRm), 32);
}

interface Schedule {
  key: Uint8Array;
  baseNonce: Uint8Array;
  exporterSecret: Uint8Array;
}

function schedule(sharedSecret: Uint8Array, info: Uint8Array): Schedule {
  const empty = new Uint8Array(0);
  const ksc = cat(
    Uint8Array.of(0),
    oracleLabeledExtract('HPKE', empty, 'psk_id_hash', empty),
    oracleLabeledExtract('HPKE', empty, 'info_hash', info),
  );
  const secret = oracleLabeledExtract('HPKE', sharedSecret, 'secret', empty);
  return {
    key: oracleLabeledExpand('HPKE', secret, 'key', ksc, 32),
    baseNonce: oracleLabeledExpand('HPKE', secret, 'base_nonce', ksc, 12),
    exporterSecret: oracleLabeledExpand('HPKE', secret, 'exp', ksc, 32),
  };
}

/** SetupBaseS with a given ephemeral secret key; returns enc and the derived keys. */
export function oracleSetupS(pkRm: Uint8Array, info: Uint8Array, skE: Uint8Array): Schedule & { enc: Uint8Array } {
  const enc = p256.getPublicKey(skE, false);
  const dhX = p256.getSharedSecret(skE, pkRm, true).subarray(1);
  return { enc, ...schedule(sharedSecretOf(dhX, enc, pkRm), info) };
}

// DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point (RFC 5480).
const P256_SPKI_PREFIX = Uint8Array.from(Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'));

/** SPEC §4 hdr = 0x02 || key_id || suite || op, with key_id = SHA-256(SPKI)[0..8] (SPEC §3). */
function hdr(op: OracleOp, pkRm: Uint8Array): Uint8Array {
  const keyId = sha256(cat(P256_SPKI_PREFIX, pkRm)).subarray(0, 8);
  return cat(Uint8Array.of(0x02), keyId, Uint8Array.of(0x00, 0x10, 0x00, 0x01, 0x00, 0x02, op === 'assign' ? 0x01 : 0x02));
}

function requestInfo(h: Uint8Array): Uint8Array {
  return cat(text('dip request'), Uint8Array.of(0), h);
}

/** The point of a P-256 SPKI (DER, uncompressed point): its last 65 bytes after a fixed 26-byte prefix. */
export function oraclePointFromSpki(spki: Uint8Array): Uint8Array {
  if (spki.length !== 91 || P256_SPKI_PREFIX.some((b, i) => spki[i] !== b)) throw new Error('oracle: not a P-256 SPKI');
  return spki.slice(26);
}

/** Seals `payload` as given (no padding), so tests can also seal what the enclave must refuse. */
export function oracleSealRequest(pkRm: Uint8Array, op: OracleOp, payload: Uint8Array): {
  encapsulatedRequest: Uint8Array; context: OracleResponseContext;
} {
  const h = hdr(op, pkRm);
  const s = oracleSetupS(pkRm, requestInfo(h), p256.utils.randomSecretKey());
  const ct = gcm(s.key, s.baseNonce, h).encrypt(payload);
  const secret = oracleLabeledExpand('HPKE', s.exporterSecret, 'sec', text('dip response'), 32);
  return { encapsulatedRequest: cat(h, s.enc, ct), context: { enc: s.enc, secret } };
}

export function oracleOpenRequest(skRm: Uint8Array, op: OracleOp, request: Uint8Array): {
  plaintext: Uint8Array; context: OracleResponseContext;
} {
  const pkRm = p256.getPublicKey(skRm, false);
  const h = hdr(op, pkRm);
  if (request.length < 16 + 65 + 16 || h.some((b, i) => request[i] !== b)) throw new Error('oracle: bad header');
  const enc = request.slice(16, 81);
  const dhX = p256.getSharedSecret(skRm, enc, true).subarray(1);
  const s = schedule(sharedSecretOf(dhX, enc, pkRm), requestInfo(h));
  const plaintext = gcm(s.key, s.baseNonce, h).decrypt(request.subarray(81));
  const secret = oracleLabeledExpand('HPKE', s.exporterSecret, 'sec', text('dip response'), 32);
  return { plaintext, context: { enc, secret } };
}

function responseAead(context: OracleResponseContext, responseNonce: Uint8Array): ReturnType<typeof gcm> {
  const prk = extract(sha256, context.secret, cat(context.enc, responseNonce));
  return gcm(expand(sha256, prk, text('key'), 32), expand(sha256, prk, text('nonce'), 12));
}

export function oracleSealResponse(context: OracleResponseContext, plaintext: Uint8Array): Uint8Array {
  const responseNonce = randomBytes(32);
  return cat(responseNonce, responseAead(context, responseNonce).encrypt(plaintext));
}

export function oracleOpenResponse(context: OracleResponseContext, response: Uint8Array): Uint8Array {
  return responseAead(context, response.subarray(0, 32)).decrypt(response.subarray(32));
}

/** Throws unless `bytes` is a valid P-256 point (noble's own validation). */
export function oracleAssertPoint(bytes: Uint8Array): void {
  p256.Point.fromBytes(bytes).assertValidity();
}
