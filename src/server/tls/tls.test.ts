import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { connect, createServer } from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isTlsError, loadOrCreateTlsMaterial, type TlsMaterial } from './index.ts';
import { loadX509 } from './x509-loader.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
const POSIX = process.platform !== 'win32';
const INDEX = fileURLToPath(new URL('./index.ts', import.meta.url));

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'accord-tls-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function tlsFile(dataDir: string, name: string): string {
  return join(dataDir, 'tls', name);
}

async function mode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

/**
 * Serves `material` with Node's TLS server and connects a verifying client (default
 * checkServerIdentity, rejectUnauthorized on) that trusts only `ca`. Resolves once the handshake
 * succeeds; rejects with the client's verification error otherwise.
 */
async function handshake(
  material: Pick<TlsMaterial, 'cert' | 'key'>,
  client: { ca: string; host?: string; servername?: string },
): Promise<void> {
  const host = client.host ?? '127.0.0.1';
  const server = createServer({ cert: material.cert, key: material.key }, (socket) => socket.end());
  server.on('tlsClientError', () => {});
  server.listen(0, host);
  await once(server, 'listening');
  try {
    const address = server.address();
    assert.ok(address !== null && typeof address === 'object');
    const socket = connect({
      host,
      port: address.port,
      ca: client.ca,
      ...(client.servername === undefined ? {} : { servername: client.servername }),
    });
    try {
      await once(socket, 'secureConnect');
      assert.equal(socket.authorized, true);
    } finally {
      socket.destroy();
    }
  } finally {
    server.close();
  }
}

async function hasIpv6Loopback(): Promise<boolean> {
  const probe = createNetServer();
  try {
    probe.listen(0, '::1');
    await once(probe, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    probe.close();
  }
}

test('generates a local CA and server certificate on first start, with private file modes', async (t) => {
  const dataDir = await tempDir(t);
  const started = performance.now();
  const material = await loadOrCreateTlsMaterial({ dataDir });
  t.diagnostic(`first generation took ${Math.round(performance.now() - started)} ms`);

  assert.equal(material.generated, 'new');
  assert.equal(material.caFile, tlsFile(dataDir, 'ca.pem'));
  const files = ['ca.pem', 'ca-key.pem', 'server.pem', 'server-key.pem'];
  for (const name of files) await stat(tlsFile(dataDir, name));
  if (POSIX) {
    assert.equal(await mode(join(dataDir, 'tls')), 0o700);
    assert.equal(await mode(tlsFile(dataDir, 'ca-key.pem')), 0o600);
    assert.equal(await mode(tlsFile(dataDir, 'server-key.pem')), 0o600);
    assert.equal(await mode(tlsFile(dataDir, 'ca.pem')), 0o644);
    assert.equal(await mode(tlsFile(dataDir, 'server.pem')), 0o644);
  }
  const caPem = await readFile(tlsFile(dataDir, 'ca.pem'), 'utf8');
  const serverPem = await readFile(tlsFile(dataDir, 'server.pem'), 'utf8');
  assert.equal(material.key, await readFile(tlsFile(dataDir, 'server-key.pem'), 'utf8'));
  assert.match(material.key, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.match(await readFile(tlsFile(dataDir, 'ca-key.pem'), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
  // The served chain is the leaf followed by the CA.
  assert.equal(material.cert, serverPem + caPem);
  // No temporary or lock file is left behind.
  assert.deepEqual((await readdir(join(dataDir, 'tls'))).sort(), [...files].sort());
});

test('issues a CA and server certificate with the intended profile', async (t) => {
  const dataDir = await tempDir(t);
  await loadOrCreateTlsMaterial({ dataDir, hostnames: ['accord.example.test', '10.1.2.3'] });
  const x509 = await loadX509();
  const ca = new x509.X509Certificate(await readFile(tlsFile(dataDir, 'ca.pem'), 'utf8'));
  const leaf = new x509.X509Certificate(await readFile(tlsFile(dataDir, 'server.pem'), 'utf8'));

  assert.match(ca.subject, /^CN=Accord Local CA [0-9a-f]{8}$/);
  assert.equal(ca.issuer, ca.subject);
  const basic = ca.getExtension(x509.BasicConstraintsExtension);
  assert.ok(basic);
  assert.equal(basic.ca, true);
  assert.equal(basic.pathLength, 0);
  assert.equal(basic.critical, true);
  const caUsage = ca.getExtension(x509.KeyUsagesExtension);
  assert.ok(caUsage);
  assert.equal(caUsage.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  assert.equal(caUsage.critical, true);
  const caYears = (ca.notAfter.getTime() - ca.notBefore.getTime()) / (365.25 * DAY_MS);
  assert.ok(Math.abs(caYears - 10) < 0.01, `CA validity ${caYears} years`);
  assert.equal(await ca.verify({ signatureOnly: true }), true);

  assert.equal(leaf.issuer, ca.subject);
  assert.equal(await leaf.verify({ publicKey: ca.publicKey, signatureOnly: true }), true);
  const leafUsage = leaf.getExtension(x509.KeyUsagesExtension);
  assert.ok(leafUsage);
  assert.equal(leafUsage.usages, x509.KeyUsageFlags.digitalSignature);
  assert.equal(leafUsage.critical, true);
  assert.deepEqual([...(leaf.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? [])], [
    x509.ExtendedKeyUsage.serverAuth,
  ]);
  const sans = leaf.getExtension(x509.SubjectAlternativeNameExtension)?.names.items.map((n) => `${n.type}:${n.value}`);
  assert.deepEqual(sans, ['dns:localhost', 'ip:127.0.0.1', 'ip:::1', 'dns:accord.example.test', 'ip:10.1.2.3']);
  assert.equal((leaf.notAfter.getTime() - leaf.notBefore.getTime()) / DAY_MS, 397);
  // 16 random octets, positive: the top bit of the first octet is clear.
  assert.match(leaf.serialNumber, /^[0-7][0-9a-f]{31}$/);
  assert.match(ca.serialNumber, /^[0-7][0-9a-f]{31}$/);
  for (const cert of [ca, leaf]) {
    const key = new X509Certificate(Buffer.from(cert.rawData)).publicKey;
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  }
});

test('returns the existing material with the same CA on the next start', async (t) => {
  const dataDir = await tempDir(t);
  const first = await loadOrCreateTlsMaterial({ dataDir });
  const started = performance.now();
  const second = await loadOrCreateTlsMaterial({ dataDir });
  t.diagnostic(`loading existing material took ${Math.round(performance.now() - started)} ms`);

  assert.equal(second.generated, 'existing');
  assert.equal(second.caFingerprint, first.caFingerprint);
  assert.equal(second.fingerprint, first.fingerprint);
  assert.equal(second.cert, first.cert);
  assert.equal(second.key, first.key);
});

test('computes fingerprints that match node:crypto fingerprint256', async (t) => {
  const dataDir = await tempDir(t);
  const material = await loadOrCreateTlsMaterial({ dataDir });
  const caPem = await readFile(tlsFile(dataDir, 'ca.pem'), 'utf8');
  assert.equal(material.caFingerprint, new X509Certificate(caPem).fingerprint256);
  assert.equal(material.fingerprint, new X509Certificate(material.cert).fingerprint256);
  assert.match(material.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
});

test('completes a verified handshake for localhost and 127.0.0.1 with a client trusting only ca.pem', async (t) => {
  const dataDir = await tempDir(t);
  const material = await loadOrCreateTlsMaterial({ dataDir });
  assert.ok(material.caFile);
  const ca = await readFile(material.caFile, 'utf8');

  await handshake(material, { ca, servername: 'localhost' });
  // No servername: Node checks the certificate against the IP it connected to.
  await handshake(material, { ca, host: '127.0.0.1' });
  if (await hasIpv6Loopback()) await handshake(material, { ca, host: '::1' });
  else t.diagnostic('no IPv6 loopback here: ::1 handshake not tried');
});

test('fails the handshake for a client that trusts a different CA', async (t) => {
  const material = await loadOrCreateTlsMaterial({ dataDir: await tempDir(t) });
  const other = await loadOrCreateTlsMaterial({ dataDir: await tempDir(t) });
  assert.notEqual(other.caFingerprint, material.caFingerprint);
  assert.ok(other.caFile);
  const otherCa = await readFile(other.caFile, 'utf8');

  await assert.rejects(handshake(material, { ca: otherCa, servername: 'localhost' }), (err: NodeJS.ErrnoException) => {
    assert.ok(
      ['SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'].includes(
        err.code ?? '',
      ),
      `unexpected ${err.code}`,
    );
    return true;
  });
});

test('fails the handshake for a name the certificate does not cover', async (t) => {
  const material = await loadOrCreateTlsMaterial({ dataDir: await tempDir(t) });
  assert.ok(material.caFile);
  const ca = await readFile(material.caFile, 'utf8');
  await assert.rejects(handshake(material, { ca, servername: 'accord.example.test' }), {
    code: 'ERR_TLS_CERT_ALTNAME_INVALID',
  });
});

test('re-issues only the server certificate when it expires within 30 days', async (t) => {
  const dataDir = await tempDir(t);
  const now = Date.now();
  const old = await loadOrCreateTlsMaterial({ dataDir, now: new Date(now - 380 * DAY_MS) });
  const oldCaKey = await readFile(tlsFile(dataDir, 'ca-key.pem'), 'utf8');

  const renewed = await loadOrCreateTlsMaterial({ dataDir, now: new Date(now) });
  assert.equal(renewed.generated, 'existing');
  assert.equal(renewed.caFingerprint, old.caFingerprint);
  assert.notEqual(renewed.fingerprint, old.fingerprint);
  assert.notEqual(renewed.key, old.key);
  assert.equal(await readFile(tlsFile(dataDir, 'ca-key.pem'), 'utf8'), oldCaKey);
  const leaf = new X509Certificate(await readFile(tlsFile(dataDir, 'server.pem'), 'utf8'));
  assert.ok(Date.parse(leaf.validTo) > now + 390 * DAY_MS);
  if (POSIX) assert.equal(await mode(tlsFile(dataDir, 'server-key.pem')), 0o600);

  // 31 days before expiry it is still kept.
  const kept = await loadOrCreateTlsMaterial({ dataDir, now: new Date(Date.parse(leaf.validTo) - 31 * DAY_MS) });
  assert.equal(kept.fingerprint, renewed.fingerprint);
});

test('re-issues the server certificate from the same CA when a new hostname is requested', async (t) => {
  const dataDir = await tempDir(t);
  const first = await loadOrCreateTlsMaterial({ dataDir });
  const widened = await loadOrCreateTlsMaterial({ dataDir, hostnames: ['Accord.Example.Test.', '10.1.2.3'] });
  assert.equal(widened.generated, 'existing');
  assert.equal(widened.caFingerprint, first.caFingerprint);
  assert.notEqual(widened.fingerprint, first.fingerprint);

  // The same names spelled differently are already covered.
  const again = await loadOrCreateTlsMaterial({ dataDir, hostnames: ['accord.example.test', '10.1.2.3'] });
  assert.equal(again.fingerprint, widened.fingerprint);
  const subset = await loadOrCreateTlsMaterial({ dataDir, hostnames: ['0:0:0:0:0:0:0:1'] });
  assert.equal(subset.fingerprint, widened.fingerprint);

  assert.ok(widened.caFile);
  await handshake(widened, { ca: await readFile(widened.caFile, 'utf8'), servername: 'accord.example.test' });
});

test('rejects a hostname that cannot go in a certificate, naming the option', async (t) => {
  const dataDir = await tempDir(t);
  for (const [hostnames, index] of [
    [['ok.example', 'bad host'], 1],
    [['fe80::1%eth0'], 0],
    [['*.com'], 0],
    [[''], 0],
  ] as const) {
    await assert.rejects(loadOrCreateTlsMaterial({ dataDir, hostnames: [...hostnames] }), (err: unknown) => {
      assert.ok(isTlsError(err, 'TLS_INVALID_HOSTNAME'));
      assert.match(err.message, new RegExp(`^hostnames\\[${index}\\]`));
      return true;
    });
  }
  await assert.rejects(stat(join(dataDir, 'tls')), { code: 'ENOENT' });
});

test('uses provided cert and key files as they are', async (t) => {
  const source = await tempDir(t);
  await loadOrCreateTlsMaterial({ dataDir: source });
  const certFile = tlsFile(source, 'server.pem');
  const keyFile = tlsFile(source, 'server-key.pem');
  const dataDir = await tempDir(t);

  const material = await loadOrCreateTlsMaterial({ dataDir, certFile, keyFile, hostnames: ['ignored.example'] });
  assert.equal(material.generated, 'provided');
  assert.equal(material.cert, await readFile(certFile, 'utf8'));
  assert.equal(material.key, await readFile(keyFile, 'utf8'));
  assert.equal(material.caFile, undefined);
  assert.equal(material.caFingerprint, undefined);
  assert.equal(material.fingerprint, new X509Certificate(material.cert).fingerprint256);
  await assert.rejects(stat(join(dataDir, 'tls')), { code: 'ENOENT' });
  await handshake(material, { ca: await readFile(tlsFile(source, 'ca.pem'), 'utf8'), servername: 'localhost' });
});

test('reports a missing provided file with TLS_FILE_UNREADABLE, naming it without key content', async (t) => {
  const source = await tempDir(t);
  await loadOrCreateTlsMaterial({ dataDir: source });
  const certFile = tlsFile(source, 'server.pem');
  const keyFile = tlsFile(source, 'server-key.pem');
  const keyPem = await readFile(keyFile, 'utf8');
  const keyBody = keyPem.split('\n')[1] ?? '';
  const dataDir = await tempDir(t);
  const missing = join(dataDir, 'nope', 'key.pem');

  const cases = [
    { certFile, keyFile: missing, path: missing },
    { certFile: missing, keyFile, path: missing },
    { certFile, keyFile: dataDir, path: dataDir },
  ];
  for (const files of cases) {
    await assert.rejects(loadOrCreateTlsMaterial({ dataDir, certFile: files.certFile, keyFile: files.keyFile }), (err) => {
      assert.ok(isTlsError(err, 'TLS_FILE_UNREADABLE'));
      assert.ok(err.message.includes(files.path), err.message);
      assert.equal(err.path, files.path);
      for (const text of [err.message, String(err.stack), String((err.cause as Error | undefined)?.message)]) {
        assert.ok(!text.includes('PRIVATE KEY') && !text.includes(keyBody));
      }
      return true;
    });
  }
});

test('rejects a provided key that does not belong to the provided certificate', async (t) => {
  const a = await tempDir(t);
  const b = await tempDir(t);
  await loadOrCreateTlsMaterial({ dataDir: a });
  await loadOrCreateTlsMaterial({ dataDir: b });
  await assert.rejects(
    loadOrCreateTlsMaterial({ dataDir: a, certFile: tlsFile(a, 'server.pem'), keyFile: tlsFile(b, 'server-key.pem') }),
    (err) => isTlsError(err, 'TLS_KEY_MISMATCH') && !err.message.includes('PRIVATE KEY'),
  );
  // A key file that holds a certificate instead of a key.
  await assert.rejects(
    loadOrCreateTlsMaterial({ dataDir: a, certFile: tlsFile(a, 'server.pem'), keyFile: tlsFile(a, 'ca.pem') }),
    (err) => isTlsError(err, 'TLS_FILE_INVALID'),
  );
});

test('rejects a cert file without a key file, and the reverse, with TLS_INCOMPLETE', async (t) => {
  const dataDir = await tempDir(t);
  await assert.rejects(loadOrCreateTlsMaterial({ dataDir, certFile: join(dataDir, 'c.pem') }), (err) => {
    assert.ok(isTlsError(err, 'TLS_INCOMPLETE'));
    assert.match(err.message, /^certFile was given without keyFile/);
    return true;
  });
  await assert.rejects(loadOrCreateTlsMaterial({ dataDir, keyFile: join(dataDir, 'k.pem') }), { code: 'TLS_INCOMPLETE' });
});

test('refuses to replace a CA whose key has gone missing', async (t) => {
  const dataDir = await tempDir(t);
  await loadOrCreateTlsMaterial({ dataDir });
  const caPem = await readFile(tlsFile(dataDir, 'ca.pem'), 'utf8');
  await rm(tlsFile(dataDir, 'ca-key.pem'));
  await assert.rejects(loadOrCreateTlsMaterial({ dataDir }), { code: 'TLS_CA_KEY_MISSING' });
  assert.equal(await readFile(tlsFile(dataDir, 'ca.pem'), 'utf8'), caPem);
});

test('replaces a CA key left without its certificate by a crash', async (t) => {
  const dataDir = await tempDir(t);
  const first = await loadOrCreateTlsMaterial({ dataDir });
  await rm(tlsFile(dataDir, 'ca.pem'));
  const second = await loadOrCreateTlsMaterial({ dataDir });
  assert.equal(second.generated, 'new');
  assert.notEqual(second.caFingerprint, first.caFingerprint);
  assert.notEqual(second.fingerprint, first.fingerprint);
  assert.ok(second.caFile);
  await handshake(second, { ca: await readFile(second.caFile, 'utf8'), servername: 'localhost' });
});

test('narrows a CA key file that others can read back to 0600', { skip: !POSIX && 'no POSIX modes' }, async (t) => {
  const dataDir = await tempDir(t);
  await loadOrCreateTlsMaterial({ dataDir });
  await chmod(tlsFile(dataDir, 'ca-key.pem'), 0o644);
  await loadOrCreateTlsMaterial({ dataDir });
  assert.equal(await mode(tlsFile(dataDir, 'ca-key.pem')), 0o600);
});

test('creates a single CA when several callers in one process start at once', async (t) => {
  const dataDir = await tempDir(t);
  const results = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateTlsMaterial({ dataDir })));
  assert.equal(results.filter((r) => r.generated === 'new').length, 1);
  assert.equal(new Set(results.map((r) => r.caFingerprint)).size, 1);
  assert.equal(new Set(results.map((r) => r.fingerprint)).size, 1);
});

test('creates a single CA when several processes start at once', async (t) => {
  const dataDir = await tempDir(t);
  // Each child loads the module, says so, and calls only when told: tsx start-up times vary by
  // hundreds of milliseconds, and without this the calls would rarely overlap.
  const script = `
    const { loadOrCreateTlsMaterial } = await import(${JSON.stringify(pathToFileURL(INDEX).href)});
    process.stdout.write('ready\\n');
    await new Promise((resolve) => process.stdin.once('data', resolve));
    const m = await loadOrCreateTlsMaterial({ dataDir: process.env.ACCORD_TLS_TEST_DIR });
    process.stdout.write(JSON.stringify({ generated: m.generated, ca: m.caFingerprint, leaf: m.fingerprint }));
    process.stdin.destroy();
  `;
  const children = Array.from({ length: 4 }, () => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, ACCORD_TLS_TEST_DIR: dataDir },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const ready = new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.startsWith('ready\n')) resolve();
      });
    });
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    const done = once(child, 'close').then(([code]) => {
      assert.equal(code, 0, err);
      return JSON.parse(out.slice('ready\n'.length)) as { generated: string; ca: string; leaf: string };
    });
    return { child, ready, done };
  });
  // A child that fails would leave the others waiting on stdin forever.
  t.after(() => {
    for (const { child } of children) if (child.exitCode === null) child.kill();
  });
  await Promise.race([Promise.all(children.map((c) => c.ready)), Promise.all(children.map((c) => c.done))]);
  for (const { child } of children) child.stdin.write('go\n');
  const results = await Promise.all(children.map((c) => c.done));

  assert.equal(results.filter((r) => r.generated === 'new').length, 1);
  assert.equal(new Set(results.map((r) => r.ca)).size, 1);
  assert.equal(new Set(results.map((r) => r.leaf)).size, 1);
  assert.equal(results[0]?.ca, new X509Certificate(await readFile(tlsFile(dataDir, 'ca.pem'), 'utf8')).fingerprint256);
});

test('takes over a lock left by a process that died', async (t) => {
  const dataDir = await tempDir(t);
  const dead = spawn(process.execPath, ['-e', '']);
  await once(dead, 'close');
  await mkdir(join(dataDir, 'tls'), { mode: 0o700 });
  await writeFile(tlsFile(dataDir, '.lock'), JSON.stringify({ pid: dead.pid, host: hostname() }));

  const started = Date.now();
  const material = await loadOrCreateTlsMaterial({ dataDir });
  assert.equal(material.generated, 'new');
  assert.ok(Date.now() - started < 5000);
  await assert.rejects(stat(tlsFile(dataDir, '.lock')), { code: 'ENOENT' });
});
