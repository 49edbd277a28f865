// `dip-eif describe FILE.eif`: prints the PCRs of an EIF computed without nitro-cli (scripts/eif.ts),
// in the shape of `nitro-cli describe-eif`, so auditors can compare the two side by side.
// Usage: npx tsx scripts/eif-cli.ts describe FILE.eif   (or: make describe-eif EIF=FILE.eif)

import { EifError, describeEif, toNitroCliShape } from './eif.js';

export function runEifCli(argv: readonly string[], out: (text: string) => void, err: (text: string) => void): number {
  const [command, file, ...rest] = argv;
  if (command !== 'describe' || file === undefined || rest.length > 0) {
    err('usage: dip-eif describe FILE.eif\n');
    return 2;
  }
  try {
    out(`${JSON.stringify(toNitroCliShape(describeEif(file)), null, 2)}\n`);
    return 0;
  } catch (error) {
    if (error instanceof EifError) {
      err(`dip-eif: ${error.message} (${error.code})\n`);
      return 1;
    }
    throw error;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = runEifCli(process.argv.slice(2), (t) => process.stdout.write(t), (t) => process.stderr.write(t));
}
