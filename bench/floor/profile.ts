// Summarises the CPU profiles `BENCH_PROFILE=1 npm run bench -- floor` leaves in
// .bench-tmp/floor-profile/<engine>/: the main thread of each server, cut to the measured rounds
// (windows.json), as microseconds of CPU per request, by package or file (self time, and
// inclusive: time with that package anywhere on the stack), platform beside bare.
// Usage: node --import tsx bench/floor/profile.ts [engine=postgres] [top functions=40]
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}
interface Window {
  startUs: number;
  endUs: number;
  requests: number;
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const engine = process.argv[2] ?? 'postgres';
const top = Number(process.argv[3] ?? 40);
const dir = join(ROOT, '.bench-tmp', 'floor-profile', engine);
const windows = JSON.parse(readFileSync(join(dir, 'windows.json'), 'utf8')) as Record<'platform' | 'bare', Window[]>;

/** The package, Node module or source file a frame belongs to; V8's pseudo-frames and natives by name. */
function bucketOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith('(') ? functionName : `native ${functionName}`;
  const m = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1] as string;
  if (url.startsWith('node:')) return url;
  const s = /\/((src|bench)\/.*)$/.exec(url);
  return s ? (s[1] as string) : url;
}

function summarise(side: 'platform' | 'bare') {
  // The main thread is thread 0 in --cpu-prof's file names (CPU.<date>.<time>.<pid>.<tid>.<seq>).
  const file = readdirSync(join(dir, side)).find((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f));
  if (!file) throw new Error(`no main-thread profile in ${join(dir, side)}`);
  const prof = JSON.parse(readFileSync(join(dir, side, file), 'utf8')) as Profile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const ws = windows[side];
  const requests = ws.reduce((a, w) => a + w.requests, 0);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const fns = new Map<string, number>();
  let t = prof.startTime;
  let inWindow = 0;
  let idle = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i] ?? 0;
    // A sample's delta is the time since the previous one; it belongs to the sample.
    const dt = prof.timeDeltas[i + 1] ?? 0;
    if (!ws.some((w) => t >= w.startUs && t < w.endUs)) continue;
    inWindow += dt;
    const node = byId.get(prof.samples[i] as number) as ProfileNode;
    const b = bucketOf(node.callFrame);
    if (b === '(idle)') {
      idle += dt;
      continue;
    }
    self.set(b, (self.get(b) ?? 0) + dt);
    const f = `${node.callFrame.functionName || '(anonymous)'} ${b}:${node.callFrame.lineNumber + 1}`;
    fns.set(f, (fns.get(f) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const fb = bucketOf((byId.get(id) as ProfileNode).callFrame);
      if (fb === '(root)' || seen.has(fb)) continue;
      seen.add(fb);
      inclusive.set(fb, (inclusive.get(fb) ?? 0) + dt);
    }
  }
  return { requests, inWindow, idle, busy: inWindow - idle, self, inclusive, fns };
}

const p = summarise('platform');
const b = summarise('bare');
const us = (v: number, n: number) => (v / n).toFixed(1);
console.log(`${engine}: platform ${p.requests} requests in ${(p.inWindow / 1e6).toFixed(1)} s, bare ${b.requests} in ${(b.inWindow / 1e6).toFixed(1)} s`);
console.log(`main thread idle: platform ${((100 * p.idle) / p.inWindow).toFixed(1)}%, bare ${((100 * b.idle) / b.inWindow).toFixed(1)}%`);
console.log(`busy µs per request: platform ${us(p.busy, p.requests)}, bare ${us(b.busy, b.requests)}`);
for (const [title, key] of [
  ['self', 'self'],
  ['inclusive', 'inclusive'],
] as const) {
  console.log(`\n| ${title}: package or file | platform µs/request | bare µs/request | difference |`);
  console.log('|---|---:|---:|---:|');
  const keys = new Set([...p[key].keys(), ...b[key].keys()]);
  const rows = [...keys].map((k) => ({ k, pv: (p[key].get(k) ?? 0) / p.requests, bv: (b[key].get(k) ?? 0) / b.requests }));
  for (const r of rows.sort((x, y) => y.pv - y.bv - (x.pv - x.bv)).slice(0, 30)) {
    console.log(`| ${r.k} | ${r.pv.toFixed(1)} | ${r.bv.toFixed(1)} | ${(r.pv - r.bv).toFixed(1)} |`);
  }
}
console.log(`\nplatform, top functions by self time (µs per request):`);
for (const [k, v] of [...p.fns].sort((x, y) => y[1] - x[1]).slice(0, top)) console.log(`${us(v, p.requests).padStart(6)}  ${k}`);
