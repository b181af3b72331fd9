import { type Kysely, sql } from 'kysely';

/**
 * Identity and access (IAM issue): session families with rotating refresh tokens, the platform's
 * token key (wrapped by the KMS root key), MFA factors, one-time user tokens (invitations,
 * password resets, MFA challenges), API clients, custom roles, app-role grants, access reviews,
 * and per-tenant / per-stage session and MFA policy.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    alter table accord.tenants
      add column require_mfa boolean not null default false,
      add column mfa_required_roles text[] not null default '{}',
      add column session_idle_seconds integer,
      add column session_absolute_seconds integer;
    alter table accord.stages
      add column session_idle_seconds integer,
      add column session_absolute_seconds integer;

    alter table accord.users drop constraint users_status_check;
    alter table accord.users add constraint users_status_check check (status in ('active', 'disabled', 'invited'));
    alter table accord.users add column password_changed_at timestamptz;

    -- Single-use secrets handed to one user: only their SHA-256 is stored.
    create table accord.user_tokens (
      id uuid primary key default gen_random_uuid(),
      user_id uuid not null references accord.users(id) on delete cascade,
      purpose text not null check (purpose in ('invite', 'password-reset', 'mfa-challenge', 'webauthn-register')),
      token_hash bytea not null unique,
      data jsonb not null default '{}',
      created_at timestamptz not null default now(),
      expires_at timestamptz not null,
      used_at timestamptz
    );
    create index user_tokens_user on accord.user_tokens (user_id, purpose);

    -- A session is a family of refresh tokens; access tokens name the session (sid) and die with it.
    alter table accord.sessions drop column token_hash;
    alter table accord.sessions
      add column kind text not null default 'console' check (kind in ('console', 'end-user')),
      add column stage_id uuid references accord.stages(id) on delete cascade,
      add column enrolment_only boolean not null default false,
      add column auth_methods text[] not null default '{password}',
      add column revoked_reason text;
    create index sessions_revoked on accord.sessions (revoked_at) where revoked_at is not null;
    create table accord.refresh_tokens (
      id uuid primary key default gen_random_uuid(),
      session_id uuid not null references accord.sessions(id) on delete cascade,
      token_hash bytea not null unique,
      created_at timestamptz not null default now(),
      used_at timestamptz
    );
    create index refresh_tokens_session on accord.refresh_tokens (session_id);

    -- The platform's token key(s), wrapped by the KMS root key like tenant KEKs.
    create table accord.iam_keys (
      kid text primary key,
      root_key_id text not null,
      wrapped bytea not null,
      created_at timestamptz not null default now()
    );

    create table accord.mfa_totp (
      user_id uuid primary key references accord.users(id) on delete cascade,
      secret_sealed bytea not null,
      confirmed_at timestamptz,
      last_step bigint not null default 0,
      created_at timestamptz not null default now()
    );
    create table accord.mfa_recovery_codes (
      id uuid primary key default gen_random_uuid(),
      user_id uuid not null references accord.users(id) on delete cascade,
      code_hash bytea not null,
      used_at timestamptz,
      created_at timestamptz not null default now()
    );
    create index mfa_recovery_codes_user on accord.mfa_recovery_codes (user_id);
    create table accord.webauthn_credentials (
      id uuid primary key default gen_random_uuid(),
      user_id uuid not null references accord.users(id) on delete cascade,
      credential_id text not null unique,
      public_key bytea not null,
      counter bigint not null default 0,
      transports text[] not null default '{}',
      name text not null default '',
      created_at timestamptz not null default now(),
      last_used_at timestamptz
    );
    create index webauthn_credentials_user on accord.webauthn_credentials (user_id);

    create table accord.api_clients (
      id uuid primary key default gen_random_uuid(),
      tenant_id uuid not null references accord.tenants(id) on delete cascade,
      name text not null,
      client_id text not null unique,
      created_by uuid references accord.users(id) on delete set null,
      created_at timestamptz not null default now(),
      expires_at timestamptz not null,
      revoked_at timestamptz,
      last_used_at timestamptz,
      unique (tenant_id, name)
    );
    create table accord.api_client_secrets (
      id uuid primary key default gen_random_uuid(),
      client_id uuid not null references accord.api_clients(id) on delete cascade,
      secret_hash bytea not null unique,
      created_at timestamptz not null default now(),
      expires_at timestamptz not null,
      revoked_at timestamptz
    );
    create index api_client_secrets_client on accord.api_client_secrets (client_id);

    create table accord.custom_roles (
      id uuid primary key default gen_random_uuid(),
      tenant_id uuid not null references accord.tenants(id) on delete cascade,
      name text not null,
      description text not null default '',
      permissions text[] not null,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      unique (tenant_id, name)
    );

    -- Grants go to a user or to an API client; last use feeds access reviews.
    alter table accord.role_grants drop constraint role_grants_user_id_role_tenant_id_stage_id_key;
    alter table accord.role_grants alter column user_id drop not null;
    alter table accord.role_grants
      add column client_id uuid references accord.api_clients(id) on delete cascade,
      add column granted_by uuid references accord.users(id) on delete set null,
      add column last_used_at timestamptz,
      add constraint role_grants_one_principal check (num_nonnulls(user_id, client_id) = 1);
    create unique index role_grants_user_unique on accord.role_grants (user_id, role, tenant_id, stage_id) nulls not distinct where user_id is not null;
    create unique index role_grants_client_unique on accord.role_grants (client_id, role, tenant_id, stage_id) nulls not distinct where client_id is not null;
    create index role_grants_client on accord.role_grants (client_id) where client_id is not null;

    -- App roles (defined by each app) granted to the tenant's users per app and stage.
    create table accord.app_role_grants (
      id uuid primary key default gen_random_uuid(),
      tenant_id uuid not null references accord.tenants(id) on delete cascade,
      stage_id uuid not null references accord.stages(id) on delete cascade,
      app text not null,
      role text not null,
      user_id uuid not null references accord.users(id) on delete cascade,
      granted_by uuid references accord.users(id) on delete set null,
      created_at timestamptz not null default now(),
      last_used_at timestamptz,
      unique (stage_id, app, role, user_id)
    );

    create table accord.access_reviews (
      id uuid primary key default gen_random_uuid(),
      tenant_id uuid not null references accord.tenants(id) on delete cascade,
      name text not null,
      started_by text not null,
      started_at timestamptz not null default now(),
      closed_at timestamptz,
      closed_by text
    );
    create table accord.access_review_items (
      id uuid primary key default gen_random_uuid(),
      review_id uuid not null references accord.access_reviews(id) on delete cascade,
      kind text not null check (kind in ('role', 'app-role')),
      grant_id uuid not null,
      principal_type text not null check (principal_type in ('user', 'client')),
      principal_id uuid not null,
      principal_label text not null,
      role text not null,
      app text,
      stage text,
      last_used_at timestamptz,
      decision text check (decision in ('confirm', 'revoke')),
      decided_by text,
      decided_at timestamptz,
      note text
    );
    create index access_review_items_review on accord.access_review_items (review_id);
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    drop table accord.access_review_items, accord.access_reviews, accord.app_role_grants, accord.custom_roles,
      accord.api_client_secrets, accord.webauthn_credentials, accord.mfa_recovery_codes, accord.mfa_totp,
      accord.iam_keys, accord.refresh_tokens, accord.user_tokens cascade;
  `.execute(db);
}
