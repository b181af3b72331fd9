// The rule language: a documented CEL profile (docs/app-manifest.md, "Rules").
export * from './ast.ts';
export { type CheckResult, checkRule, type RuleContext, type RulePlace } from './check.ts';
export { compareNumbers, type EvalInput, evaluateRule, evaluateValue, normalize } from './evaluate.ts';
export { RULE_LIMITS } from './limits.ts';
export { CONDITION_NAME, isCalendarDate, type ParseResult, parseDuration, parseRule, parseTimestamp } from './parse.ts';
export { durationText, printRule } from './print.ts';
export type { RuleProblem, RuleProblemCode, Spans } from './problems.ts';
export { compileRule, compileValue, type ParameterBindingOptions, parameterBindings, type SqlBindings, settingBindings } from './sql.ts';
export { isNumeric, type RuleAttribute, type RuleAttributes, type RuleType, type Scalar, typeOf } from './types.ts';
