// The issuer's keys (SPEC §10): at most two active, each for 90 days from its not-before; what
// token-keys.json pins (SPEC §8); and the key file's format checks.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodePaddedBase64url } from '../../protocol/privacypass-http.js';
import { encodeKeyFile, KeyFileError, parseKeyFile } from '../key-file.js';
import { activeKeys, encodeTokenKeysFile, KEY_LIFETIME_SECONDS, MAX_ACTIVE_KEYS, pinnedKeys } from '../token-keys.js';
import { createIssuerKey, NOW } from './support.js';

const DAY = 86_400;
const [oldest, older, newest, coming] = [NOW - 60 * DAY, NOW - 30 * DAY, NOW - DAY, NOW + 10 * DAY].map((nb) => createIssuerKey(nb));
const all = [oldest!, older!, newest!, coming!];

test('at most two keys are active: the newest two that have begun and are younger than 90 days', () => {
  assert.equal(MAX_ACTIVE_KEYS, 2, 'SPEC §10: two');
  assert.deepEqual(activeKeys(all, NOW), [newest, older], 'three qualify, the newest two are used');
  assert.deepEqual(activeKeys([oldest!], oldest!.notBefore - 1), [], 'not before its not-before');
  assert.deepEqual(activeKeys([oldest!], oldest!.notBefore + KEY_LIFETIME_SECONDS - 1), [oldest], 'the last second of its 90 days');
  assert.deepEqual(activeKeys([oldest!], oldest!.notBefore + KEY_LIFETIME_SECONDS), [], 'retired at exactly 90 days');
});

test('token-keys.json pins the active keys and those still to begin, as RFC 9578 §4 entries', () => {
  assert.deepEqual(pinnedKeys(all, NOW), [older, newest, coming], 'oldest first, the retired one left out');
  const file = JSON.parse(encodeTokenKeysFile('issuer.test', 'dip.test', [newest!])) as { 'token-keys': Array<Record<string, unknown>> };
  assert.deepEqual(file['token-keys'][0], { 'token-type': 2, 'token-key': encodePaddedBase64url(newest!.tokenKey.spki), 'not-before': newest!.notBefore }, 'one entry');
});

test('the key file round-trips and refuses broken content or two keys with the same truncated id', () => {
  const back = parseKeyFile(encodeKeyFile([older!, newest!]));
  assert.deepEqual(back.map((k) => [k.notBefore, k.truncatedId]), [[older!.notBefore, older!.truncatedId], [newest!.notBefore, newest!.truncatedId]], 'round trip');
  const code = (text: string): string | null => {
    try {
      parseKeyFile(text);
      return null;
    } catch (error) {
      return error instanceof KeyFileError ? error.code : 'other';
    }
  };
  const twice = encodeKeyFile([older!, { privateKey: older!.privateKey, notBefore: NOW }]);
  for (const [what, text] of [['not JSON', '{'], ['no keys', '{"keys":[]}'], ['a bad PEM', '{"keys":[{"not_before":1,"private_key":"x"}]}'], ['a negative not_before', '{"keys":[{"not_before":-1,"private_key":"x"}]}'], ['one truncated id twice', twice]] as const) {
    assert.equal(code(text), 'key_file_invalid', what);
  }
});
