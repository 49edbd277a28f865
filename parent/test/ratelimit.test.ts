import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, methodLabel } from '../log.js';
import { RateLimiter } from '../ratelimit.js';

test('a client may spend its burst at once, then one request per refill interval', () => {
  let now = 0;
  const limiter = new RateLimiter({ ratePerSecond: 2, burst: 3, now: () => now });
  assert.deepEqual([1, 2, 3, 4].map(() => limiter.take('a')), [true, true, true, false]);
  now += 499;
  assert.equal(limiter.take('a'), false);
  now += 1;
  assert.equal(limiter.take('a'), true);
  assert.equal(limiter.take('a'), false);
  now += 60_000; // refills to the burst, never beyond
  assert.deepEqual([1, 2, 3, 4].map(() => limiter.take('a')), [true, true, true, false]);
});

test('clients have separate buckets', () => {
  const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1, now: () => 0 });
  assert.equal(limiter.take('a'), true);
  assert.equal(limiter.take('a'), false);
  assert.equal(limiter.take('b'), true);
});

test('the number of buckets is bounded; the least recently used goes first', () => {
  const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1, maxClients: 2, now: () => 0 });
  limiter.take('a');
  limiter.take('b');
  limiter.take('a'); // a is now the most recently used
  limiter.take('c'); // evicts b
  assert.equal(limiter.clients, 2);
  assert.equal(limiter.take('a'), false);
  assert.equal(limiter.take('b'), true); // a fresh bucket: b was forgotten (and evicts c)
});

test('a rate or burst that cannot work is our own misuse', () => {
  assert.throws(() => new RateLimiter({ ratePerSecond: 0, burst: 1 }), TypeError);
  assert.throws(() => new RateLimiter({ ratePerSecond: 1, burst: 0 }), TypeError);
  assert.equal(new RateLimiter({ ratePerSecond: 1, burst: 1 }).take('x'), true);
});

test('request log lines carry method, route, status and latency; odd methods are OTHER', () => {
  const lines: string[] = [];
  const logger = createLogger((line) => lines.push(line));
  logger.request('POST', '/v1/dip/assign', 200, 1.23456);
  logger.request('BREW', 'unmatched', 405, 0.5);
  logger.request(undefined, 'unmatched', 400, 0);
  assert.deepEqual(lines.map((l) => JSON.parse(l)), [
    { method: 'POST', route: '/v1/dip/assign', status: 200, ms: 1.23 },
    { method: 'OTHER', route: 'unmatched', status: 405, ms: 0.5 },
    { method: 'OTHER', route: 'unmatched', status: 400, ms: 0 },
  ]);
  assert.ok(lines.every((l) => l.endsWith('\n')), 'each log line ends with a newline');
  assert.equal(methodLabel('HEAD'), 'HEAD');
  logger.event('tls_reloaded', { ok: true });
  assert.match(lines[3]!, /^\{"time":"[^"]+","event":"tls_reloaded","ok":true\}\n$/);
});
