// The whole life of a Dedicated IP through real processes: the development enclave (NSM
// emulator) on a Unix socket and the parent on a loopback port, driven by the client flows and
// by the `dip` CLI. Nothing here is faked between the app and the enclave.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runDip } from './support/dip-cli.js';
import { assertNoLeak } from './support/secrets.js';
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import { decodeBackupText, encodeBackupText, openBackup, sealBackup } from '../client/backup.js';
import { ClientError } from '../client/errors.js';
import { assign, attest, refresh, type Trust } from '../client/flows.js';
import { DEV_PCRS } from '../client/manifest.js';
import { reservedUntilOf } from '../protocol/limits.js';
import { mintDevSrt, parseDevIssuer, type DevIssuer } from '../client/tokens.js';
import { startLocalStack, type LocalStack } from '../scripts/demo.js';

const FAST_BACKUP = { log2N: 14, r: 8, p: 1 };

let stack: LocalStack;
let trust: Trust;
let issuer: DevIssuer;

before(async () => {
  stack = await startLocalStack();
  trust = { root: readFileSync(join(stack.dir, 'nsm-root.pem'), 'utf8'), expectedPcrs: DEV_PCRS };
  issuer = parseDevIssuer(readFileSync(join(stack.dir, 'srt-issuer.json'), 'utf8'));
}, { timeout: 180_000 });

after(async () => {
  await stack?.stop();
});

function refusedWith(code: string) {
  return (error: unknown) => error instanceof ClientError && error.code === code && error.fromServer;
}

describe('end to end through the parent and enclave processes', () => {
  it('assign, use the DAT, refresh, restore the DRT on a second device; a support reset makes the old DRT fail with version_mismatch', async () => {
    const sub = 'e2e-subscription-7f3a';
    const ip = '2001:db8::42';
    const url = stack.url;
    const srt = await mintDevSrt(issuer, { sub, did: 4 });

    const enclave = await attest({ url, trust });
    assert.ok(enclave.attestation.moduleId.startsWith('dev-'), 'an emulator module id starts with dev-');

    const first = await assign({ url, trust, srt, ip });
    assert.equal(first.ip, ip);
    assert.equal(first.drtClaims.sub, sub);
    assert.equal(first.drtClaims.did, 4);
    assert.equal(first.reservedUntil, reservedUntilOf(first.drtClaims.exp), 'reservedUntil is the DRT exp rounded up');

    // A VPN server checks the DAT with nothing but GET /v1/keys.
    const keys = createLocalJWKSet(JSON.parse(Buffer.from(enclave.jwks).toString('utf8')));
    const { payload } = await jwtVerify(first.dat, keys, { algorithms: ['ES256'], typ: 'dat+jwt' });
    assert.deepEqual(payload['xv.vpn.dip.details'], { ip });
    assert.equal(payload.sub, undefined);
    await assert.rejects(jwtVerify(first.drt, keys, { algorithms: ['ES256'], typ: 'dat+jwt' }));

    const second = await refresh({ url, trust, srt, drt: first.drt });
    assert.equal(second.ip, ip);
    assert.notEqual(second.datClaims.jti, first.datClaims.jti);

    // Second device: the DRT travels as a backup under an access code.
    const backup = encodeBackupText(await sealBackup(second.drt, 'e2e access code', FAST_BACKUP));
    await assert.rejects(openBackup(decodeBackupText(backup), 'e2e access kode'), (e: unknown) => e instanceof ClientError && e.code === 'backup_wrong_code');
    const restored = await openBackup(decodeBackupText(backup), 'e2e access code');
    const third = await refresh({ url, trust, srt: await mintDevSrt(issuer, { sub, did: 4 }), drt: restored });
    assert.equal(third.ip, ip);

    // Support reset: did 4 → 5. Every older DRT stops refreshing; a fresh assign works.
    const resetSrt = await mintDevSrt(issuer, { sub, did: 5 });
    await assert.rejects(refresh({ url, trust, srt: resetSrt, drt: third.drt }), refusedWith('version_mismatch'));
    await assert.rejects(refresh({ url, trust, srt: resetSrt, drt: first.drt }), refusedWith('version_mismatch'));
    const fresh = await assign({ url, trust, srt: resetSrt, ip });
    assert.equal(fresh.drtClaims.did, 5);
    assert.equal((await refresh({ url, trust, srt: resetSrt, drt: fresh.drt })).ip, ip);

    // Privacy (SPEC §1, §6): neither process logged the subscription id, the IP or a token.
    const logs = stack.output();
    assertNoLeak(logs, [
      { what: 'subscription id', value: sub, hashed: true },
      { what: 'IP', value: ip, hashed: true },
      ...Object.entries({ srt, firstDat: first.dat, firstDrt: first.drt, secondDrt: second.drt, restoredDrt: restored }).map(([what, value]) => ({ what, value })),
    ], 'the enclave\'s and the parent\'s output');
  });

  it('the enclave refuses a DRT presented with another subscription\'s SRT (subject_mismatch) and an SRT without the entitlement', async () => {
    const mine = await assign({ url: stack.url, trust, srt: await mintDevSrt(issuer, { sub: 'alice', did: 0 }), ip: '192.0.2.10' });
    const other = await mintDevSrt(issuer, { sub: 'mallory', did: 0 });
    await assert.rejects(refresh({ url: stack.url, trust, srt: other, drt: mine.drt }), refusedWith('subject_mismatch'));
    await assert.rejects(
      assign({ url: stack.url, trust, srt: await mintDevSrt(issuer, { sub: 'bob', did: null }), ip: '192.0.2.11' }),
      refusedWith('not_entitled'),
    );
  });

  it('a client expecting production PCRs refuses the development enclave before sending anything', async () => {
    const production = { ...trust, expectedPcrs: { ...DEV_PCRS, pcr0: new Uint8Array(48).fill(0x5a) } };
    await assert.rejects(
      assign({ url: stack.url, trust: production, srt: await mintDevSrt(issuer, { sub: 'carol', did: 0 }), ip: '192.0.2.12' }),
      (e: unknown) => e instanceof ClientError && e.code === 'attestation_failed' && e.detail === 'pcr_mismatch',
    );
  });

  it('the dip CLI runs the same flow: dev-srt, attest, assign, refresh, and a reset gives version_mismatch', async () => {
    const dip = runDip;
    const dev = ['--url', stack.url, '--dev', '--dev-dir', stack.dir];
    const srtFile = join(stack.dir, 'cli-srt.jwt');
    const drtFile = join(stack.dir, 'cli-drt.jwt');
    assert.equal((await dip('dev-srt', '--sub', 'cli-sub', '--did', '1', '--dev-dir', stack.dir, '--out', srtFile)).code, 0);
    const attested = await dip('attest', ...dev, '--json');
    assert.equal(attested.code, 0, attested.stderr);
    assert.equal(JSON.parse(attested.stdout).pcrsChecked, true);
    const assigned = await dip('assign', ...dev, '--srt', srtFile, '--ip', '203.0.113.99', '--drt-out', drtFile, '--json');
    assert.equal(assigned.code, 0, assigned.stderr);
    assert.equal(JSON.parse(assigned.stdout).ip, '203.0.113.99');
    assert.equal(decodeJwt(readFileSync(drtFile, 'utf8').trim()).sub, 'cli-sub');
    const refreshed = await dip('refresh', ...dev, '--srt', srtFile, '--drt', drtFile, '--drt-out', drtFile);
    assert.equal(refreshed.code, 0, refreshed.stderr);
    const resetSrt = await dip('dev-srt', '--sub', 'cli-sub', '--did', '2', '--dev-dir', stack.dir);
    writeFileSync(srtFile, resetSrt.stdout);
    const refused = await dip('refresh', ...dev, '--srt', srtFile, '--drt', drtFile);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /the server refused: version_mismatch/);
  });
});
