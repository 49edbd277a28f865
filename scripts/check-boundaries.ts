// The trust boundary is the folder structure (STYLE.md); this check makes it mechanical.
// It reads every import (static, dynamic, `export … from`, `require`) of every TypeScript file
// and refuses the ones that cross a boundary. `make test` runs it; its own test proves that
// each rule fires.

import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import ts from 'typescript';

/** Node modules that do I/O (network, files, processes, threads). */
const IO_MODULES = new Set([
  'net', 'fs', 'fs/promises', 'http', 'https', 'http2', 'tls', 'dgram', 'dns', 'dns/promises',
  'child_process', 'cluster', 'worker_threads', 'readline', 'repl', 'inspector', 'v8', 'vm', 'os',
]);

/** What the untrusted parent may use of protocol/: framing and messages, never the crypto. */
const PARENT_PROTOCOL_ALLOWED = new Set(['frame', 'messages', 'errors', 'limits', 'base64url', 'cbor', 'ip', 'sealed-header']);

/** Packages that open sealed data or tokens; the parent must not even load them. */
const TOKEN_PACKAGES = [/^jose(\/|$)/, /^@noble\//];

/** Names that only code which opens sealed requests or parses tokens would call. */
const TOKEN_CALLS = /\b(openRequest|openResponse|jwtVerify|decodeJwt|compactVerify|decodeProtectedHeader)\b/;

export interface Violation {
  file: string;
  specifier: string;
  rule: string;
}

function isTestFile(file: string): boolean {
  return file.split('/').includes('test') || file.endsWith('.test.ts');
}

function nodeModuleName(specifier: string): string | null {
  if (specifier.startsWith('node:')) return specifier.slice(5);
  return IO_MODULES.has(specifier) ? specifier : null;
}

/** Repo-relative POSIX path an import points to, or null for a package import. */
function resolveLocal(file: string, specifier: string): string | null {
  if (!specifier.startsWith('.')) return null;
  return normalize(join(dirname(file), specifier)).split(sep).join('/');
}

export function importsOf(source: string): string[] {
  const info = ts.preProcessFile(source, true, true);
  return info.importedFiles.map((f) => f.fileName);
}

/** Checks one file (path relative to the repo root, with `/`) against the boundary rules. */
export function checkFile(file: string, source: string): Violation[] {
  const top = file.split('/')[0];
  const inTest = isTestFile(file);
  const out: Violation[] = [];
  const refuse = (specifier: string, rule: string): void => {
    out.push({ file, specifier, rule });
  };

  for (const specifier of importsOf(source)) {
    const target = resolveLocal(file, specifier);
    const targetTop = target?.split('/')[0];
    const nodeModule = nodeModuleName(specifier);

    if (top === 'protocol' && targetTop !== undefined && targetTop !== 'protocol') {
      refuse(specifier, 'protocol/ depends on nothing else in the repo');
    }
    if (top === 'protocol' && !inTest && nodeModule !== null && IO_MODULES.has(nodeModule)) {
      refuse(specifier, 'protocol/ does no I/O');
    }
    // The shared SRT verifier is node:crypto only, so the enclave and the issuer check SRTs alike.
    if (top === 'protocol' && !inTest && /^jose(\/|$)/.test(specifier)) {
      refuse(specifier, 'protocol/ verifies JWS with node:crypto, never jose');
    }
    if (top === 'enclave' && !inTest && (targetTop === 'parent' || targetTop === 'client')) {
      refuse(specifier, 'enclave/ (trusted) never depends on parent/ or client/');
    }
    // Development doubles must stay out of anything a production image or host runs, tests too:
    // a production build that could reach the KMS emulator could be pointed at it.
    if ((top === 'enclave' || top === 'parent' || top === 'client') && targetTop === 'emulators') {
      refuse(specifier, 'enclave/, parent/ and client/ never depend on emulators/ (development only)');
    }
    if (top === 'emulators' && !inTest && targetTop === 'enclave') {
      refuse(specifier, 'emulators/ (untrusted, development) never depends on enclave/');
    }
    if (file.startsWith('enclave/core/') && !inTest) {
      if (nodeModule !== null && IO_MODULES.has(nodeModule)) refuse(specifier, 'enclave/core is pure: no I/O modules');
      if (target?.startsWith('enclave/io/')) refuse(specifier, 'enclave/core does not depend on enclave/io');
    }
    if (top === 'parent' && !inTest) {
      if (targetTop === 'enclave' || targetTop === 'client') {
        refuse(specifier, 'parent/ never depends on enclave/ or client/');
      }
      if (targetTop === 'protocol') {
        const name = target!.split('/').slice(1).join('/').replace(/\.(js|ts)$/, '');
        if (!PARENT_PROTOCOL_ALLOWED.has(name)) refuse(specifier, 'parent/ imports protocol/ framing only, never its crypto');
      }
      if (TOKEN_PACKAGES.some((p) => p.test(specifier))) refuse(specifier, 'parent/ never opens tokens or sealed data');
    }
    // The shared storage of the untrusted issuer and DIP service (SPEC §10–11): it holds pools and
    // spent tokens, so the enclave never reaches it, and it never reaches the enclave or the app.
    if (top === 'store' && (targetTop === 'enclave' || targetTop === 'client')) {
      refuse(specifier, 'store/ (untrusted) never depends on enclave/ or client/');
    }
    if (top === 'enclave' && targetTop === 'store') {
      refuse(specifier, 'enclave/ (trusted) never depends on store/');
    }
    // The token issuer (SPEC §10) is untrusted and holds subscription ids: it shares the SRT rules
    // through protocol/, never the enclave's code, and never the app's.
    if (top === 'issuer' && (targetTop === 'enclave' || targetTop === 'client')) {
      refuse(specifier, 'issuer/ (untrusted) never depends on enclave/ or client/');
    }
    if (top === 'enclave' && targetTop === 'issuer') {
      refuse(specifier, 'enclave/ (trusted) never depends on issuer/');
    }
    // The DIP service (SPEC §11) is untrusted and holds the pool and spent tokens: it talks to the
    // parent over HTTP only, and shares nothing with the enclave, the app, the issuer or the parent.
    if (top === 'service' && (targetTop === 'enclave' || targetTop === 'client' || targetTop === 'issuer' || targetTop === 'parent' || targetTop === 'emulators')) {
      refuse(specifier, 'service/ (untrusted) never depends on enclave/, client/, issuer/, parent/ or emulators/');
    }
    if (top === 'enclave' && targetTop === 'service') {
      refuse(specifier, 'enclave/ (trusted) never depends on service/');
    }
    // Building blocks shared by the untrusted services (option tables, listen addresses, log labels):
    // they depend on nothing else in the repo, and trusted code never reaches them.
    if (top === 'common' && targetTop !== undefined && targetTop !== 'common') {
      refuse(specifier, 'common/ (shared untrusted building blocks) depends on nothing else in the repo');
    }
    // (protocol/ already depends on nothing outside itself.)
    if (top === 'enclave' && targetTop === 'common') {
      refuse(specifier, 'enclave/ (trusted) never depends on common/ (untrusted)');
    }
    if (top === 'client' && !inTest && (targetTop === 'enclave' || targetTop === 'parent')) {
      refuse(specifier, 'client/ depends on protocol/ only');
    }
  }
  if (top === 'parent' && !inTest) {
    const match = TOKEN_CALLS.exec(source);
    if (match) refuse(match[1]!, 'parent/ never decrypts or parses tokens');
  }
  return out;
}

function walk(dir: string, root: string, out: string[]): void {
  for (const name of readdirSync(dir).sort()) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, root, out);
    else if (name.endsWith('.ts')) out.push(relative(root, path).split(sep).join('/'));
  }
}

export function checkTree(root: string): Violation[] {
  const files: string[] = [];
  for (const top of ['protocol', 'enclave', 'parent', 'client', 'emulators', 'store', 'issuer', 'service', 'common']) {
    try {
      walk(join(root, top), root, files);
    } catch {
      // A folder that does not exist yet has nothing to check.
    }
  }
  return files.flatMap((file) => checkFile(file, readFileSync(join(root, file), 'utf8')));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const violations = checkTree(process.cwd());
  for (const v of violations) console.error(`${v.file}: '${v.specifier}': ${v.rule}`);
  if (violations.length > 0) {
    console.error(`trust boundary: ${violations.length} violation(s)`);
    process.exit(1);
  }
  console.log('trust boundary: ok');
}
