/*
 * diag.h: diagnostics as gcc and clang print them. A source is a file's text with its line table;
 * a diagnostic is a severity, a byte span in a source and a message. All diagnostics of a run are
 * collected (up to a limit) and printed at the end, in source order: `path:line:col: error: message`,
 * the source line, and a caret under the span; or as one JSON array for CI annotations.
 */
#ifndef SK_DIAG_H
#define SK_DIAG_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "util.h"

typedef struct sk_source {
  const char *path;     /* as the user named it */
  const char *text;
  size_t len;
  uint32_t *lines;      /* byte offset of the start of each line */
  size_t nlines;
  unsigned order;       /* registration order, for sorting */
} sk_source;

typedef enum { SK_ERROR, SK_WARNING, SK_NOTE } sk_severity;

typedef struct {
  sk_severity sev;
  const sk_source *src;  /* NULL: a diagnostic about no file in particular */
  uint32_t off, len;
  char *msg;
  unsigned seq;
} sk_diag_item;

typedef struct sk_diags {
  struct { sk_diag_item *v; size_t n, cap; } list;
  struct { sk_source **v; size_t n, cap; } sources;
  size_t nerrors, nwarnings;
  size_t limit;          /* errors printed at most (the first in source order); the rest are counted */
  size_t dropped;
  sk_arena *arena;
} sk_diags;

sk_diags *sk_diags_new(size_t limit);
void sk_diags_free(sk_diags *d);
/* Registers a source (text is borrowed and must outlive d). */
sk_source *sk_diags_source(sk_diags *d, const char *path, const char *text, size_t len);
void sk_diag(sk_diags *d, sk_severity sev, const sk_source *src, uint32_t off, uint32_t len, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void sk_vdiag(sk_diags *d, sk_severity sev, const sk_source *src, uint32_t off, uint32_t len, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));
/* 1-based line and column (in bytes) of a byte offset. */
void sk_source_pos(const sk_source *src, uint32_t off, uint32_t *line, uint32_t *col);
/* Prints every diagnostic, sorted by source and position. */
void sk_diags_print(sk_diags *d, FILE *out, int json);

#endif
