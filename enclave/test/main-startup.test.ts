// enclave/main.ts as an operator meets it: its flags, every refusal to start (each with a fixed
// reason and exit code), production mode off Nitro, and a graceful stop on SIGTERM/SIGINT.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { STARTUP_FAILURES } from '../io/log.js';
import { connectTo, within } from '../../test/support/frame-client.js';
import { mintSrt, runEnclaveProcess, sealAssign, spawnEnclave } from '../../test/support/enclave.js';
import { parseResponseBody } from '../../protocol/messages.js';
import { decodeAttestationPayload } from '../../protocol/attestation-document.js';
import { decodeCoseSign1 } from '../../protocol/cose.js';

const root = mkdtempSync(join(tmpdir(), 'dip-main-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => join(root, `d${n++}`);

async function startupOutcome(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; events: Array<Record<string, unknown>>; stdout: string }> {
  const run = runEnclaveProcess(args, env);
  const status = await within(run.exited, 90_000, 'the enclave exits');
  const lines = run.output().split('\n').filter((l) => l.length > 0);
  return {
    code: status.code,
    events: lines.filter((l) => l.startsWith('{"time"')).map((l) => JSON.parse(l)),
    stdout: lines.filter((l) => !l.startsWith('{"time"')).join('\n'),
  };
}

describe('enclave/main.ts refuses to start', { concurrency: 3 }, () => {
  const cases: Array<[string, () => string[], Record<string, string>, string, number]> = [
    ['without --listen', () => ['--dev', fresh()], {}, 'usage', 2],
    ['with an unknown flag', () => ['--listen', 'tcp:127.0.0.1:0', '--verbose'], {}, 'usage', 2],
    ['with a positional argument', () => ['--listen', 'tcp:127.0.0.1:0', 'extra'], {}, 'usage', 2],
    ['with an empty --dev', () => ['--listen', 'tcp:127.0.0.1:0', '--dev', ''], {}, 'usage', 2],
    ['with a listen address that is neither unix: nor tcp:', () => ['--listen', 'vsock:5000', '--dev', fresh()], {}, 'bad_listen_address', 2],
    ['with an --idle-timeout-ms of 0', () => ['--listen', 'tcp:127.0.0.1:0', '--idle-timeout-ms', '0', '--dev', fresh()], {}, 'usage', 2],
    ['with a --frame-timeout-ms that is not an integer', () => ['--listen', 'tcp:127.0.0.1:0', '--frame-timeout-ms', '1.5', '--dev', fresh()], {}, 'usage', 2],
    ['with a --max-connections that is not a number', () => ['--listen', 'tcp:127.0.0.1:0', '--max-connections', 'many', '--dev', fresh()], {}, 'usage', 2],
    ['with --workers 0', () => ['--listen', 'tcp:127.0.0.1:0', '--workers', '0', '--dev', fresh()], {}, 'usage', 2],
    ['with --workers 257 (above any enclave\'s vCPUs)', () => ['--listen', 'tcp:127.0.0.1:0', '--workers', '257', '--dev', fresh()], {}, 'usage', 2],
    // 256 threads would be costly to start here: the later dev_refused shows that 256 passed the flag check.
    ['with --workers 256 (the most it takes) and --dev in a production build', () => ['--listen', 'tcp:127.0.0.1:0', '--workers', '256', '--dev', fresh()], { DIP_BUILD: 'production' }, 'dev_refused', 1],
    ['with a --vsock port that is not a u32', () => ['--listen', 'tcp:127.0.0.1:0', '--vsock', 'x', '--dev', fresh()], {}, 'usage', 2],
    ['with --vsock but a TCP --listen address', () => ['--listen', 'tcp:127.0.0.1:0', '--vsock', '5000', '--dev', fresh()], {}, 'listen_failed', 1],
    ['with --dev in a production build', () => ['--listen', 'tcp:127.0.0.1:0', '--dev', fresh()], { DIP_BUILD: 'production' }, 'dev_refused', 1],
    ['in production mode where there is no /dev/nsm', () => ['--listen', 'tcp:127.0.0.1:0'], {}, 'nsm_unavailable', 1],
    [
      'when --dev names a file, not a directory',
      () => {
        const file = fresh();
        writeFileSync(file, 'x');
        return ['--listen', 'tcp:127.0.0.1:0', '--dev', file];
      },
      {},
      'dev_state_unusable',
      1,
    ],
    [
      'when DIR/srt-issuer.json is not a development issuer',
      () => {
        const dir = fresh();
        mkdirSync(dir);
        writeFileSync(join(dir, 'srt-issuer.json'), '{"iss": "x", "aud": null, "jwk": {"kty": "oct", "k": "c2VjcmV0"}}');
        return ['--listen', 'tcp:127.0.0.1:0', '--dev', dir];
      },
      {},
      'dev_state_unusable',
      1,
    ],
    [
      'when DIR/srt-issuer.json is not JSON',
      () => {
        const dir = fresh();
        mkdirSync(dir);
        writeFileSync(join(dir, 'srt-issuer.json'), '{');
        return ['--listen', 'tcp:127.0.0.1:0', '--dev', dir];
      },
      {},
      'dev_state_unusable',
      1,
    ],
    [
      'when DIR/nsm-root.pem cannot be written',
      () => {
        const dir = fresh();
        mkdirSync(join(dir, 'nsm-root.pem'), { recursive: true });
        return ['--listen', 'tcp:127.0.0.1:0', '--dev', dir];
      },
      {},
      'dev_state_unusable',
      1,
    ],
    [
      'when a regular file sits at the --listen path',
      () => {
        const dir = fresh();
        mkdirSync(dir);
        writeFileSync(join(dir, 'enclave.sock'), 'not a socket');
        return ['--listen', `unix:${join(dir, 'enclave.sock')}`, '--dev', dir];
      },
      {},
      'listen_failed',
      1,
    ],
  ];
  for (const [name, args, env, reason, code] of cases) {
    it(`${name}: startup_failed ${reason}, exit ${code}`, async () => {
      const argv = args();
      const outcome = await startupOutcome(argv, env);
      assert.equal(outcome.code, code);
      const failed = outcome.events.find((e) => e['event'] === 'startup_failed');
      assert.equal(failed?.['reason'], reason);
      assert.equal(failed?.['message'], STARTUP_FAILURES[reason as keyof typeof STARTUP_FAILURES]);
      // Only the VSOCK bridge comes after the socket listens.
      if (!argv.includes('--vsock')) assert.ok(!outcome.events.some((e) => e['event'] === 'listening'), 'no listening event after a refusal');
      assert.equal(outcome.stdout, '', 'nothing but events is written');
    });
  }

  it('prints its usage on --help and exits 0', async () => {
    const outcome = await startupOutcome(['--help']);
    assert.equal(outcome.code, 0);
    assert.match(outcome.stdout, /--listen ADDRESS/);
    assert.match(outcome.stdout, /--dev DIR/);
    assert.match(outcome.stdout, /--workers N/);
  });
});

describe('enclave/main.ts lifecycle', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`stops gracefully on ${signal}: exit 0, stopping and stopped logged, socket removed`, async () => {
      const enclave = await spawnEnclave();
      after(() => enclave.stop());
      const client = await enclave.connect();
      assert.equal((await client.request('health')).ok, true);
      enclave.child.kill(signal);
      const status = await within(enclave.exited, 60_000, 'exit after signal');
      assert.deepEqual(status, { code: 0, signal: null });
      const events = enclave.events().map((e) => e['event']);
      assert.deepEqual(events.slice(-2), ['stopping', 'stopped']);
      assert.equal(enclave.events().at(-2)!['signal'], signal);
      assert.equal(existsSync(enclave.address.path), false);
      client.close();
    });
  }

  it('applies --frame-timeout-ms, --idle-timeout-ms and --max-connections to its socket', async () => {
    const dir = fresh();
    const path = join(dir, 'enclave.sock');
    mkdirSync(dir);
    const run = runEnclaveProcess([
      '--dev', dir, '--listen', `unix:${path}`, '--frame-timeout-ms', '200', '--idle-timeout-ms', '600000', '--max-connections', '2',
    ]);
    after(() => run.child.kill('SIGKILL'));
    const events = () => run.output().split('\n').filter((l) => l.startsWith('{"time"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const closings = (cause: string) => events().filter((e) => e['event'] === 'connection_closed' && e['cause'] === cause).length;
    const waitFor = async (condition: () => boolean, what: string) => {
      for (let i = 0; i < 1200 && !condition(); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(condition(), `never happened: ${what}`);
    };
    await waitFor(() => events().some((e) => e['event'] === 'listening'), 'the enclave listens');
    const address = { kind: 'unix', path } as const;
    const stalled = await connectTo(address);
    stalled.on('error', () => {});
    stalled.write(new Uint8Array([0, 0]));
    await waitFor(() => closings('frame_timeout') === 1, 'the stalled frame is cut by --frame-timeout-ms');
    const sockets = [await connectTo(address), await connectTo(address), await connectTo(address)];
    for (const socket of sockets) socket.on('error', () => {});
    await waitFor(() => closings('evicted') === 1, 'the third connection evicts one under --max-connections 2');
    assert.equal(closings('idle_timeout'), 0, 'nothing is idle for --idle-timeout-ms yet');
    for (const socket of sockets) socket.destroy();
    run.child.kill('SIGTERM');
    assert.equal((await within(run.exited, 60_000, 'exit after SIGTERM')).code, 0, 'it still stops gracefully');
  });

  it('keeps the development issuer across restarts, and makes a new boot key and emulator root each boot', async () => {
    const dir = fresh();
    const firstRun = await spawnEnclave({ dir });
    after(() => firstRun.stop());
    const issuer = firstRun.issuer();
    const firstRoot = firstRun.rootPem();
    const srt = await mintSrt(issuer, { sub: 'sub-restart' });
    await firstRun.stop();

    const secondRun = await spawnEnclave({ dir });
    after(() => secondRun.stop());
    assert.deepEqual(secondRun.issuer(), issuer);
    assert.notEqual(secondRun.rootPem(), firstRoot);
    // An SRT minted before the restart is still trusted: assign with it succeeds.
    const client = await secondRun.connect();
    const attested = await client.request('attest', { nonce: new Uint8Array(16) });
    assert.ok(attested.ok, 'attest answered ok');
    const document = parseResponseBody('attest', attested.body)!.document;
    const bootKey = decodeAttestationPayload(decodeCoseSign1(document).payload).publicKey!;
    const response = await client.request('assign', { ip: '2001:db8::7', request: sealAssign(bootKey, srt).request });
    client.close();
    assert.equal(response.ok, true);
  });
});
