export { archiveExpired, verifyArchive } from './archive.ts';
export { AuditJobs, type AuditTask, archiveTask, checkpointTask } from './jobs.ts';
export { auditRoutes } from './routes.ts';
