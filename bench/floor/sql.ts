// The exact SQL Kysely compiles for getTenant() and listStages() in src/tenancy/service.ts (the two
// reads of `GET /api/v1/tenants/:tenant`), which the bare server of bench/floor.ts runs as is.
export const TENANT_SQL = 'select * from "accord"."tenants" where "name" = $1';
export const STAGES_SQL =
  'select "id", "name", "position", "schema_name", "role_name", "created_at" from "accord"."stages" where "tenant_id" = $1 order by "position"';
