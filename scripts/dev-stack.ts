// `make dev`: the whole system on one machine (SPEC §8, §9). Starts the enclave with the NSM
// emulator on a Unix socket in the state directory, the KMS emulator on http://127.0.0.1:8083
// trusting that enclave's root and the development PCR0, creates the keyset once (kept in the
// state directory, so tokens outlive a restart), the parent on http://127.0.0.1:8080 with it, and
// the token issuer (SPEC §10) on http://127.0.0.1:8082 trusting the development SRT issuer and
// writing token-keys.json, and the DIP service (SPEC §11, the app's entry point) on
// http://127.0.0.1:8081 in front of the parent, its operator routes on http://127.0.0.1:8084 and its
// pool made of documentation ranges; waits until all are ready, says where they are, stops all on
// Ctrl-C.
//
//   npx tsx scripts/dev-stack.ts [--state DIR] [--port N] [--kms-port N] [--issuer-port N]
//                                [--service-port N] [--admin-port N]

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEV_PCRS, pcrToHex } from '../client/manifest.js';
import { DEV_EXCLUDES, DEV_RANGES } from './dev-pool.js';
import { encodeFrame, FrameReader } from '../protocol/frame.js';
import { parseResponse } from '../protocol/messages.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const READY_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 15_000;

const USAGE = `usage: npx tsx scripts/dev-stack.ts [--state DIR] [--port N] [--kms-port N] [--issuer-port N]
                                    [--service-port N] [--admin-port N]

  --state DIR        development state: enclave.sock, nsm-root.pem, srt-issuer.json, kms-key.json,
                     kms-pcr-policy.txt, keyset.json, issuer-keys.json, issuer-db/, token-keys.json,
                     service-db/ (default: .dev)
  --port N           the parent's HTTP port on 127.0.0.1 (default: 8080; 0 picks a free one)
  --kms-port N       the KMS emulator's port on 127.0.0.1 (default: 8083; 0 picks a free one)
  --issuer-port N    the token issuer's port on 127.0.0.1 (default: 8082; 0 picks a free one)
  --service-port N   the DIP service's port on 127.0.0.1 (default: 8081; 0 picks a free one)
  --admin-port N     the DIP service's operator routes on 127.0.0.1 (default: 8084; 0 picks a free one)
`;

/** The development deployment's name: the KMS encryption context of its keyset (SPEC §9). */
const DEV_DEPLOYMENT = 'dev';

/**
 * The SDK in the parent reads credentials from its default chain; the emulator checks none, so
 * development gives it dummy ones unless the environment has some (and never asks the instance
 * metadata service, which is not there).
 */
const DEV_AWS_ENV = {
  AWS_ACCESS_KEY_ID: process.env['AWS_ACCESS_KEY_ID'] ?? 'AKIDDEVELOPMENT',
  AWS_SECRET_ACCESS_KEY: process.env['AWS_SECRET_ACCESS_KEY'] ?? 'development-only',
  AWS_EC2_METADATA_DISABLED: 'true',
};

interface Options {
  stateDir: string;
  port: number;
  kmsPort: number;
  issuerPort: number;
  servicePort: number;
  adminPort: number;
}

function readOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      state: { type: 'string' },
      port: { type: 'string' },
      'kms-port': { type: 'string' },
      'issuer-port': { type: 'string' },
      'service-port': { type: 'string' },
      'admin-port': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const portOf = (flag: 'port' | 'kms-port' | 'issuer-port' | 'service-port' | 'admin-port', fallback: string): number => {
    const text = values[flag] ?? fallback;
    const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
    if (!(port >= 0 && port <= 65535)) throw new Error(`--${flag} must be 0..65535`);
    return port;
  };
  const [port, kmsPort, issuerPort, servicePort, adminPort] = [
    portOf('port', '8080'),
    portOf('kms-port', '8083'),
    portOf('issuer-port', '8082'),
    portOf('service-port', '8081'),
    portOf('admin-port', '8084'),
  ];
  return { stateDir: resolve(REPO_ROOT, values.state ?? '.dev'), port, kmsPort, issuerPort, servicePort, adminPort };
}

/** A child process whose output lines are shown with a name in front. */
interface Child {
  name: string;
  process: ChildProcess;
  exited: Promise<number>;
  /** Resolves with the first output line that satisfies `test`. */
  waitForLine(test: (line: string) => boolean): Promise<string>;
}

function startChild(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Child {
  // Its own process group: Ctrl-C reaches only this script, which then stops the children in order.
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, ...env } });
  const watchers: Array<{ test: (line: string) => boolean; resolve: (line: string) => void }> = [];
  const onLine = (line: string): void => {
    process.stdout.write(`${name.padEnd(7)} | ${line}\n`);
    for (const watcher of watchers.splice(0)) {
      if (watcher.test(line)) watcher.resolve(line);
      else watchers.push(watcher);
    }
  };
  for (const stream of [child.stdout!, child.stderr!]) {
    let pending = '';
    stream.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop()!;
      lines.forEach(onLine);
    });
  }
  const exited = new Promise<number>((done) => child.once('close', (code, signal) => done(code ?? (signal ? 1 : 0))));
  return {
    name,
    process: child,
    exited,
    waitForLine: (test) => new Promise((resolveLine) => watchers.push({ test, resolve: resolveLine })),
  };
}

/** Sends one `health` request over the enclave socket; true when it answers (locked or not). */
function enclaveHealthy(socketPath: string): Promise<boolean> {
  return new Promise((resolveHealth) => {
    const socket = net.connect(socketPath);
    const reader = new FrameReader();
    const finish = (ok: boolean): void => {
      socket.destroy();
      resolveHealth(ok);
    };
    socket.setTimeout(5000, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write(encodeFrame({ v: 1, id: 1, op: 'health', body: {} })));
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
        const item = reader.next();
        if (item !== null) finish(parseResponse(item)?.ok === true);
      } catch {
        finish(false);
      }
    });
  });
}

async function parentReady(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200;
  } catch {
    return false;
  }
}

/** Polls `check` until it holds; fails when `child` exits first or time runs out. */
async function waitUntil(what: string, child: Child, check: () => Promise<boolean>): Promise<void> {
  let exited = false;
  void child.exited.then(() => (exited = true));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!exited && Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(exited ? `the ${child.name} exited before ${what}` : `timed out waiting until ${what}`);
}

async function stopAll(children: Child[]): Promise<void> {
  // The parent first, so it drains its requests while the enclave still answers them.
  for (const child of [...children].reverse()) {
    if (child.process.exitCode !== null || child.process.signalCode !== null) continue;
    child.process.kill('SIGTERM');
    const timer = setTimeout(() => child.process.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await child.exited;
    clearTimeout(timer);
  }
}

async function main(): Promise<number> {
  let options: Options;
  try {
    options = readOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`dev-stack: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  const shown = (path: string): string => {
    const inside = relative(process.cwd(), path);
    return inside.startsWith('..') ? path : inside || '.';
  };
  // SPEC §8: the state directory holds a private key (srt-issuer.json): owner-only.
  mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
  const socketPath = join(options.stateDir, 'enclave.sock');

  const children: Child[] = [];
  let stopping = false;
  const stop = async (code: number): Promise<number> => {
    if (!stopping) {
      stopping = true;
      await stopAll(children);
    }
    return code;
  };
  const stopped = new Promise<number>((resolveStop) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void stop(0).then(resolveStop));
  });
  // Never leave a child behind, whatever ends this script.
  process.on('exit', () => children.forEach((c) => c.process.kill('SIGKILL')));

  const enclave = startChild('enclave', ['enclave/main.ts', '--dev', options.stateDir, '--listen', `unix:${socketPath}`]);
  children.push(enclave);
  let parentUrl = '';
  let kmsUrl = '';
  let issuerUrl = '';
  let serviceUrl = '';
  let adminUrl = '';
  const keysetPath = join(options.stateDir, 'keyset.json');
  let keysetCreated = false;
  try {
    await waitUntil('the enclave answered health', enclave, () => enclaveHealthy(socketPath));
    // The emulator reads the root the enclave has just written, so it starts after the enclave.
    const policy = join(options.stateDir, 'kms-pcr-policy.txt');
    if (!existsSync(policy)) writeFileSync(policy, `# PCR0 (ImageSha384) the development KMS key policy allows: the NSM emulator's\n${pcrToHex(DEV_PCRS.pcr0)}\n`);
    const kms = startChild('kms', ['emulators/kms/main.ts', '--listen', `127.0.0.1:${options.kmsPort}`, '--state-dir', options.stateDir]);
    children.push(kms);
    const arn = /^kms: key (\S+)$/;
    // Both lines are watched from the start: the key's comes first.
    const keyLine = kms.waitForLine((line) => arn.test(line));
    const kmsListening = await Promise.race([kms.waitForLine((line) => line.startsWith('kms: listening on ')), kms.exited.then(() => null)]);
    if (kmsListening === null) throw new Error('the KMS emulator exited before it listened');
    kmsUrl = kmsListening.slice('kms: listening on '.length);
    const kmsArgs = ['--kms-endpoint', kmsUrl, '--kms-region', 'us-east-1'];
    if (!existsSync(keysetPath)) {
      // SPEC §8: in production an operator creates the keyset; here make dev does, once.
      const create = startChild('keyset', ['parent/main.ts', 'keyset', 'create', '--enclave', `unix:${socketPath}`, '--keyset', keysetPath, '--kms-key-id', arn.exec(await keyLine)![1]!, '--deployment', DEV_DEPLOYMENT, ...kmsArgs], DEV_AWS_ENV);
      if ((await create.exited) !== 0) throw new Error('keyset create failed');
      keysetCreated = true;
    }
    const parent = startChild('parent', ['parent/main.ts', '--listen', `127.0.0.1:${options.port}`, '--enclave', `unix:${socketPath}`, '--keyset', keysetPath, ...kmsArgs], DEV_AWS_ENV);
    children.push(parent);
    // With --port 0 the parent picks the port and says which in its "listening" event.
    const listening = await Promise.race([
      parent.waitForLine((line) => line.includes('"event":"listening"')),
      parent.exited.then(() => null),
    ]);
    if (listening === null) throw new Error('the parent exited before it listened');
    const port = (JSON.parse(listening) as { port: number }).port;
    await waitUntil('the parent was ready (the enclave unlocked)', parent, () => parentReady(port));
    parentUrl = `http://127.0.0.1:${port}`;
    // The issuer trusts the srt-issuer.json the enclave wrote, so it starts after the enclave.
    const issuer = startChild('issuer', ['issuer/main.ts', '--dev', '--state-dir', options.stateDir, '--listen', `127.0.0.1:${options.issuerPort}`]);
    children.push(issuer);
    const issuerListening = await Promise.race([
      issuer.waitForLine((line) => line.includes('"event":"listening"')),
      issuer.exited.then(() => null),
    ]);
    if (issuerListening === null) throw new Error('the issuer exited before it listened');
    issuerUrl = `http://127.0.0.1:${(JSON.parse(issuerListening) as { port: number }).port}`;
    // The DIP service pins the token-keys.json the issuer has just written, and calls the parent.
    const tokenKeys = join(options.stateDir, 'token-keys.json');
    await waitUntil('the issuer wrote token-keys.json', issuer, async () => existsSync(tokenKeys));
    const rangeArgs = [...DEV_RANGES.flatMap((r) => ['--range', r]), ...DEV_EXCLUDES.flatMap((r) => ['--exclude', r])];
    const service = startChild('service', [
      'service/main.ts',
      '--listen', `127.0.0.1:${options.servicePort}`,
      '--admin-listen', `127.0.0.1:${options.adminPort}`,
      // The demo's accelerated clock (POST /admin/expire as of a later day): development only.
      '--accelerated-clock',
      '--parent', parentUrl,
      '--token-keys', tokenKeys,
      '--store', join(options.stateDir, 'service-db'),
      ...rangeArgs,
    ]);
    children.push(service);
    const serviceListening = service.waitForLine((line) => line.includes('"event":"listening"'));
    const adminListening = service.waitForLine((line) => line.includes('"event":"admin_listening"'));
    const ports = await Promise.race([Promise.all([serviceListening, adminListening]), service.exited.then(() => null)]);
    if (ports === null) throw new Error('the DIP service exited before it listened');
    serviceUrl = `http://127.0.0.1:${(JSON.parse(ports[0]) as { port: number }).port}`;
    adminUrl = `http://127.0.0.1:${(JSON.parse(ports[1]) as { port: number }).port}`;
    await waitUntil('the DIP service was ready', service, async () => (await fetch(`${serviceUrl}/readyz`).catch(() => null))?.status === 200);
  } catch (error) {
    process.stderr.write(`dev-stack: ${(error as Error).message}\n`);
    return stop(1);
  }

  process.stdout.write(
    [
      '',
      'Development stack is up (NSM emulator: attestation documents are development documents).',
      `  service   ${serviceUrl}  (the DIP service, the app's entry point; try: curl ${serviceUrl}/readyz)`,
      `  admin     ${adminUrl}  (its operator routes; try: node --import tsx service/main.ts ranges list --admin ${adminUrl})`,
      `  enclave   unix:${shown(socketPath)}`,
      `  kms       ${kmsUrl}  (KMS emulator: development only)`,
      `  parent    ${parentUrl}  (try: curl ${parentUrl}/readyz)`,
      `  issuer    ${issuerUrl}  (Privacy Pass; try: curl ${issuerUrl}/.well-known/private-token-issuer-directory)`,
      `  state     ${shown(options.stateDir)}/`,
      `            nsm-root.pem     the emulator's root certificate: trust anchor for attestation`,
      `            srt-issuer.json  the development SRT issuer's private key: mint SRTs with it`,
      `            keyset.json      the deployment's keyset (SPEC §9)${keysetCreated ? ', created now' : ''}; kms-key.json holds the emulator's key`,
      `            token-keys.json  the issuer keys an app release pins (SPEC §8, §10); issuer-keys.json holds their private halves`,
      `            service-db/      the DIP service's pool (${DEV_RANGES.join(', ')}), reservations, spent tokens, backups`,
      'Ctrl-C stops them all.',
      '',
    ].join('\n'),
  );

  // Either a signal stops us, or a child dies and we stop the other.
  const firstExit = Promise.race(children.map((c) => c.exited.then((code) => ({ child: c, code }))));
  return Promise.race([
    stopped,
    firstExit.then(async ({ child, code }) => {
      if (stopping) return stopped;
      process.stderr.write(`dev-stack: the ${child.name} exited (code ${code}); stopping\n`);
      return stop(code === 0 ? 1 : code);
    }),
  ]);
}

process.exitCode = await main();
