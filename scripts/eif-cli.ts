// `dip-eif describe FILE.eif`: prints the PCRs of an EIF computed without nitro-cli (scripts/eif.ts),
// in the shape of `nitro-cli describe-eif`, so auditors can compare the two side by side.
// Usage: npx tsx scripts/eif-cli.ts describe FILE.eif   (or: make describe-eif EIF=FILE.eif)

import { statSync } from 'node:fs';
import { EifError, describeEif, toNitroCliShape } from './eif.js';

const USAGE = `Usage: dip-eif describe FILE.eif

Prints PCR0, PCR1, PCR2 (and PCR8 when signed) of an EIF, computed without nitro-cli, in the
shape of \`nitro-cli describe-eif\`. Exit status: 0 ok, 1 the file is not a readable EIF, 2 usage.
`;

/** Runs one `dip-eif` invocation; every failure is one coded line on stderr, never a stack trace. */
export function runEifCli(argv: readonly string[], out: (text: string) => void, err: (text: string) => void): number {
  if (argv.length === 1 && (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help')) {
    out(USAGE);
    return 0;
  }
  const [command, file, ...rest] = argv;
  if (command !== 'describe' || file === undefined || file.startsWith('-') || rest.length > 0) {
    err('dip-eif: usage: dip-eif describe FILE.eif (dip-eif --help)\n');
    return 2;
  }
  try {
    // A directory opens for reading on Linux and fails only at the first read: refuse it here.
    let isFile = false;
    try {
      isFile = statSync(file).isFile();
    } catch {
      // reported as eif_unreadable below
    }
    if (!isFile) throw new EifError('eif_unreadable');
    out(`${JSON.stringify(toNitroCliShape(describeEif(file)), null, 2)}\n`);
    return 0;
  } catch (error) {
    // A read error after the file opened (an I/O error) is still the same coded refusal.
    const refusal = error instanceof EifError ? error : new EifError('eif_unreadable');
    err(`dip-eif: ${refusal.message} (${refusal.code})\n`);
    return 1;
  }
}

// Run as a script only from the TypeScript source (`npx tsx scripts/eif-cli.ts`); bin/dip-eif.js,
// the bundle, runs runEifCli itself, and there import.meta.url is the bundle's.
if (import.meta.url.endsWith('/scripts/eif-cli.ts') && import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = runEifCli(process.argv.slice(2), (t) => process.stdout.write(t), (t) => process.stderr.write(t));
}
