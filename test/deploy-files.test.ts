// The operator's files, checked as far as a machine without Nitro or a Docker engine can (issue
// 5.5): the systemd units parse, allocator.yaml holds what the enclave asks for, the scripts are
// valid shell, the Makefile's targets exist and print their commands, and Dockerfile.enclave keeps
// its promises (pinned bases, lockfile install, FROM scratch, explicit absolute CMD).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const read = (p: string): string => readFileSync(join(ROOT, p), 'utf8');

type Unit = Map<string, Map<string, string[]>>;

/** systemd.syntax(7): [Section] headers, Key=Value lines, # and ; comments, repeated keys kept. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | null = null;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      assert.ok(!unit.has(header[1]!), `duplicate section [${header[1]}]`);
      section = new Map();
      unit.set(header[1]!, section);
      return;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    assert.ok(kv && section, `line ${i + 1} is neither a section nor Key=Value: ${raw}`);
    section.set(kv[1]!, [...(section.get(kv[1]!) ?? []), kv[2]!]);
  });
  return unit;
}

function env(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of read(path).split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

test('the systemd units parse, restart what dies, and start what the docs say', () => {
  for (const name of ['dip-enclave.service', 'dip-parent.service']) {
    const unit = parseUnit(read(`deploy/${name}`));
    assert.deepEqual([...unit.keys()], ['Unit', 'Service', 'Install'], name);
    const service = unit.get('Service')!;
    assert.equal(service.get('Restart')?.[0], 'always', name);
    const exec = service.get('ExecStart')!;
    assert.equal(exec.length, 1, name);
    assert.match(exec[0]!, /^\//, `${name}: ExecStart is an absolute path`);
    assert.equal(unit.get('Install')!.get('WantedBy')?.[0], 'multi-user.target');
  }
  const enclave = parseUnit(read('deploy/dip-enclave.service'));
  assert.equal(enclave.get('Service')!.get('ExecStart')![0], '/opt/dip/deploy/run-enclave.sh');
  assert.equal(enclave.get('Unit')!.get('Requires')![0], 'nitro-enclaves-allocator.service');
  const parent = parseUnit(read('deploy/dip-parent.service'));
  assert.equal(parent.get('Service')!.get('ExecStart')![0], '/usr/bin/node --max-semi-space-size=8 /opt/dip/dist/parent/parent.mjs');
  assert.match(parent.get('Service')!.get('RestrictAddressFamilies')![0]!, /AF_VSOCK/);
  assert.equal(parent.get('Service')!.get('User')![0], 'dip');
});

test('systemd-analyze verify finds nothing wrong beyond what exists only on a Nitro host', (t) => {
  const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    t.skip('systemd-analyze is not installed here');
    return;
  }
  for (const name of ['dip-enclave.service', 'dip-parent.service']) {
    const result = spawnSync('systemd-analyze', ['verify', '--man=no', join(ROOT, 'deploy', name)], { encoding: 'utf8' });
    const complaints = `${result.stdout}${result.stderr}`
      .split('\n')
      .filter((l) => l.trim() !== '')
      .filter((l) => !/nitro-enclaves-allocator\.service not found|\/usr\/bin\/nitro-cli is not executable|\/opt\/dip\/deploy\/run-enclave\.sh is not executable/.test(l));
    assert.deepEqual(complaints, [], name);
  }
});

test('allocator.yaml reserves at least what the enclave asks for, for two enclaves during an upgrade', () => {
  const yaml = read('deploy/allocator.yaml');
  const value = (key: string): number => Number(new RegExp(`^${key}:\\s*(\\d+)\\s*$`, 'm').exec(yaml)?.[1]);
  const settings = env('deploy/enclave.env');
  assert.ok(value('memory_mib') >= 2 * Number(settings['ENCLAVE_MEMORY_MIB']), 'the allocator holds twice the enclave memory');
  assert.ok(value('cpu_count') >= 2 * Number(settings['ENCLAVE_CPUS']), 'the allocator holds twice the enclave CPUs');
  assert.ok(Number(settings['ENCLAVE_MEMORY_MIB']) >= 512, 'at least 512 MiB for the enclave');
  assert.ok(Number(settings['ENCLAVE_CID']) >= 4, 'CIDs 0..3 are reserved');
  assert.equal(env('deploy/parent.env')['DIP_PARENT_ENCLAVE'], `vsock:${settings['ENCLAVE_CID']}:5000`);
});

test('run-enclave.sh is valid bash, executable, never uses --debug-mode, and exits when the enclave is gone', (t) => {
  const script = join(ROOT, 'deploy/run-enclave.sh');
  assert.equal(spawnSync('bash', ['-n', script]).status, 0);
  assert.ok((statSync(script).mode & 0o111) !== 0, 'the script is executable');
  assert.doesNotMatch(read('deploy/run-enclave.sh').replace(/^#.*$/gm, ''), /--debug-mode/);
  // A stand-in nitro-cli: run-enclave succeeds, describe-enclaves says nothing runs.
  const dir = execFileSync('mktemp', ['-d']).toString().trim();
  t.after(() => execFileSync('rm', ['-rf', dir]));
  const fake = join(dir, 'nitro-cli');
  execFileSync('sh', ['-c', `printf '#!/bin/sh\\necho "$@" >> ${dir}/calls\\n[ "$1" = describe-enclaves ] && echo "[]"\\nexit 0\\n' > ${fake} && chmod +x ${fake}`]);
  const run = spawnSync('bash', [script], {
    env: { ...env('deploy/enclave.env'), PATH: process.env['PATH'] ?? '', NITRO_CLI: fake, POLL_SECONDS: '0' },
    encoding: 'utf8',
  });
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stderr, /no longer running/);
  const calls = readFileSync(join(dir, 'calls'), 'utf8');
  assert.match(calls, /^run-enclave --enclave-name dip-enclave --eif-path \/opt\/dip\/build\/eif\/dip-enclave\.eif --cpu-count 2 --memory 1024 --enclave-cid 16$/m);
});

test("the Makefile's Nitro targets exist and print their commands with make -n", () => {
  const make = (...args: string[]): string => execFileSync('make', ['-n', '--no-print-directory', ...args], { cwd: ROOT, encoding: 'utf8' });
  assert.match(make('bundle'), /npx tsx scripts\/build-bundle\.ts/);
  const eif = make('eif');
  assert.match(eif, /docker buildx build --file Dockerfile\.enclave .*--build-arg SOURCE_DATE_EPOCH=\d+ --output type=docker,name=dip-enclave:[0-9a-f]{40},rewrite-timestamp=true \./);
  assert.match(eif, /build-enclave --docker-uri dip-enclave:[0-9a-f]{40} --output-file \/out\/dip-enclave\.eif > build\/eif\/measurements\.json/);
  assert.match(make('pcr-manifest'), /scripts\/pcr-manifest\.ts write/);
  // Issue 14: verify-pcrs needs no Docker; the Docker path is verify-pcrs-docker; eif-native builds without it.
  const verify = make('verify-pcrs');
  assert.match(verify, /^npx tsx scripts\/pcr-manifest\.ts verify *$/m);
  assert.doesNotMatch(verify, /docker|measurements/);
  assert.match(make('verify-pcrs', 'BLOBS=/usr/share/nitro_enclaves/blobs'), /scripts\/pcr-manifest\.ts verify --blobs \/usr\/share\/nitro_enclaves\/blobs/);
  assert.match(make('verify-pcrs-docker'), /scripts\/pcr-manifest\.ts verify +--measurements build\/eif\/measurements\.json --eif build\/eif\/dip-enclave\.eif/);
  const native = make('eif-native', 'BLOBS=/b');
  assert.match(native, /^npx tsx scripts\/eif-cli\.ts build --out build\/eif --blobs \/b$/m);
  assert.doesNotMatch(native, /docker/);
  assert.match(make('describe-eif', 'EIF=x.eif'), /scripts\/eif-cli\.ts describe x\.eif/);
  assert.match(make('run-enclave'), /^nitro-cli run-enclave --enclave-name dip-enclave --eif-path build\/eif\/dip-enclave\.eif --cpu-count 2 --memory 1024 --enclave-cid 16$/m);
  assert.match(make('health'), /curl -fsS http:\/\/127\.0\.0\.1:8080\/readyz/);
  assert.match(make('terminate-enclave'), /nitro-cli terminate-enclave --enclave-name dip-enclave/);
  // While a base image is unpinned, building refuses.
  if (/^ARG .*PIN-ME/m.test(read('Dockerfile.enclave'))) {
    assert.notEqual(spawnSync('make', ['--no-print-directory', 'check-pins'], { cwd: ROOT }).status, 0);
  }
});

test('Dockerfile.enclave: pinned bases, lockfile install, FROM scratch, explicit absolute CMD, nothing else', () => {
  const text = read('Dockerfile.enclave');
  const args = Object.fromEntries([...text.matchAll(/^ARG ([A-Z0-9_]+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  const froms = [...text.matchAll(/^FROM (\S+)(?: AS (\S+))?$/gm)].map((m) => m[1]!);
  assert.deepEqual(froms, ['${NODE_IMAGE}', '${NODE_IMAGE}', 'scratch']);
  assert.match(args['NODE_IMAGE']!, /@sha256:([0-9a-f]{64}|PIN-ME)$/, 'the base image is referenced by digest');
  assert.match(text, /^RUN npm ci --ignore-scripts /m);
  const cmd = /^CMD (\[.*\])$/m.exec(text);
  assert.ok(cmd, 'CMD is set in exec form');
  const argv = JSON.parse(cmd[1]!) as string[];
  assert.deepEqual(argv.slice(0, 2), ['/usr/local/bin/node', '/app/enclave/enclave.mjs']);
  assert.ok(argv.includes('--vsock') && argv.includes('unix:/run/dip-enclave.sock'), 'the unit passes --vsock and the socket path');
  // No ENTRYPOINT, USER or WORKDIR in the final stage: nitro-cli would ignore or misapply them.
  const final = text.split(/^FROM scratch$/m)[1]!;
  assert.deepEqual([...final.matchAll(/^([A-Z]+) /gm)].map((m) => m[1]), ['COPY', 'ENV', 'CMD']);
  // The build context holds only what the image is built from.
  const ignore = read('.dockerignore').split('\n').filter((l) => l && !l.startsWith('#'));
  assert.equal(ignore[0], '*');
  assert.ok(existsSync(join(ROOT, 'enclave/issuers/srt-issuer.jwks.json')), 'the SRT issuer JWKS is a file in enclave/');
});

/** A directory holding one executable stand-in `name` whose body is `script` (POSIX sh). */
function fakeTool(t: { after: (fn: () => void) => void }, name: string, script: string): string {
  const dir = mkdtempSync(join(tmpdir(), `dip-fake-${name}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, name), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  return dir;
}

test('run-enclave.sh keeps polling, never replacing the enclave, while describe-enclaves fails or is unparsable', (t) => {
  // Poll 1 and 2: nitro-cli fails; 3: prints garbage; 4: the enclave runs; 5: a JSON object, not
  // a list; 6: the enclave is gone. Only the last may end the script.
  const dir = fakeTool(t, 'nitro-cli', [
    'echo "$@" >> "$(dirname "$0")/calls"',
    '[ "$1" = describe-enclaves ] || exit 0',
    'n=$(cat "$(dirname "$0")/n" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$(dirname "$0")/n"',
    'case $n in 1|2) echo "E44 socket error" >&2; exit 1 ;; 3) echo "not json"; exit 0 ;;',
    '  4) echo \'[{"EnclaveName":"dip-enclave","State":"RUNNING"}]\' ;; 5) echo \'{"error":1}\' ;; *) echo "[]" ;; esac',
  ].join('\n'));
  const run = spawnSync('bash', [join(ROOT, 'deploy/run-enclave.sh')], {
    env: { ...env('deploy/enclave.env'), PATH: process.env['PATH'] ?? '', NITRO_CLI: join(dir, 'nitro-cli'), POLL_SECONDS: '0' },
    encoding: 'utf8',
  });
  assert.equal(run.status, 1, `exits only when the enclave is gone: ${run.stderr}`);
  const calls = readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n').map((line) => line.split(' ')[0]);
  assert.deepEqual(calls, ['terminate-enclave', 'run-enclave', ...Array(6).fill('describe-enclaves')], 'six polls, and no terminate after the start');
  const warnings = run.stderr.split('\n').filter((line) => line.includes('failed or was unreadable'));
  assert.equal(warnings.length, 2, `one warning per spell of failures: ${run.stderr}`);
  assert.match(run.stderr, /enclave dip-enclave is no longer running/, 'the real end is named');
});

test('the journald drop-in keeps request times off the disk by default: volatile, at most a day', () => {
  const journal = parseUnit(read('deploy/journald.conf.d/dip.conf')).get('Journal')!;
  assert.equal(journal.get('Storage')?.[0], 'volatile', 'nothing is written to /var/log/journal');
  const seconds = (span: string): number => {
    const m = /^(\d+)(s|min|h|day)$/.exec(span);
    assert.ok(m, `a time span journald reads: ${span}`);
    return Number(m[1]) * { s: 1, min: 60, h: 3600, day: 86_400 }[m[2] as 's' | 'min' | 'h' | 'day'];
  };
  const retention = seconds(journal.get('MaxRetentionSec')![0]!);
  assert.ok(retention <= 86_400, `retention ${retention} s is at most a day`);
  assert.ok(seconds(journal.get('MaxFileSec')![0]!) <= retention, 'files rotate at least as often as they expire');
  const ops = read('docs/operations.md');
  assert.match(ops, /Storage=persistent/, 'docs/operations.md says how to opt into persistence');
  assert.match(ops, /MaxRetentionSec=6h/, 'docs/operations.md names the default retention');
});

test('make pin-images prints ref@digest from docker, and fails naming the image when docker gives no digest', (t) => {
  const pin = (script: string): ReturnType<typeof spawnSync> => {
    const dir = fakeTool(t, 'docker', script);
    return spawnSync('make', ['--no-print-directory', 'pin-images'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env['PATH']}` } });
  };
  const digest = `sha256:${'ab'.repeat(32)}`;
  const ok = pin(`echo '"${digest}"'`);
  assert.equal(ok.status, 0, `a digest for every image: ${ok.stderr}`);
  assert.match(String(ok.stdout), new RegExp(`^docker\\.io/library/node:[^@\\s]+@${digest}$`, 'm'), 'the node base image with its digest');
  const failing = pin('echo "ERROR: unauthorized" >&2; exit 1');
  assert.notEqual(failing.status, 0, 'a failing docker fails the target');
  assert.match(String(failing.stderr), /pin-images: no digest for docker\.io\/library\/node:/, 'the image is named');
  const empty = pin('exit 0');
  assert.notEqual(empty.status, 0, 'an empty answer is no digest');
});

test('make describe-eif depends on deps and names the EIF path it tried when the file is missing', () => {
  // -o keeps make from running npm ci on the shared install: only the rule is under test.
  const dry = execFileSync('make', ['-n', '--no-print-directory', '-o', 'node_modules/.installed', 'describe-eif', 'EIF=x.eif'], { cwd: ROOT, encoding: 'utf8' });
  assert.match(dry, /ensure-system-deps\.sh/, 'deps runs first');
  const missing = spawnSync('make', ['--no-print-directory', '-o', 'node_modules/.installed', '-o', 'system-deps', 'describe-eif', 'EIF=build/none/missing.eif'], { cwd: ROOT, encoding: 'utf8' });
  assert.notEqual(missing.status, 0, 'a missing EIF fails');
  assert.match(missing.stderr, /describe-eif: no EIF at build\/none\/missing\.eif/, 'the path tried is named');
});
