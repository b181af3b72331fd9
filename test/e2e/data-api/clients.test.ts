// API clients acting with app roles, through HTTP with real client tokens (/oauth/token): a tenant
// admin grants and revokes app roles to a client on a stage (audited), the data API then lets the
// client act with exactly those roles, under the same rules and row-level security as a user
// (caller kind 'client'), and never on another tenant or stage.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import { buildApp } from '../../../src/server/index.ts';
import { createUser, grantRole } from '../../../src/iam/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { client, endUser, expensesManifest, type Platform, startPlatform, type TestStage, tenantWithApp } from '../../harness/data-api.ts';
import { engines } from '../../harness/engines.ts';
import { cli, fails, ok } from '../../harness/cli.ts';
import { sessionToken, testIamKey } from '../../harness/iam.ts';
import { createCertificateAuthority, issueServerCertificate } from '../../harness/tls.ts';

const FORM = 'application/x-www-form-urlencoded';
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
// The data API caches a caller's app roles for one second per node.
const ROLE_CACHE_MS = 1100;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const engine of engines()) {
  describe(`API clients with app roles on ${engine.name}`, { concurrency: false }, () => {
    let p: Platform;
    let prod: TestStage;
    let testStage: TestStage;
    let admin: string;
    let ledgerToken: string;
    let ledgerId: string;
    let ledger: ReturnType<typeof client>;
    let bobClaim: string;

    const call = async (method: 'GET' | 'POST' | 'DELETE', url: string, token: string, body?: unknown) => {
      const r = await p.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { payload: body as object }) });
      return { status: r.statusCode, body: r.body ? r.json() : undefined };
    };
    const appRoles = '/api/v1/tenants/acme/stages/production/app-roles';
    /** A new API client of the tenant, and a client-credentials access token for it. */
    const newClient = async (tenant: string, token: string, name: string) => {
      const c = await call('POST', `/api/v1/tenants/${tenant}/clients`, token, { name, grants: [{ role: 'developer', stage: 'development' }] });
      assert.equal(c.status, 201, JSON.stringify(c.body));
      const t = await p.app.inject({ method: 'POST', url: '/oauth/token', headers: { 'content-type': FORM, authorization: basic(c.body.clientId, c.body.clientSecret) }, payload: 'grant_type=client_credentials' });
      assert.equal(t.statusCode, 200, t.body);
      const row = await p.database.db.selectFrom('accord.api_clients').select('id').where('name', '=', name).executeTakeFirstOrThrow();
      return { id: row.id, token: t.json().access_token as string };
    };

    before(async () => {
      p = await startPlatform(engine);
      const stages = await tenantWithApp(p, 'acme', expensesManifest(), ['production', 'test']);
      prod = stages.find((s) => s.stage === 'production') as TestStage;
      testStage = stages.find((s) => s.stage === 'test') as TestStage;
      admin = await p.database.db.transaction().execute(async (trx) => {
        const a = await createUser(trx, { tenantId: prod.tenantId, email: 'admin@acme.test', password: 'orchard lemon tree' });
        await grantRole(trx, { userId: a, role: 'tenant-admin', tenantId: prod.tenantId, stageId: null });
        return sessionToken(trx, a);
      });
      const bob = client(p, prod, 'expenses', (await endUser(p, prod, 'bob@acme.test', 'expenses', ['Employee'])).token);
      const c = await bob.create('Claim', { title: 'Train', amount: '120.50', iban: 'DE89370400440532013000' });
      assert.equal(c.status, 201);
      bobClaim = c.body.id;
      assert.equal((await bob.update('Claim', bobClaim, { status: 'submitted' })).status, 200);
      const l = await newClient('acme', admin, 'ledger-bot');
      ledgerId = l.id;
      ledgerToken = l.token;
      ledger = client(p, prod, 'expenses', l.token);
    });
    after(async () => p?.close());

    test('a client without app roles may not use the app, whatever its platform grants', async () => {
      const r = await ledger.list('Claim');
      assert.equal(r.status, 403, JSON.stringify(r.body));
      assert.equal(r.body.code, 'DATA_FORBIDDEN');
    });

    test('a tenant admin grants an app role to a client on a stage; granting it again changes nothing; it is audited', async () => {
      const g = await call('POST', appRoles, admin, { client: 'ledger-bot', app: 'expenses', role: 'Auditor' });
      assert.equal(g.status, 201, JSON.stringify(g.body));
      assert.equal(g.body.client, 'ledger-bot');
      assert.equal(g.body.user, null);
      assert.equal(g.body.created, true);
      assert.equal((await call('POST', appRoles, admin, { client: 'ledger-bot', app: 'expenses', role: 'Auditor' })).body.created, false);
      const listed = await call('GET', `${appRoles}?client=ledger-bot`, admin);
      assert.deepEqual(listed.body.map((x: { client: string; role: string }) => [x.client, x.role]), [['ledger-bot', 'Auditor']]);
      const events = await p.database.db.selectFrom('accord.audit_events').select(['target_type', 'target_id', 'details']).where('action', '=', 'app-role.granted').where('target_id', '=', ledgerId).execute();
      assert.equal(events.length, 1);
      assert.equal(events[0]?.target_type, 'client');
    });

    test('a grant names exactly one of a user and a client, and only a live client of the tenant', async () => {
      const both = await call('POST', appRoles, admin, { user: 'bob@acme.test', client: 'ledger-bot', app: 'expenses', role: 'Auditor' });
      assert.equal(both.status, 400);
      assert.equal(both.body.code, 'REQUEST_INVALID');
      const neither = await call('POST', appRoles, admin, { app: 'expenses', role: 'Auditor' });
      assert.equal(neither.body.code, 'REQUEST_INVALID');
      const unknown = await call('POST', appRoles, admin, { client: 'no-such-bot', app: 'expenses', role: 'Auditor' });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.code, 'IAM_CLIENT_NOT_FOUND');
    });

    test("the client's token reads with its app role: the Auditor sees every claim but not the IBAN (the field rule)", async () => {
      await pause(ROLE_CACHE_MS);
      const r = await ledger.list('Claim');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.items.map((c: { id: string }) => c.id), [bobClaim]);
      assert.equal(r.body.items[0].iban, undefined);
      const one = await ledger.get('Claim', bobClaim);
      assert.equal(one.status, 200);
      // The Auditor declares exactCount in the reference app.
      assert.equal((await ledger.list('Claim', { count: 'exact' })).body.count, 1);
      const write = await ledger.create('Claim', { title: 'x', amount: '1' });
      assert.equal(write.status, 403);
      assert.equal(write.body.code, 'DATA_FORBIDDEN');
    });

    test('as an Employee the client owns what it creates, and its session runs with caller kind client', async () => {
      assert.equal((await call('POST', appRoles, admin, { client: 'ledger-bot', app: 'expenses', role: 'Employee' })).status, 201);
      await pause(ROLE_CACHE_MS);
      const c = await ledger.create('Claim', { title: 'Hotel', amount: '80.00' });
      assert.equal(c.status, 201, JSON.stringify(c.body));
      assert.equal(c.body.owner, ledgerId, 'the owner preset is the client');
      const ev = await p.database.db.selectFrom('accord.audit_events').select(['actor_type', 'actor_id']).where('action', '=', 'data.create').where('actor_id', '=', ledgerId).execute();
      // The stage session's caller (the kind RLS reads as accord.principal_kind) is the client.
      assert.deepEqual(ev.map((e) => e.actor_type), ['client']);
    });

    test("a client's token opens only its own tenant's apps", async () => {
      await createTenant(p.database.db, p.keyring, systemSource, { name: 'globex' });
      const globexAdmin = await p.database.db.transaction().execute(async (trx) => {
        const t = await trx.selectFrom('accord.tenants').select('id').where('name', '=', 'globex').executeTakeFirstOrThrow();
        const a = await createUser(trx, { tenantId: t.id, email: 'admin@globex.test', password: 'orchard lemon tree' });
        await grantRole(trx, { userId: a, role: 'tenant-admin', tenantId: t.id, stageId: null });
        return sessionToken(trx, a);
      });
      const outsider = await newClient('globex', globexAdmin, 'spy-bot');
      const r = await client(p, prod, 'expenses', outsider.token).list('Claim');
      assert.equal(r.status, 403, JSON.stringify(r.body));
      assert.equal(r.body.code, 'IAM_WRONG_AUDIENCE');
      // Nor can acme's admin give acme's app roles to globex's client.
      const g = await call('POST', appRoles, admin, { client: 'spy-bot', app: 'expenses', role: 'Auditor' });
      assert.equal(g.body.code, 'IAM_CLIENT_NOT_FOUND');
    });

    test("a client's app roles hold on their stage only", async () => {
      assert.equal((await ledger.list('Claim')).status, 200, 'production answers');
      const r = await client(p, testStage, 'expenses', ledgerToken).list('Claim');
      assert.equal(r.status, 403, JSON.stringify(r.body));
      assert.equal(r.body.code, 'DATA_FORBIDDEN');
    });

    test('a revoked app role stops working (within the one-second cache) and the revocation is audited', async () => {
      const del = await call('DELETE', `${appRoles}?${new URLSearchParams({ client: 'ledger-bot', app: 'expenses', role: 'Auditor' })}`, admin);
      assert.equal(del.status, 204, JSON.stringify(del.body));
      const del2 = await call('DELETE', `${appRoles}?${new URLSearchParams({ client: 'ledger-bot', app: 'expenses', role: 'Employee' })}`, admin);
      assert.equal(del2.status, 204);
      await pause(ROLE_CACHE_MS);
      const r = await ledger.list('Claim');
      assert.equal(r.status, 403);
      assert.equal(r.body.code, 'DATA_FORBIDDEN');
      const events = await p.database.db.selectFrom('accord.audit_events').select(['target_type']).where('action', '=', 'app-role.revoked').where('target_id', '=', ledgerId).execute();
      assert.deepEqual(events.map((e) => e.target_type), ['client', 'client']);
      const again = await call('DELETE', `${appRoles}?${new URLSearchParams({ client: 'ledger-bot', app: 'expenses', role: 'Auditor' })}`, admin);
      assert.equal(again.body.code, 'IAM_GRANT_NOT_FOUND');
    });
    test('the CLI grants, lists and revokes a client\'s app role with --client', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'accord-app-role-cli-'));
      const ca = await createCertificateAuthority(dir);
      const cert = await issueServerCertificate(ca, dir, { commonName: 'localhost', ipAddresses: ['127.0.0.1'] });
      const https = { key: await readFile(cert.keyFile, 'utf8'), cert: await readFile(cert.certFile, 'utf8') };
      const server = await buildApp({ config: loadConfig({ env: {}, flags: { logLevel: 'silent' } }), database: p.database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring: p.keyring, iamKey: testIamKey, https });
      try {
        await server.listen({ port: 0, host: '127.0.0.1' });
        const port = (server.server.address() as AddressInfo).port;
        const configDir = join(dir, 'config');
        const { saveProfile } = await import('../../../src/cli/profile.ts');
        const previous = process.env.ACCORD_CONFIG_DIR;
        process.env.ACCORD_CONFIG_DIR = configDir;
        try {
          saveProfile({ url: `https://localhost:${port}`, ca: await readFile(ca.certFile, 'utf8'), token: admin });
        } finally {
          if (previous === undefined) delete process.env.ACCORD_CONFIG_DIR;
          else process.env.ACCORD_CONFIG_DIR = previous;
        }
        const accord = (...args: string[]) => cli(args, { ACCORD_CONFIG_DIR: configDir });
        const ref = ['--tenant', 'acme', '--stage', 'production', '--app', 'expenses', '--role', 'Manager'];
        const g = ok<{ client: string; user: string | null; role: string; created: boolean }>(await accord('app-role', 'grant', ...ref, '--client', 'ledger-bot', '--json'));
        assert.deepEqual([g.client, g.user, g.role, g.created], ['ledger-bot', null, 'Manager', true]);
        const human = await accord('app-role', 'list', '--tenant', 'acme', '--stage', 'production', '--client', 'ledger-bot');
        assert.equal(human.code, 0, human.stderr);
        assert.match(human.stdout, /client ledger-bot\s+expenses\s+Manager/);
        fails(await accord('app-role', 'grant', ...ref, '--client', 'ledger-bot', '--user', 'bob@acme.test', '--json'), 'CLI_USAGE');
        fails(await accord('app-role', 'grant', ...ref, '--json'), 'CLI_USAGE');
        ok(await accord('app-role', 'revoke', ...ref, '--client', 'ledger-bot', '--json'));
        const left = ok<unknown[]>(await accord('app-role', 'list', '--tenant', 'acme', '--stage', 'production', '--client', 'ledger-bot', '--json'));
        assert.deepEqual(left, []);
      } finally {
        await server.close();
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
}
