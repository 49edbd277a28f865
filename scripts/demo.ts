// `make demo`: one readable transcript of the whole life of a Dedicated IP through the whole local
// system (SPEC §2–§11), as the app lives it: an SRT, a blinded token from the issuer, an assign
// through the DIP service, a VPN server checking the DAT, a refresh, a backup restored on a second
// device, a second token for the same subscription version refused, a support reset (the old DRT
// refused, a new IP assigned), and the old reservation running out through its quarantine with an
// accelerated clock. Development data only.
//
// Uses the stack of `make dev` when all of it answers on its default ports (state in .dev/);
// otherwise starts a throwaway one (enclave, KMS emulator, parent, issuer, DIP service) in a
// temporary directory and stops it after.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { ClientError } from '../client/errors.js';
import { attest, type Trust } from '../client/flows.js';
import type { Fetch } from '../client/http.js';
import { DEV_PCRS, pcrToHex } from '../client/manifest.js';
import { checkChallenges, getToken, parseTokenKeys } from '../client/privacy-pass.js';
import { ServiceClient } from '../client/service.js';
import { assignThroughService, pullBackup, pushBackup, refreshThroughService } from '../client/service-flows.js';
import { mintDevSrt, parseDevIssuer } from '../client/tokens.js';
import { DEV_EXCLUDES, DEV_RANGES } from './dev-pool.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface LocalStack {
  /** The parent (SPEC §6). */
  url: string;
  /** The DIP service (SPEC §11), the app's entry point. */
  serviceUrl: string;
  /** The DIP service's operator routes (loopback). */
  adminUrl: string;
  /** The token issuer (SPEC §10). */
  issuerUrl: string;
  /** The development state directory: nsm-root.pem, srt-issuer.json, token-keys.json. */
  dir: string;
  /** Everything every process wrote to stdout and stderr (their logs). */
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

function loggedEvent(output: string, name: string): Record<string, unknown> | undefined {
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const event = JSON.parse(line) as Record<string, unknown>;
      if (event['event'] === name) return event;
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

const answers200 = async (url: string): Promise<true | undefined> => ((await fetch(url).catch(() => null))?.status === 200 ? true : undefined);

/**
 * Starts the whole development system in `dir`, every HTTP server on a free loopback port: the
 * enclave (NSM emulator) on a Unix socket, the KMS emulator, the parent (creating the keyset,
 * SPEC §9, when `dir` has none), the token issuer (which writes token-keys.json) and the DIP
 * service over the development pool (scripts/dev-stack.ts DEV_RANGES); resolves once all are ready.
 */
export async function startLocalStack(dir: string = mkdtempSync(join(tmpdir(), 'dip-stack-'))): Promise<LocalStack> {
  const socket = join(dir, 'enclave.sock');
  const enclave = spawnTs(['enclave/main.ts', '--dev', dir, '--listen', `unix:${socket}`]);
  const started: Array<ReturnType<typeof spawnTs>> = [enclave];
  const stop = async (): Promise<void> => {
    // The callers first: the service, the issuer, the parent, the KMS emulator, then the enclave.
    for (const process of [...started].reverse()) await stopChild(process.child);
  };
  const start = (args: string[], env: NodeJS.ProcessEnv = {}): ReturnType<typeof spawnTs> => {
    const process = spawnTs(args, env);
    started.push(process);
    return process;
  };
  try {
    await waitFor('the enclave', () => loggedEvent(enclave.output(), 'listening'), enclave.child, enclave.output);
    // The KMS emulator reads the root the enclave has just written, and allows the development PCR0.
    const policy = join(dir, 'kms-pcr-policy.txt');
    if (!existsSync(policy)) writeFileSync(policy, `${pcrToHex(DEV_PCRS.pcr0)}\n`);
    const kms = start(['emulators/kms/main.ts', '--listen', '127.0.0.1:0', '--state-dir', dir]);
    const [arn, kmsUrl] = await waitFor(
      'the KMS emulator',
      () => {
        const key = /^kms: key (\S+)$/m.exec(kms.output())?.[1];
        const url = /^kms: listening on (\S+)$/m.exec(kms.output())?.[1];
        return key !== undefined && url !== undefined ? [key, url] : undefined;
      },
      kms.child,
      kms.output,
    );
    const kmsArgs = ['--kms-endpoint', kmsUrl, '--kms-region', 'us-east-1'];
    const keyset = join(dir, 'keyset.json');
    if (!existsSync(keyset)) {
      const create = spawnTs(['parent/main.ts', 'keyset', 'create', '--enclave', `unix:${socket}`, '--keyset', keyset, '--kms-key-id', arn, '--deployment', 'dev', ...kmsArgs], DEV_AWS_ENV);
      const code = await new Promise<number | null>((resolveExit) => create.child.once('close', resolveExit));
      if (code !== 0) throw new Error(`keyset create failed:\n${create.output()}`);
    }
    const parent = start(['parent/main.ts', '--enclave', `unix:${socket}`, '--keyset', keyset, ...kmsArgs, '--listen', '127.0.0.1:0'], DEV_AWS_ENV);
    const parentEvent = await waitFor('the parent', () => loggedEvent(parent.output(), 'listening'), parent.child, parent.output);
    const url = `http://127.0.0.1:${String(parentEvent['port'])}`;
    await waitFor('the parent /readyz', () => answers200(`${url}/readyz`), parent.child, parent.output);

    const issuer = start(['issuer/main.ts', '--dev', '--state-dir', dir, '--listen', '127.0.0.1:0']);
    const issuerEvent = await waitFor('the issuer', () => loggedEvent(issuer.output(), 'listening'), issuer.child, issuer.output);
    const issuerUrl = `http://127.0.0.1:${String(issuerEvent['port'])}`;
    const tokenKeys = join(dir, 'token-keys.json');
    await waitFor('the issuer\'s token-keys.json', () => (existsSync(tokenKeys) ? true : undefined), issuer.child, issuer.output);

    const service = start([
      'service/main.ts', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--accelerated-clock', '--parent', url, '--token-keys', tokenKeys,
      '--store', join(dir, 'service-db'),
      ...DEV_RANGES.flatMap((range) => ['--range', range]), ...DEV_EXCLUDES.flatMap((range) => ['--exclude', range]),
    ]);
    const [serviceEvent, adminEvent] = await waitFor(
      'the DIP service',
      () => {
        const app = loggedEvent(service.output(), 'listening');
        const admin = loggedEvent(service.output(), 'admin_listening');
        return app !== undefined && admin !== undefined ? [app, admin] : undefined;
      },
      service.child,
      service.output,
    );
    const serviceUrl = `http://127.0.0.1:${String(serviceEvent['port'])}`;
    await waitFor('the DIP service /readyz', () => answers200(`${serviceUrl}/readyz`), service.child, service.output);
    return {
      url,
      serviceUrl,
      adminUrl: `http://127.0.0.1:${String(adminEvent['port'])}`,
      issuerUrl,
      dir,
      stop,
      output: () => started.map((process) => process.output()).join(''),
    };
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
const dayText = (day: number): string => iso(day * 86_400).slice(0, 10);

async function expectFailure(promise: Promise<unknown>): Promise<ClientError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ClientError) return error;
    throw error;
  }
  throw new Error('expected a refusal, but the call succeeded');
}

interface PoolFigures {
  free: number;
  reserved: number;
  quarantined: number;
}

async function admin(adminUrl: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${adminUrl}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await response.json()) as Record<string, unknown>;
  if (response.status !== 200) throw new Error(`the operator route ${path} answered ${response.status}: ${JSON.stringify(json)}`);
  return json;
}

const pool = async (adminUrl: string): Promise<PoolFigures> => (await admin(adminUrl, '/admin/pool'))['pool'] as PoolFigures;
const figures = (p: PoolFigures): string => `free ${p.free}, reserved ${p.reserved}, quarantined ${p.quarantined}`;

const DEV_PORTS = { parent: 8080, service: 8081, issuer: 8082, admin: 8084 };

export async function runDemo(): Promise<void> {
  let stack: LocalStack;
  const local = (port: number): string => `http://127.0.0.1:${port}`;
  const devDir = join(REPO_ROOT, '.dev');
  const up = await Promise.all([
    fetch(`${local(DEV_PORTS.parent)}/readyz`).then((r) => r.status === 200, () => false),
    fetch(`${local(DEV_PORTS.service)}/readyz`).then((r) => r.status === 200, () => false),
    fetch(`${local(DEV_PORTS.admin)}/admin/pool`).then((r) => r.status === 200, () => false),
    fetch(`${local(DEV_PORTS.issuer)}/.well-known/private-token-issuer-directory`).then((r) => r.status === 200, () => false),
  ]);
  if (up.every(Boolean) && ['nsm-root.pem', 'srt-issuer.json', 'token-keys.json'].every((f) => existsSync(join(devDir, f)))) {
    stack = {
      url: local(DEV_PORTS.parent), serviceUrl: local(DEV_PORTS.service), issuerUrl: local(DEV_PORTS.issuer), adminUrl: local(DEV_PORTS.admin),
      dir: devDir, output: () => '', stop: async () => {},
    };
    SAY(`Dedicated IP demo — DEVELOPMENT DATA — using the running dev stack (DIP service ${stack.serviceUrl}, state in .dev/)`);
    SAY('  note: step 10 moves the pool\'s clock forward: reservations in .dev/ that nobody refreshed run out');
  } else {
    SAY('Dedicated IP demo — DEVELOPMENT DATA — `make dev` is not running, starting a throwaway stack');
    stack = await startLocalStack();
    SAY(`  enclave (NSM emulator), KMS emulator, parent ${stack.url}, issuer ${stack.issuerUrl}, DIP service ${stack.serviceUrl}; state in ${stack.dir}`);
  }
  try {
    const secrets = await transcript(stack);
    const logs = stack.output();
    if (logs !== '') {
      const found = [secrets.sub, ...secrets.ips, ...secrets.tokens].filter((secret) => logs.includes(secret)).length;
      SAY(`The ${logs.split('\n').length - 1} lines the five processes logged hold ${found === 0 ? 'no' : `${found} (BUG)`} subscription id, IP or token of this run (test/demo.test.ts checks every encoding, and the databases).`);
    }
  } finally {
    await stack.stop();
    if (stack.dir !== devDir) rmSync(stack.dir, { recursive: true, force: true });
  }
}

/** What the app held during a transcript: none of it may reach a log or join another record. */
export interface DemoSecrets {
  sub: string;
  ips: string[];
  /** SRTs, Privacy Pass tokens, DATs, DRTs and the backup code. */
  tokens: string[];
}

/**
 * The demo's story against `stack`. `fetch` sees every request the app makes (tests record the
 * sealed blobs with it); the returned secrets are what must never show up elsewhere.
 */
export async function transcript({ serviceUrl, issuerUrl, adminUrl, dir }: LocalStack, fetch: Fetch = globalThis.fetch): Promise<DemoSecrets> {
  const trust: Trust = { root: readFileSync(join(dir, 'nsm-root.pem'), 'utf8'), expectedPcrs: DEV_PCRS };
  const issuer = parseDevIssuer(readFileSync(join(dir, 'srt-issuer.json'), 'utf8'));
  const pinned = parseTokenKeys(readFileSync(join(dir, 'token-keys.json'), 'utf8'));
  const sub = `demo-${randomBytes(4).toString('hex')}`;
  const service = new ServiceClient(serviceUrl, { fetch });
  const url = serviceUrl;
  const app = { url, trust, fetch };

  STEP(1, 'The subscription service issues an SRT');
  const srt = await mintDevSrt(issuer, { sub, did: 0 });
  SAY(`  SRT (development issuer): sub ${sub}, did 0  ${short(srt)} — it stays in the app, the issuer and the enclave`);

  STEP(2, 'A blinded token from the issuer, for the DIP service\'s challenge');
  const challenge = await service.challenge();
  checkChallenges(challenge, pinned);
  SAY(`  POST ${serviceUrl}/v1/dip/assign without a token → 401 WWW-Authenticate: PrivateToken challenge=… token-key=…`);
  SAY(`  the challenge equals the one built from token-keys.json (issuer ${pinned.issuerName}, origin ${pinned.originInfo}): no key of its own for this user`);
  const token = await getToken({ issuerUrl, srt, config: pinned, challenge, fetch });
  SAY(`  issuer: Authorization: Bearer <SRT> + a blinded TokenRequest → blind signature; the app unblinds it: token ${short(token.encoded)}`);
  SAY('  the issuer recorded (sub, did 0) as issued; it never sees the token it signed');

  STEP(3, 'Assign through the DIP service: the service picks the IP, the enclave issues the tokens');
  const before = await pool(adminUrl);
  const first = await assignThroughService({ ...app, srt, pinned, token: token.encoded });
  SAY(`  the app attested the enclave through the service (fresh nonce, development root, PCRs) and sealed its SRT to it`);
  SAY(`  POST /v1/dip/assign, Authorization: PrivateToken token=… (redemption delay ${first.redemptionDelayMs} ms: development)`);
  SAY(`  the service verified the token, spent its nonce, reserved a free IP and forwarded {ip, ciphertext} to the parent`);
  SAY(`  → ip ${first.ip}, reservedUntil ${iso(first.reservedUntil)}; DAT ${short(first.dat)}, DRT ${short(first.drt)}`);
  SAY(`  pool: ${figures(before)} → ${figures(await pool(adminUrl))}; the service holds (IP, day) and a spent nonce — no subscription id`);

  STEP(4, 'A VPN server checks the DAT');
  const attested = await attest(app);
  const jwks = createLocalJWKSet(JSON.parse(Buffer.from(attested.jwks).toString('utf8')));
  const shown = await jwtVerify(first.dat, jwks, { algorithms: ['ES256'], typ: 'dat+jwt' });
  SAY(`  jwtVerify(DAT, GET /v1/keys): ok → route ${String((shown.payload['xv.vpn.dip.details'] as { ip: string }).ip)}; the server learns no subscription id`);
  const drtAsDat = await jwtVerify(first.drt, jwks, { algorithms: ['ES256'], typ: 'dat+jwt' }).then(() => 'accepted (BUG)', (e: Error & { code?: string }) => `refused (${e.code ?? e.name})`);
  SAY(`  the DRT shown as a DAT: ${drtAsDat}`);

  STEP(5, 'Refresh before the DAT expires');
  const second = await refreshThroughService({ ...app, srt, drt: first.drt });
  SAY(`  POST /v1/dip/refresh {"ip", ciphertext of SRT + DRT}: the IP is reserved, so the service forwards it`);
  SAY(`  → same ip ${second.ip}, reservedUntil ${iso(second.reservedUntil)}; new DAT (jti ${second.datClaims.jti.slice(0, 8)}…), new DRT`);

  STEP(6, 'Back up the DRT to the service and restore it on a second device');
  const { backupCode } = await pushBackup({ url, fetch, drt: second.drt, scryptParams: DEMO_SCRYPT });
  SAY(`  PUT /v1/backup/<random id>: 4,096 opaque bytes (scrypt + AES-256-GCM, padded); backup code shown once: ${backupCode.slice(0, 9)}…`);
  const restored = await pullBackup({ url, fetch, backupCode });
  SAY(`  second device: GET /v1/backup/<id>, opened with the code → DRT ${restored.drt === second.drt ? 'identical' : 'DIFFERENT (BUG)'}`);
  const third = await refreshThroughService({ ...app, srt: await mintDevSrt(issuer, { sub, did: 0 }), drt: restored.drt });
  SAY(`  second device refreshes with its own SRT → ip ${third.ip}: the Dedicated IP follows the customer`);

  STEP(7, 'One IP per subscription version');
  const again = await expectFailure(getToken({ issuerUrl, srt, config: pinned, challenge, fetch }));
  SAY(`  a second token for (sub, did 0) from the issuer → ${again.code}`);
  const respent = await expectFailure(assignThroughService({ ...app, srt, pinned, token: token.encoded }));
  SAY(`  the first token redeemed again at the service → ${respent.code}`);

  STEP(8, 'Support reset: the subscription version goes up (did 0 → 1)');
  const resetSrt = await mintDevSrt(issuer, { sub, did: 1 });
  const refused = await expectFailure(refreshThroughService({ ...app, srt: resetSrt, drt: third.drt }));
  SAY(`  refresh with the old DRT (did 0) and the new SRT (did 1) → ${refused.fromServer ? 'the enclave refuses' : 'client error'}: ${refused.code}`);
  const resetToken = await getToken({ issuerUrl, srt: resetSrt, config: pinned, challenge: await service.challenge(), fetch });
  const fresh = await assignThroughService({ ...app, srt: resetSrt, pinned, token: resetToken.encoded });
  SAY(`  one new token opens for did 1 → a new assign: ip ${fresh.ip} (${fresh.ip === first.ip ? 'the same address (BUG: it is still reserved)' : 'another address: the old one stays reserved until it runs out'}), DRT did ${fresh.drtClaims.did}`);

  STEP(9, 'The old reservation runs out (accelerated clock: the operator runs the expiry job as of a later day)');
  // A reservation holds through the day that starts at its reservedUntil (a 00:00 UTC).
  const reservedDay = Math.floor(Math.max(third.reservedUntil, fresh.reservedUntil) / 86_400);
  SAY(`  both reservations of this run hold through ${dayText(reservedDay)}: the day that starts at the DRTs' reservedUntil`);
  const afterDay = reservedDay + 1;
  const quarantineDays = 7;
  SAY(`  POST /admin/expire {"today": "${dayText(reservedDay)}"} → ${JSON.stringify(await admin(adminUrl, '/admin/expire', { today: dayText(reservedDay) }))}; pool: ${figures(await pool(adminUrl))}`);
  SAY(`  POST /admin/expire {"today": "${dayText(afterDay)}"} → ${JSON.stringify(await admin(adminUrl, '/admin/expire', { today: dayText(afterDay) }))}; pool: ${figures(await pool(adminUrl))}`);
  SAY('  in quarantine an IP can still be refreshed by its holder; nobody else can be given it:');
  const old = await expectFailure(refreshThroughService({ ...app, srt: resetSrt, drt: third.drt }));
  SAY(`    the old DRT (did 0) → ${old.code}: nobody holds the old IP any more`);
  const back = await refreshThroughService({ ...app, srt: resetSrt, drt: fresh.drt });
  SAY(`    the current DRT (did 1) → ip ${back.ip} reserved again (a late app keeps its IP)`);
  const freeDay = afterDay + quarantineDays;
  SAY(`  POST /admin/expire {"today": "${dayText(freeDay)}"} (quarantine of ${quarantineDays} days over) → ${JSON.stringify(await admin(adminUrl, '/admin/expire', { today: dayText(freeDay) }))}; pool: ${figures(await pool(adminUrl))}`);
  const gone = await expectFailure(refreshThroughService({ ...app, srt, drt: third.drt }));
  SAY(`  the old IP is free again: a refresh for it → ${gone.code}, answered by the service without reaching the enclave`);
  SAY('  (the current IP lapsed in this jump too: its app refreshes every day in real life, but the enclave keeps real time, so this demo cannot)');

  SAY('\nDone: SRT → blinded token → assign → DAT checked → refresh → backup on a second device → one token per version → reset → expiry.');
  const drts = [first, second, third, fresh, back].flatMap((t) => [t.dat, t.drt]);
  return { sub, ips: [...new Set([first.ip, fresh.ip])], tokens: [srt, resetSrt, token.encoded, resetToken.encoded, backupCode, ...drts] };
}

/** The backup's scrypt at its smallest allowed cost, so the demo does not wait: production uses N=2^17. */
const DEMO_SCRYPT = { log2N: 14, r: 8, p: 1 };

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  runDemo().catch((error: unknown) => {
    process.stderr.write(`demo failed: ${error instanceof ClientError ? `${error.code}${error.detail ? ` (${error.detail})` : ''}` : error instanceof Error ? error.message : 'unknown error'}\n`);
    process.exit(1);
  });
}
