// One suite for every KMS provider (architecture rule 9): `local` (plain and passphrase-sealed)
// and `pkcs11` against a real SoftHSM2 token. A new provider adds a fixture to `providers` and
// gets the whole contract; provider-specific behaviour follows the shared suite.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { inspect } from 'node:util';
import type { Handle, PKCS11 } from 'pkcs11js';
import { createSoftHsmToken, type SoftHsmToken } from '../../../test/harness/softhsm.ts';
import { isKmsError, type KmsErrorCode, type KmsProvider, openKms, openLocalKms, openPkcs11Kms, ROOT_KEY_FILE } from './index.ts';

const TOKEN_LABEL = 'accord-test';
const PIN = `pin-${randomBytes(6).toString('hex')}`;
const SO_PIN = `so-${randomBytes(6).toString('hex')}`;
const PASSPHRASE = `correct horse ${randomBytes(6).toString('hex')}`;

let token: SoftHsmToken;
const tempDirs: string[] = [];
const opened: KmsProvider[] = [];

before(async () => {
  token = await createSoftHsmToken({ label: TOKEN_LABEL, pin: PIN, soPin: SO_PIN });
  // SoftHSM reads its config in C_Initialize, i.e. when the first provider opens the module.
  process.env.SOFTHSM2_CONF = token.env.SOFTHSM2_CONF;
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((k) => k.close()));
});

after(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
  await token?.cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'accord-kms-'));
  tempDirs.push(dir);
  return dir;
}

/** Remembers a provider so afterEach closes it even when the test fails. */
async function track(p: Promise<KmsProvider>): Promise<KmsProvider> {
  const kms = await p;
  opened.push(kms);
  return kms;
}

/** Asserts the rejection's code, and that no secret shows anywhere in the error (cause included). */
async function rejectsWith(p: Promise<unknown>, code: KmsErrorCode, secrets: (string | Buffer)[] = []): Promise<Error> {
  let caught: unknown;
  await assert.rejects(p, (err) => {
    caught = err;
    return true;
  });
  assert.ok(isKmsError(caught, code), `expected ${code}, got ${inspect(caught)}`);
  assertNoSecrets(caught, secrets);
  return caught;
}

function assertNoSecrets(err: unknown, secrets: (string | Buffer)[]): void {
  const text = `${inspect(err, { depth: 10 })}\n${JSON.stringify((err as { details?: unknown }).details ?? null)}`;
  for (const s of [PIN, SO_PIN, PASSPHRASE, ...secrets]) {
    const forms = typeof s === 'string' ? [s] : [s.toString('hex'), s.toString('base64')];
    for (const f of forms) assert.ok(!text.includes(f), 'an error carries secret material');
  }
}

interface Store {
  /** Opens a provider on this store (again: same root keys). */
  open(): Promise<KmsProvider>;
}

interface ProviderFixture {
  title: string;
  /** A fresh, empty root key store. */
  newStore(): Promise<Store>;
}

let prefixes = 0;

const providers: ProviderFixture[] = [
  {
    title: 'local',
    async newStore() {
      const dir = await tempDir();
      return { open: () => track(openLocalKms({ dir })) };
    },
  },
  {
    title: 'local with a passphrase',
    async newStore() {
      const dir = await tempDir();
      return { open: () => track(openLocalKms({ dir, passphrase: PASSPHRASE })) };
    },
  },
  {
    title: 'pkcs11 (SoftHSM2)',
    async newStore() {
      // Each store is its own series of key objects in the one test token.
      const keyLabelPrefix = `store${++prefixes}`;
      return { open: () => track(openPkcs11Kms({ module: token.module, tokenLabel: TOKEN_LABEL, pin: PIN, keyLabelPrefix })) };
    },
  },
];

const KEY_ID = /^(local|pkcs11):[0-9a-f]{16}:v(\d+)$/;

function version(keyId: string): number {
  const m = KEY_ID.exec(keyId);
  assert.ok(m, `malformed key id ${keyId}`);
  return Number(m[2]);
}

for (const fixture of providers) {
  describe(`KMS provider: ${fixture.title}`, () => {
    test('a wrapped key unwraps to the same bytes under the current root key version', async () => {
      const kms = await (await fixture.newStore()).open();
      const key = randomBytes(32);
      const { keyId, wrapped } = await kms.wrap(key, 'tenant:t1:kek:v1');
      assert.equal(keyId, kms.currentKeyId());
      assert.equal(version(keyId), 1);
      assert.ok(keyId.startsWith(`${kms.name}:`));
      assert.equal(wrapped.length, 61);
      assert.ok(!wrapped.includes(key), 'the wrapped form contains the key');
      const back = await kms.unwrap(keyId, wrapped, 'tenant:t1:kek:v1');
      assert.deepEqual(back, key);
      assert.notEqual(back.buffer, key.buffer);
    });

    test('wrapping the same key twice gives different bytes (random nonce)', async () => {
      const kms = await (await fixture.newStore()).open();
      const key = randomBytes(32);
      const a = await kms.wrap(key, 'tenant:t1:kek:v1');
      const b = await kms.wrap(key, 'tenant:t1:kek:v1');
      assert.notDeepEqual(a.wrapped, b.wrapped);
      assert.deepEqual(a.wrapped.subarray(0, 1), b.wrapped.subarray(0, 1));
    });

    test('a wrapped key does not unwrap for another owner (aad)', async () => {
      const kms = await (await fixture.newStore()).open();
      const key = randomBytes(32);
      const { keyId, wrapped } = await kms.wrap(key, 'tenant:t1:kek:v1');
      for (const aad of ['tenant:t2:kek:v1', 'tenant:t1:kek:v2', 'tenant:t1:kek:v1 ', 'x']) {
        await rejectsWith(kms.unwrap(keyId, wrapped, aad), 'CRYPTO_KMS_UNWRAP_FAILED', [key]);
      }
    });

    test('tampered, truncated or extended wrapped bytes fail to unwrap', async () => {
      const kms = await (await fixture.newStore()).open();
      const key = randomBytes(32);
      const { keyId, wrapped } = await kms.wrap(key, 'owner');
      // format byte, nonce, ciphertext, tag
      for (const i of [0, 1, 12, 13, 30, 44, 45, 60]) {
        const bad = Buffer.from(wrapped);
        bad[i]! ^= 0x01;
        await rejectsWith(kms.unwrap(keyId, bad, 'owner'), 'CRYPTO_KMS_UNWRAP_FAILED', [key]);
      }
      await rejectsWith(kms.unwrap(keyId, wrapped.subarray(0, 60), 'owner'), 'CRYPTO_KMS_UNWRAP_FAILED');
      await rejectsWith(kms.unwrap(keyId, Buffer.concat([wrapped, Buffer.of(0)]), 'owner'), 'CRYPTO_KMS_UNWRAP_FAILED');
      await rejectsWith(kms.unwrap(keyId, Buffer.alloc(0), 'owner'), 'CRYPTO_KMS_UNWRAP_FAILED');
      // still fine afterwards (a failed decryption leaves no operation active on an HSM session)
      assert.deepEqual(await kms.unwrap(keyId, wrapped, 'owner'), key);
    });

    test('an unknown or foreign key id is CRYPTO_KMS_KEY_NOT_FOUND', async () => {
      const kms = await (await fixture.newStore()).open();
      const { keyId, wrapped } = await kms.wrap(randomBytes(32), 'owner');
      const other = kms.name === 'local' ? 'pkcs11' : 'local';
      for (const id of [
        keyId.replace(/:v1$/, ':v9'),
        keyId.replace(/:[0-9a-f]{16}:/, ':0000000000000000:'),
        keyId.replace(/^\w+:/, `${other}:`),
        'nonsense',
        '',
      ]) {
        await rejectsWith(kms.unwrap(id, wrapped, 'owner'), 'CRYPTO_KMS_KEY_NOT_FOUND');
      }
    });

    test('rotateRoot makes new wraps use the new version while old wraps still unwrap', async () => {
      const kms = await (await fixture.newStore()).open();
      const key = randomBytes(32);
      const old = await kms.wrap(key, 'owner');
      const v2 = await kms.rotateRoot();
      assert.equal(version(v2), 2);
      assert.notEqual(v2, old.keyId);
      assert.equal(kms.currentKeyId(), v2);
      const fresh = await kms.wrap(key, 'owner');
      assert.equal(fresh.keyId, v2);
      assert.deepEqual(await kms.unwrap(old.keyId, old.wrapped, 'owner'), key);
      assert.deepEqual(await kms.unwrap(fresh.keyId, fresh.wrapped, 'owner'), key);
      // A wrap only unwraps under the version that made it.
      await rejectsWith(kms.unwrap(v2, old.wrapped, 'owner'), 'CRYPTO_KMS_UNWRAP_FAILED');
      assert.equal(version(await kms.rotateRoot()), 3);
    });

    test('retireRoot destroys a version: its wraps fail with CRYPTO_KMS_KEY_NOT_FOUND; the current one cannot be retired', async () => {
      const store = await fixture.newStore();
      const kms = await store.open();
      const key = randomBytes(32);
      const old = await kms.wrap(key, 'owner');
      const v2 = await kms.rotateRoot();
      const rewrapped = await kms.wrap(await kms.unwrap(old.keyId, old.wrapped, 'owner'), 'owner');
      await rejectsWith(kms.retireRoot(v2), 'CRYPTO_KMS_KEY_CURRENT');
      await kms.retireRoot(old.keyId);
      const err = await rejectsWith(kms.unwrap(old.keyId, old.wrapped, 'owner'), 'CRYPTO_KMS_KEY_NOT_FOUND', [key]);
      assert.match(err.message, /retired/);
      await rejectsWith(kms.retireRoot(old.keyId), 'CRYPTO_KMS_KEY_NOT_FOUND');
      assert.deepEqual(await kms.unwrap(rewrapped.keyId, rewrapped.wrapped, 'owner'), key);
      // Retirement survives a restart, and versions keep counting up.
      await kms.close();
      const again = await store.open();
      await rejectsWith(again.unwrap(old.keyId, old.wrapped, 'owner'), 'CRYPTO_KMS_KEY_NOT_FOUND');
      assert.equal(version(await again.rotateRoot()), 3);
    });

    test('after close and reopen the same root keys are used and old wraps unwrap', async () => {
      const store = await fixture.newStore();
      const first = await store.open();
      const key = randomBytes(32);
      const w1 = await first.wrap(key, 'owner');
      const v2 = await first.rotateRoot();
      const w2 = await first.wrap(key, 'owner');
      await first.close();
      await first.close(); // idempotent
      const second = await store.open();
      assert.equal(second.currentKeyId(), v2);
      assert.deepEqual(await second.unwrap(w1.keyId, w1.wrapped, 'owner'), key);
      assert.deepEqual(await second.unwrap(w2.keyId, w2.wrapped, 'owner'), key);
    });

    test('concurrent wraps and unwraps all succeed', async () => {
      const kms = await (await fixture.newStore()).open();
      const keys = Array.from({ length: 40 }, () => randomBytes(32));
      const wraps = await Promise.all(keys.map((k, i) => kms.wrap(k, `owner:${i}`)));
      const back = await Promise.all(wraps.map((w, i) => kms.unwrap(w.keyId, w.wrapped, `owner:${i}`)));
      assert.deepEqual(back, keys);
    });

    test('misuse (a key that is not 32 bytes, an empty aad) throws a TypeError naming the argument', async () => {
      const kms = await (await fixture.newStore()).open();
      await assert.rejects(async () => kms.wrap(randomBytes(16), 'owner'), /key: expected a 32-byte Buffer/);
      await assert.rejects(async () => kms.wrap(randomBytes(32), ''), /aad:/);
      const { keyId, wrapped } = await kms.wrap(randomBytes(32), 'owner');
      await assert.rejects(async () => kms.unwrap(keyId, wrapped, ''), /aad:/);
    });

    test('health is ok while open; a closed provider refuses work with CRYPTO_KMS_UNAVAILABLE', async () => {
      const kms = await (await fixture.newStore()).open();
      const h = await kms.health();
      assert.equal(h.ok, true, h.detail);
      assert.match(h.detail, new RegExp(`^${kms.name}: `));
      const { keyId, wrapped } = await kms.wrap(randomBytes(32), 'owner');
      await kms.close();
      assert.equal((await kms.health()).ok, false);
      await rejectsWith(kms.wrap(randomBytes(32), 'owner'), 'CRYPTO_KMS_UNAVAILABLE');
      await rejectsWith(kms.unwrap(keyId, wrapped, 'owner'), 'CRYPTO_KMS_UNAVAILABLE');
      assert.throws(() => kms.currentKeyId(), (e) => isKmsError(e, 'CRYPTO_KMS_UNAVAILABLE'));
    });
  });
}

describe('KMS provider: local specifics', () => {
  async function rootFile(dir: string): Promise<Record<string, unknown>> {
    return JSON.parse(await readFile(join(dir, ROOT_KEY_FILE), 'utf8')) as Record<string, unknown>;
  }
  const digest = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

  test('the root key file is created with mode 0600 in a 0700 directory', async () => {
    const dir = join(await tempDir(), 'kms');
    await track(openLocalKms({ dir }));
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, ROOT_KEY_FILE))).mode & 0o777, 0o600);
    const doc = await rootFile(dir);
    assert.equal(doc.protection, 'none');
  });

  test('rotation rewrites the file atomically and keeps its mode; no temporary files are left', async () => {
    const dir = await tempDir();
    const kms = await track(openLocalKms({ dir, passphrase: PASSPHRASE }));
    await kms.rotateRoot();
    assert.equal((await stat(join(dir, ROOT_KEY_FILE))).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), [ROOT_KEY_FILE]);
  });

  test('two processes starting at once on an empty directory end up with one root key', async () => {
    const dir = await tempDir();
    const [a, b] = await Promise.all([track(openLocalKms({ dir })), track(openLocalKms({ dir }))]);
    assert.equal(a.currentKeyId(), b.currentKeyId());
    const w = await a.wrap(randomBytes(32), 'owner');
    await b.unwrap(w.keyId, w.wrapped, 'owner');
  });

  test('with a passphrase the file holds no key in clear and records scrypt N=2^15, r=8, p=1', async () => {
    const dir = await tempDir();
    await track(openLocalKms({ dir, passphrase: PASSPHRASE }));
    const doc = await rootFile(dir);
    assert.equal(doc.protection, 'passphrase');
    assert.equal(doc.keys, undefined);
    assert.deepEqual({ ...(doc.kdf as object), salt: undefined }, { name: 'scrypt', N: 32768, r: 8, p: 1, salt: undefined });
    assert.equal(Buffer.from((doc.kdf as { salt: string }).salt, 'base64').length, 16);
  });

  test('a wrong passphrase is CRYPTO_KMS_PASSPHRASE_WRONG and never replaces the root key', async () => {
    const dir = await tempDir();
    const kms = await track(openLocalKms({ dir, passphrase: PASSPHRASE }));
    const w = await kms.wrap(randomBytes(32), 'owner');
    await kms.close();
    const before = await digest(join(dir, ROOT_KEY_FILE));
    await rejectsWith(openLocalKms({ dir, passphrase: `${PASSPHRASE}x` }), 'CRYPTO_KMS_PASSPHRASE_WRONG');
    assert.equal(await digest(join(dir, ROOT_KEY_FILE)), before);
    const again = await track(openLocalKms({ dir, passphrase: PASSPHRASE }));
    await again.unwrap(w.keyId, w.wrapped, 'owner');
  });

  test('a sealed file opened without a passphrase is CRYPTO_KMS_PASSPHRASE_REQUIRED, a plain one with a passphrase CRYPTO_KMS_PASSPHRASE_UNEXPECTED', async () => {
    const sealed = await tempDir();
    await (await openLocalKms({ dir: sealed, passphrase: PASSPHRASE })).close();
    await rejectsWith(openLocalKms({ dir: sealed }), 'CRYPTO_KMS_PASSPHRASE_REQUIRED');
    const plain = await tempDir();
    await (await openLocalKms({ dir: plain })).close();
    await rejectsWith(openLocalKms({ dir: plain, passphrase: PASSPHRASE }), 'CRYPTO_KMS_PASSPHRASE_UNEXPECTED');
  });

  test('an edited sealed header (weaker scrypt cost) fails like a wrong passphrase; an absurd cost is refused unread', async () => {
    const dir = await tempDir();
    await (await openLocalKms({ dir, passphrase: PASSPHRASE })).close();
    const path = join(dir, ROOT_KEY_FILE);
    const doc = await rootFile(dir);
    await writeFile(path, JSON.stringify({ ...doc, kdf: { ...(doc.kdf as object), N: 2 ** 16 } }), { mode: 0o600 });
    await rejectsWith(openLocalKms({ dir, passphrase: PASSPHRASE }), 'CRYPTO_KMS_PASSPHRASE_WRONG');
    await writeFile(path, JSON.stringify({ ...doc, kdf: { ...(doc.kdf as object), N: 2 ** 30 } }), { mode: 0o600 });
    await rejectsWith(openLocalKms({ dir, passphrase: PASSPHRASE }), 'CRYPTO_KMS_KEYSTORE_INVALID');
  });

  test('a damaged root key file is CRYPTO_KMS_KEYSTORE_INVALID and is left as it is', async () => {
    const dir = await tempDir();
    await (await openLocalKms({ dir })).close();
    const path = join(dir, ROOT_KEY_FILE);
    const doc = await rootFile(dir);
    for (const text of ['{ not json', '{}', JSON.stringify({ ...doc, keys: [] }), JSON.stringify({ ...doc, formatVersion: 2 })]) {
      await writeFile(path, text, { mode: 0o600 });
      await rejectsWith(openLocalKms({ dir }), 'CRYPTO_KMS_KEYSTORE_INVALID');
      assert.equal(await readFile(path, 'utf8'), text);
    }
  });

  test('a root key file readable by others is refused with CRYPTO_KMS_KEYSTORE_INSECURE', async () => {
    const dir = await tempDir();
    await (await openLocalKms({ dir })).close();
    const path = join(dir, ROOT_KEY_FILE);
    await chmod(path, 0o644);
    const doc = await rootFile(dir);
    const rootKey = (doc.keys as { key: string }[])[0]!.key;
    await rejectsWith(openLocalKms({ dir }), 'CRYPTO_KMS_KEYSTORE_INSECURE', [rootKey]);
  });

  test('with createIfMissing false a missing file is CRYPTO_KMS_ROOT_KEY_MISSING, not a new key', async () => {
    const dir = await tempDir();
    await rejectsWith(openLocalKms({ dir, createIfMissing: false }), 'CRYPTO_KMS_ROOT_KEY_MISSING');
    await assert.rejects(stat(join(dir, ROOT_KEY_FILE)), { code: 'ENOENT' });
  });

  test('no error message carries root key bytes', async () => {
    const dir = await tempDir();
    const kms = await track(openLocalKms({ dir }));
    const rootKey = ((await rootFile(dir)).keys as { key: string }[])[0]!.key;
    const key = randomBytes(32);
    const { keyId, wrapped } = await kms.wrap(key, 'owner');
    await rejectsWith(kms.unwrap(keyId, wrapped, 'other'), 'CRYPTO_KMS_UNWRAP_FAILED', [rootKey, Buffer.from(rootKey, 'base64'), key]);
    assert.ok(!inspect(kms, { depth: 10, showHidden: true }).includes(rootKey));
  });

  test('openKms("local") keeps its root key file in <dataDir>/kms', async () => {
    const dataDir = await tempDir();
    const kms = await track(openKms({ kms: 'local', dataDir }));
    assert.equal(kms.name, 'local');
    await stat(join(dataDir, 'kms', ROOT_KEY_FILE));
  });
});

describe('KMS provider: pkcs11 specifics', () => {
  const opts = () => ({ module: token.module, tokenLabel: TOKEN_LABEL, pin: PIN, keyLabelPrefix: `spec${++prefixes}` });

  /** Our own PKCS#11 view of the token, alongside the provider (login is per process and token). */
  async function inspectToken<T>(body: (lib: PKCS11, session: Handle, p: typeof import('pkcs11js')) => T): Promise<T> {
    const mod = (await import('pkcs11js')) as typeof import('pkcs11js') & { default?: typeof import('pkcs11js') };
    const p = mod.default ?? mod;
    const lib = new p.PKCS11();
    lib.load(token.module);
    try {
      lib.C_Initialize();
    } catch (err) {
      // initialised by the open provider, as expected; so we must not finalise it either
      assert.match(String(err), /CKR_CRYPTOKI_ALREADY_INITIALIZED/);
    }
    const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === TOKEN_LABEL)!;
    const session = lib.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
    try {
      return body(lib, session, p);
    } finally {
      lib.C_CloseSession(session);
    }
  }

  function findByLabel(lib: PKCS11, session: Handle, p: typeof import('pkcs11js'), label: string): Handle[] {
    lib.C_FindObjectsInit(session, [{ type: p.CKA_LABEL, value: label }]);
    try {
      return lib.C_FindObjects(session, 10);
    } finally {
      lib.C_FindObjectsFinal(session);
    }
  }

  test('the root key is a sensitive, non-extractable AES-256 token object labelled <prefix>-v1', async () => {
    const o = opts();
    const kms = await track(openPkcs11Kms(o));
    const id = kms.currentKeyId().split(':')[1];
    await inspectToken((lib, session, p) => {
      const [handle, ...more] = findByLabel(lib, session, p, `${o.keyLabelPrefix}-v1`);
      assert.ok(handle);
      assert.equal(more.length, 0);
      const attrs = lib.C_GetAttributeValue(session, handle, [
        { type: p.CKA_EXTRACTABLE },
        { type: p.CKA_SENSITIVE },
        { type: p.CKA_NEVER_EXTRACTABLE },
        { type: p.CKA_ALWAYS_SENSITIVE },
        { type: p.CKA_TOKEN },
        { type: p.CKA_PRIVATE },
        { type: p.CKA_WRAP },
        { type: p.CKA_ID },
      ]);
      const bool = (i: number) => (attrs[i]!.value as Buffer)[0] === 1;
      assert.equal(bool(0), false, 'CKA_EXTRACTABLE');
      assert.equal(bool(1), true, 'CKA_SENSITIVE');
      assert.equal(bool(2), true, 'CKA_NEVER_EXTRACTABLE');
      assert.equal(bool(3), true, 'CKA_ALWAYS_SENSITIVE');
      assert.equal(bool(4), true, 'CKA_TOKEN');
      assert.equal(bool(5), true, 'CKA_PRIVATE');
      assert.equal(bool(6), false, 'CKA_WRAP');
      assert.equal((attrs[7]!.value as Buffer).toString('hex'), id);
      assert.throws(() => lib.C_GetAttributeValue(session, handle, [{ type: p.CKA_VALUE }]), /CKR_ATTRIBUTE_SENSITIVE/);
    });
  });

  test('retireRoot destroys the key object in the token', async () => {
    const o = opts();
    const kms = await track(openPkcs11Kms(o));
    const v1 = kms.currentKeyId();
    await kms.rotateRoot();
    await kms.retireRoot(v1);
    await inspectToken((lib, session, p) => {
      assert.equal(findByLabel(lib, session, p, `${o.keyLabelPrefix}-v1`).length, 0);
      assert.equal(findByLabel(lib, session, p, `${o.keyLabelPrefix}-v2`).length, 1);
    });
  });

  test('a wrong PIN is CRYPTO_KMS_PIN_WRONG, whether or not the token is already logged in by this process', async () => {
    const wrong = `${PIN}0`;
    await rejectsWith(openPkcs11Kms({ ...opts(), pin: wrong }), 'CRYPTO_KMS_PIN_WRONG', [wrong]);
    await track(openPkcs11Kms(opts()));
    await rejectsWith(openPkcs11Kms({ ...opts(), pin: wrong }), 'CRYPTO_KMS_PIN_WRONG', [wrong]);
  });

  test('an unknown token label is CRYPTO_KMS_TOKEN_NOT_FOUND, naming the labels that exist', async () => {
    const err = await rejectsWith(openPkcs11Kms({ ...opts(), tokenLabel: 'no-such-token' }), 'CRYPTO_KMS_TOKEN_NOT_FOUND');
    assert.deepEqual((err as unknown as { details: unknown }).details, { tokenLabel: 'no-such-token', available: [TOKEN_LABEL] });
  });

  test('a missing PKCS#11 module is CRYPTO_KMS_UNAVAILABLE', async () => {
    const module = join(await tempDir(), 'libnothere.so');
    await rejectsWith(openPkcs11Kms({ ...opts(), module }), 'CRYPTO_KMS_UNAVAILABLE');
    await writeFile(module, 'not a shared object');
    await rejectsWith(openPkcs11Kms({ ...opts(), module }), 'CRYPTO_KMS_UNAVAILABLE');
  });

  test('openKms("pkcs11") never falls back to a local key file when the HSM cannot be used', async () => {
    const dataDir = await tempDir();
    const base = opts();
    for (const [pkcs11, code] of [
      [{ ...base, pin: `${PIN}0` }, 'CRYPTO_KMS_PIN_WRONG'],
      [{ ...base, tokenLabel: 'nope' }, 'CRYPTO_KMS_TOKEN_NOT_FOUND'],
      [{ ...base, module: join(dataDir, 'missing.so') }, 'CRYPTO_KMS_UNAVAILABLE'],
    ] as const) {
      await rejectsWith(openKms({ kms: 'pkcs11', dataDir, pkcs11 }), code);
    }
    await assert.rejects(stat(join(dataDir, 'kms')), { code: 'ENOENT' });
    const kms = await track(openKms({ kms: 'pkcs11', dataDir, pkcs11: base }));
    assert.equal(kms.name, 'pkcs11');
    await assert.rejects(stat(join(dataDir, 'kms')), { code: 'ENOENT' });
    await assert.rejects(async () => openKms({ kms: 'pkcs11', dataDir }), /pkcs11: required/);
  });

  test('an extractable key object under the root key label is refused with CRYPTO_KMS_KEYSTORE_INSECURE', async () => {
    const o = opts();
    await track(openPkcs11Kms(opts())); // keeps the token logged in for our own session
    await inspectToken((lib, session, p) => {
      lib.C_GenerateKey(session, { mechanism: p.CKM_AES_KEY_GEN }, [
        { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
        { type: p.CKA_KEY_TYPE, value: p.CKK_AES },
        { type: p.CKA_VALUE_LEN, value: 32 },
        { type: p.CKA_TOKEN, value: true },
        { type: p.CKA_PRIVATE, value: true },
        { type: p.CKA_SENSITIVE, value: false },
        { type: p.CKA_EXTRACTABLE, value: true },
        { type: p.CKA_ENCRYPT, value: true },
        { type: p.CKA_DECRYPT, value: true },
        { type: p.CKA_LABEL, value: `${o.keyLabelPrefix}-v1` },
        { type: p.CKA_ID, value: randomBytes(8) },
      ]);
    });
    await rejectsWith(openPkcs11Kms(o), 'CRYPTO_KMS_KEYSTORE_INSECURE');
  });

  test('with createIfMissing false a token without root keys is CRYPTO_KMS_ROOT_KEY_MISSING', async () => {
    await rejectsWith(openPkcs11Kms({ ...opts(), createIfMissing: false }), 'CRYPTO_KMS_ROOT_KEY_MISSING');
  });

  test('two providers on one token (two nodes) see each other’s rotation and retirement', async () => {
    const o = opts();
    const a = await track(openPkcs11Kms(o));
    const b = await track(openPkcs11Kms(o));
    assert.equal(a.currentKeyId(), b.currentKeyId());
    const v1 = a.currentKeyId();
    const v2 = await a.rotateRoot();
    const key = randomBytes(32);
    const w2 = await a.wrap(key, 'owner');
    // b has not looked since; it finds v2 on a miss
    assert.deepEqual(await b.unwrap(w2.keyId, w2.wrapped, 'owner'), key);
    await a.retireRoot(v1);
    // b still believed v1 current; its wrap moves on to v2
    const wb = await b.wrap(key, 'owner');
    assert.equal(wb.keyId, v2);
    await a.close();
    // the module and login stay usable for b after a closed
    assert.deepEqual(await b.unwrap(wb.keyId, wb.wrapped, 'owner'), key);
    assert.equal((await b.health()).ok, true);
  });
});
