// SPEC §1: the enclave keeps no logs of tokens, IPs or subscription ids. A real enclave process
// runs assign and refresh, and the error paths that handle the same secrets, with a unique
// subscription id and unique IPs; none of them, nor any token, may appear in its output, in any
// encoding test/support/secrets.ts knows (hex, base64, base64url, SHA-256 of ids and IPs).

import assert from 'node:assert/strict';
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { decodeAttestationPayload } from '../protocol/attestation-document.js';
import { decodeCoseSign1 } from '../protocol/cose.js';
import { parseResponseBody, type EnclaveResponse } from '../protocol/messages.js';
import type { FrameClient } from './support/frame-client.js';
import { mintSrt, openTokens, sealAssign, sealRefresh, spawnEnclave, type SpawnedEnclave } from './support/enclave.js';
import { assertNoLeak, type Secret } from './support/secrets.js';

const hex16 = (): string => randomInt(1, 0x10000).toString(16);

describe('privacy of the enclave process output', () => {
  let enclave: SpawnedEnclave;
  let client: FrameClient;
  let bootKey: Uint8Array;
  /** Every string that must never reach stdout or stderr. */
  const secrets: Secret[] = [];
  const codes: string[] = [];

  /** `hashed` for identifiers (subscription ids, IPs): their SHA-256 names them as well. */
  const keep = (what: string, value: string, hashed = false): string => {
    secrets.push({ what, value, hashed });
    return value;
  };

  async function send(op: string, body: Record<string, unknown>): Promise<EnclaveResponse> {
    const response = await client.request(op, body);
    codes.push(response.ok ? 'ok' : response.error.code);
    return response;
  }

  before(async () => {
    enclave = await spawnEnclave();
    client = await enclave.connect();
    const attested = await client.request('attest', { nonce: randomBytes(32) });
    assert.ok(attested.ok, 'attest answered ok');
    const { document } = parseResponseBody('attest', attested.body)!;
    bootKey = decodeAttestationPayload(decodeCoseSign1(document).payload).publicKey!;
  });
  after(async () => {
    client?.close();
    await enclave?.stop();
  });

  it('writes no subscription id, IP, SRT, DAT or DRT, through success and error paths alike', async () => {
    const issuer = enclave.issuer();
    const sub = keep('subscription id', `sub-${randomUUID()}`, true);
    const otherSub = keep('other subscription id', `sub-${randomUUID()}`, true);
    const ipv4 = keep('IPv4', `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`, true);
    const ipv6 = keep('IPv6', `2001:db8:${hex16()}:${hex16()}::${hex16()}`, true);
    const srt = keep('SRT', await mintSrt(issuer, { sub, did: 3 }));

    // Success: assign over IPv4 and IPv6, then refresh.
    const first = sealAssign(bootKey, srt);
    const assigned = await send('assign', { ip: ipv4, request: first.request });
    assert.ok(assigned.ok, 'assign over IPv4 answered ok');
    const tokens = openTokens(first.context, parseResponseBody('assign', assigned.body)!.response);
    keep('DAT', tokens.dat);
    const drt = keep('DRT', tokens.drt);
    const v6 = sealAssign(bootKey, srt);
    const assignedV6 = await send('assign', { ip: ipv6, request: v6.request });
    assert.ok(assignedV6.ok, 'assign over IPv6 answered ok');
    const v6Tokens = openTokens(v6.context, parseResponseBody('assign', assignedV6.body)!.response);
    keep('DAT (IPv6)', v6Tokens.dat);
    keep('DRT (IPv6)', v6Tokens.drt);
    const refreshSealed = sealRefresh(bootKey, srt, drt);
    const refreshed = await send('refresh', { ip: ipv4, request: refreshSealed.request });
    assert.ok(refreshed.ok, 'refresh answered ok');
    const refreshedTokens = openTokens(refreshSealed.context, parseResponseBody('refresh', refreshed.body)!.response);
    keep('refreshed DAT', refreshedTokens.dat);
    keep('refreshed DRT', refreshedTokens.drt);

    // Error paths that hold the same secrets when they fail.
    const now = Math.floor(Date.now() / 1000);
    const expiredSrt = keep('expired SRT', await mintSrt(issuer, { sub, did: 3, iat: now - 2 * 86_400, exp: now - 3600 }));
    const otherSrt = keep('SRT of another subscription', await mintSrt(issuer, { sub: otherSub, did: 3 }));
    const resetSrt = keep('SRT after a support reset', await mintSrt(issuer, { sub, did: 4 }));
    const unentitled = keep('SRT without entitlement', await mintSrt(issuer, { sub, did: null }));
    const forged = keep('SRT with a broken signature', `${srt.slice(0, -6)}AAAAAA`);
    const tamperedDrt = keep('tampered DRT', `${drt.slice(0, -6)}AAAAAA`);
    const expectations: Array<[string, Promise<EnclaveResponse>]> = [
      ['srt_expired', send('assign', { ip: ipv4, request: sealAssign(bootKey, expiredSrt).request })],
      ['subject_mismatch', send('refresh', { ip: ipv4, request: sealRefresh(bootKey, otherSrt, drt).request })],
      ['version_mismatch', send('refresh', { ip: ipv4, request: sealRefresh(bootKey, resetSrt, drt).request })],
      ['ip_mismatch', send('refresh', { ip: ipv6, request: sealRefresh(bootKey, srt, drt).request })],
      ['not_entitled', send('assign', { ip: ipv6, request: sealAssign(bootKey, unentitled).request })],
      ['srt_invalid', send('assign', { ip: ipv4, request: sealAssign(bootKey, forged).request })],
      ['drt_invalid', send('refresh', { ip: ipv4, request: sealRefresh(bootKey, srt, tamperedDrt).request })],
      ['decrypt_failed', send('refresh', { ip: ipv4, request: sealAssign(bootKey, srt).request })],
      ['bad_request', send('assign', { ip: keep('non-canonical IP', `10.0.${randomInt(10, 99)}.0${randomInt(10, 99)}`, true), request: first.request })],
    ];
    for (const [code, pending] of expectations) {
      const response = await pending;
      assert.equal(response.ok ? 'ok' : response.error.code, code);
    }

    // Stop the process so that everything it wrote has been flushed, then read it all.
    client.close();
    const status = await enclave.stop();
    assert.equal(status.code, 0);
    const output = enclave.output();
    // The error paths did log, so the check below looks at lines that were written about them.
    const failedCodes = enclave.events().filter((e) => e['event'] === 'request_failed').map((e) => e['code']);
    assert.deepEqual([...failedCodes].sort(), expectations.map(([code]) => code).sort());

    assert.ok(secrets.length >= 15, 'every secret of the run is kept');
    // Ciphertext too: 32 bytes from inside the sealed request and response stand for all of it.
    secrets.push(
      { what: 'sealed request', value: first.request.subarray(8, 40) },
      { what: 'sealed response', value: parseResponseBody('assign', assigned.body)!.response.subarray(8, 40) },
    );
    assertNoLeak(output, secrets, "the enclave's output");
  });
});
