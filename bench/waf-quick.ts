import { readFileSync } from 'node:fs';
import { WafEngine } from '../src/waf/engine.ts';
import { wafRequestOf } from '../src/waf/request.ts';
const set = JSON.parse(readFileSync('src/waf/rules/crs.generated.json', 'utf8'));
import { loadLibinjection } from '../src/waf/libinjection.ts';
const engine = new WafEngine(set, loadLibinjection());
const lines = readFileSync('/work/shared/corpora/crs/attack-public.jsonl', 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const pl = Number(process.argv[2] ?? 4);
const by = new Map<string, [number, number]>();
const miss: string[] = [];
let t = process.hrtime.bigint();
for (const o of lines) {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.headers as Record<string, string>)) headers[k.toLowerCase()] = v;
  const q = o.uri.indexOf('?');
  let query: Record<string, string> = {};
  try { query = Object.fromEntries(new URLSearchParams(q < 0 ? '' : o.uri.slice(q + 1))); } catch {}
  let body: unknown;
  const ct = headers['content-type'] ?? '';
  if (o.body != null) {
    if (/json/.test(ct)) { try { body = JSON.parse(o.body); } catch { body = o.body; } }
    else if (/x-www-form-urlencoded/.test(ct) || ct === '') body = Object.fromEntries(new URLSearchParams(o.body));
    else body = o.body;
  }
  const req = wafRequestOf({ method: o.method, url: o.uri, headers, query, body });
  const v = engine.evaluate(req, { paranoiaLevel: pl });
  const key = `${o.category} PL${o.pl}`;
  const e = by.get(key) ?? [0, 0];
  e[1]++;
  if (v.score >= 5) e[0]++; else miss.push(`${o.id} ${o.uri.slice(0,80)} ${JSON.stringify(o.body)?.slice(0,80)}`);
  by.set(key, e);
}
const ms = Number(process.hrtime.bigint() - t) / 1e6;
let a = 0, b = 0;
for (const [k, [d, n]] of [...by].sort()) { console.log(k, d, n, ((100 * d) / n).toFixed(1)); a += d; b += n; }
console.log('total', a, b, ((100 * a) / b).toFixed(1), `${(ms / lines.length).toFixed(3)} ms/req`);
import { writeFileSync } from 'node:fs';
writeFileSync('/tmp/wafq/miss.txt', miss.join('\n'));
