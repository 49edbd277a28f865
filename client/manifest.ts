// Expected PCR values (SPEC §7 step 6): read from a pcr-manifest.json, given on the command line,
// or, in development, the NSM emulator's defaults. A manifest is read tolerantly: PCR0..PCR2 as hex
// at the top level, under "pcrs"/"measurements", or under "Measurements" as nitro-cli prints them.
// PCR0 may be pending (null) when PCR1 and PCR2 are known: PCR1 pins AWS's kernel, cmdline and
// init, PCR2 our ramdisk, and PCR0 measures nothing beyond those two (docs/auditing.md).

import { createHash } from 'node:crypto';
import { ClientError } from './errors.js';

export interface ExpectedPcrs {
  pcr0: Uint8Array;
  pcr1: Uint8Array;
  pcr2: Uint8Array;
}

/** What a manifest pins: PCR0 is absent when the manifest has it pending (PCR1 and PCR2 are checked). */
export type ManifestPcrs = Omit<ExpectedPcrs, 'pcr0'> & { pcr0?: Uint8Array };

/** SPEC §7 step 2: a PCR is 32, 48 or 64 bytes (48 for the SHA-384 PCRs of Nitro Enclaves). */
const PCR_HEX = /^(?:[0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})$/i;

function sha384(text: string): Uint8Array {
  return new Uint8Array(createHash('sha384').update(text, 'ascii').digest());
}

/** The NSM emulator's default PCRs: SHA-384 of "dev-pcr0", "dev-pcr1", "dev-pcr2" (development only). */
export const DEV_PCRS: Readonly<ExpectedPcrs> = Object.freeze({
  pcr0: sha384('dev-pcr0'),
  pcr1: sha384('dev-pcr1'),
  pcr2: sha384('dev-pcr2'),
});

/** A PCR in hex (any case, optional 0x) → bytes; null when it is not 32, 48 or 64 bytes of hex. */
export function parsePcrHex(text: string): Uint8Array | null {
  const hex = text.startsWith('0x') ? text.slice(2) : text;
  return PCR_HEX.test(hex) ? new Uint8Array(Buffer.from(hex, 'hex')) : null;
}

export function pcrToHex(pcr: Uint8Array): string {
  return Buffer.from(pcr).toString('hex');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The value stored under PCRn in any of the accepted spellings, or undefined. */
function lookup(manifest: Record<string, unknown>, index: number): unknown {
  const places = [manifest, manifest['pcrs'], manifest['measurements'], manifest['Measurements']].filter(isRecord);
  for (const place of places) {
    for (const key of [`PCR${index}`, `pcr${index}`, String(index)]) {
      if (place[key] !== undefined && place[key] !== null) return place[key];
    }
  }
  return undefined;
}

/**
 * PCR0..2 from a parsed manifest. `manifest_empty` when none is present yet, and also when PCR1 is
 * still pending (detail `pcr1_pending`: PCR2 alone would accept our ramdisk under any kernel and
 * init); `manifest_invalid` when a value is malformed or PCR1 or PCR2 is missing beside others.
 */
export function pcrsFromManifest(manifest: unknown): ManifestPcrs {
  if (!isRecord(manifest)) throw new ClientError('manifest_invalid');
  const values = [0, 1, 2].map((i) => lookup(manifest, i));
  const absent = values.map((v) => v === undefined || v === '');
  if (absent.every(Boolean)) throw new ClientError('manifest_empty');
  if (absent[0] && absent[1] && !absent[2]) throw new ClientError('manifest_empty', false, 'pcr1_pending');
  const pcrs = values.map((v, i) => (absent[i] ? undefined : typeof v === 'string' ? parsePcrHex(v) : null));
  if (pcrs.some((p) => p === null) || pcrs[1] === undefined || pcrs[2] === undefined) throw new ClientError('manifest_invalid');
  const [pcr0, pcr1, pcr2] = pcrs as [Uint8Array | undefined, Uint8Array, Uint8Array];
  return pcr0 === undefined ? { pcr1, pcr2 } : { pcr0, pcr1, pcr2 };
}

/** Parses the text of a pcr-manifest.json. */
export function parseManifest(text: string): ManifestPcrs {
  let manifest: unknown;
  try {
    manifest = JSON.parse(text);
  } catch {
    throw new ClientError('manifest_invalid');
  }
  return pcrsFromManifest(manifest);
}
