// `dip assign|refresh --service`, `dip backup push|pull` (issue 12) against the fake DIP service,
// a real HTTP server with the fake parent + enclave behind it, reached with the global fetch.

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { formatWwwAuthenticate } from '../../protocol/privacypass-http.js';
import { TokenChallenge } from '../../protocol/privacypass.js';
import { main, type CliIo } from '../cli.js';
import { DEV_PCRS, pcrToHex } from '../manifest.js';
import { getToken, parseTokenKeys, redemptionDelayMs, seededRandom } from '../privacy-pass.js';
import type { PromptInput } from '../prompt.js';
import { ISSUER_NAME, ISSUER_URL, OTHER_KEY, ORIGIN_INFO, fakeIssuer, tokenKeysJson } from './fake-issuer.js';
import { SRT, nsm } from './fake-parent.js';
import { POOL, startFakeService, type FakeService, type ServiceScript } from './fake-service.js';
import { assertNoLeak } from '../../test/support/secrets.js';

const AWS_ROOT = fileURLToPath(new URL('../../test/vectors/aws-nitro-root-g1.pem', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'dip-cli-service-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const devDir = join(dir, 'dev');
mkdirSync(devDir);
writeFileSync(join(devDir, 'nsm-root.pem'), nsm.rootCertificatePem);
writeFileSync(join(devDir, 'token-keys.json'), tokenKeysJson());
const keysFile = file('token-keys.json', tokenKeysJson());
const srtFile = file('srt.jwt', `${SRT}\n`);
const pinned = parseTokenKeys(tokenKeysJson());
const DEV = ['--dev', '--dev-dir', devDir];
const PCRS = ['--pcr0', pcrToHex(DEV_PCRS.pcr0), '--pcr1', pcrToHex(DEV_PCRS.pcr1), '--pcr2', pcrToHex(DEV_PCRS.pcr2)];

const services: FakeService[] = [];
after(() => Promise.all(services.map((s) => s.close())));
async function service(script: ServiceScript = {}): Promise<FakeService> {
  const started = await startFakeService(script);
  services.push(started);
  return started;
}

let tokens = 0;
/** A token file as `dip token get` writes it. */
async function tokenFile(): Promise<{ path: string; token: string }> {
  const token = (await getToken({ issuerUrl: ISSUER_URL, srt: SRT, config: pinned, fetch: fakeIssuer().fetch })).encoded;
  return { path: file(`token-${++tokens}.txt`, `${token}\n`), token };
}

interface Run { code: number; stdout: string; stderr: string; slept: number[] }
async function cli(args: string[], io: Partial<CliIo> = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const slept: number[] = [];
  const code = await main(args, {
    out: (t) => void (stdout += t), err: (t) => void (stderr += t), cwd: dir, env: {},
    sleep: async (ms) => void slept.push(ms),
    ...io,
  });
  return { code, stdout, stderr, slept };
}

function oneJson(stdout: string): Record<string, any> {
  const value = JSON.parse(stdout) as unknown;
  assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value), 'stdout is exactly one JSON object');
  return value as Record<string, any>;
}

/** A fake terminal: each prompt's resume() delivers the next scripted keystrokes. */
function fakeTty(lines: string[]): PromptInput {
  const emitter = new EventEmitter();
  return {
    isTTY: true,
    setRawMode: () => undefined,
    on: (event, listener) => emitter.on(event, listener),
    removeListener: (event, listener) => emitter.removeListener(event, listener),
    resume: () => setImmediate(() => emitter.emit('data', Buffer.from(lines.shift() ?? '\u0004'))),
    pause: () => undefined,
  };
}

describe('dip assign --service', () => {
  it('redeems the token through the service and writes the DAT and DRT; the token is never printed', async () => {
    const fake = await service();
    const { path, token } = await tokenFile();
    const datOut = join(dir, 'a.dat');
    const drtOut = join(dir, 'a.drt');
    const result = await cli(['assign', '--service', fake.url, '--token', path, '--srt', srtFile, ...DEV, '--dat-out', datOut, '--drt-out', drtOut, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const report = oneJson(result.stdout);
    assert.equal(report['ip'], POOL[0], 'the IP the service chose');
    assert.equal(report['redemptionDelaySeconds'], 0, 'no delay with the development root');
    assert.deepEqual(result.slept, [], 'nothing waited');
    assert.equal(report['drtOut'], drtOut, 'the DRT file');
    assert.match(readFileSync(drtOut, 'utf8'), /^ey/, 'a DRT was written');
    assert.equal(statSync(drtOut).mode & 0o777, 0o600, 'owner-only');
    const tokenBytes = new Uint8Array(Buffer.from(token, 'base64url'));
    assertNoLeak(result.stdout + result.stderr, [{ what: 'token', value: token }, { what: 'token bytes', value: tokenBytes }], 'the output of dip assign');
    const carriers = fake.requests.filter((r) => JSON.stringify(r.headers).includes(token.slice(0, 40)) || r.body.includes(token.slice(0, 40)));
    assert.deepEqual(carriers.map((r) => `${r.method} ${r.path}`), ['POST /v1/dip/assign'], 'the token reached the assign route only');
  });

  it('in text, says what it got; DIP_SERVICE stands in for --service, and --dev reads DIR/token-keys.json', async () => {
    const fake = await service();
    const { path } = await tokenFile();
    const result = await cli(['assign', '--token', path, '--srt', srtFile, ...DEV, '--drt-out', join(dir, 'text.drt')], { env: { DIP_SERVICE: fake.url } });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^ip +${POOL[0]!.replaceAll('.', '\\.')}$`, 'm'), 'the IP');
    assert.match(result.stdout, /^dat +ey/m, 'the DAT, as no --dat-out took it');
    assert.match(result.stdout, /^redeemed after +a delay of 0 s$/m, 'the delay');
    const flagWins = await cli(['assign', '--service', fake.url, '--token', (await tokenFile()).path, '--srt', srtFile, ...DEV, '--drt-out', join(dir, 'flag.drt')], { env: { DIP_URL: 'http://parent.invalid' } });
    assert.equal(flagWins.code, 0, `--service with DIP_URL set is the service (${flagWins.stderr})`);
  });

  it('takes the redemption delay by default when the root is AWS Nitro Root-G1, counted from the token file\'s time', async () => {
    const fake = await service();
    const { path } = await tokenFile();
    utimesSync(path, 1_700_000_000, 1_700_000_000);
    const expected = redemptionDelayMs({ random: seededRandom('cli') });
    const result = await cli(['assign', '--service', fake.url, '--token', path, '--srt', srtFile, '--root', AWS_ROOT, ...PCRS, '--token-keys', keysFile], {
      random: seededRandom('cli'), now: () => 1_700_000_000_000 + 1000,
    });
    assert.deepEqual(result.slept, [expected - 1000], 'the seeded draw less the second since the token file was written');
    assert.match(result.stderr, /redemption delay: waiting \d+ s, until \d{4}-/, 'says it waits, and until when');
    // The fake enclave's documents do not chain to the AWS root: attestation fails after the wait.
    assert.equal(result.code, 1, 'attestation failed');
    assert.match(result.stderr, /attestation_failed/, 'after the wait');
    assert.equal(fake.requests.filter((r) => r.headers.authorization !== undefined).length, 0, 'no token was sent');
  });

  it('--delay-ms N waits the rest of N ms, --no-delay waits nothing even with the AWS root', async () => {
    const fake = await service();
    const { path } = await tokenFile();
    utimesSync(path, 1_700_000_000, 1_700_000_000);
    const fixed = await cli(['assign', '--service', fake.url, '--token', path, '--srt', srtFile, ...DEV, '--delay-ms', '5000', '--json'], { now: () => 1_700_000_001_000 });
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.deepEqual(fixed.slept, [4000], 'the rest of 5 s');
    assert.equal(oneJson(fixed.stdout)['redemptionDelaySeconds'], 4, 'reported');
    assert.equal(fixed.stderr, '', 'with --json nothing on stderr');
    const none = await cli(['assign', '--service', fake.url, '--token', (await tokenFile()).path, '--srt', srtFile, '--root', AWS_ROOT, ...PCRS, '--token-keys', keysFile, '--no-delay']);
    assert.deepEqual(none.slept, [], 'no wait');
    assert.equal(none.code, 1, 'then attestation against the AWS root fails');
  });

  it('a challenge that differs from the pin: exit 1, challenge_unexpected, the token not sent', async () => {
    const challenge = formatWwwAuthenticate({ challenge: new TokenChallenge({ issuerName: ISSUER_NAME, redemptionContext: new Uint8Array(0), originInfo: ORIGIN_INFO }), tokenKey: OTHER_KEY.spki });
    const fake = await service({ challenge });
    const result = await cli(['assign', '--service', fake.url, '--token', (await tokenFile()).path, '--srt', srtFile, ...DEV, '--json']);
    assert.equal(result.code, 1, 'refused');
    const error = oneJson(result.stdout)['error'];
    assert.deepEqual([error.code, error.detail], ['challenge_unexpected', 'token_key'], 'what differs');
    assert.match(error.hint, /nothing was sent/, 'the hint');
    assert.equal(fake.requests.filter((r) => r.headers.authorization !== undefined).length, 0, 'no token was sent');
  });

  it('504: exit 1 with the exact code, retry same_token and a hint to run it again with the same --token; the retry gets the IP', async () => {
    const fake = await service({ assign: [{ status: 504, code: 'enclave_timeout' }] });
    const { path } = await tokenFile();
    const args = ['assign', '--service', fake.url, '--token', path, '--srt', srtFile, ...DEV];
    const failed = await cli([...args, '--json']);
    assert.equal(failed.code, 1, 'failed');
    const error = oneJson(failed.stdout)['error'];
    assert.deepEqual([error.code, error.fromServer, error.retry], ['enclave_timeout', true, 'same_token'], 'code, origin, retry');
    assert.match(error.hint, /same --token/, 'the hint');
    assertNoLeak(failed.stdout + failed.stderr, [{ what: 'token', value: readFileSync(path, 'utf8').trim() }], 'a failed dip assign');
    const text = await cli(args.concat('--dat-out', join(dir, 'retry.dat'), '--drt-out', join(dir, 'retry.drt')));
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^ip +${POOL[0]!.replaceAll('.', '\\.')}$`, 'm'), 'the IP kept for the token');
  });

  it('a spent token: exit 1 token_spent, one line on stderr, no retry', async () => {
    const fake = await service();
    const { path } = await tokenFile();
    const args = ['assign', '--service', fake.url, '--token', path, '--srt', srtFile, ...DEV, '--drt-out', join(dir, 'spent.drt'), '--dat-out', join(dir, 'spent.dat')];
    assert.equal((await cli(args)).code, 0, 'first');
    const again = await cli(args);
    assert.equal(again.code, 1, 'second');
    assert.equal(again.stderr.trim().split('\n').length, 1, 'one line');
    assert.match(again.stderr, /the server refused: token_spent: .*redeemed already/, 'code and hint');
    const json = oneJson((await cli([...args, '--json'])).stdout);
    assert.equal(json['error'].retry, undefined, 'not to be retried');
  });

  // SERVICE stands for the fake service's URL, TOKEN for a token file.
  const S = ['--service', 'SERVICE'];
  const usageCases: Array<[string, string[], RegExp, Record<string, string>?]> = [
    ['--service and --url', [...S, '--url', 'http://p.test', '--token', 'TOKEN', '--srt', srtFile, ...DEV], /give --service or --url, not both/],
    ['DIP_SERVICE and DIP_URL', ['--token', 'TOKEN', '--srt', srtFile, ...DEV], /give DIP_SERVICE \(--service\) or DIP_URL \(--url\), not both/, { DIP_SERVICE: 'http://s.test', DIP_URL: 'http://p.test' }],
    ['--ip with --service', [...S, '--ip', POOL[0]!, '--token', 'TOKEN', '--srt', srtFile, ...DEV], /--ip goes with --url/],
    ['no --token', [...S, '--srt', srtFile, ...DEV], /--token is required/],
    ['an empty --token file', [...S, '--token', file('empty-token.txt', '\n'), '--srt', srtFile, ...DEV], /--token must hold one token/],
    ['a --token file of two words', [...S, '--token', file('two-token.txt', 'a b\n'), '--srt', srtFile, ...DEV], /--token must hold one token/],
    ['an unreadable --token', [...S, '--token', join(dir, 'no-such-token'), '--srt', srtFile, ...DEV], /cannot read --token/],
    ['--no-delay and --delay-ms', [...S, '--token', 'TOKEN', '--srt', srtFile, ...DEV, '--no-delay', '--delay-ms', '1'], /--no-delay or --delay-ms, not both/],
    ['--delay-ms=-1', [...S, '--token', 'TOKEN', '--srt', srtFile, ...DEV, '--delay-ms=-1'], /--delay-ms must be an integer ≥ 0/],
    ['--delay-ms 1.5', [...S, '--token', 'TOKEN', '--srt', srtFile, ...DEV, '--delay-ms', '1.5'], /--delay-ms must be an integer ≥ 0/],
    ['no pinned issuer keys', [...S, '--token', 'TOKEN', '--srt', srtFile, '--root', AWS_ROOT, ...PCRS], /give --token-keys FILE/],
    ['a --service that is not http(s)', ['--service', 'ftp://s.test', '--token', 'TOKEN', '--srt', srtFile, ...DEV], /--service must be an http\(s\) URL/],
  ];
  for (const [what, args, message, env] of usageCases) {
    it(`exits 2 on ${what}, naming the flag, with one JSON object and nothing sent`, async () => {
      const fake = await service();
      const token = (await tokenFile()).path;
      const result = await cli(['assign', ...args.map((a) => (a === 'TOKEN' ? token : a === 'SERVICE' ? fake.url : a)), '--json'], { env: env ?? {} });
      assert.equal(result.code, 2, `usage (${result.stderr})`);
      assert.equal(oneJson(result.stdout)['error'].code, 'usage', 'one JSON object');
      assert.match(result.stderr, message, 'names the flag');
      assert.equal(fake.requests.length, 0, 'nothing reached the service');
    });
  }

  it('--token, --token-keys and --delay-ms with --url are usage errors', async () => {
    for (const extra of [['--token', 'x'], ['--token-keys', keysFile], ['--delay-ms', '5'], ['--no-delay']]) {
      const result = await cli(['assign', '--url', 'http://p.test', '--ip', POOL[0]!, '--srt', srtFile, ...DEV, ...extra]);
      assert.equal(result.code, 2, extra[0]);
      assert.match(result.stderr, new RegExp(`${extra[0]} goes with --service`), extra[0]);
    }
  });
});

describe('dip refresh --service', () => {
  it('refreshes through the service; an IP it does not reserve is ip_unavailable, exit 1', async () => {
    const fake = await service();
    const drtOut = join(dir, 'r.drt');
    const assigned = await cli(['assign', '--service', fake.url, '--token', (await tokenFile()).path, '--srt', srtFile, ...DEV, '--drt-out', drtOut, '--dat-out', join(dir, 'r.dat')]);
    assert.equal(assigned.code, 0, assigned.stderr);
    const refreshed = await cli(['refresh', '--service', fake.url, '--srt', srtFile, '--drt', drtOut, ...DEV, '--drt-out', drtOut, '--dat-out', join(dir, 'r.dat'), '--json']);
    assert.equal(refreshed.code, 0, refreshed.stderr);
    assert.equal(oneJson(refreshed.stdout)['ip'], POOL[0], 'same IP');
    assert.equal(fake.requests.at(-1)!.path, '/v1/dip/refresh', 'through the service');
    const other = await service();
    const refused = await cli(['refresh', '--service', other.url, '--srt', srtFile, '--drt', drtOut, ...DEV, '--json']);
    assert.equal(refused.code, 1, 'refused');
    const error = oneJson(refused.stdout)['error'];
    assert.deepEqual([error.code, error.fromServer], ['ip_unavailable', true], 'the exact code');
    assert.match(error.hint, /no longer reserves/, 'the hint');
  });
});

describe('dip backup push and pull', () => {
  async function drtFile(fake: FakeService): Promise<string> {
    const drtOut = join(dir, `b-${fake.url.split(':').at(-1)}.drt`);
    const assigned = await cli(['assign', '--service', fake.url, '--token', (await tokenFile()).path, '--srt', srtFile, ...DEV, '--drt-out', drtOut, '--dat-out', join(dir, 'b.dat')]);
    assert.equal(assigned.code, 0, assigned.stderr);
    return drtOut;
  }

  it('push writes the backup code (mode 600); pull on a second device gets the DRT back, by file, variable or prompt', async () => {
    const fake = await service();
    const drt = await drtFile(fake);
    const codeFile = join(dir, 'backup-code.txt');
    const pushed = await cli(['backup', 'push', '--service', fake.url, '--drt', drt, '--out', codeFile]);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.equal(pushed.stdout, `backup code written to ${codeFile}\n`, 'says where');
    assert.equal(statSync(codeFile).mode & 0o777, 0o600, 'owner-only');
    const backupCode = readFileSync(codeFile, 'utf8').trim();
    assert.match(backupCode, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){18}$/, 'a backup code');
    assert.equal(fake.requests.at(-1)!.body.length, 4096, 'the service got 4096 bytes');

    const drtOut = join(dir, 'pulled.drt');
    const byFile = await cli(['backup', 'pull', '--service', fake.url, '--code-file', codeFile, '--drt-out', drtOut, '--json']);
    assert.equal(byFile.code, 0, byFile.stderr);
    assert.equal(readFileSync(drtOut, 'utf8'), readFileSync(drt, 'utf8'), 'the same DRT');
    assert.equal(statSync(drtOut).mode & 0o777, 0o600, 'owner-only');
    assert.deepEqual(Object.keys(oneJson(byFile.stdout)).sort(), ['drtClaims', 'drtOut', 'ok'], 'file, claims');
    const byEnv = await cli(['backup', 'pull', '--drt-out', drtOut], { env: { DIP_SERVICE: fake.url, DIP_BACKUP_CODE: backupCode.toLowerCase() } });
    assert.equal(byEnv.code, 0, byEnv.stderr);
    assert.match(byEnv.stdout, /^ip +198\.51\.100\.23$/m, 'the IP of the DRT');
    const typed = await cli(['backup', 'pull', '--service', fake.url], { stdin: fakeTty([`${backupCode}\r`]) });
    assert.equal(typed.code, 0, typed.stderr);
    assert.equal(typed.stdout.split('\n')[0], `drt             ${readFileSync(drt, 'utf8').trim()}`, 'printed without --drt-out');
    assert.ok(!typed.stderr.includes(backupCode), 'the typed code is not echoed');
  });

  it('push --json prints the code; --code-file replaces that backup; pull of a deleted one is not_found', async () => {
    const fake = await service();
    const drt = await drtFile(fake);
    const pushed = await cli(['backup', 'push', '--service', fake.url, '--drt', drt, '--json']);
    assert.equal(pushed.code, 0, pushed.stderr);
    const { backupCode } = oneJson(pushed.stdout);
    const again = await cli(['backup', 'push', '--service', fake.url, '--drt', drt, '--code-file', file('replace-code.txt', `${backupCode}\n`), '--json']);
    assert.equal(oneJson(again.stdout)['backupCode'], backupCode, 'the same code');
    assert.equal(fake.backups.size, 1, 'replaced, not added');
    fake.backups.clear();
    const gone = await cli(['backup', 'pull', '--service', fake.url, '--code', backupCode, '--json']);
    assert.equal(gone.code, 1, 'refused');
    assert.deepEqual([oneJson(gone.stdout)['error'].code, oneJson(gone.stdout)['error'].fromServer], ['not_found', true], 'the exact code');
  });

  it('usage mistakes exit 2 before anything is sent: a mistyped code, no code, no service, not a DRT', async () => {
    const fake = await service();
    const drt = await drtFile(fake);
    const before = fake.requests.length;
    const code = oneJson((await cli(['backup', 'push', '--service', fake.url, '--drt', drt, '--json'])).stdout)['backupCode'] as string;
    const typo = `${code.slice(0, 5)}${code[5] === 'Z' ? 'Y' : 'Z'}${code.slice(6)}`;
    const cases: Array<[string[], RegExp, Record<string, string>?]> = [
      [['backup', 'pull', '--service', fake.url, '--code', typo], /--code is not a backup code \(mistyped\?\)/],
      [['backup', 'pull', '--service', fake.url, '--code-file', file('typo.txt', typo)], /--code-file is not a backup code/],
      [['backup', 'pull', '--service', fake.url], /the backup code is not a backup code/, { DIP_BACKUP_CODE: 'ABCD' }],
      [['backup', 'pull', '--service', fake.url], /--code, --code-file or DIP_BACKUP_CODE is required/],
      [['backup', 'pull', '--service', fake.url, '--code', code, '--code-file', 'x'], /--code or --code-file, not both/],
      [['backup', 'pull', '--code', code], /--service is required/],
      [['backup', 'pull', '--service', 'ftp://x', '--code', code], /--service must be an http\(s\) URL/],
      [['backup', 'pull', '--service', fake.url, '--code', code, '--drt-out', join(dir, 'no/dir/x')], /cannot write --drt-out/],
      [['backup', 'push', '--service', fake.url, '--drt', srtFile], /--drt is not a DRT/],
      [['backup', 'push', '--service', fake.url, '--drt', drt, '--code-file', file('typo2.txt', typo)], /--code-file is not a backup code/],
      [['backup', 'push', '--service', fake.url, '--drt', drt, '--out', dir], /cannot write --out/],
    ];
    const sent = fake.requests.length;
    for (const [args, message, env] of cases) {
      const result = await cli([...args, '--json'], { env: env ?? {} });
      assert.equal(result.code, 2, args.join(' '));
      assert.equal(oneJson(result.stdout)['error'].code, 'usage', 'one JSON object');
      assert.match(result.stderr, message, args.join(' '));
    }
    assert.equal(fake.requests.length, sent, 'none of them reached the service');
    assert.ok(sent > before, 'the push before them did');
  });

  it('dip backup --help lists push and pull', async () => {
    const help = await cli(['backup', '--help']);
    assert.equal(help.code, 0, 'help');
    assert.match(help.stdout, /push +store a DRT backup at the DIP service/, 'push');
    assert.match(help.stdout, /pull +on a second device/, 'pull');
  });
});
