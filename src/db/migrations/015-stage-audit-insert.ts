import { type Kysely, sql } from 'kysely';

/**
 * Stage sessions append audit events with a plain INSERT instead of through
 * `accord.append_audit_event(jsonb)` (migration 006). The function validated a JSON document field
 * by field in PL/pgSQL on every call: on the data API's audited GET it was about a third of
 * PostgreSQL's work for the whole request. What it guaranteed now comes from the table:
 *
 * - **What a stage may write**: INSERT on the event's own columns only (not `seq`, `hash`, `xid`,
 *   `ins`, `occurred_at`): an event goes in unsealed, dated by the database
 *   (`occurred_at`'s default, milliseconds as the hash needs them), under the writing transaction's
 *   id; USAGE on the insertion-number sequence its default draws from. No SELECT: a stage reads no
 *   event, its own included (so no `RETURNING`: the caller makes the id).
 * - **Where and what**: row-level security on `accord.audit_events` with one INSERT policy, the
 *   shape checks of the old function (actor type, outcome, a dotted action, a whole target,
 *   details an object of at most 256 KiB, text columns of at most 8192 characters) and the chain:
 *   the tenant of the stage whose runtime role is writing, looked up by
 *   `accord.stage_audit_tenant()` (SECURITY DEFINER: the runtime role cannot read the stages), once
 *   per statement. The platform role owns the table and is not subject to the policy (no FORCE);
 *   no other role holds any privilege on it.
 * - The function goes: one way in. Its tenant check compared the caller's role with the stages'
 *   owner roles, but stage sessions run as the runtime role (`accord_rt_*`, migration 007), which
 *   is never an owner: the check never applied to them, and a stage session could have appended to
 *   any tenant's chain, or the platform's. The lookup below maps the runtime role to its stage.
 */
const EVENT_COLUMNS = 'chain_id, id, tenant_id, actor_type, actor_id, actor_label, actor_roles, action, target_type, target_id, outcome, reason, source_ip, user_agent, request_id, details';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    -- PL/pgSQL, not SQL: PostgreSQL 15 plans a SQL function's body on every call, and a policy
    -- calls it once per statement; PL/pgSQL keeps the plan.
    create function accord.stage_audit_tenant() returns uuid
      language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $$
    declare
      -- The role the session switched to (current_user is this function's owner in here).
      r text := current_setting('role', true);
    begin
      if r is null or r not like 'accord\\_rt\\_%' then
        return null;
      end if;
      return (select s.tenant_id from accord.stages s where s.role_name = 'accord_st_' || substr(r, 11));
    end $$;
    revoke all on function accord.stage_audit_tenant() from public;

    alter table accord.audit_events
      alter column occurred_at set default date_trunc('milliseconds', clock_timestamp()),
      alter column id set default gen_random_uuid();
    alter table accord.audit_events enable row level security;
    create policy stage_appends on accord.audit_events for insert with check (
      tenant_id = (select accord.stage_audit_tenant())
      and chain_id = tenant_id::text
      and actor_type in ('user', 'client', 'system', 'anonymous')
      and outcome in ('success', 'failure', 'denied')
      and length(action) <= 200 and action ~ '^[a-z][a-z0-9_-]*(\\.[a-z0-9_-]+)*$'
      and (target_type is null) = (target_id is null)
      and jsonb_typeof(details) = 'object' and octet_length(details::text) <= 262144
      and coalesce(length(actor_id), 0) <= 8192 and coalesce(length(actor_label), 0) <= 8192
      and coalesce(length(target_type), 0) <= 8192 and coalesce(length(target_id), 0) <= 8192
      and coalesce(length(reason), 0) <= 8192 and coalesce(length(source_ip), 0) <= 8192
      and coalesce(length(user_agent), 0) <= 8192 and coalesce(length(request_id), 0) <= 8192
    );
    drop function accord.append_audit_event(jsonb);
  `.execute(db);
  const stages = await sql<{ role_name: string }>`select role_name from accord.stages`.execute(db);
  for (const s of stages.rows) await grantStageAppend(db, s.role_name.replace(/^accord_st_/, 'accord_rt_'));
}

/** What a runtime role needs to append (kept in step with src/tenancy/stage-storage.ts). */
async function grantStageAppend(db: Kysely<unknown>, runtimeRole: string): Promise<void> {
  const rt = sql.id(runtimeRole);
  await sql`grant insert (${sql.raw(EVENT_COLUMNS)}) on accord.audit_events to ${rt}`.execute(db);
  await sql`grant usage on sequence accord.audit_events_ins to ${rt}`.execute(db);
  await sql`grant execute on function accord.stage_audit_tenant() to ${rt}`.execute(db);
}

/**
 * Forward-only: undoing this would mean recreating migration 006's function, which this one drops
 * (a development reset starts from an empty database instead).
 */
export async function down(): Promise<void> {
  throw new Error('015-stage-audit-insert cannot be undone: reset the database instead');
}
