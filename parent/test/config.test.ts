import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, MAX_BODY_LIMIT, OPTIONS, envName, isLoopbackHost, parseConfig, parseKeysetCreateConfig, usage } from '../config.js';

const base = ['--enclave', 'unix:/run/dip/enclave.sock', '--keyset', '/etc/dip/keyset.json'];

const refuses = (argv: string[], env: Record<string, string>, pattern: RegExp): void => {
  assert.throws(() => parseConfig(argv, env), (e: unknown) => e instanceof ConfigError && pattern.test(e.message), argv.join(' '));
};

test('defaults follow the issue: 127.0.0.1:8080, 16 KiB bodies, plain HTTP only on loopback', () => {
  const config = parseConfig(base, {})!;
  assert.deepEqual(config.listen, { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(config.enclaves, [{ kind: 'unix', path: '/run/dip/enclave.sock' }]);
  assert.equal(config.keyset, '/etc/dip/keyset.json');
  assert.equal(config.kmsRegion, null, 'the SDK chooses the region unless told');
  assert.equal(config.kmsEndpoint, null, 'AWS KMS unless told');
  assert.equal(config.bodyLimit, 16384);
  assert.equal(config.allowPlainHttp, false);
  assert.equal(config.tlsCert, null);
  assert.equal(config.timeoutMs, 5000);
  assert.equal(config.poolSize, 4);
  assert.equal(config.queueLimit, 1024);
  assert.equal(config.attestationRate, 10);
  assert.equal(config.attestationBurst, 20);
});

test('every setting is a flag and a DIP_PARENT_* variable, and a flag wins over the variable', () => {
  const env = {
    DIP_PARENT_ENCLAVE: 'tcp:[::1]:7000',
    DIP_PARENT_KEYSET: '/k.json',
    DIP_PARENT_LISTEN: '[::1]:9000',
    DIP_PARENT_TIMEOUT_MS: '250',
    DIP_PARENT_ATTESTATION_RATE: '0.5',
    DIP_PARENT_ALLOW_PLAIN_HTTP: 'true',
  };
  const fromEnv = parseConfig([], env)!;
  assert.deepEqual(fromEnv.enclaves, [{ kind: 'tcp', host: '::1', port: 7000 }]);
  assert.deepEqual(fromEnv.listen, { host: '::1', port: 9000 });
  assert.equal(fromEnv.timeoutMs, 250);
  assert.equal(fromEnv.attestationRate, 0.5);
  assert.equal(fromEnv.allowPlainHttp, true);
  const flags = parseConfig(['--timeout-ms=300', '--pool-size', '2', '--enclave', 'vsock:16:5000', '--allow-plain-http=false'], env)!;
  assert.equal(flags.timeoutMs, 300);
  assert.equal(flags.poolSize, 2);
  assert.deepEqual(flags.enclaves, [{ kind: 'vsock', cid: 16, port: 5000 }]);
  assert.equal(flags.allowPlainHttp, false);
  assert.deepEqual(OPTIONS.map(envName).filter((n) => !/^DIP_PARENT_[A-Z_]+$/.test(n)), []);
});

test('plain HTTP off loopback needs --allow-plain-http; TLS needs both files', () => {
  refuses([...base, '--listen', '0.0.0.0:8080'], {}, /loopback/);
  assert.equal(parseConfig([...base, '--listen', '0.0.0.0:8080', '--allow-plain-http'], {})!.allowPlainHttp, true);
  const tls = parseConfig([...base, '--listen', '10.0.0.5:443', '--tls-cert', '/c.pem', '--tls-key', '/k.pem'], {})!;
  assert.equal(tls.tlsCert, '/c.pem');
  refuses([...base, '--tls-cert', '/c.pem'], {}, /go together/);
  refuses([...base, '--tls-key', '/k.pem'], {}, /go together/);
  refuses([...base, '--tls-key', ''], {}, /file path/);
});

test('loopback means 127.0.0.0/8, ::1 and localhost', () => {
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.ok(isLoopbackHost(host), host);
  for (const host of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'example.com', '::ffff:127.0.0.1']) assert.ok(!isLoopbackHost(host), host);
});

test('bad values name the setting and are refused', () => {
  refuses(['--keyset', '/k.json'], {}, /--enclave .* is required/);
  refuses(['--enclave', 'unix:/x'], {}, /^--keyset \(or DIP_PARENT_KEYSET\) is required$/);
  refuses([...base, '--kms-endpoint', 'localhost:8083'], {}, /--kms-endpoint must be an http/);
  refuses([...base, '--kms-region', 'us east'], {}, /--kms-region must be/);
  refuses(['--enclave', 'http://x'], {}, /--enclave: unsupported/);
  refuses([...base, '--listen', '8080'], {}, /HOST:PORT/);
  refuses([...base, '--listen', '::1:8080'], {}, /brackets/);
  refuses([...base, '--listen', ':8080'], {}, /HOST:PORT/);
  refuses([...base, '--listen', '127.0.0.1:65536'], {}, /HOST:PORT/);
  refuses([...base, '--body-limit', '100'], {}, /--body-limit must be an integer in 256\.\.65472/);
  refuses([...base, '--body-limit', '70000'], {}, /--body-limit/);
  refuses([...base, '--pool-size', '1.5'], {}, /--pool-size/);
  refuses([...base, '--queue-limit', '-1'], {}, /--queue-limit/);
  refuses([...base, '--attestation-rate', '0'], {}, /--attestation-rate must be a positive number/);
  refuses([...base, '--attestation-rate', 'fast'], {}, /--attestation-rate/);
  refuses([...base, '--allow-plain-http=maybe'], {}, /true or false/);
  refuses([...base, '--nope'], {}, /unknown argument "--nope"/);
  refuses([...base, 'positional'], {}, /unknown argument/);
  refuses([...base, '--timeout-ms'], {}, /--timeout-ms needs a value/);
  refuses([], { DIP_PARENT_ENCLAVE: 'unix:/x', DIP_PARENT_KEYSET: '/k', DIP_PARENT_POOL_SIZE: 'many' }, /--pool-size/);
});

test('--help returns null and usage lists every option with its variable and default', () => {
  assert.equal(parseConfig(['--help'], {}), null);
  assert.equal(parseConfig(['-h'], {}), null);
  const text = usage();
  for (const option of OPTIONS) {
    assert.ok(text.includes(`--${option.flag}`), option.flag);
    assert.ok(text.includes(envName(option)), option.flag);
  }
  assert.match(text, /--body-limit VALUE.*\(default 16384\)/);
});

test('--metrics-listen and DIP_PARENT_METRICS_LISTEN move /metrics to their own address; off by default', () => {
  assert.equal(parseConfig(base, {})!.metricsListen, null, 'by default /metrics stays on --listen');
  assert.deepEqual(parseConfig([...base, '--metrics-listen', '127.0.0.1:9100'], {})!.metricsListen, { host: '127.0.0.1', port: 9100 }, 'flag');
  assert.deepEqual(parseConfig(base, { DIP_PARENT_METRICS_LISTEN: '[::1]:9100' })!.metricsListen, { host: '::1', port: 9100 }, 'environment');
  refuses([...base, '--metrics-listen', '9100'], {}, /^--metrics-listen must be HOST:PORT/);
  refuses([...base, '--metrics-listen', '127.0.0.1:8080'], {}, /--metrics-listen must differ from --listen/);
});

test('--body-limit stops where the largest body still fits one 65536-byte frame (65472)', () => {
  assert.equal(MAX_BODY_LIMIT, 65472, 'the documented maximum');
  assert.equal(parseConfig([...base, '--body-limit', '65472'], {})!.bodyLimit, 65472, 'the maximum is accepted');
  refuses([...base, '--body-limit', '65473'], {}, /--body-limit must be an integer in 256\.\.65472/);
  refuses([...base, '--body-limit', '65536'], {}, /--body-limit must be an integer in 256\.\.65472/);
});

test('--enclave repeats for several enclaves, DIP_PARENT_ENCLAVE separates them by commas, and flags replace the variable', () => {
  const two = parseConfig(['--enclave', 'unix:/a.sock', '--enclave=vsock:16:5000', '--keyset', '/k'], {})!;
  assert.deepEqual(two.enclaves, [{ kind: 'unix', path: '/a.sock' }, { kind: 'vsock', cid: 16, port: 5000 }], 'two flags, two enclaves in order');
  const env = { DIP_PARENT_ENCLAVE: 'unix:/a.sock,tcp:127.0.0.1:7000', DIP_PARENT_KEYSET: '/k' };
  assert.deepEqual(parseConfig([], env)!.enclaves, [{ kind: 'unix', path: '/a.sock' }, { kind: 'tcp', host: '127.0.0.1', port: 7000 }], 'comma-separated variable');
  assert.deepEqual(parseConfig(['--enclave', 'unix:/b.sock'], env)!.enclaves, [{ kind: 'unix', path: '/b.sock' }], 'a flag replaces the whole variable');
  refuses(['--keyset', '/k'], { DIP_PARENT_ENCLAVE: 'unix:/a.sock,' }, /--enclave: unsupported enclave address/);
});

test('--kms-region and --kms-endpoint configure the KMS client, from flags or DIP_PARENT_KMS_*', () => {
  const flags = parseConfig([...base, '--kms-region', 'eu-west-1', '--kms-endpoint', 'http://127.0.0.1:8083'], {})!;
  assert.equal(flags.kmsRegion, 'eu-west-1', 'region flag');
  assert.equal(flags.kmsEndpoint, 'http://127.0.0.1:8083', 'endpoint flag');
  const env = parseConfig(base, { DIP_PARENT_KMS_REGION: 'us-east-1', DIP_PARENT_KMS_ENDPOINT: 'https://kms.example' })!;
  assert.equal(env.kmsRegion, 'us-east-1', 'region variable');
  assert.equal(env.kmsEndpoint, 'https://kms.example', 'endpoint variable');
});

test('keyset create takes exactly one enclave, the KMS key id and the deployment; the proxy refuses those two flags', () => {
  const args = ['--enclave', 'unix:/e.sock', '--keyset', '/k.json', '--kms-key-id', 'arn:aws:kms:us-east-1:000000000000:key/x', '--deployment', 'prod-eu'];
  assert.deepEqual(
    parseKeysetCreateConfig(args, {}),
    { enclave: { kind: 'unix', path: '/e.sock' }, keyset: '/k.json', kmsKeyId: 'arn:aws:kms:us-east-1:000000000000:key/x', deployment: 'prod-eu', kmsRegion: null, kmsEndpoint: null },
    'every field of keyset create',
  );
  assert.equal(parseKeysetCreateConfig(['--help'], {}), null, '--help');
  assert.equal(parseKeysetCreateConfig(args.slice(0, 6), { DIP_PARENT_DEPLOYMENT: 'staging' })!.deployment, 'staging', 'from the variable');
  assert.throws(() => parseKeysetCreateConfig(args.slice(0, 6), {}), /--deployment \(or DIP_PARENT_DEPLOYMENT\) is required/, 'deployment is required');
  assert.throws(() => parseKeysetCreateConfig([...args, '--enclave', 'unix:/f.sock'], {}), /exactly one --enclave/, 'one enclave only');
  assert.throws(() => parseKeysetCreateConfig([...args, '--pool-size', '2'], {}), /--pool-size is a setting of the proxy/, 'proxy flags are refused');
  refuses([...base, '--kms-key-id', 'k'], {}, /--kms-key-id is a setting of `keyset create`/);
  assert.equal(parseConfig(base, { DIP_PARENT_KMS_KEY_ID: 'k', DIP_PARENT_DEPLOYMENT: 'd' })!.keyset, '/etc/dip/keyset.json', 'the proxy ignores the create-only variables');
});
