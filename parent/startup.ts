// Why the parent could not start, or `keyset create` failed, as a closed set of codes with fixed
// one-line messages (issues #9, #10): main prints `parent: CODE: MESSAGE` and exits 1, never a stack trace. The messages name
// the setting at fault, never a path, an address or anything read from a file.

export type StartupErrorCode =
  | 'listen_address_in_use'
  | 'listen_permission_denied'
  | 'listen_address_unavailable'
  | 'listen_host_unknown'
  | 'listen_failed'
  | 'tls_unreadable'
  | 'tls_key_mismatch'
  | 'tls_invalid'
  | 'socat_missing'
  | 'keyset_missing'
  | 'keyset_unreadable'
  | 'keyset_invalid'
  | 'keyset_exists'
  | 'keyset_write_failed'
  | 'enclave_unavailable'
  | 'enclave_already_unlocked'
  | 'enclave_refused'
  | 'kms_unreachable'
  | 'kms_refused';

export const STARTUP_MESSAGES: Readonly<Record<StartupErrorCode, string>> = {
  listen_address_in_use: 'the address is already in use (another process listens on that port)',
  listen_permission_denied: 'permission denied (a port below 1024 needs CAP_NET_BIND_SERVICE)',
  listen_address_unavailable: 'the host is not an address of this machine',
  listen_host_unknown: 'the host name does not resolve',
  listen_failed: 'cannot listen on this address',
  tls_unreadable: 'cannot read --tls-cert or --tls-key',
  tls_key_mismatch: 'the TLS private key does not match the certificate',
  tls_invalid: 'the TLS certificate or key is not valid PEM',
  socat_missing: 'socat is not installed or not on PATH; vsock:CID:PORT needs it (dnf install socat)',
  keyset_missing: 'the --keyset file does not exist: create it once per deployment with `keyset create` (docs/parent.md)',
  keyset_unreadable: 'cannot read the --keyset file',
  keyset_invalid: 'the --keyset file is not a keyset (SPEC §9: v, kms_key_id, encryption_context, ciphertext_blob, m_commit)',
  keyset_exists: 'the --keyset file already exists; a deployment has one keyset, it is never replaced',
  keyset_write_failed: 'cannot write the --keyset file',
  enclave_unavailable: 'the enclave did not answer',
  enclave_already_unlocked: 'the enclave already holds a master secret; create the keyset with a freshly started enclave',
  enclave_refused: 'the enclave refused key_request or unlock',
  kms_unreachable: 'KMS did not answer (--kms-region, --kms-endpoint, network)',
  kms_refused: 'KMS refused the request (key id, key policy, PCR0, credentials)',
};

export type ListenSetting = '--listen' | '--metrics-listen';

export class StartupError extends Error {
  override readonly name = 'StartupError';
  constructor(
    readonly code: StartupErrorCode,
    readonly setting?: ListenSetting,
  ) {
    super(setting === undefined ? STARTUP_MESSAGES[code] : `${setting}: ${STARTUP_MESSAGES[code]}`);
  }
}

const LISTEN_CODES: Readonly<Record<string, StartupErrorCode>> = {
  EADDRINUSE: 'listen_address_in_use',
  EACCES: 'listen_permission_denied',
  EPERM: 'listen_permission_denied',
  EADDRNOTAVAIL: 'listen_address_unavailable',
  ENOTFOUND: 'listen_host_unknown',
  EAI_AGAIN: 'listen_host_unknown',
};

/** Classifies a failed `listen()` by its errno code only. */
export function listenError(error: unknown, setting: ListenSetting): StartupError {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return new StartupError((code !== undefined && LISTEN_CODES[code]) || 'listen_failed', setting);
}

/** Classifies a certificate/key pair that OpenSSL refused (createSecureContext). */
export function tlsError(error: unknown): StartupError {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return new StartupError(code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH' ? 'tls_key_mismatch' : 'tls_invalid');
}
