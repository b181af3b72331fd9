// The baseline of `npm run bench -- floor`: a bare Fastify server over HTTPS that answers
// `GET /api/v1/tenants/:tenant` with the same two SELECTs the platform runs for that route (the
// tenant row, then its stages), with no authentication, hooks, logging or schemas. Started as its
// own process by bench/floor.ts, like the platform, so both get the same share of the machine.
//
// Environment: FLOOR_ENGINE (postgres | pglite), FLOOR_DATABASE_URL (postgres), FLOOR_DATA_DIR
// (pglite: a fresh directory), FLOOR_SEED (pglite: the tenant and its stages as the platform's
// API shows them, copied into this PGlite), FLOOR_TLS_DIR (the platform's <dataDir>/tls), FLOOR_POOL (pool size).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import Fastify from 'fastify';
import { Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler } from 'kysely';
import pg from 'pg';
import { STAGES_SQL, TENANT_SQL } from './sql.ts';


interface TenantRow {
  id: string;
  name: string;
  display_name: string;
  region: string;
  created_at: Date;
}
interface StageRow {
  id: string;
  name: string;
  position: number;
  schema_name: string;
  role_name: string;
  created_at: Date;
}
type Query = <R>(text: string, values: unknown[]) => Promise<R[]>;

const INT8_OID = 20;
const BYTEA_OID = 17;

async function openPostgres(url: string, max: number): Promise<Query> {
  // Same pool settings and int8 parser as src/db/index.ts.
  const pool = new pg.Pool({
    connectionString: url,
    max,
    connectionTimeoutMillis: 5000,
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
    },
  });
  pool.on('error', () => {});
  return async <R>(text: string, values: unknown[]) => (await pool.query(text, values)).rows as R[];
}

/** A tenant with its stages as the platform's API shows it (the seed of the PGlite copy). */
interface Seed {
  id: string;
  name: string;
  displayName: string;
  region: string;
  createdAt: string;
  stages: { id: string; name: string; position: number; schema: string; role: string; createdAt: string }[];
}

async function openPglite(dataDir: string, seed: Seed): Promise<Query> {
  const pglite = await PGlite.create(dataDir, {
    parsers: { [INT8_OID]: (v: string) => Number(v), [BYTEA_OID]: (v: string) => Buffer.from(v.slice(2), 'hex') },
  });
  // The catalog's own tables and indexes, through the platform's migrations (set-up only: the
  // handler below queries PGlite directly).
  const { PGliteDriver } = await import('../../src/db/engines/pglite-driver.ts');
  const { migrate } = await import('../../src/db/index.ts');
  const db = new Kysely({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => new PGliteDriver(pglite),
      createQueryCompiler: () => new PostgresQueryCompiler(),
      createIntrospector: (k) => new PostgresIntrospector(k),
    },
  });
  await migrate(db as never);
  await pglite.query('insert into accord.tenants (id, name, display_name, region, created_at) values ($1, $2, $3, $4, $5)', [
    seed.id,
    seed.name,
    seed.displayName,
    seed.region,
    seed.createdAt,
  ]);
  for (const s of seed.stages) {
    await pglite.query('insert into accord.stages (id, tenant_id, name, position, schema_name, role_name, created_at) values ($1, $2, $3, $4, $5, $6, $7)', [
      s.id,
      seed.id,
      s.name,
      s.position,
      s.schema,
      s.role,
      s.createdAt,
    ]);
  }
  // One query at a time, queued here, as the platform's driver does (src/db/engines/pglite-driver.ts):
  // PGlite is one connection, and ten callers queued inside PGlite itself cost it about a fifth
  // more time per query than the same calls queued before it (measured in-process), which would
  // handicap the baseline.
  let tail: Promise<unknown> = Promise.resolve();
  return <R>(text: string, values: unknown[]) => {
    const run = tail.then(() => pglite.query<R>(text, values));
    tail = run.catch(() => {});
    return run.then((r) => r.rows);
  };
}

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};

const engine = env('FLOOR_ENGINE');
const tlsDir = env('FLOOR_TLS_DIR');
const query =
  engine === 'postgres'
    ? await openPostgres(env('FLOOR_DATABASE_URL'), Number(env('FLOOR_POOL')))
    : await openPglite(env('FLOOR_DATA_DIR'), JSON.parse(env('FLOOR_SEED')) as Seed);

// The platform's TLS settings (src/server/app.ts): its certificate and key, TLS 1.2 at least.
const app = Fastify({
  https: { key: readFileSync(join(tlsDir, 'server-key.pem'), 'utf8'), cert: readFileSync(join(tlsDir, 'server.pem'), 'utf8'), minVersion: 'TLSv1.2' },
});
app.get<{ Params: { tenant: string } }>('/api/v1/tenants/:tenant', async (req, reply) => {
  const [t] = await query<TenantRow>(TENANT_SQL, [req.params.tenant]);
  if (!t) return reply.code(404).send({ error: 'not found' });
  const stages = await query<StageRow>(STAGES_SQL, [t.id]);
  return {
    id: t.id,
    name: t.name,
    displayName: t.display_name,
    region: t.region,
    createdAt: t.created_at.toISOString(),
    stages: stages.map((s) => ({ id: s.id, name: s.name, position: s.position, schema: s.schema_name, role: s.role_name, createdAt: s.created_at.toISOString() })),
  };
});
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
process.stdout.write(`${JSON.stringify({ event: 'ready', port: typeof address === 'object' && address ? address.port : 0 })}\n`);
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
