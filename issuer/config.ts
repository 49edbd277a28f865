// The token issuer's configuration (SPEC §8, §10; docs/issuer.md): every setting is a flag and a
// DIP_ISSUER_* environment variable; a flag wins. Without --dev the key file and the trusted SRT
// issuer are required; with --dev they default to files in the state directory (SPEC §8).

import { join } from 'node:path';
import { ConfigError, isLoopbackHost, parseFlag, parseListen, parsePath, parsePrintableText, readOptionTexts } from '../common/options.js';

export { ConfigError } from '../common/options.js';

export type StoreChoice = { engine: 'embedded'; dataDir: string } | { engine: 'postgres'; connectionString: string; schema: string | null };

export interface IssuerConfig {
  listen: { host: string; port: number };
  allowPlainHttp: boolean;
  dev: boolean;
  stateDir: string;
  keyFile: string;
  /** Production trust: the JWKS file and the `iss` (and `aud`) an SRT must carry. */
  srtJwks: string | null;
  srtIssuer: string | null;
  srtAudience: string | null;
  /** Development trust: .dev/srt-issuer.json (SPEC §8). */
  devSrtIssuer: string | null;
  store: StoreChoice;
  issuerName: string;
  originInfo: string;
  requestPath: string;
  tokenKeysOut: string | null;
}

type Key = keyof IssuerConfig | 'dataDir' | 'databaseUrl' | 'databaseSchema';

interface OptionSpec {
  key: Key;
  flag: string;
  kind: 'address' | 'path' | 'flag' | 'text' | 'route';
  default: string | null;
  help: string;
}

/** The one list of settings: parsing, `--help` and docs/issuer.md all follow it. */
export const OPTIONS: readonly OptionSpec[] = [
  { key: 'listen', flag: 'listen', kind: 'address', default: '127.0.0.1:8082', help: 'HOST:PORT to serve HTTP on' },
  { key: 'allowPlainHttp', flag: 'allow-plain-http', kind: 'flag', default: 'false', help: 'serve on a non-loopback address (behind a TLS-terminating load balancer: SRTs must not travel in the clear)' },
  { key: 'dev', flag: 'dev', kind: 'flag', default: 'false', help: 'development: create the key file on first start, trust STATE_DIR/srt-issuer.json, write STATE_DIR/token-keys.json' },
  { key: 'stateDir', flag: 'state-dir', kind: 'path', default: '.dev', help: 'the development state directory (--dev only)' },
  { key: 'keyFile', flag: 'key-file', kind: 'path', default: null, help: 'the issuer key file, mode 0600 (required without --dev; default STATE_DIR/issuer-keys.json)' },
  { key: 'srtJwks', flag: 'srt-jwks', kind: 'path', default: null, help: 'JWKS of the trusted SRT issuer keys, as the enclave\'s (required without --dev)' },
  { key: 'srtIssuer', flag: 'srt-issuer', kind: 'text', default: null, help: 'the `iss` every SRT must carry (required without --dev)' },
  { key: 'srtAudience', flag: 'srt-audience', kind: 'text', default: null, help: 'the audience an SRT\'s `aud` must contain (default: none checked)' },
  { key: 'devSrtIssuer', flag: 'dev-srt-issuer', kind: 'path', default: null, help: 'the development SRT issuer (--dev; default STATE_DIR/srt-issuer.json)' },
  { key: 'dataDir', flag: 'data-dir', kind: 'path', default: null, help: 'directory of the embedded database (default STATE_DIR/issuer-db)' },
  { key: 'databaseUrl', flag: 'database-url', kind: 'text', default: null, help: 'PostgreSQL connection string: several issuers share one database (instead of --data-dir)' },
  { key: 'databaseSchema', flag: 'database-schema', kind: 'text', default: null, help: 'PostgreSQL schema to use (default: the connection\'s search_path)' },
  { key: 'issuerName', flag: 'issuer-name', kind: 'text', default: '127.0.0.1:8082', help: 'the issuer\'s host name, as in the challenge (RFC 9577 §2.1)' },
  { key: 'originInfo', flag: 'origin-info', kind: 'text', default: '127.0.0.1:8081', help: 'the DIP service\'s host name, written to token-keys.json' },
  { key: 'requestPath', flag: 'request-path', kind: 'route', default: '/token-request', help: 'the path of issuer-request-uri' },
  { key: 'tokenKeysOut', flag: 'token-keys-out', kind: 'path', default: null, help: 'write the pinned keys there as token-keys.json (SPEC §8; --dev default STATE_DIR/token-keys.json)' },
];

export function envName(option: OptionSpec): string {
  return `DIP_ISSUER_${option.flag.toUpperCase().replaceAll('-', '_')}`;
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
    case 'route':
      if (!/^\/[A-Za-z0-9._~/-]{0,255}$/.test(text) || text.startsWith('/.well-known/')) throw new ConfigError(`${name} must be a path such as /token-request`);
      return text;
    case 'flag':
      return parseFlag(text, name);
  }
}

/** Builds the configuration from arguments (without node and the script) and the environment; null for --help. */
export function parseConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): IssuerConfig | null {
  const given = readOptionTexts(OPTIONS, argv, env, envName);
  if (given === null) return null;
  const v: Record<string, unknown> = {};
  for (const option of OPTIONS) {
    const text = given.get(option) ?? option.default;
    v[option.key] = text === null ? null : convert(option, text);
  }
  const dev = v.dev as boolean;
  const stateDir = v.stateDir as string;
  const listen = v.listen as IssuerConfig['listen'];
  if (!isLoopbackHost(listen.host) && v.allowPlainHttp !== true) {
    throw new ConfigError('--listen on a non-loopback address needs --allow-plain-http (and a TLS-terminating load balancer in front)');
  }
  if (!dev && (v.keyFile === null || v.srtJwks === null || v.srtIssuer === null)) {
    throw new ConfigError('without --dev, --key-file, --srt-jwks and --srt-issuer are required');
  }
  if (v.databaseUrl === null && v.databaseSchema !== null) throw new ConfigError('--database-schema needs --database-url');
  const store: StoreChoice = v.databaseUrl !== null
    ? { engine: 'postgres', connectionString: v.databaseUrl as string, schema: v.databaseSchema as string | null }
    : { engine: 'embedded', dataDir: (v.dataDir as string | null) ?? join(stateDir, 'issuer-db') };
  return {
    listen,
    allowPlainHttp: v.allowPlainHttp as boolean,
    dev,
    stateDir,
    keyFile: (v.keyFile as string | null) ?? join(stateDir, 'issuer-keys.json'),
    srtJwks: v.srtJwks as string | null,
    srtIssuer: v.srtIssuer as string | null,
    srtAudience: v.srtAudience as string | null,
    devSrtIssuer: dev && v.srtJwks === null ? ((v.devSrtIssuer as string | null) ?? join(stateDir, 'srt-issuer.json')) : null,
    store,
    issuerName: v.issuerName as string,
    originInfo: v.originInfo as string,
    requestPath: v.requestPath as string,
    tokenKeysOut: (v.tokenKeysOut as string | null) ?? (dev ? join(stateDir, 'token-keys.json') : null),
  };
}

export function usage(): string {
  const lines = ['usage: node --import tsx issuer/main.ts [options]', '', 'The Privacy Pass token issuer (SPEC §10; docs/issuer.md).', ''];
  for (const option of OPTIONS) {
    const value = option.kind === 'flag' ? '' : ' VALUE';
    const def = option.default === null || option.kind === 'flag' ? '' : ` (default ${option.default})`;
    lines.push(`  --${option.flag}${value}`.padEnd(28) + `${option.help}${def}  [${envName(option)}]`);
  }
  lines.push('  -h, --help'.padEnd(28) + 'this text');
  return `${lines.join('\n')}\n`;
}
