import type { Expr } from './ast.ts';

// Binding strength, loosest first, as in the CEL grammar.
const OR = 1;
const AND = 2;
const RELATION = 3;
const ADD = 4;
const UNARY = 5;
const PRIMARY = 6;

/** Canonical duration text: the largest unit that divides it exactly. */
export function durationText(millis: number): string {
  if (millis !== 0 && millis % 3_600_000 === 0) return `${millis / 3_600_000}h`;
  if (millis !== 0 && millis % 60_000 === 0) return `${millis / 60_000}m`;
  if (millis % 1000 === 0) return `${millis / 1000}s`;
  return `${millis}ms`;
}

function wrap(text: string, prec: number, min: number): string {
  return prec < min ? `(${text})` : text;
}

function print(e: Expr, min: number): string {
  switch (e.kind) {
    case 'null':
      return 'null';
    case 'bool':
      return String(e.value);
    case 'int':
    case 'decimal':
      return wrap(e.value, e.value.startsWith('-') ? UNARY : PRIMARY, min);
    case 'string':
      // JSON's escapes (\" \\ \n \t \uXXXX …) are all valid CEL escapes.
      return JSON.stringify(e.value);
    case 'timestamp':
      return `timestamp(${JSON.stringify(e.value)})`;
    case 'date':
      return `date(${JSON.stringify(e.value)})`;
    case 'duration':
      return `duration(${JSON.stringify(durationText(e.millis))})`;
    case 'list':
      return `[${e.items.map((i) => print(i, OR)).join(', ')}]`;
    case 'attr':
      return `${e.scope}.${e.name}`;
    case 'auth':
      return `auth.${e.name}`;
    case 'now':
      return 'now';
    case 'condition':
      return e.name;
    case 'not':
      return wrap(`!${print(e.arg, UNARY)}`, UNARY, min);
    case 'and':
      return wrap(e.args.map((a) => print(a, AND + 1)).join(' && '), AND, min);
    case 'or':
      return wrap(e.args.map((a) => print(a, OR + 1)).join(' || '), OR, min);
    case 'compare':
      return wrap(`${print(e.left, ADD)} ${e.op} ${print(e.right, ADD)}`, RELATION, min);
    case 'in':
      return wrap(`${print(e.item, ADD)} in ${print(e.list, ADD)}`, RELATION, min);
    case 'arith':
      return wrap(`${print(e.left, ADD)} ${e.op} ${print(e.right, UNARY)}`, ADD, min);
    case 'call':
      return `${print(e.target, PRIMARY)}.${e.fn}(${print(e.arg, OR)})`;
    case 'size':
      return `size(${print(e.arg, OR)})`;
  }
}

/** Prints a rule back as CEL text, with the fewest parentheses that keep its meaning. */
export function printRule(e: Expr): string {
  return print(e, OR);
}
