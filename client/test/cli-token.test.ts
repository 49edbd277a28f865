import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { encodePaddedBase64url } from '../../protocol/privacypass-http.js';
import { TokenChallenge } from '../../protocol/privacypass.js';
import { main, type CliIo } from '../cli.js';
import type { Fetch } from '../http.js';
import { parseTokenKeys, pinnedChallenge, verifySavedToken } from '../privacy-pass.js';
import { ISSUER_NAME, ISSUER_URL, OTHER_KEY, SRT, fakeIssuer, tokenKeysJson, type IssuerTamper } from './fake-issuer.js';

const dir = mkdtempSync(join(tmpdir(), 'dip-token-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const keysFile = file('token-keys.json', tokenKeysJson());
const srtFile = file('srt.jwt', `${SRT}\n`);
mkdirSync(join(dir, 'devstate'));
writeFileSync(join(dir, 'devstate', 'token-keys.json'), tokenKeysJson());
const config = parseTokenKeys(tokenKeysJson());

async function cli(args: string[], options: { tamper?: IssuerTamper; fetch?: Fetch } = {}) {
  const issuer = fakeIssuer(options.tamper);
  let stdout = '';
  let stderr = '';
  const io: CliIo = { out: (t) => void (stdout += t), err: (t) => void (stderr += t), cwd: dir, env: {}, fetch: options.fetch ?? issuer.fetch };
  const code = await main(args, io);
  return { code, stdout, stderr, calls: issuer.calls };
}

/** One JSON object on stdout, nothing else. */
function oneJson(stdout: string): Record<string, unknown> {
  const value = JSON.parse(stdout) as unknown;
  assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value), 'stdout is exactly one JSON object');
  return value as Record<string, unknown>;
}

const get = (out: string, ...rest: string[]) => ['token', 'get', '--issuer', ISSUER_URL, '--srt', srtFile, '--out', out, ...rest];

describe('dip token get', () => {
  it('writes a token valid under the pinned key, mode 600, and reports where without printing it', async () => {
    const out = join(dir, 'token.txt');
    const result = await cli(get(out, '--token-keys', keysFile));
    assert.equal(result.code, 0, `exit 0 (${result.stderr})`);
    const saved = readFileSync(out, 'utf8');
    assert.ok(saved.endsWith('\n'), 'one line');
    assert.doesNotThrow(() => verifySavedToken(saved.trim(), config), 'the saved token verifies under the pin');
    assert.equal(statSync(out).mode & 0o777, 0o600, 'owner-only');
    assert.ok(!result.stdout.includes(saved.trim()), 'the token is not printed when written');
    assert.match(result.stdout, /redeem after/, 'says when to redeem');
  });

  it('with --json prints one object with the file and a redemption time 1–24 h ahead', async () => {
    const out = join(dir, 'token-json.txt');
    const before = Math.floor(Date.now() / 1000);
    const result = await cli(get(out, '--token-keys', keysFile, '--json'));
    assert.equal(result.code, 0, 'exit 0');
    const report = oneJson(result.stdout);
    assert.equal(report['ok'], true, 'ok');
    assert.equal(report['out'], out, 'names the file');
    assert.equal(report['token'], undefined, 'no token in the report when written');
    const delay = report['redemptionDelaySeconds'] as number;
    assert.ok(delay >= 3600 && delay <= 86_400, 'delay within 1–24 h');
    assert.ok((report['redeemAfter'] as number) >= before + 3600, 'redeem after at least an hour');
  });

  it('with --dev reads DIR/token-keys.json and sets no redemption delay', async () => {
    const out = join(dir, 'token-dev.txt');
    const result = await cli(get(out, '--dev', '--dev-dir', 'devstate', '--json'));
    assert.equal(result.code, 0, `exit 0 (${result.stderr})`);
    assert.equal(oneJson(result.stdout)['redemptionDelaySeconds'], 0, 'no delay in development');
    const missing = await cli(get(out, '--dev', '--dev-dir', 'nowhere'));
    assert.equal(missing.code, 2, 'no development token-keys.json: usage');
    assert.match(missing.stderr, /make dev/, 'says how to get one');
  });

  const usageCases: [string, string[]][] = [
    ['no --out', ['token', 'get', '--issuer', ISSUER_URL, '--srt', srtFile, '--token-keys', keysFile]],
    ['no --issuer', ['token', 'get', '--srt', srtFile, '--out', 'x.txt', '--token-keys', keysFile]],
    ['an --issuer that is not http(s)', ['token', 'get', '--issuer', 'ftp://issuer', '--srt', srtFile, '--out', 'x.txt', '--token-keys', keysFile]],
    ['neither --token-keys nor --dev', get('x.txt')],
    ['both --token-keys and --dev', get('x.txt', '--token-keys', keysFile, '--dev')],
    ['an --out in a missing directory', get(join(dir, 'missing', 't.txt'), '--token-keys', keysFile)],
    ['an --out that is a directory', get(dir, '--token-keys', keysFile)],
    ['an unreadable --srt', ['token', 'get', '--issuer', ISSUER_URL, '--srt', 'nope.jwt', '--out', 'x.txt', '--token-keys', keysFile]],
    ['a positional argument', [...get('x.txt', '--token-keys', keysFile), 'extra']],
  ];
  for (const [name, args] of usageCases) {
    it(`exits 2 on ${name}, with one JSON object and no request sent`, async () => {
      const result = await cli([...args, '--json']);
      assert.equal(result.code, 2, 'usage');
      const report = oneJson(result.stdout);
      assert.equal((report['error'] as { code: string }).code, 'usage', 'error code usage');
      assert.equal(result.calls.length, 0, 'nothing reached the issuer');
    });
  }

  it('exits 1 with the issuer\'s SPEC code when it refuses, and writes nothing', async () => {
    const out = join(dir, 'refused.txt');
    const result = await cli(get(out, '--token-keys', keysFile, '--json'), { tamper: { refuse: { status: 409, code: 'already_issued' } } });
    assert.equal(result.code, 1, 'exit 1');
    const error = oneJson(result.stdout)['error'] as { code: string; fromServer: boolean };
    assert.equal(error.code, 'already_issued', 'the SPEC code');
    assert.equal(error.fromServer, true, 'from the server');
    assert.throws(() => statSync(out), 'no file written');
  });

  it('exits 1 on a directory with an unpinned key, before sending the SRT', async () => {
    const result = await cli(get(join(dir, 'u.txt'), '--token-keys', keysFile), { tamper: { keys: [{ tokenType: 2, tokenKey: OTHER_KEY.spki }] } });
    assert.equal(result.code, 1, 'exit 1');
    assert.match(result.stderr, /issuer_key_unpinned/, 'names the refusal');
    assert.ok(!result.stderr.includes(SRT), 'the SRT is not echoed');
    assert.equal(result.calls.filter((c) => c.method === 'POST').length, 0, 'no TokenRequest');
  });

  it('exits 1 on a malformed token-keys.json', async () => {
    const result = await cli(get(join(dir, 'm.txt'), '--token-keys', file('bad-keys.json', '{"issuer_name":"x"}'), '--json'));
    assert.equal(result.code, 1, 'exit 1');
    assert.equal((oneJson(result.stdout)['error'] as { code: string }).code, 'token_keys_invalid', 'token_keys_invalid');
  });

  it('never loses an issued token: when --out fails after issuance it is printed, exit 1', async () => {
    const gone = join(dir, 'vanishing');
    mkdirSync(gone);
    const issuer = fakeIssuer();
    // The directory passes the early check, then disappears while the issuer answers.
    const fetch: Fetch = async (input, init) => {
      if (init?.method === 'POST') rmSync(gone, { recursive: true, force: true });
      return issuer.fetch(input, init);
    };
    for (const json of [false, true]) {
      mkdirSync(gone, { recursive: true });
      const result = await cli(get(join(gone, 't.txt'), '--token-keys', keysFile, ...(json ? ['--json'] : [])), { fetch });
      assert.equal(result.code, 1, 'exit 1');
      const token = json
        ? (oneJson(result.stdout) as { token: string; error: { code: string } })
        : { token: /token\s+([A-Za-z0-9_=-]+)/.exec(result.stdout)?.[1] ?? '', error: { code: 'output_failed' } };
      assert.equal(token.error.code, 'output_failed', 'says the output failed');
      assert.doesNotThrow(() => verifySavedToken(token.token, config), 'the printed token is the valid one');
      assert.match(result.stderr, /keep it/, 'tells the user to keep it');
    }
  });
});

describe('dip token verify', () => {
  const issued = async () => {
    const out = join(dir, 'to-verify.txt');
    assert.equal((await cli(get(out, '--token-keys', keysFile))).code, 0, 'token issued');
    return out;
  };

  it('accepts a saved token under the pinned keys and the pinned challenge', async () => {
    const out = await issued();
    const result = await cli(['token', 'verify', out, '--token-keys', keysFile]);
    assert.equal(result.code, 0, `exit 0 (${result.stderr})`);
    assert.match(result.stdout, /token valid/, 'says valid');
    const asJson = await cli(['token', 'verify', out, '--token-keys', keysFile, '--json']);
    assert.equal(oneJson(asJson.stdout)['ok'], true, 'one JSON object, ok');
  });

  it('checks a --challenge given in padded base64url, and refuses it unpadded', async () => {
    const out = await issued();
    const padded = encodePaddedBase64url(pinnedChallenge(config).encode());
    assert.match(padded, /=$/, 'this challenge needs padding');
    assert.equal((await cli(['token', 'verify', out, '--token-keys', keysFile, '--challenge', padded])).code, 0, 'the pinned challenge, padded');
    assert.equal((await cli(['token', 'verify', out, '--token-keys', keysFile, '--challenge', padded.replace(/=+$/, '')])).code, 2, 'unpadded is a usage mistake');
    const other = encodePaddedBase64url(new TokenChallenge({ issuerName: ISSUER_NAME, redemptionContext: new Uint8Array(0), originInfo: 'other.example' }).encode());
    const refused = await cli(['token', 'verify', out, '--token-keys', keysFile, '--challenge', other, '--json']);
    assert.equal(refused.code, 1, 'another challenge: exit 1');
    assert.equal((oneJson(refused.stdout)['error'] as { detail: string }).detail, 'signature', 'the signature does not cover it');
  });

  it('exits 1 with token_invalid for an altered token or one under an unpinned key', async () => {
    const out = await issued();
    const text = readFileSync(out, 'utf8').trim();
    const altered = file('altered.txt', `${text.slice(0, -8)}${text.slice(-8) === 'AAAAAAAA' ? 'BBBBBBBB' : 'AAAAAAAA'}\n`);
    const result = await cli(['token', 'verify', altered, '--token-keys', keysFile, '--json']);
    assert.equal(result.code, 1, 'exit 1');
    assert.equal((oneJson(result.stdout)['error'] as { code: string }).code, 'token_invalid', 'token_invalid');
    const otherKeys = file('other-keys.json', tokenKeysJson({ keys: [{ tokenType: 2, tokenKey: OTHER_KEY.spki }] }));
    assert.equal((await cli(['token', 'verify', out, '--token-keys', otherKeys])).code, 1, 'unpinned key: exit 1');
  });

  it('exits 2 without FILE or with an unreadable one', async () => {
    assert.equal((await cli(['token', 'verify', '--token-keys', keysFile])).code, 2, 'no FILE');
    assert.equal((await cli(['token', 'verify', 'nope.txt', '--token-keys', keysFile])).code, 2, 'unreadable FILE');
  });
});

describe('dip token (the group)', () => {
  it('has --help for the group and each command, and exits 2 without a subcommand', async () => {
    assert.equal((await cli(['token', '--help'])).code, 0, 'dip token --help');
    assert.match((await cli(['token', 'get', '--help'])).stdout, /--token-keys FILE/, 'dip token get --help names its options');
    assert.match((await cli(['token', 'verify', '--help'])).stdout, /--challenge B64/, 'dip token verify --help names its options');
    assert.equal((await cli(['token'])).code, 2, 'no subcommand');
    assert.equal((await cli(['token', 'spend'])).code, 2, 'unknown subcommand');
    assert.match((await cli(['--help'])).stdout, /token get/, 'the top help lists token get');
  });
});
