export { AuditJobs, type AuditTask, checkpointTask } from './jobs.ts';
export { auditRoutes } from './routes.ts';
