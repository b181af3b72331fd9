// The semantic pass: everything the schema cannot say, reported all at once, each finding with its
// JSON Pointer and position. When nothing is an error it also yields the IR (the validator is the
// only way to an IR, so an IR is always valid).
import { isAbsolute, normalize as normalizePath } from 'node:path';
import { ruleAttributesOf } from '../compile/attributes.ts';
import { type AccessRuleIR, type AppIR, type AttributeIR, type AttributeType, byName, type ConditionIR, type EntityIR, type IndexIR, type IrValue, ir, type PresetIR, SYSTEM_COLUMNS } from '../compile/ir.ts';
import { ATTRIBUTE_TYPES, ManifestSchema } from '../manifest/schema.ts';
import { type ManifestSource, pointerOf, pointerSegments } from '../manifest/source.ts';
import { attributesOf, CONDITION_NAME, checkRule, type Expr, isCalendarDate, parseDuration, parseRule, parseTimestamp, type RuleAttributes, type RulePlace, type RuleProblem } from '../rules/index.ts';
import { type Diagnostic, type DiagnosticCode, sortDiagnostics } from './diagnostics.ts';
import { MANIFEST_LIMITS } from './limits.ts';
import { structuralProblems } from './structure.ts';

export interface ValidateOptions {
  /** Reads an action source by its path relative to the manifest; undefined when it cannot. */
  readonly readFile?: (path: string) => string | undefined;
}

export interface ValidationResult {
  readonly ok: boolean;
  readonly diagnostics: readonly Diagnostic[];
  readonly errors: readonly Diagnostic[];
  readonly warnings: readonly Diagnostic[];
  /** Present when there is no error. */
  readonly ir?: AppIR;
  /** Action path → source text, for the revision hash. */
  readonly actionSources: ReadonlyMap<string, string>;
}

export const APP_NAME = /^[a-z][a-z0-9-]{0,38}[a-z0-9]$/;
export const ROLE_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,62}$/;
export const ENTITY_NAME = /^[A-Z][A-Za-z0-9]{0,62}$/;
export const ATTRIBUTE_NAME = /^[a-z][A-Za-z0-9]{0,58}$/;
export const MEMBER_NAME = /^[a-z][A-Za-z0-9]{0,62}$/;
export const INDEX_NAME = /^[a-z][a-z0-9_]{0,62}$/;
export const STAGE_NAME = /^[a-z][a-z0-9-]{0,30}[a-z0-9]$/;
const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const INTEGER = /^-?\d+$/;
const DECIMAL = /^-?\d+(\.\d+)?$/;
const CRON_FIELD = /^(\*|\d+(-\d+)?)(\/\d+)?(,(\*|\d+(-\d+)?)(\/\d+)?)*$/;
const RESERVED_ATTRIBUTES = new Set(['id']);
const ENCRYPTABLE = new Set<string>(['text', 'json', 'integer', 'decimal', 'date', 'datetime']);
const OPERATIONS = ['read', 'create', 'update', 'delete'] as const;
type Operation = (typeof OPERATIONS)[number];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const int64 = (s: string) => BigInt(s) >= -(2n ** 63n) && BigInt(s) < 2n ** 63n;

/** Fits a decimal text into numeric(precision, scale)? */
function fitsDecimal(text: string, precision: number, scale: number): boolean {
  const m = /^-?(\d+)(?:\.(\d+))?$/.exec(text);
  if (!m) return false;
  const intDigits = (m[1] ?? '').replace(/^0+/, '').length;
  const frac = (m[2] ?? '').replace(/0+$/, '');
  return frac.length <= scale && intDigits <= precision - scale;
}

class Validator {
  readonly #diags: Diagnostic[] = [];
  readonly #seen = new Set<string>();
  readonly actionSources = new Map<string, string>();
  readonly #conditions = new Map<string, string>();

  constructor(
    readonly src: ManifestSource,
    readonly opts: ValidateOptions,
  ) {}

  get diagnostics(): Diagnostic[] {
    return sortDiagnostics(this.#diags);
  }
  get hasErrors(): boolean {
    return this.#diags.some((d) => d.severity === 'error');
  }

  add(severity: Diagnostic['severity'], code: DiagnosticCode, pointer: string, message: string, hint: string, place: { key?: boolean; offset?: number; in?: string } = {}): void {
    const at = place.offset !== undefined ? this.src.locateInString(place.in ?? pointer, place.offset) : this.src.locate(pointer, { key: place.key ?? false });
    const id = `${severity}|${code}|${pointer}|${message}`;
    if (this.#seen.has(id)) return;
    this.#seen.add(id);
    this.#diags.push({ severity, code, pointer, file: this.src.file, line: at.line, column: at.column, message, hint });
  }
  err(code: DiagnosticCode, pointer: string, message: string, hint: string, place: { key?: boolean; offset?: number; in?: string } = {}): void {
    this.add('error', code, pointer, message, hint, place);
  }
  warn(code: DiagnosticCode, pointer: string, message: string, hint: string): void {
    this.add('warning', code, pointer, message, hint);
  }

  name(pattern: RegExp, pointer: string, value: string, what: string, rule: string): boolean {
    if (pattern.test(value)) return true;
    this.err('APP_NAME_INVALID', pointer, `${what} name ${JSON.stringify(value)} is not valid`, rule, { key: true });
    return false;
  }

  limit(pointer: string, count: number, max: number, what: string): void {
    if (count > max) this.err('APP_LIMIT_EXCEEDED', pointer, `${count} ${what}, more than the limit of ${max}`, 'split the app or simplify it (docs/app-manifest.md, Limits)');
  }

  /** Keys whose names differ only in case become the same name for people and some tools. */
  caseClash(pointer: string, names: readonly string[], what: string): void {
    const seen = new Map<string, string>();
    for (const n of names) {
      const k = n.toLowerCase();
      const first = seen.get(k);
      if (first !== undefined) this.err('APP_DUPLICATE_NAME', pointerOf(...pointerSegments(pointer), n), `${what} ${n} differs from ${first} only in case`, 'rename one of them');
      else seen.set(k, n);
    }
  }

  ruleProblems(problems: readonly RuleProblem[], pointer: string): void {
    for (const p of problems) {
      const inCondition = p.condition !== undefined;
      const at = inCondition ? pointerOf('conditions', p.condition as string) : pointer;
      const message = inCondition && at !== pointer ? `${p.message} (in condition ${p.condition}, used at ${pointer})` : p.message;
      this.err(p.code, at, message, p.hint, { offset: p.start });
    }
  }

  /** Type-checks a rule; returns its IR form, or null after reporting. */
  rule(text: unknown, pointer: string, attrs: RuleAttributes, place: RulePlace): ConditionIR | null {
    if (typeof text !== 'string') return null;
    const r = checkRule(text, { attributes: attrs, place, conditions: this.#conditions });
    if (!r.ok) {
      this.ruleProblems(r.problems, pointer);
      return null;
    }
    return ir.condition({ source: text, ast: r.expr });
  }

  run(): AppIR | undefined {
    const root = this.src.value;
    for (const p of structuralProblems(ManifestSchema, root)) this.err(p.code, p.pointer, p.message, p.hint, { key: p.key });
    if (!isObj(root)) {
      if (!this.hasErrors) this.err('APP_VALUE_INVALID', '', 'the manifest must be a mapping', 'start with app:, version:, roles: and entities:');
      return undefined;
    }
    const app = str(root.app);
    if (app !== undefined && !APP_NAME.test(app)) this.err('APP_NAME_INVALID', '/app', `app name ${JSON.stringify(app)} is not valid`, 'use 2-40 lowercase letters, digits and hyphens, starting with a letter, not ending with a hyphen');
    const version = str(root.version);
    if (version !== undefined && !SEMVER.test(version)) this.err('APP_VERSION_INVALID', '/version', `version ${JSON.stringify(version)} is not a semantic version`, 'write MAJOR.MINOR.PATCH, e.g. 1.0.0 (quote it in YAML if it looks like a number)');

    // Roles
    const roles = obj(root.roles);
    const roleNames = Object.keys(roles);
    this.limit('/roles', roleNames.length, MANIFEST_LIMITS.roles, 'roles');
    for (const r of roleNames) this.name(ROLE_NAME, pointerOf('roles', r), r, 'role', 'a role name is 1-63 letters, digits, _ or -, starting with a letter');
    this.caseClash('/roles', roleNames, 'role');
    if (isObj(root.roles) && roleNames.length === 0) this.err('APP_VALUE_INVALID', '/roles', 'an app needs at least one role', 'declare the roles under roles:');
    const usedRoles = new Set<string>();
    const role = (name: unknown, pointer: string): string | undefined => {
      if (typeof name !== 'string') return undefined;
      usedRoles.add(name);
      if (!(name in roles)) {
        this.err('APP_UNKNOWN_ROLE', pointer, `no role ${name}`, roleNames.length ? `use one of: ${roleNames.join(', ')}, or declare it under roles:` : 'declare it under roles:');
        return undefined;
      }
      return name;
    };

    // Named conditions: syntax is checked here; types where they are used.
    const conditions = obj(root.conditions);
    this.limit('/conditions', Object.keys(conditions).length, MANIFEST_LIMITS.conditions, 'conditions');
    for (const [n, text] of Object.entries(conditions)) {
      const p = pointerOf('conditions', n);
      const reserved = ['row', 'old', 'auth', 'now', 'null', 'true', 'false', 'in'].includes(n);
      if (!this.name(CONDITION_NAME, p, n, 'condition', 'a condition name is camelCase letters and digits, starting with a lowercase letter')) continue;
      if (reserved) {
        this.err('APP_RESERVED_NAME', p, `${n} is a variable or keyword of the rule language`, 'choose another name', { key: true });
        continue;
      }
      if (typeof text !== 'string') continue;
      const parsed = parseRule(text);
      if (!parsed.ok) this.ruleProblems(parsed.problems, p);
      this.#conditions.set(n, text);
    }

    // Entities: attributes first (every rule needs all entities' attributes known).
    const entities = obj(root.entities);
    const entityNames = Object.keys(entities);
    this.limit('/entities', entityNames.length, MANIFEST_LIMITS.entities, 'entities');
    if (isObj(root.entities) && entityNames.length === 0) this.err('APP_VALUE_INVALID', '/entities', 'an app needs at least one entity', 'declare an entity under entities:');
    this.caseClash('/entities', entityNames, 'entity');
    const built: EntityIR[] = [];
    const attributeSets = new Map<string, AttributeIR[]>();
    for (const en of entityNames) {
      const p = pointerOf('entities', en);
      this.name(ENTITY_NAME, p, en, 'entity', 'an entity name is PascalCase letters and digits, starting with an uppercase letter');
      attributeSets.set(en, this.attributes(en, obj(obj(entities[en]).attributes), entityNames));
    }
    for (const en of entityNames) {
      const e = this.entity(en, obj(entities[en]), attributeSets.get(en) ?? [], role);
      if (e) built.push(e);
    }

    // Actions, timers, settings
    const actions = obj(root.actions);
    this.limit('/actions', Object.keys(actions).length, MANIFEST_LIMITS.actions, 'actions');
    const builtActions = Object.entries(actions).flatMap(([n, a]) => this.action(n, obj(a), role));
    const timers = obj(root.timers);
    this.limit('/timers', Object.keys(timers).length, MANIFEST_LIMITS.timers, 'timers');
    const builtTimers = Object.entries(timers).flatMap(([n, t]) => {
      const p = pointerOf('timers', n);
      this.name(MEMBER_NAME, p, n, 'timer', 'a timer name is camelCase letters and digits');
      const tm = obj(t);
      const action = str(tm.action);
      if (action !== undefined && !(action in actions)) this.err('APP_UNKNOWN_ACTION', `${p}/action`, `no action ${action}`, Object.keys(actions).length ? `use one of: ${Object.keys(actions).join(', ')}` : 'declare it under actions:');
      const every = str(tm.every);
      const schedule = str(tm.schedule);
      if ((every === undefined) === (schedule === undefined)) this.err('APP_TIMER_INVALID', p, 'a timer needs exactly one of every and schedule', 'write every: 1h, or schedule: "0 3 * * *"');
      let everyMillis: number | null = null;
      if (every !== undefined) {
        const ms = parseDuration(every);
        if (ms === undefined || ms < 60_000) this.err('APP_TIMER_INVALID', `${p}/every`, `${JSON.stringify(every)} is not an interval of at least one minute`, 'write e.g. 15m, 1h, 24h');
        else everyMillis = ms;
      }
      if (schedule !== undefined) {
        const fields = schedule.trim().split(/\s+/);
        if (fields.length !== 5 || !fields.every((f) => CRON_FIELD.test(f))) this.err('APP_TIMER_INVALID', `${p}/schedule`, `${JSON.stringify(schedule)} is not a five-field cron expression`, 'write minute hour day-of-month month day-of-week, e.g. "0 3 * * *"');
      }
      return action ? [ir.timer({ name: n, action, everyMillis, schedule: schedule ?? null })] : [];
    });
    const settings = obj(root.settings);
    this.limit('/settings', Object.keys(settings).length, MANIFEST_LIMITS.settings, 'settings');
    const builtSettings = Object.entries(settings).flatMap(([n, s]) => this.setting(n, obj(s)));

    // Warnings about the whole app
    for (const r of roleNames) if (!usedRoles.has(r)) this.warn('APP_ROLE_UNUSED', pointerOf('roles', r), `role ${r} is granted nothing`, 'use it in an access rule or action, or remove it');

    if (this.hasErrors || app === undefined || version === undefined) return undefined;
    return ir.app({
      format: 1,
      name: app,
      version,
      description: str(root.description) ?? null,
      roles: byName(
        roleNames.map((n) => {
          const r = obj(roles[n]);
          return ir.role({
            name: n,
            description: str(r.description) ?? null,
            ...(typeof r.listLimit === 'number' ? { listLimit: r.listLimit } : {}),
            ...(r.exactCount === true ? { exactCount: true as const } : {}),
          });
        }),
      ),
      entities: byName(built),
      actions: byName(builtActions),
      timers: byName(builtTimers),
      settings: byName(builtSettings),
    });
  }

  attributes(entity: string, attrs: Obj, entityNames: readonly string[]): AttributeIR[] {
    const base = pointerOf('entities', entity, 'attributes');
    const names = Object.keys(attrs);
    this.limit(base, names.length, MANIFEST_LIMITS.attributesPerEntity, 'attributes');
    if (names.length === 0) this.err('APP_VALUE_INVALID', base, `entity ${entity} has no attributes`, 'declare at least one attribute');
    this.caseClash(base, names, 'attribute');
    const out: AttributeIR[] = [];
    for (const n of names) {
      const p = pointerOf('entities', entity, 'attributes', n);
      if (!this.name(ATTRIBUTE_NAME, p, n, 'attribute', 'an attribute name is camelCase letters and digits (at most 59), starting with a lowercase letter')) continue;
      if (RESERVED_ATTRIBUTES.has(n)) {
        this.err('APP_RESERVED_NAME', p, `${n} is a system attribute every entity has`, 'choose another name; rules can read row.id already', { key: true });
        continue;
      }
      const a = this.attribute(obj(attrs[n]), p, n, entityNames);
      if (a) out.push(a);
    }
    return out;
  }

  attribute(a: Obj, p: string, name: string, entityNames: readonly string[]): AttributeIR | undefined {
    const type = str(a.type);
    if (type === undefined || !(ATTRIBUTE_TYPES as readonly string[]).includes(type)) return undefined;
    const not = (key: string, only: string) => {
      if (a[key] !== undefined) this.err('APP_ATTRIBUTE_OPTION_INVALID', `${p}/${key}`, `${key} does not apply to a ${type} attribute`, `remove it (${key} is for ${only})`, { key: true });
    };
    const onlyFor: [string, string, boolean][] = [
      ['precision', 'decimal', type === 'decimal'],
      ['scale', 'decimal', type === 'decimal'],
      ['values', 'enum', type === 'enum'],
      ['entity', 'reference', type === 'reference'],
      ['onDelete', 'reference', type === 'reference'],
      ['minLength', 'text', type === 'text'],
      ['maxLength', 'text', type === 'text'],
      ['pattern', 'text', type === 'text'],
      ['format', 'text', type === 'text'],
      ['min', 'integer, decimal, date, datetime', ['integer', 'decimal', 'date', 'datetime'].includes(type)],
      ['max', 'integer, decimal, date, datetime', ['integer', 'decimal', 'date', 'datetime'].includes(type)],
    ];
    for (const [key, only, applies] of onlyFor) if (!applies) not(key, only);

    let t: AttributeType | undefined;
    switch (type) {
      case 'decimal': {
        const precision = a.precision;
        const scale = a.scale;
        if (typeof precision !== 'number' || typeof scale !== 'number') {
          this.err('APP_ATTRIBUTE_OPTION_INVALID', p, 'a decimal attribute needs precision and scale', 'add e.g. precision: 12, scale: 2');
        } else if (scale > precision) {
          this.err('APP_ATTRIBUTE_OPTION_INVALID', `${p}/scale`, `scale ${scale} is larger than precision ${precision}`, 'make scale at most the precision');
        } else t = { kind: 'decimal', precision, scale };
        break;
      }
      case 'enum': {
        const values = Array.isArray(a.values) ? a.values.filter((v): v is string => typeof v === 'string') : undefined;
        if (!values) {
          if (a.values === undefined) this.err('APP_ATTRIBUTE_OPTION_INVALID', p, 'an enum attribute needs values', 'add values: [a, b, c]');
          break;
        }
        this.limit(`${p}/values`, values.length, MANIFEST_LIMITS.enumValues, 'enum values');
        values.forEach((v, i) => {
          if (v.length === 0 || v.length > MANIFEST_LIMITS.enumValueLength || v.includes('\u0000')) this.err('APP_ATTRIBUTE_OPTION_INVALID', `${p}/values/${i}`, `enum value ${JSON.stringify(v)} is empty, too long or holds NUL`, `use 1-${MANIFEST_LIMITS.enumValueLength} characters`);
        });
        t = { kind: 'enum', values };
        break;
      }
      case 'reference': {
        const entity = str(a.entity);
        if (entity === undefined) {
          this.err('APP_ATTRIBUTE_OPTION_INVALID', p, 'a reference attribute needs entity', 'add entity: <EntityName>');
          break;
        }
        if (!entityNames.includes(entity)) {
          this.err('APP_UNKNOWN_ENTITY', `${p}/entity`, `no entity ${entity}`, `use one of: ${entityNames.join(', ')}`);
          break;
        }
        const onDelete = (str(a.onDelete) ?? 'restrict') as 'restrict' | 'cascade' | 'setNull';
        if (onDelete === 'setNull' && a.required === true) this.err('APP_ATTRIBUTE_OPTION_INVALID', `${p}/onDelete`, 'onDelete: setNull cannot apply to a required attribute', 'use restrict or cascade, or make the attribute optional');
        t = { kind: 'reference', entity, onDelete };
        break;
      }
      case 'text': {
        // Absent or plain: the IR stays `{ kind: 'text' }` (and the revision hash with it).
        const format = str(a.format);
        t = format === undefined || format === 'plain' ? { kind: 'text' } : { kind: 'text', format: format as 'markdown' | 'code' | 'url' | 'data-url' | 'email' };
        break;
      }
      default:
        t = { kind: type } as AttributeType;
    }

    const encrypted = a.encrypted === true;
    const searchable = a.searchable === true;
    if (encrypted && !ENCRYPTABLE.has(type)) {
      this.err('APP_ENCRYPTED_TYPE', `${p}/encrypted`, `a ${type} attribute cannot be encrypted`, type === 'reference' || type === 'user' ? 'the database must compare references and owners; classify it instead' : 'encrypt text, json, integer, decimal, date or datetime attributes');
    }
    if (searchable && !encrypted) this.err('APP_SEARCHABLE_NOT_ENCRYPTED', `${p}/searchable`, 'searchable applies to encrypted attributes only (it keeps a blind index of the ciphertext)', 'add encrypted: true, or remove searchable (a plain attribute is searchable with an index)');
    if (searchable && encrypted && type !== 'text') this.err('APP_ATTRIBUTE_OPTION_INVALID', `${p}/searchable`, `a blind index applies to text, not ${type}`, 'remove searchable');
    if (a.unique === true && encrypted) this.err('APP_ENCRYPTED_INDEX', `${p}/unique`, 'an encrypted attribute cannot be unique: the database sees only ciphertext', 'remove unique, or do not encrypt the attribute');
    if (a.unique === true && type === 'json') this.err('APP_ATTRIBUTE_OPTION_INVALID', `${p}/unique`, 'a json attribute cannot be unique', 'remove unique');

    // Length and range constraints
    const minLength = typeof a.minLength === 'number' ? a.minLength : null;
    const maxLength = typeof a.maxLength === 'number' ? a.maxLength : null;
    if (maxLength !== null && maxLength > MANIFEST_LIMITS.maxLength) this.err('APP_ATTRIBUTE_OPTION_INVALID', `${p}/maxLength`, `maxLength ${maxLength} is over ${MANIFEST_LIMITS.maxLength}`, 'use a smaller maxLength');
    if (minLength !== null && maxLength !== null && minLength > maxLength) this.err('APP_ATTRIBUTE_OPTION_INVALID', `${p}/minLength`, `minLength ${minLength} is larger than maxLength ${maxLength}`, 'make minLength at most maxLength');
    const pattern = str(a.pattern) ?? null;
    if (pattern !== null) {
      try {
        new RegExp(pattern, 'u');
      } catch {
        this.err('APP_ATTRIBUTE_OPTION_INVALID', `${p}/pattern`, `pattern ${JSON.stringify(pattern)} is not a valid regular expression`, 'write a JavaScript regular expression (Unicode mode), e.g. ^[A-Z]{3}$');
      }
    }
    const bound = (key: 'min' | 'max'): string | null => {
      const v = a[key];
      if (v === undefined || t === undefined) return null;
      const text = String(v);
      const ok = this.literalFits(t, v, text);
      if (!ok) {
        this.err('APP_ATTRIBUTE_OPTION_INVALID', `${p}/${key}`, `${key} ${JSON.stringify(v)} is not a ${type} value${t.kind === 'decimal' ? ` of precision ${t.precision}, scale ${t.scale}` : ''}`, 'give a value of the attribute type');
        return null;
      }
      return String(canonicalValue(t, v));
    };
    const min = bound('min');
    const max = bound('max');
    if (min !== null && max !== null && t && compareLiteral(t, min, max) > 0) this.err('APP_ATTRIBUTE_OPTION_INVALID', `${p}/min`, `min ${min} is larger than max ${max}`, 'swap them');

    // Default: a literal of the type that also meets the constraints.
    let def: IrValue | null = null;
    if (a.default !== undefined && a.default !== null && t) {
      const v = a.default;
      if (encrypted) this.err('APP_DEFAULT_INVALID', `${p}/default`, 'an encrypted attribute cannot have a default: the database would store it in clear', 'set the value in a preset or by the client');
      else if (type === 'json' || type === 'user' || type === 'reference') this.err('APP_DEFAULT_INVALID', `${p}/default`, `a ${type} attribute takes no literal default`, type === 'user' ? 'set it with a preset on the create rule: preset: { owner: auth.user }' : 'remove the default');
      else if (typeof v === 'string' && v.startsWith('$')) this.err('APP_DEFAULT_INVALID', `${p}/default`, `${v} is not a value: defaults are literals`, 'set caller-dependent values with a preset on the create rule, e.g. preset: { owner: auth.user }');
      else if (!this.literalFits(t, v, String(v))) this.err('APP_DEFAULT_INVALID', `${p}/default`, `default ${JSON.stringify(v)} is not a valid ${type} value`, t.kind === 'enum' ? `use one of: ${t.values.join(', ')}` : 'give a value of the attribute type');
      else {
        const c = canonicalValue(t, v);
        const s = typeof c === 'string' ? c : null;
        if (s !== null && maxLength !== null && [...s].length > maxLength) this.err('APP_DEFAULT_INVALID', `${p}/default`, `default is longer than maxLength ${maxLength}`, 'shorten the default');
        else if (s !== null && pattern !== null && safeTest(pattern, s) === false) this.err('APP_DEFAULT_INVALID', `${p}/default`, `default ${JSON.stringify(s)} does not match the pattern`, 'change the default or the pattern');
        else if (s !== null && ((min !== null && compareLiteral(t, s, min) < 0) || (max !== null && compareLiteral(t, s, max) > 0))) this.err('APP_DEFAULT_INVALID', `${p}/default`, `default ${s} is outside min/max`, 'change the default or the bounds');
        else def = c;
      }
    }
    if (!t) return undefined;
    return ir.attribute({
      name,
      column: name,
      type: t,
      description: str(a.description) ?? null,
      required: a.required === true,
      unique: a.unique === true,
      immutable: a.immutable === true,
      default: def,
      min,
      max,
      minLength,
      maxLength,
      pattern,
      classification: (str(a.classification) ?? 'internal') as AttributeIR['classification'],
      encrypted,
      searchable,
    });
  }

  literalFits(t: AttributeType, v: unknown, text: string): boolean {
    switch (t.kind) {
      case 'text':
        return typeof v === 'string' && !v.includes('\u0000');
      case 'integer':
        return (typeof v === 'number' && Number.isSafeInteger(v)) || (typeof v === 'string' && INTEGER.test(v) && int64(v));
      case 'decimal':
        return (typeof v === 'number' || typeof v === 'string') && DECIMAL.test(text) && fitsDecimal(text, t.precision, t.scale);
      case 'boolean':
        return typeof v === 'boolean';
      case 'date': {
        const m = typeof v === 'string' ? DATE.exec(v) : null;
        return !!m && isCalendarDate(Number(m[1]), Number(m[2]), Number(m[3]));
      }
      case 'datetime':
        return typeof v === 'string' && parseTimestamp(v) !== undefined;
      case 'enum':
        return typeof v === 'string' && t.values.includes(v);
      case 'uuid':
        return typeof v === 'string' && UUID.test(v);
      default:
        return false;
    }
  }

  entity(name: string, e: Obj, attributes: AttributeIR[], role: (n: unknown, p: string) => string | undefined): EntityIR | undefined {
    const base = pointerOf('entities', name);
    const attrs = ruleAttributesOf(attributes);
    const attrNames = new Set(attributes.map((a) => a.name));
    const declared = new Set(Object.keys(obj(e.attributes)));
    const attribute = (n: unknown, p: string): string | undefined => {
      if (typeof n !== 'string') return undefined;
      if (!declared.has(n)) {
        this.err('APP_UNKNOWN_ATTRIBUTE', p, `entity ${name} has no attribute ${n}`, `use one of: ${[...declared].join(', ')}`);
        return undefined;
      }
      return attrNames.has(n) ? n : undefined;
    };

    // Indexes
    const indexes: IndexIR[] = [];
    const rawIndexes = Array.isArray(e.indexes) ? e.indexes : [];
    this.limit(`${base}/indexes`, rawIndexes.length, MANIFEST_LIMITS.indexesPerEntity, 'indexes');
    const seenIndexes = new Map<string, number>();
    for (const [i, ix] of rawIndexes.entries()) {
      const p = `${base}/indexes/${i}`;
      const cols = Array.isArray(ix) ? ix : Array.isArray(obj(ix).attributes) ? (obj(ix).attributes as unknown[]) : undefined;
      if (!cols) continue;
      const unique = !Array.isArray(ix) && obj(ix).unique === true;
      const given = Array.isArray(ix) ? undefined : str(obj(ix).name);
      const colsPointer = Array.isArray(ix) ? p : `${p}/attributes`;
      if (cols.length === 0) {
        this.err('APP_INDEX_INVALID', colsPointer, 'an index needs at least one attribute', 'list the attributes, e.g. [owner, status]');
        continue;
      }
      this.limit(colsPointer, cols.length, MANIFEST_LIMITS.attributesPerIndex, 'attributes in one index');
      const ok = cols.map((c, j) => {
        // The id may end an index: the keyset tiebreaker every list page is ordered by, so a rule's
        // columns followed by id serve a page as one ordered index range (no sort).
        if (c === SYSTEM_COLUMNS.id) {
          if (j === cols.length - 1 && j > 0) return c;
          this.err('APP_INDEX_INVALID', `${colsPointer}/${j}`, 'id may only end an index, after at least one attribute', 'list the attributes first, e.g. [owner, id] (the id alone is the primary key)');
          return undefined;
        }
        const n = attribute(c, `${colsPointer}/${j}`);
        const a = attributes.find((x) => x.name === n);
        if (a?.encrypted) {
          this.err('APP_ENCRYPTED_INDEX', `${colsPointer}/${j}`, `${n} is encrypted: an index on ciphertext is useless and leaks equality`, a.type.kind === 'text' ? 'mark it searchable: true for a blind index (equality search)' : 'remove it from the index');
          return undefined;
        }
        if (a?.type.kind === 'json') {
          this.err('APP_INDEX_INVALID', `${colsPointer}/${j}`, `${n} is a json attribute, which cannot be indexed`, 'remove it from the index');
          return undefined;
        }
        return n;
      });
      if (ok.some((x) => x === undefined)) return;
      const names = ok as string[];
      if (new Set(names).size !== names.length) {
        this.err('APP_INDEX_INVALID', colsPointer, 'an index lists an attribute twice', 'list each attribute once');
        continue;
      }
      if (given !== undefined && !INDEX_NAME.test(given)) {
        this.err('APP_NAME_INVALID', `${p}/name`, `index name ${JSON.stringify(given)} is not valid`, 'use lowercase letters, digits and _, starting with a letter');
        continue;
      }
      const id = `${unique}:${names.join(',')}`;
      if (seenIndexes.has(id)) {
        this.err('APP_INDEX_INVALID', p, `the same index as indexes/${seenIndexes.get(id)}`, 'remove one of them');
        continue;
      }
      seenIndexes.set(id, i);
      indexes.push(ir.index({ name: given ?? indexName(name, names, unique), attributes: names, unique }));
    }
    const names = new Set<string>();
    for (const ix of indexes) {
      if (names.has(ix.name)) this.err('APP_INDEX_INVALID', `${base}/indexes`, `two indexes are named ${ix.name}`, 'give them different names');
      names.add(ix.name);
    }

    // Access
    const access = obj(e.access);
    const ops = {} as Record<Operation, AccessRuleIR[]>;
    for (const op of OPERATIONS) ops[op] = this.ruleList(access[op], `${base}/access/${op}`, op, attrs, attributes, attribute, role);
    const fields = Object.entries(obj(access.fields)).flatMap(([f, spec]) => {
      const p = `${base}/access/fields/${pointerOf(f).slice(1)}`;
      const a = attribute(f, p);
      const rules = this.ruleList(obj(spec).read, `${p}/read`, 'read', attrs, attributes, attribute, role);
      return a ? [ir.fieldRead({ attribute: a, rules })] : [];
    });
    if (OPERATIONS.every((op) => !Array.isArray(access[op]) || (access[op] as unknown[]).length === 0)) {
      this.warn('APP_ENTITY_NO_ACCESS', base, `no role may read or change ${name}`, 'add access rules (only actions could use this entity)');
    }

    // Retention
    let retention: EntityIR['retention'] = null;
    const ret = e.retention;
    if (isObj(ret) && typeof ret.days === 'number') {
      const from = ret.from === undefined ? null : attribute(ret.from, `${base}/retention/from`);
      const fa = attributes.find((a) => a.name === from);
      if (fa && fa.type.kind !== 'date' && fa.type.kind !== 'datetime') this.err('APP_ATTRIBUTE_OPTION_INVALID', `${base}/retention/from`, `retention counts from a date or datetime, and ${fa.name} is ${fa.type.kind}`, 'name a date or datetime attribute, or leave from out (creation time)');
      retention = { days: ret.days, from: from ?? null };
    }

    const accessIr = ir.access({ ...ops, fields: [...fields].sort((a, b) => (a.attribute < b.attribute ? -1 : 1)) });
    this.warnings(name, base, attributes, indexes, accessIr);
    return ir.entity({ name, table: name, description: str(e.description) ?? null, attributes: byName(attributes), indexes: byName(indexes), access: accessIr, retention });
  }

  ruleList(
    list: unknown,
    p: string,
    op: Operation,
    attrs: RuleAttributes,
    attributes: readonly AttributeIR[],
    attribute: (n: unknown, p: string) => string | undefined,
    role: (n: unknown, p: string) => string | undefined,
  ): AccessRuleIR[] {
    if (!Array.isArray(list)) return [];
    this.limit(p, list.length, MANIFEST_LIMITS.rulesPerOperation, 'rules');
    const out: AccessRuleIR[] = [];
    list.forEach((entry, i) => {
      const rp = `${p}/${i}`;
      if (typeof entry === 'string') {
        const r = role(entry, rp);
        if (r) out.push(ir.accessRule({ role: r, where: null, check: null, fields: null, presets: [] }));
        return;
      }
      if (!isObj(entry)) return;
      const r = role(entry.role, `${rp}/role`);
      const misplaced = (key: string, why: string) => {
        if (entry[key] !== undefined) this.err('APP_RULE_PLACEMENT', `${rp}/${key}`, `${key} does not apply to ${op} rules`, why, { key: true });
      };
      if (op === 'create') misplaced('where', 'a create has no existing row: use check to constrain the new row');
      if (op === 'read' || op === 'delete') {
        misplaced('check', 'check constrains written rows: use where to choose rows');
        misplaced('fields', `field lists apply to writes; use access.fields to limit reading`);
        misplaced('preset', 'presets apply to writes');
      }
      const where = op === 'create' ? null : this.rule(entry.where, `${rp}/where`, attrs, 'where');
      const check = op === 'read' || op === 'delete' ? null : this.rule(entry.check, `${rp}/check`, attrs, op === 'update' ? 'update-check' : 'check');
      let fields: string[] | null = null;
      if (Array.isArray(entry.fields) && op !== 'read' && op !== 'delete') {
        fields = entry.fields.flatMap((f, j) => {
          const n = attribute(f, `${rp}/fields/${j}`);
          if (n && op === 'update' && attributes.find((a) => a.name === n)?.immutable) {
            this.err('APP_RULE_PLACEMENT', `${rp}/fields/${j}`, `${n} is immutable: no update may write it`, `remove ${n} from the list`);
            return [];
          }
          return n ? [n] : [];
        });
      }
      const presets: PresetIR[] = [];
      if (op === 'create' || op === 'update') {
        for (const [attrName, text] of Object.entries(obj(entry.preset))) {
          const pp = `${rp}/preset/${pointerOf(attrName).slice(1)}`;
          const a = attributes.find((x) => x.name === attribute(attrName, pp));
          if (!a || typeof text !== 'string') continue;
          if (op === 'update' && a.immutable) {
            this.err('APP_RULE_PLACEMENT', pp, `${a.name} is immutable: an update preset cannot set it`, 'move the preset to the create rule');
            continue;
          }
          const c = checkRule(text, { attributes: attrs, place: 'preset', conditions: this.#conditions }, 'value');
          if (!c.ok) {
            this.ruleProblems(c.problems, pp);
            continue;
          }
          const want = ruleAttributesOf([a]).get(a.name);
          const fits = want && (c.type.kind === want.type || (c.type.kind === 'int' && want.type === 'decimal') || (c.type.kind === 'string' && want.type === 'uuid' && c.expr.kind === 'string' && UUID.test(c.expr.value)));
          const enumOk = a.type.kind !== 'enum' || (c.expr.kind === 'string' && a.type.values.includes(c.expr.value));
          if (!fits || !enumOk) {
            this.err('APP_RULE_TYPE', pp, `the preset gives ${c.type.kind}, and ${a.name} is ${a.type.kind}${a.type.kind === 'enum' ? ` (${a.type.values.join(', ')})` : ''}`, 'give a value of the attribute type, e.g. auth.user for a user attribute, now for a datetime', { offset: 0 });
            continue;
          }
          presets.push(ir.preset({ attribute: a.name, value: ir.condition({ source: text, ast: c.expr }) }));
        }
      }
      if (r) out.push(ir.accessRule({ role: r, where, check, fields, presets: presets.sort((x, y) => (x.attribute < y.attribute ? -1 : 1)) }));
    });
    return out;
  }

  warnings(entity: string, base: string, attributes: readonly AttributeIR[], indexes: readonly IndexIR[], access: EntityIR['access']): void {
    // Restricted data readable by a role with no row condition.
    for (const a of attributes.filter((x) => x.classification === 'restricted')) {
      const field = access.fields.find((f) => f.attribute === a.name);
      const rules = field ? field.rules : access.read;
      const listPointer = field ? `${base}/access/fields/${a.name}/read` : `${base}/access/read`;
      rules.forEach((r, i) => {
        if (!r.where) this.warn('APP_RESTRICTED_UNCONDITIONAL', `${listPointer}/${i}`, `role ${r.role} reads the restricted attribute ${a.name} on every row of ${entity}`, `add a where condition for ${r.role}, or a field rule under access.fields.${a.name}`);
      });
    }
    // Rules on columns without an index.
    const leading = new Set<string>(['id', ...indexes.map((ix) => ix.attributes[0] as string), ...attributes.filter((a) => a.unique).map((a) => a.name)]);
    const check = (c: ConditionIR | null, pointer: string, list = false) => {
      if (!c) return;
      for (const branch of c.ast.kind === 'or' ? c.ast.args : [c.ast]) {
        const cols = indexable(branch);
        if (cols.length === 0 || cols.some((x) => leading.has(x))) continue;
        // A read rule filters every list page, which is ordered by the id (the keyset
        // tiebreaker): when the rule only compares for equality, the index that serves a page
        // as one ordered range ends with the id (measured on 1M rows: bench/keyset.ts).
        const hint = [...cols.slice(0, 3), ...(list && equalityOnly(branch) ? [SYSTEM_COLUMNS.id] : [])];
        this.warn('APP_RULE_UNINDEXED', pointer, `the rule filters ${entity} on ${cols.join(', ')}, and no index starts with ${cols.length > 1 ? 'any of them' : 'it'}`, `add indexes: [[${hint.join(', ')}]] to ${entity}`);
      }
    };
    for (const op of ['read', 'update', 'delete'] as const) {
      access[op].forEach((r, i) => {
        check(r.where, `${base}/access/${op}/${i}/where`, op === 'read');
      });
    }
    for (const f of access.fields) {
      f.rules.forEach((r, i) => {
        check(r.where, `${base}/access/fields/${f.attribute}/read/${i}/where`);
      });
    }
  }

  action(name: string, a: Obj, role: (n: unknown, p: string) => string | undefined) {
    const p = pointerOf('actions', name);
    if (!this.name(MEMBER_NAME, p, name, 'action', 'an action name is camelCase letters and digits')) return [];
    const roles = Array.isArray(a.roles) ? a.roles.flatMap((r, i) => role(r, `${p}/roles/${i}`) ?? []) : [];
    const inputs = Object.entries(obj(a.input));
    this.limit(`${p}/input`, inputs.length, MANIFEST_LIMITS.inputsPerAction, 'inputs');
    const input = inputs.flatMap(([n, spec]) => {
      const ip = `${p}/input/${pointerOf(n).slice(1)}`;
      if (!this.name(MEMBER_NAME, ip, n, 'input', 'an input name is camelCase letters and digits')) return [];
      const s = obj(spec);
      const type = str(s.type);
      if (type === undefined) return [];
      if (type === 'enum' && !Array.isArray(s.values)) this.err('APP_ATTRIBUTE_OPTION_INVALID', ip, 'an enum input needs values', 'add values: [a, b]');
      if (type !== 'enum' && s.values !== undefined) this.err('APP_ATTRIBUTE_OPTION_INVALID', `${ip}/values`, `values does not apply to a ${type} input`, 'remove it', { key: true });
      if (type !== 'text' && s.maxLength !== undefined) this.err('APP_ATTRIBUTE_OPTION_INVALID', `${ip}/maxLength`, `maxLength does not apply to a ${type} input`, 'remove it', { key: true });
      return [ir.input({ name: n, type, required: s.required === true, values: Array.isArray(s.values) ? (s.values as string[]) : null, maxLength: typeof s.maxLength === 'number' ? s.maxLength : null })];
    });
    const source = str(a.source);
    if (source === undefined) return [];
    const norm = normalizePath(source).replaceAll('\\', '/');
    if (isAbsolute(source) || norm.startsWith('../') || norm === '..' || !/\.(ts|js|mjs)$/.test(norm)) {
      this.err('APP_ACTION_SOURCE', `${p}/source`, `${JSON.stringify(source)} is not a .ts or .js path inside the app folder`, 'give a relative path such as actions/approve.ts');
      return [];
    }
    const text = this.opts.readFile?.(norm);
    if (text === undefined) {
      this.err('APP_ACTION_SOURCE', `${p}/source`, `cannot read the action source ${norm}`, 'create the file next to the manifest, or fix the path');
      return [];
    }
    this.actionSources.set(norm, text);
    return [ir.action({ name, description: str(a.description) ?? null, roles: [...new Set(roles)].sort(), input: byName(input), source: norm })];
  }

  setting(name: string, s: Obj) {
    const p = pointerOf('settings', name);
    if (!this.name(MEMBER_NAME, p, name, 'setting', 'a setting name is camelCase letters and digits')) return [];
    const type = str(s.type) as 'text' | 'integer' | 'decimal' | 'boolean' | undefined;
    if (type === undefined) return [];
    const secret = s.secret === true;
    if (secret && s.default !== undefined) this.err('APP_SETTING_INVALID', `${p}/default`, 'a secret setting has no default: it lives in the stage secrets store', 'remove the default and set it with `accord secret set`', { key: true });
    if (secret && s.stages !== undefined) this.err('APP_SETTING_INVALID', `${p}/stages`, 'a secret setting has no values in the manifest', 'remove stages and set the secret per stage', { key: true });
    const fit = (v: unknown, at: string): IrValue | null => {
      if (v === undefined) return null;
      const t: AttributeType = type === 'decimal' ? { kind: 'decimal', precision: 38, scale: 18 } : ({ kind: type } as AttributeType);
      if (!this.literalFits(t, v, String(v))) {
        this.err('APP_SETTING_INVALID', at, `${JSON.stringify(v)} is not a ${type} value`, `give a ${type}`);
        return null;
      }
      return canonicalValue(t, v);
    };
    const def = secret ? null : fit(s.default, `${p}/default`);
    const stages = Object.entries(obj(s.stages)).flatMap(([stage, v]) => {
      const sp = `${p}/stages/${pointerOf(stage).slice(1)}`;
      if (!STAGE_NAME.test(stage)) {
        this.err('APP_NAME_INVALID', sp, `stage name ${JSON.stringify(stage)} is not valid`, 'a stage name is 2-32 lowercase letters, digits and hyphens', { key: true });
        return [];
      }
      const value = fit(v, sp);
      return value === null ? [] : [{ stage, value }];
    });
    return [ir.setting({ name, type, description: str(s.description) ?? null, secret, default: def, stages: stages.sort((a, b) => (a.stage < b.stage ? -1 : 1)) })];
  }
}

function safeTest(pattern: string, s: string): boolean | undefined {
  try {
    return new RegExp(pattern, 'u').test(s);
  } catch {
    return undefined;
  }
}

/** The canonical IR form of a literal that fits its type. */
function canonicalValue(t: AttributeType, v: unknown): IrValue {
  switch (t.kind) {
    case 'integer':
      return BigInt(v as number | string).toString();
    case 'decimal': {
      const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(v)) as RegExpExecArray;
      const int = BigInt(m[2] as string).toString();
      const frac = (m[3] ?? '').replace(/0+$/, '');
      return `${m[1] && !(int === '0' && !frac) ? '-' : ''}${int}${frac ? `.${frac}` : ''}`;
    }
    case 'datetime':
      return parseTimestamp(String(v)) as string;
    case 'uuid':
      return String(v).toLowerCase();
    case 'boolean':
      return v as boolean;
    default:
      return String(v);
  }
}

function compareLiteral(t: AttributeType, a: string, b: string): number {
  if (t.kind === 'integer' || t.kind === 'decimal') {
    const scale = (s: string) => (s.split('.')[1] ?? '').length;
    const n = Math.max(scale(a), scale(b));
    const big = (s: string) => {
      const [i, f = ''] = s.split('.');
      return BigInt(`${i}${f.padEnd(n, '0')}`.replace(/^(-?)0+(?=\d)/, '$1'));
    };
    const x = big(a);
    const y = big(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Columns a rule branch filters on in a form an index can serve. */
function indexable(e: Expr): string[] {
  const rowAttr = (x: Expr) => (x.kind === 'attr' && x.scope === 'row' ? x.name : undefined);
  switch (e.kind) {
    case 'and':
      return [...new Set(e.args.flatMap(indexable))];
    case 'compare': {
      if (e.op === '!=') return [];
      const l = rowAttr(e.left);
      const r = rowAttr(e.right);
      if (l && !r && attributesOf(e.right).length === 0) return [l];
      if (r && !l && attributesOf(e.left).length === 0) return [r];
      return [];
    }
    case 'in': {
      const a = rowAttr(e.item);
      return a ? [a] : [];
    }
    case 'call':
      return e.fn === 'startsWith' && rowAttr(e.target) ? [rowAttr(e.target) as string] : [];
    default:
      return [];
  }
}

/** Whether every indexable term of a rule branch is an equality (`==`, `in`), so an index can continue with the sort order. */
function equalityOnly(e: Expr): boolean {
  switch (e.kind) {
    case 'and':
      return e.args.every((x) => indexable(x).length === 0 || equalityOnly(x));
    case 'compare':
      return e.op === '==';
    case 'in':
      return true;
    default:
      return false;
  }
}

/** A readable index name within PostgreSQL's 63 bytes. */
function indexName(entity: string, cols: readonly string[], unique: boolean): string {
  const n = `${entity}_${cols.join('_')}_${unique ? 'key' : 'idx'}`.toLowerCase();
  if (n.length <= 63) return n;
  let h = 0;
  for (const ch of n) h = (Math.imul(h, 31) + (ch.codePointAt(0) ?? 0)) >>> 0;
  return `${n.slice(0, 54)}_${h.toString(16).padStart(8, '0')}`;
}

/** Validates a parsed manifest; the IR comes with the result when there is no error. */
export function validateManifest(source: ManifestSource, opts: ValidateOptions = {}): ValidationResult {
  const v = new Validator(source, opts);
  const app = v.run();
  const diagnostics = v.diagnostics;
  const errors = diagnostics.filter((d) => d.severity === 'error');
  return {
    ok: errors.length === 0,
    diagnostics,
    errors,
    warnings: diagnostics.filter((d) => d.severity === 'warning'),
    ...(app && errors.length === 0 ? { ir: app } : {}),
    actionSources: v.actionSources,
  };
}
