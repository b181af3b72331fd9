import type { RouteDefinition } from '../../http/index.ts';
import type { IamServices } from '../services.ts';

/** (being built) */
export function clientRoutes(_iam: IamServices): RouteDefinition[] {
  return [];
}
