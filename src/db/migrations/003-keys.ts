import { type Kysely, sql } from 'kysely';

/**
 * The key hierarchy below the KMS root key: per-tenant key-encryption keys and per-stage data
 * keys, each versioned and stored only wrapped; stage secrets encrypted under the data keys; and
 * the job queue that rotation (and later backups, scans, timers) runs on.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table accord.tenant_keks (
      tenant_id uuid not null references accord.tenants(id) on delete cascade,
      version integer not null,
      root_key_id text not null,
      wrapped bytea not null,
      state text not null check (state in ('active', 'retired')),
      created_at timestamptz not null default now(),
      primary key (tenant_id, version)
    );
    create table accord.stage_deks (
      stage_id uuid not null references accord.stages(id) on delete cascade,
      tenant_id uuid not null references accord.tenants(id) on delete cascade,
      version integer not null,
      kek_version integer not null,
      wrapped bytea not null,
      state text not null check (state in ('active', 'retired')),
      created_at timestamptz not null default now(),
      primary key (stage_id, version)
    );
    create index stage_deks_kek on accord.stage_deks (tenant_id, kek_version);
    create table accord.stage_secrets (
      stage_id uuid not null references accord.stages(id) on delete cascade,
      name text not null,
      envelope bytea not null,
      key_version integer not null,
      updated_at timestamptz not null default now(),
      primary key (stage_id, name)
    );
    create index stage_secrets_version on accord.stage_secrets (stage_id, key_version);
    create table accord.jobs (
      id uuid primary key default gen_random_uuid(),
      kind text not null,
      tenant_id uuid,
      state text not null check (state in ('pending', 'running', 'done', 'failed')),
      payload jsonb not null,
      progress jsonb not null default '{}',
      attempts integer not null default 0,
      locked_until timestamptz,
      error text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    );
    create index jobs_runnable on accord.jobs (state, locked_until);
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table accord.jobs, accord.stage_secrets, accord.stage_deks, accord.tenant_keks;`.execute(db);
}
