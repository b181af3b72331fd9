import type { FastifyRequest } from 'fastify';
import { AccordError } from '../errors/index.ts';

/**
 * The one rule every string from a request obeys, wherever it goes next (the database refuses NUL
 * and cannot store lone surrogates; logs, audit records, SIEMs and terminals misread them):
 * - no NUL (U+0000);
 * - no lone surrogate (a UTF-16 half without its partner, which no UTF-8 byte sequence spells);
 * - Unicode NFC, so canonically equivalent spellings (a precomposed é or e + U+0301) are one
 *   value for uniqueness checks, lookups and comparisons.
 * Object keys obey it too. It applies to path parameters, the query string and the body, before
 * authorization and before the route's schema: the rule is the same on every route, so refusing
 * tells an anonymous caller nothing about a route.
 */

/** What is wrong with a string, if anything. */
export type TextProblem = 'nul' | 'lone-surrogate';

/** The part of the request a refused string came from. */
export type InputPart = 'params' | 'query' | 'body';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why `text` breaks the input rule, or undefined when it obeys it (before normalisation). */
export function textProblem(text: string): TextProblem | undefined {
  if (text.includes('\u0000')) return 'nul';
  if (LONE_SURROGATE.test(text)) return 'lone-surrogate';
  return undefined;
}

// JSON Pointer escaping (RFC 6901), so the path names the member even when its key has / or ~.
const pointer = (path: string, key: string | number): string => `${path}/${String(key).replaceAll('~', '~0').replaceAll('/', '~1')}`;

function refuse(part: InputPart, path: string, problem: TextProblem | 'duplicate-key'): AccordError {
  const what = problem === 'nul' ? 'a NUL character' : problem === 'lone-surrogate' ? 'a lone surrogate (not well-formed Unicode)' : 'a key that equals another once normalised';
  return new AccordError('REQUEST_TEXT_INVALID', {
    message: `The ${part === 'params' ? 'path' : part} holds ${what} at ${path || '/'}.`,
    details: { in: part, path: path || '/', problem },
  });
}

function checked(text: string, part: InputPart, path: string): string {
  const problem = textProblem(text);
  if (problem) throw refuse(part, path, problem);
  return text.normalize('NFC');
}

/**
 * Applies the input rule to one part of a request: throws REQUEST_TEXT_INVALID (naming the part
 * and the JSON Pointer of the offending value, never the value) or returns the value normalised.
 * Objects and arrays are normalised in place (they are the request's own); the walk uses an
 * explicit stack, so nesting depth cannot exhaust the call stack.
 */
export function applyInputRule(value: unknown, part: InputPart): unknown {
  if (typeof value === 'string') return checked(value, part, '');
  const stack: { node: unknown; path: string }[] = [{ node: value, path: '' }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { node, path } = item;
    if (node === null || typeof node !== 'object' || Buffer.isBuffer(node)) continue;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const v: unknown = node[i];
        if (typeof v === 'string') node[i] = checked(v, part, pointer(path, i));
        else if (v !== null && typeof v === 'object') stack.push({ node: v, path: pointer(path, i) });
      }
      continue;
    }
    const obj = node as Record<string, unknown>;
    for (const key of Object.keys(obj)) {
      const here = pointer(path, key);
      const normalKey = checked(key, part, here);
      const v = obj[key];
      const nv = typeof v === 'string' ? checked(v, part, here) : v;
      if (normalKey !== key) {
        if (Object.hasOwn(obj, normalKey)) throw refuse(part, here, 'duplicate-key');
        // defineProperty, not assignment: a key that normalises to __proto__ stays a plain key.
        Object.defineProperty(obj, normalKey, { value: nv, enumerable: true, writable: true, configurable: true });
        delete obj[key];
      } else if (nv !== v) {
        obj[key] = nv;
      }
      if (nv !== null && typeof nv === 'object') stack.push({ node: nv, path: here });
    }
  }
  return value;
}

/**
 * Applies the input rule to a request's path parameters, query and body (a preValidation step:
 * the body is parsed by then). Throws REQUEST_TEXT_INVALID on the first offending string.
 */
export function applyInputRuleToRequest(req: FastifyRequest): void {
  if (req.params) applyInputRule(req.params, 'params');
  if (req.query) applyInputRule(req.query, 'query');
  if (req.body !== undefined && req.body !== null) {
    const body = applyInputRule(req.body, 'body');
    if (body !== req.body) req.body = body;
  }
}
