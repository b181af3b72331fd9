// The `fortunes` quotes (Debian package `fortunes`) the WAF's natural-text false-positive figure
// is measured on: bench/waf.ts sends them over HTTPS, bench/waf/analyze.ts to the engine.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const FORTUNES = '/usr/share/games/fortunes';

/** Every `step`-th quote of the fortune files (not the `.dat` indexes), in file order. */
export function fortunes(step: number): string[] {
  const quotes: string[] = [];
  for (const f of readdirSync(FORTUNES).sort()) {
    if (f.includes('.')) continue;
    for (const q of readFileSync(join(FORTUNES, f), 'utf8').split(/\n%\n/)) if (q.trim()) quotes.push(q.trim());
  }
  return quotes.filter((_q, i) => i % step === 0);
}
