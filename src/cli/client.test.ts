import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { apiClient } from './client.ts';

test('a server that trickles its TLS handshake one byte at a time times the call out', async () => {
  const sockets: Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  // Answers the ClientHello with the header of a 16 KiB handshake record, then a byte every
  // 50 ms: the socket is never idle, so only a deadline on the whole call ends it.
  const server = createServer((s) => {
    sockets.push(s);
    s.once('data', () => {
      s.write(Buffer.from([0x16, 0x03, 0x03, 0x3f, 0xff]));
      timers.push(setInterval(() => s.write(Buffer.from([0x00])), 50));
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    const started = Date.now();
    await assert.rejects(apiClient({ url: `https://127.0.0.1:${port}`, ca: undefined, token: undefined }, { timeoutMs: 300 }).call('GET', '/healthz'), (err: { code?: string; message: string }) => {
      assert.equal(err.code, 'CLI_CONNECTION_FAILED');
      assert.match(err.message, /timed out/);
      return true;
    });
    assert.ok(Date.now() - started < 10_000, 'the call ended by its own deadline, not by the test runner');
  } finally {
    for (const t of timers) clearInterval(t);
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
