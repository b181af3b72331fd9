import { type Kysely, sql } from 'kysely';

/**
 * Brute-force protection: one row per failed sign-in (counted over a sliding window, so two nodes
 * failing at once never lose a count) and one row per locked subject. The lock row doubles as
 * the per-subject mutex: recording a failure upserts it first, which serialises concurrent
 * failures of one subject so each sees the others' rows when it counts.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table accord.auth_failures (
      id bigint generated always as identity primary key,
      kind text not null check (kind in ('account', 'ip')),
      subject text not null,
      occurred_at timestamptz not null
    );
    create index auth_failures_subject on accord.auth_failures (kind, subject, occurred_at);
    create index auth_failures_time on accord.auth_failures (occurred_at);
    create table accord.auth_locks (
      kind text not null check (kind in ('account', 'ip')),
      subject text not null,
      locked_until timestamptz,
      level integer not null default 0,
      primary key (kind, subject)
    );
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table accord.auth_locks, accord.auth_failures;`.execute(db);
}
