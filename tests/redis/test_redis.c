/* test_redis.c: the Redis connection (runtime/redis.h) against a real redis-server.
 *
 * Run through tests/redis/with-redis.sh, which starts the server and says how to reach it
 * (SKENE_TEST_REDIS_*); plain, --tls and --acl runs each get the tests that apply to them. The last
 * test kills the server mid-pipeline and starts it again on the same port.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "evloop.h"

#include "redis.h"

/* What with-redis.sh exported. */
static struct {
  const char *url, *ca, *user, *password, *conf, *pidfile;
  int port, tls, acl;
} E;


static int setup(void **state) {
  (void)state;
  base = event_base_new();
  return base != NULL ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  event_base_free(base);
  base = NULL;
  return 0;
}

static sk_redis_options test_options(void) {
  sk_redis_options o;
  sk_redis_options_init(&o);
  o.ca_file = E.ca;
  return o;
}

/* "redis://" or "rediss://" and the credentials of the test server, as the harness made them. */
static void url_with(char *out, size_t n, const char *userinfo, const char *host,
                     const char *tail) {
  snprintf(out, n, "%s://%s%s:%d%s", E.tls ? "rediss" : "redis", userinfo, host, E.port, tail);
}

/* ---- running the loop ---- */

/* Runs the loop until *counter >= target; fails the test after timeout_ms. */
static void run_until(const int *counter, int target, int timeout_ms) {
  RUN_UNTIL(*counter >= target, timeout_ms);
}

/* ---- recording results ---- */

typedef struct result {
  int calls;
  sk_redis_status status;
  int type;
  char *str;
  size_t len;
  long long integer;
  size_t elements;
  char errstr[1024];
} result;

static void result_clear(result *res) {
  free(res->str);
  memset(res, 0, sizeof *res);
}

static void store_cb(sk_redis *r, const sk_redis_result *res, void *privdata) {
  result *out = privdata;
  (void)r;
  out->calls++;
  out->status = res->status;
  snprintf(out->errstr, sizeof out->errstr, "%s", res->errstr);
  if (res->status != SK_REDIS_OK)
    return;
  assert_non_null(res->reply);
  out->type = res->reply->type;
  out->integer = res->reply->integer;
  out->elements = res->reply->elements;
  if (res->reply->str != NULL) {
    free(out->str);
    out->str = malloc(res->reply->len + 1);
    assert_non_null(out->str);
    memcpy(out->str, res->reply->str, res->reply->len);
    out->str[res->reply->len] = '\0';
    out->len = res->reply->len;
  }
}

/* Sends one command and waits for its callback. */
static void cmd(sk_redis *r, result *res, int argc, const char **argv, const size_t *lens) {
  result_clear(res);
  assert_int_equal(sk_redis_command(r, argc, argv, lens, store_cb, res), 0);
  run_until(&res->calls, 1, 10000);
  assert_int_equal(res->calls, 1);
}

static sk_redis *connect_ok(const char *url, const sk_redis_options *o) {
  sk_redis *r = sk_redis_new(base, url, o);
  assert_non_null(r);
  assert_false(sk_redis_has_failed(r));
  return r;
}

/* A loopback port nothing listens on (bound, then released). */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

/* ---- URL parsing (no server) ---- */

static void test_url_good(void **state) {
  (void)state;
  static const struct {
    const char *text;
    int tls;
    const char *host;
    int port, db;
    const char *user, *password;
  } cases[] = {
      {"redis://localhost", 0, "localhost", 6379, -1, NULL, NULL},
      {"redis://127.0.0.1:6380", 0, "127.0.0.1", 6380, -1, NULL, NULL},
      {"rediss://default:AbC123@eu1-x.upstash.io:6379", 1, "eu1-x.upstash.io", 6379, -1, "default",
       "AbC123"},
      {"redis://:secret@h/3", 0, "h", 6379, 3, NULL, "secret"},
      {"redis://u:p%40ss%3Aw%2Frd%25@h:1/0", 0, "h", 1, 0, "u", "p@ss:w/rd%"},
      {"redis://u:raw@pass:w/rd@h:2", 0, "h", 2, -1, "u", "raw@pass:w/rd"},
      {"redis://us%65r:p@h", 0, "h", 6379, -1, "user", "p"},
      {"redis://[::1]:7000/5", 0, "::1", 7000, 5, NULL, NULL},
      {"rediss://[2001:db8::1]", 1, "2001:db8::1", 6379, -1, NULL, NULL},
      {"redis://h/", 0, "h", 6379, -1, NULL, NULL},
      {"redis://h:65535", 0, "h", 65535, -1, NULL, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char err[256];
    sk_redis_url *u = sk_redis_url_parse(cases[i].text, NULL, err, sizeof err);
    if (u == NULL)
      fail_msg("%s: %s", cases[i].text, err);
    assert_int_equal(u->tls, cases[i].tls);
    assert_string_equal(u->host, cases[i].host);
    assert_int_equal(u->port, cases[i].port);
    assert_int_equal(u->db, cases[i].db);
    if (cases[i].user == NULL)
      assert_null(u->user);
    else
      assert_string_equal(u->user, cases[i].user);
    if (cases[i].password == NULL) {
      assert_null(u->password);
    } else {
      assert_string_equal(u->password, cases[i].password);
      assert_int_equal(u->password_len, strlen(cases[i].password));
    }
    sk_redis_url_free(u);
  }
  /* A percent-encoded NUL stays in the password (binary-safe AUTH). */
  sk_redis_url *u = sk_redis_url_parse("redis://u:a%00b@h", NULL, NULL, 0);
  assert_non_null(u);
  assert_int_equal(u->password_len, 3);
  assert_memory_equal(u->password, "a\0b", 3);
  sk_redis_url_free(u);
  sk_redis_url_free(NULL);
}

static void test_url_bad(void **state) {
  (void)state;
  /* Every password here is "hunter2": no message may contain it. */
  static const struct {
    const char *text, *err;
  } cases[] = {
      {"",
       "bad REDIS_URL: empty (expected redis://[user:password@]host[:port][/db] or rediss://...)"},
      {"localhost:6379", "bad REDIS_URL: missing redis:// or rediss:// (expected "
                         "redis://[user:password@]host[:port][/db] or rediss://...)"},
      {"http://u:hunter2@h", "bad REDIS_URL: scheme 'http' is not redis:// or rediss:// (expected "
                             "redis://[user:password@]host[:port][/db] or rediss://...)"},
      {"redis:/u:hunter2@h", "bad REDIS_URL: missing redis:// or rediss:// (expected "
                             "redis://[user:password@]host[:port][/db] or rediss://...)"},
      {"redis://hunter2@h", "bad REDIS_URL: credentials without ':' (expected user:password@ or "
                            ":password@)"},
      {"redis://u:hunter2%4@h", "bad REDIS_URL: invalid percent-escape in the password"},
      {"redis://u:hunter2%zz@h", "bad REDIS_URL: invalid percent-escape in the password"},
      {"redis://u%g:hunter2@h", "bad REDIS_URL: invalid percent-escape in the user name"},
      {"redis://u:@h", "bad REDIS_URL: empty password (leave out 'user:@' for none)"},
      {"redis://u:hunter2@", "bad REDIS_URL: missing host (expected "
                             "redis://[user:password@]host[:port][/db] or rediss://...)"},
      {"redis://u:hunter2@:6379", "bad REDIS_URL: missing host (expected "
                                  "redis://[user:password@]host[:port][/db] or rediss://...)"},
      {"redis://default:hunter2", "bad REDIS_URL: bad port (expected a number from 1 to 65535)"},
      {"redis://h:0", "bad REDIS_URL: bad port (expected a number from 1 to 65535)"},
      {"redis://h:65536", "bad REDIS_URL: bad port (expected a number from 1 to 65535)"},
      {"redis://h:", "bad REDIS_URL: bad port (expected a number from 1 to 65535)"},
      {"redis://h/hunter2", "bad REDIS_URL: bad database number (expected /0, /1, ...)"},
      {"redis://h/-1", "bad REDIS_URL: bad database number (expected /0, /1, ...)"},
      {"redis://h?password=hunter2",
       "bad REDIS_URL: query parameters and fragments (?..., #...) are not supported"},
      {"redis://[::1", "bad REDIS_URL: IPv6 address without its closing ']'"},
      {"redis://[::g]", "bad REDIS_URL: invalid character in the IPv6 address"},
      {"redis://[::1]x", "bad REDIS_URL: unexpected characters after the host (expected "
                         "redis://[user:password@]host[:port][/db] or rediss://...)"},
      {"redis://ho st", "bad REDIS_URL: invalid character in the host name"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char err[256] = "";
    sk_redis_url *u = sk_redis_url_parse(cases[i].text, NULL, err, sizeof err);
    if (u != NULL)
      fail_msg("accepted: %s", cases[i].text);
    assert_string_equal(err, cases[i].err);
    assert_null(strstr(err, "hunter2"));
  }
  /* The variable's name is the caller's. */
  char err[256];
  assert_null(sk_redis_url_parse("redis://h:x", "UPSTASH_REDIS_URL", err, sizeof err));
  assert_string_equal(err, "bad UPSTASH_REDIS_URL: bad port (expected a number from 1 to 65535)");
  /* A tiny buffer is truncated, never overrun. */
  char tiny[8];
  assert_null(sk_redis_url_parse("redis://h:x", NULL, tiny, sizeof tiny));
  assert_string_equal(tiny, "bad RED");
}

static void test_options_env(void **state) {
  (void)state;
  sk_redis_options o;
  char err[256];
  sk_redis_options_init(&o);
  assert_int_equal(setenv("SKENE_REDIS_CA", "/x/ca.pem", 1), 0);
  assert_int_equal(setenv("SKENE_REDIS_INSECURE", "1", 1), 0);
  assert_int_equal(sk_redis_options_from_env(&o, err, sizeof err), 0);
  assert_string_equal(o.ca_file, "/x/ca.pem");
  assert_int_equal(o.insecure, 1);
  assert_int_equal(setenv("SKENE_REDIS_INSECURE", "yes", 1), 0);
  assert_int_equal(sk_redis_options_from_env(&o, err, sizeof err), -1);
  assert_string_equal(
      err, "SKENE_REDIS_INSECURE must be 1 (no certificate verification) or 0, not 'yes'");
  sk_redis_options_init(&o);
  unsetenv("SKENE_REDIS_CA");
  unsetenv("SKENE_REDIS_INSECURE");
  assert_int_equal(sk_redis_options_from_env(&o, err, sizeof err), 0);
  assert_null(o.ca_file);
  assert_int_equal(o.insecure, 0);
}

/* ---- sk_redis_check ---- */

static void test_check_ok(void **state) {
  (void)state;
  sk_redis_options o = test_options();
  char err[1024] = "";
  if (sk_redis_check(E.url, &o, 3000, err, sizeof err) != 0)
    fail_msg("%s", err);
}

static void test_check_refused(void **state) {
  (void)state;
  char url[128], err[1024], want[128];
  int port = free_port();
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  assert_int_equal(sk_redis_check(url, NULL, 3000, err, sizeof err), -1);
  snprintf(want, sizeof want, "cannot connect to 127.0.0.1:%d: Connection refused", port);
  assert_string_equal(err, want);
  snprintf(url, sizeof url, "rediss://u:hunter2@[::1]:%d", port);
  assert_int_equal(sk_redis_check(url, NULL, 3000, err, sizeof err), -1);
  snprintf(want, sizeof want, "cannot connect to [::1]:%d: ", port);
  assert_memory_equal(err, want, strlen(want));
  assert_null(strstr(err, "hunter2"));
}

static void test_check_bad_url(void **state) {
  (void)state;
  char err[1024];
  assert_int_equal(sk_redis_check("redis://u:hunter2@h:port", NULL, 1000, err, sizeof err), -1);
  assert_string_equal(err, "bad REDIS_URL: bad port (expected a number from 1 to 65535)");
  sk_redis_options o;
  sk_redis_options_init(&o);
  o.url_name = "UPSTASH_REDIS_URL";
  assert_int_equal(sk_redis_check("postgres://h", &o, 1000, err, sizeof err), -1);
  assert_string_equal(err, "bad UPSTASH_REDIS_URL: scheme 'postgres' is not redis:// or rediss:// "
                           "(expected redis://[user:password@]host[:port][/db] or rediss://...)");
}

static void test_check_wrong_password(void **state) {
  (void)state;
  char url[256], err[1024];
  sk_redis_options o = test_options();
  url_with(url, sizeof url, "skene:not-the-password@", "127.0.0.1", "");
  assert_int_equal(sk_redis_check(url, &o, 3000, err, sizeof err), -1);
  assert_string_equal(err, "authentication failed for user 'skene': WRONGPASS invalid "
                           "username-password pair or user is disabled.");
  assert_null(strstr(err, "not-the-password"));
}

static void test_check_select(void **state) {
  (void)state;
  char url[512], err[1024], want[256];
  sk_redis_options o = test_options();
  snprintf(url, sizeof url, "%s/99", E.url);
  assert_int_equal(sk_redis_check(url, &o, 3000, err, sizeof err), -1);
  snprintf(want, sizeof want, "SELECT 99 failed on 127.0.0.1:%d: ERR DB index is out of range",
           E.port);
  assert_string_equal(err, want);
}

/* A server that accepts connections and never answers: each phase's timeout, with its own message.
 */
static void test_silent_server(void **state) {
  (void)state;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 16), 0); /* the kernel completes the TCP handshakes; nobody accepts */
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  int port = ntohs(a.sin_port);
  char url[128], err[1024], want[256];

  snprintf(url, sizeof url, "rediss://127.0.0.1:%d", port);
  assert_int_equal(sk_redis_check(url, NULL, 200, err, sizeof err), -1);
  snprintf(want, sizeof want, "TLS handshake with 127.0.0.1:%d failed: timed out after 200 ms",
           port);
  assert_string_equal(err, want);

  snprintf(url, sizeof url, "redis://:hunter2@127.0.0.1:%d", port);
  assert_int_equal(sk_redis_check(url, NULL, 200, err, sizeof err), -1);
  snprintf(want, sizeof want, "no reply to AUTH from 127.0.0.1:%d within 200 ms", port);
  assert_string_equal(err, want);

  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  assert_int_equal(sk_redis_check(url, NULL, 200, err, sizeof err), -1);
  snprintf(want, sizeof want, "no reply from 127.0.0.1:%d within 400 ms", port);
  assert_string_equal(err, want);
  close(fd);
}

/* ---- commands ---- */

static int events_ready, events_down;

static void count_events(sk_redis *r, sk_redis_event ev, void *privdata) {
  (void)r;
  (void)privdata;
  if (ev == SK_REDIS_EVENT_READY)
    events_ready++;
  else
    events_down++;
}

static void test_set_get_binary(void **state) {
  (void)state;
  sk_redis_options o = test_options();
  sk_redis *r = connect_ok(E.url, &o);
  result res = {0};
  events_ready = events_down = 0;
  sk_redis_on_event(r, count_events, NULL);

  const char *ping[] = {"PING"};
  cmd(r, &res, 1, ping, NULL);
  assert_int_equal(res.status, SK_REDIS_OK);
  assert_int_equal(res.type, REDIS_REPLY_STATUS);
  assert_string_equal(res.str, "PONG");
  assert_int_equal(events_ready, 1);
  assert_true(sk_redis_is_ready(r));
  assert_int_equal(sk_redis_get_err(r), SK_REDIS_ERR_NONE);
  assert_string_equal(sk_redis_errstr(r), "");

  static const char key[] = "bin\0key\r\n";
  static const char val[] = "a\0b\r\n$3\r\n*1\xff";
  const char *set[] = {"SET", key, val};
  size_t setlen[] = {3, sizeof key - 1, sizeof val - 1};
  cmd(r, &res, 3, set, setlen);
  assert_int_equal(res.status, SK_REDIS_OK);
  assert_string_equal(res.str, "OK");
  const char *get[] = {"GET", key};
  size_t getlen[] = {3, sizeof key - 1};
  cmd(r, &res, 2, get, getlen);
  assert_int_equal(res.type, REDIS_REPLY_STRING);
  assert_int_equal(res.len, sizeof val - 1);
  assert_memory_equal(res.str, val, sizeof val - 1);

  const char *missing[] = {"GET", "no-such-key"};
  cmd(r, &res, 2, missing, NULL);
  assert_int_equal(res.type, REDIS_REPLY_NIL);
  const char *incr[] = {"INCRBY", "counter", "41"};
  cmd(r, &res, 3, incr, NULL);
  assert_int_equal(res.type, REDIS_REPLY_INTEGER);
  assert_int_equal(res.integer, 41);
  /* PING, SET, GET, GET, INCRBY, plus AUTH when the URL has a password. */
  assert_int_equal(sk_redis_commands_sent(r), 5 + (E.acl ? 1 : 0));
  assert_int_equal(sk_redis_pending(r), 0);
  result_clear(&res);
  sk_redis_free(r);
  sk_redis_free(NULL);
}

static void test_error_reply(void **state) {
  (void)state;
  sk_redis_options o = test_options();
  sk_redis *r = connect_ok(E.url, &o);
  result res = {0};
  const char *set[] = {"SET", "a-string", "x"};
  cmd(r, &res, 3, set, NULL);
  const char *lpush[] = {"LPUSH", "a-string", "y"};
  cmd(r, &res, 3, lpush, NULL);
  assert_int_equal(res.status, SK_REDIS_OK);
  assert_int_equal(res.type, REDIS_REPLY_ERROR);
  assert_string_equal(res.str, "WRONGTYPE Operation against a key holding the wrong kind of value");
  /* The connection goes on. */
  const char *ping[] = {"PING"};
  cmd(r, &res, 1, ping, NULL);
  assert_string_equal(res.str, "PONG");
  const char *bogus[] = {"NO-SUCH-COMMAND"};
  cmd(r, &res, 1, bogus, NULL);
  assert_int_equal(res.type, REDIS_REPLY_ERROR);
  assert_memory_equal(res.str, "ERR unknown command", 19);
  result_clear(&res);
  sk_redis_free(r);
}

static void test_multi_exec(void **state) {
  (void)state;
  sk_redis_options o = test_options();
  sk_redis *r = connect_ok(E.url, &o);
  result res[4] = {{0}};
  const char *multi[] = {"MULTI"}, *set[] = {"SET", "m", "5"}, *incr[] = {"INCR", "m"},
             *exec[] = {"EXEC"};
  assert_int_equal(sk_redis_command(r, 1, multi, NULL, store_cb, &res[0]), 0);
  assert_int_equal(sk_redis_command(r, 3, set, NULL, store_cb, &res[1]), 0);
  assert_int_equal(sk_redis_command(r, 2, incr, NULL, store_cb, &res[2]), 0);
  assert_int_equal(sk_redis_command(r, 1, exec, NULL, store_cb, &res[3]), 0);
  run_until(&res[3].calls, 1, 5000);
  assert_int_equal(res[0].calls + res[1].calls + res[2].calls, 3);
  assert_string_equal(res[1].str, "QUEUED");
  assert_string_equal(res[2].str, "QUEUED");
  assert_int_equal(res[3].type, REDIS_REPLY_ARRAY);
  assert_int_equal(res[3].elements, 2);
  for (int i = 0; i < 4; i++)
    result_clear(&res[i]);
  sk_redis_free(r);
}

/* 10,000 commands in one pipeline: each reply reaches its own callback, in order. */
typedef struct echo_state {
  int next; /* the index the next callback must have */
  int bad;
} echo_state;

static echo_state echoes;

static void echo_cb(sk_redis *r, const sk_redis_result *res, void *privdata) {
  int i = (int)(intptr_t)privdata;
  char want[32];
  (void)r;
  snprintf(want, sizeof want, "value-%d", i);
  if (i != echoes.next || res->status != SK_REDIS_OK || res->reply->type != REDIS_REPLY_STRING ||
      strcmp(res->reply->str, want) != 0)
    echoes.bad++;
  echoes.next++;
}

static void test_pipeline_10000(void **state) {
  (void)state;
  enum { N = 10000 };
  sk_redis_options o = test_options();
  sk_redis *r = connect_ok(E.url, &o);
  memset(&echoes, 0, sizeof echoes);
  /* Half queued before the connection is up, half once it is. */
  for (int i = 0; i < N; i++) {
    char v[32];
    snprintf(v, sizeof v, "value-%d", i);
    const char *argv[] = {"ECHO", v};
    assert_int_equal(sk_redis_command(r, 2, argv, NULL, echo_cb, (void *)(intptr_t)i), 0);
    if (i == N / 2)
      run_until(&echoes.next, 1, 5000);
  }
  run_until(&echoes.next, N, 15000);
  assert_int_equal(echoes.bad, 0);
  assert_int_equal(echoes.next, N);
  assert_true(sk_redis_commands_sent(r) >= N);
  sk_redis_free(r);
}

static void test_big_reply(void **state) {
  (void)state;
  enum { BIG = 8 << 20, ITEMS = 100000 };
  sk_redis_options o = test_options();
  sk_redis *r = connect_ok(E.url, &o);
  result res = {0};
  char *val = malloc(BIG);
  assert_non_null(val);
  uint64_t x = 88172645463325252u;
  for (size_t i = 0; i < BIG; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    val[i] = (char)x;
  }
  const char *set[] = {"SET", "big", val};
  size_t setlen[] = {3, 3, BIG};
  cmd(r, &res, 3, set, setlen);
  assert_string_equal(res.str, "OK");
  const char *get[] = {"GET", "big"};
  cmd(r, &res, 2, get, NULL);
  assert_int_equal(res.status, SK_REDIS_OK);
  assert_int_equal(res.len, BIG);
  assert_memory_equal(res.str, val, BIG);
  free(val);

  /* An array of 100,000 elements. */
  const char *del[] = {"DEL", "biglist"};
  cmd(r, &res, 2, del, NULL);
  enum { BATCH = 10000 };
  const char **argv = malloc((BATCH + 2) * sizeof *argv);
  assert_non_null(argv);
  argv[0] = "RPUSH";
  argv[1] = "biglist";
  for (int i = 0; i < BATCH; i++)
    argv[i + 2] = "element";
  for (int b = 0; b < ITEMS / BATCH; b++)
    cmd(r, &res, BATCH + 2, argv, NULL);
  free(argv);
  assert_int_equal(res.integer, ITEMS);
  const char *lrange[] = {"LRANGE", "biglist", "0", "-1"};
  cmd(r, &res, 4, lrange, NULL);
  assert_int_equal(res.type, REDIS_REPLY_ARRAY);
  assert_int_equal(res.elements, ITEMS);
  result_clear(&res);
  sk_redis_free(r);
}

/* Replies over the caps fail their command with SK_REDIS_PROTOCOL; the connection comes back. */
static void test_reply_caps(void **state) {
  (void)state;
  sk_redis_options o = test_options();
  o.max_bulk = 1024;
  o.max_array = 10;
  sk_redis *r = connect_ok(E.url, &o);
  result res = {0};
  char buf[100000], want[256];
  memset(buf, 'v', sizeof buf);

  const char *set[] = {"SET", "k2k", buf};
  size_t setlen[] = {3, 3, 2048};
  cmd(r, &res, 3, set, setlen);
  assert_string_equal(res.str, "OK");
  const char *get[] = {"GET", "k2k"};
  cmd(r, &res, 2, get, NULL);
  assert_int_equal(res.status, SK_REDIS_PROTOCOL);
  snprintf(want, sizeof want,
           "reply from 127.0.0.1:%d refused: bulk string of 2048 bytes (limit 1024)", E.port);
  assert_string_equal(res.errstr, want);
  assert_int_equal(sk_redis_get_err(r), SK_REDIS_ERR_PROTOCOL);

  /* Larger than one read: refused from its header, before it is buffered. */
  setlen[2] = sizeof buf;
  cmd(r, &res, 3, set, setlen);
  assert_int_equal(res.status, SK_REDIS_OK);
  cmd(r, &res, 2, get, NULL);
  assert_int_equal(res.status, SK_REDIS_PROTOCOL);
  snprintf(want, sizeof want,
           "reply from 127.0.0.1:%d refused: bulk string of %zu bytes (limit 1024)", E.port,
           sizeof buf);
  assert_string_equal(res.errstr, want);

  const char *rpush[] = {"RPUSH", "l20", "1",  "2",  "3",  "4",  "5",  "6",  "7",  "8",  "9",
                         "10",    "11",  "12", "13", "14", "15", "16", "17", "18", "19", "20"};
  cmd(r, &res, 22, rpush, NULL);
  assert_int_equal(res.status, SK_REDIS_OK);
  const char *lrange[] = {"LRANGE", "l20", "0", "-1"};
  cmd(r, &res, 4, lrange, NULL);
  assert_int_equal(res.status, SK_REDIS_PROTOCOL);
  snprintf(want, sizeof want, "reply from 127.0.0.1:%d refused: array of 20 elements (limit 10)",
           E.port);
  assert_string_equal(res.errstr, want);

  const char *small[] = {"LRANGE", "l20", "0", "9"};
  cmd(r, &res, 4, small, NULL);
  assert_int_equal(res.status, SK_REDIS_OK);
  assert_int_equal(res.elements, 10);
  result_clear(&res);
  sk_redis_free(r);
}

/* A command without a reply in time: TIMEOUT; the one behind it in the pipeline: CONN_LOST; the
 * connection is reset and the next command works. */
static void test_command_timeout(void **state) {
  (void)state;
  sk_redis_options o = test_options();
  sk_redis *r = connect_ok(E.url, &o);
  result blpop = {0}, behind = {0}, after = {0};
  const char *argv[] = {"BLPOP", "no-such-list", "5"};
  const char *ping[] = {"PING"};
  assert_int_equal(sk_redis_command_timeout(r, 200, 3, argv, NULL, store_cb, &blpop), 0);
  assert_int_equal(sk_redis_command_timeout(r, 0, 1, ping, NULL, store_cb, &behind), 0);
  run_until(&behind.calls, 1, 3000);
  assert_int_equal(blpop.calls, 1);
  assert_int_equal(blpop.status, SK_REDIS_TIMEOUT);
  char want[256];
  snprintf(want, sizeof want, "no reply from 127.0.0.1:%d within 200 ms", E.port);
  assert_string_equal(blpop.errstr, want);
  assert_int_equal(behind.status, SK_REDIS_CONN_LOST);
  cmd(r, &after, 1, ping, NULL);
  assert_int_equal(after.status, SK_REDIS_OK);
  assert_string_equal(after.str, "PONG");
  result_clear(&blpop);
  result_clear(&behind);
  result_clear(&after);
  sk_redis_free(r);
}

static void test_select(void **state) {
  (void)state;
  char url[512];
  sk_redis_options o = test_options();
  snprintf(url, sizeof url, "%s/2", E.url);
  sk_redis *r2 = connect_ok(url, &o);
  sk_redis *r0 = connect_ok(E.url, &o);
  result res = {0};
  const char *set[] = {"SET", "in-db-2", "yes"};
  const char *get[] = {"GET", "in-db-2"};
  cmd(r2, &res, 3, set, NULL);
  cmd(r2, &res, 2, get, NULL);
  assert_string_equal(res.str, "yes");
  cmd(r0, &res, 2, get, NULL);
  assert_int_equal(res.type, REDIS_REPLY_NIL);
  result_clear(&res);
  sk_redis_free(r2);
  sk_redis_free(r0);
}

/* While there is no server: a bounded queue, timeouts in the queue (NOT_SENT), and sk_redis_free
 * calling back what is left. */
static void test_queue_while_down(void **state) {
  (void)state;
  char url[128], want[512];
  int port = free_port();
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  sk_redis_options o;
  sk_redis_options_init(&o);
  o.max_queued = 3;
  sk_redis *r = connect_ok(url, &o);
  result a = {0}, b = {0}, c = {0}, d = {0};
  const char *ping[] = {"PING"};
  assert_int_equal(sk_redis_command_timeout(r, 300, 1, ping, NULL, store_cb, &a), 0);
  assert_int_equal(sk_redis_command(r, 1, ping, NULL, store_cb, &b), 0);
  assert_int_equal(sk_redis_command(r, 1, ping, NULL, store_cb, &c), 0);
  assert_int_equal(sk_redis_command(r, 1, ping, NULL, store_cb, &d), -1);
  assert_int_equal(sk_redis_get_err(r), SK_REDIS_ERR_FULL);
  snprintf(want, sizeof want,
           "not queued: 3 commands already wait for a connection to 127.0.0.1:%d", port);
  assert_string_equal(sk_redis_errstr(r), want);
  run_until(&a.calls, 1, 3000);
  assert_int_equal(a.status, SK_REDIS_NOT_SENT);
  snprintf(want, sizeof want,
           "not sent: no connection to 127.0.0.1:%d within 300 ms (cannot connect to "
           "127.0.0.1:%d: Connection refused)",
           port, port);
  assert_string_equal(a.errstr, want);
  assert_int_equal(sk_redis_get_err(r), SK_REDIS_ERR_CONNECT);
  assert_false(sk_redis_has_failed(r));
  assert_int_equal(b.calls + c.calls, 0);
  assert_int_equal(sk_redis_pending(r), 2);
  sk_redis_free(r);
  assert_int_equal(b.calls, 1);
  assert_int_equal(b.status, SK_REDIS_NOT_SENT);
  assert_string_equal(b.errstr, "connection closed");
  assert_int_equal(c.calls, 1);
  assert_int_equal(d.calls, 0);
  result_clear(&a);
  result_clear(&b);
  result_clear(&c);
}

/* sk_redis_free from inside a callback: every other command is still called back once. */
static int freed_calls, freed_ok, freed_lost;
static sk_redis *freed_conn;

static void free_cb(sk_redis *r, const sk_redis_result *res, void *privdata) {
  (void)privdata;
  assert_ptr_equal(r, freed_conn);
  freed_calls++;
  if (res->status == SK_REDIS_OK)
    freed_ok++;
  else if (res->status == SK_REDIS_CONN_LOST)
    freed_lost++;
  if (freed_calls == 10) {
    sk_redis_free(r);
    sk_redis_free(r); /* twice: still once */
    const char *ping[] = {"PING"};
    assert_int_equal(sk_redis_command(r, 1, ping, NULL, free_cb, NULL), -1);
  }
}

static void test_free_in_callback(void **state) {
  (void)state;
  sk_redis_options o = test_options();
  freed_calls = freed_ok = freed_lost = 0;
  freed_conn = connect_ok(E.url, &o);
  const char *ping[] = {"PING"};
  for (int i = 0; i < 100; i++)
    assert_int_equal(sk_redis_command(freed_conn, 1, ping, NULL, free_cb, NULL), 0);
  run_until(&freed_calls, 100, 5000);
  assert_int_equal(freed_calls, 100);
  assert_int_equal(freed_ok, 10);
  assert_int_equal(freed_lost, 90);
}

/* ---- subscriber mode ---- */

typedef struct pushed {
  int subscribed, messages;
  char channel[64], payload[64];
} pushed;

static void push_cb(sk_redis *r, const redisReply *msg, void *privdata) {
  pushed *p = privdata;
  (void)r;
  assert_int_equal(msg->type, REDIS_REPLY_ARRAY);
  assert_true(msg->elements >= 3);
  const char *kind = msg->element[0]->str;
  if (strcmp(kind, "psubscribe") == 0) {
    p->subscribed++;
  } else {
    assert_string_equal(kind, "pmessage");
    assert_int_equal(msg->elements, 4);
    assert_string_equal(msg->element[1]->str, "news.*");
    snprintf(p->channel, sizeof p->channel, "%s", msg->element[2]->str);
    snprintf(p->payload, sizeof p->payload, "%s", msg->element[3]->str);
    p->messages++;
  }
}

/* PSUBSCRIBE: messages pushed to the callback, commands refused, subscribed again after a
 * reconnection. */
static void test_psubscribe(void **state) {
  (void)state;
  sk_redis_options o = test_options();
  sk_redis *sub = connect_ok(E.url, &o), *pub = connect_ok(E.url, &o);
  pushed p = {0};
  result res = {0};
  const char *patterns[] = {"news.*", "other.*"};
  events_ready = events_down = 0;
  sk_redis_on_event(sub, count_events, NULL);
  assert_int_equal(sk_redis_psubscribe(sub, 2, patterns, push_cb, &p), 0);
  assert_int_equal(sk_redis_psubscribe(sub, 2, patterns, push_cb, &p), -1);
  run_until(&p.subscribed, 2, 5000);

  const char *publish[] = {"PUBLISH", "news.1", "hello"};
  cmd(pub, &res, 3, publish, NULL);
  assert_int_equal(res.integer, 1);
  run_until(&p.messages, 1, 5000);
  assert_string_equal(p.channel, "news.1");
  assert_string_equal(p.payload, "hello");

  const char *ping[] = {"PING"};
  assert_int_equal(sk_redis_command(sub, 1, ping, NULL, store_cb, &res), -1);
  assert_int_equal(sk_redis_get_err(sub), SK_REDIS_ERR_ARG);
  assert_string_equal(sk_redis_errstr(sub), "not sent: the connection is in subscriber mode");

  /* Dropped by the server: subscribed again once reconnected. */
  const char *kill[] = {"CLIENT", "KILL", "TYPE", "pubsub"};
  cmd(pub, &res, 4, kill, NULL);
  assert_int_equal(res.integer, 1);
  run_until(&p.subscribed, 4, 5000);
  assert_int_equal(events_ready, 2);
  const char *publish2[] = {"PUBLISH", "news.2", "again"};
  cmd(pub, &res, 3, publish2, NULL);
  run_until(&p.messages, 2, 5000);
  assert_string_equal(p.payload, "again");
  result_clear(&res);
  sk_redis_free(sub);
  sk_redis_free(pub);
}

/* ---- TLS ---- */

static void test_tls_without_ca(void **state) {
  (void)state;
  char err[1024], want[256];
  assert_int_equal(sk_redis_check(E.url, NULL, 3000, err, sizeof err), -1);
  snprintf(want, sizeof want,
           "TLS handshake with 127.0.0.1:%d failed: certificate verify failed (unable to get "
           "local issuer certificate)",
           E.port);
  assert_string_equal(err, want);
}

static void test_tls_insecure(void **state) {
  (void)state;
  char err[1024] = "";
  sk_redis_options o;
  sk_redis_options_init(&o);
  o.insecure = 1;
  if (sk_redis_check(E.url, &o, 3000, err, sizeof err) != 0)
    fail_msg("%s", err);
}

static void test_tls_env(void **state) {
  (void)state;
  char err[1024] = "";
  sk_redis_options o;
  /* SKENE_REDIS_CA: the private CA. */
  sk_redis_options_init(&o);
  assert_int_equal(setenv("SKENE_REDIS_CA", E.ca, 1), 0);
  assert_int_equal(sk_redis_options_from_env(&o, err, sizeof err), 0);
  if (sk_redis_check(E.url, &o, 3000, err, sizeof err) != 0)
    fail_msg("%s", err);
  unsetenv("SKENE_REDIS_CA");
  /* SKENE_REDIS_INSECURE=1 */
  sk_redis_options_init(&o);
  assert_int_equal(setenv("SKENE_REDIS_INSECURE", "1", 1), 0);
  assert_int_equal(sk_redis_options_from_env(&o, err, sizeof err), 0);
  if (sk_redis_check(E.url, &o, 3000, err, sizeof err) != 0)
    fail_msg("%s", err);
  unsetenv("SKENE_REDIS_INSECURE");
}

/* By name: SNI and the certificate's DNS name are checked. */
static void test_tls_hostname(void **state) {
  (void)state;
  char url[512], err[1024] = "";
  const char *at = strrchr(E.url, '@');
  char userinfo[256] = "";
  if (at != NULL)
    snprintf(userinfo, sizeof userinfo, "%.*s", (int)(at + 1 - (E.url + 9)), E.url + 9);
  url_with(url, sizeof url, userinfo, "localhost", "");
  sk_redis_options o = test_options();
  if (sk_redis_check(url, &o, 3000, err, sizeof err) != 0)
    fail_msg("%s", err);
}

static void test_tls_bad_ca_file(void **state) {
  (void)state;
  char err[1024];
  sk_redis_options o;
  sk_redis_options_init(&o);
  o.ca_file = "/nonexistent/ca.pem";
  assert_int_equal(sk_redis_check(E.url, &o, 1000, err, sizeof err), -1);
  assert_memory_equal(err, "cannot load the CA file '/nonexistent/ca.pem' (SKENE_REDIS_CA): ", 64);
}

/* ---- ACL ---- */

static void test_acl_noauth(void **state) {
  (void)state;
  char url[256], err[1024], want[256];
  sk_redis_options o = test_options();
  url_with(url, sizeof url, "", "127.0.0.1", "");
  assert_int_equal(sk_redis_check(url, &o, 3000, err, sizeof err), -1);
  snprintf(want, sizeof want, "PING to 127.0.0.1:%d failed: NOAUTH Authentication required.",
           E.port);
  assert_string_equal(err, want);
}

/* ---- the server dies mid-pipeline, and comes back ---- */

static pid_t server_pid(void) {
  FILE *f = fopen(E.pidfile, "r");
  long pid = 0;
  assert_non_null(f);
  assert_int_equal(fscanf(f, "%ld", &pid), 1);
  fclose(f);
  assert_true(pid > 1);
  return (pid_t)pid;
}

static void start_server(void) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
    }
    execlp("redis-server", "redis-server", E.conf, (char *)NULL);
    _exit(127);
  }
}

static void test_server_restart(void **state) {
  (void)state;
  enum { N = 100 };
  sk_redis_options o = test_options();
  sk_redis *r = connect_ok(E.url, &o);
  events_ready = events_down = 0;
  sk_redis_on_event(r, count_events, NULL);
  result first = {0}, blocked = {0}, pings[N], later = {0};
  memset(pings, 0, sizeof pings);

  const char *set[] = {"SET", "before", "1"};
  cmd(r, &first, 3, set, NULL);
  assert_int_equal(first.status, SK_REDIS_OK);

  /* BLPOP holds the pipeline on the server: the PINGs behind it are written, not answered. */
  const char *blpop[] = {"BLPOP", "nothing", "10"};
  const char *ping[] = {"PING"};
  assert_int_equal(sk_redis_command_timeout(r, 0, 3, blpop, NULL, store_cb, &blocked), 0);
  for (int i = 0; i < N; i++)
    assert_int_equal(sk_redis_command_timeout(r, 0, 1, ping, NULL, store_cb, &pings[i]), 0);
  run_for(100);
  assert_int_equal(blocked.calls, 0);
  assert_int_equal(kill(server_pid(), SIGKILL), 0);
  run_until(&pings[N - 1].calls, 1, 5000);
  assert_int_equal(blocked.calls, 1);
  assert_int_equal(blocked.status, SK_REDIS_CONN_LOST);
  char want[256];
  snprintf(want, sizeof want, "connection to 127.0.0.1:%d lost: ", E.port);
  assert_memory_equal(blocked.errstr, want, strlen(want));
  for (int i = 0; i < N; i++) {
    assert_int_equal(pings[i].calls, 1);
    assert_int_equal(pings[i].status, SK_REDIS_CONN_LOST);
  }
  assert_false(sk_redis_is_ready(r));
  assert_true(events_down >= 1);

  /* Queued while the server is down; answered once it is back on the same port. */
  const char *set2[] = {"SET", "after", "2"};
  assert_int_equal(sk_redis_command(r, 3, set2, NULL, store_cb, &later), 0);
  run_for(150);
  assert_int_equal(later.calls, 0);
  start_server();
  run_until(&later.calls, 1, 10000);
  assert_int_equal(later.status, SK_REDIS_OK);
  assert_string_equal(later.str, "OK");
  const char *get[] = {"GET", "after"};
  cmd(r, &later, 2, get, NULL);
  assert_string_equal(later.str, "2");
  assert_int_equal(events_ready, 2);

  result_clear(&first);
  result_clear(&blocked);
  result_clear(&later);
  for (int i = 0; i < N; i++)
    result_clear(&pings[i]);
  sk_redis_free(r);
}

static const char *need_env(const char *name) {
  const char *v = getenv(name);
  if (v == NULL || v[0] == '\0') {
    fprintf(stderr, "test_redis: %s is not set: run me through tests/redis/with-redis.sh\n", name);
    exit(1);
  }
  return v;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  E.url = need_env("SKENE_TEST_REDIS_URL");
  E.port = atoi(need_env("SKENE_TEST_REDIS_PORT"));
  E.tls = strcmp(need_env("SKENE_TEST_REDIS_TLS"), "1") == 0;
  E.acl = strcmp(need_env("SKENE_TEST_REDIS_ACL"), "1") == 0;
  E.conf = need_env("SKENE_TEST_REDIS_CONF");
  E.pidfile = need_env("SKENE_TEST_REDIS_PIDFILE");
  if (E.tls)
    E.ca = need_env("SKENE_TEST_REDIS_CA");
  if (E.acl) {
    E.user = need_env("SKENE_TEST_REDIS_USER");
    E.password = need_env("SKENE_TEST_REDIS_PASSWORD");
  }

  struct CMUnitTest tests[40];
  size_t n = 0;
#define ADD(fn) tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(fn, setup, teardown)
  ADD(test_url_good);
  ADD(test_url_bad);
  ADD(test_options_env);
  ADD(test_check_ok);
  ADD(test_check_refused);
  ADD(test_check_bad_url);
  ADD(test_check_wrong_password);
  ADD(test_check_select);
  ADD(test_silent_server);
  ADD(test_set_get_binary);
  ADD(test_error_reply);
  ADD(test_multi_exec);
  ADD(test_pipeline_10000);
  ADD(test_big_reply);
  ADD(test_reply_caps);
  ADD(test_command_timeout);
  ADD(test_select);
  ADD(test_queue_while_down);
  ADD(test_free_in_callback);
  ADD(test_psubscribe);
  if (E.tls) {
    ADD(test_tls_without_ca);
    ADD(test_tls_insecure);
    ADD(test_tls_env);
    ADD(test_tls_hostname);
    ADD(test_tls_bad_ca_file);
  }
  if (E.acl)
    ADD(test_acl_noauth);
  ADD(test_server_restart); /* last: it replaces the server */
#undef ADD
  const char *group = E.tls   ? (E.acl ? "redis_tls_acl" : "redis_tls")
                      : E.acl ? "redis_acl"
                              : "redis";
  return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
}
