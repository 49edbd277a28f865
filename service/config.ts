// The DIP service's configuration (SPEC §11; docs/service.md): every setting is a flag and a
// DIP_SERVICE_* environment variable; a flag wins. Repeatable flags (--parent, --range, --exclude)
// are comma-separated lists in the environment. A bad value is a ConfigError naming its flag.

import { ConfigError, isLoopbackHost, parseFlag, parseListen, parsePath, parsePrintableText, readOptionValues } from '../common/options.js';
import { MAX_RANGE_ADDRESSES } from '../store/ip-range.js';
import { parseCidr } from './cidr.js';

export { ConfigError } from '../common/options.js';

export type StoreChoice = { engine: 'embedded'; dataDir: string } | { engine: 'postgres'; connectionString: string; schema: string | null };

export interface ServiceConfig {
  listen: { host: string; port: number };
  allowPlainHttp: boolean;
  /** Base URLs of the parents (SPEC §6), at least one. */
  parents: URL[];
  tokenKeys: string;
  store: StoreChoice;
  ranges: string[];
  excludes: string[];
  quarantineDays: number;
  parentTimeoutMs: number;
  pollIntervalMs: number;
  bodyLimit: number;
  /** Loopback only; null when the operator routes are off. */
  maxConnections: number;
  adminListen: { host: string; port: number } | null;
  /** POST /admin/expire may run as of a later day (development and demos only). */
  acceleratedClock: boolean;
}

type Key = keyof ServiceConfig | 'dataDir' | 'databaseUrl' | 'databaseSchema';

interface OptionSpec {
  key: Key;
  flag: string;
  kind: 'address' | 'path' | 'flag' | 'text' | 'url' | 'cidr' | 'int';
  default: string | null;
  repeatable?: boolean;
  min?: number;
  max?: number;
  help: string;
}

/**
 * The smallest --body-limit: an assign or refresh body carrying a padded sealed request (SPEC §4:
 * 8,289 bytes, 11,052 in base64url) with its IP and JSON around it fits with room to spare.
 */
export const MIN_BODY_LIMIT = 12_288;

/** The one list of settings: parsing, `--help` and docs/service.md all follow it. */
export const OPTIONS: readonly OptionSpec[] = [
  { key: 'listen', flag: 'listen', kind: 'address', default: '127.0.0.1:8081', help: 'HOST:PORT to serve the app routes on' },
  { key: 'allowPlainHttp', flag: 'allow-plain-http', kind: 'flag', default: 'false', help: 'serve on a non-loopback address (behind a TLS-terminating load balancer: tokens must not travel in the clear)' },
  { key: 'parents', flag: 'parent', kind: 'url', default: null, repeatable: true, help: 'base URL of a parent (SPEC §6), e.g. http://127.0.0.1:8080; repeat for several (at least one)' },
  { key: 'tokenKeys', flag: 'token-keys', kind: 'path', default: null, help: 'the pinned issuer keys, token-keys.json (SPEC §8, every key with its not-before; required)' },
  { key: 'dataDir', flag: 'store', kind: 'path', default: '.dev/service-db', help: 'directory of the embedded database (one instance)' },
  { key: 'databaseUrl', flag: 'database-url', kind: 'text', default: null, help: 'PostgreSQL connection string: several instances share one pool (instead of --store)' },
  { key: 'databaseSchema', flag: 'database-schema', kind: 'text', default: null, help: 'PostgreSQL schema to use (default: the connection\'s search_path)' },
  { key: 'ranges', flag: 'range', kind: 'cidr', default: null, repeatable: true, help: `a CIDR range for the pool, added at start-up when absent (at most ${MAX_RANGE_ADDRESSES} addresses each); repeat for several` },
  { key: 'excludes', flag: 'exclude', kind: 'cidr', default: null, repeatable: true, help: 'a CIDR block left out of the ranges added; repeat for several' },
  { key: 'quarantineDays', flag: 'quarantine-days', kind: 'int', default: '7', min: 0, max: 365, help: 'days an expired reservation waits before its IP is free again' },
  { key: 'parentTimeoutMs', flag: 'parent-timeout-ms', kind: 'int', default: '10000', min: 100, max: 600_000, help: 'how long a parent may take to answer, in ms (then 504 enclave_timeout)' },
  { key: 'pollIntervalMs', flag: 'poll-interval-ms', kind: 'int', default: '5000', min: 500, max: 600_000, help: 'how often every parent\'s GET /v1/enclaves is read, in ms (also at once, at most once a second, for an unknown key_id)' },
  { key: 'bodyLimit', flag: 'body-limit', kind: 'int', default: '16384', min: MIN_BODY_LIMIT, max: 1_048_576, help: 'largest assign or refresh body in bytes; larger is 413 before it is read' },
  { key: 'maxConnections', flag: 'max-connections', kind: 'int', default: '4096', min: 1, max: 1_000_000, help: 'most app connections open at once; more are closed on arrival' },
  { key: 'adminListen', flag: 'admin-listen', kind: 'address', default: null, help: 'loopback HOST:PORT for the operator routes (/admin/…), /readyz with pool figures and /metrics; off unless given' },
  { key: 'acceleratedClock', flag: 'accelerated-clock', kind: 'flag', default: 'false', help: 'let POST /admin/expire run as of a later day (development and demos only: it ends reservations and quarantines early)' },
];

export function envName(option: OptionSpec): string {
  return `DIP_SERVICE_${option.flag.toUpperCase().replaceAll('-', '_')}`;
}

function parseParentUrl(text: string, name: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`${name} must be a URL such as http://127.0.0.1:8080`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '' || url.pathname !== '/') {
    throw new ConfigError(`${name} must be an http(s) URL without path, query or credentials, such as http://127.0.0.1:8080`);
  }
  return url;
}

function convert(option: OptionSpec, text: string): unknown {
  const name = `--${option.flag}`;
  switch (option.kind) {
    case 'address':
      return parseListen(text, name);
    case 'path':
      return parsePath(text, name);
    case 'text':
      return parsePrintableText(text, name);
    case 'url':
      return parseParentUrl(text, name);
    case 'cidr': {
      const cidr = parseCidr(text);
      if (cidr === null) throw new ConfigError(`${name} must be a CIDR block in canonical form with its host bits zero, e.g. 192.0.2.0/24 or 2001:db8::/112`);
      if (option.key === 'ranges' && cidr.size > MAX_RANGE_ADDRESSES) throw new ConfigError(`${name} may hold at most ${MAX_RANGE_ADDRESSES} addresses (an IPv4 /16, an IPv6 /112)`);
      return cidr.text;
    }
    case 'int': {
      const value = /^(0|[1-9]\d{0,9})$/.test(text) ? Number(text) : NaN;
      if (!(value >= option.min! && value <= option.max!)) throw new ConfigError(`${name} must be a whole number from ${option.min} to ${option.max}`);
      return value;
    }
    case 'flag':
      return parseFlag(text, name);
  }
}

/** Builds the configuration from arguments (without node and the script) and the environment; null for --help. */
export function parseConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ServiceConfig | null {
  const given = readOptionValues(OPTIONS, argv, env, envName);
  if (given === null) return null;
  const v: Record<string, unknown> = {};
  for (const option of OPTIONS) {
    const texts = given.get(option) ?? (option.default === null ? [] : [option.default]);
    const values = texts.map((text) => convert(option, text));
    v[option.key] = option.repeatable === true ? values : (values[values.length - 1] ?? null);
  }
  const listen = v.listen as ServiceConfig['listen'];
  if (!isLoopbackHost(listen.host) && v.allowPlainHttp !== true) {
    throw new ConfigError('--listen on a non-loopback address needs --allow-plain-http (and a TLS-terminating load balancer in front)');
  }
  const adminListen = v.adminListen as ServiceConfig['adminListen'];
  if (adminListen !== null && !isLoopbackHost(adminListen.host)) {
    throw new ConfigError('--admin-listen must be a loopback address: the operator routes change the pool and have no authentication');
  }
  if ((v.parents as URL[]).length === 0) throw new ConfigError('--parent is required (at least one)');
  if (v.tokenKeys === null) throw new ConfigError('--token-keys is required');
  if ((v.excludes as string[]).length > 0 && (v.ranges as string[]).length === 0) throw new ConfigError('--exclude applies to --range: give the ranges it leaves out of');
  if (v.databaseUrl === null && v.databaseSchema !== null) throw new ConfigError('--database-schema needs --database-url');
  if (v.databaseUrl !== null && !/^postgres(ql)?:\/\//.test(v.databaseUrl as string)) throw new ConfigError('--database-url must be postgres://… or postgresql://…');
  if (v.databaseUrl !== null && given.has(OPTIONS.find((o) => o.key === 'dataDir')!)) throw new ConfigError('give --store or --database-url, not both');
  if (v.databaseSchema !== null && !/^[a-z_][a-z0-9_]{0,62}$/.test(v.databaseSchema as string)) throw new ConfigError('--database-schema must be a lower-case SQL identifier');
  const store: StoreChoice = v.databaseUrl !== null
    ? { engine: 'postgres', connectionString: v.databaseUrl as string, schema: v.databaseSchema as string | null }
    : { engine: 'embedded', dataDir: v.dataDir as string };
  return {
    listen,
    allowPlainHttp: v.allowPlainHttp as boolean,
    parents: v.parents as URL[],
    tokenKeys: v.tokenKeys as string,
    store,
    ranges: v.ranges as string[],
    excludes: v.excludes as string[],
    quarantineDays: v.quarantineDays as number,
    parentTimeoutMs: v.parentTimeoutMs as number,
    pollIntervalMs: v.pollIntervalMs as number,
    bodyLimit: v.bodyLimit as number,
    maxConnections: v.maxConnections as number,
    adminListen,
    acceleratedClock: v.acceleratedClock as boolean,
  };
}

export function usage(): string {
  const lines = [
    'usage: node --import tsx service/main.ts [options]',
    '       node --import tsx service/main.ts ranges add|drain|remove|list --admin URL …   (see ranges --help)',
    '',
    'The Dedicated IP service (SPEC §11; docs/service.md).',
    '',
  ];
  for (const option of OPTIONS) {
    const value = option.kind === 'flag' ? '' : ' VALUE';
    const def = option.default === null || option.kind === 'flag' ? '' : ` (default ${option.default})`;
    lines.push(`  --${option.flag}${value}`.padEnd(30) + `${option.help}${def}  [${envName(option)}]`);
  }
  lines.push('  -h, --help'.padEnd(30) + 'this text');
  return `${lines.join('\n')}\n`;
}
