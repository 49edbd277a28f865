import assert from 'node:assert/strict';
import { createCipheriv, randomBytes, scryptSync } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  DEFAULT_SCRYPT_PARAMS,
  decodeBackupText,
  encodeBackupText,
  generateAccessCode,
  openBackup,
  readBackupHeader,
  sealBackup,
} from '../backup.js';
import { ClientError } from '../errors.js';

const FAST = { log2N: 14, r: 8, p: 1 };
const DRT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl';
const CODE = 'correct horse battery';

function isCode(code: string) {
  return (error: unknown) => error instanceof ClientError && error.code === code && !error.message.includes(DRT);
}

/** Builds a backup by following the format comment in backup.ts, independently of sealBackup. */
function handMade(plaintext: Uint8Array, accessCode: string, log2N: number, r: number, p: number): Uint8Array {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const header = Buffer.concat([Buffer.from('DIPB'), Buffer.from([1, 1, log2N, r, p]), salt, iv]);
  const key = scryptSync(Buffer.from(accessCode.normalize('NFKC'), 'utf8'), salt, 32, { N: 2 ** log2N, r, p, maxmem: 1 << 30 });
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(header);
  return new Uint8Array(Buffer.concat([header, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]));
}

describe('DRT backup', () => {
  it('a sealed backup opens with the same access code and gives back the DRT', async () => {
    const blob = await sealBackup(DRT, CODE, FAST);
    assert.equal(await openBackup(blob, CODE), DRT);
    assert.ok(!Buffer.from(blob).includes(Buffer.from(DRT)), 'the DRT is not in the clear');
  });

  it('the default parameters are stored in the backup and honoured', async () => {
    const blob = await sealBackup(DRT, CODE);
    assert.deepEqual(readBackupHeader(blob), { ...DEFAULT_SCRYPT_PARAMS });
    assert.equal(await openBackup(blob, CODE), DRT);
  });

  it('a wrong access code is a clean backup_wrong_code error', async () => {
    const blob = await sealBackup(DRT, CODE, FAST);
    await assert.rejects(openBackup(blob, 'correct horse battery staple'), isCode('backup_wrong_code'));
  });

  it('a backup altered anywhere fails as backup_wrong_code or backup_invalid, never opens', async () => {
    const blob = await sealBackup(DRT, CODE, FAST);
    // salt, iv, ciphertext and tag: a flipped bit there is indistinguishable from a wrong code
    for (const at of [9, 9 + 16, 37, blob.length - 1]) {
      const bad = new Uint8Array(blob);
      bad[at]! ^= 0x01;
      await assert.rejects(openBackup(bad, CODE), isCode('backup_wrong_code'), `byte ${at}`);
    }
    // magic, version, kdf id: not one of our backups
    for (const at of [0, 4, 5]) {
      const bad = new Uint8Array(blob);
      bad[at]! ^= 0x01;
      await assert.rejects(openBackup(bad, CODE), isCode('backup_invalid'), `byte ${at}`);
    }
  });

  it('the stored parameters are authenticated: changing r within bounds fails the tag check', async () => {
    const blob = await sealBackup(DRT, CODE, FAST);
    const bad = new Uint8Array(blob);
    bad[7] = 4;
    assert.deepEqual(readBackupHeader(bad), { log2N: 14, r: 4, p: 1 });
    await assert.rejects(openBackup(bad, CODE), isCode('backup_wrong_code'));
  });

  it('a backup made to the documented format by another implementation opens, with its own parameters', async () => {
    const blob = handMade(new TextEncoder().encode(DRT), CODE, 15, 2, 3);
    assert.deepEqual(readBackupHeader(blob), { log2N: 15, r: 2, p: 3 });
    assert.equal(await openBackup(blob, CODE), DRT);
  });

  it('a backup whose plaintext is not UTF-8 is backup_invalid', async () => {
    const blob = handMade(new Uint8Array([0xff, 0xfe, 0x41]), CODE, 14, 1, 1);
    await assert.rejects(openBackup(blob, CODE), isCode('backup_invalid'));
  });

  it('stored parameters outside the safe bounds are refused before any key derivation', async () => {
    const blob = await sealBackup(DRT, CODE, FAST);
    const hostile: Array<[number, number, number]> = [
      [30, 8, 1], // 128 GiB
      [21, 8, 1], // above log2N 20
      [20, 8, 1], // 1 GiB of memory
      [13, 8, 1], // too weak
      [14, 0, 1],
      [14, 8, 0],
      [14, 33, 1],
      [14, 8, 17],
      [18, 16, 2], // 256 MiB but 2^23 work
    ];
    for (const [log2N, r, p] of hostile) {
      const bad = new Uint8Array(blob);
      bad[6] = log2N;
      bad[7] = r;
      bad[8] = p;
      const started = process.memoryUsage().rss;
      await assert.rejects(openBackup(bad, CODE), isCode('backup_invalid'), `${log2N}/${r}/${p}`);
      assert.ok(process.memoryUsage().rss - started < 64 * 1024 * 1024, 'RSS grew by less than 64 MiB');
    }
  });

  it('truncated, empty and oversized backups are backup_invalid', async () => {
    const blob = await sealBackup(DRT, CODE, FAST);
    for (const bad of [new Uint8Array(0), blob.subarray(0, 53), new Uint8Array(16 * 1024 + 1)]) {
      await assert.rejects(openBackup(bad, CODE), isCode('backup_invalid'));
    }
  });

  it('the access code is compared after NFKC normalization and trimming', async () => {
    const blob = await sealBackup(DRT, 'caf\u00e9 au lait', FAST);
    assert.equal(await openBackup(blob, '  cafe\u0301 au lait\n'), DRT);
  });

  it('sealing refuses a short access code, an empty DRT and out-of-bounds parameters', async () => {
    await assert.rejects(sealBackup(DRT, 'short'), TypeError);
    await assert.rejects(sealBackup('', CODE), TypeError);
    await assert.rejects(sealBackup(DRT, CODE, { log2N: 21, r: 8, p: 1 }), TypeError);
    await assert.rejects(sealBackup(DRT, CODE, { log2N: 14.5, r: 8, p: 1 }), TypeError);
    await assert.rejects(sealBackup('x'.repeat(20_000), CODE, FAST), TypeError);
  });

  it('the text form round-trips and refuses anything else', async () => {
    const blob = await sealBackup(DRT, CODE, FAST);
    const text = encodeBackupText(blob);
    assert.match(text, /^dipb1\.[A-Za-z0-9_-]+$/);
    assert.deepEqual(decodeBackupText(`${text}\n`), blob);
    assert.throws(() => decodeBackupText(text.slice(1)), isCode('backup_invalid'));
    assert.throws(() => decodeBackupText('dipb1.a=b'), isCode('backup_invalid'));
  });

  it('generated access codes are 20 Crockford base32 characters in groups and differ each time', () => {
    const a = generateAccessCode();
    assert.match(a, /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){4}$/);
    assert.notEqual(a, generateAccessCode());
  });
});
