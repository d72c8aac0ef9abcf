/*
 * resend-mock.c: a local server that speaks Resend's HTTP API, for the tests and the demo
 * (tests/resend/README.md). POST /emails, POST /emails/batch and GET /emails/{id} with Resend's
 * checks (checks.c), error bodies, rate-limit headers and idempotency keys; a control API under
 * /_mock/ lists what was accepted, counts requests and injects faults (status codes, slow
 * responses, dropped connections).
 *
 * One thread, one libevent loop, evhttp for HTTP/1.1 with keep-alive, bound to 127.0.0.1 only.
 * A request to the API goes: fault script, route, API key, rate limit, Idempotency-Key, body
 * checks, store; its reply is sent at once, or held by a timer (a delay fault), or replaced by a
 * closed connection (a drop fault). Everything is kept in memory, in arrays searched linearly:
 * a test or a demo keeps thousands of emails at most.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "../lib/http_method.h"
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <xxhash.h>

#include "checks.h"

#define RM_MAX_BODY (64u * 1024u * 1024u) /* evhttp answers 413 above this */
#define RM_DEFAULT_RPS 2
#define RM_DEFAULT_TTL_MS (24LL * 3600 * 1000)
#define RM_MAX_DELAY_MS 600000

static const char usage[] =
    "usage: resend-mock [--port N] [--port-file FILE] [--api-key KEY] [--rps N]\n"
    "                   [--idempotency-ttl-ms MS] [--faults FILE] [--log FILE]\n"
    "       resend-mock --help\n"
    "\n"
    "A local server that speaks Resend's HTTP API for tests and demos: POST /emails,\n"
    "POST /emails/batch (x-batch-validation: strict | permissive) and GET /emails/{id}, with\n"
    "Resend's checks and error bodies, ratelimit-* and retry-after headers, and Idempotency-Key\n"
    "(same key and payload: the original response; another payload: 409\n"
    "invalid_idempotent_request; while the first is in progress: 409\n"
    "concurrent_idempotent_requests). A request without a User-Agent is refused (403, error\n"
    "1010) as Resend's edge does. HTTP/1.1 with keep-alive, on 127.0.0.1 only.\n"
    "\n"
    "options:\n"
    "  --port N                 the port on 127.0.0.1 (default 0: a free port the system chooses)\n"
    "  --port-file FILE         once listening, write the port there (decimal and a newline; the\n"
    "                           file appears complete, by rename)\n"
    "  --api-key KEY            the one API key accepted (default: any key of the form re_...)\n"
    "  --rps N                  requests per second allowed per API key (default 2); 0: no limit,\n"
    "                           and no ratelimit-* headers\n"
    "  --idempotency-ttl-ms MS  how long an Idempotency-Key is kept (default 86400000: 24 hours)\n"
    "  --faults FILE            start with this fault script (the JSON of POST /_mock/faults)\n"
    "  --log FILE               append one JSON line per API request: time_ms, method, path (as\n"
    "                           sent), headers ([name, value] pairs in order), body (raw, or\n"
    "                           body_base64 when not UTF-8), status (null when dropped), outcome\n"
    "                           (replied | dropped), fault\n"
    "  -h, --help               this text\n"
    "\n"
    "control API (no API key, not rate limited, not logged, no faults):\n"
    "  GET  /_mock/emails   every accepted email, in order: id, api_key, idempotency_key, endpoint,\n"
    "                       batch_index, created_at, request (the email's fields as sent)\n"
    "  GET  /_mock/stats    requests, accepted_emails, batches, by_status, rate_limited,\n"
    "                       idempotent_replays, dropped, faults_applied, in_flight, max_concurrent\n"
    "  POST /_mock/faults   replace the fault script; GET /_mock/faults shows what is left of it\n"
    "  POST /_mock/reset    forget emails, idempotency keys, rate-limit windows, faults and stats\n"
    "\n"
    "fault script: {\"faults\": [FAULT, ...]}; each request to the API takes the first FAULT that\n"
    "matches it, `count` times (default 1). FAULT: {\"path\": \"/emails\" (exact; \"/emails*\" a\n"
    "prefix; absent or \"*\": any), \"method\": \"POST\" (optional), \"count\": N, and one of:\n"
    "  \"status\": CODE [, \"body\": JSON (a string is sent raw)] [, \"headers\": {...}]\n"
    "        answered at once with that status; nothing is processed or stored\n"
    "  \"delay_ms\": MS [, \"headers\": {...}]\n"
    "        processed (and stored) at once, answered after MS: its key is in progress meanwhile\n"
    "  \"drop\": \"before\"         the connection is closed without a reply; nothing is stored\n"
    "  \"drop\": \"after_accept\"   processed and stored, then the connection is closed unanswered\n"
    "  (\"delay_ms\" also delays a status or a drop.)}\n"
    "\n"
    "Stops cleanly on SIGTERM or SIGINT. Exit status: 0 stopped by a signal, 1 runtime error (cannot\n"
    "listen or write a file), 2 usage error (bad option, unreadable or invalid fault script).\n"
    "See tests/resend/README.md for every behaviour and where it follows Resend's documentation.\n";

/* ---- small utilities ---- */

static void out_of_memory(void) {
  fputs("resend-mock: out of memory\n", stderr);
  exit(1);
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (p == NULL)
    out_of_memory();
  return p;
}

static char *xstrdup(const char *s) {
  char *p = strdup(s);
  if (p == NULL)
    out_of_memory();
  return p;
}

/* Makes room for one more element in a growable array. */
#define GROW(arr, n, cap)                                                                          \
  do {                                                                                             \
    if ((n) == (cap)) {                                                                            \
      size_t nc_ = (cap) ? 2 * (cap) : 16;                                                         \
      void *p_ = realloc((arr), nc_ * sizeof *(arr));                                              \
      if (p_ == NULL)                                                                              \
        out_of_memory();                                                                           \
      (arr) = p_;                                                                                  \
      (cap) = nc_;                                                                                 \
    }                                                                                              \
  } while (0)

/* Milliseconds of the monotonic clock: windows, expiries and delays. */
static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Now as Resend writes created_at: "2026-04-03 22:13:42.674981+00". */
static void format_created_at(char out[40]) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(out, 40, "%Y-%m-%d %H:%M:%S", &tm);
  snprintf(out + n, 40 - n, ".%06ld+00", ts.tv_nsec / 1000);
}

static json_t *json_str(const char *s) {
  return s ? json_string(s) : json_null();
}

/* ---- state ---- */

/* One accepted email. */
typedef struct rm_email {
  char *id;
  char *team;     /* the API key that sent it */
  char *idem_key; /* or NULL */
  const char *endpoint;
  int batch_index; /* -1 for POST /emails */
  char created_at[40];
  json_t *request; /* the email's fields as sent */
} rm_email;

/* One Idempotency-Key, kept for the TTL from its first request. A key is recorded only for a
 * request that was accepted (status 200), first as in progress, done once its reply went out (or
 * its connection was dropped after the accept). */
typedef struct rm_idem {
  char *team, *key;
  char *request; /* "POST /emails/batch permissive": what a reuse must match besides the body */
  XXH128_hash_t body_hash;
  int64_t created_ms;
  uint64_t serial;
  int done;
  int status;
  char *response;
} rm_idem;

/* A fixed one-second window of the rate limit, per API key. */
typedef struct rm_window {
  char *team;
  int64_t start_ms;
  long count;
} rm_window;

enum { DROP_NONE, DROP_BEFORE, DROP_AFTER_ACCEPT };

typedef struct rm_fault {
  char *path;   /* NULL: any */
  char *method; /* NULL: any */
  long count;
  int status;      /* 0: none */
  json_t *body;    /* with status; NULL: Resend's error for that status */
  json_t *headers; /* object of strings, or NULL */
  long delay_ms;
  int drop;
} rm_fault;

/* A reply being built. headers is an object of strings (insertion order kept). */
typedef struct rm_reply {
  int status;
  char *body;
  size_t body_len;
  const char *content_type; /* NULL: application/json */
  json_t *headers;
  uint64_t idem_serial; /* the key this reply completes, or 0 */
} rm_reply;

struct rm_mock;

/* A request whose reply (or drop) waits for a timer. */
typedef struct rm_held {
  struct rm_mock *m;
  struct evhttp_request *req;
  struct event *timer;
  int drop;
  rm_reply reply;
  json_t *log;
  const char *fault;
  struct rm_held *prev, *next;
} rm_held;

typedef struct rm_stats {
  long requests, accepted_emails, batches, rate_limited, replays, dropped, faults_applied;
  long in_flight, max_concurrent;
  json_t *by_status; /* {"200": n, ...} */
} rm_stats;

typedef struct rm_mock {
  struct event_base *base;
  struct evhttp *http;
  const char *api_key; /* NULL: any re_ key */
  long rps;
  int64_t idem_ttl_ms;
  FILE *log;

  rm_email *emails;
  size_t n_emails, cap_emails;
  rm_idem *idem;
  size_t n_idem, cap_idem;
  uint64_t next_serial;
  rm_window *windows;
  size_t n_windows, cap_windows;
  rm_fault *faults;
  size_t n_faults;
  rm_held *held;
  rm_stats stats;
  uint64_t id_seed, id_counter;
} rm_mock;

/* ---- replies ---- */

static void reply_clear(rm_reply *r) {
  free(r->body);
  json_decref(r->headers);
  memset(r, 0, sizeof *r);
}

static void reply_header(rm_reply *r, const char *name, const char *value) {
  if (r->headers == NULL)
    r->headers = json_object();
  json_object_set_new(r->headers, name, json_string(value));
}

static void reply_header_long(rm_reply *r, const char *name, long value) {
  char buf[32];
  snprintf(buf, sizeof buf, "%ld", value);
  reply_header(r, name, buf);
}

/* Sets the status and body (stolen) of r, keeping its headers. */
static void reply_json(rm_reply *r, int status, json_t *body) {
  free(r->body);
  r->status = status;
  r->body = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
  if (r->body == NULL)
    out_of_memory();
  r->body_len = strlen(r->body);
  r->content_type = NULL;
  json_decref(body);
}

static void reply_error(rm_reply *r, const rm_error *e) {
  reply_json(r, e->status, rm_error_json(e));
}

static void reply_resend_error(rm_reply *r, int status, const char *name, const char *message) {
  rm_error e;
  rm_error_set(&e, status, name, "%s", message);
  reply_error(r, &e);
}

static const char *reason_phrase(int status) {
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 422: return "Unprocessable Entity";
  case 429: return "Too Many Requests";
  case 500: return "Internal Server Error";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Status";
  }
}

static void send_reply(struct evhttp_request *req, const rm_reply *r) {
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  int has_type = 0;
  const char *name;
  json_t *v;
  json_object_foreach(r->headers, name, v) {
    evhttp_add_header(out, name, json_string_value(v));
    has_type |= strcasecmp(name, "Content-Type") == 0;
  }
  if (!has_type)
    evhttp_add_header(out, "Content-Type", r->content_type ? r->content_type : "application/json");
  struct evbuffer *b = evbuffer_new();
  if (b == NULL)
    out_of_memory();
  evbuffer_add(b, r->body ? r->body : "", r->body_len);
  evhttp_send_reply(req, r->status, reason_phrase(r->status), b);
  evbuffer_free(b);
}

/* A small JSON reply of the control API. */
static void control_reply(struct evhttp_request *req, int status, json_t *body) {
  rm_reply r = {0};
  reply_json(&r, status, body);
  send_reply(req, &r);
  reply_clear(&r);
}

static void control_error(struct evhttp_request *req, int status, const char *message) {
  control_reply(req, status, json_pack("{s:s}", "error", message));
}

/* ---- the request log ---- */

static char *base64(const unsigned char *p, size_t n) {
  static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = xcalloc(4 * ((n + 2) / 3) + 1, 1), *o = out;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                 (i + 2 < n ? p[i + 2] : 0);
    *o++ = digits[v >> 18 & 63];
    *o++ = digits[v >> 12 & 63];
    *o++ = i + 1 < n ? digits[v >> 6 & 63] : '=';
    *o++ = i + 2 < n ? digits[v & 63] : '=';
  }
  return out;
}

/* The request's part of its log line, or NULL without --log. */
static json_t *log_begin(rm_mock *m, struct evhttp_request *req) {
  if (m->log == NULL)
    return NULL;
  const char *uri = evhttp_request_get_uri(req);
  json_t *line = json_pack("{s:I, s:s, s:o}", "time_ms", (json_int_t)wall_ms(), "method",
                           method_name(evhttp_request_get_command(req)), "path", json_str(uri));
  json_t *headers = json_array();
  struct evkeyvalq *in = evhttp_request_get_input_headers(req);
  for (struct evkeyval *h = in->tqh_first; h != NULL; h = h->next.tqe_next)
    json_array_append_new(headers, json_pack("[s, s]", h->key, h->value));
  json_object_set_new(line, "headers", headers);
  struct evbuffer *b = evhttp_request_get_input_buffer(req);
  size_t n = evbuffer_get_length(b);
  const char *body = n ? (const char *)evbuffer_pullup(b, -1) : "";
  json_t *s = json_stringn(body, n);
  if (s != NULL) {
    json_object_set_new(line, "body", s);
  } else {
    char *b64 = base64((const unsigned char *)body, n);
    json_object_set_new(line, "body_base64", json_string(b64));
    free(b64);
  }
  return line;
}

/* Completes and writes the line (status -1: dropped), then frees it. */
static void log_end(rm_mock *m, json_t *line, int status, const char *fault) {
  if (line == NULL)
    return;
  json_object_set_new(line, "status", status < 0 ? json_null() : json_integer(status));
  json_object_set_new(line, "outcome", json_string(status < 0 ? "dropped" : "replied"));
  json_object_set_new(line, "fault", json_str(fault));
  char *text = json_dumps(line, JSON_COMPACT);
  if (text != NULL) {
    fputs(text, m->log);
    fputc('\n', m->log);
    fflush(m->log);
    free(text);
  }
  json_decref(line);
}

/* ---- emails ---- */

/* A new id in the form of Resend's (a version-4 UUID), from a per-process seed and a counter. */
static void new_id(rm_mock *m, char out[37]) {
  uint64_t c = ++m->id_counter;
  XXH128_hash_t h = XXH3_128bits_withSeed(&c, sizeof c, m->id_seed);
  unsigned char b[16];
  for (int i = 0; i < 8; i++) {
    b[i] = (unsigned char)(h.high64 >> (56 - 8 * i));
    b[8 + i] = (unsigned char)(h.low64 >> (56 - 8 * i));
  }
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, 37,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
           b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* Stores one accepted email (request is borrowed and copied); returns its id. */
static const char *email_store(rm_mock *m, const char *team, const char *idem_key,
                               const char *endpoint, int batch_index, const json_t *request) {
  GROW(m->emails, m->n_emails, m->cap_emails);
  rm_email *e = &m->emails[m->n_emails++];
  char id[37];
  new_id(m, id);
  e->id = xstrdup(id);
  e->team = xstrdup(team);
  e->idem_key = idem_key ? xstrdup(idem_key) : NULL;
  e->endpoint = endpoint;
  e->batch_index = batch_index;
  format_created_at(e->created_at);
  e->request = json_deep_copy(request);
  m->stats.accepted_emails++;
  return e->id;
}

static void emails_clear(rm_mock *m) {
  for (size_t i = 0; i < m->n_emails; i++) {
    free(m->emails[i].id);
    free(m->emails[i].team);
    free(m->emails[i].idem_key);
    json_decref(m->emails[i].request);
  }
  m->n_emails = 0;
}

/* A string field as an array: "a" -> ["a"], absent -> []. New reference. */
static json_t *as_array(const json_t *v) {
  if (json_is_array(v))
    return json_deep_copy(v);
  json_t *a = json_array();
  if (json_is_string(v) && json_string_length(v) > 0)
    json_array_append(a, (json_t *)v);
  return a;
}

static json_t *copy_or_null(const json_t *v) {
  return v ? json_deep_copy(v) : json_null();
}

/* The email as GET /emails/{id} returns it. */
static json_t *email_as_resend(const rm_email *e) {
  const json_t *rq = e->request;
  const json_t *scheduled = json_object_get(rq, "scheduled_at");
  json_t *tags = json_object_get(rq, "tags");
  json_t *o = json_object();
  json_object_set_new(o, "object", json_string("email"));
  json_object_set_new(o, "id", json_string(e->id));
  json_object_set_new(o, "to", as_array(json_object_get(rq, "to")));
  json_object_set_new(o, "from", copy_or_null(json_object_get(rq, "from")));
  json_object_set_new(o, "created_at", json_string(e->created_at));
  json_object_set_new(o, "subject", copy_or_null(json_object_get(rq, "subject")));
  json_object_set_new(o, "html", copy_or_null(json_object_get(rq, "html")));
  json_object_set_new(o, "text", copy_or_null(json_object_get(rq, "text")));
  json_object_set_new(o, "bcc", as_array(json_object_get(rq, "bcc")));
  json_object_set_new(o, "cc", as_array(json_object_get(rq, "cc")));
  json_object_set_new(o, "reply_to", as_array(json_object_get(rq, "reply_to")));
  json_object_set_new(o, "last_event",
                      json_string(json_is_string(scheduled) ? "scheduled" : "delivered"));
  json_object_set_new(o, "scheduled_at", copy_or_null(scheduled));
  json_object_set_new(o, "tags", json_is_array(tags) ? json_deep_copy(tags) : json_array());
  return o;
}

/* The email as GET /_mock/emails lists it. */
static json_t *email_as_listed(const rm_email *e) {
  json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:o, s:s}", "id", e->id, "api_key", e->team,
                        "idempotency_key", json_str(e->idem_key), "endpoint", e->endpoint,
                        "batch_index", e->batch_index < 0 ? json_null()
                                                          : json_integer(e->batch_index),
                        "created_at", e->created_at);
  json_object_set_new(o, "request", json_deep_copy(e->request));
  return o;
}

/* ---- idempotency keys ---- */

static void idem_free(rm_idem *e) {
  free(e->team);
  free(e->key);
  free(e->request);
  free(e->response);
}

static void idem_clear(rm_mock *m) {
  for (size_t i = 0; i < m->n_idem; i++)
    idem_free(&m->idem[i]);
  m->n_idem = 0;
}

/* The live entry of (team, key), or NULL. Drops the expired entries it passes. */
static rm_idem *idem_find(rm_mock *m, const char *team, const char *key) {
  int64_t now = mono_ms();
  size_t i = 0;
  while (i < m->n_idem) {
    rm_idem *e = &m->idem[i];
    if (e->done && now - e->created_ms >= m->idem_ttl_ms) {
      idem_free(e);
      m->idem[i] = m->idem[--m->n_idem];
      continue;
    }
    if (strcmp(e->team, team) == 0 && strcmp(e->key, key) == 0)
      return e;
    i++;
  }
  return NULL;
}

static uint64_t idem_insert(rm_mock *m, const char *team, const char *key, const char *request,
                            XXH128_hash_t hash, int64_t created_ms, const rm_reply *r) {
  GROW(m->idem, m->n_idem, m->cap_idem);
  rm_idem *e = &m->idem[m->n_idem++];
  memset(e, 0, sizeof *e);
  e->team = xstrdup(team);
  e->key = xstrdup(key);
  e->request = xstrdup(request);
  e->body_hash = hash;
  e->created_ms = created_ms;
  e->serial = ++m->next_serial;
  e->status = r->status;
  e->response = xstrdup(r->body);
  return e->serial;
}

static void idem_mark_done(rm_mock *m, uint64_t serial) {
  for (size_t i = 0; i < m->n_idem; i++)
    if (m->idem[i].serial == serial)
      m->idem[i].done = 1;
}

/* What two requests with the same key must share: the payload, compared as JSON (key order and
 * spacing do not matter) when it parses, else byte for byte. */
static XXH128_hash_t payload_hash(const json_t *doc, const char *raw, size_t len) {
  if (doc != NULL) {
    char *canon = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (canon == NULL)
      out_of_memory();
    XXH128_hash_t h = XXH3_128bits(canon, strlen(canon));
    free(canon);
    return h;
  }
  return XXH3_128bits(raw, len);
}

/* ---- rate limit ---- */

/* Counts one request of team in its window and sets the ratelimit-* headers. Returns 0, or -1
 * with r set to Resend's 429 when the window is full (that request is not counted). */
static int rate_limit(rm_mock *m, const char *team, rm_reply *r) {
  if (m->rps <= 0)
    return 0;
  rm_window *w = NULL;
  for (size_t i = 0; i < m->n_windows && w == NULL; i++)
    if (strcmp(m->windows[i].team, team) == 0)
      w = &m->windows[i];
  int64_t now = mono_ms();
  if (w == NULL) {
    GROW(m->windows, m->n_windows, m->cap_windows);
    w = &m->windows[m->n_windows++];
    w->team = xstrdup(team);
    w->start_ms = now;
    w->count = 0;
  }
  if (now - w->start_ms >= 1000) {
    w->start_ms = now;
    w->count = 0;
  }
  long reset = (long)((w->start_ms + 1000 - now + 999) / 1000);
  if (reset < 1)
    reset = 1;
  int limited = w->count >= m->rps;
  if (!limited)
    w->count++;
  reply_header_long(r, "ratelimit-limit", m->rps);
  reply_header_long(r, "ratelimit-remaining", m->rps - w->count);
  reply_header_long(r, "ratelimit-reset", reset);
  if (!limited)
    return 0;
  reply_header_long(r, "retry-after", reset);
  reply_resend_error(r, 429, "rate_limit_exceeded",
                     "Too many requests. Please limit the number of requests per second. Or "
                     "contact support to increase rate limit.");
  m->stats.rate_limited++;
  return -1;
}

static void windows_clear(rm_mock *m) {
  for (size_t i = 0; i < m->n_windows; i++)
    free(m->windows[i].team);
  m->n_windows = 0;
}

/* ---- faults ---- */

static void fault_free(rm_fault *f) {
  free(f->path);
  free(f->method);
  json_decref(f->body);
  json_decref(f->headers);
}

static void faults_clear(rm_mock *m) {
  for (size_t i = 0; i < m->n_faults; i++)
    fault_free(&m->faults[i]);
  free(m->faults);
  m->faults = NULL;
  m->n_faults = 0;
}

/* An integer field of a fault within [lo, hi]; absent leaves *out. 0, or -1 and why. */
static int fault_int(const json_t *o, const char *field, long lo, long hi, long *out, size_t index,
                     char *why, size_t why_len) {
  const json_t *v = json_object_get(o, field);
  if (v == NULL)
    return 0;
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
    snprintf(why, why_len, "faults[%zu].%s: an integer from %ld to %ld", index, field, lo, hi);
    return -1;
  }
  *out = (long)json_integer_value(v);
  return 0;
}

/* Parses a fault script ({"faults": [...]}, README "Faults"). Returns 0 with *out and *n_out (the
 * caller frees them), or -1 with why. */
static int faults_parse(const json_t *doc, rm_fault **out, size_t *n_out, char *why,
                        size_t why_len) {
  static const char *const known[] = {"path", "method", "count", "status", "body", "headers",
                                      "delay_ms", "drop"};
  const json_t *list = json_object_get(doc, "faults");
  if (!json_is_object(doc) || !json_is_array(list)) {
    snprintf(why, why_len, "a fault script is an object {\"faults\": [...]}");
    return -1;
  }
  size_t n = json_array_size(list);
  rm_fault *faults = xcalloc(n, sizeof *faults);
  for (size_t i = 0; i < n; i++) {
    const json_t *o = json_array_get(list, i);
    rm_fault *f = &faults[i];
    f->count = 1;
    if (!json_is_object(o)) {
      snprintf(why, why_len, "faults[%zu]: an object", i);
      goto fail;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
      size_t k = 0;
      while (k < sizeof known / sizeof *known && strcmp(key, known[k]) != 0)
        k++;
      if (k == sizeof known / sizeof *known) {
        snprintf(why, why_len, "faults[%zu]: unknown field \"%.60s\"", i, key);
        goto fail;
      }
    }
    const json_t *path = json_object_get(o, "path"), *method = json_object_get(o, "method");
    const json_t *drop = json_object_get(o, "drop"), *headers = json_object_get(o, "headers");
    if ((path && !json_is_string(path)) || (method && !json_is_string(method))) {
      snprintf(why, why_len, "faults[%zu]: path and method are strings", i);
      goto fail;
    }
    f->path = path && strcmp(json_string_value(path), "*") != 0
                  ? xstrdup(json_string_value(path)) : NULL;
    f->method = method ? xstrdup(json_string_value(method)) : NULL;
    long status = 0;
    if (fault_int(o, "count", 1, LONG_MAX, &f->count, i, why, why_len) ||
        fault_int(o, "status", 200, 599, &status, i, why, why_len) ||
        fault_int(o, "delay_ms", 0, RM_MAX_DELAY_MS, &f->delay_ms, i, why, why_len))
      goto fail;
    f->status = (int)status;
    if (drop != NULL) {
      const char *d = json_is_string(drop) ? json_string_value(drop) : "";
      f->drop = strcmp(d, "before") == 0 ? DROP_BEFORE
                : strcmp(d, "after_accept") == 0 ? DROP_AFTER_ACCEPT : -1;
      if (f->drop < 0) {
        snprintf(why, why_len, "faults[%zu].drop: \"before\" or \"after_accept\"", i);
        goto fail;
      }
    }
    if (json_object_get(o, "body") != NULL) {
      if (f->status == 0) {
        snprintf(why, why_len, "faults[%zu].body: only with a status", i);
        goto fail;
      }
      f->body = json_incref(json_object_get(o, "body"));
    }
    if (headers != NULL) {
      int ok = json_is_object(headers) && f->drop == DROP_NONE;
      const char *name;
      json_t *hv;
      json_object_foreach((json_t *)headers, name, hv) {
        const char *s = json_string_value(hv);
        ok = ok && s != NULL && name[0] != '\0' && strpbrk(s, "\r\n") == NULL &&
             strpbrk(name, "\r\n: ") == NULL;
      }
      if (!ok) {
        snprintf(why, why_len,
                 "faults[%zu].headers: an object of string values, not with a drop", i);
        goto fail;
      }
      f->headers = json_incref((json_t *)headers);
    }
    if (f->status != 0 && f->drop != DROP_NONE) {
      snprintf(why, why_len, "faults[%zu]: a status or a drop, not both", i);
      goto fail;
    }
    if (f->status == 0 && f->drop == DROP_NONE && json_object_get(o, "delay_ms") == NULL) {
      snprintf(why, why_len, "faults[%zu]: one of status, delay_ms, drop", i);
      goto fail;
    }
  }
  *out = faults;
  *n_out = n;
  return 0;
fail:
  for (size_t i = 0; i < n; i++)
    fault_free(&faults[i]);
  free(faults);
  return -1;
}

static json_t *faults_json(const rm_mock *m) {
  json_t *list = json_array();
  for (size_t i = 0; i < m->n_faults; i++) {
    const rm_fault *f = &m->faults[i];
    json_t *o = json_pack("{s:o, s:I}", "path", json_string(f->path ? f->path : "*"), "count",
                          (json_int_t)f->count);
    if (f->method)
      json_object_set_new(o, "method", json_string(f->method));
    if (f->status)
      json_object_set_new(o, "status", json_integer(f->status));
    if (f->body)
      json_object_set(o, "body", f->body);
    if (f->headers)
      json_object_set(o, "headers", f->headers);
    if (f->delay_ms)
      json_object_set_new(o, "delay_ms", json_integer(f->delay_ms));
    if (f->drop)
      json_object_set_new(o, "drop", json_string(f->drop == DROP_BEFORE ? "before"
                                                                        : "after_accept"));
    json_array_append_new(list, o);
  }
  return json_pack("{s:o}", "faults", list);
}

static int path_matches(const char *pattern, const char *path) {
  if (pattern == NULL)
    return 1;
  size_t n = strlen(pattern);
  if (n > 0 && pattern[n - 1] == '*')
    return strncmp(pattern, path, n - 1) == 0;
  return strcmp(pattern, path) == 0;
}

/* The first fault of the script that matches the request, or NULL. */
static rm_fault *fault_match(rm_mock *m, const char *method, const char *path) {
  for (size_t i = 0; i < m->n_faults; i++) {
    rm_fault *f = &m->faults[i];
    if ((f->method == NULL || strcasecmp(f->method, method) == 0) && path_matches(f->path, path))
      return f;
  }
  return NULL;
}

/* Uses one of f's count; the fault leaves the script at 0. */
static void fault_consume(rm_mock *m, rm_fault *f) {
  m->stats.faults_applied++;
  if (--f->count > 0)
    return;
  size_t i = (size_t)(f - m->faults);
  fault_free(f);
  memmove(&m->faults[i], &m->faults[i + 1], (m->n_faults - i - 1) * sizeof *m->faults);
  m->n_faults--;
}

static const char *fault_name(const rm_fault *f) {
  if (f == NULL)
    return NULL;
  if (f->drop == DROP_BEFORE)
    return "drop_before";
  if (f->drop == DROP_AFTER_ACCEPT)
    return "drop_after_accept";
  return f->status ? "status" : "delay";
}

/* The reply of a status fault: its body, or Resend's error for that status. */
static void fault_reply(const rm_fault *f, rm_reply *r) {
  static const struct {
    int status;
    const char *name, *message;
  } defaults[] = {
      {400, "validation_error", "An error was found with one or more fields in the request."},
      {401, "missing_api_key", "Missing API key in the authorization header."},
      {403, "restricted_api_key", "API key is not active"},
      {404, "not_found", "The requested endpoint does not exist."},
      {405, "method_not_allowed", "Method is not allowed for the requested path."},
      {409, "concurrent_idempotent_requests",
       "There is another request in progress with the same idempotency key."},
      {422, "validation_error", "An error was found with one or more fields in the request."},
      {429, "rate_limit_exceeded", "Too many requests. Please limit the number of requests per "
                                   "second. Or contact support to increase rate limit."},
      {500, "application_error", "An unexpected error occurred."},
      {503, "service_unavailable", "API is temporarily unavailable"},
  };
  if (f->body != NULL && json_is_string(f->body)) {
    r->status = f->status;
    r->body = xstrdup(json_string_value(f->body));
    r->body_len = json_string_length(f->body);
    r->content_type = "text/plain; charset=utf-8";
  } else if (f->body != NULL) {
    reply_json(r, f->status, json_incref(f->body));
  } else {
    const char *name = "application_error", *message = "Injected fault.";
    for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++) {
      if (defaults[i].status == f->status) {
        name = defaults[i].name;
        message = defaults[i].message;
      }
    }
    reply_resend_error(r, f->status, name, message);
  }
}

/* ---- the API ---- */

enum { ROUTE_NONE, ROUTE_NOT_ALLOWED, ROUTE_SEND, ROUTE_BATCH, ROUTE_GET };

static int route_of(const char *path, enum evhttp_cmd_type cmd, const char **id) {
  if (strcmp(path, "/emails") == 0)
    return cmd == EVHTTP_REQ_POST ? ROUTE_SEND : ROUTE_NOT_ALLOWED;
  if (strcmp(path, "/emails/batch") == 0)
    return cmd == EVHTTP_REQ_POST ? ROUTE_BATCH : ROUTE_NOT_ALLOWED;
  if (strncmp(path, "/emails/", 8) == 0 && path[8] != '\0' && strchr(path + 8, '/') == NULL) {
    *id = path + 8;
    return cmd == EVHTTP_REQ_GET ? ROUTE_GET : ROUTE_NOT_ALLOWED;
  }
  return ROUTE_NONE;
}

/* The API key of `Authorization: Bearer KEY` (a new string), or NULL with r set to Resend's
 * error: no key 401 missing_api_key; a key not of the form re_... 400 validation_error; another
 * key than --api-key 401 validation_error. */
static char *authenticate(rm_mock *m, struct evhttp_request *req, rm_reply *r) {
  const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
  while (h && (*h == ' ' || *h == '\t'))
    h++;
  if (h == NULL || strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t')) {
    reply_resend_error(r, 401, "missing_api_key", "Missing API key in the authorization header");
    return NULL;
  }
  h += 6;
  while (*h == ' ' || *h == '\t')
    h++;
  size_t n = strlen(h);
  while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
    n--;
  if (n == 0) {
    reply_resend_error(r, 401, "missing_api_key", "Missing API key in the authorization header");
    return NULL;
  }
  int well_formed = n > 3 && strncmp(h, "re_", 3) == 0;
  for (size_t i = 3; well_formed && i < n; i++) {
    unsigned char c = (unsigned char)h[i];
    well_formed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
  }
  if (!well_formed) {
    reply_resend_error(r, 400, "validation_error", "API key is invalid");
    return NULL;
  }
  if (m->api_key != NULL && (strlen(m->api_key) != n || strncmp(m->api_key, h, n) != 0)) {
    reply_resend_error(r, 401, "validation_error", "API key is invalid");
    return NULL;
  }
  char *key = xcalloc(n + 1, 1);
  memcpy(key, h, n);
  return key;
}

/* What one POST has in common for the idempotency check and the handlers. */
typedef struct rm_post {
  const char *team;
  const char *key; /* Idempotency-Key, or NULL */
  const char *request; /* "POST /emails" or "POST /emails/batch strict|permissive" */
  const char *raw;
  size_t len;
  json_t *doc; /* the parsed body, or NULL when it is not JSON */
  XXH128_hash_t hash;
  int64_t start_ms;
} rm_post;

/* The Idempotency-Key step: 0 to go on, 1 when r is already the answer (an invalid key, a
 * conflict, or the original response replayed). */
static int idempotency(rm_mock *m, rm_post *p, rm_reply *r) {
  if (p->key == NULL)
    return 0;
  size_t n = strlen(p->key);
  if (n < 1 || n > RM_MAX_IDEMPOTENCY_KEY) {
    reply_resend_error(r, 400, "invalid_idempotency_key",
                       "Idempotency keys, if present, must have between 1 and 256 characters.");
    return 1;
  }
  p->hash = payload_hash(p->doc, p->raw, p->len);
  rm_idem *e = idem_find(m, p->team, p->key);
  if (e == NULL)
    return 0;
  if (!e->done) {
    reply_resend_error(r, 409, "concurrent_idempotent_requests",
                       "There is another request in progress with the same idempotency key.");
    return 1;
  }
  if (strcmp(e->request, p->request) != 0 || !XXH128_isEqual(e->body_hash, p->hash)) {
    reply_resend_error(r, 409, "invalid_idempotent_request",
                       "This idempotency key has been used with this HTTP method and endpoint "
                       "within the last 24 hours, but the request body was modified and doesn't "
                       "match the original request.");
    return 1;
  }
  free(r->body);
  r->status = e->status;
  r->body = xstrdup(e->response);
  r->body_len = strlen(r->body);
  m->stats.replays++;
  return 1;
}

/* After a 200: remembers the key with this reply, in progress until the reply is out. */
static void idempotency_record(rm_mock *m, const rm_post *p, rm_reply *r) {
  if (p->key != NULL && r->status == 200)
    r->idem_serial = idem_insert(m, p->team, p->key, p->request, p->hash, p->start_ms, r);
}

static int body_is_json(const rm_post *p, rm_reply *r) {
  if (p->doc != NULL)
    return 1;
  reply_resend_error(r, 400, "validation_error", "The request body is not valid JSON.");
  return 0;
}

/* The size of one email of a batch, serialized (only worth computing for a large body). */
static size_t email_size(const json_t *email, size_t body_len) {
  if (body_len <= RM_MAX_EMAIL_BYTES)
    return body_len;
  char *s = json_dumps(email, JSON_COMPACT);
  size_t n = s ? strlen(s) : 0;
  free(s);
  return n;
}

static void api_send(rm_mock *m, rm_post *p, rm_reply *r) {
  p->request = "POST /emails";
  if (idempotency(m, p, r) || !body_is_json(p, r))
    return;
  rm_error err;
  if (rm_check_email(p->doc, 0, &err) || rm_check_size(p->len, &err)) {
    reply_error(r, &err);
    return;
  }
  const char *id = email_store(m, p->team, p->key, "/emails", -1, p->doc);
  reply_json(r, 200, json_pack("{s:s}", "id", id));
  idempotency_record(m, p, r);
}

static void api_batch(rm_mock *m, struct evhttp_request *req, rm_post *p, rm_reply *r) {
  const char *mode = evhttp_find_header(evhttp_request_get_input_headers(req),
                                        "x-batch-validation");
  int permissive = mode != NULL && strcasecmp(mode, "permissive") == 0;
  if (mode != NULL && !permissive && strcasecmp(mode, "strict") != 0) {
    reply_resend_error(r, 422, "validation_error",
                       "Invalid `x-batch-validation` header. It must be `strict` or `permissive`.");
    return;
  }
  p->request = permissive ? "POST /emails/batch permissive" : "POST /emails/batch strict";
  if (idempotency(m, p, r) || !body_is_json(p, r))
    return;
  if (!json_is_array(p->doc)) {
    reply_resend_error(r, 422, "validation_error", "The request body must be an `array` of emails.");
    return;
  }
  size_t n = json_array_size(p->doc);
  if (n == 0) {
    reply_resend_error(r, 422, "validation_error", "The batch must contain at least one email.");
    return;
  }
  if (!permissive && n > RM_MAX_BATCH) {
    reply_resend_error(r, 422, "validation_error",
                       "Too many emails in the batch. The maximum is 100.");
    return;
  }
  /* Check every email first: strict mode stores nothing unless all are valid. */
  char *ok = xcalloc(n, 1);
  json_t *errors = json_array(), *data, *body;
  for (size_t i = 0; i < n; i++) {
    const json_t *email = json_array_get(p->doc, i);
    rm_error err;
    if (i >= RM_MAX_BATCH) {
      rm_error_set(&err, 422, "validation_error", "The batch contains more than 100 emails.");
    } else if (rm_check_email(email, 1, &err) == 0 &&
               rm_check_size(email_size(email, p->len), &err) == 0) {
      ok[i] = 1;
      continue;
    }
    if (!permissive) {
      reply_error(r, &err);
      goto out;
    }
    json_array_append_new(errors, json_pack("{s:I, s:s}", "index", (json_int_t)i, "message",
                                            err.message));
  }
  data = json_array();
  for (size_t i = 0; i < n; i++) {
    if (ok[i]) {
      const char *id = email_store(m, p->team, p->key, "/emails/batch", (int)i,
                                   json_array_get(p->doc, i));
      json_array_append_new(data, json_pack("{s:s}", "id", id));
    }
  }
  body = json_pack("{s:o}", "data", data);
  if (permissive)
    json_object_set(body, "errors", errors);
  reply_json(r, 200, body);
  m->stats.batches++;
  idempotency_record(m, p, r);
out:
  json_decref(errors);
  free(ok);
}

static void api_get(rm_mock *m, const char *team, const char *id, rm_reply *r) {
  for (size_t i = 0; i < m->n_emails; i++) {
    if (strcmp(m->emails[i].id, id) == 0 && strcmp(m->emails[i].team, team) == 0) {
      reply_json(r, 200, email_as_resend(&m->emails[i]));
      return;
    }
  }
  reply_resend_error(r, 404, "not_found", "Email not found");
}

/* One request to the API, without faults: fills r. */
static void api(rm_mock *m, struct evhttp_request *req, const char *path, rm_reply *r) {
  /* Resend's edge blocks a request without a User-Agent before it reaches the API: 403, error
   * 1010, not a JSON body (the body here is chosen). */
  const char *agent = evhttp_find_header(evhttp_request_get_input_headers(req), "User-Agent");
  if (agent == NULL || *agent == '\0') {
    r->status = 403;
    r->body = xstrdup("error code: 1010");
    r->body_len = strlen(r->body);
    r->content_type = "text/plain; charset=utf-8";
    return;
  }
  const char *id = NULL;
  int route = route_of(path, evhttp_request_get_command(req), &id);
  if (route == ROUTE_NONE) {
    reply_resend_error(r, 404, "not_found", "The requested endpoint does not exist.");
    return;
  }
  if (route == ROUTE_NOT_ALLOWED) {
    reply_resend_error(r, 405, "method_not_allowed",
                       "Method is not allowed for the requested path.");
    return;
  }
  char *team = authenticate(m, req, r);
  if (team == NULL)
    return;
  if (rate_limit(m, team, r) == 0) {
    if (route == ROUTE_GET) {
      api_get(m, team, id, r);
    } else {
      struct evbuffer *b = evhttp_request_get_input_buffer(req);
      rm_post p = {0};
      p.team = team;
      p.key = evhttp_find_header(evhttp_request_get_input_headers(req), "Idempotency-Key");
      p.len = evbuffer_get_length(b);
      p.raw = p.len ? (const char *)evbuffer_pullup(b, -1) : "";
      p.doc = json_loadb(p.raw, p.len, JSON_DECODE_ANY, NULL);
      p.start_ms = mono_ms();
      if (route == ROUTE_SEND)
        api_send(m, &p, r);
      else
        api_batch(m, req, &p, r);
      json_decref(p.doc);
    }
  }
  free(team);
}

/* ---- replies that wait: delays and drops ---- */

static void count_status(rm_mock *m, int status) {
  char key[16];
  snprintf(key, sizeof key, "%d", status);
  json_t *v = json_object_get(m->stats.by_status, key);
  json_object_set_new(m->stats.by_status, key,
                      json_integer(v ? json_integer_value(v) + 1 : 1));
}

/* Sends r (or drops the connection) and closes the books on the request. */
static void complete(rm_mock *m, struct evhttp_request *req, rm_reply *r, int drop, json_t *log,
                     const char *fault) {
  if (r->idem_serial)
    idem_mark_done(m, r->idem_serial);
  if (drop) {
    /* Closed with no reply. A request whose client went away is no longer on a connection. */
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    if (c != NULL)
      evhttp_connection_free(c);
    else
      evhttp_request_free(req);
    m->stats.dropped++;
    log_end(m, log, -1, fault);
  } else {
    send_reply(req, r);
    count_status(m, r->status);
    log_end(m, log, r->status, fault);
  }
  m->stats.in_flight--;
  reply_clear(r);
}

static void held_unlink(rm_mock *m, rm_held *h) {
  if (h->prev)
    h->prev->next = h->next;
  else
    m->held = h->next;
  if (h->next)
    h->next->prev = h->prev;
}

static void on_held_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  rm_held *h = arg;
  rm_mock *m = h->m;
  held_unlink(m, h);
  complete(m, h->req, &h->reply, h->drop, h->log, h->fault);
  event_free(h->timer);
  free(h);
}

/* Sends r now, or after delay_ms, or drops the connection (always from a timer, outside evhttp's
 * callback). Takes r's contents and the log line. */
static void finish(rm_mock *m, struct evhttp_request *req, rm_reply *r, long delay_ms, int drop,
                   json_t *log, const char *fault) {
  if (delay_ms == 0 && !drop) {
    complete(m, req, r, 0, log, fault);
    return;
  }
  rm_held *h = xcalloc(1, sizeof *h);
  h->m = m;
  h->req = req;
  h->drop = drop;
  h->reply = *r;
  memset(r, 0, sizeof *r);
  h->log = log;
  h->fault = fault;
  h->timer = evtimer_new(m->base, on_held_timer, h);
  if (h->timer == NULL)
    out_of_memory();
  h->next = m->held;
  if (m->held)
    m->held->prev = h;
  m->held = h;
  struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
  evtimer_add(h->timer, &tv);
}

/* At exit: requests still held are freed (those on a connection go with evhttp_free). */
static void held_clear(rm_mock *m) {
  while (m->held != NULL) {
    rm_held *h = m->held;
    held_unlink(m, h);
    if (evhttp_request_get_connection(h->req) == NULL)
      evhttp_request_free(h->req);
    reply_clear(&h->reply);
    json_decref(h->log);
    event_free(h->timer);
    free(h);
  }
}

/* ---- the control API ---- */

static json_t *stats_json(const rm_mock *m) {
  const rm_stats *s = &m->stats;
  return json_pack("{s:I, s:I, s:I, s:O, s:I, s:I, s:I, s:I, s:I, s:I}", "requests",
                   (json_int_t)s->requests, "accepted_emails", (json_int_t)s->accepted_emails,
                   "batches", (json_int_t)s->batches, "by_status", s->by_status, "rate_limited",
                   (json_int_t)s->rate_limited, "idempotent_replays", (json_int_t)s->replays,
                   "dropped", (json_int_t)s->dropped, "faults_applied",
                   (json_int_t)s->faults_applied, "in_flight", (json_int_t)s->in_flight,
                   "max_concurrent", (json_int_t)s->max_concurrent);
}

static void stats_reset(rm_mock *m) {
  long in_flight = m->stats.in_flight;
  json_decref(m->stats.by_status);
  memset(&m->stats, 0, sizeof m->stats);
  m->stats.by_status = json_object();
  m->stats.in_flight = in_flight; /* held requests still complete */
  m->stats.max_concurrent = in_flight;
}

static void control(rm_mock *m, struct evhttp_request *req, const char *path) {
  enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
  int get = cmd == EVHTTP_REQ_GET, post = cmd == EVHTTP_REQ_POST;
  if (strcmp(path, "/_mock/emails") == 0 && get) {
    json_t *list = json_array();
    for (size_t i = 0; i < m->n_emails; i++)
      json_array_append_new(list, email_as_listed(&m->emails[i]));
    control_reply(req, 200, list);
  } else if (strcmp(path, "/_mock/stats") == 0 && get) {
    control_reply(req, 200, stats_json(m));
  } else if (strcmp(path, "/_mock/faults") == 0 && get) {
    control_reply(req, 200, faults_json(m));
  } else if (strcmp(path, "/_mock/faults") == 0 && post) {
    struct evbuffer *b = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(b);
    json_error_t jerr;
    json_t *doc = json_loadb(n ? (const char *)evbuffer_pullup(b, -1) : "", n, 0, &jerr);
    rm_fault *faults;
    size_t n_faults;
    char why[200];
    if (doc == NULL) {
      snprintf(why, sizeof why, "not JSON: %s", jerr.text);
      control_error(req, 400, why);
    } else if (faults_parse(doc, &faults, &n_faults, why, sizeof why) != 0) {
      control_error(req, 400, why);
    } else {
      faults_clear(m);
      m->faults = faults;
      m->n_faults = n_faults;
      control_reply(req, 200, json_pack("{s:I}", "faults", (json_int_t)n_faults));
    }
    json_decref(doc);
  } else if (strcmp(path, "/_mock/reset") == 0 && post) {
    emails_clear(m);
    idem_clear(m);
    windows_clear(m);
    faults_clear(m);
    stats_reset(m);
    control_reply(req, 200, json_pack("{s:b}", "reset", 1));
  } else if (strcmp(path, "/_mock/emails") == 0 || strcmp(path, "/_mock/stats") == 0 ||
             strcmp(path, "/_mock/faults") == 0 || strcmp(path, "/_mock/reset") == 0) {
    control_error(req, 405, "method not allowed on this control endpoint");
  } else {
    control_error(req, 404, "unknown control endpoint (see resend-mock --help)");
  }
}

/* ---- requests ---- */

static void on_request(struct evhttp_request *req, void *arg) {
  rm_mock *m = arg;
  if (evhttp_request_get_uri(req) == NULL) {
    /* evhttp could not read the request (a body over the limit, a malformed one) and asks for
     * a reply with the status it chose. */
    int status = evhttp_request_get_response_code(req);
    rm_reply r = {0};
    reply_resend_error(&r, status == 413 ? 413 : 400, "validation_error",
                       status == 413 ? "The request body is too large."
                                     : "The request could not be read.");
    m->stats.requests++;
    count_status(m, r.status);
    send_reply(req, &r);
    reply_clear(&r);
    return;
  }
  const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
  const char *raw_path = uri ? evhttp_uri_get_path(uri) : NULL;
  char *path = evhttp_uridecode(raw_path ? raw_path : "/", 0, NULL);
  if (path == NULL)
    out_of_memory();
  if (strcmp(path, "/_mock") == 0 || strncmp(path, "/_mock/", 7) == 0) {
    control(m, req, path);
    free(path);
    return;
  }
  m->stats.requests++;
  if (++m->stats.in_flight > m->stats.max_concurrent)
    m->stats.max_concurrent = m->stats.in_flight;
  json_t *log = log_begin(m, req);
  const char *method = method_name(evhttp_request_get_command(req));
  rm_fault *f = fault_match(m, method, path);
  rm_reply r = {0};
  long delay_ms = f ? f->delay_ms : 0;
  int drop = f ? f->drop : DROP_NONE;
  const char *fault = fault_name(f);
  if (drop == DROP_BEFORE) {
    /* closed before processing: nothing to do */
  } else if (f != NULL && f->status != 0) {
    fault_reply(f, &r);
  } else {
    api(m, req, path, &r);
  }
  if (f != NULL && f->headers != NULL) {
    const char *name;
    json_t *v;
    json_object_foreach(f->headers, name, v) reply_header(&r, name, json_string_value(v));
  }
  if (f != NULL)
    fault_consume(m, f);
  free(path);
  finish(m, req, &r, delay_ms, drop != DROP_NONE, log, fault);
}

/* ---- main ---- */

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)sig;
  (void)what;
  event_base_loopexit(((rm_mock *)arg)->base, NULL);
}

static int parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  fputs("resend-mock: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\n(see resend-mock --help)\n", stderr);
  return 2;
}

/* Writes the port to path through a temporary file and a rename, so it appears complete. */
static int write_port_file(const char *path, int port) {
  size_t n = strlen(path) + 32;
  char *tmp = xcalloc(n, 1);
  snprintf(tmp, n, "%s.%ld.tmp", path, (long)getpid());
  FILE *f = fopen(tmp, "w");
  int ok = f != NULL && fprintf(f, "%d\n", port) > 0;
  if (f != NULL && fclose(f) != 0)
    ok = 0;
  if (ok && rename(tmp, path) != 0)
    ok = 0;
  if (!ok) {
    fprintf(stderr, "resend-mock: cannot write %s: %s\n", path, strerror(errno));
    remove(tmp);
  }
  free(tmp);
  return ok ? 0 : -1;
}

typedef struct rm_options {
  long port, rps, ttl_ms;
  const char *port_file, *api_key, *faults_file, *log_file;
} rm_options;

static int parse_options(int argc, char **argv, rm_options *o) {
  o->port = 0;
  o->rps = RM_DEFAULT_RPS;
  o->ttl_ms = (long)RM_DEFAULT_TTL_MS;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage, stdout);
      return 0;
    }
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int takes = strcmp(a, "--port") == 0 || strcmp(a, "--port-file") == 0 ||
                strcmp(a, "--api-key") == 0 || strcmp(a, "--rps") == 0 ||
                strcmp(a, "--idempotency-ttl-ms") == 0 || strcmp(a, "--faults") == 0 ||
                strcmp(a, "--log") == 0;
    if (!takes)
      return usage_error("unknown argument '%s'", a);
    if (v == NULL)
      return usage_error("%s needs a value", a);
    i++;
    if (strcmp(a, "--port") == 0 && parse_long(v, 0, 65535, &o->port) != 0)
      return usage_error("--port: a number from 0 to 65535, not '%s'", v);
    if (strcmp(a, "--rps") == 0 && parse_long(v, 0, 1000000, &o->rps) != 0)
      return usage_error("--rps: a number from 0 to 1000000, not '%s'", v);
    if (strcmp(a, "--idempotency-ttl-ms") == 0 && parse_long(v, 1, LONG_MAX, &o->ttl_ms) != 0)
      return usage_error("--idempotency-ttl-ms: a positive number of milliseconds, not '%s'", v);
    if (strcmp(a, "--api-key") == 0) {
      if (strncmp(v, "re_", 3) != 0 || v[3] == '\0')
        return usage_error("--api-key: a key of the form re_..., not '%s'", v);
      o->api_key = v;
    }
    if (strcmp(a, "--port-file") == 0)
      o->port_file = v;
    if (strcmp(a, "--faults") == 0)
      o->faults_file = v;
    if (strcmp(a, "--log") == 0)
      o->log_file = v;
  }
  return -1; /* go on */
}

int main(int argc, char **argv) {
  rm_options o = {0};
  int rc = parse_options(argc, argv, &o);
  if (rc >= 0)
    return rc;

  rm_mock m = {0};
  m.api_key = o.api_key;
  m.rps = o.rps;
  m.idem_ttl_ms = o.ttl_ms;
  m.stats.by_status = json_object();
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  m.id_seed = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + ((uint64_t)getpid() << 32);
  rc = 1;

  if (o.faults_file != NULL) {
    json_error_t jerr;
    json_t *doc = json_load_file(o.faults_file, 0, &jerr);
    char why[200];
    if (doc == NULL) {
      rc = usage_error("--faults %s: %s (line %d)", o.faults_file, jerr.text, jerr.line);
      goto out;
    }
    int bad = faults_parse(doc, &m.faults, &m.n_faults, why, sizeof why);
    json_decref(doc);
    if (bad) {
      rc = usage_error("--faults %s: %s", o.faults_file, why);
      goto out;
    }
  }
  if (o.log_file != NULL && (m.log = fopen(o.log_file, "a")) == NULL) {
    fprintf(stderr, "resend-mock: cannot open %s: %s\n", o.log_file, strerror(errno));
    goto out;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);

  m.base = event_base_new();
  m.http = m.base ? evhttp_new(m.base) : NULL;
  if (m.http == NULL) {
    fputs("resend-mock: cannot start libevent\n", stderr);
    goto out;
  }
  evhttp_set_allowed_methods(m.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                         EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                         EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
  evhttp_set_max_body_size(m.http, RM_MAX_BODY);
  evhttp_set_timeout(m.http, 120);
  evhttp_set_gencb(m.http, on_request, &m);
  struct evhttp_bound_socket *bound =
      evhttp_bind_socket_with_handle(m.http, "127.0.0.1", (ev_uint16_t)o.port);
  if (bound == NULL) {
    fprintf(stderr, "resend-mock: cannot listen on 127.0.0.1:%ld: %s\n", o.port, strerror(errno));
    goto out;
  }
  struct sockaddr_in addr;
  socklen_t addr_len = sizeof addr;
  if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&addr, &addr_len) != 0) {
    fprintf(stderr, "resend-mock: getsockname: %s\n", strerror(errno));
    goto out;
  }
  int port = ntohs(addr.sin_port);
  if (o.port_file != NULL && write_port_file(o.port_file, port) != 0)
    goto out;
  fprintf(stderr, "resend-mock: listening on http://127.0.0.1:%d\n", port);

  struct event *sigterm = evsignal_new(m.base, SIGTERM, on_signal, &m);
  struct event *sigint = evsignal_new(m.base, SIGINT, on_signal, &m);
  if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm, NULL) || evsignal_add(sigint, NULL))
    out_of_memory();
  event_base_dispatch(m.base);
  event_free(sigterm);
  event_free(sigint);
  rc = 0;

out:
  held_clear(&m);
  if (m.http)
    evhttp_free(m.http);
  if (m.base)
    event_base_free(m.base);
  emails_clear(&m);
  free(m.emails);
  idem_clear(&m);
  free(m.idem);
  windows_clear(&m);
  free(m.windows);
  faults_clear(&m);
  json_decref(m.stats.by_status);
  if (m.log)
    fclose(m.log);
  return rc;
}
