import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCanonicalIp, isIpv4 } from '../ip.js';

test('IPv4 dotted quads are accepted, other spellings are not', () => {
  for (const ip of ['0.0.0.0', '192.0.2.1', '255.255.255.255', '10.20.30.40']) assert.ok(isCanonicalIp(ip), ip);
  for (const ip of ['256.0.0.1', '01.2.3.4', '1.2.3', '1.2.3.4.5', '1.2.3.4 ', ' 1.2.3.4', '1..2.3', '0x1.2.3.4', '']) {
    assert.equal(isIpv4(ip), false, ip);
    assert.equal(isCanonicalIp(ip), false, ip);
  }
});

test('IPv6 in RFC 5952 canonical form is accepted', () => {
  for (const ip of ['2001:db8::1', '::', '::1', '2001:db8:0:1:1:1:1:1', '2001:db8::1:0:0:1', 'fe80::', '1:2:3:4:5:6:7:8', '::ffff:192.0.2.1', '2001:db8::']) {
    assert.ok(isCanonicalIp(ip), ip);
  }
});

test('IPv6 in any non-canonical spelling is refused (RFC 5952 §4)', () => {
  const cases = [
    '2001:DB8::1', // §4.3 lower case
    '2001:0db8::1', // §4.1 no leading zeros
    '2001:db8:0:0:0:0:2:1', // §4.2.1 shorten the longest zero run
    '2001:db8::0:1', // §4.2.1 as far as possible
    '2001:db8::1:1:1:1:1', // §4.2.2 a single zero group is not "::"
    '2001::1:0:0:0:1', // §4.2.3 the longest run
    '2001:db8:0:0:1::1', // §4.2.3 the first of equal runs
    '::ffff:c000:201', // §5 IPv4-mapped ends in a dotted quad
    '1:2:3:4:5:6:7:8:9', '1::2::3', ':::', '1:2:3:4:5:6:7', '12345::1', 'g::1', '::1.2.3', '::1.2.3.4.5',
    '1:2:3:4:5:6:7::8', 'x'.repeat(46),
  ];
  for (const ip of cases) assert.equal(isCanonicalIp(ip), false, ip);
});
