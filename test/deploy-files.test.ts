// The operator's files, checked as far as a machine without Nitro or a Docker engine can (issue
// 5.5): the systemd units parse, allocator.yaml holds what the enclave asks for, the scripts are
// valid shell, the Makefile's targets exist and print their commands, and Dockerfile.enclave keeps
// its promises (pinned bases, lockfile install, FROM scratch, explicit absolute CMD).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
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
  assert.equal(parent.get('Service')!.get('ExecStart')![0], '/usr/bin/node /opt/dip/dist/parent/parent.mjs');
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
  assert.match(calls, /^run-enclave --enclave-name dip-enclave --eif-path \/opt\/dip\/build\/dip-enclave\.eif --cpu-count 2 --memory 1024 --enclave-cid 16$/m);
});

test("the Makefile's Nitro targets exist and print their commands with make -n", () => {
  const make = (...args: string[]): string => execFileSync('make', ['-n', '--no-print-directory', ...args], { cwd: ROOT, encoding: 'utf8' });
  assert.match(make('bundle'), /npx tsx scripts\/build-bundle\.ts/);
  const eif = make('eif');
  assert.match(eif, /docker buildx build --file Dockerfile\.enclave .*--build-arg SOURCE_DATE_EPOCH=\d+ --output type=docker,name=dip-enclave:[0-9a-f]{40},rewrite-timestamp=true \./);
  assert.match(eif, /build-enclave --docker-uri dip-enclave:[0-9a-f]{40} --output-file \/out\/dip-enclave\.eif > build\/eif\/measurements\.json/);
  assert.match(make('pcr-manifest'), /scripts\/pcr-manifest\.ts write/);
  assert.match(make('verify-pcrs'), /scripts\/pcr-manifest\.ts verify --measurements build\/eif\/measurements\.json --eif build\/eif\/dip-enclave\.eif/);
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
