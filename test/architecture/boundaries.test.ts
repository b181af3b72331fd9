import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

// The layout rules of docs/architecture.md, checked on the import graph of src/ (tests excluded:
// they may reach into what they test).
const src = fileURLToPath(new URL('../../src/', import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return files(p);
    return p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : [];
  });
}

// Folders under src/crypto are modules of their own (kms, keyring, field); elsewhere the
// top-level folder is the module. Files directly in src/ (main.ts) belong to none.
function moduleOf(file: string): string | undefined {
  const parts = relative(src, file).split(sep);
  if (parts.length < 2) return undefined;
  if (parts[0] === 'crypto' && parts.length >= 3) return `crypto/${parts[1]}`;
  return parts[0];
}

const IMPORT = /^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/gm;

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT)]
    .map((m) => m[1] ?? m[2] ?? m[3])
    .filter((s): s is string => s?.startsWith('.') === true)
    .map((s) => resolve(dirname(file), s));
}

const all = files(src);
const graph = new Map(all.map((f) => [f, importsOf(f)]));
const rel = (f: string) => relative(src, f).split(sep).join('/');

test('a module imports another module only through its index.ts', () => {
  const bad: string[] = [];
  for (const [from, targets] of graph) {
    for (const to of targets) {
      const a = moduleOf(from);
      const b = moduleOf(to);
      if (b === undefined || a === b) continue;
      if (rel(to) !== `${b}/index.ts`) bad.push(`${rel(from)} -> ${rel(to)}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('the HTTP kit, the kernel and the low layers import no capability', () => {
  // What each low layer may import (besides itself); see "Dependency direction".
  const allowed: Record<string, readonly string[]> = {
    http: ['kernel', 'audit-chain', 'db', 'errors'],
    // The kernel unwraps the gateway role's password with the KMS.
    kernel: ['audit-chain', 'crypto/kms', 'db', 'errors'],
    'audit-chain': ['db', 'errors'],
    db: ['errors'],
    config: ['errors'],
    errors: [],
    'crypto/field': ['errors'],
    'crypto/kms': ['errors'],
    'crypto/keyring': ['crypto/kms', 'crypto/field', 'db', 'errors'],
  };
  const bad: string[] = [];
  for (const [from, targets] of graph) {
    const a = moduleOf(from);
    if (a === undefined || !(a in allowed)) continue;
    for (const to of targets) {
      const b = moduleOf(to);
      if (b !== undefined && b !== a && !allowed[a]?.includes(b)) bad.push(`${rel(from)} -> ${rel(to)}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('no import cycle exists between modules or between files', () => {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string, edges: (n: string) => string[]) => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of edges(node)) {
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next].join(' -> '));
      else if (!state.has(next)) visit(next, edges);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const f of graph.keys()) if (!state.has(f)) visit(f, (n) => (graph.get(n) ?? []).filter((t) => graph.has(t)));
  const fileCycles = cycles.map((c) => c.split(' -> ').map((p) => rel(p)).join(' -> '));
  // Module level: an edge a -> b when any file of a imports a file of b.
  const modEdges = new Map<string, Set<string>>();
  for (const [from, targets] of graph) {
    const a = moduleOf(from);
    if (a === undefined) continue;
    for (const to of targets) {
      const b = moduleOf(to);
      if (b !== undefined && b !== a) modEdges.set(a, (modEdges.get(a) ?? new Set()).add(b));
    }
  }
  cycles.length = 0;
  state.clear();
  for (const m of modEdges.keys()) if (!state.has(m)) visit(m, (n) => [...(modEdges.get(n) ?? [])]);
  assert.deepEqual({ files: fileCycles, modules: cycles }, { files: [], modules: [] });
});
