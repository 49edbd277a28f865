// Throughput of the SPEC §4 encapsulation (protocol/hpke.ts) beside one bare node:crypto P-256
// ECDH, the floor that openRequest cannot beat. Prints figures; it is never a timed test.
// Usage: npx tsx scripts/bench-hpke.ts [count]   (default 1000 operations per round, after a warm-up)
// Each figure is the best of ROUNDS interleaved rounds, both per wall-clock second and per second of
// this process's CPU time (user + system): on a shared, loaded machine the CPU figure is the steadier.

import { createECDH } from 'node:crypto';
import {
  generateBootKey,
  openRequest,
  openResponse,
  sealRequest,
  sealResponse,
  type ResponseContext,
} from '../protocol/hpke.js';
import { encodePaddedCbor } from '../protocol/cbor.js';
import { REQUEST_PLAINTEXT_BYTES, RESPONSE_PLAINTEXT_BYTES } from '../protocol/limits.js';

const count = Number(process.argv[2] ?? 1000);
const ROUNDS = 5;
if (!Number.isSafeInteger(count) || count < 1) throw new TypeError('count must be a positive integer');
const WARM_UP = Math.min(200, count);

const bootKey = generateBootKey();
// SPEC §4: plaintexts are padded to fixed sizes, so these sizes are what every request costs.
const payload = encodePaddedCbor({ srt: 'x'.repeat(600), drt: 'y'.repeat(400) }, REQUEST_PLAINTEXT_BYTES);
const answer = encodePaddedCbor({ dat: 'd'.repeat(500), drt: 'r'.repeat(600) }, RESPONSE_PLAINTEXT_BYTES);

interface Bench {
  readonly label: string;
  readonly op: (i: number) => unknown;
  bestWall: number;
  bestCpu: number;
}

function round(bench: Bench): void {
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) bench.op(i);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpuStart);
  bench.bestWall = Math.max(bench.bestWall, count / seconds);
  bench.bestCpu = Math.max(bench.bestCpu, count / ((cpu.user + cpu.system) / 1e6));
}

// Inputs for every operation, made before timing starts.
const sealed = Array.from({ length: count }, () => sealRequest(bootKey.publicKeySpki, 'refresh', payload));
const contexts: ResponseContext[] = sealed.map((s) => s.context);
const opened = sealed.map((s) => openRequest(bootKey, 'refresh', s.encapsulatedRequest));
const responses = opened.map((o) => sealResponse(o.context, answer));
const ecdh = createECDH('prime256v1');
ecdh.generateKeys();

const benches: Bench[] = [
  { label: 'sealRequest', op: () => sealRequest(bootKey.publicKeySpki, 'refresh', payload), bestWall: 0, bestCpu: 0 },
  { label: 'openRequest', op: (i) => openRequest(bootKey, 'refresh', sealed[i]!.encapsulatedRequest), bestWall: 0, bestCpu: 0 },
  { label: 'sealResponse', op: (i) => sealResponse(opened[i]!.context, answer), bestWall: 0, bestCpu: 0 },
  { label: 'openResponse', op: (i) => openResponse(contexts[i]!, responses[i]!), bestWall: 0, bestCpu: 0 },
  {
    label: 'openRequest + sealResponse',
    op: (i) => sealResponse(openRequest(bootKey, 'refresh', sealed[i]!.encapsulatedRequest).context, answer),
    bestWall: 0,
    bestCpu: 0,
  },
  { label: 'bare ECDH P-256 (node)', op: (i) => ecdh.computeSecret(contexts[i]!.enc), bestWall: 0, bestCpu: 0 },
];

console.log(`node ${process.version}; best of ${ROUNDS} rounds of ${count} operations after ${WARM_UP} warm-up;`
  + ` payload ${payload.length} B, response ${answer.length} B`);
for (const bench of benches) for (let i = 0; i < WARM_UP; i++) bench.op(i);
for (let r = 0; r < ROUNDS; r++) for (const bench of benches) round(bench);
const column = (n: number): string => Math.round(n).toString().padStart(9);
console.log(`${'operation'.padEnd(28)} ${'ops/s CPU'.padStart(9)} ${'µs CPU'.padStart(7)} ${'ops/s wall'.padStart(10)}`);
for (const { label, bestCpu, bestWall } of benches) {
  console.log(`${label.padEnd(28)} ${column(bestCpu)} ${(1e6 / bestCpu).toFixed(1).padStart(7)} ${column(bestWall).padStart(10)}`);
}
