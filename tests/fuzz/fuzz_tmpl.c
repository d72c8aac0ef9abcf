/*
 * fuzz_tmpl.c: sk_front_matter and sk_tmpl_parse on raw bytes, as check.c uses them on a template
 * file: the front matter first, then the subject and the body as templates. The only acceptable
 * outcomes are a result that satisfies the header's promises or an error whose span lies inside the text.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tmpl.h"

/* Parses text[0..len) as a template and checks the parts tile it in order. */
static void parse_template(const char *text, size_t len) {
  sk_tmpl *t = (sk_tmpl *)1;
  sk_tmpl_error err;
  memset(&err, 0, sizeof err);
  if (sk_tmpl_parse(text, len, &t, &err) != 0) {
    FUZZ_CHECK(t == NULL);
    FUZZ_CHECK(err.off <= len && err.len <= len - err.off);
    return;
  }
  FUZZ_CHECK(t != NULL);
  size_t end = 0;
  for (size_t i = 0; i < t->nparts; i++) {
    const sk_tpart *p = &t->parts[i];
    FUZZ_CHECK(p->text != NULL);
    FUZZ_CHECK(p->off == end && p->len > 0 && p->len <= len - p->off);
    FUZZ_CHECK(!(i > 0 && !p->is_var && !t->parts[i - 1].is_var));
    if (p->is_var) FUZZ_CHECK(p->path_off > p->off && p->path_off < p->off + p->len);
    else FUZZ_CHECK(p->deflt == NULL && strlen(p->text) == p->len);
    end = p->off + p->len;
  }
  FUZZ_CHECK(end == len);
  sk_tmpl_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  char *subject = (char *)1;
  size_t subject_off = 0, body_off = 0;
  sk_tmpl_error err;
  memset(&err, 0, sizeof err);
  if (sk_front_matter(text, size, &subject, &subject_off, &body_off, &err) != 0) {
    FUZZ_CHECK(subject == NULL);
    FUZZ_CHECK(err.off <= size && err.len <= size - err.off);
  } else {
    FUZZ_CHECK(body_off <= size);
    if (subject) {
      FUZZ_CHECK(subject_off < body_off);
      parse_template(subject, strlen(subject));
      free(subject);
    }
    parse_template(text + body_off, size - body_off);
  }
  parse_template(text, size);
  return 0;
}
