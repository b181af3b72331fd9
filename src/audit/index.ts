export {
  type AuditActor,
  type AuditEvent,
  type AuditSource,
  record,
  scrubDetails,
  systemSource,
} from './record.ts';
