/*
 * fuzz_compile.c: the whole front end on a config's text, as `skenec build` runs it:
 *   extract -> check -> lower -> write -> load (verify)
 * with the email templates in tests/fuzz/templates, which holds one template, `welcome` (an .html with
 * front matter and a .txt). The only acceptable outcomes are diagnostics (each inside the text it
 * names) or a module that the verifier accepts; everything is freed either way.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "lower.h"
#include "skb.h"
#include "value.h"

#define MAX_ERRORS 50

/* tests/fuzz/templates: set by tests/CMakeLists.txt */
#ifndef FUZZ_TEMPLATES_DIR
#error "FUZZ_TEMPLATES_DIR must name the folder of the template 'welcome'"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* skenec reads the file into a NUL-terminated buffer; so does this. */
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;

  sk_diags *d = sk_diags_new(MAX_ERRORS);
  sk_arena *arena = sk_arena_new();
  sk_source *src = sk_diags_source(d, "skene.config.ts", text, size);
  sk_check_options opts = {FUZZ_TEMPLATES_DIR};
  sk_config *cfg = NULL;
  sk_module *m = NULL;
  uint8_t *bytes = NULL;
  size_t len = 0;

  sk_value *root = sk_extract(src, arena, d);
  if (d->nerrors == 0) cfg = sk_check(root, src, arena, d, &opts);
  if (d->nerrors == 0 && cfg) {
    m = sk_lower(cfg, src, d);
    FUZZ_CHECK(m != NULL || d->nerrors > 0);
  }
  if (d->nerrors == 0 && m && sk_module_write(m, &bytes, &len) == 0) {
    /* What the compiler writes must pass the verifier that production runs. */
    char err[300];
    sk_module *check = NULL;
    if (sk_module_load(bytes, len, &check, err, sizeof err) != 0) {
      fprintf(stderr, "fuzz_compile: the bytecode written does not verify: %s\n", err);
      abort();
    }
    sk_module_free(check);
  }
  for (size_t i = 0; i < d->list.n; i++) {
    const sk_diag_item *g = &d->list.v[i];
    FUZZ_CHECK(g->msg != NULL);
    if (g->src) FUZZ_CHECK(g->off <= g->src->len && g->len <= g->src->len - g->off);
  }
  /* Printing exercises the caret and line code on every span. */
  FILE *devnull = fopen("/dev/null", "w");
  if (devnull) {
    sk_diags_print(d, devnull, 0);
    sk_diags_print(d, devnull, 1);
    fclose(devnull);
  }

  free(bytes);
  sk_module_free(m);
  sk_config_free(cfg);
  sk_arena_free(arena);
  sk_diags_free(d);
  free(text);
  return 0;
}
