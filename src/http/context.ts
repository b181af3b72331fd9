/** One grant of a role, as the authorizer sees it (names resolved for path matching). */
export interface GrantView {
  readonly role: string;
  /** null: platform-wide (every tenant). */
  readonly tenantId: string | null;
  readonly tenantName: string | null;
  /** null: every stage of the tenant. */
  readonly stageId: string | null;
  readonly stageName: string | null;
}

/** Who is calling, established by the authenticator before any handler runs. */
export interface AuthContext {
  readonly kind: 'user';
  readonly userId: string;
  readonly email: string;
  /** The user's directory: null for the platform directory. */
  readonly tenantId: string | null;
  readonly sessionId: string;
  readonly grants: readonly GrantView[];
}

/** What every mutation passes to the audit trail about the request that caused it. */
export interface RequestMeta {
  readonly requestId: string;
  readonly sourceIp: string | null;
  readonly userAgent: string | null;
  readonly auth: AuthContext | undefined;
}
