/* resend.h: the `resend` and `webhook` senders (sender.h) over HTTP (http.h).
 *
 * resend: Resend's HTTP API.
 *   One email is `POST {api_url}/emails` with `Authorization: Bearer <key>`, `Content-Type:
 *   application/json`, `Idempotency-Key: <call->idempotency_key>` and a body whose bytes depend only
 *   on the call (fixed key order, absent fields omitted):
 *     {"from","to","subject","html","text","reply_to","tags":[{"name","value"},...]}
 *   or, for an email of a template stored in Resend (field "template" = its id):
 *     {"from","to","subject"?,"template":{"id","variables":{<var.X fields, in order>}},
 *      "reply_to"?,"tags"?}
 *   `from` is the field "from", else options.default_from; with neither the email fails
 *   permanently (no request is made). An email with no "to" fails permanently too. `to` and
 *   `reply_to` go as strings (Resend takes a string or an array). Only call->fields and
 *   call->idempotency_key are read.
 *
 *   Rate: every request first takes a token from the provider's bucket (ratelimit.h): at most
 *   options.rps requests a second (burst options.burst), lowered by Resend's `ratelimit-limit`,
 *   paused by its `retry-after`. Sends wait in one FIFO queue for their token; waiting is a timer.
 *   With options.redis the bucket is shared by every worker on that Redis: at most one EVALSHA per
 *   request (none per email beyond that, none while idle), and one per up to 100 emails under load.
 *
 *   Batching: when a token comes and more than one email without a template waits in the queue,
 *   up to options.max_batch (100) of them go in one `POST {api_url}/emails/batch` with
 *   `x-batch-validation: permissive` and `Idempotency-Key: skb_<16 hex>` (xxh3-64 of the members'
 *   keys in order, sk_resend_batch_key). The body is the JSON array of the members' bodies above.
 *   Emails of a Resend template are always sent alone: Resend documents the batch endpoint with
 *   html/text emails and lists fields it ignores there; a template email refused inside a batch
 *   would fail for good, alone it costs one request. Answers map back to each member: Resend's
 *   `errors[{index,message}]` fail that member permanently ("resend: rejected in batch: <message>"),
 *   the others take their `data[]` id in order; a failure of the whole request is each member's.
 *   Sends queued in the same loop iteration are batched together (the queue is looked at from the
 *   loop, never inside sk_sender_send): 250 sends in a row with one token a second are 3 requests.
 *   Before a batch is sent, options.record_batch (when set) is given its key, members and bytes,
 *   so the worker can record it in Redis; the batch is sent only when the hook says done. A batch
 *   that may have reached Resend although its request failed is sent again only as it was (see
 *   "batches sent again as they were" below).
 *
 * webhook: `POST <field url>` with the field "body" (JSON text, sent as is) as the body,
 *   `Content-Type: application/json` (unless a header field says otherwise), a header per
 *   "header.X" field, and `Idempotency-Key`. A header field that is not a token name, has a line
 *   break, or sets Host, Content-Length, Transfer-Encoding, Connection, Expect or Idempotency-Key
 *   fails the send permanently, as does a missing or non-http(s) url. No rate limit, no batching.
 *   io->result on success: the HTTP status ("200").
 *
 * Answers (sk_io), the same for both (`who` is "resend" or "webhook"):
 *   2xx                      ok; resend: io->result = Resend's email id (NULL if it gave none)
 *   408, 429, 5xx            transient, io->retry_after_ms from `retry-after` (seconds or an HTTP
 *                            date), reason "resend: HTTP 429 rate_limit_exceeded: <message>"
 *   409 concurrent_idempotent_requests (resend)   transient (the first request is still running)
 *   no response              transient: "resend: <what went wrong>" (connect, TLS, timeout, reset)
 *   409 invalid_idempotent_request (resend)   ok: the key was used with other content, so this
 *                            email was sent before (rendered again after a crash from a row that
 *                            changed); io->reason says so and io->result is NULL
 *   other 3xx and 4xx        permanent: "resend: HTTP 422 validation_error: <Resend's message>",
 *                            "webhook: HTTP 404"
 * The API key never appears in a reason or an error message (it is scrubbed if echoed).
 *
 * Ownership and costs: a send copies what it needs from the call (its body, about the size of the
 * rendered email); sk_sender_in_flight counts sends queued, being recorded and in flight;
 * sk_sender_free abandons them all (no callback) and cancels their HTTP requests. The http client
 * and the Redis connection given in the options are borrowed and must outlive the sender.
 */
#ifndef SKENE_RUNTIME_RESEND_H
#define SKENE_RUNTIME_RESEND_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "redis.h"
#include "sender.h"

struct event_base;

/* Resend's public API, the default of RESEND_API_URL. */
#define SK_RESEND_API_URL_DEFAULT "https://api.resend.com"
#define SK_RESEND_MAX_BATCH 100

/* Called once by a record_batch hook: error NULL when the batch is recorded (it is then sent),
 * else why not (every member then fails transiently with it). May be called from inside the hook
 * or later from the loop, also after the sender was freed (it then frees what it holds). */
typedef void (*sk_resend_recorded_fn)(void *ctx, const char *error);

/* Asked before a batch is sent: batch_key ("skb_..."), the members' idempotency keys in order and
 * the exact request body (all borrowed until the hook returns), what sk_resend_adopt_batch needs
 * to send the same batch again after a crash. It must call done(ctx, ...) exactly once. */
typedef void (*sk_resend_record_batch_fn)(const char *batch_key, const char *const *member_keys,
                                          size_t n, const char *body, size_t len, void *privdata,
                                          sk_resend_recorded_fn done, void *ctx);

typedef struct sk_resend_options {
  const char *api_key;      /* RESEND_API_KEY; required. Copied, wiped at free. */
  const char *api_url;      /* RESEND_API_URL; NULL: SK_RESEND_API_URL_DEFAULT */
  const char *default_from; /* SKENE_EMAIL_FROM, or NULL */
  double rps;               /* SKENE_RESEND_RPS: requests a second, a ceiling; default 2 */
  unsigned burst;           /* SKENE_RESEND_BURST: requests at once; default 1 (safe against
                               Resend's one-second windows) */
  sk_redis *redis;          /* the shared bucket's connection (borrowed), or NULL: local bucket */
  const char *key_prefix;   /* Skene's Redis key prefix; NULL: SK_KEY_PREFIX_DEFAULT */
  int batch;                /* 1 (default): batch under load; 0: one request per email */
  unsigned max_batch;       /* emails per batch, 2..100; default 100 */
  sk_resend_record_batch_fn record_batch; /* NULL: batches are sent at once */
  void *record_privdata;
  sk_http *http;            /* a client to share (borrowed); NULL: the sender makes its own */
  const sk_http_options *http_options; /* for its own client; NULL: the defaults */
} sk_resend_options;

/* Fills o with the defaults above. */
void sk_resend_options_init(sk_resend_options *o);

/* Reads RESEND_API_KEY, RESEND_API_URL, SKENE_EMAIL_FROM, SKENE_RESEND_RPS and
 * SKENE_RESEND_BURST (unset or empty: left as they are). 0, or -1 with a message in err for a
 * value it does not understand. The strings point into the environment. */
int sk_resend_options_from_env(sk_resend_options *o, char *err, size_t errlen);

/* A resend sender on base. NULL with a message in err (no API key, a bad URL or option, out of
 * memory). */
sk_sender *sk_resend_new(struct event_base *base, const sk_resend_options *options, char *err,
                         size_t errlen);

typedef struct sk_resend_stats {
  uint64_t requests;       /* HTTP requests started (emails and batches) */
  uint64_t batches;        /* of which POST /emails/batch */
  uint64_t emails;         /* emails in those requests */
  uint64_t redis_commands; /* commands of the shared bucket (EVALSHA, EVAL) */
} sk_resend_stats;

/* s must be a resend sender. */
void sk_resend_get_stats(const sk_sender *s, sk_resend_stats *out);

/* The Idempotency-Key of a batch: "skb_" + 16 lower-case hex digits of the xxh3-64 of the member
 * keys in order, each followed by '\n'. out holds at least 21 bytes. 0, or -1 out of memory. */
int sk_resend_batch_key(const char *const *member_keys, size_t n, char out[21]);

/* ---- batches sent again as they were ----
 * A batch whose request failed in a way that may have let it reach Resend (no answer, a timeout,
 * a dropped connection, a 5xx, 409 concurrent_idempotent_requests: every transient failure but
 * 408 and 429) is remembered, key, members and bytes, for Resend's 24 hours. When one of its
 * members is sent again (the worker's retry), the whole batch is sent again as it was, under the
 * same key, never that member under another key; the answers of the members that did not ask yet
 * are kept and given when they do. A remembered batch is forgotten once every member has had its
 * final answer (ok or permanent). Cost: a hash lookup per send; memory: the batch's body. */

/* Remembers a batch the worker recorded (record_batch) before a crash, so that its members'
 * retries send it again as it was. 0, or -1 (bad arguments, a member already remembered, out of
 * memory). */
int sk_resend_adopt_batch(sk_sender *s, const char *batch_key, const char *const *member_keys,
                          size_t n, const void *body, size_t len);

/* Batches remembered now: for tests and logs. */
size_t sk_resend_remembered_batches(const sk_sender *s);

/* ---- webhook ---- */
typedef struct sk_webhook_options {
  sk_http *http;                       /* a client to share (borrowed); NULL: its own */
  const sk_http_options *http_options; /* for its own client; NULL: the defaults */
} sk_webhook_options;

/* A webhook sender on base (options may be NULL). NULL with a message in err. */
sk_sender *sk_webhook_new(struct event_base *base, const sk_webhook_options *options, char *err,
                          size_t errlen);

#endif
