import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { manifestJsonSchema } from '../../../src/apps/index.ts';
import { cli, STACK_LINE } from '../../harness/cli.ts';

// These run without any server or database: validation is local.
const home = mkdtempSync(join(tmpdir(), 'accord-apps-cli-'));
const env = { HOME: home };

describe('accord app validate', () => {
  test('accepts the reference app and prints its revision', async () => {
    const r = await cli(['app', 'validate', 'examples/expenses/expenses.app.yaml', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.valid, true);
    assert.equal(out.app, 'expenses');
    assert.match(out.revision, /^sha256:[0-9a-f]{64}$/);
  });

  test('refuses a broken manifest with every error, exit code 1 and no stack trace', async () => {
    const file = join(home, 'broken.app.yaml');
    writeFileSync(file, 'app: Shop\nversion: "1.0"\nroles: { Clerk: {} }\nentities:\n  Order:\n    attributes:\n      title: { type: txt }\n    access:\n      read: [{ role: Clerk, where: "owner = $user" }]\n');
    const r = await cli(['app', 'validate', file, '--json'], env);
    assert.equal(r.code, 1);
    const out = JSON.parse(r.stdout);
    assert.equal(out.error.code, 'APP_MANIFEST_INVALID');
    assert.deepEqual(
      out.error.details.errors.map((d: { code: string; pointer: string; line: number }) => [d.code, d.pointer, d.line]),
      [
        ['APP_NAME_INVALID', '/app', 1],
        ['APP_VERSION_INVALID', '/version', 2],
        ['APP_VALUE_INVALID', '/entities/Order/attributes/title/type', 7],
        ['APP_RULE_SYNTAX', '/entities/Order/access/read/0/where', 9],
      ],
    );
    const human = await cli(['app', 'validate', file], env);
    assert.equal(human.code, 1);
    assert.match(human.stderr, /broken\.app\.yaml:9:\d+: error APP_RULE_SYNTAX/);
    assert.match(human.stderr, /error APP_MANIFEST_INVALID: The manifest has 4 errors/);
    assert.doesNotMatch(human.stderr, STACK_LINE);
  });

  test('an unreadable file is CLI_FILE_UNREADABLE', async () => {
    const r = await cli(['app', 'validate', join(home, 'missing.yaml'), '--json'], env);
    assert.equal(r.code, 1);
    assert.equal(JSON.parse(r.stdout).error.code, 'CLI_FILE_UNREADABLE');
  });

  test('accord app schema prints the JSON Schema of the manifest', async () => {
    const r = await cli(['app', 'schema'], env);
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.stdout), manifestJsonSchema());
  });
});
