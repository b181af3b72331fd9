// Reading a manifest file (YAML 1.2 or JSON: one parser for both, so both get line and column
// positions) without trusting it: duplicate keys, tags, several documents and alias bombs are refused.
import { isAlias, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type Scalar } from 'yaml';

/** Limits on the file itself (docs/app-manifest.md, "Limits"). */
export const SOURCE_LIMITS = Object.freeze({
  /** Bytes of the manifest file. */
  maxBytes: 1024 * 1024,
  /** Nodes an alias may expand to, summed over the document (yaml's maxAliasCount). */
  maxAliasCount: 100,
});

export interface Position {
  readonly line: number;
  readonly column: number;
}

export interface SourceProblem {
  readonly code: 'APP_YAML_SYNTAX' | 'APP_YAML_DUPLICATE_KEY' | 'APP_YAML_ALIAS_LIMIT' | 'APP_MANIFEST_TOO_LARGE';
  readonly message: string;
  readonly hint: string;
  readonly position: Position;
}

/** A parsed manifest file: its plain value and a way back from JSON Pointers to positions. */
export interface ManifestSource {
  readonly file: string;
  readonly text: string;
  readonly value: unknown;
  /** Where the value (or, with `key`, the key) at a JSON Pointer starts; the nearest parent if absent. */
  locate(pointer: string, opts?: { key?: boolean }): Position;
  /** Where character `offset` of the string at `pointer` (a rule expression) is in the file. */
  locateInString(pointer: string, offset: number): Position;
}

export type ReadResult = { readonly ok: true; readonly source: ManifestSource } | { readonly ok: false; readonly problems: readonly SourceProblem[] };

/** Splits a JSON Pointer (RFC 6901) into its unescaped segments. */
export function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
}

/** Builds a JSON Pointer from segments. */
export function pointerOf(...segments: readonly (string | number)[]): string {
  return segments.map((s) => `/${String(s).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
}

/** Parses manifest text. `file` is only used in positions and messages. */
export function readManifestText(text: string, file: string): ReadResult {
  const lineCounter = new LineCounter();
  const pos = (offset: number): Position => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, column: p.col };
  };
  if (Buffer.byteLength(text, 'utf8') > SOURCE_LIMITS.maxBytes) {
    return { ok: false, problems: [{ code: 'APP_MANIFEST_TOO_LARGE', message: `the manifest is larger than ${SOURCE_LIMITS.maxBytes} bytes`, hint: 'split the app, or move long texts out of the manifest', position: { line: 1, column: 1 } }] };
  }
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false, merge: false, strict: true, stringKeys: true });
  const problems: SourceProblem[] = [];
  for (const e of doc.errors) {
    const duplicate = e.code === 'DUPLICATE_KEY';
    problems.push({
      code: duplicate ? 'APP_YAML_DUPLICATE_KEY' : 'APP_YAML_SYNTAX',
      message: duplicate ? 'this key appears twice in the same mapping' : e.message.split('\n')[0]?.replace(/\.$/, '') || 'YAML syntax error',
      hint: duplicate ? 'keep one of them: YAML would silently keep the last' : e.code === 'MULTIPLE_DOCS' ? 'a manifest is one YAML document: remove the --- separator' : 'fix the YAML syntax at this position',
      position: pos(e.pos[0]),
    });
  }
  for (const w of doc.warnings) {
    if (w.code === 'TAG_RESOLVE_FAILED') problems.push({ code: 'APP_YAML_SYNTAX', message: w.message.split('\n')[0] ?? 'unknown tag', hint: 'remove the tag: a manifest uses plain YAML values only', position: pos(w.pos[0]) });
  }
  if (problems.length) return { ok: false, problems };
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: SOURCE_LIMITS.maxAliasCount });
  } catch (err) {
    if (err instanceof ReferenceError) {
      return { ok: false, problems: [{ code: 'APP_YAML_ALIAS_LIMIT', message: `aliases expand to more than ${SOURCE_LIMITS.maxAliasCount} nodes`, hint: 'use named conditions instead of YAML anchors and aliases', position: { line: 1, column: 1 } }] };
    }
    throw err;
  }

  const resolve = (n: unknown): unknown => (isAlias(n) ? n.resolve(doc) : n);
  /** The value node at a pointer, the key node of its last segment, and how far the walk got. */
  const walk = (pointer: string): { node: Node | null; key: Node | null; found: boolean } => {
    let node = resolve(doc.contents) as Node | null;
    let key: Node | null = null;
    for (const seg of pointerSegments(pointer)) {
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === seg);
        if (!pair) return { node, key: null, found: false };
        key = pair.key as Node;
        node = resolve(pair.value) as Node | null;
        if (node === null) return { node: key, key, found: true };
      } else if (isSeq(node)) {
        const item = node.items[Number(seg)];
        if (item === undefined) return { node, key: null, found: false };
        key = null;
        node = resolve(item) as Node;
      } else {
        return { node, key, found: false };
      }
    }
    return { node, key, found: true };
  };
  const start = (n: Node | null): Position => pos(n?.range?.[0] ?? 0);

  const source: ManifestSource = {
    file,
    text,
    value,
    locate(pointer, opts = {}) {
      const w = walk(pointer);
      return start(opts.key && w.found && w.key ? w.key : w.node);
    },
    locateInString(pointer, offset) {
      const w = walk(pointer);
      if (!w.found || !isScalar(w.node) || typeof w.node.value !== 'string') return start(w.node);
      return pos(stringOffset(text, w.node as Scalar<string>, offset));
    },
  };
  return { ok: true, source };
}

/** Maps an offset into a scalar's string value to an offset in the file, where the form allows it. */
function stringOffset(text: string, node: Scalar<string>, offset: number): number {
  const [from, to] = node.range ?? [0, 0];
  const raw = text.slice(from, to);
  const value = node.value;
  switch (node.type) {
    case 'PLAIN':
      return raw === value ? from + offset : from;
    case 'QUOTE_SINGLE': {
      // '' stands for one quote; walk the raw text to count value characters.
      let i = 1;
      for (let k = 0; k < offset && i < raw.length - 1; k++) i += raw[i] === "'" && raw[i + 1] === "'" ? 2 : 1;
      return raw.slice(1, -1).includes('\n') ? from : from + i;
    }
    case 'QUOTE_DOUBLE':
      return !raw.includes('\\') && !raw.includes('\n') ? from + 1 + offset : from;
    case 'BLOCK_LITERAL': {
      // Header line, then content lines at one indentation: value line L, column c → that source line.
      const lines = value.slice(0, offset).split('\n');
      const body = raw.slice(raw.indexOf('\n') + 1);
      const indent = /^( *)/.exec(body)?.[1]?.length ?? 0;
      let at = from + raw.indexOf('\n') + 1;
      for (let l = 0; l < lines.length - 1; l++) at = text.indexOf('\n', at) + 1;
      return at + indent + (lines.at(-1)?.length ?? 0);
    }
    default:
      return from;
  }
}
