import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { compileForTest } from '../../harness/apps.ts';
import { expensesManifest, type Platform, startPlatform, type TestStage, tenantWithApp } from '../../harness/data-api.ts';
import { engines } from '../../harness/engines.ts';
import { runMatrix } from '../../harness/matrix.ts';

// The authorization matrix of the reference app and of a second, different app, generated from
// their manifests: role × entity × operation × own / other owner / other stage / other tenant,
// each answer compared with what the TypeScript evaluation of the rules says.
const helpdesk = readFileSync(new URL('./apps/helpdesk.app.yaml', import.meta.url), 'utf8');

for (const engine of engines()) {
  describe(`the generated authorization matrix on ${engine.name}`, () => {
    let p: Platform;
    before(async () => {
      p = await startPlatform(engine);
    });
    after(async () => p?.close());

    for (const [name, manifest] of [
      ['expenses (the reference app)', expensesManifest()],
      ['helpdesk (a second test app)', helpdesk],
    ] as const) {
      test(`every answer of ${name} matches its rules`, async () => {
        const app = compileForTest(manifest).ir;
        const acme = await tenantWithApp(p, `acme-${app.name}`, manifest, ['production', 'development']);
        const foreign = (await tenantWithApp(p, `globex-${app.name}`, manifest)).find((s) => s.stage === 'production') as TestStage;
        const prod = acme.find((s) => s.stage === 'production') as TestStage;
        const dev = acme.find((s) => s.stage === 'development') as TestStage;
        const r = await runMatrix(p, app, prod, dev, foreign);
        assert.deepEqual(r.mismatches, []);
        assert.ok(r.checked > 100, `${r.checked} cases`);
        assert.deepEqual([...r.statuses].sort(), [200, 201, 204, 403, 404], 'every kind of answer is expected somewhere');
      });
    }
  });
}
