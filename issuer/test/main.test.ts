// The issuer as a process (issuer/main.ts): a key file others can read stops it with a coded
// error; --dev makes its key once and writes token-keys.json (SPEC §8); two processes on one
// PostgreSQL issue one token per (sub, did); and neither their output nor the database holds an
// SRT, a token or a time finer than a day next to a (sub, did).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decodeIssuerDirectory } from '../../protocol/privacypass-http.js';
import { verifyToken } from '../../protocol/privacypass-issuance.js';
import { createSchema, postgresSkipReason, POSTGRES_URL } from '../../store/test/support.js';
import { assertNoLeak, type Secret } from '../../test/support/secrets.js';
import { encodeKeyFile, parseKeyFile } from '../key-file.js';
import { appRequest, CHALLENGE, createIssuerKey, createSrtIssuer, errorCodeOf, postTokenRequest } from './support.js';

const MAIN = fileURLToPath(new URL('../main.ts', import.meta.url));
const dirs: string[] = [];
after(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'issuer-test-'));
  dirs.push(dir);
  return dir;
}

interface IssuerProcess {
  url: string;
  output(): string;
  stop(): Promise<number>;
}

/** Starts issuer/main.ts; resolves when it listens, or with its exit code and output when it stops first. */
function runIssuer(args: string[]): Promise<IssuerProcess | { code: number; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<number>((resolve) => child.once('close', (code) => resolve(code ?? 1)));
  return new Promise((resolve) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      const match = /"event":"listening","port":(\d+)/.exec(output);
      if (match !== null) {
        resolve({
          url: `http://127.0.0.1:${match[1]}`,
          output: () => output,
          stop: () => (child.kill('SIGTERM'), exited),
        });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then((code) => resolve({ code, output }));
  });
}

/** These processes read the real clock: their keys begin today. */
function todayStart(): number {
  return Math.floor(Date.now() / 86_400_000) * 86_400;
}

function isRunning(value: IssuerProcess | { code: number; output: string }): value is IssuerProcess {
  return 'url' in value;
}

test('a key file others may read stops the issuer with key_file_mode, and a missing one with key_file_missing', async () => {
  const dir = tempDir();
  const srtIssuer = createSrtIssuer();
  writeFileSync(join(dir, 'srt-issuer.json'), JSON.stringify(srtIssuer.devIssuer));
  const keyFile = join(dir, 'keys.json');
  const common = ['--srt-jwks', join(dir, 'jwks.json'), '--srt-issuer', 'https://subscriptions.test', '--data-dir', join(dir, 'db')];
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...srtIssuer.devIssuer.jwk, d: undefined }] }));
  const missing = await runIssuer(['--key-file', keyFile, ...common]);
  if (isRunning(missing)) await missing.stop();
  assert.ok(!isRunning(missing) && missing.code === 1, 'a missing key file: exit 1');
  assert.match((missing as { output: string }).output, /"code":"key_file_missing"/, 'coded key_file_missing');
  const key = createIssuerKey(todayStart());
  writeFileSync(keyFile, encodeKeyFile([key]), { mode: 0o644 });
  chmodSync(keyFile, 0o644);
  const open = await runIssuer(['--key-file', keyFile, ...common]);
  if (isRunning(open)) await open.stop();
  assert.ok(!isRunning(open) && open.code === 1, 'mode 0644: exit 1');
  assert.match((open as { output: string }).output, /"code":"key_file_mode"/, 'coded key_file_mode');
  chmodSync(keyFile, 0o600);
  const started = await runIssuer(['--key-file', keyFile, ...common]);
  assert.ok(isRunning(started), `mode 0600 starts: ${isRunning(started) ? '' : started.output}`);
  assert.equal(await started.stop(), 0, 'stops cleanly on SIGTERM');
});

test('--dev creates its key once (mode 0600), serves its directory and writes token-keys.json as SPEC §8 says', async () => {
  const dir = tempDir();
  const srtIssuer = createSrtIssuer();
  writeFileSync(join(dir, 'srt-issuer.json'), JSON.stringify(srtIssuer.devIssuer));
  const first = await runIssuer(['--dev', '--state-dir', dir]);
  assert.ok(isRunning(first), 'started');
  const directory = decodeIssuerDirectory(await (await fetch(`${first.url}/.well-known/private-token-issuer-directory`)).text());
  assert.equal(await first.stop(), 0, 'stopped');
  assert.equal(statSync(join(dir, 'issuer-keys.json')).mode & 0o777, 0o600, 'the key file is mode 0600');
  const [key] = parseKeyFile(readFileSync(join(dir, 'issuer-keys.json'), 'utf8'));
  assert.equal(key!.notBefore % 86_400, 0, 'not-before is the start of a day');
  assert.deepEqual(directory.tokenKeys.map((k) => Buffer.from(k.tokenKey).toString('hex')), [Buffer.from(key!.tokenKey.spki).toString('hex')], 'the directory lists the key');
  const pinned = JSON.parse(readFileSync(join(dir, 'token-keys.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(pinned).sort(), ['issuer_name', 'origin_info', 'token-keys'], 'SPEC §8 members');
  assert.equal(pinned.issuer_name, '127.0.0.1:8082', 'issuer_name');
  assert.equal(pinned.origin_info, '127.0.0.1:8081', 'origin_info');
  assert.deepEqual(decodeIssuerDirectory(JSON.stringify({ 'issuer-request-uri': '/', 'token-keys': pinned['token-keys'] })).tokenKeys, directory.tokenKeys, 'the pinned keys are the directory entries');
  const second = await runIssuer(['--dev', '--state-dir', dir]);
  assert.ok(isRunning(second), 'restarted');
  await second.stop();
  assert.equal(parseKeyFile(readFileSync(join(dir, 'issuer-keys.json'), 'utf8')).length, 1, 'a restart keeps the key');
});

test('two issuer processes on one PostgreSQL: 50 concurrent requests for one (sub, did) give one TokenResponse and 49 already_issued; output and database hold no SRT, token or time', async (t) => {
  const skip = await postgresSkipReason();
  if (skip !== null) return t.skip(skip);
  const dir = tempDir();
  const srtIssuer = createSrtIssuer();
  writeFileSync(join(dir, 'srt-issuer.json'), JSON.stringify(srtIssuer.devIssuer));
  const key = createIssuerKey(todayStart());
  writeFileSync(join(dir, 'issuer-keys.json'), encodeKeyFile([key]), { mode: 0o600 });
  const { schema, drop } = await createSchema();
  const args = ['--dev', '--state-dir', dir, '--database-url', POSTGRES_URL, '--database-schema', schema];
  // One process first, so that one migrates; the second finds the schema up to date.
  const one = await runIssuer(args);
  const two = await runIssuer(args);
  try {
    assert.ok(isRunning(one) && isRunning(two), 'both started');
    const now = Math.floor(Date.now() / 1000);
    const sub = 'subscription-7f3a9c21-two-processes';
    const srt = srtIssuer.mint({ sub, iat: now - 10, exp: now + 3600 });
    const apps = Array.from({ length: 50 }, () => appRequest(key));
    const answers = await Promise.all(apps.map((app, i) => postTokenRequest((i % 2 === 0 ? one : two).url, srt, app.body)));
    const issued = answers.findIndex((a) => a.status === 200);
    assert.equal(answers.filter((a) => a.status === 200).length, 1, 'exactly one TokenResponse');
    assert.equal(answers.filter((a) => a.status === 409 && errorCodeOf(a.body) === 'already_issued').length, 49, '49 already_issued');
    const token = apps[issued]!.finalize(answers[issued]!.body);
    verifyToken(token, key.tokenKey, CHALLENGE);

    const secrets: Secret[] = [
      { what: 'SRT', value: srt },
      { what: 'token', value: token.encode() },
      { what: 'token nonce', value: token.nonce },
      { what: 'token authenticator', value: token.authenticator },
    ];
    await one.stop();
    await two.stop();
    const output = one.output() + two.output();
    assertNoLeak(output, [...secrets, { what: 'subscription id', value: sub, hashed: true }], 'the issuers\' output');

    const pg = (await import('pg')).default;
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 1, options: `-c search_path=${schema}` });
    try {
      const rows = (await pool.query('SELECT * FROM token_issuance')).rows as Record<string, unknown>[];
      assert.equal(rows.length, 1, 'one record');
      const dump = JSON.stringify(rows, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('hex') : v));
      assertNoLeak(dump, secrets, 'the issuance record');
      assert.deepEqual(Object.keys(rows[0]!).sort(), ['did', 'sub', 'token_request_sha256', 'token_response'], 'no other column next to (sub, did)');
      const typed = await pool.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND (data_type LIKE 'time%' OR data_type = 'date' OR data_type = 'interval')",
        [schema],
      );
      assert.deepEqual(typed.rows, [], 'no time column anywhere in the issuer\'s schema');
    } finally {
      await pool.end();
    }
  } finally {
    if (isRunning(one)) await one.stop();
    if (isRunning(two)) await two.stop();
    await drop();
  }
});
