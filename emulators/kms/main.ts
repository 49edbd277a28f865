// The KMS emulator's entry point (SPEC §8, §9; docs/kms-emulator.md): reads its flags, its root
// and PCR policy, loads or makes its key, prints the key's ARN and serves on loopback until
// SIGTERM or SIGINT. Run: node --import tsx emulators/kms/main.ts [--help]

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { ConfigError, parseConfig, usage, type KmsConfig } from './config.js';
import { KeyFileError, loadOrCreateKey } from './keystore.js';
import { createKms } from './kms.js';
import { parsePcr0Policy } from './recipient.js';
import { createKmsServer } from './server.js';

/**
 * A production build refuses to run the emulator at all (SPEC §9). A bundle made by
 * scripts/build-bundle.ts defines `process.env.DIP_BUILD` as "production", which bakes the
 * answer in; under tsx it is read from the environment, as enclave/main.ts does.
 */
const PRODUCTION_BUILD = process.env.DIP_BUILD === 'production';

function fail(message: string, code: number): never {
  process.stderr.write(`kms: ${message}\n`);
  process.exit(code);
}

function readRoot(config: KmsConfig): string {
  let pem: string;
  try {
    pem = readFileSync(config.root, 'utf8');
    new X509Certificate(pem);
  } catch {
    fail(`--root ${config.root} is not a readable PEM certificate (the NSM emulator writes STATE_DIR/nsm-root.pem)`, 1);
  }
  return pem;
}

function readPolicy(config: KmsConfig): Set<string> {
  let text: string;
  try {
    text = readFileSync(config.pcrPolicy, 'utf8');
  } catch {
    fail(`--pcr-policy ${config.pcrPolicy} is not readable: list the allowed PCR0 values, hex, one a line`, 1);
  }
  return parsePcr0Policy(text) ?? fail(`--pcr-policy ${config.pcrPolicy} must list at least one PCR0 (96 hex digits) a line, # for comments`, 1);
}

async function main(): Promise<void> {
  if (PRODUCTION_BUILD) fail('refused: the KMS emulator is a development double and this is a production build (DIP_BUILD=production)', 1);
  let config: KmsConfig | null;
  try {
    config = parseConfig(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, 2);
    throw error;
  }
  if (config === null) {
    process.stdout.write(usage());
    return;
  }
  const rootPem = readRoot(config);
  const allowedPcr0 = readPolicy(config);
  let key;
  try {
    ({ key } = loadOrCreateKey(config.stateDir));
  } catch (error) {
    if (error instanceof KeyFileError) fail(error.message, 1);
    throw error;
  }

  const kms = createKms({ key, policy: { rootPem, allowedPcr0 }, allowNoRecipient: config.allowNoRecipient });
  const server = createKmsServer(kms, (operation, outcome) => process.stdout.write(`kms: ${operation ?? '-'} ${outcome}\n`));
  server.on('error', (error: NodeJS.ErrnoException) => fail(`cannot listen on ${config.listen.host}:${config.listen.port} (${error.code ?? 'error'})`, 1));
  server.listen(config.listen.port, config.listen.host, () => {
    const { address, port } = server.address() as AddressInfo;
    const host = address.includes(':') ? `[${address}]` : address;
    process.stdout.write(`kms: key ${key.arn}\nkms: listening on http://${host}:${port}\n`);
  });
  const stop = (): void => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

await main();
