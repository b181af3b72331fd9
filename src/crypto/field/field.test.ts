import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { encryptFieldWithNonce, fieldAad, gcmSeal } from './envelope.ts';
import {
  blindIndex,
  type CryptoErrorCode,
  type DataKey,
  decryptField,
  deriveFieldKey,
  ENVELOPE_OVERHEAD,
  encryptField,
  envelopeFromString,
  envelopeKeyVersion,
  envelopeToString,
  type FieldContext,
  isCryptoError,
  normaliseForIndex,
} from './index.ts';

// Known answers below were computed independently with Python's `cryptography` (AESGCM, HKDF, hmac)
// from the byte layouts documented in envelope.ts and blind-index.ts, not with this code.
const katKey: DataKey = { version: 7, key: Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex') };
const katNonce = Buffer.from('cafebabefacedbaddecaf888', 'hex');
const katContext: FieldContext = { tenant: 'acme', stage: 'prod', entity: 'Customer', field: 'email', recordId: 'c-0001' };
const katAad =
  '0000000f6163636f72642f6669656c642f7631' + // lp("accord/field/v1")
  '0100000007' + // format version 1, key version 7
  '0000000461636d65' + // lp("acme")
  '0000000470726f64' + // lp("prod")
  '00000008437573746f6d6572' + // lp("Customer")
  '00000005656d61696c' + // lp("email")
  '00000006632d30303031'; // lp("c-0001")
const katEnvelope =
  '01' + // format version
  '00000007' + // key version
  'cafebabefacedbaddecaf888' + // nonce
  'ebcfc945cf3a2a6327662db11e33ea5060' + // ciphertext of "alice@example.com" (17 bytes)
  '1c011c73973de78c5f23a3265e7ddb12'; // tag
const katEmptyEnvelope = '0100000007cafebabefacedbaddecaf888' + '6e38acbe9a45c2082019f30b601dba8d';
const katIndexRoot = Buffer.from('202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f', 'hex');
const katFieldKey = 'b9835de99214d6880290f43736c73f5fa4c5a475523a4191177bea0fe62473f9';

const CONTEXT_PARTS = ['tenant', 'stage', 'entity', 'field', 'recordId'] as const;

const lookup =
  (...keys: DataKey[]) =>
  (version: number): DataKey | undefined =>
    keys.find((k) => k.version === version);

const newKey = (version = 1): DataKey => ({ version, key: randomBytes(32) });

function throwsCode(fn: () => unknown, code: CryptoErrorCode): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isCryptoError(err, code), `expected ${code}, got ${String(err)}`);
    return true;
  });
}

const part = fc.string({ unit: 'binary', minLength: 1, maxLength: 24 });
const contextArb: fc.Arbitrary<FieldContext> = fc.record({ tenant: part, stage: part, entity: part, field: part, recordId: part });
const plaintextArb = fc.oneof(fc.uint8Array({ maxLength: 8192 }), fc.string({ unit: 'binary', maxLength: 2048 }));

describe('field envelope: known answers', () => {
  test('the GCM primitive matches the published AES-256-GCM test vector (McGrew-Viega test case 16)', () => {
    const sealed = gcmSeal(
      Buffer.from('feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308', 'hex'),
      Buffer.from('cafebabefacedbaddecaf888', 'hex'),
      Buffer.from('feedfacedeadbeeffeedfacedeadbeefabaddad2', 'hex'),
      Buffer.from(
        'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39',
        'hex',
      ),
    );
    assert.equal(
      sealed.toString('hex'),
      '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662' +
        '76fc6ece0f4e1768cddf8853bb2d551b',
    );
  });

  test('the associated data is the domain, the header and the length-prefixed context, byte for byte', () => {
    assert.equal(fieldAad(Buffer.from('0100000007', 'hex'), katContext).toString('hex'), katAad);
  });

  test('a fixed key, nonce and context give exactly the documented envelope bytes', () => {
    assert.equal(encryptFieldWithNonce(katKey, 'alice@example.com', katContext, katNonce).toString('hex'), katEnvelope);
    assert.equal(encryptFieldWithNonce(katKey, Buffer.from('alice@example.com'), katContext, katNonce).toString('hex'), katEnvelope);
  });

  test('a hard-coded envelope decrypts to its plaintext', () => {
    assert.equal(decryptField(lookup(katKey), Buffer.from(katEnvelope, 'hex'), katContext).toString('utf8'), 'alice@example.com');
  });

  test('an empty value has a 33-byte envelope that decrypts to an empty buffer', () => {
    const envelope = encryptFieldWithNonce(katKey, '', katContext, katNonce);
    assert.equal(envelope.toString('hex'), katEmptyEnvelope);
    assert.equal(envelope.length, ENVELOPE_OVERHEAD);
    assert.equal(decryptField(lookup(katKey), envelope, katContext).length, 0);
  });

  test('the key version is read from the header without decrypting', () => {
    assert.equal(envelopeKeyVersion(Buffer.from(katEnvelope, 'hex')), 7);
    const max = { version: 0xffff_ffff, key: randomBytes(32) };
    const envelope = encryptField(max, 'x', katContext);
    assert.equal(envelope.subarray(1, 5).toString('hex'), 'ffffffff');
    assert.equal(envelopeKeyVersion(envelope), 0xffff_ffff);
    assert.equal(decryptField(lookup(max), envelope, katContext).toString(), 'x');
  });
});

describe('field envelope: properties', () => {
  test('any plaintext up to 8 KiB round-trips under any context', () => {
    const key = newKey(3);
    fc.assert(
      fc.property(plaintextArb, contextArb, (plaintext, context) => {
        const envelope = encryptField(key, plaintext, context);
        const expected = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : Buffer.from(plaintext);
        assert.equal(envelope.length, ENVELOPE_OVERHEAD + expected.length);
        assert.equal(envelopeKeyVersion(envelope), 3);
        assert.deepEqual(decryptField(lookup(key), envelope, context), expected);
        assert.deepEqual(decryptField(lookup(key), envelopeFromString(envelopeToString(envelope)), context), expected);
      }),
    );
  });

  test('changing any of tenant, stage, entity, field or record id makes decryption fail', () => {
    const key = newKey();
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 256 }),
        contextArb,
        fc.constantFrom(...CONTEXT_PARTS),
        part,
        (plaintext, context, which, other) => {
          fc.pre(context[which] !== other);
          const envelope = encryptField(key, plaintext, context);
          throwsCode(() => decryptField(lookup(key), envelope, { ...context, [which]: other }), 'CRYPTO_DECRYPT_FAILED');
        },
      ),
    );
  });

  test('moving characters between context parts or swapping two parts makes decryption fail', () => {
    const key = newKey();
    const base = { tenant: 'ab', stage: 'c', entity: 'e', field: 'f', recordId: 'r' };
    const envelope = encryptField(key, 'secret', base);
    for (const moved of [
      { ...base, tenant: 'a', stage: 'bc' },
      { ...base, entity: 'f', field: 'e' },
      { ...base, field: 'fr', recordId: 'r' },
    ]) {
      throwsCode(() => decryptField(lookup(key), envelope, moved), 'CRYPTO_DECRYPT_FAILED');
    }
  });

  test('a ciphertext copied to another row, field, stage or tenant fails to decrypt there', () => {
    const key = newKey();
    const row1 = { tenant: 'acme', stage: 'prod', entity: 'Customer', field: 'ssn', recordId: 'r1' };
    const envelope = encryptField(key, '078-05-1120', row1);
    for (const target of [
      { ...row1, recordId: 'r2' },
      { ...row1, field: 'notes' },
      { ...row1, stage: 'dev' },
      { ...row1, tenant: 'globex' },
      { ...row1, entity: 'Supplier' },
    ]) {
      throwsCode(() => decryptField(lookup(key), envelope, target), 'CRYPTO_DECRYPT_FAILED');
    }
  });

  test('flipping any single bit of an envelope fails: header bits as invalid or unknown, all others as failed decryption', () => {
    const key = newKey(5);
    const envelope = encryptField(key, 'twenty bytes of text', katContext);
    const expect = (byte: number): CryptoErrorCode =>
      byte === 0 ? 'CRYPTO_ENVELOPE_INVALID' : byte < 5 ? 'CRYPTO_KEY_VERSION_UNKNOWN' : 'CRYPTO_DECRYPT_FAILED';
    for (let bit = 0; bit < envelope.length * 8; bit++) {
      const flipped = Buffer.from(envelope);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      throwsCode(() => decryptField(lookup(key), flipped, katContext), expect(bit >> 3));
    }
  });

  test('flipping a random bit of an envelope of a random value fails with the error for that byte', () => {
    const key = newKey(5);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 8192 }), fc.nat(), (plaintext, n) => {
        const envelope = encryptField(key, plaintext, katContext);
        const bit = n % (envelope.length * 8);
        envelope[bit >> 3]! ^= 1 << (bit & 7);
        const byte = bit >> 3;
        const code = byte === 0 ? 'CRYPTO_ENVELOPE_INVALID' : byte < 5 ? 'CRYPTO_KEY_VERSION_UNKNOWN' : 'CRYPTO_DECRYPT_FAILED';
        throwsCode(() => decryptField(lookup(key), envelope, katContext), code);
      }),
    );
  });

  test('a changed key version fails even when the lookup hands out the same key for every version', () => {
    const key = newKey(1);
    const envelope = encryptField(key, 'value', katContext);
    envelope.writeUInt32BE(2, 1);
    throwsCode(() => decryptField((v) => ({ version: v, key: key.key }), envelope, katContext), 'CRYPTO_DECRYPT_FAILED');
  });

  test('a wrong key of the right version fails as a failed decryption', () => {
    const envelope = encryptField(newKey(1), 'value', katContext);
    throwsCode(() => decryptField(lookup(newKey(1)), envelope, katContext), 'CRYPTO_DECRYPT_FAILED');
  });

  test('truncated or extended envelopes fail closed', () => {
    const key = newKey(1);
    const envelope = encryptField(key, 'some value', katContext);
    for (let length = 0; length < ENVELOPE_OVERHEAD; length++) {
      throwsCode(() => decryptField(lookup(key), envelope.subarray(0, length), katContext), 'CRYPTO_ENVELOPE_INVALID');
      throwsCode(() => envelopeKeyVersion(envelope.subarray(0, length)), 'CRYPTO_ENVELOPE_INVALID');
    }
    for (let length = ENVELOPE_OVERHEAD; length < envelope.length; length++) {
      throwsCode(() => decryptField(lookup(key), envelope.subarray(0, length), katContext), 'CRYPTO_DECRYPT_FAILED');
    }
    throwsCode(() => decryptField(lookup(key), Buffer.concat([envelope, Buffer.of(0)]), katContext), 'CRYPTO_DECRYPT_FAILED');
  });

  test('an unknown format version is an invalid envelope and is reported before any key lookup', () => {
    const envelope = Buffer.from(katEnvelope, 'hex');
    envelope[0] = 0x02;
    let looked = false;
    throwsCode(
      () =>
        decryptField(
          () => {
            looked = true;
            return katKey;
          },
          envelope,
          katContext,
        ),
      'CRYPTO_ENVELOPE_INVALID',
    );
    throwsCode(() => envelopeKeyVersion(envelope), 'CRYPTO_ENVELOPE_INVALID');
    assert.equal(looked, false);
  });

  test('two encryptions of the same value under the same key and context differ', () => {
    const key = newKey();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (plaintext) => {
        const a = encryptField(key, plaintext, katContext);
        const b = encryptField(key, plaintext, katContext);
        assert.notDeepEqual(a.subarray(5, 17), b.subarray(5, 17));
        assert.notDeepEqual(a, b);
      }),
    );
  });

  test('an envelope naming a key version the lookup does not know fails with the version in the details', () => {
    const envelope = encryptField(newKey(4), 'value', katContext);
    assert.throws(
      () => decryptField(lookup(newKey(1), newKey(2)), envelope, katContext),
      (err: unknown) => isCryptoError(err, 'CRYPTO_KEY_VERSION_UNKNOWN') && err.details?.keyVersion === 4,
    );
  });

  test('the key of the version named in the envelope is used when several are available', () => {
    const v1 = newKey(1);
    const v2 = newKey(2);
    const keys = lookup(v1, v2);
    assert.equal(decryptField(keys, encryptField(v1, 'old', katContext), katContext).toString(), 'old');
    assert.equal(decryptField(keys, encryptField(v2, 'new', katContext), katContext).toString(), 'new');
  });

  test('an envelope given as a plain Uint8Array (as PGlite returns bytea) decrypts', () => {
    const envelope = encryptField(katKey, 'value', katContext);
    const copy = new Uint8Array(envelope.length + 3).subarray(3);
    copy.set(envelope);
    assert.equal(envelopeKeyVersion(copy), 7);
    assert.equal(decryptField(lookup(katKey), copy, katContext).toString(), 'value');
  });

  test('envelope text is strict unpadded base64url', () => {
    const envelope = Buffer.from(katEnvelope, 'hex');
    const text = envelopeToString(envelope);
    assert.match(text, /^[A-Za-z0-9_-]+$/);
    assert.deepEqual(envelopeFromString(text), envelope);
    for (const bad of [`${text}=`, `${text.slice(0, -1)}+`, `${text} `, `${text}AA`, 'AB', '!!!!']) {
      throwsCode(() => envelopeFromString(bad), 'CRYPTO_ENVELOPE_INVALID');
    }
  });
});

describe('field envelope: misuse and bad input', () => {
  test('a key that is not 32 bytes or a version outside uint32 is rejected naming the option', () => {
    assert.throws(() => encryptField({ version: 1, key: randomBytes(16) }, 'x', katContext), /key\.key must be 32 bytes/);
    assert.throws(() => encryptField({ version: -1, key: randomBytes(32) }, 'x', katContext), /key\.version/);
    assert.throws(() => encryptField({ version: 2 ** 32, key: randomBytes(32) }, 'x', katContext), /key\.version/);
    assert.throws(() => encryptField({ version: 1.5, key: randomBytes(32) }, 'x', katContext), /key\.version/);
  });

  test('an empty or ill-formed context part is rejected naming the part', () => {
    assert.throws(() => encryptField(katKey, 'x', { ...katContext, recordId: '' }), /aad\.recordId must be a non-empty string/);
    assert.throws(() => encryptField(katKey, 'x', { ...katContext, tenant: 'a\uD800' }), /aad\.tenant must be well-formed/);
    const envelope = encryptField(katKey, 'x', katContext);
    assert.throws(() => decryptField(lookup(katKey), envelope, { ...katContext, field: '' }), /aad\.field/);
  });

  test('a lookup that returns the key of another version is rejected rather than tried', () => {
    const envelope = encryptField(katKey, 'x', katContext);
    assert.throws(() => decryptField(() => ({ ...katKey, version: 8 }), envelope, katContext), /keys\(7\) returned the key of version 8/);
  });

  test('text with a lone surrogate is refused instead of being silently replaced', () => {
    throwsCode(() => encryptField(katKey, 'abc\uDC00', katContext), 'CRYPTO_TEXT_INVALID');
    throwsCode(() => blindIndex(randomBytes(32), '\uD800x'), 'CRYPTO_TEXT_INVALID');
    assert.equal(decryptField(lookup(katKey), encryptField(katKey, 'emoji 😀 ok', katContext), katContext).toString(), 'emoji 😀 ok');
  });

  test('no plaintext or key bytes appear in any thrown error message, stack, details or cause', () => {
    const secret = 'correct horse battery staple 4242';
    const key = newKey(9);
    const indexKey = randomBytes(32);
    const envelope = encryptField(key, secret, katContext);
    const tampered = Buffer.from(envelope);
    tampered[20]! ^= 1;
    const unknown = Buffer.from(envelope);
    unknown.writeUInt32BE(10, 1);
    const cases: (() => unknown)[] = [
      () => decryptField(lookup(key), envelope, { ...katContext, recordId: 'other' }),
      () => decryptField(lookup(key), tampered, katContext),
      () => decryptField(lookup(key), unknown, katContext),
      () => decryptField(lookup(key), envelope.subarray(0, 20), katContext),
      () => decryptField(lookup(newKey(9)), envelope, katContext),
      () => encryptField(key, `${secret}\uD800`, katContext),
      () => encryptField({ version: 1, key: key.key.subarray(0, 31) }, secret, katContext),
      () => blindIndex(indexKey.subarray(0, 31), secret),
      () => blindIndex(indexKey, `${secret}\uDC00`),
      () => blindIndex(indexKey, secret, { bytes: 7 }),
      () => deriveFieldKey(indexKey, { ...katContext, field: '' }, 'blind-index'),
    ];
    const needles = [secret, Buffer.from(secret).toString('hex'), Buffer.from(secret).toString('base64')];
    for (const k of [key.key, indexKey, key.key.subarray(0, 31), indexKey.subarray(0, 31)]) {
      needles.push(k.toString('hex'), k.toString('base64'), k.toString('base64url'), k.toString('latin1'));
    }
    for (const run of cases) {
      let thrown: unknown;
      try {
        run();
      } catch (err) {
        thrown = err;
      }
      assert.ok(thrown instanceof Error, 'expected an error');
      const texts: string[] = [];
      for (let e: unknown = thrown; e instanceof Error; e = e.cause) {
        texts.push(e.message, e.stack ?? '', JSON.stringify((e as { details?: unknown }).details ?? null), String(e));
      }
      const all = texts.join('\n');
      for (const needle of needles) assert.ok(!all.includes(needle), `an error text contains secret material: ${thrown.message}`);
    }
  });
});

describe('blind index', () => {
  test('field keys are HKDF-SHA-256 of the stage index key over the documented info (known answer)', () => {
    const fieldKey = deriveFieldKey(katIndexRoot, { tenant: 'acme', stage: 'prod', entity: 'Customer', field: 'email' }, 'blind-index');
    assert.equal(fieldKey.toString('hex'), katFieldKey);
  });

  test('an entry is the truncated HMAC-SHA-256 of the value under the field key (known answer)', () => {
    const fieldKey = Buffer.from(katFieldKey, 'hex');
    assert.equal(blindIndex(fieldKey, 'alice@example.com'), '7MoSfiMqzTrfdvFherjmSA');
    assert.equal(blindIndex(fieldKey, 'alice@example.com', { encoding: 'hex' }), 'ecca127e232acd3adf76f1617ab8e648');
    assert.equal(blindIndex(fieldKey, 'alice@example.com', { encoding: 'hex', bytes: 8 }), 'ecca127e232acd3a');
    assert.equal(
      blindIndex(fieldKey, 'alice@example.com', { encoding: 'hex', bytes: 32 }),
      'ecca127e232acd3adf76f1617ab8e6480e72bf0623464c67f515df76c9b0bd88',
    );
  });

  test('the same value under the same key always gives the same entry', () => {
    const key = randomBytes(32);
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), fc.integer({ min: 8, max: 32 }), (value, bytes) => {
        const entry = blindIndex(key, value, { bytes, encoding: 'hex' });
        assert.equal(entry.length, bytes * 2);
        assert.equal(blindIndex(Buffer.from(key), value, { bytes, encoding: 'hex' }), entry);
      }),
    );
  });

  test('the same value indexes differently in another field, entity, stage or tenant (derived keys)', () => {
    const root = randomBytes(32);
    const base = { tenant: 'acme', stage: 'prod', entity: 'Customer', field: 'email' };
    const entries = [
      base,
      { ...base, field: 'backupEmail' },
      { ...base, entity: 'Supplier' },
      { ...base, stage: 'dev' },
      { ...base, tenant: 'globex' },
      { ...base, tenant: 'acmep', stage: 'rod' },
    ].map((ctx) => blindIndex(deriveFieldKey(root, ctx, 'blind-index'), 'alice@example.com'));
    assert.equal(new Set(entries).size, entries.length);
    fc.assert(
      fc.property(part, part, fc.string({ maxLength: 40 }), (a, b, value) => {
        fc.pre(a !== b);
        const ka = deriveFieldKey(root, { ...base, field: a }, 'blind-index');
        const kb = deriveFieldKey(root, { ...base, field: b }, 'blind-index');
        assert.notDeepEqual(ka, kb);
        assert.notEqual(blindIndex(ka, value), blindIndex(kb, value));
      }),
    );
  });

  test('case matters by default and not with caseInsensitive', () => {
    const key = randomBytes(32);
    assert.notEqual(blindIndex(key, 'Alice@Example.com'), blindIndex(key, 'alice@example.com'));
    const ci = { caseInsensitive: true };
    assert.equal(blindIndex(key, 'Alice@Example.COM', ci), blindIndex(key, 'alice@example.com', ci));
    for (const [a, b] of [
      ['STRASSE', 'Straße'],
      ['STRAẞE', 'straße'],
      ['ΟΔΟΣ', 'οδοσ'],
      ['ÉCOLE', 'école'],
      ['ﬁle', 'FILE'],
    ] as const) {
      assert.equal(blindIndex(key, a, ci), blindIndex(key, b, ci), `${a} ~ ${b}`);
      assert.notEqual(blindIndex(key, a), blindIndex(key, b));
    }
    assert.notEqual(blindIndex(key, 'alice', ci), blindIndex(key, 'alicia', ci));
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'grapheme', maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 30 })), (value) => {
        assert.equal(blindIndex(key, value.toUpperCase(), ci), blindIndex(key, value.toLowerCase(), ci));
      }),
    );
  });

  test('composed and decomposed spellings match in both modes (NFC)', () => {
    const key = randomBytes(32);
    assert.equal(normaliseForIndex('e\u0301'), '\u00e9');
    assert.equal(blindIndex(key, 'Jose\u0301'), blindIndex(key, 'Jos\u00e9'));
    assert.equal(blindIndex(key, 'JOSE\u0301', { caseInsensitive: true }), blindIndex(key, 'jos\u00e9', { caseInsensitive: true }));
    assert.equal(normaliseForIndex('  Alice  ', true), '  alice  ');
  });

  test('bad lengths, keys, encodings and purposes are rejected naming the option', () => {
    const key = randomBytes(32);
    for (const bytes of [0, 7, 33, 16.5]) assert.throws(() => blindIndex(key, 'x', { bytes }), /opts\.bytes/);
    assert.throws(() => blindIndex(randomBytes(16), 'x'), /indexKey must be 32 bytes/);
    assert.throws(() => blindIndex(key, 'x', { encoding: 'base64' as never }), /opts\.encoding/);
    assert.throws(() => deriveFieldKey(randomBytes(31), katContext, 'blind-index'), /stageIndexKey must be 32 bytes/);
    assert.throws(() => deriveFieldKey(key, katContext, 'encryption' as never), /purpose/);
    assert.throws(() => deriveFieldKey(key, { ...katContext, entity: 'x'.repeat(1000) }, 'blind-index'), /too long/);
  });
});
