import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { runDip } from '../../test/support/dip-cli.js';
import { SignJWT, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { main, type CliIo } from '../cli.js';
import { DEV_PCRS, pcrToHex } from '../manifest.js';
import { reservedUntilOf } from '../../protocol/limits.js';
import { pemToDer } from '../x509.js';
import type { Fetch } from '../http.js';
import type { PromptInput } from '../prompt.js';
import { IP, JWKS, M_COMMIT, SRT, URL_BASE, datKey, fakeParent, nsm, srtFor, type Tamper } from './fake-parent.js';

const VECTOR = fileURLToPath(new URL('../../test/vectors/aws-attestation-2026-01-03.cbor', import.meta.url));
const AWS_ROOT = fileURLToPath(new URL('../../test/vectors/aws-nitro-root-g1.pem', import.meta.url));
const AT = '1767472868';

const dir = mkdtempSync(join(tmpdir(), 'dip-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string | Uint8Array) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};

const dip = runDip;

/** Runs main() in this process with captured output (and the fake parent's fetch). */
async function cli(args: string[], tamper: Tamper = {}, env: Record<string, string> = {}) {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { out: (t) => void (stdout += t), err: (t) => void (stderr += t), cwd: dir, env, fetch: fakeParent(tamper) };
  const code = await main(args, io);
  return { code, stdout, stderr };
}

/** Runs main() with a chosen fetch, environment and stdin. */
async function cliWith(args: string[], options: { fetch?: Fetch; env?: Record<string, string>; stdin?: PromptInput } = {}) {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    out: (t) => void (stdout += t), err: (t) => void (stderr += t), cwd: dir, env: options.env ?? {},
    fetch: options.fetch ?? fakeParent(),
    ...(options.stdin ? { stdin: options.stdin } : {}),
  };
  const code = await main(args, io);
  return { code, stdout, stderr };
}

/** A fake terminal: each prompt's resume() delivers the next scripted keystrokes. */
function fakeTty(lines: string[], isTTY = true): PromptInput & { raw: boolean[] } {
  const emitter = new EventEmitter();
  const raw: boolean[] = [];
  return {
    isTTY,
    raw,
    setRawMode: (on: boolean) => raw.push(on),
    on: (event, listener) => emitter.on(event, listener),
    removeListener: (event, listener) => emitter.removeListener(event, listener),
    resume: () => setImmediate(() => emitter.emit('data', Buffer.from(lines.shift() ?? '\u0004'))),
    pause: () => undefined,
  };
}

const COMMANDS = ['verify-attestation', 'attest', 'jwks', 'assign', 'refresh', 'backup seal', 'backup open', 'backup push', 'backup pull', 'dev-srt', 'verify-dat'];

describe('dip as a process (bin/dip.js)', () => {
  it('--help works for the tool and for every command', async () => {
    const top = await dip('--help');
    assert.equal(top.code, 0);
    for (const command of COMMANDS) assert.ok(top.stdout.includes(command), command);
    for (const command of COMMANDS) {
      const result = await dip(...command.split(' '), '--help');
      assert.equal(result.code, 0, command);
      assert.ok(result.stdout.startsWith(`Usage: dip ${command}`), command);
      assert.match(result.stdout, /--json/);
    }
  });

  it('verify-attestation accepts the real AWS document under the AWS root and prints PCR0..2', async () => {
    const result = await dip('verify-attestation', VECTOR, '--root', AWS_ROOT, '--at', AT);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^module id +i-0368fa67e156d6d23-enc019b8596b1a9dad6$/m);
    assert.match(result.stdout, /^timestamp +1767472867402 /m);
    assert.match(result.stdout, /^PCR0 +4b8d4cf2[0-9a-f]{88}$/m);
    assert.match(result.stdout, /^PCR1 +0343b056[0-9a-f]{88}$/m);
    assert.match(result.stdout, /^PCR2 +[0-9a-f]{96}$/m);
  });

  it('verify-attestation of a copy with one flipped byte exits 1 naming the failed check', async () => {
    const bytes = new Uint8Array(readFileSync(VECTOR));
    bytes[bytes.length - 10]! ^= 0x01; // inside the signature
    const result = await dip('verify-attestation', file('flipped.cbor', bytes), '--root', AWS_ROOT, '--at', AT);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /attestation_failed \(signature_invalid\)/);
  });

  it('verify-attestation --json prints one JSON object with every field', async () => {
    const result = await dip('verify-attestation', VECTOR, '--at', AT, '--json');
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.equal(report.ok, true);
    assert.equal(report.moduleId, 'i-0368fa67e156d6d23-enc019b8596b1a9dad6');
    assert.equal(report.digest, 'SHA384');
    assert.equal(report.rootSha256, '641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b');
    assert.ok(report.pcrs.PCR1.startsWith('0343b056'), 'PCR1 of the recorded AWS document');
    assert.equal(report.pcrsChecked, false);
  });
});

const vectorPcrs = JSON.parse((await dip('verify-attestation', VECTOR, '--at', AT, '--json')).stdout).pcrs as Record<string, string>;

describe('dip verify-attestation', () => {
  const pcrArgs = (pcrs: { pcr0: Uint8Array; pcr1: Uint8Array; pcr2: Uint8Array }) => ['--pcr0', pcrToHex(pcrs.pcr0), '--pcr1', pcrToHex(pcrs.pcr1), '--pcr2', pcrToHex(pcrs.pcr2)];

  it('checks PCRs from a manifest, and a mismatch is pcr_mismatch', async () => {
    const manifest = file('manifest.json', JSON.stringify({ PCR0: vectorPcrs['PCR0'], PCR1: vectorPcrs['PCR1'], PCR2: vectorPcrs['PCR2'] }));
    const ok = await cli(['verify-attestation', VECTOR, '--at', AT, '--manifest', manifest]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /PCRs checked +yes/);
    const bad = await cli(['verify-attestation', VECTOR, '--at', AT, ...pcrArgs(DEV_PCRS), '--json']);
    assert.equal(bad.code, 1);
    assert.deepEqual(JSON.parse(bad.stdout).error, {
      code: 'attestation_failed', message: 'The attestation document did not verify.', fromServer: false, detail: 'pcr_mismatch',
      pcr: 0, hint: 'PCR0 differs from the expected value',
    }, 'the error names the first PCR that differs');
  });

  it('an empty manifest is the clear "lacks the measured PCR1 and PCR2" error', async () => {
    const result = await cli(['verify-attestation', VECTOR, '--at', AT, '--manifest', file('empty.json', '{"PCR0": null}')]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /manifest lacks the measured PCR1 and PCR2 a client needs/);
  });

  it('the document is checked against the time, the nonce and the root hash', async () => {
    assert.match((await cli(['verify-attestation', VECTOR])).stderr, /\((stale|certificate_expired)\)/);
    assert.match((await cli(['verify-attestation', VECTOR, '--at', AT, '--nonce', 'aa'.repeat(16)])).stderr, /\(nonce_mismatch\)/);
    assert.match((await cli(['verify-attestation', VECTOR, '--at', AT, '--root', AWS_ROOT, '--root-sha256', '00'.repeat(32)])).stderr, /\(chain_root_mismatch\)/);
    assert.match((await cli(['verify-attestation', VECTOR, '--at', AT, '--root', file('other-root.pem', nsm.rootCertificatePem)])).stderr, /\(chain_root_mismatch\)/);
  });

  it('reads the document as the API\'s JSON or as base64 too', async () => {
    const bytes = readFileSync(VECTOR);
    for (const content of [JSON.stringify({ document: bytes.toString('base64url') }), bytes.toString('base64')]) {
      const result = await cli(['verify-attestation', file('doc.txt', content), '--at', AT]);
      assert.equal(result.code, 0, result.stderr);
      // AWS's user_data is not SPEC §3's map, so it is shown as hex
      assert.match(result.stdout, /^user data +69553adc61d6e9fcdecbe1ea49bb2b52a60238e0$/m);
    }
    const garbage = await cli(['verify-attestation', file('doc.json', '{"document": 5}'), '--at', AT]);
    assert.equal(garbage.code, 1);
    assert.match(garbage.stderr, /\(cose_malformed\)/);
  });

  it('usage mistakes exit 2 and name the option', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['verify-attestation'], /takes 1 argument/],
      [['verify-attestation', join(dir, 'missing.cbor')], /cannot read the document file/],
      [['verify-attestation', VECTOR, '--at', 'yesterday'], /--at must be an integer/],
      [['verify-attestation', VECTOR, '--nonce', 'xyz'], /--nonce must be hex/],
      [['verify-attestation', VECTOR, '--pcr0', 'abc'], /--pcr0 must be 32, 48 or 64 bytes/],
      [['verify-attestation', VECTOR, '--manifest', 'm.json', '--pcr0', 'ab'], /not both/],
      [['verify-attestation', VECTOR, '--root', file('not.pem', 'hello')], /--root is not a PEM certificate/],
      [['verify-attestation', VECTOR, '--bogus'], /Unknown option '--bogus'/],
      [['verify-attestation', VECTOR, '--max-age', '0'], /--max-age must be an integer/],
    ];
    for (const [args, message] of cases) {
      const result = await cli(args);
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, message);
    }
  });
});

describe('dip attest, assign, refresh (against a fake parent)', () => {
  const devDir = join(dir, 'dev');
  const rootFile = file('dev-root.pem', nsm.rootCertificatePem);
  const srtFile = file('srt.jwt', `${SRT}\n`);
  const trust = ['--url', URL_BASE, '--root', rootFile, '--pcr0', pcrToHex(DEV_PCRS.pcr0), '--pcr1', pcrToHex(DEV_PCRS.pcr1), '--pcr2', pcrToHex(DEV_PCRS.pcr2)];

  it('attest verifies the document and the JWKS it binds', async () => {
    const result = await cli(['attest', ...trust, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.ok(report.moduleId.startsWith('dev-'), 'an emulator module id starts with dev-');
    assert.equal(report.pcrsChecked, true);
    assert.equal(report.datKeys.length, 1);
    assert.equal(report.nonce.length, 64);
    const text = await cli(['attest', ...trust]);
    assert.match(text.stdout, /JWKS +sha256 [0-9a-f]{64} matches user_data/);
  });

  it('--dev takes the root from the dev dir and the emulator PCRs', async () => {
    mkdirSync(devDir, { recursive: true });
    writeFileSync(join(devDir, 'nsm-root.pem'), nsm.rootCertificatePem);
    const result = await cli(['attest', '--url', URL_BASE, '--dev', '--dev-dir', devDir]);
    assert.equal(result.code, 0, result.stderr);
    const missing = await cli(['attest', '--url', URL_BASE, '--dev', '--dev-dir', join(dir, 'nowhere')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /make dev/);
  });

  it('assign writes the tokens with mode 600, refresh replaces the DRT in place', async () => {
    const datFile = join(dir, 'dat.jwt');
    const drtFile = join(dir, 'drt.jwt');
    const assigned = await cli(['assign', ...trust, '--srt', srtFile, '--ip', IP, '--dat-out', datFile, '--drt-out', drtFile]);
    assert.equal(assigned.code, 0, assigned.stderr);
    assert.match(assigned.stdout, new RegExp(`^ip +${IP.replaceAll('.', '\\.')}$`, 'm'));
    assert.ok(!assigned.stdout.includes(readFileSync(drtFile, 'utf8').trim()), 'tokens written to files are not printed');
    assert.equal(statSync(drtFile).mode & 0o777, 0o600);
    const firstDrt = readFileSync(drtFile, 'utf8');
    const refreshed = await cli(['refresh', ...trust, '--srt', srtFile, '--drt', drtFile, '--drt-out', drtFile, '--json']);
    assert.equal(refreshed.code, 0, refreshed.stderr);
    const report = JSON.parse(refreshed.stdout);
    assert.equal(report.ip, IP);
    assert.equal(report.reservedUntil, reservedUntilOf(report.drtClaims.exp), 'reservedUntil is the DRT exp rounded up to 00:00 UTC');
    assert.equal(report.drtClaims.sub, undefined, 'the subscription id is not echoed');
    assert.notEqual(readFileSync(drtFile, 'utf8'), firstDrt);
    assert.equal(report.drt, undefined, 'a DRT written to its file is not printed');
    assert.equal(report.drtOut, drtFile, 'the report says where the DRT went');
    assert.match(report.dat, /^ey/, 'the DAT, sent to no file, is printed');
  });

  it('without output files the tokens are printed', async () => {
    const result = await cli(['assign', ...trust, '--srt', srtFile, '--ip', IP]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^dat +ey/m);
    assert.match(result.stdout, /^drt +ey/m);
  });

  it('a server refusal exits 1 with its SPEC code; a failed local check with the local code', async () => {
    const refused = await cli(['assign', ...trust, '--srt', srtFile, '--ip', IP, '--json'], { error: { status: 403, code: 'not_entitled' } });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /the server refused: not_entitled/);
    assert.equal(JSON.parse(refused.stdout).error.fromServer, true);
    const mismatch = await cli(['assign', ...trust, '--srt', srtFile, '--ip', IP], { servedJwks: new TextEncoder().encode('{"keys":[]}') });
    assert.equal(mismatch.code, 1);
    assert.match(mismatch.stderr, /jwks_mismatch/);
    assert.ok(!mismatch.stderr.includes(SRT), 'the SRT is not printed on a mismatch');
    assert.ok(JWKS.length > 0, 'the JWKS is not empty');
  });

  it('usage mistakes exit 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['attest', '--pcr0', 'ab'], /--service \(the DIP service\) or --url \(a parent\) is required/],
      [['attest', '--url', 'ftp://x', '--dev'], /--url must be an http/],
      [['attest', '--url', URL_BASE], /give --manifest FILE or --pcr0/],
      [['attest', '--url', URL_BASE, '--root', rootFile, '--pcr0', pcrToHex(DEV_PCRS.pcr0)], /all of --pcr0, --pcr1 and --pcr2/],
      [['assign', ...trust, '--ip', IP], /--srt is required/],
      [['assign', ...trust, '--srt', join(dir, 'nope'), '--ip', IP], /cannot read --srt/],
      [['refresh', ...trust, '--srt', srtFile], /--drt is required/],
      [['assign', ...trust, '--srt', srtFile, '--ip', IP, '--drt-out', join(dir, 'no/such/dir/drt')], /cannot write --drt-out/],
      [['attest', ...trust, 'extra'], /takes no positional arguments/],
    ];
    for (const [args, message] of cases) {
      const result = await cli(args);
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, message);
    }
  });
});

describe('dip backup', () => {
  const DRT = `${Buffer.from('{"alg":"ES256","typ":"drt+jwt","kid":"k"}').toString('base64url')}.e30.c2ln`;
  const drtFile = file('backup-drt.jwt', `${DRT}\n`);

  it('seal then open on a "second device" gives back the DRT; a wrong code exits 1 with backup_wrong_code', async () => {
    const backupFile = join(dir, 'drt.backup');
    const sealed = await cli(['backup', 'seal', '--drt', drtFile, '--code', 'blue-harbor-42', '--out', backupFile]);
    assert.equal(sealed.code, 0, sealed.stderr);
    assert.match(readFileSync(backupFile, 'utf8'), /^dipb1\./);
    const opened = await cli(['backup', 'open', backupFile, '--code-file', file('code.txt', 'blue-harbor-42\n')]);
    assert.equal(opened.code, 0, opened.stderr);
    assert.equal(opened.stdout, `${DRT}\n`);
    const wrong = await cli(['backup', 'open', backupFile, '--code', 'blue-harbor-43', '--json']);
    assert.equal(wrong.code, 1);
    assert.equal(JSON.parse(wrong.stdout).error.code, 'backup_wrong_code');
  });

  it('without a code, seal makes one and prints it; the environment variable works for open', async () => {
    const sealed = await cli(['backup', 'seal', '--drt', drtFile]);
    assert.equal(sealed.code, 0, sealed.stderr);
    const code = /access code \(write it down, it is not stored\): (\S+)/.exec(sealed.stderr)![1]!;
    const backupFile = file('generated.backup', sealed.stdout);
    const opened = await cli(['backup', 'open', backupFile, '--json', '--out', join(dir, 'restored.jwt')], {}, { DIP_ACCESS_CODE: code });
    assert.equal(opened.code, 0, opened.stderr);
    assert.equal(readFileSync(join(dir, 'restored.jwt'), 'utf8'), `${DRT}\n`);
    const asJson = await cli(['backup', 'seal', '--drt', drtFile, '--json']);
    const report = JSON.parse(asJson.stdout);
    assert.match(report.backup, /^dipb1\./);
    assert.match(report.accessCode, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){4}$/);
    const back = await cli(['backup', 'open', file('j.backup', report.backup), '--code', report.accessCode, '--json']);
    assert.equal(JSON.parse(back.stdout).drt, DRT);
  });

  it('usage mistakes exit 2; a malformed backup exits 1', async () => {
    assert.equal((await cli(['backup'])).code, 2);
    assert.equal((await cli(['backup', '--help'])).code, 0);
    assert.match((await cli(['backup', 'seal', '--drt', drtFile, '--code', 'short'])).stderr, /at least 8 characters/);
    assert.match((await cli(['backup', 'seal', '--drt', drtFile, '--code', 'x', '--code-file', 'y'])).stderr, /not both/);
    assert.match((await cli(['backup', 'open', file('b.backup', 'dipb1.AAAA')])).stderr, /--code, --code-file or DIP_ACCESS_CODE is required/);
    const malformed = await cli(['backup', 'open', file('c.backup', 'dipb1.AAAA'), '--code', 'whatever-code']);
    assert.equal(malformed.code, 1);
    assert.match(malformed.stderr, /backup_invalid/);
  });
});

const issuerDir = join(dir, 'issuer');
mkdirSync(issuerDir);
const { privateKey: issuerPrivate, publicKey } = await generateKeyPair('ES256', { extractable: true });
writeFileSync(join(issuerDir, 'srt-issuer.json'), JSON.stringify({ iss: 'https://dev-issuer.local', aud: null, jwk: { ...(await exportJWK(issuerPrivate)), kid: 'dev', alg: 'ES256' } }));

describe('dip dev-srt', () => {
  const devDir = issuerDir;

  it('mints an SRT the development issuer key verifies, with sub and did', async () => {
    const result = await cli(['dev-srt', '--sub', 'sub-42', '--did', '7', '--dev-dir', devDir]);
    assert.equal(result.code, 0, result.stderr);
    const { payload } = await jwtVerify(result.stdout.trim(), publicKey, { issuer: 'https://dev-issuer.local' });
    assert.equal(payload.sub, 'sub-42');
    assert.deepEqual(payload['entitlements'], { 'xv.vpn.dip': { did: 7 } });
    const json = JSON.parse((await cli(['dev-srt', '--sub', 'sub-42', '--did', '8', '--dev-dir', devDir, '--ttl', '60', '--json'])).stdout);
    assert.deepEqual(json.claims, { sub: 'sub-42', did: 8 });
    const toFile = await cli(['dev-srt', '--sub', 'a', '--did', '0', '--dev-dir', devDir, '--out', join(dir, 'srt-out.jwt')]);
    assert.match(toFile.stdout, /SRT written to/);
    assert.deepEqual(srtFor('a', 0).split('.').length, 3);
  });

  it('refuses without a development issuer, and bad --did, --sub, --ttl', async () => {
    assert.match((await cli(['dev-srt', '--sub', 'a', '--did', '1', '--dev-dir', join(dir, 'none')])).stderr, /run `make dev` first/);
    assert.match((await cli(['dev-srt', '--sub', 'a', '--did', '1', '--dev-dir', dir, '--json'])).stderr, /cannot read|not a development issuer/);
    writeFileSync(join(dir, 'srt-issuer.json'), '{"iss": 1}');
    assert.match((await cli(['dev-srt', '--sub', 'a', '--did', '1', '--dev-dir', dir])).stderr, /not a development issuer/);
    assert.match((await cli(['dev-srt', '--sub', 'a', '--did=1.5', '--dev-dir', devDir])).stderr, /--did must be an integer/);
    assert.match((await cli(['dev-srt', '--sub', 'x'.repeat(257), '--did', '1', '--dev-dir', devDir])).stderr, /--sub must be/);
    assert.match((await cli(['dev-srt', '--sub', 'a', '--did', '1', '--ttl', '300000', '--dev-dir', devDir])).stderr, /--ttl must be at most/);
  });
});

describe('dip top level', () => {
  it('no command prints the help and exits 2; an unknown command exits 2', async () => {
    const none = await cli([]);
    assert.equal(none.code, 2);
    assert.match(none.stdout, /Usage: dip COMMAND/);
    const unknown = await cli(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command/);
    assert.equal((await cli(['help'])).code, 0);
  });
});

describe('dip --version and the environment (issue 9.3)', () => {
  const rootFile = file('env-root.pem', nsm.rootCertificatePem);
  const pcrs = ['--pcr0', pcrToHex(DEV_PCRS.pcr0), '--pcr1', pcrToHex(DEV_PCRS.pcr1), '--pcr2', pcrToHex(DEV_PCRS.pcr2)];
  const manifest = file('env-manifest.json', JSON.stringify({ PCR0: pcrToHex(DEV_PCRS.pcr0), PCR1: pcrToHex(DEV_PCRS.pcr1), PCR2: pcrToHex(DEV_PCRS.pcr2) }));

  it('--version prints the version, as text or as one JSON object', async () => {
    assert.equal((await cli(['--version'])).stdout, '\u0064ip 0.1.0\n', 'text');
    assert.deepEqual(JSON.parse((await cli(['--version', '--json'])).stdout), { ok: true, version: '0.1.0' }, 'json');
  });

  it('DIP_URL, DIP_ROOT and DIP_MANIFEST stand in for their flags', async () => {
    const seen = { nonces: [] as string[], paths: [] as string[] };
    const result = await cliWith(['attest', '--json'], { fetch: fakeParent({}, seen), env: { DIP_URL: URL_BASE, DIP_ROOT: rootFile, DIP_MANIFEST: manifest } });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(JSON.parse(result.stdout).pcrsChecked, true, 'PCRs checked from DIP_MANIFEST');
    assert.deepEqual(seen.paths, ['/v1/attestation'], 'DIP_URL was called');
  });

  it('a flag wins over its environment variable', async () => {
    const seen = { nonces: [] as string[], paths: [] as string[] };
    const fetch: Fetch = (input, init) => {
      assert.ok(String(input).startsWith(URL_BASE), 'the --url flag, not DIP_URL, is called');
      return fakeParent({}, seen)(input as string, init);
    };
    const env = { DIP_URL: 'http://elsewhere.test', DIP_ROOT: file('env-bad-root.pem', 'not a certificate'), DIP_ROOT_SHA256: '00'.repeat(32), DIP_MANIFEST: join(dir, 'missing.json') };
    const result = await cliWith(['attest', '--url', URL_BASE, '--root', rootFile, '--root-sha256', createHash('sha256').update(pemToDer(nsm.rootCertificatePem)).digest('hex'), ...pcrs], { fetch, env });
    assert.equal(result.code, 0, result.stderr);
    const dev = await cliWith(['attest', '--dev', '--dev-dir', join(dir, 'env-dev')], { env: { ...env, DIP_URL: URL_BASE } });
    assert.match(dev.stderr, /development root/, '--dev ignores DIP_ROOT and reads the dev dir');
  });

  it('a bad value from the environment is a usage error naming the variable', async () => {
    const result = await cliWith(['attest', '--url', URL_BASE, ...pcrs], { env: { DIP_ROOT: file('env-readme.txt', '# not a pem') } });
    assert.equal(result.code, 2, 'usage');
    assert.match(result.stderr, /DIP_ROOT \(--root\) is not a PEM certificate/);
    const sha = await cliWith(['verify-attestation', VECTOR, '--at', AT], { env: { DIP_ROOT_SHA256: 'zz' } });
    assert.equal(sha.code, 2, 'usage');
    assert.match(sha.stderr, /DIP_ROOT_SHA256 \(--root-sha256\) must be 64 hex digits/);
  });
});

describe('dip usage errors and --json (issue 9.5)', () => {
  it('--root-sha256 zz blames --root-sha256 with exit 2, and 63 or 65 hex digits are refused too', async () => {
    for (const value of ['zz', 'a'.repeat(63), 'a'.repeat(65)]) {
      const result = await cli(['verify-attestation', VECTOR, '--at', AT, '--root-sha256', value]);
      assert.equal(result.code, 2, value);
      assert.match(result.stderr, /^dip verify-attestation: --root-sha256 must be 64 hex digits$/m, value);
    }
    assert.equal((await cli(['verify-attestation', VECTOR, '--at', AT, '--root', AWS_ROOT, '--root-sha256', '641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b'])).code, 0, '64 hex digits pass');
  });

  it('--root naming a file that is not a certificate is exit 2 for every command', async () => {
    const readme = file('README.md', '# a readme\n');
    const pcrs = ['--pcr0', pcrToHex(DEV_PCRS.pcr0), '--pcr1', pcrToHex(DEV_PCRS.pcr1), '--pcr2', pcrToHex(DEV_PCRS.pcr2)];
    for (const args of [['verify-attestation', VECTOR], ['attest', '--url', URL_BASE, ...pcrs], ['assign', '--url', URL_BASE, ...pcrs, '--srt', file('u-srt', SRT), '--ip', IP]]) {
      const result = await cli([...args, '--root', readme]);
      assert.equal(result.code, 2, args[0]);
      assert.match(result.stderr, /--root is not a PEM certificate/, args[0]);
      assert.doesNotMatch(result.stderr, /TypeError/, args[0]);
    }
  });

  it('with --json every outcome is exactly one JSON object on stdout', async () => {
    const cases: Array<[string[], number]> = [
      [['verify-attestation', VECTOR, '--at', AT], 0],
      [['verify-attestation', VECTOR], 1],
      [['verify-attestation', VECTOR, '--root-sha256', 'zz'], 2],
      [['verify-attestation'], 2],
      [['verify-attestation', VECTOR, '--bogus'], 2],
      [['attest', '--help'], 0],
      [['--help'], 0],
      [['--version'], 0],
      [[], 2],
      [['frobnicate'], 2],
      [['backup'], 2],
      [['backup', 'seal', '--drt', file('not-a-drt', 'hello')], 2],
    ];
    for (const [args, code] of cases) {
      const result = await cli([...args, '--json']);
      assert.equal(result.code, code, args.join(' '));
      const parsed: unknown = JSON.parse(result.stdout);
      assert.ok(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed), `${args.join(' ')}: one object`);
      assert.equal((parsed as { ok: boolean }).ok, code === 0, `${args.join(' ')}: ok`);
      if (code === 2) assert.equal((parsed as { error: { code: string } }).error.code, 'usage', `${args.join(' ')}: usage`);
    }
  });
});

describe('dip hints (issue 9.6)', () => {
  it('certificate_expired hints at --at; stale hints at --max-age', async () => {
    const expired = await cli(['verify-attestation', VECTOR, '--json']);
    assert.equal(JSON.parse(expired.stdout).error.detail, 'certificate_expired', 'today the chain has expired');
    assert.match(JSON.parse(expired.stdout).error.hint, /--at UNIX_SECONDS/, 'json hint');
    assert.match(expired.stderr, /--at UNIX_SECONDS/, 'text hint');
    const stale = await cli(['verify-attestation', VECTOR, '--at', String(Number(AT) + 301)]);
    assert.match(stale.stderr, /\(stale\).*--max-age SECONDS/, 'stale names --max-age');
    assert.equal((await cli(['verify-attestation', VECTOR, '--at', String(Number(AT) + 301), '--max-age', '302'])).code, 0, '--max-age admits it');
  });

  it('pcr_mismatch names the PCR that differs', async () => {
    const pcrs = ['--pcr0', vectorPcrs['PCR0']!, '--pcr1', vectorPcrs['PCR1']!, '--pcr2', pcrToHex(DEV_PCRS.pcr2)];
    const result = await cli(['verify-attestation', VECTOR, '--at', AT, ...pcrs, '--json']);
    assert.equal(result.code, 1, 'a failed check');
    assert.equal(JSON.parse(result.stdout).error.pcr, 2, 'PCR2 is the one');
    assert.match(result.stderr, /pcr_mismatch.*PCR2 differs from the expected value/);
  });
});

describe('dip backup seal refuses what is not a DRT, and prompts for the code on a terminal (issue 9.7)', () => {
  const DRT = `${Buffer.from('{"alg":"ES256","typ":"drt+jwt","kid":"k"}').toString('base64url')}.e30.c2ln`;
  const drtFile = file('prompt-drt.jwt', `${DRT}\n`);

  it('a DAT, a backup or plain text given as --drt is refused with exit 2', async () => {
    const dat = `${Buffer.from('{"alg":"ES256","typ":"dat+jwt","kid":"k"}').toString('base64url')}.e30.c2ln`;
    for (const content of [dat, 'dipb1.AAAA', 'hello world', 'header.payload.signature']) {
      const result = await cli(['backup', 'seal', '--drt', file('not-drt.jwt', content), '--code', 'blue-harbor-42']);
      assert.equal(result.code, 2, content);
      assert.match(result.stderr, /--drt is not a DRT/, content);
      assert.equal(result.stdout, '', 'no backup made');
    }
  });

  it('with no code on a terminal, seal asks twice at a hidden prompt and open asks once', async () => {
    const tty = fakeTty(['blue-harbor-42\r', 'blue-harbor-42\r']);
    const sealed = await cliWith(['backup', 'seal', '--drt', drtFile], { stdin: tty });
    assert.equal(sealed.code, 0, sealed.stderr);
    assert.ok(!sealed.stderr.includes('blue-harbor-42'), 'the typed code is not echoed');
    assert.doesNotMatch(sealed.stderr, /write it down/, 'a typed code is not a generated one');
    assert.deepEqual(tty.raw, [true, false, true, false], 'raw mode on while typing, off after');
    const opened = await cliWith(['backup', 'open', file('typed.backup', sealed.stdout)], { stdin: fakeTty(['blue-harbor-4x\u007f2\n']) });
    assert.equal(opened.code, 0, opened.stderr);
    assert.equal(opened.stdout, `${DRT}\n`, 'backspace erased the x');
  });

  it('two different codes, a short code or Ctrl-C at the prompt are usage errors; an empty code makes one', async () => {
    const differ = await cliWith(['backup', 'seal', '--drt', drtFile], { stdin: fakeTty(['blue-harbor-42\r', 'blue-harbor-43\r']) });
    assert.equal(differ.code, 2, 'differ');
    assert.match(differ.stderr, /the two access codes differ/);
    const short = await cliWith(['backup', 'seal', '--drt', drtFile], { stdin: fakeTty(['1234567\r', '1234567\r']) });
    assert.match(short.stderr, /at least 8 characters/, 'seven characters are too few');
    const eight = await cliWith(['backup', 'seal', '--drt', drtFile], { stdin: fakeTty(['12345678\r', '12345678\r']) });
    assert.equal(eight.code, 0, 'eight characters are enough');
    const aborted = await cliWith(['backup', 'open', file('abort.backup', eight.stdout)], { stdin: fakeTty(['abc\u0003']) });
    assert.equal(aborted.code, 2, 'Ctrl-C');
    assert.match(aborted.stderr, /prompt was aborted/);
    const generated = await cliWith(['backup', 'seal', '--drt', drtFile], { stdin: fakeTty(['\r']) });
    assert.equal(generated.code, 0, generated.stderr);
    assert.match(generated.stderr, /access code \(write it down, it is not stored\): [0-9A-Z-]+/, 'a generated code');
  });

  it('stdin that is not a terminal is never read: seal makes a code, open asks for one', async () => {
    const pipe = fakeTty(['blue-harbor-42\r'], false);
    const sealed = await cliWith(['backup', 'seal', '--drt', drtFile], { stdin: pipe });
    assert.match(sealed.stderr, /write it down/, 'generated');
    assert.deepEqual(pipe.raw, [], 'no prompt');
    const opened = await cliWith(['backup', 'open', file('pipe.backup', sealed.stdout)], { stdin: pipe });
    assert.equal(opened.code, 2, 'usage');
    assert.match(opened.stderr, /--code, --code-file or DIP_ACCESS_CODE is required/);
  });
});

describe('dip verify-dat (issue 9.8)', () => {
  const jwksFile = file('jwks.json', JWKS);
  const now = Math.floor(Date.now() / 1000);
  const mintDat = (claims: Record<string, unknown> = {}, iat = now) => new SignJWT({ jti: 'AAAAAAAAAAAAAAAAAAAAAA', 'xv.vpn.dip.details': { ip: IP }, ...claims })
    .setProtectedHeader({ alg: 'ES256', typ: 'dat+jwt', kid: datKey.jwk.kid! })
    .setIssuer('dip-enclave').setIssuedAt(iat).setExpirationTime(iat + 259_200).sign(datKey.privateKey);

  it('a DAT of the JWKS for this IP verifies, from a JWKS file or URL', async () => {
    const dat = await mintDat();
    const fromFile = await cli(['verify-dat', dat, '--jwks', jwksFile, '--ip', IP, '--iss', 'dip-enclave', '--json']);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.deepEqual(JSON.parse(fromFile.stdout).claims, { iss: 'dip-enclave', iat: now, exp: now + 259_200, jti: 'AAAAAAAAAAAAAAAAAAAAAA', ip: IP }, 'claims');
    const fromUrl = await cli(['verify-dat', dat, '--jwks', `${URL_BASE}/v1/keys`, '--ip', IP]);
    assert.equal(fromUrl.code, 0, fromUrl.stderr);
    assert.match(fromUrl.stdout, /^DAT valid +iss dip-enclave/m);
  });

  it('another IP, another issuer, an expired or a future DAT fail with exit 1 and never print the token', async () => {
    const dat = await mintDat();
    const cases: Array<[string[], string]> = [
      [[dat, '--ip', '198.51.100.24'], 'ip_unexpected'],
      [[dat, '--ip', IP, '--iss', 'someone-else'], 'dat_invalid'],
      [[dat, '--ip', IP, '--at', String(now + 259_200 + 61)], 'dat_invalid'],
      [[dat, '--ip', IP, '--at', String(now - 61)], 'dat_invalid'],
      [[await mintDat({}, now - 259_200 - 61), '--ip', IP], 'dat_invalid'],
      [[`${dat.slice(0, -4)}AAAA`, '--ip', IP], 'dat_invalid'],
    ];
    for (const [args, code] of cases) {
      const result = await cli(['verify-dat', ...args, '--jwks', jwksFile, '--json']);
      assert.equal(result.code, 1, args.slice(1).join(' '));
      assert.equal(JSON.parse(result.stdout).error.code, code, args.slice(1).join(' '));
      assert.ok(!result.stdout.includes(args[0]!) && !result.stderr.includes(args[0]!), 'the token is not echoed');
    }
    assert.equal((await cli(['verify-dat', dat, '--jwks', jwksFile, '--ip', IP, '--at', String(now + 259_200 + 60)])).code, 0, 'up to exp + 60 s is within the skew');
    assert.equal((await cli(['verify-dat', dat, '--jwks', jwksFile, '--ip', IP, '--at', String(now - 60)])).code, 0, 'iat up to 60 s ahead is within the skew');
  });

  it('usage mistakes exit 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['verify-dat', 'x.y.z', '--ip', IP], /--jwks is required/],
      [['verify-dat', 'x.y.z', '--jwks', jwksFile], /--ip is required/],
      [['verify-dat', 'x.y.z', '--jwks', jwksFile, '--ip', '198.051.100.23'], /--ip must be an IP address in canonical form/],
      [['verify-dat', 'x.y.z', '--jwks', join(dir, 'nope.json'), '--ip', IP], /cannot read --jwks/],
      [['verify-dat', '--jwks', jwksFile, '--ip', IP], /takes 1 argument/],
    ];
    for (const [args, message] of cases) {
      const result = await cli(args);
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, message);
    }
  });
});

describe('dip assign and refresh never lose a token (issue 9.9)', () => {
  const rootFile = file('out-root.pem', nsm.rootCertificatePem);
  const srtFile = file('out-srt.jwt', `${SRT}\n`);
  const trust = ['--url', URL_BASE, '--root', rootFile, '--pcr0', pcrToHex(DEV_PCRS.pcr0), '--pcr1', pcrToHex(DEV_PCRS.pcr1), '--pcr2', pcrToHex(DEV_PCRS.pcr2)];
  const jwts = (text: string) => text.match(/ey[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g) ?? [];

  it('--json with --dat-out and --drt-out prints neither token', async () => {
    const datOut = join(dir, 'both-dat.jwt');
    const drtOut = join(dir, 'both-drt.jwt');
    const result = await cli(['assign', ...trust, '--srt', srtFile, '--ip', IP, '--dat-out', datOut, '--drt-out', drtOut, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    assert.deepEqual([report.dat, report.drt, report.datOut, report.drtOut], [undefined, undefined, datOut, drtOut], 'paths, not tokens');
    assert.deepEqual(jwts(result.stdout), [], 'no token on stdout');
    assert.match(readFileSync(datOut, 'utf8'), /^ey/, 'the DAT is in its file');
  });

  it('with only --dat-out the DRT is printed, as text and as JSON, for assign and refresh', async () => {
    const datOut = join(dir, 'only-dat.jwt');
    const text = await cli(['assign', ...trust, '--srt', srtFile, '--ip', IP, '--dat-out', datOut]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^drt +ey/m, 'the DRT is printed');
    assert.doesNotMatch(text.stdout, /^dat +ey/m, 'the DAT went to its file');
    const drt = /^drt +(\S+)$/m.exec(text.stdout)![1]!;
    const refreshed = await cli(['refresh', ...trust, '--srt', srtFile, '--drt', file('only-drt-in.jwt', drt), '--dat-out', datOut, '--json']);
    assert.equal(refreshed.code, 0, refreshed.stderr);
    assert.match(JSON.parse(refreshed.stdout).drt, /^ey/, 'refresh prints the new DRT');
  });

  it('an output path that cannot take a file is a usage error before the server is called', async () => {
    const seen = { nonces: [] as string[], paths: [] as string[] };
    for (const args of [['--drt-out', dir], ['--dat-out', join(dir, 'no/such/dir/dat')], ['--dat-out', join(dir, 'same.jwt'), '--drt-out', join(dir, 'same.jwt')]]) {
      const result = await cliWith(['assign', ...trust, '--srt', srtFile, '--ip', IP, ...args, '--json'], { fetch: fakeParent({}, seen) });
      assert.equal(result.code, 2, args.join(' '));
      assert.equal(JSON.parse(result.stdout).error.code, 'usage', args.join(' '));
    }
    assert.deepEqual(seen.paths, [], 'the parent was never called');
  });

  it('a file that fails after the enclave issued the tokens: the DRT is printed and the exit is 1', async () => {
    const drtOut = join(dir, 'late-failure.jwt');
    const datOut = join(dir, 'late-dat.jwt');
    const parent = fakeParent();
    const fetch: Fetch = (input, init) => {
      // The path was writable when checked; by the time the tokens arrive it is a directory.
      if (String(input).endsWith('/v1/dip/assign')) mkdirSync(drtOut);
      return parent(input as string, init);
    };
    const result = await cliWith(['assign', ...trust, '--srt', srtFile, '--ip', IP, '--dat-out', datOut, '--drt-out', drtOut, '--json'], { fetch });
    assert.equal(result.code, 1, 'the command failed');
    const report = JSON.parse(result.stdout);
    assert.equal(report.ok, false, 'not ok');
    assert.equal(report.error.code, 'output_failed', 'output_failed');
    assert.match(report.drt, /^ey/, 'the DRT is in the report');
    assert.equal(report.dat, undefined, 'the DAT went to its file');
    assert.match(result.stderr, /cannot write --drt-out/);
    assert.ok(existsSync(datOut), 'the DAT file was written');
  });
});

describe('dip jwks: a VPN server takes its JWKS from a verified attestation with a pinned m_commit (issue 10)', () => {
  const rootFile = file('jwks-root.pem', nsm.rootCertificatePem);
  const trust = ['--url', URL_BASE, '--root', rootFile, '--pcr0', pcrToHex(DEV_PCRS.pcr0), '--pcr1', pcrToHex(DEV_PCRS.pcr1), '--pcr2', pcrToHex(DEV_PCRS.pcr2)];
  const hexCommit = Buffer.from(M_COMMIT).toString('hex');
  const b64Commit = Buffer.from(M_COMMIT).toString('base64url');
  const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

  it('writes the exact JWKS bytes the document binds (mode 644) when m_commit matches, as hex or base64url', async () => {
    for (const pin of [hexCommit, b64Commit]) {
      const out = join(dir, `vpn-${pin.length}.jwks.json`);
      const result = await cli(['jwks', ...trust, '--m-commit', pin, '--out', out]);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(new Uint8Array(readFileSync(out)), JWKS, 'the file holds the attested JWKS bytes verbatim');
      assert.equal(statSync(out).mode & 0o777, 0o644, 'the JWKS is public: mode 644');
      assert.ok(result.stdout.includes(`sha256 ${sha256(JWKS)}`), 'the text report names the JWKS hash');
      assert.ok(result.stdout.includes(`m_commit ${hexCommit}`), 'the text report names the pinned m_commit');
    }
  });

  it('without --out prints the JWKS; --json is one object with the JWKS, its hash and the pin', async () => {
    const text = await cli(['jwks', ...trust, '--m-commit', hexCommit]);
    assert.equal(text.code, 0, text.stderr);
    assert.equal(text.stdout, `${Buffer.from(JWKS).toString('utf8')}\n`, 'stdout is the JWKS');
    const json = await cli(['jwks', ...trust, '--m-commit', hexCommit, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout);
    assert.deepEqual(report.jwks, JSON.parse(Buffer.from(JWKS).toString('utf8')), 'the JWKS');
    assert.equal(report.jwksSha256, sha256(JWKS), 'its hash');
    assert.equal(report.mCommit, hexCommit, 'the pin');
    assert.deepEqual(report.datKeys, [datKey.jwk.kid], 'the DAT kids');
  });

  it('an enclave naming another m_commit: exit 1, attestation_failed (m_commit_mismatch), nothing written', async () => {
    const out = join(dir, 'refused.jwks.json');
    const other = new Uint8Array(32).fill(0x6d);
    other[0] = 0x6c;
    const result = await cli(['jwks', ...trust, '--m-commit', hexCommit, '--out', out, '--json'], { mCommit: other });
    assert.equal(result.code, 1, 'a failed check exits 1');
    const report = JSON.parse(result.stdout);
    assert.equal(report.error.code, 'attestation_failed', 'the code');
    assert.equal(report.error.detail, 'm_commit_mismatch', 'the detail');
    assert.match(report.error.hint, /another master secret/, 'the hint says what it means');
    assert.ok(!existsSync(out), 'no JWKS was written');
    const text = await cli(['jwks', ...trust, '--m-commit', hexCommit], { mCommit: other });
    assert.equal(text.stdout, '', 'no JWKS was printed');
    assert.match(text.stderr, /attestation_failed \(m_commit_mismatch\)/, 'stderr names the failed check');
  });

  it('a JWKS other than the one the document binds: exit 1, jwks_mismatch, nothing written', async () => {
    const out = join(dir, 'mismatch.jwks.json');
    const result = await cli(['jwks', ...trust, '--m-commit', hexCommit, '--out', out], { servedJwks: new TextEncoder().encode('{"keys":[]}') });
    assert.equal(result.code, 1, 'a failed check exits 1');
    assert.match(result.stderr, /jwks_mismatch/, 'names the check');
    assert.ok(!existsSync(out), 'no JWKS was written');
  });

  it('DIP_M_COMMIT stands in for --m-commit, with --dev too; the flag wins', async () => {
    const devDir = join(dir, 'jwks-dev');
    mkdirSync(devDir, { recursive: true });
    writeFileSync(join(devDir, 'nsm-root.pem'), nsm.rootCertificatePem);
    const fromEnv = await cliWith(['jwks', '--url', URL_BASE, '--dev', '--dev-dir', devDir], { env: { DIP_M_COMMIT: b64Commit } });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    const flagWins = await cliWith(['jwks', ...trust, '--m-commit', '00'.repeat(32)], { env: { DIP_M_COMMIT: hexCommit } });
    assert.equal(flagWins.code, 1, 'the flag, not the variable, was pinned');
    const badEnv = await cliWith(['jwks', ...trust], { env: { DIP_M_COMMIT: 'zz' } });
    assert.equal(badEnv.code, 2, 'a bad variable is a usage mistake');
    assert.match(badEnv.stderr, /DIP_M_COMMIT \(--m-commit\)/, 'the message names the variable');
  });

  it('usage mistakes exit 2 before the parent is called: no pin, a pin of 31 or 33 bytes, an unwritable --out', async () => {
    const seen = { nonces: [] as string[], paths: [] as string[] };
    const cases: Array<[string[], RegExp]> = [
      [['jwks', ...trust], /--m-commit is required/],
      [['jwks', ...trust, '--m-commit', '00'.repeat(31)], /--m-commit must be 32 bytes/],
      [['jwks', ...trust, '--m-commit', '00'.repeat(33)], /--m-commit must be 32 bytes/],
      [['jwks', ...trust, '--m-commit', b64Commit.slice(1)], /--m-commit must be 32 bytes/],
      [['jwks', ...trust, '--m-commit', `${b64Commit}A`], /--m-commit must be 32 bytes/],
      [['jwks', ...trust, '--m-commit', hexCommit, '--out', join(dir, 'no-such-dir', 'x.json')], /cannot write --out/],
      [['jwks', '--url', URL_BASE, '--m-commit', hexCommit], /--manifest FILE or --pcr0/],
    ];
    for (const [args, message] of cases) {
      const result = await cliWith(args, { fetch: fakeParent({}, seen) });
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, message, args.join(' '));
    }
    assert.equal(seen.paths.length, 0, 'the parent was never called');
  });
});

