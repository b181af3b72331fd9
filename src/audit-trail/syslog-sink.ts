// SIEM streaming (issue 3, item 5): the audit trail over syslog, RFC 5424 messages framed by octet
// counting (RFC 5425), over TLS (or plain TCP to a local relay), with a persistent cursor per
// (sink, chain) in `accord.audit_sink_cursors`.
//
// Delivery guarantee, and its one limit. The cursor only moves in the transaction that read the
// batch, after the socket reported the batch flushed, so every record is sent at least once across
// failures and restarts. Duplicates arise only when a batch went out and its cursor update did not
// commit: a write failing midway (the receiver sees the part it got twice) or the database failing
// at commit (the whole batch twice). Receivers drop them by the `chain`/`seq` pair in the structured
// data. RFC 5425 has no acknowledgement: "flushed" means the kernel accepted the bytes, not that
// the receiver stored them. A receiver that crashes with bytes in flight loses them without our
// knowing. We narrow the window (a connection the peer has closed is never written to, and a batch
// during which the peer went away is rolled back), but only an acknowledged protocol closes it:
// where that matters, point `tcp://` at a local relay (rsyslog with RELP or a disk queue).
import { isIP, type Socket, connect as tcpConnect } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { toRecordView, toSyslog5424 } from '../audit-chain/index.ts';
import type { Db } from '../db/index.ts';
import { AccordError } from '../errors/index.ts';

/** Options of {@link SyslogSink}. */
export interface SyslogSinkOptions {
  /** The cursor key in `accord.audit_sink_cursors`, e.g. `syslog`. Nodes sharing a name share the cursor. */
  name: string;
  /**
   * `tls://host[:port]` (RFC 5425; port 6514 by default) or `tcp://host:port`, plain TCP, meant
   * only for a relay on the same host or a trusted segment: records travel unencrypted.
   */
  url: string;
  /** PEM CA certificate(s) that must have issued the receiver's certificate; default: the system store. */
  caPem?: string;
  /** Records per transaction and per socket write; default 500. */
  batchSize?: number;
  /** HOSTNAME field of the messages; default the machine's host name. */
  hostname?: string;
}

const DEFAULT_BATCH_SIZE = 500;
const MAX_BATCH_SIZE = 10_000;
const DEFAULT_TLS_PORT = 6514;
const CONNECT_TIMEOUT_MS = 10_000;
// The cursor row stays locked (and, on PGlite, the whole database stays busy) while a batch is on
// the wire, so a receiver that stops reading must not hold it for long.
const WRITE_TIMEOUT_MS = 15_000;
const CLOSE_TIMEOUT_MS = 2_000;
const BACKOFF_FIRST_MS = 1_000;
const BACKOFF_MAX_MS = 60_000;

/**
 * Streams the audit trail to a syslog receiver (a SIEM). Call {@link SyslogSink.deliver} from a
 * background loop; one connection is kept open between rounds and re-opened, with backoff, after
 * a failure.
 */
export class SyslogSink {
  readonly #db: Db;
  readonly #name: string;
  readonly #target: Target;
  readonly #caPem: string | undefined;
  readonly #batchSize: number;
  readonly #hostname: string;
  #connection: Connection | undefined;
  #failures = 0;
  #retryAt = 0;
  #round: Promise<number> | undefined;
  #closed = false;

  /** Checks the options (throws `CONFIG_INVALID` naming the option); connects on the first round that has records to send. */
  constructor(db: Db, opts: SyslogSinkOptions) {
    this.#db = db;
    this.#name = checkName(opts.name);
    this.#target = parseTarget(opts.url);
    if (opts.caPem !== undefined && !opts.caPem.includes('-----BEGIN CERTIFICATE-----')) {
      throw invalid('caPem', 'must hold PEM certificates');
    }
    if (opts.caPem !== undefined && this.#target.tls === false) throw invalid('caPem', 'applies to tls:// only');
    this.#caPem = opts.caPem;
    this.#batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
    if (!Number.isInteger(this.#batchSize) || this.#batchSize < 1 || this.#batchSize > MAX_BATCH_SIZE) {
      throw invalid('batchSize', `must be an integer from 1 to ${MAX_BATCH_SIZE}`);
    }
    // RFC 5424 HOSTNAME: 1-255 printable US-ASCII characters, no spaces.
    this.#hostname = opts.hostname ?? (osHostname().replace(/[^\x21-\x7e]/g, '').slice(0, 255) || '-');
    if (!/^[\x21-\x7e]{1,255}$/.test(this.#hostname)) throw invalid('hostname', 'must be 1-255 printable ASCII characters without spaces');
  }

  /** Whether a connection to the receiver is open and not known to be broken. */
  get connected(): boolean {
    return this.#connection?.alive === true;
  }

  /** When the next round may try again after a failure; null when not backing off. */
  get retryAt(): Date | null {
    return this.#retryAt > Date.now() ? new Date(this.#retryAt) : null;
  }

  /**
   * One round: sends every record newer than this sink's cursor, for every chain, in sequence
   * order, and returns how many were sent. Resolves 0 without trying while backing off after a
   * failure (1 s, doubling to 60 s). Rejects when the receiver cannot be reached or a write fails;
   * the message names the receiver and the network or TLS error, never record contents. A call
   * during a running round joins it.
   */
  deliver(): Promise<number> {
    if (this.#closed) return Promise.reject(new Error(`syslog sink "${this.#name}" is closed`));
    this.#round ??= this.#deliverRound().finally(() => {
      this.#round = undefined;
    });
    return this.#round;
  }

  /** Waits for a running round, then closes the connection (TLS close_notify). Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#round?.catch(() => {});
    const connection = this.#connection;
    this.#connection = undefined;
    await connection?.end();
  }

  async #deliverRound(): Promise<number> {
    if (Date.now() < this.#retryAt) return 0;
    const pending = await this.#pendingChains();
    let sent = 0;
    try {
      for (const chain of pending) sent += await this.#deliverChain(chain);
    } catch (err) {
      if (!(err instanceof TransportError)) throw err;
      this.#connection?.destroy();
      this.#connection = undefined;
      this.#failures += 1;
      const wait = Math.min(BACKOFF_FIRST_MS * 2 ** (this.#failures - 1), BACKOFF_MAX_MS);
      this.#retryAt = Date.now() + wait;
      throw new Error(
        `syslog sink "${this.#name}": ${err.message} (${this.#target.display}); ${sent} records sent this round, retrying in ${wait / 1000} s`,
        { cause: err.cause },
      );
    }
    if (pending.length > 0) this.#failures = 0;
    return sent;
  }

  /** Chains with records past this sink's cursor, and how far each went when the round began. */
  async #pendingChains(): Promise<PendingChain[]> {
    const rows = await this.#db
      .selectFrom('accord.audit_chains as c')
      .leftJoin('accord.audit_sink_cursors as s', (join) => join.onRef('s.chain_id', '=', 'c.chain_id').on('s.sink', '=', this.#name))
      .select(['c.chain_id', 'c.last_seq', 's.last_seq as cursor'])
      .where((eb) => eb('c.last_seq', '>', eb.fn.coalesce('s.last_seq', eb.lit(0))))
      .orderBy('c.chain_id')
      .execute();
    return rows.map((r) => ({ chainId: r.chain_id, upTo: Number(r.last_seq), hasCursor: r.cursor !== null }));
  }

  /**
   * Sends one chain in batches up to where it stood when the round began (so a busy chain cannot
   * keep a round going forever). Reading `seq > cursor` never skips a record: the sealer hands out
   * a chain's sequence numbers under the chain head's row lock, so they commit in order, and the
   * sink reads only up to the head (sealed records; unsealed ones have no seq yet).
   */
  async #deliverChain(chain: PendingChain): Promise<number> {
    let sent = 0;
    let needsCursor = !chain.hasCursor;
    for (;;) {
      // Connect before the transaction: a slow handshake must not hold the cursor lock.
      const connection = await this.#connect();
      if (needsCursor) {
        // Committed on its own, so that a second node racing to create it does not wait for our batch.
        await this.#db
          .insertInto('accord.audit_sink_cursors')
          .values({ sink: this.#name, chain_id: chain.chainId, last_seq: 0 })
          .onConflict((oc) => oc.columns(['sink', 'chain_id']).doNothing())
          .execute();
        needsCursor = false;
      }
      // Not a unit of work: delivery bookkeeping (read a batch, move the cursor), no audited change.
      const batch = await this.#db.transaction().execute(async (trx) => {
        const cursor = await trx
          .selectFrom('accord.audit_sink_cursors')
          .select('last_seq')
          .where('sink', '=', this.#name)
          .where('chain_id', '=', chain.chainId)
          .forUpdate()
          .skipLocked()
          .executeTakeFirst();
        // Locked: another node is delivering this chain right now; it or a later round takes the rest.
        if (cursor === undefined) return { count: 0, more: false };
        const rows = await trx
          .selectFrom('accord.audit_events')
          .selectAll()
          .where('chain_id', '=', chain.chainId)
          .where('seq', '>', Number(cursor.last_seq))
          .where('seq', '<=', chain.upTo)
          .orderBy('seq')
          .limit(this.#batchSize)
          .execute();
        const last = rows.at(-1);
        if (last === undefined) return { count: 0, more: false };
        await connection.write(Buffer.concat(rows.map((r) => octetCountedFrame(toSyslog5424(toRecordView(r), this.#hostname)))));
        // Only now, with the batch flushed, may the cursor move; a throw above rolls back instead.
        await trx
          .updateTable('accord.audit_sink_cursors')
          .set({ last_seq: Number(last.seq) })
          .where('sink', '=', this.#name)
          .where('chain_id', '=', chain.chainId)
          .execute();
        return { count: rows.length, more: rows.length === this.#batchSize && Number(last.seq) < chain.upTo };
      });
      sent += batch.count;
      if (!batch.more) return sent;
    }
  }

  /** The open connection, or a new one. */
  async #connect(): Promise<Connection> {
    if (this.#connection?.alive) return this.#connection;
    this.#connection?.destroy();
    this.#connection = undefined;
    this.#connection = await Connection.open(this.#target, this.#caPem);
    return this.#connection;
  }
}

interface PendingChain {
  readonly chainId: string;
  readonly upTo: number;
  readonly hasCursor: boolean;
}


/** RFC 5425 framing: the message's length in octets, a space, the message. */
function octetCountedFrame(message: string): Buffer {
  const body = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}

interface Target {
  readonly tls: boolean;
  readonly host: string;
  readonly port: number;
  /** `tls://host:port`, for messages (the URL holds nothing secret: credentials are refused). */
  readonly display: string;
}

function parseTarget(url: string): Target {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw invalid('url', 'must be tls://host:port or tcp://host:port');
  }
  if (u.protocol !== 'tls:' && u.protocol !== 'tcp:') throw invalid('url', 'must start with tls:// or tcp://');
  if (u.username !== '' || u.password !== '') throw invalid('url', 'must not contain credentials');
  if ((u.pathname !== '' && u.pathname !== '/') || u.search !== '' || u.hash !== '') throw invalid('url', 'must be only a scheme, host and port');
  // IPv6 literals keep their brackets in URL.hostname.
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw invalid('url', 'must name a host');
  const tls = u.protocol === 'tls:';
  if (u.port === '' && !tls) throw invalid('url', 'tcp:// needs a port');
  const port = u.port === '' ? DEFAULT_TLS_PORT : Number(u.port);
  if (port < 1 || port > 65535) throw invalid('url', 'needs a port from 1 to 65535');
  return { tls, host, port, display: `${u.protocol}//${u.host}${u.port === '' ? `:${port}` : ''}` };
}

function checkName(name: string): string {
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name)) {
    throw invalid('name', 'must be 1-100 letters, digits, dots, hyphens or underscores');
  }
  return name;
}

function invalid(option: string, problem: string): AccordError {
  return new AccordError('CONFIG_INVALID', { message: `SyslogSinkOptions.${option} ${problem}.`, details: { key: option } });
}

/** A network or TLS failure: the connection is dropped and the round backs off. */
class TransportError extends Error {}

/** Why a socket failed, for messages: the error code when there is one, never payload. */
function reasonOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === undefined ? err.message : `${code}: ${err.message}`;
  }
  return String(err);
}

/** One connection to the receiver; it notes when the peer goes away so we never write into a dead socket. */
class Connection {
  readonly #socket: Socket;
  #lost: unknown;

  private constructor(socket: Socket) {
    this.#socket = socket;
    const lose = (why: unknown) => {
      this.#lost ??= why;
    };
    socket.on('error', lose);
    // Receivers send nothing; reading keeps the stream flowing so that the peer's close shows up.
    socket.on('data', () => {});
    socket.on('end', () => {
      lose(new Error('the receiver closed the connection'));
      socket.destroy();
    });
    socket.on('close', () => lose(new Error('connection closed')));
    socket.setKeepAlive(true, 30_000);
    socket.setNoDelay(true);
  }

  /** Connects and, for TLS, completes the handshake (TLS 1.2 or later, certificate and name verified). */
  static open(target: Target, caPem: string | undefined): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = target.tls
        ? tlsConnect({
            host: target.host,
            port: target.port,
            // SNI carries names only (RFC 6066); an IP literal is checked against the certificate's IP SANs.
            ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
            ...(caPem === undefined ? {} : { ca: caPem }),
            minVersion: 'TLSv1.2',
            rejectUnauthorized: true,
          })
        : tcpConnect({ host: target.host, port: target.port });
      const timer = setTimeout(() => socket.destroy(new Error(`no connection within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
      const settle = (err: unknown) => {
        clearTimeout(timer);
        socket.off('error', settle);
        socket.off('close', onClose);
        socket.off(target.tls ? 'secureConnect' : 'connect', onReady);
        if (err === undefined) {
          resolve(new Connection(socket));
        } else {
          socket.destroy();
          reject(new TransportError(`cannot connect: ${reasonOf(err)}`, { cause: err }));
        }
      };
      const onReady = () => settle(undefined);
      const onClose = () => settle(new Error('connection closed during the handshake'));
      socket.once(target.tls ? 'secureConnect' : 'connect', onReady);
      socket.once('error', settle);
      socket.once('close', onClose);
    });
  }

  get alive(): boolean {
    return this.#lost === undefined && !this.#socket.destroyed;
  }

  /** Resolves once the socket has flushed `data` to the kernel; rejects on error, close or timeout. */
  write(data: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!this.alive) {
        reject(new TransportError(`write refused: ${reasonOf(this.#lost ?? 'connection closed')}`, { cause: this.#lost }));
        return;
      }
      let done = false;
      const finish = (err: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.#socket.off('close', onClose);
        // The write callback passes null, not undefined, on success.
        if (err === undefined || err === null) resolve();
        else reject(new TransportError(`write failed: ${reasonOf(err)}`, { cause: err }));
      };
      const onClose = () => finish(this.#lost ?? new Error('connection closed'));
      const timer = setTimeout(() => {
        const err = new Error(`the receiver took no data for ${WRITE_TIMEOUT_MS / 1000} s`);
        this.#lost ??= err;
        this.#socket.destroy();
        finish(err);
      }, WRITE_TIMEOUT_MS);
      this.#socket.once('close', onClose);
      this.#socket.write(data, (err) => {
        // The peer going away while this batch was flushed means it may never have read it.
        finish(err ?? (this.alive ? undefined : (this.#lost ?? new Error('connection closed'))));
      });
    });
  }

  /** Graceful close; destroys the socket if the peer does not answer in time. */
  end(): Promise<void> {
    if (this.#socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#socket.destroy(), CLOSE_TIMEOUT_MS);
      this.#socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.#socket.end();
    });
  }

  destroy(): void {
    this.#socket.destroy();
  }
}
