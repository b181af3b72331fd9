// Retention of the audit trail (issue 3, item 6). Records older than the online window move out of
// the database into signed archive files, one per run and chain:
//
//   <dir>/<chain>/<firstSeq>-<lastSeq>.jsonl     one AuditRecordView per line, in sequence order
//   <dir>/<chain>/<firstSeq>-<lastSeq>.sig.json  what the file holds, signed with the checkpoint key
//
// Sequence numbers in file names are zero-padded to 12 digits (as checkpoint files are), so `ls`
// lists a chain's archives in order. The chain stays verifiable across the boundary: the chain
// row's anchor (anchor_seq, anchor_hash) is the last archived record, verifyChain starts there,
// and the newest archive file ends there.
//
// Crash safety comes from the order: the file is made durable (fsync, rename, fsync of the
// directory) before the transaction that moves the anchor and deletes the rows. A crash in between
// leaves a file whose records are all still online; the next run removes such leftovers (any file
// ending after the anchor) and writes the range again under the same name, so nothing is lost and
// nothing is archived twice.
//
// Archiving runs are serialized across nodes by one transaction-scoped advisory lock, held from
// reading the records to the commit. The chain row itself is locked (FOR UPDATE) only for the
// short database step, so audit writers on the chain wait only for the delete, not the file write.
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { sql } from 'kysely';
import {
  type CanonicalRow,
  type CheckpointSigner,
  canonicalJson,
  chainHash,
  GENESIS_HASH,
  PLATFORM_CHAIN,
  record,
  type SealedRow,
  sealedRow,
  systemSource,
  toCanonical,
  toJsonLine,
  toRecordView,
} from '../audit-chain/index.ts';
import type { Db, DbOrTrx, Trx } from '../db/index.ts';
import { unitOfWork } from '../kernel/index.ts';

const DAY_MS = 86_400_000;
const READ_BATCH = 1000;
const DEFAULT_MAX_RECORDS_PER_FILE = 50_000;
/** Target type of `audit.archived` and `audit.archive.purged` events; the id is `<chain>/<name>`. */
const ARCHIVE_TARGET = 'audit-archive';
const NAME = /^(\d{1,15})-(\d{1,15})\.(jsonl|sig\.json)$/;
// Chain ids become directory names: 'platform' or a tenant's uuid. Anything else is refused
// rather than joined into a path.
const CHAIN_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

/** The signed description of one archive file (`<name>.sig.json`). Hashes are lowercase hex. */
export interface ArchiveSignature {
  readonly chain: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** Hash of the record before `firstSeq` (the chain's anchor when it was archived; zeros at the start). */
  readonly prevHash: string;
  /** Hash of the record at `lastSeq`: the chain's anchor after the archiving. */
  readonly lastHash: string;
  /** SHA-256 of the .jsonl file's bytes. */
  readonly sha256: string;
  readonly records: number;
  /** ISO 8601 UTC. */
  readonly createdAt: string;
  readonly keyId: string;
  /** Ed25519 (base64) over the canonical JSON of every other field. */
  readonly signature: string;
}

/** An archive file written (and its records removed from the database) by a run. */
export interface ArchivedFile {
  readonly chain: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly records: number;
  readonly lastHash: string;
  /** Absolute path of the .jsonl file. */
  readonly file: string;
}

/** An archive file deleted because its newest record is older than the retention period. */
export interface PurgedFile {
  readonly chain: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly records: number | null;
  /** Time of the file's last record, ISO 8601 UTC. */
  readonly lastRecordAt: string;
  readonly file: string;
}

/** Something that stopped a chain from being archived or purged; the rest of the run went on. */
export interface ArchiveProblem {
  readonly chain: string;
  readonly problem: 'chain-broken' | 'chain-id-unusable' | 'archive-unreadable';
  readonly seq?: number;
  readonly detail: string;
}

/** What one `archiveExpired` run did. */
export interface ArchiveResult {
  readonly archived: ArchivedFile[];
  readonly purged: PurgedFile[];
  /** Files left by an interrupted earlier run (their records were still online), removed. */
  readonly leftoversRemoved: string[];
  readonly problems: ArchiveProblem[];
}

/** Options of {@link archiveExpired}. */
export interface ArchiveOptions {
  /** Archive root; one sub-directory per chain. */
  readonly dir: string;
  /** Records older than this many days leave the database. Default 90. */
  readonly onlineDays?: number;
  /** Archive files whose last record is older than this many days are deleted. Default 365. */
  readonly retentionDays?: number;
  readonly now?: Date;
  /** Bounds memory and how long one transaction runs; a longer backlog becomes several files. Default 50 000. */
  readonly maxRecordsPerFile?: number;
  /**
   * Called once an archive file is durable, before its records leave the database (e.g. to copy
   * it off the machine). Throwing keeps the records online and the run fails, exactly as a crash
   * at that point would; the next run writes the file again.
   */
  readonly beforeDelete?: (file: ArchivedFile) => void | Promise<void>;
}

/** Where verification of a chain's archive files stopped, if it did. */
export type ArchiveFileProblem =
  | 'missing-signature' /* a .jsonl without its .sig.json, or the reverse */
  | 'malformed' /* unreadable JSON or a field of the wrong shape */
  | 'untrusted-key' /* signed by a key the caller does not trust */
  | 'signature' /* the signature does not match the .sig.json fields */
  | 'gap' /* the file does not continue the previous one (sequence or hash) */
  | 'sequence' /* a line holds the wrong sequence number, or lines are missing or extra */
  | 'hash-mismatch' /* a record's content does not match its hash and predecessor */
  | 'last-hash' /* the recomputed chain does not end at the signed lastHash */
  | 'sha256' /* the file's bytes differ from the signed digest */
  | 'anchor-mismatch'; /* the newest file does not end at the chain's anchor in the database */

/** The outcome of verifying one chain's archive files. */
export interface ArchiveReport {
  readonly chain: string;
  readonly ok: boolean;
  /** Files fully verified. */
  readonly files: number;
  /** Records fully verified. */
  readonly records: number;
  /** First and last sequence covered by the verified files (0 when none). */
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** Hash at `lastSeq` (hex); should equal the chain's anchor_hash. */
  readonly lastHash: string | null;
  /** The .jsonl (or .sig.json) file where verification stopped. */
  readonly badFile?: string;
  readonly firstBadSeq?: number;
  readonly problem?: ArchiveFileProblem;
  readonly detail?: string;
}

const pad = (n: number) => String(n).padStart(12, '0');
const baseName = (firstSeq: number, lastSeq: number) => `${pad(firstSeq)}-${pad(lastSeq)}`;

/** The bytes that are signed: the canonical JSON of every field but the signature. */
function signaturePayload(s: Omit<ArchiveSignature, 'signature'>): Buffer {
  return Buffer.from(
    canonicalJson({
      chain: s.chain,
      firstSeq: s.firstSeq,
      lastSeq: s.lastSeq,
      prevHash: s.prevHash,
      lastHash: s.lastHash,
      sha256: s.sha256,
      records: s.records,
      createdAt: s.createdAt,
      keyId: s.keyId,
    }),
    'utf8',
  );
}

// ---------------------------------------------------------------------------------------------
// Files

/** Writes a file so that after this returns it survives a crash: temp file, fsync, rename. */
async function writeDurably(path: string, data: string | Buffer): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/** Makes renames and unlinks in a directory durable. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

interface ArchiveEntry {
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly jsonl: string | null;
  readonly sig: string | null;
}

/** A chain directory's archive files (sorted by firstSeq) and temp files left by interrupted writes. */
async function listChainDir(chainDir: string): Promise<{ entries: ArchiveEntry[]; temps: string[] }> {
  let names: string[];
  try {
    names = await readdir(chainDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], temps: [] };
    throw err;
  }
  const byRange = new Map<string, { firstSeq: number; lastSeq: number; jsonl: string | null; sig: string | null }>();
  const temps: string[] = [];
  for (const name of names) {
    if (name.includes('.tmp-')) {
      temps.push(join(chainDir, name));
      continue;
    }
    const m = NAME.exec(name);
    // Anything else (notes, copies) is not ours to judge or delete.
    if (!m) continue;
    const firstSeq = Number(m[1]);
    const lastSeq = Number(m[2]);
    const key = `${firstSeq}-${lastSeq}`;
    const e = byRange.get(key) ?? { firstSeq, lastSeq, jsonl: null, sig: null };
    if (m[3] === 'jsonl') e.jsonl = join(chainDir, name);
    else e.sig = join(chainDir, name);
    byRange.set(key, e);
  }
  const entries = [...byRange.values()].sort((a, b) => a.firstSeq - b.firstSeq || a.lastSeq - b.lastSeq);
  return { entries, temps };
}

async function unlinkIfExists(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** The last non-empty line of a file, read from the end (archive files can be large). */
async function readLastLine(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    let chunk = 64 * 1024;
    for (;;) {
      const start = Math.max(0, size - chunk);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      const text = buf.toString('utf8').replace(/\n+$/, '');
      const nl = text.lastIndexOf('\n');
      // A line cut by the chunk start could begin inside a multi-byte character: only trust a
      // line whose start we saw, or the whole file.
      if (nl >= 0 || start === 0) return text.slice(nl + 1);
      chunk *= 4;
    }
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Archiving

interface RunState {
  readonly archived: ArchivedFile[];
  readonly leftoversRemoved: string[];
  readonly problems: ArchiveProblem[];
}

// One lock for all archiving and purging, on every node: runs are rare, and serializing them is
// what makes removing an interrupted run's leftovers safe.
const lockArchiving = (trx: Trx) => sql`select pg_advisory_xact_lock(hashtext('accord.audit_archive'))`.execute(trx);

/** The chain directories under an archive directory, sorted; none when it does not exist yet. */
async function listChainDirs(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory() && CHAIN_ID.test(d.name)).map((d) => d.name).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * Moves expired audit records (older than `onlineDays`) from every chain into signed archive
 * files, then deletes archive files whose newest record is older than `retentionDays`. Both
 * are audited: `audit.archived` on the archived chain, `audit.archive.purged` on the platform chain.
 */
export async function archiveExpired(db: Db, signer: CheckpointSigner, opts: ArchiveOptions): Promise<ArchiveResult> {
  const onlineDays = opts.onlineDays ?? 90;
  const retentionDays = opts.retentionDays ?? 365;
  const maxRecords = opts.maxRecordsPerFile ?? DEFAULT_MAX_RECORDS_PER_FILE;
  if (typeof opts.dir !== 'string' || opts.dir === '') throw new TypeError('archiveExpired: opts.dir must be a directory path');
  if (!(Number.isFinite(onlineDays) && onlineDays > 0)) throw new RangeError('archiveExpired: opts.onlineDays must be a positive number of days');
  if (!(Number.isFinite(retentionDays) && retentionDays >= onlineDays)) {
    throw new RangeError('archiveExpired: opts.retentionDays must be a number of days no smaller than opts.onlineDays');
  }
  if (!(Number.isInteger(maxRecords) && maxRecords > 0)) throw new RangeError('archiveExpired: opts.maxRecordsPerFile must be a positive integer');
  const now = opts.now ?? new Date();
  if (Number.isNaN(now.getTime())) throw new RangeError('archiveExpired: opts.now must be a valid date');
  const dir = resolve(opts.dir);
  const onlineCutoff = new Date(now.getTime() - onlineDays * DAY_MS);
  const retentionCutoff = new Date(now.getTime() - retentionDays * DAY_MS);

  const state: RunState = { archived: [], leftoversRemoved: [], problems: [] };
  const chains = await db.selectFrom('accord.audit_chains').select('chain_id').orderBy('chain_id').execute();
  for (const { chain_id: chain } of chains) {
    if (!CHAIN_ID.test(chain)) {
      state.problems.push({ chain, problem: 'chain-id-unusable', detail: `chain id ${JSON.stringify(chain)} cannot be used as a directory name` });
      continue;
    }
    // Several files when the backlog exceeds maxRecords; each is its own crash-safe step.
    for (;;) {
      const written = await archiveChainStep(db, signer, { dir, chain, cutoff: onlineCutoff, now, maxRecords, beforeDelete: opts.beforeDelete }, state);
      if (!written || written.records < maxRecords) break;
    }
  }
  const purged = await purgeExpired(db, dir, retentionCutoff, now, state);
  return { archived: state.archived, purged, leftoversRemoved: state.leftoversRemoved, problems: state.problems };
}

/** Archives one chain's expired prefix (at most maxRecords) in one transaction. */
async function archiveChainStep(
  db: Db,
  signer: CheckpointSigner,
  o: { dir: string; chain: string; cutoff: Date; now: Date; maxRecords: number; beforeDelete: ArchiveOptions['beforeDelete'] },
  state: RunState,
): Promise<ArchivedFile | null> {
  // A job's unit of work: the deletion of archived records and its audit record commit together.
  return unitOfWork(db, systemSource, async ({ trx }) => {
    await lockArchiving(trx);
    // Under the archiving lock nobody else moves the anchor, so this read stays true until commit.
    const head = await trx.selectFrom('accord.audit_chains').select(['tenant_id', 'anchor_seq', 'anchor_hash']).where('chain_id', '=', o.chain).executeTakeFirstOrThrow();
    const anchorSeq = Number(head.anchor_seq);
    const chainDir = join(o.dir, o.chain);
    await removeLeftovers(chainDir, anchorSeq, state);

    // The longest prefix after the anchor whose records are all expired: stopping at the first
    // newer record keeps the online part of the chain contiguous even if clocks disagreed.
    const rows: SealedRow[] = [];
    let prev = head.anchor_hash;
    let expected = anchorSeq + 1;
    let done = false;
    while (!done && rows.length < o.maxRecords) {
      const batch = await trx
        .selectFrom('accord.audit_events')
        .selectAll()
        .where('chain_id', '=', o.chain)
        .where('seq', '>=', expected)
        .orderBy('seq')
        .limit(Math.min(READ_BATCH, o.maxRecords - rows.length))
        .execute();
      if (batch.length === 0) break;
      for (const stored of batch) {
        const row = sealedRow(stored);
        if (row.occurred_at.getTime() >= o.cutoff.getTime()) {
          done = true;
          break;
        }
        // Archiving a broken chain would delete the evidence of tampering: check every record
        // first, and leave the whole chain online for an operator when one fails.
        const seq = Number(row.seq);
        if (seq !== expected) {
          state.problems.push({ chain: o.chain, problem: 'chain-broken', seq: expected, detail: `sequence ${expected} is missing; nothing archived` });
          return null;
        }
        if (!chainHash(prev, toCanonical(row)).equals(row.hash)) {
          state.problems.push({ chain: o.chain, problem: 'chain-broken', seq, detail: `record ${seq} does not match its hash; nothing archived` });
          return null;
        }
        prev = row.hash;
        expected = seq + 1;
        rows.push(row);
      }
    }
    const last = rows.at(-1);
    if (last === undefined) return null;

    const firstSeq = anchorSeq + 1;
    const lastSeq = Number(last.seq);
    const name = baseName(firstSeq, lastSeq);
    const body = rows.map((r) => toJsonLine(toRecordView(r))).join('');
    const bytes = Buffer.from(body, 'utf8');
    const unsigned = {
      chain: o.chain,
      firstSeq,
      lastSeq,
      prevHash: head.anchor_hash.toString('hex'),
      lastHash: last.hash.toString('hex'),
      sha256: createHash('sha256').update(bytes).digest('hex'),
      records: rows.length,
      createdAt: o.now.toISOString(),
      keyId: signer.keyId,
    };
    const sig: ArchiveSignature = { ...unsigned, signature: signer.sign(signaturePayload(unsigned)).toString('base64') };
    await mkdir(chainDir, { recursive: true, mode: 0o700 });
    const file = join(chainDir, `${name}.jsonl`);
    // Data first, then its signature: a file without a signature is incomplete by construction.
    await writeDurably(file, bytes);
    await writeDurably(join(chainDir, `${name}.sig.json`), `${JSON.stringify(sig, null, 2)}\n`);
    await syncDir(chainDir);
    const archived: ArchivedFile = { chain: o.chain, firstSeq, lastSeq, records: rows.length, lastHash: unsigned.lastHash, file };
    await o.beforeDelete?.(archived);

    // The database step. FOR UPDATE waits for audit writers in flight and holds new ones back
    // until commit, so the anchor and the delete land together.
    const locked = await trx.selectFrom('accord.audit_chains').select('anchor_seq').where('chain_id', '=', o.chain).forUpdate().executeTakeFirstOrThrow();
    if (Number(locked.anchor_seq) !== anchorSeq) throw new Error(`audit archive: the anchor of chain ${o.chain} moved during archiving`);
    await trx.updateTable('accord.audit_chains').set({ anchor_seq: lastSeq, anchor_hash: last.hash }).where('chain_id', '=', o.chain).execute();
    await sql`set local accord.audit_archiving = 'on'`.execute(trx);
    const deleted = await withDeletePrivilege(trx, () =>
      trx.deleteFrom('accord.audit_events').where('chain_id', '=', o.chain).where('seq', '>=', firstSeq).where('seq', '<=', lastSeq).executeTakeFirst(),
    );
    if (Number(deleted.numDeletedRows) !== rows.length) {
      throw new Error(`audit archive: expected to delete ${rows.length} records of chain ${o.chain}, deleted ${deleted.numDeletedRows}`);
    }
    // The event is newer than anything archived, so it stays online in the chain it describes.
    await record(
      trx,
      systemSource,
      {
        tenantId: head.tenant_id,
        action: 'audit.archived',
        target: { type: ARCHIVE_TARGET, id: `${o.chain}/${name}` },
        outcome: 'success',
        details: { firstSeq, lastSeq, records: rows.length, lastHash: unsigned.lastHash, sha256: unsigned.sha256 },
      },
      o.now,
    );
    state.archived.push(archived);
    return archived;
  });
}

/**
 * The platform's role has no DELETE on the events table (migration 002 revokes it; the trigger
 * is the other guard). As the table's owner it may grant it back to itself: we do so inside the
 * archiving transaction and revoke it again before commit, so no other transaction ever sees the
 * grant. The archiving lock keeps two nodes from updating the table's ACL at once.
 */
async function withDeletePrivilege<T>(trx: Trx, fn: () => Promise<T>): Promise<T> {
  const r = await sql<{ ok: boolean }>`select has_table_privilege('accord.audit_events', 'DELETE') as ok`.execute(trx);
  if (r.rows[0]?.ok) return fn();
  await sql`grant delete on accord.audit_events to current_user`.execute(trx);
  const result = await fn();
  await sql`revoke delete on accord.audit_events from current_user`.execute(trx);
  return result;
}

/**
 * Removes files an interrupted run left behind: anything ending after the anchor was never
 * committed (its records are still online) and would overlap the file written next.
 */
async function removeLeftovers(chainDir: string, anchorSeq: number, state: RunState): Promise<void> {
  const { entries, temps } = await listChainDir(chainDir);
  const stale = [...temps];
  for (const e of entries) if (e.lastSeq > anchorSeq) stale.push(...[e.jsonl, e.sig].filter((p): p is string => p !== null));
  if (stale.length === 0) return;
  for (const p of stale) if (await unlinkIfExists(p)) state.leftoversRemoved.push(p);
  await syncDir(chainDir);
}

// ---------------------------------------------------------------------------------------------
// Retention

/**
 * Deletes archive files whose last record is older than the cutoff, oldest first, and only a
 * prefix of each chain's files, so what remains still joins up. A file is deleted only once its
 * purge is on record: a crash in between leaves the file, and the next run deletes it without
 * recording the purge twice.
 */
async function purgeExpired(db: Db, dir: string, cutoff: Date, now: Date, state: RunState): Promise<PurgedFile[]> {
  const chainDirs = await listChainDirs(dir);
  const purged: PurgedFile[] = [];
  for (const chain of chainDirs) {
    const chainDir = join(dir, chain);
    const due = await unitOfWork(db, systemSource, async ({ trx }) => {
      await lockArchiving(trx);
      const head = await trx.selectFrom('accord.audit_chains').select('anchor_seq').where('chain_id', '=', chain).executeTakeFirst();
      // Without a chain row there are no online records, so no file here can be a leftover.
      const anchorSeq = head ? Number(head.anchor_seq) : Number.POSITIVE_INFINITY;
      const { entries } = await listChainDir(chainDir);
      const out: { entry: ArchiveEntry; purged: PurgedFile }[] = [];
      for (const e of entries) {
        if (e.lastSeq > anchorSeq) break;
        const targetId = `${chain}/${baseName(e.firstSeq, e.lastSeq)}`;
        const file = e.jsonl ?? `${join(chainDir, baseName(e.firstSeq, e.lastSeq))}.jsonl`;
        // Already on record: an earlier run was interrupted after recording; finish its deletion.
        // Sealed records through their action index, then the few not sealed yet through theirs.
        const purgeRecord = (sealed: boolean) =>
          trx
            .selectFrom('accord.audit_events')
            .select('details')
            .where('chain_id', '=', PLATFORM_CHAIN)
            .where('seq', sealed ? 'is not' : 'is', null)
            .where('action', '=', 'audit.archive.purged')
            .where('target_type', '=', ARCHIVE_TARGET)
            .where('target_id', '=', targetId)
            .executeTakeFirst();
        const already = (await purgeRecord(true)) ?? (await purgeRecord(false));
        if (already) {
          const d = already.details as { records?: unknown; lastRecordAt?: unknown };
          const records = typeof d.records === 'number' ? d.records : null;
          out.push({ entry: e, purged: { chain, firstSeq: e.firstSeq, lastSeq: e.lastSeq, records, lastRecordAt: String(d.lastRecordAt), file } });
          continue;
        }
        if (e.jsonl === null) {
          // A signature without its data: nothing to date it by. verifyArchive reports it.
          state.problems.push({ chain, problem: 'archive-unreadable', seq: e.firstSeq, detail: `${file} is missing` });
          break;
        }
        const lastRecordAt = await lastRecordTime(e.jsonl, e.lastSeq);
        if (lastRecordAt === null) {
          state.problems.push({ chain, problem: 'archive-unreadable', seq: e.lastSeq, detail: `cannot read the last record of ${e.jsonl}` });
          break;
        }
        if (lastRecordAt.getTime() >= cutoff.getTime()) break;
        const sig = e.sig ? await readSignature(e.sig) : null;
        const p: PurgedFile = { chain, firstSeq: e.firstSeq, lastSeq: e.lastSeq, records: sig?.records ?? null, lastRecordAt: lastRecordAt.toISOString(), file };
        await record(
          trx,
          systemSource,
          {
            tenantId: null,
            action: 'audit.archive.purged',
            target: { type: ARCHIVE_TARGET, id: targetId },
            outcome: 'success',
            details: {
              chain,
              firstSeq: e.firstSeq,
              lastSeq: e.lastSeq,
              records: p.records,
              lastHash: sig?.lastHash ?? null,
              sha256: sig?.sha256 ?? null,
              lastRecordAt: p.lastRecordAt,
            },
          },
          now,
        );
        out.push({ entry: e, purged: p });
      }
      return out;
    });
    if (due.length === 0) continue;
    for (const { entry, purged: p } of due) {
      // Interrupted between the two, the purge is already on record and the next run finishes it.
      if (entry.jsonl) await unlinkIfExists(entry.jsonl);
      if (entry.sig) await unlinkIfExists(entry.sig);
      purged.push(p);
    }
    await syncDir(chainDir);
  }
  return purged;
}

async function lastRecordTime(jsonl: string, lastSeq: number): Promise<Date | null> {
  try {
    const v = JSON.parse(await readLastLine(jsonl)) as { seq?: unknown; time?: unknown };
    if (v.seq !== lastSeq || typeof v.time !== 'string') return null;
    const t = new Date(v.time);
    return Number.isNaN(t.getTime()) ? null : t;
  } catch {
    return null;
  }
}

async function readSignature(path: string): Promise<ArchiveSignature | null> {
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as unknown;
    return isSignature(v) ? v : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Verification

const HEX32 = /^[0-9a-f]{64}$/;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isStrOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';
const isSeq = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

function isSignature(v: unknown): v is ArchiveSignature {
  return (
    isObject(v) &&
    isStr(v.chain) &&
    isSeq(v.firstSeq) &&
    isSeq(v.lastSeq) &&
    isStr(v.prevHash) &&
    HEX32.test(v.prevHash) &&
    isStr(v.lastHash) &&
    HEX32.test(v.lastHash) &&
    isStr(v.sha256) &&
    HEX32.test(v.sha256) &&
    isSeq(v.records) &&
    isStr(v.createdAt) &&
    isStr(v.keyId) &&
    isStr(v.signature)
  );
}

/**
 * A line back in the row shape `toCanonical` hashes, or null when a field has the wrong type.
 * Nothing is defaulted or coerced: a missing field must fail the hash, not be filled in.
 */
function viewToRow(v: unknown): (CanonicalRow & { hash: string }) | null {
  if (!isObject(v) || !isObject(v.actor) || !isObject(v.source)) return null;
  const { actor, source, target } = v;
  if (!(isStr(v.chain) && isSeq(v.seq) && isStr(v.id) && isStr(v.time) && isStrOrNull(v.tenantId) && isStr(v.action) && isStr(v.outcome))) return null;
  if (!(isStrOrNull(v.reason) && isStr(v.hash) && HEX32.test(v.hash) && 'details' in v)) return null;
  if (!(isStr(actor.type) && isStrOrNull(actor.id) && isStrOrNull(actor.label) && Array.isArray(actor.roles) && actor.roles.every(isStr))) return null;
  if (!(isStrOrNull(source.ip) && isStrOrNull(source.userAgent) && isStrOrNull(source.requestId))) return null;
  if (!(target === null || (isObject(target) && isStr(target.type) && isStr(target.id)))) return null;
  // toCanonical writes the time with toISOString: only a time already in that form round-trips.
  const occurredAt = new Date(v.time);
  if (Number.isNaN(occurredAt.getTime()) || occurredAt.toISOString() !== v.time) return null;
  return {
    chain_id: v.chain,
    seq: v.seq,
    id: v.id,
    occurred_at: occurredAt,
    tenant_id: v.tenantId,
    actor_type: actor.type,
    actor_id: actor.id,
    actor_label: actor.label,
    actor_roles: [...(actor.roles as string[])],
    action: v.action,
    target_type: target === null ? null : (target.type as string),
    target_id: target === null ? null : (target.id as string),
    outcome: v.outcome,
    reason: v.reason,
    source_ip: source.ip,
    user_agent: source.userAgent,
    request_id: source.requestId,
    details: v.details,
    hash: v.hash,
  };
}

function checkSignature(sig: ArchiveSignature, trustedKeys: ReadonlyMap<string, string>): 'untrusted-key' | 'signature' | null {
  const pem = trustedKeys.get(sig.keyId);
  if (!pem) return 'untrusted-key';
  try {
    return verify(null, signaturePayload(sig), createPublicKey(pem), Buffer.from(sig.signature, 'base64')) ? null : 'signature';
  } catch {
    return 'signature';
  }
}

/**
 * Verifies every chain's archive files under `dir`: each file's signature (by a trusted key id →
 * PEM public key) and SHA-256, the hash chain recomputed from `prevHash` through every record to
 * `lastHash`, and that consecutive files join. With `db`, also that each chain's newest file ends
 * at the chain's anchor, where the online chain (verifyChain) takes over. Stops each chain at its
 * first problem and reports the file and sequence number.
 */
export async function verifyArchive(dir: string, trustedKeys: ReadonlyMap<string, string>, opts: { db?: DbOrTrx } = {}): Promise<ArchiveReport[]> {
  const chainDirs = await listChainDirs(dir);
  const reports: ArchiveReport[] = [];
  for (const chain of chainDirs) reports.push(await verifyChainArchive(join(dir, chain), chain, trustedKeys, opts.db));
  return reports;
}

async function verifyChainArchive(chainDir: string, chain: string, trustedKeys: ReadonlyMap<string, string>, db: DbOrTrx | undefined): Promise<ArchiveReport> {
  const { entries } = await listChainDir(chainDir);
  let files = 0;
  let records = 0;
  let firstSeq = 0;
  let lastSeq = 0;
  let lastHash: string | null = null;
  const report = (extra: Partial<ArchiveReport> = {}): ArchiveReport => ({ chain, ok: extra.problem === undefined, files, records, firstSeq, lastSeq, lastHash, ...extra });
  const fail = (badFile: string, firstBadSeq: number, problem: ArchiveFileProblem, detail: string) => report({ badFile, firstBadSeq, problem, detail });

  for (const e of entries) {
    const label = join(chainDir, baseName(e.firstSeq, e.lastSeq));
    if (e.jsonl === null || e.sig === null) return fail(e.jsonl ?? e.sig ?? label, e.firstSeq, 'missing-signature', `${label}: the .jsonl and .sig.json files must both be present`);
    const sig = await readSignature(e.sig);
    if (!sig) return fail(e.sig, e.firstSeq, 'malformed', `${e.sig} is not a valid archive signature file`);
    const keyProblem = checkSignature(sig, trustedKeys);
    if (keyProblem === 'untrusted-key') return fail(e.sig, e.firstSeq, keyProblem, `${e.sig} is signed by key ${sig.keyId}, which is not trusted`);
    if (keyProblem) return fail(e.sig, e.firstSeq, keyProblem, `${e.sig} has an invalid signature`);
    // Only now are the signed fields worth comparing with the file name and the previous file.
    if (sig.chain !== chain || sig.firstSeq !== e.firstSeq || sig.lastSeq !== e.lastSeq || sig.records !== e.lastSeq - e.firstSeq + 1) {
      return fail(e.sig, e.firstSeq, 'malformed', `${e.sig} describes chain ${sig.chain} ${sig.firstSeq}-${sig.lastSeq} (${sig.records} records), not its file name`);
    }
    if (lastHash === null) {
      // The oldest file left. Older ones may have been purged by retention; if none were, the
      // chain starts from the genesis hash.
      if (e.firstSeq < 1 || (e.firstSeq === 1 && sig.prevHash !== GENESIS_HASH.toString('hex'))) {
        return fail(e.sig, e.firstSeq, 'gap', `the first archive of the chain does not start from the genesis hash`);
      }
    } else if (e.firstSeq !== lastSeq + 1 || sig.prevHash !== lastHash) {
      return fail(e.jsonl, e.firstSeq, 'gap', `${e.jsonl} does not continue the previous archive ending at ${lastSeq}`);
    }

    const bytes = await readFile(e.jsonl);
    const lines = bytes.toString('utf8').split('\n');
    // Every line ends with a newline, so the split leaves one empty string at the end.
    if (lines.pop() !== '') return fail(e.jsonl, e.lastSeq, 'malformed', `${e.jsonl} does not end with a newline`);
    let prev: Buffer = Buffer.from(sig.prevHash, 'hex');
    let expected = e.firstSeq;
    for (const line of lines) {
      if (expected > e.lastSeq) return fail(e.jsonl, expected, 'sequence', `${e.jsonl} has more lines than its ${sig.records} records`);
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        return fail(e.jsonl, expected, 'malformed', `line for sequence ${expected} is not JSON`);
      }
      const row = viewToRow(parsed);
      if (!row) return fail(e.jsonl, expected, 'malformed', `line for sequence ${expected} is not an audit record`);
      if (row.seq !== expected || row.chain_id !== chain) {
        return fail(e.jsonl, expected, 'sequence', `line for sequence ${expected} holds ${row.chain_id} ${row.seq}`);
      }
      const computed = chainHash(prev, toCanonical(row));
      if (computed.toString('hex') !== row.hash) return fail(e.jsonl, expected, 'hash-mismatch', `record ${expected} does not match its hash or its predecessor`);
      prev = computed;
      expected++;
    }
    if (expected !== e.lastSeq + 1) return fail(e.jsonl, expected, 'sequence', `${e.jsonl} ends at ${expected - 1}, its signature says ${e.lastSeq}`);
    if (prev.toString('hex') !== sig.lastHash) return fail(e.jsonl, e.lastSeq, 'last-hash', `${e.jsonl} does not end at its signed hash`);
    if (createHash('sha256').update(bytes).digest('hex') !== sig.sha256) {
      // Reached only when every record still hashes right: the change is in the bytes around them.
      return fail(e.jsonl, e.firstSeq, 'sha256', `${e.jsonl} differs from its signed digest`);
    }
    if (files === 0) firstSeq = e.firstSeq;
    files++;
    records += sig.records;
    lastSeq = e.lastSeq;
    lastHash = sig.lastHash;
  }

  if (db !== undefined && files > 0) {
    const head = await db.selectFrom('accord.audit_chains').select(['anchor_seq', 'anchor_hash']).where('chain_id', '=', chain).executeTakeFirst();
    const anchorSeq = Number(head?.anchor_seq ?? 0);
    const anchorHash = head?.anchor_hash.toString('hex') ?? null;
    if (anchorSeq !== lastSeq || anchorHash !== lastHash) {
      const detail =
        anchorSeq > lastSeq
          ? `the archives end at ${lastSeq} but the chain's anchor is ${anchorSeq}: newer archive files are missing`
          : anchorSeq < lastSeq
            ? `the archives end at ${lastSeq}, after the chain's anchor ${anchorSeq}: left by an interrupted run (the next run removes them)`
            : `the newest archive's hash differs from the chain's anchor hash`;
      return report({ firstBadSeq: anchorSeq === lastSeq ? lastSeq : Math.min(anchorSeq, lastSeq) + 1, problem: 'anchor-mismatch', detail });
    }
  }
  return report();
}
