// The privacy helper of test/support/secrets.ts (SPEC §1): it must find a secret in every
// encoding a careless log line could use, wherever the encoding sits in a longer string.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { assertNoLeak, findLeaks, secretForms } from './support/secrets.js';

const IP = '203.0.113.177';
const SUB = 'sub-privacy-7f3c9e21';
const secrets = [
  { what: 'IP', value: IP, hashed: true },
  { what: 'subscription id', value: SUB, hashed: true },
];

test('finds an IP written in hex inside a well-formed JSON log line', () => {
  const line = JSON.stringify({ event: 'request_failed', code: 'srt_invalid', trace: Buffer.from(IP).toString('hex') });
  assert.deepEqual(findLeaks(line, secrets), ['IP (hex)'], 'the hex IP is named');
  const upper = JSON.stringify({ trace: Buffer.from(IP).toString('hex').toUpperCase() });
  assert.deepEqual(findLeaks(upper, secrets), ['IP (HEX)'], 'upper-case hex too');
});

test('finds a subscription id in base64 and base64url at every alignment inside a longer encoded buffer', () => {
  for (const prefix of [0, 1, 2, 3, 4, 5]) {
    for (const encoding of ['base64', 'base64url'] as const) {
      const blob = Buffer.concat([Buffer.alloc(prefix, 0xfb), Buffer.from(SUB), Buffer.alloc(7, 0xff)]).toString(encoding);
      const leaks = findLeaks(`{"blob":"${blob}"}`, secrets);
      assert.ok(leaks.some((l) => l.startsWith(`subscription id (${encoding}`)), `${encoding} after ${prefix} bytes is found`);
    }
  }
});

test('finds the SHA-256 of an IP and of a subscription id in hex, base64 and base64url', () => {
  for (const [what, value] of [['IP', IP], ['subscription id', SUB]] as const) {
    const digest = createHash('sha256').update(value).digest();
    for (const [encoding, text] of [['hex', digest.toString('hex')], ['base64', digest.toString('base64')], ['base64url', digest.toString('base64url')]]) {
      assert.ok(findLeaks(`user=${text}`, secrets).includes(`${what} (sha256 ${encoding})`), `sha256 ${encoding} of the ${what} is found`);
    }
  }
});

test('finds a token by any one of its parts', () => {
  const token = `${Buffer.from('{"alg":"ES256","typ":"drt+jwt"}').toString('base64url')}.${Buffer.from('{"sub":"x","did":1}').toString('base64url')}.c2lnbmF0dXJlLWJ5dGVzLWhlcmU`;
  const parts = token.split('.');
  assert.ok(findLeaks(`sig=${parts[2]}`, [{ what: 'DRT', value: token }]).includes('DRT (part 2)'), 'the signature alone is a leak');
});

test('finds a short secret written as itself, and nothing in output that holds no secret', () => {
  assert.deepEqual(findLeaks('user alice', [{ what: 'sub', value: 'alice' }]), ['sub (text)'], 'a short text is still looked for');
  const clean = JSON.stringify({ event: 'request_failed', code: 'srt_invalid', ms: 3, ts: '2030-01-01T00:00:00.000Z' });
  assert.deepEqual(findLeaks(clean, secrets), [], 'a log line without secrets');
  assert.ok(secretForms(IP, { hashed: true }).length >= 12, 'text, hex, base64 cores and hashes');
});

test('assertNoLeak names what leaked and how, never the secret itself', () => {
  const output = `ip=${Buffer.from(IP).toString('base64')}`;
  assert.throws(
    () => assertNoLeak(output, secrets, 'the test output'),
    (error: unknown) => error instanceof assert.AssertionError && error.message.includes('IP (base64') && !error.message.includes(IP),
    'the failure names the encoding and hides the value',
  );
});
