/**
 * The perimeter: source addresses (IPv6 per /64), connection caps, rate limits and the
 * aggregation of anonymous denials. Knows HTTP only through small interfaces; the server
 * assembly wires it in.
 */
export { addressMatcher, ipv4Network24, type ParsedAddress, parseAddress, sourceKey } from './address.ts';
export { type ConnectionCapStats, capConnectionsPerSource } from './connections.ts';
export { DEFAULT_RATE_LIMITS, type RateLimitDecision, RateLimiter, type RateLimitKind, type RateLimitPolicy, type RateLimitQuota, type RateLimitSubjects } from './rate-limit.ts';
export { type Denial, DenialAggregator, type DenialSummary, OVERFLOW_SOURCE } from './denials.ts';
export { type RequestLimits, checkJsonShape, checkRequestHead, requestLimits } from './limits.ts';
export { type AddressLists, mergeLimits, PerimeterState, type PerimeterSnapshot, rateLimitsFromConfig, type StageGuard } from './state.ts';
export {
  addRule,
  canonicalCidr,
  checkStageSettings,
  type IpRule,
  listRules,
  perimeterVersion,
  removeRule,
  type RuleScope,
  setStageSettings,
  type StageSettings,
  stageSettings,
} from './store.ts';
export { perimeterRoutes } from './routes.ts';
export { EXPECTED_ANONYMOUS, type SurfaceEndpoint, type SurfaceFinding, type SurfaceReport, surfaceReport } from './surface.ts';
