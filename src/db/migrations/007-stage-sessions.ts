import { randomBytes } from 'node:crypto';
import { type Kysely, sql } from 'kysely';

/**
 * Stage sessions (src/kernel/stage-session.ts): a runtime role per stage besides the owning one,
 * and the installation's gateway role that data-plane connections log in as.
 *
 * - `accord_rt_<hex>` (one per stage, same hex as its `accord_st_<hex>` owner) owns nothing: it
 *   may use its stage schema, read and write the tables the owner creates there (default
 *   privileges), and call `accord.append_audit_event`. Row-level security therefore applies to it.
 * - `accord_gw_<random hex>` (one per installation; roles are cluster-wide) is a LOGIN NOINHERIT
 *   member of every runtime role and holds nothing itself, so `RESET ROLE` lands on no privileges.
 *   Its password is set by the platform at start, wrapped by the KMS (src/kernel/gateway.ts): a
 *   migration has no KMS.
 *
 * The SQL is written out here rather than imported from src/tenancy/stage-storage.ts: a migration
 * must keep doing what it did when it was released, whatever that module becomes.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const gateway = `accord_gw_${randomBytes(8).toString('hex')}`;
  await sql`
    create table accord.data_plane_gateway (
      singleton boolean primary key default true check (singleton),
      role_name text not null unique,
      -- Both null until the first start sets a password (PGlite never needs one).
      root_key_id text,
      wrapped bytea,
      created_at timestamptz not null default now(),
      check ((root_key_id is null) = (wrapped is null))
    )
  `.execute(db);
  await sql`create role ${sql.id(gateway)} login noinherit nocreatedb nocreaterole noreplication`.execute(db);
  await sql`insert into accord.data_plane_gateway (role_name) values (${gateway})`.execute(db);

  // Placeholder until the audit-sealer's migration 006 (which creates the real function) is
  // merged: after the merge 006 runs first and this is skipped. It refuses instead of pretending to
  // append, so nothing can be silently unaudited. Owned by the platform role, like the real one.
  await sql`
    do $$
    begin
      if to_regprocedure('accord.append_audit_event(jsonb)') is null then
        create function accord.append_audit_event(event jsonb) returns uuid
          language plpgsql security definer set search_path = pg_catalog, pg_temp as $f$
        begin
          raise exception 'accord.append_audit_event is a placeholder until migration 006 is merged'
            using errcode = 'feature_not_supported';
        end
        $f$;
      end if;
    end
    $$
  `.execute(db);

  // Runtime roles get USAGE on the catalog schema for that one function. Functions are executable
  // by PUBLIC by default, so without this every function in accord (and any SECURITY DEFINER one a
  // later migration adds) would be callable from a stage session.
  await sql`revoke execute on all functions in schema accord from public`.execute(db);
  await sql`alter default privileges revoke execute on functions from public`.execute(db);

  const stages = await sql<{ schema_name: string; role_name: string }>`select schema_name, role_name from accord.stages`.execute(db);
  for (const s of stages.rows) {
    const runtime = s.role_name.replace(/^accord_st_/, 'accord_rt_');
    if (runtime === s.role_name) throw new Error(`unexpected stage role name ${s.role_name}`);
    const [schema, owner, rt] = [sql.id(s.schema_name), sql.id(s.role_name), sql.id(runtime)];
    await sql`create role ${rt} nologin noinherit`.execute(db);
    await sql`grant usage on schema ${schema} to ${rt}`.execute(db);
    await sql`grant select, insert, update, delete on all tables in schema ${schema} to ${rt}`.execute(db);
    await sql`grant usage, select on all sequences in schema ${schema} to ${rt}`.execute(db);
    await sql`alter default privileges for role ${owner} in schema ${schema} grant select, insert, update, delete on tables to ${rt}`.execute(db);
    await sql`alter default privileges for role ${owner} in schema ${schema} grant usage, select on sequences to ${rt}`.execute(db);
    await sql`grant usage on schema accord to ${rt}`.execute(db);
    await sql`grant execute on function accord.append_audit_event(jsonb) to ${rt}`.execute(db);
    await sql`grant ${rt} to ${sql.id(gateway)}`.execute(db);
  }
}

/** Migrations are forward-only in production; down exists for development resets. */
export async function down(db: Kysely<unknown>): Promise<void> {
  const row = await sql<{ role_name: string }>`select role_name from accord.data_plane_gateway`.execute(db);
  const stages = await sql<{ role_name: string }>`select role_name from accord.stages`.execute(db);
  for (const s of stages.rows) {
    const rt = sql.id(s.role_name.replace(/^accord_st_/, 'accord_rt_'));
    await sql`revoke all on all functions in schema accord from ${rt}`.execute(db);
    await sql`revoke all on schema accord from ${rt}`.execute(db);
    await sql`drop role if exists ${rt}`.execute(db);
  }
  await sql`drop table accord.data_plane_gateway`.execute(db);
  for (const r of row.rows) await sql`drop role if exists ${sql.id(r.role_name)}`.execute(db);
}
