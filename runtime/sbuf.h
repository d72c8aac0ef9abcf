/* sbuf.h: the growable byte buffer the runtime writes its text into (timelines, logs, request
 * bodies, outbox messages, Redis keys), and JSON strings. One copy, used by simulate.c, worker.c,
 * resend.c, outbox.c and store.c.
 *
 * Out of memory is sticky (oom): every later write is dropped, and the writer checks oom once at
 * the end. The buffer is always NUL-terminated after a successful write. */
#ifndef SKENE_RUNTIME_SBUF_H
#define SKENE_RUNTIME_SBUF_H

#include <stddef.h>

typedef struct sk_sbuf {
  char *p;
  size_t len, cap;
  int oom;
} sk_sbuf;

/* Room for n more bytes and a NUL: 0, or -1 (and oom) when memory runs out. */
int sk_sb_reserve(sk_sbuf *b, size_t n);
void sk_sb_put(sk_sbuf *b, const void *s, size_t n);
void sk_sb_puts(sk_sbuf *b, const char *s);
void sk_sb_printf(sk_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* s (n bytes) as a JSON string: '"', '\\' and control characters escaped (\n, \r, \t, else \u00XX,
 * DEL too), other bytes as they are; a byte that does not start valid UTF-8 becomes U+FFFD, so the
 * output is always valid JSON. Deterministic. */
void sk_sb_json(sk_sbuf *b, const char *s, size_t n);

#endif
