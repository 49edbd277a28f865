// The DIP service end to end (issue 12, `make bench`): assigns and refreshes per second from the
// app's HTTP request to the enclave and back (client → DIP service → parent → enclave), with the
// embedded store and with PostgreSQL; against the in-process refresh of the same run (the enclave
// core alone, bench-support.ts); p50/p99 latency at half the peak rate; and the service process's
// own CPU time per request (from /proc). Everything the app does (tokens, sealing) is prepared
// before a clock starts. Figures only, never pass/fail.
//
//   npx tsx scripts/bench-service.ts [postgres url]

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { attest, type Trust } from '../client/flows.js';
import { DEV_PCRS } from '../client/manifest.js';
import { parseTokenKeys } from '../client/privacy-pass.js';
import { open, seal } from '../client/seal.js';
import { mintDevSrt, parseDevIssuer } from '../client/tokens.js';
import { loadKeyFile } from '../issuer/key-file.js';
import { encodeBase64url, decodeBase64url } from '../protocol/base64url.js';
import { createTokenRequest, finalizeToken, issueTokenResponse } from '../protocol/privacypass-issuance.js';
import { formatAuthorization } from '../protocol/privacypass-http.js';
import { TokenChallenge } from '../protocol/privacypass.js';
import { makeRefreshSetup, runRefreshes } from './bench-support.js';
import { startLocalStack } from './demo.js';

const POSTGRES_URL = process.argv[2] ?? 'postgres://postgres@127.0.0.1:5432/test';
const CONCURRENCY = 32;
const PEAK_ASSIGNS = 1500;
const PEAK_REFRESHES = 3000;
const HALF_RATE_ASSIGNS = 600;
const HALF_RATE_REFRESHES = 1500;
const REFRESH_IPS = 64;
const SEALED_POOL = 256;
const IN_PROCESS_REFRESHES = 3000;
/** Linux reports process CPU time in clock ticks of 1/100 s (USER_HZ) on every platform Node runs on. */
const TICKS_PER_SECOND = 100;

interface ServiceProcess {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

async function startService(args: string[]): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'service/main.ts', '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (output += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('close', r));
    child.kill('SIGTERM');
    await exited;
  };
  for (let i = 0; i < 1200; i++) {
    const port = /"event":"listening","port":(\d+)/.exec(output)?.[1];
    if (port !== undefined) {
      const url = `http://127.0.0.1:${port}`;
      if ((await fetch(`${url}/readyz`).catch(() => null))?.status === 200) return { url, child, stop };
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`the DIP service did not start:\n${output}`);
}

interface Call {
  path: string;
  headers: Record<string, string>;
  body: string;
}

/** One call; a connection that fails (status 0) counts as a failed call, it does not end the run. */
async function send(base: string, call: Call): Promise<{ status: number; json: Record<string, unknown> }> {
  try {
    const response = await fetch(`${base}${call.path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...call.headers }, body: call.body });
    return { status: response.status, json: (await response.json()) as Record<string, unknown> };
  } catch {
    return { status: 0, json: {} };
  }
}

/** Closed loop: `calls` with CONCURRENCY in flight; the rate, and how many did not answer 200. */
async function peak(base: string, calls: Call[]): Promise<{ perSecond: number; failed: string }> {
  let next = 0;
  const failures = new Failures();
  const start = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < calls.length) failures.note(await send(base, calls[next++]!));
  }));
  return { perSecond: (calls.length / (performance.now() - start)) * 1000, failed: failures.toString() };
}

/** The answers other than 200, by error code (or "connection" when none came), for the printout. */
class Failures {
  private readonly counts = new Map<string, number>();
  note(answer: { status: number; json: Record<string, unknown> }): void {
    if (answer.status === 200) return;
    const code = answer.status === 0 ? 'connection' : String((answer.json['error'] as { code?: unknown } | undefined)?.code ?? answer.status);
    this.counts.set(code, (this.counts.get(code) ?? 0) + 1);
  }
  toString(): string {
    return this.counts.size === 0 ? '0 not 200' : [...this.counts].map(([code, n]) => `${n} ${code}`).join(', ');
  }
}

/** Open loop at `rate` per second: each call starts on its schedule whatever the others do. */
async function atRate(base: string, calls: Call[], rate: number): Promise<{ p50: number; p99: number; failed: string }> {
  const latencies: number[] = [];
  const failures = new Failures();
  const start = performance.now();
  await Promise.all(calls.map(async (call, i) => {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const began = performance.now();
    failures.note(await send(base, call));
    latencies.push(performance.now() - began);
  }));
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  return { p50: at(0.5), p99: at(0.99), failed: failures.toString() };
}

const stack = await startLocalStack();
const services: ServiceProcess[] = [];
const schema = `bench_service_${randomBytes(4).toString('hex')}`;
const pgAdmin = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
pgAdmin.on('error', () => {});
try {
  const trust: Trust = { root: readFileSync(join(stack.dir, 'nsm-root.pem'), 'utf8'), expectedPcrs: DEV_PCRS };
  const devIssuer = parseDevIssuer(readFileSync(join(stack.dir, 'srt-issuer.json'), 'utf8'));
  const pinned = parseTokenKeys(readFileSync(join(stack.dir, 'token-keys.json'), 'utf8'));
  const [issuerKey] = loadKeyFile(join(stack.dir, 'issuer-keys.json'));
  const challenge = new TokenChallenge({ issuerName: pinned.issuerName, redemptionContext: new Uint8Array(0), originInfo: pinned.originInfo });
  const srt = await mintDevSrt(devIssuer, { sub: `bench-${randomBytes(4).toString('hex')}`, did: 0 });
  const enclave = await attest({ url: stack.url, trust });
  const bootKey = enclave.bootPublicKey;
  const assignBodies = Array.from({ length: SEALED_POOL }, () => JSON.stringify({ request: encodeBase64url(seal(bootKey, { op: 'assign', srt }).encapsulatedRequest) }));
  const token = (): string => {
    const { request, pending } = createTokenRequest(challenge, issuerKey!.tokenKey);
    return formatAuthorization(finalizeToken(pending, issueTokenResponse(issuerKey!.privateKey, issuerKey!.tokenKey, request)));
  };
  const assigns = (n: number): Call[] => Array.from({ length: n }, (_, i) => ({ path: '/v1/dip/assign', headers: { authorization: token() }, body: assignBodies[i % assignBodies.length]! }));

  const stores: Array<[string, string[]]> = [['embedded (PGlite)', ['--store', join(stack.dir, 'bench-service-db')]]];
  try {
    await pgAdmin.query(`CREATE SCHEMA ${schema}`);
    stores.push(['PostgreSQL', ['--database-url', POSTGRES_URL, '--database-schema', schema]]);
  } catch {
    console.log('PostgreSQL: not measured (nothing answers at the connection string)');
  }

  // The in-process refresh of this run: the enclave core alone, one thread, nothing around it.
  const setup = await makeRefreshSetup({ poolSize: 300, now: () => Math.floor(Date.now() / 1000) });
  await runRefreshes(setup, 500, 16);
  const inProcessStart = performance.now();
  await runRefreshes(setup, IN_PROCESS_REFRESHES, 16);
  const inProcess = (IN_PROCESS_REFRESHES / (performance.now() - inProcessStart)) * 1000;
  console.log(`in-process refresh (enclave core, one thread): ${Math.round(inProcess)}/s`);

  for (const [label, storeArgs] of stores) {
    const service = await startService(['--parent', stack.url, '--token-keys', join(stack.dir, 'token-keys.json'), '--range', '10.64.0.0/16', ...storeArgs]);
    services.push(service);
    const pid = service.child.pid!;
    const peakAssignCalls = assigns(PEAK_ASSIGNS);
    const halfAssignCalls = assigns(HALF_RATE_ASSIGNS);

    // Refresh needs reserved IPs and their DRTs: assign some, opening the answers.
    const held: Array<{ ip: string; drt: string }> = [];
    for (let i = 0; i < REFRESH_IPS; i++) {
      const sealed = seal(bootKey, { op: 'assign', srt });
      const { status, json } = await send(service.url, { path: '/v1/dip/assign', headers: { authorization: token() }, body: JSON.stringify({ request: encodeBase64url(sealed.encapsulatedRequest) }) });
      if (status !== 200) throw new Error(`a set-up assign answered ${status}`);
      held.push({ ip: json['ip'] as string, drt: open(sealed.context, decodeBase64url(json['response'] as string)!).drt });
    }
    const refreshBodies = Array.from({ length: SEALED_POOL }, (_, i) => {
      const { ip, drt } = held[i % held.length]!;
      return JSON.stringify({ ip, request: encodeBase64url(seal(bootKey, { op: 'refresh', srt, drt }).encapsulatedRequest) });
    });
    const refreshes = (n: number): Call[] => Array.from({ length: n }, (_, i) => ({ path: '/v1/dip/refresh', headers: {}, body: refreshBodies[i % refreshBodies.length]! }));

    await peak(service.url, refreshes(300)); // warm-up: JIT, connections

    let cpu = cpuSeconds(pid);
    const assignPeak = await peak(service.url, peakAssignCalls);
    const assignCpuMs = ((cpuSeconds(pid) - cpu) / PEAK_ASSIGNS) * 1000;
    cpu = cpuSeconds(pid);
    const refreshPeak = await peak(service.url, refreshes(PEAK_REFRESHES));
    const refreshCpuMs = ((cpuSeconds(pid) - cpu) / PEAK_REFRESHES) * 1000;
    const assignHalf = await atRate(service.url, halfAssignCalls, assignPeak.perSecond / 2);
    const refreshHalf = await atRate(service.url, refreshes(HALF_RATE_REFRESHES), refreshPeak.perSecond / 2);

    console.log(`${label}:`);
    console.log(`  assign  ${Math.round(assignPeak.perSecond)}/s peak (${PEAK_ASSIGNS}, ${CONCURRENCY} in flight, ${assignPeak.failed}) = ${(assignPeak.perSecond / inProcess).toFixed(2)} of the in-process refresh; at ${Math.round(assignPeak.perSecond / 2)}/s p50 ${assignHalf.p50.toFixed(1)} ms, p99 ${assignHalf.p99.toFixed(1)} ms (${assignHalf.failed}); service CPU ${assignCpuMs.toFixed(2)} ms per assign`);
    console.log(`  refresh ${Math.round(refreshPeak.perSecond)}/s peak (${PEAK_REFRESHES}, ${CONCURRENCY} in flight, ${refreshPeak.failed}) = ${(refreshPeak.perSecond / inProcess).toFixed(2)} of the in-process refresh; at ${Math.round(refreshPeak.perSecond / 2)}/s p50 ${refreshHalf.p50.toFixed(1)} ms, p99 ${refreshHalf.p99.toFixed(1)} ms (${refreshHalf.failed}); service CPU ${refreshCpuMs.toFixed(2)} ms per refresh`);
    await service.stop();
  }
  console.log(`(CPU from /proc/<pid>/stat at ${TICKS_PER_SECOND} Hz; one machine, every process on the same ${(await import('node:os')).availableParallelism()} cores: the client, service, parent and enclave compete)`);
} finally {
  for (const service of services) await service.stop();
  await stack.stop();
  rmSync(stack.dir, { recursive: true, force: true });
  await pgAdmin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
  await pgAdmin.end();
}
