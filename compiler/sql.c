/* sql.c - parser for the SQL subset described in sql.h.
 *
 * A hand-written lexer produces one token of lookahead; a recursive-descent parser builds an
 * sk_sql_query. Every refusal goes through fail(), which records the token's span and a message,
 * and leaves through the single cleanup path of sk_sql_parse.
 */
#include "sql.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define SK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SK_PRINTF(f, a)
#endif

typedef enum {
  T_END,    /* end of the text */
  T_IDENT,  /* bare identifier or keyword */
  T_QIDENT, /* "quoted identifier" */
  T_STRING, /* 'string literal' */
  T_NUMBER, /* starts with a digit or '-' digit; validated by the parser */
  T_PARAM,  /* '$' followed by [A-Za-z0-9_]*; validated by the parser */
  T_PUNCT   /* anything else: one operator or character */
} tkind;

typedef struct {
  tkind kind;
  size_t off, len;
} token;

typedef struct {
  const char *s;
  size_t n;
  size_t pos;   /* lexer position: just after tok */
  token tok;    /* current (lookahead) token */
  sk_sql_error *err;
  sk_sql_query *q;
} parser;

/* Longest token text quoted in a message; longer ones end with "...". */
#define SHOWN_MAX 40

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_ident_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
static int is_ident_char(char c) { return is_ident_start(c) || is_digit(c); }

static void set_error(sk_sql_error *err, size_t off, size_t len, const char *fmt, ...) SK_PRINTF(4, 5);
static void set_error(sk_sql_error *err, size_t off, size_t len, const char *fmt, ...) {
  va_list ap;
  if (!err) return;
  err->off = off;
  err->len = len;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
}

/* Fails at the current token. Always returns -1. */
static int fail(parser *p, const char *fmt, ...) SK_PRINTF(2, 3);
static int fail(parser *p, const char *fmt, ...) {
  va_list ap;
  if (!p->err) return -1;
  p->err->off = p->tok.off;
  p->err->len = p->tok.len;
  va_start(ap, fmt);
  vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
  va_end(ap);
  return -1;
}

/* Writes how the current token is named in messages: 'text' in quotes, or "end of query". */
static void shown(const parser *p, char *buf, size_t size) {
  const token *t = &p->tok;
  if (t->kind == T_END) {
    snprintf(buf, size, "end of query");
  } else if (t->len > SHOWN_MAX) {
    snprintf(buf, size, "'%.*s...'", SHOWN_MAX - 3, p->s + t->off);
  } else if (t->kind == T_STRING) {
    snprintf(buf, size, "%.*s", (int)t->len, p->s + t->off); /* already in quotes */
  } else {
    snprintf(buf, size, "'%.*s'", (int)t->len, p->s + t->off);
  }
}

/* Fails with "expected WHAT, found TOKEN", or "unexpected end of query: expected WHAT". */
static int expected(parser *p, const char *what) {
  char tk[SHOWN_MAX + 8];
  if (p->tok.kind == T_END) return fail(p, "unexpected end of query: expected %s", what);
  shown(p, tk, sizeof tk);
  return fail(p, "expected %s, found %s", what, tk);
}

/* Reads the next token into p->tok. Fails only on an unterminated quote or a NUL byte. */
static int lex(parser *p) {
  const char *s = p->s;
  size_t n = p->n, i = p->pos, start;
  char c;

  while (i < n && is_space(s[i])) i++;
  start = i;
  p->tok.off = start;
  if (i >= n) {
    p->tok.kind = T_END;
    p->tok.len = 0;
    p->pos = i;
    return 0;
  }
  c = s[i];
  if (is_ident_start(c)) {
    while (i < n && is_ident_char(s[i])) i++;
    p->tok.kind = T_IDENT;
  } else if (is_digit(c) || (c == '-' && i + 1 < n && is_digit(s[i + 1]))) {
    i++;
    while (i < n && (is_ident_char(s[i]) || s[i] == '.')) i++;
    p->tok.kind = T_NUMBER;
  } else if (c == '$') {
    i++;
    while (i < n && is_ident_char(s[i])) i++;
    p->tok.kind = T_PARAM;
  } else if (c == '\'' || c == '"') {
    /* A doubled quote inside stands for one quote. */
    i++;
    for (;;) {
      if (i >= n) {
        set_error(p->err, start, 1, c == '\'' ? "unterminated string literal"
                                              : "unterminated quoted identifier");
        return -1;
      }
      if (s[i] == '\0') {
        set_error(p->err, i, 1, "%s contains a NUL byte",
                  c == '\'' ? "string literal" : "quoted identifier");
        return -1;
      }
      if (s[i] == c) {
        if (i + 1 < n && s[i + 1] == c) {
          i += 2;
          continue;
        }
        i++;
        break;
      }
      i++;
    }
    p->tok.kind = c == '\'' ? T_STRING : T_QIDENT;
  } else {
    static const char *const two[] = {"<>", "<=", ">=", "!=", "==", "||", "--", "/*"};
    size_t k;
    p->tok.kind = T_PUNCT;
    i++;
    for (k = 0; k < sizeof two / sizeof two[0]; k++) {
      if (start + 1 < n && s[start] == two[k][0] && s[start + 1] == two[k][1]) {
        i = start + 2;
        break;
      }
    }
    /* Keep a multi-byte UTF-8 character whole so the message can show it. */
    if ((unsigned char)c >= 0xC0)
      while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
  }
  p->tok.len = i - start;
  p->pos = i;
  return 0;
}

/* Is the current token the bare word kw (ASCII, case-insensitive)? */
static int is_word(const parser *p, const char *kw) {
  size_t i;
  if (p->tok.kind != T_IDENT || strlen(kw) != p->tok.len) return 0;
  for (i = 0; i < p->tok.len; i++) {
    char c = p->s[p->tok.off + i];
    if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    if (c != kw[i]) return 0;
  }
  return 1;
}

static int is_punct(const parser *p, const char *op) {
  return p->tok.kind == T_PUNCT && strlen(op) == p->tok.len &&
         memcmp(p->s + p->tok.off, op, p->tok.len) == 0;
}

/* Why the current token lies outside the subset, or NULL if it is not a known SQL feature. */
static const char *unsupported_reason(const parser *p) {
  static const struct {
    const char *word;
    const char *why;
  } words[] = {
      {"OR", "conditions combine with AND only"},
      {"JOIN", "a condition queries one table"},
      {"INNER", "a condition queries one table"},
      {"LEFT", "a condition queries one table"},
      {"RIGHT", "a condition queries one table"},
      {"FULL", "a condition queries one table"},
      {"OUTER", "a condition queries one table"},
      {"CROSS", "a condition queries one table"},
      {"NATURAL", "a condition queries one table"},
      {"ON", "a condition queries one table"},
      {"USING", "a condition queries one table"},
      {"LIKE", "only equality (=) comparisons"},
      {"ILIKE", "only equality (=) comparisons"},
      {"IN", "only equality (=) comparisons"},
      {"IS", "only equality (=) comparisons"},
      {"BETWEEN", "only equality (=) comparisons"},
      {"NOT", "only equality (=) comparisons"},
      {"ORDER", "rows come from an index lookup, in no defined order"},
      {"GROUP", "a condition checks for matching rows, it does not aggregate them"},
      {"HAVING", "a condition checks for matching rows, it does not aggregate them"},
      {"UNION", "a condition is a single SELECT"},
      {"INTERSECT", "a condition is a single SELECT"},
      {"EXCEPT", "a condition is a single SELECT"},
      {"OFFSET", "rows come from an index lookup, in no defined order, so only LIMIT applies"},
      {"DISTINCT", "a condition checks for matching rows as they are stored"},
      {"AS", "columns keep their own names"},
  };
  static const struct {
    const char *op;
    const char *why;
  } ops[] = {
      {"<", "only equality (=) comparisons"},   {">", "only equality (=) comparisons"},
      {"<=", "only equality (=) comparisons"},  {">=", "only equality (=) comparisons"},
      {"!=", "only equality (=) comparisons"},  {"<>", "only equality (=) comparisons"},
      {"==", "only equality (=) comparisons"},
      {"(", "subqueries, function calls and parentheses are outside the subset"},
      {"||", "values are parameters or literals, not expressions"},
      {"--", "comments are not allowed inside a query"},
      {"/*", "comments are not allowed inside a query"},
  };
  size_t i;
  for (i = 0; i < sizeof words / sizeof words[0]; i++)
    if (is_word(p, words[i].word)) return words[i].why;
  for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (is_punct(p, ops[i].op)) return ops[i].why;
  return NULL;
}

/* If the current token is a known SQL feature outside the subset, fails saying why. */
static int check_unsupported(parser *p) {
  const char *why = unsupported_reason(p);
  char tk[SHOWN_MAX + 8];
  if (!why) return 0;
  shown(p, tk, sizeof tk);
  return fail(p, "%s is not supported: %s", tk, why);
}

/* Words that cannot be bare identifiers (quote them to use them as names). */
static int is_reserved(const parser *p) {
  static const char *const kw[] = {"SELECT", "FROM", "WHERE", "AND", "LIMIT", "BY", "NULL"};
  size_t i;
  for (i = 0; i < sizeof kw / sizeof kw[0]; i++)
    if (is_word(p, kw[i])) return 1;
  return unsupported_reason(p) != NULL;
}

/* Copies text[off..off+len) and turns each doubled quote q into one. Returns NULL when out of
 * memory. */
static char *unquote(const char *text, size_t off, size_t len, char q) {
  char *r = malloc(len + 1);
  size_t i, j = 0;
  if (!r) return NULL;
  for (i = 0; i < len; i++) {
    r[j++] = text[off + i];
    if (text[off + i] == q) i++; /* skip the second of a pair */
  }
  r[j] = '\0';
  return r;
}

static char *copy_span(const char *text, size_t off, size_t len) {
  char *r = malloc(len + 1);
  if (!r) return NULL;
  memcpy(r, text + off, len);
  r[len] = '\0';
  return r;
}

/* If the current token is an identifier (bare, not reserved, or quoted), copies its name into
 * *name and returns 1; returns 0 if it is not one, -1 on failure (error set). */
static int take_ident(parser *p, char **name) {
  if (p->tok.kind == T_IDENT && !is_reserved(p)) {
    *name = copy_span(p->s, p->tok.off, p->tok.len);
  } else if (p->tok.kind == T_QIDENT) {
    if (p->tok.len == 2) return fail(p, "a quoted identifier cannot be empty");
    *name = unquote(p->s, p->tok.off + 1, p->tok.len - 2, '"');
  } else {
    return 0;
  }
  if (!*name) return fail(p, "out of memory");
  return 1;
}

/* Current token as a name: an identifier, or a refusal naming what was expected. Does not
 * advance, so a caller can still point at the name. */
static int ident(parser *p, const char *what, char **name) {
  int r = take_ident(p, name);
  if (r < 0) return -1;
  if (r == 0) {
    if (check_unsupported(p)) return -1;
    return expected(p, what);
  }
  return 0;
}

/* Are the token's characters all digits after an optional '-'? */
static int is_integer(const parser *p) {
  size_t i = 0;
  const char *t = p->s + p->tok.off;
  if (p->tok.kind != T_NUMBER) return 0;
  if (t[0] == '-') i = 1;
  if (i == p->tok.len) return 0;
  for (; i < p->tok.len; i++)
    if (!is_digit(t[i])) return 0;
  return 1;
}

static int parse_value(parser *p, sk_sql_pred *pr) {
  const char *t = p->s + p->tok.off;
  char tk[SHOWN_MAX + 8];
  pr->val_off = p->tok.off;
  pr->val_len = p->tok.len;
  switch (p->tok.kind) {
  case T_PARAM: {
    size_t i;
    long v = 0;
    if (p->tok.len == 1) return fail(p, "expected a parameter number after '$'");
    for (i = 1; i < p->tok.len; i++) {
      if (!is_digit(t[i])) {
        shown(p, tk, sizeof tk);
        return fail(p, "expected a parameter number after '$', found %s", tk);
      }
      if (v <= SK_SQL_MAX_PARAM) v = v * 10 + (t[i] - '0');
    }
    if (v == 0) return fail(p, "parameter numbers start at $1");
    if (v > SK_SQL_MAX_PARAM) {
      shown(p, tk, sizeof tk);
      return fail(p, "parameter %s is out of range: the highest is $%d", tk, SK_SQL_MAX_PARAM);
    }
    pr->kind = SK_SQL_PARAM;
    pr->param = (int)v;
    if (pr->param > p->q->max_param) p->q->max_param = pr->param;
    break;
  }
  case T_STRING:
    pr->kind = SK_SQL_STRING;
    pr->text = unquote(p->s, p->tok.off + 1, p->tok.len - 2, '\'');
    if (!pr->text) return fail(p, "out of memory");
    break;
  case T_NUMBER:
    if (!is_integer(p)) {
      shown(p, tk, sizeof tk);
      if (memchr(t, '.', p->tok.len))
        return fail(p, "%s is not supported: numbers are integers", tk);
      return fail(p, "%s is not a number", tk);
    }
    pr->kind = SK_SQL_NUMBER;
    pr->text = copy_span(p->s, p->tok.off, p->tok.len);
    if (!pr->text) return fail(p, "out of memory");
    break;
  default:
    if (check_unsupported(p)) return -1;
    return expected(p, "a value ($n, 'text' or a number)");
  }
  return lex(p);
}

/* pred := col = value; appended to p->q->preds. */
static int parse_pred(parser *p) {
  sk_sql_query *q = p->q;
  sk_sql_pred *pr, *grown;
  size_t i;

  grown = realloc(q->preds, (q->npreds + 1) * sizeof *grown);
  if (!grown) return fail(p, "out of memory");
  q->preds = grown;
  pr = &q->preds[q->npreds++];
  memset(pr, 0, sizeof *pr);
  pr->col_off = p->tok.off;
  if (ident(p, "a column name", &pr->column)) return -1;
  for (i = 0; i + 1 < q->npreds; i++) {
    if (strcmp(q->preds[i].column, pr->column) == 0)
      return fail(p, "column '%s' is compared twice", pr->column);
  }
  if (lex(p)) return -1;

  if (!is_punct(p, "=")) {
    if (check_unsupported(p)) return -1;
    return expected(p, "'='");
  }
  if (lex(p)) return -1;
  return parse_value(p, pr);
}

#define LIMIT_MAX 1000000000UL

static int parse_limit(parser *p) {
  const char *t = p->s + p->tok.off;
  char tk[SHOWN_MAX + 8];
  unsigned long v = 0;
  size_t i;

  if (p->tok.kind == T_END) return fail(p, "unexpected end of query: LIMIT takes a positive integer");
  shown(p, tk, sizeof tk);
  if (!is_integer(p) || t[0] == '-') return fail(p, "LIMIT takes a positive integer, found %s", tk);
  for (i = 0; i < p->tok.len; i++) {
    unsigned long d = (unsigned long)(t[i] - '0');
    if (v > (LIMIT_MAX - d) / 10)
      return fail(p, "LIMIT %s is too large: the highest is %lu", tk, LIMIT_MAX);
    v = v * 10 + d;
  }
  if (v == 0) return fail(p, "LIMIT takes a positive integer, found %s", tk);
  p->q->limit = (long)v;
  return lex(p);
}

/* Fails on anything after a complete statement. */
static int trailing(parser *p) {
  char tk[SHOWN_MAX + 8];
  if (p->tok.kind == T_END) return 0;
  if (check_unsupported(p)) return -1;
  shown(p, tk, sizeof tk);
  return fail(p, "unexpected %s after the end of the query", tk);
}

static int parse_query(parser *p) {
  sk_sql_query *q = p->q;
  char tk[SHOWN_MAX + 8];

  if (lex(p)) return -1;
  if (p->tok.kind == T_END) {
    set_error(p->err, 0, 0, "empty query: expected SELECT");
    return -1;
  }
  if (!is_word(p, "SELECT")) return expected(p, "SELECT");
  if (lex(p)) return -1;

  /* ( * | col [, col]* ) */
  if (is_punct(p, "*")) {
    q->star = 1;
    if (lex(p)) return -1;
  } else {
    for (;;) {
      char *col = NULL, **grown;
      size_t i;
      if (ident(p, "a column name", &col)) return -1;
      grown = realloc(q->columns, (q->ncolumns + 1) * sizeof *grown);
      if (!grown) {
        free(col);
        return fail(p, "out of memory");
      }
      q->columns = grown;
      q->columns[q->ncolumns++] = col;
      for (i = 0; i + 1 < q->ncolumns; i++) {
        if (strcmp(q->columns[i], col) == 0) return fail(p, "column '%s' is selected twice", col);
      }
      if (lex(p)) return -1;
      if (!is_punct(p, ",")) break;
      if (lex(p)) return -1;
    }
  }

  if (!is_word(p, "FROM")) {
    if (check_unsupported(p)) return -1;
    return expected(p, "FROM");
  }
  if (lex(p)) return -1;

  q->table_off = p->tok.off;
  if (ident(p, "a table name", &q->table) || lex(p)) return -1;

  if (!is_word(p, "WHERE")) {
    if (is_punct(p, ",")) return fail(p, "',' is not supported: a condition queries one table");
    if (check_unsupported(p)) return -1;
    if (p->tok.kind == T_END)
      return fail(p, "a condition needs a WHERE clause: expected WHERE, found end of query");
    shown(p, tk, sizeof tk);
    return fail(p, "a condition needs a WHERE clause: expected WHERE, found %s", tk);
  }
  if (lex(p)) return -1;

  for (;;) {
    if (parse_pred(p)) return -1;
    if (!is_word(p, "AND")) break;
    if (lex(p)) return -1;
  }

  if (is_word(p, "LIMIT")) {
    if (lex(p)) return -1;
    if (parse_limit(p)) return -1;
  }
  if (is_punct(p, ";")) {
    if (lex(p)) return -1;
  }
  return trailing(p);
}

int sk_sql_parse(const char *text, size_t len, sk_sql_query **out, sk_sql_error *err) {
  parser p;

  assert(out);
  *out = NULL;
  if (err) {
    err->off = err->len = 0;
    err->msg[0] = '\0';
  }
  if (!text && len > 0) {
    set_error(err, 0, 0, "no query text");
    return -1;
  }
  memset(&p, 0, sizeof p);
  p.s = text ? text : "";
  p.n = len;
  p.err = err;
  p.q = calloc(1, sizeof *p.q);
  if (!p.q) {
    set_error(err, 0, 0, "out of memory");
    return -1;
  }
  p.q->limit = -1;
  if (parse_query(&p)) {
    sk_sql_query_free(p.q);
    return -1;
  }
  *out = p.q;
  return 0;
}

void sk_sql_query_free(sk_sql_query *q) {
  size_t i;
  if (!q) return;
  free(q->table);
  for (i = 0; i < q->ncolumns; i++) free(q->columns[i]);
  free(q->columns);
  for (i = 0; i < q->npreds; i++) {
    free(q->preds[i].column);
    free(q->preds[i].text);
  }
  free(q->preds);
  free(q);
}
