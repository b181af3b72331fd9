// Several statements in one round trip on a node-postgres connection (PostgreSQL only).
//
// node-postgres sends a statement and waits for its ReadyForQuery before it sends the next, so a
// stage session's set-up, its statement and its COMMIT cost one round trip each — on a loopback
// connection each round trip is mostly system-call and wake-up CPU on both sides, and it is what
// separates a permissioned read from a bare one. A pipeline writes every statement as the
// extended protocol's Parse / Bind / Describe / Execute (values as bind parameters, exactly as a
// single query sends them) and one Sync at the end, then reads the answers in order.
//
// Transactions: the stage session opens an explicit one (BEGIN is the pipeline's first
// statement), so a Sync does not end it. Should a statement fail, the server skips the rest of
// the pipeline up to the Sync and the transaction is aborted; the error reaches the caller and
// the session rolls back.
import type pg from 'pg';
import Result from 'pg/lib/result.js';
import utils from 'pg/lib/utils.js';

const { prepareValue } = utils;

export interface Statement {
  readonly text: string;
  readonly values: readonly unknown[];
}

export interface StatementResult {
  readonly command: string;
  readonly rowCount: number | null;
  readonly rows: Record<string, unknown>[];
}

/** The part of node-postgres's connection a submittable writes to. */
interface Connection {
  stream: { cork?(): void; uncork?(): void };
  parse(m: { text: string; name: string; types: unknown[] }): void;
  bind(m: { portal: string; statement: string; values: unknown[]; binary: boolean }): void;
  describe(m: { type: 'P'; name: string }): void;
  execute(m: { portal: string; rows: number }): void;
  sync(): void;
}

type Done = (err: Error | null, results?: StatementResult[]) => void;

/**
 * A node-postgres "submittable" (the interface pg-cursor uses): the client hands it the
 * connection when its turn comes and routes the server's answers to its handlers.
 */
interface Outgoing {
  readonly text: string;
  readonly values: unknown[];
  /** The prepared statement to bind ('' = the unnamed one). */
  readonly name: string;
  /** Parse it first (under `name`). */
  readonly parse: boolean;
}

class Pipeline {
  // node-postgres gives `_result` the client's type parsers before submitting.
  _result: Result;
  readonly #results: Result[] = [];
  readonly #statements: readonly Outgoing[];
  #error: Error | null = null;
  readonly #done: Done;

  constructor(statements: readonly Outgoing[], done: Done) {
    this.#statements = statements;
    this.#done = done;
    this._result = new Result();
  }

  /** How many statements completed (their CommandComplete arrived). */
  get completed(): number {
    return this.#results.length + (this._result.command ? 1 : 0);
  }

  submit(connection: Connection): void {
    connection.stream.cork?.();
    try {
      for (const s of this.#statements) {
        if (s.parse) connection.parse({ text: s.text, name: s.name, types: [] });
        // Values were mapped when the pipeline was planned (pipeline()): no mapper here.
        connection.bind({ portal: '', statement: s.name, values: s.values, binary: false });
        connection.describe({ type: 'P', name: '' });
        connection.execute({ portal: '', rows: 0 });
      }
      connection.sync();
    } finally {
      connection.stream.uncork?.();
    }
  }

  #current(): Result {
    // One Result per statement: a new one once the current has its command tag.
    if (this._result.command) {
      this.#results.push(this._result);
      this._result = new Result(undefined, this._result._types);
    }
    return this._result;
  }

  handleRowDescription(msg: { fields: unknown[] }): void {
    this.#current().addFields(msg.fields);
  }

  handleDataRow(msg: { fields: unknown[] }): void {
    if (this.#error) return;
    try {
      this._result.addRow(this._result.parseRow(msg.fields));
    } catch (err) {
      this.#error = err as Error;
    }
  }

  handleCommandComplete(msg: unknown): void {
    this.#current().addCommandComplete(msg);
  }

  handleEmptyQuery(): void {}

  handleError(err: Error): void {
    // node-postgres forgets the active query on an error; the ReadyForQuery after the Sync then
    // goes to nobody. Report the first error now.
    this.#done(this.#error ?? err);
  }

  handleReadyForQuery(): void {
    if (this.#error) {
      this.#done(this.#error);
      return;
    }
    if (this._result.command) this.#results.push(this._result);
    this.#done(
      null,
      this.#results.map((r) => ({ command: r.command, rowCount: r.rowCount, rows: r.rows })),
    );
  }

  handlePortalSuspended(): void {}
  handleCopyInResponse(): void {}
  handleCopyData(): void {}
}

/**
 * Statements this connection has prepared (named), found by their text. PostgreSQL plans an
 * unnamed statement anew each time; a statement run again and again (the data API compiles its
 * reads once per shape, the session set-up is always the same) is prepared on the connection the
 * second time it is seen there, and from then on only bound and executed, its plan cached by the
 * server (which still replans it when the role or the search path differ, as row-level security
 * needs). Bounded per connection.
 */
interface Prepared {
  /** text → name, for statements the server holds. */
  readonly ready: Map<string, string>;
  /** Texts seen once, not yet prepared. */
  readonly seen: Set<string>;
  next: number;
}

const PREPARED_PER_CONNECTION = 256;
const SEEN_PER_CONNECTION = 1024;
const prepared = new WeakMap<pg.ClientBase, Prepared>();

function plan(client: pg.ClientBase, statements: readonly Statement[]): Outgoing[] {
  let p = prepared.get(client);
  if (!p) {
    p = { ready: new Map(), seen: new Set(), next: 0 };
    prepared.set(client, p);
  }
  const out: Outgoing[] = [];
  const parsing = new Set<string>();
  for (const s of statements) {
    const values = s.values.map((v) => prepareValue(v));
    const name = p.ready.get(s.text);
    if (name !== undefined) {
      out.push({ text: s.text, values, name, parse: false });
      continue;
    }
    // Worth preparing: seen before on this connection, room left, not already parsed in this pipeline.
    if (p.seen.has(s.text) && p.ready.size < PREPARED_PER_CONNECTION && s.values.length > 0 && !parsing.has(s.text)) {
      const fresh = `accord_${p.next++}`;
      parsing.add(s.text);
      out.push({ text: s.text, values, name: fresh, parse: true });
      continue;
    }
    if (p.seen.size >= SEEN_PER_CONNECTION) p.seen.clear();
    p.seen.add(s.text);
    out.push({ text: s.text, values, name: '', parse: true });
  }
  return out;
}

function settle(client: pg.ClientBase, sent: readonly Outgoing[], completed: number, failed: boolean): void {
  const p = prepared.get(client);
  if (!p) return;
  sent.forEach((s, i) => {
    if (!s.parse || s.name === '') return;
    // Completed statements were parsed. The one that failed may have been, later ones were not:
    // neither is remembered, and the next use prepares the text again under a fresh name (at
    // worst the server keeps one unused statement until the connection closes).
    if (!failed || i < completed) p.ready.set(s.text, s.name);
  });
}

/** Runs the statements in one round trip; resolves with one result per statement, in order. */
export function pipeline(client: pg.ClientBase, statements: readonly Statement[]): Promise<StatementResult[]> {
  // Values are mapped before anything is written, so a value node-postgres cannot send fails
  // the call without leaving half a pipeline on the connection.
  const sent = plan(client, statements);
  return new Promise((resolve, reject) => {
    let settled = false;
    const p: Pipeline = new Pipeline(sent, (err, results) => {
      if (settled) return;
      settled = true;
      settle(client, sent, p.completed, err !== null);
      if (err) reject(err);
      else resolve(results as StatementResult[]);
    });
    (client as unknown as { query(q: unknown): unknown }).query(p);
  });
}
