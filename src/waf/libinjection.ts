// libinjection (SQLi and XSS detection, which CRS rules 942100 and 941100 call) as WebAssembly,
// built from the vendored C source by scripts/build-libinjection-wasm.sh (vendor/libinjection/).
import { existsSync, readFileSync } from 'node:fs';
import type { InjectionDetectors } from './engine.ts';

const WASM = new URL('./libinjection/libinjection.wasm', import.meta.url);

interface Exports {
  readonly memory: WebAssembly.Memory;
  readonly accord_input: () => number;
  readonly accord_sqli: (len: number) => number;
  readonly accord_xss: (len: number) => number;
}

// The module's input buffer is fixed (64 KiB); a longer value is inspected on its first 64 KiB.
const INPUT_MAX = 65536;

/** Loads the checked-in libinjection WASM module; undefined when it is absent (the rules then never match). */
export function loadLibinjection(): InjectionDetectors | undefined {
  if (!existsSync(WASM)) return undefined;
  const module = new WebAssembly.Module(readFileSync(WASM));
  const instance = new WebAssembly.Instance(module, {});
  const ex = instance.exports as unknown as Exports;
  const at = ex.accord_input();
  // The input is written straight into the module's memory (a view, remade if memory grows):
  // latin1 keeps the percent-decoded bytes as ModSecurity hands them to libinjection.
  let view = Buffer.from(ex.memory.buffer, at, INPUT_MAX);
  const call = (fn: (len: number) => number) => (value: string) => {
    if (view.buffer !== ex.memory.buffer) view = Buffer.from(ex.memory.buffer, at, INPUT_MAX);
    const n = view.write(value.length > INPUT_MAX ? value.slice(0, INPUT_MAX) : value, 0, 'latin1');
    return fn(n) === 1;
  };
  return { sqli: call(ex.accord_sqli), xss: call(ex.accord_xss) };
}
