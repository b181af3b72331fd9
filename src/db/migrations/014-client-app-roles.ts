import { type Kysely, sql } from 'kysely';

/**
 * App roles for API clients: an app-role grant goes to a tenant user or to one of the tenant's API
 * clients (exactly one of `user_id`, `client_id`), as platform role grants already do
 * (005-identity). Users keep their unique constraint (NULLs are distinct in it, so client rows
 * never collide with it); clients get a partial unique index of their own. Deleting a client
 * removes its grants.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    alter table accord.app_role_grants alter column user_id drop not null;
    alter table accord.app_role_grants
      add column client_id uuid references accord.api_clients(id) on delete cascade,
      add constraint app_role_grants_one_principal check (num_nonnulls(user_id, client_id) = 1);
    create unique index app_role_grants_client_unique on accord.app_role_grants (stage_id, app, role, client_id) where client_id is not null;
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    delete from accord.app_role_grants where client_id is not null;
    drop index accord.app_role_grants_client_unique;
    alter table accord.app_role_grants drop constraint app_role_grants_one_principal, drop column client_id;
    alter table accord.app_role_grants alter column user_id set not null;
  `.execute(db);
}
