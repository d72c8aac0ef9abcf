/* test_sql.c - unit tests for the SQL subset parser (compiler/sql.c).
 *
 * Accepted queries are checked field by field; refused ones by message, offset and length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sql.h"

static sk_sql_query *parse_ok(const char *text) {
  sk_sql_query *q = NULL;
  sk_sql_error err;
  int rc = sk_sql_parse(text, strlen(text), &q, &err);
  if (rc != 0) print_error("unexpected error at %zu: %s\n", err.off, err.msg);
  assert_int_equal(rc, 0);
  assert_non_null(q);
  return q;
}

static void parse_err(const char *text, size_t off, size_t len, const char *msg) {
  sk_sql_query *q = (sk_sql_query *)&q; /* must be reset to NULL */
  sk_sql_error err;
  assert_int_equal(sk_sql_parse(text, strlen(text), &q, &err), -1);
  assert_null(q);
  assert_string_equal(err.msg, msg);
  assert_int_equal(err.off, off);
  assert_int_equal(err.len, len);
}

/* Offset of the n-th (0-based) occurrence of needle in text. */
static size_t at(const char *text, const char *needle, int n) {
  const char *p = text;
  for (;;) {
    p = strstr(p, needle);
    assert_non_null(p);
    if (n-- == 0) return (size_t)(p - text);
    p++;
  }
}

static void test_design_example(void **state) {
  const char *s =
      "SELECT * FROM user_actions WHERE user_id = $1 AND action_type = 'first_project_created'";
  sk_sql_query *q = parse_ok(s);
  (void)state;
  assert_string_equal(q->table, "user_actions");
  assert_int_equal(q->table_off, 14);
  assert_true(q->star);
  assert_int_equal(q->ncolumns, 0);
  assert_int_equal(q->npreds, 2);
  assert_string_equal(q->preds[0].column, "user_id");
  assert_int_equal(q->preds[0].kind, SK_SQL_PARAM);
  assert_int_equal(q->preds[0].param, 1);
  assert_null(q->preds[0].text);
  assert_int_equal(q->preds[0].col_off, at(s, "user_id", 0));
  assert_int_equal(q->preds[0].val_off, at(s, "$1", 0));
  assert_int_equal(q->preds[0].val_len, 2);
  assert_string_equal(q->preds[1].column, "action_type");
  assert_int_equal(q->preds[1].kind, SK_SQL_STRING);
  assert_int_equal(q->preds[1].param, 0);
  assert_string_equal(q->preds[1].text, "first_project_created");
  assert_int_equal(q->preds[1].val_off, at(s, "'first", 0));
  assert_int_equal(q->preds[1].val_len, strlen("'first_project_created'"));
  assert_int_equal(q->limit, -1);
  assert_int_equal(q->max_param, 1);
  sk_sql_query_free(q);
}

static void test_columns_limit_semicolon(void **state) {
  sk_sql_query *q = parse_ok("select id, \"Email\" ,name from users where id = $2 and n = -42 limit 5;");
  (void)state;
  assert_false(q->star);
  assert_int_equal(q->ncolumns, 3);
  assert_string_equal(q->columns[0], "id");
  assert_string_equal(q->columns[1], "Email");
  assert_string_equal(q->columns[2], "name");
  assert_string_equal(q->table, "users");
  assert_int_equal(q->npreds, 2);
  assert_int_equal(q->preds[1].kind, SK_SQL_NUMBER);
  assert_string_equal(q->preds[1].text, "-42");
  assert_int_equal(q->preds[1].val_len, 3);
  assert_int_equal(q->limit, 5);
  assert_int_equal(q->max_param, 2);
  sk_sql_query_free(q);
}

static void test_case_insensitive_keywords(void **state) {
  sk_sql_query *q = parse_ok("SeLeCt * FrOm T wHeRe A = 1 AnD b = $3 aNd c = $1 LiMiT 10");
  (void)state;
  assert_string_equal(q->table, "T"); /* names keep their case */
  assert_string_equal(q->preds[0].column, "A");
  assert_int_equal(q->npreds, 3);
  assert_int_equal(q->max_param, 3);
  assert_int_equal(q->limit, 10);
  sk_sql_query_free(q);
}

static void test_multiline_offsets(void **state) {
  const char *s = "SELECT *\n"
                  "  FROM user_actions\n"
                  "  WHERE user_id = $1\n"
                  "    AND action_type = 'x'\n";
  sk_sql_query *q = parse_ok(s);
  (void)state;
  assert_int_equal(q->table_off, at(s, "user_actions", 0));
  assert_int_equal(q->preds[0].col_off, at(s, "user_id", 0));
  assert_int_equal(q->preds[1].col_off, at(s, "action_type", 0));
  assert_int_equal(q->preds[1].val_off, at(s, "'x'", 0));
  sk_sql_query_free(q);

  s = "SELECT *\n  FROM t\n  WHERE a = 1\n    OR b = 2";
  parse_err(s, at(s, "OR", 0), 2, "'OR' is not supported: conditions combine with AND only");
}

static void test_string_escapes(void **state) {
  const char *s = "SELECT * FROM t WHERE a = 'it''s' AND b = '' AND \"we\"\"ird\" = 'x''''y'";
  sk_sql_query *q = parse_ok(s);
  (void)state;
  assert_string_equal(q->preds[0].text, "it's");
  assert_int_equal(q->preds[0].val_len, 7);
  assert_string_equal(q->preds[1].text, "");
  assert_string_equal(q->preds[2].column, "we\"ird");
  assert_string_equal(q->preds[2].text, "x''y");
  sk_sql_query_free(q);
}

static void test_quoted_keyword_identifiers(void **state) {
  sk_sql_query *q = parse_ok("SELECT \"from\" FROM \"order\" WHERE \"limit\" = 'x' ;  \n");
  (void)state;
  assert_string_equal(q->columns[0], "from");
  assert_string_equal(q->table, "order");
  assert_int_equal(q->table_off, 19);
  assert_string_equal(q->preds[0].column, "limit");
  sk_sql_query_free(q);
}

static void test_not_nul_terminated(void **state) {
  const char buf[] = "SELECT * FROM t WHERE a = $1 garbage";
  sk_sql_query *q = NULL;
  sk_sql_error err;
  (void)state;
  assert_int_equal(sk_sql_parse(buf, strlen("SELECT * FROM t WHERE a = $1"), &q, &err), 0);
  assert_int_equal(q->preds[0].param, 1);
  sk_sql_query_free(q);
  sk_sql_query_free(NULL);
}

static void test_err_empty(void **state) {
  (void)state;
  parse_err("", 0, 0, "empty query: expected SELECT");
  parse_err("  \n\t ", 0, 0, "empty query: expected SELECT");
}

static void test_err_expected_select(void **state) {
  (void)state;
  parse_err("UPDATE users SET a = 1", 0, 6, "expected SELECT, found 'UPDATE'");
  parse_err("  delete from t", 2, 6, "expected SELECT, found 'delete'");
}

static void test_err_expected_from(void **state) {
  (void)state;
  parse_err("SELECT a WHERE b = 1", 9, 5, "expected FROM, found 'WHERE'");
  parse_err("SELECT * users", 9, 5, "expected FROM, found 'users'");
  parse_err("SELECT *", 8, 0, "unexpected end of query: expected FROM");
}

static void test_err_columns(void **state) {
  (void)state;
  parse_err("SELECT", 6, 0, "unexpected end of query: expected a column name");
  parse_err("SELECT a,", 9, 0, "unexpected end of query: expected a column name");
  parse_err("SELECT FROM t", 7, 4, "expected a column name, found 'FROM'");
  parse_err("SELECT a, 1 FROM t", 10, 1, "expected a column name, found '1'");
  parse_err("SELECT a, a FROM t WHERE x = 1", 10, 1, "column 'a' is selected twice");
  parse_err("SELECT count(*) FROM t WHERE x = 1", 12, 1,
            "'(' is not supported: subqueries, function calls and parentheses are outside the subset");
  parse_err("SELECT DISTINCT a FROM t WHERE x = 1", 7, 8,
            "'DISTINCT' is not supported: a condition checks for matching rows as they are stored");
  parse_err("SELECT \"\" FROM t", 7, 2, "a quoted identifier cannot be empty");
  parse_err("SELECT \"abc FROM t", 7, 1, "unterminated quoted identifier");
}

static void test_err_table(void **state) {
  (void)state;
  parse_err("SELECT * FROM WHERE a = 1", 14, 5, "expected a table name, found 'WHERE'");
  parse_err("SELECT * FROM", 13, 0, "unexpected end of query: expected a table name");
  parse_err("SELECT * FROM 'users' WHERE a = 1", 14, 7, "expected a table name, found 'users'");
  parse_err("SELECT * FROM (SELECT * FROM t WHERE a = 1) WHERE a = 1", 14, 1,
            "'(' is not supported: subqueries, function calls and parentheses are outside the subset");
}

static void test_err_join(void **state) {
  (void)state;
  parse_err("SELECT * FROM a JOIN b ON a.id = b.id WHERE x = 1", 16, 4,
            "'JOIN' is not supported: a condition queries one table");
  parse_err("select * from a left join b", 16, 4,
            "'left' is not supported: a condition queries one table");
  parse_err("SELECT * FROM a, b WHERE x = 1", 15, 1,
            "',' is not supported: a condition queries one table");
}

static void test_err_missing_where(void **state) {
  (void)state;
  parse_err("SELECT * FROM users", 19, 0,
            "a condition needs a WHERE clause: expected WHERE, found end of query");
  parse_err("SELECT * FROM users LIMIT 1", 20, 5,
            "a condition needs a WHERE clause: expected WHERE, found 'LIMIT'");
  parse_err("SELECT * FROM users;", 19, 1,
            "a condition needs a WHERE clause: expected WHERE, found ';'");
}

static void test_err_or(void **state) {
  (void)state;
  parse_err("SELECT * FROM t WHERE a = 1 OR b = 2", 28, 2,
            "'OR' is not supported: conditions combine with AND only");
  parse_err("SELECT * FROM t WHERE a = 1 AND b = 2 or c = 3", 38, 2,
            "'or' is not supported: conditions combine with AND only");
}

static void test_err_operators(void **state) {
  (void)state;
  parse_err("SELECT * FROM t WHERE a < 1", 24, 1, "'<' is not supported: only equality (=) comparisons");
  parse_err("SELECT * FROM t WHERE a > 1", 24, 1, "'>' is not supported: only equality (=) comparisons");
  parse_err("SELECT * FROM t WHERE a != 1", 24, 2, "'!=' is not supported: only equality (=) comparisons");
  parse_err("SELECT * FROM t WHERE a <> 1", 24, 2, "'<>' is not supported: only equality (=) comparisons");
  parse_err("SELECT * FROM t WHERE a >= 1", 24, 2, "'>=' is not supported: only equality (=) comparisons");
  parse_err("SELECT * FROM t WHERE a LIKE 'x%'", 24, 4,
            "'LIKE' is not supported: only equality (=) comparisons");
  parse_err("SELECT * FROM t WHERE a IN (1, 2)", 24, 2,
            "'IN' is not supported: only equality (=) comparisons");
  parse_err("SELECT * FROM t WHERE a is null", 24, 2,
            "'is' is not supported: only equality (=) comparisons");
  parse_err("SELECT * FROM t WHERE NOT a = 1", 22, 3,
            "'NOT' is not supported: only equality (=) comparisons");
  parse_err("SELECT * FROM t WHERE a b", 24, 1, "expected '=', found 'b'");
  parse_err("SELECT * FROM t WHERE a", 23, 0, "unexpected end of query: expected '='");
}

static void test_err_values(void **state) {
  const char *multi = "SELECT * FROM t\nWHERE a = 'x' AND b = 'oops\n";
  (void)state;
  parse_err("SELECT * FROM t WHERE a = $0", 26, 2, "parameter numbers start at $1");
  parse_err("SELECT * FROM t WHERE a = $00", 26, 3, "parameter numbers start at $1");
  parse_err("SELECT * FROM t WHERE a = $", 26, 1, "expected a parameter number after '$'");
  parse_err("SELECT * FROM t WHERE a = $x", 26, 2, "expected a parameter number after '$', found '$x'");
  parse_err("SELECT * FROM t WHERE a = $256", 26, 4,
            "parameter '$256' is out of range: the highest is $255");
  parse_err("SELECT * FROM t WHERE a = $99999999999999999999", 26, 21,
            "parameter '$99999999999999999999' is out of range: the highest is $255");
  parse_err("SELECT * FROM t WHERE a = 'abc", 26, 1, "unterminated string literal");
  parse_err("SELECT * FROM t WHERE a = 'it''s", 26, 1, "unterminated string literal");
  parse_err(multi, at(multi, "'oops", 0), 1, "unterminated string literal");
  parse_err("SELECT * FROM t WHERE a = 1.5", 26, 3, "'1.5' is not supported: numbers are integers");
  parse_err("SELECT * FROM t WHERE a = 12ab", 26, 4, "'12ab' is not a number");
  parse_err("SELECT * FROM t WHERE a = b", 26, 1,
            "expected a value ($n, 'text' or a number), found 'b'");
  parse_err("SELECT * FROM t WHERE a =", 25, 0,
            "unexpected end of query: expected a value ($n, 'text' or a number)");
  parse_err("SELECT * FROM t WHERE a = (SELECT 1)", 26, 1,
            "'(' is not supported: subqueries, function calls and parentheses are outside the subset");
}

static void test_err_duplicate_column(void **state) {
  const char *s = "SELECT * FROM t WHERE user_id = $1 AND kind = 'a' AND user_id = $2";
  (void)state;
  parse_err(s, at(s, "user_id", 1), 7, "column 'user_id' is compared twice");
}

static void test_err_order_group(void **state) {
  (void)state;
  parse_err("SELECT * FROM t WHERE a = 1 ORDER BY b", 28, 5,
            "'ORDER' is not supported: rows come from an index lookup, in no defined order");
  parse_err("SELECT * FROM t ORDER BY b", 16, 5,
            "'ORDER' is not supported: rows come from an index lookup, in no defined order");
  parse_err("SELECT * FROM t WHERE a = 1 GROUP BY b", 28, 5,
            "'GROUP' is not supported: a condition checks for matching rows, it does not aggregate them");
  parse_err("SELECT * FROM t WHERE a = 1 LIMIT 1 OFFSET 2", 36, 6,
            "'OFFSET' is not supported: rows come from an index lookup, in no defined order, so only "
            "LIMIT applies");
  parse_err("SELECT * FROM t WHERE a = 1 UNION SELECT * FROM u WHERE a = 1", 28, 5,
            "'UNION' is not supported: a condition is a single SELECT");
  parse_err("SELECT * FROM t WHERE a IN (SELECT id FROM u)", 24, 2,
            "'IN' is not supported: only equality (=) comparisons");
  parse_err("SELECT * FROM t WHERE (a = 1)", 22, 1,
            "'(' is not supported: subqueries, function calls and parentheses are outside the subset");
}

static void test_err_limit(void **state) {
  (void)state;
  parse_err("SELECT * FROM t WHERE a = 1 LIMIT x", 34, 1, "LIMIT takes a positive integer, found 'x'");
  parse_err("SELECT * FROM t WHERE a = 1 LIMIT 0", 34, 1, "LIMIT takes a positive integer, found '0'");
  parse_err("SELECT * FROM t WHERE a = 1 LIMIT -3", 34, 2, "LIMIT takes a positive integer, found '-3'");
  parse_err("SELECT * FROM t WHERE a = 1 LIMIT 2.5", 34, 3, "LIMIT takes a positive integer, found '2.5'");
  parse_err("SELECT * FROM t WHERE a = 1 LIMIT $1", 34, 2, "LIMIT takes a positive integer, found '$1'");
  parse_err("SELECT * FROM t WHERE a = 1 LIMIT", 33, 0,
            "unexpected end of query: LIMIT takes a positive integer");
  parse_err("SELECT * FROM t WHERE a = 1 LIMIT 99999999999999999999999", 34, 23,
            "LIMIT '99999999999999999999999' is too large: the highest is 1000000000");
}

static void test_err_trailing(void **state) {
  (void)state;
  parse_err("SELECT * FROM t WHERE a = 1 foo", 28, 3, "unexpected 'foo' after the end of the query");
  parse_err("SELECT * FROM t WHERE a = 1; foo", 29, 3, "unexpected 'foo' after the end of the query");
  parse_err("SELECT * FROM t WHERE a = 1 LIMIT 2 ;;", 37, 1, "unexpected ';' after the end of the query");
  parse_err("SELECT * FROM t WHERE a = 1 -- note", 28, 2,
            "'--' is not supported: comments are not allowed inside a query");
  parse_err("SELECT * FROM t WHERE a = 1 \xc3\xa9", 28, 2,
            "unexpected '\xc3\xa9' after the end of the query");
}

static void test_err_long_token_is_shortened(void **state) {
  const char *s = "UPDATEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE";
  (void)state;
  /* 37 characters of the token, then "..." */
  parse_err(s, 0, strlen(s), "expected SELECT, found 'UPDATEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE...'");
}

static void test_err_null_err_pointer(void **state) {
  sk_sql_query *q = NULL;
  (void)state;
  assert_int_equal(sk_sql_parse("SELECT", 6, &q, NULL), -1);
  assert_null(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_design_example),
      cmocka_unit_test(test_columns_limit_semicolon),
      cmocka_unit_test(test_case_insensitive_keywords),
      cmocka_unit_test(test_multiline_offsets),
      cmocka_unit_test(test_string_escapes),
      cmocka_unit_test(test_quoted_keyword_identifiers),
      cmocka_unit_test(test_not_nul_terminated),
      cmocka_unit_test(test_err_empty),
      cmocka_unit_test(test_err_expected_select),
      cmocka_unit_test(test_err_expected_from),
      cmocka_unit_test(test_err_columns),
      cmocka_unit_test(test_err_table),
      cmocka_unit_test(test_err_join),
      cmocka_unit_test(test_err_missing_where),
      cmocka_unit_test(test_err_or),
      cmocka_unit_test(test_err_operators),
      cmocka_unit_test(test_err_values),
      cmocka_unit_test(test_err_duplicate_column),
      cmocka_unit_test(test_err_order_group),
      cmocka_unit_test(test_err_limit),
      cmocka_unit_test(test_err_trailing),
      cmocka_unit_test(test_err_long_token_is_shortened),
      cmocka_unit_test(test_err_null_err_pointer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
