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
  if (typeof s.pattern === 'string' && restrictive(s.pattern)) return 'opaque';
  return undefined;
}

// An anchored pattern over a character class without quotes, angle brackets, parentheses,
// semicolons or spaces cannot carry the syntax any rule looks for; ajv checked it already.
function restrictive(pattern: string): boolean {
  if (!pattern.startsWith('^') || !pattern.endsWith('$')) return false;
  if (/\\[sSWD]|\[\^|(?<!\\)\./.test(pattern)) return false;
  return !/["'<>();`|&$ ]/.test(pattern);
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
