import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { createUser, grantRole } from '../../../src/iam/index.ts';
import { engines, superuserUrl } from '../../harness/engines.ts';
import { sessionToken } from '../../harness/iam.ts';
import { client, endUser, expensesManifest, type Platform, startPlatform, type TestStage, tenantWithApp } from '../../harness/data-api.ts';

// The acceptance walkthrough over HTTP, on both engines: bob and dave are Employees,
// carol a Manager, of the reference expenses app on acme's production stage.
for (const engine of engines()) {
  describe(`the data API walkthrough on ${engine.name}`, () => {
    let p: Platform;
    let prod: TestStage;
    let bob: ReturnType<typeof client>;
    let carol: ReturnType<typeof client>;
    let dave: ReturnType<typeof client>;
    let bobId: string;
    let claimId: string;
    let etag: string;
    const IBAN = 'DE89370400440532013000';

    before(async () => {
      p = await startPlatform(engine);
      [prod] = (await tenantWithApp(p, 'acme', expensesManifest())).filter((s) => s.stage === 'production') as [TestStage];
      const b = await endUser(p, prod, 'bob@acme.test', 'expenses', ['Employee']);
      const c = await endUser(p, prod, 'carol@acme.test', 'expenses', ['Manager']);
      const d = await endUser(p, prod, 'dave@acme.test', 'expenses', ['Employee']);
      bobId = b.id;
      bob = client(p, prod, 'expenses', b.token);
      carol = client(p, prod, 'expenses', c.token);
      dave = client(p, prod, 'expenses', d.token);
    });
    after(async () => p?.close());

    test('an employee creates a claim: the owner is preset to him, defaults apply, the IBAN comes back to him', async () => {
      const r = await bob.create('Claim', { title: 'Train to Lyon', amount: '120.50', iban: IBAN, notes: 'client visit' });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.owner, bobId);
      assert.equal(r.body.status, 'draft');
      assert.equal(r.body.currency, 'EUR');
      assert.equal(r.body.amount, '120.50');
      assert.equal(r.body.iban, IBAN);
      assert.equal(r.headers.etag, '"1"');
      claimId = r.body.id;
      etag = r.headers.etag as string;
    });

    test('the owner preset cannot be overridden by the body', async () => {
      const r = await bob.create('Claim', { title: 'x', amount: '1', owner: '00000000-0000-4000-8000-000000000000' });
      assert.equal(r.status, 403);
      assert.equal(r.body.code, 'DATA_FIELD_FORBIDDEN');
    });

    test('an employee cannot create an approved claim (the create check)', async () => {
      const r = await bob.create('Claim', { title: 'x', amount: '1', status: 'approved' });
      assert.equal(r.status, 403);
      assert.equal(r.body.code, 'DATA_CHECK_FAILED');
    });

    test('the IBAN and notes are ciphertext in the database', async () => {
      const rows =
        engine.name === 'postgres'
          ? await (async () => {
              const c = new pg.Client({ connectionString: await superuserUrl(p.url as string) });
              await c.connect();
              try {
                return (await c.query(`select iban, notes, iban_bidx from "${prod.schema}"."Claim"`)).rows;
              } finally {
                await c.end();
              }
            })()
          : (await sql.raw<Record<string, Buffer>>(`select iban, notes, iban_bidx from "${prod.schema}"."Claim"`).execute(p.database.db)).rows;
      assert.equal(rows.length, 1);
      const row = rows[0] as Record<string, Uint8Array>;
      const bytes = Buffer.from(row.iban as Uint8Array);
      assert.ok(bytes.length > IBAN.length, 'an envelope, not the value');
      assert.ok(!bytes.includes(Buffer.from(IBAN)), 'the IBAN is not in the stored bytes');
      assert.ok(!Buffer.from(row.notes as Uint8Array).includes(Buffer.from('client visit')));
      assert.ok(!Buffer.from(row.iban_bidx as Uint8Array).includes(Buffer.from(IBAN)));
    });

    test('a stale If-Match gets 412 and changes nothing', async () => {
      const ok = await bob.update('Claim', claimId, { title: 'Train to Lyon and back' }, { 'if-match': etag });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal(ok.headers.etag, '"2"');
      const stale = await bob.update('Claim', claimId, { title: 'overwritten' }, { 'if-match': etag });
      assert.equal(stale.status, 412);
      assert.equal(stale.body.code, 'DATA_PRECONDITION_FAILED');
      assert.equal((await bob.get('Claim', claimId)).body.title, 'Train to Lyon and back');
    });

    test('he submits it, and can then neither edit it nor approve it', async () => {
      const sub = await bob.update('Claim', claimId, { status: 'submitted' });
      assert.equal(sub.status, 200, JSON.stringify(sub.body));
      assert.equal(sub.body.status, 'submitted');
      const edit = await bob.update('Claim', claimId, { title: 'changed after submission' });
      assert.equal(edit.status, 403);
      assert.equal(edit.body.code, 'DATA_FORBIDDEN');
      const approve = await bob.update('Claim', claimId, { status: 'approved' });
      assert.equal(approve.status, 403);
      assert.equal((await bob.get('Claim', claimId)).body.status, 'submitted');
    });

    test('another employee cannot read the claim (404) nor see it in a list', async () => {
      const r = await dave.get('Claim', claimId);
      assert.equal(r.status, 404);
      assert.equal(r.body.code, 'DATA_NOT_FOUND');
      const l = await dave.list('Claim');
      assert.equal(l.status, 200);
      assert.deepEqual(l.body.items, []);
      const u = await dave.update('Claim', claimId, { title: 'mine now' });
      assert.equal(u.status, 404);
      const d = await dave.remove('Claim', claimId);
      assert.equal(d.status, 404);
    });

    test('the manager lists submitted claims with a filter and sees the IBAN', async () => {
      const l = await carol.list('Claim', { filter: 'row.status == "submitted"' });
      assert.equal(l.status, 200, JSON.stringify(l.body));
      assert.equal(l.body.items.length, 1);
      assert.equal(l.body.items[0].id, claimId);
      assert.equal(l.body.items[0].iban, IBAN);
      const none = await carol.list('Claim', { filter: 'row.status == "approved"' });
      assert.deepEqual(none.body.items, []);
    });

    test('a filter on the IBAN finds the claim through the blind index; other operators on it are refused', async () => {
      const hit = await carol.list('Claim', { filter: `row.iban == "${IBAN}"` });
      assert.equal(hit.status, 200, JSON.stringify(hit.body));
      assert.deepEqual(hit.body.items.map((c: { id: string }) => c.id), [claimId]);
      const param = await carol.list('Claim', { iban: IBAN });
      assert.deepEqual(param.body.items.map((c: { id: string }) => c.id), [claimId]);
      const miss = await carol.list('Claim', { filter: 'row.iban == "DE00000000000000000000"' });
      assert.deepEqual(miss.body.items, []);
      const bad = await carol.list('Claim', { filter: 'row.iban.startsWith("DE")' });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.code, 'DATA_FILTER_ENCRYPTED');
    });

    test('the manager cannot change the amount, and approves', async () => {
      const amount = await carol.update('Claim', claimId, { amount: '1.00' });
      assert.equal(amount.status, 403);
      assert.equal(amount.body.code, 'DATA_FIELD_FORBIDDEN');
      const ok = await carol.update('Claim', claimId, { status: 'approved' });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal(ok.body.status, 'approved');
      assert.equal(ok.body.amount, '120.50');
    });

    test("the manager's read of the IBAN is one data.read audit event on the tenant's chain", async () => {
      const events = await p.database.db
        .selectFrom('accord.audit_events')
        .select(['action', 'actor_id', 'target_id', 'details', 'tenant_id'])
        .where('tenant_id', '=', prod.tenantId)
        .where('action', '=', 'data.read')
        .execute();
      assert.ok(events.length > 0);
      const carolReads = events.filter((e) => (e.details as { fields: string[] }).fields.includes('iban') && e.actor_id !== bobId);
      assert.ok(carolReads.length >= 1);
      const writes = await p.database.db.selectFrom('accord.audit_events').select(['action']).where('tenant_id', '=', prod.tenantId).where('action', 'in', ['data.create', 'data.update']).execute();
      assert.ok(writes.length >= 4);
    });

    test('bad input gets a 4xx catalog code and changes nothing', async () => {
      const before = (await carol.get('Claim', claimId)).body;
      const cases: [Promise<{ status: number; body: { code: string; details?: { start?: number } } }>, number, string][] = [
        [carol.list('Claim', { filter: 'row.status ==' }), 400, 'DATA_FILTER_INVALID'],
        [carol.list('Claim', { filter: 'row.nope == 1' }), 400, 'DATA_FILTER_INVALID'],
        [carol.list('Claim', { filter: 'row.amount == "x"' }), 400, 'DATA_FILTER_INVALID'],
        [carol.list('Claim', { filter: 'row.notes == "x"' }), 400, 'DATA_FILTER_ENCRYPTED'],
        // Deeper than the profile's depth limit (RULE_LIMITS.maxDepth, 24).
        [carol.list('Claim', { filter: `${'!'.repeat(30)}true` }), 400, 'DATA_FILTER_INVALID'],
        [carol.list('Claim', { limit: '100000' }), 400, 'DATA_QUERY_INVALID'],
        [carol.list('Claim', { cursor: 'abc.def' }), 400, 'DATA_CURSOR_INVALID'],
        [carol.list('Claim', { sort: 'notes' }), 400, 'DATA_QUERY_INVALID'],
        [carol.list('Claim', { fields: 'nope' }), 400, 'DATA_QUERY_INVALID'],
        [bob.create('Claim', { title: 'x', amount: '1', colour: 'red' }), 400, 'DATA_BODY_INVALID'],
        [bob.create('Claim', { title: 'x', amount: 'one' }), 400, 'DATA_BODY_INVALID'],
        [bob.create('Claim', { title: 'x'.repeat(201), amount: '1' }), 400, 'DATA_BODY_INVALID'],
        [bob.create('Claim', { title: 'x', amount: '-1' }), 400, 'DATA_BODY_INVALID'],
        [bob.create('Claim', { title: 'x', amount: '1', currency: 'euro' }), 400, 'DATA_BODY_INVALID'],
        [bob.create('Claim', { amount: '1' }), 400, 'DATA_BODY_INVALID'],
        [bob.create('Claim', [1, 2]), 400, 'DATA_BODY_INVALID'],
        [bob.create('Claim', { title: 'x', amount: '1', category: '00000000-0000-4000-8000-000000000000' }), 400, 'DATA_REFERENCE_INVALID'],
        [bob.create('Nope', { title: 'x' }), 404, 'DATA_ENTITY_NOT_FOUND'],
        [bob.create('Category', { name: 'Travel' }), 403, 'DATA_FORBIDDEN'],
        [carol.update('Claim', claimId, { status: 'draft' }, { 'if-match': '"1"' }), 412, 'DATA_PRECONDITION_FAILED'],
      ];
      for (const [promise, status, code] of cases) {
        const r = await promise;
        assert.equal(r.status, status, `${code}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.code, code);
      }
      const syntax = await carol.list('Claim', { filter: 'row.status == ' });
      assert.equal(typeof syntax.body.details?.start, 'number', 'the position of the error');
      assert.deepEqual((await carol.get('Claim', claimId)).body, before);
      assert.equal((await carol.list('Claim', { limit: '100' })).body.items.length, 1, 'no claim was created by the refused requests');
    });

    test('SQL-looking strings are stored as data', async () => {
      const title = `x'); drop table "Claim"; --`;
      const r = await bob.create('Claim', { title, amount: '2' });
      assert.equal(r.status, 201);
      assert.equal((await bob.get('Claim', r.body.id)).body.title, title);
      const f = await bob.list('Claim', { filter: `row.title == ${JSON.stringify(title)}` });
      assert.equal(f.body.items.length, 1);
    });

    test('lists page by an opaque keyset cursor bound to its query', async () => {
      for (let i = 0; i < 5; i++) assert.equal((await bob.create('Claim', { title: `page ${i}`, amount: `${10 + i}` })).status, 201);
      const seen: string[] = [];
      let cursor: string | undefined;
      for (let guard = 0; guard < 10; guard++) {
        const r = await bob.list('Claim', { sort: '-amount', limit: '2', ...(cursor ? { cursor } : {}) });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        seen.push(...r.body.items.map((c: { id: string }) => c.id));
        cursor = r.body.next ?? undefined;
        if (!cursor) break;
      }
      const all = (await bob.list('Claim', { sort: '-amount', limit: '100' })).body.items.map((c: { id: string }) => c.id);
      assert.deepEqual(seen, all);
      assert.equal(new Set(seen).size, seen.length);
      const first = await bob.list('Claim', { sort: '-amount', limit: '2' });
      const other = await bob.list('Claim', { sort: 'amount', limit: '2', cursor: first.body.next });
      assert.equal(other.body.code, 'DATA_CURSOR_INVALID');
      const tampered = `${first.body.next.slice(0, -2)}AA`;
      assert.equal((await bob.list('Claim', { sort: '-amount', limit: '2', cursor: tampered })).body.code, 'DATA_CURSOR_INVALID');
    });

    test('count=exact is for roles that may count; count=estimated for every reader', async () => {
      const refused = await bob.list('Claim', { count: 'exact', limit: '1' });
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      assert.equal(refused.body.code, 'DATA_COUNT_FORBIDDEN');
      const estimated = await bob.list('Claim', { count: 'estimated', limit: '1' });
      assert.equal(estimated.status, 200);
      assert.equal(typeof estimated.body.count, 'number');
      // Carol (Manager, exactCount: true) counts every claim she may read: bob's submitted one.
      const counted = await carol.list('Claim', { count: 'exact', limit: '1' });
      assert.equal(counted.status, 200, JSON.stringify(counted.body));
      assert.equal(counted.body.count, (await carol.list('Claim', { limit: '500' })).body.items.length);
    });

    test("a limit above the caller's list ceiling is refused, naming the ceiling", async () => {
      const employee = await bob.list('Claim', { limit: '101' });
      assert.equal(employee.status, 400);
      assert.equal(employee.body.code, 'DATA_QUERY_INVALID');
      assert.equal(employee.body.details.max, 100);
      assert.match(employee.body.detail, /1\.\.100/);
      assert.equal((await bob.list('Claim', { limit: '100' })).status, 200);
      // Managers declare listLimit: 500.
      assert.equal((await carol.list('Claim', { limit: '500' })).status, 200);
      const manager = await carol.list('Claim', { limit: '501' });
      assert.equal(manager.status, 400);
      assert.equal(manager.body.details.max, 500);
    });

    test('fields=* gives what the caller may read; a field rule hides the IBAN from other rows', async () => {
      const r = await bob.list('Claim', { fields: 'title,amount' });
      assert.deepEqual(Object.keys(r.body.items[0]).sort(), ['_createdAt', '_updatedAt', '_version', 'amount', 'id', 'title']);
    });

    test('the data inventory lists each attribute with its classification, encryption and readers', async () => {
      const token = await p.database.db.transaction().execute(async (trx) => {
        const id = await createUser(trx, { tenantId: prod.tenantId, email: 'auditor@acme.test', password: 'correct horse battery staple' });
        await grantRole(trx, { userId: id, role: 'auditor', tenantId: prod.tenantId, stageId: null });
        return sessionToken(trx, id);
      });
      const res = await p.app.inject({ method: 'GET', url: '/api/v1/tenants/acme/data/inventory', headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.statusCode, 200, res.body);
      const claim = res.json().entries.find((e: { entity: string; stage: string }) => e.entity === 'Claim' && e.stage === 'production');
      const iban = claim.attributes.find((a: { name: string }) => a.name === 'iban');
      assert.equal(iban.classification, 'restricted');
      assert.equal(iban.encrypted, true);
      assert.equal(iban.searchable, true);
      assert.deepEqual(iban.readers, [
        { role: 'Employee', rows: 'own', field: 'own' },
        { role: 'Manager', rows: null, field: null },
      ]);
      assert.ok(claim.estimatedRows === null || typeof claim.estimatedRows === 'number');
      const endUserTry = await p.app.inject({ method: 'GET', url: '/api/v1/tenants/acme/data/inventory', headers: { authorization: `Bearer ${(await endUser(p, prod, 'x@acme.test', 'expenses', [])).token}` } });
      assert.equal(endUserTry.statusCode, 403);
    });

    test('the OpenAPI document describes the app', async () => {
      const b = await endUser(p, prod, 'erin@acme.test', 'expenses', ['Auditor']);
      const res = await p.app.inject({ method: 'GET', url: '/t/acme/production/apps/expenses/openapi.json', headers: { authorization: `Bearer ${b.token}` } });
      assert.equal(res.statusCode, 200);
      const doc = res.json();
      assert.equal(doc.openapi, '3.1.0');
      assert.ok(doc.paths['/t/acme/production/apps/expenses/api/Claim/{id}'].patch);
      const list = doc.paths['/t/acme/production/apps/expenses/api/Claim'].get;
      const limit = list.parameters.find((x: { name: string }) => x.name === 'limit');
      assert.equal(limit.schema.maximum, 500, 'the largest ceiling of any role');
      assert.match(limit.description, /Employee 100, Manager 500/);
      assert.match(list.parameters.find((x: { name: string }) => x.name === 'count').description, /Auditor, Manager/);
      assert.match(list.responses['403'].description, /DATA_COUNT_FORBIDDEN/);
      // The auditor reads claims but not the IBAN (the field rule).
      const auditor = client(p, prod, 'expenses', b.token);
      const c = await auditor.get('Claim', claimId);
      assert.equal(c.status, 200);
      assert.equal(c.body.iban, undefined);
      assert.equal(c.body.notes, 'client visit');
    });
  });
}

for (const engine of engines()) {
  describe(`idempotent creates on ${engine.name}`, () => {
    let p: Platform;
    let bob: ReturnType<typeof client>;
    before(async () => {
      p = await startPlatform(engine);
      const [prod] = (await tenantWithApp(p, 'acme', expensesManifest())).filter((s) => s.stage === 'production') as [TestStage];
      bob = client(p, prod, 'expenses', (await endUser(p, prod, 'bob@acme.test', 'expenses', ['Employee'])).token);
    });
    after(async () => p?.close());

    test('the same key and body replay the first answer; another body is a 422; nothing is created twice', async () => {
      const body = { title: 'Taxi', amount: '30' };
      const first = await bob.create('Claim', body, { 'idempotency-key': 'k-1' });
      assert.equal(first.status, 201, JSON.stringify(first.body));
      const again = await bob.create('Claim', body, { 'idempotency-key': 'k-1' });
      assert.equal(again.status, 201);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.deepEqual(again.body, first.body);
      const other = await bob.create('Claim', { title: 'Taxi', amount: '31' }, { 'idempotency-key': 'k-1' });
      assert.equal(other.status, 422);
      assert.equal(other.body.code, 'DATA_IDEMPOTENCY_MISMATCH');
      assert.equal((await bob.list('Claim')).body.items.length, 1);
    });

    test('a refused create does not use up its key', async () => {
      const bad = await bob.create('Claim', { title: 'x', amount: 'nope' }, { 'idempotency-key': 'k-2' });
      assert.equal(bad.status, 400);
      const good = await bob.create('Claim', { title: 'x', amount: '2' }, { 'idempotency-key': 'k-2' });
      assert.equal(good.status, 201);
    });

    test('a key still in flight answers 409', async () => {
      await p.database.db
        .insertInto('accord.data_idempotency')
        .values({ stage_id: (await p.database.db.selectFrom('accord.stages').select('id').where('name', '=', 'production').executeTakeFirstOrThrow()).id, app: 'expenses', principal_id: (await p.database.db.selectFrom('accord.users').select('id').where('email', '=', 'bob@acme.test').executeTakeFirstOrThrow()).id, key: 'k-3', request_hash: createHash('sha256').update(JSON.stringify(['Claim', { title: 'y', amount: '1' }])).digest('hex'), state: 'in-flight', status: null, response: null })
        .execute();
      const r = await bob.create('Claim', { title: 'y', amount: '1' }, { 'idempotency-key': 'k-3' });
      assert.equal(r.status, 409);
      assert.equal(r.body.code, 'DATA_IDEMPOTENCY_IN_FLIGHT');
    });
  });
}
