import assert from 'node:assert/strict';
import { createCipheriv, createHash, randomBytes, scryptSync } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  BACKUP_CODE_CHARS,
  DEFAULT_SCRYPT_PARAMS,
  decodeBackupCode,
  decodeBackupText,
  encodeBackupCode,
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
function handMade(plaintext: Uint8Array, accessCode: string, log2N: number, r: number, p: number, version = 1): Uint8Array {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const header = Buffer.concat([Buffer.from('DIPB'), Buffer.from([version, 1, log2N, r, p]), salt, iv]);
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

describe('a padded backup (version 0x02), as the DIP service stores it', () => {
  const SIZE = 4096;
  const ROOM = SIZE - 37 - 16; // header and tag

  it('is exactly the size asked for whatever the DRT\'s length, and opens to the DRT', async () => {
    const short = await sealBackup(DRT, CODE, FAST, SIZE);
    const long = await sealBackup(`${DRT}${'A'.repeat(900)}`, CODE, FAST, SIZE);
    assert.equal(short.length, SIZE, 'a short DRT');
    assert.equal(long.length, SIZE, 'a long DRT');
    assert.equal(short[4], 2, 'version 0x02');
    assert.equal(await openBackup(short, CODE), DRT, 'the padding is removed');
  });

  it(`takes a DRT of exactly ${ROOM} bytes and refuses one of ${ROOM + 1}`, async () => {
    const fits = 'x'.repeat(ROOM);
    assert.equal(await openBackup(await sealBackup(fits, CODE, FAST, SIZE), CODE), fits, 'the largest DRT that fits');
    await assert.rejects(sealBackup(`${fits}x`, CODE, FAST, SIZE), TypeError, 'one byte more');
    await assert.rejects(sealBackup(DRT, CODE, FAST, 12.5), TypeError, 'a size that is not an integer');
  });

  it('refuses to seal a DRT holding a 0x00 byte, which the padding could not tell apart', async () => {
    await assert.rejects(sealBackup(`${DRT}\0`, CODE, FAST, SIZE), TypeError);
  });

  it('a hand-made version 0x02 opens; bytes other than 0x00 after the padding or nothing before it are backup_invalid', async () => {
    const drt = new TextEncoder().encode(DRT);
    const padded = (tail: number[]) => handMade(new Uint8Array([...drt, ...tail]), CODE, 14, 1, 1, 2);
    assert.equal(await openBackup(padded([0, 0, 0]), CODE), DRT, 'padded by another implementation');
    assert.equal(await openBackup(padded([]), CODE), DRT, 'no padding needed');
    await assert.rejects(openBackup(padded([0, 0x41]), CODE), isCode('backup_invalid'), 'junk after the padding');
    await assert.rejects(openBackup(handMade(new Uint8Array(8), CODE, 14, 1, 1, 2), CODE), isCode('backup_invalid'), 'padding only');
    await assert.rejects(openBackup(handMade(new Uint8Array([...drt, 0]), CODE, 14, 1, 1, 1), CODE), isCode('backup_invalid'), 'a 0x00 in a version 0x01 backup');
  });
});

describe('the backup code (id + access code + check, in Crockford base32)', () => {
  const ID = new Uint8Array(createHash('sha256').update('backup id').digest());
  const ACCESS = '7K2M-ABCD-EFGH-JKMN-PQRS';
  const code = encodeBackupCode(ID, ACCESS);

  it('is 19 groups of four characters and reads back to the same id and access code', () => {
    assert.match(code, /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){18}$/, 'groups of four');
    assert.equal(code.replaceAll('-', '').length, BACKUP_CODE_CHARS, `${BACKUP_CODE_CHARS} characters`);
    assert.ok(code.replaceAll('-', '').includes(ACCESS.replaceAll('-', '')), 'the access code is in it as generated');
    assert.deepEqual(decodeBackupCode(code), { id: ID, accessCode: ACCESS }, 'round trip');
    for (const id of [new Uint8Array(32), new Uint8Array(32).fill(0xff)]) assert.deepEqual(decodeBackupCode(encodeBackupCode(id, ACCESS)).id, id, 'extreme ids');
  });

  it('is read as typed: any case, spaces or no separators, O for 0 and I or L for 1', () => {
    const plain = code.replaceAll('-', '');
    const typed = [code.toLowerCase(), plain, code.replaceAll('-', ' '), ` ${code}\n`, code.replaceAll('0', 'O').replaceAll('1', 'l')];
    for (const text of typed) assert.deepEqual(decodeBackupCode(text), { id: ID, accessCode: ACCESS }, JSON.stringify(text.slice(0, 12)));
  });

  it('any one character changed is caught as backup_code_invalid', () => {
    const plain = code.replaceAll('-', '');
    for (let at = 0; at < plain.length; at++) {
      const other = plain[at] === 'Z' ? 'Y' : 'Z';
      assert.throws(() => decodeBackupCode(plain.slice(0, at) + other + plain.slice(at + 1)), isCode('backup_code_invalid'), `position ${at}`);
    }
  });

  it(`refuses ${BACKUP_CODE_CHARS - 1} or ${BACKUP_CODE_CHARS + 1} characters, characters outside the alphabet, and an id with its spare bits set`, () => {
    const plain = code.replaceAll('-', '');
    assert.throws(() => decodeBackupCode(plain.slice(1)), isCode('backup_code_invalid'), 'one short');
    assert.throws(() => decodeBackupCode(`${plain}0`), isCode('backup_code_invalid'), 'one long');
    assert.throws(() => decodeBackupCode(`U${plain.slice(1)}`), isCode('backup_code_invalid'), 'U is not in the alphabet');
    assert.throws(() => decodeBackupCode(''), isCode('backup_code_invalid'), 'empty');
    // The 52nd character carries the id's last 4 bits and one spare bit that must be 0; recompute
    // the check so that only the spare bit is wrong.
    const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    const idChars = plain.slice(0, 51) + alphabet[alphabet.indexOf(plain[51]!) | 1];
    const accessChars = plain.slice(52, 72);
    const check = createHash('sha256').update(`dip backup code v1\0${idChars}${accessChars}`).digest();
    const bits = (check[0]! << 16) | (check[1]! << 8) | check[2]!;
    const checkChars = [19, 14, 9, 4].map((shift) => alphabet[(bits >>> shift) & 31]).join('');
    assert.notEqual(idChars, plain.slice(0, 52), 'the spare bit was 0');
    assert.throws(() => decodeBackupCode(idChars + accessChars + checkChars), isCode('backup_code_invalid'), 'spare bit set');
    const spareClear = plain.slice(0, 72);
    const fine = createHash('sha256').update(`dip backup code v1\0${spareClear.slice(0, 52)}${accessChars}`).digest();
    const fineBits = (fine[0]! << 16) | (fine[1]! << 8) | fine[2]!;
    assert.equal([19, 14, 9, 4].map((shift) => alphabet[(fineBits >>> shift) & 31]).join(''), plain.slice(72), 'the check as documented');
  });

  it('encoding refuses an id of 31 or 33 bytes and an access code not made by generateAccessCode', () => {
    assert.throws(() => encodeBackupCode(new Uint8Array(31), ACCESS), TypeError);
    assert.throws(() => encodeBackupCode(new Uint8Array(33), ACCESS), TypeError);
    assert.throws(() => encodeBackupCode(ID, 'correct horse battery'), TypeError);
    assert.throws(() => encodeBackupCode(ID, ACCESS.toLowerCase()), TypeError);
  });
});
