// Request bodies for the untrusted HTTP services (parent/, service/): the JSON media type check and
// a body read that stops at a limit. Failures are reasons from a closed set; each service maps
// them to its own error codes.

import type { IncomingMessage } from 'node:http';

const JSON_TYPE = 'application/json';

/** `application/json`, optionally with parameters; a charset, if named, must be UTF-8. */
export function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const [type, ...params] = value.split(';');
  if (type!.trim().toLowerCase() !== JSON_TYPE) return false;
  return params.every((param) => {
    const [name, raw = ''] = param.split('=', 2).map((s) => s.trim());
    return name!.toLowerCase() !== 'charset' || /^"?utf-8"?$/i.test(raw);
  });
}

/** The media type of a Content-Type header, lower case, without parameters ('' when absent). */
export function mediaTypeOf(value: string | undefined): string {
  return (value ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Why a body could not be read: longer than the limit, or the client went away. */
export class BodyError extends Error {
  override readonly name = 'BodyError';
  constructor(readonly reason: 'too_large' | 'aborted') {
    super(reason === 'too_large' ? 'the request body is larger than the limit' : 'the request body ended early');
  }
}

/** Reads a body of at most `limit` bytes; past the limit it stops reading and rejects with too_large. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.pause();
        reject(new BodyError('too_large'));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    // Node's parser hands over each body chunk as a Buffer of its own: one chunk (the usual case
    // for a request of a few kB) is the body as it is, without a copy.
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    req.once('error', () => reject(new BodyError('aborted')));
    req.once('aborted', () => reject(new BodyError('aborted')));
  });
}
