import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ClientError } from '../errors.js';
import { DEV_PCRS, parseManifest, parsePcrHex, pcrToHex, pcrsFromManifest } from '../manifest.js';

const hex = (seed: string) => createHash('sha384').update(seed).digest('hex');
const [A, B, C] = [hex('a'), hex('b'), hex('c')];

function isCode(code: string) {
  return (error: unknown) => error instanceof ClientError && error.code === code;
}

describe('PCR manifest', () => {
  it('reads PCR0..2 at the top level', () => {
    const pcrs = pcrsFromManifest({ PCR0: A, PCR1: B, PCR2: C, builtAt: 'x' });
    assert.deepEqual([pcrToHex(pcrs.pcr0), pcrToHex(pcrs.pcr1), pcrToHex(pcrs.pcr2)], [A, B, C]);
  });

  it('reads nitro-cli Measurements, a "pcrs" map with numeric keys, and lower-case names', () => {
    const nitro = { Measurements: { HashAlgorithm: 'Sha384 { ... }', PCR0: A.toUpperCase(), PCR1: B, PCR2: C } };
    assert.equal(pcrToHex(pcrsFromManifest(nitro).pcr0), A);
    assert.equal(pcrToHex(pcrsFromManifest({ pcrs: { 0: A, 1: B, 2: C } }).pcr2), C);
    assert.equal(pcrToHex(pcrsFromManifest({ measurements: { pcr0: A, pcr1: B, pcr2: `0x${C}` } }).pcr2), C);
  });

  it('a manifest with no PCR values yet is a clear manifest_empty error', () => {
    for (const m of [{}, { PCR0: null, PCR1: null, PCR2: null }, { pcrs: {} }, { PCR0: '', PCR1: '', PCR2: '' }]) {
      assert.throws(() => pcrsFromManifest(m), (e: unknown) => isCode('manifest_empty')(e) && /no Docker build has run/.test((e as Error).message));
    }
  });

  it('a partial or malformed manifest is manifest_invalid', () => {
    for (const m of [{ PCR0: A }, { PCR0: A, PCR1: B, PCR2: 'zz' }, { PCR0: A, PCR1: B, PCR2: 7 }, { PCR0: A, PCR1: B, PCR2: A.slice(2) }, [], 'x', null]) {
      assert.throws(() => pcrsFromManifest(m), isCode('manifest_invalid'));
    }
    assert.throws(() => parseManifest('{not json'), isCode('manifest_invalid'));
    assert.equal(pcrToHex(parseManifest(JSON.stringify({ PCR0: A, PCR1: B, PCR2: C })).pcr1), B);
  });

  it('PCR hex of 32, 48 and 64 bytes is accepted, other lengths are not', () => {
    assert.equal(parsePcrHex('ab'.repeat(32))?.length, 32);
    assert.equal(parsePcrHex('ab'.repeat(48))?.length, 48);
    assert.equal(parsePcrHex('ab'.repeat(64))?.length, 64);
    assert.equal(parsePcrHex('ab'.repeat(47)), null);
  });

  it('the development PCRs are SHA-384 of "dev-pcr0".."dev-pcr2"', () => {
    assert.equal(pcrToHex(DEV_PCRS.pcr0), createHash('sha384').update('dev-pcr0').digest('hex'));
    assert.equal(pcrToHex(DEV_PCRS.pcr2), createHash('sha384').update('dev-pcr2').digest('hex'));
  });

  it('reads the repository\'s pcr-manifest.json (dip-pcr-manifest/1): pending → manifest_empty, measured → its PCRs', () => {
    const text = readFileSync(new URL('../../pcr-manifest.json', import.meta.url), 'utf8');
    const manifest = JSON.parse(text) as { format: string; pcrs: { status: string; PCR0: string | null } };
    assert.equal(manifest.format, 'dip-pcr-manifest/1');
    if (manifest.pcrs.status === 'pending') assert.throws(() => parseManifest(text), isCode('manifest_empty'));
    else assert.equal(pcrToHex(parseManifest(text).pcr0), manifest.pcrs.PCR0);
  });

  it('reads both pcrs variants of the dip-pcr-manifest/1 schema', () => {
    const pending = { format: 'dip-pcr-manifest/1', pcrs: { status: 'pending', reason: 'no build', PCR0: null, PCR1: null, PCR2: null } };
    assert.throws(() => pcrsFromManifest(pending), isCode('manifest_empty'));
    const measured = { format: 'dip-pcr-manifest/1', pcrs: { status: 'measured', source: 'nitro-cli', PCR0: A, PCR1: B, PCR2: C, PCR8: A } };
    const pcrs = pcrsFromManifest(measured);
    assert.deepEqual([pcrToHex(pcrs.pcr0), pcrToHex(pcrs.pcr1), pcrToHex(pcrs.pcr2)], [A, B, C]);
  });
});
