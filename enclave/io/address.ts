// Listen addresses of the enclave's socket server (SPEC §5: VSOCK in production, reached through
// a bridge to a Unix socket; a Unix or TCP socket in development). The same two forms serve
// the parent's `--enclave` flag and the tests: `unix:PATH` and `tcp:HOST:PORT`.

export type ListenAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** An operator's mistake in a listen address; startup reports it and stops. */
export class ListenAddressError extends Error {
  override readonly name = 'ListenAddressError';
}

const USAGE = 'expected unix:PATH or tcp:HOST:PORT (e.g. unix:/run/dip/enclave.sock or tcp:127.0.0.1:7000)';

// A Unix socket path must fit sockaddr_un.sun_path (108 bytes on Linux, including the NUL).
const MAX_UNIX_PATH_BYTES = 107;

/** Parses `unix:PATH` or `tcp:HOST:PORT` (IPv6 hosts in brackets: `tcp:[::1]:7000`). */
export function parseListenAddress(text: string): ListenAddress {
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (path.length === 0) throw new ListenAddressError(`listen address has an empty path; ${USAGE}`);
    if (path.includes('\0')) throw new ListenAddressError(`listen address path contains a NUL byte; ${USAGE}`);
    if (Buffer.byteLength(path) > MAX_UNIX_PATH_BYTES) {
      throw new ListenAddressError(`Unix socket path is longer than ${MAX_UNIX_PATH_BYTES} bytes`);
    }
    return { kind: 'unix', path };
  }
  if (text.startsWith('tcp:')) {
    const rest = text.slice('tcp:'.length);
    const colon = rest.lastIndexOf(':');
    if (colon < 0) throw new ListenAddressError(`listen address has no port; ${USAGE}`);
    let host = rest.slice(0, colon);
    const portText = rest.slice(colon + 1);
    if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
    else if (host.includes(':')) throw new ListenAddressError(`an IPv6 host must be in brackets; ${USAGE}`);
    if (host.length === 0) throw new ListenAddressError(`listen address has an empty host; ${USAGE}`);
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) {
      throw new ListenAddressError(`listen address port must be 0..65535; ${USAGE}`);
    }
    return { kind: 'tcp', host, port: Number(portText) };
  }
  throw new ListenAddressError(`unsupported listen address; ${USAGE}`);
}

/** The inverse of parseListenAddress. */
export function formatListenAddress(address: ListenAddress): string {
  if (address.kind === 'unix') return `unix:${address.path}`;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `tcp:${host}:${address.port}`;
}
