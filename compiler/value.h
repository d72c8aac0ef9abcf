/*
 * value.h: the static value of a config, extracted from the syntax tree by extract.c. Every value keeps
 * its source span, and every string keeps the source offset of each of its decoded bytes, so a
 * diagnostic about a character inside a string (a SQL token, a template placeholder) points at the
 * right line and column of the .ts file even across escapes and newlines. Values live in an arena.
 */
#ifndef SK_VALUE_H
#define SK_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "diag.h"

typedef enum { SK_V_STRING, SK_V_NUMBER, SK_V_BOOL, SK_V_NULL, SK_V_ARRAY, SK_V_OBJECT, SK_V_LOOP } sk_vkind;

typedef struct sk_value sk_value;
typedef struct {
  const char *key;
  uint32_t key_off, key_len;
  sk_value *val;
} sk_member;

struct sk_value {
  sk_vkind kind;
  uint32_t off, len;          /* span of the literal in the source */
  const char *str;            /* SK_V_STRING: decoded, NUL-terminated */
  size_t slen;
  uint32_t *smap;             /* SK_V_STRING: smap[i] = source offset of str[i]; smap[slen] = closing quote */
  double num;                 /* SK_V_NUMBER */
  int is_int;                 /* SK_V_NUMBER written as an integer */
  int b;                      /* SK_V_BOOL */
  sk_value **items;           /* SK_V_ARRAY */
  size_t nitems;
  sk_member *members;         /* SK_V_OBJECT */
  size_t nmembers;
  sk_value *arg;              /* SK_V_LOOP: the object passed to defineLoop */
};

const char *sk_vkind_name(sk_vkind k);
/* The member named key, or NULL. */
sk_member *sk_value_get(const sk_value *obj, const char *key);
/* Source offset of byte i of a string value (i may equal slen). */
uint32_t sk_value_str_off(const sk_value *v, size_t i);

/*
 * Parses source with tree-sitter-typescript and extracts the value of `export default`. Reports syntax
 * errors and everything that is not static to d. Returns the value (in arena), or NULL when nothing
 * usable was found (diagnostics say why). *loops_span receives the span of the export statement.
 */
sk_value *sk_extract(const sk_source *src, sk_arena *arena, sk_diags *d);

#endif
