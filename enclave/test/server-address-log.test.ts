// Listen addresses (unix:PATH, tcp:HOST:PORT) and the enclave's logger, whose only job is to
// never write anything sensitive (SPEC §1): fixed event names, numbers and closed-set values.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatListenAddress, ListenAddressError, parseListenAddress } from '../io/address.js';
import { createLogger, safeAddress, safeVersion, sanitize, STARTUP_FAILURES, type Logger } from '../io/log.js';

describe('listen addresses', () => {
  for (const [text, parsed] of [
    ['unix:/run/dip/enclave.sock', { kind: 'unix', path: '/run/dip/enclave.sock' }],
    ['unix:.dev/enclave.sock', { kind: 'unix', path: '.dev/enclave.sock' }],
    ['tcp:127.0.0.1:7000', { kind: 'tcp', host: '127.0.0.1', port: 7000 }],
    ['tcp:localhost:0', { kind: 'tcp', host: 'localhost', port: 0 }],
    ['tcp:[::1]:65535', { kind: 'tcp', host: '::1', port: 65535 }],
  ] as const) {
    it(`parses ${text} and formats it back`, () => {
      assert.deepEqual(parseListenAddress(text), parsed);
      assert.equal(formatListenAddress(parseListenAddress(text)), text);
    });
  }

  for (const text of [
    '', 'unix:', 'vsock:5000', '/run/enclave.sock', 'tcp:127.0.0.1', 'tcp::7000', 'tcp:127.0.0.1:65536',
    'tcp:127.0.0.1:-1', 'tcp:127.0.0.1:70a', 'tcp:::1:7000', 'tcp:[::1]:', 'unix:/a\0b', `unix:/${'x'.repeat(107)}`,
  ]) {
    it(`refuses ${JSON.stringify(text.slice(0, 30))} with a ListenAddressError`, () => {
      assert.throws(() => parseListenAddress(text), ListenAddressError);
    });
  }
});

describe('enclave logger', () => {
  const capture = (): { log: Logger; lines: string[] } => {
    const lines: string[] = [];
    return { log: createLogger((l) => lines.push(l)), lines };
  };

  it('writes one JSON line per event with its fixed name and allowed fields', () => {
    const { log, lines } = capture();
    log.event('started', { mode: 'development', version: safeVersion('0.1.0') });
    log.event('listening', { address: safeAddress({ kind: 'unix', path: '/tmp/x/enclave.sock' }) });
    log.event('request_failed', { op: 'assign', code: 'srt_expired', ms: 1.234 });
    assert.equal(lines.length, 3);
    assert.ok(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n')), 'one JSON object per line');
    const [started, listening, failed] = lines.map((l) => JSON.parse(l));
    assert.equal(started.event, 'started');
    assert.equal(started.mode, 'development');
    assert.equal(started.version, '0.1.0');
    assert.ok(!Number.isNaN(Date.parse(started.time)), 'time is a parseable date');
    assert.equal(listening.address, 'unix:/tmp/x/enclave.sock');
    assert.deepEqual({ ...failed, time: 0 }, { time: 0, event: 'request_failed', op: 'assign', code: 'srt_expired', ms: 1.2 });
  });

  it('drops, at run time, fields and values that the types would refuse', () => {
    const { log, lines } = capture();
    const leaky = {
      op: 'assign; sub=alice',
      code: 'Error: jwt expired for 10.1.2.3',
      ms: Number.NaN,
      inFlight: -1,
      sub: 'alice',
      ip: '10.1.2.3',
      srt: 'eyJhbGciOiJFUzI1NiJ9.e30.sig',
      mode: 'development',
    };
    log.event('request_failed', leaky as never);
    log.event('no_such_event' as never, { sub: 'alice' } as never);
    assert.equal(lines.length, 1);
    const out = JSON.parse(lines[0]!);
    assert.deepEqual(Object.keys(out).sort(), ['event', 'mode', 'time']);
    assert.ok(!lines[0]!.includes('alice') && !lines[0]!.includes('10.1.2.3') && !lines[0]!.includes('eyJ'), 'the log line holds no sub, IP or token');
    assert.deepEqual(sanitize({ version: 'v 1', address: 'http://x', reason: 'toString', signal: 'SIGKILL' }), {});
    assert.deepEqual(sanitize({ cause: '10.1.2.3 idle', connections: -1 }), {}, 'a close cause outside the closed set is dropped');
    assert.deepEqual(sanitize({ cause: 'evicted', connections: 3 }), { cause: 'evicted', connections: 3 }, 'a closed-set cause is kept');
  });

  it('writes startup failures with the fixed operator message of their reason', () => {
    const { log, lines } = capture();
    log.event('startup_failed', { reason: 'nsm_unavailable' });
    log.event('startup_failed', { reason: 'something else' } as never);
    assert.equal(JSON.parse(lines[0]!).message, STARTUP_FAILURES.nsm_unavailable);
    assert.equal(JSON.parse(lines[1]!).message, undefined);
  });

  it('refuses a version string that is not a plain version', () => {
    assert.throws(() => safeVersion('1.0 sub=alice'), TypeError);
    assert.throws(() => safeVersion(''), TypeError);
  });

  it('writes to stderr by default', (t) => {
    const written: string[] = [];
    t.mock.method(process.stderr, 'write', (chunk: string) => {
      written.push(chunk);
      return true;
    });
    createLogger().event('stopped', { ms: 3 });
    t.mock.restoreAll();
    assert.equal(JSON.parse(written[0]!).event, 'stopped');
  });
});
