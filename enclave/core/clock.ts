// SPEC §3 "Time": the enclave reads only its own clock, and checks it against the `timestamp` of a
// fresh attestation document from the NSM at start and every hour. While they differ by more than
// 30 s the clock is untrusted, and attest, assign and refresh answer `clock_untrusted`. Nothing the
// parent sends can set or move the clock: this check only reads it.

import { decodeAttestationPayload } from '../../protocol/attestation-document.js';
import { decodeCoseSign1 } from '../../protocol/cose.js';
import { MAX_CLOCK_DRIFT_MS } from '../../protocol/limits.js';
import type { Nsm } from '../nsm/nsm.js';

export const CLOCK_CHECK_INTERVAL_MS = 3_600_000;

export interface ClockGuard {
  /** False until a check has passed, and after any check that failed. */
  readonly trusted: boolean;
  /** Compares the clock with a fresh NSM document's timestamp; returns the new `trusted`. */
  check(): Promise<boolean>;
}

/** `nowMs` is the enclave's own clock in milliseconds (Date.now in production). */
export function createClockGuard(nsm: Nsm, nowMs: () => number = Date.now): ClockGuard {
  let trusted = false;
  return {
    get trusted() {
      return trusted;
    },
    async check() {
      try {
        const document = await nsm.attestation({ nonce: null, publicKey: null, userData: null });
        const { timestamp } = decodeAttestationPayload(decodeCoseSign1(document).payload);
        trusted = Math.abs(nowMs() - timestamp) <= MAX_CLOCK_DRIFT_MS;
      } catch {
        // An NSM that cannot be read cannot vouch for the clock.
        trusted = false;
      }
      return trusted;
    },
  };
}
