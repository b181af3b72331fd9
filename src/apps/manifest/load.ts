import { readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import type { AppIR } from '../compile/ir.ts';
import { type Revision, revisionOf } from '../compile/revision.ts';
import type { Diagnostic } from '../validate/diagnostics.ts';
import { validateManifest } from '../validate/validate.ts';
import { readManifestText, SOURCE_LIMITS } from './source.ts';

/** The outcome of compiling a manifest: every diagnostic, and the IR and revision when valid. */
export interface CompiledManifest {
  readonly ok: boolean;
  readonly diagnostics: readonly Diagnostic[];
  readonly errors: readonly Diagnostic[];
  readonly warnings: readonly Diagnostic[];
  readonly ir?: AppIR;
  readonly revision?: Revision;
  readonly actionSources: ReadonlyMap<string, string>;
}

export interface CompileOptions {
  /** The file name shown in diagnostics. */
  readonly file: string;
  /** Reads an action source by its path relative to the manifest. */
  readonly readFile?: (path: string) => string | undefined;
}

/** Compiles manifest text (YAML or JSON) into diagnostics, and the IR and revision when valid. */
export function compileManifestText(text: string, opts: CompileOptions): CompiledManifest {
  const read = readManifestText(text, opts.file);
  if (!read.ok) {
    const errors = read.problems.map((p): Diagnostic => ({ severity: 'error', code: p.code, pointer: '', file: opts.file, line: p.position.line, column: p.position.column, message: p.message, hint: p.hint }));
    return { ok: false, diagnostics: errors, errors, warnings: [], actionSources: new Map() };
  }
  const v = validateManifest(read.source, opts.readFile ? { readFile: opts.readFile } : {});
  return { ...v, ...(v.ir ? { revision: revisionOf(v.ir, v.actionSources) } : {}) };
}

/**
 * Reads an action source next to the manifest: a regular file, at most the manifest size limit,
 * that does not leave the manifest's folder (also through symbolic links).
 */
export function actionReader(manifestPath: string): (path: string) => string | undefined {
  const base = realpathSync(dirname(manifestPath));
  return (path) => {
    try {
      const real = realpathSync(join(base, path));
      const rel = relative(base, real);
      if (rel.startsWith(`..${sep}`) || rel === '..') return undefined;
      const st = statSync(real);
      if (!st.isFile() || st.size > SOURCE_LIMITS.maxBytes) return undefined;
      return readFileSync(real, 'utf8');
    } catch {
      return undefined;
    }
  };
}
