/** Limits of the rule profile (docs/app-manifest.md, "Limits"). */
export const RULE_LIMITS = Object.freeze({
  /** Characters of one expression as written. */
  maxLength: 2000,
  /** Depth of the canonical AST after named conditions are expanded. */
  maxDepth: 24,
  /** Nodes of the canonical AST after named conditions are expanded. */
  maxNodes: 256,
  /** Items of one list literal. */
  maxListItems: 100,
  /** Named conditions used inside named conditions, at most this deep. */
  maxConditionNesting: 8,
});
