/*
 * util.h: the compiler's small building blocks: an arena (everything a compilation allocates is freed at
 * once), a growable byte buffer, and a few string helpers.
 */
#ifndef SK_UTIL_H
#define SK_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sk_arena sk_arena;
sk_arena *sk_arena_new(void);
void sk_arena_free(sk_arena *a);
/* Zeroed memory that lives until sk_arena_free. Returns NULL only when memory runs out. */
void *sk_arena_alloc(sk_arena *a, size_t n);
char *sk_arena_strndup(sk_arena *a, const char *s, size_t n);
char *sk_arena_strdup(sk_arena *a, const char *s);
char *sk_arena_printf(sk_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct { char *data; size_t len, cap; } sk_buf;
void sk_buf_put(sk_buf *b, const void *p, size_t n);
void sk_buf_puts(sk_buf *b, const char *s);
void sk_buf_putc(sk_buf *b, char c);
void sk_buf_printf(sk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sk_buf_free(sk_buf *b);

/* A growable array of T in a struct with fields v, n, cap: SK_VEC_PUSH(vec, value). Aborts on OOM. */
void *sk_grow(void *v, size_t *cap, size_t need, size_t elem);
#define SK_VEC_PUSH(vec, val) \
  do { (vec).v = sk_grow((vec).v, &(vec).cap, (vec).n + 1, sizeof *(vec).v); (vec).v[(vec).n++] = (val); } while (0)

/* Damerau-free Levenshtein distance, capped at 64. */
unsigned sk_edit_distance(const char *a, const char *b);
/* The candidate closest to word, or NULL when none is close enough to suggest. */
const char *sk_suggest(const char *word, const char *const *candidates, size_t n);

/* Reads a whole file; the caller frees *out. Returns 0, or -1 with errno set. */
int sk_read_file(const char *path, char **out, size_t *len);

#endif
