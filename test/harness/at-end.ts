// Clean-up at the end of a test file. Benchmarks import the harness too: loading node:test there
// would start the test runner, whose async hooks then track every promise the benchmark measures.
// bench/run.ts sets ACCORD_BENCH=1 before it loads a benchmark.
type Hook = (fn: () => Promise<void>) => void;

export const atEnd: Hook =
  process.env.ACCORD_BENCH === '1'
    ? (fn) => {
        process.once('beforeExit', () => void fn().catch(() => {}));
      }
    : ((await import('node:test')).after as Hook);
