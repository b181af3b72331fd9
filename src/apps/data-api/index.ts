// The generated data API: REST routes per app and stage compiled from the revision's IR, with
// every rule enforced in the generated SQL and again by row-level security.
export type { CursorMac } from './cursor.ts';
export { type EntityPlan, entityPlan } from './plan.ts';
export { type InventoryEntry, dataInventory } from './inventory.ts';
export { type DataApiOptions, dataApiRoutes, inventoryRoutes } from './routes.ts';
export { type DataApiDeps, LIST_LIMITS } from './service.ts';
export { RETENTION_BATCH, RETENTION_INTERVAL_MS, RETENTION_JOB, retentionJobSteps, scheduleRetention } from './retention.ts';
export { type AppDataReencrypter, appDataReencrypter } from './reencrypt.ts';
export { dataApiFieldKinds, entityFieldKinds } from './waf-kinds.ts';
export { forgetStageIndexKeys, rewrapStageIndexKeys } from './crypt.ts';
