// `make demo`: one readable transcript of the whole life of a Dedicated IP against the local stack
// (SPEC §4–§8): attest, assign, use the DAT, refresh, back up and restore the DRT on a second
// device, and a support reset that retires the old DRT. Development data only.
//
// Uses the stack of `make dev` when one answers on http://127.0.0.1:8080 (state in .dev/);
// otherwise starts a throwaway enclave, KMS emulator and parent in a temporary directory (the
// parent unlocks the enclave through the emulator, SPEC §9) and stops them after.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { encodeBackupText, decodeBackupText, generateAccessCode, openBackup, sealBackup } from '../client/backup.js';
import { ClientError } from '../client/errors.js';
import { assign, attest, refresh, type Trust } from '../client/flows.js';
import { DEV_PCRS, pcrToHex } from '../client/manifest.js';
import { mintDevSrt, parseDevIssuer } from '../client/tokens.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface LocalStack {
  url: string;
  /** The development state directory: nsm-root.pem and srt-issuer.json. */
  dir: string;
  /** Everything the enclave and the parent wrote to stdout and stderr (their logs). */
  output(): string;
  stop(): Promise<void>;
}

/** Dummy credentials for the SDK in the parent: the KMS emulator checks none. */
const DEV_AWS_ENV = { AWS_ACCESS_KEY_ID: 'AKIDDEVELOPMENT', AWS_SECRET_ACCESS_KEY: 'development-only', AWS_EC2_METADATA_DISABLED: 'true' };

function spawnTs(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (output += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s));
  return { child, output: () => output };
}

function listeningEvent(output: string): Record<string, unknown> | undefined {
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const event = JSON.parse(line) as Record<string, unknown>;
      if (event['event'] === 'listening') return event;
    } catch {
      // a partial line; read it again on the next poll
    }
  }
  return undefined;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, child: ChildProcess, output: () => string): Promise<T> {
  for (let i = 0; i < 1200; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited early:\n${output()}`);
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not become ready:\n${output()}`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('close', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts the development enclave (NSM emulator) on a Unix socket in `dir`, the KMS emulator and
 * the parent on free loopback ports, creates the keyset (SPEC §9) when `dir` has none, and resolves
 * once the parent's /readyz says the enclave is unlocked and answers.
 */
export async function startLocalStack(dir: string = mkdtempSync(join(tmpdir(), 'dip-stack-'))): Promise<LocalStack> {
  const socket = join(dir, 'enclave.sock');
  const enclave = spawnTs(['enclave/main.ts', '--dev', dir, '--listen', `unix:${socket}`]);
  let kms: ReturnType<typeof spawnTs> | undefined;
  let parent: ReturnType<typeof spawnTs> | undefined;
  const stop = async (): Promise<void> => {
    if (parent) await stopChild(parent.child);
    if (kms) await stopChild(kms.child);
    await stopChild(enclave.child);
  };
  try {
    await waitFor('the enclave', () => listeningEvent(enclave.output()), enclave.child, enclave.output);
    // The KMS emulator reads the root the enclave has just written, and allows the development PCR0.
    const policy = join(dir, 'kms-pcr-policy.txt');
    if (!existsSync(policy)) writeFileSync(policy, `${pcrToHex(DEV_PCRS.pcr0)}\n`);
    const startedKms = spawnTs(['emulators/kms/main.ts', '--listen', '127.0.0.1:0', '--state-dir', dir]);
    kms = startedKms;
    const [arn, kmsUrl] = await waitFor(
      'the KMS emulator',
      () => {
        const key = /^kms: key (\S+)$/m.exec(startedKms.output())?.[1];
        const url = /^kms: listening on (\S+)$/m.exec(startedKms.output())?.[1];
        return key !== undefined && url !== undefined ? [key, url] : undefined;
      },
      startedKms.child,
      startedKms.output,
    );
    const kmsArgs = ['--kms-endpoint', kmsUrl, '--kms-region', 'us-east-1'];
    const keyset = join(dir, 'keyset.json');
    if (!existsSync(keyset)) {
      const create = spawnTs(['parent/main.ts', 'keyset', 'create', '--enclave', `unix:${socket}`, '--keyset', keyset, '--kms-key-id', arn, '--deployment', 'dev', ...kmsArgs], DEV_AWS_ENV);
      const code = await new Promise<number | null>((resolveExit) => create.child.once('close', resolveExit));
      if (code !== 0) throw new Error(`keyset create failed:\n${create.output()}`);
    }
    const started = spawnTs(['parent/main.ts', '--enclave', `unix:${socket}`, '--keyset', keyset, ...kmsArgs, '--listen', '127.0.0.1:0'], DEV_AWS_ENV);
    parent = started;
    const event = await waitFor('the parent', () => listeningEvent(started.output()), started.child, started.output);
    const url = `http://127.0.0.1:${String(event['port'])}`;
    await waitFor('the parent /readyz', async () => ((await fetch(`${url}/readyz`).catch(() => null))?.status === 200 ? true : undefined), started.child, started.output);
    return { url, dir, stop, output: () => enclave.output() + startedKms.output() + started.output() };
  } catch (error) {
    await stop();
    throw error;
  }
}

// ---- the transcript ----

const SAY = (text = ''): void => void process.stdout.write(`${text}\n`);
const STEP = (n: number, title: string): void => SAY(`\n── ${n}. ${title} ${'─'.repeat(Math.max(0, 66 - title.length))}`);
/** Tokens are never printed whole, even development ones: a prefix and the length. */
const short = (token: string): string => `${token.slice(0, 12)}…(${token.length} chars)`;
const iso = (seconds: number): string => new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');

async function expectFailure(promise: Promise<unknown>): Promise<ClientError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ClientError) return error;
    throw error;
  }
  throw new Error('expected a refusal, but the call succeeded');
}

export async function runDemo(): Promise<void> {
  let stack: LocalStack;
  const ready = await fetch(`${DEFAULT_URL}/readyz`).then((r) => r.status === 200, () => false);
  const devDir = join(REPO_ROOT, '.dev');
  if (ready && existsSync(join(devDir, 'nsm-root.pem')) && existsSync(join(devDir, 'srt-issuer.json'))) {
    stack = { url: DEFAULT_URL, dir: devDir, output: () => '', stop: async () => {} };
    SAY(`Dedicated IP demo — DEVELOPMENT DATA — using the running dev stack at ${DEFAULT_URL} (state in .dev/)`);
  } else {
    SAY('Dedicated IP demo — DEVELOPMENT DATA — nothing answers on 127.0.0.1:8080, starting a throwaway stack');
    stack = await startLocalStack();
    SAY(`  enclave (NSM emulator) on a Unix socket, KMS emulator holding the keyset's key, parent on ${stack.url}, state in ${stack.dir}`);
  }
  try {
    await transcript(stack);
  } finally {
    await stack.stop();
    if (stack.dir !== devDir) rmSync(stack.dir, { recursive: true, force: true });
  }
}

async function transcript({ url, dir }: LocalStack): Promise<void> {
  const trust: Trust = { root: readFileSync(join(dir, 'nsm-root.pem'), 'utf8'), expectedPcrs: DEV_PCRS };
  const issuer = parseDevIssuer(readFileSync(join(dir, 'srt-issuer.json'), 'utf8'));
  const sub = `demo-${randomBytes(4).toString('hex')}`;
  const ip = `198.51.100.${1 + (randomBytes(1)[0]! % 254)}`; // TEST-NET-2

  STEP(1, 'The app attests the enclave');
  const enclave = await attest({ url, trust });
  const a = enclave.attestation;
  SAY(`  GET /v1/attestation with a fresh 32-byte random nonce → ${a.moduleId}`);
  SAY('  verified: COSE ES384 signature, certificate chain to the pinned (development) root, nonce, age');
  SAY(`  PCR0 ${pcrToHex(a.pcrs.get(0)!).slice(0, 24)}…  PCR1 ${pcrToHex(a.pcrs.get(1)!).slice(0, 24)}…  PCR2 ${pcrToHex(a.pcrs.get(2)!).slice(0, 24)}… (the emulator's, as expected)`);
  SAY(`  GET /v1/keys: SHA-256 matches user_data.jwks_sha256; boot key (HPKE P-256) taken from public_key`);

  STEP(2, 'Assign: the app seals its SRT for an IP the DIP service chose');
  const srt = await mintDevSrt(issuer, { sub, did: 0 });
  SAY(`  SRT from the (development) subscription service: sub ${sub}, did 0  ${short(srt)}`);
  const first = await assign({ url, trust, srt, ip });
  SAY(`  POST /v1/dip/assign {"ip": "${ip}", "request": <HPKE ciphertext>}`);
  SAY(`  the parent saw only: ip ${first.ip}, reservedUntil ${iso(first.reservedUntil)}, ciphertext`);
  SAY(`  opened in the app: DAT ${short(first.dat)}  DRT ${short(first.drt)}`);
  SAY(`  DAT verified against the attested JWKS: ip ${first.datClaims.ip}, expires ${iso(first.datClaims.exp)}, no sub`);
  SAY(`  DRT read (only the enclave can verify it): did ${first.drtClaims.did}, ip ${first.drtClaims.ip}, expires ${iso(first.drtClaims.exp)} , rounded up to the next 00:00 UTC = reservedUntil`);

  STEP(3, 'A VPN server checks the DAT');
  const jwks = createLocalJWKSet(JSON.parse(Buffer.from(enclave.jwks).toString('utf8')));
  const shown = await jwtVerify(first.dat, jwks, { algorithms: ['ES256'], typ: 'dat+jwt' });
  SAY(`  jwtVerify(DAT, GET /v1/keys): ok → route ${String((shown.payload['xv.vpn.dip.details'] as { ip: string }).ip)}; the server learns no subscription id`);
  const drtAsDat = await jwtVerify(first.drt, jwks, { algorithms: ['ES256'], typ: 'dat+jwt' }).then(() => 'accepted (BUG)', (e: Error & { code?: string }) => `refused (${e.code ?? e.name})`);
  SAY(`  the DRT shown as a DAT: ${drtAsDat}`);

  STEP(4, 'Refresh before the DAT expires');
  const second = await refresh({ url, trust, srt, drt: first.drt });
  SAY(`  POST /v1/dip/refresh {"ip": <the DRT's IP>, "request": <ciphertext of SRT + DRT>} → same ip ${second.ip}, reservedUntil ${iso(second.reservedUntil)}`);
  SAY(`  new DAT ${short(second.dat)} (jti ${second.datClaims.jti.slice(0, 8)}…), new DRT ${short(second.drt)}`);

  STEP(5, 'Back up the DRT and restore it on a second device');
  const accessCode = generateAccessCode();
  const backup = encodeBackupText(await sealBackup(second.drt, accessCode));
  SAY(`  backup: scrypt(N=2^17, r=8, p=1) + AES-256-GCM → ${backup.slice(0, 18)}…(${backup.length} chars); access code shown once: ${accessCode}`);
  const wrong = await expectFailure(openBackup(decodeBackupText(backup), 'WRONG-CODE-0000-0000'));
  SAY(`  second device, mistyped code → ${wrong.code}`);
  const restored = await openBackup(decodeBackupText(backup), accessCode);
  SAY(`  second device, right code → DRT restored (${restored === second.drt ? 'identical' : 'DIFFERENT (BUG)'})`);
  const srtDevice2 = await mintDevSrt(issuer, { sub, did: 0 });
  const third = await refresh({ url, trust, srt: srtDevice2, drt: restored });
  SAY(`  second device refreshes with its own SRT (same subscription) → ip ${third.ip}, the Dedicated IP follows the customer`);

  STEP(6, 'Support reset: the subscription version goes up (did 0 → 1)');
  const resetSrt = await mintDevSrt(issuer, { sub, did: 1 });
  const refused = await expectFailure(refresh({ url, trust, srt: resetSrt, drt: third.drt }));
  SAY(`  refresh with the old DRT (did 0) and the new SRT (did 1) → ${refused.fromServer ? 'server' : 'client'} error ${refused.code}`);
  const fresh = await assign({ url, trust, srt: resetSrt, ip });
  SAY(`  a new assign issues a DRT with did ${fresh.drtClaims.did}; every older DRT stays retired`);

  SAY('\nDone: attest → assign → use → refresh → backup/restore → reset, with no token ever in the clear outside the app.');
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  runDemo().catch((error: unknown) => {
    process.stderr.write(`demo failed: ${error instanceof ClientError ? `${error.code}${error.detail ? ` (${error.detail})` : ''}` : error instanceof Error ? error.message : 'unknown error'}\n`);
    process.exit(1);
  });
}
