// PLAT-4 over a real socket: the platform speaks HTTPS only, with TLS 1.2 as the floor, HSTS,
// and nothing for anonymous callers beyond health.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { request } from 'node:https';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type ConnectionOptions, connect, createServer } from 'node:tls';
import { loadConfig } from '../../../src/config/index.ts';
import { type RunningPlatform, startPlatform } from '../../../src/server/index.ts';

const HOST = '127.0.0.1';
let dir: string;
let dataDir: string;
let platform: RunningPlatform;
let ca: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'accord-e2e-tls-'));
  dataDir = join(dir, 'data');
  platform = await startPlatform(loadConfig({ env: {}, flags: { dataDir, port: 0, logLevel: 'silent' } }));
  assert.ok(platform.tls.caFile, 'a generated CA');
  ca = await readFile(platform.tls.caFile, 'utf8');
});

after(async () => {
  await platform?.close();
  await rm(dir, { recursive: true, force: true });
});

type Handshake = { ok: true; protocol: string | null } | { ok: false; error: string };

/** Connects with `options` and reports whether the TLS handshake completed, and with which version. */
function handshake(port: number, options: ConnectionOptions): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port, ca, ...options });
    // events.once() would reject on 'error'; plain listeners let the first outcome win.
    const settle = (result: Handshake) => {
      socket.destroy();
      resolve(result);
    };
    socket.once('secureConnect', () => settle({ ok: true, protocol: socket.getProtocol() }));
    socket.once('error', (err: NodeJS.ErrnoException) => settle({ ok: false, error: err.code ?? err.message }));
    socket.once('close', () => settle({ ok: false, error: 'closed before the handshake completed' }));
  });
}

// The oldest protocol this Node/OpenSSL will still speak when asked to: security level 0 allows
// TLS 1.1 and its SHA-1 signatures, which OpenSSL 3 refuses by default.
const TLS11_CLIENT: ConnectionOptions = { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' };

test('a TLS 1.1 handshake is refused by the platform, though the same client completes one with a permissive server', async () => {
  // Control: the platform's own certificate and key behind a server that still allows TLS 1.0+,
  // so the client options above do work and the refusal below is the platform's configuration.
  const control = createServer(
    { cert: platform.tls.cert, key: platform.tls.key, minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' },
    (s) => s.end(),
  );
  control.on('tlsClientError', () => {});
  control.listen(0, HOST);
  await once(control, 'listening');
  try {
    const address = control.address();
    assert.ok(address !== null && typeof address === 'object');
    assert.deepEqual(await handshake(address.port, TLS11_CLIENT), { ok: true, protocol: 'TLSv1.1' });
  } finally {
    control.close();
  }

  const refused = await handshake(platform.port, TLS11_CLIENT);
  assert.equal(refused.ok, false, `the platform completed a TLS 1.1 handshake: ${JSON.stringify(refused)}`);
  // Refused for its version (alert 70, protocol_version), not for some other incompatibility.
  assert.match(refused.error, /PROTOCOL_VERSION/);
});

test('TLS 1.2 and TLS 1.3 handshakes are accepted with a certificate chaining to the generated CA', async () => {
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const result = await handshake(platform.port, { minVersion: version, maxVersion: version });
    assert.deepEqual(result, { ok: true, protocol: version });
  }
  // And by name, as the CLI connects: the certificate names localhost.
  const byName = await handshake(platform.port, { servername: 'localhost', host: 'localhost' });
  assert.equal(byName.ok, true, JSON.stringify(byName));
});

interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(path: string): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request({ host: HOST, port: platform.port, path, ca, servername: 'localhost' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('responses carry Strict-Transport-Security with a max-age of at least a year', async () => {
  for (const path of ['/healthz', '/metrics', '/no-such-path']) {
    const res = await get(path);
    const hsts = String(res.headers['strict-transport-security'] ?? '');
    const maxAge = Number(/max-age=(\d+)/.exec(hsts)?.[1] ?? Number.NaN);
    assert.ok(maxAge >= 31_536_000, `${path}: strict-transport-security is "${hsts}"`);
  }
});

test('plain HTTP to the HTTPS port gets no HTTP response', async () => {
  const socket = netConnect({ host: HOST, port: platform.port });
  let received = '';
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => {
    received += d;
  });
  await once(socket, 'connect');
  socket.write(`GET /healthz HTTP/1.1\r\nHost: localhost:${platform.port}\r\nConnection: close\r\n\r\n`);
  // Plain listeners: events.once() would turn an 'error' into a rejection.
  const ended = await new Promise<string>((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), 10_000);
    const done = (how: string) => {
      clearTimeout(timer);
      resolve(how);
    };
    socket.once('close', () => done('closed'));
    socket.once('error', (err: NodeJS.ErrnoException) => done(`error ${err.code}`));
  });
  socket.destroy();
  assert.notEqual(ended, 'timeout', 'the server closes the connection');
  assert.doesNotMatch(received, /HTTP\/\d/, `no status line, got ${JSON.stringify(received.slice(0, 80))}`);
});

test('/healthz answers 200 to an anonymous caller', async () => {
  const res = await get('/healthz');
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body), { status: 'ok' });
});

test('/metrics answers 401 problem+json with IAM_UNAUTHENTICATED to an anonymous caller', async () => {
  const res = await get('/metrics');
  assert.equal(res.status, 401);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
  const problem = JSON.parse(res.body) as { code: string; status: number };
  assert.equal(problem.code, 'IAM_UNAUTHENTICATED');
  assert.equal(problem.status, 401);
  assert.doesNotMatch(res.body, /process_cpu|nodejs_/, 'no metric leaks into the refusal');
});

test('the generated CA key is readable by its owner only', async () => {
  const caKey = join(dataDir, 'tls', 'ca-key.pem');
  assert.equal((await stat(caKey)).mode & 0o777, 0o600);
  assert.equal(platform.tls.caFile, join(dataDir, 'tls', 'ca.pem'));
});
