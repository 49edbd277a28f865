// The issuer's settings (docs/issuer.md): development defaults from the state directory, what
// production requires, DIP_ISSUER_* variables with flags winning, and the docs listing them all.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ConfigError, envName, OPTIONS, parseConfig, usage } from '../config.js';

test('--dev takes its key file, SRT issuer, database and token-keys.json from the state directory (SPEC §8)', () => {
  const config = parseConfig(['--dev'], {})!;
  assert.deepEqual(config.listen, { host: '127.0.0.1', port: 8082 }, 'SPEC §8: 127.0.0.1:8082');
  assert.equal(config.keyFile, '.dev/issuer-keys.json', 'key file');
  assert.equal(config.devSrtIssuer, '.dev/srt-issuer.json', 'the development SRT issuer');
  assert.deepEqual(config.store, { engine: 'embedded', dataDir: '.dev/issuer-db' }, 'embedded by default');
  assert.equal(config.tokenKeysOut, '.dev/token-keys.json', 'token-keys.json');
  assert.equal(config.requestPath, '/token-request', 'the request path');
});

test('without --dev the key file and the trusted SRT issuer are required, and nothing defaults to .dev', () => {
  assert.throws(() => parseConfig([], {}), ConfigError, 'nothing given');
  assert.throws(() => parseConfig(['--key-file', 'k', '--srt-jwks', 'j'], {}), ConfigError, 'no --srt-issuer');
  const config = parseConfig(['--key-file', 'k', '--srt-jwks', 'j', '--srt-issuer', 'https://s', '--database-url', 'postgres://db/x', '--database-schema', 's1'], {})!;
  assert.equal(config.devSrtIssuer, null, 'no development issuer');
  assert.equal(config.tokenKeysOut, null, 'no token-keys.json unless asked');
  assert.deepEqual(config.store, { engine: 'postgres', connectionString: 'postgres://db/x', schema: 's1' }, 'PostgreSQL with its schema');
});

test('DIP_ISSUER_* variables set a value and a flag wins over them', () => {
  const env = { DIP_ISSUER_DEV: 'true', DIP_ISSUER_LISTEN: '127.0.0.1:1', DIP_ISSUER_STATE_DIR: '/s' };
  const config = parseConfig(['--listen', '[::1]:9'], env)!;
  assert.deepEqual(config.listen, { host: '::1', port: 9 }, 'the flag wins');
  assert.equal(config.keyFile, '/s/issuer-keys.json', 'the state directory from the environment');
  assert.equal(parseConfig(['-h'], {}), null, '-h asks for help');
});

test('bad settings are a ConfigError: a public address without --allow-plain-http, a schema without a database, bad paths', () => {
  for (const argv of [['--dev', '--listen', '0.0.0.0:8082'], ['--dev', '--database-schema', 's'], ['--dev', '--request-path', 'x'], ['--dev', '--request-path', '/.well-known/x'], ['--bogus'], ['--dev', '--key-file']]) {
    assert.throws(() => parseConfig(argv, {}), ConfigError, argv.join(' '));
  }
  assert.equal(parseConfig(['--dev', '--listen', '0.0.0.0:8082', '--allow-plain-http'], {})!.listen.host, '0.0.0.0', 'allowed when asked');
});

test('--help and docs/issuer.md list every flag with its environment variable', () => {
  const docs = readFileSync(new URL('../../docs/issuer.md', import.meta.url), 'utf8');
  for (const option of OPTIONS) {
    assert.ok(usage().includes(`--${option.flag}`) && usage().includes(envName(option)), `--help lists --${option.flag}`);
    assert.ok(docs.includes(`\`--${option.flag}\``) && docs.includes(`\`${envName(option)}\``), `the docs list --${option.flag} and ${envName(option)}`);
  }
});
