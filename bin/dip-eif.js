#!/usr/bin/env node
// The `dip-eif` command (package.json "bin"): computes an EIF's PCRs without nitro-cli
// (scripts/eif.ts). A plain-JS shim that loads tsx's ESM hooks and runs the TypeScript CLI.
import { register } from 'tsx/esm/api';

register();
const { runEifCli } = await import('../scripts/eif-cli.ts');
process.exitCode = runEifCli(
  process.argv.slice(2),
  (text) => process.stdout.write(text),
  (text) => process.stderr.write(text),
);
