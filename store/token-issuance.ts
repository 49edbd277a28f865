// The issuer's once-only record (SPEC §10): (sub, did) is issued atomically once, beside the
// SHA-256 of its TokenRequest; the same request again gets the same TokenResponse back.

import { StoreError } from './errors.js';
import type { Queryable } from './store.js';

export type IssuanceOutcome =
  | { kind: 'issued' }
  | { kind: 'same'; response: Uint8Array }
  | { kind: 'already_issued' };

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

export async function recordIssuance(
  store: Queryable,
  sub: string,
  did: number,
  requestSha256: Uint8Array,
  response: Uint8Array,
): Promise<IssuanceOutcome> {
  if (sub.length === 0) throw new TypeError('sub must not be empty');
  if (!Number.isSafeInteger(did) || did < 0) throw new TypeError('did must be a non-negative integer');
  if (requestSha256.length !== 32) throw new TypeError('requestSha256 must be 32 bytes');
  // The insert waits for any concurrent insert of the same key to end, then does nothing if that
  // one committed: exactly one caller sees a row come back, whatever the number of processes.
  const inserted = await store.query(
    `INSERT INTO token_issuance (sub, did, token_request_sha256, token_response) VALUES ($1, $2, $3, $4)
     ON CONFLICT (sub, did) DO NOTHING RETURNING true AS issued`,
    [sub, did, requestSha256, response],
  );
  if (inserted.length === 1) return { kind: 'issued' };
  const [row] = await store.query<{ token_request_sha256: Uint8Array; token_response: Uint8Array }>(
    'SELECT token_request_sha256, token_response FROM token_issuance WHERE sub = $1 AND did = $2',
    [sub, did],
  );
  // Rows are never deleted, so the conflicting row is there; if not, the database misbehaved.
  if (row === undefined) throw new StoreError('store_failed');
  return sameBytes(new Uint8Array(row.token_request_sha256), requestSha256)
    ? { kind: 'same', response: new Uint8Array(row.token_response) }
    : { kind: 'already_issued' };
}
