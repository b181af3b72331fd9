// No self-escalation: an actor who administers users and roles but is not a tenant admin runs
// random sequences of grants, revocations, custom-role definitions and app-role grants over
// HTTP. Whatever succeeds, its effective permissions at every scope never grow, and nothing it
// hands to another user exceeds what it held itself.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { ephemeralSigner, systemSource } from '../../../src/audit-chain/index.ts';
import { loadConfig } from '../../../src/config/index.ts';
import type { Db } from '../../../src/db/index.ts';
import type { AuthContext } from '../../../src/http/index.ts';
import { can, createUser, grantsOf, permissions } from '../../../src/iam/index.ts';
import { buildApp } from '../../../src/server/index.ts';
import { createTenant } from '../../../src/tenancy/index.ts';
import { engines } from '../../harness/engines.ts';
import { sessionToken, testIamKey } from '../../harness/iam.ts';
import { testKeyring } from '../../harness/keys.ts';

const config = loadConfig({ env: {}, flags: { logLevel: 'silent' } });
const NUM_RUNS = 25;
const ALL_PERMISSIONS = Object.keys(permissions);
const STAGES = ['development', 'test', 'production'] as const;

// Custom roles the tenant admin defined before the actor starts.
const BASELINE_ROLES: Record<string, string[]> = {
  // The actor's own power: administer users and roles, see the tenant.
  delegate: ['tenant:read', 'user:manage', 'role:manage'],
  // Only visibility: the actor sees tenant and stages through its stage grant, yet holds stage:read nowhere but development.
  viewer: ['tenant:read', 'stage:read'],
  deployer: ['tenant:read', 'stage:read', 'app:deploy'],
};
const ROLE_NAMES = ['developer', 'auditor', 'release-manager', 'tenant-admin', 'security-officer', 'platform-operator', 'delegate', 'viewer', 'deployer', 'r1', 'r2'];
const CUSTOM_NAMES = ['delegate', 'viewer', 'deployer', 'r1', 'r2'];

type Who = 'actor' | 'other';
type Stage = (typeof STAGES)[number] | null;
type Command =
  | { op: 'grant' | 'revoke'; role: string; who: Who; stage: Stage }
  | { op: 'create' | 'update'; name: string; perms: string[] }
  | { op: 'delete'; name: string }
  | { op: 'app-grant' | 'app-revoke'; who: Who; stage: Exclude<Stage, null>; role: string };

const who = fc.constantFrom<Who>('actor', 'actor', 'other');
// development is where the actor holds most; calls there succeed more often.
const stage = fc.constantFrom<Stage>(null, null, 'development', 'development', 'test', 'production');
// Half the time permissions near the actor's own (often allowed), else anything in the catalog.
const perms = fc.oneof(
  fc.subarray(['tenant:read', 'user:manage', 'role:manage', 'stage:read'], { minLength: 1 }),
  fc.subarray(ALL_PERMISSIONS, { minLength: 1, maxLength: 6 }),
);
const role = fc.oneof(fc.constantFrom(...ROLE_NAMES), fc.constantFrom('developer', 'delegate', 'viewer', 'r1', 'r2'));
const command: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constantFrom('grant' as const), role, who, stage }), weight: 4 },
  { arbitrary: fc.record({ op: fc.constantFrom('revoke' as const), role, who, stage }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constantFrom('create' as const), name: fc.constantFrom('r1', 'r2', 'viewer'), perms }), weight: 3 },
  // The actor's own role comes up less often: narrowing it ends most of the sequence's chances.
  { arbitrary: fc.record({ op: fc.constantFrom('update' as const), name: fc.constantFrom('viewer', 'deployer', 'r1', 'r2', 'r1', 'r2', 'delegate'), perms }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constantFrom('delete' as const), name: fc.constantFrom(...CUSTOM_NAMES) }), weight: 1 },
  {
    arbitrary: fc.record({ op: fc.constantFrom('app-grant' as const, 'app-revoke' as const), who, stage: fc.constantFrom(...STAGES), role: fc.constantFrom('sales', 'admin') }),
    weight: 1,
  },
);

// Known attacks, run first on every engine besides the random sequences.
const ATTACKS: Command[][] = [
  [{ op: 'update', name: 'delegate', perms: ['tenant:read', 'user:manage', 'role:manage', 'key:rotate'] }],
  [
    { op: 'create', name: 'r1', perms: ['tenant:read', 'secret:write'] },
    { op: 'grant', role: 'r1', who: 'actor', stage: null },
  ],
  [{ op: 'grant', role: 'viewer', who: 'actor', stage: null }],
  [{ op: 'grant', role: 'deployer', who: 'actor', stage: 'production' }],
  [
    { op: 'update', name: 'viewer', perms: ['tenant:read', 'user:manage'] },
    { op: 'grant', role: 'viewer', who: 'other', stage: null },
  ],
  [{ op: 'grant', role: 'tenant-admin', who: 'actor', stage: 'development' }],
];

/** Every permission usable at every scope, as the authorizer decides it from these grants. */
function effective(grants: AuthContext['grants']): Map<string, Set<string>> {
  const auth = { grants } as AuthContext;
  const scopes: [string, { tenant?: string; stage?: string }][] = [
    ['platform', {}],
    ['acme', { tenant: 'acme' }],
    ...STAGES.map((s): [string, { tenant: string; stage: string }] => [`acme/${s}`, { tenant: 'acme', stage: s }]),
    ['globex', { tenant: 'globex' }],
  ];
  return new Map(scopes.map(([name, scope]) => [name, new Set(ALL_PERMISSIONS.filter((p) => can(auth, p, scope)))]));
}

/** What `after` has at some scope beyond `allowed`; empty when it stayed within. */
function gained(after: Map<string, Set<string>>, ...allowed: Map<string, Set<string>>[]): string[] {
  const out: string[] = [];
  for (const [scope, ps] of after) {
    for (const p of ps) if (!allowed.some((a) => a.get(scope)?.has(p))) out.push(`${p} at ${scope}`);
  }
  return out;
}

for (const engine of engines()) {
  describe(`no self-escalation on ${engine.name}`, () => {
    let app: FastifyInstance;
    after(async () => app?.close());

    test('whatever sequence of role and grant changes an actor gets through, its own permissions never grow', { timeout: 240_000 }, async () => {
      const database = await engine.open();
      const db: Db = database.db;
      const keyring = await testKeyring();
      app = await buildApp({ config, database, logger: pino({ level: 'silent' }), signer: ephemeralSigner(), keyring, iamKey: testIamKey });
      const acme = await createTenant(db, keyring, systemSource, { name: 'acme' });
      await createTenant(db, keyring, systemSource, { name: 'globex' });
      const stageId = (name: string) => acme.stages.find((s) => s.name === name)?.id ?? assert.fail(name);
      const ids: Record<'admin' | Who, string> = { admin: '', actor: '', other: '' };
      let token = '';
      await db.transaction().execute(async (trx) => {
        for (const name of ['admin', 'actor', 'other'] as const) ids[name] = await createUser(trx, { tenantId: acme.id, email: `${name}@acme.test`, password: 'property passphrase' });
        token = await sessionToken(trx, ids.actor);
      });

      /** Back to the starting point: baseline roles and grants, nothing else. */
      const reset = () =>
        db.transaction().execute(async (trx) => {
          await trx.deleteFrom('accord.role_grants').where('tenant_id', '=', acme.id).execute();
          await trx.deleteFrom('accord.app_role_grants').where('tenant_id', '=', acme.id).execute();
          await trx.deleteFrom('accord.custom_roles').where('tenant_id', '=', acme.id).execute();
          await trx
            .insertInto('accord.custom_roles')
            .values(Object.entries(BASELINE_ROLES).map(([name, p]) => ({ tenant_id: acme.id, name, permissions: p })))
            .execute();
          const grant = (user: string, role: string, stage: string | null) => ({ user_id: user, role, tenant_id: acme.id, stage_id: stage === null ? null : stageId(stage) });
          await trx
            .insertInto('accord.role_grants')
            .values([
              grant(ids.admin, 'tenant-admin', null),
              grant(ids.actor, 'delegate', null),
              grant(ids.actor, 'developer', 'development'),
              grant(ids.other, 'release-manager', 'production'),
            ])
            .execute();
        });
      const powers = async (user: Who) => effective(await grantsOf(db, { userId: ids[user] }));

      const send = (method: string, url: string, payload?: object) =>
        app.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${token}` }, ...(payload ? { payload } : {}) });
      const email = (w: Who) => `${w}@acme.test`;
      const run = async (c: Command) => {
        switch (c.op) {
          case 'grant':
            return send('POST', '/api/v1/tenants/acme/grants', { user: email(c.who), role: c.role, ...(c.stage ? { stage: c.stage } : {}) });
          case 'revoke':
            return send('DELETE', `/api/v1/tenants/acme/grants?${new URLSearchParams({ user: email(c.who), role: c.role, ...(c.stage ? { stage: c.stage } : {}) })}`);
          case 'create':
            return send('POST', '/api/v1/tenants/acme/roles', { name: c.name, permissions: c.perms });
          case 'update':
            return send('PATCH', `/api/v1/tenants/acme/roles/${c.name}`, { permissions: c.perms });
          case 'delete':
            return send('DELETE', `/api/v1/tenants/acme/roles/${c.name}`);
          case 'app-grant':
            return send('POST', `/api/v1/tenants/acme/stages/${c.stage}/app-roles`, { user: email(c.who), app: 'crm', role: c.role });
          case 'app-revoke':
            return send('DELETE', `/api/v1/tenants/acme/stages/${c.stage}/app-roles?${new URLSearchParams({ user: email(c.who), app: 'crm', role: c.role })}`);
        }
      };

      await reset();
      const actorBefore = await powers('actor');
      const otherBefore = await powers('other');
      // The starting point is what the property assumes: no tenant admin, stage:read only on development.
      assert.equal(actorBefore.get('acme')?.has('key:rotate'), false);
      assert.equal(actorBefore.get('acme/production')?.has('stage:read'), false);
      assert.equal(actorBefore.get('acme/development')?.has('app:deploy'), true);

      let succeeded = 0;
      let refused = 0;
      const property = fc.asyncProperty(fc.array(command, { minLength: 6, maxLength: 14 }), async (cmds) => {
        await reset();
        const log: string[] = [];
        for (const c of cmds) {
          const res = await run(c);
          const ok = res.statusCode < 300;
          if (ok) succeeded++;
          else refused++;
          assert.ok(res.statusCode < 500, `${JSON.stringify(c)}: ${res.statusCode} ${res.body}`);
          log.push(`${JSON.stringify(c)} -> ${ok ? res.statusCode : res.json().code}`);
          const self = gained(await powers('actor'), actorBefore);
          assert.deepEqual(self, [], `the actor gained permissions after:\n${log.join('\n')}`);
          const handed = gained(await powers('other'), otherBefore, actorBefore);
          assert.deepEqual(handed, [], `the other user got more than the actor holds after:\n${log.join('\n')}`);
        }
      });
      const outcome = await fc.check(property, { numRuns: NUM_RUNS, examples: ATTACKS.map((a) => [a] as [Command[]]) });
      // The test runner does not print an error's cause: put the failed assertion into the message.
      if (outcome.failed) assert.fail(`${fc.defaultReportMessage(outcome)}\n${outcome.errorInstance instanceof Error ? outcome.errorInstance.message : String(outcome.errorInstance)}`);
      // The sequences must have done something, or the property holds vacuously.
      assert.ok(succeeded >= 10, `only ${succeeded} calls succeeded`);
      assert.ok(refused >= 10, `only ${refused} calls were refused`);
    });
  });
}
