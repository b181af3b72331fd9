// What the app model says about each field of a data-API request, for the WAF: a value the model
// validates as a number, a date, an id or one of an enum's values cannot carry an attack (it is a
// 400 otherwise), and the filter is an expression the data API parses and compiles to bind
// parameters itself. Plain text is stored through bind parameters only: it is read for what stays
// live in it, its rendering (docs/waf.md, "Tuned by the model").
import type { FastifyRequest } from 'fastify';
import type { Db } from '../../db/index.ts';
import { TtlCache } from '../../kernel/index.ts';
import { resolvePathScope } from '../../tenancy/index.ts';
import { type FieldKind, restrictivePattern } from '../../waf/index.ts';
import type { AttributeIR } from '../compile/ir.ts';
import { entityOf } from '../compile/ir.ts';
import { deployedApp } from '../lifecycle/index.ts';

// The list parameters the data API reads itself (routes.ts): names checked against the model, a
// MAC'd cursor, numbers and keywords.
const LIST_PARAMETERS: ReadonlyMap<string, FieldKind> = new Map<string, FieldKind>([
  ['filter', 'code'],
  ['sort', 'opaque'],
  ['fields', 'opaque'],
  ['limit', 'opaque'],
  ['cursor', 'opaque'],
  ['count', 'opaque'],
  // The path: the provider answers only once tenant, stage, app and entity were found (each a
  // name the platform validated when it was created), and the id reaches SQL only as a bound
  // uuid. Path parameters are ARGS as CRS sees them; the request line and URI stay inspected.
  ['tenant', 'opaque'],
  ['stage', 'opaque'],
  ['app', 'opaque'],
  ['entity', 'opaque'],
  ['id', 'opaque'],
]);

// Operators of attribute parameters (name.op=value), as filter.ts reads them.
const PARAMETER_OPERATORS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte'];

function kindOf(a: AttributeIR): FieldKind {
  switch (a.type.kind) {
    case 'enum':
      return 'enum';
    case 'json':
      return 'json';
    case 'text':
      // Each format as it says (values.ts checks url, data-url and email first).
      switch (a.type.format) {
        case 'markdown':
          return 'markdown';
        case 'code':
          return 'code';
        case 'url':
          return 'url';
        case 'data-url':
          return 'data-url';
        case 'email':
          return 'opaque';
        default:
          // A manifest pattern that admits none of the characters attacks need (values.ts checks
          // it before anything is stored) makes the value opaque, as on the control plane.
          if (a.pattern !== null && restrictivePattern(a.pattern)) return 'opaque';
          // Plain text: stored through bind parameters only (see KIND_CATEGORIES).
          return 'stored-text';
      }
    default:
      // integer, decimal, boolean, date, datetime, uuid, user, reference
      return 'opaque';
  }
}

/** The field kinds of one entity's routes: body fields (`json.<name>`) and query parameters. */
export function entityFieldKinds(attributes: readonly AttributeIR[]): ReadonlyMap<string, FieldKind> {
  const out = new Map(LIST_PARAMETERS);
  for (const a of attributes) {
    const kind = kindOf(a);
    out.set(`json.${a.name}`, kind);
    // A json attribute's members are named json.<name>.<key>...: the attribute's kind covers them.
    if (kind === 'json') out.set(`json.${a.name}.*`, kind);
    out.set(a.name, kind);
    for (const op of PARAMETER_OPERATORS) out.set(`${a.name}.${op}`, kind);
  }
  return out;
}

const DATA_API_ROUTE = '/t/:tenant/:stage/apps/:app/api/';

/** The WAF's field-kinds provider for the data API's routes (undefined on every other route). */
export function dataApiFieldKinds(db: Db): (req: FastifyRequest) => Promise<ReadonlyMap<string, FieldKind> | undefined> | undefined {
  const cache = new TtlCache<ReadonlyMap<string, FieldKind> | undefined>();
  return (req) => {
    if (!req.routeOptions.url?.startsWith(DATA_API_ROUTE)) return undefined;
    const p = req.params as { tenant?: string; stage?: string; app?: string; entity?: string };
    if (!p.tenant || !p.stage || !p.app || !p.entity) return undefined;
    const { tenant, stage, app, entity } = p;
    return cache.get(`${tenant}/${stage}/${app}/${entity}`, async () => {
      const scope = await resolvePathScope(db, tenant, stage).catch(() => undefined);
      if (!scope?.stage) return undefined;
      const deployed = await deployedApp(db, scope.stage.id, app);
      const e = deployed ? entityOf(deployed.ir, entity) : undefined;
      return e ? entityFieldKinds(e.attributes) : undefined;
    });
  };
}
