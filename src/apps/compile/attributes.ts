import type { RuleAttribute, RuleAttributes, Scalar } from '../rules/index.ts';
import type { AttributeIR, AttributeType, EntityIR } from './ir.ts';

const SCALAR: Record<AttributeType['kind'], Scalar> = {
  text: 'string',
  integer: 'int',
  decimal: 'decimal',
  boolean: 'bool',
  date: 'date',
  datetime: 'timestamp',
  enum: 'string',
  uuid: 'uuid',
  json: 'json',
  user: 'uuid',
  reference: 'uuid',
};

/** How a rule sees one attribute. */
export function ruleAttribute(a: Pick<AttributeIR, 'type' | 'required' | 'encrypted'>): RuleAttribute {
  return {
    type: SCALAR[a.type.kind],
    nullable: !a.required,
    ...(a.type.kind === 'enum' ? { enumValues: a.type.values } : {}),
    ...(a.encrypted ? { encrypted: true } : {}),
  };
}

/** How rules see an entity's attributes: its own plus `id` (a uuid, never null). */
export function ruleAttributesOf(attributes: readonly Pick<AttributeIR, 'name' | 'type' | 'required' | 'encrypted'>[]): RuleAttributes {
  const m = new Map<string, RuleAttribute>([['id', { type: 'uuid', nullable: false }]]);
  for (const a of attributes) m.set(a.name, ruleAttribute(a));
  return m;
}

/** The rule attributes of an entity of the IR. */
export const entityRuleAttributes = (e: EntityIR): RuleAttributes => ruleAttributesOf(e.attributes);
