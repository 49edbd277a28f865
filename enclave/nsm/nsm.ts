// The enclave's view of the Nitro Security Module: the one interface behind which the real
// device (/dev/nsm, see device.ts) and the development emulator (emulator.ts) both sit.
// Core code depends on this file only, so it never knows which one it is talking to.

export interface AttestationRequest {
  /** Bound into the document's `user_data` (SPEC §3: CBOR `{"v": 1, "jwks_sha256": bstr}`). */
  userData: Uint8Array | null;
  /** The client's nonce, 16..64 bytes (SPEC §5). */
  nonce: Uint8Array | null;
  /** The boot key, SubjectPublicKeyInfo DER (SPEC §3). */
  publicKey: Uint8Array | null;
}

export interface Nsm {
  /** Returns a COSE_Sign1 attestation document (SPEC §7) for the request. */
  attestation(request: AttestationRequest): Promise<Uint8Array>;
  /** Releases the device or emulator resources. */
  close(): Promise<void>;
}
