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
  /** Password sign-in to the console turned off (an identity provider signs users in). */
  builtin_sign_in_disabled: ColumnType<boolean, boolean | undefined, boolean>;
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
  /** Password sign-in of end users turned off on this stage. */
  builtin_sign_in_disabled: ColumnType<boolean, boolean | undefined, boolean>;
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
  /** SCIM externalId, as the provisioning IdP sent it. */
  external_id: ColumnType<string | null, string | null | undefined, string | null>;
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
  /** Made by a group mapping of this identity provider (re-sync removes it); null: by hand. */
  via_idp: ColumnType<string | null, string | null | undefined, string | null>;
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
  /** Exactly one of user_id and client_id is set (014-client-app-roles). */
  user_id: string | null;
  client_id: ColumnType<string | null, string | null | undefined, string | null>;
  granted_by: string | null;
  created_at: CreatedAt;
  last_used_at: Date | null;
  /** Made by a group mapping of this identity provider (re-sync removes it); null: by hand. */
  via_idp: ColumnType<string | null, string | null | undefined, string | null>;
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
  kind: 'account' | 'ip' | 'net' | 'device';
  /**
   * account: `<tenant id or 'platform'>:<lower-case email>`; ip: the address (IPv6: its /64);
   * net: the IPv4 /24; device: `<device id>` of a device cookie (migration 008).
   */
  subject: string;
  occurred_at: Date;
}

export interface AuthLocksTable {
  kind: 'account' | 'ip' | 'net' | 'device';
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
  /** The revision's number within its app: R1, R2, ... */
  seq: ColumnType<number, number | undefined, never>;
}

export interface AppStageStateTable {
  stage_id: string;
  app: string;
  tenant_id: string;
  revision: string;
  deployed_at: ColumnType<Date, Date | undefined, Date>;
  deployed_by: string | null;
  /** The app's tables as the last deployment left them (src/apps/lifecycle/snapshot.ts). */
  schema_snapshot: ColumnType<unknown, unknown | undefined, unknown>;
  /** Every table the app has had on this stage, hidden ones included. */
  tables: ColumnType<string[], string[] | undefined, string[]>;
}

export interface AppPendingIndexesTable {
  stage_id: string;
  app: string;
  index_name: string;
  revision: string;
  created_at: CreatedAt;
}

export interface AppSettingsTable {
  stage_id: string;
  app: string;
  name: string;
  value: unknown;
  updated_by: string | null;
  updated_at: ColumnType<Date, Date | undefined, Date>;
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

export interface WafSettingsTable {
  stage_id: string;
  tenant_id: string;
  mode: 'off' | 'detect' | 'block';
  paranoia_level: number;
  threshold: number;
  updated_by: string | null;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface WafExclusionsTable {
  id: Generated<string>;
  tenant_id: string;
  stage_id: string;
  rule_id: number;
  field: string;
  justification: string;
  expires_at: Date;
  created_by: string | null;
  created_at: CreatedAt;
  removed_at: Date | null;
}

export interface WafEventsTable {
  id: string;
  tenant_id: string | null;
  stage_id: string | null;
  at: CreatedAt;
  mode: 'detect' | 'block';
  blocked: boolean;
  kind: 'request' | 'sink';
  request_id: string;
  method: string;
  route: string;
  score: number;
  paranoia_level: number;
  rule_ids: number[];
  categories: ColumnType<unknown, string, never>;
  fields: string[];
  matches: ColumnType<unknown, string, never>;
  source_ip: string | null;
}

export interface IpRulesTable {
  id: Generated<string>;
  /** null: the control plane (platform-wide); else the stage whose data plane and sign-in it guards. */
  stage_id: string | null;
  action: 'allow' | 'deny';
  cidr: string;
  note: ColumnType<string, string | undefined, string>;
  created_at: CreatedAt;
}

export interface StagePerimeterTable {
  stage_id: string;
  /** Partial quotas per kind (`{ ip: { limit, windowSeconds } }`); kinds left out take the platform's. */
  rate_limits: ColumnType<unknown, string | undefined, string>;
  /** Origins allowed to call the stage's data plane from a browser (CORS); none by default. */
  cors_origins: ColumnType<unknown, string | undefined, string>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface PerimeterVersionTable {
  id: number;
  version: ColumnType<string, string | number, string | number>;
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
  'accord.app_pending_indexes': AppPendingIndexesTable;
  'accord.app_settings': AppSettingsTable;
  'accord.identity_providers': IdentityProvidersTable;
  'accord.identity_provider_stages': IdentityProviderStagesTable;
  'accord.idp_group_mappings': IdpGroupMappingsTable;
  'accord.federated_identities': FederatedIdentitiesTable;
  'accord.federation_flows': FederationFlowsTable;
  'accord.saml_assertion_ids': SamlAssertionIdsTable;
  'accord.scim_groups': ScimGroupsTable;
  'accord.scim_group_members': ScimGroupMembersTable;
  'accord.waf_settings': WafSettingsTable;
  'accord.waf_exclusions': WafExclusionsTable;
  'accord.waf_events': WafEventsTable;
  'accord.ip_rules': IpRulesTable;
  'accord.stage_perimeter': StagePerimeterTable;
  'accord.perimeter_version': PerimeterVersionTable;
  'accord.stage_index_keys': StageIndexKeysTable;
  'accord.data_idempotency': DataIdempotencyTable;
}

/** An identity provider of a tenant (migration 012); settings are the kind's non-secret part. */
export interface IdentityProvidersTable {
  id: Generated<string>;
  tenant_id: string;
  name: string;
  kind: 'oidc' | 'saml' | 'ldap';
  settings: ColumnType<Record<string, unknown>, string, string>;
  sealed_secret: Buffer | null;
  console: ColumnType<boolean, boolean | undefined, boolean>;
  enabled: ColumnType<boolean, boolean | undefined, boolean>;
  created_at: CreatedAt;
}

export interface IdentityProviderStagesTable {
  idp_id: string;
  stage_id: string;
}

export interface IdpGroupMappingsTable {
  id: Generated<string>;
  idp_id: string;
  group_name: string;
  kind: 'role' | 'app-role';
  role: string;
  stage_id: string | null;
  app: string | null;
}

export interface FederatedIdentitiesTable {
  id: Generated<string>;
  idp_id: string;
  user_id: string;
  subject: string;
  groups: ColumnType<string[], string[] | undefined, string[]>;
  last_login_at: Date | null;
  synced_at: ColumnType<Date, Date | undefined, Date>;
}

export interface FederationFlowsTable {
  id: Generated<string>;
  idp_id: string;
  state_hash: Buffer;
  nonce: string;
  code_verifier: string;
  audience: ColumnType<Record<string, unknown>, string, string>;
  mode: 'bearer' | 'cookie';
  created_at: CreatedAt;
  expires_at: Date;
  used_at: Date | null;
}

export interface SamlAssertionIdsTable {
  idp_id: string;
  assertion_id: string;
  expires_at: Date;
}

export interface ScimGroupsTable {
  id: Generated<string>;
  idp_id: string;
  display_name: string;
  external_id: string | null;
  created_at: CreatedAt;
}

export interface ScimGroupMembersTable {
  group_id: string;
  user_id: string;
}
