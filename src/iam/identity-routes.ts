import type { RouteDefinition } from '../http/index.ts';
import { accountRoutes } from './account/routes.ts';
import { clientRoutes } from './clients/routes.ts';
import { federationRoutes, scimRoutes } from './federation/index.ts';
import { endUserRoutes } from './sign-in/end-user-routes.ts';
import { mfaAdminRoutes } from './mfa/admin-reset.ts';
import { mfaRoutes } from './mfa/routes.ts';
import { policyRoutes } from './sessions/policy-routes.ts';
import { reviewRoutes } from './reviews/routes.ts';
import { roleRoutes } from './roles/routes.ts';
import { iamRoutes } from './sign-in/routes.ts';
import type { IamServices } from './services.ts';
import { sessionRoutes } from './sessions/routes.ts';
import { unlockRoutes } from './sign-in/unlock.ts';
import { userRoutes } from './users/routes.ts';

/** Every route of the identity capability, in one list for the server to register. */
export function identityRoutes(iam: IamServices): RouteDefinition[] {
  return [
    ...iamRoutes(iam),
    ...sessionRoutes(iam),
    ...mfaRoutes(iam),
    ...mfaAdminRoutes(iam),
    ...accountRoutes(iam),
    ...userRoutes({ db: iam.db }),
    ...roleRoutes(iam),
    ...clientRoutes(iam),
    ...reviewRoutes(iam),
    ...policyRoutes(iam),
    ...endUserRoutes(iam),
    ...federationRoutes(iam),
    ...scimRoutes(iam),
    ...unlockRoutes({ db: iam.db }),
  ];
}
