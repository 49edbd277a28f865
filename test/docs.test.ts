// The documents a newcomer and an operator read stay true to the code: the parent's flag table
// lists exactly the settings parent/config.ts parses, with their environment names and defaults,
// the README keeps the two set-up commands and links that resolve, and docs/operations.md names
// only files, make targets and settings that exist, one EIF path, and a fresh AL2023 host's steps.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { OPTIONS, envName } from '../parent/config.js';

const root = new URL('../', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8');

test('docs/parent.md documents every parent setting with its flag, environment name and default', () => {
  const rows = read('docs/parent.md')
    .split('\n')
    .filter((line) => line.startsWith('| `--'))
    .map((line) => line.split('|').map((cell) => cell.trim()));
  const documented = new Map(rows.map((cells) => [cells[1]!.replace(/`/g, '').split(' ')[0]!, cells]));
  assert.deepEqual([...documented.keys()].sort(), OPTIONS.map((o) => `--${o.flag}`).sort());
  for (const option of OPTIONS) {
    const cells = documented.get(`--${option.flag}`)!;
    assert.equal(cells[2], `\`${envName(option)}\``, option.flag);
    const expectedDefault = option.default === null ? ['—', 'required'] : [`\`${option.default}\``];
    assert.ok(expectedDefault.includes(cells[3]!), `${option.flag}: documented default ${cells[3]}`);
  }
});

test('the README gives the two set-up commands and its relative links resolve', () => {
  const readme = read('README.md');
  assert.match(readme, /^make dev\b/m);
  assert.match(readme, /^make test\b/m);
  const links = [...readme.matchAll(/\]\(((?!https?:)[^)#]+)\)/g)].map((m) => m[1]!);
  assert.ok(links.length >= 4, 'the README links at least 4 local files');
  for (const link of links) assert.ok(existsSync(new URL(link, root)), link);
});

test('docs/operations.md names only files, make targets, parent settings and one EIF path that exist and agree', () => {
  const ops = read('docs/operations.md');
  // Repository paths it names exist.
  const paths = new Set([...ops.matchAll(/(?<![\w/.])((?:deploy|docs|scripts|parent|enclave)\/[\w./-]*\w)/g)].map((m) => m[1]!));
  assert.ok(paths.size >= 8, 'the paths were found');
  for (const path of paths) assert.ok(existsSync(new URL(path, root)), `${path} exists`);
  // Every `make X` is a target of the Makefile.
  const makefile = read('Makefile');
  const targets = new Set([...makefile.matchAll(/^([a-z][\w-]*):/gm)].map((m) => m[1]!));
  const named = new Set([...ops.matchAll(/(?:^|`|sudo |&& )make ([a-z][\w-]*)/gm)].map((m) => m[1]!));
  assert.ok(named.size >= 8, 'the make commands were found');
  for (const target of named) assert.ok(targets.has(target), `make ${target} is a Makefile target`);
  // Parent settings: every DIP_PARENT_* variable and parent flag it names is parsed by parent/config.ts.
  const envNames = new Set(OPTIONS.map(envName));
  for (const [name] of ops.matchAll(/DIP_PARENT_[A-Z_]+/g)) assert.ok(envNames.has(name), `${name} is a parent setting`);
  for (const flag of ['--metrics-listen', '--shutdown-grace-ms']) {
    assert.ok(ops.includes(flag), `${flag} is named`);
    assert.ok(OPTIONS.some((o) => `--${o.flag}` === flag), `${flag} is a parent flag`);
  }
  // One EIF path: the Makefile's EIF under /opt/dip, deploy/enclave.env's EIF_PATH and the docs.
  const makeEif = /^EIF \?= \$\(EIF_DIR\)\/(\S+)$/m.exec(makefile)![1]!;
  const eifDir = /^EIF_DIR \?= (\S+)$/m.exec(makefile)![1]!;
  const eif = `/opt/dip/${eifDir}/${makeEif}`;
  assert.equal(/^EIF_PATH=(.*)$/m.exec(read('deploy/enclave.env'))![1], eif, 'deploy/enclave.env uses the Makefile path');
  for (const [path] of ops.matchAll(/\/opt\/dip\/[\w./-]*\.eif\b/g)) assert.equal(path, eif, 'every absolute EIF path in the docs is the one path');
  for (const [path] of ops.matchAll(/(?<![\w/])build\/[\w./-]*\.eif\b/g)) assert.equal(path, `${eifDir}/${makeEif}`, 'every relative EIF path in the docs is the one path');
});

test('docs/operations.md can be followed on a fresh Amazon Linux 2023 host', () => {
  const ops = read('docs/operations.md');
  assert.match(ops, /--enclave-options Enabled=true/, 'launching with enclave support');
  assert.match(ops, /dnf install -y [^\n]*\bgit\b[^\n]*\bmake\b/, 'git and make are installed');
  assert.match(ops, /dnf install -y [^\n]*\bnodejs(20|22)\b/, "AL2023's Node package name");
  assert.doesNotMatch(ops, /dnf install[^\n]*\bnodejs(?![0-9])/, 'no unversioned nodejs (Node 18 on AL2023)');
  assert.ok(ops.indexOf('git clone') < ops.indexOf('sudo cp deploy/'), 'the clone comes before copying files from it');
  assert.match(ops, /nitro-cli console/, 'how to read a failing boot');
  assert.match(ops, /--debug-mode[\s\S]{0,400}all-zero PCRs|all-zero PCRs[\s\S]{0,400}--debug-mode/, 'debug mode has zero PCRs');
  // The allocator's vCPUs leave CPU 0 and its sibling to the host on the instance the docs name.
  const vcpus: Record<string, number> = { 'm5.xlarge': 4, 'm5.2xlarge': 8 };
  const instance = /--instance-type (\S+)/.exec(ops)![1]!;
  const allocated = Number(/^cpu_count:\s*(\d+)/m.exec(read('deploy/allocator.yaml'))![1]);
  assert.ok(vcpus[instance] !== undefined, `${instance} is a known instance type`);
  assert.ok(allocated <= vcpus[instance]! - 2, `${allocated} enclave vCPUs fit ${instance} with 2 left for the host`);
});

interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Principal: '*' | { AWS: string | string[] };
  Action: string | string[];
  Resource: string;
  Condition?: Record<string, Record<string, string | string[]>>;
}

const asList = (value: string | string[]): string[] => (Array.isArray(value) ? value : [value]);

/** IAM action matching: `*` and `?` are wildcards, names are case-insensitive. */
function actionCovers(pattern: string, action: string): boolean {
  const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return regex.test(action);
}

test('deploy/kms-key-policy.json is the key policy of SPEC §9', () => {
  const policy = JSON.parse(read('deploy/kms-key-policy.json')) as { Version: string; Statement: PolicyStatement[] };
  assert.equal(policy.Version, '2012-10-17', 'the current policy language');
  const statements = policy.Statement;
  const grants = (s: PolicyStatement, action: string) => asList(s.Action).some((pattern) => actionCovers(pattern, action));
  const USE = ['kms:GenerateDataKey', 'kms:Decrypt'];

  // Allowed only for the parent's role, only with the recipient's PCR0 equal to a released image's.
  const uses = statements.filter((s) => s.Effect === 'Allow' && USE.some((action) => grants(s, action)));
  assert.equal(uses.length, 1, 'one statement allows GenerateDataKey and Decrypt');
  const use = uses[0]!;
  assert.deepEqual(asList(use.Action).sort(), [...USE].sort(), 'it allows exactly those two actions');
  assert.ok(use.Principal !== '*', 'not to everyone');
  const principals = asList(use.Principal.AWS);
  assert.equal(principals.length, 1, 'to one principal');
  assert.match(principals[0]!, /^arn:aws:iam::\d{12}:role\/[\w+=,.@-]+$/, "the parent's role");
  const pcr0s = use.Condition?.['StringEqualsIgnoreCase']?.['kms:RecipientAttestation:ImageSha384'];
  assert.ok(pcr0s !== undefined && asList(pcr0s).length >= 1, 'with the released PCR0s as condition');
  assert.equal(Object.keys(use.Condition!).filter((op) => /IfExists$/.test(op)).length, 0, 'no IfExists condition that an absent key would satisfy');

  // Explicitly denied to everyone when there is no recipient document.
  const noRecipient = statements.filter((s) => s.Effect === 'Deny' && s.Principal === '*' && USE.every((action) => grants(s, action)));
  assert.ok(
    noRecipient.some((s) => asList(s.Condition?.['Null']?.['kms:RecipientAttestation:ImageSha384'] ?? []).includes('true')),
    'a Deny of both when kms:RecipientAttestation:ImageSha384 is absent (Null condition)',
  );

  // ReEncrypt* and CreateGrant denied to everyone, unconditionally.
  for (const action of ['kms:ReEncryptFrom', 'kms:ReEncryptTo', 'kms:CreateGrant']) {
    assert.ok(
      statements.some((s) => s.Effect === 'Deny' && s.Principal === '*' && s.Condition === undefined && grants(s, action)),
      `${action} is denied to everyone`,
    );
  }

  // No blanket kms:* (nor *) for anyone, the account root included; no other Allow can use the key.
  for (const s of statements.filter((x) => x.Effect === 'Allow')) {
    assert.ok(!asList(s.Action).some((a) => a === '*' || /^kms:\*$/i.test(a)), `${s.Sid}: no blanket kms:*`);
    assert.ok(s.Principal !== '*', `${s.Sid}: no Allow to everyone`);
    assert.ok(!asList(s.Principal.AWS).some((p) => /:root$/.test(p) || /^\d{12}$/.test(p)), `${s.Sid}: nothing for the account root`);
    if (s !== use) {
      for (const action of [...USE, 'kms:ReEncryptFrom', 'kms:CreateGrant', 'kms:Encrypt', 'kms:GenerateDataKeyWithoutPlaintext']) {
        assert.ok(!grants(s, action), `${s.Sid} does not allow ${action}`);
      }
    }
  }
});

test('docs/operations.md covers key custody: the policy file, the keyset, dip jwks with flags it has, upgrades and the threat model', async () => {
  const ops = read('docs/operations.md');
  assert.ok(ops.includes('deploy/kms-key-policy.json'), 'names the key policy file');
  for (const phrase of ['kms:RecipientAttestation:ImageSha384', 'kms:ReEncrypt*', 'kms:CreateGrant', 'Null']) {
    assert.ok(ops.includes(phrase), `explains ${phrase}`);
  }
  assert.match(ops, /losing it loses every DRT/i, 'why the keyset file must be backed up');
  assert.match(ops, /keyset create/, 'the explicit operator step');
  assert.match(ops, /--enclave vsock:16:5000 --enclave vsock:17:5000/, 'the parent fronts both enclaves during an upgrade');
  assert.match(ops, /--enclave-cid 17/, 'the new enclave runs on another CID');
  assert.match(ops, /lists both/, 'the policy lists both PCR0s during an upgrade');
  assert.match(ops, /Running enclaves keep serving/, 'what a KMS outage does to running enclaves');
  assert.match(ops, /New enclaves stay locked/, 'and to new ones');
  assert.match(ops, /compromised parent can hand an enclave/, 'the threat SPEC §9 names');
  assert.match(ops, /not derived from `M`/, 'why no M opens a sealed request');
  assert.match(ops, /AES-CBC, which has no\s+integrity/, 'why m_commit also catches an altered envelope');

  // Every `dip jwks` invocation uses flags the command has.
  const { main } = await import('../client/cli.js');
  let help = '';
  const io = { out: (t: string) => void (help += t), err: () => undefined, cwd: process.cwd(), env: {} };
  assert.equal(await main(['jwks', '--help'], io), 0, 'dip jwks --help');
  const invocations = [...ops.matchAll(/dip jwks((?:\\\n|[^\n`])*)/g)].map((m) => m[1]!);
  assert.ok(invocations.some((args) => args.includes('--m-commit')), 'the docs show dip jwks with --m-commit');
  for (const args of invocations) {
    for (const [flag] of args.matchAll(/--[a-z][\w-]*/g)) assert.ok(help.includes(flag), `dip jwks has ${flag}`);
  }
});
