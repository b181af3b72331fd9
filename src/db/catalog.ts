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
}

export interface StagesTable {
  id: Generated<string>;
  tenant_id: string;
  name: string;
  position: number;
  schema_name: string;
  role_name: string;
  created_at: CreatedAt;
}

export interface UsersTable {
  id: Generated<string>;
  /** null: the platform directory (operators, security officers). */
  tenant_id: string | null;
  email: string;
  display_name: string;
  password_hash: string | null;
  status: ColumnType<'active' | 'disabled', 'active' | 'disabled' | undefined, 'active' | 'disabled'>;
  created_at: CreatedAt;
}

export interface RoleGrantsTable {
  id: Generated<string>;
  user_id: string;
  role: string;
  /** null: platform-wide. */
  tenant_id: string | null;
  /** null: every stage of the tenant. */
  stage_id: string | null;
  created_at: CreatedAt;
}

export interface SessionsTable {
  id: Generated<string>;
  user_id: string;
  token_hash: Buffer;
  created_at: CreatedAt;
  last_seen_at: Date;
  idle_expires_at: Date;
  absolute_expires_at: Date;
  revoked_at: Date | null;
  source_ip: string | null;
  user_agent: string | null;
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
}

export interface AuditEventsTable {
  chain_id: string;
  seq: number;
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
  hash: Buffer;
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
}
