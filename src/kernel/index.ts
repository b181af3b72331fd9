export { auditAlone, onAfterCommitError, refuse, unitOfWork, type Work } from './unit-of-work.ts';
// Stage sessions (the data plane): run tenant work as a stage's runtime role.
export {
  type Caller,
  type DataPlane,
  type OpenDataPlaneOptions,
  openDataPlane,
  runAsStage,
  runtimeRoleOf,
  type StageAuditEvent,
  type StageDb,
  type StageRef,
  type StageSession,
  type StageTables,
} from './stage-session.ts';
export { gatewayCredentials, gatewayRoleName, gatewayWrappedUnder, rewrapGatewayPassword, scramSha256Verifier } from './gateway.ts';
export { TtlCache } from './ttl-cache.ts';
