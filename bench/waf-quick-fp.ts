import { readdirSync, readFileSync } from 'node:fs';
import { WafEngine } from '../src/waf/engine.ts';
import { wafRequestOf } from '../src/waf/request.ts';
const set = JSON.parse(readFileSync('src/waf/rules/crs.generated.json', 'utf8'));
import { loadLibinjection } from '../src/waf/libinjection.ts';
const engine = new WafEngine(set, loadLibinjection());
const dir = '/usr/share/games/fortunes';
const quotes: string[] = [];
for (const f of readdirSync(dir)) { if (/\./.test(f)) continue; for (const q of readFileSync(`${dir}/${f}`, 'utf8').split(/\n%\n/)) if (q.trim()) quotes.push(q.trim()); }
const pl = Number(process.argv[2] ?? 1);
let fp = 0; const rules = new Map<number, number>();
for (const q of quotes) {
  const headers = { host: 'localhost', 'user-agent': 'Mozilla/5.0', accept: 'application/json', 'content-type': 'application/json' };
  const v = engine.evaluate(wafRequestOf({ method: 'POST', url: '/post', headers, body: { comment: q } }), { paranoiaLevel: pl });
  if (v.score >= 5) { fp++; for (const m of v.matches) rules.set(m.ruleId, (rules.get(m.ruleId) ?? 0) + 1); }
}
console.log(quotes.length, fp, ((100 * fp) / quotes.length).toFixed(2), [...rules].sort((a, b) => b[1] - a[1]).slice(0, 15));
