/*
 * fuzz_load.c: sk_module_load on raw bytes, then sk_dump of whatever verified. Each input is loaded
 * twice: as it is (the header and hash checks), and with its xxh3 hash recomputed, so that a mutation
 * reaches the verifier behind the hash check. The only acceptable outcomes are a refusal with a
 * message or a module that dumps without a crash.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "dump.h"
#include "fuzz.h"
#include "skb.h"

static void load_and_dump(const uint8_t *data, size_t size) {
  sk_module *m = NULL;
  char err[300] = "";
  if (sk_module_load(data, size, &m, err, sizeof err) != 0) {
    FUZZ_CHECK(m == NULL && err[0] != 0);
    return;
  }
  FUZZ_CHECK(m != NULL);
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (f) {
    int rc = sk_dump(m, f);
    fclose(f);
    FUZZ_CHECK(rc == 0);
    free(text);
  }
  sk_module_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  load_and_dump(data, size);
  if (size >= 16) {
    uint8_t *copy = malloc(size);
    if (!copy) return 0;
    memcpy(copy, data, size);
    sk_wr64(copy + 8, XXH3_64bits(copy + 16, size - 16));
    load_and_dump(copy, size);
    free(copy);
  }
  return 0;
}
