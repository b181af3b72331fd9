// Federated sign-ins per kind against the local peers, the peers' cost included: OpenID Connect
// (the whole browser flow: start, the OP's authorize and login form with its password check,
// the callback with the code exchange, JWKS-verified ID token and userinfo), SAML (the same
// browser flow against samlify: AuthnRequest, login form, signed assertion posted to the ACS), LDAP (search with a
// service account, the user's bind over LDAPS, nested group lookups), and, as the baseline in the
// same run, the built-in password sign-in (argon2id). Each sign-in also re-syncs the user's
// grants from two mapped groups. In-process server (inject) on PGlite in memory; sequential, so
// the figures are latency per sign-in and its inverse, not a throughput ceiling.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../src/audit-chain/index.ts';
import { loadConfig } from '../src/config/index.ts';
import { migrate, openDatabase } from '../src/db/index.ts';
import { createUser, grantRole, IamKey, openSession } from '../src/iam/index.ts';
import { buildApp } from '../src/server/index.ts';
import { createTenant } from '../src/tenancy/index.ts';
import { Browser } from '../test/harness/browser.ts';
import { testKeyring } from '../test/harness/keys.ts';
import { startTestOp } from '../test/harness/oidc-provider.ts';
import { startTestSamlIdp } from '../test/harness/saml-idp.ts';
import { SERVICE_DN, startTestDirectory, SUFFIX } from '../test/harness/slapd.ts';
import { machine, positiveInt } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results', 'federation.json');
const ORIGIN = 'https://accord.bench';

const round = (n: number) => Math.round(n * 10) / 10;
function stats(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] as number;
  return { n: s.length, medianMs: round(q(0.5)), p99Ms: round(q(0.99)), perSecond: round(1000 / q(0.5)) };
}

export async function run(): Promise<void> {
  const n = positiveInt('BENCH_N', 20);
  const op = await startTestOp({
    redirectUris: [`${ORIGIN}/api/v1/federation/acme/corp/oidc/callback`],
    users: { alice: { password: 'alice in wonderland', email: 'alice@corp.test', name: 'Alice', groups: ['expense-users', 'developers'] } },
  });
  const dir = await startTestDirectory({
    users: { carol: { password: 'carol secret pw', mail: 'carol@corp.test', cn: 'Carol' } },
    groups: { 'expense-users': [`uid=carol,ou=people,${SUFFIX}`], developers: [`uid=carol,ou=people,${SUFFIX}`], engineering: [`cn=developers,ou=groups,${SUFFIX}`] },
  });
  const saml = await startTestSamlIdp({ users: { sam: { password: 'sam at the idp', email: 'sam@corp.test', name: 'Sam', groups: ['expense-users', 'developers'] } } });
  const database = await openDatabase({ dataDir: 'unused', inMemory: true });
  try {
    await migrate(database.db);
    const db = database.db;
    const keyring = await testKeyring();
    const iamKey = IamKey.ephemeral();
    const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
    const app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey, publicUrl: ORIGIN });
    const acme = await createTenant(db, keyring, systemSource, { name: 'acme' });
    const admin = await db.transaction().execute(async (trx) => {
      const a = await createUser(trx, { tenantId: acme.id, email: 'admin@acme.test', password: 'orchard lemon tree' });
      await grantRole(trx, { userId: a, role: 'tenant-admin', tenantId: acme.id, stageId: null });
      await createUser(trx, { tenantId: acme.id, email: 'local@acme.test', password: 'a local password 1' });
      return (await openSession(trx, { key: iamKey, accessTtlSeconds: 900 }, { userId: a, policy: { idleSeconds: 3600, absoluteSeconds: 3600 }, source: { ip: null, userAgent: null } })).accessToken;
    });
    const call = async (method: string, url: string, payload?: unknown, token = admin) => {
      const r = await app.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${token}` }, ...(payload === undefined ? {} : { payload: payload as object }) });
      if (r.statusCode >= 300) throw new Error(`${method} ${url}: ${r.statusCode} ${r.body}`);
      return r;
    };
    await call('POST', '/api/v1/tenants/acme/idps', { name: 'corp', kind: 'oidc', settings: { issuer: op.issuer, clientId: op.clientId, userinfo: true, scopes: ['openid', 'email', 'profile', 'groups'], caCertificate: op.caPem }, secret: op.clientSecret, stages: ['production'] });
    await call('POST', '/api/v1/tenants/acme/idps', { name: 'directory', kind: 'ldap', settings: { url: dir.ldapsUrl, caCertificate: dir.caPem, bindDn: SERVICE_DN, userBase: `ou=people,${SUFFIX}`, groupBase: `ou=groups,${SUFFIX}`, nestedGroups: true }, secret: dir.servicePassword, stages: ['production'] });
    await call('POST', '/api/v1/tenants/acme/idps', { name: 'saml', kind: 'saml', settings: { entryPoint: saml.ssoUrl, idpIssuer: saml.entityId, idpCertificate: saml.signingCertPem }, stages: ['production'] });
    saml.registerSp((await app.inject({ method: 'GET', url: '/api/v1/federation/acme/saml/saml/metadata' })).body);
    for (const idp of ['corp', 'directory', 'saml']) {
      await call('POST', `/api/v1/tenants/acme/idps/${idp}/mappings`, { group: 'expense-users', app: 'expenses', appRole: 'Employee', stage: 'production' });
      await call('POST', `/api/v1/tenants/acme/idps/${idp}/mappings`, { group: idp === 'corp' ? 'developers' : 'engineering', role: 'developer' });
    }

    const oidcOnce = async () => {
      // A fresh browser each time: no IdP session to reuse, so the OP's login form is part of it.
      const b = new Browser({ app, origin: ORIGIN, ca: [op.caPem] });
      let page = await b.go(`${ORIGIN}/t/acme/production/auth/idp/corp/login?mode=bearer`);
      page = await b.submit(page, { login: 'alice', password: 'alice in wonderland' });
      if (page.status !== 200) throw new Error(`OIDC sign-in failed: ${page.status} ${page.body}`);
    };
    const samlOnce = async () => {
      const b = new Browser({ app, origin: ORIGIN, ca: [saml.caPem] });
      let page = await b.go(`${ORIGIN}/t/acme/production/auth/idp/saml/login?mode=bearer`);
      page = await b.submit(page, { login: 'sam', password: 'sam at the idp' });
      page = await b.submit(page, {});
      if (page.status !== 200) throw new Error(`SAML sign-in failed: ${page.status} ${page.body}`);
    };
    const ldapOnce = async () => {
      const r = await app.inject({ method: 'POST', url: '/t/acme/production/auth/idp/directory/login', payload: { username: 'carol', password: 'carol secret pw', mode: 'bearer' } });
      if (r.statusCode !== 200) throw new Error(`LDAP sign-in failed: ${r.statusCode} ${r.body}`);
    };
    const passwordOnce = async () => {
      const r = await app.inject({ method: 'POST', url: '/t/acme/production/auth/login', payload: { email: 'local@acme.test', password: 'a local password 1' } });
      if (r.statusCode !== 200) throw new Error(`password sign-in failed: ${r.statusCode} ${r.body}`);
    };
    const measure = async (fn: () => Promise<void>) => {
      await fn();
      await fn(); // warm-up (discovery, JWKS, connection set-up, JIT user creation)
      const samples: number[] = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await fn();
        samples.push(performance.now() - t);
      }
      return stats(samples);
    };
    const results = {
      machine: machine(),
      note: 'sequential sign-ins in one process: Accord (inject, PGlite in memory) plus the peer (oidc-provider over HTTPS, samlify over HTTPS, slapd over LDAPS) on the same machine; peer cost included',
      signIns: n,
      oidc: { what: 'browser flow: start, authorize, login form (password check), callback, code exchange, ID token signature check, userinfo, JIT/re-sync of 2 mappings', ...(await measure(oidcOnce)) },
      saml: { what: 'browser flow: AuthnRequest (redirect), login form (password check), signed assertion posted to the ACS, signature/audience/time/InResponseTo checks, replay-cache insert, JIT/re-sync of 2 mappings', ...(await measure(samlOnce)) },
      ldap: { what: 'service bind, user search, user bind over LDAPS, nested group lookup, re-sync of 2 mappings', ...(await measure(ldapOnce)) },
      password: { what: 'baseline: built-in end-user sign-in (argon2id m=19456 KiB, t=2, p=1)', ...(await measure(passwordOnce)) },
    };
    console.log(JSON.stringify(results, null, 2));
    await writeFile(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
    await app.close();
  } finally {
    await database.close();
    await op.stop();
    await saml.stop();
    await dir.stop();
  }
}
