export { auditSource } from './audit-source.ts';
export type { AuthContext, GrantView, RequestMeta } from './context.ts';
export { access, optionalBody, parts, registerRoutes, type RouteAccess, type RouteDefinition, type RouteSchema } from './route.ts';
export { applyInputRule, applyInputRuleToRequest, type InputPart, type TextProblem, textProblem } from './input-rule.ts';
