// HTTP ⇄ the KMS emulator's domain, in KMS's JSON 1.1 protocol as @aws-sdk/client-kms speaks it
// (SPEC §9): POST, X-Amz-Target TrentService.<Operation>, Content-Type application/x-amz-json-1.1.
// Any SigV4 Authorization is accepted (this is no AWS account), but one must be present.

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { KmsError } from './errors.js';
import type { Kms, KmsAnswer } from './kms.js';

/** Room for the largest document KMS accepts (262144 bytes, 349528 in base64) and the rest. */
export const MAX_BODY_BYTES = 512 * 1024;

const CONTENT_TYPE = 'application/x-amz-json-1.1';
const OPERATIONS = {
  'TrentService.GenerateDataKey': 'generateDataKey',
  'TrentService.Decrypt': 'decrypt',
} as const satisfies Record<string, keyof Kms>;

export type Operation = keyof typeof OPERATIONS;

/** What a request came to, without any of its content: the operation and `ok` or KMS's error type. */
export type RequestObserver = (operation: Operation | null, outcome: string) => void;

function send(response: ServerResponse, status: number, body: KmsAnswer | { __type: string; message: string }, close = false): void {
  response.writeHead(status, {
    'content-type': CONTENT_TYPE,
    'x-amzn-requestid': randomUUID(),
    ...(close ? { connection: 'close' } : {}),
  });
  response.end(JSON.stringify(body));
}

/** The body as text, or null once it passes MAX_BODY_BYTES (then reading stops). */
function readBody(request: IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        request.removeAllListeners('data');
        request.pause();
        resolve(null);
      } else {
        parts.push(chunk);
      }
    });
    request.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    request.on('error', reject);
  });
}

async function answer(kms: Kms, request: IncomingMessage): Promise<{ operation: Operation | null; status: number; body: KmsAnswer | ReturnType<KmsError['toJSON']>; close?: boolean }> {
  const target = request.headers['x-amz-target'];
  const operation = typeof target === 'string' && Object.hasOwn(OPERATIONS, target) ? (target as Operation) : null;
  const refuse = (error: KmsError, close = false) => ({ operation, status: error.status, body: error.toJSON(), close });

  if (typeof request.headers.authorization !== 'string' || request.headers.authorization.length === 0) {
    return refuse(new KmsError('authorization_missing'));
  }
  if (request.method !== 'POST' || operation === null) return refuse(new KmsError('operation_unknown'));
  if (request.headers['content-type']?.split(';')[0]?.trim().toLowerCase() !== CONTENT_TYPE) return refuse(new KmsError('body_unreadable'));
  const text = await readBody(request);
  if (text === null) return refuse(new KmsError('body_too_large'), true);
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch {
    return refuse(new KmsError('body_unreadable'));
  }
  try {
    return { operation, status: 200, body: kms[OPERATIONS[operation]](input) };
  } catch (error) {
    if (error instanceof KmsError) return refuse(error);
    throw error;
  }
}

export function createKmsServer(kms: Kms, observe: RequestObserver = () => {}): Server {
  return createServer((request, response) => {
    answer(kms, request).then(
      ({ operation, status, body, close }) => {
        observe(operation, status === 200 ? 'ok' : (body as { __type: string }).__type);
        send(response, status, body, close);
      },
      () => {
        // Our own bug: KMS's internal error, with nothing of the request or the exception in it.
        observe(null, 'KMSInternalException');
        send(response, 500, { __type: 'KMSInternalException', message: 'The request could not be completed' }, true);
      },
    );
  });
}
