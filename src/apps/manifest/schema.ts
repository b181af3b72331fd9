// The manifest schema: one TypeBox schema gives the structural validation (validate/) and the
// published JSON Schema (docs/app-manifest.schema.json, `accord app schema`). What JSON Schema cannot
// say well (which options fit which attribute type, references between parts, rules) is checked by
// the semantic pass, which reports in the same diagnostic format.
import { type Static, type TSchema, Type } from '@sinclair/typebox';

const oneOf = <const T extends readonly string[]>(values: T, description: string) =>
  Type.Union(
    values.map((v) => Type.Literal(v)),
    { description },
  );

export const ATTRIBUTE_TYPES = ['text', 'integer', 'decimal', 'boolean', 'date', 'datetime', 'enum', 'uuid', 'json', 'user', 'reference'] as const;
export type AttributeTypeName = (typeof ATTRIBUTE_TYPES)[number];
export const CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted'] as const;
/** What a text attribute holds: how the firewall reads it (docs/waf.md) and, for some, what is valid. */
export const TEXT_FORMATS = ['plain', 'markdown', 'code', 'url', 'data-url', 'email'] as const;
export type TextFormat = (typeof TEXT_FORMATS)[number];
export type Classification = (typeof CLASSIFICATIONS)[number];
export const ON_DELETE = ['restrict', 'cascade', 'setNull'] as const;
export const SETTING_TYPES = ['text', 'integer', 'decimal', 'boolean'] as const;
export const INPUT_TYPES = ['text', 'integer', 'decimal', 'boolean', 'date', 'datetime', 'enum', 'uuid', 'json'] as const;

const Scalar = Type.Union([Type.String(), Type.Number(), Type.Boolean()]);
const Description = Type.String({ maxLength: 1000, description: 'Free text for people.' });
const rule = (description: string) => Type.String({ minLength: 1, description });
const Rule = rule('A condition in the Accord CEL profile, e.g. row.owner == auth.user.');
const Names = Type.Array(Type.String(), { uniqueItems: true });

export const AttributeSchema = Type.Object(
  {
    type: oneOf(ATTRIBUTE_TYPES, 'The value type.'),
    description: Type.Optional(Description),
    required: Type.Optional(Type.Boolean({ description: 'A value must be present (NOT NULL).' })),
    default: Type.Optional(Type.Union([Scalar, Type.Null()], { description: 'A literal value used when a create gives none.' })),
    unique: Type.Optional(Type.Boolean({ description: 'No two rows share a value.' })),
    immutable: Type.Optional(Type.Boolean({ description: 'Set on create, never changed by an update.' })),
    min: Type.Optional(Type.Union([Type.Number(), Type.String()], { description: 'integer, decimal: smallest value; date, datetime: earliest (ISO text).' })),
    max: Type.Optional(Type.Union([Type.Number(), Type.String()], { description: 'integer, decimal: largest value; date, datetime: latest (ISO text).' })),
    minLength: Type.Optional(Type.Integer({ minimum: 0, description: 'text: fewest characters.' })),
    maxLength: Type.Optional(Type.Integer({ minimum: 1, description: 'text: most characters.' })),
    pattern: Type.Optional(Type.String({ description: 'text: a regular expression the whole value must match.' })),
    format: Type.Optional(
      oneOf(
        TEXT_FORMATS,
        'text: what it holds (default plain). markdown (rich text: inspected for script injection only), code (never interpreted by the platform: not inspected), url (an http(s) or mailto URL: inspected for inclusion, SSRF and script URLs), data-url (a data: URL: checked as one, not inspected), email (checked as an address, not inspected).',
      ),
    ),
    precision: Type.Optional(Type.Integer({ minimum: 1, maximum: 38, description: 'decimal: total digits.' })),
    scale: Type.Optional(Type.Integer({ minimum: 0, maximum: 38, description: 'decimal: digits after the point.' })),
    values: Type.Optional(Type.Array(Type.String(), { minItems: 1, uniqueItems: true, description: 'enum: the allowed values.' })),
    entity: Type.Optional(Type.String({ description: 'reference: the referenced entity.' })),
    onDelete: Type.Optional(oneOf(ON_DELETE, 'reference: what deleting the referenced row does (default restrict).')),
    classification: Type.Optional(oneOf(CLASSIFICATIONS, 'Data classification (default internal).')),
    encrypted: Type.Optional(Type.Boolean({ description: 'Stored as an encrypted envelope; rules cannot read it.' })),
    searchable: Type.Optional(Type.Boolean({ description: 'encrypted text: keep a blind index for equality search.' })),
  },
  { additionalProperties: false },
);

export const RuleSchema = Type.Object(
  {
    role: Type.String({ description: 'The app role this rule grants.' }),
    where: Type.Optional(rule('read, update, delete: which rows (a condition on row.*).')),
    check: Type.Optional(rule('create, update: what the written row must satisfy (update checks may read old.*).')),
    fields: Type.Optional(Type.Array(Type.String(), { uniqueItems: true, description: 'create, update: the attributes this role may write (default: all).' })),
    preset: Type.Optional(
      Type.Record(Type.String(), Type.String(), { description: 'create, update: attribute → value expression (auth.user, now, a literal) the caller cannot override.' }),
    ),
  },
  { additionalProperties: false },
);

/** A rule list: role names (no condition) or rule objects. */
export const RuleListSchema = Type.Array(Type.Union([Type.String(), RuleSchema]));

export const AccessSchema = Type.Object(
  {
    read: Type.Optional(RuleListSchema),
    create: Type.Optional(RuleListSchema),
    update: Type.Optional(RuleListSchema),
    delete: Type.Optional(RuleListSchema),
    fields: Type.Optional(
      Type.Record(Type.String(), Type.Object({ read: RuleListSchema }, { additionalProperties: false }), {
        description: 'attribute → who may read it (replaces the entity read rules for that attribute).',
      }),
    ),
  },
  { additionalProperties: false },
);

export const IndexSchema = Type.Union([
  Names,
  Type.Object({ attributes: Names, unique: Type.Optional(Type.Boolean()), name: Type.Optional(Type.String()) }, { additionalProperties: false }),
]);

export const EntitySchema = Type.Object(
  {
    description: Type.Optional(Description),
    attributes: Type.Record(Type.String(), AttributeSchema),
    indexes: Type.Optional(Type.Array(IndexSchema)),
    access: Type.Optional(AccessSchema),
    retention: Type.Optional(
      Type.Object(
        {
          days: Type.Integer({ minimum: 1, maximum: 36500, description: 'Rows older than this many days are purged.' }),
          from: Type.Optional(Type.String({ description: 'A date or datetime attribute the age counts from (default: creation time).' })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const ActionSchema = Type.Object(
  {
    description: Type.Optional(Description),
    roles: Names,
    input: Type.Optional(
      Type.Record(
        Type.String(),
        Type.Object(
          {
            type: oneOf(INPUT_TYPES, 'The input type.'),
            required: Type.Optional(Type.Boolean()),
            description: Type.Optional(Description),
            values: Type.Optional(Type.Array(Type.String(), { minItems: 1, uniqueItems: true })),
            maxLength: Type.Optional(Type.Integer({ minimum: 1 })),
          },
          { additionalProperties: false },
        ),
      ),
    ),
    source: Type.String({ description: 'Path of the TypeScript source, relative to the manifest.' }),
  },
  { additionalProperties: false },
);

export const TimerSchema = Type.Object(
  {
    description: Type.Optional(Description),
    action: Type.String({ description: 'The action to run.' }),
    every: Type.Optional(Type.String({ description: 'An interval such as 15m, 1h, 24h (at least 1m).' })),
    schedule: Type.Optional(Type.String({ description: 'A five-field cron expression in UTC, e.g. "0 3 * * *".' })),
  },
  { additionalProperties: false },
);

export const SettingSchema = Type.Object(
  {
    type: oneOf(SETTING_TYPES, 'The value type.'),
    description: Type.Optional(Description),
    default: Type.Optional(Scalar),
    secret: Type.Optional(Type.Boolean({ description: 'Kept in the stage secrets store; no default, never in the manifest.' })),
    stages: Type.Optional(Type.Record(Type.String(), Scalar, { description: 'stage name → value (overrides the default there).' })),
  },
  { additionalProperties: false },
);

/** The hard cap of any role's list ceiling: a page is built, decrypted and audited in one request. */
export const LIST_CEILING_MAX = 1000;

export const RoleSchema = Type.Object(
  {
    description: Type.Optional(Description),
    listLimit: Type.Optional(
      Type.Integer({ minimum: 1, maximum: LIST_CEILING_MAX, description: `The largest list page (limit=) this role may ask for (default 100, at most ${LIST_CEILING_MAX}); a caller with several roles gets the largest.` }),
    ),
    exactCount: Type.Optional(Type.Boolean({ description: 'Whether this role may ask lists for count=exact (default false; count=estimated is open to every reader).' })),
  },
  { additionalProperties: false },
);

export const ManifestSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String({ description: 'The JSON Schema URL, for editors.' })),
    app: Type.String({ description: 'The app name: 2-40 lowercase letters, digits and hyphens.' }),
    version: Type.String({ description: 'Semantic version, e.g. 1.2.0.' }),
    description: Type.Optional(Description),
    roles: Type.Record(Type.String(), RoleSchema),
    conditions: Type.Optional(Type.Record(Type.String(), Rule, { description: 'Named conditions, usable by name in any rule.' })),
    entities: Type.Record(Type.String(), EntitySchema),
    actions: Type.Optional(Type.Record(Type.String(), ActionSchema)),
    timers: Type.Optional(Type.Record(Type.String(), TimerSchema)),
    settings: Type.Optional(Type.Record(Type.String(), SettingSchema)),
  },
  { additionalProperties: false, $id: 'https://accord.dev/schemas/app-manifest.schema.json', title: 'Accord app manifest' },
);

export type Manifest = Static<typeof ManifestSchema>;
export type ManifestEntity = Static<typeof EntitySchema>;
export type ManifestAttribute = Static<typeof AttributeSchema>;
export type ManifestRule = Static<typeof RuleSchema>;
export type ManifestRole = Static<typeof RoleSchema>;
export type ManifestRuleList = Static<typeof RuleListSchema>;

/** The published JSON Schema (draft 2020-12) of the manifest: the TypeBox schema without its symbols. */
export function manifestJsonSchema(): Record<string, unknown> {
  const plain = JSON.parse(JSON.stringify(ManifestSchema as TSchema)) as Record<string, unknown>;
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', ...plain };
}
