// The only IP forms tokens carry (SPEC §2): an IPv4 dotted quad, or IPv6 in RFC 5952 canonical
// text. Anything else is refused, so one address always has exactly one spelling in a token.

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HEX_GROUP = /^[0-9a-f]{1,4}$/;

export function isIpv4(text: string): boolean {
  return IPV4.test(text);
}

/** Parses an IPv6 address (lower-case hex, optional `::`, optional trailing dotted quad). */
function parseIpv6(text: string): number[] | null {
  if (text.length > 45 || !/^[0-9a-f:.]+$/.test(text)) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (half: string): number[] | null => {
    if (half === '') return [];
    const out: number[] = [];
    const parts = half.split(':');
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (i === parts.length - 1 && part.includes('.')) {
        if (!isIpv4(part)) return null;
        const o = part.split('.').map(Number) as [number, number, number, number];
        out.push((o[0] << 8) | o[1], (o[2] << 8) | o[3]);
      } else {
        if (!HEX_GROUP.test(part)) return null;
        out.push(parseInt(part, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === null || tail === null) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const missing = 8 - head.length - tail.length;
  if (missing < 1) return null;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}

/** RFC 5952 §4: lower case, no leading zeros, the longest run (≥ 2) of zero groups as `::`. */
function formatIpv6(groups: number[]): string {
  // RFC 5952 §5: an IPv4-mapped address ends in its dotted quad.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [a, b] = [groups[6]!, groups[7]!];
    return `::ffff:${a >> 8}.${a & 0xff}.${b >> 8}.${b & 0xff}`;
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** True for an IPv4 dotted quad or an IPv6 address already in RFC 5952 canonical form. */
export function isCanonicalIp(text: string): boolean {
  if (isIpv4(text)) return true;
  const groups = parseIpv6(text);
  return groups !== null && formatIpv6(groups) === text;
}
