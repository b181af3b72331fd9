import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isAccordError } from '../errors/index.ts';
import { loadConfig, redactedConfig } from './index.ts';

const dir = mkdtempSync(join(tmpdir(), 'accord-config-'));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('configuration', () => {
  test('defaults apply when nothing is given', () => {
    const c = loadConfig({ env: {} });
    assert.equal(c.dataDir, './.accord');
    assert.equal(c.port, 8443);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.deploymentMode, 'managed');
    assert.equal(c.databaseUrl, undefined);
  });

  test('flags beat environment variables, which beat the config file', () => {
    const f = file('layers.json', JSON.stringify({ port: 1001, host: 'file-host', dataDir: '/from-file' }));
    const c = loadConfig({ file: f, env: { ACCORD_PORT: '1002', ACCORD_HOST: 'env-host' }, flags: { port: '1003' } });
    assert.equal(c.port, 1003);
    assert.equal(c.host, 'env-host');
    assert.equal(c.dataDir, '/from-file');
  });

  test('the config file can be named by ACCORD_CONFIG_FILE', () => {
    const f = file('named.json', JSON.stringify({ deploymentMode: 'self-managed' }));
    assert.equal(loadConfig({ env: { ACCORD_CONFIG_FILE: f } }).deploymentMode, 'self-managed');
  });

  test('an unknown environment variable with the ACCORD_ prefix is rejected, naming it', () => {
    assert.throws(
      () => loadConfig({ env: { ACCORD_PORTT: '1' } }),
      (e) => isAccordError(e, 'CONFIG_UNKNOWN_KEY') && e.message.includes('ACCORD_PORTT'),
    );
  });

  test('an unknown key in the config file or the flags is rejected', () => {
    const f = file('unknown.json', JSON.stringify({ prot: 1 }));
    assert.throws(() => loadConfig({ env: {}, file: f }), (e) => isAccordError(e, 'CONFIG_UNKNOWN_KEY'));
    assert.throws(() => loadConfig({ env: {}, flags: { nope: 1 } }), (e) => isAccordError(e, 'CONFIG_UNKNOWN_KEY'));
  });

  test('the CLI and harness variables are not mistaken for server configuration', () => {
    assert.doesNotThrow(() => loadConfig({ env: { ACCORD_CONFIG_DIR: '/x', ACCORD_TEST_PG_URL: 'postgres://x' } }));
  });

  test('a secret can come from a *_FILE variable, and its trailing newline is dropped', () => {
    const f = file('db-url', 'postgres://u:s3cret@db.example/accord\n');
    const c = loadConfig({ env: { ACCORD_DATABASE_URL_FILE: f } });
    assert.equal(c.databaseUrl, 'postgres://u:s3cret@db.example/accord');
  });

  test('an unreadable secret file is a clear error naming the file', () => {
    const missing = join(dir, 'missing.pw');
    assert.throws(
      () => loadConfig({ env: { ACCORD_BOOTSTRAP_PASSWORD_FILE: missing } }),
      (e) => isAccordError(e, 'CONFIG_FILE_UNREADABLE') && e.message.includes(missing),
    );
  });

  test('an invalid value is rejected with the variable name and without echoing secrets', () => {
    assert.throws(() => loadConfig({ env: { ACCORD_PORT: 'eighty' } }), (e) => isAccordError(e, 'CONFIG_INVALID') && e.message.includes('ACCORD_PORT'));
    assert.throws(
      () => loadConfig({ env: { ACCORD_DATABASE_URL: 'mysql://u:hunter2hunter2@x/y' } }),
      (e) => isAccordError(e, 'CONFIG_INVALID') && !e.message.includes('hunter2'),
    );
    assert.throws(() => loadConfig({ env: { ACCORD_DEPLOYMENT_MODE: 'hybrid' } }), (e) => isAccordError(e, 'CONFIG_INVALID'));
  });

  test('a config file that is not a JSON object is rejected', () => {
    assert.throws(() => loadConfig({ env: {}, file: file('bad.json', '[1,2]') }), (e) => isAccordError(e, 'CONFIG_INVALID'));
    assert.throws(() => loadConfig({ env: {}, file: file('bad2.json', '{port:') }), (e) => isAccordError(e, 'CONFIG_INVALID'));
  });

  test('a secret given both directly and as a file is ambiguous and rejected', () => {
    const f = file('db-url-2', 'postgres://a@b/c');
    assert.throws(
      () => loadConfig({ env: { ACCORD_DATABASE_URL: 'postgres://x@y/z', ACCORD_DATABASE_URL_FILE: f } }),
      (e) => isAccordError(e, 'CONFIG_INVALID'),
    );
  });

  test('a bootstrap email without its password (or the reverse) is rejected, not ignored', () => {
    assert.throws(() => loadConfig({ env: { ACCORD_BOOTSTRAP_EMAIL: 'ops@example.test' } }), (e) => isAccordError(e, 'CONFIG_INVALID'));
  });

  test('a TLS certificate without its key is rejected', () => {
    assert.throws(() => loadConfig({ env: { ACCORD_TLS_CERT: '/x.pem' } }), (e) => isAccordError(e, 'TLS_INCOMPLETE'));
  });

  test('the result is deeply frozen', () => {
    const c = loadConfig({ env: { ACCORD_TLS_HOSTNAMES: 'a.example, b.example' } });
    assert.deepEqual(c.tlsHostnames, ['a.example', 'b.example']);
    assert.ok(Object.isFrozen(c));
    assert.ok(Object.isFrozen(c.tlsHostnames));
    assert.throws(() => {
      (c as { port: number }).port = 1;
    }, TypeError);
  });

  test('the redacted view hides secrets', () => {
    const c = loadConfig({ env: { ACCORD_DATABASE_URL: 'postgres://u:pw@h/d' } });
    assert.equal(redactedConfig(c).databaseUrl, '[redacted]');
  });

  test('a config file that cannot be read is a clear error', () => {
    const p = file('locked.json', '{}');
    chmodSync(p, 0o000);
    // Root reads anything; the missing-file case covers the same path there.
    const target = process.getuid?.() === 0 ? join(dir, 'absent.json') : p;
    assert.throws(() => loadConfig({ env: {}, file: target }), (e) => isAccordError(e, 'CONFIG_FILE_UNREADABLE'));
  });
});
