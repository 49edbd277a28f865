// HPKE (RFC 9180) for the one suite SPEC §4 fixes — mode_base, DHKEM(P-256, HKDF-SHA256),
// HKDF-SHA256, AES-256-GCM — and the app ⇄ enclave request/response encapsulation built on it
// (SPEC §4; the response as RFC 9458 §4.4). node:crypto does the arithmetic; this file composes it.

import {
  KeyObject,
  createCipheriv,
  createDecipheriv,
  createECDH,
  createHash,
  createHmac,
  createPublicKey,
  generateKeyPairSync,
  type ECDH,
} from 'node:crypto';
import { DipError } from './errors.js';
import { KEY_ID_BYTES, MIN_SEALED_REQUEST_BYTES, SEALED_REQUEST_HEADER_BYTES, SEALED_REQUEST_VERSION } from './limits.js';
import { pooledRandomBytes } from './random.js';
import { KEY_ID_AT, SUITE_AT } from './sealed-header.js';

export const KEM_ID = 0x0010, KDF_ID = 0x0001, AEAD_ID = 0x0002;

// RFC 9180 §7.1: DHKEM(P-256, HKDF-SHA256) sizes.
export const N_SECRET = 32, N_ENC = 65, N_PK = 65, N_SK = 32;
// RFC 9180 §7.2: HKDF-SHA256.
export const N_H = 32;
// RFC 9180 §7.3: AES-256-GCM.
export const N_K = 32, N_N = 12, N_T = 16;

const MODE_BASE = 0x00; // RFC 9180 §5, Table 1
const EMPTY = new Uint8Array(0);
const CURVE = 'prime256v1';
// SEC 1 §2.4.1 / FIPS 186-4 D.1.2.3: the order n of the P-256 group.
const P256_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

function ascii(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Copies a node Buffer (possibly a slice of a shared pool) into a Uint8Array of its own. */
function own(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

function requireBytes(value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
}

const HPKE_V1 = ascii('HPKE-v1');
// RFC 9180 §4.1: suite_id = concat("KEM", I2OSP(kem_id, 2)).
export const KEM_SUITE_ID = concat(ascii('KEM'), Uint8Array.of(KEM_ID >> 8, KEM_ID & 0xff));
// RFC 9180 §5.1: suite_id = concat("HPKE", I2OSP(kem_id, 2), I2OSP(kdf_id, 2), I2OSP(aead_id, 2)).
export const HPKE_SUITE_ID = concat(
  ascii('HPKE'),
  Uint8Array.of(KEM_ID >> 8, KEM_ID & 0xff, KDF_ID >> 8, KDF_ID & 0xff, AEAD_ID >> 8, AEAD_ID & 0xff),
);

// Labels used on the hot path, encoded once.
const L_EAE_PRK = ascii('eae_prk');
const L_SHARED_SECRET = ascii('shared_secret');
const L_PSK_ID_HASH = ascii('psk_id_hash');
const L_INFO_HASH = ascii('info_hash');
const L_SECRET = ascii('secret');
const L_KEY = ascii('key');
const L_BASE_NONCE = ascii('base_nonce');
const L_EXP = ascii('exp');
const L_SEC = ascii('sec');
const L_DKP_PRK = ascii('dkp_prk');
const L_CANDIDATE = ascii('candidate');

// ---- KDF: HKDF-SHA256 (RFC 5869), the parts RFC 9180 §4 calls Extract and Expand ----

/** RFC 5869 §2.2: PRK = HMAC-Hash(salt, IKM); an empty salt acts as HashLen zeros (HMAC pads keys). */
function extract(salt: Uint8Array, ...ikm: Uint8Array[]): Uint8Array {
  const hmac = createHmac('sha256', salt);
  for (const part of ikm) hmac.update(part);
  return own(hmac.digest());
}

/** RFC 5869 §2.3: T(i) = HMAC-Hash(PRK, T(i-1) || info || i), OKM = first L bytes of T. */
function expand(prk: Uint8Array, info: Uint8Array[], length: number): Uint8Array {
  // RFC 5869 §2.3: L <= 255*HashLen.
  if (!Number.isInteger(length) || length < 0 || length > 255 * N_H) throw new TypeError('bad HKDF length');
  const out = new Uint8Array(length);
  let previous: Uint8Array = EMPTY;
  for (let i = 1, at = 0; at < length; i++) {
    const hmac = createHmac('sha256', prk).update(previous);
    for (const part of info) hmac.update(part);
    previous = hmac.update(Uint8Array.of(i)).digest();
    out.set(previous.subarray(0, length - at), at);
    at += previous.length;
  }
  return out;
}

/** HMAC-SHA256 over one buffer: the hot paths lay out each HMAC's input once, so one update suffices. */
function hmac(key: Uint8Array, message: Uint8Array): Buffer {
  return createHmac('sha256', key).update(message).digest();
}

/**
 * The input of the single HMAC that an Expand of at most HashLen bytes comes to (RFC 5869 §2.3:
 * T(1) = HMAC(PRK, info || 0x01)), for a LabeledExpand (RFC 9180 §4) whose info is known in
 * advance: I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info || 0x01.
 */
function labeledExpandInput(suiteId: Uint8Array, label: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (length > N_H) throw new TypeError('one HMAC block holds at most 32 bytes');
  return concat(Uint8Array.of(length >> 8, length & 0xff), HPKE_V1, suiteId, label, info, Uint8Array.of(0x01));
}

/** HKDF-Extract, as the response encapsulation uses it (SPEC §4, RFC 9458 §4.4). */
export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return extract(salt, ikm);
}

/** HKDF-Expand, as the response encapsulation uses it (SPEC §4, RFC 9458 §4.4). */
export function hkdfExpand(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  return expand(prk, [info], length);
}

function labelBytes(label: string | Uint8Array): Uint8Array {
  return typeof label === 'string' ? ascii(label) : label;
}

/** RFC 9180 §4: LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" || suite_id || label || ikm). */
export function labeledExtract(
  suiteId: Uint8Array,
  salt: Uint8Array,
  label: string | Uint8Array,
  ikm: Uint8Array,
): Uint8Array {
  return extract(salt, HPKE_V1, suiteId, labelBytes(label), ikm);
}

/** RFC 9180 §4: LabeledExpand(prk, label, info, L) = Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L). */
export function labeledExpand(
  suiteId: Uint8Array,
  prk: Uint8Array,
  label: string | Uint8Array,
  info: Uint8Array,
  length: number,
): Uint8Array {
  // RFC 9180 §4: I2OSP(L, 2) fails for L >= 2^16; expand() enforces the tighter 255*Nh.
  const l2 = Uint8Array.of((length >> 8) & 0xff, length & 0xff);
  return expand(prk, [l2, HPKE_V1, suiteId, labelBytes(label), info], length);
}

// ---- KEM: DHKEM(P-256, HKDF-SHA256), RFC 9180 §4.1 and §7.1 ----

/** A serialized key pair: skXm (RFC 9180 §7.1.2, 32 bytes) and pkXm (§7.1.1, 65 bytes). */
export interface KemKeyPair {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** A P-256 private key made ready for repeated Decap: its ECDH state and its pkRm. */
interface Recipient {
  readonly ecdh: ECDH;
  readonly publicKey: Uint8Array;
}

function recipientFromScalar(sk: Uint8Array): Recipient {
  const ecdh = createECDH(CURVE);
  try {
    ecdh.setPrivateKey(sk); // RFC 9180 §7.1.2: DeserializePrivateKey, 0 < sk < n
  } catch {
    throw new TypeError('not a P-256 private key');
  }
  return { ecdh, publicKey: own(ecdh.getPublicKey()) };
}

/** RFC 9180 §7.1.3: DeriveKeyPair for P-256 (rejection sampling with bitmask 0xff). */
export function deriveKeyPair(ikm: Uint8Array): KemKeyPair {
  requireBytes(ikm, 'ikm');
  // RFC 9180 §4: ikm SHOULD have at least Nsk bytes of entropy; fewer bytes is misuse here.
  if (ikm.length < N_SK) throw new TypeError('ikm must be at least 32 bytes');
  const dkpPrk = labeledExtract(KEM_SUITE_ID, EMPTY, L_DKP_PRK, ikm);
  for (let counter = 0; counter <= 255; counter++) {
    const bytes = labeledExpand(KEM_SUITE_ID, dkpPrk, L_CANDIDATE, Uint8Array.of(counter), N_SK);
    bytes[0] = bytes[0]! & 0xff; // RFC 9180 §7.1.3: bitmask 0xff for P-256 (a no-op, kept for the rule)
    const sk = BigInt('0x' + Buffer.from(bytes).toString('hex'));
    if (sk !== 0n && sk < P256_ORDER) return { privateKey: bytes, publicKey: recipientFromScalar(bytes).publicKey };
  }
  // RFC 9180 §7.1.3: DeriveKeyPairError after 256 candidates (probability about 2^-8192).
  throw new Error('DeriveKeyPairError');
}

/**
 * RFC 9180 §7.1.1/§7.1.4: DeserializePublicKey for the recipient — exactly 65 bytes, SEC 1
 * uncompressed (0x04), and partial public key validation, which OpenSSL does inside
 * computeSecret (coordinates below p, point on the curve; cofactor 1 so no subgroup check).
 * Returns DH(sk, pk) = the x-coordinate, Ndh = 32 bytes.
 */
function dh(ecdh: ECDH, pk: Uint8Array): Uint8Array {
  if (pk.length !== N_PK || pk[0] !== 0x04) throw new DipError('decrypt_failed');
  try {
    return ecdh.computeSecret(pk);
  } catch {
    throw new DipError('decrypt_failed');
  }
}

/** RFC 9180 §4.1: ExtractAndExpand(dh, kem_context). */
function extractAndExpand(dhValue: Uint8Array, enc: Uint8Array, pkRm: Uint8Array): Uint8Array {
  const eaePrk = labeledExtract(KEM_SUITE_ID, EMPTY, L_EAE_PRK, dhValue);
  // RFC 9180 §4.1: kem_context = concat(enc, pkRm).
  return labeledExpand(KEM_SUITE_ID, eaePrk, L_SHARED_SECRET, concat(enc, pkRm), N_SECRET);
}

/** RFC 9180 §4.1: Encap(pkR). `ikmE` makes the ephemeral key deterministic (§7.1.3), for vectors only. */
export function encap(pkRm: Uint8Array, ikmE?: Uint8Array): { sharedSecret: Uint8Array; enc: Uint8Array } {
  requireBytes(pkRm, 'pkR');
  const ephemeral = createECDH(CURVE);
  if (ikmE === undefined) ephemeral.generateKeys();
  else ephemeral.setPrivateKey(deriveKeyPair(ikmE).privateKey);
  const enc = own(ephemeral.getPublicKey()); // RFC 9180 §7.1.1: SerializePublicKey, uncompressed
  let dhValue: Uint8Array;
  try {
    dhValue = dh(ephemeral, pkRm);
  } catch {
    throw new TypeError('pkR is not a P-256 public key in uncompressed form');
  }
  return { sharedSecret: extractAndExpand(dhValue, enc, pkRm), enc };
}

function decapWith(enc: Uint8Array, recipient: Recipient): Uint8Array {
  return extractAndExpand(dh(recipient.ecdh, enc), enc, recipient.publicKey);
}

/** RFC 9180 §4.1: Decap(enc, skR); a bad `enc` throws DipError('decrypt_failed'). */
export function decap(enc: Uint8Array, skRm: Uint8Array): Uint8Array {
  requireBytes(enc, 'enc');
  requireBytes(skRm, 'skR');
  return decapWith(enc, recipientFromScalar(skRm));
}

// ---- Key schedule and context, RFC 9180 §5.1–§5.3 ----

// RFC 9180 §5.1: mode_base uses the default psk = "" and psk_id = "", so psk_id_hash is a constant.
const PSK_ID_HASH = labeledExtract(HPKE_SUITE_ID, EMPTY, L_PSK_ID_HASH, EMPTY);

/** RFC 9180 §5.1: key_schedule_context = concat(mode, psk_id_hash, info_hash), for mode_base. */
export function keyScheduleContext(info: Uint8Array): Uint8Array {
  const infoHash = labeledExtract(HPKE_SUITE_ID, EMPTY, L_INFO_HASH, info);
  return concat(Uint8Array.of(MODE_BASE), PSK_ID_HASH, infoHash);
}

export interface KeySchedule {
  readonly secret: Uint8Array;
  readonly key: Uint8Array;
  readonly baseNonce: Uint8Array;
  readonly exporterSecret: Uint8Array;
}

/** RFC 9180 §5.1: KeySchedule for mode_base, from shared_secret and key_schedule_context. */
export function deriveKeySchedule(sharedSecret: Uint8Array, context: Uint8Array): KeySchedule {
  const secret = labeledExtract(HPKE_SUITE_ID, sharedSecret, L_SECRET, EMPTY); // psk = ""
  return {
    secret,
    key: labeledExpand(HPKE_SUITE_ID, secret, L_KEY, context, N_K),
    baseNonce: labeledExpand(HPKE_SUITE_ID, secret, L_BASE_NONCE, context, N_N),
    exporterSecret: labeledExpand(HPKE_SUITE_ID, secret, L_EXP, context, N_H),
  };
}

export type ContextRole = 'sender' | 'recipient';

function gcmSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  const tail = cipher.final();
  return concat(body, tail, cipher.getAuthTag()); // RFC 5116 §5.1: ciphertext || 16-byte tag
}

function gcmOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array {
  if (sealed.length < N_T) throw new DipError('decrypt_failed');
  const split = sealed.length - N_T;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: N_T });
    decipher.setAuthTag(sealed.subarray(split));
    decipher.setAAD(aad);
    const body = decipher.update(sealed.subarray(0, split));
    const tail = decipher.final(); // throws on a bad tag
    // GCM's final() has nothing left to give; a plain Uint8Array, so that slice() copies as callers expect.
    return tail.length === 0 ? new Uint8Array(body.buffer, body.byteOffset, body.byteLength) : concat(body, tail);
  } catch {
    throw new DipError('decrypt_failed');
  }
}

/** RFC 9180 §5.1 Context (mode_base): a sender only seals, a recipient only opens; both export. */
export class HpkeContext {
  #seq = 0;

  constructor(
    readonly role: ContextRole,
    readonly key: Uint8Array,
    readonly baseNonce: Uint8Array,
    readonly exporterSecret: Uint8Array,
  ) {
    if (key.length !== N_K || baseNonce.length !== N_N || exporterSecret.length !== N_H) {
      throw new TypeError('bad HPKE context key sizes');
    }
  }

  /** The sequence number of the next Seal or Open. */
  get seq(): number {
    return this.#seq;
  }

  /** RFC 9180 §5.2: ComputeNonce(seq) = base_nonce XOR I2OSP(seq, Nn). */
  computeNonce(seq: number): Uint8Array {
    if (!Number.isSafeInteger(seq) || seq < 0) throw new TypeError('bad sequence number');
    const nonce = new Uint8Array(this.baseNonce);
    for (let i = N_N - 1, rest = seq; rest > 0; i--, rest = Math.floor(rest / 256)) {
      nonce[i] = nonce[i]! ^ rest % 256;
    }
    return nonce;
  }

  /** RFC 9180 §5.2: IncrementSeq; the 2^96 - 1 limit is beyond any count a JS number holds exactly. */
  #incrementSeq(): void {
    if (this.#seq >= Number.MAX_SAFE_INTEGER) throw new TypeError('MessageLimitReachedError');
    this.#seq += 1;
  }

  /** RFC 9180 §5.2: ContextS.Seal(aad, pt). */
  seal(aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    if (this.role !== 'sender') throw new TypeError('only a sender context seals');
    const ct = gcmSeal(this.key, this.computeNonce(this.#seq), aad, plaintext);
    this.#incrementSeq();
    return ct;
  }

  /** RFC 9180 §5.2: ContextR.Open(aad, ct); OpenError is DipError('decrypt_failed') and leaves seq as it was. */
  open(aad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (this.role !== 'recipient') throw new TypeError('only a recipient context opens');
    const pt = gcmOpen(this.key, this.computeNonce(this.#seq), aad, ciphertext);
    this.#incrementSeq();
    return pt;
  }

  /** RFC 9180 §5.3: Export(exporter_context, L) = LabeledExpand(exporter_secret, "sec", exporter_context, L). */
  export(exporterContext: Uint8Array, length: number): Uint8Array {
    return labeledExpand(HPKE_SUITE_ID, this.exporterSecret, L_SEC, exporterContext, length);
  }
}

function contextFrom(role: ContextRole, sharedSecret: Uint8Array, ksc: Uint8Array): HpkeContext {
  const schedule = deriveKeySchedule(sharedSecret, ksc);
  return new HpkeContext(role, schedule.key, schedule.baseNonce, schedule.exporterSecret);
}

/** RFC 9180 §5.1.1: SetupBaseS(pkR, info); `ikmE` only for test vectors. */
export function setupBaseS(pkRm: Uint8Array, info: Uint8Array, ikmE?: Uint8Array): { enc: Uint8Array; context: HpkeContext } {
  requireBytes(info, 'info');
  const { sharedSecret, enc } = encap(pkRm, ikmE);
  return { enc, context: contextFrom('sender', sharedSecret, keyScheduleContext(info)) };
}

/** RFC 9180 §5.1.1: SetupBaseR(enc, skR, info); skR is skRm (32 bytes) or a BootKey. */
export function setupBaseR(enc: Uint8Array, skR: Uint8Array | BootKey, info: Uint8Array): HpkeContext {
  requireBytes(enc, 'enc');
  requireBytes(info, 'info');
  const recipient = skR instanceof Uint8Array ? recipientFromScalar(skR) : bootRecipient(skR);
  return contextFrom('recipient', decapWith(enc, recipient), keyScheduleContext(info));
}

// ---- SPEC §4: the boot key and the request/response encapsulation ----

export type SealedOp = 'assign' | 'refresh';

/** What both ends keep from a request to protect its response: enc and ctx.Export("dip response", 32). */
export interface ResponseContext {
  readonly enc: Uint8Array;
  readonly secret: Uint8Array;
}

/** The enclave's per-boot HPKE receiver key (SPEC §3); publicKeySpki is the SPKI DER of its public key. */
export interface BootKey {
  readonly privateKey: KeyObject;
  readonly publicKeySpki: Uint8Array;
}

const OP_BYTE: Readonly<Record<SealedOp, number>> = { assign: 0x01, refresh: 0x02 };
const RESPONSE_NONCE_BYTES = 32; // SPEC §4: response_nonce = random(32), max(Nn, Nk) as RFC 9458 §4.4
const DIP_REQUEST = ascii('dip request');
const DIP_RESPONSE = ascii('dip response');
const L_RESPONSE_KEY = ascii('key');
const L_RESPONSE_NONCE = ascii('nonce');
const SUITE_BYTES = Uint8Array.of(KEM_ID >> 8, KEM_ID & 0xff, KDF_ID >> 8, KDF_ID & 0xff, AEAD_ID >> 8, AEAD_ID & 0xff);

/** SPEC §3: key_id = the first 8 bytes of SHA-256 of the boot key's SubjectPublicKeyInfo (DER). */
export function keyIdOf(publicKeySpki: Uint8Array): Uint8Array {
  requireBytes(publicKeySpki, 'publicKeySpki');
  return own(createHash('sha256').update(publicKeySpki).digest().subarray(0, KEY_ID_BYTES));
}

interface OpConstants {
  readonly header: Uint8Array;
  readonly keyScheduleContext: Uint8Array;
}

/** What a recipient also keeps per op: the HMAC inputs of key, base_nonce and exporter_secret (RFC 9180 §5.1), fixed by the header. */
interface RecipientOpConstants extends OpConstants {
  readonly keyInput: Uint8Array;
  readonly baseNonceInput: Uint8Array;
  readonly exporterSecretInput: Uint8Array;
}

/** SPEC §4: hdr = 0x02 || key_id(8) || kem_id(2) || kdf_id(2) || aead_id(2) || op(1). */
function opConstants(keyId: Uint8Array, op: SealedOp): OpConstants {
  if (op !== 'assign' && op !== 'refresh') throw new TypeError('op must be "assign" or "refresh"');
  const header = concat(Uint8Array.of(SEALED_REQUEST_VERSION), keyId, SUITE_BYTES, Uint8Array.of(OP_BYTE[op]));
  // SPEC §4: info = "dip request" || 0x00 || hdr.
  return { header, keyScheduleContext: keyScheduleContext(concat(DIP_REQUEST, Uint8Array.of(0), header)) };
}

function recipientOpConstants(keyId: Uint8Array, op: SealedOp): RecipientOpConstants {
  const constants = opConstants(keyId, op);
  const ksc = constants.keyScheduleContext;
  return {
    ...constants,
    keyInput: labeledExpandInput(HPKE_SUITE_ID, L_KEY, ksc, N_K),
    baseNonceInput: labeledExpandInput(HPKE_SUITE_ID, L_BASE_NONCE, ksc, N_N),
    exporterSecretInput: labeledExpandInput(HPKE_SUITE_ID, L_EXP, ksc, N_H),
  };
}

// The HMAC inputs of a request's key schedule that no request changes (RFC 9180 §4.1, §5.1, §5.3).
const EAE_PRK_PREFIX = concat(HPKE_V1, KEM_SUITE_ID, L_EAE_PRK); // || dh
const SHARED_SECRET_PREFIX = concat(Uint8Array.of(0, N_SECRET), HPKE_V1, KEM_SUITE_ID, L_SHARED_SECRET); // || enc || pkRm || 0x01
const SECRET_INPUT = concat(HPKE_V1, HPKE_SUITE_ID, L_SECRET); // psk = "" (mode_base)
const RESPONSE_SECRET_INPUT = labeledExpandInput(HPKE_SUITE_ID, L_SEC, DIP_RESPONSE, 32);

export function generateBootKey(): BootKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicKeySpki: own(publicKey.export({ type: 'spki', format: 'der' })) };
}

function isP256(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === CURVE;
}

/** What a sender keeps per boot key: its point (pkRm) and its key_id. */
interface SealTarget {
  readonly spki: Buffer;
  readonly point: Uint8Array;
  readonly keyId: Uint8Array;
}

// The last boot key sealRequest was given: a client seals many requests to one boot key.
let lastTarget: SealTarget | undefined;

function sealTarget(spki: Uint8Array): SealTarget {
  requireBytes(spki, 'publicKeySpki');
  if (lastTarget !== undefined && lastTarget.spki.equals(spki)) return lastTarget;
  lastTarget = { spki: Buffer.from(spki), point: parseSpki(spki), keyId: keyIdOf(spki) };
  return lastTarget;
}

/** The uncompressed point (pkXm) of a P-256 public key given as SPKI DER; anything else is misuse. */
function parseSpki(spki: Uint8Array): Uint8Array {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki.buffer, spki.byteOffset, spki.byteLength), format: 'der', type: 'spki' });
  } catch {
    throw new TypeError('publicKeySpki is not an SPKI public key');
  }
  if (!isP256(key)) throw new TypeError('publicKeySpki is not a P-256 key');
  const jwk = key.export({ format: 'jwk' });
  // RFC 9180 §7.1.1: SerializePublicKey = SEC 1 uncompressed, 0x04 || x || y (JWK pads each to 32 bytes).
  return concat(Uint8Array.of(0x04), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url'));
}

/** The boot key made ready to open requests: its ECDH state, key_id and per-op header constants. */
interface BootRecipient extends Recipient {
  readonly keyId: Uint8Array;
  /** pkRm || 0x01: the end of the shared_secret HMAC's input (kem_context = enc || pkRm). */
  readonly kemContextTail: Uint8Array;
  readonly ops: Readonly<Record<SealedOp, RecipientOpConstants>>;
}

// One ECDH state per boot key, so openRequest costs one scalar multiplication and no key import.
const recipients = new WeakMap<KeyObject, BootRecipient>();

function bootRecipient(bootKey: BootKey): BootRecipient {
  const privateKey = bootKey?.privateKey;
  // Only KeyObjects that passed the checks below are in the map, so a hit needs no check.
  const cached = privateKey instanceof KeyObject ? recipients.get(privateKey) : undefined;
  if (cached !== undefined) return cached;
  if (!(privateKey instanceof KeyObject) || privateKey.type !== 'private' || !isP256(privateKey)) {
    throw new TypeError('bootKey.privateKey must be a P-256 private KeyObject');
  }
  const recipient = recipientFromScalar(Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url'));
  requireBytes(bootKey.publicKeySpki, 'publicKeySpki');
  if (!Buffer.from(parseSpki(bootKey.publicKeySpki)).equals(recipient.publicKey)) {
    throw new TypeError('bootKey.publicKeySpki does not match bootKey.privateKey');
  }
  const keyId = keyIdOf(bootKey.publicKeySpki);
  const ready = { ...recipient, keyId, kemContextTail: concat(recipient.publicKey, Uint8Array.of(0x01)), ops: { assign: recipientOpConstants(keyId, 'assign'), refresh: recipientOpConstants(keyId, 'refresh') } };
  recipients.set(privateKey, ready);
  return ready;
}

/**
 * SPEC §4: seals a request plaintext to the boot key, for one op. The plaintext is sealed as it
 * is: callers pad it to REQUEST_PLAINTEXT_BYTES (cbor.ts encodePaddedCbor), or the enclave refuses it.
 */
export function sealRequest(
  bootPublicKeySpki: Uint8Array,
  op: SealedOp,
  plaintext: Uint8Array,
): { encapsulatedRequest: Uint8Array; context: ResponseContext } {
  const target = sealTarget(bootPublicKeySpki);
  const { header: hdr, keyScheduleContext: ksc } = opConstants(target.keyId, op);
  requireBytes(plaintext, 'plaintext');
  const { sharedSecret, enc } = encap(target.point);
  const ctx = contextFrom('sender', sharedSecret, ksc);
  const ct = ctx.seal(hdr, plaintext); // SPEC §4: aad = hdr
  return {
    encapsulatedRequest: concat(hdr, enc, ct), // SPEC §4: hdr || enc || ct
    context: { enc, secret: ctx.export(DIP_RESPONSE, 32) },
  };
}

/**
 * RFC 9180 §5.1.1 SetupBaseR, ContextR.Open at sequence number 0 (nonce = base_nonce) and
 * Export("dip response", 32), for a request whose header is checked. The same steps as
 * setupBaseR, open and export, with each HMAC's input laid out ahead: all but the first two
 * are constants of the boot key and op. Throws on anything that fails to open.
 */
function openWith(recipient: BootRecipient, constants: RecipientOpConstants, enc: Uint8Array, ct: Uint8Array): { plaintext: Uint8Array; context: ResponseContext } {
  const eaePrk = hmac(EMPTY, concat(EAE_PRK_PREFIX, dh(recipient.ecdh, enc))); // salt = "" (§4.1 ExtractAndExpand)
  const sharedSecret = hmac(eaePrk, concat(SHARED_SECRET_PREFIX, enc, recipient.kemContextTail));
  const secret = hmac(sharedSecret, SECRET_INPUT);
  const key = hmac(secret, constants.keyInput);
  const baseNonce = hmac(secret, constants.baseNonceInput).subarray(0, N_N);
  const exporterSecret = hmac(secret, constants.exporterSecretInput);
  const plaintext = gcmOpen(key, baseNonce, constants.header, ct); // SPEC §4: aad = hdr
  return { plaintext, context: { enc, secret: own(hmac(exporterSecret, RESPONSE_SECRET_INPUT)) } };
}

/**
 * SPEC §4: opens a request sealed for `op` and returns its plaintext as sealed (still padded).
 * Another version or a too-short request is `bad_request`; another boot key's `key_id` is
 * `key_unknown`, before any decryption; another suite or op, or anything that fails to open, is
 * `decrypt_failed`.
 */
export function openRequest(
  bootKey: BootKey,
  op: SealedOp,
  encapsulatedRequest: Uint8Array,
): { plaintext: Uint8Array; context: ResponseContext } {
  const recipient = bootRecipient(bootKey);
  if (op !== 'assign' && op !== 'refresh') throw new TypeError('op must be "assign" or "refresh"');
  const constants = recipient.ops[op];
  const hdr = constants.header;
  requireBytes(encapsulatedRequest, 'encapsulatedRequest');
  const request = encapsulatedRequest;
  if (request.length < MIN_SEALED_REQUEST_BYTES || request[0] !== SEALED_REQUEST_VERSION) throw new DipError('bad_request');
  // The header is public, so no constant-time compare.
  for (let i = KEY_ID_AT; i < SUITE_AT; i++) if (request[i] !== hdr[i]) throw new DipError('key_unknown');
  try {
    for (let i = SUITE_AT; i < SEALED_REQUEST_HEADER_BYTES; i++) if (request[i] !== hdr[i]) throw new DipError('decrypt_failed');
    // A copy (Buffer#slice would be a view): the context outlives the input.
    const enc = new Uint8Array(request.subarray(SEALED_REQUEST_HEADER_BYTES, SEALED_REQUEST_HEADER_BYTES + N_ENC));
    return openWith(recipient, constants, enc, request.subarray(SEALED_REQUEST_HEADER_BYTES + N_ENC));
  } catch {
    throw new DipError('decrypt_failed');
  }
}

function checkResponseContext(context: ResponseContext): void {
  if (!(context?.enc instanceof Uint8Array) || !(context.secret instanceof Uint8Array)
    || context.enc.length !== N_ENC || context.secret.length !== 32) {
    throw new TypeError('context must hold a 65-byte enc and a 32-byte secret');
  }
}

// RFC 9458 §4.4: key = Expand(prk, "key", Nk), nonce = Expand(prk, "nonce", Nn), one HMAC each.
const RESPONSE_KEY_INPUT = concat(L_RESPONSE_KEY, Uint8Array.of(0x01));
const RESPONSE_NONCE_INPUT = concat(L_RESPONSE_NONCE, Uint8Array.of(0x01));

function responseKeys(context: ResponseContext, responseNonce: Uint8Array): { key: Uint8Array; nonce: Uint8Array } {
  // RFC 9458 §4.4 / SPEC §4: prk = Extract(enc || response_nonce, secret).
  const prk = hmac(concat(context.enc, responseNonce), context.secret);
  return { key: hmac(prk, RESPONSE_KEY_INPUT), nonce: hmac(prk, RESPONSE_NONCE_INPUT).subarray(0, N_N) };
}

/** SPEC §4: response_nonce || AES-256-GCM-Seal(key, nonce, "", plaintext). */
export function sealResponse(context: ResponseContext, plaintext: Uint8Array): Uint8Array {
  checkResponseContext(context);
  requireBytes(plaintext, 'plaintext');
  const responseNonce = pooledRandomBytes(RESPONSE_NONCE_BYTES);
  const { key, nonce } = responseKeys(context, responseNonce);
  // Written in place: the response is the largest thing a refresh makes. GCM is a stream mode:
  // update() and final() together give exactly as many bytes as the plaintext, then the tag.
  const out = new Uint8Array(RESPONSE_NONCE_BYTES + plaintext.length + N_T);
  out.set(responseNonce);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  let at = RESPONSE_NONCE_BYTES;
  for (const part of [cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** SPEC §4: opens a sealed response; any bad input throws DipError('decrypt_failed'). */
export function openResponse(context: ResponseContext, encapsulatedResponse: Uint8Array): Uint8Array {
  checkResponseContext(context);
  requireBytes(encapsulatedResponse, 'encapsulatedResponse');
  if (encapsulatedResponse.length < RESPONSE_NONCE_BYTES + N_T) throw new DipError('decrypt_failed');
  const { key, nonce } = responseKeys(context, encapsulatedResponse.subarray(0, RESPONSE_NONCE_BYTES));
  return gcmOpen(key, nonce, EMPTY, encapsulatedResponse.subarray(RESPONSE_NONCE_BYTES));
}
