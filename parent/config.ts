// The parent's configuration (SPEC §6, §9; docs/parent.md): every setting of both commands, the
// proxy and `keyset create`, is a flag and a DIP_PARENT_* environment variable; a flag wins over
// the environment. Invalid configuration stops with a message naming the setting (none is secret).

import { ConfigError, isLoopbackHost, parseFlag, parseListen } from '../common/options.js';
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
  /** Every enclave this parent fronts (SPEC §6): --enclave is repeatable. */
  enclaves: EnclaveAddress[];
  /** The keyset file of SPEC §9: required, the proxy never creates one. */
  keyset: string;
  /** null: the SDK's default (AWS_REGION, the profile, the instance's metadata). */
  kmsRegion: string | null;
  kmsEndpoint: string | null;
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

/** `keyset create` (SPEC §9): one enclave, the KMS key and the deployment name, the file to write. */
export interface KeysetCreateConfig {
  enclave: EnclaveAddress;
  keyset: string;
  kmsKeyId: string;
  deployment: string;
  kmsRegion: string | null;
  kmsEndpoint: string | null;
}

type Kind = 'address' | 'enclave' | 'path' | 'flag' | 'int' | 'rate' | 'text' | 'url';
/** Which command reads a setting; the other refuses it as a flag and ignores its variable. */
type Scope = 'serve' | 'keyset' | 'both';

interface OptionSpec {
  key: keyof ParentConfig | keyof KeysetCreateConfig;
  flag: string;
  kind: Kind;
  default: string | null;
  scope?: Scope;
  required?: boolean;
  min?: number;
  max?: number;
  help: string;
}

/** The one list of settings: parsing, `--help` and the README table all follow it. */
export const OPTIONS: readonly OptionSpec[] = [
  { key: 'listen', flag: 'listen', kind: 'address', default: '127.0.0.1:8080', help: 'HOST:PORT to serve HTTP(S) on (IPv6 as [::1]:8080)' },
  { key: 'metricsListen', flag: 'metrics-listen', kind: 'address', default: null, help: 'HOST:PORT to serve GET /metrics on instead of --listen (plain HTTP; keep it private)' },
  { key: 'enclaves', flag: 'enclave', kind: 'enclave', default: null, scope: 'both', required: true, help: 'enclave address: unix:PATH, tcp:HOST:PORT or vsock:CID:PORT (required; repeat it, or separate by commas in the variable, for several)' },
  { key: 'keyset', flag: 'keyset', kind: 'path', default: null, scope: 'both', required: true, help: 'the keyset file (SPEC §9; required): read by the proxy, written once by `keyset create`' },
  { key: 'kmsRegion', flag: 'kms-region', kind: 'text', default: null, scope: 'both', help: 'AWS region of the KMS key (default: the SDK\'s, e.g. AWS_REGION)' },
  { key: 'kmsEndpoint', flag: 'kms-endpoint', kind: 'url', default: null, scope: 'both', help: 'KMS endpoint URL instead of AWS\'s (the development KMS emulator)' },
  { key: 'kmsKeyId', flag: 'kms-key-id', kind: 'text', default: null, scope: 'keyset', required: true, help: '`keyset create`: the KMS key id or ARN (required there)' },
  { key: 'deployment', flag: 'deployment', kind: 'text', default: null, scope: 'keyset', required: true, help: '`keyset create`: the deployment name, KMS encryption context dip:deployment (required there)' },
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

export { ConfigError, isLoopbackHost, parseListen } from '../common/options.js';

function convert(option: OptionSpec, text: string): unknown {
  const name = `--${option.flag}`;
  switch (option.kind) {
    case 'address':
      return parseListen(text, name);
    case 'enclave':
      try {
        return text.split('\n').map((one) => parseEnclaveAddress(one));
      } catch (error) {
        throw new ConfigError(`${name}: ${(error as Error).message}`);
      }
    case 'path':
      if (text.length === 0) throw new ConfigError(`${name} needs a file path`);
      return text;
    case 'text':
      if (!/^[\x21-\x7e]{1,256}$/.test(text)) throw new ConfigError(`${name} must be 1..256 printable ASCII characters without spaces`);
      return text;
    case 'url':
      if (!/^https?:\/\/[^\s]+$/.test(text) || !URL.canParse(text)) throw new ConfigError(`${name} must be an http:// or https:// URL`);
      return text;
    case 'flag':
      return parseFlag(text, name);
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

type Command = 'serve' | 'keyset';

const inScope = (option: OptionSpec, command: Command): boolean => (option.scope ?? 'serve') === 'both' || (option.scope ?? 'serve') === command;

/**
 * Reads every option of `command` from arguments and environment. Several --enclave flags (or
 * comma-separated addresses in the variable) are joined with newlines, which no address holds.
 */
function readOptions(command: Command, argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Record<string, unknown> | null {
  const given = new Map<OptionSpec, string>();
  const flagged = new Set<OptionSpec>();
  for (const option of OPTIONS) {
    const value = env[envName(option)];
    if (value !== undefined && inScope(option, command)) given.set(option, option.kind === 'enclave' ? value.split(',').join('\n') : value);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return null;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') ? arg.slice(2, eq < 0 ? undefined : eq) : '';
    const option = OPTIONS.find((o) => o.flag === flag);
    if (option === undefined) throw new ConfigError(`unknown argument ${JSON.stringify(arg)}; see --help`);
    if (!inScope(option, command)) throw new ConfigError(`--${flag} is a setting of ${command === 'serve' ? '`keyset create`' : 'the proxy'}, not of this command`);
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (option.kind === 'flag') value = 'true';
    else if (i + 1 < argv.length) value = argv[++i]!;
    else throw new ConfigError(`--${flag} needs a value`);
    // A repeated --enclave adds an enclave; any other repeated flag takes its last value.
    if (option.kind === 'enclave' && flagged.has(option)) value = `${given.get(option)}\n${value}`;
    given.set(option, value);
    flagged.add(option);
  }
  const config: Record<string, unknown> = {};
  for (const option of OPTIONS) {
    if (!inScope(option, command)) continue;
    const text = given.get(option) ?? option.default;
    if (text === null) {
      if (option.required === true) throw new ConfigError(`--${option.flag} (or ${envName(option)}) is required`);
      config[option.key] = null;
    } else {
      config[option.key] = convert(option, text);
    }
  }
  return config;
}

/**
 * Builds the proxy's configuration from command-line arguments (without node and the script)
 * and the environment. Returns null when `--help` was asked for.
 */
export function parseConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ParentConfig | null {
  const config = readOptions('serve', argv, env);
  if (config === null) return null;
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

/** The configuration of `keyset create` (arguments after the two words); null for --help. */
export function parseKeysetCreateConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): KeysetCreateConfig | null {
  const config = readOptions('keyset', argv, env);
  if (config === null) return null;
  const enclaves = config['enclaves'] as EnclaveAddress[];
  // Two enclaves could answer with two different secrets: the keyset is made with exactly one.
  if (enclaves.length !== 1) throw new ConfigError('keyset create takes exactly one --enclave');
  const { enclaves: _all, ...rest } = config;
  return { ...rest, enclave: enclaves[0]! } as unknown as KeysetCreateConfig;
}

export function usage(): string {
  const lines = [
    'usage: dip-parent --enclave ADDRESS --keyset FILE [options]   (node dist/parent/parent.mjs, or node --import tsx parent/main.ts)',
    '       dip-parent keyset create --enclave ADDRESS --keyset FILE --kms-key-id ID --deployment NAME [--kms-region R] [--kms-endpoint URL]',
    '',
  ];
  for (const option of OPTIONS) {
    const value = option.kind === 'flag' ? '' : ' VALUE';
    const def = option.default === null || option.kind === 'flag' ? '' : ` (default ${option.default})`;
    lines.push(`  --${option.flag}${value}`.padEnd(30) + `${option.help}${def}  [${envName(option)}]`);
  }
  return `${lines.join('\n')}\n`;
}
