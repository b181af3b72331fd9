import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger, secretLogKeys } from './logger.ts';

function capture() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  return { logger: createLogger('info', sink), docs: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

test('values under secret keys are censored at any depth of a log line, headers and configuration included', () => {
  const { logger, docs } = capture();
  logger.info(
    {
      // (`req` itself goes through the request serializer, which keeps no headers at all.)
      upstream: { headers: { authorization: 'Bearer aca_live', cookie: 'accord_access=c00kie', 'x-api-key': 'k3y', accept: 'application/json' } },
      res: { headers: { 'set-cookie': 'accord_refresh=r3fresh' } },
      config: { databaseUrl: 'postgres://u:pa55@db/accord', bootstrapPassword: 'b00t', port: 8443 },
      password: 'top-level',
      deep: { list: [{ token: { nested: 'object value' } }, { secret: 's3cr3t', pin: '1234', passphrase: 'pp', pkcs11Pin: '9', rootKeyPassphrase: 'rk' }] },
    },
    'a line full of secrets',
  );
  const [doc] = docs();
  assert.deepEqual(doc?.upstream, { headers: { authorization: '[redacted]', cookie: '[redacted]', 'x-api-key': '[redacted]', accept: 'application/json' } });
  assert.deepEqual(doc?.res, { headers: { 'set-cookie': '[redacted]' } });
  assert.deepEqual(doc?.config, { databaseUrl: '[redacted]', bootstrapPassword: '[redacted]', port: 8443 });
  assert.equal(doc?.password, '[redacted]');
  assert.deepEqual(doc?.deep, {
    list: [{ token: '[redacted]' }, { secret: '[redacted]', pin: '[redacted]', passphrase: '[redacted]', pkcs11Pin: '[redacted]', rootKeyPassphrase: '[redacted]' }],
  });
  assert.equal(doc?.msg, 'a line full of secrets');
  for (const leaked of ['aca_live', 'c00kie', 'k3y', 'r3fresh', 'pa55', 'b00t', 'top-level', 'object value', 's3cr3t', '1234']) {
    assert.ok(!JSON.stringify(docs()).includes(leaked), leaked);
  }
  assert.equal(secretLogKeys.length, 13);
});

test('a line without secret keys is written unchanged, even when its text mentions them', () => {
  const { logger, docs } = capture();
  logger.info({ note: '{"password":"not a key here"}', tokenCount: 3, passwords: 'plural is not a secret key' }, 'password and token in a message');
  const [doc] = docs();
  assert.equal(doc?.note, '{"password":"not a key here"}');
  assert.equal(doc?.tokenCount, 3);
  assert.equal(doc?.passwords, 'plural is not a secret key');
  assert.equal(doc?.msg, 'password and token in a message');
});
