#!/usr/bin/env node
// The `dip` command (package.json "bin"): a plain-JS shim that loads tsx's ESM hooks and runs the
// TypeScript CLI in client/cli.ts, so `npx dip …` works straight after `npm ci` with no build.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../client/cli.ts');
process.exitCode = await main(process.argv.slice(2));
