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

/** The wire protocol version of frames (SPEC §5) and of the HPKE header (SPEC §4). */
export const PROTOCOL_VERSION = 1;
