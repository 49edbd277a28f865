// A test-only enclave: a frame server on a Unix socket whose answers each test controls, to
// drive what a real enclave will not do on demand (stall, answer out of order, send garbage).
// Requests are validated with the real protocol/messages.ts, as the enclave does.

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CborValue } from '../../protocol/cbor.js';
import { FrameReader, encodeFrame } from '../../protocol/frame.js';
import type { ErrorCode } from '../../protocol/errors.js';
import { RequestError, encodeErrorResponse, parseRequest, type EnclaveRequest } from '../../protocol/messages.js';

/** An answer: an ok body, an error code, raw bytes to write, or `stall` (never answer). */
export type FakeAnswer = { body: Record<string, unknown> } | { error: ErrorCode } | { raw: Uint8Array } | 'stall';
export type FakeHandler = (request: EnclaveRequest) => FakeAnswer | Promise<FakeAnswer>;

export const FAKE_JWKS = Buffer.from('{"keys":[{"kty":"EC","crv":"P-256","x":"fake","y":"fake","kid":"k1"}]}');

export const FAKE_KEY_ID = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
export const FAKE_M_COMMIT = new Uint8Array(32).fill(0x4d);

/** Answers like an enclave would, from the request alone (assign and refresh echo the ip they were given). */
export const defaultHandler: FakeHandler = (request) => {
  switch (request.op) {
    case 'attest':
      return { body: { document: new Uint8Array([0xd2, ...request.body.nonce]), jwks: new Uint8Array(FAKE_JWKS) } };
    case 'jwks':
      return { body: { jwks: new Uint8Array(FAKE_JWKS) } };
    case 'assign':
      return { body: { ip: request.body.ip, reservedUntil: 1_900_000_000, response: new Uint8Array(request.body.request).reverse() } };
    case 'refresh':
      return { body: { ip: request.body.ip, reservedUntil: 1_900_000_001, response: new Uint8Array(request.body.request).reverse() } };
    case 'health':
      return { body: { status: 'ok', version: 'fake-1', key_id: new Uint8Array(FAKE_KEY_ID), m_commit: new Uint8Array(FAKE_M_COMMIT) } };
    case 'key_request':
      return { body: { document: new Uint8Array([0xd2, 0x80]) } };
    case 'unlock':
      return { body: { status: 'ok', epoch: 694, m_commit: new Uint8Array(FAKE_M_COMMIT) } };
  }
};

export class FakeEnclave {
  handler: FakeHandler = defaultHandler;
  readonly sockets = new Set<Socket>();
  requests = 0;
  /** Frames that parseRequest refused: a parent check that let them through is visible here. */
  unparsed = 0;
  private server: Server | null = null;
  readonly dir: string;
  readonly path: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'dip-fake-enclave-'));
    this.path = join(this.dir, 'enclave.sock');
  }

  get address(): string {
    return `unix:${this.path}`;
  }

  async start(): Promise<this> {
    const server = createServer((socket) => this.serve(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, resolve);
    });
    return this;
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    const reader = new FrameReader();
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      let item: CborValue | null;
      try {
        while ((item = reader.next()) !== null) void this.answer(socket, item);
      } catch {
        socket.end(encodeFrame(encodeErrorResponse(0, 'bad_frame')));
      }
    });
  }

  private async answer(socket: Socket, item: CborValue): Promise<void> {
    let request: EnclaveRequest;
    try {
      request = parseRequest(item);
    } catch (error) {
      const e = error as RequestError;
      this.unparsed++;
      socket.write(encodeFrame(encodeErrorResponse(e.id, e.code)));
      return;
    }
    this.requests++;
    const answer = await this.handler(request);
    if (answer === 'stall' || socket.destroyed) return;
    if ('raw' in answer) socket.write(answer.raw);
    else if ('error' in answer) socket.write(encodeFrame(encodeErrorResponse(request.id, answer.error)));
    else socket.write(encodeFrame({ v: 1, id: request.id, ok: true, body: answer.body }));
  }

  /** Closes the listener and every connection, as a crashed enclave would. */
  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise((resolve) => server.close(resolve));
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
