// SPEC §11 pool, reservations and tokens: ranges (IPv4, IPv6, exclusions, drain), reserve under
// concurrency, assign pending → spent or refused, refresh, expiry through quarantine by day
// number, figures, backups. Every test runs on both engines.

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { isCanonicalIp } from '../../protocol/ip.js';
import { StoreError, type StoreErrorCode } from '../errors.js';
import { addRange, drainRange, listRanges, removeRange, MAX_RANGE_ADDRESSES } from '../ip-range.js';
import { expireReservations, extendReservation, isRefreshable, poolFigures, reserveFreeIp } from '../ip-pool.js';
import { beginAssign, completeAssign, forgetRetiredKey, refuseAssign, MAX_REFUSALS, type BeginAssignOutcome } from '../token-nonce.js';
import { deleteBackup, getBackup, putBackup } from '../backup.js';
import { ENGINES, POSTGRES_URL, bytes, openTestStore, postgresSkipReason, type TestStore } from './support.js';
import { runWorkers } from './processes.js';

const postgresSkip = await postgresSkipReason();
const nonce = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(`nonce ${label}`).digest());
const KEY = bytes(32, 7);
const OTHER_KEY = bytes(32, 8);
const storeError = (code: StoreErrorCode) => (e: unknown) => e instanceof StoreError && e.code === code;

/** Day numbers used below: a reservation made on TODAY runs 60 days. */
const TODAY = 20_000;
const UNTIL = TODAY + 60;

async function stateOf(t: TestStore, ip: string): Promise<{ state: string; reserved_until_day: number | null; quarantine_until_day: number | null }> {
  const [row] = await t.store.query<{ state: string; reserved_until_day: number | null; quarantine_until_day: number | null }>(
    'SELECT state, reserved_until_day, quarantine_until_day FROM ip_pool WHERE ip = $1::inet',
    [ip],
  );
  return row!;
}

for (const engine of ENGINES) {
  describe(`the pool on the ${engine} engine`, { skip: engine === 'postgres' ? (postgresSkip ?? false) : false }, () => {
    let t: TestStore;
    before(async () => {
      t = await openTestStore(engine);
    });
    after(() => t?.close());
    beforeEach(() => t.reset());

    test('an IPv4 range adds every address but its exclusions, as canonical host addresses', async () => {
      assert.equal(await addRange(t.store, '192.0.2.0/29', ['192.0.2.0/32', '192.0.2.6/31']), 5, 'eight less three excluded');
      const rows = await t.store.query<{ ip: string }>('SELECT host(ip) AS ip FROM ip_pool ORDER BY ip');
      assert.deepEqual(rows.map((r) => r.ip), ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4', '192.0.2.5'], 'addresses');
      assert.deepEqual(await poolFigures(t.store), { free: 5, reserved: 0, quarantined: 0, draining: 0 }, 'figures');
    });

    test('an IPv6 range reserves addresses in RFC 5952 form, like the tokens carry', async () => {
      assert.equal(await addRange(t.store, '2001:db8:0:1::/125'), 8, 'a /125 has 8 addresses');
      const ips = await Promise.all(Array.from({ length: 8 }, () => t.store.transaction((tx) => reserveFreeIp(tx, UNTIL))));
      assert.ok(ips.every((ip) => ip !== null && ip.startsWith('2001:db8:0:1::') && isCanonicalIp(ip)), `canonical: ${ips.join(' ')}`);
      assert.equal(new Set(ips).size, 8, 'eight distinct addresses');
    });

    test(`a range may add ${MAX_RANGE_ADDRESSES} addresses and not one block more`, async () => {
      assert.equal(await addRange(t.store, '2001:db8:1::/112'), MAX_RANGE_ADDRESSES, 'a /112 is exactly the limit');
      await assert.rejects(addRange(t.store, '2001:db8:2::/111'), storeError('range_too_large'), 'a /111 is twice the limit');
      await assert.rejects(addRange(t.store, '10.0.0.0/15'), storeError('range_too_large'), 'an IPv4 /15');
    });

    test('ranges that overlap, are not canonical CIDR, or have host bits set are refused', async () => {
      await addRange(t.store, '198.51.100.0/30');
      await assert.rejects(addRange(t.store, '198.51.100.2/31'), storeError('range_overlaps'), 'inside an existing range');
      await assert.rejects(addRange(t.store, '198.51.100.0/29'), storeError('range_overlaps'), 'around an existing range');
      for (const bad of ['198.51.101.1/30', '198.51.101.0', '198.51.101/24', '2001:DB8::/120', '2001:db8::0/120', 'not a range/8', '300.0.0.0/8']) {
        await assert.rejects(addRange(t.store, bad), storeError('range_invalid'), bad);
      }
      await assert.rejects(addRange(t.store, '198.51.102.0/30', ['198.51.102.1']), storeError('range_invalid'), 'an exclusion without prefix');
    });

    test('1,000 concurrent assigns against a pool of 100 get exactly 100 distinct IPs; the rest are exhausted', async () => {
      await addRange(t.store, '203.0.113.0/25', ['203.0.113.100/30', '203.0.113.104/29', '203.0.113.112/28']);
      assert.equal((await poolFigures(t.store)).free, 100, 'a pool of 100');
      const outcomes = await Promise.all(Array.from({ length: 1000 }, (_, i) => beginAssign(t.store, nonce(`${i}`), KEY, UNTIL)));
      const ips = outcomes.flatMap((o) => (o.kind === 'reserved' ? [o.ip] : []));
      assert.equal(ips.length, 100, 'reserved');
      assert.equal(new Set(ips).size, 100, 'distinct');
      assert.equal(outcomes.filter((o) => o.kind === 'exhausted').length, 900, 'exhausted');
      assert.deepEqual(await poolFigures(t.store), { free: 0, reserved: 100, quarantined: 0, draining: 0 }, 'figures');
      const [nonces] = await t.store.query<{ n: number }>('SELECT count(*)::int AS n FROM token_nonce');
      assert.equal(nonces!.n, 100, 'an exhausted assign leaves no nonce behind');
    });

    test('a retry with the same token while it is pending gets the same IP; after 200 it is spent', async () => {
      await addRange(t.store, '192.0.2.0/30');
      const first = await beginAssign(t.store, nonce('a'), KEY, UNTIL);
      assert.equal(first.kind, 'reserved', 'first attempt');
      const retry = await beginAssign(t.store, nonce('a'), KEY, UNTIL);
      assert.deepEqual(retry, { kind: 'pending', ip: (first as { ip: string }).ip }, 'same IP on retry');
      assert.equal((await poolFigures(t.store)).reserved, 1, 'the retry reserved nothing more');
      assert.deepEqual(await completeAssign(t.store, nonce('a'), UNTIL + 1), { kind: 'spent', ip: (first as { ip: string }).ip }, '200');
      assert.equal((await stateOf(t, (first as { ip: string }).ip)).reserved_until_day, UNTIL + 1, 'reservation set to reservedUntil');
      assert.deepEqual(await beginAssign(t.store, nonce('a'), KEY, UNTIL), { kind: 'spent' }, 'a second use is token_spent');
      assert.deepEqual(await completeAssign(t.store, nonce('a'), UNTIL), { kind: 'not_pending' }, 'completing twice');
      const [row] = await t.store.query<{ ip: string | null }>('SELECT ip FROM token_nonce');
      assert.equal(row!.ip, null, 'a spent nonce keeps no IP');
    });

    test('concurrent assigns with one token share one IP', async () => {
      await addRange(t.store, '192.0.2.0/28');
      const outcomes = await Promise.all(Array.from({ length: 10 }, () => beginAssign(t.store, nonce('same'), KEY, UNTIL)));
      const ips = new Set(outcomes.map((o) => (o.kind === 'reserved' || o.kind === 'pending' ? o.ip : o.kind)));
      assert.equal(ips.size, 1, `one IP: ${[...ips].join(' ')}`);
      assert.equal(outcomes.filter((o) => o.kind === 'reserved').length, 1, 'one reservation');
    });

    test('a definitive refusal releases the IP and the token; the fifth refusal spends it', async () => {
      await addRange(t.store, '192.0.2.0/32');
      for (let refusal = 1; refusal <= MAX_REFUSALS; refusal++) {
        const begun: BeginAssignOutcome = await beginAssign(t.store, nonce('r'), KEY, UNTIL);
        assert.deepEqual(begun, { kind: 'reserved', ip: '192.0.2.0' }, `attempt ${refusal} gets the only IP again`);
        const refused = await refuseAssign(t.store, nonce('r'));
        const expected = refusal < MAX_REFUSALS ? { kind: 'refused', refusals: refusal } : { kind: 'spent' };
        assert.deepEqual(refused, expected, `refusal ${refusal}`);
        assert.deepEqual(await stateOf(t, '192.0.2.0'), { state: 'free', reserved_until_day: null, quarantine_until_day: null }, 'IP released');
      }
      assert.deepEqual(await beginAssign(t.store, nonce('r'), KEY, UNTIL), { kind: 'spent' }, 'spent after five refusals');
      assert.deepEqual(await refuseAssign(t.store, nonce('r')), { kind: 'not_pending' }, 'nothing pending to refuse');
    });

    test('a token refused while the pool is empty stays usable once an IP is free', async () => {
      await addRange(t.store, '192.0.2.0/32');
      await beginAssign(t.store, nonce('holder'), KEY, UNTIL);
      await beginAssign(t.store, nonce('r'), KEY, UNTIL).then((o) => assert.equal(o.kind, 'exhausted', 'no IP left'));
      await refuseAssign(t.store, nonce('holder'));
      await refuseAssign(t.store, nonce('holder')).then((o) => assert.equal(o.kind, 'not_pending', 'refused already'));
      assert.deepEqual(await beginAssign(t.store, nonce('r'), KEY, UNTIL), { kind: 'reserved', ip: '192.0.2.0' }, 'now it gets the IP');
    });

    test('refresh: reserved or quarantined IPs are refreshable and extended; free, unknown or non-canonical ones are not', async () => {
      await addRange(t.store, '2001:db8::/126');
      const { ip } = (await beginAssign(t.store, nonce('f'), KEY, UNTIL)) as { ip: string };
      assert.ok(await isRefreshable(t.store, ip), 'reserved');
      assert.ok(await extendReservation(t.store, ip, UNTIL + 30), 'extended');
      assert.equal((await stateOf(t, ip)).reserved_until_day, UNTIL + 30, 'to the new day');
      assert.ok(await extendReservation(t.store, ip, UNTIL), 'an earlier day');
      assert.equal((await stateOf(t, ip)).reserved_until_day, UNTIL + 30, 'never shortens a reservation');
      await expireReservations(t.store, UNTIL + 31);
      assert.equal((await stateOf(t, ip)).state, 'quarantined', 'expired');
      assert.ok(await isRefreshable(t.store, ip), 'quarantined is refreshable');
      assert.ok(await extendReservation(t.store, ip, UNTIL + 90), 'back from quarantine');
      assert.deepEqual(await stateOf(t, ip), { state: 'reserved', reserved_until_day: UNTIL + 90, quarantine_until_day: null }, 'reserved again');
      const free = ip === '2001:db8::' ? '2001:db8::1' : '2001:db8::';
      for (const other of [free, '2001:db8::9', '2001:DB8::1', '2001:db8:0::1', 'garbage']) {
        assert.equal(await isRefreshable(t.store, other), false, `${other} is not refreshable`);
        assert.equal(await extendReservation(t.store, other, UNTIL), false, `${other} is not extended`);
      }
    });

    test('expiry: reserved through its last day, quarantined the day after, free again 7 days later, at the exact days', async () => {
      await addRange(t.store, '192.0.2.0/32');
      await beginAssign(t.store, nonce('e'), KEY, TODAY);
      await completeAssign(t.store, nonce('e'), UNTIL);
      assert.deepEqual(await expireReservations(t.store, UNTIL), { quarantined: 0, freed: 0 }, 'on its last day');
      assert.equal((await stateOf(t, '192.0.2.0')).state, 'reserved', 'still reserved on day UNTIL');
      assert.deepEqual(await expireReservations(t.store, UNTIL + 1), { quarantined: 1, freed: 0 }, 'the day after');
      assert.deepEqual(await stateOf(t, '192.0.2.0'), { state: 'quarantined', reserved_until_day: null, quarantine_until_day: UNTIL + 8 }, 'quarantine');
      assert.deepEqual(await poolFigures(t.store), { free: 0, reserved: 0, quarantined: 1, draining: 0 }, 'figures in quarantine');
      assert.deepEqual(await beginAssign(t.store, nonce('next'), KEY, UNTIL + 61), { kind: 'exhausted' }, 'not handed out in quarantine');
      assert.deepEqual(await expireReservations(t.store, UNTIL + 7), { quarantined: 0, freed: 0 }, 'the last day of quarantine');
      assert.deepEqual(await expireReservations(t.store, UNTIL + 8), { quarantined: 0, freed: 1 }, 'quarantine over');
      assert.deepEqual(await stateOf(t, '192.0.2.0'), { state: 'free', reserved_until_day: null, quarantine_until_day: null }, 'free');
    });

    test('an expiry job that ran late catches up from the stored days; a custom quarantine is honoured', async () => {
      await addRange(t.store, '192.0.2.0/31');
      await beginAssign(t.store, nonce('late'), KEY, UNTIL);
      await completeAssign(t.store, nonce('late'), UNTIL);
      assert.deepEqual(await expireReservations(t.store, UNTIL + 100), { quarantined: 1, freed: 1 }, 'both steps at once');
      await beginAssign(t.store, nonce('q'), KEY, UNTIL);
      await completeAssign(t.store, nonce('q'), UNTIL);
      await expireReservations(t.store, UNTIL + 1, 0);
      assert.equal((await poolFigures(t.store)).free, 2, 'a zero-day quarantine frees the day after');
      await assert.rejects(expireReservations(t.store, 1.5), TypeError, 'a fractional day');
      await assert.rejects(expireReservations(t.store, TODAY, -1), TypeError, 'a negative quarantine');
    });

    test('a token still pending when its reservation expires counts as spent and drops its IP', async () => {
      await addRange(t.store, '192.0.2.0/32');
      await beginAssign(t.store, nonce('p'), KEY, UNTIL);
      await expireReservations(t.store, UNTIL + 1);
      const [row] = await t.store.query<{ state: string; ip: string | null }>('SELECT state, ip FROM token_nonce');
      assert.deepEqual({ ...row }, { state: 'spent', ip: null }, 'spent without IP');
      assert.deepEqual(await beginAssign(t.store, nonce('p'), KEY, UNTIL + 70), { kind: 'spent' }, 'a retry is token_spent');
    });

    test('a draining range hands out nothing new, keeps its reservations, and is removed once unused', async () => {
      await addRange(t.store, '192.0.2.0/31');
      const held = (await beginAssign(t.store, nonce('d'), KEY, UNTIL)) as { ip: string };
      await addRange(t.store, '198.51.100.0/32');
      await drainRange(t.store, '192.0.2.0/31');
      assert.deepEqual(await poolFigures(t.store), { free: 1, reserved: 1, quarantined: 0, draining: 1 }, 'figures while draining');
      assert.deepEqual(
        (await listRanges(t.store)).map((r) => ({ ...r })),
        [
          { cidr: '192.0.2.0/31', draining: true, free: 1, reserved: 1, quarantined: 0 },
          { cidr: '198.51.100.0/32', draining: false, free: 1, reserved: 0, quarantined: 0 },
        ],
        'each range with its counts',
      );
      assert.deepEqual(await beginAssign(t.store, nonce('n'), KEY, UNTIL), { kind: 'reserved', ip: '198.51.100.0' }, 'only the active range hands out');
      assert.deepEqual(await beginAssign(t.store, nonce('m'), KEY, UNTIL), { kind: 'exhausted' }, 'the draining address stays unused');
      await assert.rejects(drainRange(t.store, '203.0.113.0/24'), storeError('range_unknown'), 'drain an unknown range');
      await assert.rejects(removeRange(t.store, '203.0.113.0/24'), storeError('range_unknown'), 'remove an unknown range');
      await assert.rejects(removeRange(t.store, '192.0.2.0/31'), storeError('range_busy'), 'a range with a reservation');
      assert.ok(await isRefreshable(t.store, held.ip), 'a draining range keeps serving its reservation');
      await refuseAssign(t.store, nonce('d'));
      await removeRange(t.store, '192.0.2.0/31');
      assert.deepEqual(await poolFigures(t.store), { free: 0, reserved: 1, quarantined: 0, draining: 0 }, 'the active range is left');
      assert.equal(await addRange(t.store, '192.0.2.0/30'), 4, 'the block can be added again');
    });

    test('a retired key forgets its spent and refused nonces, not its pending ones or another key’s', async () => {
      await addRange(t.store, '192.0.2.0/30');
      await beginAssign(t.store, nonce('spent'), KEY, UNTIL).then(() => completeAssign(t.store, nonce('spent'), UNTIL));
      await beginAssign(t.store, nonce('refused'), KEY, UNTIL).then(() => refuseAssign(t.store, nonce('refused')));
      await beginAssign(t.store, nonce('pending'), KEY, UNTIL);
      await beginAssign(t.store, nonce('other'), OTHER_KEY, UNTIL).then(() => completeAssign(t.store, nonce('other'), UNTIL));
      assert.equal(await forgetRetiredKey(t.store, KEY), 2, 'spent and refused');
      assert.deepEqual(await beginAssign(t.store, nonce('other'), OTHER_KEY, UNTIL), { kind: 'spent' }, 'the other key keeps its nonces');
      assert.equal((await beginAssign(t.store, nonce('pending'), KEY, UNTIL)).kind, 'pending', 'pending stays');
    });

    test('backups: put, replace, get, delete; 4096 bytes fit, 4097 do not', async () => {
      const id = bytes(32, 1);
      assert.equal(await getBackup(t.store, id), null, 'none yet');
      await putBackup(t.store, id, bytes(4096, 2));
      assert.deepEqual(await getBackup(t.store, id), bytes(4096, 2), 'exactly 4096 bytes');
      await putBackup(t.store, id, bytes(3, 4));
      assert.deepEqual(await getBackup(t.store, id), bytes(3, 4), 'replaced');
      await assert.rejects(putBackup(t.store, id, bytes(4097, 2)), TypeError, '4097 bytes');
      await assert.rejects(t.store.query('INSERT INTO backup (id, blob) VALUES ($1, $2)', [bytes(32, 9), bytes(4097, 2)]), storeError('store_failed'), 'the table refuses 4097 bytes too');
      assert.equal(await deleteBackup(t.store, id), true, 'deleted');
      assert.equal(await deleteBackup(t.store, id), false, 'nothing left to delete');
      await assert.rejects(getBackup(t.store, bytes(31, 1)), TypeError, 'a 31-byte id');
    });

    test('nonces and key ids of the wrong size are our own bug: TypeError', async () => {
      await assert.rejects(beginAssign(t.store, bytes(31, 0), KEY, UNTIL), TypeError, 'nonce');
      await assert.rejects(beginAssign(t.store, nonce('x'), bytes(33, 0), UNTIL), TypeError, 'key id');
      await assert.rejects(completeAssign(t.store, bytes(0, 0), UNTIL), TypeError, 'complete');
      await assert.rejects(refuseAssign(t.store, bytes(1, 0)), TypeError, 'refuse');
      await assert.rejects(forgetRetiredKey(t.store, bytes(1, 0)), TypeError, 'forget');
    });
  });
}

describe('the pool across processes', { skip: postgresSkip ?? false }, () => {
  let t: TestStore;
  before(async () => {
    t = await openTestStore('postgres');
  });
  after(() => t?.close());

  test('two OS processes making 1,000 assigns against a pool of 100 get exactly 100 distinct IPs', async () => {
    await addRange(t.store, '203.0.113.0/25', ['203.0.113.100/30', '203.0.113.104/29', '203.0.113.112/28']);
    const outcomes = (await runWorkers<BeginAssignOutcome>('reserve', POSTGRES_URL, t.schema!, 2, 500)).flat();
    const ips = outcomes.flatMap((o) => (o.kind === 'reserved' ? [o.ip] : []));
    assert.equal(outcomes.length, 1000, 'every assign answered');
    assert.equal(ips.length, 100, 'reserved');
    assert.equal(new Set(ips).size, 100, 'distinct');
    assert.equal(outcomes.filter((o) => o.kind === 'exhausted').length, 900, 'exhausted');
    assert.deepEqual(await poolFigures(t.store), { free: 0, reserved: 100, quarantined: 0, draining: 0 }, 'figures');
  });
});
