// Rebuilds src/waf/rules/crs.generated.json from the vendored CRS files (vendor/crs/): run with
// `npm run waf:rules`. A new CRS release is a reviewed change: replace vendor/crs/, update its
// VERSION, run this, and review the diff of the generated file and the bench figures.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertRules } from './convert.ts';

const root = new URL('../../../', import.meta.url).pathname;
const rulesDir = join(root, 'vendor/crs/rules');
const version = readFileSync(join(root, 'vendor/crs/VERSION'), 'utf8');
const commit = /commit: ([0-9a-f]{40})/.exec(version)?.[1];
if (!commit) throw new Error('vendor/crs/VERSION names no commit');

const files = readdirSync(rulesDir)
  .filter((f) => /^REQUEST-9\d\d-.*\.conf$/.test(f))
  .sort()
  .map((name) => ({ name, text: readFileSync(join(rulesDir, name), 'utf8') }));
const set = convertRules(files, (name) => readFileSync(join(rulesDir, name), 'utf8'), `OWASP CRS (coreruleset/coreruleset@${commit}), Apache-2.0, see vendor/crs/LICENSE`);
const out = join(root, 'src/waf/rules/crs.generated.json');
writeFileSync(out, `${JSON.stringify(set, null, 1)}\n`);
process.stdout.write(`${set.rules.length} rules written to ${out}; ${set.skipped.length} skipped\n`);
for (const s of set.skipped) process.stdout.write(`  skipped ${s.id}: ${s.reason}\n`);
