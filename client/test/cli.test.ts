import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { runDip } from '../../test/support/dip-cli.js';
import { exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { main, type CliIo } from '../cli.js';
import { DEV_PCRS, pcrToHex } from '../manifest.js';
import { IP, JWKS, SRT, URL_BASE, fakeParent, nsm, srtFor, type Tamper } from './fake-parent.js';

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

const COMMANDS = ['verify-attestation', 'attest', 'assign', 'refresh', 'backup seal', 'backup open', 'dev-srt'];

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
    assert.deepEqual(JSON.parse(bad.stdout).error, { code: 'attestation_failed', message: 'The attestation document did not verify.', fromServer: false, detail: 'pcr_mismatch' });
  });

  it('an empty manifest is the clear "no Docker build has run" error', async () => {
    const result = await cli(['verify-attestation', VECTOR, '--at', AT, '--manifest', file('empty.json', '{"PCR0": null}')]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /manifest has no PCR values yet \(no Docker build has run\)/);
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
      [['verify-attestation'], /file argument/],
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
    assert.equal(report.reservedUntil, report.drtClaims.exp);
    assert.equal(report.drtClaims.sub, undefined, 'the subscription id is not echoed');
    assert.notEqual(readFileSync(drtFile, 'utf8'), firstDrt);
    assert.equal(readFileSync(drtFile, 'utf8').trim(), report.drt);
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
      [['attest', '--pcr0', 'ab'], /--url is required/],
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
  const drtFile = file('backup-drt.jwt', 'header.payload.signature\n');

  it('seal then open on a "second device" gives back the DRT; a wrong code exits 1 with backup_wrong_code', async () => {
    const backupFile = join(dir, 'drt.backup');
    const sealed = await cli(['backup', 'seal', '--drt', drtFile, '--code', 'blue-harbor-42', '--out', backupFile]);
    assert.equal(sealed.code, 0, sealed.stderr);
    assert.match(readFileSync(backupFile, 'utf8'), /^dipb1\./);
    const opened = await cli(['backup', 'open', backupFile, '--code-file', file('code.txt', 'blue-harbor-42\n')]);
    assert.equal(opened.code, 0, opened.stderr);
    assert.equal(opened.stdout, 'header.payload.signature\n');
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
    assert.equal(readFileSync(join(dir, 'restored.jwt'), 'utf8'), 'header.payload.signature\n');
    const asJson = await cli(['backup', 'seal', '--drt', drtFile, '--json']);
    const report = JSON.parse(asJson.stdout);
    assert.match(report.backup, /^dipb1\./);
    assert.match(report.accessCode, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){4}$/);
    const back = await cli(['backup', 'open', file('j.backup', report.backup), '--code', report.accessCode, '--json']);
    assert.equal(JSON.parse(back.stdout).drt, 'header.payload.signature');
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
