/* test_tmpl.c - unit tests for the template and front matter parsers (compiler/tmpl.c).
 *
 * Accepted templates are checked part by part; refused ones by message, offset and length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tmpl.h"

static sk_tmpl *parse_ok(const char *text) {
  sk_tmpl *t = NULL;
  sk_tmpl_error err;
  int rc = sk_tmpl_parse(text, strlen(text), &t, &err);
  if (rc != 0) print_error("unexpected error at %zu: %s\n", err.off, err.msg);
  assert_int_equal(rc, 0);
  assert_non_null(t);
  return t;
}

static void parse_err(const char *text, size_t off, size_t len, const char *msg) {
  sk_tmpl *t = (sk_tmpl *)&t; /* must be reset to NULL */
  sk_tmpl_error err;
  assert_int_equal(sk_tmpl_parse(text, strlen(text), &t, &err), -1);
  assert_null(t);
  assert_string_equal(err.msg, msg);
  assert_int_equal(err.off, off);
  assert_int_equal(err.len, len);
}

static void assert_literal(const sk_tpart *p, const char *text, size_t off) {
  assert_false(p->is_var);
  assert_string_equal(p->text, text);
  assert_null(p->deflt);
  assert_int_equal(p->off, off);
  assert_int_equal(p->len, strlen(text));
}

static void assert_var(const sk_tpart *p, const char *path, const char *deflt, size_t off,
                       size_t len, size_t path_off) {
  assert_true(p->is_var);
  assert_string_equal(p->text, path);
  if (deflt)
    assert_string_equal(p->deflt, deflt);
  else
    assert_null(p->deflt);
  assert_int_equal(p->off, off);
  assert_int_equal(p->len, len);
  assert_int_equal(p->path_off, path_off);
}

static void test_plain_text(void **state) {
  sk_tmpl *t = parse_ok("Hello there,\n{ lone braces } and } { stay literal.\n");
  (void)state;
  assert_int_equal(t->nparts, 1);
  assert_literal(&t->parts[0], "Hello there,\n{ lone braces } and } { stay literal.\n", 0);
  sk_tmpl_free(t);
}

static void test_empty(void **state) {
  sk_tmpl *t = parse_ok("");
  (void)state;
  assert_int_equal(t->nparts, 0);
  assert_null(t->parts);
  sk_tmpl_free(t);
  sk_tmpl_free(NULL);
}

static void test_mixed(void **state) {
  const char *s = "Hi {{user.name}}, welcome to {{ loop.name }}!";
  sk_tmpl *t = parse_ok(s);
  (void)state;
  assert_int_equal(t->nparts, 5);
  assert_literal(&t->parts[0], "Hi ", 0);
  assert_var(&t->parts[1], "user.name", NULL, 3, 13, 5);
  assert_literal(&t->parts[2], ", welcome to ", 16);
  assert_var(&t->parts[3], "loop.name", NULL, 29, 15, 32);
  assert_literal(&t->parts[4], "!", 44);
  sk_tmpl_free(t);
}

static void test_only_vars(void **state) {
  sk_tmpl *t = parse_ok("{{a}}{{ b.c_d.E9 }}{{_x}}");
  (void)state;
  assert_int_equal(t->nparts, 3);
  assert_var(&t->parts[0], "a", NULL, 0, 5, 2);
  assert_var(&t->parts[1], "b.c_d.E9", NULL, 5, 14, 8);
  assert_var(&t->parts[2], "_x", NULL, 19, 6, 21);
  sk_tmpl_free(t);
}

static void test_defaults(void **state) {
  const char *s = "Hi {{ user.first_name | default: 'there' }}, {{x|default:\"it's \"}}"
                  "{{ y |default :'' }}{{ z | default: '{{ }}' }}";
  sk_tmpl *t = parse_ok(s);
  (void)state;
  assert_int_equal(t->nparts, 6);
  assert_literal(&t->parts[0], "Hi ", 0);
  assert_var(&t->parts[1], "user.first_name", "there", 3, 40, 6);
  assert_literal(&t->parts[2], ", ", 43);
  assert_var(&t->parts[3], "x", "it's ", 45, 21, 47);
  assert_string_equal(t->parts[4].deflt, "");
  assert_var(&t->parts[5], "z", "{{ }}", 86, 26, 89);
  sk_tmpl_free(t);
}

static void test_whitespace_inside_braces(void **state) {
  const char *s = "{{\n\t user.email \r\n|\n default\t:\n'x'\n}}";
  sk_tmpl *t = parse_ok(s);
  (void)state;
  assert_int_equal(t->nparts, 1);
  assert_var(&t->parts[0], "user.email", "x", 0, strlen(s), 5);
  sk_tmpl_free(t);
}

static void test_literal_braces_around_vars(void **state) {
  sk_tmpl *t = parse_ok("{x} {{a}}}} {");
  (void)state;
  assert_int_equal(t->nparts, 3);
  assert_literal(&t->parts[0], "{x} ", 0);
  assert_var(&t->parts[1], "a", NULL, 4, 5, 6);
  assert_literal(&t->parts[2], "}} {", 9);
  sk_tmpl_free(t);
}

static void test_multiline_offsets(void **state) {
  const char *s = "<p>\n  Hello {{ user.name }}\n</p>\n";
  sk_tmpl *t = parse_ok(s);
  (void)state;
  assert_int_equal(t->nparts, 3);
  assert_var(&t->parts[1], "user.name", NULL, 12, 15, 15);
  assert_literal(&t->parts[2], "\n</p>\n", 27);
  sk_tmpl_free(t);
}

static void test_not_nul_terminated(void **state) {
  const char buf[] = "ab{{x}}{{";
  sk_tmpl *t = NULL;
  sk_tmpl_error err;
  (void)state;
  assert_int_equal(sk_tmpl_parse(buf, 7, &t, &err), 0);
  assert_int_equal(t->nparts, 2);
  sk_tmpl_free(t);
}

static void test_err_unclosed(void **state) {
  (void)state;
  parse_err("Hi {{ user.name", 3, 2, "'{{' is not closed: expected '}}'");
  parse_err("Hi {{", 3, 2, "'{{' is not closed: expected '}}'");
  parse_err("{{a}} and {{ b }", 10, 2, "'{{' is not closed: expected '}}'");
  parse_err("{{ a | default: '}}'", 0, 2, "'{{' is not closed: expected '}}'");
}

static void test_err_empty_placeholder(void **state) {
  (void)state;
  parse_err("x {{}} y", 2, 4, "empty placeholder");
  parse_err("x {{  \n }} y", 2, 8, "empty placeholder");
}

static void test_err_unknown_filter(void **state) {
  (void)state;
  parse_err("{{ user.name | upper }}", 15, 5, "unknown filter 'upper': only 'default' is supported");
  parse_err("{{ a | Default: 'x' }}", 7, 7, "unknown filter 'Default': only 'default' is supported");
}

static void test_err_syntax(void **state) {
  (void)state;
  parse_err("{{ 1abc }}", 3, 4, "expected a variable name, found '1abc'");
  parse_err("{{ user name }}", 8, 4, "expected '}}' or '| default: ...', found 'name'");
  parse_err("{{ user. }}", 8, 1, "expected a name after '.', found a space");
  parse_err("{{ user.}}", 8, 1, "expected a name after '.', found '}'");
  parse_err("{{ user.\n}}", 8, 1, "expected a name after '.', found a line break");
  parse_err("{{ user..name }}", 8, 1, "expected a name after '.', found '.'");
  parse_err("{{ user-name }}", 7, 1, "expected '}}' or '| default: ...', found '-'");
  parse_err("{{ a | }}", 7, 1, "expected a filter name after '|', found '}'");
  parse_err("{{ a | default 'x' }}", 15, 1, "expected ':' after 'default', found '''");
  parse_err("{{ a | default: there }}", 16, 5, "expected a quoted default text, found 'there'");
  parse_err("{{ a | default: 'x' 'y' }}", 20, 1, "expected '}}', found '''");
  parse_err("{{ a | default: 'x }}", 16, 1, "unterminated string");
  parse_err("{{{ a }}}", 2, 1, "expected a variable name, found '{'");
}

static void test_err_nul_byte(void **state) {
  const char buf[] = "ab\0cd";
  sk_tmpl *t = NULL;
  sk_tmpl_error err;
  (void)state;
  assert_int_equal(sk_tmpl_parse(buf, 5, &t, &err), -1);
  assert_null(t);
  assert_int_equal(err.off, 2);
  assert_string_equal(err.msg, "the template contains a NUL byte");
  assert_int_equal(sk_tmpl_parse("{{", 2, &t, NULL), -1);
}

/* ---- front matter ---- */

static void fm_ok(const char *text, const char *subject, size_t subject_off, size_t body_off) {
  char *subj = (char *)&subj;
  size_t soff = 99, boff = 99;
  sk_tmpl_error err;
  int rc = sk_front_matter(text, strlen(text), &subj, &soff, &boff, &err);
  if (rc != 0) print_error("unexpected error at %zu: %s\n", err.off, err.msg);
  assert_int_equal(rc, 0);
  if (subject)
    assert_string_equal(subj, subject);
  else
    assert_null(subj);
  assert_int_equal(soff, subject_off);
  assert_int_equal(boff, body_off);
  free(subj);
}

static void fm_err(const char *text, size_t off, size_t len, const char *msg) {
  char *subj = (char *)&subj;
  size_t soff, boff;
  sk_tmpl_error err;
  assert_int_equal(sk_front_matter(text, strlen(text), &subj, &soff, &boff, &err), -1);
  assert_null(subj);
  assert_string_equal(err.msg, msg);
  assert_int_equal(err.off, off);
  assert_int_equal(err.len, len);
}

static void test_fm_absent(void **state) {
  (void)state;
  fm_ok("<p>Hello</p>\n", NULL, 0, 0);
  fm_ok("", NULL, 0, 0);
  fm_ok("---", NULL, 0, 0);
  fm_ok("--- \nsubject: x\n---\n", NULL, 0, 0);
  fm_ok("\n---\nsubject: x\n---\n", NULL, 0, 0);
}

static void test_fm_present(void **state) {
  const char *s = "---\nsubject: Welcome aboard, {{ user.name | default: 'friend' }}!\n---\n<p>Hi</p>\n";
  char *subj;
  size_t soff, boff;
  sk_tmpl_error err;
  sk_tmpl *t;
  (void)state;
  fm_ok(s, "Welcome aboard, {{ user.name | default: 'friend' }}!", 13, strlen(s) - strlen("<p>Hi</p>\n"));

  /* The subject is raw text; the caller parses it as a template. */
  assert_int_equal(sk_front_matter(s, strlen(s), &subj, &soff, &boff, &err), 0);
  t = parse_ok(subj);
  assert_int_equal(t->nparts, 3);
  assert_var(&t->parts[1], "user.name", "friend", 16, 35, 19);
  assert_int_equal(soff + t->parts[1].path_off, 32); /* the path's offset in the file */
  sk_tmpl_free(t);
  free(subj);
}

static void test_fm_quoted(void **state) {
  (void)state;
  fm_ok("---\nsubject: 'It''s {{ user.name }}'\n---\nbody", "It's {{ user.name }}", 14, 41);
  fm_ok("---\nsubject:   \"Say \\\"hi\\\" \\\\ o/\"  \n---\n", "Say \"hi\" \\ o/", 16, 40);
  fm_ok("---\nsubject: \"a 'b' c\"\n---\n", "a 'b' c", 14, 27);
  fm_err("---\nsubject: 'oops\n---\n", 13, 1, "unterminated string");
  fm_err("---\nsubject: 'a' b\n---\n", 17, 1, "unexpected 'b' after the quoted subject");
}

static void test_fm_layout(void **state) {
  (void)state;
  fm_ok("---\n---\nbody", NULL, 0, 8);
  fm_ok("---\n\n# a comment\n  subject :  Hi  \n\n---  \nbody", "Hi", 30, 42);
  fm_ok("---\nsubject: Hi\n---", "Hi", 13, 19); /* closing line at the end of the text */
}

static void test_fm_crlf(void **state) {
  (void)state;
  fm_ok("---\r\nsubject: Hello {{user.name}}\r\n---\r\n<p>x</p>\r\n", "Hello {{user.name}}", 14, 40);
}

static void test_fm_errors(void **state) {
  (void)state;
  fm_err("---\nsubject: Hi\n", 0, 3, "unterminated front matter: expected a closing '---' line");
  fm_err("---\nsubject: Hi\n--\nbody", 16, 2, "expected 'key: value' in front matter, found '--'");
  fm_err("---\n", 0, 3, "unterminated front matter: expected a closing '---' line");
  fm_err("---\nfrom: a@b.c\n---\n", 4, 4, "unknown front matter key 'from': only 'subject' is supported");
  fm_err("---\nreply-to: x\n---\n", 4, 8,
         "unknown front matter key 'reply-to': only 'subject' is supported");
  fm_err("---\nsubject: a\nsubject: b\n---\n", 15, 7, "front matter key 'subject' is given twice");
  fm_err("---\nsubject:\n---\n", 4, 7, "front matter key 'subject' has no value");
  fm_err("---\njust text\n---\n", 4, 9, "expected 'key: value' in front matter, found 'just text'");
  fm_err("---\r\nfrom: x\r\n---\r\n", 5, 4, "unknown front matter key 'from': only 'subject' is supported");
}

static void test_fm_optional_out(void **state) {
  const char *s = "---\nsubject: Hi\n---\n";
  char *subj;
  size_t boff;
  (void)state;
  assert_int_equal(sk_front_matter(s, strlen(s), &subj, NULL, &boff, NULL), 0);
  assert_string_equal(subj, "Hi");
  assert_int_equal(boff, strlen(s));
  free(subj);
  assert_int_equal(sk_front_matter("---\nx: y\n---\n", 13, &subj, NULL, &boff, NULL), -1);
  assert_null(subj);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain_text),
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_mixed),
      cmocka_unit_test(test_only_vars),
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_whitespace_inside_braces),
      cmocka_unit_test(test_literal_braces_around_vars),
      cmocka_unit_test(test_multiline_offsets),
      cmocka_unit_test(test_not_nul_terminated),
      cmocka_unit_test(test_err_unclosed),
      cmocka_unit_test(test_err_empty_placeholder),
      cmocka_unit_test(test_err_unknown_filter),
      cmocka_unit_test(test_err_syntax),
      cmocka_unit_test(test_err_nul_byte),
      cmocka_unit_test(test_fm_absent),
      cmocka_unit_test(test_fm_present),
      cmocka_unit_test(test_fm_quoted),
      cmocka_unit_test(test_fm_layout),
      cmocka_unit_test(test_fm_crlf),
      cmocka_unit_test(test_fm_errors),
      cmocka_unit_test(test_fm_optional_out),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
