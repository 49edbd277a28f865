// The client of the Dedicated IP service's HTTP API (SPEC §11), the app's entry point: the
// attestation, key and refresh routes it shares with the parent (client/http.ts), assign with a
// Privacy Pass token (SPEC §10: a request without one is answered with the 401 challenge), and the
// opaque backup blobs. The token travels only in the Authorization header of the assign route.

import { encodeBase64url } from '../protocol/base64url.js';
import { SEALED_REQUEST_BYTES, SEALED_REQUEST_VERSION } from '../protocol/limits.js';
import { ClientError } from './errors.js';
import { ApiClient, refusalOf, type DipAnswer } from './http.js';

/** SPEC §11: a backup blob is at most 4 KiB. */
export const MAX_BACKUP_BLOB_BYTES = 4096;
/** SPEC §11: a backup id is 32 random bytes chosen by the app, base64url in the path. */
export const BACKUP_ID_BYTES = 32;

const OCTET_STREAM = 'application/octet-stream';

/**
 * What the challenge request carries: a placeholder of a sealed request's exact size and version,
 * so a service that checks the body's shape before the token still answers with its challenge.
 * Without a token nothing is forwarded, and the placeholder opens nowhere.
 */
const PLACEHOLDER_REQUEST = (() => {
  const bytes = new Uint8Array(SEALED_REQUEST_BYTES);
  bytes[0] = SEALED_REQUEST_VERSION;
  return encodeBase64url(bytes);
})();

function backupPath(id: Uint8Array): string {
  if (!(id instanceof Uint8Array) || id.length !== BACKUP_ID_BYTES) throw new TypeError(`a backup id is ${BACKUP_ID_BYTES} bytes`);
  return `v1/backup/${encodeBase64url(id)}`;
}

export class ServiceClient extends ApiClient {
  /**
   * POST /v1/dip/assign without a token → the `WWW-Authenticate` value of the 401 `token_invalid`
   * answer (SPEC §10), unchecked: the caller checks it against its pin before any token is used.
   */
  async challenge(): Promise<string> {
    const { status, headers, body } = await this.send('v1/dip/assign', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: PLACEHOLDER_REQUEST }),
    });
    if (status !== 401) throw refusalOf(body);
    const header = headers.get('www-authenticate');
    if (header === null) throw new ClientError('challenge_unexpected', false, 'missing');
    return header;
  }

  /** POST /v1/dip/assign with `Authorization: PrivateToken token="…"`; the service chooses the IP. */
  assign(request: Uint8Array, authorization: string): Promise<DipAnswer> {
    return this.post('v1/dip/assign', { request: encodeBase64url(request) }, { authorization });
  }

  /** PUT /v1/backup/<id> → 204. Replaces what was stored under that id. */
  async putBackup(id: Uint8Array, blob: Uint8Array): Promise<void> {
    if (!(blob instanceof Uint8Array) || blob.length === 0 || blob.length > MAX_BACKUP_BLOB_BYTES) {
      throw new TypeError(`a backup blob is 1..${MAX_BACKUP_BLOB_BYTES} bytes`);
    }
    const { status, body } = await this.send(backupPath(id), { method: 'PUT', headers: { 'content-type': OCTET_STREAM }, body: blob });
    if (status !== 204) throw refusalOf(body);
  }

  /** GET /v1/backup/<id> → the blob; `not_found` when there is none. */
  async getBackup(id: Uint8Array): Promise<Uint8Array> {
    const blob = await this.call(backupPath(id));
    // The service stores at most this much; a longer answer is not one of our blobs.
    if (blob.length === 0 || blob.length > MAX_BACKUP_BLOB_BYTES) throw new ClientError('http_failed');
    return blob;
  }

  /** DELETE /v1/backup/<id> → 204; `not_found` when there is none. */
  async deleteBackup(id: Uint8Array): Promise<void> {
    const { status, body } = await this.send(backupPath(id), { method: 'DELETE' });
    if (status !== 204) throw refusalOf(body);
  }
}
