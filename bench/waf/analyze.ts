// `node --import tsx bench/waf/analyze.ts`: which rules, on which fields, make the false positives
// of the WAF benchmark (issue 14). The engine is run in-process on the requests bench/waf.ts sends
// (the fortunes quotes as a form, JSON and query value; the realistic API set with the manifest's
// kinds), built as the hook builds them, without HTTPS: the same verdicts in a fraction of the
// time, with the rule ids and fields the HTTP answers do not show. It measures, it does not tune:
// a rule is changed only for a reason that holds for any app (docs/waf.md).
// Knobs: BENCH_FORTUNE_STEP (5), BENCH_PLS (1,2,3,4), ANALYZE_TOP (12).
import { fortunes } from './fortunes.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crsEngine, loadLibinjection, type WafRequest, wafRequestOf } from '../../src/waf/index.ts';
import { positiveInt } from '../lib.ts';
import { MANIFEST_KINDS, type TrafficRequest } from './traffic.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// What node's client and the server add to every request of the benchmark.
const BASE_HEADERS = { host: '127.0.0.1:8443', connection: 'keep-alive' };


function fortuneRequests(q: string): WafRequest[] {
  const form = new URLSearchParams({ comment: q }).toString();
  const json = JSON.stringify({ comment: q });
  const ua = { 'user-agent': 'Mozilla/5.0' };
  return [
    wafRequestOf({ method: 'POST', url: '/post', headers: { ...BASE_HEADERS, ...ua, 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(form)) }, params: { '*': 'post' }, body: { comment: q } }),
    wafRequestOf({ method: 'POST', url: '/post', headers: { ...BASE_HEADERS, ...ua, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(json)) }, params: { '*': 'post' }, body: { comment: q } }),
    wafRequestOf({ method: 'GET', url: `/get?${new URLSearchParams({ comment: q })}`, headers: { ...BASE_HEADERS, ...ua }, params: { '*': 'get' }, query: { comment: q } }),
  ];
}

function trafficRequest(t: TrafficRequest): WafRequest {
  const body = t.body === undefined ? undefined : JSON.stringify(t.body);
  const url = `/echo${t.url}`;
  const q = url.indexOf('?');
  const query = q < 0 ? {} : Object.fromEntries(new URLSearchParams(url.slice(q + 1)));
  const headers: Record<string, string> = { ...BASE_HEADERS, 'user-agent': 'accord-sdk/1.0', ...(t.contentType ? { 'content-type': t.contentType } : {}), ...(body ? { 'content-length': String(Buffer.byteLength(body)) } : {}) };
  return wafRequestOf({ method: t.method, url, headers, params: { '*': (q < 0 ? url : url.slice(0, q)).slice('/echo/'.length) }, query, ...(t.body !== undefined ? { body: t.body } : {}) });
}

const pct = (a: number, b: number) => (b === 0 ? 0 : Math.round((1000 * a) / b) / 10);

export function analyze(): void {
  const step = positiveInt('BENCH_FORTUNE_STEP', 5);
  const top = positiveInt('ANALYZE_TOP', 12);
  const pls = (process.env.BENCH_PLS ?? '1,2,3,4').split(',').map(Number);
  const engine = crsEngine(loadLibinjection());
  const quotes = fortunes(step).flatMap(fortuneRequests);
  const traffic = readFileSync(join(ROOT, 'bench', 'waf', 'traffic.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => trafficRequest(JSON.parse(l) as TrafficRequest));
  const sets = { fortunes: { requests: quotes, kinds: undefined }, 'api (no kinds)': { requests: traffic, kinds: undefined }, 'api (manifest kinds)': { requests: traffic, kinds: MANIFEST_KINDS } };
  for (const pl of pls) {
    for (const [name, s] of Object.entries(sets)) {
      let blocked = 0;
      // rule id @ field → requests blocked with that rule among the matches
      const byRuleField = new Map<string, number>();
      for (const r of s.requests) {
        const v = engine.evaluate(r, { paranoiaLevel: pl, ...(s.kinds ? { fieldKinds: s.kinds } : {}) });
        if (v.score < 5) continue;
        blocked++;
        for (const m of v.matches) {
          const k = `${m.ruleId} ${m.field.replace(/^ARGS:(comment|path)$/, 'ARGS:$1')}`;
          byRuleField.set(k, (byRuleField.get(k) ?? 0) + 1);
        }
      }
      const list = [...byRuleField].sort((a, b) => b[1] - a[1]).slice(0, top);
      console.log(`PL${pl} ${name}: ${blocked}/${s.requests.length} = ${pct(blocked, s.requests.length)}%`);
      for (const [k, n] of list) console.log(`    ${String(n).padStart(5)}  ${k}`);
    }
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) analyze();
