import { type Kysely, sql } from 'kysely';

/**
 * Audit sealing (request-kernel issue): an event is inserted unsealed in the writer's transaction
 * (seq and hash NULL, plus the writing transaction's id and an insertion number), and a sealer
 * assigns seq and hash afterwards, per chain, under the chain head's row lock, to events whose
 * writing transactions have all ended. Rows sealed before this migration stay as they are.
 *
 * - `(chain_id, seq)` stops being the primary key (seq is NULL until sealed) and becomes a unique
 *   index over sealed rows, which still refuses two records at one position; the search indexes
 *   cover sealed rows only, so an insert maintains just the small index of unsealed rows.
 * - The append-only trigger allows one UPDATE per row: sealing, which fills seq and hash of an
 *   unsealed row and changes nothing else. The platform role gets UPDATE on those two columns only.
 * - `accord.append_audit_event(jsonb)`: the one way into the trail for a session whose role cannot
 *   see the catalog (stage sessions): SECURITY DEFINER, appends one unsealed event, nothing else.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    alter table accord.audit_events drop constraint audit_events_pkey;
    alter table accord.audit_events alter column seq drop not null, alter column hash drop not null;
    -- Nullable without a default first, so existing (sealed) rows are not rewritten.
    alter table accord.audit_events add column xid xid8, add column ins bigint;
    create sequence accord.audit_events_ins owned by accord.audit_events.ins;
    alter table accord.audit_events
      alter column xid set default pg_current_xact_id(),
      alter column ins set default nextval('accord.audit_events_ins');
    alter table accord.audit_events
      add constraint audit_events_sealed_whole check ((seq is null) = (hash is null)),
      add constraint audit_events_unsealed_known check (seq is not null or (xid is not null and ins is not null));
    -- The indexes of sealed records cover sealed records only, so an insert (the request path)
    -- maintains one small index, and sealing adds the row to the others.
    create unique index audit_events_seq on accord.audit_events (chain_id, seq) where seq is not null;
    drop index accord.audit_events_time;
    create index audit_events_time on accord.audit_events (chain_id, occurred_at) where seq is not null;
    drop index accord.audit_events_action;
    create index audit_events_action on accord.audit_events (chain_id, action, seq) where seq is not null;
    -- The sealer's work list, and search's view of the newest records: small, as rows leave it when sealed.
    create index audit_events_unsealed on accord.audit_events (chain_id, ins) where seq is null;
    -- The horizon of the last seal pass that left nothing sealable behind in this chain: an
    -- unsealed event of an older transaction is one the sealer skipped, which verify reports.
    alter table accord.audit_chains add column sealed_xid xid8;

    create or replace function accord.audit_events_append_only() returns trigger language plpgsql as $$
    begin
      if tg_op = 'UPDATE' then
        -- Sealing, once per row: seq and hash go from NULL to values and nothing else changes.
        if old.seq is null and old.hash is null and new.seq is not null and new.hash is not null
          and (new.chain_id, new.id, new.occurred_at, new.tenant_id, new.actor_type, new.actor_id, new.actor_label,
               new.actor_roles, new.action, new.target_type, new.target_id, new.outcome, new.reason, new.source_ip,
               new.user_agent, new.request_id, new.details, new.xid, new.ins)
            is not distinct from
              (old.chain_id, old.id, old.occurred_at, old.tenant_id, old.actor_type, old.actor_id, old.actor_label,
               old.actor_roles, old.action, old.target_type, old.target_id, old.outcome, old.reason, old.source_ip,
               old.user_agent, old.request_id, old.details, old.xid, old.ins) then
          return new;
        end if;
      end if;
      if tg_op = 'DELETE' and current_setting('accord.audit_archiving', true) = 'on' then
        if exists (select 1 from accord.audit_chains c where c.chain_id = old.chain_id and old.seq <= c.anchor_seq) then
          return old;
        end if;
      end if;
      raise exception 'accord.audit_events is append-only (% refused)', tg_op using errcode = 'insufficient_privilege';
    end $$;
    -- The seal test in the trigger's WHEN clause too: evaluated without entering PL/pgSQL, so the
    -- sealer's batch updates pay little for the guard.
    drop trigger audit_events_no_update on accord.audit_events;
    create trigger audit_events_no_update before update on accord.audit_events for each row
      when (not (old.seq is null and old.hash is null and new.seq is not null and new.hash is not null
        and (new.chain_id, new.id, new.occurred_at, new.tenant_id, new.actor_type, new.actor_id, new.actor_label,
             new.actor_roles, new.action, new.target_type, new.target_id, new.outcome, new.reason, new.source_ip,
             new.user_agent, new.request_id, new.details, new.xid, new.ins)
          is not distinct from
            (old.chain_id, old.id, old.occurred_at, old.tenant_id, old.actor_type, old.actor_id, old.actor_label,
             old.actor_roles, old.action, old.target_type, old.target_id, old.outcome, old.reason, old.source_ip,
             old.user_agent, old.request_id, old.details, old.xid, old.ins)))
      execute function accord.audit_events_append_only();
    grant update (seq, hash) on accord.audit_events to current_user;

    create function accord.append_audit_event(event jsonb) returns uuid
      language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
    declare
      allowed constant text[] := array['chain_id', 'tenant_id', 'actor_type', 'actor_id', 'actor_label', 'actor_roles',
        'action', 'target_type', 'target_id', 'outcome', 'reason', 'source_ip', 'user_agent', 'request_id', 'details'];
      nullable_text constant text[] := array['actor_id', 'actor_label', 'target_type', 'target_id', 'reason', 'source_ip',
        'user_agent', 'request_id'];
      k text;
      tenant uuid;
      caller_role text;
      caller_tenant uuid;
      new_id uuid := gen_random_uuid();
    begin
      if jsonb_typeof(event) is distinct from 'object' then
        raise exception 'audit event must be a JSON object' using errcode = 'invalid_parameter_value';
      end if;
      for k in select jsonb_object_keys(event) loop
        if not (k = any (allowed)) then
          raise exception 'audit event has an unknown field %', k using errcode = 'invalid_parameter_value';
        end if;
      end loop;
      foreach k in array allowed loop
        if not (event ? k) then
          raise exception 'audit event lacks the field %', k using errcode = 'invalid_parameter_value';
        end if;
      end loop;
      foreach k in array nullable_text loop
        if jsonb_typeof(event -> k) not in ('string', 'null') or length(event ->> k) > 8192 then
          raise exception 'audit event field % must be a string of at most 8192 characters, or null', k using errcode = 'invalid_parameter_value';
        end if;
      end loop;
      if jsonb_typeof(event -> 'tenant_id') = 'null' then
        tenant := null;
      elsif jsonb_typeof(event -> 'tenant_id') = 'string' and (event ->> 'tenant_id') ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
        tenant := (event ->> 'tenant_id')::uuid;
      else
        raise exception 'audit event field tenant_id must be a lower-case UUID or null' using errcode = 'invalid_parameter_value';
      end if;
      if jsonb_typeof(event -> 'chain_id') is distinct from 'string' or (event ->> 'chain_id') <> coalesce(tenant::text, 'platform') then
        raise exception 'audit event chain_id must be the tenant id, or platform without a tenant' using errcode = 'invalid_parameter_value';
      end if;
      if (event ->> 'actor_type') is null or (event ->> 'actor_type') not in ('user', 'client', 'system', 'anonymous') then
        raise exception 'audit event actor_type must be user, client, system or anonymous' using errcode = 'invalid_parameter_value';
      end if;
      if jsonb_typeof(event -> 'actor_roles') is distinct from 'array'
        or exists (select 1 from jsonb_array_elements(event -> 'actor_roles') r where jsonb_typeof(r) <> 'string') then
        raise exception 'audit event actor_roles must be an array of strings' using errcode = 'invalid_parameter_value';
      end if;
      if jsonb_typeof(event -> 'action') is distinct from 'string' or length(event ->> 'action') > 200
        or (event ->> 'action') !~ '^[a-z][a-z0-9_-]*(\\.[a-z0-9_-]+)*$' then
        raise exception 'audit event action must be a dotted lower-case name' using errcode = 'invalid_parameter_value';
      end if;
      if (jsonb_typeof(event -> 'target_type') = 'null') <> (jsonb_typeof(event -> 'target_id') = 'null') then
        raise exception 'audit event target_type and target_id are both set or both null' using errcode = 'invalid_parameter_value';
      end if;
      if (event ->> 'outcome') is null or (event ->> 'outcome') not in ('success', 'failure', 'denied') then
        raise exception 'audit event outcome must be success, failure or denied' using errcode = 'invalid_parameter_value';
      end if;
      if jsonb_typeof(event -> 'details') is distinct from 'object' or octet_length((event -> 'details')::text) > 262144 then
        raise exception 'audit event details must be a JSON object of at most 256 KiB' using errcode = 'invalid_parameter_value';
      end if;
      -- A stage's role writes only to its own tenant's chain, whatever the caller passes.
      caller_role := coalesce(nullif(current_setting('role', true), 'none'), session_user::text);
      select s.tenant_id into caller_tenant from accord.stages s where s.role_name = caller_role;
      if found and tenant is distinct from caller_tenant then
        raise exception 'a stage appends audit events to its own tenant''s chain only' using errcode = 'insufficient_privilege';
      end if;
      insert into accord.audit_events (chain_id, id, occurred_at, tenant_id, actor_type, actor_id, actor_label, actor_roles,
        action, target_type, target_id, outcome, reason, source_ip, user_agent, request_id, details)
      values (event ->> 'chain_id', new_id, date_trunc('milliseconds', clock_timestamp()), tenant, event ->> 'actor_type',
        event ->> 'actor_id', event ->> 'actor_label', array(select jsonb_array_elements_text(event -> 'actor_roles')),
        event ->> 'action', event ->> 'target_type', event ->> 'target_id', event ->> 'outcome', event ->> 'reason',
        event ->> 'source_ip', event ->> 'user_agent', event ->> 'request_id', event -> 'details');
      return new_id;
    end $$;
    revoke all on function accord.append_audit_event(jsonb) from public;
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Unsealed rows cannot go back under a NOT NULL primary key: seal them first.
  await sql`
    drop function accord.append_audit_event(jsonb);
    revoke update (seq, hash) on accord.audit_events from current_user;
    alter table accord.audit_chains drop column sealed_xid;
    drop index accord.audit_events_unsealed;
    drop index accord.audit_events_seq;
    drop index accord.audit_events_time;
    create index audit_events_time on accord.audit_events (chain_id, occurred_at);
    drop index accord.audit_events_action;
    create index audit_events_action on accord.audit_events (chain_id, action, seq);
    alter table accord.audit_events drop constraint audit_events_unsealed_known, drop constraint audit_events_sealed_whole;
    alter table accord.audit_events drop column ins, drop column xid;
    alter table accord.audit_events alter column seq set not null, alter column hash set not null;
    alter table accord.audit_events add primary key (chain_id, seq);
    drop trigger audit_events_no_update on accord.audit_events;
    create trigger audit_events_no_update before update on accord.audit_events
      for each row execute function accord.audit_events_append_only();
    create or replace function accord.audit_events_append_only() returns trigger language plpgsql as $$
    begin
      if tg_op = 'DELETE' and current_setting('accord.audit_archiving', true) = 'on' then
        if exists (select 1 from accord.audit_chains c where c.chain_id = old.chain_id and old.seq <= c.anchor_seq) then
          return old;
        end if;
      end if;
      raise exception 'accord.audit_events is append-only (% refused)', tg_op using errcode = 'insufficient_privilege';
    end $$;
  `.execute(db);
}
