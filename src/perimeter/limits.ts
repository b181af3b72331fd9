import { AccordError } from '../errors/index.ts';

/** Request limits beyond the body size (documented in docs/perimeter.md). */
export interface RequestLimits {
  readonly maxHeaderCount: number;
  readonly maxHeaderBytes: number;
  readonly maxUrlLength: number;
  readonly maxJsonDepth: number;
  readonly maxJsonKeys: number;
}

/**
 * Checks the request line and headers: the target's length (414), the number of header fields
 * and the size of each (431). `rawHeaders` is Node's flat [name, value, ...] list, so repeated
 * fields count each time they appear.
 */
export function checkRequestHead(limits: RequestLimits, url: string, rawHeaders: readonly string[]): void {
  if (url.length > limits.maxUrlLength) {
    throw new AccordError('REQUEST_URL_TOO_LONG', { message: `The request target is longer than ${limits.maxUrlLength} characters.`, details: { limit: limits.maxUrlLength } });
  }
  const count = rawHeaders.length / 2;
  if (count > limits.maxHeaderCount) {
    throw new AccordError('REQUEST_HEADERS_TOO_LARGE', { message: `More than ${limits.maxHeaderCount} header fields.`, details: { limit: limits.maxHeaderCount } });
  }
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const size = (rawHeaders[i]?.length ?? 0) + (rawHeaders[i + 1]?.length ?? 0);
    if (size > limits.maxHeaderBytes) {
      throw new AccordError('REQUEST_HEADERS_TOO_LARGE', { message: `A header field is longer than ${limits.maxHeaderBytes} bytes.`, details: { limit: limits.maxHeaderBytes } });
    }
  }
}

/**
 * Checks a parsed JSON body's nesting depth and total number of object keys, without recursion
 * (a deep document must not exhaust the stack of the check meant to refuse it).
 */
export function checkJsonShape(limits: RequestLimits, body: unknown): void {
  if (body === null || typeof body !== 'object') return;
  const stack: [unknown, number][] = [[body, 1]];
  let keys = 0;
  while (stack.length > 0) {
    const [value, depth] = stack.pop() as [unknown, number];
    if (depth > limits.maxJsonDepth) {
      throw new AccordError('REQUEST_JSON_TOO_COMPLEX', { message: `The JSON body is nested deeper than ${limits.maxJsonDepth} levels.`, details: { limit: limits.maxJsonDepth } });
    }
    const children = Array.isArray(value) ? value : Object.values(value as Record<string, unknown>);
    if (!Array.isArray(value)) {
      keys += children.length;
      if (keys > limits.maxJsonKeys) {
        throw new AccordError('REQUEST_JSON_TOO_COMPLEX', { message: `The JSON body has more than ${limits.maxJsonKeys} keys.`, details: { limit: limits.maxJsonKeys } });
      }
    }
    for (const c of children) if (c !== null && typeof c === 'object') stack.push([c, depth + 1]);
  }
}

/** The limits of the configuration. */
export function requestLimits(config: RequestLimits): RequestLimits {
  return Object.freeze({
    maxHeaderCount: config.maxHeaderCount,
    maxHeaderBytes: config.maxHeaderBytes,
    maxUrlLength: config.maxUrlLength,
    maxJsonDepth: config.maxJsonDepth,
    maxJsonKeys: config.maxJsonKeys,
  });
}
