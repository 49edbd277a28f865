// Small random values (token ids, response nonces) from one pooled buffer: with OpenSSL 3 every
// randomBytes call costs about 15 µs of locking in the DRBG, three times per refresh, whatever
// its size. The pool is refilled by one randomFillSync of POOL_BYTES and every byte is handed out
// once, so the values are exactly as random as randomBytes'.

import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let used = POOL_BYTES;

/** `length` fresh random bytes (at most POOL_BYTES), a copy of their own. */
export function pooledRandomBytes(length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0 || length > POOL_BYTES) throw new TypeError('length must be 0..4096');
  if (used + length > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const out = new Uint8Array(pool.subarray(used, used + length));
  pool.fill(0, used, used + length); // handed out once, then gone from the pool
  used += length;
  return out;
}
