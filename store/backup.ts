// Opaque DRT backups (SPEC §11 /v1/backup/<id>): put, get and delete by the app's random id.
// The service validates ids and sizes before calling; a wrong one here is our own bug.

import type { Queryable } from './store.js';

export const MAX_BACKUP_BYTES = 4096;

function checkId(id: Uint8Array): void {
  if (id.length !== 32) throw new TypeError('a backup id is 32 bytes');
}

export async function putBackup(store: Queryable, id: Uint8Array, blob: Uint8Array): Promise<void> {
  checkId(id);
  if (blob.length > MAX_BACKUP_BYTES) throw new TypeError('a backup blob is at most 4096 bytes');
  await store.query('INSERT INTO backup (id, blob) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET blob = EXCLUDED.blob', [
    id,
    blob,
  ]);
}

export async function getBackup(store: Queryable, id: Uint8Array): Promise<Uint8Array | null> {
  checkId(id);
  const [row] = await store.query<{ blob: Uint8Array }>('SELECT blob FROM backup WHERE id = $1', [id]);
  return row === undefined ? null : new Uint8Array(row.blob);
}

/** True when there was a backup to delete. */
export async function deleteBackup(store: Queryable, id: Uint8Array): Promise<boolean> {
  checkId(id);
  return (await store.query('DELETE FROM backup WHERE id = $1 RETURNING true AS deleted', [id])).length === 1;
}
