// `npm run bench -- NAME`: runs bench/NAME.ts, a module exporting `run(): Promise<void>`.
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
  .map((f) => f.slice(0, -'.ts'.length))
  .sort();

const name = process.argv[2];
if (!name || !available.includes(name)) {
  console.error(`${name ? `Unknown benchmark: ${name}` : 'Name a benchmark'}. Usage: npm run bench -- <${available.join('|')}>`);
  process.exit(2);
}

// The harness's clean-up then does without node:test (test/harness/at-end.ts).
process.env.ACCORD_BENCH = '1';
const mod = (await import(`./${name}.ts`)) as { run?: () => Promise<void> };
if (typeof mod.run !== 'function') {
  console.error(`bench/${name}.ts exports no run() function.`);
  process.exit(2);
}
await mod.run();
