import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { runDip } from '../../test/support/dip-cli.js';
import { ClientError } from '../errors.js';
import { DEV_PCRS, parseManifest, parsePcrHex, pcrToHex, pcrsFromManifest } from '../manifest.js';

const hex = (seed: string) => createHash('sha384').update(seed).digest('hex');
const [A, B, C] = [hex('a'), hex('b'), hex('c')];

function isCode(code: string, detail?: string) {
  return (error: unknown) => error instanceof ClientError && error.code === code && error.detail === detail;
}

const hexOf = (pcr: Uint8Array | undefined): string | undefined => (pcr === undefined ? undefined : pcrToHex(pcr));

describe('PCR manifest', () => {
  it('reads PCR0..2 at the top level', () => {
    const pcrs = pcrsFromManifest({ PCR0: A, PCR1: B, PCR2: C, builtAt: 'x' });
    assert.deepEqual([hexOf(pcrs.pcr0), pcrToHex(pcrs.pcr1), pcrToHex(pcrs.pcr2)], [A, B, C]);
  });

  it('reads nitro-cli Measurements, a "pcrs" map with numeric keys, and lower-case names', () => {
    const nitro = { Measurements: { HashAlgorithm: 'Sha384 { ... }', PCR0: A.toUpperCase(), PCR1: B, PCR2: C } };
    assert.equal(hexOf(pcrsFromManifest(nitro).pcr0), A);
    assert.equal(pcrToHex(pcrsFromManifest({ pcrs: { 0: A, 1: B, 2: C } }).pcr2), C);
    assert.equal(pcrToHex(pcrsFromManifest({ measurements: { pcr0: A, pcr1: B, pcr2: `0x${C}` } }).pcr2), C);
  });

  it('a manifest with no PCR values yet is a clear manifest_empty error', () => {
    for (const m of [{}, { PCR0: null, PCR1: null, PCR2: null }, { pcrs: {} }, { PCR0: '', PCR1: '', PCR2: '' }]) {
      assert.throws(() => pcrsFromManifest(m), (e: unknown) => isCode('manifest_empty')(e) && /lacks the measured PCR1 and PCR2/.test((e as Error).message));
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

  it("reads the repository's pcr-manifest.json (dip-pcr-manifest/2) by what it has measured", () => {
    const text = readFileSync(new URL('../../pcr-manifest.json', import.meta.url), 'utf8');
    const manifest = JSON.parse(text) as { format: string; pcrs: { PCR0: string | null; PCR1: string | null; PCR2: string } };
    assert.equal(manifest.format, 'dip-pcr-manifest/2');
    if (manifest.pcrs.PCR1 === null) assert.throws(() => parseManifest(text), isCode('manifest_empty', 'pcr1_pending'));
    else {
      const pcrs = parseManifest(text);
      assert.deepEqual([hexOf(pcrs.pcr0), hexOf(pcrs.pcr1), hexOf(pcrs.pcr2)], [manifest.pcrs.PCR0 ?? undefined, manifest.pcrs.PCR1, manifest.pcrs.PCR2]);
    }
  });

  // The three pcrs states of pcr-manifest.schema.json, and one with nothing measured.
  const v2 = (PCR0: string | null, PCR1: string | null, PCR2: string | null) => ({ format: 'dip-pcr-manifest/2', pcrs: { source: 'dip-eif build', PCR0, PCR1, PCR2, pending: {} } });

  it('a manifest with PCR0 pending but PCR1 and PCR2 known pins PCR1 and PCR2 only', () => {
    const pcrs = pcrsFromManifest(v2(null, B, C));
    assert.deepEqual([hexOf(pcrs.pcr0), hexOf(pcrs.pcr1), hexOf(pcrs.pcr2)], [undefined, B, C]);
    assert.ok(!('pcr0' in pcrs), 'no pcr0 key, so the verifier skips PCR0');
    const all = pcrsFromManifest(v2(A, B, C));
    assert.deepEqual([hexOf(all.pcr0), hexOf(all.pcr1), hexOf(all.pcr2)], [A, B, C]);
  });

  it('a manifest with PCR1 pending is refused (manifest_empty, pcr1_pending): PCR2 alone does not pin the kernel and init', () => {
    assert.throws(() => pcrsFromManifest(v2(null, null, C)), isCode('manifest_empty', 'pcr1_pending'));
    assert.throws(() => pcrsFromManifest(v2(null, null, null)), isCode('manifest_empty'));
    // PCR0 without the PCR it covers is malformed, as is PCR2 missing beside PCR1.
    assert.throws(() => pcrsFromManifest(v2(A, null, C)), isCode('manifest_invalid'));
    assert.throws(() => pcrsFromManifest(v2(null, B, null)), isCode('manifest_invalid'));
    assert.throws(() => pcrsFromManifest(v2(A, B, null)), isCode('manifest_invalid'));
  });

  it('reads the pcrs of the older dip-pcr-manifest/1 too', () => {
    const pending = { format: 'dip-pcr-manifest/1', pcrs: { status: 'pending', reason: 'no build', PCR0: null, PCR1: null, PCR2: null } };
    assert.throws(() => pcrsFromManifest(pending), isCode('manifest_empty'));
    const measured = { format: 'dip-pcr-manifest/1', pcrs: { status: 'measured', source: 'nitro-cli', PCR0: A, PCR1: B, PCR2: C, PCR8: A } };
    const pcrs = pcrsFromManifest(measured);
    assert.deepEqual([hexOf(pcrs.pcr0), hexOf(pcrs.pcr1), hexOf(pcrs.pcr2)], [A, B, C]);
  });
});

describe('dip verify-attestation --manifest with PCR0 pending (the real dip command, a recorded AWS document)', () => {
  const VECTOR = fileURLToPath(new URL('../../test/vectors/aws-attestation-2026-01-03.cbor', import.meta.url));
  const AT = '1767472868';
  const dir = mkdtempSync(join(tmpdir(), 'dip-manifest-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const manifestFile = (name: string, pcrs: ReturnType<typeof v2Shape>): string => {
    const path = join(dir, name);
    writeFileSync(path, JSON.stringify(pcrs));
    return path;
  };
  const v2Shape = (PCR0: string | null, PCR1: string | null, PCR2: string) => ({ format: 'dip-pcr-manifest/2', pcrs: { source: 'dip-eif build', PCR0, PCR1, PCR2, pending: PCR0 === null ? { PCR0: 'needs the kernel blob' } : {} } });

  it('accepts the document against PCR1 and PCR2, and names PCR2 or PCR1 when one differs', async () => {
    const document = JSON.parse((await runDip('verify-attestation', VECTOR, '--at', AT, '--json')).stdout) as { pcrs: Record<string, string> };
    const { PCR1, PCR2 } = document.pcrs as { PCR1: string; PCR2: string };
    const ok = await runDip('verify-attestation', VECTOR, '--at', AT, '--manifest', manifestFile('pcr0-pending.json', v2Shape(null, PCR1, PCR2)), '--json');
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { pcrsChecked: boolean }).pcrsChecked, true);
    const wrong2 = await runDip('verify-attestation', VECTOR, '--at', AT, '--manifest', manifestFile('pcr2-wrong.json', v2Shape(null, PCR1, C)), '--json');
    assert.equal(wrong2.code, 1);
    assert.equal((JSON.parse(wrong2.stdout) as { error: { pcr: number } }).error.pcr, 2, 'PCR2 is still checked');
    const wrong1 = await runDip('verify-attestation', VECTOR, '--at', AT, '--manifest', manifestFile('pcr1-wrong.json', v2Shape(null, B, PCR2)), '--json');
    assert.equal((JSON.parse(wrong1.stdout) as { error: { pcr: number } }).error.pcr, 1, 'PCR1 is still checked');
  });

  it('refuses a manifest with PCR1 pending too, exit 1 with manifest_empty (pcr1_pending)', async () => {
    const result = await runDip('verify-attestation', VECTOR, '--at', AT, '--manifest', manifestFile('pcr2-only.json', v2Shape(null, null, C)));
    assert.equal(result.code, 1);
    assert.match(result.stderr, /manifest_empty \(pcr1_pending\)/);
  });
});
