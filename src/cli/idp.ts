import type { Command } from 'commander';
import { AccordError } from '../errors/index.ts';
import { action, sessionClient, withJson } from './command.ts';
import { table } from './output.ts';
import { readArgFile } from './profile.ts';

const seg = encodeURIComponent;
const collect = (value: string, previous: string[] = []) => [...previous, value];

interface Mapping {
  id: string;
  group: string;
  kind: string;
  role: string;
  stage: string | null;
  app: string | null;
}
interface ProviderOut {
  name: string;
  kind: string;
  enabled: boolean;
  console: boolean;
  stages: string[];
  settings: Record<string, unknown>;
  secretSet: boolean;
  createdAt: string;
  mappings: Mapping[];
}
interface TestOut {
  ok: boolean;
  checks: { name: string; ok: boolean; detail: string }[];
}

const mappingText = (m: Mapping) => (m.kind === 'app-role' ? `app ${m.app} role ${m.role} on ${m.stage}` : m.stage ? `role ${m.role} on ${m.stage}` : `role ${m.role}`);
const attachText = (p: { console: boolean; stages: string[] }) => [...(p.console ? ['console'] : []), ...p.stages.map((s) => `stage ${s}`)].join(', ') || 'nowhere';

interface AttachOpts {
  tenant: string;
  console?: boolean;
  stage?: string[];
}
const attachOptions = (c: Command) =>
  c
    .requiredOption('--tenant <name>', 'tenant')
    .option('--console', "attach to the tenant's console sign-in")
    .option('--stage <name>', "attach to a stage's end-user sign-in (repeatable)", collect);

async function add(out: Parameters<Parameters<typeof action>[0]>[0], kind: 'oidc' | 'ldap' | 'saml', name: string, opts: AttachOpts, settings: Record<string, unknown>, secret: string | undefined) {
  const { client } = sessionClient();
  const v = await client.call<ProviderOut>('POST', `/api/v1/tenants/${seg(opts.tenant)}/idps`, {
    name,
    kind,
    settings,
    ...(secret ? { secret } : {}),
    ...(opts.console ? { console: true } : {}),
    ...(opts.stage?.length ? { stages: opts.stage } : {}),
  });
  out.result(v, (p: ProviderOut) => `Identity provider ${p.name} (${p.kind}) added to ${opts.tenant}, attached to ${attachText(p)}. Check it with: accord idp test ${p.name} --tenant ${opts.tenant}`);
}


/**
 * The three settings a SAML provider needs, read from the IdP's metadata XML: its entityID, the
 * SSO URL of the HTTP-Redirect binding and its signing certificate. The server validates the
 * result (https URL, certificate parses) as it does for settings given one by one.
 */
export function samlSettingsFromMetadata(xml: string): { entryPoint: string; idpIssuer: string; idpCertificate: string } {
  const bad = (what: string) => new AccordError('CLI_USAGE', { message: `The IdP metadata has no ${what}.` });
  const entity = /<(?:\w+:)?EntityDescriptor\b[^>]*\sentityID="([^"]+)"/.exec(xml)?.[1];
  if (!entity) throw bad('EntityDescriptor entityID');
  const sso = [...xml.matchAll(/<(?:\w+:)?SingleSignOnService\b([^>]*)>/g)].map((m) => m[1] as string).find((a) => /Binding="urn:oasis:names:tc:SAML:2\.0:bindings:HTTP-Redirect"/.test(a));
  const location = sso ? /\sLocation="([^"]+)"/.exec(sso)?.[1] : undefined;
  if (!location) throw bad('SingleSignOnService with the HTTP-Redirect binding');
  // The signing key: a KeyDescriptor use="signing", or one without use (for both).
  const keys = [...xml.matchAll(/<(?:\w+:)?KeyDescriptor\b([^>]*)>([\s\S]*?)<\/(?:\w+:)?KeyDescriptor>/g)];
  const key = keys.find((k) => /use="signing"/.test(k[1] as string)) ?? keys.find((k) => !/use=/.test(k[1] as string));
  const b64 = key ? /<(?:\w+:)?X509Certificate>([^<]+)</.exec(key[2] as string)?.[1]?.replace(/\s+/g, '') : undefined;
  if (!b64) throw bad('signing certificate (KeyDescriptor X509Certificate)');
  const xmlText = (v: string) => v.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>');
  return { entryPoint: xmlText(location), idpIssuer: xmlText(entity), idpCertificate: `-----BEGIN CERTIFICATE-----\n${b64.match(/.{1,64}/g)?.join('\n')}\n-----END CERTIFICATE-----\n` };
}

/** `accord idp ...`: a tenant's identity providers (OIDC, LDAP), group mappings, re-sync. */
export function registerIdpCommands(program: Command): void {
  const idp = program.command('idp').description("a tenant's identity providers (OpenID Connect, SAML 2.0, LDAP / Active Directory) and group → role mappings");
  const addCmd = idp.command('add').description('add an identity provider');
  withJson(
    attachOptions(
      addCmd
        .command('oidc <name>')
        .description('an OpenID Connect provider (authorization code + PKCE); redirect URI: <publicUrl>/api/v1/federation/<tenant>/<name>/oidc/callback')
        .requiredOption('--issuer <url>', 'issuer URL (https; discovery at /.well-known/openid-configuration)')
        .requiredOption('--client-id <id>', 'client id registered at the provider')
        .requiredOption('--client-secret-file <file>', 'file holding the client secret (never on the command line)')
        .option('--scope <scope>', 'scope to request (repeatable; default openid email profile)', collect)
        .option('--algorithm <alg>', 'the one ID token signing algorithm accepted (default RS256)')
        .option('--clock-skew <seconds>', 'clock skew tolerated on ID token times (default 30)')
        .option('--userinfo', 'also read the userinfo endpoint (claims the ID token lacks, e.g. groups)')
        .option('--claim-email <claim>', 'claim holding the email (default email)')
        .option('--claim-name <claim>', 'claim holding the display name (default name)')
        .option('--claim-groups <claim>', 'claim holding the groups (default groups)')
        .option('--ca-file <file>', "PEM of a private CA the provider's certificate chains to"),
    ),
  ).action(
    action(async (out, name: string, o: AttachOpts & { issuer: string; clientId: string; clientSecretFile: string; scope?: string[]; algorithm?: string; clockSkew?: string; userinfo?: boolean; claimEmail?: string; claimName?: string; claimGroups?: string; caFile?: string }) => {
      const claims = { ...(o.claimEmail ? { email: o.claimEmail } : {}), ...(o.claimName ? { name: o.claimName } : {}), ...(o.claimGroups ? { groups: o.claimGroups } : {}) };
      const settings = {
        issuer: o.issuer,
        clientId: o.clientId,
        ...(o.scope?.length ? { scopes: o.scope } : {}),
        ...(o.algorithm ? { algorithm: o.algorithm } : {}),
        ...(o.clockSkew ? { clockSkewSeconds: Number(o.clockSkew) } : {}),
        ...(o.userinfo ? { userinfo: true } : {}),
        ...(Object.keys(claims).length ? { claims } : {}),
        ...(o.caFile ? { caCertificate: readArgFile(o.caFile, '--ca-file') } : {}),
      };
      await add(out, 'oidc', name, o, settings, readArgFile(o.clientSecretFile, '--client-secret-file', { trimNewline: true }));
    }),
  );
  withJson(
    attachOptions(
      addCmd
        .command('ldap <name>')
        .description('an LDAP / Active Directory directory (LDAPS or StartTLS); users sign in with their directory login and password')
        .requiredOption('--url <url>', 'ldaps://host:636 (or ldap://host:389 with --start-tls)')
        .option('--start-tls', 'upgrade an ldap:// connection with StartTLS')
        .option('--ca-file <file>', "PEM of the CA the directory's certificate chains to")
        .option('--user-dn-template <dn>', 'bind as the user: a DN with {login}, e.g. uid={login},ou=people,dc=example,dc=com')
        .option('--bind-dn <dn>', 'search then bind: the service account')
        .option('--bind-password-file <file>', "file holding the service account's password")
        .option('--user-base <dn>', 'search then bind: where users are')
        .option('--user-filter <filter>', 'search filter with {login} (default: uid, sAMAccountName, userPrincipalName or mail)')
        .option('--group-base <dn>', 'where groups are (for nested groups)')
        .option('--nested-groups', 'also count groups that contain the user through other groups')
        .option('--attr-email <attr>', 'attribute holding the email (default mail)')
        .option('--attr-name <attr>', 'attribute holding the display name (default cn)'),
    ),
  ).action(
    action(async (out, name: string, o: AttachOpts & { url: string; startTls?: boolean; caFile?: string; userDnTemplate?: string; bindDn?: string; bindPasswordFile?: string; userBase?: string; userFilter?: string; groupBase?: string; nestedGroups?: boolean; attrEmail?: string; attrName?: string }) => {
      const attributes = { ...(o.attrEmail ? { email: o.attrEmail } : {}), ...(o.attrName ? { name: o.attrName } : {}) };
      const settings = {
        url: o.url,
        ...(o.startTls ? { startTls: true } : {}),
        ...(o.caFile ? { caCertificate: readArgFile(o.caFile, '--ca-file') } : {}),
        ...(o.userDnTemplate ? { userDnTemplate: o.userDnTemplate } : {}),
        ...(o.bindDn ? { bindDn: o.bindDn } : {}),
        ...(o.userBase ? { userBase: o.userBase } : {}),
        ...(o.userFilter ? { userFilter: o.userFilter } : {}),
        ...(o.groupBase ? { groupBase: o.groupBase } : {}),
        ...(o.nestedGroups ? { nestedGroups: true } : {}),
        ...(Object.keys(attributes).length ? { attributes } : {}),
      };
      await add(out, 'ldap', name, o, settings, o.bindPasswordFile ? readArgFile(o.bindPasswordFile, '--bind-password-file', { trimNewline: true }) : undefined);
    }),
  );
  withJson(
    attachOptions(
      addCmd
        .command('saml <name>')
        .description(
          'a SAML 2.0 IdP (SP-initiated, signed assertions required); give the IdP <publicUrl>/api/v1/federation/<tenant>/<name>/saml/metadata (entity id, ACS)',
        )
        .option('--metadata-file <file>', "the IdP's metadata XML (entity id, SSO URL, signing certificate)")
        .option('--entity-id <id>', "the IdP's entity id (Issuer), without --metadata-file")
        .option('--sso-url <url>', "the IdP's SSO URL for the HTTP-Redirect binding (https), without --metadata-file")
        .option('--cert-file <file>', "PEM of the IdP's signing certificate, without --metadata-file")
        .option('--clock-skew <seconds>', 'clock skew tolerated on assertion times (default 30)')
        .option('--attr-email <name>', 'attribute holding the email (default email)')
        .option('--attr-name <name>', 'attribute holding the display name (default name)')
        .option('--attr-groups <name>', 'attribute holding the groups (default groups)'),
    ),
  ).action(
    action(async (out, name: string, o: AttachOpts & { metadataFile?: string; entityId?: string; ssoUrl?: string; certFile?: string; clockSkew?: string; attrEmail?: string; attrName?: string; attrGroups?: string }) => {
      let base: { entryPoint: string; idpIssuer: string; idpCertificate: string };
      if (o.metadataFile) base = samlSettingsFromMetadata(readArgFile(o.metadataFile, '--metadata-file'));
      else if (o.entityId && o.ssoUrl && o.certFile) base = { entryPoint: o.ssoUrl, idpIssuer: o.entityId, idpCertificate: readArgFile(o.certFile, '--cert-file') };
      else throw new AccordError('CLI_USAGE', { message: 'Give --metadata-file, or --entity-id, --sso-url and --cert-file.' });
      const attributes = { ...(o.attrEmail ? { email: o.attrEmail } : {}), ...(o.attrName ? { name: o.attrName } : {}), ...(o.attrGroups ? { groups: o.attrGroups } : {}) };
      const settings = { ...base, ...(o.clockSkew ? { clockSkewSeconds: Number(o.clockSkew) } : {}), ...(Object.keys(attributes).length ? { attributes } : {}) };
      await add(out, 'saml', name, o, settings, undefined);
    }),
  );
  withJson(idp.command('list').description('identity providers, where they are attached, their mappings (never a secret)').requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, o: { tenant: string }) => {
      const { client } = sessionClient();
      const v = await client.call<{ providers: ProviderOut[] }>('GET', `/api/v1/tenants/${seg(o.tenant)}/idps`);
      out.result(v.providers, (ps: ProviderOut[]) =>
        ps.length === 0
          ? 'No identity providers.'
          : [
              table(ps.map((p) => ({ name: p.name, kind: p.kind, enabled: String(p.enabled), attached: attachText(p), secret: p.secretSet ? 'set' : '-', mappings: String(p.mappings.length) })), ['name', 'kind', 'enabled', 'attached', 'secret', 'mappings']),
              ...ps.flatMap((p) => p.mappings.map((m) => `${p.name}: group ${JSON.stringify(m.group)} -> ${mappingText(m)}  (${m.id})`)),
            ].join('\n'),
      );
    }),
  );
  withJson(idp.command('test <name>').description('check that the provider answers and is configured right; exits 1 with the reason if not').requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, name: string, o: { tenant: string }) => {
      const { client } = sessionClient();
      const v = await client.call<TestOut>('POST', `/api/v1/tenants/${seg(o.tenant)}/idps/${seg(name)}/test`);
      if (!v.ok) {
        const failed = v.checks.filter((c) => !c.ok);
        throw new AccordError('IAM_IDP_INVALID', { message: `Identity provider ${name} failed its test: ${failed.map((c) => `${c.name}: ${c.detail}`).join('; ')}.`, details: { reason: failed[0]?.name ?? 'test', checks: v.checks } });
      }
      out.result(v, (t: TestOut) => [`Identity provider ${name} works.`, ...t.checks.map((c) => `  ok  ${c.name}: ${c.detail}`)].join('\n'));
    }),
  );
  withJson(idp.command('remove <name>').description('remove a provider, its mappings and the grants they made (its users stay)').requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, name: string, o: { tenant: string }) => {
      const { client } = sessionClient();
      await client.call('DELETE', `/api/v1/tenants/${seg(o.tenant)}/idps/${seg(name)}`);
      out.result({ removed: name }, () => `Identity provider ${name} removed from ${o.tenant}.`);
    }),
  );
  withJson(
    idp
      .command('map <name>')
      .description('map an IdP group to a role (tenant-wide or --stage) or to an app role (--app, --app-role, --stage)')
      .requiredOption('--tenant <name>', 'tenant')
      .requiredOption('--group <group>', 'group name as the provider sends it')
      .option('--role <role>', 'built-in or custom role')
      .option('--stage <name>', 'limit the role to this stage (required for app roles)')
      .option('--app <app>', 'app whose role to give')
      .option('--app-role <role>', "app role (from the app's manifest), e.g. Employee"),
  ).action(
    action(async (out, name: string, o: { tenant: string; group: string; role?: string; stage?: string; app?: string; appRole?: string }) => {
      const { client } = sessionClient();
      const m = await client.call<Mapping>('POST', `/api/v1/tenants/${seg(o.tenant)}/idps/${seg(name)}/mappings`, {
        group: o.group,
        ...(o.role ? { role: o.role } : {}),
        ...(o.stage ? { stage: o.stage } : {}),
        ...(o.app ? { app: o.app } : {}),
        ...(o.appRole ? { appRole: o.appRole } : {}),
      });
      out.result(m, (x: Mapping) => `Group ${JSON.stringify(x.group)} of ${name} now gives ${mappingText(x)} (mapping ${x.id}). Existing users get it at their next sign-in or: accord idp resync ${name} --tenant ${o.tenant}`);
    }),
  );
  withJson(idp.command('unmap <name> <mapping-id>').description('remove a group mapping').requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, name: string, id: string, o: { tenant: string }) => {
      const { client } = sessionClient();
      await client.call('DELETE', `/api/v1/tenants/${seg(o.tenant)}/idps/${seg(name)}/mappings/${seg(id)}`);
      out.result({ removed: id }, () => `Mapping ${id} removed.`);
    }),
  );
  withJson(idp.command('resync <name>').description("re-apply the provider's mappings now to the groups last seen for its users").requiredOption('--tenant <name>', 'tenant').option('--user <email>', 'only this user')).action(
    action(async (out, name: string, o: { tenant: string; user?: string }) => {
      const { client } = sessionClient();
      const v = await client.call<{ users: { email: string; roles: string[]; added: string[]; removed: string[] }[] }>('POST', `/api/v1/tenants/${seg(o.tenant)}/idps/${seg(name)}/resync`, o.user ? { user: o.user } : {});
      out.result(v.users, (us: typeof v.users) =>
        us.length === 0 ? 'No users.' : table(us.map((u) => ({ user: u.email, roles: u.roles.join(', ') || '-', added: u.added.join(', ') || '-', removed: u.removed.join(', ') || '-' })), ['user', 'roles', 'added', 'removed']),
      );
    }),
  );
  withJson(
    idp
      .command('builtin-sign-in <state>')
      .description('turn password sign-in on or off for the tenant console (or --stage); off only where an enabled provider is attached')
      .requiredOption('--tenant <name>', 'tenant')
      .option('--stage <name>', "a stage's end users instead of the console"),
  ).action(
    action(async (out, state: string, o: { tenant: string; stage?: string }) => {
      if (state !== 'on' && state !== 'off') throw new AccordError('CLI_USAGE', { message: 'builtin-sign-in takes on or off.' });
      const { client } = sessionClient();
      await client.call('PUT', `/api/v1/tenants/${seg(o.tenant)}/builtin-sign-in`, { enabled: state === 'on', ...(o.stage ? { stage: o.stage } : {}) });
      out.result({ enabled: state === 'on', stage: o.stage ?? null }, () => `Password sign-in is ${state} for ${o.stage ? `stage ${o.stage}` : 'the console'} of ${o.tenant}.`);
    }),
  );
}
