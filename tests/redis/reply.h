/*
 * reply.h: one Redis reply captured for a test, and a command sent and waited for; shared by
 * test_feed.c, test_store.c and tests/http/test_http.c (include it after evloop.h). test_redis.c,
 * which tests the connection itself, records more (errstr, whole strings) and keeps its own.
 */
#ifndef SK_TESTS_REDIS_REPLY_H
#define SK_TESTS_REDIS_REPLY_H

#include <string.h>

#include "redis.h"

typedef struct sk_test_reply {
  int calls;
  sk_redis_status status;
  int type;
  long long integer;
  size_t elements;
  long long first; /* element[0]->integer of an array reply */
  char str[512];   /* the reply's string, cut at 511 bytes, NUL-terminated; len its length here */
  size_t len;
} sk_test_reply;

static inline void on_test_reply(sk_redis *r, const sk_redis_result *res, void *privdata) {
  sk_test_reply *out = privdata;
  (void)r;
  out->calls++;
  out->status = res->status;
  if (res->status != SK_REDIS_OK)
    return;
  out->type = res->reply->type;
  out->integer = res->reply->integer;
  out->elements = res->reply->elements;
  if (res->reply->type == REDIS_REPLY_ARRAY && res->reply->elements > 0)
    out->first = res->reply->element[0]->integer;
  if (res->reply->str != NULL) {
    out->len = res->reply->len < sizeof out->str ? res->reply->len : sizeof out->str - 1;
    memcpy(out->str, res->reply->str, out->len);
    out->str[out->len] = '\0';
  }
}

/* Sends argv (lens NULL: strlen) on r and runs the loop until its reply; fails after ms. */
static inline sk_test_reply redis_wait(sk_redis *r, int argc, const char **argv, const size_t *lens,
                                       int ms) {
  sk_test_reply out;
  memset(&out, 0, sizeof out);
  assert_int_equal(sk_redis_command(r, argc, argv, lens, on_test_reply, &out), 0);
  RUN_UNTIL(out.calls == 1, ms);
  return out;
}

#endif
