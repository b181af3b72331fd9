import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { loadConfig } from '../config/index.ts';
import { isAccordError } from '../errors/index.ts';
import { startPlatform } from './start.ts';

test('a lockout setting the schema accepts but the policy refuses stops the start before the database is touched', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'accord-start-'));
  try {
    // Each format is valid; the steps are not increasing, which only the lockout policy sees.
    const config = loadConfig({ env: { ACCORD_LOCKOUT_ACCOUNT: '6:1800,3:30' }, flags: { dataDir, port: 0, logLevel: 'silent' } });
    await assert.rejects(startPlatform(config, { logger: pino({ level: 'silent' }) }), (err) => isAccordError(err, 'CONFIG_INVALID'));
    // No database was created, so no setup token was issued that nobody would ever see.
    assert.equal(existsSync(join(dataDir, 'pgdata')), false);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
