/* tmpl.h - email templates: `{{ path }}` placeholders and the optional front matter.
 *
 * A template is literal text with placeholders `{{ user.name }}` or
 * `{{ user.name | default: 'there' }}` (either quote; no escapes inside). Whitespace inside the
 * braces is free; a lone `{` or `}` is literal. A template file may start with front matter
 * (`---\nsubject: ...\n---\n`). Both parsers are pure: no I/O, no globals.
 */
#ifndef SK_TMPL_H
#define SK_TMPL_H

#include <stddef.h>

/* One piece of a template: literal text or a placeholder. */
typedef struct {
  int is_var;
  char *text;      /* literal text (is_var==0) or the dotted path (is_var==1); owned */
  char *deflt;     /* default text or NULL; owned */
  size_t off, len; /* byte span in the template text: the literal, or the whole {{...}} */
  size_t path_off; /* for vars: offset of the path */
} sk_tpart;

/* Parts in text order; two literals are never adjacent. An empty text has no parts. */
typedef struct {
  sk_tpart *parts;
  size_t nparts;
} sk_tmpl;

/* Where (byte span in the text) and why a template was refused. */
typedef struct {
  size_t off, len;
  char msg[200];
} sk_tmpl_error;

/* Parses text[0..len) (need not be NUL-terminated). On success returns 0 and sets *out to a new
 * template that the caller frees with sk_tmpl_free. On error returns -1, sets *out to NULL and,
 * when err is not NULL, fills it with the offending span and a lowercase message. Cost: O(len). */
int sk_tmpl_parse(const char *text, size_t len, sk_tmpl **out, sk_tmpl_error *err);

/* Frees t and everything it owns. t may be NULL. */
void sk_tmpl_free(sk_tmpl *t);

/* Reads the front matter of a template file. If text starts with "---\n" (or "---\r\n"), reads
 * lines `key: value` up to a line "---"; blank lines and lines starting with '#' are skipped. The
 * only key is `subject`; its value may be quoted with ' (where '' is a quote) or " (where \" and
 * \\ are escapes) and is returned raw, placeholders included (parse it with sk_tmpl_parse).
 * On success returns 0 and sets *subject (owned by the caller, NULL when absent), *subject_off
 * (offset of the value's first character, inside the quotes; 0 when absent) and *body_off (where
 * the body starts; 0 when there is no front matter). subject_off may be NULL. On error (unknown
 * key, malformed line, unterminated front matter) returns -1, sets *subject to NULL and fills err
 * when not NULL. Cost: O(length of the front matter). */
int sk_front_matter(const char *text, size_t len, char **subject, size_t *subject_off,
                    size_t *body_off, sk_tmpl_error *err);

#endif
