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
  bind(m: { portal: string; statement: string; values: unknown[]; binary: boolean; valueMapper: (v: unknown) => unknown }): void;
  describe(m: { type: 'P'; name: string }): void;
  execute(m: { portal: string; rows: number }): void;
  sync(): void;
}

type Done = (err: Error | null, results?: StatementResult[]) => void;

/**
 * A node-postgres "submittable" (the interface pg-cursor uses): the client hands it the
 * connection when its turn comes and routes the server's answers to its handlers.
 */
class Pipeline {
  // node-postgres gives `_result` the client's type parsers before submitting.
  _result: Result;
  readonly #results: Result[] = [];
  readonly #statements: readonly { text: string; values: unknown[] }[];
  #error: Error | null = null;
  readonly #done: Done;

  constructor(statements: readonly { text: string; values: unknown[] }[], done: Done) {
    this.#statements = statements;
    this.#done = done;
    this._result = new Result();
  }

  submit(connection: Connection): void {
    connection.stream.cork?.();
    try {
      for (const s of this.#statements) {
        connection.parse({ text: s.text, name: '', types: [] });
        connection.bind({ portal: '', statement: '', values: s.values, binary: false, valueMapper: prepareValue });
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

/** Runs the statements in one round trip; resolves with one result per statement, in order. */
export function pipeline(client: pg.ClientBase, statements: readonly Statement[]): Promise<StatementResult[]> {
  // Values are mapped before anything is written, so a value node-postgres cannot send fails
  // the call without leaving half a pipeline on the connection.
  const mapped = statements.map((s) => ({ text: s.text, values: s.values.map((v) => prepareValue(v)) }));
  return new Promise((resolve, reject) => {
    let settled = false;
    const p = new Pipeline(mapped, (err, results) => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(results as StatementResult[]);
    });
    (client as unknown as { query(q: unknown): unknown }).query(p);
  });
}
