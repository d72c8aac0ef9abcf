/* http.c: libcurl's multi interface on a libevent loop (http.h), in the way of curl's
 * docs/examples/ephiperfifo.c: the socket callback maps curl's wants onto one event per socket,
 * the timer callback arms one timer, and finished transfers are drained with curl_multi_info_read
 * and found again through CURLINFO_PRIVATE.
 *
 * Re-entrancy: a completion callback may start or cancel requests, or free the client. Every entry
 * from the loop (socket event, timer) counts itself in h->depth; sk_http_free inside one only marks
 * the client dying, and the outermost entry frees it on its way out.
 */
#define _POSIX_C_SOURCE 200809L

#include "http.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <event2/event.h>

enum { MAX_HEADERS = 64, MAX_HEADER_BYTES = 16384 };

typedef struct sock_ctx {
  struct sock_ctx *prev, *next;
  curl_socket_t fd;
  struct event *ev;
} sock_ctx;

typedef struct req {
  struct req *prev, *next;
  sk_http *h;
  CURL *easy;
  uint64_t id;
  struct curl_slist *headers;
  sk_http_done_fn cb;
  void *privdata;
  char *body; /* the response body, NUL-terminated */
  size_t body_len, body_cap;
  int body_truncated;
  char *hdr_name[MAX_HEADERS]; /* "name\0value\0" in one allocation each */
  size_t nhdr, hdr_bytes;
  char errbuf[CURL_ERROR_SIZE];
} req;

struct sk_http {
  struct event_base *base;
  CURLM *multi;
  struct event *timer;
  sk_http_options opt;
  char *ca_file, *user_agent;
  req *reqs; /* in flight */
  size_t nreqs;
  sock_ctx *socks;
  uint64_t next_id, connections;
  int depth, dying;
};

static void set_err(char *err, size_t errlen, const char *msg) {
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "%s", msg);
}

void sk_http_options_init(sk_http_options *o) {
  memset(o, 0, sizeof *o);
  o->connect_timeout_ms = 5000;
  o->timeout_ms = 30000;
  o->max_body = SK_HTTP_DEFAULT_MAX_BODY;
  o->user_agent = SK_HTTP_USER_AGENT;
  o->max_host_connections = 8;
  o->max_cached_connections = 32;
}

const char *sk_http_header_get(const sk_http_response *r, const char *name) {
  for (size_t i = r->nheaders; i-- > 0;)
    if (strcasecmp(r->headers[i].name, name) == 0)
      return r->headers[i].value;
  return NULL;
}

/* ---- requests ---- */

static void req_clear_headers(req *r) {
  for (size_t i = 0; i < r->nhdr; i++)
    free(r->hdr_name[i]);
  r->nhdr = 0;
  r->hdr_bytes = 0;
}

static void req_free(req *r) {
  if (r == NULL)
    return;
  if (r->easy != NULL)
    curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->headers);
  req_clear_headers(r);
  free(r->body);
  free(r);
}

static void req_link(sk_http *h, req *r) {
  r->prev = NULL;
  r->next = h->reqs;
  if (h->reqs != NULL)
    h->reqs->prev = r;
  h->reqs = r;
  h->nreqs++;
}

static void req_unlink(sk_http *h, req *r) {
  if (r->prev != NULL)
    r->prev->next = r->next;
  else
    h->reqs = r->next;
  if (r->next != NULL)
    r->next->prev = r->prev;
  r->prev = r->next = NULL;
  h->nreqs--;
}

/* CURLOPT_WRITEFUNCTION: keeps up to max_body bytes, drops the rest. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *userp) {
  req *r = userp;
  size_t n = size * nmemb, keep = n;
  size_t max = r->h->opt.max_body;
  if (r->body_len + keep > max) {
    keep = max > r->body_len ? max - r->body_len : 0;
    r->body_truncated = 1;
  }
  if (keep > 0) {
    if (r->body_len + keep + 1 > r->body_cap) {
      size_t cap = r->body_cap ? r->body_cap : 1024;
      while (cap < r->body_len + keep + 1)
        cap *= 2;
      char *p = realloc(r->body, cap);
      if (p == NULL)
        return 0; /* CURLE_WRITE_ERROR: reported as a transport error */
      r->body = p;
      r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, keep);
    r->body_len += keep;
    r->body[r->body_len] = '\0';
  }
  return n;
}

/* CURLOPT_HEADERFUNCTION: one line at a time. A status line starts a new response (after a 1xx,
   for instance): the headers kept are the last response's. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userp) {
  req *r = userp;
  size_t n = size * nmemb, len = n;
  while (len > 0 && (data[len - 1] == '\r' || data[len - 1] == '\n'))
    len--;
  if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
    req_clear_headers(r);
    return n;
  }
  const char *colon = memchr(data, ':', len);
  if (colon == NULL || colon == data || r->nhdr == MAX_HEADERS ||
      r->hdr_bytes + len + 2 > MAX_HEADER_BYTES)
    return n; /* a continuation line, the blank line, or over the caps: not kept */
  size_t nlen = (size_t)(colon - data);
  const char *v = colon + 1, *end = data + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  size_t vlen = (size_t)(end - v);
  char *p = malloc(nlen + vlen + 2);
  if (p == NULL)
    return n;
  for (size_t i = 0; i < nlen; i++)
    p[i] = (char)tolower((unsigned char)data[i]);
  p[nlen] = '\0';
  memcpy(p + nlen + 1, v, vlen);
  p[nlen + 1 + vlen] = '\0';
  r->hdr_name[r->nhdr++] = p;
  r->hdr_bytes += nlen + vlen + 2;
  return n;
}

/* Removes r from the multi handle, calls its callback and frees it. */
static void req_finish(sk_http *h, req *r, CURLcode rc) {
  sk_http_response res;
  sk_http_header hdrs[MAX_HEADERS];
  long status = 0, connects = 0, version = 0;
  curl_off_t total_us = 0;
  memset(&res, 0, sizeof res);
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects);
  curl_easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &version);
  curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &total_us);
  curl_multi_remove_handle(h->multi, r->easy);
  req_unlink(h, r);
  h->connections += (uint64_t)(connects > 0 ? connects : 0);

  res.status = rc == CURLE_OK ? status : 0;
  res.timed_out = rc == CURLE_OPERATION_TIMEDOUT;
  res.error = "";
  if (rc != CURLE_OK)
    res.error = r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(rc);
  res.body = r->body != NULL ? r->body : "";
  res.body_len = r->body_len;
  res.body_truncated = r->body_truncated;
  for (size_t i = 0; i < r->nhdr; i++) {
    hdrs[i].name = r->hdr_name[i];
    hdrs[i].value = r->hdr_name[i] + strlen(r->hdr_name[i]) + 1;
  }
  res.headers = hdrs;
  res.nheaders = r->nhdr;
  res.elapsed_us = (int64_t)total_us;
  res.connects = connects;
  res.http_version = version == CURL_HTTP_VERSION_1_0 || version == CURL_HTTP_VERSION_1_1 ? 1
                     : version == CURL_HTTP_VERSION_2_0                                   ? 2
                                                                                           : 0;
  r->cb(&res, r->privdata);
  req_free(r);
}

/* ---- the loop ---- */

static void really_free(sk_http *h);

/* Hands every finished transfer to its callback; stops when a callback frees the client. */
static void drain(sk_http *h) {
  CURLMsg *msg;
  int left;
  while (!h->dying && (msg = curl_multi_info_read(h->multi, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    CURL *easy = msg->easy_handle; /* msg dies with curl_multi_remove_handle: copy first */
    CURLcode rc = msg->data.result;
    req *r = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    assert(r != NULL && r->easy == easy);
    req_finish(h, r, rc);
  }
}

static void enter(sk_http *h) { h->depth++; }

static void leave(sk_http *h) {
  if (--h->depth == 0 && h->dying)
    really_free(h);
}

static void on_sock_event(evutil_socket_t fd, short what, void *arg) {
  sk_http *h = arg;
  int running = 0, action = 0;
  if (what & EV_READ)
    action |= CURL_CSELECT_IN;
  if (what & EV_WRITE)
    action |= CURL_CSELECT_OUT;
  enter(h);
  curl_multi_socket_action(h->multi, fd, action, &running);
  drain(h);
  leave(h);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  sk_http *h = arg;
  int running = 0;
  (void)fd;
  (void)what;
  enter(h);
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  drain(h);
  leave(h);
}

static void sock_unlink_free(sk_http *h, sock_ctx *c) {
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    h->socks = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  if (c->ev != NULL)
    event_free(c->ev);
  free(c);
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl wants, or stop watching it. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  sk_http *h = userp;
  sock_ctx *c = socketp;
  (void)easy;
  if (what == CURL_POLL_REMOVE) {
    if (c != NULL) {
      curl_multi_assign(h->multi, fd, NULL);
      sock_unlink_free(h, c);
    }
    return 0;
  }
  if (c == NULL) {
    c = calloc(1, sizeof *c);
    if (c == NULL)
      return -1;
    c->fd = fd;
    c->next = h->socks;
    if (h->socks != NULL)
      h->socks->prev = c;
    h->socks = c;
    curl_multi_assign(h->multi, fd, c);
  }
  if (c->ev != NULL) {
    event_free(c->ev);
    c->ev = NULL;
  }
  short kind = EV_PERSIST;
  if (what & CURL_POLL_IN)
    kind |= EV_READ;
  if (what & CURL_POLL_OUT)
    kind |= EV_WRITE;
  c->ev = event_new(h->base, fd, kind, on_sock_event, h);
  if (c->ev == NULL || event_add(c->ev, NULL) != 0)
    return -1;
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer; -1 removes it. curl_multi_socket_action is never called from
   here (curl forbids it): a 0 ms timeout fires from the loop. */
static int on_timer_set(CURLM *multi, long timeout_ms, void *userp) {
  sk_http *h = userp;
  (void)multi;
  if (timeout_ms < 0) {
    evtimer_del(h->timer);
    return 0;
  }
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  return evtimer_add(h->timer, &tv) == 0 ? 0 : -1;
}

/* ---- the client ---- */

sk_http *sk_http_new(struct event_base *base, const sk_http_options *options, char *err,
                     size_t errlen) {
  static int global_done;
  sk_http *h = NULL;
  if (!global_done) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      set_err(err, errlen, "curl_global_init failed");
      return NULL;
    }
    global_done = 1;
  }
  h = calloc(1, sizeof *h);
  if (h == NULL)
    goto oom;
  h->base = base;
  if (options != NULL)
    h->opt = *options;
  else
    sk_http_options_init(&h->opt);
  if (h->opt.max_body == 0)
    h->opt.max_body = SK_HTTP_DEFAULT_MAX_BODY;
  if (h->opt.ca_file != NULL && (h->ca_file = strdup(h->opt.ca_file)) == NULL)
    goto oom;
  h->user_agent = strdup(h->opt.user_agent != NULL ? h->opt.user_agent : SK_HTTP_USER_AGENT);
  if (h->user_agent == NULL)
    goto oom;
  h->opt.ca_file = h->ca_file;
  h->opt.user_agent = h->user_agent;
  h->next_id = 1;
  h->timer = evtimer_new(base, on_timer, h);
  h->multi = curl_multi_init();
  if (h->timer == NULL || h->multi == NULL)
    goto oom;
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)h->opt.max_host_connections);
  curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)h->opt.max_cached_connections);
  return h;
oom:
  set_err(err, errlen, "out of memory");
  sk_http_free(h);
  return NULL;
}

static void really_free(sk_http *h) {
  while (h->reqs != NULL) {
    req *r = h->reqs;
    curl_multi_remove_handle(h->multi, r->easy);
    req_unlink(h, r);
    req_free(r);
  }
  if (h->multi != NULL)
    curl_multi_cleanup(h->multi); /* closes the cached connections (CURL_POLL_REMOVE each) */
  while (h->socks != NULL)
    sock_unlink_free(h, h->socks);
  if (h->timer != NULL)
    event_free(h->timer);
  free(h->ca_file);
  free(h->user_agent);
  free(h);
}

void sk_http_free(sk_http *h) {
  if (h == NULL)
    return;
  if (h->depth > 0) {
    h->dying = 1; /* inside a callback: the outermost entry frees it */
    return;
  }
  really_free(h);
}

static int has_line_break(const char *s) { return strpbrk(s, "\r\n") != NULL; }

uint64_t sk_http_request(sk_http *h, const char *method, const char *url,
                         const char *const *headers, size_t nheaders, const void *body, size_t len,
                         sk_http_done_fn cb, void *privdata, char *err, size_t errlen) {
  req *r = NULL;
  if (h->dying) {
    set_err(err, errlen, "the HTTP client is being freed");
    return 0;
  }
  if (method == NULL || url == NULL || cb == NULL || (body == NULL && len > 0) ||
      has_line_break(method) || has_line_break(url)) {
    set_err(err, errlen, "bad arguments");
    return 0;
  }
  r = calloc(1, sizeof *r);
  if (r == NULL || (r->easy = curl_easy_init()) == NULL)
    goto oom;
  r->h = h;
  r->cb = cb;
  r->privdata = privdata;
  for (size_t i = 0; i < nheaders; i++) {
    if (has_line_break(headers[i]) || strchr(headers[i], ':') == NULL) {
      set_err(err, errlen, "a request header has a line break or no ':'");
      req_free(r);
      return 0;
    }
    struct curl_slist *l = curl_slist_append(r->headers, headers[i]);
    if (l == NULL)
      goto oom;
    r->headers = l;
  }
  /* No "Expect: 100-continue" round trip before a body. */
  struct curl_slist *l = curl_slist_append(r->headers, "Expect:");
  if (l == NULL)
    goto oom;
  r->headers = l;

  CURL *e = r->easy;
  int bad = 0;
  bad |= curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)r) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)r) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)r) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, h->user_agent) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)h->opt.connect_timeout_ms) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)h->opt.timeout_ms) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
  if (h->ca_file != NULL)
    bad |= curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file) != CURLE_OK;
  if (strcmp(method, "GET") == 0 && len == 0) {
    bad |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK;
  } else {
    bad |= curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, len > 0 ? (const char *)body : "") !=
           CURLE_OK;
    if (strcmp(method, "POST") != 0)
      bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK;
  }
  if (bad)
    goto oom;
  r->id = h->next_id++;
  if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
    goto oom;
  req_link(h, r);
  return r->id;
oom:
  set_err(err, errlen, "out of memory");
  req_free(r);
  return 0;
}

int sk_http_cancel(sk_http *h, uint64_t id) {
  for (req *r = h->reqs; r != NULL; r = r->next) {
    if (r->id != id)
      continue;
    curl_multi_remove_handle(h->multi, r->easy);
    req_unlink(h, r);
    req_free(r);
    return 0;
  }
  return -1;
}

size_t sk_http_in_flight(const sk_http *h) { return h->nreqs; }

uint64_t sk_http_connections(const sk_http *h) { return h->connections; }
