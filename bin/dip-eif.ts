#!/usr/bin/env node
// Source of bin/dip-eif.js, the `dip-eif` command (package.json "bin"): an EIF's PCRs without
// nitro-cli. Bundled like bin/dip.js by `npx tsx scripts/build-bundle.ts --bin`.
import { runEifCli } from '../scripts/eif-cli.js';

process.exitCode = runEifCli(
  process.argv.slice(2),
  (text) => process.stdout.write(text),
  (text) => process.stderr.write(text),
);
