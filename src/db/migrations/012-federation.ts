import { type Kysely, sql } from 'kysely';

/**
 * Federated identity (issue 13): identity providers per tenant, where they are attached, group to
 * role mappings, the identities they vouch for, pending browser flows, the SAML replay cache and
 * the SCIM groups an IdP pushes.
 *
 * - Grants made by a mapping carry `via_idp`, so a re-sync removes exactly those and never a grant
 *   an admin made by hand (a hand-made grant of the same role wins the unique index and stays).
 * - `builtin_sign_in_disabled` on tenants and stages turns password sign-in off once an IdP works.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table accord.identity_providers (
      id uuid primary key default gen_random_uuid(),
      tenant_id uuid not null references accord.tenants(id) on delete cascade,
      name text not null check (name ~ '^[a-z][a-z0-9-]{0,62}$'),
      kind text not null check (kind in ('oidc', 'saml', 'ldap')),
      settings jsonb not null,
      -- client secret or bind password, sealed under the IAM key (AAD: the provider id)
      sealed_secret bytea,
      console boolean not null default false,
      enabled boolean not null default true,
      created_at timestamptz not null default now(),
      unique (tenant_id, name)
    );
    create table accord.identity_provider_stages (
      idp_id uuid not null references accord.identity_providers(id) on delete cascade,
      stage_id uuid not null references accord.stages(id) on delete cascade,
      primary key (idp_id, stage_id)
    );
    create table accord.idp_group_mappings (
      id uuid primary key default gen_random_uuid(),
      idp_id uuid not null references accord.identity_providers(id) on delete cascade,
      group_name text not null,
      -- role: a platform (built-in or custom) role on the tenant, optionally one stage;
      -- app-role: an app role of one app on one stage
      kind text not null check (kind in ('role', 'app-role')),
      role text not null,
      stage_id uuid references accord.stages(id) on delete cascade,
      app text,
      check ((kind = 'app-role') = (app is not null)),
      check (kind = 'role' or stage_id is not null)
    );
    create unique index idp_group_mappings_unique on accord.idp_group_mappings (idp_id, group_name, kind, role, stage_id, app) nulls not distinct;
    create table accord.federated_identities (
      id uuid primary key default gen_random_uuid(),
      idp_id uuid not null references accord.identity_providers(id) on delete cascade,
      user_id uuid not null references accord.users(id) on delete cascade,
      subject text not null,
      groups text[] not null default '{}',
      last_login_at timestamptz,
      synced_at timestamptz not null default now(),
      unique (idp_id, subject),
      unique (idp_id, user_id)
    );
    create table accord.federation_flows (
      id uuid primary key default gen_random_uuid(),
      idp_id uuid not null references accord.identity_providers(id) on delete cascade,
      state_hash bytea not null unique,
      nonce text not null,
      code_verifier text not null,
      audience jsonb not null,
      mode text not null check (mode in ('bearer', 'cookie')),
      created_at timestamptz not null default now(),
      expires_at timestamptz not null,
      used_at timestamptz
    );
    create index federation_flows_expiry on accord.federation_flows (expires_at);
    create table accord.saml_assertion_ids (
      idp_id uuid not null references accord.identity_providers(id) on delete cascade,
      assertion_id text not null,
      expires_at timestamptz not null,
      primary key (idp_id, assertion_id)
    );
    create table accord.scim_groups (
      id uuid primary key default gen_random_uuid(),
      idp_id uuid not null references accord.identity_providers(id) on delete cascade,
      display_name text not null,
      external_id text,
      created_at timestamptz not null default now(),
      unique (idp_id, display_name)
    );
    create table accord.scim_group_members (
      group_id uuid not null references accord.scim_groups(id) on delete cascade,
      user_id uuid not null references accord.users(id) on delete cascade,
      primary key (group_id, user_id)
    );
    alter table accord.users add column external_id text;
    alter table accord.role_grants add column via_idp uuid references accord.identity_providers(id) on delete cascade;
    alter table accord.app_role_grants add column via_idp uuid references accord.identity_providers(id) on delete cascade;
    alter table accord.tenants add column builtin_sign_in_disabled boolean not null default false;
    alter table accord.stages add column builtin_sign_in_disabled boolean not null default false;
  `.execute(db);
}
