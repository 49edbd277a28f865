// The only code that touches /dev/nsm (STYLE.md: the driver is one small module). It implements
// the Nsm interface with one ioctl per request, as aws-nitro-enclaves-nsm-api src/driver/mod.rs
// does; the messages themselves are built and read by the pure nsm-cbor.ts.

import { open, type FileHandle } from 'node:fs/promises';
import koffi from 'koffi';
import type { AttestationRequest, Nsm } from './nsm.js';
import {
  NSM_REQUEST_MAX_BYTES,
  NSM_RESPONSE_MAX_BYTES,
  NsmDeviceError,
  decodeNsmResponse,
  encodeNsmRequest,
  expectResponse,
  type NsmRequest,
  type NsmResponse,
} from './nsm-cbor.js';

/** Linux include/uapi/asm-generic/ioctl.h _IOWR(type, nr, size). */
export function ioctlReadWrite(type: number, nr: number, size: number): number {
  const IOC_READ_WRITE = 3;
  return ((IOC_READ_WRITE << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}

/** struct nsm_raw { struct nsm_iovec { __u64 addr; __u64 len; } request, response; } */
export const NSM_RAW_BYTES = 32;
/** nsm-api: request_code_readwrite!(NSM_IOCTL_MAGIC = 0x0A, 0, size_of::<NsmMessage>()) = 0xC0200A00. */
export const NSM_IOCTL_REQUEST = ioctlReadWrite(0x0a, 0, NSM_RAW_BYTES);

/**
 * Lays out struct nsm_raw in native byte order. Nitro Enclaves run on x86_64 and aarch64 only,
 * both little-endian; the kernel rewrites response.len (bytes 24..32) with the length written.
 */
export function encodeNsmRaw(requestAddr: bigint, requestLen: number, responseAddr: bigint, responseLen: number): Uint8Array {
  const out = new Uint8Array(NSM_RAW_BYTES);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, requestAddr, true);
  view.setBigUint64(8, BigInt(requestLen), true);
  view.setBigUint64(16, responseAddr, true);
  view.setBigUint64(24, BigInt(responseLen), true);
  return out;
}

/** Reads response.len back from struct nsm_raw after the ioctl. */
export function responseLengthOf(raw: Uint8Array): number {
  const len = new DataView(raw.buffer, raw.byteOffset, raw.byteLength).getBigUint64(24, true);
  if (len > BigInt(NSM_RESPONSE_MAX_BYTES)) throw new NsmDeviceError('nsm_bad_response');
  return Number(len);
}

/** Sends one encoded request and returns the encoded response. */
export type NsmTransport = (request: Uint8Array) => Uint8Array;

type Ioctl = (fd: number, request: number, type: 'void *', arg: unknown) => number;
let libcIoctl: Ioctl | undefined;

function errnoName(errno: number): string {
  const entry = Object.entries(koffi.os.errno).find(([, value]) => value === errno);
  return entry ? entry[0] : `errno ${errno}`;
}

/** One ioctl(fd, NSM_IOCTL_REQUEST, &nsm_raw) per request, into memory owned by this call. */
export function ioctlTransport(fd: number): NsmTransport {
  libcIoctl ??= koffi.load('libc.so.6').func('int ioctl(int fd, unsigned long request, ...)') as Ioctl;
  const ioctl = libcIoctl;
  return (request) => {
    if (request.length > NSM_REQUEST_MAX_BYTES) throw new NsmDeviceError('nsm_request_too_large');
    const requestMem = koffi.alloc('uint8_t', NSM_REQUEST_MAX_BYTES);
    const responseMem = koffi.alloc('uint8_t', NSM_RESPONSE_MAX_BYTES);
    const rawMem = koffi.alloc('uint8_t', NSM_RAW_BYTES);
    try {
      new Uint8Array(koffi.view(requestMem, request.length)).set(request);
      const raw = encodeNsmRaw(koffi.address(requestMem), request.length, koffi.address(responseMem), NSM_RESPONSE_MAX_BYTES);
      new Uint8Array(koffi.view(rawMem, NSM_RAW_BYTES)).set(raw);
      if (ioctl(fd, NSM_IOCTL_REQUEST, 'void *', rawMem) !== 0) {
        throw new NsmDeviceError('nsm_ioctl_failed', { errno: errnoName(koffi.errno()) });
      }
      /* c8 ignore next 2 -- the success path needs a real /dev/nsm (Nitro host only) */
      const written = responseLengthOf(new Uint8Array(koffi.view(rawMem, NSM_RAW_BYTES)));
      return new Uint8Array(koffi.view(responseMem, written)).slice();
    } finally {
      koffi.free(requestMem);
      koffi.free(responseMem);
      koffi.free(rawMem);
    }
  };
}

/** The NSM behind the Nsm interface, plus the other requests operators and tests use. */
export class NsmDevice implements Nsm {
  private closed = false;

  constructor(
    private readonly transport: NsmTransport,
    private readonly release: () => Promise<void> = async () => {},
  ) {}

  private call(request: NsmRequest): NsmResponse {
    if (this.closed) throw new TypeError('the NSM device is closed');
    return decodeNsmResponse(this.transport(encodeNsmRequest(request)));
  }

  async attestation(request: AttestationRequest): Promise<Uint8Array> {
    const response = this.call({ kind: 'Attestation', userData: request.userData, nonce: request.nonce, publicKey: request.publicKey });
    return expectResponse(response, 'Attestation').document;
  }

  async describeNsm(): Promise<Extract<NsmResponse, { kind: 'DescribeNSM' }>> {
    return expectResponse(this.call({ kind: 'DescribeNSM' }), 'DescribeNSM');
  }

  async describePcr(index: number): Promise<Extract<NsmResponse, { kind: 'DescribePCR' }>> {
    return expectResponse(this.call({ kind: 'DescribePCR', index }), 'DescribePCR');
  }

  async getRandom(): Promise<Uint8Array> {
    return expectResponse(this.call({ kind: 'GetRandom' }), 'GetRandom').random;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.release();
  }
}

/**
 * Opens the device and proves it answers (DescribeNSM) before anyone relies on it: a missing
 * device is `nsm_unavailable`, a file that is not the NSM is `nsm_ioctl_failed`.
 */
export async function openNsmDevice(path = '/dev/nsm'): Promise<NsmDevice> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r+');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new NsmDeviceError('nsm_unavailable', code ? { errno: code } : {});
  }
  const device = new NsmDevice(ioctlTransport(handle.fd), () => handle.close());
  try {
    await device.describeNsm();
  } catch (error) {
    await device.close();
    throw error;
  }
  return device;
}
