import { type Kysely, sql } from 'kysely';

/**
 * Web application firewall (src/waf/): per-stage settings, rule exclusions and detections.
 *
 * - `waf_settings`: one row per stage that changed its settings (a stage without one runs the
 *   defaults: block, paranoia level 1, threshold 5).
 * - `waf_exclusions`: a rule switched off for one field (or every field, `*`) of one stage, with
 *   the reason and an expiry; the engine ignores expired rows, they stay as history.
 * - `waf_events`: each detection (detect or block mode): the rules, categories, scores and field
 *   names, and bounded redacted excerpts; never a full value. `id` is the reference a blocked
 *   caller is given. Stage-less rows are the control plane's.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table accord.waf_settings (
      stage_id uuid primary key references accord.stages(id) on delete cascade,
      tenant_id uuid not null references accord.tenants(id) on delete cascade,
      mode text not null check (mode in ('off', 'detect', 'block')),
      paranoia_level smallint not null check (paranoia_level between 1 and 4),
      threshold smallint not null check (threshold between 1 and 1000),
      updated_by uuid references accord.users(id) on delete set null,
      updated_at timestamptz not null default now()
    );
    create table accord.waf_exclusions (
      id uuid primary key default gen_random_uuid(),
      tenant_id uuid not null references accord.tenants(id) on delete cascade,
      stage_id uuid not null references accord.stages(id) on delete cascade,
      rule_id integer not null,
      field text not null check (length(field) between 1 and 200),
      justification text not null check (length(justification) between 1 and 1000),
      expires_at timestamptz not null,
      created_by uuid references accord.users(id) on delete set null,
      created_at timestamptz not null default now(),
      removed_at timestamptz
    );
    create index waf_exclusions_stage on accord.waf_exclusions (stage_id) where removed_at is null;
    create table accord.waf_events (
      id uuid primary key,
      tenant_id uuid references accord.tenants(id) on delete cascade,
      stage_id uuid references accord.stages(id) on delete cascade,
      at timestamptz not null default now(),
      mode text not null check (mode in ('detect', 'block')),
      blocked boolean not null,
      kind text not null check (kind in ('request', 'sink')),
      request_id text not null,
      method text not null,
      route text not null,
      score integer not null,
      paranoia_level smallint not null,
      rule_ids integer[] not null,
      categories jsonb not null,
      fields text[] not null,
      matches jsonb not null,
      source_ip text
    );
    create index waf_events_stage on accord.waf_events (tenant_id, stage_id, at desc);
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table accord.waf_events, accord.waf_exclusions, accord.waf_settings`.execute(db);
}
