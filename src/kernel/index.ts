export { auditAlone, onAfterCommitError, refuse, unitOfWork, type Work } from './unit-of-work.ts';
