import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import type { Db } from '../../../src/db/index.ts';
import { createUser, grantRole } from '../../../src/iam/index.ts';
import { buildApp } from '../../../src/server/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { engines } from '../../harness/engines.ts';
import { sessionToken, testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const CLIENT_USED_AT = '2025-03-04T05:06:07.000Z';

interface Grant {
  id: string;
  kind: 'role' | 'app-role';
  principal: { type: string; id: string; label: string; status: string };
  role: string;
  app: string | null;
  stage: string | null;
  grantedAt: string;
  grantedBy: string | null;
  lastUsedAt: string | null;
}
interface Item {
  id: string;
  kind: string;
  grantId: string;
  principal: { type: string; label: string };
  role: string;
  app: string | null;
  stage: string | null;
  decision: string | null;
  decidedBy: string | null;
  decidedAt: string | null;
  note: string | null;
}

for (const engine of engines()) {
  describe(`access reviews on ${engine.name}`, { concurrency: false }, () => {
    let app: FastifyInstance;
    let db: Db;
    let clientId: string;
    let reviewId: string;
    let items: Item[];
    const tokens: Record<string, string> = {};
    after(async () => app?.close());
    const call = (method: string, url: string, who: string, payload?: unknown) =>
      app.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${tokens[who]}` }, ...(payload === undefined ? {} : { payload: payload as object }) });
    const code = (r: LightMyRequestResponse) => (r.statusCode >= 400 ? r.json().code : r.statusCode);
    const audit = async () => (await call('GET', '/api/v1/tenants/acme/audit?limit=500', 'admin')).json().records as { action: string; actor: { label: string }; details: Record<string, unknown> }[];
    const item = (label: string, role: string) => {
      const found = items.find((i) => i.principal.label === label && i.role === role);
      assert.ok(found, `${label} ${role}`);
      return found;
    };
    const decide = (it: Item, who: string, decision: 'confirm' | 'revoke', note?: string) =>
      call('POST', `/api/v1/tenants/acme/access-reviews/${reviewId}/items/${it.id}`, who, { decision, ...(note ? { note } : {}) });

    test('the access review lists every grant on the tenant with who granted it and its last use', async () => {
      const database = await engine.open();
      db = database.db;
      const keyring = await testKeyring();
      app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey });
      const acme = await createTenant(db, keyring, systemSource, { name: 'acme' });
      const globex = await createTenant(db, keyring, systemSource, { name: 'globex' });
      await db.transaction().execute(async (trx) => {
        for (const name of ['admin', 'reviewer', 'alice', 'bob', 'dan']) {
          const id = await createUser(trx, { tenantId: acme.id, email: `${name}@acme.test`, password: 'review passphrase ok' });
          if (name === 'admin') await grantRole(trx, { userId: id, role: 'tenant-admin', tenantId: acme.id, stageId: null });
          tokens[name] = await sessionToken(trx, id);
        }
        const g = await createUser(trx, { tenantId: globex.id, email: 'admin@globex.test', password: 'review passphrase ok' });
        await grantRole(trx, { userId: g, role: 'tenant-admin', tenantId: globex.id, stageId: null });
        tokens.globex = await sessionToken(trx, g);
        // An API client with a grant, as the client capability stores them.
        const client = await trx
          .insertInto('accord.api_clients')
          .values({ tenant_id: acme.id, name: 'ci-bot', client_id: 'acl_review_test', created_by: null, expires_at: new Date(Date.now() + 86_400_000), revoked_at: null, last_used_at: null })
          .returning('id')
          .executeTakeFirstOrThrow();
        clientId = client.id;
        await trx
          .insertInto('accord.role_grants')
          .values({ user_id: null, client_id: client.id, role: 'release-manager', tenant_id: acme.id, stage_id: null, last_used_at: new Date(CLIENT_USED_AT) })
          .execute();
      });
      const grant = async (body: object) => assert.equal((await call('POST', '/api/v1/tenants/acme/grants', 'admin', body)).statusCode, 204);
      assert.equal((await call('POST', '/api/v1/tenants/acme/roles', 'admin', { name: 'reviewer', permissions: ['tenant:read', 'access:review'] })).statusCode, 201);
      await grant({ user: 'reviewer@acme.test', role: 'reviewer' });
      await grant({ user: 'alice@acme.test', role: 'developer', stage: 'development' });
      await grant({ user: 'bob@acme.test', role: 'auditor' });
      await grant({ user: 'dan@acme.test', role: 'developer' });
      assert.equal((await call('POST', '/api/v1/tenants/acme/stages/development/app-roles', 'admin', { user: 'alice@acme.test', app: 'crm', role: 'sales' })).statusCode, 201);
      // Alice uses her grant; Bob never uses his.
      assert.equal((await call('GET', '/api/v1/tenants/acme/stages', 'alice')).statusCode, 200);

      const r = await call('GET', '/api/v1/tenants/acme/access-review', 'reviewer');
      assert.equal(r.statusCode, 200, r.body);
      const grants = r.json() as Grant[];
      const find = (label: string, role: string) => grants.find((g) => g.principal.label === label && g.role === role);
      assert.deepEqual(
        grants.map((g) => `${g.principal.type}:${g.principal.label} ${g.kind} ${g.app ? `${g.app}/` : ''}${g.role}@${g.stage ?? '*'}`).sort(),
        [
          'client:ci-bot role release-manager@*',
          'user:admin@acme.test role tenant-admin@*',
          'user:alice@acme.test app-role crm/sales@development',
          'user:alice@acme.test role developer@development',
          'user:bob@acme.test role auditor@*',
          'user:dan@acme.test role developer@*',
          'user:reviewer@acme.test role reviewer@*',
        ],
      );
      const alice = find('alice@acme.test', 'developer');
      assert.equal(alice?.grantedBy, 'admin@acme.test');
      assert.equal(alice?.principal.status, 'active');
      assert.ok(alice?.lastUsedAt && Date.now() - Date.parse(alice.lastUsedAt) < 60_000, 'the grant that allowed the request shows its use');
      assert.equal(find('bob@acme.test', 'auditor')?.lastUsedAt, null, 'an unused grant shows no use');
      const bot = find('ci-bot', 'release-manager');
      assert.deepEqual(bot?.principal, { type: 'client', id: clientId, label: 'ci-bot', status: 'active' });
      assert.equal(bot?.lastUsedAt, CLIENT_USED_AT);
      assert.equal(bot?.grantedBy, null);
      assert.equal(find('admin@acme.test', 'tenant-admin')?.grantedBy, null);
      assert.equal(find('alice@acme.test', 'sales')?.grantedBy, 'admin@acme.test');
      // Reviewing needs access:review on the tenant.
      assert.equal(code(await call('GET', '/api/v1/tenants/acme/access-review', 'bob')), 'IAM_FORBIDDEN');
      assert.equal(code(await call('GET', '/api/v1/tenants/acme/access-review', 'globex')), 'TENANCY_TENANT_NOT_FOUND');
      const other = (await call('GET', '/api/v1/tenants/globex/access-review', 'globex')).json() as Grant[];
      assert.deepEqual(other.map((g) => g.principal.label), ['admin@globex.test']);
    });

    test('a campaign snapshots every grant; decisions are recorded as evidence and revoking removes the grant', async () => {
      const started = await call('POST', '/api/v1/tenants/acme/access-reviews', 'reviewer', { name: 'Q3 review' });
      assert.equal(started.statusCode, 201, started.body);
      reviewId = started.json().id;
      assert.equal(started.json().startedBy, 'reviewer@acme.test');
      assert.deepEqual(started.json().counts, { items: 7, confirmed: 0, revoked: 0, undecided: 7 });
      items = (await call('GET', `/api/v1/tenants/acme/access-reviews/${reviewId}`, 'reviewer')).json().items;
      assert.equal(items.length, 7);
      assert.ok(items.every((i) => i.decision === null));

      // Dan's grant is revoked outside the campaign before anyone decides on it.
      assert.equal((await call('DELETE', '/api/v1/tenants/acme/grants?user=dan@acme.test&role=developer', 'admin')).statusCode, 204);

      // A reviewer may confirm anything but revoke only what it could revoke anyway.
      const refused = await decide(item('alice@acme.test', 'developer'), 'reviewer', 'revoke', 'left the team');
      assert.equal(code(refused), 'IAM_GRANT_ESCALATION');
      const confirmed = await decide(item('bob@acme.test', 'auditor'), 'reviewer', 'confirm', 'still auditing');
      assert.equal(confirmed.statusCode, 200, confirmed.body);
      assert.equal(confirmed.json().decision, 'confirm');
      assert.equal(confirmed.json().decidedBy, 'reviewer@acme.test');
      assert.equal(confirmed.json().note, 'still auditing');
      assert.equal(code(await decide(item('bob@acme.test', 'auditor'), 'admin', 'revoke')), 'IAM_REVIEW_ITEM_DECIDED');

      assert.equal((await call('GET', '/api/v1/tenants/acme/stages', 'alice')).statusCode, 200);
      const revoked = await decide(item('alice@acme.test', 'developer'), 'admin', 'revoke', 'left the team');
      assert.equal(revoked.statusCode, 200, revoked.body);
      assert.equal(revoked.json().decision, 'revoke');
      assert.equal(code(await call('GET', '/api/v1/tenants/acme/stages', 'alice')), 'TENANCY_TENANT_NOT_FOUND', 'the revoked grant no longer opens anything');
      assert.equal((await decide(item('alice@acme.test', 'sales'), 'admin', 'revoke')).statusCode, 200);
      assert.equal((await decide(item('ci-bot', 'release-manager'), 'admin', 'revoke', 'pipeline retired')).statusCode, 200);
      assert.equal((await db.selectFrom('accord.role_grants').select('id').where('client_id', '=', clientId).execute()).length, 0);
      assert.equal((await db.selectFrom('accord.app_role_grants').select('id').execute()).length, 0);
      // Confirming a grant that is already gone records what is true: it is revoked.
      const gone = await decide(item('dan@acme.test', 'developer'), 'reviewer', 'confirm', 'needed for the release');
      assert.equal(gone.statusCode, 200, gone.body);
      assert.equal(gone.json().decision, 'revoke');
      assert.match(gone.json().note, /^needed for the release .*no longer existed/);

      assert.equal(code(await decide({ ...item('admin@acme.test', 'tenant-admin'), id: '00000000-0000-4000-8000-000000000000' }, 'admin', 'confirm')), 'IAM_REVIEW_NOT_FOUND');
      assert.equal(code(await call('GET', '/api/v1/tenants/acme/access-reviews/00000000-0000-4000-8000-000000000000', 'admin')), 'IAM_REVIEW_NOT_FOUND');
      assert.equal(code(await call('GET', `/api/v1/tenants/globex/access-reviews/${reviewId}`, 'globex')), 'IAM_REVIEW_NOT_FOUND');

      const evidence = (await call('GET', `/api/v1/tenants/acme/access-reviews/${reviewId}`, 'reviewer')).json();
      assert.deepEqual(evidence.counts, { items: 7, confirmed: 1, revoked: 4, undecided: 2 });
      const aliceItem = (evidence.items as Item[]).find((i) => i.principal.label === 'alice@acme.test' && i.role === 'developer');
      assert.equal(aliceItem?.decidedBy, 'admin@acme.test');
      assert.equal(aliceItem?.note, 'left the team');
      assert.ok(aliceItem?.decidedAt && !Number.isNaN(Date.parse(aliceItem.decidedAt)));
      assert.equal((evidence.items as Item[]).find((i) => i.principal.label === 'reviewer@acme.test')?.decision, null);

      const records = await audit();
      const decided = records.filter((r) => r.action === 'access.review.decided');
      assert.equal(decided.length, 5, 'one record per decision, none for the refused one');
      assert.ok(records.some((r) => r.action === 'access.review.started' && r.details.items === 7));
      const roleRevoked = records.filter((r) => r.action === 'role.revoked' && r.details.accessReview === reviewId);
      assert.deepEqual(roleRevoked.map((r) => r.details.role).sort(), ['developer', 'release-manager']);
      assert.ok(records.some((r) => r.action === 'app-role.revoked' && r.details.accessReview === reviewId && r.details.app === 'crm'));
    });

    test('a closed campaign reports what was left undecided and refuses further decisions', async () => {
      const closed = await call('POST', `/api/v1/tenants/acme/access-reviews/${reviewId}/close`, 'reviewer');
      assert.equal(closed.statusCode, 200, closed.body);
      assert.equal(closed.json().closedBy, 'reviewer@acme.test');
      assert.deepEqual(closed.json().counts, { items: 7, confirmed: 1, revoked: 4, undecided: 2 });
      assert.equal(code(await decide(item('reviewer@acme.test', 'reviewer'), 'admin', 'confirm')), 'IAM_REVIEW_CLOSED');
      assert.equal(code(await call('POST', `/api/v1/tenants/acme/access-reviews/${reviewId}/close`, 'admin')), 'IAM_REVIEW_CLOSED');
      const list = (await call('GET', '/api/v1/tenants/acme/access-reviews', 'reviewer')).json();
      assert.equal(list.length, 1);
      assert.equal(list[0].name, 'Q3 review');
      assert.ok(list[0].closedAt);
      const records = await audit();
      assert.ok(records.some((r) => r.action === 'access.review.closed' && r.details.undecided === 2 && r.actor.label === 'reviewer@acme.test'));
      // A new campaign sees only what is left.
      const next = await call('POST', '/api/v1/tenants/acme/access-reviews', 'admin', { name: 'Q4 review' });
      assert.deepEqual(next.json().counts, { items: 3, confirmed: 0, revoked: 0, undecided: 3 });
    });
  });
}
