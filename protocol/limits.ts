// Sizes and lifetimes fixed by docs/spec.md (the contract; "SPEC §N" in comments means its section N); everything that checks a bound imports it from here.

/** SPEC §5: a frame holds 1..65536 bytes of CBOR after its 4-byte length. */
export const MAX_FRAME_BYTES = 65536;
export const FRAME_HEADER_BYTES = 4;

/** SPEC §5 `attest`: the client's nonce is 16..64 bytes. */
export const MIN_NONCE_BYTES = 16;
export const MAX_NONCE_BYTES = 64;

/** SPEC §2: clock skew allowed when verifying tokens, in seconds. */
export const CLOCK_SKEW_SECONDS = 60;
/** SPEC §2: an SRT may live at most 72 h (`exp - iat`), plus skew. */
export const MAX_SRT_LIFETIME_SECONDS = 72 * 3600;
/** SPEC §2: DAT lifetime, 3 days. */
export const DAT_LIFETIME_SECONDS = 259_200;
/** SPEC §2: DRT lifetime, 60 days. */
export const DRT_LIFETIME_SECONDS = 5_184_000;
/** SPEC §2: `sub` is 1..256 characters. */
export const MAX_SUBSCRIPTION_ID_CHARS = 256;
/** SPEC §7: default maximum age of an attestation document. */
export const DEFAULT_ATTESTATION_MAX_AGE_MS = 5 * 60 * 1000;

/** The wire protocol version of frames (SPEC §5). */
export const PROTOCOL_VERSION = 1;

/** SPEC §4: the version byte of a sealed request's header. */
export const SEALED_REQUEST_VERSION = 0x02;
/** SPEC §3: `key_id` = the first 8 bytes of SHA-256 of the boot key's SPKI. */
export const KEY_ID_BYTES = 8;
/** SPEC §3: m_commit = SHA-256("dip m commit v1" || M). */
export const M_COMMIT_BYTES = 32;
/** SPEC §3: M is 32 bytes (KMS GenerateDataKey, AES_256). */
export const MASTER_SECRET_BYTES = 32;
/** SPEC §3: signing keys change every 30-day epoch, e = floor(unix_seconds / 2592000). */
export const EPOCH_SECONDS = 2_592_000;
/** SPEC §3: the enclave's clock may differ from the NSM's attestation timestamps by at most 30 s. */
export const MAX_CLOCK_DRIFT_MS = 30_000;

/** SPEC §4: hdr = version(1) || key_id(8) || kem_id(2) || kdf_id(2) || aead_id(2) || op(1). */
export const SEALED_REQUEST_HEADER_BYTES = 16;
/** SPEC §4: a request shorter than hdr || enc (65) || tag (16) is `bad_request`. */
export const MIN_SEALED_REQUEST_BYTES = SEALED_REQUEST_HEADER_BYTES + 65 + 16;
/** SPEC §4: every request plaintext is padded to exactly this many bytes. */
export const REQUEST_PLAINTEXT_BYTES = 8192;
/** SPEC §4: every response plaintext is padded to exactly this many bytes. */
export const RESPONSE_PLAINTEXT_BYTES = 4096;
/** SPEC §4: the length of every sealed request: hdr || enc || padded plaintext || tag. */
export const SEALED_REQUEST_BYTES = MIN_SEALED_REQUEST_BYTES + REQUEST_PLAINTEXT_BYTES;

/** SPEC §4: `reservedUntil` is the DRT's `exp` rounded up to the next 00:00 UTC. */
export function reservedUntilOf(drtExp: number): number {
  return Math.ceil(drtExp / 86_400) * 86_400;
}
