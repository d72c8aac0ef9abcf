/* sender.h: how skene-vm performs an email or a webhook (DESIGN.md, "Execution": effects happen
 * once, failures are transient or permanent).
 *
 * One interface, several senders:
 *   outbox   (outbox.c)  each email as one .eml file in a folder, named by its idempotency key
 *   resend   (resend.c)  Resend's HTTP API through libcurl's multi interface (issue 5)
 *   webhook  (resend.c)  a JSON POST (issue 5)
 * The worker picks one per effect (sk_sender_for) and calls sk_sender_send; the answer comes back
 * through the callback, from the event loop, never from inside sk_sender_send.
 *
 * Exactly once: every call carries call->idempotency_key (xxh3 of (loop, subject, step, action)).
 * A sender must make a second send with the same key deliver nothing new (the outbox keeps the
 * first file; Resend keeps the key 24 hours), because a worker that crashed after sending and
 * before recording it sends again.
 *
 * Ownership: the call and everything it points to (fields, module) are borrowed for the duration of
 * sk_sender_send only: a sender copies what it needs. The sk_io given to the callback is borrowed
 * for the duration of the callback; io->result (the provider's id, e.g. the Resend email id) is
 * a reference the callback may take with sk_str_ref.
 *
 * Everything runs on the thread of the event_base.
 */
#ifndef SKENE_RUNTIME_SENDER_H
#define SKENE_RUNTIME_SENDER_H

#include <stddef.h>

#include "vm.h"

struct event_base;

typedef struct sk_sender sk_sender;

/* The answer to one send: io->ok, or io->transient / io->retry_after_ms / io->reason. io->pending
 * is 0. */
typedef void (*sk_sender_done_fn)(const sk_io *io, void *privdata);

typedef struct sk_sender_ops {
  const char *name; /* "outbox", "resend", "webhook": for logs */
  /* Starts the send. 0: the callback will be called exactly once. -1: refused at once (out of
   * memory): the callback is never called and *io is filled (a transient failure). */
  int (*send)(sk_sender *s, const sk_effect_call *call, sk_sender_done_fn cb, void *privdata,
              sk_io *io);
  /* Sends in flight (or queued by a rate limiter) that have not called back yet. */
  size_t (*in_flight)(const sk_sender *s);
  /* Frees the sender. Sends in flight are abandoned: their callbacks are never called (their
   * idempotency keys make a later resend safe). */
  void (*free)(sk_sender *s);
} sk_sender_ops;

struct sk_sender {
  const sk_sender_ops *ops;
};

static inline int sk_sender_send(sk_sender *s, const sk_effect_call *call, sk_sender_done_fn cb,
                                 void *privdata, sk_io *io) {
  return s->ops->send(s, call, cb, privdata, io);
}
static inline size_t sk_sender_in_flight(const sk_sender *s) { return s->ops->in_flight(s); }
static inline void sk_sender_free(sk_sender *s) {
  if (s) s->ops->free(s);
}

/* The field of a call named `name` (the module's field names: "to", "from", "subject", "html",
 * "text", "reply_to", "template", "var.X", "tag.X", "url", "header.X", "body"), or NULL. */
const sk_string *sk_call_field(const sk_effect_call *call, const char *name);

/* ---- outbox (outbox.c) ---- */

/* A sender writing each email as `<dir>/<idempotency_key>.eml` (RFC 5322, multipart/alternative
 * with the text and the html part; a `resend:<id>` template as a JSON part with its variables),
 * written to a temporary name, fsync'ed and linked into place: a file that exists is complete, and
 * a second send with the same key leaves the first file as it is (reported ok, with the same id).
 * default_from: SKENE_EMAIL_FROM, used when the email has no `from` (may be NULL: such an email
 * fails permanently). The folder is created if missing. NULL with a message in err when the folder
 * cannot be created or written. io->result on success: "outbox:<idempotency_key>". */
sk_sender *sk_outbox_new(struct event_base *base, const char *dir, const char *default_from, char *err, size_t errlen);

/* How many sends found their file already there (a resend after a crash): for logs and tests. */
size_t sk_outbox_duplicates(const sk_sender *s);

#endif
