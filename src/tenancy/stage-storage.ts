import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { STAGE_AUDIT_COLUMNS } from '../audit-chain/index.ts';
import type { Trx } from '../db/index.ts';
import { ident } from '../db/index.ts';
import { gatewayRoleName, runtimeRoleOf } from '../kernel/index.ts';

/**
 * Each stage has its own PostgreSQL schema, owned by its own role that holds nothing else, and a
 * runtime role that owns nothing: stage sessions (src/kernel/stage-session.ts) run tenant queries
 * as the runtime role, so the database itself refuses any reach into another stage or into the
 * catalog, whatever our query builder does, and row-level security applies (the owner would
 * bypass it).
 *
 * Names come from random ids, not from tenant names: roles are cluster-wide in PostgreSQL and
 * identifiers are limited to 63 bytes, and neither constraint should shape tenant naming.
 */
export function newStageStorageNames(): { schema: string; role: string } {
  const id = randomBytes(8).toString('hex');
  return { schema: `st_${id}`, role: `accord_st_${id}` };
}

/** Creates a stage's role and schema inside the caller's transaction. */
export async function createStageStorage(trx: Trx, names: { schema: string; role: string }): Promise<void> {
  await sql`create role ${ident(names.role)} nologin noinherit`.execute(trx);
  // The platform must be a member to hand the schema to the role and to SET ROLE into it later.
  await sql`grant ${ident(names.role)} to current_user`.execute(trx);
  await sql`create schema ${ident(names.schema)} authorization ${ident(names.role)}`.execute(trx);
  // Keep in step with migration 007, which did the same for the stages that existed before it.
  const [schema, owner, rt] = [ident(names.schema), ident(names.role), ident(runtimeRoleOf(names.role))];
  await sql`create role ${rt} nologin noinherit`.execute(trx);
  await sql`grant usage on schema ${schema} to ${rt}`.execute(trx);
  // Tables and sequences the owner creates later (app deployments) are the runtime role's to use.
  await sql`alter default privileges for role ${owner} in schema ${schema} grant select, insert, update, delete on tables to ${rt}`.execute(trx);
  await sql`alter default privileges for role ${owner} in schema ${schema} grant usage, select on sequences to ${rt}`.execute(trx);
  // The one way into the catalog: appending audit events, an INSERT on the event's own columns
  // that row-level security holds to the stage's tenant (migration 015; keep in step with it).
  // These grants rewrite ACLs (the accord schema's, the table's, ...) that every stage shares:
  // two stages created at once would fail with "tuple concurrently updated", so take turns.
  await sql`select pg_advisory_xact_lock(hashtext('accord.stage-storage.grants'))`.execute(trx);
  await sql`grant usage on schema accord to ${rt}`.execute(trx);
  await sql`grant insert (${sql.raw(STAGE_AUDIT_COLUMNS.join(', '))}) on accord.audit_events to ${rt}`.execute(trx);
  await sql`grant usage on sequence accord.audit_events_ins to ${rt}`.execute(trx);
  await sql`grant execute on function accord.stage_audit_tenant() to ${rt}`.execute(trx);
  await sql`grant ${rt} to ${ident(await gatewayRoleName(trx))}`.execute(trx);
}

/** Drops a stage's schema (with everything in it), its runtime role and its owning role. */
export async function dropStageStorage(trx: Trx, names: { schema: string; role: string }): Promise<void> {
  await sql`drop schema if exists ${ident(names.schema)} cascade`.execute(trx);
  const runtime = runtimeRoleOf(names.role);
  if (await roleExists(trx, runtime)) {
    // The platform is no member of the runtime role, so DROP OWNED is not open to it; the role owns
    // nothing and its grants outside the (dropped) stage schema are in the catalog schema.
    await sql`revoke all on all functions in schema accord from ${ident(runtime)}`.execute(trx);
    await sql`revoke all on accord.audit_events from ${ident(runtime)}`.execute(trx);
    await sql`revoke all on sequence accord.audit_events_ins from ${ident(runtime)}`.execute(trx);
    await sql`revoke all on schema accord from ${ident(runtime)}`.execute(trx);
    await sql`drop role ${ident(runtime)}`.execute(trx);
  }
  if (!(await roleExists(trx, names.role))) return;
  // Grants the role received elsewhere (none today; apps may add some) would block DROP ROLE.
  await sql`drop owned by ${ident(names.role)} cascade`.execute(trx);
  await sql`drop role ${ident(names.role)}`.execute(trx);
}

async function roleExists(trx: Trx, role: string): Promise<boolean> {
  return (await sql`select 1 from pg_roles where rolname = ${role}`.execute(trx)).rows.length > 0;
}
