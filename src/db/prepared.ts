import type { Compilable, CompiledQuery, Kysely, Transaction } from 'kysely';
import type { Catalog } from './catalog.ts';

// Not index.ts's alias: index.ts re-exports this module, and the import would be a cycle.
type DbOrTrx = Kysely<Catalog> | Transaction<Catalog>;

/**
 * A query that Kysely builds and compiles once, then runs with each call's values in place of
 * the placeholders it was compiled with: for reads on every request's path, where building the
 * operation tree and compiling it cost more CPU than the driver's work (about 15 µs per query,
 * issue 9). The SQL text is exactly what the builder produces; values still travel as bind
 * parameters. `build` must use each argument as a plain value (a comparison operand, not an
 * identifier, a list or part of an expression), which is checked.
 */
export function prepared<A extends readonly unknown[], R>(build: (db: DbOrTrx, ...args: A) => Compilable<R>): (db: DbOrTrx, ...args: A) => Promise<R[]> {
  let template: { compiled: CompiledQuery<R>; slots: readonly number[] } | undefined;
  return async (db, ...args) => {
    // A list would have compiled to one placeholder per element, not to one slot.
    if (args.some(Array.isArray)) throw new Error('prepared query arguments must be single values, not lists');
    if (!template) {
      // Unique objects stand for the arguments; where they land in the parameters tells where
      // each call's values go.
      const placeholders = args.map(() => ({}));
      const compiled = build(db, ...(placeholders as unknown as A)).compile();
      const slots = compiled.parameters.map((p) => placeholders.indexOf(p as object));
      if (placeholders.some((_, i) => !slots.includes(i))) throw new Error(`prepared query does not use every argument as a value: ${compiled.sql}`);
      template = { compiled, slots };
    }
    const { compiled, slots } = template;
    const parameters = slots.map((slot, i) => (slot < 0 ? compiled.parameters[i] : args[slot]));
    return (await db.executeQuery<R>({ ...compiled, parameters })).rows;
  };
}
