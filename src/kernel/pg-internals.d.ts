// The two node-postgres internals the pipeline reuses (pipeline.ts): its result parser and its
// value mapper, so pipelined statements parse and send values exactly as single queries do.
declare module 'pg/lib/result.js' {
  export default class Result {
    constructor(rowMode?: string, types?: unknown);
    _types: unknown;
    command: string;
    rowCount: number | null;
    rows: Record<string, unknown>[];
    addFields(fields: unknown[]): void;
    parseRow(fields: unknown[]): Record<string, unknown>;
    addRow(row: Record<string, unknown>): void;
    addCommandComplete(msg: unknown): void;
  }
}
declare module 'pg/lib/utils.js' {
  const utils: { prepareValue(value: unknown): unknown };
  export default utils;
}
