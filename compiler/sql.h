/* sql.h - the SQL subset of a loop's `condition.query`.
 *
 * A condition is an index lookup on one table, so the accepted language is
 *   SELECT ( * | col [, col]* ) FROM table WHERE col = value [AND col = value]* [LIMIT n] [;]
 * with value := $n | 'text' | integer. Keywords are case-insensitive; identifiers are
 * [A-Za-z_][A-Za-z0-9_]* or "double quoted". Everything else is refused with an error that
 * points at the offending token and says why. Pure: no I/O, no globals.
 */
#ifndef SK_SQL_H
#define SK_SQL_H

#include <stddef.h>

/* Highest accepted parameter number ($1 .. $SK_SQL_MAX_PARAM). */
#define SK_SQL_MAX_PARAM 255

typedef enum { SK_SQL_PARAM, SK_SQL_STRING, SK_SQL_NUMBER } sk_sql_vkind;

/* One `col = value` condition of the WHERE clause. */
typedef struct {
  char *column;                     /* owned */
  sk_sql_vkind kind;
  int param;                        /* $n for SK_SQL_PARAM, else 0 */
  char *text;                       /* decoded string, or the number's digits; NULL for a param */
  size_t col_off, val_off, val_len; /* byte offsets into the query text */
} sk_sql_pred;

typedef struct {
  char *table;                     /* owned */
  size_t table_off;
  int star;                        /* SELECT * */
  char **columns;                  /* when !star; array and strings owned */
  size_t ncolumns;
  sk_sql_pred *preds;              /* at least one; owned */
  size_t npreds;
  long limit;                      /* -1 when absent */
  int max_param;                   /* highest $n used, 0 if none */
} sk_sql_query;

/* Where (byte span in the query text) and why a query was refused. */
typedef struct {
  size_t off, len;
  char msg[200];
} sk_sql_error;

/* Parses text[0..len) (need not be NUL-terminated). On success returns 0 and sets *out to a new
 * query that the caller frees with sk_sql_query_free. On error returns -1, sets *out to NULL and,
 * when err is not NULL, fills it with the offending token's offset and length (offset = len and
 * length 0 at the end of the text) and a lowercase message naming the token and what was expected.
 * Columns in WHERE are compared byte for byte: each may appear only once. Cost: O(len). */
int sk_sql_parse(const char *text, size_t len, sk_sql_query **out, sk_sql_error *err);

/* Frees q and everything it owns. q may be NULL. */
void sk_sql_query_free(sk_sql_query *q);

#endif
