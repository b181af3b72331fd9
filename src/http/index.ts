export type { AuthContext, GrantView, RequestMeta } from './context.ts';
export { access, parts, registerRoutes, type RouteAccess, type RouteDefinition, type RouteSchema } from './route.ts';
