// The enclave's signing keys (SPEC §3): derived from the deployment's master secret M per 30-day
// epoch, so every enclave of a deployment — after a restart, an upgrade or as a replica — issues
// and accepts the same tokens. The DAT key of an epoch is published; its DRT key never is.
// Until it holds M the custody is locked and every key lookup is `keys_unavailable`.

import { createECDH, createHash, createPrivateKey, createPublicKey, hkdfSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { DipError } from '../../protocol/errors.js';
import { MASTER_SECRET_BYTES } from '../../protocol/limits.js';

export interface SigningKey {
  /** RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key. */
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The public key as a JWK with `kid`, `alg: ES256` and `use: sig`. */
  readonly publicJwk: JWK;
}

/** The two keys of one epoch: `dat` signs DATs and is published, `drt` signs DRTs only. */
export interface EpochKeys {
  readonly epoch: number;
  readonly dat: SigningKey;
  readonly drt: SigningKey;
}

export interface KeyCustody {
  /** SPEC §3 m_commit of the M held, or null while locked. */
  readonly mCommit: Uint8Array | null;
  /**
   * Takes M (SPEC §5 `unlock`): the first M is kept, the same M again is fine, another one is
   * `bad_request` and leaves the first in place. Returns m_commit.
   */
  unlock(masterSecret: Uint8Array): Uint8Array;
  /** The keys of epoch `e`; `keys_unavailable` while locked. */
  keysFor(epoch: number): EpochKeys;
  /** SPEC §3: the DRT key named `kid` among epochs e-3 … e, or null. */
  drtKeyFor(kid: string, epoch: number): SigningKey | null;
  /**
   * A copy of M for another worker thread of this enclave (enclave/io/worker.ts), which wipes it
   * once sent; null while locked. M never leaves the enclave's worker threads.
   */
  copyMasterSecret(): Uint8Array | null;
}

/** SPEC §3: DRTs are accepted from the current epoch and the three before it (a DRT lives 60 days). */
export const DRT_EPOCHS_ACCEPTED = 4;

/** RFC 7638 §3.2: the thumbprint of an EC key hashes exactly `crv`, `kty`, `x`, `y`, in that order. */
export function ecJwkThumbprint(jwk: JWK): string {
  if (jwk.kty !== 'EC' || typeof jwk.crv !== 'string' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
    throw new TypeError('an EC public JWK is required');
  }
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return createHash('sha256').update(canonical, 'utf8').digest('base64url');
}

/** Wraps a P-256 private key as a signing key. */
export function signingKeyFromPrivateKey(privateKey: KeyObject): SigningKey {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new TypeError('a P-256 private key is required');
  }
  const publicKey = createPublicKey(privateKey);
  const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
  const kid = ecJwkThumbprint({ kty, crv, x, y });
  const publicJwk: JWK = Object.freeze({ kty, crv, x, y, kid, alg: 'ES256', use: 'sig' });
  return Object.freeze({ kid, privateKey, publicKey, publicJwk });
}

// SEC 1 §2.4.1 / FIPS 186-4 D.1.2.3: the order n of the P-256 group.
const P256_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const KEYS_SALT = Buffer.from('dip keys v1');
const M_COMMIT_PREFIX = Buffer.from('dip m commit v1');
const OKM_BYTES = 48;

/** SPEC §3: m_commit = SHA-256("dip m commit v1" || M). */
export function mCommitOf(masterSecret: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(M_COMMIT_PREFIX).update(masterSecret).digest());
}

/**
 * SPEC §3: okm = HKDF-SHA256(salt "dip keys v1", ikm M, info label || 0x00 || uint32be(e), L 48),
 * d = (OS2IP(okm) mod (n - 1)) + 1. The 16 extra bytes make the bias of the reduction negligible.
 */
export function deriveSigningKey(masterSecret: Uint8Array, label: 'dat' | 'drt', epoch: number): SigningKey {
  if (!Number.isSafeInteger(epoch) || epoch < 0 || epoch > 0xffff_ffff) throw new TypeError('epoch must be a uint32');
  const info = Buffer.alloc(label.length + 5);
  info.write(label, 0, 'latin1');
  info.writeUInt32BE(epoch, label.length + 1);
  const okm = Buffer.from(hkdfSync('sha256', masterSecret, KEYS_SALT, info, OKM_BYTES));
  const d = (BigInt(`0x${okm.toString('hex')}`) % (P256_ORDER - 1n)) + 1n;
  const scalar = Buffer.from(d.toString(16).padStart(64, '0'), 'hex');
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(scalar);
  const point = ecdh.getPublicKey(); // 0x04 || x || y
  const privateKey = createPrivateKey({
    key: { kty: 'EC', crv: 'P-256', d: scalar.toString('base64url'), x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') },
    format: 'jwk',
  });
  scalar.fill(0);
  okm.fill(0);
  return signingKeyFromPrivateKey(privateKey);
}

/**
 * Key custody from M: locked until `unlock`, then every epoch's keys derived on first use and
 * cached (only a few epochs around now are ever asked for; older ones are dropped).
 */
export function createKeyCustody(): KeyCustody {
  let masterSecret: Uint8Array | null = null;
  let mCommit: Uint8Array | null = null;
  const cache = new Map<number, EpochKeys>();

  function keysFor(epoch: number): EpochKeys {
    if (masterSecret === null) throw new DipError('keys_unavailable');
    let keys = cache.get(epoch);
    if (keys === undefined) {
      keys = Object.freeze({ epoch, dat: deriveSigningKey(masterSecret, 'dat', epoch), drt: deriveSigningKey(masterSecret, 'drt', epoch) });
      for (const cached of cache.keys()) if (cached < epoch - DRT_EPOCHS_ACCEPTED) cache.delete(cached);
      cache.set(epoch, keys);
    }
    return keys;
  }

  return {
    get mCommit() {
      return mCommit === null ? null : mCommit.slice();
    },
    unlock(secret) {
      if (!(secret instanceof Uint8Array) || secret.length !== MASTER_SECRET_BYTES) throw new DipError('bad_request');
      const commit = mCommitOf(secret);
      if (mCommit !== null) {
        if (!timingSafeEqual(commit, mCommit)) throw new DipError('bad_request');
        return mCommit.slice();
      }
      masterSecret = new Uint8Array(secret);
      mCommit = commit;
      return commit.slice();
    },
    keysFor,
    copyMasterSecret() {
      return masterSecret === null ? null : masterSecret.slice();
    },
    drtKeyFor(kid, epoch) {
      for (let e = epoch; e > epoch - DRT_EPOCHS_ACCEPTED && e >= 0; e--) {
        const { drt } = keysFor(e);
        if (drt.kid === kid) return drt;
      }
      return null;
    },
  };
}

/** Custody already holding `masterSecret`: for tests and benchmarks. */
export function createUnlockedKeyCustody(masterSecret: Uint8Array): KeyCustody {
  const custody = createKeyCustody();
  custody.unlock(masterSecret);
  return custody;
}
