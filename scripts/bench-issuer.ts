// Measures the token issuer (SPEC §10) through HTTP: tokens issued per second, each a different
// (sub, did), with the embedded store and with PostgreSQL when one answers. The app's side (SRTs,
// blinding) is prepared before the clock starts. Usage: npx tsx scripts/bench-issuer.ts [N] [postgres url]

import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createTokenRequest } from '../protocol/privacypass-issuance.js';
import { MEDIA_TYPE_TOKEN_REQUEST } from '../protocol/privacypass-http.js';
import { TokenChallenge } from '../protocol/privacypass.js';
import { createSrtVerifier, srtTrustFromDevIssuer } from '../protocol/srt.js';
import { silentLogger } from '../issuer/log.js';
import { createIssuerServer } from '../issuer/server.js';
import { issuerKey } from '../issuer/token-keys.js';
import { openStore, type StoreConfig } from '../store/open.js';
import { recordIssuance } from '../store/token-issuance.js';

const N = Number(process.argv[2] ?? '1000');
const POSTGRES_URL = process.argv[3] ?? 'postgres://postgres@127.0.0.1:5432/test';
const CONCURRENCY = 16;
const now = Math.floor(Date.now() / 1000);

const srtKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const devIssuer = { iss: 'bench', aud: null, jwk: { ...srtKey.export({ format: 'jwk' }), kid: 'bench', alg: 'ES256' } };
const key = issuerKey(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, now - 86_400);
const challenge = new TokenChallenge({ issuerName: 'bench', redemptionContext: new Uint8Array(0), originInfo: 'bench' });

function mint(sub: string): string {
  const part = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${part({ alg: 'ES256', kid: 'bench' })}.${part({ iss: 'bench', sub, iat: now, exp: now + 3600, entitlements: { 'xv.vpn.dip': { did: 0 } } })}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key: srtKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

async function run(label: string, config: StoreConfig): Promise<void> {
  const store = await openStore(config);
  const server = createIssuerServer({
    issuer: { verifySrt: createSrtVerifier(srtTrustFromDevIssuer(devIssuer)), keys: () => [key], record: (s, d, h, r) => recordIssuance(store, s, d, h, r) },
    requestPath: '/token-request',
    logger: silentLogger,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token-request`;
  const run = randomBytes(4).toString('hex');
  const work = Array.from({ length: N }, (_, i) => ({ srt: mint(`bench-${run}-${i}`), body: createTokenRequest(challenge, key.tokenKey).request.encode() }));
  let next = 0;
  let failed = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < work.length) {
      const { srt, body } = work[next++]!;
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': MEDIA_TYPE_TOKEN_REQUEST, authorization: `Bearer ${srt}` }, body });
      await res.arrayBuffer();
      if (res.status !== 200) failed++;
    }
  }));
  const ms = performance.now() - start;
  console.log(`${label}: ${Math.round((N / ms) * 1000)} tokens/s (${N} tokens, ${CONCURRENCY} concurrent, ${failed} failed)`);
  server.closeAllConnections();
  server.close();
  await store.close();
}

const dir = mkdtempSync(join(tmpdir(), 'bench-issuer-'));
try {
  await run('embedded (PGlite)', { engine: 'embedded', dataDir: join(dir, 'db') });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const schema = `bench_issuer_${randomBytes(4).toString('hex')}`;
const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
admin.on('error', () => {});
try {
  await admin.query(`CREATE SCHEMA ${schema}`);
} catch {
  console.log('postgres: not measured (nothing answers at the connection string)');
  await admin.end();
  process.exit(0);
}
try {
  await run('postgres', { engine: 'postgres', connectionString: POSTGRES_URL, schema });
} finally {
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  await admin.end();
}
