/*
 * sink.c: conf-sink, the webhook receiver of the conformance suite (tests/conformance/README.md).
 * run.sh points every webhook URL of a case's config at it, so that `skene-vm run` calls it instead
 * of the outside host the config names:
 *
 *   conf-sink --port-file FILE --log FILE
 *
 * Listens on a free port of 127.0.0.1 (libevent's evhttp, HTTP/1.1 with keep-alive) and, once it
 * listens, writes the port to --port-file (decimal and a newline, through a temporary file and a
 * rename: a reader never sees half of it). Answers every POST with 200 and the body `{}`
 * (Content-Type: application/json), any other method with 405. Each request it reads is one JSON
 * line of --log, written and flushed before the answer:
 *   {"method":"POST","path":TARGET,"headers":[[NAME,VALUE],...],"body":TEXT}
 * TARGET as the request line gave it, the headers in the order they came; "body" is null, with
 * "body_bytes", when the body is not UTF-8. Stops on SIGTERM or SIGINT, and when the process that
 * started it dies (a test killed by its timeout leaves no server behind).
 *
 * Exit status: 0 stopped by a signal; 1 it cannot listen or write a file; 2 usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "../lib/http_method.h"
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#define SINK_MAX_BODY (16u * 1024u * 1024u) /* evhttp answers 413 above this */

typedef struct sink {
  struct event_base *base;
  FILE *log;
  int log_failed; /* a line could not be written: the exit status says so */
} sink;

/* Writes req's log line. Returns 0, or -1 when it could not be written. */
static int log_request(sink *s, struct evhttp_request *req) {
  const char *target = evhttp_request_get_uri(req);
  json_t *line = json_object();
  json_t *headers = json_array();
  if (!line || !headers) goto fail;
  json_object_set_new(line, "method", json_string(method_name(evhttp_request_get_command(req))));
  json_object_set_new(line, "path", target ? json_string(target) : json_null());
  struct evkeyvalq *in = evhttp_request_get_input_headers(req);
  for (struct evkeyval *h = in->tqh_first; h; h = h->next.tqe_next)
    json_array_append_new(headers, json_pack("[ss]", h->key, h->value));
  json_object_set(line, "headers", headers);
  struct evbuffer *b = evhttp_request_get_input_buffer(req);
  size_t n = evbuffer_get_length(b);
  const char *body = n ? (const char *)evbuffer_pullup(b, -1) : "";
  json_t *text = body ? json_stringn(body, n) : NULL;
  if (text) {
    json_object_set_new(line, "body", text);
  } else {
    json_object_set_new(line, "body", json_null());
    json_object_set_new(line, "body_bytes", json_integer((json_int_t)n));
  }
  char *out = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (!out) goto fail;
  int ok = fprintf(s->log, "%s\n", out) > 0 && fflush(s->log) == 0;
  free(out);
  json_decref(headers);
  json_decref(line);
  return ok ? 0 : -1;
fail:
  json_decref(headers);
  json_decref(line);
  return -1;
}

static void on_request(struct evhttp_request *req, void *arg) {
  sink *s = arg;
  if (log_request(s, req) != 0) {
    if (!s->log_failed) fprintf(stderr, "conf-sink: cannot write the log: %s\n", strerror(errno));
    s->log_failed = 1;
  }
  struct evbuffer *reply = evbuffer_new();
  if (!reply) {
    evhttp_send_error(req, HTTP_INTERNAL, NULL);
    return;
  }
  if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evbuffer_add(reply, "{}", 2);
    evhttp_send_reply(req, HTTP_OK, "OK", reply);
  } else {
    evhttp_send_reply(req, 405, "Method Not Allowed", reply);
  }
  evbuffer_free(reply);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)sig;
  (void)what;
  sink *s = arg;
  event_base_loopexit(s->base, NULL);
}

/* Writes the port to path through a temporary file and a rename, so it appears complete. */
static int write_port_file(const char *path, int port) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
  FILE *f = fopen(tmp, "w");
  int ok = f && fprintf(f, "%d\n", port) > 0;
  if (f && fclose(f) != 0) ok = 0;
  if (ok && rename(tmp, path) != 0) ok = 0;
  if (!ok) {
    fprintf(stderr, "conf-sink: cannot write %s: %s\n", path, strerror(errno));
    remove(tmp);
  }
  return ok ? 0 : -1;
}

int main(int argc, char **argv) {
  const char *port_file = NULL, *log_file = NULL;
  int bad = 0;
  for (int i = 1; i < argc && !bad; i++) {
    int has_value = i + 1 < argc;
    if (has_value && strcmp(argv[i], "--port-file") == 0) port_file = argv[++i];
    else if (has_value && strcmp(argv[i], "--log") == 0) log_file = argv[++i];
    else bad = 1;
  }
  if (bad || !port_file || !log_file) {
    fputs("usage: conf-sink --port-file FILE --log FILE\n", stderr);
    return 2;
  }

  int rc = 1;
  sink s = {0};
  struct evhttp *http = NULL;
  struct event *sigterm = NULL, *sigint = NULL;
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  s.log = fopen(log_file, "w");
  if (!s.log) {
    fprintf(stderr, "conf-sink: cannot write %s: %s\n", log_file, strerror(errno));
    goto out;
  }
  s.base = event_base_new();
  http = s.base ? evhttp_new(s.base) : NULL;
  if (!http) {
    fputs("conf-sink: cannot start libevent\n", stderr);
    goto out;
  }
  evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                       EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
  evhttp_set_max_body_size(http, SINK_MAX_BODY);
  evhttp_set_gencb(http, on_request, &s);
  struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
  if (!bound) {
    fprintf(stderr, "conf-sink: cannot listen on 127.0.0.1: %s\n", strerror(errno));
    goto out;
  }
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;
  if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&addr, &len) != 0) {
    fprintf(stderr, "conf-sink: getsockname: %s\n", strerror(errno));
    goto out;
  }
  sigterm = evsignal_new(s.base, SIGTERM, on_signal, &s);
  sigint = evsignal_new(s.base, SIGINT, on_signal, &s);
  if (!sigterm || !sigint || evsignal_add(sigterm, NULL) != 0 || evsignal_add(sigint, NULL) != 0) {
    fputs("conf-sink: cannot watch for signals\n", stderr);
    goto out;
  }
  if (write_port_file(port_file, ntohs(addr.sin_port)) != 0) goto out;
  event_base_dispatch(s.base);
  rc = s.log_failed;

out:
  if (sigterm) event_free(sigterm);
  if (sigint) event_free(sigint);
  if (http) evhttp_free(http);
  if (s.base) event_base_free(s.base);
  if (s.log) fclose(s.log);
  return rc;
}
