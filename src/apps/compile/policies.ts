// IR → row-level-security policies for an app's tables on one stage (issue 12: every rule enforced
// twice). Seam between the lifecycle and the data API: the lifecycle applies these statements, as
// the stage's owning role, after the table steps of every deploy, promotion and rollback (all of
// an app's policies are replaced each time, which is cheap and leaves no stale one behind); the
// data API fills in what they are.
import type { DdlStatement } from './ddl.ts';
import type { AppIR } from './ir.ts';

export interface PolicyOptions {
  /** The stage schema the tables are in. */
  readonly schema: string;
  /** The stage's runtime role (`accord_rt_*`), the one role the policies are for. */
  readonly runtimeRole: string;
}

/** Statements that enable (and force) RLS on the app's tables and create its policies. */
export function compilePolicies(_app: AppIR, _opts: PolicyOptions): readonly DdlStatement[] {
  return [];
}
