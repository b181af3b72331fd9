// Issue 10, finding 4 over real sockets: slow or silent clients cannot hold connections open,
// and one source cannot open more than its share. The deadlines are configured small here; each
// test waits for the server to act and fails if it has not within a bound far above the setting.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { loadConfig } from '../../../src/config/index.ts';
import { isAccordError } from '../../../src/errors/index.ts';
import { type RunningPlatform, startPlatform } from '../../../src/server/index.ts';

const HOST = '127.0.0.1';
// Far above every deadline configured below: reaching it means the server never acted.
const BOUND_MS = 15_000;
let dir: string;
let platform: RunningPlatform;
let ca: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'accord-e2e-listener-'));
  platform = await startPlatform(
    loadConfig({
      env: {},
      flags: {
        dataDir: join(dir, 'data'),
        port: 0,
        logLevel: 'silent',
        httpHeadersTimeoutSeconds: 1,
        httpRequestTimeoutSeconds: 2,
        httpIdleTimeoutSeconds: 3,
        httpKeepAliveTimeoutSeconds: 1,
        tlsHandshakeTimeoutSeconds: 1,
        maxConnectionsPerSource: 3,
      },
    }),
  );
  assert.ok(platform.tls.caFile);
  ca = await readFile(platform.tls.caFile, 'utf8');
});

after(async () => {
  await platform?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Resolves with what the client received once the server closes the socket, or 'still open' at the bound. */
function untilClosed(socket: Socket): Promise<{ how: 'closed' | 'still open'; received: string }> {
  return new Promise((resolve) => {
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      received += d;
    });
    socket.on('error', () => {});
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ how: 'still open', received });
    }, BOUND_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ how: 'closed', received });
    });
  });
}

function tlsConnect(): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: HOST, port: platform.port, ca, servername: 'localhost' });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
    s.once('close', () => reject(new Error('closed before the handshake completed')));
  });
}

/** Writes `text` one byte at a time, `everyMs` apart, until done or the socket closes. */
function trickle(socket: Socket, text: string, everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) {
      clearInterval(timer);
      return;
    }
    socket.write(text.charAt(i++));
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
}

describe('connection deadlines', () => {
  test('a TCP connection that never starts TLS is closed after the handshake deadline', async () => {
    const socket = netConnect({ host: HOST, port: platform.port });
    const result = await untilClosed(socket);
    assert.equal(result.how, 'closed');
  });

  test('a client trickling its headers one byte at a time is cut off at the headers deadline', async () => {
    const socket = await tlsConnect();
    // Long enough that, sent a byte every 200 ms, it would take far beyond the bound.
    trickle(socket, `GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ${'a'.repeat(200)}\r\n\r\n`, 200);
    const result = await untilClosed(socket);
    assert.equal(result.how, 'closed');
    assert.doesNotMatch(result.received, /HTTP\/1\.1 200/, 'the request was never answered as if complete');
  });

  test('a client trickling its body is answered 408 and disconnected at the request deadline', async () => {
    const socket = await tlsConnect();
    const body = JSON.stringify({ email: 'slow@example.com', password: 'x'.repeat(200) });
    socket.write(`POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`);
    trickle(socket, body, 200);
    const result = await untilClosed(socket);
    assert.equal(result.how, 'closed');
    assert.match(result.received, /^HTTP\/1\.1 408/);
  });

  test('a kept-alive connection that sends no next request is closed', async () => {
    const socket = await tlsConnect();
    socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const result = await untilClosed(socket);
    assert.equal(result.how, 'closed');
    assert.match(result.received, /^HTTP\/1\.1 200/, 'the one request was answered');
  });
});

describe('connections per source', () => {
  test('a source at its connection cap gets no further connection until one of its own closes', async () => {
    const held = [await tlsConnect(), await tlsConnect(), await tlsConnect()];
    try {
      await assert.rejects(tlsConnect(), 'the fourth connection from one address is refused');
      const first = held.shift();
      first?.destroy();
      await new Promise((r) => first?.once('close', r));
      // The server sees the close a moment after the client; retry briefly rather than race it.
      let again: TLSSocket | undefined;
      for (let i = 0; i < 50 && !again; i++) {
        again = await tlsConnect().catch(() => undefined);
        if (!again) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(again, 'a connection is accepted again once one of the three closed');
      held.push(again);
    } finally {
      for (const s of held) s.destroy();
    }
  });
});

test('a headers deadline longer than the request deadline is a configuration error', () => {
  assert.throws(
    () => loadConfig({ env: {}, flags: { httpHeadersTimeoutSeconds: 20, httpRequestTimeoutSeconds: 10 } }),
    (err: unknown) => isAccordError(err, 'CONFIG_INVALID') && err.details?.key === 'httpHeadersTimeoutSeconds',
  );
});
