#!/usr/bin/env node
// Source of bin/dip.js, the `dip` command (package.json "bin"). `npx tsx scripts/build-bundle.ts
// --bin` bundles it with esbuild into plain JavaScript, committed, so `npm ci --omit=dev` suffices.
import { main } from '../client/cli.js';

process.exitCode = await main(process.argv.slice(2));
