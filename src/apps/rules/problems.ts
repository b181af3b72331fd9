/** A finding inside a rule expression, with its character range in that expression. */
export interface RuleProblem {
  readonly code: RuleProblemCode;
  readonly message: string;
  readonly hint: string;
  /** UTF-16 offsets into the expression text, end exclusive. */
  readonly start: number;
  readonly end: number;
  /** Set when the problem sits inside a named condition used by the rule. */
  readonly condition?: string;
}

export type RuleProblemCode =
  | 'APP_RULE_SYNTAX'
  | 'APP_RULE_UNSUPPORTED'
  | 'APP_RULE_VARIABLE'
  | 'APP_RULE_TYPE'
  | 'APP_RULE_ENCRYPTED'
  | 'APP_RULE_TOO_COMPLEX'
  | 'APP_UNKNOWN_ATTRIBUTE'
  | 'APP_UNKNOWN_CONDITION'
  | 'APP_CONDITION_CYCLE';

/** Source ranges of parsed nodes, kept beside the AST so the AST itself stays canonical. */
export type Spans = WeakMap<object, { readonly start: number; readonly end: number }>;
