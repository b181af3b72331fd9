export { auditSource } from './audit-source.ts';
export type { AuthContext, GrantView, RequestMeta } from './context.ts';
export {
  access,
  registerRoutes,
  type AsStageOptions,
  type RouteAccess,
  type RouteContext,
  type RouteDefinition,
  type RouteKit,
  type RouteSchema,
  route,
  type ScopeResolver,
  type ScopeStage,
  type ScopeTenant,
} from './route.ts';
export { applyInputRule, applyInputRuleToRequest, type InputPart, type TextProblem, textProblem } from './input-rule.ts';
