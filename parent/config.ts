// The parent's configuration (SPEC §6; README "Parent proxy"): every setting is a flag and a
// DIP_PARENT_* environment variable; a flag wins over the environment. Invalid configuration
// stops startup with a message naming the setting, never echoing a secret (there are none here).

import { MAX_FRAME_BYTES } from '../protocol/limits.js';
import { parseEnclaveAddress, type EnclaveAddress } from './enclave-address.js';

/**
 * The largest --body-limit: every body the parent accepts must fit one frame (SPEC §5) once it
 * is CBOR. The worst case is a body that is almost all `ip` text (JSON text never becomes more
 * CBOR bytes than it had) sent with the largest `id`: about 26 bytes more than the body. 64
 * bytes of room covers it; test/body-limit checks the worst case at this exact limit.
 */
export const MAX_BODY_LIMIT = MAX_FRAME_BYTES - 64;

export interface ParentConfig {
  listen: { host: string; port: number };
  metricsListen: { host: string; port: number } | null;
  enclave: EnclaveAddress;
  tlsCert: string | null;
  tlsKey: string | null;
  allowPlainHttp: boolean;
  bodyLimit: number;
  timeoutMs: number;
  poolSize: number;
  pipelineDepth: number;
  queueLimit: number;
  attestationRate: number;
  attestationBurst: number;
  headerTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  shutdownGraceMs: number;
}

type Kind = 'address' | 'enclave' | 'path' | 'flag' | 'int' | 'rate';

interface OptionSpec {
  key: keyof ParentConfig;
  flag: string;
  kind: Kind;
  default: string | null;
  min?: number;
  max?: number;
  help: string;
}

/** The one list of settings: parsing, `--help` and the README table all follow it. */
export const OPTIONS: readonly OptionSpec[] = [
  { key: 'listen', flag: 'listen', kind: 'address', default: '127.0.0.1:8080', help: 'HOST:PORT to serve HTTP(S) on (IPv6 as [::1]:8080)' },
  { key: 'metricsListen', flag: 'metrics-listen', kind: 'address', default: null, help: 'HOST:PORT to serve GET /metrics on instead of --listen (plain HTTP; keep it private)' },
  { key: 'enclave', flag: 'enclave', kind: 'enclave', default: null, help: 'enclave address: unix:PATH, tcp:HOST:PORT or vsock:CID:PORT (required)' },
  { key: 'tlsCert', flag: 'tls-cert', kind: 'path', default: null, help: 'PEM certificate chain; with --tls-key serves HTTPS (reloaded on SIGHUP)' },
  { key: 'tlsKey', flag: 'tls-key', kind: 'path', default: null, help: 'PEM private key for --tls-cert' },
  { key: 'allowPlainHttp', flag: 'allow-plain-http', kind: 'flag', default: 'false', help: 'serve plain HTTP on a non-loopback address (behind a TLS-terminating load balancer)' },
  { key: 'bodyLimit', flag: 'body-limit', kind: 'int', default: '16384', min: 256, max: MAX_BODY_LIMIT, help: 'largest POST body in bytes; larger is 413 before it is read' },
  { key: 'timeoutMs', flag: 'timeout-ms', kind: 'int', default: '5000', min: 10, max: 600_000, help: 'per-request enclave deadline, queueing included (then 504)' },
  { key: 'poolSize', flag: 'pool-size', kind: 'int', default: '4', min: 1, max: 64, help: 'persistent connections to the enclave' },
  { key: 'pipelineDepth', flag: 'pipeline-depth', kind: 'int', default: '64', min: 1, max: 4096, help: 'requests in flight on one enclave connection' },
  { key: 'queueLimit', flag: 'queue-limit', kind: 'int', default: '1024', min: 0, max: 1_000_000, help: 'requests waiting for a connection; beyond it 503 at once' },
  { key: 'attestationRate', flag: 'attestation-rate', kind: 'rate', default: '10', help: 'GET /v1/attestation per second per client (token bucket refill)' },
  { key: 'attestationBurst', flag: 'attestation-burst', kind: 'int', default: '20', min: 1, max: 1_000_000, help: 'token bucket size per client' },
  { key: 'headerTimeoutMs', flag: 'header-timeout-ms', kind: 'int', default: '10000', min: 100, max: 600_000, help: 'a client must send all headers within this time' },
  { key: 'requestTimeoutMs', flag: 'request-timeout-ms', kind: 'int', default: '30000', min: 100, max: 600_000, help: 'a client must send the whole request within this time' },
  { key: 'keepAliveTimeoutMs', flag: 'keep-alive-timeout-ms', kind: 'int', default: '5000', min: 100, max: 600_000, help: 'idle keep-alive connections close after this time' },
  { key: 'shutdownGraceMs', flag: 'shutdown-grace-ms', kind: 'int', default: '10000', min: 0, max: 600_000, help: 'on SIGTERM/SIGINT, how long in-flight requests may finish' },
];

export function envName(option: OptionSpec): string {
  return `DIP_PARENT_${option.flag.toUpperCase().replaceAll('-', '_')}`;
}

/** A configuration mistake; main prints the message and exits 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function parseListen(text: string, name = '--listen'): { host: string; port: number } {
  const colon = text.lastIndexOf(':');
  let host = text.slice(0, colon);
  const portText = text.slice(colon + 1);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  else if (host.includes(':')) throw new ConfigError(`${name}: an IPv6 host must be in brackets, e.g. [::1]:8080`);
  if (colon < 0 || host.length === 0 || !/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw new ConfigError(`${name} must be HOST:PORT, e.g. 127.0.0.1:8080`);
  }
  return { host, port: Number(portText) };
}

/** True for addresses only this host can reach: 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function convert(option: OptionSpec, text: string): unknown {
  const name = `--${option.flag}`;
  switch (option.kind) {
    case 'address':
      return parseListen(text, name);
    case 'enclave':
      try {
        return parseEnclaveAddress(text);
      } catch (error) {
        throw new ConfigError(`${name}: ${(error as Error).message}`);
      }
    case 'path':
      if (text.length === 0) throw new ConfigError(`${name} needs a file path`);
      return text;
    case 'flag':
      if (/^(1|true|yes)$/i.test(text)) return true;
      if (/^(0|false|no|)$/i.test(text)) return false;
      throw new ConfigError(`${name} must be true or false`);
    case 'int': {
      const n = /^[0-9]{1,9}$/.test(text) ? Number(text) : NaN;
      if (!(n >= option.min! && n <= option.max!)) throw new ConfigError(`${name} must be an integer in ${option.min}..${option.max}`);
      return n;
    }
    case 'rate': {
      const n = /^[0-9]{1,7}(\.[0-9]{1,6})?$/.test(text) ? Number(text) : NaN;
      if (!(n > 0)) throw new ConfigError(`${name} must be a positive number`);
      return n;
    }
  }
}

/**
 * Builds the configuration from command-line arguments (without node and the script) and the
 * environment. Returns null when `--help` was asked for.
 */
export function parseConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ParentConfig | null {
  const given = new Map<OptionSpec, string>();
  for (const option of OPTIONS) {
    const value = env[envName(option)];
    if (value !== undefined) given.set(option, value);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return null;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') ? arg.slice(2, eq < 0 ? undefined : eq) : '';
    const option = OPTIONS.find((o) => o.flag === flag);
    if (option === undefined) throw new ConfigError(`unknown argument ${JSON.stringify(arg)}; see --help`);
    if (eq >= 0) given.set(option, arg.slice(eq + 1));
    else if (option.kind === 'flag') given.set(option, 'true');
    else if (i + 1 < argv.length) given.set(option, argv[++i]!);
    else throw new ConfigError(`--${flag} needs a value`);
  }
  const config: Record<string, unknown> = {};
  for (const option of OPTIONS) {
    const text = given.get(option) ?? option.default;
    if (text === null) {
      if (option.kind === 'enclave') throw new ConfigError(`--enclave (or ${envName(option)}) is required`);
      config[option.key] = null;
    } else {
      config[option.key] = convert(option, text);
    }
  }
  const result = config as unknown as ParentConfig;
  const metrics = result.metricsListen;
  if (metrics !== null && metrics.port !== 0 && metrics.port === result.listen.port && metrics.host === result.listen.host) {
    throw new ConfigError('--metrics-listen must differ from --listen');
  }
  if ((result.tlsCert === null) !== (result.tlsKey === null)) throw new ConfigError('--tls-cert and --tls-key go together');
  if (result.tlsCert === null && !result.allowPlainHttp && !isLoopbackHost(result.listen.host)) {
    throw new ConfigError('plain HTTP is served only on a loopback address: give --tls-cert and --tls-key, or --allow-plain-http behind a TLS-terminating load balancer');
  }
  return result;
}

export function usage(): string {
  const lines = ['usage: dip-parent --enclave ADDRESS [options]   (node dist/parent/parent.mjs, or node --import tsx parent/main.ts)', ''];
  for (const option of OPTIONS) {
    const value = option.kind === 'flag' ? '' : ' VALUE';
    const def = option.default === null || option.kind === 'flag' ? '' : ` (default ${option.default})`;
    lines.push(`  --${option.flag}${value}`.padEnd(30) + `${option.help}${def}  [${envName(option)}]`);
  }
  return `${lines.join('\n')}\n`;
}
