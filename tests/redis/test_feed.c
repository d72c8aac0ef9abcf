/* test_feed.c: the change feeds (runtime/feed.h) against a real redis-server.
 *
 * Run through tests/redis/with-redis.sh, which starts the server and says how to reach it
 * (SKENE_TEST_REDIS_*). Each test starts from an empty database and uses short BLOCK, claim and
 * scan intervals, so the whole file runs in a few seconds.
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

#include "feed.h"

static const char *url;
static sk_redis *R; /* the app's connection, and the feeds' shared one */

/* ---- commands, synchronously ---- */

typedef sk_test_reply result;

/* Sends a command given as separate words (NULL-terminated) and waits for its reply. */
static result cmdv(const char *first, ...) {
  const char *argv[32];
  int argc = 0;
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a != NULL && argc < 32; a = va_arg(ap, const char *))
    argv[argc++] = a;
  va_end(ap);
  result res = redis_wait(R, argc, argv, NULL, 5000);
  assert_int_equal(res.status, SK_REDIS_OK);
  return res;
}
#define CMD(...) cmdv(__VA_ARGS__, (const char *)NULL)

/* What the app does: the row and its feed entry in one MULTI. op may be NULL. */
static void app_write(const char *table, const char *id, const char *op) {
  char key[128], stream[128];
  snprintf(key, sizeof key, "%s:%s", table, id);
  snprintf(stream, sizeof stream, "skene:%s", table);
  CMD("MULTI");
  CMD("HSET", key, "email", "someone@example.com");
  if (op != NULL)
    CMD("XADD", stream, "*", "id", id, "op", op);
  else
    CMD("XADD", stream, "*", "id", id);
  result r = CMD("EXEC");
  assert_int_equal(r.type, REDIS_REPLY_ARRAY);
}

/* Pending entries of the group on skene:<table> (XPENDING summary). */
static long long pending(const char *table) {
  char stream[128];
  snprintf(stream, sizeof stream, "skene:%s", table);
  result r = CMD("XPENDING", stream, SK_FEED_GROUP);
  assert_int_equal(r.type, REDIS_REPLY_ARRAY);
  return r.first;
}

/* ---- recording what a feed reports ---- */

enum { MAX_EVENTS = 2048 };

typedef struct recorder {
  int n, errors;
  char table[MAX_EVENTS][16];
  char row[MAX_EVENTS][32];
  char entry[MAX_EVENTS][48]; /* "" for NULL */
  sk_feed_op op[MAX_EVENTS];
  char err_entry[8][48];
  char err_msg[8][256];
  int ack; /* acknowledge each event from inside the callback */
} recorder;

static recorder rec;

static void on_event(sk_feed *feed, const char *table, sk_feed_op op, const char *row_id,
                     const char *entry_id, void *privdata) {
  recorder *r = privdata;
  assert_true(r->n < MAX_EVENTS);
  snprintf(r->table[r->n], sizeof r->table[0], "%s", table);
  snprintf(r->row[r->n], sizeof r->row[0], "%s", row_id);
  snprintf(r->entry[r->n], sizeof r->entry[0], "%s", entry_id != NULL ? entry_id : "");
  r->op[r->n] = op;
  r->n++;
  if (r->ack) {
    if (entry_id != NULL)
      assert_int_equal(sk_feed_ack(feed, entry_id), 0);
    else
      assert_int_equal(sk_feed_ack_row(feed, row_id), 0);
  }
}

static void on_error(sk_feed *feed, const char *entry_id, const char *message, void *privdata) {
  recorder *r = privdata;
  (void)feed;
  if (r->errors < 8) {
    snprintf(r->err_entry[r->errors], sizeof r->err_entry[0], "%s", entry_id ? entry_id : "");
    snprintf(r->err_msg[r->errors], sizeof r->err_msg[0], "%s", message);
  }
  r->errors++;
}

static sk_feed_options stream_options(const char *consumer) {
  sk_feed_options o;
  sk_feed_options_init(&o);
  o.kind = SK_FEED_STREAM;
  o.table = "users";
  o.consumer = consumer;
  o.block_ms = 200;
  o.retry_ms = 100;
  o.on_event = on_event;
  o.on_error = on_error;
  o.privdata = &rec;
  return o;
}

static sk_feed_options scan_options(const char *table, const char *key) {
  sk_feed_options o;
  sk_feed_options_init(&o);
  o.kind = SK_FEED_SCAN;
  o.table = table;
  o.key = key;
  o.scan_interval_ms = 50;
  o.scan_count = 10; /* several SCAN calls per pass */
  o.retry_ms = 100;
  o.on_event = on_event;
  o.on_error = on_error;
  o.privdata = &rec;
  return o;
}

static sk_feed *feed_ok(const sk_feed_options *o) {
  char err[256] = "";
  sk_feed *f = sk_feed_new(base, R, url, NULL, o, err, sizeof err);
  if (f == NULL)
    fail_msg("sk_feed_new: %s", err);
  return f;
}

static int setup(void **state) {
  (void)state;
  base = event_base_new();
  if (base == NULL)
    return -1;
  R = sk_redis_new(base, url, NULL);
  if (R == NULL)
    return -1;
  memset(&rec, 0, sizeof rec);
  CMD("FLUSHALL");
  CMD("CONFIG", "SET", "notify-keyspace-events", "");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  sk_redis_free(R);
  R = NULL;
  event_base_free(base);
  base = NULL;
  return 0;
}

/* ---- options ---- */

static void test_bad_options(void **state) {
  (void)state;
  char err[256];
  sk_feed_options o = scan_options("users", "users:{id}:{id}");
  assert_null(sk_feed_new(base, R, url, NULL, &o, err, sizeof err));
  assert_string_equal(err, "table users: key pattern 'users:{id}:{id}' must contain {id} exactly "
                           "once (e.g. 'users:{id}')");
  o.key = "users:all";
  assert_null(sk_feed_new(base, R, url, NULL, &o, err, sizeof err));
  o = stream_options(NULL);
  assert_null(sk_feed_new(base, R, url, NULL, &o, err, sizeof err));
  assert_string_equal(err, "table users: a stream feed needs a consumer name and a Redis URL");
  o = scan_options("users", NULL);
  o.kind = SK_FEED_KEYSPACE;
  assert_null(sk_feed_new(base, R, NULL, NULL, &o, err, sizeof err));
  assert_string_equal(err, "table users: a keyspace feed needs a Redis URL");
  assert_null(sk_feed_new(base, R, "redis://h:x", NULL, &o, err, sizeof err));
  assert_string_equal(err,
                      "table users: bad REDIS_URL: bad port (expected a number from 1 to 65535)");
  o = scan_options("users", NULL);
  o.row_type = "zset";
  assert_null(sk_feed_new(base, R, url, NULL, &o, err, sizeof err));
  sk_feed_free(NULL);
}

/* ---- stream ---- */

static void test_stream_in_order(void **state) {
  (void)state;
  app_write("users", "u1", NULL);
  app_write("users", "u2", "update");
  app_write("users", "u3", "insert");
  sk_feed_options o = stream_options("w1");
  sk_feed *f = feed_ok(&o);
  RUN_UNTIL(rec.n == 3, 5000);
  const char *rows[] = {"u1", "u2", "u3"};
  const sk_feed_op ops[] = {SK_FEED_INSERT, SK_FEED_UPDATE, SK_FEED_INSERT};
  for (int i = 0; i < 3; i++) {
    assert_string_equal(rec.table[i], "users");
    assert_string_equal(rec.row[i], rows[i]);
    assert_int_equal(rec.op[i], ops[i]);
    assert_non_null(strchr(rec.entry[i], '-'));
  }
  assert_int_equal(sk_feed_outstanding(f), 3);
  assert_int_equal(pending("users"), 3);
  /* Written while the feed is blocked in its read. */
  app_write("users", "u4", NULL);
  RUN_UNTIL(rec.n == 4, 3000);
  assert_string_equal(rec.row[3], "u4");
  for (int i = 0; i < 4; i++)
    assert_int_equal(sk_feed_ack(f, rec.entry[i]), 0);
  assert_int_equal(sk_feed_ack(f, "not-an-id"), -1);
  assert_int_equal(sk_feed_ack_row(f, "u1"), -1);
  RUN_UNTIL(sk_feed_outstanding(f) == 0, 3000);
  assert_int_equal(pending("users"), 0);
  assert_int_equal(rec.errors, 0);
  sk_feed_free(f);
}

/* An entry read and not acknowledged comes again, first, to a new feed of the same consumer. */
static void test_stream_redelivered_after_restart(void **state) {
  (void)state;
  app_write("users", "u1", NULL);
  sk_feed_options o = stream_options("w1");
  sk_feed *f = feed_ok(&o);
  RUN_UNTIL(rec.n == 1, 5000);
  char first[48];
  snprintf(first, sizeof first, "%s", rec.entry[0]);
  sk_feed_free(f);

  app_write("users", "u2", NULL);
  memset(&rec, 0, sizeof rec);
  f = feed_ok(&o);
  RUN_UNTIL(rec.n == 2, 5000);
  assert_string_equal(rec.row[0], "u1");
  assert_string_equal(rec.entry[0], first);
  assert_string_equal(rec.row[1], "u2");
  run_for(300);
  assert_int_equal(rec.n, 2);
  sk_feed_free(f);
}

/* A consumer that died with an entry: another one claims it once it is idle past min-idle. */
static void test_stream_claim_from_dead_consumer(void **state) {
  (void)state;
  app_write("users", "u1", NULL);
  sk_feed_options o = stream_options("dead");
  sk_feed *dead = feed_ok(&o);
  RUN_UNTIL(rec.n == 1, 5000);
  char entry[48];
  snprintf(entry, sizeof entry, "%s", rec.entry[0]);
  sk_feed_free(dead);

  memset(&rec, 0, sizeof rec);
  o = stream_options("alive");
  o.claim_min_idle_ms = 400;
  o.claim_interval_ms = 100;
  sk_feed *alive = feed_ok(&o);
  run_for(150);
  assert_int_equal(rec.n, 0); /* not idle long enough yet */
  RUN_UNTIL(rec.n == 1, 3000);
  assert_string_equal(rec.row[0], "u1");
  assert_string_equal(rec.entry[0], entry);
  run_for(300); /* claimed again by its own claims: not reported twice */
  assert_int_equal(rec.n, 1);
  assert_int_equal(sk_feed_ack(alive, entry), 0);
  RUN_UNTIL(sk_feed_outstanding(alive) == 0, 3000);
  assert_int_equal(pending("users"), 0);
  sk_feed_free(alive);
}

/* 1,000 entries, never acknowledged: the feed stops at max_pending and goes on as acks come. */
static void test_stream_pending_bound(void **state) {
  (void)state;
  enum { N = 1000 };
  result res[N];
  memset(res, 0, sizeof res);
  int done = 0;
  for (int i = 0; i < N; i++) {
    char id[16];
    snprintf(id, sizeof id, "u%d", i);
    const char *argv[] = {"XADD", "skene:users", "*", "id", id};
    assert_int_equal(sk_redis_command(R, 5, argv, NULL, on_test_reply, &res[i]), 0);
  }
  RUN_UNTIL((done = res[N - 1].calls) == 1, 5000);
  sk_feed_options o = stream_options("w1");
  sk_feed *f = feed_ok(&o);
  RUN_UNTIL(rec.n == SK_FEED_DEFAULT_MAX_PENDING, 5000);
  run_for(400);
  assert_int_equal(rec.n, SK_FEED_DEFAULT_MAX_PENDING);
  assert_int_equal(pending("users"), SK_FEED_DEFAULT_MAX_PENDING);

  for (int i = 0; i < 150; i++)
    assert_int_equal(sk_feed_ack(f, rec.entry[i]), 0);
  RUN_UNTIL(rec.n == SK_FEED_DEFAULT_MAX_PENDING + 150, 3000);
  run_for(300);
  assert_int_equal(rec.n, SK_FEED_DEFAULT_MAX_PENDING + 150);
  assert_int_equal(pending("users"), SK_FEED_DEFAULT_MAX_PENDING);

  rec.ack = 1;
  for (int i = 150; i < rec.n; i++)
    assert_int_equal(sk_feed_ack(f, rec.entry[i]), 0);
  RUN_UNTIL(rec.n == N && sk_feed_outstanding(f) == 0, 5000);
  assert_int_equal(pending("users"), 0);
  for (int i = 0; i < N; i++) {
    char id[16];
    snprintf(id, sizeof id, "u%d", i);
    assert_string_equal(rec.row[i], id);
  }
  sk_feed_free(f);
}

/* Entries that are not row events are acknowledged and reported; the feed goes on. */
static void test_stream_malformed(void **state) {
  (void)state;
  result a = CMD("XADD", "skene:users", "*", "name", "no id here");
  result b = CMD("XADD", "skene:users", "*", "id", "u9", "op", "delete");
  app_write("users", "u10", NULL);
  sk_feed_options o = stream_options("w1");
  sk_feed *f = feed_ok(&o);
  RUN_UNTIL(rec.n == 1 && rec.errors == 2, 5000);
  assert_string_equal(rec.row[0], "u10");
  assert_string_equal(rec.err_entry[0], a.str);
  assert_string_equal(rec.err_entry[1], b.str);
  char want[640];
  snprintf(want, sizeof want,
           "stream entry %s of skene:users has no 'id' field: acknowledged and skipped", a.str);
  assert_string_equal(rec.err_msg[0], want);
  snprintf(want, sizeof want,
           "stream entry %s of skene:users has an 'op' that is neither insert nor update: "
           "acknowledged and skipped",
           b.str);
  assert_string_equal(rec.err_msg[1], want);
  RUN_UNTIL(sk_feed_outstanding(f) == 1, 3000);
  assert_int_equal(pending("users"), 1); /* u10 only */
  sk_feed_free(f);
}

/* Its connections killed while it blocks: the feed reads again once reconnected. */
static void test_stream_reconnect(void **state) {
  (void)state;
  sk_feed_options o = stream_options("w1");
  sk_feed *f = feed_ok(&o);
  app_write("users", "u1", NULL);
  RUN_UNTIL(rec.n == 1, 5000);
  CMD("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes");
  app_write("users", "u2", NULL);
  RUN_UNTIL(rec.n == 2, 5000);
  assert_string_equal(rec.row[1], "u2");
  run_for(300);
  assert_int_equal(rec.n, 2); /* u1 re-read from the pending entries, not reported twice */
  sk_feed_free(f);
}

/* Freed from its own callback, with commands in flight: nothing is called back afterwards. */
static sk_feed *self_freeing;

static void free_on_event(sk_feed *feed, const char *table, sk_feed_op op, const char *row_id,
                          const char *entry_id, void *privdata) {
  on_event(feed, table, op, row_id, entry_id, privdata);
  assert_int_equal(sk_feed_ack(feed, entry_id), 0);
  sk_feed_free(feed);
  sk_feed_free(feed);
  assert_int_equal(sk_feed_ack(feed, entry_id), -1);
  self_freeing = NULL;
}

static void test_stream_free_in_callback(void **state) {
  (void)state;
  app_write("users", "u1", NULL);
  app_write("users", "u2", NULL);
  sk_feed_options o = stream_options("w1");
  o.on_event = free_on_event;
  self_freeing = feed_ok(&o);
  RUN_UNTIL(self_freeing == NULL, 5000);
  run_for(200);
  assert_int_equal(rec.n, 1);
  assert_int_equal(pending("users"), 2); /* the ack was dropped with the feed */
}

/* ---- scan ---- */

static void test_scan_first_start(void **state) {
  (void)state;
  for (int i = 0; i < 25; i++) {
    char key[32];
    snprintf(key, sizeof key, "users:old%d", i);
    CMD("HSET", key, "email", "x@example.com");
  }
  CMD("SET", "users:not-a-row", "a string, not a hash");
  CMD("SET", "other:1", "x");
  sk_feed_options o = scan_options("users", NULL);
  sk_feed *f = feed_ok(&o);
  RUN_UNTIL(sk_feed_passes(f) >= 2, 5000);
  assert_int_equal(rec.n, 0);
  assert_int_equal(CMD("SISMEMBER", "skene:seen:users", "").integer, 1);
  assert_int_equal(CMD("SCARD", "skene:seen:users").integer, 26);

  CMD("HSET", "users:new1", "email", "y@example.com");
  RUN_UNTIL(rec.n == 1, 3000);
  assert_string_equal(rec.table[0], "users");
  assert_string_equal(rec.row[0], "new1");
  assert_int_equal(rec.op[0], SK_FEED_INSERT);
  assert_string_equal(rec.entry[0], "");
  unsigned passes = sk_feed_passes(f);
  RUN_UNTIL(sk_feed_passes(f) >= passes + 2, 3000);
  assert_int_equal(rec.n, 1); /* not acknowledged yet, still not reported twice */
  assert_int_equal(sk_feed_ack_row(f, "new1"), 0);
  assert_int_equal(sk_feed_ack(f, "1-0"), -1);
  RUN_UNTIL(sk_feed_outstanding(f) == 0, 3000);
  assert_int_equal(CMD("SISMEMBER", "skene:seen:users", "new1").integer, 1);
  passes = sk_feed_passes(f);
  RUN_UNTIL(sk_feed_passes(f) >= passes + 2, 3000);
  assert_int_equal(rec.n, 1);
  assert_int_equal(rec.errors, 0);
  sk_feed_free(f);
}

/* A table empty at first start: its first rows are inserts, not history. */
static void test_scan_empty_at_first_start(void **state) {
  (void)state;
  sk_feed_options o = scan_options("users", NULL);
  sk_feed *f = feed_ok(&o);
  RUN_UNTIL(sk_feed_passes(f) >= 1, 3000);
  sk_feed_free(f);
  CMD("HSET", "users:a", "email", "a@example.com");
  f = feed_ok(&o);
  RUN_UNTIL(rec.n == 1, 3000);
  assert_string_equal(rec.row[0], "a");
  sk_feed_free(f);
}

/* backfill: existing rows are inserts; those not acknowledged come again after a restart. */
static void test_scan_backfill(void **state) {
  (void)state;
  CMD("HSET", "users:a", "email", "a@example.com");
  CMD("HSET", "users:b", "email", "b@example.com");
  sk_feed_options o = scan_options("users", NULL);
  o.backfill = 1;
  sk_feed *f = feed_ok(&o);
  RUN_UNTIL(rec.n == 2 && sk_feed_passes(f) >= 2, 3000);
  assert_int_equal(rec.n, 2);
  assert_int_equal(sk_feed_ack_row(f, strcmp(rec.row[0], "a") == 0 ? rec.row[0] : rec.row[1]), 0);
  RUN_UNTIL(sk_feed_outstanding(f) == 1, 3000);
  sk_feed_free(f);

  memset(&rec, 0, sizeof rec);
  o.backfill = 0;
  rec.ack = 1;
  f = feed_ok(&o);
  RUN_UNTIL(rec.n == 1 && sk_feed_outstanding(f) == 0, 3000);
  assert_string_equal(rec.row[0], "b");
  unsigned passes = sk_feed_passes(f);
  RUN_UNTIL(sk_feed_passes(f) >= passes + 2, 3000);
  assert_int_equal(rec.n, 1);
  sk_feed_free(f);
}

/* The id between a pattern's prefix and suffix; glob characters of the pattern match literally. */
static void test_scan_pattern(void **state) {
  (void)state;
  CMD("HSET", "user:42:profile", "name", "x");
  CMD("HSET", "user:43:settings", "name", "x");
  CMD("HSET", "user::profile", "name", "x"); /* empty id */
  CMD("HSET", "acct[1]:7", "name", "x");
  CMD("HSET", "acct1:8", "name", "x");
  sk_feed_options o = scan_options("profiles", "user:{id}:profile");
  o.backfill = 1;
  sk_feed *f = feed_ok(&o);
  sk_feed_options o2 = scan_options("accounts", "acct[1]:{id}");
  o2.backfill = 1;
  sk_feed *g = feed_ok(&o2);
  RUN_UNTIL(sk_feed_passes(f) >= 2 && sk_feed_passes(g) >= 2, 3000);
  assert_int_equal(rec.n, 2);
  for (int i = 0; i < 2; i++) {
    if (strcmp(rec.table[i], "profiles") == 0)
      assert_string_equal(rec.row[i], "42");
    else
      assert_string_equal(rec.row[i], "7");
  }
  assert_string_not_equal(rec.table[0], rec.table[1]);
  sk_feed_free(f);
  sk_feed_free(g);
}

/* Rows stored as JSON strings (tables.T.format: 'json'). */
static void test_scan_json_rows(void **state) {
  (void)state;
  sk_feed_options o = scan_options("users", "user:{id}");
  o.row_type = "string";
  sk_feed *f = feed_ok(&o);
  RUN_UNTIL(sk_feed_passes(f) >= 1, 3000);
  CMD("SET", "user:j1", "{\"email\":\"j@example.com\"}");
  CMD("HSET", "user:h1", "email", "x");
  RUN_UNTIL(rec.n == 1, 3000);
  run_for(150);
  assert_int_equal(rec.n, 1);
  assert_string_equal(rec.row[0], "j1");
  sk_feed_free(f);
}

/* ---- keyspace ---- */

typedef struct config_value {
  int calls;
  char value[64];
} config_value;

/* Stores the value of a CONFIG GET reply ([name, value]). */
static void config_value_cb(sk_redis *r, const sk_redis_result *res, void *privdata) {
  config_value *out = privdata;
  (void)r;
  assert_int_equal(res->status, SK_REDIS_OK);
  assert_int_equal(res->reply->type, REDIS_REPLY_ARRAY);
  assert_int_equal(res->reply->elements, 2);
  snprintf(out->value, sizeof out->value, "%s", res->reply->element[1]->str);
  out->calls++;
}

static sk_feed_options keyspace_options(void) {
  sk_feed_options o = scan_options("users", NULL);
  o.kind = SK_FEED_KEYSPACE;
  o.updates = 1;
  o.scan_interval_ms = 60000; /* only the passes at start and after a resubscription */
  return o;
}

static void notify_flags(config_value *got) {
  const char *argv[] = {"CONFIG", "GET", "notify-keyspace-events"};
  memset(got, 0, sizeof *got);
  assert_int_equal(sk_redis_command(R, 3, argv, NULL, config_value_cb, got), 0);
  RUN_UNTIL(got->calls == 1, 3000);
}

static int has_flags(const char *value, const char *flags) {
  for (; *flags; flags++)
    if (strchr(value, *flags) == NULL)
      return 0;
  return 1;
}

/* The flags the feed needs are merged into what the product set. */
static void test_keyspace_flags(void **state) {
  (void)state;
  CMD("CONFIG", "SET", "notify-keyspace-events", "Ex");
  sk_feed_options o = keyspace_options();
  sk_feed *f = feed_ok(&o);
  RUN_UNTIL(sk_feed_passes(f) >= 1, 3000);
  sk_feed_free(f);
  config_value got;
  notify_flags(&got);
  if (!has_flags(got.value, "ExKnh"))
    fail_msg("notify-keyspace-events is '%s'", got.value);
  /* Without updates: no h. */
  CMD("CONFIG", "SET", "notify-keyspace-events", "Kg$");
  o.updates = 0;
  f = feed_ok(&o);
  RUN_UNTIL(sk_feed_passes(f) >= 1, 3000);
  notify_flags(&got);
  if (!has_flags(got.value, "Kg$n") || strchr(got.value, 'h') != NULL)
    fail_msg("notify-keyspace-events is '%s'", got.value);
  sk_feed_free(f);
}

/* A new row: one insert (its "new" and "hset" notifications together); written again once
 * acknowledged: an update. */
static void test_keyspace_insert_update(void **state) {
  (void)state;
  CMD("HSET", "users:old", "email", "old@example.com");
  sk_feed_options o = keyspace_options();
  sk_feed *f = feed_ok(&o);
  RUN_UNTIL(sk_feed_passes(f) >= 1, 3000);
  CMD("HSET", "users:k1", "email", "k@example.com");
  RUN_UNTIL(rec.n == 1, 3000);
  assert_string_equal(rec.row[0], "k1");
  assert_int_equal(rec.op[0], SK_FEED_INSERT);
  assert_string_equal(rec.entry[0], "");
  CMD("HSET", "users:k1", "name", "K"); /* insert not acknowledged yet: not an update */
  CMD("SET", "users:k2", "a string: not a row");
  CMD("HSET", "other:1", "x", "y");
  run_for(150);
  assert_int_equal(rec.n, 1);
  assert_int_equal(sk_feed_ack_row(f, "k1"), 0);
  RUN_UNTIL(sk_feed_outstanding(f) == 0, 3000);
  CMD("HSET", "users:k1", "name", "K2");
  CMD("HSET", "users:old", "name", "O");
  RUN_UNTIL(rec.n == 3, 3000);
  assert_string_equal(rec.row[1], "k1");
  assert_int_equal(rec.op[1], SK_FEED_UPDATE);
  assert_string_equal(rec.row[2], "old");
  assert_int_equal(rec.op[2], SK_FEED_UPDATE);
  run_for(150);
  assert_int_equal(rec.n, 3);
  assert_int_equal(rec.errors, 0);
  sk_feed_free(f);
}

/* A row written while no feed ran is found by the pass at start. */
static void test_keyspace_reconcile_at_start(void **state) {
  (void)state;
  CMD("HSET", "users:old", "email", "old@example.com");
  sk_feed_options o = keyspace_options();
  sk_feed *f = feed_ok(&o);
  RUN_UNTIL(sk_feed_passes(f) >= 1, 3000);
  sk_feed_free(f);
  CMD("HSET", "users:late", "email", "late@example.com");
  f = feed_ok(&o);
  RUN_UNTIL(rec.n == 1 && sk_feed_passes(f) >= 1, 3000);
  assert_string_equal(rec.row[0], "late");
  assert_int_equal(rec.op[0], SK_FEED_INSERT);
  sk_feed_free(f);
}

/* The subscriber dropped: a row written meanwhile is found by the pass after resubscribing. */
static void test_keyspace_resubscribe(void **state) {
  (void)state;
  sk_feed_options o = keyspace_options();
  sk_feed *f = feed_ok(&o);
  RUN_UNTIL(sk_feed_passes(f) >= 1, 3000);
  result r = CMD("CLIENT", "KILL", "TYPE", "pubsub");
  assert_int_equal(r.integer, 1);
  CMD("HSET", "users:meanwhile", "email", "m@example.com");
  RUN_UNTIL(rec.n == 1, 3000);
  assert_string_equal(rec.row[0], "meanwhile");
  assert_true(sk_feed_passes(f) >= 1);
  CMD("HSET", "users:after", "email", "a@example.com");
  RUN_UNTIL(rec.n == 2, 3000);
  assert_string_equal(rec.row[1], "after");
  sk_feed_free(f);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  url = getenv("SKENE_TEST_REDIS_URL");
  if (url == NULL || url[0] == '\0') {
    fprintf(stderr, "test_feed: SKENE_TEST_REDIS_URL is not set: run me through "
                    "tests/redis/with-redis.sh\n");
    return 1;
  }
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_bad_options),
      T(test_stream_in_order),
      T(test_stream_redelivered_after_restart),
      T(test_stream_claim_from_dead_consumer),
      T(test_stream_pending_bound),
      T(test_stream_malformed),
      T(test_stream_reconnect),
      T(test_stream_free_in_callback),
      T(test_scan_first_start),
      T(test_scan_empty_at_first_start),
      T(test_scan_backfill),
      T(test_scan_pattern),
      T(test_scan_json_rows),
      T(test_keyspace_flags),
      T(test_keyspace_insert_update),
      T(test_keyspace_reconcile_at_start),
      T(test_keyspace_resubscribe),
  };
#undef T
  return cmocka_run_group_tests_name("feed", tests, NULL, NULL);
}
