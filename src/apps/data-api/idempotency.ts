// Idempotency-Key on create (draft-ietf-httpapi-idempotency-key-header): the first answer to a
// key is stored with a hash of the request; the same key with the same request replays it, with
// another request is a 422, and while the first is still running a 409. Keys are per stage, app
// and caller, and expire after 24 hours.
//
// The record lives in the catalog, written with the platform's connection around the stage
// session (the runtime role cannot write the catalog): a crash between the session's commit and
// the "done" update leaves the key in flight until it is abandoned (IN_FLIGHT_ABANDON_MS), after
// which a retry runs the create again.
import { createHash } from 'node:crypto';
import type { Db } from '../../db/index.ts';
import { AccordError } from '../../errors/index.ts';

export const IDEMPOTENCY = Object.freeze({ maxKeyLength: 255, ttlMs: 24 * 3600_000, inFlightAbandonMs: 60_000 });
const KEY = /^[\x21-\x7e]{1,255}$/;

export interface IdempotencyScope {
  readonly stageId: string;
  readonly app: string;
  readonly principalId: string;
}

const requestHash = (entity: string, body: unknown) => createHash('sha256').update(JSON.stringify([entity, body])).digest('hex');

/** Runs `create` at most once per key; replays its first answer. */
export async function idempotent<T>(db: Db, scope: IdempotencyScope, key: string, entity: string, body: unknown, create: () => Promise<T>): Promise<{ replayed: boolean; value: T }> {
  if (!KEY.test(key)) throw new AccordError('REQUEST_INVALID', { message: 'Idempotency-Key must be 1-255 visible ASCII characters.' });
  const hash = requestHash(entity, body);
  const where = { stage_id: scope.stageId, app: scope.app, principal_id: scope.principalId, key };
  const claimed = await db
    .insertInto('accord.data_idempotency')
    .values({ ...where, request_hash: hash, state: 'in-flight', status: null, response: null })
    .onConflict((oc) =>
      oc.columns(['stage_id', 'app', 'principal_id', 'key']).doUpdateSet({ request_hash: hash, state: 'in-flight', status: null, response: null, created_at: new Date() }).where((eb) =>
        eb.or([
          eb('accord.data_idempotency.created_at', '<', new Date(Date.now() - IDEMPOTENCY.ttlMs)),
          eb.and([eb('accord.data_idempotency.state', '=', 'in-flight'), eb('accord.data_idempotency.created_at', '<', new Date(Date.now() - IDEMPOTENCY.inFlightAbandonMs))]),
        ]),
      ),
    )
    .returning('key')
    .executeTakeFirst();
  if (!claimed) {
    const prior = await db
      .selectFrom('accord.data_idempotency')
      .select(['request_hash', 'state', 'response'])
      .where('stage_id', '=', scope.stageId)
      .where('app', '=', scope.app)
      .where('principal_id', '=', scope.principalId)
      .where('key', '=', key)
      .executeTakeFirst();
    if (!prior || prior.request_hash !== hash) throw new AccordError('DATA_IDEMPOTENCY_MISMATCH');
    if (prior.state === 'in-flight') throw new AccordError('DATA_IDEMPOTENCY_IN_FLIGHT');
    return { replayed: true, value: (typeof prior.response === 'string' ? JSON.parse(prior.response) : prior.response) as T };
  }
  const forget = () =>
    db.deleteFrom('accord.data_idempotency').where('stage_id', '=', scope.stageId).where('app', '=', scope.app).where('principal_id', '=', scope.principalId).where('key', '=', key).execute();
  let value: T;
  try {
    value = await create();
  } catch (err) {
    // A refused request leaves nothing behind: the same key may be used for a corrected one.
    await forget().catch(() => {});
    throw err;
  }
  await db
    .updateTable('accord.data_idempotency')
    .set({ state: 'done', status: 201, response: JSON.stringify(value) })
    .where('stage_id', '=', scope.stageId)
    .where('app', '=', scope.app)
    .where('principal_id', '=', scope.principalId)
    .where('key', '=', key)
    .execute();
  return { replayed: false, value };
}
