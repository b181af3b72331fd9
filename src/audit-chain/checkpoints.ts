import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import type { Db, DbOrTrx } from '../db/index.ts';
import { type CheckpointSigner, checkpointPayload, type SignedCheckpoint } from './signing.ts';

export interface CheckpointPolicy {
  /** Sign after this many new records in a chain. */
  readonly everyRecords: number;
  /** ...or after this long with any new record. */
  readonly everyMs: number;
}

const toSigned = (r: { chain_id: string; seq: number; hash: Buffer; signed_at: Date; key_id: string; signature: Buffer }): SignedCheckpoint => ({
  chain: r.chain_id,
  seq: Number(r.seq),
  hash: r.hash.toString('hex'),
  signedAt: r.signed_at.toISOString(),
  keyId: r.key_id,
  signature: r.signature.toString('base64'),
});

/**
 * Signs a checkpoint for every chain that is due under the policy (or all chains with new
 * records when `force`). Each chain's head is locked while its checkpoint is taken, so the
 * signed hash is the hash of the record at the signed sequence.
 */
export async function takeCheckpoints(
  db: Db,
  signer: CheckpointSigner,
  policy: CheckpointPolicy,
  opts: { force?: boolean; now?: Date } = {},
): Promise<SignedCheckpoint[]> {
  const now = opts.now ?? new Date();
  const due = await db
    .selectFrom('accord.audit_chains')
    .select(['chain_id', 'last_seq', 'last_checkpoint_seq', 'last_checkpoint_at'])
    .whereRef('last_seq', '>', 'last_checkpoint_seq')
    .execute();
  const taken: SignedCheckpoint[] = [];
  for (const c of due) {
    const pending = Number(c.last_seq) - Number(c.last_checkpoint_seq);
    const isDue = opts.force || pending >= policy.everyRecords || now.getTime() - c.last_checkpoint_at.getTime() >= policy.everyMs;
    if (!isDue) continue;
    // The audit library's own transaction (below the kernel): signs the head it locks.
    const cp = await db.transaction().execute(async (trx) => {
      const head = await trx
        .selectFrom('accord.audit_chains')
        .select(['last_seq', 'last_hash', 'last_checkpoint_seq'])
        .where('chain_id', '=', c.chain_id)
        .forUpdate()
        .executeTakeFirstOrThrow();
      if (Number(head.last_seq) <= Number(head.last_checkpoint_seq)) return undefined;
      const body = { chain: c.chain_id, seq: Number(head.last_seq), hash: head.last_hash.toString('hex'), signedAt: now.toISOString(), keyId: signer.keyId };
      const signature = signer.sign(checkpointPayload(body));
      await trx
        .insertInto('accord.audit_checkpoints')
        .values({ chain_id: body.chain, seq: body.seq, hash: head.last_hash, signed_at: now, key_id: signer.keyId, signature })
        .execute();
      await trx
        .updateTable('accord.audit_chains')
        .set({ last_checkpoint_seq: body.seq, last_checkpoint_at: now })
        .where('chain_id', '=', c.chain_id)
        .execute();
      return { ...body, signature: signature.toString('base64') };
    });
    if (cp) taken.push(cp);
  }
  return taken;
}

/** Stored checkpoints, optionally of one chain and newer than a sequence. */
export async function listCheckpoints(db: DbOrTrx, opts: { chain?: string; afterSeq?: number } = {}): Promise<SignedCheckpoint[]> {
  let q = db.selectFrom('accord.audit_checkpoints').selectAll().orderBy('chain_id').orderBy('seq');
  if (opts.chain !== undefined) q = q.where('chain_id', '=', opts.chain);
  if (opts.afterSeq !== undefined) q = q.where('seq', '>', opts.afterSeq);
  return (await q.execute()).map(toSigned);
}

/** Chains whose records are all older than the last checkpoint export, for the exporter loop. */
export async function latestCheckpointSeqs(db: DbOrTrx): Promise<Map<string, number>> {
  const rows = await sql<{ chain_id: string; seq: number }>`select chain_id, max(seq) as seq from accord.audit_checkpoints group by chain_id`.execute(db);
  return new Map(rows.rows.map((r) => [r.chain_id, Number(r.seq)]));
}

const fileName = (cp: SignedCheckpoint) => `${String(cp.seq).padStart(12, '0')}.json`;

/**
 * Writes checkpoints as one JSON file each, `<dir>/<chain>/<seq>.json`, outside the database:
 * someone who can rewrite the database cannot reach these, and they reveal a rewritten or
 * truncated chain. Existing files are left alone.
 */
export function writeCheckpointFiles(dir: string, checkpoints: readonly SignedCheckpoint[]): number {
  let written = 0;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const cp of checkpoints) {
    const chainDir = join(dir, cp.chain);
    mkdirSync(chainDir, { recursive: true, mode: 0o700 });
    const target = join(chainDir, fileName(cp));
    const tmp = `${target}.tmp-${process.pid}`;
    try {
      writeFileSync(target, '', { flag: 'wx' });
    } catch {
      continue;
    }
    writeFileSync(tmp, `${JSON.stringify(cp, null, 2)}\n`, { mode: 0o644 });
    renameSync(tmp, target);
    written++;
  }
  return written;
}

/** Reads every checkpoint file under a directory (as written by writeCheckpointFiles). */
export function readCheckpointFiles(dir: string): SignedCheckpoint[] {
  const out: SignedCheckpoint[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.json')) out.push(JSON.parse(readFileSync(p, 'utf8')) as SignedCheckpoint);
    }
  };
  walk(dir);
  return out;
}
