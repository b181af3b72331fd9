import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Trx } from '../db/index.ts';
import { ident } from '../db/index.ts';

/**
 * Each stage has its own PostgreSQL schema, owned by its own role that holds nothing else. The
 * runtime runs tenant queries under `SET LOCAL ROLE`, so the database itself refuses any reach
 * into another stage or into the catalog, whatever our query builder does.
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
}

/** Drops a stage's schema (with everything in it) and its role. */
export async function dropStageStorage(trx: Trx, names: { schema: string; role: string }): Promise<void> {
  await sql`drop schema if exists ${ident(names.schema)} cascade`.execute(trx);
  const role = await sql`select 1 from pg_roles where rolname = ${names.role}`.execute(trx);
  if (role.rows.length === 0) return;
  // Grants the role received elsewhere (none today; apps may add some) would block DROP ROLE.
  await sql`drop owned by ${ident(names.role)} cascade`.execute(trx);
  await sql`drop role ${ident(names.role)}`.execute(trx);
}
