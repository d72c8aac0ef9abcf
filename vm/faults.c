/* faults.c: scripted provider faults (faults.h). */
#include "faults.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sk_faults_add(sk_faults *f, const char *provider, int status, uint32_t count, int64_t retry_after_ms) {
  if (f->n == f->cap) {
    size_t nc = f->cap ? f->cap * 2 : 8;
    sk_fault *v = realloc(f->v, nc * sizeof *v);
    if (!v) return -1;
    f->v = v;
    f->cap = nc;
  }
  sk_fault *x = &f->v[f->n++];
  snprintf(x->provider, sizeof x->provider, "%s", provider);
  x->status = status;
  x->left = count;
  x->retry_after_ms = retry_after_ms;
  return 0;
}

int sk_faults_take(sk_faults *f, const char *provider, sk_io *out) {
  for (size_t i = 0; i < f->n; i++) {
    sk_fault *x = &f->v[i];
    if (!x->left || strcmp(x->provider, provider) != 0) continue;
    x->left--;
    out->ok = 0;
    out->retry_after_ms = x->retry_after_ms;
    if (x->status == 0) {
      out->transient = 1;
      snprintf(out->reason, sizeof out->reason, "%s: timed out", provider);
    } else {
      out->transient = x->status == 408 || x->status == 429 || x->status >= 500;
      snprintf(out->reason, sizeof out->reason, "%s: HTTP %d", provider, x->status);
    }
    return 1;
  }
  return 0;
}

void sk_faults_free(sk_faults *f) {
  free(f->v);
  f->v = NULL;
  f->n = f->cap = 0;
}
