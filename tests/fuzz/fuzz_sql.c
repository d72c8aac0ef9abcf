/*
 * fuzz_sql.c: sk_sql_parse on raw bytes. The only acceptable outcomes are a query that satisfies the
 * header's promises or an error whose span lies inside the text.
 */
#include <string.h>

#include "fuzz.h"
#include "sql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  sk_sql_query *q = (sk_sql_query *)1;
  sk_sql_error err;
  memset(&err, 0, sizeof err);
  if (sk_sql_parse(text, size, &q, &err) != 0) {
    FUZZ_CHECK(q == NULL);
    FUZZ_CHECK(err.off <= size && err.len <= size - err.off);
    FUZZ_CHECK(memchr(err.msg, 0, sizeof err.msg) != NULL);
    return 0;
  }
  FUZZ_CHECK(q && q->table && q->npreds > 0);
  FUZZ_CHECK(q->table_off < size);
  for (size_t i = 0; i < q->npreds; i++) {
    const sk_sql_pred *p = &q->preds[i];
    FUZZ_CHECK(p->column && p->col_off < size);
    FUZZ_CHECK(p->val_off <= size && p->val_len <= size - p->val_off);
    FUZZ_CHECK((p->kind == SK_SQL_PARAM) == (p->text == NULL));
    FUZZ_CHECK(p->kind != SK_SQL_PARAM || (p->param >= 1 && p->param <= q->max_param));
  }
  FUZZ_CHECK(q->max_param <= SK_SQL_MAX_PARAM);
  FUZZ_CHECK(q->star || q->ncolumns > 0);
  sk_sql_query_free(q);
  return 0;
}
