/* http.h: HTTP requests through libcurl's multi interface, driven by the runtime's libevent loop.
 *
 * One sk_http is one curl multi handle on the caller's event_base: curl says which sockets it
 * wants watched (one event per socket) and when it wants to be woken (one timer); the loop calls
 * curl_multi_socket_action back, and finished transfers are drained with curl_multi_info_read.
 * No thread, no blocking call: a request costs a curl easy handle and its buffers while in flight.
 *
 * Connections are kept alive and reused from the multi handle's connection cache; over https the
 * client offers HTTP/2 (ALPN) and multiplexes requests to the same host on one connection when
 * the server accepts (a new request waits for a connection being set up rather than opening a
 * second one: CURLOPT_PIPEWAIT). TLS peers are verified (the system's CA store, or options.ca_file).
 * Only http:// and https:// URLs are accepted; redirects are not followed. When a reused
 * connection turns out closed before any byte of the answer, curl sends the request once more on
 * a new connection (the server may have read the first one: requests carry idempotency keys).
 *
 * Ownership: sk_http_request copies the method, URL, headers and body; the response given to the
 * callback is borrowed until it returns. Callbacks always come from the event loop, never from
 * inside sk_http_request. Everything runs on the thread of the event_base, which must outlive the
 * client. curl_global_init is the program's business (sk_http_new calls it once if nobody did).
 */
#ifndef SKENE_RUNTIME_HTTP_H
#define SKENE_RUNTIME_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

typedef struct sk_http sk_http;

/* ---- options ---- */
typedef struct sk_http_options {
  int connect_timeout_ms;   /* TCP connect + TLS handshake; default 5000 */
  int timeout_ms;           /* whole request, from sk_http_request to the last byte; default 30000 */
  size_t max_body;          /* response bytes kept; the rest is read and dropped (body_truncated);
                               default SK_HTTP_DEFAULT_MAX_BODY */
  const char *ca_file;      /* PEM file of the CA(s) to trust instead of the system store; NULL:
                               the system store. Copied. */
  const char *user_agent;   /* User-Agent of every request; default SK_HTTP_USER_AGENT. Copied. */
  int max_host_connections; /* connections to one host at once (more requests queue in curl);
                               default 8; 0: no limit */
  int max_cached_connections; /* idle connections kept for reuse; default 32 */
} sk_http_options;

#define SK_HTTP_DEFAULT_MAX_BODY ((size_t)1024 * 1024)
#define SK_HTTP_USER_AGENT "skene/0.1"

/* Fills o with the defaults above. */
void sk_http_options_init(sk_http_options *o);

/* ---- responses ---- */
typedef struct sk_http_header {
  const char *name;  /* lower case */
  const char *value; /* trimmed */
} sk_http_header;

typedef struct sk_http_response {
  long status;            /* HTTP status; 0: no response (transport error, timeout, cancelled) */
  int timed_out;          /* status 0 because connect_timeout_ms or timeout_ms passed */
  const char *error;      /* why status is 0 (curl's words, e.g. "Failed to connect to 127.0.0.1
                             port 9 after 0 ms: Couldn't connect to server"); "" otherwise */
  const char *body;       /* the response body, NUL-terminated (never NULL) */
  size_t body_len;
  int body_truncated;     /* the body was longer than options.max_body */
  const sk_http_header *headers; /* the final response's headers, in order (at most 64) */
  size_t nheaders;
  int64_t elapsed_us;     /* from the start of the transfer to its end */
  long connects;          /* new connections this request opened: 0 when it reused one */
  int http_version;       /* 1 (HTTP/1.x), 2 (HTTP/2), 0 unknown */
} sk_http_response;

/* The value of the last header called `name` (any case) in r, or NULL. O(nheaders). */
const char *sk_http_header_get(const sk_http_response *r, const char *name);

/* ---- the client ---- */

/* Called exactly once per request that sk_http_request accepted, from the event loop, unless the
 * request was cancelled or the client freed first. It may start requests, cancel others, and free
 * the client (the free then completes when the callback returns; no further callback runs). */
typedef void (*sk_http_done_fn)(const sk_http_response *res, void *privdata);

/* A client on base with options (NULL: the defaults). NULL with a message in err when curl
 * cannot be set up. */
sk_http *sk_http_new(struct event_base *base, const sk_http_options *options, char *err,
                     size_t errlen);

/* Cancels every request in flight (their callbacks are never called), closes the connections and
 * frees the client. NULL is fine. */
void sk_http_free(sk_http *h);

/*
 * Starts a request: method ("GET", "POST", ...), an http:// or https:// url, nheaders header
 * lines "Name: value" (no CR or LF), and a body of len bytes (NULL when len is 0; sent with
 * Content-Length). Returns the request's id (> 0), to cancel it, or 0 when refused at once
 * (out of memory, a header with a line break; err says why when not NULL): the callback is then
 * never called. Anything else (a bad URL, no route, TLS) comes back through the callback with
 * status 0. Cost: one curl easy handle, the copies, and O(1) to queue.
 */
uint64_t sk_http_request(sk_http *h, const char *method, const char *url,
                         const char *const *headers, size_t nheaders, const void *body, size_t len,
                         sk_http_done_fn cb, void *privdata, char *err, size_t errlen);

/* Cancels request id: its callback is never called. 0, or -1 when no such request is in flight
 * (finished, cancelled, or never started). O(requests in flight). */
int sk_http_cancel(sk_http *h, uint64_t id);

/* Requests in flight (accepted, callback not called yet). */
size_t sk_http_in_flight(const sk_http *h);

/* Connections opened since sk_http_new (new TCP connections, not reuses): for tests and logs. */
uint64_t sk_http_connections(const sk_http *h);

#endif
