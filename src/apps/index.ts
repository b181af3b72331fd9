// Model-driven apps: the manifest, its rule language, validation, the IR and the SQL compiled from it.
export { entityRuleAttributes, ruleAttribute, ruleAttributesOf } from './compile/attributes.ts';
export { compilePolicies, type PolicyOptions } from './compile/policies.ts';
export { columnType, compileDdl, type DdlOptions, type DdlStatement, quoteIdent, quoteLiteral } from './compile/ddl.ts';
export * from './compile/ir.ts';
export { type Revision, revisionOf } from './compile/revision.ts';
export * from './lifecycle/index.ts';
export { type AppDataReencrypter, appDataReencrypter, type CursorMac, type DataApiOptions, dataApiFieldKinds, dataApiRoutes, dataInventory, entityFieldKinds, forgetStageIndexKeys, entityPlan, type InventoryEntry, inventoryRoutes, LIST_LIMITS, RETENTION_INTERVAL_MS, RETENTION_JOB, retentionJobSteps, rewrapStageIndexKeys, scheduleRetention } from './data-api/index.ts';
export { actionReader, type CompiledManifest, type CompileOptions, compileManifestText } from './manifest/load.ts';
export { type Manifest, ManifestSchema, manifestJsonSchema } from './manifest/schema.ts';
export { type ManifestSource, pointerOf, pointerSegments, readManifestText, SOURCE_LIMITS } from './manifest/source.ts';
export * as rules from './rules/index.ts';
export { type Diagnostic, type DiagnosticCode, formatDiagnostic, sortDiagnostics } from './validate/diagnostics.ts';
export { MANIFEST_LIMITS } from './validate/limits.ts';
export { type ValidationResult, validateManifest } from './validate/validate.ts';
