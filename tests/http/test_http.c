/* test_http.c: the HTTP client (runtime/http.h), the token buckets (runtime/ratelimit.h) and the
 * resend and webhook senders (runtime/resend.h), against a server inside the test (server.h).
 *
 *   test_http GROUP     GROUP: transport, resend, batch, bucket, webhook, shared
 *
 * `shared` needs a redis-server: run it through tests/redis/with-redis.sh (SKENE_TEST_REDIS_URL);
 * without one it fails, it never skips. See tests/http/README.md.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <xxhash.h>

#include "evloop.h"
#include "reply.h"
#include "server.h"

#include "http.h"
#include "ratelimit.h"
#include "redis.h"
#include "resend.h"
#include "value.h"

#define API_KEY "test-key-S3CR3T-not-a-real-one"

static sk_http *client;

static sk_http_options http_opts(void) {
  sk_http_options o;
  sk_http_options_init(&o);
  o.connect_timeout_ms = 500;
  o.timeout_ms = 3000;
  return o;
}

static int setup(void **state) {
  (void)state;
  base = event_base_new();
  assert_non_null(base);
  srv_start();
  char err[256];
  sk_http_options o = http_opts();
  client = sk_http_new(base, &o, err, sizeof err);
  assert_non_null(client);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  sk_http_free(client);
  client = NULL;
  srv_stop();
  run_for(1); /* lets the server's closed connections go */
  event_base_free(base);
  base = NULL;
  return 0;
}

/* ---- responses of sk_http ---- */

typedef struct got {
  int calls;
  long status;
  int timed_out, truncated, version;
  long connects;
  char error[256];
  char body[2048];
  size_t body_len;
  char limit[32], retry_after[64];
  int64_t elapsed_us;
} got;

static void on_response(const sk_http_response *r, void *privdata) {
  got *g = privdata;
  const char *v;
  g->calls++;
  g->status = r->status;
  g->timed_out = r->timed_out;
  g->truncated = r->body_truncated;
  g->connects = r->connects;
  g->version = r->http_version;
  g->elapsed_us = r->elapsed_us;
  g->body_len = r->body_len;
  snprintf(g->error, sizeof g->error, "%s", r->error);
  snprintf(g->body, sizeof g->body, "%.*s", (int)r->body_len, r->body);
  if ((v = sk_http_header_get(r, "RateLimit-Limit")) != NULL)
    snprintf(g->limit, sizeof g->limit, "%s", v);
  if ((v = sk_http_header_get(r, "retry-after")) != NULL)
    snprintf(g->retry_after, sizeof g->retry_after, "%s", v);
}

static uint64_t get(const char *url, got *g) {
  memset(g, 0, sizeof *g);
  char err[128];
  uint64_t id = sk_http_request(client, "GET", url, NULL, 0, NULL, 0, on_response, g, err,
                                sizeof err);
  assert_true(id > 0);
  return id;
}

/* ==== transport ==== */

/* A GET: status, body, headers found in any case, callback only from the loop. */
static void test_get(void **state) {
  (void)state;
  got g;
  srv_push((srv_answer){.status = 201, .body = "hello",
                        .headers = {"ratelimit-limit: 7", "Retry-After: 3"}});
  get(srv_url("/a?b=c"), &g);
  assert_int_equal(g.calls, 0); /* never from inside sk_http_request */
  assert_int_equal(sk_http_in_flight(client), 1);
  RUN_UNTIL(g.calls == 1, 3000);
  assert_int_equal(g.status, 201);
  assert_string_equal(g.body, "hello");
  assert_string_equal(g.limit, "7");
  assert_string_equal(g.retry_after, "3");
  assert_string_equal(g.error, "");
  assert_int_equal(g.version, 1);
  assert_true(g.elapsed_us > 0);
  assert_int_equal(sk_http_in_flight(client), 0);
  assert_int_equal(srv.nreqs, 1);
  assert_string_equal(srv.reqs[0].method, "GET");
  assert_string_equal(srv.reqs[0].target, "/a?b=c");
  assert_string_equal(srv_header(&srv.reqs[0], "User-Agent"), "skene/0.1");
}

/* One connection for N sequential requests (keep-alive), seen from both ends. */
static void test_keepalive(void **state) {
  (void)state;
  for (int i = 0; i < 5; i++) {
    got g;
    get(srv_url("/k"), &g);
    RUN_UNTIL(g.calls == 1, 3000);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.connects, i == 0 ? 1 : 0);
  }
  assert_int_equal(srv.nreqs, 5);
  for (size_t i = 1; i < srv.nreqs; i++)
    assert_int_equal(srv.reqs[i].peer_port, srv.reqs[0].peer_port);
  assert_int_equal(sk_http_connections(client), 1);
}

/* A POST with headers and a body arrives byte for byte; no Expect: 100-continue for a large body. */
static void test_post_bytes(void **state) {
  (void)state;
  got g;
  char err[128];
  static char big[5000];
  memset(big, 'x', sizeof big - 1);
  const char *h[] = {"X-One: 1", "Content-Type: text/plain"};
  memset(&g, 0, sizeof g);
  assert_true(sk_http_request(client, "POST", srv_url("/p"), h, 2, big, strlen(big), on_response,
                              &g, err, sizeof err) > 0);
  RUN_UNTIL(g.calls == 1, 3000);
  assert_int_equal(g.status, 200);
  char want[6000];
  snprintf(want, sizeof want,
           "POST /p HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: skene/0.1\r\nAccept: */*\r\n"
           "X-One: 1\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
           srv.port, strlen(big), big);
  assert_string_equal(srv.reqs[0].raw, want);
  /* refused at once: a header with a line break, nothing sent, no callback */
  const char *bad[] = {"X-Evil: a\r\nX-Injected: b"};
  assert_int_equal(sk_http_request(client, "POST", srv_url("/p"), bad, 1, "x", 1, on_response,
                                   &g, err, sizeof err),
                   0);
  assert_non_null(strstr(err, "line break"));
}

/* A connect that gets no answer times out after connect_timeout_ms. The listener's backlog is
   full and nobody accepts: Linux drops the SYNs. */
static void test_connect_timeout(void **state) {
  (void)state;
  int lfd = socket(AF_INET, SOCK_STREAM, 0), fill[4];
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(lfd, 0), 0);
  assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
  for (int i = 0; i < 4; i++) {
    fill[i] = socket(AF_INET, SOCK_STREAM, 0);
    fcntl(fill[i], F_SETFL, O_NONBLOCK);
    connect(fill[i], (struct sockaddr *)&sa, sizeof sa);
  }
  nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
  char url[64];
  got g;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(sa.sin_port));
  int64_t t0 = mono_us();
  get(url, &g);
  RUN_UNTIL(g.calls == 1, 3000);
  int64_t ms = (mono_us() - t0) / 1000;
  assert_int_equal(g.status, 0);
  assert_true(g.timed_out);
  assert_non_null(strstr(g.error, "Failed to connect")); /* "... after 503 ms: Timeout was reached" */
  assert_true(ms >= 450 && ms < 1500);
  for (int i = 0; i < 4; i++)
    close(fill[i]);
  close(lfd);
}

/* A server that does not answer in time: the total timeout. */
static void test_total_timeout(void **state) {
  (void)state;
  sk_http_free(client);
  sk_http_options o = http_opts();
  o.timeout_ms = 300;
  char err[128];
  client = sk_http_new(base, &o, err, sizeof err);
  srv_push((srv_answer){.action = SRV_DELAY, .delay_ms = 1500, .status = 200, .body = "late"});
  got g;
  int64_t t0 = mono_us();
  get(srv_url("/slow"), &g);
  RUN_UNTIL(g.calls == 1, 3000);
  int64_t ms = (mono_us() - t0) / 1000;
  assert_int_equal(g.status, 0);
  assert_true(g.timed_out);
  assert_true(ms >= 280 && ms < 1000);
  assert_int_equal(srv.nreqs, 1); /* the request was read: the server was just slow */
}

/* A body over max_body: cut, flagged, the status kept. */
static void test_body_cap(void **state) {
  (void)state;
  sk_http_free(client);
  sk_http_options o = http_opts();
  o.max_body = 1000;
  char err[128];
  client = sk_http_new(base, &o, err, sizeof err);
  static char big[5001];
  memset(big, 'y', 5000);
  srv_push((srv_answer){.status = 200, .body = big});
  got g;
  get(srv_url("/big"), &g);
  RUN_UNTIL(g.calls == 1, 3000);
  assert_int_equal(g.status, 200);
  assert_int_equal(g.body_len, 1000);
  assert_true(g.truncated);
}

/* A server that drops the connection after reading the request: status 0, curl's reason. */
static void test_dropped(void **state) {
  (void)state;
  srv_push((srv_answer){.action = SRV_DROP});
  got g;
  get(srv_url("/drop"), &g);
  RUN_UNTIL(g.calls == 1, 3000);
  assert_int_equal(g.status, 0);
  assert_false(g.timed_out);
  assert_true(g.error[0] != '\0');
  assert_int_equal(srv.nreqs, 1);
}

/* A bad URL and a refused connection come back through the callback, from the loop. */
static void test_errors_from_loop(void **state) {
  (void)state;
  got g1, g2;
  get("ftp://127.0.0.1/", &g1);
  get("http://127.0.0.1:1/", &g2);
  assert_int_equal(g1.calls + g2.calls, 0);
  RUN_UNTIL(g1.calls == 1 && g2.calls == 1, 3000);
  assert_int_equal(g1.status, 0);
  assert_int_equal(g2.status, 0);
  assert_true(g1.error[0] != '\0' && g2.error[0] != '\0');
}

/* Cancel: no callback. Free with requests in flight: no callback, nothing leaks (ASan). */
static void test_cancel_and_free(void **state) {
  (void)state;
  got g1, g2;
  srv_push((srv_answer){.action = SRV_DELAY, .delay_ms = 300, .status = 200});
  srv_push((srv_answer){.action = SRV_DELAY, .delay_ms = 300, .status = 200});
  uint64_t a = get(srv_url("/c1"), &g1);
  get(srv_url("/c2"), &g2);
  assert_int_equal(sk_http_cancel(client, a), 0);
  assert_int_equal(sk_http_cancel(client, a), -1);
  RUN_UNTIL(srv.nreqs >= 1, 3000);
  sk_http_free(client);
  client = NULL;
  run_for(500);
  assert_int_equal(g1.calls, 0);
  assert_int_equal(g2.calls, 0);
}

/* A callback that frees the client: the other finished request is not called back. */
static void on_response_free(const sk_http_response *r, void *privdata) {
  on_response(r, privdata);
  sk_http_free(client);
  client = NULL;
}

static void test_free_in_callback(void **state) {
  (void)state;
  got g1, g2;
  char err[64];
  memset(&g1, 0, sizeof g1);
  memset(&g2, 0, sizeof g2);
  assert_true(sk_http_request(client, "GET", srv_url("/f1"), NULL, 0, NULL, 0, on_response_free,
                              &g1, err, sizeof err) > 0);
  assert_true(sk_http_request(client, "GET", srv_url("/f2"), NULL, 0, NULL, 0, on_response_free,
                              &g2, err, sizeof err) > 0);
  RUN_UNTIL(g1.calls + g2.calls >= 1, 3000);
  run_for(200);
  assert_int_equal(g1.calls + g2.calls, 1);
}

/* ---- TLS: a server certificate made here (its own CA), served by evhttp over OpenSSL ---- */

static SSL_CTX *tls_ctx;
static char tls_ca[64];

/* A P-256 key and a self-signed certificate for IP 127.0.0.1, valid a day; the certificate also
   written to a temporary file (tls_ca) for the client's ca_file. */
static void tls_make(void) {
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *crt = X509_new();
  assert_non_null(key);
  X509_set_version(crt, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(crt), 1);
  X509_gmtime_adj(X509_getm_notBefore(crt), -60);
  X509_gmtime_adj(X509_getm_notAfter(crt), 86400);
  X509_set_pubkey(crt, key);
  X509_NAME *name = X509_get_subject_name(crt);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"skene test", -1,
                             -1, 0);
  X509_set_issuer_name(crt, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, crt, crt, NULL, NULL, 0);
  static const struct {
    int nid;
    const char *value;
  } ext[] = {{NID_basic_constraints, "critical,CA:TRUE"},
             {NID_key_usage, "critical,digitalSignature,keyCertSign"},
             {NID_subject_alt_name, "IP:127.0.0.1"}};
  for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, ext[i].nid, ext[i].value);
    assert_non_null(e);
    X509_add_ext(crt, e, -1);
    X509_EXTENSION_free(e);
  }
  assert_true(X509_sign(crt, key, EVP_sha256()) > 0);
  snprintf(tls_ca, sizeof tls_ca, "skene-http-ca.XXXXXX"); /* in the test's folder */
  int fd = mkstemp(tls_ca);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  PEM_write_X509(f, crt);
  fclose(f);
  tls_ctx = SSL_CTX_new(TLS_server_method());
  assert_int_equal(SSL_CTX_use_certificate(tls_ctx, crt), 1);
  assert_int_equal(SSL_CTX_use_PrivateKey(tls_ctx, key), 1);
  X509_free(crt);
  EVP_PKEY_free(key);
}

static struct bufferevent *tls_bev(struct event_base *b, void *arg) {
  (void)arg;
  return bufferevent_openssl_socket_new(b, -1, SSL_new(tls_ctx), BUFFEREVENT_SSL_ACCEPTING,
                                        BEV_OPT_CLOSE_ON_FREE);
}

/* https: verified against the CA file given; refused against the system store. */
static void test_tls(void **state) {
  (void)state;
  tls_make();
  struct evhttp *https = evhttp_new(base);
  struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(https, "127.0.0.1", 0);
  assert_non_null(bound);
  evhttp_set_bevcb(https, tls_bev, NULL);
  evhttp_set_gencb(https, srv_on_request, NULL);
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sa, &sl);
  char url[64], err[128];
  snprintf(url, sizeof url, "https://127.0.0.1:%d/tls", ntohs(sa.sin_port));

  got g;
  sk_http_options o = http_opts();
  o.connect_timeout_ms = o.timeout_ms = 10000; /* handshakes are slow under valgrind */
  sk_http_free(client);
  client = sk_http_new(base, &o, err, sizeof err);
  get(url, &g); /* the system store does not know this CA */
  RUN_UNTIL(g.calls == 1, 10000);
  assert_int_equal(g.status, 0);
  assert_non_null(strstr(g.error, "certificate"));
  assert_int_equal(srv.nreqs, 0);

  o.ca_file = tls_ca;
  sk_http *tls_client = sk_http_new(base, &o, err, sizeof err);
  memset(&g, 0, sizeof g);
  assert_true(sk_http_request(tls_client, "GET", url, NULL, 0, NULL, 0, on_response, &g, err,
                              sizeof err) > 0);
  RUN_UNTIL(g.calls == 1, 10000);
  assert_int_equal(g.status, 200);
  assert_string_equal(g.body, "ok");
  assert_int_equal(g.version, 1); /* HTTP/2 was offered; this server only speaks HTTP/1.1 */
  assert_int_equal(srv.nreqs, 1);
  sk_http_free(tls_client);
  evhttp_free(https);
  run_for(1);
  SSL_CTX_free(tls_ctx);
  unlink(tls_ca);
}

/* ==== the senders ==== */

/* A call with up to 24 fields. */
typedef struct call {
  sk_field_value f[24];
  sk_effect_call c;
} call;

static void call_init(call *c, const char *key) {
  memset(c, 0, sizeof *c);
  c->c.fields = c->f;
  c->c.attempt = 1;
  snprintf(c->c.idempotency_key, sizeof c->c.idempotency_key, "%s", key);
}

static void call_add(call *c, const char *name, const char *value) {
  assert_true(c->c.nfields < 24);
  c->f[c->c.nfields].name = name;
  c->f[c->c.nfields].value = sk_str_from(value);
  c->c.nfields++;
}

static void call_free(call *c) {
  for (uint32_t i = 0; i < c->c.nfields; i++)
    sk_str_unref(c->f[i].value);
}

typedef struct answer {
  int calls, ok, transient;
  int64_t retry_after_ms;
  char reason[256];
  char result[128];
  int64_t at_us;
} answer;

static void on_done(const sk_io *io, void *privdata) {
  answer *a = privdata;
  a->calls++;
  a->ok = io->ok;
  a->transient = io->transient;
  a->retry_after_ms = io->retry_after_ms;
  a->at_us = mono_us();
  assert_int_equal(io->pending, 0);
  snprintf(a->reason, sizeof a->reason, "%s", io->reason);
  snprintf(a->result, sizeof a->result, "%s", io->result != NULL ? io->result->data : "");
  assert_null(strstr(io->reason, API_KEY)); /* never, in any answer */
  assert_null(strstr(io->reason, "S3CR3T"));
}

static sk_resend_options resend_opts(void) {
  sk_resend_options o;
  sk_resend_options_init(&o);
  o.api_key = API_KEY;
  o.api_url = srv_url("");
  o.http = client;
  o.rps = 1000;
  o.burst = 1000;
  return o;
}

static sk_sender *resend_new(const sk_resend_options *o) {
  char err[256];
  sk_sender *s = sk_resend_new(base, o, err, sizeof err);
  if (s == NULL)
    fail_msg("sk_resend_new: %s", err);
  return s;
}

/* A plain email, as the compiler renders one. */
static void plain_email(call *c, const char *key, const char *to) {
  call_init(c, key);
  call_add(c, "to", to);
  call_add(c, "subject", "Welcome, \"Ada\"");
  call_add(c, "html", "<p>Hi Ada \xc3\xa9</p>\n");
  call_add(c, "text", "Hi Ada\ttab");
  call_add(c, "reply_to", "help@example.com");
  call_add(c, "tag.loop", "activation");
  call_add(c, "tag.step", "1");
}

static void send_ok(sk_sender *s, call *c, answer *a) {
  sk_io io;
  memset(a, 0, sizeof *a);
  assert_int_equal(sk_sender_send(s, &c->c, on_done, a, &io), 0);
  assert_int_equal(a->calls, 0); /* never from inside sk_sender_send */
}

/* Exact bytes of a plain email: headers and body, fixed key order, escapes, default from. */
static void test_resend_bytes_plain(void **state) {
  (void)state;
  sk_resend_options o = resend_opts();
  o.default_from = "Acme <hi@acme.test>";
  sk_sender *s = resend_new(&o);
  call c;
  answer a;
  plain_email(&c, "sk_00112233aabbccdd", "ada@example.com");
  send_ok(s, &c, &a);
  assert_int_equal(sk_sender_in_flight(s), 1);
  RUN_UNTIL(a.calls == 1, 3000);
  assert_true(a.ok);
  assert_string_equal(a.result, "id-ada@example.com");
  assert_int_equal(sk_sender_in_flight(s), 0);
  const char *body =
      "{\"from\":\"Acme <hi@acme.test>\",\"to\":\"ada@example.com\","
      "\"subject\":\"Welcome, \\\"Ada\\\"\",\"html\":\"<p>Hi Ada \xc3\xa9</p>\\n\","
      "\"text\":\"Hi Ada\\ttab\",\"reply_to\":\"help@example.com\","
      "\"tags\":[{\"name\":\"loop\",\"value\":\"activation\"},{\"name\":\"step\",\"value\":\"1\"}]}";
  char want[2048];
  snprintf(want, sizeof want,
           "POST /emails HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: skene/0.1\r\n"
           "Accept: */*\r\nAuthorization: Bearer " API_KEY "\r\n"
           "Content-Type: application/json\r\nIdempotency-Key: sk_00112233aabbccdd\r\n"
           "Content-Length: %zu\r\n\r\n%s",
           srv.port, strlen(body), body);
  assert_int_equal(srv.nreqs, 1);
  assert_string_equal(srv.reqs[0].raw, want);
  call_free(&c);
  sk_sender_free(s);
}

/* Exact bytes of a template email: {from, to, template: {id, variables}}, the call's own from. */
static void test_resend_bytes_template(void **state) {
  (void)state;
  sk_resend_options o = resend_opts();
  o.default_from = "Acme <hi@acme.test>";
  sk_sender *s = resend_new(&o);
  call c;
  answer a;
  call_init(&c, "sk_template00000001");
  call_add(&c, "to", "bob@example.com");
  call_add(&c, "from", "Team <team@acme.test>");
  call_add(&c, "template", "welcome-v2");
  call_add(&c, "var.NAME", "Bob");
  call_add(&c, "var.PLAN", "pro");
  send_ok(s, &c, &a);
  RUN_UNTIL(a.calls == 1, 3000);
  assert_true(a.ok);
  const char *body = "{\"from\":\"Team <team@acme.test>\",\"to\":\"bob@example.com\","
                     "\"template\":{\"id\":\"welcome-v2\",\"variables\":{\"NAME\":\"Bob\","
                     "\"PLAN\":\"pro\"}}}";
  char want[2048];
  snprintf(want, sizeof want,
           "POST /emails HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: skene/0.1\r\n"
           "Accept: */*\r\nAuthorization: Bearer " API_KEY "\r\n"
           "Content-Type: application/json\r\nIdempotency-Key: sk_template00000001\r\n"
           "Content-Length: %zu\r\n\r\n%s",
           srv.port, strlen(body), body);
  assert_string_equal(srv.reqs[0].raw, want);
  call_free(&c);
  sk_sender_free(s);
}

/* 500, 500, then 200: transient twice with the same key each time, then ok. */
static void test_resend_500_500(void **state) {
  (void)state;
  sk_resend_options o = resend_opts();
  o.default_from = "a@acme.test";
  sk_sender *s = resend_new(&o);
  call c;
  answer a;
  plain_email(&c, "sk_retry0000000001", "ada@example.com");
  const char *err500 = "{\"statusCode\":500,\"name\":\"application_error\",\"message\":\"Something "
                       "went wrong.\"}";
  srv_push((srv_answer){.status = 500, .body = err500});
  srv_push((srv_answer){.status = 500, .body = err500});
  for (int i = 0; i < 3; i++) {
    send_ok(s, &c, &a);
    RUN_UNTIL(a.calls == 1, 3000);
    if (i < 2) {
      assert_false(a.ok);
      assert_true(a.transient);
      assert_int_equal(a.retry_after_ms, 0);
      assert_string_equal(a.reason,
                          "resend: HTTP 500 application_error: Something went wrong.");
    } else {
      assert_true(a.ok);
      assert_string_equal(a.result, "id-ada@example.com");
    }
  }
  assert_int_equal(srv.nreqs, 3);
  for (int i = 0; i < 3; i++) {
    assert_string_equal(srv_header(&srv.reqs[i], "Idempotency-Key"), "sk_retry0000000001");
    assert_string_equal(srv.reqs[i].body, srv.reqs[0].body);
  }
  call_free(&c);
  sk_sender_free(s);
}

/* 429 with retry-after: transient with its delay, and the bucket pauses the next send for it. */
static void test_resend_429(void **state) {
  (void)state;
  sk_resend_options o = resend_opts();
  o.default_from = "a@acme.test";
  sk_sender *s = resend_new(&o);
  call c1, c2;
  answer a1, a2;
  plain_email(&c1, "sk_429_a", "a@example.com");
  plain_email(&c2, "sk_429_b", "b@example.com");
  srv_push((srv_answer){.status = 429,
                        .headers = {"retry-after: 1", "ratelimit-limit: 2",
                                    "ratelimit-remaining: 0", "ratelimit-reset: 1"},
                        .body = "{\"statusCode\":429,\"name\":\"rate_limit_exceeded\",\"message\":"
                                "\"Too many requests. You can only make 2 requests per second.\"}"});
  send_ok(s, &c1, &a1);
  RUN_UNTIL(a1.calls == 1, 3000);
  assert_false(a1.ok);
  assert_true(a1.transient);
  assert_int_equal(a1.retry_after_ms, 1000);
  assert_string_equal(a1.reason, "resend: HTTP 429 rate_limit_exceeded: Too many requests. You can "
                                 "only make 2 requests per second.");
  int64_t t0 = srv.reqs[0].at_us;
  send_ok(s, &c2, &a2);
  RUN_UNTIL(a2.calls == 1, 3000);
  assert_true(a2.ok);
  assert_int_equal(srv.nreqs, 2);
  assert_true(srv.reqs[1].at_us - t0 >= 950000); /* waited for the retry-after */
  call_free(&c1);
  call_free(&c2);
  sk_sender_free(s);
}

/* retry-after as an HTTP date, on a 503. */
static void test_resend_retry_after_date(void **state) {
  (void)state;
  sk_resend_options o = resend_opts();
  o.default_from = "a@acme.test";
  sk_sender *s = resend_new(&o);
  call c;
  answer a;
  char date[64], hdr[96];
  time_t at = time(NULL) + 30;
  struct tm tm;
  gmtime_r(&at, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  snprintf(hdr, sizeof hdr, "Retry-After: %s", date);
  srv_push((srv_answer){.status = 503, .headers = {hdr}, .body = "busy"});
  plain_email(&c, "sk_503", "a@example.com");
  send_ok(s, &c, &a);
  RUN_UNTIL(a.calls == 1, 3000);
  assert_true(a.transient);
  assert_true(a.retry_after_ms >= 28000 && a.retry_after_ms <= 30000);
  assert_string_equal(a.reason, "resend: HTTP 503");
  call_free(&c);
  sk_sender_free(s);
}

/* Permanent: 422 with Resend's message; 401. Transient: 408, 409 concurrent_idempotent_requests.
   Done: 409 invalid_idempotent_request (sent before under this key, with other content). A message
   that echoes the key is scrubbed. */
static void test_resend_classes(void **state) {
  (void)state;
  static const struct {
    int status;
    const char *body;
    int transient;
    const char *reason;
    int ok;
  } cases[] = {
      {422,
       "{\"statusCode\":422,\"name\":\"validation_error\",\"message\":\"Invalid `to` field. The "
       "email address needs to follow the `email@example.com` format.\"}",
       0,
       "resend: HTTP 422 validation_error: Invalid `to` field. The email address needs to follow "
       "the `email@example.com` format.", 0},
      {409,
       "{\"statusCode\":409,\"name\":\"invalid_idempotent_request\",\"message\":\"Same idempotency "
       "key used with a different request payload.\"}",
       0,
       "resend: already sent under this idempotency key with other content (rendered again after "
       "a restart); not sent again",
       1},
      {409,
       "{\"statusCode\":409,\"name\":\"concurrent_idempotent_requests\",\"message\":\"Same "
       "idempotency key used while original request is still in progress.\"}",
       1,
       "resend: HTTP 409 concurrent_idempotent_requests: Same idempotency key used while original "
       "request is still in progress.", 0},
      {401,
       "{\"statusCode\":401,\"name\":\"missing_api_key\",\"message\":\"Bad key " API_KEY "!\"}", 0,
       "resend: HTTP 401 missing_api_key: Bad key [redacted]!", 0},
      {408, "", 1, "resend: HTTP 408", 0},
      {404, "<html>not json</html>", 0, "resend: HTTP 404", 0},
  };
  sk_resend_options o = resend_opts();
  o.default_from = "a@acme.test";
  sk_sender *s = resend_new(&o);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    call c;
    answer a;
    srv_push((srv_answer){.status = cases[i].status, .body = cases[i].body});
    plain_email(&c, "sk_class", "a@example.com");
    send_ok(s, &c, &a);
    RUN_UNTIL(a.calls == 1, 3000);
    assert_int_equal(a.ok, cases[i].ok);
    assert_int_equal(a.transient, cases[i].transient);
    assert_string_equal(a.reason, cases[i].reason);
    call_free(&c);
  }
  sk_sender_free(s);
}

/* The connection dropped after the server read the request: transient (it may have been sent;
   the idempotency key makes the retry safe). */
static void test_resend_dropped(void **state) {
  (void)state;
  sk_resend_options o = resend_opts();
  o.default_from = "a@acme.test";
  sk_sender *s = resend_new(&o);
  call c;
  answer a;
  srv_push((srv_answer){.action = SRV_DROP});
  plain_email(&c, "sk_drop", "a@example.com");
  send_ok(s, &c, &a);
  RUN_UNTIL(a.calls == 1, 3000);
  assert_false(a.ok);
  assert_true(a.transient);
  assert_int_equal(strncmp(a.reason, "resend: ", 8), 0);
  assert_true(strlen(a.reason) > 8);
  assert_int_equal(srv.nreqs, 1);
  call_free(&c);
  sk_sender_free(s);
}

/* No from at all, no to: permanent, from the loop, and no request is made. */
static void test_resend_refused_emails(void **state) {
  (void)state;
  sk_resend_options o = resend_opts();
  sk_sender *s = resend_new(&o);
  call c1, c2;
  answer a1, a2;
  plain_email(&c1, "sk_nofrom", "a@example.com");
  call_init(&c2, "sk_noto");
  call_add(&c2, "from", "a@acme.test");
  call_add(&c2, "subject", "x");
  send_ok(s, &c1, &a1);
  send_ok(s, &c2, &a2);
  assert_int_equal(sk_sender_in_flight(s), 2);
  RUN_UNTIL(a1.calls == 1 && a2.calls == 1, 3000);
  assert_false(a1.ok || a1.transient || a2.ok || a2.transient);
  assert_string_equal(a1.reason,
                      "resend: no from address: set the email's `from` or SKENE_EMAIL_FROM");
  assert_string_equal(a2.reason, "resend: no recipient: the email has no `to`");
  assert_int_equal(srv.nreqs, 0);
  call_free(&c1);
  call_free(&c2);
  sk_sender_free(s);
}

/* A refused configuration says why, without the key. */
static void test_resend_new_refusals(void **state) {
  (void)state;
  char err[256];
  sk_resend_options o = resend_opts();
  o.api_key = NULL;
  assert_null(sk_resend_new(base, &o, err, sizeof err));
  assert_string_equal(err, "resend: no API key (RESEND_API_KEY)");
  o = resend_opts();
  o.api_url = "ftp://example.com";
  assert_null(sk_resend_new(base, &o, err, sizeof err));
  assert_non_null(strstr(err, "RESEND_API_URL"));
  assert_null(strstr(err, API_KEY));
  setenv("SKENE_RESEND_RPS", "fast", 1);
  o = resend_opts();
  assert_int_equal(sk_resend_options_from_env(&o, err, sizeof err), -1);
  assert_string_equal(err, "bad SKENE_RESEND_RPS 'fast': expected requests a second, e.g. 2");
  setenv("SKENE_RESEND_RPS", "3.5", 1);
  setenv("SKENE_RESEND_BURST", "2", 1);
  assert_int_equal(sk_resend_options_from_env(&o, err, sizeof err), 0);
  assert_true(o.rps == 3.5 && o.burst == 2);
  unsetenv("SKENE_RESEND_RPS");
  unsetenv("SKENE_RESEND_BURST");
}

/* Free with sends queued and in flight: no callback ever; and a callback that frees the sender. */
static sk_sender *freeing;

static void on_done_free(const sk_io *io, void *privdata) {
  on_done(io, privdata);
  sk_sender_free(freeing);
  freeing = NULL;
}

static void test_resend_free(void **state) {
  (void)state;
  sk_resend_options o = resend_opts();
  o.default_from = "a@acme.test";
  o.rps = 2;
  o.burst = 1;
  o.batch = 0;
  sk_sender *s = resend_new(&o);
  call c[3];
  answer a[3];
  srv_push((srv_answer){.action = SRV_DELAY, .delay_ms = 200, .status = 200, .body = "{}"});
  for (int i = 0; i < 3; i++) {
    plain_email(&c[i], "sk_free", "a@example.com");
    send_ok(s, &c[i], &a[i]);
  }
  RUN_UNTIL(srv.nreqs == 1, 3000); /* one in flight, two queued */
  assert_int_equal(sk_sender_in_flight(s), 3);
  sk_sender_free(s);
  run_for(700);
  for (int i = 0; i < 3; i++)
    assert_int_equal(a[i].calls, 0);
  assert_int_equal(sk_http_in_flight(client), 0);

  /* freed from inside the first callback of a batch: the other members are not called back */
  o.batch = 1;
  o.rps = 1000;
  s = freeing = resend_new(&o);
  for (int i = 0; i < 3; i++) {
    sk_io io;
    memset(&a[i], 0, sizeof a[i]);
    assert_int_equal(sk_sender_send(s, &c[i].c, on_done_free, &a[i], &io), 0);
  }
  RUN_UNTIL(a[0].calls == 1, 3000);
  run_for(100);
  assert_int_equal(a[1].calls + a[2].calls, 0);
  assert_null(freeing);
  for (int i = 0; i < 3; i++)
    call_free(&c[i]);
}

/* ==== the local bucket ==== */

/* Requests in the busiest window of `win_us` among the recorded ones (from index from). */
static int busiest(size_t from, int64_t win_us) {
  int best = 0;
  for (size_t i = from; i < srv.nreqs; i++) {
    int n = 0;
    for (size_t j = i; j < srv.nreqs && srv.reqs[j].at_us - srv.reqs[i].at_us < win_us; j++)
      n++;
    if (n > best)
      best = n;
  }
  return best;
}

/* 100 sends at 50/s (one at a time, no batching): about 2 s, never faster than the rate. */
static void test_bucket_rate(void **state) {
  (void)state;
  enum { N = 100 };
  sk_resend_options o = resend_opts();
  o.default_from = "a@acme.test";
  o.rps = 50;
  o.burst = 1;
  o.batch = 0;
  sk_sender *s = resend_new(&o);
  static call c[N];
  static answer a[N];
  int64_t t0 = mono_us();
  for (int i = 0; i < N; i++) {
    char to[32];
    snprintf(to, sizeof to, "u%d@example.com", i);
    plain_email(&c[i], "sk_rate", to);
    send_ok(s, &c[i], &a[i]);
  }
  int done = 0;
  RUN_UNTIL((done = (int)srv.nreqs) == N && a[N - 1].calls == 1, 6000);
  int64_t span = srv.reqs[N - 1].at_us - srv.reqs[0].at_us;
  int64_t total = mono_us() - t0;
  /* 99 intervals of 20 ms: 1.98 s; loopback adds a little, the bucket never takes less */
  assert_true(span >= 1900000);
  assert_true(total < 3500000);
  assert_true(busiest(0, 200000) <= 11); /* 50/s: 10 in 200 ms, + the one at the edge */
  assert_true(busiest(0, 1000000) <= 51);
  for (int i = 0; i < N; i++) {
    assert_true(a[i].ok);
    call_free(&c[i]);
  }
  /* in FIFO order */
  for (int i = 0; i < N; i++) {
    char to[48];
    snprintf(to, sizeof to, "\"to\":\"u%d@example.com\"", i);
    assert_non_null(strstr(srv.reqs[i].body, to));
  }
  sk_sender_free(s);
}

/* The bucket follows the provider: a lower ratelimit-limit lowers the rate; remaining 0 with a
   reset longer than a second pauses takes until then. */
static unsigned granted;
static int64_t granted_at;

static void on_grant(unsigned n, void *privdata) {
  (void)privdata;
  granted += n;
  granted_at = mono_us();
}

static void test_bucket_observe(void **state) {
  (void)state;
  sk_bucket *b = sk_bucket_new(base, "resend", 10, 3, NULL, NULL);
  assert_non_null(b);
  assert_null(sk_bucket_new(base, "resend", 0, 1, NULL, NULL));
  assert_null(sk_bucket_new(base, "resend", 1, 0, NULL, NULL));
  /* a full bucket: 3 at once, from the loop */
  granted = 0;
  assert_int_equal(sk_bucket_take(b, 5, on_grant, NULL), 0);
  assert_int_equal(sk_bucket_take(b, 5, on_grant, NULL), -1); /* one ask at a time */
  assert_int_equal(granted, 0);
  RUN_UNTIL(granted > 0, 1000);
  assert_int_equal(granted, 3);
  sk_bucket_observe(b, 4, -1, -1, 0);
  assert_true(sk_bucket_rate(b) == 4.0);
  sk_bucket_observe(b, 100, -1, -1, 0); /* never above the option */
  assert_true(sk_bucket_rate(b) == 10.0);
  sk_bucket_observe(b, -1, 0, 1500, 0);
  int64_t t0 = mono_us();
  granted = 0;
  assert_int_equal(sk_bucket_take(b, 1, on_grant, NULL), 0);
  RUN_UNTIL(granted > 0, 3000);
  assert_true(granted_at - t0 >= 1400000);
  /* cancel: no grant */
  granted = 0;
  sk_bucket_observe(b, -1, -1, -1, 300);
  assert_int_equal(sk_bucket_take(b, 1, on_grant, NULL), 0);
  sk_bucket_cancel(b);
  run_for(500);
  assert_int_equal(granted, 0);
  sk_bucket_free(b);
}

/* ==== batching ==== */

/* 250 emails queued at once, one token a second after the first: three batches (100, 100, 50),
   permissive, keyed by their members; one member's error is that member's only. */
static void test_batch_250(void **state) {
  (void)state;
  enum { N = 250 };
  sk_resend_options o = resend_opts();
  o.default_from = "a@acme.test";
  o.rps = 5;
  o.burst = 1;
  sk_sender *s = resend_new(&o);
  static call c[N];
  static answer a[N];
  static char keys[N][40];
  for (int i = 0; i < N; i++) {
    char to[32];
    snprintf(to, sizeof to, i == 137 ? "bad-%d" : "u%d@example.com", i);
    snprintf(keys[i], sizeof keys[i], "sk_%016x", i);
    plain_email(&c[i], keys[i], to);
    send_ok(s, &c[i], &a[i]);
  }
  assert_int_equal(sk_sender_in_flight(s), N);
  int all = 0;
  RUN_UNTIL((all = (int)(a[N - 1].calls + a[0].calls + a[150].calls)) == 3, 3000);
  assert_int_equal(srv.nreqs, 3);
  size_t sizes[3] = {100, 100, 50};
  for (int r = 0; r < 3; r++) {
    assert_string_equal(srv.reqs[r].target, "/emails/batch");
    assert_string_equal(srv_header(&srv.reqs[r], "x-batch-validation"), "permissive");
    json_t *j = json_loadb(srv.reqs[r].body, srv.reqs[r].body_len, 0, NULL);
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), sizes[r]);
    json_decref(j);
    /* the key: xxh3-64 of the member keys in order, each with a '\n' */
    char buf[100 * 41], want[32];
    size_t len = 0;
    for (size_t i = 0; i < sizes[r]; i++) {
      size_t kl = strlen(keys[r * 100 + i]);
      assert_true(len + kl + 1 <= sizeof buf);
      memcpy(buf + len, keys[r * 100 + i], kl);
      buf[len + kl] = '\n';
      len += kl + 1;
    }
    snprintf(want, sizeof want, "skb_%016llx", (unsigned long long)XXH3_64bits(buf, len));
    assert_string_equal(srv_header(&srv.reqs[r], "Idempotency-Key"), want);
  }
  /* the body is the members' bodies, in order, in an array */
  assert_non_null(strstr(srv.reqs[0].body, "[{\"from\":\"a@acme.test\",\"to\":\"u0@example.com\""));
  assert_true(srv.reqs[2].at_us - srv.reqs[0].at_us >= 350000); /* two more tokens at 5/s */
  for (int i = 0; i < N; i++) {
    char want[64];
    assert_int_equal(a[i].calls, 1);
    if (i == 137) {
      assert_false(a[i].ok || a[i].transient);
      assert_string_equal(a[i].reason,
                          "resend: rejected in batch: Invalid `to` field. The email address "
                          "needs to follow the `email@example.com` format.");
      continue;
    }
    snprintf(want, sizeof want, "id-u%d@example.com", i);
    assert_true(a[i].ok);
    assert_string_equal(a[i].result, want); /* its own id, also after the failed member */
  }
  sk_resend_stats st;
  sk_resend_get_stats(s, &st);
  assert_int_equal(st.requests, 3);
  assert_int_equal(st.batches, 3);
  assert_int_equal(st.emails, N);
  for (int i = 0; i < N; i++)
    call_free(&c[i]);
  sk_sender_free(s);
}

/* A failed batch request fails every member the same way. */
static void test_batch_failure(void **state) {
  (void)state;
  sk_resend_options o = resend_opts();
  o.default_from = "a@acme.test";
  sk_sender *s = resend_new(&o);
  call c[3];
  answer a[3];
  srv_push((srv_answer){.status = 503, .headers = {"retry-after: 7"}, .body = "{}"});
  for (int i = 0; i < 3; i++) {
    plain_email(&c[i], i == 0 ? "sk_f0" : i == 1 ? "sk_f1" : "sk_f2", "a@example.com");
    send_ok(s, &c[i], &a[i]);
  }
  RUN_UNTIL(a[2].calls == 1, 3000);
  assert_int_equal(srv.nreqs, 1);
  for (int i = 0; i < 3; i++) {
    assert_true(a[i].transient);
    assert_int_equal(a[i].retry_after_ms, 7000);
    assert_string_equal(a[i].reason, "resend: HTTP 503");
    call_free(&c[i]);
  }
  sk_sender_free(s);
}

/* Template emails go alone, plain ones together; batching off sends each alone. */
static void test_batch_templates_alone(void **state) {
  (void)state;
  sk_resend_options o = resend_opts();
  o.default_from = "a@acme.test";
  sk_sender *s = resend_new(&o);
  call c[5];
  answer a[5];
  for (int i = 0; i < 5; i++) {
    char to[32];
    snprintf(to, sizeof to, "t%d@example.com", i);
    if (i % 2 == 1) {
      call_init(&c[i], "sk_tpl");
      call_add(&c[i], "to", to);
      call_add(&c[i], "template", "tpl-1");
    } else {
      plain_email(&c[i], "sk_plain", to);
    }
    send_ok(s, &c[i], &a[i]);
  }
  RUN_UNTIL(a[0].calls + a[1].calls + a[2].calls + a[3].calls + a[4].calls == 5, 3000);
  assert_int_equal(srv.nreqs, 3);
  int batches = 0, singles = 0;
  for (size_t r = 0; r < srv.nreqs; r++) {
    if (strcmp(srv.reqs[r].target, "/emails/batch") == 0) {
      batches++;
      assert_null(strstr(srv.reqs[r].body, "template"));
    } else {
      singles++;
      assert_non_null(strstr(srv.reqs[r].body, "\"template\":{\"id\":\"tpl-1\""));
    }
  }
  assert_int_equal(batches, 1);
  assert_int_equal(singles, 2);
  for (int i = 0; i < 5; i++) {
    char want[48];
    snprintf(want, sizeof want, "id-t%d@example.com", i);
    assert_true(a[i].ok);
    assert_string_equal(a[i].result, want);
    call_free(&c[i]);
  }
  sk_sender_free(s);
}

/* The record hook: the batch is sent only once it says done; an error fails the members. */
static struct {
  int calls;
  char key[32];
  size_t n;
  char first[40];
  sk_resend_recorded_fn done;
  void *ctx;
} rec;

static void record_hook(const char *batch_key, const char *const *member_keys, size_t n,
                        const char *body, size_t len, void *privdata, sk_resend_recorded_fn done,
                        void *ctx) {
  (void)privdata;
  assert_true(len > 2 && body[0] == '[' && body[len - 1] == ']');
  rec.calls++;
  snprintf(rec.key, sizeof rec.key, "%s", batch_key);
  snprintf(rec.first, sizeof rec.first, "%s", member_keys[0]);
  rec.n = n;
  rec.done = done;
  rec.ctx = ctx;
}

static void test_batch_record_hook(void **state) {
  (void)state;
  sk_resend_options o = resend_opts();
  o.default_from = "a@acme.test";
  o.record_batch = record_hook;
  sk_sender *s = resend_new(&o);
  call c[2];
  answer a[2];
  memset(&rec, 0, sizeof rec);
  plain_email(&c[0], "sk_rec0", "a@example.com");
  plain_email(&c[1], "sk_rec1", "b@example.com");
  send_ok(s, &c[0], &a[0]);
  send_ok(s, &c[1], &a[1]);
  RUN_UNTIL(rec.calls == 1, 3000);
  run_for(200);
  assert_int_equal(srv.nreqs, 0); /* not before the hook says done */
  assert_int_equal(rec.n, 2);
  assert_string_equal(rec.first, "sk_rec0");
  assert_int_equal(sk_sender_in_flight(s), 2);
  rec.done(rec.ctx, NULL);
  RUN_UNTIL(a[1].calls == 1, 3000);
  assert_int_equal(srv.nreqs, 1);
  assert_string_equal(srv_header(&srv.reqs[0], "Idempotency-Key"), rec.key);
  assert_true(a[0].ok && a[1].ok);
  /* an error: every member transient, nothing sent */
  send_ok(s, &c[0], &a[0]);
  send_ok(s, &c[1], &a[1]);
  RUN_UNTIL(rec.calls == 2, 3000);
  rec.done(rec.ctx, "READONLY You can't write against a read only replica.");
  RUN_UNTIL(a[0].calls == 1 && a[1].calls == 1, 3000);
  assert_int_equal(srv.nreqs, 1);
  assert_true(a[0].transient && a[1].transient);
  assert_string_equal(a[0].reason, "resend: could not record the batch: READONLY You can't write "
                                   "against a read only replica.");
  /* freed while the hook runs: done afterwards frees what is left, calls nobody */
  send_ok(s, &c[0], &a[0]);
  send_ok(s, &c[1], &a[1]);
  RUN_UNTIL(rec.calls == 3, 3000);
  sk_sender_free(s);
  rec.done(rec.ctx, NULL);
  run_for(100);
  assert_int_equal(a[0].calls + a[1].calls, 0);
  assert_int_equal(srv.nreqs, 1);
  call_free(&c[0]);
  call_free(&c[1]);
}

/* A batch whose request may have reached Resend (the connection dropped after the server read
   it) is sent again as it was when one member is retried; the other members then get their
   answers from it without a request of their own. */
static void test_batch_replay(void **state) {
  (void)state;
  sk_resend_options o = resend_opts();
  o.default_from = "a@acme.test";
  sk_sender *s = resend_new(&o);
  call c[3], other;
  answer a[3], ao;
  const char *keys[3] = {"sk_rp0", "sk_rp1", "sk_rp2"};
  srv_push((srv_answer){.action = SRV_DROP});
  for (int i = 0; i < 3; i++) {
    char to[32];
    snprintf(to, sizeof to, "r%d@example.com", i);
    plain_email(&c[i], keys[i], to);
    send_ok(s, &c[i], &a[i]);
  }
  RUN_UNTIL(a[0].calls + a[1].calls + a[2].calls == 3, 3000);
  for (int i = 0; i < 3; i++)
    assert_true(a[i].transient);
  assert_int_equal(sk_resend_remembered_batches(s), 1);
  assert_int_equal(srv.nreqs, 1);
  char first_key[64];
  snprintf(first_key, sizeof first_key, "%s", srv_header(&srv.reqs[0], "Idempotency-Key"));
  /* member 1 is retried, alone, with a new email next to it: the batch goes as it was, the new
     email by itself */
  plain_email(&other, "sk_other", "o@example.com");
  send_ok(s, &c[1], &a[1]);
  send_ok(s, &other, &ao);
  assert_int_equal(sk_sender_in_flight(s), 2);
  RUN_UNTIL(a[1].calls == 1 && ao.calls == 1, 3000);
  assert_int_equal(srv.nreqs, 3);
  int k = strcmp(srv.reqs[1].target, "/emails/batch") == 0 ? 1 : 2;
  const srv_req *again = &srv.reqs[k];
  const srv_req *single = again == &srv.reqs[1] ? &srv.reqs[2] : &srv.reqs[1];
  assert_string_equal(again->target, "/emails/batch");
  assert_string_equal(srv_header(again, "Idempotency-Key"), first_key);
  assert_int_equal(again->body_len, srv.reqs[0].body_len);
  assert_memory_equal(again->body, srv.reqs[0].body, again->body_len);
  assert_string_equal(single->target, "/emails");
  assert_true(a[1].ok);
  assert_string_equal(a[1].result, "id-r1@example.com");
  assert_true(ao.ok);
  /* the others: answered from what the batch said, no request */
  send_ok(s, &c[0], &a[0]);
  send_ok(s, &c[2], &a[2]);
  RUN_UNTIL(a[0].calls == 1 && a[2].calls == 1, 3000);
  assert_int_equal(srv.nreqs, 3);
  assert_string_equal(a[0].result, "id-r0@example.com");
  assert_string_equal(a[2].result, "id-r2@example.com");
  assert_int_equal(sk_resend_remembered_batches(s), 0); /* every member had its answer */
  assert_int_equal(sk_sender_in_flight(s), 0);
  /* after a 429 (not sent) nothing is remembered: a retry batches anew */
  srv_push((srv_answer){.status = 429, .body = "{}"});
  for (int i = 0; i < 3; i++)
    send_ok(s, &c[i], &a[i]);
  RUN_UNTIL(a[0].calls + a[1].calls + a[2].calls == 3, 3000);
  assert_true(a[0].transient);
  assert_int_equal(sk_resend_remembered_batches(s), 0);
  for (int i = 0; i < 3; i++)
    call_free(&c[i]);
  call_free(&other);
  sk_sender_free(s);
}

/* A batch recorded before a crash, adopted by a new sender: the first member's retry sends it as
   recorded; a permanent answer for the whole batch is every member's. Freed with one remembered:
   nothing leaks. */
static void test_batch_adopt(void **state) {
  (void)state;
  sk_resend_options o = resend_opts();
  o.default_from = "a@acme.test";
  sk_sender *s = resend_new(&o);
  const char *keys[2] = {"sk_ad0", "sk_ad1"};
  const char *body = "[{\"from\":\"a@acme.test\",\"to\":\"x@example.com\"},"
                     "{\"from\":\"a@acme.test\",\"to\":\"y@example.com\"}]";
  char key[21];
  assert_int_equal(sk_resend_batch_key(keys, 2, key), 0);
  assert_int_equal(sk_resend_adopt_batch(s, key, keys, 2, body, strlen(body)), 0);
  assert_int_equal(sk_resend_adopt_batch(s, key, keys, 2, body, strlen(body)), -1);
  assert_int_equal(sk_resend_adopt_batch(s, "nope", keys, 2, body, strlen(body)), -1);
  call c[2];
  answer a[2];
  plain_email(&c[1], "sk_ad1", "changed@example.com"); /* re-rendered differently: not used */
  send_ok(s, &c[1], &a[1]);
  RUN_UNTIL(a[1].calls == 1, 3000);
  assert_int_equal(srv.nreqs, 1);
  assert_string_equal(srv.reqs[0].target, "/emails/batch");
  assert_string_equal(srv.reqs[0].body, body);
  assert_string_equal(srv_header(&srv.reqs[0], "Idempotency-Key"), key);
  assert_string_equal(a[1].result, "id-y@example.com");
  /* a second adopted batch, answered 422 as a whole: permanent for both */
  const char *keys2[2] = {"sk_ad2", "sk_ad3"};
  assert_int_equal(sk_resend_batch_key(keys2, 2, key), 0);
  assert_int_equal(sk_resend_adopt_batch(s, key, keys2, 2, body, strlen(body)), 0);
  srv_push((srv_answer){.status = 422,
                        .body = "{\"name\":\"validation_error\",\"message\":\"bad\"}"});
  plain_email(&c[0], "sk_ad2", "x@example.com");
  send_ok(s, &c[0], &a[0]);
  RUN_UNTIL(a[0].calls == 1, 3000);
  assert_false(a[0].ok || a[0].transient);
  call c3;
  answer a3;
  plain_email(&c3, "sk_ad3", "y@example.com");
  send_ok(s, &c3, &a3);
  RUN_UNTIL(a3.calls == 1, 3000);
  assert_int_equal(srv.nreqs, 2);
  assert_string_equal(a3.reason, "resend: HTTP 422 validation_error: bad");
  /* sk_ad0 never asked: its batch is still remembered when the sender is freed */
  assert_int_equal(sk_resend_remembered_batches(s), 1);
  call_free(&c[0]);
  call_free(&c[1]);
  call_free(&c3);
  sk_sender_free(s);
}

/* ==== webhook ==== */

static sk_sender *webhook_new(void) {
  sk_webhook_options o = {.http = client};
  char err[128];
  sk_sender *s = sk_webhook_new(base, &o, err, sizeof err);
  assert_non_null(s);
  return s;
}

static void test_webhook_bytes(void **state) {
  (void)state;
  sk_sender *s = webhook_new();
  call c;
  answer a;
  call_init(&c, "sk_hook000000000001");
  call_add(&c, "url", srv_url("/hook?x=1"));
  call_add(&c, "header.Authorization", "Bearer product-token");
  call_add(&c, "header.X-Loop", "activation");
  call_add(&c, "body", "{\"user\":\"u1\",\"event\":\"activated\"}");
  send_ok(s, &c, &a);
  RUN_UNTIL(a.calls == 1, 3000);
  assert_true(a.ok);
  assert_string_equal(a.result, "200");
  char want[1024];
  snprintf(want, sizeof want,
           "POST /hook?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: skene/0.1\r\n"
           "Accept: */*\r\nAuthorization: Bearer product-token\r\nX-Loop: activation\r\n"
           "Content-Type: application/json\r\nIdempotency-Key: sk_hook000000000001\r\n"
           "Content-Length: 33\r\n\r\n{\"user\":\"u1\",\"event\":\"activated\"}",
           srv.port);
  assert_string_equal(srv.reqs[0].raw, want);
  call_free(&c);
  sk_sender_free(s);
}

static void test_webhook_classes(void **state) {
  (void)state;
  sk_sender *s = webhook_new();
  static const struct {
    int status;
    int transient;
    const char *reason;
  } cases[] = {{503, 1, "webhook: HTTP 503"}, {429, 1, "webhook: HTTP 429"},
               {404, 0, "webhook: HTTP 404"}, {301, 0, "webhook: HTTP 301"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    call c;
    answer a;
    srv_push((srv_answer){.status = cases[i].status, .body = "{\"message\":\"no\"}"});
    call_init(&c, "sk_h");
    call_add(&c, "url", srv_url("/hook"));
    call_add(&c, "body", "{}");
    send_ok(s, &c, &a);
    RUN_UNTIL(a.calls == 1, 3000);
    assert_false(a.ok);
    assert_int_equal(a.transient, cases[i].transient);
    assert_string_equal(a.reason, cases[i].reason);
    call_free(&c);
  }
  /* refused before sending: no url, a header with a line break, a reserved header */
  static const struct {
    const char *name, *value, *reason;
  } bad[] = {{NULL, NULL, "webhook: no url"},
             {"header.X-A", "1\r\nX-B: 2", "webhook: a header value has a line break"},
             {"header.Host", "evil.test",
              "webhook: a header sets Host, Content-Length, Transfer-Encoding, Connection, Expect "
              "or Idempotency-Key, which Skene sets itself"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    call c;
    answer a;
    call_init(&c, "sk_h");
    if (bad[i].name != NULL) {
      call_add(&c, "url", srv_url("/hook"));
      call_add(&c, bad[i].name, bad[i].value);
    }
    send_ok(s, &c, &a);
    RUN_UNTIL(a.calls == 1, 3000);
    assert_false(a.ok || a.transient);
    assert_string_equal(a.reason, bad[i].reason);
    call_free(&c);
  }
  /* a dropped connection: transient. This one was reused, and curl sends a request again on a
     new connection when a reused one closes before any answer: the second drop is the answer. */
  call c;
  answer a;
  srv_push((srv_answer){.action = SRV_DROP});
  srv_push((srv_answer){.action = SRV_DROP});
  call_init(&c, "sk_h");
  call_add(&c, "url", srv_url("/hook"));
  send_ok(s, &c, &a);
  RUN_UNTIL(a.calls == 1, 3000);
  assert_true(a.transient);
  call_free(&c);
  assert_int_equal(sk_sender_in_flight(s), 0);
  assert_int_equal(srv.nreqs, 6);
  assert_int_equal(srv.reqs[5].peer_port != srv.reqs[4].peer_port, 1);
  sk_sender_free(s);
}

/* ==== the shared bucket (Redis) ==== */

static const char *redis_url;

typedef sk_test_reply raw;

static raw cmd(sk_redis *r, int argc, const char **argv) { return redis_wait(r, argc, argv, NULL, 3000); }

static sk_redis *redis_connect(void) {
  sk_redis *r = sk_redis_new(base, redis_url, NULL);
  assert_non_null(r);
  RUN_UNTIL(sk_redis_is_ready(r), 3000);
  return r;
}

/* Two senders on two connections share one rate: 2 x 20 sends at 20/s take about 2 s together,
   and at most one EVALSHA goes to Redis per request. */
static void test_shared_two_senders(void **state) {
  (void)state;
  enum { N = 20 };
  sk_redis *r1 = redis_connect(), *r2 = redis_connect();
  const char *flush[] = {"FLUSHALL"}, *sflush[] = {"SCRIPT", "FLUSH"};
  cmd(r1, 1, flush);
  cmd(r1, 2, sflush);
  sk_resend_options o = resend_opts();
  o.default_from = "a@acme.test";
  o.rps = 20;
  o.burst = 1;
  o.batch = 0;
  o.key_prefix = "skt:";
  o.redis = r1;
  sk_sender *s1 = resend_new(&o);
  o.redis = r2;
  sk_sender *s2 = resend_new(&o);
  static call c[2 * N];
  static answer a[2 * N];
  for (int i = 0; i < 2 * N; i++) {
    char to[32];
    snprintf(to, sizeof to, "s%d-%d@example.com", i % 2, i);
    plain_email(&c[i], "sk_shared", to);
    send_ok(i % 2 == 0 ? s1 : s2, &c[i], &a[i]);
  }
  int left = 2 * N;
  RUN_UNTIL((left = (int)(2 * N - srv.nreqs)) == 0 && sk_sender_in_flight(s1) == 0 &&
                sk_sender_in_flight(s2) == 0,
            8000);
  int64_t span = srv.reqs[2 * N - 1].at_us - srv.reqs[0].at_us;
  assert_true(span >= 1850000); /* 39 intervals of 50 ms: 1.95 s */
  assert_true(busiest(0, 500000) <= 12);
  assert_true(busiest(0, 1000000) <= 22);
  /* both got their share of the tokens all along: in the first half, about half each */
  int from1 = 0;
  for (int i = 0; i < N; i++)
    from1 += strstr(srv.reqs[i].body, "\"to\":\"s0-") != NULL;
  assert_true(from1 >= N / 2 - 2 && from1 <= N / 2 + 2);
  for (int i = 0; i < 2 * N; i++) {
    assert_true(a[i].ok);
    call_free(&c[i]);
  }
  sk_resend_stats st1, st2;
  sk_resend_get_stats(s1, &st1);
  sk_resend_get_stats(s2, &st2);
  /* one EVALSHA per request (a reservation never comes back empty), + one EVAL per sender the
     first time (SCRIPT FLUSH) */
  assert_int_equal(st1.redis_commands, N + 1);
  assert_int_equal(st2.redis_commands, N + 1);
  /* the bucket is one hash under the prefix, with an expiry */
  const char *type[] = {"TYPE", "skt:ratelimit:resend"}, *pttl[] = {"PTTL", "skt:ratelimit:resend"};
  assert_string_equal(cmd(r1, 2, type).str, "hash");
  raw t = cmd(r1, 2, pttl);
  assert_true(t.integer > 59000 && t.integer <= 61000); /* a minute past the last slot */
  sk_sender_free(s1);
  sk_sender_free(s2);
  sk_redis_free(r1);
  sk_redis_free(r2);
}

/* Under load, one EVALSHA serves a batch of 100 emails: 250 emails cost a handful of commands. */
static void test_shared_batch_cost(void **state) {
  (void)state;
  enum { N = 250 };
  sk_redis *r = redis_connect();
  const char *flush[] = {"FLUSHALL"}, *sflush[] = {"SCRIPT", "FLUSH"};
  cmd(r, 1, flush);
  cmd(r, 2, sflush);
  sk_resend_options o = resend_opts();
  o.default_from = "a@acme.test";
  o.rps = 10;
  o.burst = 1;
  o.redis = r;
  sk_sender *s = resend_new(&o);
  static call c[N];
  static answer a[N];
  for (int i = 0; i < N; i++) {
    plain_email(&c[i], "sk_cost", "a@example.com");
    send_ok(s, &c[i], &a[i]);
  }
  RUN_UNTIL(sk_sender_in_flight(s) == 0, 5000);
  sk_resend_stats st;
  sk_resend_get_stats(s, &st);
  assert_int_equal(st.requests, 3);
  assert_int_equal(st.batches, 3);
  assert_int_equal(st.redis_commands, 4); /* 3 EVALSHA + 1 EVAL after NOSCRIPT */
  for (int i = 0; i < N; i++) {
    assert_true(a[i].ok);
    call_free(&c[i]);
  }
  sk_sender_free(s);
  sk_redis_free(r);
}

/* A retry-after seen by one worker pauses the other: it is passed on through the bucket. */
static void test_shared_pause(void **state) {
  (void)state;
  sk_redis *r1 = redis_connect(), *r2 = redis_connect();
  const char *flush[] = {"FLUSHALL"};
  cmd(r1, 1, flush);
  sk_resend_options o = resend_opts();
  o.default_from = "a@acme.test";
  o.rps = 50;
  o.burst = 1;
  o.batch = 0;
  o.redis = r1;
  sk_sender *s1 = resend_new(&o);
  o.redis = r2;
  sk_sender *s2 = resend_new(&o);
  call c1, c2, c3;
  answer a1, a2, a3;
  plain_email(&c1, "sk_p1", "a@example.com");
  plain_email(&c2, "sk_p2", "b@example.com");
  plain_email(&c3, "sk_p3", "c@example.com");
  srv_push((srv_answer){.status = 429, .headers = {"retry-after: 1"}, .body = "{}"});
  send_ok(s1, &c1, &a1);
  RUN_UNTIL(a1.calls == 1, 3000);
  assert_true(a1.transient);
  send_ok(s1, &c2, &a2); /* carries the pause to Redis */
  run_for(50);
  send_ok(s2, &c3, &a3); /* the other worker finds it there */
  RUN_UNTIL(a2.calls == 1 && a3.calls == 1, 3000);
  assert_int_equal(srv.nreqs, 3);
  assert_true(srv.reqs[1].at_us - srv.reqs[0].at_us >= 900000);
  assert_true(srv.reqs[2].at_us - srv.reqs[0].at_us >= 900000);
  call_free(&c1);
  call_free(&c2);
  call_free(&c3);
  sk_sender_free(s1);
  sk_sender_free(s2);
  sk_redis_free(r1);
  sk_redis_free(r2);
}

/* Redis gone: the local bucket serves, the emails go out, the reason is kept. */
static void test_shared_redis_down(void **state) {
  (void)state;
  sk_redis_options ro;
  sk_redis_options_init(&ro);
  ro.reconnect = 0;
  sk_redis *r = sk_redis_new(base, "redis://127.0.0.1:1", &ro);
  run_for(100);
  sk_bucket *b = sk_bucket_new(base, "resend", 100, 2, r, NULL);
  granted = 0;
  assert_int_equal(sk_bucket_take(b, 2, on_grant, NULL), 0);
  RUN_UNTIL(granted > 0, 3000);
  assert_int_equal(granted, 2);
  assert_non_null(strstr(sk_bucket_errstr(b), "rate limit: Redis is not connected"));
  sk_bucket_free(b);
  sk_redis_free(r);
}

/* A bucket freed with its EVALSHA in flight: the reply finds nobody, nothing leaks. */
static void test_shared_free_in_flight(void **state) {
  (void)state;
  sk_redis *r = redis_connect();
  sk_bucket *b = sk_bucket_new(base, "resend", 10, 1, r, "skt:");
  granted = 0;
  assert_int_equal(sk_bucket_take(b, 1, on_grant, NULL), 0);
  RUN_UNTIL(sk_bucket_redis_commands(b) == 1, 3000);
  sk_bucket_free(b);
  run_for(200);
  assert_int_equal(granted, 0);
  sk_redis_free(r);
}

/* ==== main ==== */

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  const char *group = argc > 1 ? argv[1] : "";
  const struct CMUnitTest transport[] = {
      T(test_get),          T(test_keepalive),      T(test_post_bytes),
      T(test_connect_timeout), T(test_total_timeout), T(test_body_cap),
      T(test_dropped),      T(test_errors_from_loop), T(test_cancel_and_free),
      T(test_free_in_callback), T(test_tls),
  };
  const struct CMUnitTest resend[] = {
      T(test_resend_bytes_plain), T(test_resend_bytes_template), T(test_resend_500_500),
      T(test_resend_429),         T(test_resend_retry_after_date), T(test_resend_classes),
      T(test_resend_dropped),     T(test_resend_refused_emails), T(test_resend_new_refusals),
      T(test_resend_free),
  };
  const struct CMUnitTest bucket[] = {T(test_bucket_rate), T(test_bucket_observe)};
  const struct CMUnitTest batch[] = {T(test_batch_250),         T(test_batch_failure),
                                     T(test_batch_templates_alone), T(test_batch_record_hook),
                                     T(test_batch_replay),      T(test_batch_adopt)};
  const struct CMUnitTest webhook[] = {T(test_webhook_bytes), T(test_webhook_classes)};
  const struct CMUnitTest shared[] = {T(test_shared_two_senders), T(test_shared_batch_cost),
                                      T(test_shared_pause), T(test_shared_redis_down),
                                      T(test_shared_free_in_flight)};
  if (strcmp(group, "transport") == 0)
    return cmocka_run_group_tests_name("transport", transport, NULL, NULL);
  if (strcmp(group, "resend") == 0)
    return cmocka_run_group_tests_name("resend", resend, NULL, NULL);
  if (strcmp(group, "bucket") == 0)
    return cmocka_run_group_tests_name("bucket", bucket, NULL, NULL);
  if (strcmp(group, "batch") == 0)
    return cmocka_run_group_tests_name("batch", batch, NULL, NULL);
  if (strcmp(group, "webhook") == 0)
    return cmocka_run_group_tests_name("webhook", webhook, NULL, NULL);
  if (strcmp(group, "shared") == 0) {
    redis_url = getenv("SKENE_TEST_REDIS_URL");
    if (redis_url == NULL || redis_url[0] == '\0') {
      fprintf(stderr, "test_http shared: SKENE_TEST_REDIS_URL is not set: run it through "
                      "tests/redis/with-redis.sh\n");
      return 1;
    }
    return cmocka_run_group_tests_name("shared", shared, NULL, NULL);
  }
  fprintf(stderr, "usage: test_http transport|resend|bucket|batch|webhook|shared\n");
  return 2;
}
