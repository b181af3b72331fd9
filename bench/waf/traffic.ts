// The realistic API traffic set of the WAF benchmark (issue 14): requests an enterprise app's
// data API receives, built deterministically from small vocabularies (names, addresses, IBANs,
// markdown with code, ISO dates, UUIDs, JSON Patch, data URLs, free text). Written once to
// bench/waf/traffic.jsonl by `node --import tsx bench/waf/traffic.ts` and kept in the repository;
// never tuned against the rules (it was written before the figures were read).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type AttributeIR, type AttributeType, entityFieldKinds } from '../../src/apps/index.ts';
import type { FieldKind } from '../../src/waf/index.ts';

export interface TrafficRequest {
  readonly id: string;
  readonly method: 'GET' | 'POST' | 'PATCH' | 'PUT';
  readonly url: string;
  readonly contentType?: string;
  readonly body?: unknown;
}

/** The reference app's attributes as its manifest declares them (entity by entity, merged). */
const MANIFEST: ReadonlyArray<readonly [string, AttributeType, string?]> = [
  // Contact
  ['name', { kind: 'text' }],
  ['email', { kind: 'text', format: 'email' }],
  ['street', { kind: 'text' }],
  ['city', { kind: 'text' }],
  ['country', { kind: 'enum', values: ['GB', 'FR', 'DE', 'NG', 'JP', 'BR', 'US', 'CH', 'PL', 'CA'] }],
  ['iban', { kind: 'text' }],
  ['birthDate', { kind: 'date' }],
  ['website', { kind: 'text', format: 'url' }],
  ['avatar', { kind: 'text', format: 'data-url' }],
  ['createdAt', { kind: 'datetime' }],
  // Ticket
  ['title', { kind: 'text' }],
  ['description', { kind: 'text', format: 'markdown' }],
  ['status', { kind: 'enum', values: ['open', 'in-progress', 'closed'] }],
  ['priority', { kind: 'enum', values: ['low', 'normal', 'high'] }],
  ['dueAt', { kind: 'datetime' }],
  ['assignee', { kind: 'user' }],
  // A list of labels: the data API has no array type, a list is a json attribute.
  ['tags', { kind: 'json' }],
  ['snippet', { kind: 'text', format: 'code' }],
  // Invoice
  ['number', { kind: 'text' }, '^INV-[0-9]{4}-[0-9]{5}$'],
  ['customer', { kind: 'text' }],
  ['lines', { kind: 'json' }],
  ['notes', { kind: 'text', format: 'markdown' }],
  ['settings', { kind: 'json' }],
  // The JSON Patch documents of the set stand for a change document an app declares: an enum of
  // operations, a pointer of names and indexes, and the new value (plain text).
  ['op', { kind: 'enum', values: ['add', 'remove', 'replace', 'test'] }],
  ['path', { kind: 'text' }, '^(/[A-Za-z0-9_-]+)+$'],
  ['value', { kind: 'text' }],
];

function attribute(name: string, type: AttributeType, pattern?: string): AttributeIR {
  return { kind: 'attribute', name, column: name, type, description: null, required: false, unique: false, immutable: false, default: null, min: null, max: null, minLength: null, maxLength: null, pattern: pattern ?? null, classification: 'internal', encrypted: false, searchable: false };
}

/**
 * The field kinds the data API gives the WAF for the reference app: computed by the data API's
 * own provider function (entityFieldKinds) from the manifest above, so the benchmark measures the
 * mapping production runs, list parameters (filter, sort, cursor, ...) included.
 */
export const MANIFEST_KINDS: ReadonlyMap<string, FieldKind> = entityFieldKinds(MANIFEST.map(([n, t, p]) => attribute(n, t, p)));

const FIRST = ['Ada', 'Grace', 'Linus', 'Margaret', 'Alan', 'Zoë', 'José', 'Siobhán', 'Mohammed', 'Ngozi', 'Wei', 'Priya', "D'Arcy", 'Jean-Luc', 'Björk', 'Olu'];
const LAST = ["O'Brien", 'Lovelace', 'Hopper', 'Torvalds', 'Hamilton', 'Turing', 'García Márquez', 'Müller', 'Nakamura', 'Okafor', 'Dubois', 'Select', 'Union', 'Drop', 'Execute', 'Smith-Jones'];
const STREETS = ['12 Select Avenue', '1 Union Square', '221B Baker Street', 'Rue de la Paix 5', 'Hauptstraße 10', '4/7 Harbour Rd', 'Calle Mayor, 3º 2ª', 'Flat 2, 10 Downing St.', 'PO Box 1234', '1600 Amphitheatre Pkwy'];
const CITIES = ['London', 'Paris', 'Berlin', 'Lagos', 'Tokyo', 'São Paulo', 'New York', 'Zürich', 'Kraków', 'Montréal'];
const IBANS = ['GB82 WEST 1234 5698 7654 32', 'DE89370400440532013000', 'FR1420041010050500013M02606', 'NL91ABNA0417164300', 'ES9121000418450200051332'];
const SENTENCES = [
  'The union agreed to the new schedule after a short meeting.',
  'Please select the items you want and drop the rest in the bin.',
  'Exec summary: revenue is up 12% and churn is down; see the appendix.',
  'We will update the table of contents before the review on Monday.',
  "Let's insert a short break between the two sessions — people asked for it.",
  'Where are the keys? Ask Bob or Alice; one of them has them.',
  'Order by date, then by priority (high first), and group by owner.',
  'If the delivery fails, call the courier and cancel the order.',
  'He said: "it works on my machine", which is not an answer.',
  'Costs: €1,200 for hardware & £300 for licences (incl. VAT).',
  'The script ran at 3 a.m. and nobody noticed until lunch.',
  'Follow up with procurement; the PO number is 4500012345.',
  'Having / while / and / or — the grammar checker complained about slashes.',
  'Remember: 1 = 1 is true, but that is maths, not a query.',
  'The onboarding checklist: laptop, badge, accounts, and a welcome lunch.',
];
const MARKDOWN = [
  '# Release notes\n\n- Fixed the `SELECT` menu on mobile\n- Added *union* types to the SDK\n\n```ts\nconst x: A | B = pick();\n```',
  '## How to query\n\nUse the filter box, e.g. `status = "open" and owner = me`.\n\n> Tip: press <kbd>Ctrl</kbd>+<kbd>K</kbd>.',
  'Steps:\n1. Run `npm install`\n2. Run `npm test -- --watch`\n3. Open http://localhost:3000/\n\n```sh\ncurl -s https://example.org/api | jq .items\n```',
  '**Important**: the `rm -rf` in the old script was removed; use `make clean` instead.',
  '| Column | Type |\n|---|---|\n| id | uuid |\n| name | text |\n\nSee [the docs](https://docs.example.org/data#types).',
  "```sql\nSELECT id, name FROM contacts WHERE city = 'Paris' ORDER BY name;\n```\nThis is the report query the finance team uses.",
  '```python\nfor row in rows:\n    print(row["name"])\n```\nand `eval` is never used.',
];
const SNIPPETS = ['function add(a, b) { return a + b; }', "SELECT * FROM t WHERE id = $1", 'if [ -f ~/.bashrc ]; then . ~/.bashrc; fi', '<div class="card">{{ name }}</div>', 'import os\nos.path.join(base, name)'];
const WEBSITES = ['https://example.org/', 'https://www.acme.test/about?lang=en', 'http://localhost:8080/health', 'https://docs.example.org/a/b/c#section-2', 'https://shop.example.com/p/123?ref=newsletter&utm_source=mail'];
const AVATAR = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

/** A small deterministic generator (no Math.random: the set is the same on every run). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function uuid(r: () => number): string {
  const h = () => Math.floor(r() * 16).toString(16);
  const part = (n: number) => Array.from({ length: n }, h).join('');
  return `${part(8)}-${part(4)}-4${part(3)}-a${part(3)}-${part(12)}`;
}

/** Builds the traffic set (≥ 500 requests). */
export function buildTraffic(): TrafficRequest[] {
  const r = lcg(14);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const date = () => `20${10 + Math.floor(r() * 15)}-${String(1 + Math.floor(r() * 12)).padStart(2, '0')}-${String(1 + Math.floor(r() * 28)).padStart(2, '0')}`;
  const base = '/t/acme/production/apps/crm/api';
  const out: TrafficRequest[] = [];
  for (let i = 0; i < 140; i++) {
    const first = pick(FIRST);
    const last = pick(LAST);
    out.push({
      id: `contact-create-${i}`,
      method: 'POST',
      url: `${base}/Contact`,
      contentType: 'application/json',
      body: {
        name: `${first} ${last}`,
        email: `${first.toLowerCase().replace(/[^a-z]/g, '')}.${i}@example.org`,
        street: pick(STREETS),
        city: pick(CITIES),
        country: pick(['GB', 'FR', 'DE', 'NG', 'JP', 'BR', 'US', 'CH', 'PL', 'CA']),
        iban: pick(IBANS),
        birthDate: date(),
        website: pick(WEBSITES),
        notes: `${pick(SENTENCES)} ${pick(SENTENCES)}`,
        ...(i % 4 === 0 ? { avatar: AVATAR } : {}),
      },
    });
  }
  for (let i = 0; i < 100; i++) {
    out.push({
      id: `ticket-${i}`,
      method: i % 3 === 0 ? 'PUT' : 'POST',
      url: i % 3 === 0 ? `${base}/Ticket/${uuid(r)}` : `${base}/Ticket`,
      contentType: 'application/json',
      body: {
        title: pick(SENTENCES).slice(0, 60),
        description: pick(MARKDOWN),
        status: pick(['open', 'in-progress', 'closed']),
        priority: pick(['low', 'normal', 'high']),
        dueAt: `${date()}T${String(Math.floor(r() * 24)).padStart(2, '0')}:30:00Z`,
        assignee: uuid(r),
        tags: [pick(['billing', 'ux', 'backend', 'select-menu', 'union-types']), pick(['p1', 'p2', 'customer'])],
        ...(i % 5 === 0 ? { snippet: pick(SNIPPETS) } : {}),
      },
    });
  }
  for (let i = 0; i < 80; i++) {
    const ops = [
      { op: 'replace', path: '/name', value: `${pick(FIRST)} ${pick(LAST)}` },
      { op: 'add', path: '/tags/-', value: pick(['vip', 'partner', 'union member', 'select customer']) },
      { op: 'remove', path: `/addresses/${Math.floor(r() * 3)}` },
      { op: 'replace', path: '/notes', value: pick(SENTENCES) },
      { op: 'test', path: '/version', value: Math.floor(r() * 20) },
    ];
    out.push({ id: `patch-${i}`, method: 'PATCH', url: `${base}/Contact/${uuid(r)}`, contentType: 'application/json-patch+json', body: ops.slice(0, 1 + Math.floor(r() * ops.length)) });
  }
  for (let i = 0; i < 120; i++) {
    const q = new URLSearchParams();
    q.set('filter', pick([`city == "${pick(CITIES)}"`, `name.startsWith("${pick(LAST)}")`, `status in ["open", "closed"]`, `createdAt > timestamp("${date()}T00:00:00Z")`, `priority == "high" && assignee == "${uuid(r)}"`]));
    q.set('sort', pick(['name', '-createdAt', 'city,name']));
    q.set('limit', String(10 + Math.floor(r() * 90)));
    if (i % 3 === 0) q.set('cursor', Buffer.from(JSON.stringify({ after: uuid(r) })).toString('base64url'));
    out.push({ id: `list-${i}`, method: 'GET', url: `${base}/${pick(['Contact', 'Ticket', 'Invoice'])}?${q}` });
  }
  for (let i = 0; i < 80; i++) {
    out.push({
      id: `invoice-${i}`,
      method: 'POST',
      url: `${base}/Invoice`,
      contentType: 'application/json',
      body: {
        number: `INV-${2024}-${String(i).padStart(5, '0')}`,
        customer: `${pick(FIRST)} ${pick(LAST)}`,
        lines: [
          { description: pick(['Consulting (2 days)', 'Licence: Enterprise plan', 'Support & maintenance', 'Travel — Paris/London', 'Hardware: 3× laptops']), amount: Math.round(r() * 100000) / 100 },
          { description: pick(['Discount (10%)', 'Shipping', 'VAT 20%']), amount: Math.round(r() * 5000) / 100 },
        ],
        iban: pick(IBANS),
        dueAt: date(),
        notes: pick(MARKDOWN),
        settings: { currency: pick(['EUR', 'GBP', 'USD']), reminders: r() > 0.5, template: pick(['classic', 'modern']) },
      },
    });
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const set = buildTraffic();
  writeFileSync(new URL('./traffic.jsonl', import.meta.url), `${set.map((x) => JSON.stringify(x)).join('\n')}\n`);
  process.stdout.write(`${set.length} requests written to bench/waf/traffic.jsonl\n`);
}
