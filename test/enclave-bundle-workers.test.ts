// Issue 13 as the image runs it: one bundle file, whose worker threads run that same file. A
// development build of the bundle (test/support/dev-bundle.ts: the image's esbuild options but
// DIP_BUILD) serves every op through its pool of two workers, with one boot key and one M.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyAttestation } from '../client/attestation.js';
import { DEV_PCRS } from '../client/manifest.js';
import { mCommitOf } from '../enclave/core/keys.js';
import { keyIdOf } from '../protocol/hpke.js';
import { parseResponseBody } from '../protocol/messages.js';
import { buildDevelopmentBundle } from './support/dev-bundle.js';
import { TEST_MASTER_SECRET, mintSrt, openTokens, sealAssign, sealRefresh, spawnEnclave, type SpawnedEnclave } from './support/enclave.js';
import type { FrameClient } from './support/frame-client.js';

describe('the enclave bundle with --workers 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dip-bundle-workers-'));
  let enclave: SpawnedEnclave;
  let client: FrameClient;
  before(async () => {
    const bundle = await buildDevelopmentBundle(join(dir, 'bundle'));
    enclave = await spawnEnclave({ dir: join(dir, 'state'), bundle, workers: 2 });
    client = await enclave.connect();
  });
  after(async () => {
    client?.close();
    await enclave?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts two workers from its own file, and they serve attest, assign and refresh with one boot key and one M', async () => {
    assert.equal(enclave.events().find((e) => e['event'] === 'started')?.['workers'], 2);
    const nonce = new Uint8Array(32).fill(7);
    const attested = await client.request('attest', { nonce });
    assert.ok(attested.ok, 'attest answered ok');
    const bootKey = verifyAttestation(parseResponseBody('attest', attested.body)!.document, { root: enclave.rootPem(), nonce, expectedPcrs: DEV_PCRS }).publicKey!;
    const healths = await Promise.all(Array.from({ length: 16 }, () => client.request('health')));
    for (const health of healths) {
      assert.ok(health.ok, 'health answered ok');
      assert.deepEqual(health.body.get('key_id'), keyIdOf(bootKey), 'every worker holds the attested boot key');
      assert.deepEqual(health.body.get('m_commit'), mCommitOf(TEST_MASTER_SECRET), 'and M');
    }
    const srt = await mintSrt(enclave.issuer(), { sub: 'sub-bundle' });
    const sealed = sealAssign(bootKey, srt);
    const assigned = await client.request('assign', { ip: '192.0.2.44', request: sealed.request });
    assert.ok(assigned.ok, 'assign answered ok');
    const { drt } = openTokens(sealed.context, parseResponseBody('assign', assigned.body)!.response);
    const refreshes = await Promise.all(Array.from({ length: 8 }, () => client.request('refresh', { ip: '192.0.2.44', request: sealRefresh(bootKey, srt, drt).request })));
    assert.ok(refreshes.every((r) => r.ok), 'every refresh answered ok, whichever worker took it');
  });
});
