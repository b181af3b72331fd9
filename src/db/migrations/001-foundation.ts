import { type Kysely, sql } from 'kysely';

/** Tenants, stages, and the minimal identity tables the first operator needs. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table accord.tenants (
      id uuid primary key default gen_random_uuid(),
      name text not null unique,
      display_name text not null,
      region text not null,
      created_at timestamptz not null default now()
    );
    create table accord.stages (
      id uuid primary key default gen_random_uuid(),
      tenant_id uuid not null references accord.tenants(id) on delete cascade,
      name text not null,
      position integer not null,
      schema_name text not null unique,
      role_name text not null unique,
      created_at timestamptz not null default now(),
      unique (tenant_id, name),
      unique (tenant_id, position) deferrable initially deferred
    );
    create table accord.users (
      id uuid primary key default gen_random_uuid(),
      tenant_id uuid references accord.tenants(id) on delete cascade,
      email text not null check (email = lower(email)),
      display_name text not null default '',
      password_hash text,
      status text not null default 'active' check (status in ('active', 'disabled')),
      created_at timestamptz not null default now(),
      unique nulls not distinct (tenant_id, email)
    );
    create table accord.role_grants (
      id uuid primary key default gen_random_uuid(),
      user_id uuid not null references accord.users(id) on delete cascade,
      role text not null,
      tenant_id uuid references accord.tenants(id) on delete cascade,
      stage_id uuid references accord.stages(id) on delete cascade,
      created_at timestamptz not null default now(),
      unique nulls not distinct (user_id, role, tenant_id, stage_id)
    );
    create table accord.sessions (
      id uuid primary key default gen_random_uuid(),
      user_id uuid not null references accord.users(id) on delete cascade,
      token_hash bytea not null unique,
      created_at timestamptz not null default now(),
      last_seen_at timestamptz not null,
      idle_expires_at timestamptz not null,
      absolute_expires_at timestamptz not null,
      revoked_at timestamptz,
      source_ip text,
      user_agent text
    );
    create index sessions_user on accord.sessions (user_id);
    create table accord.setup_tokens (
      id uuid primary key default gen_random_uuid(),
      token_hash bytea not null unique,
      created_at timestamptz not null default now(),
      expires_at timestamptz not null,
      used_at timestamptz
    );
  `.execute(db);
}

/** Migrations are forward-only in production; down exists for development resets. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    drop table accord.setup_tokens, accord.sessions, accord.role_grants,
      accord.users, accord.stages, accord.tenants;
  `.execute(db);
}
