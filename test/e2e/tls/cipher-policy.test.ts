// Issue 10, finding 8: the listener offers forward-secret AEAD suites only. Every TLS 1.2 suite
// this OpenSSL knows is tried, one `openssl s_client` per suite; a permissive control server with
// the same certificate shows the client really offers the suites the platform refuses.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createServer, type Server, type TlsOptions } from 'node:tls';
import { promisify } from 'node:util';
import { loadConfig } from '../../../src/config/index.ts';
import { type RunningPlatform, startPlatform } from '../../../src/server/index.ts';
import { TLS_POLICY, tlsServerOptions } from '../../../src/server/tls/index.ts';

const run = promisify(execFile);
const HOST = '127.0.0.1';
let dir: string;
let platform: RunningPlatform;
let tls12Suites: string[];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'accord-e2e-ciphers-'));
  platform = await startPlatform(loadConfig({ env: {}, flags: { dataDir: join(dir, 'data'), port: 0, logLevel: 'silent' } }));
  const { stdout } = await run('openssl', ['ciphers', '-v', 'ALL:COMPLEMENTOFALL:@SECLEVEL=0']);
  tls12Suites = stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[0] && f[1] !== 'TLSv1.3')
    .map((f) => f[0] as string);
  assert.ok(tls12Suites.length > 50, 'openssl lists the TLS 1.2 suites');
});

after(async () => {
  await platform?.close();
  await rm(dir, { recursive: true, force: true });
});

/** One handshake with `openssl s_client`; the negotiated suite, or undefined when refused. */
async function negotiate(port: number, args: string[]): Promise<string | undefined> {
  const text = await handshakeText(port, args);
  const m = text ? /Cipher is (\S+)/.exec(text) : null;
  return m && m[1] !== '(NONE)' ? m[1] : undefined;
}

/** What `openssl s_client` printed for one handshake. */
async function handshakeText(port: number, args: string[]): Promise<string | undefined> {
  // stdin at end of file: s_client ends right after the handshake.
  const child = spawn('openssl', ['s_client', '-connect', `${HOST}:${port}`, '-servername', 'localhost', ...args], { stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
  let stdout = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    stdout += d;
  });
  await once(child, 'close');
  return stdout;
}

/** The TLS 1.2 suites among `suites` a server accepts, trying each one alone (four at a time). */
async function accepted(port: number, suites: readonly string[]): Promise<string[]> {
  const ok: string[] = [];
  const queue = [...suites];
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
        const got = await negotiate(port, ['-tls1_2', '-cipher', `${s}:@SECLEVEL=0`]);
        if (got === s) ok.push(s);
      }
    }),
  );
  return ok.sort();
}

async function control(options: TlsOptions): Promise<{ server: Server; port: number }> {
  const server = createServer(options, (s) => s.end());
  server.on('tlsClientError', () => {});
  server.listen(0, HOST);
  await once(server, 'listening');
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { server, port: address.port };
}

test('over TLS 1.2 the platform accepts exactly the ECDHE AES-GCM and ChaCha20 suites its certificate can use, and no CBC or CCM suite', async () => {
  const got = await accepted(platform.port, tls12Suites);
  // The generated certificate is ECDSA: the RSA half of the policy cannot be negotiated with it.
  const expected = TLS_POLICY.tls12Suites.filter((s) => s.startsWith('ECDHE-ECDSA-')).sort();
  assert.deepEqual(got, expected);

  // Control: the same certificate on a server with OpenSSL's defaults does offer the weaker suites.
  const permissive = await control({ key: platform.tls.key, cert: platform.tls.cert, ciphers: 'ALL:@SECLEVEL=0' });
  try {
    const weaker = ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA384', 'ECDHE-ECDSA-AES128-CCM8', 'ECDHE-ECDSA-AES128-CCM'];
    assert.deepEqual(await accepted(permissive.port, weaker), [...weaker].sort());
  } finally {
    permissive.server.close();
  }
});

test('the policy with an RSA certificate accepts only the ECDHE-RSA AEAD suites', async () => {
  const key = join(dir, 'rsa.key');
  const cert = join(dir, 'rsa.crt');
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost']);
  const server = await control({ key: await readFile(key), cert: await readFile(cert), ...tlsServerOptions() });
  try {
    const got = await accepted(server.port, tls12Suites);
    assert.deepEqual(got, TLS_POLICY.tls12Suites.filter((s) => s.startsWith('ECDHE-RSA-')).sort());
  } finally {
    server.server.close();
  }
});

test('key exchange uses X25519, P-256 or P-384 only', async () => {
  for (const [group, shown] of [
    ['X25519', 'X25519'],
    ['prime256v1', 'ECDH, prime256v1'],
    ['secp384r1', 'ECDH, secp384r1'],
  ] as const) {
    assert.match((await handshakeText(platform.port, ['-tls1_3', '-groups', group])) ?? '', new RegExp(`Server Temp Key: ${shown}`), `${group} is accepted`);
  }
  for (const group of ['secp521r1', 'ffdhe2048']) {
    assert.equal(await negotiate(platform.port, ['-tls1_3', '-groups', group]), undefined, `${group} is refused`);
  }
  // TLS 1.2: the group list also names the curves the client can verify the ECDSA P-256
  // certificate with, so P-256 is always offered; P-521, offered first, is passed over.
  assert.match((await handshakeText(platform.port, ['-tls1_2', '-curves', 'secp521r1:prime256v1'])) ?? '', /Server Temp Key: ECDH, prime256v1/);
});

test('TLS 1.3 offers its three default suites and not CCM', async () => {
  for (const suite of TLS_POLICY.tls13Suites) {
    assert.equal(await negotiate(platform.port, ['-tls1_3', '-ciphersuites', suite]), suite);
  }
  assert.equal(await negotiate(platform.port, ['-tls1_3', '-ciphersuites', 'TLS_AES_128_CCM_SHA256']), undefined);
});
