import type { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { TlsError } from './tls-error.ts';

/** One subject alternative name, in the canonical form used both to issue and to compare. */
export interface SanEntry {
  readonly type: 'dns' | 'ip';
  readonly value: string;
}

// A local listener is always reached through these, whatever else the operator configures.
const DEFAULT_NAMES = ['localhost', '127.0.0.1', '::1'] as const;
const MAX_DNS_NAME = 253;
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
// The CN has a 64-character upper bound (RFC 5280 ub-common-name).
const MAX_COMMON_NAME = 64;

/** Rewrites an IP address to one spelling, so `::1` and `0:0:0:0:0:0:0:1` compare equal. */
export function canonicalIp(ip: string): string {
  // WHATWG URL serialises IPv6 in RFC 5952 form and turns embedded IPv4 into hex groups, which
  // is also the only IPv6 spelling @peculiar/asn1-x509's encoder understands.
  const host = new URL(isIP(ip) === 6 ? `http://[${ip}]` : `http://${ip}`).hostname;
  return host.startsWith('[') ? host.slice(1, -1) : host;
}

function invalid(path: string, reason: string): TlsError {
  return new TlsError('TLS_INVALID_HOSTNAME', `${path} ${reason}`);
}

function toSanEntry(raw: unknown, path: string): SanEntry {
  if (typeof raw !== 'string') throw invalid(path, 'must be a string');
  let name = raw.trim();
  if (name.startsWith('[') && name.endsWith(']')) name = name.slice(1, -1);
  if (name === '') throw invalid(path, 'must not be empty');
  // A zone id (fe80::1%eth0) only means something on one host and has no encoding in a SAN.
  if (name.includes('%')) throw invalid(path, `(${JSON.stringify(raw)}) must not carry a zone id`);
  if (isIP(name) !== 0) return { type: 'ip', value: canonicalIp(name) };

  const ascii = domainToASCII(name.endsWith('.') ? name.slice(0, -1) : name);
  if (ascii === '' || isIP(ascii) !== 0 || ascii.length > MAX_DNS_NAME) {
    throw invalid(path, `(${JSON.stringify(raw)}) is neither an IP address nor a DNS name`);
  }
  const labels = ascii.split('.');
  const wildcard = labels[0] === '*' && labels.length > 2;
  const checked = wildcard ? labels.slice(1) : labels;
  // An all-digit last label is read as IPv4 by URL parsers, so such a name could never match.
  if (!checked.every((label) => LABEL.test(label)) || /^\d+$/.test(labels.at(-1) ?? '')) {
    throw invalid(path, `(${JSON.stringify(raw)}) is not a valid DNS name`);
  }
  return { type: 'dns', value: ascii };
}

/**
 * The SAN set a server certificate must carry: the local defaults plus the requested
 * hostnames, validated, canonicalised and without duplicates (defaults first).
 */
export function requiredSans(hostnames: readonly string[] | undefined): SanEntry[] {
  const entries = new Map<string, SanEntry>();
  if (hostnames !== undefined && !Array.isArray(hostnames)) {
    throw new TlsError('TLS_INVALID_HOSTNAME', 'hostnames must be an array of strings');
  }
  const named: [unknown, string][] = [
    ...DEFAULT_NAMES.map((name): [string, string] => [name, 'default hostname']),
    ...(hostnames ?? []).map((name, i): [unknown, string] => [name, `hostnames[${i}]`]),
  ];
  for (const [name, path] of named) {
    const entry = toSanEntry(name, path);
    entries.set(`${entry.type}:${entry.value}`, entry);
  }
  return [...entries.values()];
}

/**
 * The DNS and IP names of a certificate, read from Node's `subjectAltName` text. Parsing Node's
 * documented format keeps @peculiar/x509 (about 0.1 s to load, twice that through tsx) off the
 * path of an ordinary restart. Anything unparseable is dropped, which at worst re-issues.
 */
export function sansOf(cert: X509Certificate): SanEntry[] {
  const text = cert.subjectAltName ?? '';
  // One entry is "<kind>:<value>", the value being a JSON string literal when it holds
  // characters that would make the list ambiguous.
  const entry = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,"]*)(?:, |$)/y;
  const entries: SanEntry[] = [];
  while (entry.lastIndex < text.length) {
    const match = entry.exec(text);
    if (match === null) break;
    const [, kind, raw = ''] = match;
    let value: string;
    try {
      value = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
    } catch {
      break;
    }
    if (kind === 'DNS') entries.push({ type: 'dns', value: value.toLowerCase() });
    else if (kind === 'IP Address' && isIP(value) !== 0) entries.push({ type: 'ip', value: canonicalIp(value) });
  }
  return entries;
}

/** Tells whether every required name is present in a certificate's SANs (exact match). */
export function sansCover(present: readonly SanEntry[], required: readonly SanEntry[]): boolean {
  const have = new Set(present.map((entry) => `${entry.type}:${entry.value}`));
  return required.every((entry) => have.has(`${entry.type}:${entry.value}`));
}

/** The subject CN for a server certificate: the first configured DNS name, for people reading it. */
export function commonNameFor(sans: readonly SanEntry[]): string {
  const extra = sans.find(
    (entry) => entry.type === 'dns' && entry.value !== 'localhost' && entry.value.length <= MAX_COMMON_NAME,
  );
  return extra?.value ?? 'localhost';
}
