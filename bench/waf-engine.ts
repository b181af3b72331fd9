// `npm run bench -- waf-engine`: CPU per WafEngine.evaluate on the two benign requests of the
// throughput part of bench/waf.ts (a GET with a path, two query values and a few headers; a 1 KB
// JSON POST), built fresh per request as the hook builds them, with the prefilter (what the
// server runs) and without it (every rule on every value, the reference the prefilter is tested
// against).
// CPU time of this process (process.cpuUsage), so other load on the machine inflates it less
// than wall time. Knob: BENCH_EVALS (default 3000 per case).
import { type AttributeIR, type AttributeType, entityFieldKinds } from '../src/apps/index.ts';
import { crsRuleSet, type FieldKind, loadLibinjection, WafEngine, wafRequestOf } from '../src/waf/index.ts';
import { positiveInt } from './lib.ts';

export async function run(): Promise<void> {
  const n = positiveInt('BENCH_EVALS', 3000);
  const injection = loadLibinjection();
  const engines = { prefilter: new WafEngine(crsRuleSet(), injection), everyRule: new WafEngine(crsRuleSet(), injection, { prefilter: false }) };
  const bio = 'Mathematician and writer, chiefly known for her work on the proposed mechanical general-purpose computer, the Analytical Engine. '.repeat(7).slice(0, 900);
  const kb = JSON.stringify({ name: 'Ada Lovelace', email: 'ada@example.org', notes: '', bio });
  const headers = { host: 'localhost:8443', authorization: 'Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl', 'user-agent': 'accord-sdk/1.0', accept: 'application/json' };
  const cases: Record<string, () => ReturnType<typeof wafRequestOf>> = {
    get: () => wafRequestOf({ method: 'GET', url: '/t/acme/production/apps/crm/api/Contact?limit=20&sort=name', headers, params: { tenant: 'acme', stage: 'production', app: 'crm', entity: 'Contact' }, query: Object.fromEntries(new URLSearchParams('limit=20&sort=name')) }),
    post: () => wafRequestOf({ method: 'POST', url: '/t/acme/production/apps/crm/api/Contact', headers: { ...headers, 'content-type': 'application/json' }, params: { tenant: 'acme', stage: 'production', app: 'crm', entity: 'Contact' }, body: JSON.parse(kb) }),
  };
  // The kinds the hook passes on the data API (its provider, entityFieldKinds): path and list
  // parameters are the data API's own, name and bio plain text, email an email. `typed` cases use them.
  const attr = (name: string, type: AttributeType): AttributeIR => ({ kind: 'attribute', name, column: name, type, description: null, required: false, unique: false, immutable: false, default: null, min: null, max: null, minLength: null, maxLength: null, pattern: null, classification: 'internal', encrypted: false, searchable: false });
  const kinds: ReadonlyMap<string, FieldKind> = entityFieldKinds([attr('name', { kind: 'text' }), attr('email', { kind: 'text', format: 'email' }), attr('notes', { kind: 'text' }), attr('bio', { kind: 'text' })]);
  const optsOf = (name: string) => ({ paranoiaLevel: 1, ...(name.endsWith('Typed') ? { fieldKinds: kinds } : {}) });
  Object.assign(cases, { getTyped: cases.get, postTyped: cases.post });
  const out: Record<string, Record<string, number>> = {};
  for (const [name, make] of Object.entries(cases)) {
    out[name] = {};
    for (const [label, engine] of Object.entries(engines)) {
      const evals = label === 'everyRule' ? Math.max(1, Math.floor(n / 10)) : n;
      for (let i = 0; i < Math.min(evals, 300); i++) engine.evaluate(make(), optsOf(name));
      const requests = Array.from({ length: evals }, make);
      const start = process.cpuUsage();
      let score = 0;
      for (const r of requests) score += engine.evaluate(r, optsOf(name)).score;
      const used = process.cpuUsage(start);
      if (score !== 0) throw new Error(`${name} scored ${score}: not a benign request`);
      (out[name] as Record<string, number>)[label] = Math.round(((used.user + used.system) / evals) * 10) / 10;
    }
    console.log(`${name}: ${out[name]?.prefilter} µs CPU per evaluate with the prefilter, ${out[name]?.everyRule} µs evaluating every rule`);
  }
}
