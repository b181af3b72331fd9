// Field kinds from a route's own schemas: what the platform already knows about a field decides
// which rules inspect it (docs/waf.md, "Tuned by the model").
import type { FieldKind } from './engine.ts';

type Schema = Readonly<Record<string, unknown>>;

// Names that hold credentials in the control plane's schemas. A credential is compared, hashed
// or verified, never interpreted: scanning it for SQL words only refuses strong passwords.
const CREDENTIAL = /(password|secret|token|otp|recovery|credential|assertion|attestation|signature|challenge|verifier|(^|_)code$|Code$)/i;

function kindOf(name: string, s: Schema): FieldKind | undefined {
  if (s.writeOnly === true || s.format === 'password' || CREDENTIAL.test(name)) return 'secret';
  // Source text the platform parses itself (an app manifest, an action's code): its language is
  // not SQL or shell, and reading it for their keywords refuses every real app.
  if (typeof s.contentMediaType === 'string') return /markdown/.test(s.contentMediaType) ? 'markdown' : 'code';
  if (Array.isArray(s.enum) || s.const !== undefined) return 'enum';
  if (Array.isArray(s.anyOf) && (s.anyOf as Schema[]).every((a) => a.const !== undefined)) return 'enum';
  if (s.type === 'integer' || s.type === 'number' || s.type === 'boolean') return 'opaque';
  const format = s.format;
  if (format === 'uuid' || format === 'date-time' || format === 'date' || format === 'email' || format === 'time' || format === 'ipv4' || format === 'ipv6') return 'opaque';
  if (format === 'uri' || format === 'url') return 'url';
  if (typeof s.pattern === 'string' && restrictivePattern(s.pattern)) return 'opaque';
  return undefined;
}

// Characters a restrictive pattern may admit: letters, digits and `_ . @ + -`. No quote, bracket,
// space, slash, colon, semicolon, `<>`, `=`, `%`, `&`, `|`, `$` or backtick: none of the syntax
// a rule looks for (SQL, markup, shell, paths, URLs) can be written with them.
const SAFE_CHAR = /^[A-Za-z0-9_.@+-]$/;

/**
 * Whether a (validated) pattern admits only values made of safe characters: its values are then
 * opaque. Read token by token and refused at the first construct not understood: anchored
 * (`^...$`), literals, `\d`, `\w`, escaped safe characters, quantifiers, and classes of safe
 * characters and ranges within a-z, A-Z or 0-9 (no negation). Alternation and groups are refused.
 */
export function restrictivePattern(pattern: string): boolean {
  if (!pattern.startsWith('^') || !pattern.endsWith('$') || pattern.endsWith('\\$')) return false;
  const body = pattern.slice(1, -1);
  const safeEscape = (c: string | undefined) => c === 'd' || c === 'w' || (c !== undefined && SAFE_CHAR.test(c) && !/[A-Za-z0-9]/.test(c));
  const range = (a: string, b: string) => a <= b && [/[a-z]/, /[A-Z]/, /[0-9]/].some((r) => r.test(a) && r.test(b));
  let i = 0;
  let atom = false;
  while (i < body.length) {
    const c = body[i] as string;
    if (c === '\\') {
      if (!safeEscape(body[i + 1])) return false;
      i += 2;
      atom = true;
    } else if (c === '[') {
      i++;
      if (body[i] === '^') return false;
      let n = 0;
      while (i < body.length && body[i] !== ']') {
        const x = body[i] as string;
        if (x === '\\') {
          if (!safeEscape(body[i + 1])) return false;
          i += 2;
        } else if (body[i + 1] === '-' && body[i + 2] !== undefined && body[i + 2] !== ']') {
          if (!range(x, body[i + 2] as string)) return false;
          i += 3;
        } else {
          if (!SAFE_CHAR.test(x)) return false;
          i++;
        }
        n++;
      }
      if (body[i] !== ']' || n === 0) return false;
      i++;
      atom = true;
    } else if (c === '+' || c === '*' || c === '?') {
      if (!atom) return false;
      i++;
    } else if (c === '{') {
      const m = /^\{\d+(,\d*)?\}/.exec(body.slice(i));
      if (!m || !atom) return false;
      i += m[0].length;
    } else if (c !== '.' && SAFE_CHAR.test(c)) {
      i++;
      atom = true;
    } else return false;
  }
  return true;
}

function walk(prefix: string, s: Schema | undefined, out: Map<string, FieldKind>, depth: number): void {
  if (!s || depth > 16) return;
  const props = s.properties as Record<string, Schema> | undefined;
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      const name = prefix ? `${prefix}.${k}` : k;
      const kind = kindOf(k, v);
      if (kind) out.set(name, kind);
      else walk(name, v, out, depth + 1);
    }
    return;
  }
  // A record (TypeBox `Record`): every value has the one schema, so the kind holds for any key.
  const pattern = s.patternProperties as Record<string, Schema> | undefined;
  if (pattern) {
    for (const v of Object.values(pattern)) {
      const kind = kindOf('', v);
      if (kind) out.set(`${prefix}.*`, kind);
    }
    return;
  }
  const items = s.items as Schema | undefined;
  if (items) {
    const kind = kindOf(prefix, items);
    if (kind) out.set(prefix, kind);
    else walk(prefix, items, out, depth + 1);
  }
}

/** The kinds of a route's fields, by the names the engine gives them (`json.a.b` for the body). */
export function fieldKindsFromSchema(schema: { body?: unknown; querystring?: unknown; params?: unknown } | undefined): Map<string, FieldKind> {
  const out = new Map<string, FieldKind>();
  if (!schema) return out;
  walk('json', schema.body as Schema | undefined, out, 0);
  // Form bodies (OAuth2 token requests) name their fields without the JSON prefix.
  walk('', schema.body as Schema | undefined, out, 0);
  walk('', schema.querystring as Schema | undefined, out, 0);
  walk('', schema.params as Schema | undefined, out, 0);
  return out;
}
