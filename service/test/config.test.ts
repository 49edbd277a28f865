// The service's settings (docs/service.md): defaults, every flag at its boundaries, DIP_SERVICE_*
// variables with flags winning, repeatable flags, the admin listener on loopback only, and the docs
// listing every flag. Also the CIDR rule the flags use and token-keys.json as the service reads it.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { encodePaddedBase64url } from '../../protocol/privacypass-http.js';
import { parseCidr } from '../cidr.js';
import { ConfigError, envName, MIN_BODY_LIMIT, OPTIONS, parseConfig, usage } from '../config.js';
import { challengeHeader, keyState, KEY_LIFETIME_SECONDS, parseTokenKeys, TokenKeysError } from '../token-keys.js';
import { createIssuerKey, NOW, tokenKeysJson } from './support.js';

const REQUIRED = ['--parent', 'http://127.0.0.1:8080', '--token-keys', 'k.json'];

test('defaults: 127.0.0.1:8081, the embedded store in .dev/service-db, 7 days of quarantine, 10 s parent timeout, no admin listener', () => {
  const config = parseConfig(REQUIRED, {})!;
  assert.deepEqual(config.listen, { host: '127.0.0.1', port: 8081 }, 'SPEC §8: 127.0.0.1:8081');
  assert.deepEqual(config.store, { engine: 'embedded', dataDir: '.dev/service-db' }, 'embedded by default');
  assert.equal(config.quarantineDays, 7, 'quarantine');
  assert.equal(config.parentTimeoutMs, 10_000, 'parent timeout');
  assert.equal(config.pollIntervalMs, 5000, 'poll interval');
  assert.equal(config.bodyLimit, 16_384, 'body limit');
  assert.equal(config.adminListen, null, 'admin off');
  assert.deepEqual(config.parents.map(String), ['http://127.0.0.1:8080/'], 'one parent');
  assert.deepEqual([config.ranges, config.excludes], [[], []], 'no ranges');
});

test('--parent is required and repeatable; --token-keys is required', () => {
  assert.throws(() => parseConfig(['--token-keys', 'k'], {}), /--parent is required/, 'no parent');
  assert.throws(() => parseConfig(['--parent', 'http://a:1'], {}), /--token-keys is required/, 'no token keys');
  const config = parseConfig([...REQUIRED, '--parent', 'https://[::1]:8443'], {})!;
  assert.deepEqual(config.parents.map(String), ['http://127.0.0.1:8080/', 'https://[::1]:8443/'], 'two parents in order');
  for (const bad of ['127.0.0.1:8080', 'ftp://h', 'http://h/path', 'http://u:p@h', 'http://h?x', 'http://h#x', 'http://']) {
    assert.throws(() => parseConfig(['--token-keys', 'k', '--parent', bad], {}), (e: unknown) => e instanceof ConfigError && e.message.startsWith('--parent'), bad);
  }
});

test('DIP_SERVICE_* variables set values, lists are comma-separated, and flags win', () => {
  const env = { DIP_SERVICE_PARENT: 'http://a:1,http://b:2', DIP_SERVICE_TOKEN_KEYS: 'k', DIP_SERVICE_QUARANTINE_DAYS: '3', DIP_SERVICE_RANGE: '192.0.2.0/24' };
  const config = parseConfig(['--quarantine-days', '4'], env)!;
  assert.deepEqual(config.parents.map((u) => u.host), ['a:1', 'b:2'], 'the list from the environment');
  assert.equal(config.quarantineDays, 4, 'the flag wins');
  assert.deepEqual(config.ranges, ['192.0.2.0/24'], 'a range from the environment');
  assert.deepEqual(parseConfig(['--parent', 'http://c:3'], env)!.parents.map((u) => u.host), ['c:3'], 'flags replace the list');
  assert.equal(parseConfig(['-h'], {}), null, '-h asks for help');
});

test('integer flags at their exact boundaries', () => {
  const cases: Array<[string, number, number]> = [
    ['--quarantine-days', 0, 365],
    ['--parent-timeout-ms', 100, 600_000],
    ['--poll-interval-ms', 500, 600_000],
    ['--body-limit', MIN_BODY_LIMIT, 1_048_576],
    ['--max-connections', 1, 1_000_000],
  ];
  for (const [flag, min, max] of cases) {
    const key = OPTIONS.find((o) => `--${o.flag}` === flag)!.key as 'quarantineDays' | 'parentTimeoutMs' | 'pollIntervalMs' | 'bodyLimit' | 'maxConnections';
    assert.equal(parseConfig([...REQUIRED, flag, String(min)], {})![key], min, `${flag} ${min}`);
    assert.equal(parseConfig([...REQUIRED, flag, String(max)], {})![key], max, `${flag} ${max}`);
    for (const bad of [String(min - 1), String(max + 1), '1.5', '07', '', 'x']) {
      if (bad === String(min - 1) && min === 0) continue;
      assert.throws(() => parseConfig([...REQUIRED, flag, bad], {}), (e: unknown) => e instanceof ConfigError && e.message.startsWith(flag), `${flag} ${bad}`);
    }
  }
  assert.throws(() => parseConfig([...REQUIRED, '--quarantine-days', '-1'], {}), ConfigError, '--quarantine-days -1');
});

test('--range and --exclude take canonical CIDR blocks; a range holds at most 65,536 addresses; --exclude needs a range', () => {
  const config = parseConfig([...REQUIRED, '--range', '192.0.2.0/24', '--range', '2001:db8::/112', '--exclude', '192.0.2.0/32', '--exclude', '10.0.0.0/8'], {})!;
  assert.deepEqual(config.ranges, ['192.0.2.0/24', '2001:db8::/112'], 'ranges');
  assert.deepEqual(config.excludes, ['192.0.2.0/32', '10.0.0.0/8'], 'an exclusion may be any size');
  assert.equal(parseConfig([...REQUIRED, '--range', '10.0.0.0/16'], {})!.ranges[0], '10.0.0.0/16', 'an IPv4 /16 is exactly the limit');
  for (const bad of ['10.0.0.0/15', '2001:db8::/111', '192.0.2.1/24', '192.0.2.0', '2001:DB8::/112', '2001:db8:0::/112', '192.0.2.0/33', '192.0.2.0/024']) {
    assert.throws(() => parseConfig([...REQUIRED, '--range', bad], {}), (e: unknown) => e instanceof ConfigError && e.message.startsWith('--range'), bad);
  }
  assert.throws(() => parseConfig([...REQUIRED, '--exclude', '192.0.2.0/32'], {}), /--exclude applies to --range/, 'an exclusion alone');
});

test('listeners: a public --listen needs --allow-plain-http; --admin-listen must be loopback', () => {
  assert.throws(() => parseConfig([...REQUIRED, '--listen', '0.0.0.0:8081'], {}), /--allow-plain-http/, 'public');
  assert.equal(parseConfig([...REQUIRED, '--listen', '0.0.0.0:8081', '--allow-plain-http'], {})!.listen.host, '0.0.0.0', 'allowed when asked');
  assert.deepEqual(parseConfig([...REQUIRED, '--admin-listen', '[::1]:8091'], {})!.adminListen, { host: '::1', port: 8091 }, 'IPv6 loopback');
  for (const host of ['0.0.0.0:8091', '192.0.2.1:8091', '[::]:8091']) {
    assert.throws(() => parseConfig([...REQUIRED, '--admin-listen', host, '--allow-plain-http'], {}), /--admin-listen must be a loopback address/, host);
  }
});

test('storage: --store or --database-url (with an optional schema), never both', () => {
  assert.deepEqual(parseConfig([...REQUIRED, '--store', '/var/lib/dip'], {})!.store, { engine: 'embedded', dataDir: '/var/lib/dip' }, 'a directory');
  assert.deepEqual(parseConfig([...REQUIRED, '--database-url', 'postgres://db/dip', '--database-schema', 'dip_1'], {})!.store, { engine: 'postgres', connectionString: 'postgres://db/dip', schema: 'dip_1' }, 'PostgreSQL');
  for (const argv of [['--database-schema', 's'], ['--database-url', 'mysql://db'], ['--database-url', 'postgres://db', '--store', 'd'], ['--database-url', 'postgres://db', '--database-schema', 'Bad'], ['--store', ''], ['--bogus'], ['--listen']]) {
    assert.throws(() => parseConfig([...REQUIRED, ...argv], {}), ConfigError, argv.join(' '));
  }
});

test('--help lists every flag, and docs/service.md documents exactly these settings with their environment names and defaults', () => {
  for (const option of OPTIONS) {
    assert.ok(usage().includes(`--${option.flag}`) && usage().includes(envName(option)), `--help lists --${option.flag}`);
  }
  const rows = readFileSync(new URL('../../docs/service.md', import.meta.url), 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('| `--'))
    .map((line) => line.split('|').map((cell) => cell.trim()));
  const documented = new Map(rows.map((cells) => [cells[1]!.replace(/`/g, ''), cells]));
  assert.deepEqual([...documented.keys()].sort(), OPTIONS.map((o) => `--${o.flag}`).sort(), 'the settings table lists exactly the flags');
  for (const option of OPTIONS) {
    const cells = documented.get(`--${option.flag}`)!;
    assert.equal(cells[2], `\`${envName(option)}\``, `${option.flag}: environment name`);
    const expected = option.kind === 'flag' || (option.default === null && option.key === 'adminListen') ? 'off' : option.default === null ? '—' : `\`${option.default}\``;
    assert.equal(cells[3], expected, `${option.flag}: default`);
  }
});

test('parseCidr: canonical blocks with host bits zero, IPv4, IPv6 and IPv4-mapped', () => {
  assert.deepEqual(parseCidr('192.0.2.0/24'), { text: '192.0.2.0/24', size: 256 }, 'IPv4');
  assert.deepEqual(parseCidr('2001:db8::/126'), { text: '2001:db8::/126', size: 4 }, 'IPv6');
  assert.deepEqual(parseCidr('::ffff:192.0.2.0/120'), { text: '::ffff:192.0.2.0/120', size: 256 }, 'IPv4-mapped');
  assert.deepEqual(parseCidr('0.0.0.0/0'), { text: '0.0.0.0/0', size: 2 ** 32 }, 'everything');
  for (const bad of ['::ffff:192.0.2.1/120', '2001:db8::1/126', '2001:db8::/129', '1.2.3.4/', '/8', '1.2.3.0/8/1']) assert.equal(parseCidr(bad), null, bad);
});

const KEY = createIssuerKey(NOW);

test('token-keys.json: exactly SPEC §8 with a not-before for every key; anything else is token_keys_invalid', () => {
  const parsed = parseTokenKeys(tokenKeysJson([KEY]));
  assert.equal(parsed.keys.length, 1, 'one key');
  assert.equal(parsed.challenge.originInfo, 'dip.test', 'origin_info');
  const entry = { 'token-type': 2, 'token-key': encodePaddedBase64url(KEY.tokenKey.spki), 'not-before': NOW };
  const file = (over: Record<string, unknown>): string => JSON.stringify({ issuer_name: 'i', origin_info: 'o', 'token-keys': [entry], ...over });
  for (const [what, text] of [
    ['not JSON', '{'],
    ['an extra member', file({ extra: 1 })],
    ['no keys', file({ 'token-keys': [] })],
    ['no not-before', file({ 'token-keys': [{ ...entry, 'not-before': undefined }] })],
    ['a negative not-before', file({ 'token-keys': [{ ...entry, 'not-before': -1 }] })],
    ['another token type', file({ 'token-keys': [{ ...entry, 'token-type': 1 }] })],
    ['a key in hex', file({ 'token-keys': [{ ...entry, 'token-key': Buffer.from(KEY.tokenKey.spki).toString('hex') }] })],
    ['not an RSA key', file({ 'token-keys': [{ ...entry, 'token-key': 'AAAA' }] })],
    ['the same key twice', file({ 'token-keys': [entry, entry] })],
    ['an issuer name with a space', file({ issuer_name: 'a b' })],
    ['an empty issuer name', file({ issuer_name: '' })],
  ] as const) {
    assert.throws(() => parseTokenKeys(text), (e: unknown) => e instanceof TokenKeysError && e.code === 'token_keys_invalid', what);
  }
});

test('key states and the challenge: the newest active key, else the newest key', () => {
  const old = { ...parseTokenKeys(tokenKeysJson([KEY])).keys[0]!, notBefore: 1000 };
  assert.equal(keyState(old, 999), 'future', 'before');
  assert.equal(keyState(old, 1000 + KEY_LIFETIME_SECONDS), 'active', 'the last second');
  assert.equal(keyState(old, 1001 + KEY_LIFETIME_SECONDS), 'retired', 'after');
  const keys = parseTokenKeys(tokenKeysJson([KEY]));
  assert.match(challengeHeader(keys, NOW - 10), /^PrivateToken challenge="[A-Za-z0-9_=-]+", token-key="[A-Za-z0-9_=-]+"$/, 'a key not yet active is still offered when it is the only one');
});
