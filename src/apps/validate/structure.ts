// Structural validation against the TypeBox schema, with the errors turned into diagnostics a person
// can act on: unknown keys name the allowed ones, unions are reported for the branch the value was
// meant to be (a string or an object), enums list their values.
import type { TSchema } from '@sinclair/typebox';
import { type ValueError, ValueErrorType } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import type { DiagnosticCode } from './diagnostics.ts';

export interface StructuralProblem {
  readonly code: DiagnosticCode;
  readonly pointer: string;
  /** The problem is about the key at the pointer (unknown keys), not its value. */
  readonly key: boolean;
  readonly message: string;
  readonly hint: string;
}

const jsonType = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' ? 'number' : typeof v);

function schemaAccepts(schema: TSchema, v: unknown): boolean {
  const t = (schema as { type?: string }).type;
  const want = jsonType(v);
  if ('const' in schema) return typeof schema.const === typeof v;
  if (t === 'integer') return want === 'number';
  if (t) return t === want;
  if (Array.isArray((schema as { anyOf?: TSchema[] }).anyOf)) return (schema.anyOf as TSchema[]).some((s) => schemaAccepts(s, v));
  return false;
}

function* refine(e: ValueError): Generator<StructuralProblem> {
  const path = e.path;
  switch (e.type) {
    case ValueErrorType.ObjectAdditionalProperties: {
      const parentPath = path.slice(0, path.lastIndexOf('/'));
      const allowed = Object.keys((e.schema as { properties?: object }).properties ?? {});
      const key = path.slice(path.lastIndexOf('/') + 1);
      yield { code: 'APP_UNKNOWN_KEY', pointer: path, key: true, message: `unknown key ${key.replaceAll('~1', '/').replaceAll('~0', '~')} in ${parentPath || 'the manifest'}`, hint: `use one of: ${allowed.join(', ')}` };
      return;
    }
    case ValueErrorType.ObjectRequiredProperty: {
      const key = path.slice(path.lastIndexOf('/') + 1);
      yield { code: 'APP_KEY_REQUIRED', pointer: path, key: false, message: `${key} is required here`, hint: `add ${key}:` };
      return;
    }
    case ValueErrorType.Union: {
      const branches = ((e.schema as { anyOf?: TSchema[] }).anyOf ?? []) as TSchema[];
      if (branches.length && branches.every((b) => 'const' in b)) {
        const values = branches.map((b) => String(b.const));
        yield { code: 'APP_VALUE_INVALID', pointer: path, key: false, message: `${JSON.stringify(e.value)} is not an allowed value`, hint: `use one of: ${values.join(', ')}` };
        return;
      }
      const meant = branches.find((b) => schemaAccepts(b, e.value));
      if (meant && jsonType(e.value) === 'object') {
        for (const inner of Value.Errors(meant, e.value)) yield* refine({ ...inner, path: `${path}${inner.path}` });
        return;
      }
      const kinds = [...new Set(branches.map((b) => (b as { type?: string }).type ?? 'value'))].map((k) => (k === 'array' ? 'a list' : k === 'object' ? 'a mapping' : `a ${k}`));
      yield { code: 'APP_VALUE_INVALID', pointer: path, key: false, message: `expected ${kinds.join(' or ')}, found ${jsonType(e.value)}`, hint: 'see docs/app-manifest.md for the form of this key' };
      return;
    }
    default: {
      const message = e.message.replace(/^Expected/, 'expected');
      const hint = (e.schema as { description?: string }).description ?? 'see docs/app-manifest.md for the form of this key';
      yield { code: 'APP_VALUE_INVALID', pointer: path, key: false, message: `${message}, found ${JSON.stringify(e.value) ?? 'nothing'}`, hint };
    }
  }
}

/** Every structural problem of `value` against `schema`, deduplicated by pointer and message. */
export function structuralProblems(schema: TSchema, value: unknown): StructuralProblem[] {
  const seen = new Set<string>();
  const out: StructuralProblem[] = [];
  for (const e of Value.Errors(schema, value)) {
    for (const p of refine(e)) {
      const id = `${p.pointer}\u0000${p.code}\u0000${p.message}`;
      if (seen.has(id)) continue;
      seen.add(id);
      out.push(p);
    }
  }
  return out;
}
