// The SIEM sink against a real TLS syslog receiver started here: octet-counted frames (RFC 5425)
// carrying RFC 5424 messages, on both engines, across a platform restart and a receiver outage.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { engines } from '../../test/harness/engines.ts';
import { createCertificateAuthority, issueServerCertificate } from '../../test/harness/tls.ts';
import { PLATFORM_CHAIN, record, sealPending, systemSource } from '../audit-chain/index.ts';
import type { Db } from '../db/index.ts';
import { isAccordError } from '../errors/index.ts';
import { SyslogSink } from './syslog-sink.ts';

const HOST_NAME = 'accord-node-1';
// Multi-byte characters make the octet count differ from the character count.
const NOTE = 'Zürich → 東京 ✓';

interface KeyPair {
  cert: string;
  key: string;
}

/** A TLS syslog receiver: parses octet-counted frames and keeps every message it got. */
class Receiver {
  readonly messages: string[] = [];
  /** SNI names clients sent, one per accepted TLS connection. */
  readonly servernames: (string | false | null)[] = [];
  readonly protocolErrors: string[] = [];
  /** When set, each connection stops reading after this many messages and is then dropped. */
  stallAfter: number | undefined;
  readonly #pair: KeyPair;
  readonly #sockets = new Set<TLSSocket>();
  #server: Server | undefined;
  port = 0;

  constructor(pair: KeyPair) {
    this.#pair = pair;
  }

  /**
   * Waits until `count` messages have arrived in all: the sender's write completes when the
   * kernel has the bytes, possibly before this receiver has read them.
   */
  async waitFor(count: number): Promise<void> {
    for (const deadline = Date.now() + 5_000; this.messages.length < count && Date.now() < deadline; ) await sleep(10);
    // Anything beyond `count` would be a duplicate; give it a moment to show up too.
    await sleep(20);
  }

  async start(port = this.port): Promise<this> {
    const server = createServer({ ...this.#pair, minVersion: 'TLSv1.2' }, (socket) => this.#accept(socket));
    // A client that rejects our certificate aborts the handshake; that is expected in one test.
    server.on('tlsClientError', () => {});
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.#server = server;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  /** Stops listening and drops every connection, as a crashed or restarted receiver would. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    await closed;
  }

  #accept(socket: TLSSocket): void {
    this.#sockets.add(socket);
    this.servernames.push(socket.servername);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = Buffer.alloc(0);
    let received = 0;
    socket.on('data', (chunk: Buffer) => {
      if (this.stallAfter !== undefined && received >= this.stallAfter) return;
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const space = buffered.indexOf(0x20);
        if (space === -1) return;
        const prefix = buffered.subarray(0, space).toString('latin1');
        if (!/^[1-9][0-9]{0,8}$/.test(prefix)) {
          this.protocolErrors.push(`bad length prefix ${JSON.stringify(prefix.slice(0, 20))}`);
          socket.destroy();
          return;
        }
        const length = Number(prefix);
        if (buffered.length < space + 1 + length) return;
        this.messages.push(buffered.subarray(space + 1, space + 1 + length).toString('utf8'));
        buffered = buffered.subarray(space + 1 + length);
        received += 1;
        if (this.stallAfter !== undefined && received >= this.stallAfter) {
          // A receiver that dies mid-stream, unread data in its buffers: the sender's write fails.
          socket.pause();
          setImmediate(() => socket.destroy());
          return;
        }
      }
    });
  }
}

interface Parsed {
  pri: number;
  time: string;
  host: string;
  chain: string;
  seq: number;
  body: { id: string; seq: number; chain: string; hash: string; details: { note?: string } };
}

// <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG (RFC 5424, section 6)
const SYSLOG_5424 =
  /^<(\d{1,3})>1 (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) ([\x21-\x7e]{1,255}) accord - audit \[accord@32473 chain="([^"]+)" seq="(\d+)" action="[^"]*" outcome="[^"]*"\] (\{.*\})$/s;

function parse(message: string): Parsed {
  const m = SYSLOG_5424.exec(message);
  assert.ok(m, `not the expected RFC 5424 message: ${message.slice(0, 160)}`);
  return { pri: Number(m[1]), time: m[2]!, host: m[3]!, chain: m[4]!, seq: Number(m[5]), body: JSON.parse(m[6]!) };
}

/** Writes `n` records to a chain, a few per transaction as real requests would. */
async function writeRecords(db: Db, tenantId: string | null, n: number): Promise<void> {
  for (let i = 0; i < n; i += 25) {
    await db.transaction().execute(async (trx) => {
      for (let j = i; j < Math.min(n, i + 25); j++) {
        await record(trx, systemSource, {
          tenantId,
          action: 'test.sink',
          outcome: j % 7 === 0 ? 'denied' : 'success',
          details: { i: j, note: NOTE },
        });
      }
    });
  }
  // The sink delivers sealed records; in a server the sealer links them right after commit.
  await sealPending(db, { wait: true });
}

/** Records of about 24 KB each, so that a batch of them outgrows the kernel's socket buffers. */
async function writeBigRecords(db: Db, n: number): Promise<void> {
  const chunk = '東'.repeat(2000);
  for (let i = 0; i < n; i += 50) {
    await db.transaction().execute(async (trx) => {
      for (let j = i; j < Math.min(n, i + 50); j++) {
        await record(trx, systemSource, { tenantId: null, action: 'test.sink.big', outcome: 'success', details: { a: chunk, b: chunk, c: chunk, d: chunk } });
      }
    });
  }
  await sealPending(db, { wait: true });
}

/** Every stored record as `chain:seq` → `id hash`. */
async function storedRecords(db: Db): Promise<Map<string, string>> {
  const rows = await db.selectFrom('accord.audit_events').select(['chain_id', 'seq', 'id', 'hash']).execute();
  return new Map(rows.map((r) => [`${r.chain_id}:${r.seq}`, `${r.id} ${r.hash === null ? 'unsealed' : Buffer.from(r.hash).toString('hex')}`]));
}

async function cursors(db: Db, sink: string): Promise<Record<string, number>> {
  const rows = await db.selectFrom('accord.audit_sink_cursors').select(['chain_id', 'last_seq']).where('sink', '=', sink).execute();
  return Object.fromEntries(rows.map((r) => [r.chain_id, Number(r.last_seq)]));
}

/**
 * Checks that the receiver got each stored record exactly once, with the stored id, and in
 * sequence order within each chain (one connection at a time delivers a chain).
 */
function assertExactlyOnce(messages: string[], stored: Map<string, string>): void {
  const seen = new Map<string, number>();
  const lastSeq = new Map<string, number>();
  for (const message of messages) {
    const p = parse(message);
    const key = `${p.chain}:${p.seq}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
    assert.equal(`${p.body.id} ${p.body.hash}`, stored.get(key), `${key} carries the stored record and its chain hash`);
    assert.equal(p.body.seq, p.seq);
    assert.equal(p.body.chain, p.chain);
    assert.ok(p.seq > (lastSeq.get(p.chain) ?? 0), `${key} arrived after a later record of its chain`);
    lastSeq.set(p.chain, p.seq);
  }
  const duplicates = [...seen].filter(([, n]) => n > 1).map(([k]) => k);
  assert.deepEqual(duplicates, [], 'no record arrives twice');
  const missing = [...stored.keys()].filter((k) => !seen.has(k));
  assert.deepEqual(missing, [], 'no record is missing');
  assert.equal(seen.size, stored.size);
}

let dir: string;
let ca: string;
let trusted: KeyPair;
let foreign: KeyPair;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'accord-syslog-'));
  const caFiles = await createCertificateAuthority(dir);
  const serverFiles = await issueServerCertificate(caFiles, dir, { commonName: 'localhost', ipAddresses: ['127.0.0.1'] });
  const otherCa = await createCertificateAuthority(dir, { name: 'other-ca' });
  const otherServer = await issueServerCertificate(otherCa, dir, { commonName: 'localhost', ipAddresses: ['127.0.0.1'], name: 'other' });
  ca = await readFile(caFiles.certFile, 'utf8');
  trusted = { cert: await readFile(serverFiles.certFile, 'utf8'), key: await readFile(serverFiles.keyFile, 'utf8') };
  foreign = { cert: await readFile(otherServer.certFile, 'utf8'), key: await readFile(otherServer.keyFile, 'utf8') };
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('options that cannot work are refused at construction, naming the option', () => {
  const db = {} as Db;
  const refused = (opts: Parameters<typeof construct>[0], key: string) =>
    assert.throws(() => construct(opts), (e) => isAccordError(e, 'CONFIG_INVALID') && e.details?.key === key && e.message.includes(key));
  const construct = (opts: { name: string; url: string; batchSize?: number; hostname?: string; caPem?: string }) => new SyslogSink(db, opts);
  refused({ name: 'syslog', url: 'udp://siem:514' }, 'url');
  refused({ name: 'syslog', url: 'tls://user:hunter2@siem:6514' }, 'url');
  refused({ name: 'syslog', url: 'tcp://relay' }, 'url');
  refused({ name: 'syslog', url: 'tls://siem:6514/path' }, 'url');
  refused({ name: 'syslog', url: 'tls://siem:0' }, 'url');
  refused({ name: '', url: 'tls://siem:6514' }, 'name');
  refused({ name: 'syslog', url: 'tls://siem:6514', batchSize: 0 }, 'batchSize');
  refused({ name: 'syslog', url: 'tls://siem:6514', hostname: 'two words' }, 'hostname');
  refused({ name: 'syslog', url: 'tls://siem:6514', caPem: 'not a pem' }, 'caPem');
  assert.throws(
    () => construct({ name: 'syslog', url: 'tls://user:hunter2@siem:6514' }),
    (e) => e instanceof Error && !e.message.includes('hunter2'),
    'the refused URL is not echoed with its credentials',
  );
  assert.ok(new SyslogSink(db, { name: 'syslog', url: 'tls://siem.example' }), 'tls:// defaults to port 6514');
});

for (const engine of engines()) {
  describe(`syslog sink on ${engine.name}`, { concurrency: false }, () => {
    const tenant = randomUUID();
    let db: Db;
    let receiver: Receiver;
    let sink: SyslogSink;
    const url = () => `tls://localhost:${receiver.port}`;

    before(async () => {
      db = (await engine.open()).db;
      receiver = await new Receiver(trusted).start();
    });

    after(async () => {
      await sink?.close();
      await receiver?.stop();
    });

    test('every record reaches a TLS receiver exactly once, in sequence order per chain, as RFC 5424 in octet-counted frames', async (t) => {
      await writeRecords(db, null, 150);
      await writeRecords(db, tenant, 150);
      sink = new SyslogSink(db, { name: 'syslog', url: url(), caPem: ca, batchSize: 64, hostname: HOST_NAME });

      const started = performance.now();
      assert.equal(await sink.deliver(), 300);
      const ms = performance.now() - started;
      t.diagnostic(`${engine.name}: 300 records in ${ms.toFixed(0)} ms`);
      await receiver.waitFor(300);

      assert.deepEqual(receiver.protocolErrors, []);
      assertExactlyOnce(receiver.messages, await storedRecords(db));
      assert.deepEqual(await cursors(db, 'syslog'), { [PLATFORM_CHAIN]: 150, [tenant]: 150 });
      const first = parse(receiver.messages[0]!);
      assert.equal(first.host, HOST_NAME);
      assert.equal(first.body.details.note, NOTE, 'multi-byte text survives the octet count');
      // Facility 13 (log audit): severity 6 for success, 4 for denied.
      assert.deepEqual(new Set(receiver.messages.map((m) => parse(m).pri)), new Set([13 * 8 + 6, 13 * 8 + 4]));
      assert.deepEqual(receiver.servernames, ['localhost'], 'one TLS connection, with SNI from the URL host');

      // A round with nothing new sends nothing and keeps the connection.
      assert.equal(await sink.deliver(), 0);
      await writeRecords(db, tenant, 5);
      assert.equal(await sink.deliver(), 5);
      await receiver.waitFor(305);
      assert.equal(receiver.servernames.length, 1, 'the connection stays open between rounds');
      assertExactlyOnce(receiver.messages, await storedRecords(db));
    });

    test('after a platform restart a new sink resumes from the persistent cursor and sends only new records', async () => {
      await sink.close();
      await writeRecords(db, null, 20);
      await writeRecords(db, tenant, 15);
      sink = new SyslogSink(db, { name: 'syslog', url: url(), caPem: ca, batchSize: 64, hostname: HOST_NAME });
      assert.equal(await sink.deliver(), 35);
      await receiver.waitFor(340);
      assert.equal(receiver.servernames.length, 2, 'the new sink opened its own connection');
      assertExactlyOnce(receiver.messages, await storedRecords(db));
      assert.deepEqual(await cursors(db, 'syslog'), { [PLATFORM_CHAIN]: 170, [tenant]: 170 });
    });

    test('records written while the receiver is down are kept back and all arrive, once, when it returns', async () => {
      await receiver.stop();
      // The receiver's FIN reaches us asynchronously; in production the next round may come
      // before it, and the sink then rolls the batch back on noticing (see the file's header).
      for (const deadline = Date.now() + 2_000; sink.connected && Date.now() < deadline; ) await sleep(10);
      assert.equal(sink.connected, false, 'the sink noticed that the receiver went away');
      await writeRecords(db, null, 30);
      await writeRecords(db, tenant, 10);
      const delivered = receiver.messages.length;
      const before = await cursors(db, 'syslog');

      const failedAt = Date.now();
      await assert.rejects(sink.deliver(), (e: Error) => {
        assert.match(e.message, /ECONNREFUSED/);
        assert.match(e.message, /retrying in 1 s/);
        assert.ok(!e.message.includes(NOTE) && !e.message.includes('test.sink'), 'no record content in the error');
        return true;
      });
      assert.deepEqual(await cursors(db, 'syslog'), before, 'the cursor did not move');
      const retryAt = sink.retryAt?.getTime() ?? 0;
      assert.ok(retryAt >= failedAt + 900 && retryAt <= Date.now() + 1_000, 'the first retry waits 1 s');
      assert.equal(await sink.deliver(), 0, 'a round while backing off tries nothing');
      assert.deepEqual(await cursors(db, 'syslog'), before);

      await receiver.start(receiver.port);
      let sent = 0;
      for (const deadline = Date.now() + 5_000; sent < 40 && Date.now() < deadline; await sleep(50)) sent += await sink.deliver();
      assert.equal(sent, 40);
      await receiver.waitFor(delivered + 40);
      assert.equal(receiver.messages.length, delivered + 40);
      // Clean outage: the receiver was gone before the round, so nothing was half-sent and nothing
      // repeats. A receiver that dies during a write gets that batch again (at least once).
      assertExactlyOnce(receiver.messages, await storedRecords(db));
      assert.deepEqual(await cursors(db, 'syslog'), { [PLATFORM_CHAIN]: 200, [tenant]: 180 });
    });

    test('two nodes delivering the same sink at once send each record once', async (t) => {
      await writeRecords(db, null, 200);
      await writeRecords(db, tenant, 200);
      const other = new SyslogSink(db, { name: 'syslog', url: url(), caPem: ca, batchSize: 50, hostname: 'accord-node-2' });
      try {
        const [a, b] = await Promise.all([sink.deliver(), other.deliver()]);
        t.diagnostic(`${engine.name}: node 1 sent ${a}, node 2 sent ${b}`);
        assert.equal(a + b, 400);
        await receiver.waitFor(780);
      } finally {
        await other.close();
      }
      // Across two connections the arrival order of one chain may interleave; count only.
      const counts = new Map<string, number>();
      for (const m of receiver.messages) {
        const p = parse(m);
        counts.set(`${p.chain}:${p.seq}`, (counts.get(`${p.chain}:${p.seq}`) ?? 0) + 1);
      }
      const stored = await storedRecords(db);
      assert.equal(counts.size, stored.size);
      assert.deepEqual([...counts.values()].filter((n) => n !== 1), []);
    });

    test('a receiver with a certificate from another CA is refused: nothing is sent and the cursor stays', async () => {
      const impostor = await new Receiver(foreign).start();
      const wary = new SyslogSink(db, { name: 'siem-b', url: `tls://localhost:${impostor.port}`, caPem: ca, hostname: HOST_NAME });
      try {
        await assert.rejects(wary.deliver(), /cannot connect: (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)/);
        assert.deepEqual(impostor.messages, []);
        assert.deepEqual(await cursors(db, 'siem-b'), {}, 'no cursor was created or moved');
        // Backoff doubles: 1 s after the first failure, 2 s after the second.
        const first = wary.retryAt!.getTime();
        await sleep(Math.max(0, first - Date.now()) + 20);
        const failedAt = Date.now();
        await assert.rejects(wary.deliver(), /retrying in 2 s/);
        assert.ok(wary.retryAt!.getTime() >= failedAt + 1_900);
        assert.deepEqual(impostor.messages, []);
      } finally {
        await wary.close();
        await impostor.stop();
      }
    });

    test('a receiver that dies in the middle of a batch gets the whole batch again: duplicates, never a loss', async () => {
      await sink.close();
      await writeBigRecords(db, 400);
      // ~10 MB in one batch: more than loopback TCP buffers hold (Linux caps the send buffer at
      // 4 MB by default, net.ipv4.tcp_wmem), so the write is still under way when the receiver dies.
      sink = new SyslogSink(db, { name: 'syslog', url: url(), caPem: ca, batchSize: 500, hostname: HOST_NAME });
      const before = await cursors(db, 'syslog');
      const mark = receiver.messages.length;
      receiver.stallAfter = 3;
      await assert.rejects(sink.deliver(), /write failed|write refused/);
      assert.deepEqual(await cursors(db, 'syslog'), before, 'the failed batch was rolled back');
      const partial = receiver.messages.slice(mark).map((m) => parse(m).seq);
      assert.ok(partial.length >= 3, 'the receiver got the start of the batch');

      receiver.stallAfter = undefined;
      let sent = 0;
      for (const deadline = Date.now() + 5_000; sent === 0 && Date.now() < deadline; await sleep(50)) sent += await sink.deliver();
      assert.equal(sent, 400);
      await receiver.waitFor(mark + partial.length + 400);
      const resent = receiver.messages.slice(mark + partial.length).map((m) => parse(m).seq);
      const first = before[PLATFORM_CHAIN]! + 1;
      assert.deepEqual(
        resent,
        Array.from({ length: 400 }, (_, i) => first + i),
        'the whole batch arrives again, in order',
      );
      assert.deepEqual(partial, resent.slice(0, partial.length), 'the duplicates are exactly what the dead receiver had read');
      assert.deepEqual(await cursors(db, 'syslog'), { ...before, [PLATFORM_CHAIN]: first + 399 });
    });
  });
}
