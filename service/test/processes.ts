// The DIP service as an OS process (service/main.ts) for the process tests, which are split over
// several files so that each stays well inside the per-file test timeout on a loaded machine:
// start it, wait until it listens or exits, stop or SIGKILL it; a fake parent shared by a file.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DAY, createIssuerKey, errorCode, keyId, removeTempDirs, startFakeParent, type Answer, type FakeParent } from './support.js';

export const MAIN = fileURLToPath(new URL('../main.ts', import.meta.url));
export const realNow = Math.floor(Date.now() / 1000);
/** These processes read the real clock: the key began a day ago. */
export const KEY = createIssuerKey(realNow - DAY);
export const ENCLAVE = keyId(1);
/** A /25 less 28 excluded addresses: a pool of 100. */
export const POOL_OF_100 = ['--range', '203.0.113.0/25', '--exclude', '203.0.113.100/30', '--exclude', '203.0.113.104/29', '--exclude', '203.0.113.112/28'];

/** One fake parent for the file's tests, started before them and closed after; temporary directories go too. */
export function useFakeParent(): () => FakeParent {
  let parent: FakeParent | undefined;
  before(async () => {
    // SPEC §4: reservedUntil is a DRT's exp (60 days on) rounded up to 00:00 UTC.
    parent = await startFakeParent([{ keyId: ENCLAVE, status: 'ok' }], Math.ceil((realNow + 60 * DAY) / DAY) * DAY);
  });
  after(async () => {
    await parent?.close();
    removeTempDirs();
  });
  return () => parent!;
}

export interface ServiceProcess {
  url: string;
  adminUrl: string | null;
  output(): string;
  stop(): Promise<number>;
  kill(): Promise<void>;
}

/**
 * Starts service/main.ts; resolves when it listens, or with its exit code and output when it stops
 * first. The parents are read at start-up and for unknown key_ids only: no timer decides a test.
 */
export function runService(args: string[]): Promise<ServiceProcess | { code: number; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--listen', '127.0.0.1:0', '--poll-interval-ms', '600000', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<number>((resolve) => child.once('close', (code) => resolve(code ?? 1)));
  return new Promise((resolve) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      const match = /"event":"listening","port":(\d+)/.exec(output);
      if (match !== null) {
        const admin = /"event":"admin_listening","port":(\d+)/.exec(output);
        resolve({
          url: `http://127.0.0.1:${match[1]}`,
          adminUrl: admin === null ? null : `http://127.0.0.1:${admin[1]}`,
          output: () => output,
          stop: () => (child.kill('SIGTERM'), exited),
          kill: async () => {
            child.kill('SIGKILL');
            await exited;
          },
        });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then((code) => resolve({ code, output }));
  });
}

export function running(value: ServiceProcess | { code: number; output: string }): ServiceProcess {
  assert.ok('url' in value, `the service started: ${'output' in value && typeof value.output === 'string' ? value.output : ''}`);
  return value;
}

export function exitOf(value: ServiceProcess | { code: number; output: string }): { code: number; output: string } {
  assert.ok(!('url' in value), 'the service must not start');
  return value as { code: number; output: string };
}

export function assertPoolOf100(answers: Answer[], where: string): void {
  const ips = answers.filter((a) => a.status === 200).map((a) => a.json!.ip as string);
  assert.equal(ips.length, 100, `${where}: 100 succeed`);
  assert.equal(new Set(ips).size, 100, `${where}: 100 distinct IPs`);
  assert.ok(ips.every((ip) => /^203\.0\.113\.\d+$/.test(ip) && Number(ip.split('.')[3]) < 100), `${where}: none excluded`);
  assert.equal(answers.filter((a) => errorCode(a) === 'pool_exhausted').length, 900, `${where}: 900 pool_exhausted`);
}
