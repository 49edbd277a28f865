// Test helper: runs the real enclave process (enclave/main.ts under tsx) in development mode with
// a fresh state directory and a Unix socket in it, and mints, seals and opens what an app would.
// Children inherit NODE_V8_COVERAGE, so `make test` counts the code they run.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { importJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import { open, seal } from '../../client/seal.js';
import type { ResponseContext } from '../../protocol/hpke.js';
import type { ListenAddress } from '../../enclave/io/address.js';
import { envelopeForRecipient, rsa2048PublicKey } from '../../emulators/kms/cms.js';
import { decodeAttestationPayload } from '../../protocol/attestation-document.js';
import { decodeCoseSign1 } from '../../protocol/cose.js';
import { parseResponseBody } from '../../protocol/messages.js';
import { FrameClient, within } from './frame-client.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The SPEC §8 development issuer, as the enclave wrote it to DIR/srt-issuer.json. */
export interface DevIssuer {
  iss: string;
  aud: string | null;
  jwk: JWK & { kid: string; alg: string };
}

export interface SpawnedEnclave {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Always DIR/enclave.sock. */
  readonly address: Extract<ListenAddress, { kind: 'unix' }>;
  /** The --dev state directory. */
  readonly dir: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** The JSON events on stderr so far. */
  events(): Array<Record<string, unknown>>;
  issuer(): DevIssuer;
  rootPem(): string;
  connect(): Promise<FrameClient>;
  /** True while the process runs. */
  alive(): boolean;
  readonly exited: Promise<ExitStatus>;
  /** SIGTERM, then SIGKILL if it has not exited within the grace time. */
  stop(): Promise<ExitStatus>;
}

/**
 * Starts `node --import tsx enclave/main.ts args…` from the repo root — or `node BUNDLE args…` for
 * a bundle (dev-bundle.ts) — and captures its output.
 */
export function runEnclaveProcess(args: string[], env: NodeJS.ProcessEnv = {}, bundle?: string): {
  child: ChildProcess;
  output: () => string;
  exited: Promise<ExitStatus>;
} {
  const entry = bundle === undefined ? ['--import', 'tsx', 'enclave/main.ts'] : [bundle];
  const child = spawn(process.execPath, [...entry, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (output += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s));
  const exited = new Promise<ExitStatus>((resolveExit) => child.once('close', (code, signal) => resolveExit({ code, signal })));
  return { child, output: () => output, exited };
}

function parseEvents(output: string): Array<Record<string, unknown>> {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

export interface SpawnOptions {
  dir?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * The master secret M to unlock the enclave with, as the parent would relay it from KMS (SPEC §9:
   * key_request, a CMS envelope like KMS's for the recipient key, unlock); TEST_MASTER_SECRET by
   * default. null leaves the enclave locked.
   */
  masterSecret?: Uint8Array | null;
  /** --workers N (issue 13); the enclave's default (the CPUs it may use) when absent. */
  workers?: number;
  /** Run this bundle (dev-bundle.ts) instead of enclave/main.ts under tsx. */
  bundle?: string;
}

/** The M that spawned enclaves share unless told otherwise, so DRTs survive their restarts. */
export const TEST_MASTER_SECRET = new Uint8Array(32).map((_, i) => (i * 37 + 11) & 0xff);

/**
 * SPEC §9 as the parent does it, with the KMS emulator's CMS writer standing in for KMS:
 * key_request → envelope M for the document's RSA public key → unlock. Returns the unlock body.
 */
export async function unlockEnclave(client: FrameClient, masterSecret: Uint8Array): Promise<{ epoch: number; m_commit: Uint8Array }> {
  const requested = await client.request('key_request');
  if (!requested.ok) throw new Error(`key_request failed: ${requested.error.code}`);
  const { document } = parseResponseBody('key_request', requested.body)!;
  const recipient = rsa2048PublicKey(decodeAttestationPayload(decodeCoseSign1(document).payload).publicKey!);
  if (recipient === null) throw new Error('key_request did not return an RSA-2048 recipient key');
  const unlocked = await client.request('unlock', { recipient_ciphertext: envelopeForRecipient(masterSecret, recipient) });
  if (!unlocked.ok) throw new Error(`unlock failed: ${unlocked.error.code}`);
  return parseResponseBody('unlock', unlocked.body)!;
}

/**
 * Spawns a development enclave listening on DIR/enclave.sock and resolves once it logs
 * `listening` and (unless `masterSecret` is null) is unlocked. Register `stop` with t.after / after: the helper never leaves a child behind
 * on its own failure paths.
 */
export async function spawnEnclave(options: SpawnOptions = {}): Promise<SpawnedEnclave> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'dip-enclave-'));
  const ownsDir = options.dir === undefined;
  const address = { kind: 'unix', path: join(dir, 'enclave.sock') } as const;
  const workers = options.workers === undefined ? [] : ['--workers', String(options.workers)];
  const run = runEnclaveProcess(['--dev', dir, '--listen', `unix:${address.path}`, ...workers], options.env, options.bundle);
  let running = true;
  void run.exited.then(() => (running = false));

  const listening = (async () => {
    for (let i = 0; i < 1200 && running; i++) {
      if (parseEvents(run.output()).some((e) => e['event'] === 'listening')) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`the enclave did not start:\n${run.output()}`);
  })();
  try {
    await within(listening, 90_000, 'enclave startup');
  } catch (error) {
    run.child.kill('SIGKILL');
    throw error;
  }

  const stop = async (): Promise<ExitStatus> => {
    if (running) {
      run.child.kill('SIGTERM');
      const timer = setTimeout(() => run.child.kill('SIGKILL'), 15_000);
      await run.exited;
      clearTimeout(timer);
    }
    if (ownsDir) rmSync(dir, { recursive: true, force: true });
    return run.exited;
  };

  const masterSecret = options.masterSecret === undefined ? TEST_MASTER_SECRET : options.masterSecret;
  if (masterSecret !== null) {
    const client = await FrameClient.connect(address);
    try {
      await within(unlockEnclave(client, masterSecret), 60_000, 'enclave unlock');
    } catch (error) {
      await stop();
      throw error;
    } finally {
      client.close();
    }
  }

  return {
    child: run.child,
    pid: run.child.pid!,
    address,
    dir,
    output: run.output,
    events: () => parseEvents(run.output()),
    issuer: () => JSON.parse(readFileSync(join(dir, 'srt-issuer.json'), 'utf8')) as DevIssuer,
    rootPem: () => readFileSync(join(dir, 'nsm-root.pem'), 'utf8'),
    connect: () => FrameClient.connect(address),
    alive: () => running,
    exited: run.exited,
    stop,
  };
}

export interface SrtOptions {
  sub: string;
  /** The subscription version; null leaves the entitlement out. */
  did?: number | null;
  /** Unix seconds; default now. */
  iat?: number;
  /** Unix seconds; default iat + 1 day. */
  exp?: number;
  /** Extra or overriding claims. */
  claims?: JWTPayload;
}

/** Mints an SRT signed by the development issuer (SPEC §2 claims, entitlement `xv.vpn.dip`). */
export async function mintSrt(issuer: DevIssuer, options: SrtOptions): Promise<string> {
  const iat = options.iat ?? Math.floor(Date.now() / 1000);
  const did = options.did === undefined ? 0 : options.did;
  const payload: JWTPayload = {
    iss: issuer.iss,
    sub: options.sub,
    iat,
    exp: options.exp ?? iat + 24 * 3600,
    ...(issuer.aud === null ? {} : { aud: issuer.aud }),
    ...(did === null ? {} : { entitlements: { 'xv.vpn.dip': { did } } }),
    ...options.claims,
  };
  const key = await importJWK(issuer.jwk, issuer.jwk.alg);
  return new SignJWT(payload).setProtectedHeader({ alg: issuer.jwk.alg, kid: issuer.jwk.kid, typ: 'JWT' }).sign(key);
}

export interface SealedDipRequest {
  request: Uint8Array;
  context: ResponseContext;
}

/** SPEC §4: the app's sealed assign request `{"srt"}`, padded as the client pads it. */
export function sealAssign(bootKeySpki: Uint8Array, srt: string): SealedDipRequest {
  const { encapsulatedRequest, context } = seal(bootKeySpki, { op: 'assign', srt });
  return { request: encapsulatedRequest, context };
}

/** SPEC §4: the app's sealed refresh request `{"srt", "drt"}`, padded as the client pads it. */
export function sealRefresh(bootKeySpki: Uint8Array, srt: string, drt: string): SealedDipRequest {
  const { encapsulatedRequest, context } = seal(bootKeySpki, { op: 'refresh', srt, drt });
  return { request: encapsulatedRequest, context };
}

/** Opens the sealed `{"dat", "drt"}` of an assign or refresh answer. */
export function openTokens(context: ResponseContext, response: Uint8Array): { dat: string; drt: string } {
  return open(context, response);
}

/** Reads a JWS payload without verifying it (tests only). */
export function jwtClaims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** /proc/<pid>/status VmRSS in bytes (Linux). */
export function residentBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error('no VmRSS in /proc status');
  return Number(match[1]) * 1024;
}

/** utime + stime of a process from /proc/<pid>/stat, in clock ticks (Linux). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** Resolves once the process has used no CPU for `quietMs` (it has done all it is going to do). */
export async function waitUntilIdle(pid: number, { quietMs = 1000, maxMs = 180_000 } = {}): Promise<void> {
  const started = Date.now();
  let last = cpuTicks(pid);
  while (Date.now() - started < maxMs) {
    await new Promise((r) => setTimeout(r, quietMs));
    const now = cpuTicks(pid);
    if (now === last) return;
    last = now;
  }
  throw new Error('the process never went idle');
}
