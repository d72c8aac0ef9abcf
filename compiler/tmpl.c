/* tmpl.c - parsers for `{{ }}` templates and template front matter (see tmpl.h).
 *
 * sk_tmpl_parse scans the text once, cutting it into literal and placeholder parts;
 * sk_front_matter reads the `---` block at the top of a template file line by line.
 */
#include "tmpl.h"

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

/* Longest piece of text quoted in a message; longer ones end with "...". */
#define SHOWN_MAX 40

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_ident_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
static int is_ident_char(char c) { return is_ident_start(c) || (c >= '0' && c <= '9'); }

/* Always returns -1, so callers can `return fail(...)`. */
static int fail(sk_tmpl_error *err, size_t off, size_t len, const char *fmt, ...) SK_PRINTF(4, 5);
static int fail(sk_tmpl_error *err, size_t off, size_t len, const char *fmt, ...) {
  va_list ap;
  if (!err) return -1;
  err->off = off;
  err->len = len;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  return -1;
}

static char *copy_span(const char *s, size_t off, size_t len) {
  char *r = malloc(len + 1);
  if (!r) return NULL;
  memcpy(r, s + off, len);
  r[len] = '\0';
  return r;
}

/* Length of the "token" at s[i]: a run of identifier characters, or one (UTF-8) character. */
static size_t token_len(const char *s, size_t n, size_t i) {
  size_t j = i;
  if (i >= n) return 0;
  if (is_ident_char(s[i])) {
    while (j < n && is_ident_char(s[j])) j++;
    return j - i;
  }
  j++;
  if ((unsigned char)s[i] >= 0xC0)
    while (j < n && ((unsigned char)s[j] & 0xC0) == 0x80) j++;
  return j - i;
}

/* Names s[off..off+len) for a message: 'text' in quotes, shortened if long, or `what_end` at
 * the end of the text. */
static void shown(const char *s, size_t off, size_t len, const char *what_end, char *buf,
                  size_t size) {
  if (len == 0)
    snprintf(buf, size, "%s", what_end);
  else if (len > SHOWN_MAX)
    snprintf(buf, size, "'%.*s...'", SHOWN_MAX - 3, s + off);
  else
    snprintf(buf, size, "'%.*s'", (int)len, s + off);
}

/* Fails with "expected WHAT, found TOKEN" at the token starting at s[i]. */
static int expected_at(const char *s, size_t n, size_t i, const char *what, sk_tmpl_error *err) {
  char tk[SHOWN_MAX + 8];
  size_t tl = token_len(s, n, i);
  if (tl == 1 && (s[i] == ' ' || s[i] == '\t'))
    return fail(err, i, tl, "expected %s, found a space", what);
  if (tl == 1 && (s[i] == '\n' || s[i] == '\r'))
    return fail(err, i, tl, "expected %s, found a line break", what);
  shown(s, i, tl, "end of template", tk, sizeof tk);
  return fail(err, i, tl, "expected %s, found %s", what, tk);
}

/* Appends a part to t; takes ownership of text and deflt (freed on failure). */
static int add_part(sk_tmpl *t, int is_var, char *text, char *deflt, size_t off, size_t len,
                    size_t path_off) {
  sk_tpart *grown;
  if (!text) {
    free(deflt);
    return -1;
  }
  grown = realloc(t->parts, (t->nparts + 1) * sizeof *grown);
  if (!grown) {
    free(text);
    free(deflt);
    return -1;
  }
  t->parts = grown;
  grown[t->nparts].is_var = is_var;
  grown[t->nparts].text = text;
  grown[t->nparts].deflt = deflt;
  grown[t->nparts].off = off;
  grown[t->nparts].len = len;
  grown[t->nparts].path_off = path_off;
  t->nparts++;
  return 0;
}

/* Finds "}}" at or after i; returns n when there is none. */
static size_t find_close(const char *s, size_t n, size_t i) {
  for (; i + 1 < n; i++)
    if (s[i] == '}' && s[i + 1] == '}') return i;
  return n;
}

/* Parses the placeholder whose "{{" is at s[start] and appends it to t. On success sets *end to
 * just after its "}}". */
static int parse_var(const char *s, size_t n, size_t start, sk_tmpl *t, size_t *end,
                     sk_tmpl_error *err) {
  size_t i = start + 2, path_off, path_end;
  char *deflt = NULL;

  if (find_close(s, n, i) == n) return fail(err, start, 2, "'{{' is not closed: expected '}}'");
  while (i < n && is_space(s[i])) i++;
  if (i + 1 < n && s[i] == '}' && s[i + 1] == '}')
    return fail(err, start, i + 2 - start, "empty placeholder");

  /* path := ident ('.' ident)* */
  path_off = i;
  if (!is_ident_start(s[i])) return expected_at(s, n, i, "a variable name", err);
  for (;;) {
    while (i < n && is_ident_char(s[i])) i++;
    if (i >= n || s[i] != '.') break;
    i++;
    if (i >= n || !is_ident_start(s[i])) return expected_at(s, n, i, "a name after '.'", err);
  }
  path_end = i;
  while (i < n && is_space(s[i])) i++;

  /* | default: 'text' */
  if (i < n && s[i] == '|') {
    size_t f, q;
    char quote;
    i++;
    while (i < n && is_space(s[i])) i++;
    f = i;
    if (i >= n || !is_ident_start(s[i])) return expected_at(s, n, i, "a filter name after '|'", err);
    while (i < n && is_ident_char(s[i])) i++;
    if (i - f != 7 || memcmp(s + f, "default", 7) != 0) {
      char tk[SHOWN_MAX + 8];
      shown(s, f, i - f, "", tk, sizeof tk);
      return fail(err, f, i - f, "unknown filter %s: only 'default' is supported", tk);
    }
    while (i < n && is_space(s[i])) i++;
    if (i >= n || s[i] != ':') return expected_at(s, n, i, "':' after 'default'", err);
    i++;
    while (i < n && is_space(s[i])) i++;
    if (i >= n || (s[i] != '\'' && s[i] != '"'))
      return expected_at(s, n, i, "a quoted default text", err);
    quote = s[i];
    q = i++;
    while (i < n && s[i] != quote) i++;
    if (i >= n) return fail(err, q, 1, "unterminated string");
    deflt = copy_span(s, q + 1, i - q - 1);
    if (!deflt) return fail(err, start, 2, "out of memory");
    i++;
    while (i < n && is_space(s[i])) i++;
  }

  if (i + 1 >= n || s[i] != '}' || s[i + 1] != '}') {
    const char *what = deflt ? "'}}'" : "'}}' or '| default: ...'";
    free(deflt);
    if (i >= n) return fail(err, start, 2, "'{{' is not closed: expected '}}'");
    return expected_at(s, n, i, what, err);
  }
  i += 2;
  if (add_part(t, 1, copy_span(s, path_off, path_end - path_off), deflt, start, i - start,
               path_off))
    return fail(err, start, 2, "out of memory");
  *end = i;
  return 0;
}

int sk_tmpl_parse(const char *text, size_t len, sk_tmpl **out, sk_tmpl_error *err) {
  sk_tmpl *t;
  size_t i = 0, lit = 0; /* lit: start of the pending literal */

  assert(out);
  *out = NULL;
  if (err) {
    err->off = err->len = 0;
    err->msg[0] = '\0';
  }
  if (!text && len > 0) return fail(err, 0, 0, "no template text");
  t = calloc(1, sizeof *t);
  if (!t) return fail(err, 0, 0, "out of memory");

  while (i < len) {
    if (text[i] == '\0') {
      fail(err, i, 1, "the template contains a NUL byte");
      goto failed;
    }
    if (text[i] == '{' && i + 1 < len && text[i + 1] == '{') {
      size_t end = i;
      if (i > lit && add_part(t, 0, copy_span(text, lit, i - lit), NULL, lit, i - lit, 0)) {
        fail(err, lit, 0, "out of memory");
        goto failed;
      }
      if (parse_var(text, len, i, t, &end, err)) goto failed;
      i = lit = end;
      continue;
    }
    i++;
  }
  if (len > lit && add_part(t, 0, copy_span(text, lit, len - lit), NULL, lit, len - lit, 0)) {
    fail(err, lit, 0, "out of memory");
    goto failed;
  }
  *out = t;
  return 0;

failed:
  sk_tmpl_free(t);
  return -1;
}

void sk_tmpl_free(sk_tmpl *t) {
  size_t i;
  if (!t) return;
  for (i = 0; i < t->nparts; i++) {
    free(t->parts[i].text);
    free(t->parts[i].deflt);
  }
  free(t->parts);
  free(t);
}

/* Decodes the quoted value s[q..end) (s[q] is the quote) into a new string. Fails if the closing
 * quote is missing or followed by anything. */
static int unquote_value(const char *s, size_t q, size_t end, char **out, sk_tmpl_error *err) {
  char quote = s[q], *r;
  size_t i, j = 0;

  r = malloc(end - q + 1);
  if (!r) return fail(err, q, 1, "out of memory");
  for (i = q + 1; i < end; i++) {
    if (quote == '\'' && s[i] == '\'' && i + 1 < end && s[i + 1] == '\'') {
      r[j++] = '\'';
      i++;
    } else if (quote == '"' && s[i] == '\\' && i + 1 < end && (s[i + 1] == '"' || s[i + 1] == '\\')) {
      r[j++] = s[++i];
    } else if (s[i] == quote) {
      break;
    } else {
      r[j++] = s[i];
    }
  }
  r[j] = '\0';
  if (i >= end) {
    free(r);
    return fail(err, q, 1, "unterminated string");
  }
  i++;
  while (i < end && is_space(s[i])) i++;
  if (i < end) {
    char tk[SHOWN_MAX + 8];
    size_t tl = token_len(s, end, i);
    free(r);
    shown(s, i, tl, "", tk, sizeof tk);
    return fail(err, i, tl, "unexpected %s after the quoted subject", tk);
  }
  *out = r;
  return 0;
}

/* Reads one `key: value` line s[b..e) (without its newline; e after trailing spaces are cut). */
static int front_matter_line(const char *s, size_t b, size_t e, char **subject, size_t *subject_off,
                             sk_tmpl_error *err) {
  size_t k = b, kend, v;
  char tk[SHOWN_MAX + 8];

  while (k < e && (is_ident_char(s[k]) || s[k] == '-')) k++;
  kend = k;
  while (k < e && (s[k] == ' ' || s[k] == '\t')) k++;
  if (kend == b || k >= e || s[k] != ':') {
    shown(s, b, e - b, "", tk, sizeof tk);
    return fail(err, b, e - b, "expected 'key: value' in front matter, found %s", tk);
  }
  shown(s, b, kend - b, "", tk, sizeof tk);
  if (kend - b != 7 || memcmp(s + b, "subject", 7) != 0)
    return fail(err, b, kend - b, "unknown front matter key %s: only 'subject' is supported", tk);
  if (*subject) return fail(err, b, kend - b, "front matter key 'subject' is given twice");
  v = k + 1;
  while (v < e && (s[v] == ' ' || s[v] == '\t')) v++;
  if (v == e) return fail(err, b, kend - b, "front matter key 'subject' has no value");
  if (memchr(s + v, '\0', e - v)) return fail(err, v, e - v, "the subject contains a NUL byte");
  if (s[v] == '\'' || s[v] == '"') {
    if (unquote_value(s, v, e, subject, err)) return -1;
    *subject_off = v + 1;
  } else {
    *subject = copy_span(s, v, e - v);
    if (!*subject) return fail(err, v, 0, "out of memory");
    *subject_off = v;
  }
  return 0;
}

int sk_front_matter(const char *text, size_t len, char **subject, size_t *subject_off,
                    size_t *body_off, sk_tmpl_error *err) {
  size_t pos, soff = 0;

  assert(subject && body_off);
  *subject = NULL;
  *body_off = 0;
  if (subject_off) *subject_off = 0;
  if (err) {
    err->off = err->len = 0;
    err->msg[0] = '\0';
  }
  if (!text) return 0;
  if (len >= 4 && memcmp(text, "---\n", 4) == 0)
    pos = 4;
  else if (len >= 5 && memcmp(text, "---\r\n", 5) == 0)
    pos = 5;
  else
    return 0;

  for (;;) {
    size_t b = pos, e, next;
    const char *nl;

    if (pos >= len) {
      fail(err, 0, 3, "unterminated front matter: expected a closing '---' line");
      goto failed;
    }
    nl = memchr(text + pos, '\n', len - pos);
    e = nl ? (size_t)(nl - text) : len;
    next = nl ? e + 1 : len;
    while (e > b && is_space(text[e - 1])) e--; /* also drops a '\r' */
    while (b < e && (text[b] == ' ' || text[b] == '\t')) b++;
    pos = next;
    if (e - b == 3 && memcmp(text + b, "---", 3) == 0) break;
    if (b == e || text[b] == '#') continue;
    if (front_matter_line(text, b, e, subject, &soff, err)) goto failed;
  }
  *body_off = pos;
  if (subject_off) *subject_off = soff;
  return 0;

failed:
  free(*subject);
  *subject = NULL;
  return -1;
}
