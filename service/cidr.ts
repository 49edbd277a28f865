// CIDR blocks as the pool takes them (SPEC §11, store/ip-range.ts): the canonical text only —
// an IP in SPEC §2's form, an explicit prefix, host bits zero — so a flag is refused at start-up
// with its name rather than by the database later.

import { isCanonicalIp, isIpv4 } from '../protocol/ip.js';

function ipv4Bytes(text: string): number[] {
  return text.split('.').map(Number);
}

/** The 16 bytes of an IPv6 address already known to be canonical. */
function ipv6Bytes(text: string): number[] {
  let groups = text;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted !== null) {
    const [a, b, c, d] = ipv4Bytes(dotted[1]!) as [number, number, number, number];
    groups = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = groups.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const all = [...headGroups, ...new Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  return all.flatMap((group) => {
    const value = parseInt(group, 16);
    return [value >> 8, value & 0xff];
  });
}

export interface Cidr {
  readonly text: string;
  /** How many addresses the block holds (a float past 2^53: only compared with limits). */
  readonly size: number;
}

/** The block, or null when `text` is not a canonical CIDR block. */
export function parseCidr(text: string): Cidr | null {
  const match = /^([^/]+)\/(0|[1-9]\d{0,2})$/.exec(text);
  if (match === null || !isCanonicalIp(match[1]!)) return null;
  const bytes = isIpv4(match[1]!) ? ipv4Bytes(match[1]!) : ipv6Bytes(match[1]!);
  const prefix = Number(match[2]);
  const bits = bytes.length * 8;
  if (prefix > bits) return null;
  for (let bit = prefix; bit < bits; bit++) {
    if ((bytes[bit >> 3]! >> (7 - (bit & 7))) & 1) return null;
  }
  return { text, size: 2 ** (bits - prefix) };
}
