import { type Kysely, sql } from 'kysely';

/**
 * The audit trail: one hash chain per tenant plus the platform chain, signed checkpoints, and
 * delivery cursors for SIEM sinks. The events table is append-only: the platform's own role
 * loses UPDATE, DELETE and TRUNCATE on it, and triggers reject them for everyone (a superuser
 * can still bypass both, which is what the hash chain and external checkpoints are there to
 * reveal). Archiving, the one legitimate removal, sets `accord.audit_archiving` for its
 * transaction and deletes only rows at or below the chain's archived anchor.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table accord.audit_chains (
      chain_id text primary key,
      tenant_id uuid,
      last_seq bigint not null default 0,
      last_hash bytea not null default '\\x0000000000000000000000000000000000000000000000000000000000000000',
      anchor_seq bigint not null default 0,
      anchor_hash bytea not null default '\\x0000000000000000000000000000000000000000000000000000000000000000',
      last_checkpoint_seq bigint not null default 0,
      last_checkpoint_at timestamptz not null default now()
    );
    create table accord.audit_events (
      chain_id text not null,
      seq bigint not null,
      id uuid not null,
      occurred_at timestamptz not null,
      tenant_id uuid,
      actor_type text not null,
      actor_id text,
      actor_label text,
      actor_roles text[] not null,
      action text not null,
      target_type text,
      target_id text,
      outcome text not null,
      reason text,
      source_ip text,
      user_agent text,
      request_id text,
      details jsonb not null,
      hash bytea not null,
      primary key (chain_id, seq)
    );
    create index audit_events_time on accord.audit_events (chain_id, occurred_at);
    create index audit_events_action on accord.audit_events (chain_id, action, seq);
    create table accord.audit_checkpoints (
      chain_id text not null,
      seq bigint not null,
      hash bytea not null,
      signed_at timestamptz not null,
      key_id text not null,
      signature bytea not null,
      primary key (chain_id, seq)
    );
    create table accord.audit_sink_cursors (
      sink text not null,
      chain_id text not null,
      last_seq bigint not null default 0,
      primary key (sink, chain_id)
    );

    create function accord.audit_events_append_only() returns trigger language plpgsql as $$
    begin
      if tg_op = 'DELETE' and current_setting('accord.audit_archiving', true) = 'on' then
        if exists (select 1 from accord.audit_chains c where c.chain_id = old.chain_id and old.seq <= c.anchor_seq) then
          return old;
        end if;
      end if;
      raise exception 'accord.audit_events is append-only (% refused)', tg_op using errcode = 'insufficient_privilege';
    end $$;
    create trigger audit_events_no_update before update on accord.audit_events
      for each row execute function accord.audit_events_append_only();
    create trigger audit_events_no_delete before delete on accord.audit_events
      for each row execute function accord.audit_events_append_only();
    create function accord.audit_events_no_truncate() returns trigger language plpgsql as $$
    begin
      raise exception 'accord.audit_events is append-only (TRUNCATE refused)' using errcode = 'insufficient_privilege';
    end $$;
    create trigger audit_events_no_truncate before truncate on accord.audit_events
      for each statement execute function accord.audit_events_no_truncate();
    revoke update, delete, truncate on accord.audit_events from current_user;
    revoke update, delete, truncate on accord.audit_checkpoints from current_user;
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    drop table accord.audit_sink_cursors, accord.audit_checkpoints, accord.audit_events, accord.audit_chains;
    drop function accord.audit_events_append_only();
    drop function accord.audit_events_no_truncate();
  `.execute(db);
}
