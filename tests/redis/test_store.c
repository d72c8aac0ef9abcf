/* test_store.c: the durable store (runtime/store.h) against a real redis-server.
 *
 * Run through tests/redis/with-redis.sh (SKENE_TEST_REDIS_URL). Each test starts from an empty
 * database with no cached scripts (FLUSHALL, SCRIPT FLUSH), and checks what each operation left in
 * Redis with plain commands, and how many commands it cost on the wire.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "evloop.h"
#include "reply.h"

#include "store.h"
#include "vm.h"

static const char *url;
static sk_redis *conn;
static sk_store *store;

/* ---- running the loop ---- */

/* Runs the loop until *counter >= 1; fails the test after 5 s. */
static void run_until(const int *counter) { RUN_UNTIL(*counter >= 1, 5000); }

/* ---- plain commands, to look at what the store wrote ---- */

typedef sk_test_reply raw;

/* Sends argv (lens NULL: strlen) and waits for the reply. */
static raw cmd(int argc, const char **argv, const size_t *lens) {
  return redis_wait(conn, argc, argv, lens, 5000);
}

static raw cmd2(const char *a, const char *b, size_t blen) {
  const char *argv[2] = {a, b};
  size_t lens[2] = {strlen(a), blen};
  return cmd(2, argv, lens);
}

static raw cmd3(const char *a, const char *b, size_t blen, const char *c, size_t clen) {
  const char *argv[3] = {a, b, c};
  size_t lens[3] = {strlen(a), blen, clen};
  return cmd(3, argv, lens);
}

/* Whether inst waits on the wait key w (store.h sk_store_wait_split: the field of its group's hash
   names it, or is "*" and the set w holds it). */
static int waiting(const char *w, size_t wlen, const char *inst, size_t ilen) {
  size_t h = 0;
  assert_int_equal(sk_store_wait_split(store, w, wlen, &h), 0);
  raw v = cmd3("HGET", w, h, w + h + 1, wlen - h - 1);
  if (v.type == REDIS_REPLY_NIL)
    return 0;
  if (v.len == 1 && v.str[0] == '*')
    return (int)cmd3("SISMEMBER", w, wlen, inst, ilen).integer;
  return v.len == ilen && memcmp(v.str, inst, ilen) == 0;
}

/* Whether nobody waits on w: no field, no set. */
static int wait_gone(const char *w, size_t wlen) {
  size_t h = 0;
  assert_int_equal(sk_store_wait_split(store, w, wlen, &h), 0);
  return cmd3("HEXISTS", w, h, w + h + 1, wlen - h - 1).integer == 0 &&
         cmd2("EXISTS", w, wlen).integer == 0;
}

/* ---- store operations ---- */

typedef struct rec {
  int calls, ok, held;
  sk_redis_status status;
  char errstr[512];
  long long n;
  int has_str;
  char str[512];
  size_t len, count;
  char strs[8][128];
  size_t lens[8];
  long long rows;
} rec;

static void on_store(const sk_store_result *res, void *privdata) {
  rec *out = privdata;
  out->calls++;
  out->ok = res->ok;
  out->status = res->status;
  snprintf(out->errstr, sizeof out->errstr, "%s", res->errstr);
  out->n = res->n;
  out->held = res->held;
  if (res->str != NULL) {
    assert_true(res->len < sizeof out->str);
    out->has_str = 1;
    memcpy(out->str, res->str, res->len);
    out->len = res->len;
  }
  out->count = res->count;
  out->rows = res->rows;
  for (size_t i = 0; i < res->count && i < 8; i++) {
    assert_true(res->lens[i] < sizeof out->strs[0]);
    memcpy(out->strs[i], res->strs[i], res->lens[i]);
    out->lens[i] = res->lens[i];
  }
}

/* Runs one store call (its last two arguments on_store, &R) to its callback; checks it cost
   `cost` commands on the wire and succeeded. */
static rec R;
#define RUN(cost, call)                                                                     \
  do {                                                                                      \
    uint64_t sent_ = sk_redis_commands_sent(conn);                                          \
    memset(&R, 0, sizeof R);                                                                \
    if ((call) != 0)                                                                        \
      fail_msg("refused: %s", sk_store_errstr(store));                                      \
    run_until(&R.calls);                                                                    \
    if (!R.ok)                                                                              \
      fail_msg("failed: %s", R.errstr);                                                     \
    assert_int_equal(sk_redis_commands_sent(conn) - sent_, (cost));                         \
  } while (0)

static int setup(void **state) {
  (void)state;
  base = event_base_new();
  conn = sk_redis_new(base, url, NULL);
  store = sk_store_new(conn, NULL);
  if (base == NULL || conn == NULL || store == NULL)
    return -1;
  const char *flushall[1] = {"FLUSHALL"}, *flush[2] = {"SCRIPT", "FLUSH"};
  cmd(1, flushall, NULL);
  cmd(2, flush, NULL);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  sk_store_free(store);
  sk_redis_free(conn);
  event_base_free(base);
  return 0;
}

static const char *const action_cols[2] = {"action_type", "user_id"};

/* ---- keys (no server needed, but run with the rest) ---- */

static void test_keys(void **state) {
  (void)state;
  size_t len;
  const char *parts[2] = {"activation", "u\0:1"};
  size_t lens[2] = {10, 4};
  char *k = sk_key_format("skene:", SK_KEY_INST, parts, lens, 2, &len);
  assert_non_null(k);
  assert_int_equal(len, 6 + 5 + 10 + 1 + 4);
  assert_memory_equal(k, "skene:inst:activation:u\0:1", len);
  free(k);
  assert_null(sk_key_format("skene:", SK_KEY_INST, parts, lens, 1, &len));
  assert_null(sk_key_format("skene:", SK_KEY_TIMERS, parts, lens, 1, &len));
  k = sk_key_format("p:", SK_KEY_TIMERS, NULL, NULL, 0, &len);
  assert_string_equal(k, "p:timers");
  free(k);
  assert_string_equal(sk_key_pattern(SK_KEY_LEASE), "lease:{loop}:{subject}");

  const char *vals[2] = {"first_project_created", "u1"};
  sk_store_index ix = {"user_actions", action_cols, vals, NULL, 2};
  static const char want[] = "skene:idx:user_actions(action_type,user_id):first_project_created\x1fu1";
  k = sk_store_index_key(store, &ix, SK_KEY_INDEX, &len);
  assert_int_equal(len, sizeof want - 1);
  assert_memory_equal(k, want, len);
  free(k);
  static const char want_wait[] =
      "skene:wait:idx:user_actions(action_type,user_id):first_project_created\x1fu1";
  k = sk_store_index_key(store, &ix, SK_KEY_WAIT, &len);
  assert_int_equal(len, sizeof want_wait - 1);
  assert_memory_equal(k, want_wait, len);
  free(k);
  assert_null(sk_store_index_key(store, &ix, SK_KEY_INST, &len));

  /* a separator inside a value does not make two value lists collide */
  const char *va[2] = {"a\x1f" "b", "c"}, *vb[2] = {"a", "b\x1f" "c"};
  sk_store_index ia = {"t", action_cols, va, NULL, 2}, ib = {"t", action_cols, vb, NULL, 2};
  size_t la, lb;
  char *ka = sk_store_index_key(store, &ia, SK_KEY_INDEX, &la);
  char *kb = sk_store_index_key(store, &ib, SK_KEY_INDEX, &lb);
  assert_false(la == lb && memcmp(ka, kb, la) == 0);
  free(ka);
  free(kb);

  /* instance keys split again */
  k = sk_store_inst_key(store, "activation", "u:\0x", 4, &len);
  const char *loop, *subject;
  size_t loop_len, subject_len;
  assert_int_equal(sk_store_inst_parse(store, k, len, &loop, &loop_len, &subject, &subject_len), 0);
  assert_int_equal(loop_len, 10);
  assert_memory_equal(loop, "activation", 10);
  assert_int_equal(subject_len, 4);
  assert_memory_equal(subject, "u:\0x", 4);
  free(k);
  assert_int_equal(sk_store_inst_parse(store, "skene:lease:a:b", 15, &loop, &loop_len, &subject,
                                       &subject_len),
                   -1);
  assert_int_equal(sk_store_inst_parse(store, "other:inst:a:b", 14, &loop, &loop_len, &subject,
                                       &subject_len),
                   -1);
}

/* ---- instances and timers ---- */

static void test_start_once(void **state) {
  (void)state;
  RUN(1, sk_store_start(store, "activation", "u1", 2, "snap1", 5, on_store, &R));
  assert_int_equal(R.n, 1);
  RUN(1, sk_store_start(store, "activation", "u1", 2, "snap2", 5, on_store, &R));
  assert_int_equal(R.n, 0);
  RUN(1, sk_store_load(store, "activation", "u1", 2, on_store, &R));
  assert_int_equal(R.n, 1);
  assert_int_equal(R.len, 5);
  assert_memory_equal(R.str, "snap1", 5);
  RUN(1, sk_store_load(store, "activation", "u2", 2, on_store, &R));
  assert_int_equal(R.n, 0);
  assert_false(R.has_str);
  raw x = cmd3("SISMEMBER", "skene:started:activation", 24, "u1", 2);
  assert_int_equal(x.integer, 1);
}

static void test_suspend_due_end(void **state) {
  (void)state;
  static const char inst[] = "skene:inst:activation:u1";
  static const char wait[] = "skene:wait:ev:users:1:u1";
  RUN(1, sk_store_start(store, "activation", "u1", 2, "s0", 2, on_store, &R));
  RUN(1, sk_store_suspend(store, "activation", "u1", 2, "s1", 2, 1700000000123LL, NULL, 0,
                          on_store, &R));
  raw x = cmd3("ZSCORE", "skene:timers", 12, inst, sizeof inst - 1);
  assert_string_equal(x.str, "1700000000123");
  x = cmd2("GET", inst, sizeof inst - 1);
  assert_memory_equal(x.str, "s1", 2);

  RUN(1, sk_store_due(store, 1700000000123LL, 10, on_store, &R));
  assert_int_equal(R.count, 1);
  assert_int_equal(R.lens[0], sizeof inst - 1);
  assert_memory_equal(R.strs[0], inst, sizeof inst - 1);
  RUN(1, sk_store_due(store, 1700000000122LL, 10, on_store, &R));
  assert_int_equal(R.count, 0);

  /* no wake time: the timer goes; a wait key: joined */
  RUN(1, sk_store_suspend(store, "activation", "u1", 2, "s2", 2, SK_STORE_NO_WAKE, wait,
                          sizeof wait - 1, on_store, &R));
  x = cmd3("ZSCORE", "skene:timers", 12, inst, sizeof inst - 1);
  assert_int_equal(x.type, REDIS_REPLY_NIL);
  assert_true(waiting(wait, sizeof wait - 1, inst, sizeof inst - 1));
  RUN(1, sk_store_suspend(store, "activation", "u1", 2, "s3", 2, 5, wait, sizeof wait - 1,
                          on_store, &R));

  RUN(1, sk_store_end(store, "activation", "u1", 2, wait, sizeof wait - 1, on_store, &R));
  x = cmd2("EXISTS", inst, sizeof inst - 1);
  assert_int_equal(x.integer, 0);
  x = cmd3("ZSCORE", "skene:timers", 12, inst, sizeof inst - 1);
  assert_int_equal(x.type, REDIS_REPLY_NIL);
  assert_true(wait_gone(wait, sizeof wait - 1));
  x = cmd3("SISMEMBER", "skene:started:activation", 24, "u1", 2);
  assert_int_equal(x.integer, 1);
  /* once ever: started again after its end, nothing happens */
  RUN(1, sk_store_start(store, "activation", "u1", 2, "s9", 2, on_store, &R));
  assert_int_equal(R.n, 0);
  x = cmd2("EXISTS", inst, sizeof inst - 1);
  assert_int_equal(x.integer, 0);

  /* due honours max, earliest first */
  RUN(1, sk_store_suspend(store, "retention", "a", 1, "s", 1, 30, NULL, 0, on_store, &R));
  RUN(1, sk_store_suspend(store, "retention", "b", 1, "s", 1, 10, NULL, 0, on_store, &R));
  RUN(1, sk_store_suspend(store, "retention", "c", 1, "s", 1, 20, NULL, 0, on_store, &R));
  RUN(1, sk_store_due(store, 100, 2, on_store, &R));
  assert_int_equal(R.count, 2);
  assert_memory_equal(R.strs[0], "skene:inst:retention:b", R.lens[0]);
  assert_memory_equal(R.strs[1], "skene:inst:retention:c", R.lens[1]);
}

/* ---- conditions on indexes ---- */

static void test_check_or_wait(void **state) {
  (void)state;
  static const char inst[] = "skene:inst:activation:u1";
  const char *vals[2] = {"first_project_created", "u1"};
  sk_store_index ix = {"user_actions", action_cols, vals, NULL, 2};
  size_t wlen, ilen;
  char *wait = sk_store_index_key(store, &ix, SK_KEY_WAIT, &wlen);
  char *idx = sk_store_index_key(store, &ix, SK_KEY_INDEX, &ilen);

  RUN(1, sk_store_check_or_wait(store, &ix, "activation", "u1", 2, 1, 0, NULL, 0,
                                SK_STORE_NO_WAKE, on_store, &R));
  assert_false(R.held);
  assert_int_equal(R.n, 0);
  assert_true(waiting(wait, wlen, inst, sizeof inst - 1));
  raw x;

  RUN(1, sk_store_index_add(store, &ix, "r1", 2, 1, on_store, &R));
  assert_int_equal(R.n, 1);
  assert_int_equal(R.count, 1);
  assert_int_equal(R.lens[0], sizeof inst - 1);
  assert_memory_equal(R.strs[0], inst, sizeof inst - 1);
  /* still registered: a crash before the wake-up loses nothing */
  assert_true(waiting(wait, wlen, inst, sizeof inst - 1));
  /* the same row delivered again (after a crash) wakes it again */
  RUN(1, sk_store_index_add(store, &ix, "r1", 2, 1, on_store, &R));
  assert_int_equal(R.n, 0);
  assert_int_equal(R.count, 1);

  RUN(1, sk_store_check_or_wait(store, &ix, "activation", "u1", 2, 1, 0, NULL, 0,
                                SK_STORE_NO_WAKE, on_store, &R));
  assert_true(R.held);
  assert_int_equal(R.n, 1);
  assert_int_equal(R.len, 2);
  assert_memory_equal(R.str, "r1", 2);
  assert_true(wait_gone(wait, wlen));

  /* a row delivered twice is added once and wakes nobody */
  RUN(1, sk_store_index_add(store, &ix, "r1", 2, 1, on_store, &R));
  assert_int_equal(R.n, 0);
  assert_int_equal(R.count, 0);

  /* minRows 2: waits, a second row wakes it, then holds with the first row first */
  RUN(1, sk_store_check_or_wait(store, &ix, "activation", "u1", 2, 2, 0, NULL, 0,
                                SK_STORE_NO_WAKE, on_store, &R));
  assert_false(R.held);
  assert_int_equal(R.n, 1);
  RUN(1, sk_store_index_add(store, &ix, "r2", 2, 2, on_store, &R));
  assert_int_equal(R.n, 1);
  assert_int_equal(R.count, 1);
  RUN(1, sk_store_check_or_wait(store, &ix, "activation", "u1", 2, 2, 0, NULL, 0,
                                SK_STORE_NO_WAKE, on_store, &R));
  assert_true(R.held);
  assert_int_equal(R.n, 2);
  assert_memory_equal(R.str, "r1", 2);
  x = cmd2("ZCARD", idx, ilen);
  assert_int_equal(x.integer, 2);

  /* LIMIT caps the count */
  RUN(1, sk_store_index_add(store, &ix, "r3", 2, 3, on_store, &R));
  RUN(1, sk_store_check_or_wait(store, &ix, "activation", "u1", 2, 1, 2, NULL, 0,
                                SK_STORE_NO_WAKE, on_store, &R));
  assert_true(R.held);
  assert_int_equal(R.n, 2);
  RUN(1, sk_store_check_or_wait(store, &ix, "activation", "u1", 2, 3, 2, NULL, 0,
                                SK_STORE_NO_WAKE, on_store, &R));
  assert_false(R.held);
  assert_int_equal(R.n, 2);
  free(wait);
  free(idx);
}

/* Waiting with a snapshot records the suspension in the same script; holding writes nothing. */
static void test_check_or_wait_suspends(void **state) {
  (void)state;
  static const char inst[] = "skene:inst:activation:u7";
  const char *vals[2] = {"first_project_created", "u7"};
  sk_store_index ix = {"user_actions", action_cols, vals, NULL, 2};
  RUN(1, sk_store_start(store, "activation", "u7", 2, "s0", 2, on_store, &R));
  RUN(1, sk_store_check_or_wait(store, &ix, "activation", "u7", 2, 1, 0, "s1", 2, 4242,
                                on_store, &R));
  assert_false(R.held);
  raw x = cmd2("GET", inst, sizeof inst - 1);
  assert_memory_equal(x.str, "s1", 2);
  x = cmd3("ZSCORE", "skene:timers", 12, inst, sizeof inst - 1);
  assert_string_equal(x.str, "4242");
  RUN(1, sk_store_index_add(store, &ix, "r1", 2, 1, on_store, &R));
  assert_int_equal(R.count, 1);
  RUN(1, sk_store_check_or_wait(store, &ix, "activation", "u7", 2, 1, 0, "s2", 2,
                                SK_STORE_NO_WAKE, on_store, &R));
  assert_true(R.held);
  x = cmd2("GET", inst, sizeof inst - 1);
  assert_memory_equal(x.str, "s1", 2);
  x = cmd3("ZSCORE", "skene:timers", 12, inst, sizeof inst - 1);
  assert_string_equal(x.str, "4242");
  /* waiting without a wake time removes the timer */
  RUN(1, sk_store_check_or_wait(store, &ix, "activation", "u7", 2, 5, 0, "s3", 2,
                                SK_STORE_NO_WAKE, on_store, &R));
  assert_false(R.held);
  x = cmd3("ZSCORE", "skene:timers", 12, inst, sizeof inst - 1);
  assert_int_equal(x.type, REDIS_REPLY_NIL);
}

/* ---- scripts: always EVAL, so the wire keeps its order even when Redis forgot them ---- */

static void test_script_flush_keeps_order(void **state) {
  (void)state;
  const char *flush[2] = {"SCRIPT", "FLUSH"};
  RUN(1, sk_store_start(store, "activation", "a", 1, "s", 1, on_store, &R));
  cmd(2, flush, NULL);
  /* a read queued right behind a script sees what the script wrote: one command, in order (an
     EVALSHA would meet NOSCRIPT, and its resend would come after the read) */
  raw x;
  memset(&x, 0, sizeof x);
  memset(&R, 0, sizeof R);
  uint64_t sent = sk_redis_commands_sent(conn);
  assert_int_equal(sk_store_start(store, "activation", "c", 1, "s", 1, on_store, &R), 0);
  const char *look[3] = {"SISMEMBER", "skene:started:activation", "c"};
  assert_int_equal(sk_redis_command(conn, 3, look, NULL, on_test_reply, &x), 0);
  RUN_UNTIL(R.calls == 1 && x.calls == 1, 5000);
  assert_true(R.ok);
  assert_int_equal(R.n, 1);
  assert_int_equal(x.integer, 1);
  assert_int_equal(sk_redis_commands_sent(conn) - sent, 2);
  /* a subject started before the flush is still started once */
  RUN(1, sk_store_start(store, "activation", "a", 1, "s", 1, on_store, &R));
  assert_int_equal(R.n, 0);
  x = cmd2("SCARD", "skene:started:activation", 24);
  assert_int_equal(x.integer, 2);
}

/* ---- leases ---- */

static void test_lease(void **state) {
  (void)state;
  RUN(1, sk_store_lease(store, "activation", "u1", 2, "w1", 10000, on_store, &R));
  assert_int_equal(R.n, 1);
  RUN(1, sk_store_lease(store, "activation", "u1", 2, "w2", 10000, on_store, &R));
  assert_int_equal(R.n, 0);
  RUN(1, sk_store_release(store, "activation", "u1", 2, "w2", on_store, &R));
  assert_int_equal(R.n, 0);
  raw x = cmd2("GET", "skene:lease:activation:u1", 25);
  assert_string_equal(x.str, "w1");
  RUN(1, sk_store_release(store, "activation", "u1", 2, "w1", on_store, &R));
  assert_int_equal(R.n, 1);
  x = cmd2("EXISTS", "skene:lease:activation:u1", 25);
  assert_int_equal(x.integer, 0);
  /* expiry lets another worker take it */
  RUN(1, sk_store_lease(store, "activation", "u1", 2, "w2", 50, on_store, &R));
  assert_int_equal(R.n, 1);
  RUN(1, sk_store_lease(store, "activation", "u1", 2, "w1", 10000, on_store, &R));
  assert_int_equal(R.n, 0);
  run_for(120);
  RUN(1, sk_store_lease(store, "activation", "u1", 2, "w1", 10000, on_store, &R));
  assert_int_equal(R.n, 1);
  RUN(1, sk_store_release(store, "activation", "u1", 2, "w2", on_store, &R));
  assert_int_equal(R.n, 0);
}

/* ---- binary safety ---- */

static void test_binary(void **state) {
  (void)state;
  static const char subject[] = "u\0\x1f:x";
  const size_t slen = sizeof subject - 1;
  static const char inst[] = "skene:inst:activation:u\0\x1f:x";
  const char *vals[2] = {"a\0b", "c\x1f" "d"};
  size_t vlens[2] = {3, 3};
  sk_store_index ix = {"user_actions", action_cols, vals, vlens, 2};

  RUN(1, sk_store_start(store, "activation", subject, slen, "s\0\x1f", 3, on_store, &R));
  assert_int_equal(R.n, 1);
  RUN(1, sk_store_load(store, "activation", subject, slen, on_store, &R));
  assert_int_equal(R.len, 3);
  assert_memory_equal(R.str, "s\0\x1f", 3);
  raw x = cmd2("EXISTS", inst, sizeof inst - 1);
  assert_int_equal(x.integer, 1);
  x = cmd3("SISMEMBER", "skene:started:activation", 24, subject, slen);
  assert_int_equal(x.integer, 1);

  RUN(1, sk_store_check_or_wait(store, &ix, "activation", subject, slen, 1, 0, NULL, 0,
                                SK_STORE_NO_WAKE, on_store, &R));
  assert_false(R.held);
  RUN(1, sk_store_index_add(store, &ix, "r\0\x1f", 3, 1, on_store, &R));
  assert_int_equal(R.count, 1);
  assert_int_equal(R.lens[0], sizeof inst - 1);
  assert_memory_equal(R.strs[0], inst, sizeof inst - 1);
  const char *loop, *subj;
  size_t loop_len, subj_len;
  assert_int_equal(sk_store_inst_parse(store, R.strs[0], R.lens[0], &loop, &loop_len, &subj,
                                       &subj_len),
                   0);
  assert_int_equal(subj_len, slen);
  assert_memory_equal(subj, subject, slen);
  RUN(1, sk_store_check_or_wait(store, &ix, "activation", subject, slen, 1, 0, NULL, 0,
                                SK_STORE_NO_WAKE, on_store, &R));
  assert_true(R.held);
  assert_int_equal(R.len, 3);
  assert_memory_equal(R.str, "r\0\x1f", 3);

  /* the same bytes split differently are another index */
  const char *other[2] = {"a\0b\x1f" "c", "d"};
  size_t olens[2] = {5, 1};
  sk_store_index io = {"user_actions", action_cols, other, olens, 2};
  RUN(1, sk_store_check_or_wait(store, &io, "activation", subject, slen, 1, 0, NULL, 0,
                                SK_STORE_NO_WAKE, on_store, &R));
  assert_false(R.held);
  assert_int_equal(R.n, 0);

  RUN(1, sk_store_lease(store, "activation", subject, slen, "w1", 1000, on_store, &R));
  assert_int_equal(R.n, 1);
  RUN(1, sk_store_release(store, "activation", subject, slen, "w1", on_store, &R));
  assert_int_equal(R.n, 1);
}

/* ---- a real snapshot ---- */

/* A snapshot made by vm/snapshot.c goes in with start and comes back with load, byte for byte, and
   decodes to the same instance. The module is the least one the decoder checks against. */
static void test_snapshot_roundtrip(void **state) {
  (void)state;
  sk_loop_rec loop_rec;
  sk_table_rec table_rec;
  sk_module m;
  memset(&loop_rec, 0, sizeof loop_rec);
  memset(&table_rec, 0, sizeof table_rec);
  memset(&m, 0, sizeof m);
  loop_rec.nregs = 5;
  loop_rec.code_count = 16;
  m.loops = &loop_rec;
  m.nloops = 1;
  m.tables = &table_rec;
  m.ntables = 1;
  m.hash = 0x0123456789abcdefULL;

  sk_inst *in = calloc(1, sizeof *in + 5 * sizeof(sk_val));
  assert_non_null(in);
  in->nregs = 5;
  in->pc = 7;
  in->attempts = 2;
  in->state = SK_INST_AWAITING;
  in->regs[0] = sk_val_str(sk_str_new("u\0" "1", 3));
  in->regs[1] = sk_val_row(0, sk_str_new("u\0" "1", 3));
  in->regs[2] = sk_val_int(-1767225900000LL);
  in->regs[4] = sk_val_str(sk_str_new("a\0b\xff\x1f", 5));
  uint8_t *img;
  size_t len;
  assert_int_equal(sk_snapshot_encode(&m, in, &img, &len), 0);

  RUN(1, sk_store_start(store, "activation", "u\0" "1", 3, img, len, on_store, &R));
  assert_int_equal(R.n, 1);
  RUN(1, sk_store_load(store, "activation", "u\0" "1", 3, on_store, &R));
  assert_int_equal(R.len, len);
  assert_memory_equal(R.str, img, len);
  char err[200];
  sk_inst *back = sk_snapshot_decode(&m, (const uint8_t *)R.str, R.len, err, sizeof err);
  if (back == NULL)
    fail_msg("%s", err);
  assert_int_equal(back->pc, 7);
  assert_int_equal(back->attempts, 2);
  assert_int_equal(back->state, SK_INST_AWAITING);
  assert_true(sk_str_eq(back->regs[0].u.s, in->regs[0].u.s));
  assert_int_equal(back->regs[2].u.i, -1767225900000LL);
  assert_int_equal(back->regs[4].u.s->len, 5);
  assert_memory_equal(back->regs[4].u.s->data, "a\0b\xff\x1f", 5);
  sk_snapshot_free(back);
  sk_snapshot_free(in);
  free(img);
}

/* ---- refusals ---- */

static void test_refused(void **state) {
  (void)state;
  assert_int_equal(sk_store_due(store, 1, 0, on_store, &R), -1);
  assert_non_null(strstr(sk_store_errstr(store), "max"));
  assert_int_equal(sk_store_lease(store, "a", "s", 1, "w", 0, on_store, &R), -1);
  assert_int_equal(sk_store_lease(store, "a", "s", 1, "", 10, on_store, &R), -1);
  assert_int_equal(sk_store_load(store, "a:b", "s", 1, on_store, &R), -1);
  assert_int_equal(sk_store_load(store, "", "s", 1, on_store, &R), -1);
  assert_non_null(strstr(sk_store_errstr(store), "loop"));
  /* an error reply is a failure with Redis's words */
  const char *set[3] = {"SET", "skene:started:activation", "not a set"};
  cmd(3, set, NULL);
  memset(&R, 0, sizeof R);
  assert_int_equal(sk_store_start(store, "activation", "u1", 2, "s", 1, on_store, &R), 0);
  run_until(&R.calls);
  assert_false(R.ok);
  assert_int_equal(R.status, SK_REDIS_OK);
  assert_non_null(strstr(R.errstr, "start: "));
  assert_non_null(strstr(R.errstr, "WRONGTYPE"));
}

/* The store may be freed with operations in flight: they still complete. */
static void test_free_in_flight(void **state) {
  (void)state;
  memset(&R, 0, sizeof R);
  assert_int_equal(sk_store_start(store, "activation", "u1", 2, "s", 1, on_store, &R), 0);
  sk_store_free(store);
  store = NULL;
  run_until(&R.calls);
  assert_true(R.ok);
  assert_int_equal(R.n, 1);
}

/* ---- the worker's operations: the lease goes with the state it guards ---- */

static long long zscore(const char *member) {
  raw x = cmd3("ZSCORE", "skene:timers", 12, member, strlen(member));
  return x.type == REDIS_REPLY_NIL ? -1 : strtoll(x.str, NULL, 10);
}

static void test_begin_claim_park_finish(void **state) {
  (void)state;
  static const char inst[] = "skene:inst:activation:u1", lease[] = "skene:lease:activation:u1";
  RUN(1, sk_store_begin(store, "activation", "u1", 2, "s0", 2, 1000, "w1", 60000, on_store, &R));
  assert_int_equal(R.n, 1);
  assert_int_equal(zscore(inst), 1000); /* the recovery timer: the lease's end */
  assert_string_equal(cmd2("GET", lease, sizeof lease - 1).str, "w1");
  RUN(1, sk_store_begin(store, "activation", "u1", 2, "s9", 2, 5, "w2", 60000, on_store, &R));
  assert_int_equal(R.n, 0); /* once ever: nothing written */
  assert_string_equal(cmd2("GET", inst, sizeof inst - 1).str, "s0");
  assert_int_equal(zscore(inst), 1000);

  /* leased: nobody else, not even w1 again, claims it */
  RUN(1, sk_store_claim(store, "activation", "u1", 2, "w2", 60000, 2000, on_store, &R));
  assert_int_equal(R.n, 0);
  assert_int_equal(zscore(inst), 1000);

  /* park as another worker: the lease stays w1's */
  static const char wait[] = "skene:wait:idx:t(c):v", old[] = "skene:wait:ev:users:insert:u1";
  cmd3("SADD", old, sizeof old - 1, inst, sizeof inst - 1);
  const char *leave[1] = {old};
  size_t leave_lens[1] = {sizeof old - 1};
  RUN(1, sk_store_park(store, "activation", "u1", 2, "s1", 2, 3000, wait, sizeof wait - 1, leave,
                       leave_lens, 1, "w2", on_store, &R));
  assert_string_equal(cmd2("GET", lease, sizeof lease - 1).str, "w1");
  assert_true(waiting(wait, sizeof wait - 1, inst, sizeof inst - 1));
  assert_false(waiting(old, sizeof old - 1, inst, sizeof inst - 1));
  assert_int_equal(zscore(inst), 3000);
  /* park as w1: the lease goes; no timer */
  RUN(1, sk_store_park(store, "activation", "u1", 2, "s2", 2, SK_STORE_NO_WAKE, NULL, 0, NULL, NULL,
                       0, "w1", on_store, &R));
  assert_int_equal(cmd2("EXISTS", lease, sizeof lease - 1).integer, 0);
  assert_int_equal(zscore(inst), -1);
  assert_string_equal(cmd2("GET", inst, sizeof inst - 1).str, "s2");

  /* claim: lease, snapshot, timer at the lease's end */
  RUN(1, sk_store_claim(store, "activation", "u1", 2, "w2", 60000, 4000, on_store, &R));
  assert_int_equal(R.n, 1);
  assert_true(R.has_str);
  assert_int_equal(R.len, 2);
  assert_memory_equal(R.str, "s2", 2);
  assert_int_equal(zscore(inst), 4000);
  assert_string_equal(cmd2("GET", lease, sizeof lease - 1).str, "w2");

  /* finish: everything goes, the wait sets named too; started keeps it */
  const char *leave2[1] = {wait};
  size_t leave2_lens[1] = {sizeof wait - 1};
  RUN(1, sk_store_finish(store, "activation", "u1", 2, leave2, leave2_lens, 1, "w2", on_store, &R));
  assert_int_equal(cmd2("EXISTS", inst, sizeof inst - 1).integer, 0);
  assert_int_equal(cmd2("EXISTS", lease, sizeof lease - 1).integer, 0);
  assert_true(wait_gone(wait, sizeof wait - 1));
  assert_int_equal(zscore(inst), -1);
  assert_int_equal(cmd3("SISMEMBER", "skene:started:activation", 24, "u1", 2).integer, 1);

  /* a claim after the end: no instance, its stray timer goes */
  cmd(4, (const char *[]){"ZADD", "skene:timers", "10", inst}, NULL);
  RUN(1, sk_store_claim(store, "activation", "u1", 2, "w3", 60000, 5000, on_store, &R));
  assert_int_equal(R.n, 2);
  assert_int_equal(zscore(inst), -1);
  assert_int_equal(cmd2("EXISTS", lease, sizeof lease - 1).integer, 0);
}

static void test_due_next_peek(void **state) {
  (void)state;
  RUN(1, sk_store_due_next(store, 100, 10, on_store, &R)); /* a plain command */
  assert_int_equal(R.count, 0);
  assert_int_equal(R.n, -1); /* no timer at all */
  cmd(6, (const char *[]){"ZADD", "skene:timers", "50", "a", "150", "b"}, NULL);
  cmd(4, (const char *[]){"ZADD", "skene:timers", "100", "c"}, NULL);
  RUN(1, sk_store_due_next(store, 100, 10, on_store, &R));
  assert_int_equal(R.count, 2);
  assert_string_equal(R.strs[0], "a");
  assert_string_equal(R.strs[1], "c");
  assert_int_equal(R.n, 150); /* the next one after now */
  RUN(1, sk_store_due_next(store, 100, 1, on_store, &R));
  assert_int_equal(R.count, 1);

  const char *vals[2] = {"first_project_created", "u1"};
  sk_store_index ix = {"user_actions", action_cols, vals, NULL, 2};
  RUN(1, sk_store_peek(store, &ix, 1, 0, on_store, &R));
  assert_false(R.held);
  assert_int_equal(R.n, 0);
  RUN(1, sk_store_index_add(store, &ix, "a7", 2, 7, on_store, &R));
  RUN(1, sk_store_index_add(store, &ix, "a3", 2, 3, on_store, &R));
  RUN(1, sk_store_peek(store, &ix, 2, 0, on_store, &R));
  assert_true(R.held);
  assert_int_equal(R.n, 2);
  assert_string_equal(R.str, "a3"); /* the first by insertion order */
  RUN(1, sk_store_peek(store, &ix, 2, 1, on_store, &R)); /* capped by the limit */
  assert_false(R.held);
  assert_int_equal(R.n, 1);
  /* peek writes nothing: no waiter */
  assert_true(wait_gone("skene:wait:idx:user_actions(action_type,user_id):first_project_created\x1fu1", 74));
}

static void test_begin_check_claim_check(void **state) {
  (void)state;
  static const char inst[] = "skene:inst:activation:u1", lease[] = "skene:lease:activation:u1";
  const char *vals[2] = {"first_project_created", "u1"};
  sk_store_index ix = {"user_actions", action_cols, vals, NULL, 2};
  size_t wlen = 0, ilen = 0;
  char *wait = sk_store_index_key(store, &ix, SK_KEY_WAIT, &wlen);
  char *idx = sk_store_index_key(store, &ix, SK_KEY_INDEX, &ilen);

  /* not held: started, waiting (wait set, timer at the deadline), no lease */
  RUN(1, sk_store_begin_check(store, &ix, "activation", "u1", 2, "s0", 2, 1, 0, "w1", 60000, 900,
                              5000, on_store, &R));
  assert_int_equal(R.n, 1);
  assert_false(R.held);
  assert_int_equal(R.rows, 0);
  assert_true(waiting(wait, wlen, inst, sizeof inst - 1));
  assert_int_equal(zscore(inst), 5000);
  assert_int_equal(cmd2("EXISTS", lease, sizeof lease - 1).integer, 0);
  /* started before: nothing */
  RUN(1, sk_store_begin_check(store, &ix, "activation", "u1", 2, "s9", 2, 1, 0, "w1", 60000, 900,
                              5000, on_store, &R));
  assert_int_equal(R.n, 0);
  assert_string_equal(cmd2("GET", inst, sizeof inst - 1).str, "s0");

  /* the row arrives: index_add names the waiter; claim_check takes it and counts the index */
  RUN(1, sk_store_index_add(store, &ix, "a1", 2, 1, on_store, &R));
  assert_int_equal(R.count, 1);
  assert_string_equal(R.strs[0], inst);
  RUN(1, sk_store_claim_check(store, "activation", "u1", 2, "w2", 60000, 7000, idx, ilen, on_store, &R));
  assert_int_equal(R.n, 1);
  assert_memory_equal(R.str, "s0", 2);
  assert_int_equal(R.rows, 1);
  assert_int_equal(R.count, 1);
  assert_string_equal(R.strs[0], "a1");
  assert_int_equal(zscore(inst), 7000);
  assert_string_equal(cmd2("GET", lease, sizeof lease - 1).str, "w2");
  /* it stays a waiter until it moves on (park or finish leave the set) */
  assert_true(waiting(wait, wlen, inst, sizeof inst - 1));

  /* held at once: started, leased, timer at the lease's end, not a waiter */
  RUN(1, sk_store_index_add(store, &(sk_store_index){"user_actions", action_cols,
                                                      (const char *[]){"first_project_created", "u2"}, NULL, 2},
                            "a2", 2, 2, on_store, &R));
  sk_store_index ix2 = {"user_actions", action_cols, (const char *[]){"first_project_created", "u2"}, NULL, 2};
  RUN(1, sk_store_begin_check(store, &ix2, "activation", "u2", 2, "t0", 2, 1, 0, "w1", 60000, 900,
                              5000, on_store, &R));
  assert_int_equal(R.n, 1);
  assert_true(R.held);
  assert_int_equal(R.rows, 1);
  assert_string_equal(R.str, "a2");
  assert_int_equal(zscore("skene:inst:activation:u2"), 900);
  assert_string_equal(cmd2("GET", "skene:lease:activation:u2", 25).str, "w1");
  free(wait);
  free(idx);
}

/* ---- batches ---- */

/* A long reply (INFO) read whole. */
typedef struct big {
  int calls;
  char *text;
} big;

static void on_big(sk_redis *r, const sk_redis_result *res, void *privdata) {
  big *b = privdata;
  (void)r;
  b->calls++;
  if (res->status == SK_REDIS_OK && res->reply->str != NULL)
    b->text = strndup(res->reply->str, res->reply->len);
}

/* Calls of one command since CONFIG RESETSTAT, from INFO commandstats (script-internal ones too). */
static long long calls_of(const char *command) {
  const char *argv[2] = {"INFO", "commandstats"};
  big b = {0, NULL};
  assert_int_equal(sk_redis_command(conn, 2, argv, NULL, on_big, &b), 0);
  run_until(&b.calls);
  char want[64];
  snprintf(want, sizeof want, "cmdstat_%s:calls=", command);
  const char *at = b.text != NULL ? strstr(b.text, want) : NULL;
  long long n = at != NULL ? strtoll(at + strlen(want), NULL, 10) : 0;
  free(b.text);
  return n;
}

typedef struct many {
  int calls, ok, held_or_n[64];
  long long n[64];
  size_t count[64];
  char first[64][32];
} many;

typedef struct slot {
  many *m;
  int i;
} slot;

static void on_many(const sk_store_result *res, void *privdata) {
  slot *sl = privdata;
  many *m = sl->m;
  m->calls++;
  m->ok += res->ok;
  m->n[sl->i] = res->n;
  m->held_or_n[sl->i] = res->held;
  m->count[sl->i] = res->count;
  if (res->count > 0)
    snprintf(m->first[sl->i], sizeof m->first[0], "%.*s", (int)res->lens[0], res->strs[0]);
}

/* 40 instances begun, woken, claimed and finished, each operation queued 40 times before the loop
   runs: each is one script on the wire, its multi-key commands once per batch by INFO
   commandstats, and every entry gets its own answer. */
static void test_batches(void **state) {
  (void)state;
  enum { N = 40 };
  static const char *cols[1] = {"user_id"};
  char subj[N][8], inst[N][40], row[N][8];
  const char *vals[N][1];
  sk_store_index ix[N];
  slot sl[N];
  many m;
  for (int i = 0; i < N; i++) {
    snprintf(subj[i], sizeof subj[i], "u%d", i);
    snprintf(inst[i], sizeof inst[i], "skene:inst:activation:u%d", i);
    snprintf(row[i], sizeof row[i], "r%d", i);
    vals[i][0] = subj[i];
    ix[i] = (sk_store_index){"projects", cols, vals[i], NULL, 1};
    sl[i] = (slot){&m, i};
  }
  /* u0 has a project already: held at once */
  cmd(4, (const char *[]){"ZADD", "skene:idx:projects(user_id):u0", "1", "r0"}, NULL);
  cmd(2, (const char *[]){"CONFIG", "RESETSTAT"}, NULL);

  memset(&m, 0, sizeof m);
  uint64_t sent = sk_redis_commands_sent(conn);
  for (int i = 0; i < N; i++)
    assert_int_equal(sk_store_begin_check(store, &ix[i], "activation", subj[i], strlen(subj[i]), "s", 1, 1, 0,
                                          "w1", 60000, 900, 5000, on_many, &sl[i]),
                     0);
  /* u1 again in the same batch: started once */
  slot again = {&m, N - 1};
  many m2;
  memset(&m2, 0, sizeof m2);
  again.m = &m2;
  assert_int_equal(sk_store_begin_check(store, &ix[1], "activation", "u1", 2, "s", 1, 1, 0, "w1", 60000, 900,
                                        5000, on_many, &again),
                   0);
  RUN_UNTIL(m.calls == N && m2.calls == 1, 5000);
  assert_int_equal(m.ok, N);
  assert_int_equal(m2.n[N - 1], 0); /* started before */
  assert_int_equal(sk_redis_commands_sent(conn) - sent, 1);
  assert_int_equal(calls_of("mset"), 1);
  assert_int_equal(calls_of("sadd"), 1);
  assert_int_equal(calls_of("hset"), 1);
  assert_int_equal(calls_of("zadd"), 1);
  assert_int_equal(m.n[0], 1);
  assert_true(m.held_or_n[0]); /* u0 held: leased, not waiting */
  assert_string_equal(cmd2("GET", "skene:lease:activation:u0", 25).str, "w1");
  for (int i = 1; i < N; i++) {
    assert_int_equal(m.n[i], 1);
    assert_false(m.held_or_n[i]);
    size_t wl = 0;
    char *w = sk_store_index_key(store, &ix[i], SK_KEY_WAIT, &wl);
    assert_true(waiting(w, wl, inst[i], strlen(inst[i])));
    free(w);
    assert_int_equal(zscore(inst[i]), 5000);
  }

  /* their projects: one index_add batch; each entry names its own waiter */
  cmd(2, (const char *[]){"CONFIG", "RESETSTAT"}, NULL);
  memset(&m, 0, sizeof m);
  sent = sk_redis_commands_sent(conn);
  for (int i = 1; i < N; i++)
    assert_int_equal(sk_store_index_add(store, &ix[i], row[i], strlen(row[i]), i, on_many, &sl[i]), 0);
  /* a plain command queued after them goes after them: it sees their rows */
  raw z;
  memset(&z, 0, sizeof z);
  const char *zc[2] = {"ZCARD", "skene:idx:projects(user_id):u5"};
  assert_int_equal(sk_redis_command(conn, 2, zc, NULL, on_test_reply, &z), 0);
  RUN_UNTIL(m.calls == N - 1 && z.calls == 1, 5000);
  assert_int_equal(z.integer, 1);
  assert_int_equal(m.ok, N - 1);
  assert_int_equal(sk_redis_commands_sent(conn) - sent, 2); /* EVAL, ZCARD */
  assert_int_equal(calls_of("hmget"), 1);
  for (int i = 1; i < N; i++) {
    assert_int_equal(m.n[i], 1);
    assert_int_equal(m.count[i], 1);
    assert_string_equal(m.first[i], inst[i]);
  }

  /* claimed in one batch, each counting its own index */
  memset(&m, 0, sizeof m);
  sent = sk_redis_commands_sent(conn);
  for (int i = 1; i < N; i++) {
    size_t il = 0;
    char *k = sk_store_index_key(store, &ix[i], SK_KEY_INDEX, &il);
    assert_int_equal(sk_store_claim_check(store, "activation", subj[i], strlen(subj[i]), "w2", 60000, 7000, k, il,
                                          on_many, &sl[i]),
                     0);
    free(k);
  }
  RUN_UNTIL(m.calls == N - 1, 5000);
  assert_int_equal(m.ok, N - 1);
  assert_int_equal(sk_redis_commands_sent(conn) - sent, 1);
  for (int i = 1; i < N; i++) {
    assert_int_equal(m.n[i], 1);
    assert_string_equal(m.first[i], row[i]);
    assert_int_equal(zscore(inst[i]), 7000);
  }

  /* finished in one batch: no instance, lease, timer or waiter left */
  cmd(2, (const char *[]){"CONFIG", "RESETSTAT"}, NULL);
  memset(&m, 0, sizeof m);
  sent = sk_redis_commands_sent(conn);
  char *waits[N];
  size_t wlens[N];
  for (int i = 1; i < N; i++) {
    waits[i] = sk_store_index_key(store, &ix[i], SK_KEY_WAIT, &wlens[i]);
    const char *lk[1] = {waits[i]};
    assert_int_equal(sk_store_finish(store, "activation", subj[i], strlen(subj[i]), lk, &wlens[i], 1, "w2",
                                     on_many, &sl[i]),
                     0);
  }
  RUN_UNTIL(m.calls == N - 1, 5000);
  assert_int_equal(m.ok, N - 1);
  assert_int_equal(sk_redis_commands_sent(conn) - sent, 1);
  assert_int_equal(calls_of("del"), 1);
  for (int i = 1; i < N; i++) {
    assert_true(wait_gone(waits[i], wlens[i]));
    assert_int_equal(cmd2("EXISTS", inst[i], strlen(inst[i])).integer, 0);
    assert_int_equal(zscore(inst[i]), -1);
    free(waits[i]);
  }
  assert_int_equal(cmd2("EXISTS", "skene:wait:idx:projects(user_id)", 32).integer, 0);
  assert_int_equal(cmd2("EXISTS", "skene:lease:activation:u7", 25).integer, 0);
}

/* Several instances waiting on one key (a condition without the subject): the field says "*" and
   the set holds them; each is woken, one leaving does not take the other out, the last cleans up. */
static void test_crowded_wait(void **state) {
  (void)state;
  static const char *cols[1] = {"plan"};
  const char *vals[1] = {"pro"};
  sk_store_index ix = {"launches", cols, vals, NULL, 1};
  static const char i1[] = "skene:inst:activation:u1", i2[] = "skene:inst:activation:u2";
  size_t wl = 0;
  char *w = sk_store_index_key(store, &ix, SK_KEY_WAIT, &wl);
  RUN(1, sk_store_begin_check(store, &ix, "activation", "u1", 2, "s", 1, 1, 0, "w1", 60000, 900, 5000, on_store,
                              &R));
  RUN(1, sk_store_begin_check(store, &ix, "activation", "u2", 2, "s", 1, 1, 0, "w1", 60000, 900, 5000, on_store,
                              &R));
  assert_true(waiting(w, wl, i1, sizeof i1 - 1));
  assert_true(waiting(w, wl, i2, sizeof i2 - 1));
  RUN(1, sk_store_index_add(store, &ix, "l1", 2, 1, on_store, &R));
  assert_int_equal(R.count, 2);
  const char *lk[1] = {w};
  RUN(1, sk_store_finish(store, "activation", "u1", 2, lk, &wl, 1, "w1", on_store, &R));
  assert_false(waiting(w, wl, i1, sizeof i1 - 1));
  assert_true(waiting(w, wl, i2, sizeof i2 - 1));
  RUN(1, sk_store_finish(store, "activation", "u2", 2, lk, &wl, 1, "w1", on_store, &R));
  assert_true(wait_gone(w, wl));
  free(w);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  url = getenv("SKENE_TEST_REDIS_URL");
  if (url == NULL || url[0] == '\0') {
    fprintf(stderr, "test_store: SKENE_TEST_REDIS_URL is not set: run it through "
                    "tests/redis/with-redis.sh\n");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
      cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
      cmocka_unit_test_setup_teardown(test_crowded_wait, setup, teardown),
      cmocka_unit_test_setup_teardown(test_start_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_suspend_due_end, setup, teardown),
      cmocka_unit_test_setup_teardown(test_check_or_wait, setup, teardown),
      cmocka_unit_test_setup_teardown(test_check_or_wait_suspends, setup, teardown),
      cmocka_unit_test_setup_teardown(test_script_flush_keeps_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lease, setup, teardown),
      cmocka_unit_test_setup_teardown(test_binary, setup, teardown),
      cmocka_unit_test_setup_teardown(test_snapshot_roundtrip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_begin_claim_park_finish, setup, teardown),
      cmocka_unit_test_setup_teardown(test_due_next_peek, setup, teardown),
      cmocka_unit_test_setup_teardown(test_begin_check_claim_check, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
