/* diag.c: collecting, sorting and printing diagnostics (text and JSON). */
#include "diag.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

sk_diags *sk_diags_new(size_t limit) {
  sk_diags *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->limit = limit;
  d->arena = sk_arena_new();
  return d;
}

void sk_diags_free(sk_diags *d) {
  if (!d) return;
  for (size_t i = 0; i < d->sources.n; i++) free(d->sources.v[i]->lines);
  free(d->sources.v);
  free(d->list.v);
  sk_arena_free(d->arena);
  free(d);
}

sk_source *sk_diags_source(sk_diags *d, const char *path, const char *text, size_t len) {
  sk_source *s = sk_arena_alloc(d->arena, sizeof *s);
  s->path = sk_arena_strdup(d->arena, path);
  s->text = text;
  s->len = len;
  size_t cap = 0;
  struct { uint32_t *v; size_t n, cap; } lines = {0};
  SK_VEC_PUSH(lines, 0);
  for (size_t i = 0; i < len; i++)
    if (text[i] == '\n') SK_VEC_PUSH(lines, (uint32_t)(i + 1));
  (void)cap;
  s->lines = lines.v;
  s->nlines = lines.n;
  s->order = (unsigned)d->sources.n;
  SK_VEC_PUSH(d->sources, s);
  return s;
}

void sk_source_pos(const sk_source *src, uint32_t off, uint32_t *line, uint32_t *col) {
  size_t lo = 0, hi = src->nlines;
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (src->lines[mid] <= off) lo = mid;
    else hi = mid;
  }
  *line = (uint32_t)lo + 1;
  *col = off - src->lines[lo] + 1;
}

void sk_diag(sk_diags *d, sk_severity sev, const sk_source *src, uint32_t off, uint32_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sk_vdiag(d, sev, src, off, len, fmt, ap);
  va_end(ap);
}

void sk_vdiag(sk_diags *d, sk_severity sev, const sk_source *src, uint32_t off, uint32_t len, const char *fmt,
              va_list ap_in) {
  if (sev == SK_ERROR) {
    /* All errors are kept (up to a bound on memory) so that the ones shown are the first `limit` in
       source order, not in the order the checks happened to run. */
    d->nerrors++;
    if (d->nerrors > d->limit * 100) {
      d->dropped++;
      return;
    }
  } else if (sev == SK_WARNING) {
    d->nwarnings++;
  }
  va_list ap, ap2;
  va_copy(ap, ap_in);
  va_copy(ap2, ap_in);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *msg = sk_arena_alloc(d->arena, (size_t)n + 1);
  vsnprintf(msg, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  if (src && off > src->len) off = (uint32_t)src->len;
  sk_diag_item dg = {sev, src, off, len, msg, (unsigned)d->list.n};
  SK_VEC_PUSH(d->list, dg);
}

static int cmp_diag(const void *pa, const void *pb) {
  const sk_diag_item *a = pa, *b = pb;
  unsigned oa = a->src ? a->src->order + 1 : 0, ob = b->src ? b->src->order + 1 : 0;
  if (oa != ob) return oa < ob ? -1 : 1;
  if (a->off != b->off) return a->off < b->off ? -1 : 1;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static const char *sev_name(sk_severity s) { return s == SK_ERROR ? "error" : s == SK_WARNING ? "warning" : "note"; }

static void print_text(const sk_diag_item *g, FILE *out) {
  if (!g->src) {
    fprintf(out, "skenec: %s: %s\n", sev_name(g->sev), g->msg);
    return;
  }
  uint32_t line, col;
  sk_source_pos(g->src, g->off, &line, &col);
  fprintf(out, "%s:%u:%u: %s: %s\n", g->src->path, line, col, sev_name(g->sev), g->msg);
  const char *ls = g->src->text + g->src->lines[line - 1];
  const char *le = memchr(ls, '\n', g->src->len - (size_t)(ls - g->src->text));
  if (!le) le = g->src->text + g->src->len;
  if (le > ls && le[-1] == '\r') le--;
  fprintf(out, "%5u | %.*s\n      | ", line, (int)(le - ls), ls);
  for (uint32_t i = 1; i < col && ls + i - 1 < le; i++) fputc(ls[i - 1] == '\t' ? '\t' : ' ', out);
  fputc('^', out);
  uint32_t span = g->len;
  for (uint32_t i = 1; i < span && ls + col - 1 + i < le; i++) fputc('~', out);
  fputc('\n', out);
}

/* Sorts the diagnostics and drops the errors beyond the limit. */
static void sort_and_limit(sk_diags *d) {
  if (d->list.n > 1) qsort(d->list.v, d->list.n, sizeof *d->list.v, cmp_diag);
  size_t kept = 0, errors = 0;
  for (size_t i = 0; i < d->list.n; i++) {
    if (d->list.v[i].sev == SK_ERROR && ++errors > d->limit) {
      d->dropped++;
      continue;
    }
    d->list.v[kept++] = d->list.v[i];
  }
  d->list.n = kept;
}

void sk_diags_print(sk_diags *d, FILE *out, int json) {
  sort_and_limit(d);
  if (json) {
    json_t *arr = json_array();
    for (size_t i = 0; i < d->list.n; i++) {
      const sk_diag_item *g = &d->list.v[i];
      json_t *o = json_object();
      if (g->src) {
        uint32_t line, col, eline, ecol;
        sk_source_pos(g->src, g->off, &line, &col);
        sk_source_pos(g->src, g->off + g->len, &eline, &ecol);
        json_object_set_new(o, "file", json_string(g->src->path));
        json_object_set_new(o, "line", json_integer(line));
        json_object_set_new(o, "column", json_integer(col));
        json_object_set_new(o, "endLine", json_integer(eline));
        json_object_set_new(o, "endColumn", json_integer(ecol));
      }
      json_object_set_new(o, "severity", json_string(sev_name(g->sev)));
      json_object_set_new(o, "message", json_string(g->msg));
      json_array_append_new(arr, o);
    }
    char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fprintf(out, "%s\n", s ? s : "[]");
    free(s);
    json_decref(arr);
    return;
  }
  for (size_t i = 0; i < d->list.n; i++) print_text(&d->list.v[i], out);
  if (d->dropped)
    fprintf(out, "skenec: note: %zu more error%s not shown (the limit is %zu)\n", d->dropped,
            d->dropped == 1 ? "" : "s", d->limit);
}
