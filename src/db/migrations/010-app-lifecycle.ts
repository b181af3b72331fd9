import { type Kysely, sql } from 'kysely';

/**
 * The app lifecycle's own state beside 009:
 * - `app_stage_state.schema_snapshot`: the stage schema's shape of the app's tables as the last
 *   deployment left it (read back from pg_catalog in the same transaction). A deploy compares the
 *   live catalog with it first: any difference was made out of band (drift) and is refused.
 * - `app_stage_state.tables`: every table the app has ever had on the stage (hidden ones too), so
 *   the drift check and a data-loss contract know what belongs to the app.
 * - `app_pending_indexes`: indexes built CONCURRENTLY on PostgreSQL, outside the deployment's
 *   transaction. The intent is committed before the build; a process killed mid-build leaves the
 *   row (and maybe an INVALID index), and the next deploy drops that index and builds it again.
 * - `app_settings`: non-secret setting values per stage (secret ones live in stage_secrets).
 * - `app_revisions.seq`: the revision's number within its app (R1, R2, ...), for people.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    alter table accord.app_revisions add column seq integer not null default 0;
    alter table accord.app_stage_state
      add column schema_snapshot jsonb not null default '{}'::jsonb,
      add column tables text[] not null default '{}';
    create table accord.app_pending_indexes (
      stage_id uuid not null references accord.stages(id) on delete cascade,
      app text not null,
      index_name text not null,
      revision text not null,
      created_at timestamptz not null default now(),
      primary key (stage_id, index_name)
    );
    create table accord.app_settings (
      stage_id uuid not null references accord.stages(id) on delete cascade,
      app text not null,
      name text not null,
      value jsonb not null,
      updated_by uuid references accord.users(id) on delete set null,
      updated_at timestamptz not null default now(),
      primary key (stage_id, app, name)
    );
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    drop table accord.app_settings, accord.app_pending_indexes;
    alter table accord.app_stage_state drop column schema_snapshot, drop column tables;
    alter table accord.app_revisions drop column seq;
  `.execute(db);
}
