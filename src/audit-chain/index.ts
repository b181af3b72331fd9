export { type CanonicalRecord, canonicalJson, chainHash, chainIdFor, GENESIS_HASH, PLATFORM_CHAIN } from './canonical.ts';
export {
  type CheckpointPolicy,
  latestCheckpointSeqs,
  listCheckpoints,
  readCheckpointFiles,
  takeCheckpoints,
  writeCheckpointFiles,
} from './checkpoints.ts';
export { toCef, toJsonLine, toSyslog5424 } from './formats.ts';
export {
  type AuditActor,
  type AuditEvent,
  type AuditEventFields,
  type AuditSource,
  appendStageAuditEvent,
  auditEventFields,
  type CanonicalRow,
  record,
  type SealedRow,
  STAGE_AUDIT_COLUMNS,
  STAGE_AUDIT_TYPES,
  scrubDetails,
  sealedRow,
  stageAuditStatement,
  stageAuditValues,
  systemSource,
  toCanonical,
} from './record.ts';
export { type SealedEvent, type SealOptions, type SealResult, sealPending } from './seal.ts';
export { type AuditCursor, type AuditQuery, type AuditRecordView, searchAudit, toRecordView } from './search.ts';
export {
  type CheckpointBody,
  type CheckpointSigner,
  checkpointPayload,
  ephemeralSigner,
  keyIdOf,
  loadOrCreateSigner,
  type SignedCheckpoint,
  verifyCheckpointSignature,
} from './signing.ts';
export { type ChainProblem, type ChainReport, verifyChain, verifyChains } from './verify.ts';
export { auditWritten, onAuditWritten } from './wake.ts';
