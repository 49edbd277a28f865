// In-flight leases (SPEC §11 Assign): exactly one assign attempt per token nonce may be at the
// parent at a time, across every DIP-service instance. In one process a set of held keys does it;
// on PostgreSQL a session-level advisory lock on one dedicated connection per instance adds the
// other instances, and a killed instance's leases vanish with its session.

import { createHash } from 'node:crypto';

/** Ends a lease; calling it more than once does nothing more. */
export type ReleaseLease = () => Promise<void>;

/** The keys this process holds. A PostgreSQL session may take its own advisory lock twice, so this also guards the instance against itself. */
export class LocalLeases {
  private readonly held = new Set<string>();

  /** A release function, or null when `key` is held already. */
  take(key: Uint8Array): (() => void) | null {
    const text = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex');
    if (this.held.has(text)) return null;
    this.held.add(text);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held.delete(text);
    };
  }

  get size(): number {
    return this.held.size;
  }
}

/**
 * The advisory lock key of `key` within `scope` (the schema, so that two schemas of one database
 * never share a lease): the first 8 bytes of SHA-256 as a signed 64-bit integer, in decimal text.
 */
export function advisoryLockKey(scope: string, key: Uint8Array): string {
  const digest = createHash('sha256').update('dip lease v1\0').update(scope).update('\0').update(key).digest();
  return digest.readBigInt64BE(0).toString();
}
