import type { Expr } from './ast.ts';

/** The value types of the profile. Enums are strings with a known value set; ids are uuids. */
export type Scalar = 'bool' | 'int' | 'decimal' | 'string' | 'uuid' | 'timestamp' | 'date' | 'duration' | 'json';

export interface RuleType {
  readonly kind: Scalar | 'null' | 'list';
  /** Whether the value can be null (an optional attribute, or something computed from one). */
  readonly nullable: boolean;
  /** Enum attributes: the allowed values. */
  readonly enumValues?: readonly string[];
  /** Lists: the item type. */
  readonly item?: RuleType;
}

/** What a rule needs to know about an attribute. */
export interface RuleAttribute {
  readonly type: Scalar;
  readonly nullable: boolean;
  readonly enumValues?: readonly string[];
  /** Encrypted attributes hold ciphertext in the database: rules cannot read them. */
  readonly encrypted?: boolean;
}

export type RuleAttributes = ReadonlyMap<string, RuleAttribute>;

export const t = (kind: RuleType['kind'], nullable = false, extra: Partial<RuleType> = {}): RuleType => ({ kind, nullable, ...extra });

/** The type of a node of a checked AST (no condition references left). */
export function typeOf(e: Expr, attrs: RuleAttributes): RuleType {
  switch (e.kind) {
    case 'null':
      return t('null', true);
    case 'bool':
    case 'not':
    case 'and':
    case 'or':
    case 'compare':
    case 'in':
    case 'call':
      return t('bool');
    case 'int':
    case 'decimal':
    case 'string':
    case 'timestamp':
    case 'date':
    case 'duration':
      return t(e.kind);
    case 'list': {
      const kinds = new Set(e.items.map((i) => i.kind));
      const item = kinds.has('decimal') ? 'decimal' : ((e.items[0]?.kind ?? 'string') as Scalar);
      return t('list', false, { item: t(item) });
    }
    case 'attr': {
      const a = attrs.get(e.name);
      if (!a) throw new TypeError(`unknown attribute ${e.name}`);
      return t(a.type, a.nullable, a.enumValues ? { enumValues: a.enumValues } : {});
    }
    case 'auth':
      return e.name === 'user' ? t('uuid') : t('list', false, { item: t('string') });
    case 'now':
      return t('timestamp');
    case 'size':
      return t('int', typeOf(e.arg, attrs).nullable);
    case 'arith':
      return t('timestamp', typeOf(e.left, attrs).nullable);
    case 'condition':
      throw new TypeError(`unexpanded condition ${e.name}`);
  }
}

export const isNumeric = (k: RuleType['kind']): boolean => k === 'int' || k === 'decimal';
