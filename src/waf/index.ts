// The web application firewall: OWASP CRS rules as data, evaluated in-process (docs/waf.md).
import { readFileSync } from 'node:fs';
import { type InjectionDetectors, WafEngine } from './engine.ts';
import type { CompiledRuleSet } from './rule-types.ts';

export { type EngineOptions, excerptOf, type FieldKind, type InjectionDetectors, KIND_CATEGORIES, type WafMatch, type WafRequest, type WafVerdict, WafEngine } from './engine.ts';
export { type Detection, listEvents, recordDetection, type WafEventView } from './events.ts';
export { fieldKindsFromSchema, restrictivePattern } from './field-kinds.ts';
export { type FieldKindsProvider, installWaf, type WafHandle, type WafOptions } from './hook.ts';
export { loadLibinjection } from './libinjection.ts';
export { wafRequestOf } from './request.ts';
export { wafRoutes } from './routes.ts';
export type { CompiledRuleSet, RuleDef } from './rule-types.ts';
export { DEFAULT_SETTINGS, type WafMode, type WafSettings, WafSettingsCache } from './settings.ts';
export { checkSinkPath, checkSinkSql, SinkViolation } from './sink.ts';
export { applyTransforms, TRANSFORMS } from './transforms.ts';

let cached: CompiledRuleSet | undefined;

/** The generated CRS rule set checked into the repository (src/waf/rules/crs.generated.json). */
export function crsRuleSet(): CompiledRuleSet {
  cached ??= JSON.parse(readFileSync(new URL('./rules/crs.generated.json', import.meta.url), 'utf8')) as CompiledRuleSet;
  return cached;
}

/** An engine over the CRS rule set, with libinjection when given. */
export function crsEngine(injection?: InjectionDetectors): WafEngine {
  return new WafEngine(crsRuleSet(), injection);
}
