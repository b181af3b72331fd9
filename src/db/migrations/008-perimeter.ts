import { type Kysely, sql } from 'kysely';

/**
 * The perimeter (issue 10):
 * - the sign-in lockout counts two more kinds of subject: the IPv4 /24 a source belongs to
 *   (`net`), and a device that proved itself at an earlier sign-in (`device`), whose failures are
 *   counted apart from the account's so a lock set by strangers does not stop it;
 * - IP allow/deny rules (CIDR) for the control plane (`stage_id` null) and per stage;
 * - per-stage perimeter settings (rate-limit quotas, CORS origins);
 * - one version counter that every change bumps, so each node reloads its rule cache when it moves.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    alter table accord.auth_failures drop constraint auth_failures_kind_check;
    alter table accord.auth_failures add constraint auth_failures_kind_check check (kind in ('account', 'ip', 'net', 'device'));
    alter table accord.auth_locks drop constraint auth_locks_kind_check;
    alter table accord.auth_locks add constraint auth_locks_kind_check check (kind in ('account', 'ip', 'net', 'device'));
    create table accord.ip_rules (
      id uuid primary key default gen_random_uuid(),
      stage_id uuid references accord.stages(id) on delete cascade,
      action text not null check (action in ('allow', 'deny')),
      cidr text not null check (length(cidr) <= 64),
      note text not null default '' check (length(note) <= 200),
      created_at timestamptz not null default now()
    );
    create unique index ip_rules_unique on accord.ip_rules (coalesce(stage_id, '00000000-0000-0000-0000-000000000000'::uuid), action, cidr);
    create table accord.stage_perimeter (
      stage_id uuid primary key references accord.stages(id) on delete cascade,
      rate_limits jsonb not null default '{}'::jsonb,
      cors_origins jsonb not null default '[]'::jsonb,
      updated_at timestamptz not null default now()
    );
    create table accord.perimeter_version (
      id integer primary key check (id = 1),
      version bigint not null
    );
    insert into accord.perimeter_version (id, version) values (1, 1);
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    drop table accord.perimeter_version, accord.stage_perimeter, accord.ip_rules;
    delete from accord.auth_failures where kind in ('net', 'device');
    delete from accord.auth_locks where kind in ('net', 'device');
    alter table accord.auth_failures drop constraint auth_failures_kind_check;
    alter table accord.auth_failures add constraint auth_failures_kind_check check (kind in ('account', 'ip'));
    alter table accord.auth_locks drop constraint auth_locks_kind_check;
    alter table accord.auth_locks add constraint auth_locks_kind_check check (kind in ('account', 'ip'));
  `.execute(db);
}
