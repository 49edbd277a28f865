// Every form in which a secret could reach a log (SPEC §1: no token, subscription id or IP in any
// output): the text itself, its hex, base64 and base64url, and for identifiers its SHA-256 in
// hex, base64 and base64url. Privacy tests check process output against all of them with one helper.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

export interface SecretForm {
  /** What the form is, e.g. "hex" or "sha256 base64url"; never the secret itself. */
  readonly encoding: string;
  readonly text: string;
}

/** Below this many characters a fragment could occur in unrelated output by chance. */
const MIN_FRAGMENT_CHARS = 8;

/**
 * The base64 characters of `bytes` that do not depend on the bytes around it, for each of the
 * three alignments it can have inside a longer encoded buffer (a character spans 6 bits, so the
 * first and last ones mix with the neighbours).
 */
function base64Cores(bytes: Buffer, encoding: 'base64' | 'base64url'): string[] {
  const cores: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const text = Buffer.concat([Buffer.alloc(offset), bytes]).toString(encoding);
    const first = Math.ceil((8 * offset) / 6);
    const end = Math.floor((8 * (offset + bytes.length)) / 6);
    cores.push(text.slice(first, end));
  }
  return cores;
}

function sha256(bytes: Buffer): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/**
 * All forms of one secret. `hashed` adds the SHA-256 forms: use it for identifiers (subscription
 * id, IP) whose hash is as identifying as the value, since the set of candidates is small.
 */
export function secretForms(secret: string | Uint8Array, options: { hashed?: boolean } = {}): SecretForm[] {
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
  const forms: SecretForm[] = [];
  if (typeof secret === 'string') forms.push({ encoding: 'text', text: secret });
  forms.push({ encoding: 'hex', text: bytes.toString('hex') }, { encoding: 'HEX', text: bytes.toString('hex').toUpperCase() });
  for (const encoding of ['base64', 'base64url'] as const) {
    for (const [i, core] of base64Cores(bytes, encoding).entries()) forms.push({ encoding: `${encoding} (offset ${i})`, text: core });
  }
  if (options.hashed === true) {
    const digest = sha256(bytes);
    forms.push(
      { encoding: 'sha256 hex', text: digest.toString('hex') },
      { encoding: 'sha256 HEX', text: digest.toString('hex').toUpperCase() },
      { encoding: 'sha256 base64', text: digest.toString('base64').replace(/=+$/, '') },
      { encoding: 'sha256 base64url', text: digest.toString('base64url') },
    );
  }
  // A token (JWS) leaks as much through one of its parts as whole.
  if (typeof secret === 'string') {
    for (const [i, part] of secret.split('.').entries()) {
      if (part !== secret && part.length >= 16) forms.push({ encoding: `part ${i}`, text: part });
    }
  }
  // The text itself is always looked for; an encoded fragment only when it is long enough to matter.
  return forms.filter((form) => form.encoding === 'text' || form.text.length >= MIN_FRAGMENT_CHARS);
}

export interface Secret {
  /** What it is, for the failure message: "subscription id", "IPv4", "DRT". */
  readonly what: string;
  readonly value: string | Uint8Array;
  /** Identifiers (subscription ids, IPs): also look for their SHA-256. */
  readonly hashed?: boolean;
}

/** Names "what (encoding)" of every form of every secret found in `output`. */
export function findLeaks(output: string, secrets: Iterable<Secret>): string[] {
  const found: string[] = [];
  for (const secret of secrets) {
    for (const form of secretForms(secret.value, { hashed: secret.hashed === true })) {
      if (output.includes(form.text)) found.push(`${secret.what} (${form.encoding})`);
    }
  }
  return found;
}

/** Fails naming each leaked secret and its encoding, never the secret's value. */
export function assertNoLeak(output: string, secrets: Iterable<Secret>, where: string): void {
  assert.deepEqual(findLeaks(output, secrets), [], `secrets found in ${where}`);
}
