/*
 * server.h: a small HTTP server inside the test, on the test's event loop (libevent's evhttp on
 * 127.0.0.1, a port of its own). It records every request it reads (method, target, headers in the
 * order they came, body, the client's port, the time) and answers from a script: the next scripted
 * answer if there is one, else the auto answer (a Resend look-alike: POST /emails gives an id made
 * from the email's `to`; POST /emails/batch gives data[] for the members and errors[] for those
 * sent to a "bad-..." address; anything else 200 "ok").
 *
 * Include it once, after cmocka.h, event2/event.h and evloop.h. The test owns `base`.
 */
#ifndef SK_TESTS_HTTP_SERVER_H
#define SK_TESTS_HTTP_SERVER_H

#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>

#include "../lib/http_method.h"
#include <event2/keyvalq_struct.h>
#include <jansson.h>

enum { SRV_MAX_REQS = 2048, SRV_MAX_SCRIPT = 64, SRV_MAX_HELD = 64 };

typedef enum {
  SRV_REPLY = 0, /* answer at once */
  SRV_DELAY,     /* answer after delay_ms */
  SRV_DROP       /* close the connection without an answer, after reading the request */
} srv_action;

typedef struct srv_answer {
  srv_action action;
  int delay_ms;
  int status;
  const char *headers[8]; /* "Name: value" */
  const char *body;
} srv_answer;

typedef struct srv_req {
  char method[16];
  char target[512];
  char *raw; /* the request as bytes: request line, headers, blank line, body */
  size_t raw_len;
  char *body;
  size_t body_len;
  int peer_port;
  int64_t at_us; /* CLOCK_MONOTONIC */
} srv_req;

typedef struct srv_held {
  struct evhttp_request *req;
  struct event *timer;
  srv_answer answer;
  int used;
} srv_held;

static struct {
  struct evhttp *http;
  int port;
  srv_req reqs[SRV_MAX_REQS];
  size_t nreqs;
  srv_answer script[SRV_MAX_SCRIPT];
  size_t script_head, script_n;
  srv_held held[SRV_MAX_HELD];
} srv;

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Scripts the next answer (answers are used in order, then the auto answer). */
static void srv_push(srv_answer a) {
  assert_true(srv.script_n < SRV_MAX_SCRIPT);
  srv.script[(srv.script_head + srv.script_n++) % SRV_MAX_SCRIPT] = a;
}

static void srv_send(struct evhttp_request *req, const srv_answer *a) {
  struct evbuffer *out = evbuffer_new();
  struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
  for (int i = 0; i < 8 && a->headers[i] != NULL; i++) {
    char name[128];
    const char *colon = strchr(a->headers[i], ':');
    snprintf(name, sizeof name, "%.*s", (int)(colon - a->headers[i]), a->headers[i]);
    const char *v = colon + 1;
    while (*v == ' ')
      v++;
    evhttp_add_header(oh, name, v);
  }
  if (a->body != NULL)
    evbuffer_add(out, a->body, strlen(a->body));
  evhttp_send_reply(req, a->status, "X", out);
  evbuffer_free(out);
}

/* The auto answer to r. */
static void srv_auto(const srv_req *r, srv_answer *a, char *body, size_t cap) {
  memset(a, 0, sizeof *a);
  a->status = 200;
  a->headers[0] = "Content-Type: application/json";
  a->body = body;
  if (strcmp(r->target, "/emails") == 0) {
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    const char *to = json_string_value(json_object_get(j, "to"));
    snprintf(body, cap, "{\"id\":\"id-%s\"}", to != NULL ? to : "?");
    json_decref(j);
  } else if (strcmp(r->target, "/emails/batch") == 0) {
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *data = json_array(), *errors = json_array(), *out = json_object();
    for (size_t i = 0; i < json_array_size(j); i++) {
      const char *to = json_string_value(json_object_get(json_array_get(j, i), "to"));
      char id[160];
      if (to != NULL && strncmp(to, "bad-", 4) == 0) {
        json_array_append_new(errors, json_pack("{s:i,s:s}", "index", (int)i, "message",
                                                "Invalid `to` field. The email address needs to "
                                                "follow the `email@example.com` format."));
        continue;
      }
      snprintf(id, sizeof id, "id-%s", to != NULL ? to : "?");
      json_array_append_new(data, json_pack("{s:s}", "id", id));
    }
    json_object_set_new(out, "data", data);
    json_object_set_new(out, "errors", errors);
    char *text = json_dumps(out, JSON_COMPACT);
    snprintf(body, cap, "%s", text != NULL ? text : "{}");
    free(text);
    json_decref(out);
    json_decref(j);
  } else {
    a->headers[0] = NULL;
    snprintf(body, cap, "ok");
  }
}

static void srv_on_held(evutil_socket_t fd, short what, void *arg) {
  srv_held *h = arg;
  (void)fd;
  (void)what;
  srv_send(h->req, &h->answer);
  event_free(h->timer);
  h->used = 0;
}

static void srv_on_request(struct evhttp_request *req, void *arg) {
  (void)arg;
  assert_true(srv.nreqs < SRV_MAX_REQS);
  srv_req *r = &srv.reqs[srv.nreqs++];
  struct evbuffer *in = evhttp_request_get_input_buffer(req), *raw = evbuffer_new();
  struct evkeyvalq *hdrs = evhttp_request_get_input_headers(req);
  struct evhttp_connection *conn = evhttp_request_get_connection(req);
  char *peer = NULL;
  ev_uint16_t port = 0;
  memset(r, 0, sizeof *r);
  r->at_us = mono_us();
  snprintf(r->method, sizeof r->method, "%s", method_name(evhttp_request_get_command(req)));
  snprintf(r->target, sizeof r->target, "%s", evhttp_request_get_uri(req));
  evhttp_connection_get_peer(conn, &peer, &port);
  r->peer_port = port;
  evbuffer_add_printf(raw, "%s %s HTTP/1.1\r\n", r->method, r->target);
  for (struct evkeyval *kv = hdrs->tqh_first; kv != NULL; kv = kv->next.tqe_next)
    evbuffer_add_printf(raw, "%s: %s\r\n", kv->key, kv->value);
  evbuffer_add(raw, "\r\n", 2);
  r->body_len = evbuffer_get_length(in);
  r->body = malloc(r->body_len + 1);
  evbuffer_copyout(in, r->body, r->body_len);
  r->body[r->body_len] = '\0';
  evbuffer_add(raw, r->body, r->body_len);
  r->raw_len = evbuffer_get_length(raw);
  r->raw = malloc(r->raw_len + 1);
  evbuffer_remove(raw, r->raw, r->raw_len);
  r->raw[r->raw_len] = '\0';
  evbuffer_free(raw);

  srv_answer a;
  static char body[65536];
  if (srv.script_n > 0) {
    a = srv.script[srv.script_head];
    srv.script_head = (srv.script_head + 1) % SRV_MAX_SCRIPT;
    srv.script_n--;
  } else {
    srv_auto(r, &a, body, sizeof body);
  }
  if (a.action == SRV_DROP) {
    /* The client sees the connection closed with no answer; the reply below only frees the
       request (its write fails). */
    struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
    shutdown(bufferevent_getfd(bev), SHUT_RDWR);
    a.status = 500;
    a.body = NULL;
    a.headers[0] = NULL;
    srv_send(req, &a);
  } else if (a.action == SRV_DELAY) {
    srv_held *h = NULL;
    for (int i = 0; i < SRV_MAX_HELD && h == NULL; i++)
      if (!srv.held[i].used)
        h = &srv.held[i];
    assert_non_null(h);
    h->used = 1;
    h->req = req;
    h->answer = a;
    h->timer = evtimer_new(base, srv_on_held, h);
    struct timeval tv = {a.delay_ms / 1000, (a.delay_ms % 1000) * 1000};
    evtimer_add(h->timer, &tv);
  } else {
    srv_send(req, &a);
  }
}

static void srv_start(void) {
  memset(&srv, 0, sizeof srv);
  srv.http = evhttp_new(base);
  assert_non_null(srv.http);
  struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(srv.http, "127.0.0.1", 0);
  assert_non_null(bound);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  assert_int_equal(getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sl), 0);
  srv.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  evhttp_set_gencb(srv.http, srv_on_request, NULL);
}

static void srv_stop(void) {
  for (int i = 0; i < SRV_MAX_HELD; i++) /* answering frees a request whose client went away */
    if (srv.held[i].used) {
      event_free(srv.held[i].timer);
      srv_send(srv.held[i].req, &srv.held[i].answer);
      srv.held[i].used = 0;
    }
  evhttp_free(srv.http);
  for (size_t i = 0; i < srv.nreqs; i++) {
    free(srv.reqs[i].raw);
    free(srv.reqs[i].body);
  }
  srv.nreqs = 0;
}

/* "http://127.0.0.1:PORT" + path, in a static buffer. */
static const char *srv_url(const char *path) {
  static char url[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf(url[k], sizeof url[k], "http://127.0.0.1:%d%s", srv.port, path);
  return url[k];
}

/* The value of header `name` (exact case) in a recorded request, or NULL. */
static const char *srv_header(const srv_req *r, const char *name) {
  static char v[512];
  size_t nl = strlen(name);
  const char *p = r->raw;
  while ((p = strstr(p, "\r\n")) != NULL) {
    p += 2;
    if (strncmp(p, "\r\n", 2) == 0)
      return NULL;
    if (strncmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *e = strstr(p, "\r\n");
      snprintf(v, sizeof v, "%.*s", (int)(e - p - nl - 2), p + nl + 2);
      return v;
    }
  }
  return NULL;
}

#endif
