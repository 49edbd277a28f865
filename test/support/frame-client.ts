// Test helper: talks the enclave wire protocol (SPEC §5) to a Unix or TCP socket. A small
// multiplexing client for well-formed requests, and a raw exchange for hostile bytes.

import net from 'node:net';
import type { CborValue } from '../../protocol/cbor.js';
import { encodeFrame, FrameReader } from '../../protocol/frame.js';
import { parseResponse, type EnclaveResponse } from '../../protocol/messages.js';
import type { ListenAddress } from '../../enclave/io/address.js';

export function connectTo(address: ListenAddress): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket =
      address.kind === 'unix' ? net.connect({ path: address.path }) : net.connect({ host: address.host, port: address.port });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Resolves with `value`, or rejects after `ms` with a message naming `what`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A connection that sends requests and collects every frame that comes back, in order. */
export class FrameClient {
  readonly frames: CborValue[] = [];
  /** Resolves when the server closed the connection (or it failed). */
  readonly closed: Promise<void>;
  private readonly reader = new FrameReader();
  private readonly waiting = new Map<number, (response: EnclaveResponse) => void>();
  private nextId = 1;
  private isClosed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      for (let item = this.reader.next(); item !== null; item = this.reader.next()) {
        this.frames.push(item);
        const response = parseResponse(item);
        if (response === null) continue;
        const resolve = this.waiting.get(response.id);
        if (resolve) {
          this.waiting.delete(response.id);
          resolve(response);
        }
      }
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    void this.closed.then(() => {
      this.isClosed = true;
    });
  }

  static async connect(address: ListenAddress): Promise<FrameClient> {
    return new FrameClient(await connectTo(address));
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  /** Sends `{v: 1, id, op, body}` and resolves with the response carrying that id. */
  request(op: string, body: Record<string, unknown> = {}, id = this.nextId++): Promise<EnclaveResponse> {
    const answered = new Promise<EnclaveResponse>((resolve) => this.waiting.set(id, resolve));
    this.socket.write(encodeFrame({ v: 1, id, op, body }));
    return within(answered, 30_000, `response to ${op} #${id}`);
  }

  /** Sends any item as one frame (e.g. a request with a bad envelope). */
  sendItem(item: unknown): void {
    this.socket.write(encodeFrame(item));
  }

  sendRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface RawExchange {
  frames: CborValue[];
  /** True when the server closed the connection before the timeout. */
  closedByServer: boolean;
}

/**
 * Writes `bytes`, optionally ends our side, and collects frames until the server closes the
 * connection or `timeoutMs` passes. Undecodable bytes from the server fail the test loudly.
 */
export async function exchangeRaw(
  address: ListenAddress,
  bytes: Uint8Array,
  { end = false, timeoutMs = 10_000 }: { end?: boolean; timeoutMs?: number } = {},
): Promise<RawExchange> {
  const socket = await connectTo(address);
  const reader = new FrameReader();
  const frames: CborValue[] = [];
  socket.on('error', () => {});
  socket.on('data', (chunk: Buffer) => {
    reader.push(chunk);
    for (let item = reader.next(); item !== null; item = reader.next()) frames.push(item);
  });
  const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
  const timedOut = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs).unref());
  socket.write(bytes);
  if (end) socket.end();
  const closedByServer = await Promise.race([closed, timedOut]);
  socket.destroy();
  return { frames, closedByServer };
}

/** A length header saying `n` bytes follow. */
export function lengthHeader(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

/** Reads an error frame's fields; null when `item` is not an error response. */
export function errorOf(item: CborValue | undefined): { id: number; code: string; message: string } | null {
  if (item === undefined) return null;
  const response = parseResponse(item);
  if (response === null || response.ok) return null;
  return { id: response.id, code: response.error.code, message: response.error.message };
}
