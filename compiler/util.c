/* util.c: arena, buffer, growable arrays, edit distance, file reading. */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sk_block { struct sk_block *next; size_t used, size; max_align_t data[]; } sk_block;
struct sk_arena { sk_block *head; };

static void oom(void) {
  fputs("skenec: out of memory\n", stderr);
  exit(2); /* the one place: the compiler cannot report anything without memory */
}

sk_arena *sk_arena_new(void) {
  sk_arena *a = calloc(1, sizeof *a);
  if (!a) oom();
  return a;
}

void sk_arena_free(sk_arena *a) {
  if (!a) return;
  for (sk_block *b = a->head, *n; b; b = n) {
    n = b->next;
    free(b);
  }
  free(a);
}

void *sk_arena_alloc(sk_arena *a, size_t n) {
  n = (n + 15u) & ~(size_t)15u;
  sk_block *b = a->head;
  if (!b || b->size - b->used < n) {
    size_t size = n > 65536 ? n : 65536;
    b = malloc(sizeof *b + size);
    if (!b) oom();
    b->next = a->head;
    b->used = 0;
    b->size = size;
    a->head = b;
  }
  void *p = (char *)b->data + b->used;
  b->used += n;
  memset(p, 0, n);
  return p;
}

char *sk_arena_strndup(sk_arena *a, const char *s, size_t n) {
  char *p = sk_arena_alloc(a, n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

char *sk_arena_strdup(sk_arena *a, const char *s) { return sk_arena_strndup(a, s, strlen(s)); }

char *sk_arena_printf(sk_arena *a, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *p = sk_arena_alloc(a, (size_t)n + 1);
  vsnprintf(p, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  return p;
}

void *sk_grow(void *v, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return v;
  size_t nc = *cap ? *cap * 2 : 8;
  while (nc < need) nc *= 2;
  void *p = realloc(v, nc * elem);
  if (!p) oom();
  *cap = nc;
  return p;
}

void sk_buf_put(sk_buf *b, const void *p, size_t n) {
  b->data = sk_grow(b->data, &b->cap, b->len + n + 1, 1);
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = 0;
}
void sk_buf_puts(sk_buf *b, const char *s) { sk_buf_put(b, s, strlen(s)); }
void sk_buf_putc(sk_buf *b, char c) { sk_buf_put(b, &c, 1); }
void sk_buf_printf(sk_buf *b, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  b->data = sk_grow(b->data, &b->cap, b->len + (size_t)n + 1, 1);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  b->len += (size_t)n;
}
void sk_buf_free(sk_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

unsigned sk_edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return 64;
  unsigned row[64];
  for (size_t j = 0; j <= lb; j++) row[j] = (unsigned)j;
  for (size_t i = 1; i <= la; i++) {
    unsigned prev = row[0];
    row[0] = (unsigned)i;
    for (size_t j = 1; j <= lb; j++) {
      unsigned cur = row[j];
      unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
      unsigned best = prev + cost;
      if (row[j] + 1 < best) best = row[j] + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      prev = cur;
    }
  }
  return row[lb];
}

const char *sk_suggest(const char *word, const char *const *candidates, size_t n) {
  const char *best = NULL;
  unsigned best_d = 64;
  size_t wl = strlen(word);
  unsigned limit = wl <= 3 ? 1 : (unsigned)(wl / 3 + 1);
  for (size_t i = 0; i < n; i++) {
    unsigned d = sk_edit_distance(word, candidates[i]);
    if (d < best_d) {
      best_d = d;
      best = candidates[i];
    }
  }
  return best_d <= limit ? best : NULL;
}

int sk_read_file(const char *path, char **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  sk_buf b = {0};
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) sk_buf_put(&b, chunk, n);
  int err = ferror(f);
  fclose(f);
  if (err) {
    sk_buf_free(&b);
    errno = EIO;
    return -1;
  }
  if (!b.data) sk_buf_put(&b, "", 0);
  *out = b.data;
  *len = b.len;
  return 0;
}
