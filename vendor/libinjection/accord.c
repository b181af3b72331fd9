/* The WASM surface Accord calls (src/waf/libinjection.ts): one fixed input buffer and the two
 * detectors. No allocation crosses the boundary; the host copies a value in and calls. */
#include <stddef.h>
#include "src/libinjection.h"
#include "src/libinjection_sqli.h"

#define INPUT_MAX 65536
static char input[INPUT_MAX];

__attribute__((export_name("accord_input"))) char *accord_input(void) { return input; }

__attribute__((export_name("accord_sqli"))) int accord_sqli(size_t len) {
  char fingerprint[8];
  if (len > INPUT_MAX) len = INPUT_MAX;
  return libinjection_sqli(input, len, fingerprint) ? 1 : 0;
}

__attribute__((export_name("accord_xss"))) int accord_xss(size_t len) {
  if (len > INPUT_MAX) len = INPUT_MAX;
  return libinjection_xss(input, len) ? 1 : 0;
}
