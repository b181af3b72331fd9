import { isIP } from 'node:net';
import { Client, type Entry as SearchEntry, InvalidCredentialsError } from 'ldapts';
import type { IamKey } from '../iam-key.ts';
import { describeError } from './oidc.ts';
import { openSecret, type Provider } from './providers.ts';
import { type FederatedIdentity, FederationRefusal } from './provisioning.ts';
import type { LdapSettings } from './settings.ts';

// uid (OpenLDAP), sAMAccountName and userPrincipalName (Active Directory), or the email: a
// directory evaluates an attribute it does not know as Undefined, so one filter serves both.
const DEFAULT_FILTER = '(|(uid={login})(sAMAccountName={login})(userPrincipalName={login})(mail={login}))';
const MAX_GROUPS = 500;
const MAX_DEPTH = 8;

/** RFC 4515 escaping of a value put into a search filter. */
export function escapeFilter(v: string): string {
  return v.replace(/[*()\\\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** RFC 4514 escaping of one attribute value put into a DN template. */
export function escapeDnValue(v: string): string {
  let out = v.replace(/[\\,+"<>;=\0]/g, (c) => (c === '\0' ? '\\00' : `\\${c}`));
  if (out.startsWith(' ') || out.startsWith('#')) out = `\\${out}`;
  if (out.endsWith(' ')) out = `${out.slice(0, -1)}\\ `;
  return out;
}

/** TLS 1.2+, the system's CAs or the configured one; SNI only for host names (RFC 6066). */
function tlsFor(s: LdapSettings) {
  const host = new URL(s.url).hostname;
  return { minVersion: 'TLSv1.2' as const, ...(s.caCertificate ? { ca: [s.caCertificate] } : {}), ...(isIP(host) ? {} : { servername: host }) };
}

function connect(s: LdapSettings): Client {
  const url = new URL(s.url);
  const tlsOptions = tlsFor(s);
  return new Client({ url: s.url, timeout: 10_000, connectTimeout: 5_000, strictDN: true, ...(url.protocol === 'ldaps:' ? { tlsOptions } : {}) });
}

async function open(s: LdapSettings): Promise<Client> {
  const c = connect(s);
  if (s.startTls) {
    await c.startTLS(tlsFor(s));
  }
  return c;
}

const first = (e: SearchEntry, attr: string): string | undefined => {
  const v = e[attr];
  const x = Array.isArray(v) ? v[0] : v;
  return x === undefined ? undefined : Buffer.isBuffer(x) ? x.toString('hex') : String(x);
};
const all = (e: SearchEntry, attr: string): string[] => {
  const v = e[attr];
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
};

/** The value of a DN's first RDN (the group name people know: cn=developers,... → developers). */
export function rdnValue(dn: string): string {
  const m = /^[^=]+=((?:\\.|[^,\\])*)/.exec(dn);
  return (m?.[1] ?? dn).replace(/\\(.)/g, '$1');
}

/**
 * Groups containing the user's groups, and so on up (nested groups), by searching the group
 * base for `member=<dn>`: works on OpenLDAP and AD alike (AD's in-chain matching rule would be
 * one query, but is AD-only).
 */
async function parentGroups(c: Client, base: string, direct: string[]): Promise<string[]> {
  const seen = new Set(direct.map((d) => d.toLowerCase()));
  const out = [...direct];
  let frontier = [...direct];
  for (let depth = 0; depth < MAX_DEPTH && frontier.length > 0 && out.length < MAX_GROUPS; depth++) {
    const next: string[] = [];
    for (const dn of frontier) {
      const { searchEntries } = await c.search(base, { scope: 'sub', filter: `(member=${escapeFilter(dn)})`, attributes: ['dn'], sizeLimit: MAX_GROUPS });
      for (const g of searchEntries) {
        if (seen.has(g.dn.toLowerCase())) continue;
        seen.add(g.dn.toLowerCase());
        out.push(g.dn);
        next.push(g.dn);
      }
    }
    frontier = next;
  }
  return out.slice(0, MAX_GROUPS);
}

/**
 * LDAP / AD sign-in: over LDAPS or StartTLS (plain LDAP only when explicitly allowed), bind as
 * the user (DN template) or search with the service account then bind as the entry found;
 * groups from `memberOf` (and their parents when nestedGroups is set). The subject is the
 * entry's entryUUID (objectGUID on AD), which survives renames; the DN when neither exists.
 */
export async function ldapLogin(key: IamKey, p: Provider, login: string, password: string): Promise<FederatedIdentity> {
  const s = p.settings as LdapSettings;
  // An empty password is an unauthenticated bind, which directories accept: never a sign-in.
  if (password.length === 0 || login.trim().length === 0) throw new FederationRefusal('bad-credentials: empty login or password');
  const attrs = { email: s.attributes?.email ?? 'mail', name: s.attributes?.name ?? 'cn' };
  const wanted = ['entryUUID', 'objectGUID', 'memberOf', attrs.email, attrs.name];
  let c: Client;
  try {
    c = await open(s);
  } catch (err) {
    throw new FederationRefusal(`directory-unreachable: ${describeError(err)}`);
  }
  try {
    let entry: SearchEntry | undefined;
    if (s.userDnTemplate) {
      const dn = s.userDnTemplate.replaceAll('{login}', escapeDnValue(login));
      await c.bind(dn, password);
      entry = (await c.search(dn, { scope: 'base', attributes: wanted })).searchEntries[0];
    } else {
      await c.bind(s.bindDn as string, openSecret(key, p) ?? '');
      const filter = (s.userFilter ?? DEFAULT_FILTER).replaceAll('{login}', escapeFilter(login));
      const found = (await c.search(s.userBase as string, { scope: 'sub', filter, attributes: wanted, sizeLimit: 2 })).searchEntries;
      if (found.length === 0) throw new FederationRefusal('unknown-user');
      if (found.length > 1) throw new FederationRefusal('ambiguous-login: several entries match');
      entry = found[0] as SearchEntry;
      // The user's own bind proves the password; their entry was read with the service account.
      await c.bind(entry.dn, password);
    }
    if (!entry) throw new FederationRefusal('unknown-user');
    let groups = all(entry, 'memberOf');
    if (s.nestedGroups && s.groupBase) {
      // Group lookups run as the service account when there is one (the user may not read groups).
      if (s.bindDn) await c.bind(s.bindDn, openSecret(key, p) ?? '');
      groups = await parentGroups(c, s.groupBase, groups);
    }
    const email = first(entry, attrs.email);
    if (!email) throw new FederationRefusal(`claim-missing: ${attrs.email}`);
    return { subject: first(entry, 'entryUUID') ?? first(entry, 'objectGUID') ?? entry.dn, email, name: first(entry, attrs.name) ?? '', groups: groups.map(rdnValue) };
  } catch (err) {
    if (err instanceof FederationRefusal) throw err;
    if (err instanceof InvalidCredentialsError) throw new FederationRefusal('bad-credentials');
    throw new FederationRefusal(`directory-error: ${describeError(err)}`);
  } finally {
    await c.unbind().catch(() => {});
  }
}

/** `accord idp test` for LDAP: TLS connection, the service account's bind, the user base. */
export async function ldapTest(key: IamKey, p: Provider): Promise<{ ok: boolean; checks: { name: string; ok: boolean; detail: string }[] }> {
  const s = p.settings as LdapSettings;
  const checks: { name: string; ok: boolean; detail: string }[] = [];
  let c: Client;
  try {
    c = await open(s);
    // ldapts connects lazily: a first operation proves the connection (and the TLS handshake).
    await c.search('', { scope: 'base', attributes: ['supportedLDAPVersion'] });
    checks.push({ name: 'connection', ok: true, detail: `${new URL(s.url).protocol === 'ldaps:' ? 'LDAPS' : s.startTls ? 'StartTLS' : 'plain LDAP'} to ${new URL(s.url).host}` });
  } catch (err) {
    checks.push({ name: 'connection', ok: false, detail: describeError(err) });
    return { ok: false, checks };
  }
  try {
    if (s.bindDn) {
      try {
        await c.bind(s.bindDn, openSecret(key, p) ?? '');
        checks.push({ name: 'service-bind', ok: true, detail: s.bindDn });
      } catch (err) {
        checks.push({ name: 'service-bind', ok: false, detail: err instanceof InvalidCredentialsError ? 'invalid credentials' : describeError(err) });
        return { ok: false, checks };
      }
      try {
        await c.search(s.userBase as string, { scope: 'base', attributes: ['dn'] });
        checks.push({ name: 'user-base', ok: true, detail: s.userBase as string });
      } catch (err) {
        checks.push({ name: 'user-base', ok: false, detail: describeError(err) });
      }
    }
  } finally {
    await c.unbind().catch(() => {});
  }
  return { ok: checks.every((x) => x.ok), checks };
}
