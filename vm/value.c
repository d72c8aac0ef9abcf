/* value.c: reference-counted immutable strings. */
#include "value.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

sk_string *sk_str_new(const char *s, size_t len) {
  if (len > UINT32_MAX - 1) return NULL;
  sk_string *p = malloc(sizeof *p + len + 1);
  if (!p) return NULL;
  p->refs = 1;
  p->len = (uint32_t)len;
  if (len) memcpy(p->data, s, len);
  p->data[len] = 0;
  p->hash = XXH3_64bits(p->data, len) | 1; /* 0 means "not computed" */
  return p;
}

uint64_t sk_str_hash(const sk_string *s) {
  if (!s->hash) ((sk_string *)s)->hash = XXH3_64bits(s->data, s->len) | 1; /* never 0 once computed */
  return s->hash;
}

sk_string *sk_str_from(const char *s) { return sk_str_new(s, strlen(s)); }
