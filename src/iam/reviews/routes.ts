import type { RouteDefinition } from '../../http/index.ts';
import type { IamServices } from '../services.ts';

/** (being built) */
export function reviewRoutes(_iam: IamServices): RouteDefinition[] {
  return [];
}
