// One bad request must never fail other callers' requests (issue #9 finding): arbitrary JSON
// strings — lone surrogates included — go through every parent route while a steady valid load
// runs on the same single enclave connection. The hostile requests are refused with 4xx; the
// valid load sees no error at all. Seeded, so a failure reproduces.

import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { decodeAttestationPayload } from '../protocol/attestation-document.js';
import { decodeBase64url, encodeBase64url } from '../protocol/base64url.js';
import { decodeCoseSign1 } from '../protocol/cose.js';
import { formatListenAddress } from '../enclave/io/address.js';
import { http, postJson, waitFor } from '../parent/test/helpers.js';
import { startParent, type Child } from '../parent/test/processes.js';
import { startTestCustody, type TestCustody } from './support/kms.js';
import { mintSrt, openTokens, sealAssign, sealRefresh, spawnEnclave, type SpawnedEnclave } from './support/enclave.js';

const SEED = 20261130;

let enclave: SpawnedEnclave;
let parent: Child;
let port: number;

let custody: TestCustody;

before(async () => {
  custody = await startTestCustody();
  enclave = await spawnEnclave();
  // One pooled connection: every hostile request shares it with the valid load.
  ({ parent, port } = await startParent([
    '--enclave', formatListenAddress(enclave.address), '--pool-size', '1', '--timeout-ms', '120000',
    '--attestation-rate', '100000', '--attestation-burst', '100000', ...custody.args,
  ], custody.env));
  await waitFor(async () => (await http(port, '/readyz')).status === 200, 60_000, 'parent ready');
});
after(async () => {
  await parent?.stop();
  await enclave?.stop();
  await custody?.close();
});

/** Any UTF-16 string: well-formed text, lone surrogates and control characters. */
const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit)), maxLength: 40 }),
  fc.constantFrom('\ud800', '\udfff', '192.0.2.1\ud800', '\udbff\udfff\ud800', '::ffff:192.0.2.1', '192.0.2.001'),
);

/** Percent-encodes every code point as its UTF-8 bytes; a lone surrogate as the 3 bytes it would take (WTF-8). */
function percentEncode(text: string): string {
  let out = '';
  for (const char of text) {
    const cp = char.codePointAt(0)!;
    const bytes = cp < 0x80 ? [cp]
      : cp < 0x800 ? [0xc0 | (cp >> 6), 0x80 | (cp & 63)]
        : cp < 0x10000 ? [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)]
          : [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)];
    out += bytes.map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  }
  return out;
}

test('hostile strings on every route are refused with 4xx and never fail a steady valid load on the same connection', async () => {
  const attestation = await http(port, `/v1/attestation?nonce=${encodeBase64url(new Uint8Array(32).fill(5))}`);
  assert.equal(attestation.status, 200, 'attestation for the boot key');
  const document = decodeBase64url((attestation.json as { document: string }).document)!;
  const bootKey = decodeAttestationPayload(decodeCoseSign1(document).payload).publicKey!;
  const ip = '198.51.100.77';
  const srt = await mintSrt(enclave.issuer(), { sub: 'sub-steady-load' });
  const sealed = sealAssign(bootKey, srt);
  const assigned = await postJson(port, '/v1/dip/assign', { ip, request: encodeBase64url(sealed.request) });
  assert.equal(assigned.status, 200, 'the first assign');
  const { drt } = openTokens(sealed.context, decodeBase64url((assigned.json as { response: string }).response)!);
  const valid = encodeBase64url(sealRefresh(bootKey, srt, drt).request);

  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const failures: string[] = [];
  let served = 0;
  let running = true;
  const steady = async (): Promise<void> => {
    while (running) {
      const reply = await postJson(port, '/v1/dip/refresh', { ip, request: valid }, agent);
      if (reply.status === 200) served++;
      else failures.push(`${reply.status} ${reply.text}`);
    }
  };
  const load = Promise.all([steady(), steady()]);

  const hostile = fc.oneof(
    fc.record({ path: fc.constantFrom('/v1/dip/assign', '/v1/dip/refresh'), body: fc.record({ ip: anyString, request: fc.constant(valid) }) }),
    fc.record({ path: fc.constantFrom('/v1/dip/assign', '/v1/dip/refresh'), body: fc.record({ ip: fc.constant(ip), request: anyString }) }),
    fc.record({ path: fc.constantFrom('/v1/dip/assign', '/v1/dip/refresh'), body: fc.record({ ip: anyString, request: anyString }) }),
    fc.record({ path: fc.constantFrom('/v1/dip/assign', '/v1/dip/refresh'), body: fc.dictionary(anyString, anyString, { maxKeys: 3 }) }),
    anyString.map((s) => ({ path: `/v1/attestation?nonce=${percentEncode(s)}`, body: null })),
    fc.tuple(fc.constantFrom('/v1/keys', '/v1/enclaves', '/readyz', '/v1/dip/assign'), fc.constantFrom('/', '?'), anyString)
      .map(([route, separator, s]) => ({ path: `${route}${separator}${percentEncode(s)}`, body: null })),
  );
  try {
    await fc.assert(
      fc.asyncProperty(hostile, async ({ path, body }) => {
        const reply = body === null ? await http(port, path) : await postJson(port, path, body);
        assert.ok(reply.status >= 400 && reply.status < 500, `${path} answered ${reply.status}, not a 4xx`);
      }),
      { seed: SEED, numRuns: 300 },
    );
  } finally {
    running = false;
    await load;
    agent.destroy();
  }
  assert.deepEqual(failures, [], 'the valid load saw no error');
  assert.ok(served > 0, 'the valid load ran');
});
