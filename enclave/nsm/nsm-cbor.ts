// The messages of the Nitro Security Module, as CBOR, with no I/O (device.ts does the ioctl).
// Follows aws-nitro-enclaves-nsm-api src/api/mod.rs: serde's externally tagged enums, so a unit
// variant is a bare text string ("DescribeNSM") and any other variant a one-entry map
// {"Name": {fields in declaration order}}; Option::None is CBOR null; ByteBuf is a byte string.

import { decodeCbor, encodeCbor, type CborMap, type CborValue } from '../../protocol/cbor.js';

/** nsm-api driver/mod.rs NSM_REQUEST_MAX_SIZE: the device refuses a larger request. */
export const NSM_REQUEST_MAX_BYTES = 0x1000;
/** nsm-api driver/mod.rs NSM_RESPONSE_MAX_SIZE: the response buffer handed to the kernel. */
export const NSM_RESPONSE_MAX_BYTES = 0x3000;

export type NsmRequest =
  | { kind: 'Attestation'; userData: Uint8Array | null; nonce: Uint8Array | null; publicKey: Uint8Array | null }
  | { kind: 'DescribeNSM' }
  | { kind: 'DescribePCR'; index: number }
  | { kind: 'GetRandom' };

/** api/mod.rs ErrorCode, the closed set the module answers with. */
export const NSM_ERROR_CODES = [
  'Success',
  'InvalidArgument',
  'InvalidIndex',
  'InvalidResponse',
  'ReadOnlyIndex',
  'InvalidOperation',
  'BufferTooSmall',
  'InputTooLarge',
  'InternalError',
] as const;
export type NsmErrorCode = (typeof NSM_ERROR_CODES)[number];

export type NsmDigest = 'SHA256' | 'SHA384' | 'SHA512';

export type NsmResponse =
  | { kind: 'Attestation'; document: Uint8Array }
  | {
      kind: 'DescribeNSM';
      versionMajor: number;
      versionMinor: number;
      versionPatch: number;
      moduleId: string;
      maxPcrs: number;
      lockedPcrs: number[];
      digest: NsmDigest;
    }
  | { kind: 'DescribePCR'; lock: boolean; data: Uint8Array }
  | { kind: 'ExtendPCR'; data: Uint8Array }
  | { kind: 'GetRandom'; random: Uint8Array }
  | { kind: 'LockPCR' }
  | { kind: 'LockPCRs' }
  | { kind: 'Error'; code: NsmErrorCode };

export type NsmFailure =
  /** /dev/nsm cannot be opened (absent, or no permission). */
  | 'nsm_unavailable'
  /** The ioctl itself failed (not an NSM device, or the driver refused). */
  | 'nsm_ioctl_failed'
  /** The request would exceed NSM_REQUEST_MAX_BYTES. */
  | 'nsm_request_too_large'
  /** The answer is not a response this driver knows, or not the one asked for. */
  | 'nsm_bad_response'
  /** The module answered {"Error": code}. */
  | 'nsm_error';

const FAILURE_MESSAGES: Readonly<Record<NsmFailure, string>> = {
  nsm_unavailable: 'The NSM device cannot be opened.',
  nsm_ioctl_failed: 'The NSM ioctl failed.',
  nsm_request_too_large: 'The NSM request is too large.',
  nsm_bad_response: 'The NSM response is malformed or unexpected.',
  nsm_error: 'The NSM returned an error.',
};

/**
 * Every failure of the NSM driver. The message is fixed per code; `nsmCode` (the module's own
 * error name) and `errno` (the OS error name) come from closed sets, never from request data.
 */
export class NsmDeviceError extends Error {
  override readonly name = 'NsmDeviceError';

  constructor(
    readonly code: NsmFailure,
    readonly detail: { nsmCode?: NsmErrorCode; errno?: string } = {},
  ) {
    super(FAILURE_MESSAGES[code] + (detail.nsmCode ? ` (${detail.nsmCode})` : '') + (detail.errno ? ` (${detail.errno})` : ''));
  }
}

/** Encodes a request exactly as nsm-api's serde_cbor::to_vec(&Request) does. */
export function encodeNsmRequest(request: NsmRequest): Uint8Array {
  let value: unknown;
  switch (request.kind) {
    case 'Attestation':
      value = new Map([
        ['Attestation', new Map([
          ['user_data', request.userData],
          ['nonce', request.nonce],
          ['public_key', request.publicKey],
        ])],
      ]);
      break;
    case 'DescribePCR':
      if (!Number.isInteger(request.index) || request.index < 0 || request.index > 0xffff) {
        throw new TypeError('PCR index must be a u16');
      }
      value = new Map([['DescribePCR', new Map([['index', request.index]])]]);
      break;
    case 'DescribeNSM':
    case 'GetRandom':
      value = request.kind;
      break;
    default:
      throw new TypeError('unknown NSM request');
  }
  const bytes = encodeCbor(value);
  if (bytes.length > NSM_REQUEST_MAX_BYTES) throw new NsmDeviceError('nsm_request_too_large');
  return bytes;
}

const UNIT_RESPONSES = new Set(['LockPCR', 'LockPCRs']);

function bad(): never {
  throw new NsmDeviceError('nsm_bad_response');
}

function field(map: CborValue, name: string): CborValue {
  if (!(map instanceof Map) || !map.has(name)) bad();
  return map.get(name);
}

function bytesField(map: CborValue, name: string): Uint8Array {
  const value = field(map, name);
  return value instanceof Uint8Array ? value : bad();
}

function u16Field(value: CborValue): number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffff ? value : bad();
}

function describeNsm(body: CborValue): NsmResponse {
  const locked = field(body, 'locked_pcrs');
  const digest = field(body, 'digest');
  const moduleId = field(body, 'module_id');
  if (!Array.isArray(locked) || typeof moduleId !== 'string') bad();
  if (digest !== 'SHA256' && digest !== 'SHA384' && digest !== 'SHA512') bad();
  return {
    kind: 'DescribeNSM',
    versionMajor: u16Field(field(body, 'version_major')),
    versionMinor: u16Field(field(body, 'version_minor')),
    versionPatch: u16Field(field(body, 'version_patch')),
    moduleId,
    maxPcrs: u16Field(field(body, 'max_pcrs')),
    lockedPcrs: locked.map(u16Field),
    digest,
  };
}

/**
 * Decodes what the module wrote into the response buffer. Anything that is not one of
 * api/mod.rs's Response variants, well-typed, is `nsm_bad_response`; {"Error": code} is
 * returned as a value so that callers decide (see expectResponse).
 */
export function decodeNsmResponse(bytes: Uint8Array): NsmResponse {
  let item: CborValue;
  try {
    item = decodeCbor(bytes);
  } catch {
    bad();
  }
  if (typeof item === 'string') {
    return UNIT_RESPONSES.has(item) ? { kind: item as 'LockPCR' | 'LockPCRs' } : bad();
  }
  if (!(item instanceof Map) || item.size !== 1) bad();
  const [[name, body]] = [...(item as CborMap)] as [[unknown, CborValue]];
  switch (name) {
    case 'Attestation':
      return { kind: 'Attestation', document: bytesField(body, 'document') };
    case 'DescribeNSM':
      return describeNsm(body);
    case 'DescribePCR': {
      const lock = field(body, 'lock');
      return typeof lock === 'boolean' ? { kind: 'DescribePCR', lock, data: bytesField(body, 'data') } : bad();
    }
    case 'ExtendPCR':
      return { kind: 'ExtendPCR', data: bytesField(body, 'data') };
    case 'GetRandom':
      return { kind: 'GetRandom', random: bytesField(body, 'random') };
    case 'Error':
      return (NSM_ERROR_CODES as readonly unknown[]).includes(body) ? { kind: 'Error', code: body as NsmErrorCode } : bad();
    default:
      return bad();
  }
}

/** Narrows a response to the variant asked for; an NSM error becomes `nsm_error`. */
export function expectResponse<K extends NsmResponse['kind']>(
  response: NsmResponse,
  kind: K,
): Extract<NsmResponse, { kind: K }> {
  if (response.kind === kind) return response as Extract<NsmResponse, { kind: K }>;
  if (response.kind === 'Error') throw new NsmDeviceError('nsm_error', { nsmCode: response.code });
  return bad();
}
