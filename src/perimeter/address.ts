import { isIP } from 'node:net';

/** An address as bytes: 4 for IPv4 (IPv4-mapped IPv6 folded into IPv4), 16 for IPv6. */
export interface ParsedAddress {
  readonly version: 4 | 6;
  readonly bytes: Uint8Array;
}

function stripDecoration(ip: string): string {
  let a = ip.trim();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  const zone = a.indexOf('%');
  return zone >= 0 ? a.slice(0, zone) : a;
}

function ipv4Bytes(a: string): Uint8Array {
  return Uint8Array.from(a.split('.').map(Number));
}

/** The eight 16-bit groups of an address `isIP` accepted as IPv6. */
function ipv6Groups(address: string): number[] {
  let s = address;
  const tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    const o = ipv4Bytes(s.slice(lastColon + 1));
    tail.push(((o[0] ?? 0) << 8) | (o[1] ?? 0), ((o[2] ?? 0) << 8) | (o[3] ?? 0));
    s = s.slice(0, lastColon + 1);
  }
  const hex = (part: string): number[] =>
    part
      .split(':')
      .filter((x) => x !== '')
      .map((x) => Number.parseInt(x, 16));
  const gap = s.indexOf('::');
  if (gap < 0) return [...hex(s), ...tail];
  const head = hex(s.slice(0, gap));
  const rest = [...hex(s.slice(gap + 2)), ...tail];
  return [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
}

/** Parses an IPv4 or IPv6 address (brackets and zone ids tolerated); undefined when it is none. */
export function parseAddress(ip: string | null | undefined): ParsedAddress | undefined {
  if (ip === null || ip === undefined) return undefined;
  const a = stripDecoration(ip);
  const version = isIP(a);
  if (version === 4) return { version: 4, bytes: ipv4Bytes(a) };
  if (version !== 6) return undefined;
  const g = ipv6Groups(a);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    const [hi, lo] = [g[6] ?? 0, g[7] ?? 0];
    return { version: 4, bytes: Uint8Array.of(hi >> 8, hi & 255, lo >> 8, lo & 255) };
  }
  const bytes = new Uint8Array(16);
  g.forEach((x, i) => {
    bytes[2 * i] = x >> 8;
    bytes[2 * i + 1] = x & 255;
  });
  return { version: 6, bytes };
}

/**
 * The key a source address is counted under: IPv4 as is, IPv6 by its /64 (one subscriber
 * usually holds a whole /64 and could otherwise rotate through 2^64 addresses). The same
 * spelling as the sign-in lockout's IP subject. Not an address (a proxy passing garbage): the
 * text itself, bounded; absent: `unknown`.
 */
export function sourceKey(ip: string | null | undefined): string {
  const p = parseAddress(ip);
  if (!p) return ip ? stripDecoration(ip).slice(0, 100) || 'unknown' : 'unknown';
  if (p.version === 4) return p.bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 8; i += 2) groups.push((((p.bytes[i] ?? 0) << 8) | (p.bytes[i + 1] ?? 0)).toString(16));
  return `${groups.join(':')}::/64`;
}

/** The IPv4 /24 network of an address (`192.0.2.0/24`); undefined for IPv6 and non-addresses. */
export function ipv4Network24(ip: string | null | undefined): string | undefined {
  const p = parseAddress(ip);
  if (p?.version !== 4) return undefined;
  return `${p.bytes[0]}.${p.bytes[1]}.${p.bytes[2]}.0/24`;
}

interface Range {
  readonly version: 4 | 6;
  readonly bytes: Uint8Array;
  readonly bits: number;
}

function parseRange(entry: string): Range {
  const slash = entry.indexOf('/');
  const addr = parseAddress(slash < 0 ? entry : entry.slice(0, slash));
  if (!addr) throw new TypeError(`not an address or CIDR range: ${entry}`);
  // An IPv4-mapped range (::ffff:10.0.0.0/104) is the IPv4 range it maps.
  const mapped = slash >= 0 && addr.version === 4 && entry.includes(':');
  const max = addr.version === 4 ? 32 : 128;
  let bits = slash < 0 ? max : Number(entry.slice(slash + 1));
  if (mapped) bits -= 96;
  if (!Number.isInteger(bits) || bits < 0 || bits > max) throw new TypeError(`bad prefix length in ${entry}`);
  return { version: addr.version, bytes: addr.bytes, bits };
}

function inRange(a: ParsedAddress, r: Range): boolean {
  if (a.version !== r.version) return false;
  let bits = r.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((a.bytes[i] ?? 0) & mask) !== ((r.bytes[i] ?? 0) & mask)) return false;
  }
  return true;
}

/**
 * A matcher for a list of addresses and CIDR ranges (IPv4 and IPv6). A malformed entry throws a
 * TypeError naming it (configuration is validated before it gets here).
 */
export function addressMatcher(list: readonly string[]): (ip: string | null | undefined) => boolean {
  const ranges = list.map(parseRange);
  return (ip) => {
    const a = parseAddress(ip);
    return a !== undefined && ranges.some((r) => inRange(a, r));
  };
}
