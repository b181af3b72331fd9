import { type Kysely, sql } from 'kysely';

/**
 * Model-driven apps: revisions (content-addressed, per tenant and app) and what runs on each stage.
 *
 * - `app_revisions` holds every revision ever deployed, immutable: the IR as JSON, the manifest
 *   text it came from, and the action sources, so a rollback or promotion redeploys exactly that
 *   content. The id is the revision hash (`sha256:` + 64 hex).
 * - `app_stage_state` is what runs now on a stage (one row per stage and app); the data API reads
 *   it on every request (through a cache keyed by the row's `deployed_at`).
 * - `app_deployments` is the history: every deploy, promotion and rollback with its steps.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table accord.app_revisions (
      tenant_id uuid not null references accord.tenants(id) on delete cascade,
      app text not null,
      id text not null check (id ~ '^sha256:[0-9a-f]{64}$'),
      version text not null,
      ir jsonb not null,
      manifest text not null,
      actions jsonb not null default '{}'::jsonb,
      created_by uuid references accord.users(id) on delete set null,
      created_at timestamptz not null default now(),
      primary key (tenant_id, app, id)
    );
    create table accord.app_stage_state (
      stage_id uuid not null references accord.stages(id) on delete cascade,
      app text not null,
      tenant_id uuid not null references accord.tenants(id) on delete cascade,
      revision text not null,
      deployed_at timestamptz not null default now(),
      deployed_by uuid references accord.users(id) on delete set null,
      primary key (stage_id, app),
      foreign key (tenant_id, app, revision) references accord.app_revisions (tenant_id, app, id)
    );
    create table accord.app_deployments (
      id uuid primary key default gen_random_uuid(),
      tenant_id uuid not null references accord.tenants(id) on delete cascade,
      stage_id uuid not null references accord.stages(id) on delete cascade,
      app text not null,
      revision text not null,
      previous_revision text,
      kind text not null check (kind in ('deploy', 'promote', 'rollback')),
      steps jsonb not null default '[]'::jsonb,
      deployed_by uuid references accord.users(id) on delete set null,
      deployed_at timestamptz not null default now(),
      foreign key (tenant_id, app, revision) references accord.app_revisions (tenant_id, app, id)
    );
    create index app_deployments_stage on accord.app_deployments (stage_id, app, deployed_at desc);
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table accord.app_deployments, accord.app_stage_state, accord.app_revisions`.execute(db);
}
