// The shape of the generated rule file (src/waf/rules/crs.generated.json): CRS rules as data.

/** A variable a rule inspects: a collection, optionally one key (a name or a /regex/), minus exclusions. */
export interface RuleTarget {
  readonly collection: string;
  readonly key?: string;
  /** `&COLLECTION`: the number of entries, not their values. */
  readonly count?: boolean;
  /** Keys excluded by `!COLLECTION:key` in the same rule. */
  readonly exclude: readonly string[];
}

/** One SecRule of a (possibly chained) rule. */
export interface RuleLink {
  readonly targets: readonly RuleTarget[];
  readonly operator: string;
  readonly argument: string;
  /** For @pm and @pmFromFile: the phrases (the data file's lines are inlined at build time). */
  readonly phrases?: readonly string[];
  readonly negated: boolean;
  readonly transforms: readonly string[];
  readonly multiMatch: boolean;
}

/** A CRS rule: its first link and the links it chains to, with the scoring it does when all match. */
export interface RuleDef {
  readonly id: number;
  /** The CRS file family: 930 LFI, 931 RFI, 932 RCE, 933 PHP, 934 generic, 941 XSS, 942 SQLi, 943 session fixation, 944 Java, 913 scanners. */
  readonly category: string;
  readonly pl: number;
  readonly severity: string;
  readonly score: number;
  /** The per-category anomaly score the rule adds to (tx.sql_injection_score, ...). */
  readonly scoreVariable: string;
  readonly message: string;
  readonly tags: readonly string[];
  readonly links: readonly RuleLink[];
}

/** The generated rule file. */
export interface CompiledRuleSet {
  readonly format: 1;
  /** Where the rules came from (CRS repository and commit). */
  readonly source: string;
  readonly rules: readonly RuleDef[];
  /** Rules the converter could not turn into data, with the reason. */
  readonly skipped: ReadonlyArray<{ readonly id: number; readonly reason: string }>;
}
