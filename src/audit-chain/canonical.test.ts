import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { type CanonicalRecord, canonicalJson, chainHash, GENESIS_HASH } from './canonical.ts';
import { scrubDetails } from './record.ts';
import { checkpointPayload, ephemeralSigner, verifyCheckpointSignature } from './signing.ts';

const sample: CanonicalRecord = {
  v: 1,
  chain: 'platform',
  seq: 1,
  id: '00000000-0000-4000-8000-000000000001',
  time: '2026-11-26T14:33:33.123Z',
  tenant: null,
  actor: { type: 'user', id: 'u1', label: 'ops@example.test', roles: ['platform-operator'] },
  action: 'auth.login',
  target: { type: 'session', id: 's1' },
  outcome: 'success',
  reason: null,
  source: { ip: '127.0.0.1', userAgent: 'curl/8', requestId: 'r1' },
  details: { b: 2, a: [1, { d: 'x', c: null }] },
};

describe('canonical form', () => {
  test('keys are sorted at every depth and there is no whitespace', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 'é' }], c: null } }), '{"a":{"c":null,"d":[2,{"y":"é","z":1}]},"b":1}');
  });

  test('the canonical form of a record is fixed (known answer)', () => {
    assert.equal(
      canonicalJson(sample),
      '{"action":"auth.login","actor":{"id":"u1","label":"ops@example.test","roles":["platform-operator"],"type":"user"},"chain":"platform","details":{"a":[1,{"c":null,"d":"x"}],"b":2},"id":"00000000-0000-4000-8000-000000000001","outcome":"success","reason":null,"seq":1,"source":{"ip":"127.0.0.1","requestId":"r1","userAgent":"curl/8"},"target":{"id":"s1","type":"session"},"tenant":null,"time":"2026-11-26T14:33:33.123Z","v":1}',
    );
  });

  test('the hash is SHA-256 over the previous hash followed by the canonical bytes', () => {
    const expected = createHash('sha256').update(GENESIS_HASH).update(canonicalJson(sample)).digest('hex');
    assert.equal(chainHash(GENESIS_HASH, sample).toString('hex'), expected);
    const next = { ...sample, seq: 2 };
    assert.notEqual(chainHash(chainHash(GENESIS_HASH, sample), next).toString('hex'), chainHash(GENESIS_HASH, next).toString('hex'));
  });

  test('canonical JSON is independent of key insertion order and round-trips through JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const shuffled = JSON.parse(JSON.stringify(v));
        const text = canonicalJson(v);
        assert.equal(canonicalJson(shuffled), text);
        assert.equal(canonicalJson(JSON.parse(text)), text);
      }),
    );
  });

  test('any change to a field changes the hash', () => {
    const base = chainHash(GENESIS_HASH, sample).toString('hex');
    for (const changed of [
      { ...sample, seq: 2 },
      { ...sample, outcome: 'failure' },
      { ...sample, actor: { ...sample.actor, roles: [] } },
      { ...sample, details: { b: 3, a: [1, { d: 'x', c: null }] } },
      { ...sample, time: '2026-11-26T14:33:33.124Z' },
    ]) {
      assert.notEqual(chainHash(GENESIS_HASH, changed).toString('hex'), base);
    }
  });
});

describe('details scrubbing', () => {
  test('values under secret-looking keys never reach the record, at any depth', () => {
    const out = scrubDetails({
      email: 'a@b.c',
      password: 'hunter2hunter2',
      nested: { apiKey: 'k', refresh_token: 't', list: [{ clientSecret: 's' }] },
      Authorization: 'Bearer x',
    });
    assert.deepEqual(out, {
      email: 'a@b.c',
      password: '[redacted]',
      nested: { apiKey: '[redacted]', refresh_token: '[redacted]', list: [{ clientSecret: '[redacted]' }] },
      Authorization: '[redacted]',
    });
  });

  test('values JSON cannot hold are normalised so the stored record reads back as hashed', () => {
    assert.deepEqual(scrubDetails({ n: Number.NaN, d: new Date('2026-01-01T00:00:00Z'), u: undefined, s: 'a\u0000b' }), {
      n: null,
      d: '2026-01-01T00:00:00.000Z',
      s: 'ab',
    });
  });
});

describe('checkpoint signatures', () => {
  test('a checkpoint verifies with its key and fails when any field or the key changes', () => {
    const signer = ephemeralSigner();
    const body = { chain: 'platform', seq: 10, hash: 'ab'.repeat(32), signedAt: '2026-11-26T00:00:00.000Z', keyId: signer.keyId };
    const cp = { ...body, signature: signer.sign(checkpointPayload(body)).toString('base64') };
    assert.ok(verifyCheckpointSignature(cp, signer.publicKeyPem));
    assert.equal(verifyCheckpointSignature({ ...cp, seq: 11 }, signer.publicKeyPem), false);
    assert.equal(verifyCheckpointSignature({ ...cp, hash: 'cd'.repeat(32) }, signer.publicKeyPem), false);
    assert.equal(verifyCheckpointSignature(cp, ephemeralSigner().publicKeyPem), false);
  });
});
