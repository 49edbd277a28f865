// Throughput of the SPEC §4 encapsulation (protocol/hpke.ts) beside one bare node:crypto P-256
// ECDH, the floor that openRequest cannot beat. Prints figures; it is never a timed test.
// Usage: npx tsx scripts/bench-hpke.ts [count]   (default 1000 operations per round, after a warm-up)
// Each figure is the best of ROUNDS rounds, so that load from other processes on a shared machine
// shows less; the rounds of all operations are interleaved for the same reason.

import { createECDH } from 'node:crypto';
import {
  generateBootKey,
  openRequest,
  openResponse,
  sealRequest,
  sealResponse,
  type ResponseContext,
} from '../protocol/hpke.js';

const count = Number(process.argv[2] ?? 1000);
const ROUNDS = 5;
if (!Number.isSafeInteger(count) || count < 1) throw new TypeError('count must be a positive integer');
const WARM_UP = Math.min(200, count);

const bootKey = generateBootKey();
const payload = new TextEncoder().encode(JSON.stringify({ srt: 'x'.repeat(600), drt: 'y'.repeat(400) }));
const answer = new TextEncoder().encode(JSON.stringify({ dat: 'd'.repeat(500), drt: 'r'.repeat(600) }));

interface Bench {
  readonly label: string;
  readonly op: (i: number) => unknown;
  best: number;
}

function round(bench: Bench): void {
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) bench.op(i);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  bench.best = Math.max(bench.best, count / seconds);
}

// Inputs for every operation, made before timing starts.
const sealed = Array.from({ length: count }, () => sealRequest(bootKey.publicKeySpki, 'refresh', payload));
const contexts: ResponseContext[] = sealed.map((s) => s.context);
const opened = sealed.map((s) => openRequest(bootKey, 'refresh', s.encapsulatedRequest));
const responses = opened.map((o) => sealResponse(o.context, answer));
const ecdh = createECDH('prime256v1');
ecdh.generateKeys();

const benches: Bench[] = [
  { label: 'sealRequest', op: () => sealRequest(bootKey.publicKeySpki, 'refresh', payload), best: 0 },
  { label: 'openRequest', op: (i) => openRequest(bootKey, 'refresh', sealed[i]!.encapsulatedRequest), best: 0 },
  { label: 'sealResponse', op: (i) => sealResponse(opened[i]!.context, answer), best: 0 },
  { label: 'openResponse', op: (i) => openResponse(contexts[i]!, responses[i]!), best: 0 },
  {
    label: 'openRequest + sealResponse',
    op: (i) => sealResponse(openRequest(bootKey, 'refresh', sealed[i]!.encapsulatedRequest).context, answer),
    best: 0,
  },
  { label: 'bare ECDH P-256 (node)', op: (i) => ecdh.computeSecret(contexts[i]!.enc), best: 0 },
];

console.log(`node ${process.version}; best of ${ROUNDS} rounds of ${count} operations after ${WARM_UP} warm-up;`
  + ` payload ${payload.length} B, response ${answer.length} B`);
for (const bench of benches) for (let i = 0; i < WARM_UP; i++) bench.op(i);
for (let r = 0; r < ROUNDS; r++) for (const bench of benches) round(bench);
for (const { label, best } of benches) {
  console.log(`${label.padEnd(28)} ${Math.round(best).toString().padStart(7)} ops/s  ${(1e6 / best).toFixed(1).padStart(7)} µs/op`);
}
