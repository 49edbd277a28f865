// Blind RSA throughput (issue #11, SPEC §10): the issuer's blindSign on node:crypto (OpenSSL CRT)
// against @cloudflare/blindrsa-ts on the same RSA-2048 key, and the app's blind + finalize.
// Run: npx tsx scripts/bench-blind-rsa.ts [seconds per measurement, default 2]

import { readFileSync } from 'node:fs';
import { createPrivateKey, webcrypto } from 'node:crypto';
import { RSABSSA } from '@cloudflare/blindrsa-ts';
import { blind, blindSign, finalize, publicKeyOf } from '../protocol/blind-rsa.js';

const seconds = Number(process.argv[2] ?? 2);
const vector = (JSON.parse(readFileSync(new URL('../test/vectors/rfc9578-type2-issuance.json', import.meta.url), 'utf8')) as { skS: string }[])[0]!;
const issuerKey = createPrivateKey(Buffer.from(vector.skS, 'hex').toString('latin1'));
const tokenKey = publicKeyOf(issuerKey);
const theirKey = await webcrypto.subtle.importKey('pkcs8', issuerKey.export({ type: 'pkcs8', format: 'der' }), { name: 'RSA-PSS', hash: 'SHA-384' }, true, ['sign']);
const suite = RSABSSA.SHA384.PSS.Deterministic();
const msg = new Uint8Array(98).fill(7); // the size of a token input
const { blindedMsg, inv } = blind(tokenKey, msg);

async function perSecond(label: string, op: () => unknown): Promise<number> {
  await op(); // warm up
  let count = 0;
  const start = performance.now();
  while (performance.now() - start < seconds * 1000) {
    await op();
    count++;
  }
  const rate = count / ((performance.now() - start) / 1000);
  console.log(`${label.padEnd(42)} ${rate.toFixed(1).padStart(9)} /s  ${(1000 / rate).toFixed(3).padStart(8)} ms/op`);
  return rate;
}

const ours = await perSecond('blindSign, node:crypto (ours)', () => blindSign(issuerKey, blindedMsg));
const theirs = await perSecond('blindSign, @cloudflare/blindrsa-ts', () => suite.blindSign(theirKey, blindedMsg));
console.log(`ratio ours/theirs: ${(ours / theirs).toFixed(1)}× (target ≥ 20×)`);
await perSecond('app blind (ours)', () => blind(tokenKey, msg));
const blindSig = blindSign(issuerKey, blindedMsg);
await perSecond('app finalize, with verify (ours)', () => finalize(tokenKey, msg, blindSig, inv));
await perSecond('whole token: blind, blindSign, finalize', () => {
  const b = blind(tokenKey, msg);
  return finalize(tokenKey, msg, blindSign(issuerKey, b.blindedMsg), b.inv);
});
