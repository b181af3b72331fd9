import type { RouteDefinition } from '../http/index.ts';
import { accountRoutes } from './account/routes.ts';
import { clientRoutes } from './clients/routes.ts';
import { endUserRoutes } from './end-user-routes.ts';
import { mfaRoutes } from './mfa/routes.ts';
import { policyRoutes } from './policy-routes.ts';
import { reviewRoutes } from './reviews/routes.ts';
import { roleRoutes } from './roles/routes.ts';
import { iamRoutes } from './routes.ts';
import type { IamServices } from './services.ts';
import { sessionRoutes } from './session-routes.ts';
import { userRoutes } from './user-routes.ts';

/** Every route of the identity capability, in one list for the server to register. */
export function identityRoutes(iam: IamServices): RouteDefinition[] {
  return [
    ...iamRoutes(iam),
    ...sessionRoutes(iam),
    ...mfaRoutes(iam),
    ...accountRoutes(iam),
    ...userRoutes({ db: iam.db }),
    ...roleRoutes(iam),
    ...clientRoutes(iam),
    ...reviewRoutes(iam),
    ...policyRoutes(iam),
    ...endUserRoutes(iam),
  ];
}
