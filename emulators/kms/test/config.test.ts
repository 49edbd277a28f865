// The KMS emulator's settings (docs/kms-emulator.md): defaults, DIP_KMS_* variables, flags
// winning, loopback only, and the docs listing every flag and variable.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ConfigError, envName, OPTIONS, parseConfig, usage } from '../config.js';

test('the defaults are SPEC §8: 127.0.0.1:8083, .dev, its nsm-root.pem, a policy file beside it, recipients required', () => {
  assert.deepEqual(parseConfig([], {}), {
    listen: { host: '127.0.0.1', port: 8083 },
    stateDir: '.dev',
    root: '.dev/nsm-root.pem',
    pcrPolicy: '.dev/kms-pcr-policy.txt',
    allowNoRecipient: false,
  }, 'defaults');
});

test('DIP_KMS_* variables set a value and a flag wins over them', () => {
  const env = { DIP_KMS_STATE_DIR: '/s', DIP_KMS_ALLOW_NO_RECIPIENT: 'yes', DIP_KMS_LISTEN: '127.0.0.1:1' };
  const config = parseConfig(['--listen=[::1]:9', '--root', '/r.pem', '--pcr-policy', '/p'], env)!;
  assert.deepEqual(config.listen, { host: '::1', port: 9 }, 'the flag wins');
  assert.equal(config.stateDir, '/s', 'from the environment');
  assert.equal(config.root, '/r.pem', '--root');
  assert.equal(config.pcrPolicy, '/p', '--pcr-policy');
  assert.equal(config.allowNoRecipient, true, 'from the environment');
  assert.equal(parseConfig(['--allow-no-recipient'], {})!.allowNoRecipient, true, 'a bare flag');
  assert.equal(parseConfig(['--state-dir', '/x'], {})!.root, '/x/nsm-root.pem', 'the root follows the state dir');
});

test('it serves loopback only and refuses bad settings with a ConfigError', () => {
  for (const argv of [['--listen', '0.0.0.0:8083'], ['--listen', '10.0.0.1:1'], ['--bogus'], ['--root'], ['--state-dir='], ['--allow-no-recipient=maybe']]) {
    assert.throws(() => parseConfig(argv, {}), ConfigError, argv.join(' '));
  }
  assert.equal(parseConfig(['-h'], {}), null, '-h asks for help');
});

test('--help and docs/kms-emulator.md list every flag with its environment variable', () => {
  const docs = readFileSync(new URL('../../../docs/kms-emulator.md', import.meta.url), 'utf8');
  for (const option of OPTIONS) {
    assert.ok(usage().includes(`--${option.flag}`) && usage().includes(envName(option)), `--help lists --${option.flag}`);
    assert.ok(docs.includes(`--${option.flag}`) && docs.includes(envName(option)), `the docs list --${option.flag} and ${envName(option)}`);
  }
});
