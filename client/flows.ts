// The app's two flows against the parent (SPEC §4, §6, §7): attest with a fresh random nonce,
// verify the document against the pinned root and expected PCRs, check that the JWKS returned
// beside it is the one user_data binds (and, when pinned, that user_data names the deployment's
// m_commit), seal to the boot key, call the parent, open, and check what came back before handing
// it to the caller. A failed local check never returns a token.

import { createHash, randomBytes } from 'node:crypto';
import { AttestationError, decodeUserData } from '../protocol/attestation-document.js';
import { reservedUntilOf } from '../protocol/limits.js';
import { verifyAttestation, type VerifiedAttestation } from './attestation.js';
import { ClientError } from './errors.js';
import { ParentClient, type ApiClient, type DipAnswer, type Fetch } from './http.js';
import type { ExpectedPcrs } from './manifest.js';
import { open, seal, type DipRequest } from './seal.js';
import { readDrt, readSrt, verifyDat, type DatClaims, type DrtClaims } from './tokens.js';

/** What the client trusts: the pinned root and the measurements it expects (SPEC §7 steps 3 and 6). */
export interface Trust {
  /** DER bytes or PEM text: AWS Nitro Enclaves Root-G1, or `.dev/nsm-root.pem` in development. */
  root: Uint8Array | string;
  rootSha256?: string;
  expectedPcrs: ExpectedPcrs;
  allowDebug?: boolean;
  maxAgeMs?: number;
  /**
   * SPEC §3, §7 step 7: the deployment's m_commit (32 bytes). When given, a document whose
   * `user_data.m_commit` differs is refused: that enclave was handed another master secret.
   */
  mCommit?: Uint8Array;
}

export interface ConnectOptions {
  url: string;
  trust: Trust;
  fetch?: Fetch;
  timeoutMs?: number;
}

export interface AttestedEnclave {
  attestation: VerifiedAttestation;
  /** SPKI DER of the boot key, to seal to. */
  bootPublicKey: Uint8Array;
  /** The exact JWKS bytes whose SHA-256 the document binds. */
  jwks: Uint8Array;
}

export interface DipTokens {
  dat: string;
  drt: string;
  ip: string;
  reservedUntil: number;
  datClaims: DatClaims;
  /** Read, not verified: only the enclave holds the DRT key (SPEC §2). */
  drtClaims: DrtClaims;
}

const NONCE_BYTES = 32;
const M_COMMIT_BYTES = 32;

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function parentOf(options: ConnectOptions): ParentClient {
  return new ParentClient(options.url, {
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
  });
}

/** Where attestation documents come from: the parent, or the DIP service passing them through. */
export interface AttestationSource {
  attestation(nonce: Uint8Array): Promise<{ document: Uint8Array; jwks: Uint8Array }>;
}

export async function attestWith(parent: AttestationSource, trust: Trust): Promise<AttestedEnclave> {
  if (trust.mCommit !== undefined && (!(trust.mCommit instanceof Uint8Array) || trust.mCommit.length !== M_COMMIT_BYTES)) {
    throw new TypeError('trust.mCommit must be 32 bytes');
  }
  const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
  const { document, jwks } = await parent.attestation(nonce);
  let attestation: VerifiedAttestation;
  let jwksSha256: Uint8Array;
  let mCommit: Uint8Array;
  try {
    attestation = verifyAttestation(document, {
      root: trust.root,
      nonce,
      expectedPcrs: trust.expectedPcrs,
      ...(trust.rootSha256 === undefined ? {} : { rootSha256: trust.rootSha256 }),
      ...(trust.allowDebug === undefined ? {} : { allowDebug: trust.allowDebug }),
      ...(trust.maxAgeMs === undefined ? {} : { maxAgeMs: trust.maxAgeMs }),
    });
    if (attestation.userData === null) throw new AttestationError('user_data_malformed');
    ({ jwksSha256, mCommit } = decodeUserData(attestation.userData));
  } catch (error) {
    if (error instanceof AttestationError) throw new ClientError('attestation_failed', false, error.code);
    throw error;
  }
  // SPEC §3: the boot key is the document's public_key; a document without one cannot be sealed to.
  if (attestation.publicKey === null) throw new ClientError('attestation_failed', false, 'public_key_missing');
  if (!bytesEqual(new Uint8Array(createHash('sha256').update(jwks).digest()), jwksSha256)) {
    throw new ClientError('jwks_mismatch');
  }
  // SPEC §9: a compromised parent can hand an enclave a secret of its own; only the pin catches it.
  if (trust.mCommit !== undefined && !bytesEqual(mCommit, trust.mCommit)) {
    throw new ClientError('attestation_failed', false, 'm_commit_mismatch');
  }
  return { attestation, bootPublicKey: attestation.publicKey, jwks };
}

/** Fetches an attestation document with a fresh nonce and verifies it and the JWKS it binds. */
export function attest(options: ConnectOptions): Promise<AttestedEnclave> {
  return attestWith(parentOf(options), options.trust);
}

function jwksKids(jwks: Uint8Array): Set<unknown> {
  const set = JSON.parse(Buffer.from(jwks).toString('utf8')) as { keys?: Array<{ kid?: unknown }> };
  return new Set((set.keys ?? []).map((key) => key.kid));
}

/**
 * The checks after opening (SPEC §2, §4): both tokens, the clear IP and reservedUntil. `expected.ip`
 * is the IP asked for; through the DIP service, which chooses it, the clear one is checked instead.
 */
async function checkTokens(
  opened: { dat: string; drt: string },
  answer: DipAnswer,
  expected: { ip: string | undefined; srt: string; jwks: Uint8Array },
): Promise<DipTokens> {
  const ip = expected.ip ?? answer.ip;
  if (answer.ip !== ip) throw new ClientError('ip_unexpected');
  const datClaims = await verifyDat(opened.dat, expected.jwks, { ip });
  const drtClaims = readDrt(opened.drt);
  if (drtClaims.ip !== ip) throw new ClientError('ip_unexpected');
  // SPEC §2: the DRT key is never used for DATs, so it must not be in the published DAT keys.
  if (jwksKids(expected.jwks).has(drtClaims.kid)) throw new ClientError('drt_unexpected');
  if (answer.reservedUntil !== reservedUntilOf(drtClaims.exp)) throw new ClientError('reservation_mismatch');
  const srt = readSrt(expected.srt);
  if (drtClaims.sub !== srt.sub || drtClaims.did !== srt.did) throw new ClientError('drt_unexpected');
  const { kid: _kid, ...claims } = drtClaims;
  return { dat: opened.dat, drt: opened.drt, ip: answer.ip, reservedUntil: answer.reservedUntil, datClaims, drtClaims: claims };
}

/**
 * Attest, seal, send, open, check. SPEC §6: `key_unknown` means no enclave behind the parent has
 * the boot key sealed to any more (a restart or an upgrade in between), so attest again and retry
 * once; a second `key_unknown` is returned to the caller rather than looping. `ip` is the IP asked
 * for, or undefined when the DIP service chooses it.
 */
export async function sealAndSend(
  source: AttestationSource,
  trust: Trust,
  request: DipRequest,
  send: (sealed: Uint8Array) => Promise<DipAnswer>,
  ip: string | undefined,
): Promise<DipTokens> {
  for (let attempt = 1; ; attempt++) {
    const enclave = await attestWith(source, trust);
    const sealed = seal(enclave.bootPublicKey, request);
    let answer: DipAnswer;
    try {
      answer = await send(sealed.encapsulatedRequest);
    } catch (error) {
      if (attempt === 1 && error instanceof ClientError && error.code === 'key_unknown') continue;
      throw error;
    }
    const opened = open(sealed.context, answer.response);
    return checkTokens(opened, answer, { ip, srt: request.srt, jwks: enclave.jwks });
  }
}

/** Assign: the DIP service chose `ip`; the enclave returns a DAT and a DRT for it, sealed to us. */
export function assign(options: ConnectOptions & { srt: string; ip: string }): Promise<DipTokens> {
  const { srt, ip } = options;
  const parent = parentOf(options);
  return sealAndSend(parent, options.trust, { op: 'assign', srt }, (request) => parent.assign(ip, request), ip);
}

/**
 * Refresh: a new DAT and DRT for the IP of `drt`, for the same subscription and version. The route
 * and its body are the same at the parent and at the DIP service (SPEC §6, §11), so `client` may
 * be either; by default the parent at `options.url`.
 */
export async function refresh(options: ConnectOptions & { srt: string; drt: string }, client: ApiClient = parentOf(options)): Promise<DipTokens> {
  const { srt, drt } = options;
  let ip: string;
  try {
    ip = readDrt(drt).ip;
  } catch {
    throw new ClientError('token_unreadable');
  }
  return sealAndSend(client, options.trust, { op: 'refresh', srt, drt }, (request) => client.refresh(ip, request), ip);
}
