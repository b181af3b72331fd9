import type { ColumnType, Generated } from 'kysely';

/**
 * Row shapes of the platform catalog (schema `accord`). The shapes live beside the migrations
 * that create them; the rules about them live in the capabilities.
 */
type CreatedAt = ColumnType<Date, Date | undefined, never>;

export interface TenantsTable {
  id: Generated<string>;
  name: string;
  display_name: string;
  region: string;
  created_at: CreatedAt;
  require_mfa: ColumnType<boolean, boolean | undefined, boolean>;
  /** Roles whose holders must use MFA even when the tenant does not require it of everyone. */
  mfa_required_roles: ColumnType<string[], string[] | undefined, string[]>;
  /** null: the platform default (config sessionIdleTimeoutSeconds / sessionAbsoluteTimeoutSeconds). */
  session_idle_seconds: ColumnType<number | null, number | null | undefined, number | null>;
  session_absolute_seconds: ColumnType<number | null, number | null | undefined, number | null>;
}

export interface StagesTable {
  id: Generated<string>;
  tenant_id: string;
  name: string;
  position: number;
  schema_name: string;
  role_name: string;
  created_at: CreatedAt;
  /** End-user session policy of the stage; null: the platform default. */
  session_idle_seconds: ColumnType<number | null, number | null | undefined, number | null>;
  session_absolute_seconds: ColumnType<number | null, number | null | undefined, number | null>;
}

export interface UsersTable {
  id: Generated<string>;
  /** null: the platform directory (operators, security officers). */
  tenant_id: string | null;
  email: string;
  display_name: string;
  password_hash: string | null;
  /** invited: created without a password; becomes active when the invitation is accepted. */
  status: ColumnType<UserStatus, UserStatus | undefined, UserStatus>;
  created_at: CreatedAt;
  password_changed_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export type UserStatus = 'active' | 'disabled' | 'invited';

export interface UserTokensTable {
  id: Generated<string>;
  user_id: string;
  purpose: 'invite' | 'password-reset' | 'mfa-challenge' | 'webauthn-register';
  token_hash: Buffer;
  data: ColumnType<Record<string, unknown>, string | undefined, string>;
  created_at: CreatedAt;
  expires_at: Date;
  used_at: Date | null;
}

export interface RoleGrantsTable {
  id: Generated<string>;
  /** Exactly one of user_id and client_id is set (a CHECK enforces it). */
  user_id: string | null;
  client_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** A built-in role, or a custom role of the grant's tenant. */
  role: string;
  /** null: platform-wide. */
  tenant_id: string | null;
  /** null: every stage of the tenant. */
  stage_id: string | null;
  granted_by: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: CreatedAt;
  last_used_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

/** A session is a family of refresh tokens; every access token names its session. */
export interface SessionsTable {
  id: Generated<string>;
  user_id: string;
  kind: ColumnType<'console' | 'end-user', 'console' | 'end-user' | undefined, never>;
  /** End-user sessions: the stage signed in to. */
  stage_id: ColumnType<string | null, string | null | undefined, never>;
  /** A session that may only enrol an MFA factor (MFA is required and the user has none). */
  enrolment_only: ColumnType<boolean, boolean | undefined, never>;
  auth_methods: ColumnType<string[], string[] | undefined, never>;
  created_at: CreatedAt;
  last_seen_at: Date;
  idle_expires_at: Date;
  absolute_expires_at: Date;
  revoked_at: Date | null;
  revoked_reason: ColumnType<string | null, string | null | undefined, string | null>;
  source_ip: string | null;
  user_agent: string | null;
}

export interface RefreshTokensTable {
  id: Generated<string>;
  session_id: string;
  token_hash: Buffer;
  created_at: CreatedAt;
  /** Set when exchanged; presenting it again is reuse, which revokes the session. */
  used_at: Date | null;
}

export interface IamKeysTable {
  kid: string;
  root_key_id: string;
  wrapped: Buffer;
  created_at: CreatedAt;
}

export interface MfaTotpTable {
  user_id: string;
  /** The TOTP secret, sealed with the IAM key (AES-256-GCM). */
  secret_sealed: Buffer;
  /** null: enrolled but not yet confirmed with a first code (not usable to sign in). */
  confirmed_at: Date | null;
  /** The highest time step accepted so far: a code for it or an earlier one is a replay. */
  last_step: ColumnType<string, number | string | undefined, number | string>;
  created_at: CreatedAt;
}

export interface MfaRecoveryCodesTable {
  id: Generated<string>;
  user_id: string;
  code_hash: Buffer;
  used_at: Date | null;
  created_at: CreatedAt;
}

export interface WebauthnCredentialsTable {
  id: Generated<string>;
  user_id: string;
  /** base64url credential id. */
  credential_id: string;
  /** COSE public key. */
  public_key: Buffer;
  counter: ColumnType<string, number | string | undefined, number | string>;
  transports: ColumnType<string[], string[] | undefined, string[]>;
  name: ColumnType<string, string | undefined, string>;
  created_at: CreatedAt;
  last_used_at: Date | null;
}

export interface ApiClientsTable {
  id: Generated<string>;
  tenant_id: string;
  name: string;
  /** The public client id used at /oauth/token (`acl_...`). */
  client_id: string;
  created_by: string | null;
  created_at: CreatedAt;
  expires_at: Date;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

export interface ApiClientSecretsTable {
  id: Generated<string>;
  client_id: string;
  secret_hash: Buffer;
  created_at: CreatedAt;
  expires_at: Date;
  revoked_at: Date | null;
}

export interface CustomRolesTable {
  id: Generated<string>;
  tenant_id: string;
  name: string;
  description: ColumnType<string, string | undefined, string>;
  permissions: string[];
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface AppRoleGrantsTable {
  id: Generated<string>;
  tenant_id: string;
  stage_id: string;
  app: string;
  role: string;
  user_id: string;
  granted_by: string | null;
  created_at: CreatedAt;
  last_used_at: Date | null;
}

export interface AccessReviewsTable {
  id: Generated<string>;
  tenant_id: string;
  name: string;
  /** Label (email) of who started it: kept even if that user is deleted later. */
  started_by: string;
  started_at: CreatedAt;
  closed_at: Date | null;
  closed_by: string | null;
}

export interface AccessReviewItemsTable {
  id: Generated<string>;
  review_id: string;
  kind: 'role' | 'app-role';
  grant_id: string;
  principal_type: 'user' | 'client';
  principal_id: string;
  principal_label: string;
  role: string;
  app: string | null;
  stage: string | null;
  last_used_at: Date | null;
  decision: 'confirm' | 'revoke' | null;
  decided_by: string | null;
  decided_at: Date | null;
  note: string | null;
}

export interface SetupTokensTable {
  id: Generated<string>;
  token_hash: Buffer;
  created_at: CreatedAt;
  expires_at: Date;
  used_at: Date | null;
}

export interface AuditChainsTable {
  /** 'platform' or the tenant's id. */
  chain_id: string;
  tenant_id: string | null;
  last_seq: ColumnType<number, number | undefined, number>;
  last_hash: ColumnType<Buffer, Buffer | undefined, Buffer>;
  /** Records at or below this sequence were moved to archive files; verification starts here. */
  anchor_seq: ColumnType<number, number | undefined, number>;
  anchor_hash: ColumnType<Buffer, Buffer | undefined, Buffer>;
  last_checkpoint_seq: ColumnType<number, number | undefined, number>;
  last_checkpoint_at: ColumnType<Date, Date | undefined, Date>;
  /** Horizon (xid8, as text) of the last seal pass that left nothing sealable in this chain. */
  sealed_xid: ColumnType<string | null, string | undefined, string>;
}

export interface AuditEventsTable {
  chain_id: string;
  /** NULL until the sealer links the event into its chain. */
  seq: ColumnType<number | null, never, number>;
  id: string;
  occurred_at: Date;
  tenant_id: string | null;
  actor_type: string;
  actor_id: string | null;
  actor_label: string | null;
  actor_roles: string[];
  action: string;
  target_type: string | null;
  target_id: string | null;
  outcome: string;
  reason: string | null;
  source_ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  details: ColumnType<Record<string, unknown>, string, never>;
  hash: ColumnType<Buffer | null, never, Buffer>;
  /** The writing transaction (xid8 as text); NULL on rows sealed before migration 006. */
  xid: ColumnType<string | null, never, never>;
  /** Insertion number (a sequence): the sealer's order among events it may seal. */
  ins: ColumnType<number | null, never, never>;
}

export interface AuditCheckpointsTable {
  chain_id: string;
  seq: number;
  hash: Buffer;
  signed_at: Date;
  key_id: string;
  signature: Buffer;
}

export interface AuditSinkCursorsTable {
  sink: string;
  chain_id: string;
  last_seq: ColumnType<number, number | undefined, number>;
}

export interface TenantKeksTable {
  tenant_id: string;
  version: number;
  root_key_id: string;
  wrapped: Buffer;
  state: 'active' | 'retired';
  created_at: CreatedAt;
}

export interface StageDeksTable {
  stage_id: string;
  tenant_id: string;
  version: number;
  kek_version: number;
  wrapped: Buffer;
  state: 'active' | 'retired';
  created_at: CreatedAt;
}

export interface StageSecretsTable {
  stage_id: string;
  name: string;
  envelope: Buffer;
  key_version: number;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface JobsTable {
  id: Generated<string>;
  kind: string;
  tenant_id: string | null;
  state: 'pending' | 'running' | 'done' | 'failed';
  payload: ColumnType<Record<string, unknown>, string, string>;
  progress: ColumnType<Record<string, unknown>, string | undefined, string>;
  attempts: ColumnType<number, number | undefined, number>;
  locked_until: Date | null;
  error: string | null;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface AuthFailuresTable {
  id: Generated<number>;
  kind: 'account' | 'ip';
  /** account: `<tenant id or 'platform'>:<lower-case email>`; ip: the address (IPv6: its /64). */
  subject: string;
  occurred_at: Date;
}

export interface AuthLocksTable {
  kind: 'account' | 'ip';
  subject: string;
  /** null or past: not locked (the row is also the subject's mutex while failures are recorded). */
  locked_until: Date | null;
  level: ColumnType<number, number | undefined, number>;
}

export interface AppRevisionsTable {
  tenant_id: string;
  app: string;
  /** The revision hash, `sha256:` + 64 hex. */
  id: string;
  version: string;
  /** The AppIR as JSON (src/apps/compile/ir.ts). */
  ir: unknown;
  manifest: string;
  /** Action sources by path. */
  actions: ColumnType<Record<string, string>, Record<string, string> | undefined, never>;
  created_by: string | null;
  created_at: CreatedAt;
}

export interface AppStageStateTable {
  stage_id: string;
  app: string;
  tenant_id: string;
  revision: string;
  deployed_at: ColumnType<Date, Date | undefined, Date>;
  deployed_by: string | null;
}

/** One blind-index key per stage, wrapped under a tenant KEK (migration 011). */
export interface StageIndexKeysTable {
  stage_id: string;
  tenant_id: string;
  kek_version: number;
  wrapped: Buffer;
  created_at: CreatedAt;
}

/** The first answer to a create with an Idempotency-Key (migration 011). */
export interface DataIdempotencyTable {
  stage_id: string;
  app: string;
  principal_id: string;
  key: string;
  request_hash: string;
  state: 'in-flight' | 'done';
  status: number | null;
  response: unknown;
  /** Reset when an expired or abandoned key is claimed again. */
  created_at: ColumnType<Date, Date | undefined, Date>;
}

export interface AppDeploymentsTable {
  id: Generated<string>;
  tenant_id: string;
  stage_id: string;
  app: string;
  revision: string;
  previous_revision: string | null;
  kind: 'deploy' | 'promote' | 'rollback';
  steps: ColumnType<unknown, unknown | undefined, never>;
  deployed_by: string | null;
  deployed_at: CreatedAt;
}

/** The whole platform catalog as Kysely sees it. */
export interface Catalog {
  'accord.tenants': TenantsTable;
  'accord.stages': StagesTable;
  'accord.users': UsersTable;
  'accord.role_grants': RoleGrantsTable;
  'accord.sessions': SessionsTable;
  'accord.setup_tokens': SetupTokensTable;
  'accord.audit_chains': AuditChainsTable;
  'accord.audit_events': AuditEventsTable;
  'accord.audit_checkpoints': AuditCheckpointsTable;
  'accord.audit_sink_cursors': AuditSinkCursorsTable;
  'accord.tenant_keks': TenantKeksTable;
  'accord.stage_deks': StageDeksTable;
  'accord.stage_secrets': StageSecretsTable;
  'accord.jobs': JobsTable;
  'accord.auth_failures': AuthFailuresTable;
  'accord.auth_locks': AuthLocksTable;
  'accord.user_tokens': UserTokensTable;
  'accord.refresh_tokens': RefreshTokensTable;
  'accord.iam_keys': IamKeysTable;
  'accord.mfa_totp': MfaTotpTable;
  'accord.mfa_recovery_codes': MfaRecoveryCodesTable;
  'accord.webauthn_credentials': WebauthnCredentialsTable;
  'accord.api_clients': ApiClientsTable;
  'accord.api_client_secrets': ApiClientSecretsTable;
  'accord.custom_roles': CustomRolesTable;
  'accord.app_role_grants': AppRoleGrantsTable;
  'accord.access_reviews': AccessReviewsTable;
  'accord.access_review_items': AccessReviewItemsTable;
  'accord.app_revisions': AppRevisionsTable;
  'accord.app_stage_state': AppStageStateTable;
  'accord.app_deployments': AppDeploymentsTable;
  'accord.stage_index_keys': StageIndexKeysTable;
  'accord.data_idempotency': DataIdempotencyTable;
}
