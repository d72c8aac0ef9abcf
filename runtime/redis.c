/* redis.c: one pipelined, self-reconnecting connection to Redis on the caller's libevent loop.
 *
 * A connection goes IDLE -> TCP (our own non-blocking connect, each address getaddrinfo gives) ->
 * TLS (a bufferevent_openssl over the connected socket, rediss:// only) -> HANDSHAKE (AUTH and
 * SELECT pipelined, their replies checked) -> READY. Any failure closes the transport, fails the
 * commands in flight (CONN_LOST, TIMEOUT or PROTOCOL: they may have run) and goes back to IDLE
 * until a jittered exponential backoff (100 ms to 5 s) fires, or to FAILED for good when
 * options.reconnect is 0. Commands queued while not READY wait in `waiting` (bounded); written
 * commands wait for their reply in `inflight`, answered first in, first out. hiredis only formats
 * and parses; its reader's object functions are wrapped to cap bulk strings and arrays, and the
 * bytes it buffers for one unfinished reply are bounded too (hiredis 0.14 has no caps of its own).
 *
 * Re-entrancy: user callbacks run with r->depth > 0; sk_redis_free from inside one only marks the
 * connection, and the outermost entry point from libevent frees it when it unwinds (leave()).
 */
#define _POSIX_C_SOURCE 200809L

#include "redis.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

enum conn_state { ST_IDLE, ST_TCP, ST_TLS, ST_HANDSHAKE, ST_READY, ST_FAILED };
enum internal_cmd { CMD_USER = 0, CMD_AUTH, CMD_SELECT };
enum drop_kind { DROP_LOST, DROP_PROTOCOL, DROP_TIMEOUT };

typedef struct sk_cmd {
  struct sk_cmd *next;
  char *buf; /* the formatted command until it is written, then NULL */
  int len;
  int internal;      /* enum internal_cmd */
  int timeout_ms;    /* 0: none */
  uint64_t deadline; /* monotonic ms; 0: none */
  sk_redis_callback cb;
  void *privdata;
} sk_cmd;

typedef struct cmd_list {
  sk_cmd *head, *tail;
  size_t n;
} cmd_list;

struct sk_redis {
  struct event_base *base;
  sk_redis_url *url;    /* NULL when the URL was bad */
  sk_redis_options opt; /* url_name and ca_file point to the copies below */
  char *url_name, *ca_file;
  char hostport[300]; /* "host:port" or "[v6]:port", for messages */
  SSL_CTX *ssl_ctx;   /* rediss:// only */

  enum conn_state state;
  struct addrinfo *ai, *ai_next; /* addresses being tried (ST_TCP) */
  int fd;                        /* the socket being connected (ST_TCP), else -1 */
  int last_errno;
  struct event *connect_ev; /* write-readiness of fd */
  struct bufferevent *bev;  /* from ST_TLS (or ST_HANDSHAKE for plain TCP) on */
  redisReader *reader;
  redisReplyObjectFunctions fns; /* hiredis's own, with the two wrappers below */
  void *(*create_string)(const redisReadTask *, char *, size_t);
  void *(*create_array)(const redisReadTask *, int);
  char cap_msg[160]; /* why a wrapper refused a reply element */

  struct event *connect_timer, *retry_timer, *tick_timer;
  uint64_t tick_at;  /* when tick_timer fires; 0: not armed */
  unsigned attempts; /* failures since the last READY, for the backoff */
  uint64_t rng;

  cmd_list waiting, inflight;
  int handshake_pending; /* AUTH / SELECT not yet answered */
  uint64_t sent;

  sk_redis_err err;
  char errstr[512];
  sk_redis_event_fn event_fn;
  void *event_priv;
  int depth, free_pending, closing;

  /* Subscriber mode (sk_redis_psubscribe): the PSUBSCRIBE command, written first on every
   * connection once ready; from then on (push_active) every reply goes to push_fn. */
  char *sub_buf;
  int sub_len;
  int push_active;
  sk_redis_push_fn push_fn;
  void *push_priv;

  /* sk_redis_set_presend: called before a command is queued (not while it runs) */
  void (*presend_fn)(void *);
  void *presend_arg;
  int in_presend;
};

static void destroy(sk_redis *r);
static void connect_start(sk_redis *r);

/* ---- small helpers ---- */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct timeval tv_ms(uint64_t ms) {
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
  return tv;
}

static void set_err(sk_redis *r, sk_redis_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(sk_redis *r, sk_redis_err err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->errstr, sizeof r->errstr, fmt, ap);
  va_end(ap);
  r->err = err;
}

static void list_push(cmd_list *l, sk_cmd *c) {
  c->next = NULL;
  if (l->tail != NULL)
    l->tail->next = c;
  else
    l->head = c;
  l->tail = c;
  l->n++;
}

static sk_cmd *list_pop(cmd_list *l) {
  sk_cmd *c = l->head;
  if (c == NULL)
    return NULL;
  l->head = c->next;
  if (l->head == NULL)
    l->tail = NULL;
  l->n--;
  c->next = NULL;
  return c;
}

static cmd_list list_take(cmd_list *l) {
  cmd_list all = *l;
  l->head = l->tail = NULL;
  l->n = 0;
  return all;
}

static void enter(sk_redis *r) {
  r->depth++;
}

/* Leaves a libevent entry point; frees r if a callback asked for it. r is invalid afterwards. */
static void leave(sk_redis *r) {
  assert(r->depth > 0);
  r->depth--;
  if (r->depth == 0 && r->free_pending)
    destroy(r);
}

/* Calls c's callback (user commands only) and frees c. */
static void finish(sk_redis *r, sk_cmd *c, sk_redis_status st, const redisReply *reply,
                   const char *why) {
  if (c->internal == CMD_USER && c->cb != NULL) {
    sk_redis_result res = {st, reply, why != NULL ? why : ""};
    r->depth++;
    c->cb(r, &res, c->privdata);
    r->depth--;
  }
  free(c->buf);
  free(c);
}

static void emit(sk_redis *r, sk_redis_event ev) {
  if (r->event_fn != NULL) {
    r->depth++;
    r->event_fn(r, ev, r->event_priv);
    r->depth--;
  }
}

static int is_ip_literal(const char *host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* ---- reply caps: wrappers around hiredis's object functions ---- */

static void *create_string_capped(const redisReadTask *task, char *str, size_t len) {
  sk_redis *r = task->privdata;
  if (task->type == REDIS_REPLY_STRING && len > r->opt.max_bulk) {
    snprintf(r->cap_msg, sizeof r->cap_msg, "bulk string of %zu bytes (limit %zu)", len,
             r->opt.max_bulk);
    return NULL;
  }
  return r->create_string(task, str, len);
}

static void *create_array_capped(const redisReadTask *task, int elements) {
  sk_redis *r = task->privdata;
  if (elements > r->opt.max_array) {
    snprintf(r->cap_msg, sizeof r->cap_msg, "array of %d elements (limit %d)", elements,
             r->opt.max_array);
    return NULL;
  }
  return r->create_array(task, elements);
}

/* ---- tearing a connection down ---- */

static void transport_close(sk_redis *r) {
  if (r->connect_ev != NULL) {
    event_free(r->connect_ev);
    r->connect_ev = NULL;
  }
  if (r->fd >= 0) {
    evutil_closesocket(r->fd);
    r->fd = -1;
  }
  if (r->bev != NULL) {
    bufferevent_free(r->bev);
    r->bev = NULL;
  }
  if (r->reader != NULL) {
    redisReaderFree(r->reader);
    r->reader = NULL;
  }
  if (r->ai != NULL) {
    freeaddrinfo(r->ai);
    r->ai = r->ai_next = NULL;
  }
  if (r->connect_timer != NULL)
    evtimer_del(r->connect_timer);
  r->handshake_pending = 0;
  r->push_active = 0;
}

static void schedule_retry(sk_redis *r) {
  unsigned shift = r->attempts < 6 ? r->attempts : 6;
  uint64_t d = (uint64_t)100 << shift;
  if (d > 5000)
    d = 5000;
  /* xorshift64: jitter only, nothing secret */
  r->rng ^= r->rng << 13;
  r->rng ^= r->rng >> 7;
  r->rng ^= r->rng << 17;
  d = d / 2 + r->rng % (d / 2 + 1);
  r->attempts++;
  struct timeval tv = tv_ms(d);
  evtimer_add(r->retry_timer, &tv);
}

/* Closes the transport, records why (the sticky error), and fails the commands in flight: with
 * DROP_PROTOCOL the first gets SK_REDIS_PROTOCOL, with DROP_TIMEOUT those past their deadline get
 * SK_REDIS_TIMEOUT, all others SK_REDIS_CONN_LOST. Then schedules a reconnection, or (reconnect
 * off) fails for good and fails the waiting commands too (SK_REDIS_NOT_SENT). Callbacks run last,
 * with the connection already in its new state. The caller must not touch the transport afterwards.
 */
static void conn_drop(sk_redis *r, sk_redis_err err, enum drop_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void conn_drop(sk_redis *r, sk_redis_err err, enum drop_kind kind, const char *fmt, ...) {
  char why[sizeof r->errstr];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);

  transport_close(r);
  memcpy(r->errstr, why, sizeof why);
  r->err = err;
  cmd_list lost = list_take(&r->inflight);
  cmd_list unsent = {0};
  if (r->opt.reconnect) {
    r->state = ST_IDLE;
    schedule_retry(r);
  } else {
    r->state = ST_FAILED;
    unsent = list_take(&r->waiting);
  }
  emit(r, SK_REDIS_EVENT_DOWN);

  uint64_t now = now_ms();
  int first = 1;
  sk_cmd *c;
  while ((c = list_pop(&lost)) != NULL) {
    sk_redis_status st = SK_REDIS_CONN_LOST;
    if (kind == DROP_PROTOCOL && first)
      st = SK_REDIS_PROTOCOL;
    else if (kind == DROP_TIMEOUT && c->deadline != 0 && c->deadline <= now)
      st = SK_REDIS_TIMEOUT;
    first = 0;
    finish(r, c, st, NULL, why);
  }
  while ((c = list_pop(&unsent)) != NULL)
    finish(r, c, SK_REDIS_NOT_SENT, NULL, why);
}

/* ---- writing ---- */

/* Writes c (formatted) to the connection and moves it to inflight. */
static void write_cmd(sk_redis *r, sk_cmd *c) {
  assert(r->bev != NULL && c->buf != NULL);
  /* bufferevent_write fails only when out of memory; the command then gets no reply, and its
   * timeout (or the next connection loss) fails it. */
  (void)bufferevent_write(r->bev, c->buf, (size_t)c->len);
  if (c->internal == CMD_AUTH)
    OPENSSL_cleanse(c->buf, (size_t)c->len);
  free(c->buf);
  c->buf = NULL;
  list_push(&r->inflight, c);
  r->sent++;
}

static void arm_tick(sk_redis *r, uint64_t deadline) {
  if (r->tick_at != 0 && r->tick_at <= deadline)
    return;
  uint64_t now = now_ms();
  r->tick_at = deadline;
  struct timeval tv = tv_ms(deadline > now ? deadline - now : 0);
  evtimer_add(r->tick_timer, &tv);
}

/* Writes the PSUBSCRIBE of subscriber mode; from now on replies are pushed messages (the
 * connection refuses commands in that mode, so none is in flight behind it). */
static void write_subscribe(sk_redis *r) {
  assert(r->bev != NULL && r->inflight.n == 0);
  (void)bufferevent_write(r->bev, r->sub_buf, (size_t)r->sub_len);
  r->sent++;
  r->push_active = 1;
}

static void become_ready(sk_redis *r) {
  evtimer_del(r->connect_timer);
  r->state = ST_READY;
  r->attempts = 0;
  r->err = SK_REDIS_ERR_NONE;
  r->errstr[0] = '\0';
  sk_cmd *c;
  while ((c = list_pop(&r->waiting)) != NULL)
    write_cmd(r, c);
  if (r->sub_buf != NULL)
    write_subscribe(r);
  emit(r, SK_REDIS_EVENT_READY);
}

static int send_internal(sk_redis *r, int which, int argc, const char **argv,
                         const size_t *argvlen) {
  sk_cmd *c = calloc(1, sizeof *c);
  if (c == NULL)
    return -1;
  c->len = redisFormatCommandArgv(&c->buf, argc, argv, argvlen);
  if (c->len < 0) {
    free(c);
    return -1;
  }
  c->internal = which;
  write_cmd(r, c);
  r->handshake_pending++;
  return 0;
}

/* The transport is up: set up the reader, send AUTH and SELECT when the URL asks for them. */
static void start_session(sk_redis *r) {
  r->state = ST_HANDSHAKE;
  r->reader = redisReaderCreate();
  if (r->reader == NULL) {
    conn_drop(r, SK_REDIS_ERR_OOM, DROP_LOST, "out of memory");
    return;
  }
  r->fns = *r->reader->fn;
  r->create_string = r->fns.createString;
  r->create_array = r->fns.createArray;
  r->fns.createString = create_string_capped;
  r->fns.createArray = create_array_capped;
  r->reader->fn = &r->fns;
  r->reader->privdata = r;
  r->cap_msg[0] = '\0';

  const sk_redis_url *u = r->url;
  if (u->password != NULL) {
    const char *argv[3] = {"AUTH"};
    size_t len[3] = {4};
    int argc = 1;
    if (u->user != NULL) {
      argv[argc] = u->user;
      len[argc++] = u->user_len;
    }
    argv[argc] = u->password;
    len[argc++] = u->password_len;
    if (send_internal(r, CMD_AUTH, argc, argv, len) != 0) {
      conn_drop(r, SK_REDIS_ERR_OOM, DROP_LOST, "out of memory");
      return;
    }
  }
  if (u->db > 0) {
    char db[16];
    snprintf(db, sizeof db, "%d", u->db);
    const char *argv[2] = {"SELECT", db};
    if (send_internal(r, CMD_SELECT, 2, argv, NULL) != 0) {
      conn_drop(r, SK_REDIS_ERR_OOM, DROP_LOST, "out of memory");
      return;
    }
  }
  if (r->handshake_pending == 0)
    become_ready(r);
}

/* ---- reading ---- */

/* A reply to AUTH or SELECT. Returns 0, or -1 when the connection was dropped. */
static int internal_reply(sk_redis *r, const sk_cmd *c, const redisReply *reply) {
  if (reply->type == REDIS_REPLY_ERROR) {
    if (c->internal == CMD_AUTH)
      conn_drop(r, SK_REDIS_ERR_AUTH, DROP_LOST, "authentication failed for user '%s': %s",
                r->url->user != NULL ? r->url->user : "default", reply->str);
    else
      conn_drop(r, SK_REDIS_ERR_SELECT, DROP_LOST, "SELECT %d failed on %s: %s", r->url->db,
                r->hostport, reply->str);
    return -1;
  }
  assert(r->handshake_pending > 0);
  if (--r->handshake_pending == 0)
    become_ready(r);
  return 0;
}

/* After the complete replies are out: refuse early a bulk string announced larger than the cap
 * (hiredis would buffer it whole first), and bound what is buffered for one unfinished element. */
static int check_pending(sk_redis *r) {
  const redisReader *rd = r->reader;
  size_t pending = rd->len - rd->pos;
  if (rd->ridx >= 0 && rd->rstack[rd->ridx].type == REDIS_REPLY_STRING && pending > 0 &&
      memchr(rd->buf + rd->pos, '\n', pending) != NULL) {
    long long n = strtoll(rd->buf + rd->pos, NULL, 10);
    if (n > 0 && (unsigned long long)n > r->opt.max_bulk) {
      conn_drop(r, SK_REDIS_ERR_PROTOCOL, DROP_PROTOCOL,
                "reply from %s refused: bulk string of %lld bytes (limit %zu)", r->hostport, n,
                r->opt.max_bulk);
      return -1;
    }
  }
  if (pending > r->opt.max_bulk + 65536) {
    conn_drop(r, SK_REDIS_ERR_PROTOCOL, DROP_PROTOCOL,
              "reply from %s refused: more than %zu bytes for one element", r->hostport,
              r->opt.max_bulk + 65536);
    return -1;
  }
  return 0;
}

/* Hands every complete reply to its command. Returns 0, or -1 when the caller must stop (the
 * connection was dropped, or a callback asked to free it). */
static int drain_replies(sk_redis *r) {
  for (;;) {
    void *obj = NULL;
    if (redisReaderGetReply(r->reader, &obj) != REDIS_OK) {
      if (r->cap_msg[0] != '\0')
        conn_drop(r, SK_REDIS_ERR_PROTOCOL, DROP_PROTOCOL, "reply from %s refused: %s", r->hostport,
                  r->cap_msg);
      else
        conn_drop(r, SK_REDIS_ERR_PROTOCOL, DROP_PROTOCOL, "protocol error from %s: %s",
                  r->hostport, r->reader->errstr);
      return -1;
    }
    if (obj == NULL)
      break;
    redisReply *reply = obj;
    if (r->push_active && r->inflight.n == 0) {
      r->depth++;
      r->push_fn(r, reply, r->push_priv);
      r->depth--;
      freeReplyObject(reply);
      if (r->free_pending)
        return -1;
      continue;
    }
    sk_cmd *c = list_pop(&r->inflight);
    if (c == NULL) {
      freeReplyObject(reply);
      conn_drop(r, SK_REDIS_ERR_PROTOCOL, DROP_LOST,
                "protocol error from %s: a reply no command was waiting for", r->hostport);
      return -1;
    }
    if (c->internal != CMD_USER) {
      int rc = internal_reply(r, c, reply);
      freeReplyObject(reply);
      free(c->buf);
      free(c);
      if (rc != 0)
        return -1;
      continue;
    }
    finish(r, c, SK_REDIS_OK, reply, NULL);
    freeReplyObject(reply);
    if (r->free_pending)
      return -1;
  }
  return check_pending(r);
}

static void read_replies(sk_redis *r) {
  char buf[16384];
  while (r->bev != NULL && r->reader != NULL) {
    int n = evbuffer_remove(bufferevent_get_input(r->bev), buf, sizeof buf);
    if (n <= 0)
      return;
    if (redisReaderFeed(r->reader, buf, (size_t)n) != REDIS_OK) {
      conn_drop(r, SK_REDIS_ERR_OOM, DROP_LOST, "out of memory reading from %s", r->hostport);
      return;
    }
    if (drain_replies(r) != 0)
      return;
  }
}

/* ---- libevent callbacks ---- */

static void on_read(struct bufferevent *bev, void *arg) {
  sk_redis *r = arg;
  (void)bev;
  enter(r);
  read_replies(r);
  leave(r);
}

static void tls_failed(sk_redis *r, struct bufferevent *bev, short what, int sockerr) {
  char why[256];
  unsigned long e = bufferevent_get_openssl_error(bev);
  const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
  while (bufferevent_get_openssl_error(bev) != 0)
    continue; /* the first error says why; drop the rest */
  if (reason != NULL)
    snprintf(why, sizeof why, "%s", reason);
  else if (e != 0)
    snprintf(why, sizeof why, "OpenSSL error %lx", e);
  else if ((what & BEV_EVENT_EOF) || sockerr == 0)
    snprintf(why, sizeof why, "connection closed by the server");
  else
    snprintf(why, sizeof why, "%s", strerror(sockerr));
  SSL *ssl = bufferevent_openssl_get_ssl(bev);
  long vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
  if (!r->opt.insecure && vr != X509_V_OK) {
    size_t n = strlen(why);
    snprintf(why + n, sizeof why - n, " (%s)", X509_verify_cert_error_string(vr));
  }
  conn_drop(r, SK_REDIS_ERR_TLS, DROP_LOST, "TLS handshake with %s failed: %s", r->hostport, why);
}

static void on_bev_event(struct bufferevent *bev, short what, void *arg) {
  sk_redis *r = arg;
  int sockerr = EVUTIL_SOCKET_ERROR();
  enter(r);
  if (what & BEV_EVENT_CONNECTED) {
    if (r->state == ST_TLS)
      start_session(r);
  } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    if (r->state == ST_TLS) {
      tls_failed(r, bev, what, sockerr);
    } else {
      /* Replies that arrived before the close are still answers. */
      read_replies(r);
      if (!r->free_pending && r->bev == bev) {
        char why[256];
        unsigned long e = r->url->tls ? bufferevent_get_openssl_error(bev) : 0;
        if (what & BEV_EVENT_EOF)
          snprintf(why, sizeof why, "closed by the server");
        else if (e != 0 && ERR_reason_error_string(e) != NULL)
          snprintf(why, sizeof why, "%s", ERR_reason_error_string(e));
        else if (sockerr != 0)
          snprintf(why, sizeof why, "%s", strerror(sockerr));
        else
          snprintf(why, sizeof why, "connection error");
        conn_drop(r, SK_REDIS_ERR_LOST, DROP_LOST, "connection to %s lost: %s", r->hostport, why);
      }
    }
  }
  leave(r);
}

/* TCP keepalive probes after 30 s of silence, every 10 s, 3 unanswered: a peer gone without a word
   (a NAT or load balancer that forgot the connection, a host that vanished) is noticed within about
   a minute even while a blocking read waits, and the probes keep such middleboxes from forgetting an
   idle connection. They are TCP, not commands: nothing billed. */
enum { KEEPALIVE_IDLE_S = 30, KEEPALIVE_INTERVAL_S = 10, KEEPALIVE_PROBES = 3 };

static void tcp_connected(sk_redis *r, int fd) {
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
#if defined(TCP_KEEPIDLE) && defined(TCP_KEEPINTVL) && defined(TCP_KEEPCNT)
  int idle = KEEPALIVE_IDLE_S, intvl = KEEPALIVE_INTERVAL_S, cnt = KEEPALIVE_PROBES;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
#endif
  freeaddrinfo(r->ai);
  r->ai = r->ai_next = NULL;
  int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
  if (r->url->tls) {
    SSL *ssl = SSL_new(r->ssl_ctx);
    if (ssl == NULL) {
      evutil_closesocket(fd);
      conn_drop(r, SK_REDIS_ERR_OOM, DROP_LOST, "out of memory");
      return;
    }
    const char *host = r->url->host;
    if (!is_ip_literal(host)) {
      SSL_set_tlsext_host_name(ssl, host);
      if (!r->opt.insecure)
        SSL_set1_host(ssl, host);
    } else if (!r->opt.insecure) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
    }
    /* On failure libevent may already have released ssl and fd: leak them rather than risk
     * closing twice (this is out of memory). */
    r->bev = bufferevent_openssl_socket_new(r->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING, opts);
    if (r->bev == NULL) {
      conn_drop(r, SK_REDIS_ERR_OOM, DROP_LOST, "out of memory");
      return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(r->bev, 1);
    r->state = ST_TLS;
    bufferevent_setcb(r->bev, on_read, NULL, on_bev_event, r);
    bufferevent_enable(r->bev, EV_READ | EV_WRITE);
  } else {
    r->bev = bufferevent_socket_new(r->base, fd, opts);
    if (r->bev == NULL) {
      evutil_closesocket(fd);
      conn_drop(r, SK_REDIS_ERR_OOM, DROP_LOST, "out of memory");
      return;
    }
    bufferevent_setcb(r->bev, on_read, NULL, on_bev_event, r);
    bufferevent_enable(r->bev, EV_READ | EV_WRITE);
    start_session(r);
  }
}

static void on_connect_ready(evutil_socket_t fd, short what, void *arg);

/* Tries the next address; fails the attempt when none is left. */
static void try_connect(sk_redis *r) {
  while (r->ai_next != NULL) {
    struct addrinfo *a = r->ai_next;
    r->ai_next = a->ai_next;
    int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) {
      r->last_errno = errno;
      continue;
    }
    if (evutil_make_socket_nonblocking(fd) != 0 || evutil_make_socket_closeonexec(fd) != 0) {
      r->last_errno = errno;
      evutil_closesocket(fd);
      continue;
    }
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      tcp_connected(r, fd);
      return;
    }
    if (errno == EINPROGRESS) {
      r->connect_ev = event_new(r->base, fd, EV_WRITE, on_connect_ready, r);
      if (r->connect_ev == NULL || event_add(r->connect_ev, NULL) != 0) {
        evutil_closesocket(fd);
        conn_drop(r, SK_REDIS_ERR_OOM, DROP_LOST, "out of memory");
        return;
      }
      r->fd = fd;
      return;
    }
    r->last_errno = errno;
    evutil_closesocket(fd);
  }
  conn_drop(r, SK_REDIS_ERR_CONNECT, DROP_LOST, "cannot connect to %s: %s", r->hostport,
            strerror(r->last_errno != 0 ? r->last_errno : ECONNREFUSED));
}

static void on_connect_ready(evutil_socket_t fd, short what, void *arg) {
  sk_redis *r = arg;
  (void)what;
  enter(r);
  int soerr = 0;
  socklen_t len = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
    soerr = errno;
  event_free(r->connect_ev);
  r->connect_ev = NULL;
  r->fd = -1;
  if (soerr != 0) {
    r->last_errno = soerr;
    evutil_closesocket(fd);
    try_connect(r);
  } else {
    tcp_connected(r, fd);
  }
  leave(r);
}

/* Resolves the host (getaddrinfo: blocking, instant for an IP address) and starts connecting.
 * Cost: one DNS resolution per attempt, so a moved host is followed. */
static void connect_start(sk_redis *r) {
  assert(r->state == ST_IDLE);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  char port[8];
  snprintf(port, sizeof port, "%d", r->url->port);
  r->state = ST_TCP;
  r->last_errno = 0;
  struct timeval tv = tv_ms((uint64_t)r->opt.connect_timeout_ms);
  evtimer_add(r->connect_timer, &tv);
  int rc = getaddrinfo(r->url->host, port, &hints, &r->ai);
  if (rc != 0) {
    r->ai = NULL;
    conn_drop(r, SK_REDIS_ERR_RESOLVE, DROP_LOST, "cannot resolve %s: %s", r->url->host,
              rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    return;
  }
  r->ai_next = r->ai;
  try_connect(r);
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  sk_redis *r = arg;
  (void)fd;
  (void)what;
  enter(r);
  if (r->state == ST_IDLE)
    connect_start(r);
  leave(r);
}

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg) {
  sk_redis *r = arg;
  int ms = r->opt.connect_timeout_ms;
  (void)fd;
  (void)what;
  enter(r);
  switch (r->state) {
  case ST_TCP:
    conn_drop(r, SK_REDIS_ERR_CONNECT, DROP_LOST, "cannot connect to %s: timed out after %d ms",
              r->hostport, ms);
    break;
  case ST_TLS:
    conn_drop(r, SK_REDIS_ERR_TLS, DROP_LOST, "TLS handshake with %s failed: timed out after %d ms",
              r->hostport, ms);
    break;
  case ST_HANDSHAKE:
    conn_drop(r, SK_REDIS_ERR_TIMEOUT, DROP_LOST, "no reply to %s from %s within %d ms",
              r->inflight.head != NULL && r->inflight.head->internal == CMD_AUTH ? "AUTH"
                                                                                 : "SELECT",
              r->hostport, ms);
    break;
  default:
    break;
  }
  leave(r);
}

/* Fails the commands past their deadline: waiting ones are NOT_SENT; one in flight resets the
 * connection (its reply could no longer be matched). Then re-arms for the next deadline.
 * Cost: O(queued + in flight). */
static void on_tick(evutil_socket_t fd, short what, void *arg) {
  sk_redis *r = arg;
  (void)fd;
  (void)what;
  enter(r);
  r->tick_at = 0;
  uint64_t now = now_ms();

  cmd_list expired = {0}, keep = {0};
  sk_cmd *c;
  while ((c = list_pop(&r->waiting)) != NULL) {
    if (c->deadline != 0 && c->deadline <= now)
      list_push(&expired, c);
    else
      list_push(&keep, c);
  }
  r->waiting = keep;

  const sk_cmd *late = NULL;
  for (c = r->inflight.head; c != NULL && late == NULL; c = c->next)
    if (c->deadline != 0 && c->deadline <= now)
      late = c;
  if (late != NULL)
    conn_drop(r, SK_REDIS_ERR_TIMEOUT, DROP_TIMEOUT, "no reply from %s within %d ms", r->hostport,
              late->timeout_ms);

  while ((c = list_pop(&expired)) != NULL) {
    char why[1024];
    snprintf(why, sizeof why, "not sent: no connection to %s within %d ms%s%s%s", r->hostport,
             c->timeout_ms, r->errstr[0] ? " (" : "", r->errstr, r->errstr[0] ? ")" : "");
    finish(r, c, SK_REDIS_NOT_SENT, NULL, why);
  }

  if (!r->free_pending) {
    uint64_t next = 0;
    for (int i = 0; i < 2; i++)
      for (c = (i == 0 ? r->waiting : r->inflight).head; c != NULL; c = c->next)
        if (c->deadline != 0 && (next == 0 || c->deadline < next))
          next = c->deadline;
    if (next != 0)
      arm_tick(r, next);
  }
  leave(r);
}

/* ---- the API ---- */

static SSL_CTX *tls_context(sk_redis *r) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL) {
    set_err(r, SK_REDIS_ERR_CONFIG, "cannot set up TLS: %s",
            ERR_reason_error_string(ERR_get_error()));
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (r->opt.insecure) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    return ctx;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  if (r->ca_file != NULL) {
    ERR_clear_error();
    if (SSL_CTX_load_verify_locations(ctx, r->ca_file, NULL) != 1) {
      const char *why = ERR_reason_error_string(ERR_peek_last_error());
      set_err(r, SK_REDIS_ERR_CONFIG, "cannot load the CA file '%s' (SKENE_REDIS_CA): %s",
              r->ca_file, why != NULL ? why : "unreadable");
      ERR_clear_error();
      SSL_CTX_free(ctx);
      return NULL;
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    set_err(r, SK_REDIS_ERR_CONFIG, "cannot load the system's certificate store");
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

sk_redis *sk_redis_new(struct event_base *base, const char *url, const sk_redis_options *options) {
  assert(base != NULL);
  sk_redis *r = calloc(1, sizeof *r);
  if (r == NULL)
    return NULL;
  r->base = base;
  r->fd = -1;
  r->state = ST_IDLE;
  if (options != NULL)
    r->opt = *options;
  else
    sk_redis_options_init(&r->opt);
  sk_redis_options defaults;
  sk_redis_options_init(&defaults);
  if (r->opt.connect_timeout_ms <= 0)
    r->opt.connect_timeout_ms = defaults.connect_timeout_ms;
  if (r->opt.command_timeout_ms < 0)
    r->opt.command_timeout_ms = 0;
  if (r->opt.max_queued <= 0)
    r->opt.max_queued = defaults.max_queued;
  if (r->opt.max_bulk == 0)
    r->opt.max_bulk = defaults.max_bulk;
  if (r->opt.max_array <= 0)
    r->opt.max_array = defaults.max_array;
  r->url_name = strdup(r->opt.url_name != NULL ? r->opt.url_name : defaults.url_name);
  r->ca_file = r->opt.ca_file != NULL ? strdup(r->opt.ca_file) : NULL;
  r->opt.url_name = r->url_name;
  r->opt.ca_file = r->ca_file;
  r->connect_timer = evtimer_new(base, on_connect_timeout, r);
  r->retry_timer = evtimer_new(base, on_retry, r);
  r->tick_timer = evtimer_new(base, on_tick, r);
  if (r->url_name == NULL || (options != NULL && options->ca_file != NULL && r->ca_file == NULL) ||
      r->connect_timer == NULL || r->retry_timer == NULL || r->tick_timer == NULL) {
    r->closing = 1;
    destroy(r);
    return NULL;
  }
  r->rng = (now_ms() << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)r;
  if (r->rng == 0)
    r->rng = 0x9e3779b97f4a7c15u;

  r->url = sk_redis_url_parse(url, r->url_name, r->errstr, sizeof r->errstr);
  if (r->url == NULL) {
    r->err = SK_REDIS_ERR_URL;
    r->state = ST_FAILED;
    return r;
  }
  if (strchr(r->url->host, ':') != NULL)
    snprintf(r->hostport, sizeof r->hostport, "[%s]:%d", r->url->host, r->url->port);
  else
    snprintf(r->hostport, sizeof r->hostport, "%s:%d", r->url->host, r->url->port);
  if (r->url->tls && (r->ssl_ctx = tls_context(r)) == NULL) {
    r->state = ST_FAILED;
    return r;
  }
  struct timeval now = {0, 0};
  evtimer_add(r->retry_timer, &now);
  return r;
}

/* Frees r and everything it holds; every command left is called back first. */
static void destroy(sk_redis *r) {
  r->closing = 1;
  r->depth++;
  transport_close(r);
  cmd_list lost = list_take(&r->inflight);
  cmd_list unsent = list_take(&r->waiting);
  sk_cmd *c;
  while ((c = list_pop(&lost)) != NULL)
    finish(r, c, SK_REDIS_CONN_LOST, NULL, "connection closed");
  while ((c = list_pop(&unsent)) != NULL)
    finish(r, c, SK_REDIS_NOT_SENT, NULL, "connection closed");
  if (r->connect_timer != NULL)
    event_free(r->connect_timer);
  if (r->retry_timer != NULL)
    event_free(r->retry_timer);
  if (r->tick_timer != NULL)
    event_free(r->tick_timer);
  SSL_CTX_free(r->ssl_ctx);
  free(r->sub_buf);
  sk_redis_url_free(r->url);
  free(r->url_name);
  free(r->ca_file);
  free(r);
}

void sk_redis_free(sk_redis *r) {
  if (r == NULL || r->closing)
    return;
  if (r->depth > 0) {
    r->free_pending = 1;
    return;
  }
  destroy(r);
}

int sk_redis_command_timeout(sk_redis *r, int timeout_ms, int argc, const char **argv,
                             const size_t *argvlen, sk_redis_callback callback, void *privdata) {
  if (r == NULL)
    return -1;
  if (r->presend_fn != NULL && !r->in_presend) {
    r->in_presend = 1;
    r->presend_fn(r->presend_arg);
    r->in_presend = 0;
  }
  if (r->closing || r->free_pending) {
    set_err(r, SK_REDIS_ERR_CLOSED, "connection closed");
    return -1;
  }
  if (r->state == ST_FAILED)
    return -1; /* the sticky error says why */
  if (r->sub_buf != NULL) {
    set_err(r, SK_REDIS_ERR_ARG, "not sent: the connection is in subscriber mode");
    return -1;
  }
  if (argc <= 0 || argv == NULL || callback == NULL || timeout_ms < 0) {
    set_err(r, SK_REDIS_ERR_ARG, "bad arguments to sk_redis_command");
    return -1;
  }
  if (r->state != ST_READY && r->waiting.n >= (size_t)r->opt.max_queued) {
    set_err(r, SK_REDIS_ERR_FULL, "not queued: %zu commands already wait for a connection to %s",
            r->waiting.n, r->hostport);
    return -1;
  }
  sk_cmd *c = calloc(1, sizeof *c);
  if (c == NULL) {
    set_err(r, SK_REDIS_ERR_OOM, "out of memory");
    return -1;
  }
  c->len = redisFormatCommandArgv(&c->buf, argc, argv, argvlen);
  if (c->len < 0) {
    free(c);
    set_err(r, SK_REDIS_ERR_OOM, "out of memory");
    return -1;
  }
  c->cb = callback;
  c->privdata = privdata;
  c->timeout_ms = timeout_ms;
  c->deadline = timeout_ms > 0 ? now_ms() + (uint64_t)timeout_ms : 0;
  if (r->state == ST_READY)
    write_cmd(r, c);
  else
    list_push(&r->waiting, c);
  if (c->deadline != 0)
    arm_tick(r, c->deadline);
  return 0;
}

int sk_redis_command(sk_redis *r, int argc, const char **argv, const size_t *argvlen,
                     sk_redis_callback callback, void *privdata) {
  return sk_redis_command_timeout(r, r != NULL ? r->opt.command_timeout_ms : 0, argc, argv, argvlen,
                                  callback, privdata);
}

int sk_redis_psubscribe(sk_redis *r, int npatterns, const char **patterns, sk_redis_push_fn fn,
                        void *privdata) {
  if (r == NULL)
    return -1;
  if (r->closing || r->free_pending) {
    set_err(r, SK_REDIS_ERR_CLOSED, "connection closed");
    return -1;
  }
  if (r->state == ST_FAILED)
    return -1;
  if (npatterns <= 0 || patterns == NULL || fn == NULL || r->sub_buf != NULL ||
      r->waiting.n + r->inflight.n != 0) {
    set_err(r, SK_REDIS_ERR_ARG, "bad arguments to sk_redis_psubscribe");
    return -1;
  }
  const char **argv = malloc(((size_t)npatterns + 1) * sizeof *argv);
  if (argv == NULL) {
    set_err(r, SK_REDIS_ERR_OOM, "out of memory");
    return -1;
  }
  argv[0] = "PSUBSCRIBE";
  memcpy(argv + 1, patterns, (size_t)npatterns * sizeof *argv);
  r->sub_len = redisFormatCommandArgv(&r->sub_buf, npatterns + 1, argv, NULL);
  free(argv);
  if (r->sub_len < 0) {
    r->sub_buf = NULL;
    set_err(r, SK_REDIS_ERR_OOM, "out of memory");
    return -1;
  }
  r->push_fn = fn;
  r->push_priv = privdata;
  if (r->state == ST_READY)
    write_subscribe(r);
  return 0;
}

void sk_redis_on_event(sk_redis *r, sk_redis_event_fn fn, void *privdata) {
  r->event_fn = fn;
  r->event_priv = privdata;
}

int sk_redis_is_ready(const sk_redis *r) {
  return r->state == ST_READY;
}

int sk_redis_has_failed(const sk_redis *r) {
  return r->state == ST_FAILED;
}

sk_redis_err sk_redis_get_err(const sk_redis *r) {
  return r->err;
}

const char *sk_redis_errstr(const sk_redis *r) {
  return r->errstr;
}

uint64_t sk_redis_commands_sent(const sk_redis *r) {
  return r->sent;
}

size_t sk_redis_pending(const sk_redis *r) {
  return r->waiting.n + r->inflight.n;
}

/* ---- sk_redis_check ---- */

typedef struct check_state {
  struct event_base *base;
  int done, ok;
  char msg[600];
} check_state;

static void check_cb(sk_redis *r, const sk_redis_result *res, void *privdata) {
  check_state *st = privdata;
  st->done = 1;
  if (res->status != SK_REDIS_OK) {
    snprintf(st->msg, sizeof st->msg, "%s", res->errstr);
  } else if (res->reply->type == REDIS_REPLY_ERROR) {
    snprintf(st->msg, sizeof st->msg, "PING to %s failed: %s", r->hostport, res->reply->str);
  } else if (res->reply->type != REDIS_REPLY_STATUS || strcmp(res->reply->str, "PONG") != 0) {
    snprintf(st->msg, sizeof st->msg, "unexpected reply to PING from %s", r->hostport);
  } else {
    st->ok = 1;
  }
  event_base_loopbreak(st->base);
}

int sk_redis_check(const char *url, const sk_redis_options *options, int timeout_ms, char *err,
                   size_t errlen) {
  sk_redis_options o;
  if (options != NULL)
    o = *options;
  else
    sk_redis_options_init(&o);
  if (timeout_ms <= 0)
    timeout_ms = 5000;
  o.reconnect = 0;
  o.connect_timeout_ms = timeout_ms;
  check_state st;
  memset(&st, 0, sizeof st);
  st.base = event_base_new();
  if (st.base == NULL) {
    snprintf(err, errlen, "cannot create an event loop");
    return -1;
  }
  sk_redis *r = sk_redis_new(st.base, url, &o);
  if (r == NULL) {
    snprintf(err, errlen, "out of memory");
    event_base_free(st.base);
    return -1;
  }
  const char *argv[] = {"PING"};
  int ping_ms = timeout_ms > INT_MAX / 2 ? INT_MAX : 2 * timeout_ms;
  if (sk_redis_command_timeout(r, ping_ms, 1, argv, NULL, check_cb, &st) != 0)
    snprintf(st.msg, sizeof st.msg, "%s", sk_redis_errstr(r));
  else
    while (!st.done && event_base_dispatch(st.base) == 0) {
    }
  if (!st.done && st.msg[0] == '\0' && !st.ok)
    snprintf(st.msg, sizeof st.msg, "%s", sk_redis_errstr(r));
  sk_redis_free(r);
  event_base_free(st.base);
  if (st.ok)
    return 0;
  snprintf(err, errlen, "%s", st.msg);
  return -1;
}

void sk_redis_set_presend(sk_redis *r, void (*fn)(void *), void *arg) {
  if (r == NULL)
    return;
  r->presend_fn = fn;
  r->presend_arg = arg;
}

struct event_base *sk_redis_base(const sk_redis *r) { return r != NULL ? r->base : NULL; }
