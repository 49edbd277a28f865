// Small helpers shared by the parent's tests: bounded polling and HTTP over real sockets.

import { ERROR_MESSAGES, type ErrorCode } from '../../protocol/errors.js';
import { request as httpRequest, type Agent, type IncomingHttpHeaders } from 'node:http';

/** Polls `check` every 20 ms until it holds; fails after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface HttpReply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
  json: unknown;
}

export interface HttpOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  agent?: Agent | false;
}

/** One HTTP request to 127.0.0.1:port; resolves with status, headers and the whole body. */
export function http(port: number, path: string, options: HttpOptions = {}): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers, agent: options.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          const text = body.toString();
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode!, headers: res.headers, body, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** POSTs a JSON value (or raw text) with Content-Type application/json. */
export function postJson(port: number, path: string, value: unknown, agent?: Agent): Promise<HttpReply> {
  const body = typeof value === 'string' ? value : JSON.stringify(value);
  return http(port, path, { method: 'POST', headers: { 'content-type': 'application/json' }, body, agent: agent ?? false });
}

export function errorBody(code: ErrorCode): { error: { code: string; message: string } } {
  return { error: { code, message: ERROR_MESSAGES[code] } };
}
