/* sbuf.c: the runtime's growable text buffer and JSON strings (sbuf.h). */
#include "sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sk_sb_reserve(sk_sbuf *b, size_t n) {
  if (b->oom)
    return -1;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
      b->oom = 1;
      return -1;
    }
    b->p = p;
    b->cap = cap;
  }
  return 0;
}

void sk_sb_put(sk_sbuf *b, const void *s, size_t n) {
  if (sk_sb_reserve(b, n) != 0)
    return;
  if (n > 0)
    memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void sk_sb_puts(sk_sbuf *b, const char *s) { sk_sb_put(b, s, strlen(s)); }

void sk_sb_printf(sk_sbuf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0)
    sk_sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* The length of the valid UTF-8 sequence at s (of n bytes), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned min;
  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf)
    len = 2, min = 0x80;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3, min = 0x800;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4, min = 0x10000;
  else
    return 0;
  if (len > n)
    return 0;
  unsigned cp = c & (0x7f >> len);
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

/* sbuf.h */
void sk_sb_json(sk_sbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, run = 0;
  sk_sb_put(b, "\"", 1);
  while (i < n) {
    unsigned c = u[i];
    const char *esc = NULL;
    char buf[8];
    size_t l = utf8_len(u + i, n - i);
    if (l == 0) {
      esc = "\\ufffd";
      l = 1;
    } else if (c == '"') {
      esc = "\\\"";
    } else if (c == '\\') {
      esc = "\\\\";
    } else if (c == '\n') {
      esc = "\\n";
    } else if (c == '\r') {
      esc = "\\r";
    } else if (c == '\t') {
      esc = "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      snprintf(buf, sizeof buf, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
      esc = buf;
    }
    if (esc != NULL) {
      sk_sb_put(b, s + i - run, run);
      run = 0;
      sk_sb_puts(b, esc);
    } else {
      run += l;
    }
    i += l;
  }
  sk_sb_put(b, s + n - run, run);
  sk_sb_put(b, "\"", 1);
}

