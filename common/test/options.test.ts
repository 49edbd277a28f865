import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventLine, methodLabel, requestLine, undatedEventLine } from '../http-log.js';
import { ConfigError, isLoopbackHost, parseFlag, parseListen, parsePath, parsePrintableText, readOptionTexts, readOptionValues } from '../options.js';

const OPTIONS = [
  { flag: 'listen', kind: 'address' },
  { flag: 'dev', kind: 'flag' },
] as const;
const envName = (option: (typeof OPTIONS)[number]): string => `T_${option.flag.toUpperCase()}`;

test('readOptionTexts reads the environment, then flags that win, in both --flag VALUE and --flag=VALUE forms', () => {
  const texts = readOptionTexts(OPTIONS, ['--listen', '127.0.0.1:1'], { T_LISTEN: '127.0.0.1:2', T_DEV: 'yes' }, envName)!;
  assert.equal(texts.get(OPTIONS[0]), '127.0.0.1:1', 'the flag wins over the environment');
  assert.equal(texts.get(OPTIONS[1]), 'yes', 'the environment alone');
  assert.equal(readOptionTexts(OPTIONS, ['--listen=h:3', '--dev'], {}, envName)!.get(OPTIONS[0]), 'h:3', '--flag=VALUE');
  assert.equal(readOptionTexts(OPTIONS, ['--dev'], {}, envName)!.get(OPTIONS[1]), 'true', 'a bare flag is true');
  assert.equal(readOptionTexts(OPTIONS, ['--dev', '-h'], {}, envName), null, '-h asks for help');
  assert.equal(readOptionTexts(OPTIONS, ['--help'], {}, envName), null, '--help asks for help');
});

test('readOptionTexts refuses an unknown argument and a flag without its value', () => {
  assert.throws(() => readOptionTexts(OPTIONS, ['--nope'], {}, envName), ConfigError, 'unknown flag');
  assert.throws(() => readOptionTexts(OPTIONS, ['listen'], {}, envName), ConfigError, 'not a flag');
  assert.throws(() => readOptionTexts(OPTIONS, ['--listen'], {}, envName), /--listen needs a value/, 'missing value');
});

test('parseFlag, parseListen and isLoopbackHost', () => {
  for (const text of ['1', 'true', 'YES']) assert.equal(parseFlag(text, '--x'), true, text);
  for (const text of ['0', 'false', 'no', '']) assert.equal(parseFlag(text, '--x'), false, `"${text}"`);
  assert.throws(() => parseFlag('maybe', '--x'), ConfigError, 'neither');
  assert.deepEqual(parseListen('[::1]:8080'), { host: '::1', port: 8080 }, 'IPv6 in brackets');
  assert.deepEqual(parseListen('127.0.0.1:65535'), { host: '127.0.0.1', port: 65535 }, 'the highest port');
  for (const bad of ['127.0.0.1:65536', '::1:80', ':80', '127.0.0.1', 'h:x']) assert.throws(() => parseListen(bad), ConfigError, bad);
  for (const host of ['localhost', '::1', '127.0.0.1', '127.255.0.9']) assert.equal(isLoopbackHost(host), true, host);
  for (const host of ['0.0.0.0', '10.0.0.1', '128.0.0.1', '::']) assert.equal(isLoopbackHost(host), false, host);
});

test('parsePath refuses only an empty path; parsePrintableText takes 1 to 2048 printable ASCII characters without spaces', () => {
  assert.equal(parsePath('a', '--key-file'), 'a', 'one character is a path');
  assert.throws(() => parsePath('', '--key-file'), (e: unknown) => e instanceof ConfigError && e.message === '--key-file needs a path', 'empty');
  const longest = '~'.repeat(2048);
  assert.equal(parsePrintableText(longest, '--name'), longest, '2048 characters');
  assert.equal(parsePrintableText('!', '--name'), '!', 'one character, the first printable');
  for (const bad of ['', '~'.repeat(2049), 'a b', 'a\tb', 'é', '\x7f']) {
    assert.throws(() => parsePrintableText(bad, '--name'), (e: unknown) => e instanceof ConfigError && e.message === '--name must be printable ASCII without spaces', JSON.stringify(bad));
  }
});

test('methodLabel keeps the closed set and calls anything else OTHER', () => {
  for (const method of ['GET', 'POST', 'OPTIONS']) assert.equal(methodLabel(method), method, method);
  for (const method of ['get', 'BREW', undefined]) assert.equal(methodLabel(method), 'OTHER', String(method));
});

test('requestLine writes method, route, status and latency only; eventLine the time, the event and its fields', () => {
  assert.deepEqual(JSON.parse(requestLine('BREW', '/v1/keys', 405, 1.23456)), { method: 'OTHER', route: '/v1/keys', status: 405, ms: 1.23 }, 'request line');
  const event = JSON.parse(eventLine('started', { port: 8080 })) as Record<string, unknown>;
  assert.deepEqual(Object.keys(event), ['time', 'event', 'port'], 'event line fields in order');
  assert.equal(event['event'], 'started', 'the event name');
});

test('readOptionValues: a repeatable flag collects every value and replaces the environment list; others keep the last', () => {
  const options = [
    { flag: 'parent', kind: 'url', repeatable: true },
    { flag: 'listen', kind: 'address' },
  ] as const;
  const name = (option: (typeof options)[number]): string => `T_${option.flag.toUpperCase()}`;
  const fromEnv = readOptionValues(options, [], { T_PARENT: 'http://a, http://b,,', T_LISTEN: 'h:1' }, name)!;
  assert.deepEqual(fromEnv.get(options[0]), ['http://a', 'http://b'], 'a comma-separated list in the environment');
  const both = readOptionValues(options, ['--parent', 'http://c', '--listen', 'h:2', '--parent=http://d', '--listen', 'h:3'], { T_PARENT: 'http://a' }, name)!;
  assert.deepEqual(both.get(options[0]), ['http://c', 'http://d'], 'the flags replace the environment list');
  assert.deepEqual(both.get(options[1]), ['h:3'], 'the last value of an option that does not repeat');
  assert.equal(readOptionTexts(options, ['--parent', 'x', '--parent', 'y'], {}, name)!.get(options[0]), 'y', 'readOptionTexts keeps the last');
  assert.equal(readOptionTexts(options, [], { T_PARENT: '' }, name)!.has(options[0]), false, 'an empty list is no value');
});

test('undatedEventLine writes the event and its fields without any time', () => {
  assert.deepEqual(JSON.parse(undatedEventLine('started', { port: 1 })), { event: 'started', port: 1 }, 'no time field');
});
