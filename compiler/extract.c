/*
 * extract.c: from TypeScript source to a static value. Parses with tree-sitter-typescript and walks the
 * tree by field names (no queries: the fixed shape of a config does not need them, and 0.20's query
 * engine trips UBSan). Accepts literals, arrays, objects, const identifiers of the same file, `as const`
 * and `satisfies` wrappers and defineLoop(...) calls; refuses everything else at its exact span.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tree_sitter/api.h>

#include "tree_sitter_typescript.h"
#include "value.h"

typedef struct {
  TSNode name, value;
  const char *id;
  int kind_const;      /* declared with const */
  int resolving;       /* cycle guard */
  sk_value *cached;
} binding;

typedef struct {
  const sk_source *src;
  sk_arena *arena;
  sk_diags *d;
  struct { binding *v; size_t n, cap; } binds;
  int depth;
} ctx;

const char *sk_vkind_name(sk_vkind k) {
  switch (k) {
  case SK_V_STRING: return "a string";
  case SK_V_NUMBER: return "a number";
  case SK_V_BOOL: return "a boolean";
  case SK_V_NULL: return "null";
  case SK_V_ARRAY: return "an array";
  case SK_V_OBJECT: return "an object";
  case SK_V_LOOP: return "a defineLoop(...) call";
  }
  return "?";
}

sk_member *sk_value_get(const sk_value *obj, const char *key) {
  if (!obj || obj->kind != SK_V_OBJECT) return NULL;
  for (size_t i = 0; i < obj->nmembers; i++)
    if (strcmp(obj->members[i].key, key) == 0) return &obj->members[i];
  return NULL;
}

uint32_t sk_value_str_off(const sk_value *v, size_t i) {
  if (v->kind != SK_V_STRING || !v->smap) return v->off;
  return v->smap[i > v->slen ? v->slen : i];
}

static uint32_t nstart(TSNode n) { return ts_node_start_byte(n); }
static uint32_t nlen(TSNode n) { return ts_node_end_byte(n) - ts_node_start_byte(n); }
static const char *ntype(TSNode n) { return ts_node_type(n); }
static int is(TSNode n, const char *t) { return strcmp(ts_node_type(n), t) == 0; }

static void err_at(ctx *c, TSNode n, const char *msg) {
  sk_diag(c->d, SK_ERROR, c->src, nstart(n), nlen(n), "%s", msg);
}

static char *node_text(ctx *c, TSNode n) {
  return sk_arena_strndup(c->arena, c->src->text + nstart(n), nlen(n));
}

static sk_value *new_value(ctx *c, sk_vkind k, TSNode n) {
  sk_value *v = sk_arena_alloc(c->arena, sizeof *v);
  v->kind = k;
  v->off = nstart(n);
  v->len = nlen(n);
  return v;
}

/* Skips `as const`, `satisfies T`, `(...)` and `x!` wrappers. */
static TSNode unwrap(TSNode n) {
  for (;;) {
    if ((is(n, "as_expression") || is(n, "satisfies_expression") || is(n, "parenthesized_expression") ||
         is(n, "non_null_expression")) && ts_node_named_child_count(n) > 0)
      n = ts_node_named_child(n, 0);
    else
      return n;
  }
}

/* Decoded string builder with a source map. */
typedef struct { struct { char *v; size_t n, cap; } s; struct { uint32_t *v; size_t n, cap; } m; } strb;
static void sb_put(strb *b, const char *p, size_t n, uint32_t off, int advance) {
  for (size_t i = 0; i < n; i++) {
    SK_VEC_PUSH(b->s, p[i]);
    SK_VEC_PUSH(b->m, off + (advance ? (uint32_t)i : 0));
  }
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static size_t utf8_encode(unsigned long cp, char out[4]) {
  if (cp < 0x80) { out[0] = (char)cp; return 1; }
  if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Strings are NUL-terminated from here on: a NUL inside would cut a query or a name short silently. */
static const char nul_in_string[] = "a string cannot contain a NUL character";

/* Decodes one escape_sequence node's text (starting with a backslash). */
static void decode_escape(ctx *c, strb *b, TSNode n) {
  const char *t = c->src->text + nstart(n);
  size_t len = nlen(n);
  uint32_t off = nstart(n);
  char out[4];
  if (len < 2) return;
  switch (t[1]) {
  case 'n': sb_put(b, "\n", 1, off, 0); return;
  case 't': sb_put(b, "\t", 1, off, 0); return;
  case 'r': sb_put(b, "\r", 1, off, 0); return;
  case 'b': sb_put(b, "\b", 1, off, 0); return;
  case 'f': sb_put(b, "\f", 1, off, 0); return;
  case 'v': sb_put(b, "\v", 1, off, 0); return;
  case '0':
    if (len == 2) {
      err_at(c, n, nul_in_string);
      return;
    }
    /* \0 followed by digits is an octal escape */
    /* fall through */
  case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9':
    err_at(c, n, "octal escape sequences are not allowed in a module: write \\xHH or \\u{H...} instead");
    return;
  case '\r': case '\n': return; /* line continuation */
  case 'x':
    if (len == 4 && hexval(t[2]) >= 0 && hexval(t[3]) >= 0) {
      unsigned long cp = (unsigned long)(hexval(t[2]) * 16 + hexval(t[3]));
      if (cp == 0) err_at(c, n, nul_in_string);
      else sb_put(b, out, utf8_encode(cp, out), off, 0);
      return;
    }
    break;
  case 'u': {
    unsigned long cp = 0;
    size_t i = 2, end = len;
    if (i < len && t[i] == '{') { i++; end = len - 1; }
    for (; i < end; i++) {
      int h = hexval(t[i]);
      if (h < 0) { cp = 0x110000; break; }
      cp = cp * 16 + (unsigned long)h;
    }
    if (cp == 0) {
      err_at(c, n, nul_in_string);
      return;
    }
    if (cp < 0x110000) {
      sb_put(b, out, utf8_encode(cp, out), off, 0);
      return;
    }
    break;
  }
  default:
    sb_put(b, t + 1, len - 1, off + 1, 1);
    return;
  }
  err_at(c, n, "invalid escape sequence");
}

/* JavaScript strings are UTF-16: an astral character is written as two escapes, a high and a low
   surrogate (\uD83D\uDE00), which decode_escape encodes one by one (ED A0..AF xx, ED B0..BF xx). Joins
   each such pair into the one 4-byte UTF-8 sequence it stands for, keeping the source map; a surrogate
   left alone has no UTF-8 form: an error at its place. */
static void join_surrogates(ctx *c, strb *b) {
  size_t w = 0;
  for (size_t r = 0; r < b->s.n;) {
    unsigned char *p = (unsigned char *)b->s.v + r;
    int hi = r + 3 <= b->s.n && p[0] == 0xED && p[1] >= 0xA0 && p[1] <= 0xAF;
    int lo_next = r + 6 <= b->s.n && p[3] == 0xED && p[4] >= 0xB0 && p[4] <= 0xBF;
    if (hi && lo_next) {
      unsigned long h = 0xD000 | ((unsigned long)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
      unsigned long l = 0xD000 | ((unsigned long)(p[4] & 0x3F) << 6) | (p[5] & 0x3F);
      unsigned long cp = 0x10000 + ((h - 0xD800) << 10) + (l - 0xDC00);
      char out[4] = {0, 0, 0, 0}; /* all four written: cp is astral */
      utf8_encode(cp, out);
      uint32_t at = b->m.v[r];
      for (int k = 0; k < 4; k++) {
        b->s.v[w + (size_t)k] = out[k];
        b->m.v[w + (size_t)k] = at;
      }
      w += 4;
      r += 6;
      continue;
    }
    if (r + 3 <= b->s.n && p[0] == 0xED && p[1] >= 0xA0 && p[1] <= 0xBF) {
      sk_diag(c->d, SK_ERROR, c->src, b->m.v[r], 1,
              "a lone UTF-16 surrogate has no UTF-8 form: write the character itself, or both halves of its pair");
      r += 3;
      continue;
    }
    b->s.v[w] = b->s.v[r];
    b->m.v[w] = b->m.v[r];
    w++;
    r++;
  }
  b->s.n = w;
  b->m.n = w;
}

static sk_value *string_value(ctx *c, TSNode n, int is_template) {
  strb b = {0};
  sk_value *v = new_value(c, SK_V_STRING, n);
  uint32_t count = ts_node_child_count(n);
  for (uint32_t i = 0; i < count; i++) {
    TSNode ch = ts_node_child(n, i);
    if (is(ch, "string_fragment")) {
      sb_put(&b, c->src->text + nstart(ch), nlen(ch), nstart(ch), 1);
    } else if (is(ch, "escape_sequence")) {
      decode_escape(c, &b, ch);
    } else if (is(ch, "template_substitution")) {
      err_at(c, ch, "`${...}` interpolation is not allowed: a loop must be static; use a {{placeholder}} for per-user values");
    }
  }
  /* Template strings in this grammar may leave raw text outside string_fragment nodes: rebuild from the
     gaps between children so nothing is lost. */
  if (is_template) {
    strb r = {0};
    uint32_t pos = nstart(n) + 1, end = ts_node_end_byte(n) - 1;
    for (uint32_t i = 0; i < count; i++) {
      TSNode ch = ts_node_child(n, i);
      if (!ts_node_is_named(ch)) continue;
      if (nstart(ch) > pos) sb_put(&r, c->src->text + pos, nstart(ch) - pos, pos, 1);
      if (is(ch, "escape_sequence")) decode_escape(c, &r, ch);
      else if (is(ch, "string_fragment")) sb_put(&r, c->src->text + nstart(ch), nlen(ch), nstart(ch), 1);
      pos = ts_node_end_byte(ch);
    }
    if (end > pos) sb_put(&r, c->src->text + pos, end - pos, pos, 1);
    free(b.s.v);
    free(b.m.v);
    b = r;
  }
  join_surrogates(c, &b);
  /* A NUL byte written as such in the source (escapes that decode to one are refused above). */
  const char *nul = b.s.n ? memchr(b.s.v, 0, b.s.n) : NULL;
  if (nul) sk_diag(c->d, SK_ERROR, c->src, b.m.v[nul - b.s.v], 1, "%s", nul_in_string);
  SK_VEC_PUSH(b.m, ts_node_end_byte(n) > 0 ? ts_node_end_byte(n) - 1 : 0);
  v->slen = b.s.n;
  char *s = sk_arena_alloc(c->arena, b.s.n + 1);
  if (b.s.n) memcpy(s, b.s.v, b.s.n);
  v->str = s;
  v->smap = sk_arena_alloc(c->arena, b.m.n * sizeof(uint32_t));
  memcpy(v->smap, b.m.v, b.m.n * sizeof(uint32_t));
  free(b.s.v);
  free(b.m.v);
  return v;
}

static sk_value *number_value(ctx *c, TSNode n, int negate) {
  char *t = node_text(c, n);
  char clean[128];
  size_t k = 0;
  sk_value *v = new_value(c, SK_V_NUMBER, n);
  for (const char *p = t; *p; p++) {
    if (*p == '_') continue;
    if (k + 1 == sizeof clean) {
      err_at(c, n, "this number has too many digits");
      return v;
    }
    clean[k++] = *p;
  }
  clean[k] = 0;
  char *end = NULL;
  if (clean[0] == '0' && (clean[1] == 'x' || clean[1] == 'X' || clean[1] == 'o' || clean[1] == 'O' ||
                          clean[1] == 'b' || clean[1] == 'B')) {
    int base = (clean[1] == 'x' || clean[1] == 'X') ? 16 : (clean[1] == 'o' || clean[1] == 'O') ? 8 : 2;
    v->num = (double)strtoull(clean + 2, &end, base);
    v->is_int = 1;
  } else {
    v->num = strtod(clean, &end);
    v->is_int = strpbrk(clean, ".eE") == NULL;
  }
  if (!end || *end) err_at(c, n, "this number is not supported here: write it in decimal");
  else if (!isfinite(v->num)) err_at(c, n, "this number is too large");
  if (negate) v->num = -v->num;
  return v;
}

static sk_value *extract(ctx *c, TSNode n);

static binding *find_binding(ctx *c, const char *id) {
  for (size_t i = 0; i < c->binds.n; i++)
    if (strcmp(c->binds.v[i].id, id) == 0) return &c->binds.v[i];
  return NULL;
}

static sk_value *identifier_value(ctx *c, TSNode n) {
  char *id = node_text(c, n);
  if (strcmp(id, "undefined") == 0) {
    err_at(c, n, "'undefined' is not a value here: leave the key out instead");
    return NULL;
  }
  binding *b = find_binding(c, id);
  if (!b) {
    sk_diag(c->d, SK_ERROR, c->src, nstart(n), nlen(n),
            "'%s' is not a const of this file: a loop must be static (literals, or const bindings to them)", id);
    return NULL;
  }
  if (!b->kind_const) {
    sk_diag(c->d, SK_ERROR, c->src, nstart(n), nlen(n),
            "'%s' is not declared with const: only const bindings can be used in a loop", id);
    return NULL;
  }
  if (b->resolving) {
    sk_diag(c->d, SK_ERROR, c->src, nstart(n), nlen(n), "'%s' refers to itself: a const cannot contain its own value",
            id);
    return NULL;
  }
  if (!b->cached) {
    b->resolving = 1;
    b->cached = extract(c, b->value);
    b->resolving = 0;
  }
  return b->cached;
}

static sk_value *object_value(ctx *c, TSNode n) {
  sk_value *v = new_value(c, SK_V_OBJECT, n);
  struct { sk_member *v; size_t n, cap; } mem = {0};
  uint32_t count = ts_node_named_child_count(n);
  for (uint32_t i = 0; i < count; i++) {
    TSNode ch = ts_node_named_child(n, i);
    if (is(ch, "comment")) continue;
    sk_member m = {0};
    if (is(ch, "pair")) {
      TSNode key = ts_node_child_by_field_name(ch, "key", 3);
      TSNode val = ts_node_child_by_field_name(ch, "value", 5);
      if (ts_node_is_null(key) || ts_node_is_null(val)) continue;
      if (is(key, "property_identifier")) {
        m.key = node_text(c, key);
      } else if (is(key, "string")) {
        sk_value *s = string_value(c, key, 0);
        m.key = s->str;
      } else if (is(key, "number")) {
        m.key = node_text(c, key);
      } else if (is(key, "computed_property_name")) {
        err_at(c, key, "computed keys are not allowed: write the key out so the loop is static");
        continue;
      } else {
        err_at(c, key, "this kind of key is not allowed here");
        continue;
      }
      m.key_off = nstart(key);
      m.key_len = nlen(key);
      m.val = extract(c, val);
    } else if (is(ch, "shorthand_property_identifier")) {
      m.key = node_text(c, ch);
      m.key_off = nstart(ch);
      m.key_len = nlen(ch);
      m.val = identifier_value(c, ch);
    } else if (is(ch, "spread_element")) {
      err_at(c, ch, "spread ('...') is not allowed: write the keys out so the loop is static");
      continue;
    } else if (is(ch, "method_definition")) {
      err_at(c, ch, "methods are not allowed: a loop is data, not code");
      continue;
    } else {
      err_at(c, ch, "this is not allowed in a loop definition");
      continue;
    }
    int dup = 0;
    for (size_t k = 0; k < mem.n; k++) {
      if (strcmp(mem.v[k].key, m.key) == 0) {
        uint32_t line, col;
        sk_source_pos(c->src, mem.v[k].key_off, &line, &col);
        sk_diag(c->d, SK_ERROR, c->src, m.key_off, m.key_len, "duplicate key '%s' (first given at line %u:%u)",
                m.key, line, col);
        dup = 1;
        break;
      }
    }
    if (dup || !m.val) continue;
    SK_VEC_PUSH(mem, m);
  }
  v->nmembers = mem.n;
  if (mem.n) {
    v->members = sk_arena_alloc(c->arena, mem.n * sizeof *mem.v);
    memcpy(v->members, mem.v, mem.n * sizeof *mem.v);
  }
  free(mem.v);
  return v;
}

static sk_value *array_value(ctx *c, TSNode n) {
  sk_value *v = new_value(c, SK_V_ARRAY, n);
  struct { sk_value **v; size_t n, cap; } items = {0};
  uint32_t count = ts_node_named_child_count(n);
  for (uint32_t i = 0; i < count; i++) {
    TSNode ch = ts_node_named_child(n, i);
    if (is(ch, "comment")) continue;
    if (is(ch, "spread_element")) {
      err_at(c, ch, "spread ('...') is not allowed: list the items so the loop is static");
      continue;
    }
    sk_value *item = extract(c, ch);
    if (item) SK_VEC_PUSH(items, item);
  }
  v->nitems = items.n;
  if (items.n) {
    v->items = sk_arena_alloc(c->arena, items.n * sizeof *items.v);
    memcpy(v->items, items.v, items.n * sizeof *items.v);
  }
  free(items.v);
  return v;
}

static sk_value *call_value(ctx *c, TSNode n) {
  TSNode fn = ts_node_child_by_field_name(n, "function", 8);
  TSNode args = ts_node_child_by_field_name(n, "arguments", 9);
  if (ts_node_is_null(fn) || !is(fn, "identifier") || strcmp(node_text(c, fn), "defineLoop") != 0) {
    err_at(c, ts_node_is_null(fn) ? n : fn, "calls are not allowed: a loop must be static (only defineLoop({...}) is)");
    return NULL;
  }
  if (ts_node_is_null(args) || !is(args, "arguments")) {
    err_at(c, n, "defineLoop takes one object: defineLoop({ type, steps, ... })");
    return NULL;
  }
  TSNode arg = {0};
  int nargs = 0;
  for (uint32_t i = 0; i < ts_node_named_child_count(args); i++) {
    TSNode ch = ts_node_named_child(args, i);
    if (is(ch, "comment")) continue;
    if (nargs++ == 0) arg = ch;
  }
  if (nargs != 1) {
    err_at(c, args, "defineLoop takes exactly one object: defineLoop({ type, steps, ... })");
    return NULL;
  }
  sk_value *obj = extract(c, arg);
  if (!obj) return NULL;
  if (obj->kind != SK_V_OBJECT) {
    sk_diag(c->d, SK_ERROR, c->src, obj->off, obj->len, "defineLoop takes an object, not %s", sk_vkind_name(obj->kind));
    return NULL;
  }
  sk_value *v = new_value(c, SK_V_LOOP, n);
  v->arg = obj;
  return v;
}

static sk_value *extract(ctx *c, TSNode n) {
  if (++c->depth > 200) {
    err_at(c, n, "nesting is too deep");
    c->depth--;
    return NULL;
  }
  sk_value *v = NULL;
  n = unwrap(n);
  const char *t = ntype(n);
  if (strcmp(t, "string") == 0) v = string_value(c, n, 0);
  else if (strcmp(t, "template_string") == 0) v = string_value(c, n, 1);
  else if (strcmp(t, "number") == 0) v = number_value(c, n, 0);
  else if (strcmp(t, "true") == 0 || strcmp(t, "false") == 0) {
    v = new_value(c, SK_V_BOOL, n);
    v->b = t[0] == 't';
  } else if (strcmp(t, "null") == 0) v = new_value(c, SK_V_NULL, n);
  else if (strcmp(t, "object") == 0) v = object_value(c, n);
  else if (strcmp(t, "array") == 0) v = array_value(c, n);
  else if (strcmp(t, "identifier") == 0) v = identifier_value(c, n);
  else if (strcmp(t, "call_expression") == 0) v = call_value(c, n);
  else if (strcmp(t, "unary_expression") == 0) {
    TSNode op = ts_node_child_by_field_name(n, "operator", 8);
    TSNode arg = unwrap(ts_node_child_by_field_name(n, "argument", 8));
    if (!ts_node_is_null(op) && !ts_node_is_null(arg) && is(arg, "number") &&
        (is(op, "-") || is(op, "+"))) {
      v = number_value(c, arg, is(op, "-"));
      v->off = nstart(n);
      v->len = nlen(n);
    } else {
      err_at(c, n, "expressions are not allowed: a loop must be static (write the value out)");
    }
  } else if (strcmp(t, "member_expression") == 0 && strncmp(c->src->text + nstart(n), "process.env", 11) == 0) {
    sk_diag(c->d, SK_ERROR, c->src, nstart(n), nlen(n),
            "'%s' is not read: skenec compiles the config without running it (write the value out)", node_text(c, n));
  } else if (strcmp(t, "binary_expression") == 0 || strcmp(t, "ternary_expression") == 0 ||
             strcmp(t, "member_expression") == 0 || strcmp(t, "subscript_expression") == 0 ||
             strcmp(t, "arrow_function") == 0 || strcmp(t, "function_expression") == 0 ||
             strcmp(t, "function") == 0 || strcmp(t, "new_expression") == 0 || strcmp(t, "await_expression") == 0) {
    err_at(c, n, "expressions are not allowed: a loop must be static (write the value out)");
  } else {
    sk_diag(c->d, SK_ERROR, c->src, nstart(n), nlen(n), "'%s' is not allowed in a loop definition", t);
  }
  c->depth--;
  return v;
}

/* Reports a MISSING node n, child of parent. A missing closer names the opener it would close, as
   clang's "to match this '{'" note does. */
static void missing_error(ctx *c, TSNode n, TSNode parent) {
  const char *t = ntype(n);
  const char *open = strcmp(t, "}") == 0 ? "{" : strcmp(t, ")") == 0 ? "(" : strcmp(t, "]") == 0 ? "[" : NULL;
  for (uint32_t i = 0; open && i < ts_node_child_count(parent); i++) {
    TSNode o = ts_node_child(parent, i);
    if (is(o, open) && !ts_node_is_missing(o)) {
      uint32_t line, col;
      sk_source_pos(c->src, nstart(o), &line, &col);
      sk_diag(c->d, SK_ERROR, c->src, nstart(n), 0, "syntax error: missing '%s' to close the '%s' at line %u:%u", t,
              open, line, col);
      return;
    }
  }
  sk_diag(c->d, SK_ERROR, c->src, nstart(n), 0, "syntax error: missing '%s'", t);
}

/* Reports ERROR and MISSING nodes; returns how many. (ts_node_parent is unreliable for MISSING nodes
   in tree-sitter 0.20, so the parent is passed down.) */
static size_t syntax_errors(ctx *c, TSNode n, TSNode parent) {
  if (!ts_node_has_error(n)) return 0;
  if (ts_node_is_missing(n)) {
    missing_error(c, n, parent);
    return 1;
  }
  if (is(n, "ERROR")) {
    uint32_t len = nlen(n);
    const char *text = c->src->text + nstart(n);
    uint32_t show = 0;
    while (show < len && show < 20 && text[show] != '\n') show++;
    if (len == 0) sk_diag(c->d, SK_ERROR, c->src, nstart(n), 0, "syntax error");
    else sk_diag(c->d, SK_ERROR, c->src, nstart(n), len, "syntax error: unexpected '%.*s%s'", (int)show, text,
                 show < len ? "..." : "");
    return 1;
  }
  size_t total = 0;
  uint32_t count = ts_node_child_count(n);
  for (uint32_t i = 0; i < count; i++) total += syntax_errors(c, ts_node_child(n, i), n);
  return total;
}

static void collect_bindings(ctx *c, TSNode decl) {
  TSNode kind = ts_node_child(decl, 0);
  int is_const = !ts_node_is_null(kind) && is(kind, "const");
  for (uint32_t j = 0; j < ts_node_named_child_count(decl); j++) {
    TSNode vd = ts_node_named_child(decl, j);
    if (!is(vd, "variable_declarator")) continue;
    TSNode name = ts_node_child_by_field_name(vd, "name", 4);
    TSNode value = ts_node_child_by_field_name(vd, "value", 5);
    if (ts_node_is_null(name) || ts_node_is_null(value) || !is(name, "identifier")) continue;
    binding b = {name, value, node_text(c, name), is_const, 0, NULL};
    SK_VEC_PUSH(c->binds, b);
  }
}

/*
 * Two defects of tree-sitter 0.20 that broken input reaches, and what guards against them.
 *
 * 1. Its error recovery corrupts memory (a double free) when the parse stack is deeper than 65,534
 *    entries: 70,000 unclosed '[', or a chain such as `a = a = ... a` or `x: x: ...` that ends in an
 *    error. So before parsing, stack_guard bounds the depth the text can reach: the tokens since the
 *    last ',' or ';' (or a keyword that starts a declaration) at each level of brackets still open.
 *    A config stays far below; STACK_LIMIT refuses at a third of the defect's depth.
 *
 * 2. On some inputs (sixty bytes of unbalanced quotes and braces) the error recovery runs for minutes
 *    and takes gigabytes. So the parse has a limit. A limit in time is cheap but would make the verdict
 *    depend on the machine; a limit in parser actions is exact but needs the logger, which costs more
 *    than the parse itself. So parse_text runs the parse first under a time limit that a valid config
 *    never comes near (it parses in ~0.1 us a byte), and only when that runs out, again with the
 *    logger counting actions against a budget of ACTIONS_PER_US times that limit, which no machine
 *    could exceed within it (an action takes tens of ns). The verdict is the budget's: a parse that
 *    finishes in time is within it, so the result is the same on every machine.
 */
#define STACK_LIMIT 20000
#define PARSE_TIME_MIN_US 5000
#define ACTIONS_PER_US 100

typedef struct {
  uint32_t off;    /* the opening bracket */
  uint32_t run;    /* tokens since the last separator at this level */
  int in_template; /* a `${` inside a template string: its '}' resumes the string */
} nest_level;

/* Skips a template string's text from s[i] (just after '`' or a substitution's '}'); returns the index
   after the closing '`', or after "${" with *subst set. */
static size_t skip_template_text(const char *s, size_t n, size_t i, int *subst) {
  *subst = 0;
  for (; i < n; i++) {
    if (s[i] == '\\') i++;
    else if (s[i] == '`') return i + 1;
    else if (s[i] == '$' && i + 1 < n && s[i + 1] == '{') {
      *subst = 1;
      return i + 2;
    }
  }
  return n;
}

static int is_ident_byte(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
         ch == '$' || (unsigned char)ch >= 0x80;
}

/* Reports and returns -1 when the text could drive the parse stack past STACK_LIMIT (see above).
   Cost: O(length), one pass over the bytes. */
static int stack_guard(ctx *c) {
  static const char *const decl_words[] = {"const", "let", "var", "export", "import", "function", "class"};
  const char *s = c->src->text;
  size_t n = c->src->len, i = 0, total = 0;
  struct { nest_level *v; size_t n, cap; } lv = {0};
  nest_level top = {0, 0, 0};
  SK_VEC_PUSH(lv, top);
  int rc = 0;
  while (i < n) {
    char ch = s[i];
    size_t start = i;
    if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
      i++;
      continue;
    }
    if (ch == '/' && i + 1 < n && s[i + 1] == '/') {
      while (i < n && s[i] != '\n') i++;
      continue;
    }
    if (ch == '/' && i + 1 < n && s[i + 1] == '*') {
      size_t k = i + 2;
      while (k + 1 < n && !(s[k] == '*' && s[k + 1] == '/')) k++;
      if (k + 1 < n) {
        i = k + 2;
        continue;
      }
      /* unterminated: no comment to the parser either, so scan on */
    }
    nest_level *cur = &lv.v[lv.n - 1];
    if (ch == ',' || ch == ';') {
      total -= cur->run;
      cur->run = 0;
      i++;
      continue;
    }
    if (ch == ')' || ch == ']' || ch == '}') {
      i++;
      if (lv.n == 1) continue;
      total -= cur->run;
      int resume = cur->in_template && ch == '}';
      lv.n--;
      if (resume) {
        int subst;
        i = skip_template_text(s, n, i, &subst);
        if (subst) {
          nest_level t = {(uint32_t)i - 2, 0, 1};
          SK_VEC_PUSH(lv, t);
        }
      }
      continue;
    }
    /* a token at this level; a bracket or a template string's "${" also opens a level */
    int opens = ch == '(' || ch == '[' || ch == '{';
    if (ch == '\'' || ch == '"') {
      size_t k = i + 1;
      for (; k < n && s[k] != ch && s[k] != '\n'; k++)
        if (s[k] == '\\') k++;
      /* Unterminated, the parser sees more than a string there: count the quote alone and scan on. */
      i = k < n && s[k] == ch ? k + 1 : i + 1;
    } else if (ch == '`') {
      int subst;
      size_t k = skip_template_text(s, n, i + 1, &subst);
      if (subst || (k > i + 1 && s[k - 1] == '`')) {
        i = k;
        opens = subst;
      } else {
        i++;
      }
    } else if (is_ident_byte(ch)) {
      while (i < n && is_ident_byte(s[i])) i++;
      for (size_t k = 0; k < sizeof decl_words / sizeof decl_words[0]; k++)
        if (strlen(decl_words[k]) == i - start && memcmp(s + start, decl_words[k], i - start) == 0) {
          total -= cur->run;
          cur->run = 0;
        }
    } else {
      i++;
    }
    cur->run++;
    total++;
    if (opens) {
      nest_level o = {(uint32_t)start, 0, ch == '`'};
      SK_VEC_PUSH(lv, o);
    }
    if (total > STACK_LIMIT) {
      sk_diag(c->d, SK_ERROR, c->src, (uint32_t)start, 1,
              "syntax error: too deeply nested for the parser: more than %d brackets or operators are open "
              "here",
              STACK_LIMIT);
      rc = -1;
      break;
    }
  }
  free(lv.v);
  return rc;
}

typedef struct {
  size_t count, budget;
  size_t cancel;              /* the parser's cancellation flag */
  char last[80];              /* the last "process version:..." message: where that version stood */
  int have_error;
  unsigned err_row, err_col;  /* where the parse stood when it first detected an error */
} parse_budget;

static void parse_log(void *payload, TSLogType type, const char *msg) {
  parse_budget *b = payload;
  (void)type;
  if (++b->count > b->budget) b->cancel = 1;
  if (b->have_error) return;
  if (msg[0] == 'p' && strncmp(msg, "process version:", 16) == 0) {
    snprintf(b->last, sizeof b->last, "%s", msg);
  } else if (msg[0] == 'd' && strcmp(msg, "detect_error") == 0) {
    const char *at = strstr(b->last, "row:");
    b->have_error = at && sscanf(at, "row:%u, col:%u", &b->err_row, &b->err_col) == 2;
  }
}

/* Reports a parse stopped by its budget, at the first error when the log said where it was. */
static void parse_gave_up(ctx *c, const parse_budget *b) {
  const sk_source *src = c->src;
  if (b->have_error && b->err_row < src->nlines && b->err_col <= src->len - src->lines[b->err_row]) {
    size_t off = src->lines[b->err_row] + b->err_col;
    while (off < src->len && (src->text[off] == ' ' || src->text[off] == '\t' || src->text[off] == '\r' ||
                              src->text[off] == '\n'))
      off++;
    sk_diag(c->d, SK_ERROR, src, (uint32_t)off, off < src->len ? 1 : 0,
            "syntax error: the parser cannot recover from the errors from here on; fix this one first");
    return;
  }
  sk_diag(c->d, SK_ERROR, src, 0, 0, "syntax error: the parser cannot recover from the errors in this file");
}

/* Parses the source under the limits explained above. Returns the tree, or NULL after reporting why. */
static TSTree *parse_text(ctx *c, TSParser *parser) {
  const sk_source *src = c->src;
  if (stack_guard(c) != 0) return NULL;
  uint64_t limit_us = PARSE_TIME_MIN_US + src->len / 2;
  ts_parser_set_timeout_micros(parser, limit_us);
  TSTree *tree = ts_parser_parse_string(parser, NULL, src->text, (uint32_t)src->len);
  if (tree) return tree;
  ts_parser_reset(parser);
  ts_parser_set_timeout_micros(parser, 0);
  parse_budget b = {0};
  b.budget = ACTIONS_PER_US * limit_us;
  ts_parser_set_logger(parser, (TSLogger){&b, parse_log});
  ts_parser_set_cancellation_flag(parser, &b.cancel);
  tree = ts_parser_parse_string(parser, NULL, src->text, (uint32_t)src->len);
  ts_parser_set_logger(parser, (TSLogger){NULL, NULL});
  ts_parser_set_cancellation_flag(parser, NULL);
  if (!tree) parse_gave_up(c, &b);
  return tree;
}

sk_value *sk_extract(const sk_source *src, sk_arena *arena, sk_diags *d) {
  ctx c = {src, arena, d, {0}, 0};
  TSParser *parser = ts_parser_new();
  sk_value *result = NULL;
  if (!ts_parser_set_language(parser, tree_sitter_typescript())) {
    sk_diag(d, SK_ERROR, NULL, 0, 0, "the TypeScript grammar does not match this libtree-sitter (ABI)");
    ts_parser_delete(parser);
    return NULL;
  }
  TSTree *tree = parse_text(&c, parser);
  if (!tree) {
    ts_parser_delete(parser);
    return NULL;
  }
  TSNode root = ts_tree_root_node(tree);
  if (syntax_errors(&c, root, root) > 0) goto done;

  TSNode export_value = {0};
  int found = 0;
  uint32_t count = ts_node_named_child_count(root);
  for (uint32_t i = 0; i < count; i++) {
    TSNode st = ts_node_named_child(root, i);
    if (is(st, "lexical_declaration") || is(st, "variable_declaration")) collect_bindings(&c, st);
    if (is(st, "export_statement")) {
      TSNode decl = ts_node_child_by_field_name(st, "declaration", 11);
      if (!ts_node_is_null(decl) && is(decl, "lexical_declaration")) collect_bindings(&c, decl);
      int is_default = 0;
      for (uint32_t k = 0; k < ts_node_child_count(st); k++)
        if (is(ts_node_child(st, k), "default")) is_default = 1;
      TSNode value = ts_node_child_by_field_name(st, "value", 5);
      if (is_default && !ts_node_is_null(value)) {
        if (found) {
          err_at(&c, st, "a second `export default`");
          continue;
        }
        export_value = value;
        found = 1;
      } else if (is_default) {
        err_at(&c, st, "`export default` must be defineLoop({...}) or an array of defineLoop({...})");
        found = 1;
      }
    }
  }
  if (!found) {
    sk_diag(d, SK_ERROR, src, (uint32_t)src->len, 0,
            "no `export default`: the config must export defineLoop({...}) or an array of defineLoop({...})");
    goto done;
  }
  if (!ts_node_is_null(export_value)) result = extract(&c, export_value);
done:
  free(c.binds.v);
  ts_tree_delete(tree);
  ts_parser_delete(parser);
  return result;
}
