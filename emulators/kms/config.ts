// The KMS emulator's configuration (SPEC §8, §9; docs/kms-emulator.md): every setting is a flag
// and a DIP_KMS_* environment variable; a flag wins. It serves loopback only: it is a
// development double and holds a key in the clear.

import { join } from 'node:path';
import { ConfigError, isLoopbackHost, parseFlag, parseListen, parsePath, readOptionTexts } from '../../common/options.js';

export { ConfigError } from '../../common/options.js';

export interface KmsConfig {
  listen: { host: string; port: number };
  stateDir: string;
  /** PEM of the root recipient documents must chain to; default STATE_DIR/nsm-root.pem. */
  root: string;
  /** The PCR0 allow-list; default STATE_DIR/kms-pcr-policy.txt. */
  pcrPolicy: string;
  allowNoRecipient: boolean;
}

interface OptionSpec {
  key: keyof KmsConfig;
  flag: string;
  kind: 'address' | 'path' | 'flag';
  default: string | null;
  help: string;
}

/** The one list of settings: parsing, `--help` and docs/kms-emulator.md all follow it. */
export const OPTIONS: readonly OptionSpec[] = [
  { key: 'listen', flag: 'listen', kind: 'address', default: '127.0.0.1:8083', help: 'loopback HOST:PORT to serve the KMS JSON API on' },
  { key: 'stateDir', flag: 'state-dir', kind: 'path', default: '.dev', help: 'state directory; the key lives in STATE_DIR/kms-key.json (made on first start)' },
  { key: 'root', flag: 'root', kind: 'path', default: null, help: 'PEM root recipient documents must chain to (default STATE_DIR/nsm-root.pem)' },
  { key: 'pcrPolicy', flag: 'pcr-policy', kind: 'path', default: null, help: 'file of allowed PCR0 values, hex, one a line (default STATE_DIR/kms-pcr-policy.txt)' },
  { key: 'allowNoRecipient', flag: 'allow-no-recipient', kind: 'flag', default: 'false', help: 'answer requests without a Recipient with Plaintext (AWS: a key policy without the deny)' },
];

export function envName(option: OptionSpec): string {
  return `DIP_KMS_${option.flag.toUpperCase().replaceAll('-', '_')}`;
}

function convert(option: OptionSpec, text: string): unknown {
  const name = `--${option.flag}`;
  switch (option.kind) {
    case 'address': {
      const address = parseListen(text, name);
      if (!isLoopbackHost(address.host)) throw new ConfigError(`${name} must be a loopback address: the KMS emulator is for development only`);
      return address;
    }
    case 'path':
      return parsePath(text, name);
    case 'flag':
      return parseFlag(text, name);
  }
}

/** Builds the configuration from arguments (without node and the script) and the environment; null for --help. */
export function parseConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): KmsConfig | null {
  const given = readOptionTexts(OPTIONS, argv, env, envName);
  if (given === null) return null;
  const config: Record<string, unknown> = {};
  for (const option of OPTIONS) {
    const text = given.get(option) ?? option.default;
    config[option.key] = text === null ? null : convert(option, text);
  }
  const stateDir = config['stateDir'] as string;
  config['root'] ??= join(stateDir, 'nsm-root.pem');
  config['pcrPolicy'] ??= join(stateDir, 'kms-pcr-policy.txt');
  return config as unknown as KmsConfig;
}

export function usage(): string {
  const lines = [
    'usage: node --import tsx emulators/kms/main.ts [options]',
    '',
    'The development KMS emulator (docs/kms-emulator.md). Refused by production builds.',
    '',
  ];
  for (const option of OPTIONS) {
    const value = option.kind === 'flag' ? '' : ' VALUE';
    const def = option.default === null || option.kind === 'flag' ? '' : ` (default ${option.default})`;
    lines.push(`  --${option.flag}${value}`.padEnd(28) + `${option.help}${def}  [${envName(option)}]`);
  }
  lines.push('  -h, --help'.padEnd(28) + 'this text');
  return `${lines.join('\n')}\n`;
}
