/*
 * value.h: what registers hold. A value is 16 bytes: nil, an integer, an immutable reference-counted
 * string, or a row reference (table + the row's id). Rows themselves stay in the store: an instance
 * holds only their ids, so a waiting instance costs a few hundred bytes whatever its rows weigh, and
 * a template reads the row's fields when it renders (fresh data, not a copy from the trigger time).
 */
#ifndef SK_VALUE_H_VM
#define SK_VALUE_H_VM

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct sk_string {
  uint32_t refs;
  uint32_t len;
  uint64_t hash;   /* xxh3-64 of the bytes; 0 until computed (read it with sk_str_hash) */
  char data[];     /* len bytes and a NUL */
} sk_string;

/* A string whose memory belongs to something bigger (a store's arena): references are not counted and
   it is never freed on its own. Marked by this bit in refs. */
#define SK_STR_IMMORTAL 0x80000000u

/* A new string with one reference; NULL when memory runs out. Cost O(len). */
sk_string *sk_str_new(const char *s, size_t len);
sk_string *sk_str_from(const char *s);
static inline sk_string *sk_str_ref(sk_string *s) {
  if (s && !(s->refs & SK_STR_IMMORTAL)) s->refs++;
  return s;
}
/* Drops a reference; the last one frees s. Inline: most strings a VM touches are the store's (immortal),
   and their unref is a test. */
static inline void sk_str_unref(sk_string *s) {
  if (s && !(s->refs & SK_STR_IMMORTAL) && --s->refs == 0) free(s);
}
/* The string's hash, computed on first use (strings rendered into scratch buffers skip it). */
uint64_t sk_str_hash(const sk_string *s);
static inline int sk_str_eq(const sk_string *a, const sk_string *b) {
  return a == b || (a && b && a->len == b->len && sk_str_hash(a) == sk_str_hash(b) &&
                    __builtin_memcmp(a->data, b->data, a->len) == 0);
}

typedef enum { SK_VAL_NIL = 0, SK_VAL_INT, SK_VAL_STR, SK_VAL_ROW } sk_val_tag;

typedef struct {
  uint32_t tag;      /* sk_val_tag */
  uint32_t table;    /* SK_VAL_ROW: global table index */
  union {
    int64_t i;       /* SK_VAL_INT */
    sk_string *s;       /* SK_VAL_STR: the string; SK_VAL_ROW: the row's id (one reference each) */
  } u;
} sk_val;

static inline sk_val sk_val_nil(void) { sk_val v = {SK_VAL_NIL, 0, {0}}; return v; }
static inline sk_val sk_val_int(int64_t i) { sk_val v = {SK_VAL_INT, 0, {.i = i}}; return v; }
/* Takes over the caller's reference to s. */
static inline sk_val sk_val_str(sk_string *s) { sk_val v = {SK_VAL_STR, 0, {.s = s}}; return v; }
static inline sk_val sk_val_row(uint32_t table, sk_string *id) { sk_val v = {SK_VAL_ROW, table, {.s = id}}; return v; }

/* Drops the value's reference (if any) and leaves nil. */
static inline void sk_val_clear(sk_val *v) {
  if (v->tag == SK_VAL_STR || v->tag == SK_VAL_ROW) sk_str_unref(v->u.s);
  *v = sk_val_nil();
}
/* *dst := src, with reference counting. */
static inline void sk_val_set(sk_val *dst, sk_val src) {
  if (src.tag == SK_VAL_STR || src.tag == SK_VAL_ROW) sk_str_ref(src.u.s);
  sk_val_clear(dst);
  *dst = src;
}
/* nil, 0 and "" are false; everything else is true. */
static inline int sk_val_truthy(sk_val v) {
  switch (v.tag) {
  case SK_VAL_INT: return v.u.i != 0;
  case SK_VAL_STR: return v.u.s->len > 0;
  case SK_VAL_ROW: return 1;
  default: return 0;
  }
}

#endif
