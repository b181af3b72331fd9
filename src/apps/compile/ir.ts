// The app's intermediate representation: what a revision *is*, independent of how the manifest was
// spelled (YAML or JSON, key order, shorthand, named conditions) and of the SQL made from it. Every
// node is readonly and has a `kind`; lists are sorted by name where order carries no meaning, so a
// diff between two revisions can match nodes by (kind, name). Build nodes with the factories: they
// freeze what they return.
import type { Expr } from '../rules/index.ts';

export type Classification = 'public' | 'internal' | 'confidential' | 'restricted';
export type OnDelete = 'restrict' | 'cascade' | 'setNull';

export type AttributeType =
  | { readonly kind: 'text'; readonly format?: 'markdown' | 'code' | 'url' | 'data-url' | 'email' }
  | { readonly kind: 'integer' }
  | { readonly kind: 'decimal'; readonly precision: number; readonly scale: number }
  | { readonly kind: 'boolean' }
  | { readonly kind: 'date' }
  | { readonly kind: 'datetime' }
  | { readonly kind: 'enum'; readonly values: readonly string[] }
  | { readonly kind: 'uuid' }
  | { readonly kind: 'json' }
  | { readonly kind: 'user' }
  | { readonly kind: 'reference'; readonly entity: string; readonly onDelete: OnDelete };

/** A literal in the IR: integers and decimals as strings (exact), dates and times as ISO text. */
export type IrValue = string | boolean;

export interface AttributeIR {
  readonly kind: 'attribute';
  readonly name: string;
  /** The physical column (today the name; a later rename keeps the column). */
  readonly column: string;
  readonly type: AttributeType;
  readonly description: string | null;
  readonly required: boolean;
  readonly unique: boolean;
  readonly immutable: boolean;
  readonly default: IrValue | null;
  readonly min: string | null;
  readonly max: string | null;
  readonly minLength: number | null;
  readonly maxLength: number | null;
  readonly pattern: string | null;
  readonly classification: Classification;
  readonly encrypted: boolean;
  readonly searchable: boolean;
}

export interface IndexIR {
  readonly kind: 'index';
  readonly name: string;
  readonly attributes: readonly string[];
  readonly unique: boolean;
}

/** A rule as written (for people and diffs) and as meant (the canonical AST, conditions expanded). */
export interface ConditionIR {
  readonly kind: 'condition';
  readonly source: string;
  readonly ast: Expr;
}

export interface PresetIR {
  readonly kind: 'preset';
  readonly attribute: string;
  readonly value: ConditionIR;
}

export interface AccessRuleIR {
  readonly kind: 'access-rule';
  readonly role: string;
  readonly where: ConditionIR | null;
  readonly check: ConditionIR | null;
  /** Attributes the role may write; null: all that are not immutable (on update). */
  readonly fields: readonly string[] | null;
  readonly presets: readonly PresetIR[];
}

export interface FieldReadIR {
  readonly kind: 'field-read';
  readonly attribute: string;
  readonly rules: readonly AccessRuleIR[];
}

export interface AccessIR {
  readonly kind: 'access';
  readonly read: readonly AccessRuleIR[];
  readonly create: readonly AccessRuleIR[];
  readonly update: readonly AccessRuleIR[];
  readonly delete: readonly AccessRuleIR[];
  readonly fields: readonly FieldReadIR[];
}

export interface EntityIR {
  readonly kind: 'entity';
  readonly name: string;
  readonly table: string;
  readonly description: string | null;
  readonly attributes: readonly AttributeIR[];
  readonly indexes: readonly IndexIR[];
  readonly access: AccessIR;
  readonly retention: { readonly days: number; readonly from: string | null } | null;
}

export interface RoleIR {
  readonly kind: 'role';
  readonly name: string;
  readonly description: string | null;
  // The list keys are present only when the manifest declares them, so the IR (and the revision
  // hash) of an app that uses neither stays what it was before they existed.
  /** The largest list `limit` the role may ask for; absent: the default ceiling (100). */
  readonly listLimit?: number;
  /** Present (true) when the role may ask lists for `count=exact`. */
  readonly exactCount?: true;
}

export interface InputIR {
  readonly kind: 'input';
  readonly name: string;
  readonly type: string;
  readonly required: boolean;
  readonly values: readonly string[] | null;
  readonly maxLength: number | null;
}

export interface ActionIR {
  readonly kind: 'action';
  readonly name: string;
  readonly description: string | null;
  readonly roles: readonly string[];
  readonly input: readonly InputIR[];
  /** Path relative to the manifest; the content is part of the revision (see revision.ts). */
  readonly source: string;
}

export interface TimerIR {
  readonly kind: 'timer';
  readonly name: string;
  readonly action: string;
  readonly everyMillis: number | null;
  readonly schedule: string | null;
}

export interface SettingIR {
  readonly kind: 'setting';
  readonly name: string;
  readonly type: 'text' | 'integer' | 'decimal' | 'boolean';
  readonly description: string | null;
  readonly secret: boolean;
  readonly default: IrValue | null;
  /** Stage name → value, sorted by stage. */
  readonly stages: readonly { readonly stage: string; readonly value: IrValue }[];
}

export interface AppIR {
  readonly kind: 'app';
  /** The IR's own format; a change of meaning bumps it (and so every hash). */
  readonly format: 1;
  readonly name: string;
  readonly version: string;
  readonly description: string | null;
  readonly roles: readonly RoleIR[];
  readonly entities: readonly EntityIR[];
  readonly actions: readonly ActionIR[];
  readonly timers: readonly TimerIR[];
  readonly settings: readonly SettingIR[];
}

export type IrNode = AppIR | EntityIR | AttributeIR | IndexIR | ConditionIR | PresetIR | AccessRuleIR | FieldReadIR | AccessIR | RoleIR | ActionIR | InputIR | TimerIR | SettingIR;

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

type Fields<N extends IrNode> = Omit<N, 'kind'>;
const make =
  <N extends IrNode>(kind: N['kind']) =>
  (fields: Fields<N>): N =>
    deepFreeze({ kind, ...fields } as N);

export const byName = <T extends { readonly name: string }>(xs: readonly T[]): T[] => [...xs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

export const ir = {
  app: make<AppIR>('app'),
  entity: make<EntityIR>('entity'),
  attribute: make<AttributeIR>('attribute'),
  index: make<IndexIR>('index'),
  condition: make<ConditionIR>('condition'),
  preset: make<PresetIR>('preset'),
  accessRule: make<AccessRuleIR>('access-rule'),
  fieldRead: make<FieldReadIR>('field-read'),
  access: make<AccessIR>('access'),
  role: make<RoleIR>('role'),
  action: make<ActionIR>('action'),
  input: make<InputIR>('input'),
  timer: make<TimerIR>('timer'),
  setting: make<SettingIR>('setting'),
};

/** System columns every entity table has besides its attributes. */
export const SYSTEM_COLUMNS = Object.freeze({ id: 'id', version: '_version', createdAt: '_created_at', updatedAt: '_updated_at' });

/** The blind-index column of a searchable attribute. Attribute names have no `_`, so it cannot clash. */
export const blindIndexColumn = (a: AttributeIR): string => `${a.column}_bidx`;

/** Finds an entity by name. */
export const entityOf = (app: AppIR, name: string): EntityIR | undefined => app.entities.find((e) => e.name === name);

/**
 * An IR read back from storage (the catalog keeps it as JSON). It was made by the compiler, so it
 * only needs its format checked and to be frozen again; a format this code does not know is refused
 * rather than guessed at.
 */
export function irFromJson(json: unknown): AppIR {
  const v = json as { kind?: unknown; format?: unknown } | null;
  if (v === null || typeof v !== 'object' || v.kind !== 'app' || v.format !== 1) throw new TypeError('not an app IR of format 1');
  return deepFreeze(json as AppIR);
}
