// Key rotation of app data: after a stage DEK rotation, the keys job re-encrypts every encrypted
// attribute still under an older DEK version with the new one, in batches, before the old versions
// are destroyed (src/keys: keys.reencrypt-stage). Values are decrypted and encrypted again in
// memory; the blind index does not change (its key is separate from the DEKs).
import { sql } from 'kysely';
import type { DataKey } from '../../crypto/field/index.ts';
import type { Keyring } from '../../crypto/keyring/index.ts';
import type { Db } from '../../db/index.ts';
import { type DataPlane, runAsStage } from '../../kernel/index.ts';
import { irFromJson } from '../compile/ir.ts';
import { openValue, sealValue } from './crypt.ts';

/** Re-encrypts up to `batch` rows of one stage's app data under `toVersion`; returns how many it changed (0: none left). */
export type AppDataReencrypter = (db: Db, tenantId: string, stageId: string, toVersion: number, batch: number) => Promise<number>;

const versionBytes = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};

/** The re-encrypter the keys job calls (wired by the server; keys know no apps). */
export function appDataReencrypter(plane: DataPlane, keyring: Keyring): AppDataReencrypter {
  return async (db, tenantId, stageId, toVersion, batch) => {
    const deployed = await db
      .selectFrom('accord.app_stage_state as s')
      .innerJoin('accord.app_revisions as r', (j) => j.onRef('r.tenant_id', '=', 's.tenant_id').onRef('r.app', '=', 's.app').onRef('r.id', '=', 's.revision'))
      .innerJoin('accord.stages as st', 'st.id', 's.stage_id')
      .select(['s.app', 'r.ir', 'st.schema_name', 'st.role_name'])
      .where('s.stage_id', '=', stageId)
      .execute();
    // Keys first, with the platform's connection (the session below holds PGlite's only one).
    const keys = new Map<number, DataKey>();
    for (const { version } of await db.selectFrom('accord.stage_deks').select('version').where('stage_id', '=', stageId).execute()) {
      const k = await keyring.dek(db, stageId, version);
      if (k) keys.set(version, k);
    }
    const target = keys.get(toVersion);
    if (!target) throw new Error('the rotation target key is missing');
    for (const d of deployed) {
      const app = irFromJson(typeof d.ir === 'string' ? JSON.parse(d.ir) : d.ir);
      for (const e of app.entities) {
        const enc = e.attributes.filter((a) => a.encrypted);
        if (enc.length === 0) continue;
        // The envelope's bytes 2..5 are its key version, big-endian: bytea order is numeric order.
        const older = sql.join(
          enc.map((a) => sql`substring(${sql.ref(a.column)} from 2 for 4) < ${versionBytes(toVersion)}::bytea`),
          sql` or `,
        );
        const n = await runAsStage(plane, { tenantId, stageId, schema: d.schema_name, role: d.role_name }, { kind: 'system', principalId: null, roles: [], requestId: `reencrypt-${stageId.slice(0, 8)}` }, async (s) => {
          await sql`select set_config('accord.maintenance', 'reencrypt', true)`.execute(s.db);
          const rows = (await sql<Record<string, unknown>>`select id, ${sql.join(enc.map((a) => sql.ref(a.column)))} from ${sql.id(d.schema_name, e.table)} where ${older} order by id limit ${batch} for update`.execute(s.db)).rows;
          const scope = { tenantId, stageId, entity: e.name };
          for (const row of rows) {
            const sets = enc
              .filter((a) => row[a.column] !== null)
              .map((a) => sql`${sql.id(a.column)} = ${sealValue(target, scope, a.name, row.id as string, openValue(keys, scope, a.name, row.id as string, row[a.column] as Uint8Array))}::bytea`);
            if (sets.length) await sql`update ${sql.id(d.schema_name, e.table)} set ${sql.join(sets)} where id = ${row.id}::uuid`.execute(s.db);
          }
          return rows.length;
        });
        if (n > 0) return n;
      }
    }
    return 0;
  };
}
