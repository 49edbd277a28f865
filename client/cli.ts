// The `dip` command line (issue 4 §4, issue 9, issue 10): verify attestation documents and DATs,
// take a VPN server's JWKS from a verified attestation whose m_commit is pinned, run the assign and
// refresh flows through the DIP service (issue 12) or against a parent, back up a DRT (locally or
// at the service), get and verify Privacy Pass tokens (issue 11), mint development SRTs. Every command has --help and --json (then every outcome is one JSON object
// on stdout). Exit codes: 0 ok, 1 a check failed or the server refused, 2 a usage mistake. A token
// the enclave or the issuer issued is never lost.

import { accessSync, constants, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { setTimeout as sleepFor } from 'node:timers/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { createHash } from 'node:crypto';
import { ATTESTATION_ERROR_MESSAGES, AttestationError, decodeUserData } from '../protocol/attestation-document.js';
import { decodeBase64url } from '../protocol/base64url.js';
import { isCanonicalIp } from '../protocol/ip.js';
import { isSubscriptionId } from '../protocol/text.js';
import { AWS_NITRO_ROOT_G1_SHA256, PcrMismatchError, verifyAttestation, type VerifiedAttestation } from './attestation.js';
import { decodeBackupCode, decodeBackupText, encodeBackupText, generateAccessCode, openBackup, sealBackup } from './backup.js';
import { ClientError } from './errors.js';
import { assign, attest, refresh, type DipTokens, type Trust } from './flows.js';
import { NETWORK_FAILURE_MESSAGES, fetchJwks, type Fetch } from './http.js';
import { DEV_PCRS, parseManifest, parsePcrHex, pcrToHex, type ExpectedPcrs } from './manifest.js';
import { decodePaddedBase64url } from '../protocol/privacypass-http.js';
import { TokenChallenge } from '../protocol/privacypass.js';
import { getToken, parseTokenKeys, redemptionDelayMs, verifySavedToken, type PinnedIssuer } from './privacy-pass.js';
import { PromptAborted, readHidden, type PromptInput } from './prompt.js';
import { RetryWithSameTokenError, assignThroughService, pullBackup, pushBackup, refreshThroughService } from './service-flows.js';
import { isDrtShaped, mintDevSrt, parseDevIssuer, readSrt, verifyDat } from './tokens.js';
import { DIP_VERSION } from './version.js';
import { parseCertificate, pemToDer } from './x509.js';

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
  /** Where a hidden prompt reads the access code when it is a TTY; default process.stdin. */
  stdin?: PromptInput;
  /** Injected by tests so that the redemption delay is seen, never waited; default a timer. */
  sleep?: (ms: number) => Promise<void>;
  /** ms since the epoch; default Date.now. */
  now?: () => number;
  /** The redemption delay's draw, a uniform integer in [0, bound); tests pass seededRandom(…). */
  random?: (bound: number) => number;
}

/** A mistake in how the command was called: exit 2. Messages name options, never their values. */
class UsageError extends Error {}

/** A failure already reported on stdout (tokens printed because a file could not take them): exit 1. */
class ReportedFailure extends Error {}

/** A ClientError with what the CLI adds for a person: the PCR that differs. */
class PcrClientError extends ClientError {
  constructor(readonly pcrIndex: number) {
    super('attestation_failed', false, 'pcr_mismatch');
  }
}

/** Options that may come from the environment; a flag wins over its variable. */
const ENVIRONMENT: Record<string, string> = {
  url: 'DIP_URL',
  service: 'DIP_SERVICE',
  root: 'DIP_ROOT',
  'root-sha256': 'DIP_ROOT_SHA256',
  manifest: 'DIP_MANIFEST',
  'm-commit': 'DIP_M_COMMIT',
};

type Values = Record<string, string | boolean | undefined>;
type Options = NonNullable<ParseArgsConfig['options']>;

interface Context {
  values: Values;
  positionals: string[];
  io: CliIo;
  json: boolean;
  /** Options whose value came from the environment, so messages name the variable. */
  fromEnv: Set<string>;
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
  service: { type: 'string' },
  dev: { type: 'boolean' },
  'dev-dir': { type: 'string' },
  timeout: { type: 'string' },
};

const TOKEN_OUTPUTS: Options = { 'dat-out': { type: 'string' }, 'drt-out': { type: 'string' } };

const TRUST_HELP = `Where and what to trust (SPEC §7):
  --service URL          the DIP service, the app's entry point, e.g. http://127.0.0.1:8081 (or DIP_SERVICE)
  --url URL              or the parent, e.g. http://127.0.0.1:8080 (or DIP_URL); give one of the two
  --dev                  local stack: root from DIR/nsm-root.pem, the emulator's PCRs
                         (DIP_ROOT, DIP_ROOT_SHA256 and DIP_MANIFEST are then ignored)
  --dev-dir DIR          the development state directory (default .dev)
  --root PEM             pinned root certificate (default AWS Nitro Enclaves Root-G1; or DIP_ROOT)
  --root-sha256 HEX      also require the root's DER to have this SHA-256 (or DIP_ROOT_SHA256)
  --manifest FILE        expected PCR0..2 from a pcr-manifest.json (or DIP_MANIFEST)
  --pcr0/--pcr1/--pcr2 HEX   expected PCRs given directly (all three)
  --allow-debug          accept a debug-mode enclave (all-zero PCRs); never in production
  --max-age SECONDS      oldest acceptable document (default 300)
  --timeout SECONDS      per-request deadline (default 30)
A flag wins over its environment variable.`;

const OUTPUT_HELP = `  --dat-out/--drt-out FILE   write that token there (mode 600); a token not written to a file is
                         printed (also with --json). The files are checked before the server is called`;

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

/**
 * Writes through a temporary file and a rename, so a failure never leaves half a file where the
 * previous one was (refresh may replace the DRT it read; a VPN server may be reading its JWKS).
 * Returns false on failure.
 */
function writeAtomically(io: CliIo, path: string, data: string | Uint8Array, mode: number): boolean {
  const target = resolve(io.cwd, path);
  const temporary = `${target}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, data, { mode });
    renameSync(temporary, target);
    return true;
  } catch {
    try {
      unlinkSync(temporary);
    } catch {
      // nothing was written
    }
    return false;
  }
}

/** A token or backup: owner-only (mode 600), one line. */
function writeSecret(io: CliIo, path: string, text: string): boolean {
  return writeAtomically(io, path, text.endsWith('\n') ? text : `${text}\n`, 0o600);
}

/** Public bytes exactly as given (mode 644): a JWKS whose SHA-256 must stay the attested one. */
function writePublic(io: CliIo, path: string, bytes: Uint8Array): boolean {
  return writeAtomically(io, path, bytes, 0o644);
}

/** Refuses, before any server call, an output path that cannot take a file: a usage mistake. */
function checkWritable(ctx: Context, name: string): string | undefined {
  const path = str(ctx.values, name);
  if (path === undefined) return undefined;
  const target = resolve(ctx.io.cwd, path);
  try {
    let exists = true;
    try {
      if (!statSync(target).isFile()) throw new Error('not a regular file');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      exists = false;
    }
    if (!exists && !statSync(dirname(target)).isDirectory()) throw new Error('no directory');
    accessSync(exists ? target : dirname(target), constants.W_OK);
  } catch {
    throw new UsageError(`cannot write --${name}`);
  }
  return path;
}

function label(ctx: Context, name: string): string {
  return ctx.fromEnv.has(name) ? `${ENVIRONMENT[name]} (--${name})` : `--${name}`;
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

/** A pinned root certificate from --root, parsed now so a wrong file is a usage mistake. */
function readRoot(ctx: Context, path: string, what: string): Uint8Array {
  const text = readText(ctx.io, path, what);
  try {
    const der = pemToDer(text);
    parseCertificate(der);
    return der;
  } catch {
    throw new UsageError(`${what} is not a PEM certificate`);
  }
}

function rootSha256Of(ctx: Context): string | undefined {
  const text = str(ctx.values, 'root-sha256');
  if (text !== undefined && !/^[0-9a-fA-F]{64}$/.test(text)) throw new UsageError(`${label(ctx, 'root-sha256')} must be 64 hex digits`);
  return text;
}

function seconds(values: Values, name: string, min: number): number | undefined {
  const text = str(values, name);
  return text === undefined ? undefined : integer(text, name, min);
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

/** SPEC §3 m_commit as 64 hex digits or 43 base64url characters (how the keyset file holds it). */
function mCommitOf(ctx: Context): Uint8Array {
  const text = required(ctx.values, 'm-commit');
  if (/^[0-9a-fA-F]{64}$/.test(text)) return new Uint8Array(Buffer.from(text, 'hex'));
  const bytes = /^[A-Za-z0-9_-]{43}$/.test(text) ? decodeBase64url(text) : null;
  if (bytes === null || bytes.length !== 32) throw new UsageError(`${label(ctx, 'm-commit')} must be 32 bytes as 64 hex digits or 43 base64url characters`);
  return bytes;
}

/** PCRs from --manifest or --pcr0..2; `all` requires the three of them. */
function expectedPcrs(ctx: Context, all: boolean): Partial<ExpectedPcrs> | null {
  const { values, io } = ctx;
  const given = (['pcr0', 'pcr1', 'pcr2'] as const).filter((name) => str(values, name) !== undefined);
  const manifest = str(values, 'manifest');
  if (manifest !== undefined && given.length > 0) throw new UsageError('give --manifest or --pcr0/--pcr1/--pcr2, not both');
  if (manifest !== undefined) return parseManifest(readText(io, manifest, label(ctx, 'manifest')));
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
    ? readRoot(ctx, rootPath, label(ctx, 'root'))
    : dev
      ? readRoot(ctx, resolve(devDir, 'nsm-root.pem'), 'the development root (is `make dev` running?)')
      : AWS_NITRO_ROOT_G1_PEM;
  const pinnedSha256 = rootSha256Of(ctx) ?? (rootPath === undefined && !dev ? AWS_NITRO_ROOT_G1_SHA256 : undefined);
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

/** The server named by --service (the DIP service) or --url (a parent): exactly one of them. */
function serverOf(ctx: Context): { url: string; service: boolean } {
  const service = str(ctx.values, 'service');
  const url = str(ctx.values, 'url');
  if (service !== undefined && url !== undefined) throw new UsageError(`give ${label(ctx, 'service')} or ${label(ctx, 'url')}, not both`);
  if (service === undefined && url === undefined) throw new UsageError('--service (the DIP service) or --url (a parent) is required');
  const name = service === undefined ? 'url' : 'service';
  if (!/^https?:\/\/[^/]/.test((service ?? url)!)) throw new UsageError(`${label(ctx, name)} must be an http(s) URL`);
  return { url: (service ?? url)!, service: service !== undefined };
}

function connect(ctx: Context): { url: string; trust: Trust; fetch?: Fetch; timeoutMs?: number } {
  const { url } = serverOf(ctx);
  const timeout = seconds(ctx.values, 'timeout', 1);
  return {
    url,
    trust: trustOf(ctx),
    ...(ctx.io.fetch ? { fetch: ctx.io.fetch } : {}),
    ...(timeout === undefined ? {} : { timeoutMs: timeout * 1000 }),
  };
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

/** The output files of assign/refresh, checked before the server is called. */
function tokenOutputs(ctx: Context): { datOut?: string; drtOut?: string } {
  const datOut = checkWritable(ctx, 'dat-out');
  const drtOut = checkWritable(ctx, 'drt-out');
  if (datOut !== undefined && drtOut !== undefined && resolve(ctx.io.cwd, datOut) === resolve(ctx.io.cwd, drtOut)) {
    throw new UsageError('--dat-out and --drt-out must be different files');
  }
  return { ...(datOut === undefined ? {} : { datOut }), ...(drtOut === undefined ? {} : { drtOut }) };
}

/**
 * Writes the tokens first, then reports. A token is printed unless its file took it, so one the
 * enclave issued is never lost, even when a file that passed the early check fails now (exit 1).
 */
function finishFlow(ctx: Context, result: DipTokens, outputs: { datOut?: string; drtOut?: string }, extra: { report: Record<string, unknown>; lines: string[] } = { report: {}, lines: [] }): void {
  const written = {
    dat: outputs.datOut !== undefined && writeSecret(ctx.io, outputs.datOut, result.dat),
    drt: outputs.drtOut !== undefined && writeSecret(ctx.io, outputs.drtOut, result.drt),
  };
  const failed = [
    ...(outputs.datOut !== undefined && !written.dat ? ['--dat-out'] : []),
    ...(outputs.drtOut !== undefined && !written.drt ? ['--drt-out'] : []),
  ];
  const iso = (seconds: number) => new Date(seconds * 1000).toISOString();
  const lines = [
    `ip              ${result.ip}`,
    `reserved until  ${result.reservedUntil} (${iso(result.reservedUntil)})`,
    `DAT             verified against the attested JWKS; iss ${result.datClaims.iss}, expires ${iso(result.datClaims.exp)}`,
    `DRT             did ${result.drtClaims.did}, expires ${iso(result.drtClaims.exp)} (its signature only the enclave can check)`,
    written.dat ? `DAT written to  ${outputs.datOut}` : `dat             ${result.dat}`,
    written.drt ? `DRT written to  ${outputs.drtOut}` : `drt             ${result.drt}`,
    ...extra.lines,
  ];
  const report = {
    ...tokenReport(result),
    ...extra.report,
    ...(written.dat ? { datOut: outputs.datOut } : { dat: result.dat }),
    ...(written.drt ? { drtOut: outputs.drtOut } : { drt: result.drt }),
  };
  if (failed.length === 0) {
    print(ctx, report, lines);
    return;
  }
  const message = `cannot write ${failed.join(' and ')}; the token is printed instead, keep it`;
  if (ctx.json) ctx.io.out(`${JSON.stringify({ ok: false, error: { code: 'output_failed', message }, ...report }, null, 2)}\n`);
  else ctx.io.out(`${lines.join('\n')}\n`);
  throw new ReportedFailure(message);
}

function accessCodeOf(ctx: Context): string | undefined {
  const file = str(ctx.values, 'code-file');
  const code = str(ctx.values, 'code');
  if (file !== undefined && code !== undefined) throw new UsageError('give --code or --code-file, not both');
  const text = file !== undefined ? readText(ctx.io, file, '--code-file').trim() : (code ?? ctx.io.env['DIP_ACCESS_CODE']);
  return text === '' ? undefined : text;
}

/** The access code typed at a hidden prompt, when no code was given and stdin is a terminal. */
async function promptedCode(ctx: Context, confirm: boolean): Promise<string | undefined> {
  const code = await promptedSecret(ctx, confirm ? 'access code (empty: generate one): ' : 'access code: ', 'access code');
  if (code === undefined || !confirm) return code;
  if ((await promptedSecret(ctx, 'access code again: ', 'access code')) !== code) throw new UsageError('the two access codes differ');
  return code;
}

/** A secret typed at a hidden prompt when none was given and stdin is a terminal; empty is none. */
async function promptedSecret(ctx: Context, prompt: string, what: string): Promise<string | undefined> {
  const input = ctx.io.stdin;
  if (input?.isTTY !== true) return undefined;
  try {
    const text = await readHidden(input, (t) => ctx.io.err(t), prompt);
    return text === '' ? undefined : text;
  } catch (error) {
    if (error instanceof PromptAborted) throw new UsageError(`no ${what} given (the prompt was aborted)`);
    throw error;
  }
}

/** The pinned issuer of SPEC §8/§10: --token-keys FILE, or --dev's DIR/token-keys.json. */
function pinnedIssuerOf(ctx: Context): PinnedIssuer {
  const path = str(ctx.values, 'token-keys');
  const dev = ctx.values['dev'] === true;
  if (path !== undefined && dev) throw new UsageError('give --token-keys or --dev, not both');
  if (path === undefined && !dev) throw new UsageError('give --token-keys FILE (the keys this release pins) or --dev');
  const devDir = resolve(ctx.io.cwd, str(ctx.values, 'dev-dir') ?? '.dev');
  const text = path !== undefined
    ? readText(ctx.io, path, '--token-keys')
    : readText(ctx.io, resolve(devDir, 'token-keys.json'), 'the development token-keys.json (is `make dev` running?)');
  return parseTokenKeys(text);
}

/** The DIP service of the backup commands: --service or DIP_SERVICE. */
function serviceUrlOf(ctx: Context): { url: string; fetch?: Fetch; timeoutMs?: number } {
  const url = required(ctx.values, 'service');
  if (!/^https?:\/\/[^/]/.test(url)) throw new UsageError(`${label(ctx, 'service')} must be an http(s) URL`);
  const timeout = seconds(ctx.values, 'timeout', 1);
  return { url, ...(ctx.io.fetch ? { fetch: ctx.io.fetch } : {}), ...(timeout === undefined ? {} : { timeoutMs: timeout * 1000 }) };
}

/** A backup code that does not read back (a typo) is the caller's mistake: exit 2, nothing sent. */
function usageOnBadCode(text: string, what: string): void {
  try {
    decodeBackupCode(text);
  } catch {
    throw new UsageError(`${what} is not a backup code (mistyped?)`);
  }
}

const TOKEN_KEYS_OPTIONS: Options = { 'token-keys': { type: 'string' }, dev: { type: 'boolean' }, 'dev-dir': { type: 'string' } };

const TOKEN_KEYS_HELP = `  --token-keys FILE      the issuer keys this release pins: token-keys.json (SPEC §8)
  --dev                  the local stack: DIR/token-keys.json, and no redemption delay
  --dev-dir DIR          the development state directory (default .dev)`;

const COMMANDS: Record<string, Command> = {
  'verify-attestation': {
    usage: 'dip verify-attestation FILE [--root PEM] [--at UNIX_SECONDS] [--nonce HEX] [--manifest FILE | --pcr0 HEX --pcr1 HEX --pcr2 HEX] [--allow-debug]',
    summary: 'verify an attestation document file (SPEC §7)',
    help: `FILE is a raw COSE_Sign1 document, the JSON {"document": …} that GET /v1/attestation returns, or base64.
Prints module id, timestamp, PCR0..2, public key and user data when every check passes; otherwise
names the failed check and exits 1.
  --root PEM             pinned root certificate (default AWS Nitro Enclaves Root-G1; or DIP_ROOT)
  --root-sha256 HEX      also require the root's DER to have this SHA-256 (or DIP_ROOT_SHA256)
  --at UNIX_SECONDS      verify as of this time (default now)
  --max-age SECONDS      oldest acceptable document (default 300)
  --nonce HEX            the nonce the document must carry
  --manifest FILE        expected PCR0..2 from a pcr-manifest.json (or DIP_MANIFEST)
  --pcr0/--pcr1/--pcr2 HEX   expected PCRs (any of them); without any, PCRs are printed, not checked
  --allow-debug          accept a debug-mode enclave (all-zero PCRs)`,
    options: { ...PCR_OPTIONS, at: { type: 'string' }, nonce: { type: 'string' } },
    positionals: { min: 1, max: 1 },
    async run(ctx) {
      const { values } = ctx;
      const document = readDocument(ctx.io, ctx.positionals[0]!);
      const rootPath = str(values, 'root');
      const root = rootPath === undefined ? AWS_NITRO_ROOT_G1_PEM : readRoot(ctx, rootPath, label(ctx, 'root'));
      const pcrs = expectedPcrs(ctx, false);
      const at = seconds(values, 'at', 0);
      const nonce = str(values, 'nonce');
      const age = maxAgeMs(values);
      const pinnedSha256 = rootSha256Of(ctx) ?? (rootPath === undefined ? AWS_NITRO_ROOT_G1_SHA256 : undefined);
      let verified: VerifiedAttestation;
      try {
        verified = verifyAttestation(document, {
          root,
          ...(pinnedSha256 === undefined ? {} : { rootSha256: pinnedSha256 }),
          ...(at === undefined ? {} : { at: at * 1000 }),
          ...(nonce === undefined ? {} : { nonce: hexBytes(nonce, 'nonce') }),
          ...(age === undefined ? {} : { maxAgeMs: age }),
          ...(pcrs === null ? {} : { expectedPcrs: pcrs }),
          ...(values['allow-debug'] === true ? { allowDebug: true } : {}),
        });
      } catch (error) {
        if (error instanceof PcrMismatchError) throw new PcrClientError(error.pcrIndex);
        if (error instanceof AttestationError) throw new ClientError('attestation_failed', false, error.code);
        throw error;
      }
      const report = attestationReport(verified, pcrs !== null);
      print(ctx, report, attestationLines(report));
    },
  },
  attest: {
    usage: 'dip attest (--service URL | --url URL) (--dev | --manifest FILE | --pcr0 HEX --pcr1 HEX --pcr2 HEX) [--root PEM]',
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
  jwks: {
    usage: 'dip jwks (--service URL | --url URL) (--manifest FILE | --dev | --pcr0 HEX --pcr1 HEX --pcr2 HEX) --m-commit HEX|B64URL [--out FILE]',
    summary: 'for VPN servers: take the DAT keys from a verified attestation whose m_commit is pinned',
    help: `Fetches an attestation document with a fresh nonce, verifies it (SPEC §7), checks that the JWKS
beside it hashes to user_data.jwks_sha256 and that user_data.m_commit is the deployment's, and only
then writes the JWKS: the exact bytes the document binds (their SHA-256 is jwks_sha256). An enclave
handed another master secret fails with attestation_failed (m_commit_mismatch) and nothing is written.
  --m-commit HEX|B64URL  the deployment's m_commit (the keyset file's m_commit; or DIP_M_COMMIT)
  --out FILE             write the JWKS there (mode 644, replaced atomically) instead of stdout
${TRUST_HELP}`,
    options: { ...TRUST_OPTIONS, 'm-commit': { type: 'string' }, out: { type: 'string' } },
    async run(ctx) {
      const mCommit = mCommitOf(ctx);
      const out = checkWritable(ctx, 'out');
      const connection = connect(ctx);
      const enclave = await attest({ ...connection, trust: { ...connection.trust, mCommit } });
      const jwksSha256 = createHash('sha256').update(enclave.jwks).digest('hex');
      const keys = (JSON.parse(Buffer.from(enclave.jwks).toString('utf8')) as { keys: Array<{ kid?: string }> }).keys.map((k) => k.kid);
      if (out !== undefined && !writePublic(ctx.io, out, enclave.jwks)) throw new UsageError('cannot write --out');
      const mCommitHex = Buffer.from(mCommit).toString('hex');
      if (ctx.json) {
        const jwks = JSON.parse(Buffer.from(enclave.jwks).toString('utf8')) as unknown;
        print(ctx, { ...(out === undefined ? { jwks } : { out }), jwksSha256, mCommit: mCommitHex, datKeys: keys, moduleId: enclave.attestation.moduleId }, []);
      } else if (out === undefined) {
        ctx.io.out(`${Buffer.from(enclave.jwks).toString('utf8')}\n`);
      } else {
        ctx.io.out(`JWKS written to ${out}\nsha256 ${jwksSha256} (= user_data.jwks_sha256)\nm_commit ${mCommitHex} (pinned, matches)\nDAT keys ${keys.join(', ')}\n`);
      }
    },
  },
  assign: {
    usage: 'dip assign --service URL --token FILE --srt FILE (--dev | --token-keys FILE trust options) [--no-delay | --delay-ms N] [--dat-out FILE] [--drt-out FILE]\n       dip assign --url URL --ip IP --srt FILE (--dev | trust options) [--dat-out FILE] [--drt-out FILE]',
    summary: 'get a Dedicated IP: a DAT and a DRT sealed to the attested enclave, through the DIP service',
    help: `Through the DIP service (--service): asks for its PrivateToken challenge and refuses one that
differs from the pinned issuer's (nothing is sent then), checks the token of --token under the
pinned keys, waits the redemption delay, attests, and redeems the token with the sealed assign;
the service chooses the IP. A failure that leaves the token usable says so (retry: same_token):
run the same command again later with the same --token — never get a new token.
Against a parent (--url), the IP is given with --ip (what the DIP service does).
  --srt FILE             the subscription receipt token (sealed to the enclave)
  --token FILE           with --service: a Privacy Pass token as \`dip token get\` wrote it
  --token-keys FILE      with --service: the issuer keys this release pins (--dev: DIR/token-keys.json)
  --no-delay             with --service: redeem at once
  --delay-ms N           with --service: redeem N ms after the token file was written
                         Default: a random delay of 1–24 h counted from when the token file was
                         written (dip token get), when the root is AWS Nitro Enclaves Root-G1;
                         none with any other root (--dev, or a development --root/DIP_ROOT)
  --ip IP                with --url: the dedicated IP to bind
${OUTPUT_HELP}
${TRUST_HELP}`,
    options: {
      ...TRUST_OPTIONS, ...TOKEN_OUTPUTS, srt: { type: 'string' }, ip: { type: 'string' },
      token: { type: 'string' }, 'token-keys': { type: 'string' }, 'no-delay': { type: 'boolean' }, 'delay-ms': { type: 'string' },
    },
    async run(ctx) {
      const server = serverOf(ctx);
      const only = (names: string[], where: string) => {
        for (const name of names) if (ctx.values[name] !== undefined) throw new UsageError(`--${name} goes with ${where}`);
      };
      if (!server.service) {
        only(['token', 'token-keys', 'no-delay', 'delay-ms'], '--service (the DIP service)');
        const srt = readText(ctx.io, required(ctx.values, 'srt'), '--srt').trim();
        const ip = required(ctx.values, 'ip');
        const outputs = tokenOutputs(ctx);
        finishFlow(ctx, await assign({ ...connect(ctx), srt, ip }), outputs);
        return;
      }
      only(['ip'], '--url (a parent): the DIP service chooses the IP');
      if (ctx.values['no-delay'] === true && ctx.values['delay-ms'] !== undefined) throw new UsageError('give --no-delay or --delay-ms, not both');
      const delayText = str(ctx.values, 'delay-ms');
      const delayMs = ctx.values['no-delay'] === true ? 0 : delayText === undefined ? undefined : integer(delayText, 'delay-ms', 0);
      const srt = readText(ctx.io, required(ctx.values, 'srt'), '--srt').trim();
      const tokenPath = required(ctx.values, 'token');
      const token = readText(ctx.io, tokenPath, '--token').trim();
      if (token === '' || /\s/.test(token)) throw new UsageError('--token must hold one token');
      const obtainedAt = statSync(resolve(ctx.io.cwd, tokenPath)).mtimeMs;
      const pinned = pinnedIssuerOf(ctx);
      const outputs = tokenOutputs(ctx);
      const connection = connect(ctx);
      const now = ctx.io.now ?? Date.now;
      const result = await assignThroughService({
        ...connection, srt, pinned, token,
        tokenObtainedAtMs: Math.floor(obtainedAt),
        ...(delayMs === undefined ? {} : { delayMs }),
        ...(ctx.io.random ? { random: ctx.io.random } : {}),
        now,
        sleep: async (ms) => {
          const until = new Date(now() + ms).toISOString();
          if (!ctx.json) ctx.io.err(`redemption delay: waiting ${Math.ceil(ms / 1000)} s, until ${until} (--no-delay skips it)\n`);
          await (ctx.io.sleep ?? sleepFor)(ms);
        },
      });
      finishFlow(ctx, result, outputs, {
        report: { redemptionDelaySeconds: Math.ceil(result.redemptionDelayMs / 1000) },
        lines: [`redeemed after  a delay of ${Math.ceil(result.redemptionDelayMs / 1000)} s`],
      });
    },
  },
  refresh: {
    usage: 'dip refresh (--service URL | --url URL) --srt FILE --drt FILE (--dev | trust options) [--dat-out FILE] [--drt-out FILE]',
    summary: 'get a new DAT and DRT for the IP of a DRT',
    help: `Through the DIP service (--service), which checks that it still reserves the DRT's IP
(ip_unavailable otherwise), or against a parent (--url).
  --srt FILE             the subscription receipt token
  --drt FILE             the refresh token (--drt-out may name the same file to replace it)
${OUTPUT_HELP}
${TRUST_HELP}`,
    options: { ...TRUST_OPTIONS, ...TOKEN_OUTPUTS, srt: { type: 'string' }, drt: { type: 'string' } },
    async run(ctx) {
      const { service } = serverOf(ctx);
      const srt = readText(ctx.io, required(ctx.values, 'srt'), '--srt').trim();
      const drt = readText(ctx.io, required(ctx.values, 'drt'), '--drt').trim();
      const outputs = tokenOutputs(ctx);
      const options = { ...connect(ctx), srt, drt };
      finishFlow(ctx, await (service ? refreshThroughService(options) : refresh(options)), outputs);
    },
  },
  'backup seal': {
    usage: 'dip backup seal --drt FILE [--code CODE | --code-file FILE] [--out FILE]',
    summary: 'protect a DRT with an access code, to carry it to another device',
    help: `  --drt FILE             the refresh token to back up
  --code CODE            the access code (at least 8 characters); also DIP_ACCESS_CODE.
                         Without one, on a terminal, it is asked for at a hidden prompt (empty: make
                         one); otherwise a random code is made and printed (to stderr, or in --json)
  --code-file FILE       read the access code from a file
  --out FILE             write the backup there instead of stdout
The backup is scrypt (N=2^17, r=8, p=1) + AES-256-GCM, as text "dipb1.…".`,
    options: { drt: { type: 'string' }, code: { type: 'string' }, 'code-file': { type: 'string' }, out: { type: 'string' } },
    async run(ctx) {
      const drt = readText(ctx.io, required(ctx.values, 'drt'), '--drt').trim();
      // Only the shape: the DRT key is never published, so its signature cannot be checked here.
      if (!isDrtShaped(drt)) throw new UsageError('--drt is not a DRT (a compact JWS with typ drt+jwt)');
      const out = checkWritable(ctx, 'out');
      const given = accessCodeOf(ctx) ?? (await promptedCode(ctx, true));
      if (given !== undefined && given.normalize('NFKC').trim().length < 8) throw new UsageError('the access code must have at least 8 characters');
      const accessCode = given ?? generateAccessCode();
      const text = encodeBackupText(await sealBackup(drt, accessCode));
      if (out !== undefined && !writeSecret(ctx.io, out, text)) throw new UsageError('cannot write --out');
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
  --code CODE            the access code; also DIP_ACCESS_CODE; on a terminal, a hidden prompt
  --code-file FILE       read the access code from a file
  --out FILE             write the DRT there (mode 600) instead of stdout
A wrong code and an altered backup both fail with backup_wrong_code.`,
    options: { code: { type: 'string' }, 'code-file': { type: 'string' }, out: { type: 'string' } },
    positionals: { min: 1, max: 1 },
    async run(ctx) {
      const blob = decodeBackupText(readText(ctx.io, ctx.positionals[0]!, 'the backup file'));
      const out = checkWritable(ctx, 'out');
      const accessCode = accessCodeOf(ctx) ?? (await promptedCode(ctx, false));
      if (accessCode === undefined) throw new UsageError('--code, --code-file or DIP_ACCESS_CODE is required');
      const drt = await openBackup(blob, accessCode);
      const written = out !== undefined && writeSecret(ctx.io, out, drt);
      if (ctx.json) print(ctx, written ? { out } : { drt }, []);
      else ctx.io.out(written ? `DRT written to ${out}\n` : `${drt}\n`);
      if (out !== undefined && !written) throw new ReportedFailure('cannot write --out; the DRT is printed instead, keep it');
    },
  },
  'backup push': {
    usage: 'dip backup push --service URL --drt FILE [--out FILE] [--code-file FILE]',
    summary: 'store a DRT backup at the DIP service; prints the backup code a second device needs',
    help: `Seals the DRT under a generated access code (scrypt N=2^17, r=8, p=1 + AES-256-GCM), padded to
exactly 4096 bytes so its length says nothing, and stores it at the service under a random 32-byte
id. The backup code (76 characters in groups of four) holds the id, the access code and a check;
the service only ever sees the id. Keep the code secret: with it, \`dip backup pull\` recovers the DRT.
  --service URL          the DIP service (or DIP_SERVICE)
  --drt FILE             the refresh token to back up
  --out FILE             write the backup code there (mode 600) instead of printing it
  --code-file FILE       replace the backup of the backup code in FILE (e.g. after a refresh)
  --timeout SECONDS      per-request deadline (default 30)`,
    options: { service: { type: 'string' }, drt: { type: 'string' }, out: { type: 'string' }, 'code-file': { type: 'string' }, timeout: { type: 'string' } },
    async run(ctx) {
      const service = serviceUrlOf(ctx);
      const drt = readText(ctx.io, required(ctx.values, 'drt'), '--drt').trim();
      if (!isDrtShaped(drt)) throw new UsageError('--drt is not a DRT (a compact JWS with typ drt+jwt)');
      const codeFile = str(ctx.values, 'code-file');
      const previous = codeFile === undefined ? undefined : readText(ctx.io, codeFile, '--code-file').trim();
      if (previous !== undefined) usageOnBadCode(previous, '--code-file');
      const out = checkWritable(ctx, 'out');
      const { backupCode } = await pushBackup({ ...service, drt, ...(previous === undefined ? {} : { backupCode: previous }) });
      const written = out !== undefined && writeSecret(ctx.io, out, backupCode);
      if (ctx.json) print(ctx, written ? { out } : { backupCode }, []);
      else ctx.io.out(written ? `backup code written to ${out}\n` : `backup code  ${backupCode}\n(keep it secret; on another device: dip backup pull --service URL)\n`);
      if (out !== undefined && !written) throw new ReportedFailure('cannot write --out; the backup code is printed instead, keep it');
    },
  },
  'backup pull': {
    usage: 'dip backup pull --service URL (--code CODE | --code-file FILE) [--drt-out FILE]',
    summary: 'on a second device: fetch the DRT backup of a backup code from the DIP service',
    help: `Reads the backup code (a mistyped one is caught before anything is sent), fetches the backup
stored under its id, opens it with its access code and checks that it holds a DRT.
  --service URL          the DIP service (or DIP_SERVICE)
  --code CODE            the backup code; also DIP_BACKUP_CODE; on a terminal, a hidden prompt
  --code-file FILE       read the backup code from a file
  --drt-out FILE         write the DRT there (mode 600) instead of printing it
  --timeout SECONDS      per-request deadline (default 30)`,
    options: { service: { type: 'string' }, code: { type: 'string' }, 'code-file': { type: 'string' }, 'drt-out': { type: 'string' }, timeout: { type: 'string' } },
    async run(ctx) {
      const service = serviceUrlOf(ctx);
      const out = checkWritable(ctx, 'drt-out');
      const file = str(ctx.values, 'code-file');
      const flag = str(ctx.values, 'code');
      if (file !== undefined && flag !== undefined) throw new UsageError('give --code or --code-file, not both');
      const given = file !== undefined ? readText(ctx.io, file, '--code-file').trim() : (flag ?? ctx.io.env['DIP_BACKUP_CODE']);
      const backupCode = given === undefined || given === '' ? await promptedSecret(ctx, 'backup code: ', 'backup code') : given;
      if (backupCode === undefined) throw new UsageError('--code, --code-file or DIP_BACKUP_CODE is required');
      usageOnBadCode(backupCode, file !== undefined ? '--code-file' : flag !== undefined ? '--code' : 'the backup code');
      const { drt, drtClaims } = await pullBackup({ ...service, backupCode });
      const written = out !== undefined && writeSecret(ctx.io, out, drt);
      const iso = (seconds: number) => new Date(seconds * 1000).toISOString();
      const report = { ip: drtClaims.ip, did: drtClaims.did, exp: drtClaims.exp };
      if (ctx.json) print(ctx, { ...(written ? { drtOut: out } : { drt }), drtClaims: report }, []);
      else ctx.io.out(`${written ? `DRT written to  ${out}` : `drt             ${drt}`}\nip              ${drtClaims.ip}\nexpires         ${iso(drtClaims.exp)} (refresh before then)\n`);
      if (out !== undefined && !written) throw new ReportedFailure('cannot write --drt-out; the DRT is printed instead, keep it');
    },
  },
  'verify-dat': {
    usage: 'dip verify-dat TOKEN --jwks URL|FILE --ip IP [--iss ISS] [--at UNIX_SECONDS]',
    summary: 'verify a DAT as a VPN server does: signature, typ, kid, times and the IP it binds',
    help: `TOKEN is the DAT the app presents. Checks (SPEC §2): ES256 by a key of the JWKS whose kid is
its RFC 7638 thumbprint, typ dat+jwt, a 3-day lifetime, iat and exp with 60 s of skew, no sub,
the IP claim equal to --ip. Exit 1 with dat_invalid or ip_unexpected when a check fails.
  --jwks URL|FILE        the enclave's JWKS: its URL (e.g. PARENT/v1/keys) or a file
  --ip IP                the IP this VPN server gives the client (canonical form)
  --iss ISS              also require this issuer
  --at UNIX_SECONDS      verify as of this time (default now)
  --timeout SECONDS      deadline for fetching the JWKS (default 30)`,
    options: { jwks: { type: 'string' }, ip: { type: 'string' }, iss: { type: 'string' }, at: { type: 'string' }, timeout: { type: 'string' } },
    positionals: { min: 1, max: 1 },
    async run(ctx) {
      const source = required(ctx.values, 'jwks');
      const ip = required(ctx.values, 'ip');
      if (!isCanonicalIp(ip)) throw new UsageError('--ip must be an IP address in canonical form');
      const at = seconds(ctx.values, 'at', 0);
      const timeout = seconds(ctx.values, 'timeout', 1);
      const iss = str(ctx.values, 'iss');
      const jwks = /^https?:\/\//.test(source)
        ? await fetchJwks(source, { ...(ctx.io.fetch ? { fetch: ctx.io.fetch } : {}), ...(timeout === undefined ? {} : { timeoutMs: timeout * 1000 }) })
        : readBytes(ctx.io, source, '--jwks');
      const claims = await verifyDat(ctx.positionals[0]!, jwks, {
        ip,
        ...(iss === undefined ? {} : { iss }),
        ...(at === undefined ? {} : { now: new Date(at * 1000) }),
      });
      const iso = (t: number) => new Date(t * 1000).toISOString();
      print(ctx, { claims }, [
        `DAT valid       iss ${claims.iss}, ip ${claims.ip}`,
        `issued          ${claims.iat} (${iso(claims.iat)})`,
        `expires         ${claims.exp} (${iso(claims.exp)})`,
      ]);
    },
  },
  'token get': {
    usage: 'dip token get --issuer URL --srt FILE --out FILE (--token-keys FILE | --dev)',
    summary: 'get a Privacy Pass token for assign from the issuer, with the SRT (SPEC §10)',
    help: `Fetches the issuer directory and refuses it if it offers any key not pinned; blinds a token
request for the pinned challenge (token type 2, the pinned issuer and origin, no redemption
context), sends it with the SRT, and verifies the finalized token under the pinned key.
The token is written before anything is reported; keep it, and redeem it after the printed time
(a random delay of 1–24 h, none with --dev), so the DIP service cannot link it to its issuance.
  --issuer URL           the token issuer, e.g. http://127.0.0.1:8082
  --srt FILE             the subscription receipt token (sent to the issuer only)
  --out FILE             write the token there (mode 600), base64url with padding as the
                         Authorization: PrivateToken header carries it; checked before any request
${TOKEN_KEYS_HELP}
  --timeout SECONDS      per-request deadline (default 30)`,
    options: { ...TOKEN_KEYS_OPTIONS, issuer: { type: 'string' }, srt: { type: 'string' }, out: { type: 'string' }, timeout: { type: 'string' } },
    async run(ctx) {
      const issuerUrl = required(ctx.values, 'issuer');
      if (!/^https?:\/\/[^/]/.test(issuerUrl)) throw new UsageError('--issuer must be an http(s) URL');
      const srt = readText(ctx.io, required(ctx.values, 'srt'), '--srt').trim();
      if (srt === '' || /\s/.test(srt)) throw new UsageError('--srt must hold one token');
      required(ctx.values, 'out');
      const out = checkWritable(ctx, 'out')!;
      const timeout = seconds(ctx.values, 'timeout', 1);
      const config = pinnedIssuerOf(ctx);
      const issued = await getToken({
        issuerUrl, srt, config,
        ...(ctx.io.fetch ? { fetch: ctx.io.fetch } : {}),
        ...(timeout === undefined ? {} : { timeoutMs: timeout * 1000 }),
      });
      const written = writeSecret(ctx.io, out, issued.encoded);
      const delayMs = redemptionDelayMs({ development: ctx.values['dev'] === true });
      const redeemAfter = Math.ceil((Date.now() + delayMs) / 1000);
      const report = {
        ...(written ? { out } : { token: issued.encoded }),
        tokenKeyId: Buffer.from(issued.tokenKeyId).toString('hex'),
        issuerName: config.issuerName,
        originInfo: config.originInfo,
        redemptionDelaySeconds: Math.ceil(delayMs / 1000),
        redeemAfter,
      };
      const lines = [
        written ? `token written to  ${out}` : `token             ${issued.encoded}`,
        `verified          under pinned key ${report.tokenKeyId} for ${config.issuerName} → ${config.originInfo}`,
        `redeem after      ${redeemAfter} (${new Date(redeemAfter * 1000).toISOString()})`,
      ];
      if (written) {
        print(ctx, report, lines);
        return;
      }
      // The issuer signs once per subscription version: a token not kept is a Dedicated IP lost.
      const message = 'cannot write --out; the token is printed instead, keep it';
      if (ctx.json) ctx.io.out(`${JSON.stringify({ ok: false, error: { code: 'output_failed', message }, ...report }, null, 2)}\n`);
      else ctx.io.out(`${lines.join('\n')}\n`);
      throw new ReportedFailure(message);
    },
  },
  'token verify': {
    usage: 'dip token verify FILE (--token-keys FILE | --dev) [--challenge B64]',
    summary: 'verify a saved Privacy Pass token under the pinned issuer keys',
    help: `FILE holds a token as \`dip token get\` writes it (base64url with padding). Checks that it names a
pinned key, answers the challenge and carries a valid RSASSA-PSS signature (RFC 9578 §6.4).
Exit 1 with token_invalid (detail malformed, token_key or signature) when a check fails.
${TOKEN_KEYS_HELP}
  --challenge B64        the TokenChallenge to check against, base64url with padding as the
                         WWW-Authenticate challenge= carries it (default the pinned challenge)`,
    options: { ...TOKEN_KEYS_OPTIONS, challenge: { type: 'string' } },
    positionals: { min: 1, max: 1 },
    async run(ctx) {
      const encoded = readText(ctx.io, ctx.positionals[0]!, 'the token file').trim();
      const challengeText = str(ctx.values, 'challenge');
      let challenge: TokenChallenge | undefined;
      if (challengeText !== undefined) {
        const bytes = decodePaddedBase64url(challengeText);
        try {
          if (bytes === null) throw new Error('not padded base64url');
          challenge = TokenChallenge.decode(bytes);
        } catch {
          throw new UsageError('--challenge must be a TokenChallenge in base64url with padding');
        }
      }
      const config = pinnedIssuerOf(ctx);
      const { pinned } = verifySavedToken(encoded, config, challenge);
      const tokenKeyId = Buffer.from(pinned.tokenKeyId).toString('hex');
      print(ctx, { tokenKeyId, challenge: challengeText === undefined ? 'pinned' : 'given' }, [
        `token valid       under pinned key ${tokenKeyId}`,
        `challenge         ${challengeText === undefined ? `the pinned one (${config.issuerName} → ${config.originInfo})` : 'the given one'}`,
      ]);
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
      if (!isSubscriptionId(sub)) throw new UsageError('--sub must be 1..256 characters (code points) of well-formed text');
      if (ttl > 259_200) throw new UsageError('--ttl must be at most 259200 (72 hours)');
      const devDir = resolve(ctx.io.cwd, str(ctx.values, 'dev-dir') ?? '.dev');
      let issuer;
      try {
        issuer = parseDevIssuer(readText(ctx.io, resolve(devDir, 'srt-issuer.json'), 'the development issuer (run `make dev` first)'));
      } catch (error) {
        if (error instanceof UsageError) throw error;
        throw new UsageError('srt-issuer.json is not a development issuer');
      }
      const out = checkWritable(ctx, 'out');
      const srt = await mintDevSrt(issuer, { sub, did, lifetimeSeconds: ttl });
      if (out !== undefined && !writeSecret(ctx.io, out, srt)) throw new UsageError('cannot write --out');
      if (ctx.json) print(ctx, { ...(out === undefined ? { srt } : { out }), claims: readSrt(srt) }, []);
      else ctx.io.out(out === undefined ? `${srt}\n` : `SRT written to ${out}\n`);
    },
  },
};

function topHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  return `dip — client and auditor tool for the Dedicated IP enclave

Usage: dip COMMAND [options]    (dip COMMAND --help for its options; dip --version)

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`).join('\n')}

Every command takes --json (every outcome, errors included, is then one JSON object on stdout).
Environment: DIP_SERVICE, DIP_URL, DIP_ROOT, DIP_ROOT_SHA256, DIP_MANIFEST, DIP_M_COMMIT, DIP_ACCESS_CODE,
DIP_BACKUP_CODE; flags win.
Exit status: 0 ok, 1 a check failed or the server refused, 2 usage.
`;
}

function commandHelp(command: Command): string {
  return `Usage: ${command.usage}

${command.summary}.
${command.help}
${COMMON_HELP}
`;
}

/** What a person can do about a failed check; fixed texts chosen by code, never input. */
function hintOf(error: ClientError, options: Options): string | undefined {
  if (error instanceof PcrClientError) return `PCR${error.pcrIndex} differs from the expected value`;
  switch (error.detail) {
    case 'm_commit_mismatch':
      return 'the enclave holds another master secret than the pinned m_commit names: do not trust its keys';
    case 'pcr_mismatch':
      return 'a PCR differs from the expected value (dip verify-attestation on the document names which)';
    case 'certificate_expired':
      return 'at' in options
        ? 'a certificate of the chain is not valid now; give --at UNIX_SECONDS to verify as of the document\'s time'
        : 'a certificate of the chain is not valid now; check this machine\'s clock';
    case 'stale':
      return 'at' in options
        ? 'the document is older than --max-age SECONDS (default 300); raise --max-age, or give --at UNIX_SECONDS'
        : 'the document is older than --max-age SECONDS (default 300); raise --max-age or check the clocks';
    default: {
      const network = error.code === 'http_failed' && error.detail !== undefined && Object.hasOwn(NETWORK_FAILURE_MESSAGES, error.detail)
        ? NETWORK_FAILURE_MESSAGES[error.detail as keyof typeof NETWORK_FAILURE_MESSAGES]
        : undefined;
      const service = serviceHintOf(error);
      return network === undefined ? service : service === undefined ? network : `${network}; ${service}`;
    }
  }
}

/** What the DIP service's answers mean for the token and the IP (SPEC §10–11). */
function serviceHintOf(error: ClientError): string | undefined {
  if (error instanceof RetryWithSameTokenError) {
    return 'the token is not lost: run the same command again later with the same --token (never get a new token)';
  }
  if (error.code === 'challenge_unexpected') return 'the service asks for tokens this release does not pin; nothing was sent';
  // SPEC §11: also while another attempt with the same token is still at the parent.
  if (error.code === 'token_spent' && error.fromServer) return 'this token was redeemed already, or an earlier attempt with it is still under way (after a timeout, try again later)';
  if (error.code === 'token_invalid' && error.detail === 'not_offered') return 'the service no longer takes tokens under this key; nothing was sent';
  if (error.code === 'ip_unavailable') return 'the service no longer reserves the IP of this DRT';
  return undefined;
}

function errorJson(error: ClientError, options: Options): Record<string, unknown> {
  const hint = hintOf(error, options);
  return {
    ...error.toJSON(),
    ...(error instanceof PcrClientError ? { pcr: error.pcrIndex } : {}),
    ...(hint === undefined ? {} : { hint }),
  };
}

function errorText(error: ClientError, options: Options): string {
  const detail = error.detail === undefined ? '' : ` (${error.detail})`;
  const detailMessage = error.detail !== undefined && Object.hasOwn(ATTESTATION_ERROR_MESSAGES, error.detail)
    ? ` ${ATTESTATION_ERROR_MESSAGES[error.detail as keyof typeof ATTESTATION_ERROR_MESSAGES]}`
    : '';
  const from = error.fromServer ? 'the server refused: ' : '';
  const hint = hintOf(error, options);
  return `${from}${error.code}${detail}: ${error.message}${detailMessage}${hint === undefined ? '' : ` — ${hint}`}`;
}

export function defaultIo(): CliIo {
  return {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    cwd: process.cwd(),
    env: process.env,
    stdin: process.stdin,
  };
}

/** Fills options from ENVIRONMENT that no flag gave. --dev brings its own root and PCRs. */
function applyEnvironment(values: Values, options: Options, env: CliIo['env']): Set<string> {
  const fromEnv = new Set<string>();
  const pcrFlags = ['pcr0', 'pcr1', 'pcr2'].some((name) => values[name] !== undefined);
  const serverFlags = { url: values['url'] !== undefined, service: values['service'] !== undefined };
  for (const [name, variable] of Object.entries(ENVIRONMENT)) {
    const value = env[variable];
    if (!(name in options) || values[name] !== undefined || value === undefined || value === '') continue;
    // --dev replaces the root and the PCRs; the servers' URLs and the deployment's m_commit stay.
    if (name !== 'url' && name !== 'service' && name !== 'm-commit' && values['dev'] === true) continue;
    // A server given by flag is the one meant: the other's variable does not make it two.
    if ((name === 'url' && serverFlags.service) || (name === 'service' && serverFlags.url)) continue;
    if (name === 'manifest' && pcrFlags) continue;
    values[name] = value;
    fromEnv.add(name);
  }
  return fromEnv;
}

/** Commands of two words: `dip backup seal`, `dip token get`. */
const GROUPS: Record<string, readonly string[]> = { backup: ['seal', 'open', 'push', 'pull'], token: ['get', 'verify'] };

/** Resolves argv to a command name, its arguments, or a top-level answer. */
function route(argv: string[]): { name: string; rest: string[] } | { top: 'help' | 'version' | 'none' | 'group' | 'unknown'; group?: string; sub?: string } {
  const first = argv.find((arg) => arg !== '--json');
  if (first === undefined) return { top: 'none' };
  if (first === '--help' || first === '-h' || first === 'help') return { top: 'help' };
  if (first === '--version' || first === '-V') return { top: 'version' };
  const rest = argv.filter((arg, i) => i !== argv.indexOf(first));
  const group = Object.hasOwn(GROUPS, first) ? GROUPS[first]! : undefined;
  if (group !== undefined) {
    const sub = rest.find((arg) => arg !== '--json');
    if (sub !== undefined && group.includes(sub)) return { name: `${first} ${sub}`, rest: rest.filter((arg, i) => i !== rest.indexOf(sub)) };
    return { top: 'group', group: first, ...(sub === undefined ? {} : { sub }) };
  }
  return Object.hasOwn(COMMANDS, first) ? { name: first, rest } : { top: 'unknown' };
}

/** Runs one `dip` invocation; returns the exit status. */
export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  const json = argv.includes('--json');
  const say = (text: string, fields: Record<string, unknown>) => io.out(json ? `${JSON.stringify({ ok: true, ...fields }, null, 2)}\n` : text);
  const usage = (prefix: string, message: string, usageLine: string): number => {
    if (json) io.out(`${JSON.stringify({ ok: false, error: { code: 'usage', message } }, null, 2)}\n`);
    io.err(`${prefix}: ${message}\n${usageLine}\n`);
    return 2;
  };
  const where = route(argv);
  if ('top' in where) {
    switch (where.top) {
      case 'help':
        say(topHelp(), { help: topHelp() });
        return 0;
      case 'version':
        say(`dip ${DIP_VERSION}\n`, { version: DIP_VERSION });
        return 0;
      case 'group': {
        const group = where.group!;
        const subs = GROUPS[group]!;
        const line = `Usage: dip ${group} ${subs.join('|')} [options]`;
        const text = `${line}\n\n${subs.map((sub) => `  ${sub.padEnd(6)}  ${COMMANDS[`${group} ${sub}`]!.summary}`).join('\n')}\n`;
        if (where.sub === '--help' || where.sub === '-h') {
          say(text, { help: text });
          return 0;
        }
        return usage(`dip ${group}`, `give ${subs.join(' or ')}`, line);
      }
      case 'none':
        if (!json) io.out(topHelp());
        return usage('dip', 'give a command', 'Usage: dip COMMAND [options]');
      default:
        return usage('dip', 'unknown command; see dip --help', 'Usage: dip COMMAND [options]');
    }
  }
  const { name } = where;
  const command = COMMANDS[name]!;
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: where.rest, options: { ...COMMON, ...command.options }, allowPositionals: true, strict: true });
    } catch (error) {
      // node:util's messages name the option (e.g. "Unknown option '--bogus'"), never a value.
      throw new UsageError((error as Error).message);
    }
    if (parsed.values['help'] === true) {
      say(commandHelp(command), { help: commandHelp(command) });
      return 0;
    }
    const { min, max } = command.positionals ?? { min: 0, max: 0 };
    if (parsed.positionals.length < min || parsed.positionals.length > max) {
      throw new UsageError(max === 0 ? 'takes no positional arguments' : `takes ${min === max ? min : `${min}..${max}`} argument(s)`);
    }
    const values = parsed.values as Values;
    const fromEnv = applyEnvironment(values, command.options, io.env);
    await command.run({ values, positionals: parsed.positionals, io, json, fromEnv });
    return 0;
  } catch (error) {
    if (error instanceof UsageError) return usage(`dip ${name}`, error.message, command.usage);
    if (error instanceof ReportedFailure) {
      io.err(`dip ${name}: ${error.message}\n`);
      return 1;
    }
    if (error instanceof ClientError) {
      if (json) io.out(`${JSON.stringify({ ok: false, error: errorJson(error, command.options) }, null, 2)}\n`);
      io.err(`dip ${name}: ${errorText(error, command.options)}\n`);
      return 1;
    }
    // Our own fixed-message errors (e.g. a TypeError from misuse); nothing here carries input.
    const kind = error instanceof Error ? error.name : 'unknown';
    if (json) io.out(`${JSON.stringify({ ok: false, error: { code: 'unexpected', message: kind } }, null, 2)}\n`);
    io.err(`dip ${name}: unexpected error: ${kind}\n`);
    return 1;
  }
}
