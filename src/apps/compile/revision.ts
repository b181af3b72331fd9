import { createHash } from 'node:crypto';
import { canonicalJson } from '../../audit-chain/index.ts';
import type { AppIR } from './ir.ts';

export interface Revision {
  /** `sha256:` + 64 hex digits over the canonical IR and the action sources. */
  readonly hash: string;
  /** The first 12 hex digits, for people (like a short git id). */
  readonly short: string;
  /** The canonical JSON that was hashed. */
  readonly canonical: string;
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

/**
 * The content address of a revision: SHA-256 of the canonical JSON (sorted keys, no whitespace) of
 * the IR together with each action source's SHA-256, by path. The same content gives the same hash
 * whatever the manifest's spelling; any change of meaning or of an action changes it.
 */
export function revisionOf(app: AppIR, actionSources: ReadonlyMap<string, string>): Revision {
  const actions = [...actionSources.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([path, text]) => ({ path, sha256: sha256(text) }));
  const canonical = canonicalJson({ v: 1, app, actions });
  const hex = sha256(canonical);
  return { hash: `sha256:${hex}`, short: hex.slice(0, 12), canonical };
}
