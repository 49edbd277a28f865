// The parent proxy benchmark: assign and refresh over loopback HTTP through the real parent
// (parent/main.ts) to the real development enclave — a development build of the bundle, as the
// image runs it, with its pool of worker threads (issue 13) — against the in-process refresh
// throughput of createEnclaveService().handle measured in the same run (as bench-core).
// Prints figures only; nothing here is a pass/fail test.
// Run: npx tsx scripts/bench-parent.ts [--workers N]   (the enclave's; default: the CPUs here)

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT, importJWK, type JWK } from 'jose';
import { decodeBase64url, encodeBase64url } from '../protocol/base64url.js';
import { Tagged, decodeCbor, decodePaddedCbor, encodeCbor, encodePaddedCbor } from '../protocol/cbor.js';
import { REQUEST_PLAINTEXT_BYTES, RESPONSE_PLAINTEXT_BYTES } from '../protocol/limits.js';
import { openResponse, sealRequest } from '../protocol/hpke.js';
import { buildDevelopmentBundle } from '../test/support/dev-bundle.js';
import { startTestCustody } from '../test/support/kms.js';
import { makeRefreshSetup, runRefreshes } from './bench-support.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ROUNDS = 3;
const PEAK_REQUESTS = 1500;
const CONCURRENCY = 16;
const IN_PROCESS_REFRESHES = 600;
const SEALED_POOL = 200;
const PACED_SECONDS = 10;
const NOW = () => Math.floor(Date.now() / 1000);

/** utime + stime of a child (or, with `tid`, of one of its threads) from /proc (Linux), in microseconds. */
function cpuMicrosOf(pid: number, tid?: number): number {
  const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

// ---- in-process refresh (the core benchmark's figure (2), measured here in the same run) ----

async function inProcessSetup(): Promise<{ run: (count: number, inFlight: number) => Promise<number> }> {
  const setup = await makeRefreshSetup({ poolSize: SEALED_POOL, now: NOW });
  return {
    async run(count, inFlight) {
      const start = performance.now();
      await runRefreshes(setup, count, inFlight);
      return count / ((performance.now() - start) / 1000);
    },
  };
}

// ---- the stack: dev enclave + parent as child processes ----

function readWorkers(): number {
  const at = process.argv.indexOf('--workers');
  const value = at < 0 ? availableParallelism() : Number(process.argv[at + 1]);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error('--workers takes an integer ≥ 1');
  return value;
}

/**
 * The Node options between `node` and the bundle in deploy/dip-parent.service's ExecStart, so
 * that the parent measured here runs as it does on the host.
 */
function deployedParentNodeOptions(): string[] {
  const unit = readFileSync(join(ROOT, 'deploy', 'dip-parent.service'), 'utf8');
  const exec = /^ExecStart=\S+((?: --\S+)*) \S+\/parent\.mjs$/m.exec(unit);
  if (exec === null) throw new Error('deploy/dip-parent.service: no ExecStart=NODE [--OPTION…] …/parent.mjs');
  return exec[1]!.split(' ').filter((option) => option !== '');
}

/** `node [NODE_OPTIONS…] ARGS…`; a .ts entry runs under tsx. */
function startChild(args: string[], ready: RegExp, nodeOptions: string[] = []): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  const loader = args[0]!.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const child = spawn(process.execPath, [...nodeOptions, ...loader, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let started = false;
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      // Once started, the pipes are still drained (a full pipe would block the child) but dropped.
      if (started) return;
      output += chunk.toString();
      const match = output.match(ready);
      if (match) {
        started = true;
        resolve({ child, match });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', () => reject(new Error(`${args[0]} exited:\n${output}`)));
  });
}

interface Reply {
  status: number;
  body: string;
}

function post(agent: Agent, port: number, path: string, body: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function get(port: number, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    })
      .on('error', reject)
      .end();
  });
}

interface Work {
  path: string;
  body: Buffer;
}

/** Closed loop at fixed concurrency: returns requests per second. */
async function closedLoop(agent: Agent, port: number, work: Work[], count: number, concurrency: number): Promise<number> {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const item = work[next++ % work.length]!;
        const reply = await post(agent, port, item.path, item.body);
        if (reply.status !== 200) throw new Error(`HTTP ${reply.status}: ${reply.body}`);
      }
    }),
  );
  return count / ((performance.now() - start) / 1000);
}

/** Open loop at `rate` requests per second for `seconds`: latency of each, from its scheduled start. */
async function paced(agent: Agent, port: number, work: Work[], rate: number, seconds: number): Promise<number[]> {
  const total = Math.round(rate * seconds);
  const latencies: number[] = [];
  const start = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const item = work[i % work.length]!;
    pending.push(
      post(agent, port, item.path, item.body).then((reply) => {
        if (reply.status !== 200) throw new Error(`HTTP ${reply.status}: ${reply.body}`);
        // From the scheduled time, so a stall of the load generator is not hidden.
        latencies.push(performance.now() - due);
      }),
    );
  }
  await Promise.all(pending);
  return latencies;
}

async function main(): Promise<void> {
  const workers = readWorkers();
  console.log(`bench-parent: node ${process.version}, ${availableParallelism()} CPUs, loopback HTTP, ${ROUNDS} interleaved rounds, medians reported; enclave with --workers ${workers}; parent with node ${deployedParentNodeOptions().join(' ') || '(no options)'} (as deploy/dip-parent.service)`);
  const inProcess = await inProcessSetup();
  await inProcess.run(200, 1); // warm-up

  const dir = mkdtempSync(join(tmpdir(), 'dip-bench-parent-'));
  const children: ChildProcess[] = [];
  // The parent unlocks the (locked) development enclave through the KMS emulator (SPEC §9).
  const custody = await startTestCustody();
  Object.assign(process.env, custody.env);
  try {
    const bundle = await buildDevelopmentBundle(join(dir, 'bundle'));
    const enclave = await startChild([bundle, '--dev', dir, '--listen', `unix:${join(dir, 'enclave.sock')}`, '--workers', String(workers)], /"event":"listening"/);
    children.push(enclave.child);
    custody.kms.trust(readFileSync(join(dir, 'nsm-root.pem'), 'utf8'));
    const parent = await startChild(
      ['parent/main.ts', '--listen', '127.0.0.1:0', '--enclave', `unix:${join(dir, 'enclave.sock')}`, ...custody.args, '--timeout-ms', '60000', '--attestation-burst', '100'],
      /"event":"listening","scheme":"http","port":(\d+)/,
      deployedParentNodeOptions(),
    );
    children.push(parent.child);
    const port = Number(parent.match[1]);
    for (let i = 0; i < 200 && (await get(port, '/readyz')).status !== 200; i++) await new Promise((r) => setTimeout(r, 50));

    // Setup through the parent, outside every timed loop: attest, assign once, seal pools.
    const nonce = encodeBase64url(crypto.getRandomValues(new Uint8Array(32)));
    let cose = decodeCbor(decodeBase64url((JSON.parse((await get(port, `/v1/attestation?nonce=${nonce}`)).body) as { document: string }).document)!);
    if (cose instanceof Tagged) cose = cose.value;
    const bootKey = (decodeCbor((cose as Uint8Array[])[2]!) as Map<string, Uint8Array>).get('public_key')!;
    const issuer = JSON.parse(readFileSync(join(dir, 'srt-issuer.json'), 'utf8')) as { iss: string; aud: string | null; jwk: JWK & { kid: string; alg: string } };
    const srt = await new SignJWT({ entitlements: { 'xv.vpn.dip': { did: 0 } }, ...(issuer.aud === null ? {} : { aud: issuer.aud }) })
      .setProtectedHeader({ alg: issuer.jwk.alg, kid: issuer.jwk.kid })
      .setIssuer(issuer.iss)
      .setSubject('bench-subscription')
      .setIssuedAt(NOW() - 60)
      .setExpirationTime(NOW() + 3600)
      .sign(await importJWK(issuer.jwk, issuer.jwk.alg));
    const agent = new Agent({ keepAlive: true, maxSockets: 256 });
    const first = sealRequest(bootKey, 'assign', encodePaddedCbor({ srt }, REQUEST_PLAINTEXT_BYTES));
    const assigned = await post(agent, port, '/v1/dip/assign', Buffer.from(JSON.stringify({ ip: '203.0.113.9', request: encodeBase64url(first.encapsulatedRequest) })));
    const response = decodeBase64url((JSON.parse(assigned.body) as { response: string }).response)!;
    const drt = (decodePaddedCbor(openResponse(first.context, response), RESPONSE_PLAINTEXT_BYTES) as Map<string, string>).get('drt')!;
    const refreshes: Work[] = [];
    const mixed: Work[] = [];
    for (let i = 0; i < SEALED_POOL; i++) {
      const refresh = { path: '/v1/dip/refresh', body: Buffer.from(JSON.stringify({ ip: '203.0.113.9', request: encodeBase64url(sealRequest(bootKey, 'refresh', encodePaddedCbor({ srt, drt }, REQUEST_PLAINTEXT_BYTES)).encapsulatedRequest) })) };
      const assign = { path: '/v1/dip/assign', body: Buffer.from(JSON.stringify({ ip: `10.9.${i >> 8}.${i & 255}`, request: encodeBase64url(sealRequest(bootKey, 'assign', encodePaddedCbor({ srt }, REQUEST_PLAINTEXT_BYTES)).encapsulatedRequest) })) };
      refreshes.push(refresh);
      mixed.push(assign, refresh);
    }
    await closedLoop(agent, port, refreshes, 300, CONCURRENCY); // warm-up: JIT in all three processes

    const rounds: Array<{ local1: number; local16: number; refresh: number; mix: number; cpu: number[] }> = [];
    for (let r = 0; r < ROUNDS; r++) {
      // Interleaved, so that noise from the machine's other tenants hits every figure alike.
      const local1 = await inProcess.run(IN_PROCESS_REFRESHES, 1);
      const local16 = await inProcess.run(IN_PROCESS_REFRESHES, 16);
      const refresh = await closedLoop(agent, port, refreshes, PEAK_REQUESTS, CONCURRENCY);
      const mix = await closedLoop(agent, port, mixed, PEAK_REQUESTS, CONCURRENCY);
      // Where the CPU goes per refresh: enclave (all threads, and its main thread alone — its tid is
      // the pid — which owns the socket, the frames and the dispatch to the workers), parent, and
      // this load generator. In a loop of its own straight after the round's others (measured in
      // the round's first loop, just after the in-process runs left the stack idle, the parent's
      // figure read up to twice as high), and in every round (one such loop after all the rounds
      // moved the parent's figure by a third between runs of the same code).
      const before = [cpuMicrosOf(enclave.child.pid!), cpuMicrosOf(parent.child.pid!), cpuMicrosOf(enclave.child.pid!, enclave.child.pid!), process.cpuUsage()] as const;
      await closedLoop(agent, port, refreshes, PEAK_REQUESTS, CONCURRENCY);
      const client = process.cpuUsage(before[3]);
      const cpu = [
        (cpuMicrosOf(enclave.child.pid!) - before[0]) / PEAK_REQUESTS,
        (cpuMicrosOf(parent.child.pid!) - before[1]) / PEAK_REQUESTS,
        (cpuMicrosOf(enclave.child.pid!, enclave.child.pid!) - before[2]) / PEAK_REQUESTS,
        (client.user + client.system) / PEAK_REQUESTS,
      ];
      rounds.push({ local1, local16, refresh, mix, cpu });
      console.log(`  round ${r + 1}: in-process ${local1.toFixed(0)}/s (1 in flight), ${local16.toFixed(0)}/s (16); through the parent: refresh ${refresh.toFixed(0)}/s, assign+refresh ${mix.toFixed(0)}/s`);
    }
    const perRequest = [0, 1, 2, 3].map((i) => median(rounds.map((r) => r.cpu[i]!)));
    const local = Math.max(median(rounds.map((r) => r.local1)), median(rounds.map((r) => r.local16)));
    const peakRefresh = median(rounds.map((r) => r.refresh));
    const peakMix = median(rounds.map((r) => r.mix));
    const rate = peakMix / 2;
    const latencies = await paced(agent, port, mixed, rate, PACED_SECONDS);
    agent.destroy();

    console.log(`(1) in-process refresh, one thread (createEnclaveService().handle, best of 1 and 16 in flight): ${local.toFixed(0)} refresh/s`);
    console.log(`(2) through the parent to the enclave with ${workers} worker thread(s), ${CONCURRENCY} concurrent keep-alive clients: refresh ${peakRefresh.toFixed(0)}/s; assign+refresh (alternating) ${peakMix.toFixed(0)} req/s`);
    console.log(`(3) ratio to the one-thread in-process refresh: refresh ${(peakRefresh / local).toFixed(2)}, assign+refresh ${(peakMix / local).toFixed(2)}   (the enclave, the parent and this load generator share ${availableParallelism()} CPUs)`);
    console.log(`(5) CPU per refresh through the parent (median of the rounds): enclave ${perRequest[0]!.toFixed(0)} µs (all its threads; its main thread — socket, frames, dispatch — ${perRequest[2]!.toFixed(0)} µs), parent ${perRequest[1]!.toFixed(0)} µs, load generator ${perRequest[3]!.toFixed(0)} µs (on ${availableParallelism()} CPUs)`);
    console.log(`(4) assign+refresh paced at half the peak (${rate.toFixed(0)} req/s for ${PACED_SECONDS} s, ${latencies.length} requests): p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms   (target p99 ≤ 20 ms)`);
  } finally {
    for (const child of children.reverse()) {
      if (child.exitCode === null) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await gone;
      }
    }
    rmSync(dir, { recursive: true, force: true });
    await custody.close();
  }
}

await main();
