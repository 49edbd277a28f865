// What the enclave's main thread (pool.ts) and its worker threads (worker.ts) say to each other
// (issue 13). Requests and answers carry only what the main thread already handles today —
// frames' contents, public keys, documents, error codes. Secrets (the boot key, M) travel only
// from worker to worker, as SharedKeys over a MessagePort the main thread creates and never reads.

import type { KeyObject } from 'node:crypto';
import type { MessagePort } from 'node:worker_threads';
import type { ErrorCode } from '../../protocol/errors.js';
import type { EnclaveRequest } from '../../protocol/messages.js';
import type { SrtTrust } from '../core/config.js';
import type { AttestationRequest } from '../nsm/nsm.js';

/** Public configuration every worker starts with (workerData). */
export interface WorkerSetup {
  readonly srtTrust: SrtTrust;
  readonly datIssuer: string;
  readonly version: string;
  /** SPEC §3: the latest clock check; later ones arrive as `clock` messages. */
  readonly clockTrusted: boolean;
  /** null: make the boot key (the first worker); else wait for SharedKeys from another worker here. */
  readonly keys: MessagePort | null;
}

/** Worker → worker only. The boot key is one per enclave; M is there once the enclave is unlocked. */
export interface SharedKeys {
  readonly bootKey: { readonly privateKey: KeyObject; readonly publicKeySpki: Uint8Array };
  readonly masterSecret: Uint8Array | null;
}

/** One request to answer; `seq` names it in the reply. */
export interface Numbered {
  readonly seq: number;
  readonly request: EnclaveRequest;
}

export type Reply =
  | { readonly seq: number; readonly ok: true; readonly body: Record<string, unknown> }
  | { readonly seq: number; readonly ok: false; readonly code: ErrorCode };

// Requests and replies travel in batches: every postMessage costs a wake-up of the other thread,
// which the issue 13 profile found to be the largest share of the main thread's work.
export type ToWorker =
  | { readonly kind: 'requests'; readonly batch: readonly Numbered[] }
  /** Post this worker's SharedKeys to `port`. */
  | { readonly kind: 'give'; readonly port: MessagePort }
  /** Take SharedKeys from `port` (M after an unlock elsewhere), then answer `taken`. */
  | { readonly kind: 'take'; readonly port: MessagePort }
  | { readonly kind: 'clock'; readonly trusted: boolean }
  /** The NSM's answer to an `attestation` ask; null when the NSM failed. */
  | { readonly kind: 'document'; readonly seq: number; readonly document: Uint8Array | null };

export type FromWorker =
  /** Holds the boot key (and M, if the enclave is unlocked); publicKeySpki lets the pool check all hold the same. */
  | { readonly kind: 'ready'; readonly publicKeySpki: Uint8Array; readonly mCommit: Uint8Array | null }
  | { readonly kind: 'replies'; readonly batch: readonly Reply[] }
  | { readonly kind: 'taken'; readonly mCommit: Uint8Array | null }
  /** The NSM is a single device in the main thread: a worker asks it for documents. */
  | { readonly kind: 'attestation'; readonly seq: number; readonly request: AttestationRequest };

/** A worker's exit code when the keys it waited for never came (the worker that was to give them died). */
export const EXIT_NO_KEYS = 75;
/** A worker's exit code when a bug escaped every handler (its error text is never passed on). */
export const EXIT_CRASHED = 70;
