// Shared by the untrusted services (parent/, issuer/, emulators/): one table of options per
// service, read from flags and environment the same way, and the listen-address rules. Untrusted
// code only: enclave/ never imports common/ (scripts/check-boundaries.ts).

/** A configuration mistake; a service's main prints the message and exits 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** What readOptionTexts needs of an option: its flag, whether it takes a value, whether it repeats. */
export interface OptionFlag {
  readonly flag: string;
  readonly kind: string;
  /** May be given more than once; in the environment, a comma-separated list. */
  readonly repeatable?: boolean;
}

/**
 * Every text each option was given, from the environment (`envName`; a repeatable option's value
 * split at commas) and then from `argv`: flags win, and a repeatable flag given N times replaces
 * the environment's list with its N values (`--flag VALUE` or `--flag=VALUE`; a `kind: 'flag'`
 * option alone means true; an option that does not repeat keeps its last value). Returns null for
 * --help or -h. An unknown argument or a missing value is a ConfigError.
 */
export function readOptionValues<O extends OptionFlag>(
  options: readonly O[],
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  envName: (option: O) => string,
): Map<O, string[]> | null {
  const given = new Map<O, string[]>();
  for (const option of options) {
    const value = env[envName(option)];
    if (value !== undefined) given.set(option, option.repeatable === true ? value.split(',').map((v) => v.trim()).filter((v) => v !== '') : [value]);
  }
  const fromFlags = new Set<O>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return null;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') ? arg.slice(2, eq < 0 ? undefined : eq) : '';
    const option = options.find((o) => o.flag === flag);
    if (option === undefined) throw new ConfigError(`unknown argument ${JSON.stringify(arg)}; see --help`);
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (option.kind === 'flag') value = 'true';
    else if (i + 1 < argv.length) value = argv[++i]!;
    else throw new ConfigError(`--${flag} needs a value`);
    const values = fromFlags.has(option) ? given.get(option)! : [];
    if (option.repeatable === true) values.push(value);
    else values.splice(0, values.length, value);
    given.set(option, values);
    fromFlags.add(option);
  }
  return given;
}

/** As readOptionValues, each option's last text: for services whose options never repeat. */
export function readOptionTexts<O extends OptionFlag>(
  options: readonly O[],
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  envName: (option: O) => string,
): Map<O, string> | null {
  const values = readOptionValues(options, argv, env, envName);
  if (values === null) return null;
  return new Map([...values].filter(([, texts]) => texts.length > 0).map(([option, texts]) => [option, texts[texts.length - 1]!]));
}

/** A path option's text: anything but empty. */
export function parsePath(text: string, name: string): string {
  if (text.length === 0) throw new ConfigError(`${name} needs a path`);
  return text;
}

/** A free-text option (an issuer name, a connection string): 1–2048 printable ASCII characters, no spaces. */
export function parsePrintableText(text: string, name: string): string {
  if (!/^[\x21-\x7e]{1,2048}$/.test(text)) throw new ConfigError(`${name} must be printable ASCII without spaces`);
  return text;
}

/** A boolean option's text: 1/true/yes or 0/false/no/empty, case-insensitive. */
export function parseFlag(text: string, name: string): boolean {
  if (/^(1|true|yes)$/i.test(text)) return true;
  if (/^(0|false|no|)$/i.test(text)) return false;
  throw new ConfigError(`${name} must be true or false`);
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
