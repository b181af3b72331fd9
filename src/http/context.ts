/** One grant of a role, as the authorizer sees it (names resolved for path matching). */
export interface GrantView {
  readonly id: string;
  readonly role: string;
  /** The role's permissions, resolved when the grants were loaded (built-in or custom role). */
  readonly permissions: readonly string[];
  /** null: platform-wide (every tenant). */
  readonly tenantId: string | null;
  readonly tenantName: string | null;
  /** null: every stage of the tenant. */
  readonly stageId: string | null;
  readonly stageName: string | null;
}

/**
 * Who is calling, established by the authenticator before any handler runs.
 * - `user`: a console user (operator or tenant user) with a session;
 * - `client`: an API client (OAuth2 client credentials), no session;
 * - `end-user`: a tenant user signed in to one stage's apps (only /t/{tenant}/{stage}/ routes).
 */
export interface AuthContext {
  readonly kind: 'user' | 'client' | 'end-user';
  /** The user's or the API client's id. */
  readonly principalId: string;
  /** Email of a user, name of an API client. */
  readonly label: string;
  /** The principal's directory / owner: null for the platform directory. */
  readonly tenantId: string | null;
  /** The session the token belongs to (null for API clients). */
  readonly sessionId: string | null;
  /** End-user sessions: the stage signed in to. */
  readonly stageId: string | null;
  /** End-user sessions: tenant and stage names, matched against /t/{tenant}/{stage}/ paths. */
  readonly endUser?: { readonly tenant: string; readonly stage: string };
  /** A session that may only enrol an MFA factor (MFA is required and the user has none yet). */
  readonly enrolmentOnly: boolean;
  /** How the token came: a browser cookie needs the CSRF header on changes. */
  readonly via: 'bearer' | 'cookie';
  readonly grants: readonly GrantView[];
}

/** What every mutation passes to the audit trail about the request that caused it. */
export interface RequestMeta {
  readonly requestId: string;
  readonly sourceIp: string | null;
  readonly userAgent: string | null;
  readonly auth: AuthContext | undefined;
  /** Why a presented token was not accepted (reported instead of a bare IAM_UNAUTHENTICATED). */
  readonly authError?: 'IAM_TOKEN_INVALID' | 'IAM_TOKEN_EXPIRED' | 'IAM_SESSION_ENDED' | 'IAM_CSRF';
}
