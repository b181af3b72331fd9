import { type Kysely, sql } from 'kysely';

/**
 * The generated data API (src/apps/data-api):
 *
 * - `stage_index_keys`: one blind-index key per stage, wrapped under a tenant KEK like the stage
 *   DEKs. It is separate from the DEKs on purpose: a DEK rotation re-encrypts values, but a blind
 *   index must stay comparable across it (rotating this key means re-indexing every searchable
 *   value, which is not done yet).
 * - `data_idempotency`: the first answer to a create with an `Idempotency-Key`, per stage, app,
 *   caller and key, with a hash of the request it answered, kept for 24 hours.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table accord.stage_index_keys (
      stage_id uuid primary key references accord.stages(id) on delete cascade,
      tenant_id uuid not null references accord.tenants(id) on delete cascade,
      kek_version integer not null,
      wrapped bytea not null,
      created_at timestamptz not null default now()
    );
    create table accord.data_idempotency (
      stage_id uuid not null references accord.stages(id) on delete cascade,
      app text not null,
      principal_id uuid not null,
      key text not null,
      request_hash text not null,
      state text not null check (state in ('in-flight', 'done')),
      status integer,
      response jsonb,
      created_at timestamptz not null default now(),
      primary key (stage_id, app, principal_id, key)
    );
    create index data_idempotency_created_idx on accord.data_idempotency (created_at);
  `.execute(db);
}
