#!/bin/sh
# Builds libinjection (vendor/libinjection/) to WebAssembly for the WAF, with Debian's clang, lld
# wasi-libc and the wasm32 compiler-rt builtins (apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32). The result is checked in
# (src/waf/libinjection/), so tests and CI never need a C compiler; rerun after updating the source.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/vendor/libinjection
out=$root/src/waf/libinjection
mkdir -p "$out"
version=$(sed -n 's/^commit: [0-9a-f]* (\(v[^,]*\),.*/\1/p' "$src/VERSION")
clang --target=wasm32-wasi --sysroot=/usr -isystem /usr/include/wasm32-wasi -L/usr/lib/wasm32-wasi \
  -O2 -DLIBINJECTION_VERSION="\"$version\"" -DNDEBUG \
  -nostartfiles -Wl,--no-entry -Wl,--export-dynamic -Wl,--strip-all \
  -o "$out/libinjection.wasm" \
  "$src/accord.c" "$src/src/libinjection_sqli.c" "$src/src/libinjection_xss.c" "$src/src/libinjection_html5.c"
cp "$src/COPYING" "$out/COPYING"
cp "$src/VERSION" "$out/VERSION"
echo "built $out/libinjection.wasm ($version)"
