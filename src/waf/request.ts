// Builds the engine's view of a request from what Fastify parsed: the same values the handler
// receives (query, path parameters, JSON or form fields, headers, cookies), each with its name.
import type { WafRequest, WafValue } from './engine.ts';

/** The parts of a parsed request the WAF reads. */
export interface ParsedParts {
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly query?: unknown;
  readonly params?: unknown;
  readonly body?: unknown;
}

// Bounds: a request with more fields than this is inspected on its first fields only (the body
// limit already bounds the total); nesting deeper than this is not walked further.
const MAX_VALUES = 2048;
const MAX_DEPTH = 32;

function cookiesOf(header: string | string[] | undefined, out: WafValue[]): void {
  if (header === undefined) return;
  for (const h of [header].flat()) {
    for (const part of h.split(';')) {
      const eq = part.indexOf('=');
      const name = (eq < 0 ? part : part.slice(0, eq)).trim();
      if (!name) continue;
      out.push({ collection: 'REQUEST_COOKIES', name, value: eq < 0 ? '' : part.slice(eq + 1).trim() });
    }
  }
}

function walk(prefix: string, v: unknown, out: WafValue[], depth: number): void {
  if (out.length >= MAX_VALUES || depth > MAX_DEPTH) return;
  if (v === null || v === undefined) return;
  if (typeof v === 'string') {
    out.push({ collection: 'ARGS', name: prefix, value: v });
    return;
  }
  if (typeof v === 'number' || typeof v === 'boolean') {
    out.push({ collection: 'ARGS', name: prefix, value: String(v) });
    return;
  }
  if (Array.isArray(v)) {
    // ModSecurity names array elements by the array's own name (json.tags.tags): the same name
    // for every element, so a field kind set for the array covers its elements.
    for (const item of v) walk(prefix, item, out, depth + 1);
    return;
  }
  if (typeof v === 'object') {
    for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
      // Object keys are inspected too (ARGS_NAMES is built from the names).
      walk(prefix ? `${prefix}.${k}` : k, item, out, depth + 1);
    }
  }
}

/**
 * The request as the engine sees it. JSON bodies are named `json.<path>` (ModSecurity's JSON body
 * processor's names, which CRS rules expect); query, form and path fields by their own names.
 * A body that is a string (a parser kept it as text) is the raw body.
 */
export function wafRequestOf(parts: ParsedParts): WafRequest {
  const values: WafValue[] = [];
  const ct = parts.headers['content-type'];
  const contentType = typeof ct === 'string' ? ct : undefined;
  for (const [name, value] of Object.entries(parts.headers)) {
    if (value === undefined) continue;
    if (name === 'cookie') continue;
    for (const v of [value].flat()) values.push({ collection: 'REQUEST_HEADERS', name, value: v });
  }
  cookiesOf(parts.headers.cookie, values);
  if (parts.params && typeof parts.params === 'object') {
    for (const [k, v] of Object.entries(parts.params as Record<string, unknown>)) if (typeof v === 'string') values.push({ collection: 'ARGS', name: k === '*' ? 'path' : k, value: v });
  }
  if (parts.query && typeof parts.query === 'object') {
    for (const [k, v] of Object.entries(parts.query as Record<string, unknown>)) walk(k, v, values, 0);
  }
  let rawBody: string | undefined;
  const body = parts.body;
  if (typeof body === 'string') rawBody = body;
  else if (body !== undefined && body !== null) {
    const isJson = contentType !== undefined && /json/i.test(contentType);
    if (isJson) walk('json', body, values, 0);
    else if (typeof body === 'object') for (const [k, v] of Object.entries(body as Record<string, unknown>)) walk(k, v, values, 0);
  }
  return { method: parts.method, url: parts.url, values, ...(rawBody !== undefined ? { rawBody } : {}), ...(contentType !== undefined ? { contentType } : {}) };
}
