export { archiveExpired, verifyArchive } from './archive.ts';
export { AuditJobs, type AuditTask, archiveTask, checkpointTask, syslogTask } from './jobs.ts';
export { auditRoutes } from './routes.ts';
export { SyslogSink, type SyslogSinkOptions } from './syslog-sink.ts';
export { AuditSealer, type AuditSealerOptions } from './sealer.ts';
