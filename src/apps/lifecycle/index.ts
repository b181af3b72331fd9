// The app lifecycle: revisions, what runs on each stage, the migration engine, deploy / promote / rollback.
export { type DataLossItem, type DeployOptions, type DeployPhase, type DeployResult, deployRevision, type Plan, planDeployment, type RevisionInput, type StageRef } from './deploy.ts';
export { type LockClass, type Precheck, planMigration, type RuleChange, ruleChanges, type Step } from './plan.ts';
export { type DriftItem, driftBetween, readSnapshot, type SchemaSnapshot } from './snapshot.ts';
export { type DeployedApp, deployedApp } from './store.ts';
export { lifecycleRoutes } from './routes.ts';
export { appStatus, compileUpload, deployUpload, type LifecycleDeps, listRevisions, listSettings, planUpload, promote, resolveRevision, rollback, setSetting } from './service.ts';
