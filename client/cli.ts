// The `dip` command line (issue 4 §4): verify attestation documents, run the assign and refresh
// flows against a parent, back up a DRT, mint development SRTs. Every command has --help and
// --json. Exit codes: 0 ok, 1 a check failed or the server refused, 2 a usage mistake.

import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { createHash } from 'node:crypto';
import { ATTESTATION_ERROR_MESSAGES, AttestationError, decodeUserData } from '../protocol/attestation-document.js';
import { decodeBase64url } from '../protocol/base64url.js';
import { AWS_NITRO_ROOT_G1_SHA256, verifyAttestation, type VerifiedAttestation } from './attestation.js';
import { decodeBackupText, encodeBackupText, generateAccessCode, openBackup, sealBackup } from './backup.js';
import { ClientError } from './errors.js';
import { assign, attest, refresh, type DipTokens, type Trust } from './flows.js';
import type { Fetch } from './http.js';
import { DEV_PCRS, parseManifest, parsePcrHex, pcrToHex, type ExpectedPcrs } from './manifest.js';
import { mintDevSrt, parseDevIssuer, readSrt } from './tokens.js';

/** AWS Nitro Enclaves Root-G1, the production trust anchor (SHA-256 of its DER pinned below). */
const AWS_NITRO_ROOT_G1_PEM = `-----BEGIN CERTIFICATE-----
MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD
VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4
MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG
BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb
48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE
h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF
R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC
MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW
rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
IwLz3/Y=
-----END CERTIFICATE-----
`;

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  cwd: string;
  env: Record<string, string | undefined>;
  /** Injected by tests; default the global fetch. */
  fetch?: Fetch;
}

/** A mistake in how the command was called: exit 2. Messages name options, never their values. */
class UsageError extends Error {}

type Values = Record<string, string | boolean | undefined>;
type Options = NonNullable<ParseArgsConfig['options']>;

interface Context {
  values: Values;
  positionals: string[];
  io: CliIo;
  json: boolean;
}

interface Command {
  usage: string;
  summary: string;
  help: string;
  options: Options;
  positionals?: { min: number; max: number };
  run(ctx: Context): Promise<void>;
}

const COMMON: Options = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
};

const PCR_OPTIONS: Options = {
  manifest: { type: 'string' },
  pcr0: { type: 'string' },
  pcr1: { type: 'string' },
  pcr2: { type: 'string' },
  'allow-debug': { type: 'boolean' },
  root: { type: 'string' },
  'root-sha256': { type: 'string' },
  'max-age': { type: 'string' },
};

const TRUST_OPTIONS: Options = {
  ...PCR_OPTIONS,
  url: { type: 'string' },
  dev: { type: 'boolean' },
  'dev-dir': { type: 'string' },
};

const TRUST_HELP = `Trust (SPEC §7):
  --url URL              the parent, e.g. http://127.0.0.1:8080 (required)
  --dev                  local stack: root from DIR/nsm-root.pem, the emulator's PCRs
  --dev-dir DIR          the development state directory (default .dev)
  --root PEM             pinned root certificate (default AWS Nitro Enclaves Root-G1)
  --root-sha256 HEX      also require the root's DER to have this SHA-256
  --manifest FILE        expected PCR0..2 from a pcr-manifest.json
  --pcr0/--pcr1/--pcr2 HEX   expected PCRs given directly (all three)
  --allow-debug          accept a debug-mode enclave (all-zero PCRs); never in production
  --max-age SECONDS      oldest acceptable document (default 300)`;

const COMMON_HELP = `  --json                 print one JSON object instead of text
  -h, --help             show this help`;

function readText(io: CliIo, path: string, what: string): string {
  try {
    return readFileSync(resolve(io.cwd, path), 'utf8');
  } catch {
    throw new UsageError(`cannot read ${what}`);
  }
}

function readBytes(io: CliIo, path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(resolve(io.cwd, path)));
  } catch {
    throw new UsageError(`cannot read ${what}`);
  }
}

function writeSecret(io: CliIo, path: string, text: string, what: string): void {
  try {
    writeFileSync(resolve(io.cwd, path), text.endsWith('\n') ? text : `${text}\n`, { mode: 0o600 });
  } catch {
    throw new UsageError(`cannot write ${what}`);
  }
}

function str(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

function required(values: Values, name: string): string {
  const value = str(values, name);
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

function integer(text: string, name: string, min: number): number {
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) < min) {
    throw new UsageError(`--${name} must be an integer ≥ ${min}`);
  }
  return Number(text);
}

function hexBytes(text: string, name: string): Uint8Array {
  const hex = text.startsWith('0x') ? text.slice(2) : text;
  if (!/^([0-9a-fA-F]{2})+$/.test(hex)) throw new UsageError(`--${name} must be hex`);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** PCRs from --manifest or --pcr0..2; `all` requires the three of them. */
function expectedPcrs(ctx: Context, all: boolean): Partial<ExpectedPcrs> | null {
  const { values, io } = ctx;
  const given = (['pcr0', 'pcr1', 'pcr2'] as const).filter((name) => str(values, name) !== undefined);
  const manifest = str(values, 'manifest');
  if (manifest !== undefined && given.length > 0) throw new UsageError('give --manifest or --pcr0/--pcr1/--pcr2, not both');
  if (manifest !== undefined) return parseManifest(readText(io, manifest, '--manifest'));
  if (given.length === 0) return null;
  if (all && given.length < 3) throw new UsageError('give all of --pcr0, --pcr1 and --pcr2');
  const pcrs: Partial<ExpectedPcrs> = {};
  for (const name of given) {
    const pcr = parsePcrHex(str(values, name)!);
    if (pcr === null) throw new UsageError(`--${name} must be 32, 48 or 64 bytes of hex`);
    pcrs[name] = pcr;
  }
  return pcrs;
}

function maxAgeMs(values: Values): number | undefined {
  const text = str(values, 'max-age');
  return text === undefined ? undefined : integer(text, 'max-age', 1) * 1000;
}

function trustOf(ctx: Context): Trust {
  const { values, io } = ctx;
  const devDir = resolve(io.cwd, str(values, 'dev-dir') ?? '.dev');
  const rootPath = str(values, 'root');
  const dev = values['dev'] === true;
  const root = rootPath !== undefined
    ? readText(io, rootPath, '--root')
    : dev
      ? readText(io, resolve(devDir, 'nsm-root.pem'), 'the development root (is `make dev` running?)')
      : AWS_NITRO_ROOT_G1_PEM;
  const pinnedSha256 = str(values, 'root-sha256') ?? (rootPath === undefined && !dev ? AWS_NITRO_ROOT_G1_SHA256 : undefined);
  const pcrs = expectedPcrs(ctx, true) ?? (dev ? DEV_PCRS : null);
  if (pcrs === null) throw new UsageError('give --manifest FILE or --pcr0/--pcr1/--pcr2 (or --dev for the local stack)');
  const age = maxAgeMs(values);
  return {
    root,
    expectedPcrs: pcrs as ExpectedPcrs,
    ...(pinnedSha256 === undefined ? {} : { rootSha256: pinnedSha256 }),
    ...(values['allow-debug'] === true ? { allowDebug: true } : {}),
    ...(age === undefined ? {} : { maxAgeMs: age }),
  };
}

function connect(ctx: Context): { url: string; trust: Trust; fetch?: Fetch } {
  const url = required(ctx.values, 'url');
  if (!/^https?:\/\//.test(url)) throw new UsageError('--url must be an http(s) URL');
  return { url, trust: trustOf(ctx), ...(ctx.io.fetch ? { fetch: ctx.io.fetch } : {}) };
}

/** An attestation document file: raw COSE_Sign1, JSON {"document": b64url} as the API returns it, or base64(url) text. */
function readDocument(io: CliIo, path: string): Uint8Array {
  const bytes = readBytes(io, path, 'the document file');
  if (bytes[0] === 0x84 || bytes[0] === 0xd2) return bytes; // CBOR array(4) or tag 18
  const text = Buffer.from(bytes).toString('utf8').trim();
  let encoded = text;
  if (text.startsWith('{')) {
    try {
      const document = (JSON.parse(text) as { document?: unknown }).document;
      encoded = typeof document === 'string' ? document : '';
    } catch {
      encoded = '';
    }
  }
  const decoded = decodeBase64url(encoded.replace(/=+$/, '').replaceAll('+', '-').replaceAll('/', '_'));
  return decoded ?? bytes;
}

function hex(bytes: Uint8Array | null): string | null {
  return bytes === null ? null : Buffer.from(bytes).toString('hex');
}

function describeUserData(userData: Uint8Array | null): unknown {
  if (userData === null) return null;
  try {
    return { v: 1, jwks_sha256: hex(decodeUserData(userData).jwksSha256) };
  } catch {
    return hex(userData);
  }
}

function attestationReport(a: VerifiedAttestation, pcrsChecked: boolean): Record<string, unknown> {
  const pcrs: Record<string, string> = {};
  for (const [index, value] of [...a.pcrs].sort(([x], [y]) => x - y)) pcrs[`PCR${index}`] = pcrToHex(value);
  return {
    moduleId: a.moduleId,
    timestamp: a.timestamp,
    time: new Date(a.timestamp).toISOString(),
    digest: a.digest,
    pcrs,
    pcrsChecked,
    rootSha256: createHash('sha256').update(a.cabundle[0]!).digest('hex'),
    publicKey: hex(a.publicKey),
    userData: describeUserData(a.userData),
    nonce: hex(a.nonce),
  };
}

function attestationLines(report: Record<string, unknown>): string[] {
  const pcrs = report['pcrs'] as Record<string, string>;
  const userData = report['userData'];
  return [
    `module id     ${String(report['moduleId'])}`,
    `timestamp     ${String(report['timestamp'])} (${String(report['time'])})`,
    `digest        ${String(report['digest'])}`,
    ...['PCR0', 'PCR1', 'PCR2'].map((name) => `${name}          ${pcrs[name] ?? '(absent)'}`),
    `PCRs checked  ${report['pcrsChecked'] ? 'yes' : 'no (give --manifest or --pcr0..2 to check them)'}`,
    `root sha256   ${String(report['rootSha256'])}`,
    `public key    ${String(report['publicKey'] ?? '(none)')}`,
    `user data     ${userData !== null && typeof userData === 'object' ? `jwks_sha256 ${String((userData as { jwks_sha256: string }).jwks_sha256)}` : String(userData ?? '(none)')}`,
    `nonce         ${String(report['nonce'] ?? '(none)')}`,
  ];
}

function print(ctx: Context, json: Record<string, unknown>, lines: string[]): void {
  ctx.io.out(ctx.json ? `${JSON.stringify({ ok: true, ...json }, null, 2)}\n` : `${lines.join('\n')}\n`);
}

function tokenReport(result: DipTokens): Record<string, unknown> {
  return {
    ip: result.ip,
    reservedUntil: result.reservedUntil,
    datClaims: result.datClaims,
    drtClaims: { iss: result.drtClaims.iss, iat: result.drtClaims.iat, exp: result.drtClaims.exp, did: result.drtClaims.did, ip: result.drtClaims.ip },
  };
}

function finishFlow(ctx: Context, result: DipTokens): void {
  const datOut = str(ctx.values, 'dat-out');
  const drtOut = str(ctx.values, 'drt-out');
  if (datOut !== undefined) writeSecret(ctx.io, datOut, result.dat, '--dat-out');
  if (drtOut !== undefined) writeSecret(ctx.io, drtOut, result.drt, '--drt-out');
  const iso = (seconds: number) => new Date(seconds * 1000).toISOString();
  const lines = [
    `ip              ${result.ip}`,
    `reserved until  ${result.reservedUntil} (${iso(result.reservedUntil)})`,
    `DAT             verified against the attested JWKS; iss ${result.datClaims.iss}, expires ${iso(result.datClaims.exp)}`,
    `DRT             did ${result.drtClaims.did}, expires ${iso(result.drtClaims.exp)} (its signature only the enclave can check)`,
    ...(datOut === undefined && drtOut === undefined ? [`dat             ${result.dat}`, `drt             ${result.drt}`] : []),
    ...(datOut === undefined ? [] : [`DAT written to  ${datOut}`]),
    ...(drtOut === undefined ? [] : [`DRT written to  ${drtOut}`]),
  ];
  print(ctx, { ...tokenReport(result), dat: result.dat, drt: result.drt }, lines);
}

function accessCodeOf(ctx: Context): string | undefined {
  const file = str(ctx.values, 'code-file');
  const code = str(ctx.values, 'code');
  if (file !== undefined && code !== undefined) throw new UsageError('give --code or --code-file, not both');
  const text = file !== undefined ? readText(ctx.io, file, '--code-file').trim() : (code ?? ctx.io.env['DIP_ACCESS_CODE']);
  return text === '' ? undefined : text;
}

const COMMANDS: Record<string, Command> = {
  'verify-attestation': {
    usage: 'dip verify-attestation FILE [--root PEM] [--at UNIX_SECONDS] [--nonce HEX] [--manifest FILE | --pcr0 HEX --pcr1 HEX --pcr2 HEX] [--allow-debug]',
    summary: 'verify an attestation document file (SPEC §7)',
    help: `FILE is a raw COSE_Sign1 document, the JSON {"document": …} that GET /v1/attestation returns, or base64.
Prints module id, timestamp, PCR0..2, public key and user data when every check passes; otherwise
names the failed check and exits 1.
  --root PEM             pinned root certificate (default AWS Nitro Enclaves Root-G1)
  --root-sha256 HEX      also require the root's DER to have this SHA-256
  --at UNIX_SECONDS      verify as of this time (default now)
  --max-age SECONDS      oldest acceptable document (default 300)
  --nonce HEX            the nonce the document must carry
  --manifest FILE        expected PCR0..2 from a pcr-manifest.json
  --pcr0/--pcr1/--pcr2 HEX   expected PCRs (any of them); without any, PCRs are printed, not checked
  --allow-debug          accept a debug-mode enclave (all-zero PCRs)`,
    options: { ...PCR_OPTIONS, at: { type: 'string' }, nonce: { type: 'string' } },
    positionals: { min: 1, max: 1 },
    async run(ctx) {
      const { values } = ctx;
      const document = readDocument(ctx.io, ctx.positionals[0]!);
      const rootPath = str(values, 'root');
      const pcrs = expectedPcrs(ctx, false);
      const at = str(values, 'at');
      const nonce = str(values, 'nonce');
      const age = maxAgeMs(values);
      const pinnedSha256 = str(values, 'root-sha256') ?? (rootPath === undefined ? AWS_NITRO_ROOT_G1_SHA256 : undefined);
      let verified: VerifiedAttestation;
      try {
        verified = verifyAttestation(document, {
          root: rootPath === undefined ? AWS_NITRO_ROOT_G1_PEM : readText(ctx.io, rootPath, '--root'),
          ...(pinnedSha256 === undefined ? {} : { rootSha256: pinnedSha256 }),
          ...(at === undefined ? {} : { at: integer(at, 'at', 0) * 1000 }),
          ...(nonce === undefined ? {} : { nonce: hexBytes(nonce, 'nonce') }),
          ...(age === undefined ? {} : { maxAgeMs: age }),
          ...(pcrs === null ? {} : { expectedPcrs: pcrs }),
          ...(values['allow-debug'] === true ? { allowDebug: true } : {}),
        });
      } catch (error) {
        if (error instanceof AttestationError) throw new ClientError('attestation_failed', false, error.code);
        if (error instanceof TypeError && !(error instanceof UsageError)) throw new UsageError('--root is not a PEM certificate');
        throw error;
      }
      const report = attestationReport(verified, pcrs !== null);
      print(ctx, report, attestationLines(report));
    },
  },
  attest: {
    usage: 'dip attest --url URL (--dev | --manifest FILE | --pcr0 HEX --pcr1 HEX --pcr2 HEX) [--root PEM]',
    summary: 'fetch an attestation document with a fresh nonce, verify it and the JWKS it binds',
    help: TRUST_HELP,
    options: TRUST_OPTIONS,
    async run(ctx) {
      const enclave = await attest(connect(ctx));
      const report = attestationReport(enclave.attestation, true);
      const jwksSha256 = createHash('sha256').update(enclave.jwks).digest('hex');
      const keys = (JSON.parse(Buffer.from(enclave.jwks).toString('utf8')) as { keys: Array<{ kid?: string }> }).keys.map((k) => k.kid);
      print(ctx, { ...report, jwksSha256, datKeys: keys }, [
        ...attestationLines(report),
        `JWKS          sha256 ${jwksSha256} matches user_data; DAT keys ${keys.join(', ')}`,
      ]);
    },
  },
  assign: {
    usage: 'dip assign --url URL --srt FILE --ip IP (--dev | trust options) [--dat-out FILE] [--drt-out FILE]',
    summary: 'get a DAT and a DRT for IP (the DIP service chose it), sealed to the attested enclave',
    help: `  --srt FILE             the subscription receipt token
  --ip IP                the dedicated IP to bind
  --dat-out/--drt-out FILE   write the tokens there (mode 600) instead of printing them
${TRUST_HELP}`,
    options: { ...TRUST_OPTIONS, srt: { type: 'string' }, ip: { type: 'string' }, 'dat-out': { type: 'string' }, 'drt-out': { type: 'string' } },
    async run(ctx) {
      const srt = readText(ctx.io, required(ctx.values, 'srt'), '--srt').trim();
      const ip = required(ctx.values, 'ip');
      finishFlow(ctx, await assign({ ...connect(ctx), srt, ip }));
    },
  },
  refresh: {
    usage: 'dip refresh --url URL --srt FILE --drt FILE (--dev | trust options) [--dat-out FILE] [--drt-out FILE]',
    summary: 'get a new DAT and DRT for the IP of a DRT',
    help: `  --srt FILE             the subscription receipt token
  --drt FILE             the refresh token (--drt-out may name the same file to replace it)
  --dat-out/--drt-out FILE   write the tokens there (mode 600) instead of printing them
${TRUST_HELP}`,
    options: { ...TRUST_OPTIONS, srt: { type: 'string' }, drt: { type: 'string' }, 'dat-out': { type: 'string' }, 'drt-out': { type: 'string' } },
    async run(ctx) {
      const srt = readText(ctx.io, required(ctx.values, 'srt'), '--srt').trim();
      const drt = readText(ctx.io, required(ctx.values, 'drt'), '--drt').trim();
      finishFlow(ctx, await refresh({ ...connect(ctx), srt, drt }));
    },
  },
  'backup seal': {
    usage: 'dip backup seal --drt FILE [--code CODE | --code-file FILE] [--out FILE]',
    summary: 'protect a DRT with an access code, to carry it to another device',
    help: `  --drt FILE             the refresh token to back up
  --code CODE            the access code (at least 8 characters); also DIP_ACCESS_CODE.
                         Without one, a random code is made and printed (to stderr, or in --json)
  --code-file FILE       read the access code from a file
  --out FILE             write the backup there instead of stdout
The backup is scrypt (N=2^17, r=8, p=1) + AES-256-GCM, as text "dipb1.…".`,
    options: { drt: { type: 'string' }, code: { type: 'string' }, 'code-file': { type: 'string' }, out: { type: 'string' } },
    async run(ctx) {
      const drt = readText(ctx.io, required(ctx.values, 'drt'), '--drt').trim();
      const given = accessCodeOf(ctx);
      if (given !== undefined && given.normalize('NFKC').trim().length < 8) throw new UsageError('the access code must have at least 8 characters');
      const accessCode = given ?? generateAccessCode();
      const text = encodeBackupText(await sealBackup(drt, accessCode));
      const out = str(ctx.values, 'out');
      if (out !== undefined) writeSecret(ctx.io, out, text, '--out');
      const generated = given === undefined ? { accessCode } : {};
      if (ctx.json) {
        print(ctx, { ...(out === undefined ? { backup: text } : { out }), ...generated }, []);
        return;
      }
      if (given === undefined) ctx.io.err(`access code (write it down, it is not stored): ${accessCode}\n`);
      ctx.io.out(out === undefined ? `${text}\n` : `backup written to ${out}\n`);
    },
  },
  'backup open': {
    usage: 'dip backup open FILE (--code CODE | --code-file FILE) [--out FILE]',
    summary: 'recover a DRT from a backup on another device',
    help: `  FILE                   the backup ("dipb1.…" text)
  --code CODE            the access code; also DIP_ACCESS_CODE
  --code-file FILE       read the access code from a file
  --out FILE             write the DRT there (mode 600) instead of stdout
A wrong code and an altered backup both fail with backup_wrong_code.`,
    options: { code: { type: 'string' }, 'code-file': { type: 'string' }, out: { type: 'string' } },
    positionals: { min: 1, max: 1 },
    async run(ctx) {
      const blob = decodeBackupText(readText(ctx.io, ctx.positionals[0]!, 'the backup file'));
      const accessCode = accessCodeOf(ctx);
      if (accessCode === undefined) throw new UsageError('--code, --code-file or DIP_ACCESS_CODE is required');
      const drt = await openBackup(blob, accessCode);
      const out = str(ctx.values, 'out');
      if (out !== undefined) writeSecret(ctx.io, out, drt, '--out');
      if (ctx.json) print(ctx, out === undefined ? { drt } : { out }, []);
      else ctx.io.out(out === undefined ? `${drt}\n` : `DRT written to ${out}\n`);
    },
  },
  'dev-srt': {
    usage: 'dip dev-srt --sub ID --did N [--dev-dir DIR] [--ttl SECONDS] [--out FILE]',
    summary: 'mint an SRT with the development issuer of .dev/ (development only)',
    help: `  --sub ID               subscription id (1..256 characters)
  --did N                subscription version (raise it to simulate a support reset)
  --dev-dir DIR          the development state directory (default .dev)
  --ttl SECONDS          lifetime, at most 259200 (default 86400)
  --out FILE             write the SRT there instead of stdout`,
    options: { sub: { type: 'string' }, did: { type: 'string' }, 'dev-dir': { type: 'string' }, ttl: { type: 'string' }, out: { type: 'string' } },
    async run(ctx) {
      const sub = required(ctx.values, 'sub');
      const did = integer(required(ctx.values, 'did'), 'did', 0);
      const ttlText = str(ctx.values, 'ttl');
      const ttl = ttlText === undefined ? 86_400 : integer(ttlText, 'ttl', 1);
      if (sub.length > 256) throw new UsageError('--sub must be 1..256 characters');
      if (ttl > 259_200) throw new UsageError('--ttl must be at most 259200 (72 hours)');
      const devDir = resolve(ctx.io.cwd, str(ctx.values, 'dev-dir') ?? '.dev');
      let issuer;
      try {
        issuer = parseDevIssuer(readText(ctx.io, resolve(devDir, 'srt-issuer.json'), 'the development issuer (run `make dev` first)'));
      } catch (error) {
        if (error instanceof UsageError) throw error;
        throw new UsageError('srt-issuer.json is not a development issuer');
      }
      const srt = await mintDevSrt(issuer, { sub, did, lifetimeSeconds: ttl });
      const out = str(ctx.values, 'out');
      if (out !== undefined) writeSecret(ctx.io, out, srt, '--out');
      if (ctx.json) print(ctx, { ...(out === undefined ? { srt } : { out }), claims: readSrt(srt) }, []);
      else ctx.io.out(out === undefined ? `${srt}\n` : `SRT written to ${out}\n`);
    },
  },
};

function topHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  return `dip — client and auditor tool for the Dedicated IP enclave

Usage: dip COMMAND [options]    (dip COMMAND --help for its options)

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`).join('\n')}

Every command takes --json. Exit status: 0 ok, 1 a check failed or the server refused, 2 usage.
`;
}

function commandHelp(name: string, command: Command): string {
  return `Usage: ${command.usage}

${command.summary}.
${command.help}
${COMMON_HELP}
`;
}

function errorText(error: ClientError): string {
  const detail = error.detail === undefined ? '' : ` (${error.detail})`;
  const detailMessage = error.detail !== undefined && Object.hasOwn(ATTESTATION_ERROR_MESSAGES, error.detail)
    ? ` ${ATTESTATION_ERROR_MESSAGES[error.detail as keyof typeof ATTESTATION_ERROR_MESSAGES]}`
    : '';
  const from = error.fromServer ? 'the server refused: ' : '';
  return `${from}${error.code}${detail}: ${error.message}${detailMessage}`;
}

export function defaultIo(): CliIo {
  return {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    cwd: process.cwd(),
    env: process.env,
  };
}

/** Runs one `dip` invocation; returns the exit status. */
export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  const first = argv[0];
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    io.out(topHelp());
    return first === undefined ? 2 : 0;
  }
  let name = first;
  let rest = argv.slice(1);
  if (first === 'backup') {
    const sub = argv[1];
    if (sub === 'seal' || sub === 'open') {
      name = `backup ${sub}`;
      rest = argv.slice(2);
    } else {
      io.out(`Usage: dip backup seal|open [options]\n\n  seal  ${COMMANDS['backup seal']!.summary}\n  open  ${COMMANDS['backup open']!.summary}\n`);
      return sub === '--help' || sub === '-h' ? 0 : 2;
    }
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    io.err(`dip: unknown command; see dip --help\n`);
    return 2;
  }
  const json = rest.includes('--json');
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: rest, options: { ...COMMON, ...command.options }, allowPositionals: true, strict: true });
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    if (parsed.values['help'] === true) {
      io.out(commandHelp(name, command));
      return 0;
    }
    const { min, max } = command.positionals ?? { min: 0, max: 0 };
    if (parsed.positionals.length < min || parsed.positionals.length > max) {
      throw new UsageError(max === 0 ? 'takes no positional arguments' : `takes ${min === max ? min : `${min}..${max}`} file argument(s)`);
    }
    await command.run({ values: parsed.values as Values, positionals: parsed.positionals, io, json });
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`dip ${name}: ${error.message}\n${command.usage}\n`);
      return 2;
    }
    if (error instanceof ClientError) {
      if (json) io.out(`${JSON.stringify({ ok: false, error: error.toJSON() }, null, 2)}\n`);
      io.err(`dip ${name}: ${errorText(error)}\n`);
      return 1;
    }
    // Our own fixed-message errors (e.g. a TypeError from misuse); nothing here carries input.
    io.err(`dip ${name}: unexpected error: ${error instanceof Error ? error.name : 'unknown'}\n`);
    return 1;
  }
}
