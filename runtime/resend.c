/* resend.c: the resend and webhook senders (resend.h): request bodies, the queue in front of the
 * rate limit, batching, and the reading of answers into sk_io.
 *
 * Life of a resend send: sk_sender_send renders the email's JSON object into an `item` and puts it
 * at the tail of the queue, then schedules the pump (an event made active, so everything sent in
 * this loop iteration is in the queue when it runs). The pump asks the bucket for as many tokens
 * as the queue needs requests; each token granted becomes one `flight`: one email alone, or a
 * batch of queued emails. A batch first goes through the record_batch hook, if any; then its HTTP
 * request starts; its answer completes every member (callbacks in member order) and frees it.
 *
 * Re-entrancy: a callback may send more, or free the sender. Every entry from the loop counts
 * itself in s->depth; sk_sender_free inside one only marks the sender dying (no callback runs
 * after that), and the outermost entry frees it on its way out.
 */
#define _POSIX_C_SOURCE 200809L

#include "resend.h"
#include "sbuf.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <xxhash.h>

#include "ratelimit.h"

/* ---- a growable byte buffer; oom is sticky ---- */

static void sb_jstr(sk_sbuf *b, const sk_string *v) { sk_sb_json(b, v->data, v->len); }

/* ---- the fields of a call ---- */

/* The first field of the call named `name`, or NULL. */
static const sk_string *field(const sk_effect_call *c, const char *name) {
  for (uint32_t i = 0; i < c->nfields; i++)
    if (c->fields[i].value != NULL && strcmp(c->fields[i].name, name) == 0)
      return c->fields[i].value;
  return NULL;
}

static int has_prefix(const sk_effect_call *c, const char *prefix) {
  size_t pl = strlen(prefix);
  for (uint32_t i = 0; i < c->nfields; i++)
    if (c->fields[i].value != NULL && strncmp(c->fields[i].name, prefix, pl) == 0)
      return 1;
  return 0;
}

/* ---- shared by both senders: answers ---- */

/* Copies text into dst (size n) with every occurrence of secret replaced. */
static void scrub(char *dst, size_t n, const char *text, const char *secret) {
  size_t sl = secret != NULL ? strlen(secret) : 0, o = 0;
  const char *p = text;
  while (*p != '\0' && o + 1 < n) {
    if (sl > 0 && strncmp(p, secret, sl) == 0) {
      int w = snprintf(dst + o, n - o, "%s", "[redacted]");
      o += w > 0 ? (size_t)w : 0;
      if (o >= n)
        o = n - 1;
      p += sl;
    } else {
      dst[o++] = *p++;
    }
  }
  dst[o] = '\0';
}

static void set_reason(sk_io *io, const char *secret, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_reason(sk_io *io, const char *secret, const char *fmt, ...) {
  char tmp[sizeof io->reason];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  scrub(io->reason, sizeof io->reason, tmp, secret);
}

/* retry-after: delay-seconds or an HTTP date; in ms from now, 0 when absent or unreadable. */
static int64_t retry_after_ms(const sk_http_response *r) {
  const char *v = sk_http_header_get(r, "retry-after");
  if (v == NULL || *v == '\0')
    return 0;
  if (isdigit((unsigned char)*v)) {
    char *end;
    errno = 0;
    double secs = strtod(v, &end);
    if (errno != 0 || !(secs >= 0) || secs > 86400.0)
      return secs > 86400.0 ? 86400000 : 0;
    return (int64_t)ceil(secs * 1000.0);
  }
  time_t at = curl_getdate(v, NULL);
  if (at == (time_t)-1)
    return 0;
  double d = difftime(at, time(NULL));
  if (d <= 0)
    return 0;
  return d > 86400.0 ? 86400000 : (int64_t)(d * 1000.0);
}

static long header_long(const sk_http_response *r, const char *name) {
  const char *v = sk_http_header_get(r, name);
  if (v == NULL || !isdigit((unsigned char)*v))
    return -1;
  errno = 0;
  long x = strtol(v, NULL, 10);
  return errno == 0 ? x : -1;
}

/* Resend's error body {"statusCode","name","message"}: name and message, or "". */
static void error_body(const sk_http_response *r, char *name, size_t nn, char *msg, size_t mn) {
  name[0] = msg[0] = '\0';
  json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
  if (j == NULL)
    return;
  const char *s = json_string_value(json_object_get(j, "name"));
  if (s != NULL)
    snprintf(name, nn, "%s", s);
  s = json_string_value(json_object_get(j, "message"));
  if (s == NULL)
    s = json_string_value(json_object_get(j, "error"));
  if (s != NULL)
    snprintf(msg, mn, "%s", s);
  json_decref(j);
}

/* Fills io from a response that is not a success (or not a response at all). */
static void classify_failure(const char *who, int resend_api, const sk_http_response *r,
                             const char *secret, sk_io *io) {
  char name[64], msg[200];
  io->ok = 0;
  io->pending = 0;
  io->result = NULL;
  io->retry_after_ms = 0;
  if (r->status == 0) {
    io->transient = 1;
    set_reason(io, secret, "%s: %s", who, r->error[0] != '\0' ? r->error : "no response");
    return;
  }
  long st = r->status;
  io->transient = st == 408 || st == 429 || (st >= 500 && st <= 599);
  name[0] = msg[0] = '\0';
  if (resend_api) {
    error_body(r, name, sizeof name, msg, sizeof msg);
    if (st == 409 && strcmp(name, "concurrent_idempotent_requests") == 0)
      io->transient = 1;
    if (st == 409 && strcmp(name, "invalid_idempotent_request") == 0) {
      /* The key was used before with another body: the email went out under it already (a worker
         that crashed after Resend accepted it, restarted, and rendered it again from a row that
         has changed since). The key is this effect's alone, so the effect is done: delivered
         once. Said in the reason, which the worker logs as a note. */
      io->ok = 1;
      io->transient = 0;
      set_reason(io, secret, "%s: already sent under this idempotency key with other content (rendered "
                 "again after a restart); not sent again", who);
      return;
    }
  }
  if (io->transient)
    io->retry_after_ms = retry_after_ms(r);
  if (name[0] != '\0' && msg[0] != '\0')
    set_reason(io, secret, "%s: HTTP %ld %s: %s", who, st, name, msg);
  else if (name[0] != '\0' || msg[0] != '\0')
    set_reason(io, secret, "%s: HTTP %ld %s", who, st, name[0] != '\0' ? name : msg);
  else
    set_reason(io, secret, "%s: HTTP %ld", who, st);
}

static int is_success(const sk_http_response *r) { return r->status >= 200 && r->status <= 299; }

static void io_transient(sk_io *io, const char *secret, const char *who, const char *why) {
  memset(io, 0, sizeof *io);
  io->transient = 1;
  set_reason(io, secret, "%s: %s", who, why);
}

/* ---- the resend sender ---- */

typedef struct replay replay;

/* A send waiting in the queue, a member of a flight, or an answer ready to be called back. */
typedef struct item {
  struct item *prev, *next;
  char key[40];
  char *json;     /* the email's object; NULL for an answer ready or a replay */
  size_t len;
  int alone;      /* a template email, or a replay: never in a new batch */
  replay *replay; /* a queued replay request (no callback of its own), or NULL */
  sk_sender_done_fn cb;
  void *privdata;
  sk_io *ready;   /* the answer, known before any request (refused email, remembered batch) */
} item;

/* A batch that may have reached Resend although its request failed (a timeout, a 5xx, a dropped
   connection), or one the worker recorded before a crash (sk_resend_adopt_batch). Its members are
   sent again only as this batch, the same bytes under the same key: Resend then either sends it
   or answers as it did the first time, and no member goes out twice under another key. */
struct replay {
  struct replay *prev, *next;
  char key[24];
  size_t n, open;  /* members; members not yet given their final answer */
  char (*keys)[40];
  char *body;
  size_t len;
  int64_t expires_ms;
  int queued;      /* a request for it is queued or in flight */
  int busy;        /* its answers are being given: not to be freed under our feet */
  item **waiting;  /* per member: its send waiting for the answer, or NULL */
  sk_io **known;   /* per member: its final answer (ok or permanent) once known, or NULL */
  unsigned char *told; /* per member: given its final answer */
};

/* Member key -> (replay, index): a chained hash table. */
typedef struct mref {
  struct mref *next;
  replay *r;
  size_t i;
} mref;

typedef struct resend resend;

typedef struct flight {
  struct flight *prev, *next;
  resend *s; /* NULL once the sender is freed while the record hook runs */
  int batch;
  int recording;
  uint64_t http_id;
  char key[40]; /* the Idempotency-Key: the member's, or the batch's */
  size_t n;
  item **members;
  replay *replay; /* a replay's request: no members, the answers go to the replay */
  char *body;     /* the request body */
  size_t body_len;
} flight;

struct resend {
  sk_sender base;
  struct event_base *evb;
  sk_http *http;
  int own_http;
  sk_bucket *bucket;
  char *api_key, *auth, *url_one, *url_batch, *default_from;
  int batch;
  unsigned max_batch;
  sk_resend_record_batch_fn record;
  void *record_privdata;
  item *q_head, *q_tail; /* waiting for a token */
  size_t queued, queued_alone, queued_replays;
  item *r_head, *r_tail; /* answers ready, to call back from the loop */
  size_t ready;
  flight *flights;
  size_t flying;         /* sends in flights */
  replay *replays;
  size_t replay_waiting; /* sends waiting on a replay */
  mref **slots;
  size_t nslots, nrefs;
  struct event *pump;
  int depth, dying;
  sk_resend_stats stats;
};

enum { REPLAY_TTL_MS = 24 * 3600 * 1000 }; /* Resend keeps an idempotency key 24 hours */

static const sk_sender_ops resend_ops;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static sk_io *io_copy(const sk_io *io) {
  sk_io *c = malloc(sizeof *c);
  if (c != NULL) {
    *c = *io;
    sk_str_ref(c->result);
  }
  return c;
}

static void io_free(sk_io *io) {
  if (io != NULL)
    sk_str_unref(io->result);
  free(io);
}

static void item_free(item *it) {
  if (it == NULL)
    return;
  free(it->json);
  io_free(it->ready);
  free(it);
}

static void list_push(item **head, item **tail, item *it) {
  it->next = NULL;
  it->prev = *tail;
  if (*tail != NULL)
    (*tail)->next = it;
  else
    *head = it;
  *tail = it;
}

static void list_remove(item **head, item **tail, item *it) {
  if (it->prev != NULL)
    it->prev->next = it->next;
  else
    *head = it->next;
  if (it->next != NULL)
    it->next->prev = it->prev;
  else
    *tail = it->prev;
  it->prev = it->next = NULL;
}

static void flight_free(flight *f) {
  if (f == NULL)
    return;
  for (size_t i = 0; i < f->n; i++)
    item_free(f->members[i]);
  free(f->members);
  free(f->body);
  free(f);
}

static void flight_link(resend *s, flight *f) {
  f->prev = NULL;
  f->next = s->flights;
  if (s->flights != NULL)
    s->flights->prev = f;
  s->flights = f;
  s->flying += f->n;
}

static void flight_unlink(resend *s, flight *f) {
  if (f->prev != NULL)
    f->prev->next = f->next;
  else
    s->flights = f->next;
  if (f->next != NULL)
    f->next->prev = f->prev;
  f->prev = f->next = NULL;
  s->flying -= f->n;
}

static void really_free(resend *s);

static void enter(resend *s) { s->depth++; }

static void leave(resend *s) {
  if (--s->depth == 0 && s->dying)
    really_free(s);
}

static void schedule_pump(resend *s) {
  if (!event_pending(s->pump, EV_TIMEOUT, NULL))
    event_active(s->pump, EV_TIMEOUT, 1);
}

/* Queues an answer known now; the pump calls it back. Takes io (a heap copy; NULL when it could
   not be made: the answer is then "out of memory", transient). */
static void ready_push(resend *s, item *it, sk_io *io) {
  it->ready = io;
  list_push(&s->r_head, &s->r_tail, it);
  s->ready++;
  schedule_pump(s);
}

/* ---- remembered batches ---- */

static size_t slot_of(const resend *s, const char *key) {
  return (size_t)XXH3_64bits(key, strlen(key)) & (s->nslots - 1);
}

static mref *ref_find(const resend *s, const char *key) {
  if (s->nslots == 0)
    return NULL;
  for (mref *m = s->slots[slot_of(s, key)]; m != NULL; m = m->next)
    if (strcmp(m->r->keys[m->i], key) == 0)
      return m;
  return NULL;
}

/* Indexes member i of r; -1 out of memory. A key already indexed (another remembered batch)
   stays with it. */
static int ref_add(resend *s, replay *r, size_t i) {
  if (ref_find(s, r->keys[i]) != NULL)
    return 0;
  if (s->nrefs + 1 > s->nslots) {
    size_t n = s->nslots ? s->nslots * 2 : 256;
    mref **slots = calloc(n, sizeof *slots);
    if (slots == NULL)
      return -1;
    for (size_t k = 0; k < s->nslots; k++)
      for (mref *m = s->slots[k], *next; m != NULL; m = next) {
        next = m->next;
        size_t at = (size_t)XXH3_64bits(m->r->keys[m->i], strlen(m->r->keys[m->i])) & (n - 1);
        m->next = slots[at];
        slots[at] = m;
      }
    free(s->slots);
    s->slots = slots;
    s->nslots = n;
  }
  mref *m = malloc(sizeof *m);
  if (m == NULL)
    return -1;
  size_t at = slot_of(s, r->keys[i]);
  m->r = r;
  m->i = i;
  m->next = s->slots[at];
  s->slots[at] = m;
  s->nrefs++;
  return 0;
}

static void ref_del(resend *s, replay *r, size_t i) {
  if (s->nslots == 0)
    return;
  for (mref **p = &s->slots[slot_of(s, r->keys[i])]; *p != NULL; p = &(*p)->next)
    if ((*p)->r == r && (*p)->i == i) {
      mref *m = *p;
      *p = m->next;
      free(m);
      s->nrefs--;
      return;
    }
}

/* Frees r; its waiting sends are dropped without a callback (the sender is being freed, or
   nothing waits). */
static void replay_free(resend *s, replay *r) {
  for (size_t i = 0; i < r->n; i++) {
    ref_del(s, r, i);
    if (r->waiting[i] != NULL) {
      item_free(r->waiting[i]);
      s->replay_waiting--;
    }
    io_free(r->known[i]);
  }
  if (r->prev != NULL)
    r->prev->next = r->next;
  else
    s->replays = r->next;
  if (r->next != NULL)
    r->next->prev = r->prev;
  free(r->body);
  free(r);
}

/* Remembers a batch: its key, members and exact body. NULL out of memory or with bad arguments. */
static replay *replay_new(resend *s, const char *key, const char *const *keys, size_t n,
                          const char *body, size_t len) {
  if (n == 0 || n > SK_RESEND_MAX_BATCH || strlen(key) >= 24 || len == 0)
    return NULL;
  for (size_t i = 0; i < n; i++)
    if (strlen(keys[i]) >= 40)
      return NULL;
  replay *r = calloc(1, sizeof *r + n * (sizeof(item *) + sizeof(sk_io *) + 40 + 1));
  if (r == NULL || (r->body = malloc(len)) == NULL) {
    free(r);
    return NULL;
  }
  r->waiting = (item **)(r + 1);
  r->known = (sk_io **)(r->waiting + n);
  r->keys = (char (*)[40])(r->known + n);
  r->told = (unsigned char *)(r->keys + n);
  snprintf(r->key, sizeof r->key, "%s", key);
  memcpy(r->body, body, len);
  r->len = len;
  r->n = r->open = n;
  r->expires_ms = mono_ms() + REPLAY_TTL_MS;
  r->next = s->replays;
  if (s->replays != NULL)
    s->replays->prev = r;
  s->replays = r;
  for (size_t i = 0; i < n; i++) {
    snprintf(r->keys[i], 40, "%s", keys[i]);
    if (ref_add(s, r, i) != 0) {
      replay_free(s, r);
      return NULL;
    }
  }
  return r;
}

/* Forgets remembered batches past Resend's 24 hours that nobody waits on. */
static void replay_expire(resend *s) {
  int64_t now = mono_ms();
  for (replay *r = s->replays, *next; r != NULL; r = next) {
    next = r->next;
    int waiting = 0;
    for (size_t i = 0; i < r->n; i++)
      waiting |= r->waiting[i] != NULL;
    if (now > r->expires_ms && !r->queued && !r->busy && !waiting)
      replay_free(s, r);
  }
}

/* A send whose key belongs to remembered batch m->r: answered from what is known, or made to
   wait for the batch, which is queued (one request) if it is not already. */
static void replay_join(resend *s, mref *m, item *it) {
  replay *r = m->r;
  sk_io io;
  if (r->known[m->i] != NULL) {
    sk_io *a = io_copy(r->known[m->i]);
    if (a == NULL) {
      io_transient(&io, NULL, "resend", "out of memory");
      a = io_copy(&io);
    } else if (!r->told[m->i]) {
      r->told[m->i] = 1;
      r->open--;
    }
    ready_push(s, it, a); /* r may go: the answer is a copy */
    if (r->open == 0 && !r->queued && !r->busy)
      replay_free(s, r);
    return;
  }
  if (r->waiting[m->i] != NULL) {
    io_transient(&io, NULL, "resend", "a send with this idempotency key is in flight already");
    ready_push(s, it, io_copy(&io));
    return;
  }
  r->waiting[m->i] = it;
  s->replay_waiting++;
  if (!r->queued) {
    item *q = calloc(1, sizeof *q);
    if (q == NULL) {
      r->waiting[m->i] = NULL;
      s->replay_waiting--;
      io_transient(&io, NULL, "resend", "out of memory");
      ready_push(s, it, io_copy(&io));
      return;
    }
    snprintf(q->key, sizeof q->key, "%s", r->key);
    q->alone = 1;
    q->replay = r;
    list_push(&s->q_head, &s->q_tail, q);
    s->queued++;
    s->queued_alone++;
    s->queued_replays++;
    r->queued = 1;
  }
  schedule_pump(s);
}

/* ---- requests and their answers ---- */

/* The email's JSON object (resend.h). NULL with *why set when it cannot be sent (permanent), or
   with *why NULL when memory ran out. */
static char *email_json(const resend *s, const sk_effect_call *c, size_t *len, int *tpl,
                        const char **why) {
  const sk_string *to = field(c, "to"), *from = field(c, "from"), *t = field(c, "template");
  const sk_string *subject = field(c, "subject"), *reply = field(c, "reply_to");
  sk_sbuf b = {0};
  *why = NULL;
  if (from == NULL && s->default_from == NULL) {
    *why = "no from address: set the email's `from` or SKENE_EMAIL_FROM";
    return NULL;
  }
  if (to == NULL || to->len == 0) {
    *why = "no recipient: the email has no `to`";
    return NULL;
  }
  *tpl = t != NULL;
  sk_sb_puts(&b, "{\"from\":");
  if (from != NULL)
    sb_jstr(&b, from);
  else
    sk_sb_json(&b, s->default_from, strlen(s->default_from));
  sk_sb_puts(&b, ",\"to\":");
  sb_jstr(&b, to);
  if (subject != NULL) {
    sk_sb_puts(&b, ",\"subject\":");
    sb_jstr(&b, subject);
  }
  if (t != NULL) {
    int first = 1;
    sk_sb_puts(&b, ",\"template\":{\"id\":");
    sb_jstr(&b, t);
    sk_sb_puts(&b, ",\"variables\":{");
    for (uint32_t i = 0; i < c->nfields; i++) {
      if (c->fields[i].value == NULL || strncmp(c->fields[i].name, "var.", 4) != 0)
        continue;
      if (!first)
        sk_sb_put(&b, ",", 1);
      first = 0;
      sk_sb_json(&b, c->fields[i].name + 4, strlen(c->fields[i].name + 4));
      sk_sb_put(&b, ":", 1);
      sb_jstr(&b, c->fields[i].value);
    }
    sk_sb_puts(&b, "}}");
  } else {
    const sk_string *html = field(c, "html"), *text = field(c, "text");
    if (html != NULL) {
      sk_sb_puts(&b, ",\"html\":");
      sb_jstr(&b, html);
    }
    if (text != NULL) {
      sk_sb_puts(&b, ",\"text\":");
      sb_jstr(&b, text);
    }
  }
  if (reply != NULL) {
    sk_sb_puts(&b, ",\"reply_to\":");
    sb_jstr(&b, reply);
  }
  if (has_prefix(c, "tag.")) {
    int first = 1;
    sk_sb_puts(&b, ",\"tags\":[");
    for (uint32_t i = 0; i < c->nfields; i++) {
      if (c->fields[i].value == NULL || strncmp(c->fields[i].name, "tag.", 4) != 0)
        continue;
      if (!first)
        sk_sb_put(&b, ",", 1);
      first = 0;
      sk_sb_puts(&b, "{\"name\":");
      sk_sb_json(&b, c->fields[i].name + 4, strlen(c->fields[i].name + 4));
      sk_sb_puts(&b, ",\"value\":");
      sb_jstr(&b, c->fields[i].value);
      sk_sb_puts(&b, "}");
    }
    sk_sb_puts(&b, "]");
  }
  sk_sb_puts(&b, "}");
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  *len = b.len;
  return b.p;
}

int sk_resend_batch_key(const char *const *member_keys, size_t n, char out[21]) {
  /* xxh3 of the keys, each followed by '\n', streamed: no buffer of n keys */
  XXH3_state_t *st = XXH3_createState();
  if (st == NULL || XXH3_64bits_reset(st) != XXH_OK) {
    XXH3_freeState(st);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    XXH3_64bits_update(st, member_keys[i], strlen(member_keys[i]));
    XXH3_64bits_update(st, "\n", 1);
  }
  snprintf(out, 21, "skb_%016llx", (unsigned long long)XXH3_64bits_digest(st));
  XXH3_freeState(st);
  return 0;
}

/* Calls back every member of f with io (the same answer for all) unless the sender is dying. */
static void complete_all(resend *s, flight *f, const sk_io *io) {
  for (size_t i = 0; i < f->n && !s->dying; i++)
    f->members[i]->cb(io, f->members[i]->privdata);
}

/* The answer to a single email (f->n == 1). */
static void answer_one(resend *s, flight *f, const sk_http_response *r) {
  sk_io io;
  memset(&io, 0, sizeof io);
  if (!is_success(r)) {
    classify_failure("resend", 1, r, s->api_key, &io);
    complete_all(s, f, &io);
    return;
  }
  io.ok = 1;
  json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
  const char *id = j != NULL ? json_string_value(json_object_get(j, "id")) : NULL;
  if (id != NULL)
    io.result = sk_str_from(id);
  json_decref(j);
  complete_all(s, f, &io);
  sk_str_unref(io.result);
}

/* The answers of the n members of a batch whose request succeeded: Resend's errors[] fail their
   member for good; data[] holds the accepted emails in order, one per member or one per member
   not in errors[]. out[i] gets a new reference to its result. */
static void batch_answers(const resend *s, size_t n, const sk_http_response *r, sk_io *out) {
  json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
  json_t *data = json_object_get(j, "data"), *errors = json_object_get(j, "errors");
  size_t ndata = json_is_array(data) ? json_array_size(data) : 0, nerr = 0;
  const char *err[SK_RESEND_MAX_BATCH] = {0};
  assert(n <= SK_RESEND_MAX_BATCH);
  for (size_t k = 0; json_is_array(errors) && k < json_array_size(errors); k++) {
    json_t *e = json_array_get(errors, k);
    json_t *ix = json_object_get(e, "index");
    const char *m = json_string_value(json_object_get(e, "message"));
    if (!json_is_integer(ix) || json_integer_value(ix) < 0 || (size_t)json_integer_value(ix) >= n)
      continue;
    size_t i = (size_t)json_integer_value(ix);
    if (err[i] == NULL)
      nerr++;
    err[i] = m != NULL ? m : "no message";
  }
  int by_index = ndata == n, in_order = !by_index && ndata == n - nerr;
  for (size_t i = 0, d = 0; i < n; i++) {
    memset(&out[i], 0, sizeof out[i]);
    if (err[i] != NULL) {
      set_reason(&out[i], s->api_key, "resend: rejected in batch: %s", err[i]);
      if (by_index)
        d++;
      continue;
    }
    const char *id = NULL;
    out[i].ok = 1;
    if (by_index || in_order)
      id = json_string_value(json_object_get(json_array_get(data, d++), "id"));
    if (id != NULL)
      out[i].result = sk_str_from(id);
  }
  json_decref(j);
}

/* A failure after which the batch may have reached Resend: it is to be sent again as it was. */
static int maybe_sent(const sk_http_response *r, const sk_io *io) {
  return io->transient && r->status != 429 && r->status != 408;
}

/* The answer to a batch. */
static void answer_batch(resend *s, flight *f, const sk_http_response *r) {
  sk_io io, out[SK_RESEND_MAX_BATCH];
  if (!is_success(r)) {
    memset(&io, 0, sizeof io);
    classify_failure("resend", 1, r, s->api_key, &io);
    if (maybe_sent(r, &io)) {
      const char *keys[SK_RESEND_MAX_BATCH];
      for (size_t i = 0; i < f->n; i++)
        keys[i] = f->members[i]->key;
      replay_new(s, f->key, keys, f->n, f->body, f->body_len); /* best effort */
    }
    complete_all(s, f, &io);
    return;
  }
  batch_answers(s, f->n, r, out);
  for (size_t i = 0; i < f->n; i++) {
    if (!s->dying)
      f->members[i]->cb(&out[i], f->members[i]->privdata);
    sk_str_unref(out[i].result);
  }
}

/* The answer to a replay: to the members waiting, and kept for the others. */
static void answer_replay(resend *s, replay *rp, const sk_http_response *r) {
  sk_io io, out[SK_RESEND_MAX_BATCH];
  rp->queued = 0;
  if (!is_success(r)) {
    memset(&io, 0, sizeof io);
    classify_failure("resend", 1, r, s->api_key, &io);
    for (size_t i = 0; i < rp->n; i++) {
      out[i] = io;
      if (!io.transient && rp->known[i] == NULL)
        rp->known[i] = io_copy(&io);
    }
  } else {
    batch_answers(s, rp->n, r, out);
    for (size_t i = 0; i < rp->n; i++)
      if (rp->known[i] == NULL)
        rp->known[i] = io_copy(&out[i]);
  }
  rp->busy = 1; /* the callbacks may send again */
  for (size_t i = 0; i < rp->n; i++) {
    item *it = rp->waiting[i];
    if (it == NULL)
      continue;
    rp->waiting[i] = NULL;
    s->replay_waiting--;
    if (!out[i].transient && !rp->told[i]) {
      rp->told[i] = 1;
      rp->open--;
    }
    if (!s->dying)
      it->cb(&out[i], it->privdata);
    item_free(it);
  }
  rp->busy = 0;
  if (is_success(r))
    for (size_t i = 0; i < rp->n; i++)
      sk_str_unref(out[i].result);
  if (rp->open == 0 && !rp->queued)
    replay_free(s, rp);
}

/* Feeds the bucket with what the response said of the rate limit. */
static void observe(resend *s, const sk_http_response *r) {
  if (r->status == 0)
    return;
  long reset = header_long(r, "ratelimit-reset");
  sk_bucket_observe(s->bucket, header_long(r, "ratelimit-limit"),
                    header_long(r, "ratelimit-remaining"), reset >= 0 ? (int64_t)reset * 1000 : -1,
                    r->status == 429 ? retry_after_ms(r) : 0);
}

static void on_http_done(const sk_http_response *r, void *privdata) {
  flight *f = privdata;
  resend *s = f->s;
  enter(s);
  flight_unlink(s, f);
  observe(s, r);
  if (f->replay != NULL)
    answer_replay(s, f->replay, r);
  else if (f->batch)
    answer_batch(s, f, r);
  else
    answer_one(s, f, r);
  flight_free(f);
  if (!s->dying && s->queued > 0)
    schedule_pump(s);
  leave(s);
}

/* Fails the sends of f (its members, or the sends waiting on its replay) with a transient why,
   and unlinks it. */
static void flight_fail_members(resend *s, flight *f, const char *why) {
  sk_io io;
  io_transient(&io, s->api_key, "resend", why);
  flight_unlink(s, f);
  if (f->replay != NULL) {
    f->replay->queued = 0;
    for (size_t i = 0; i < f->replay->n; i++) {
      item *it = f->replay->waiting[i];
      if (it == NULL)
        continue;
      f->replay->waiting[i] = NULL;
      s->replay_waiting--;
      if (!s->dying)
        it->cb(&io, it->privdata);
      item_free(it);
    }
  }
  complete_all(s, f, &io);
}

/* The failure of a flight that could not start: transient for its sends; frees it. */
static void flight_fail(resend *s, flight *f, const char *why) {
  flight_fail_members(s, f, why);
  flight_free(f);
}

/* Starts f's HTTP request with f->body. */
static void start_http(resend *s, flight *f) {
  char idem[64], err[128];
  const char *headers[4] = {s->auth, "Content-Type: application/json", idem,
                            "x-batch-validation: permissive"};
  snprintf(idem, sizeof idem, "Idempotency-Key: %s", f->key);
  f->http_id = sk_http_request(s->http, "POST", f->batch ? s->url_batch : s->url_one, headers,
                               f->batch ? 4 : 3, f->body, f->body_len, on_http_done, f, err,
                               sizeof err);
  if (f->http_id == 0) {
    flight_fail(s, f, err);
    return;
  }
  s->stats.requests++;
  s->stats.batches += f->batch ? 1 : 0;
  s->stats.emails += f->replay != NULL ? f->replay->n : f->n;
}

static void on_recorded(void *ctx, const char *error) {
  flight *f = ctx;
  resend *s = f->s;
  if (s == NULL) { /* the sender was freed meanwhile */
    flight_free(f);
    return;
  }
  assert(f->recording);
  f->recording = 0;
  enter(s);
  if (error != NULL) {
    char why[200];
    snprintf(why, sizeof why, "could not record the batch: %s", error);
    flight_fail(s, f, why);
  } else if (!s->dying) {
    start_http(s, f);
  }
  leave(s);
}

/* A remembered batch's turn: its request, the same bytes under the same key. */
static void dispatch_replay(resend *s, item *head) {
  replay *r = head->replay;
  list_remove(&s->q_head, &s->q_tail, head);
  s->queued--;
  s->queued_alone--;
  s->queued_replays--;
  item_free(head);
  flight *f = calloc(1, sizeof *f);
  char *body = malloc(r->len);
  if (f == NULL || body == NULL) {
    free(f);
    free(body);
    flight tmp = {.s = s, .replay = r};
    flight_link(s, &tmp);
    r->queued = 0;
    flight_fail_members(s, &tmp, "out of memory");
    return;
  }
  f->s = s;
  f->batch = 1;
  f->replay = r;
  snprintf(f->key, sizeof f->key, "%s", r->key);
  memcpy(body, r->body, r->len);
  f->body = body;
  f->body_len = r->len;
  flight_link(s, f);
  start_http(s, f);
}

/* Takes the next request's sends off the queue into a flight, and starts it (through the record
   hook for a new batch). */
static void dispatch_one(resend *s) {
  item *head = s->q_head;
  if (head->replay != NULL) {
    dispatch_replay(s, head);
    return;
  }
  size_t plain = s->queued - s->queued_alone, n = 1;
  int batch = !head->alone && s->batch && plain >= 2;
  if (batch)
    n = plain < s->max_batch ? plain : s->max_batch;
  flight *f = calloc(1, sizeof *f);
  item **members = f != NULL ? calloc(n, sizeof *members) : NULL;
  sk_sbuf body = {0};
  if (members == NULL) { /* out of memory: the head fails transiently */
    sk_io io;
    free(f);
    list_remove(&s->q_head, &s->q_tail, head);
    s->queued--;
    s->queued_alone -= head->alone ? 1 : 0;
    io_transient(&io, s->api_key, "resend", "out of memory");
    head->cb(&io, head->privdata);
    item_free(head);
    return;
  }
  f->s = s;
  f->members = members;
  f->batch = batch;
  if (!batch) {
    members[0] = head;
  } else {
    size_t k = 0;
    for (item *it = head; it != NULL && k < n; it = it->next)
      if (!it->alone)
        members[k++] = it;
    assert(k == n);
  }
  for (size_t i = 0; i < n; i++) {
    list_remove(&s->q_head, &s->q_tail, members[i]);
    s->queued--;
    s->queued_alone -= members[i]->alone ? 1 : 0;
  }
  f->n = n;
  flight_link(s, f);
  if (batch)
    sk_sb_put(&body, "[", 1);
  for (size_t i = 0; i < n; i++) {
    if (i > 0)
      sk_sb_put(&body, ",", 1);
    sk_sb_put(&body, members[i]->json, members[i]->len);
  }
  if (batch)
    sk_sb_put(&body, "]", 1);
  if (body.oom) {
    free(body.p);
    flight_fail(s, f, "out of memory");
    return;
  }
  f->body = body.p;
  f->body_len = body.len;
  if (!batch) {
    snprintf(f->key, sizeof f->key, "%s", members[0]->key);
    start_http(s, f);
    return;
  }
  const char *keys[SK_RESEND_MAX_BATCH];
  for (size_t i = 0; i < n; i++)
    keys[i] = members[i]->key;
  if (sk_resend_batch_key(keys, n, f->key) != 0) {
    flight_fail(s, f, "out of memory");
    return;
  }
  if (s->record == NULL) {
    start_http(s, f);
    return;
  }
  f->recording = 1;
  s->record(f->key, keys, n, f->body, f->body_len, s->record_privdata, on_recorded, f);
}

/* How many requests the queue makes now. */
static unsigned requests_needed(const resend *s) {
  size_t plain = s->queued - s->queued_alone, n;
  if (!s->batch)
    n = s->queued;
  else
    n = s->queued_alone + (plain + s->max_batch - 1) / s->max_batch;
  return n > 1000 ? 1000 : (unsigned)n;
}

static void on_grant(unsigned n, void *privdata) {
  resend *s = privdata;
  enter(s);
  for (unsigned i = 0; i < n && s->q_head != NULL && !s->dying; i++)
    dispatch_one(s);
  if (!s->dying && s->queued > 0)
    schedule_pump(s);
  leave(s);
}

static void on_pump(evutil_socket_t fd, short what, void *arg) {
  resend *s = arg;
  (void)fd;
  (void)what;
  enter(s);
  while (s->r_head != NULL && !s->dying) {
    item *it = s->r_head;
    list_remove(&s->r_head, &s->r_tail, it);
    s->ready--;
    if (it->ready == NULL) { /* its copy could not be made */
      sk_io io;
      io_transient(&io, NULL, "resend", "out of memory");
      it->cb(&io, it->privdata);
    } else {
      it->cb(it->ready, it->privdata);
    }
    item_free(it);
  }
  if (!s->dying && s->queued > 0 && !sk_bucket_pending(s->bucket))
    sk_bucket_take(s->bucket, requests_needed(s), on_grant, s);
  leave(s);
}

static int resend_send(sk_sender *base, const sk_effect_call *call, sk_sender_done_fn cb,
                       void *privdata, sk_io *io) {
  resend *s = (resend *)base;
  const char *why = NULL;
  mref *m;
  item *it = calloc(1, sizeof *it);
  if (it == NULL)
    goto oom;
  snprintf(it->key, sizeof it->key, "%s", call->idempotency_key);
  it->cb = cb;
  it->privdata = privdata;
  if (s->replays != NULL)
    replay_expire(s);
  if ((m = ref_find(s, it->key)) != NULL) {
    replay_join(s, m, it);
    return 0;
  }
  it->json = email_json(s, call, &it->len, &it->alone, &why);
  if (it->json == NULL) {
    sk_io fail, *a;
    if (why == NULL)
      goto oom;
    memset(&fail, 0, sizeof fail);
    set_reason(&fail, s->api_key, "resend: %s", why);
    if ((a = io_copy(&fail)) == NULL)
      goto oom;
    ready_push(s, it, a);
    return 0;
  }
  list_push(&s->q_head, &s->q_tail, it);
  s->queued++;
  s->queued_alone += it->alone ? 1 : 0;
  schedule_pump(s);
  return 0;
oom:
  item_free(it);
  io_transient(io, NULL, "resend", "out of memory");
  return -1;
}

static size_t resend_in_flight(const sk_sender *base) {
  const resend *s = (const resend *)base;
  return s->queued - s->queued_replays + s->ready + s->flying + s->replay_waiting;
}

static void really_free(resend *s) {
  while (s->flights != NULL) {
    flight *f = s->flights;
    flight_unlink(s, f);
    if (f->recording) {
      f->s = NULL; /* the hook's done frees it */
      continue;
    }
    if (f->http_id != 0 && !s->own_http)
      sk_http_cancel(s->http, f->http_id);
    flight_free(f);
  }
  if (s->own_http)
    sk_http_free(s->http);
  while (s->replays != NULL)
    replay_free(s, s->replays);
  free(s->slots);
  while (s->q_head != NULL) {
    item *it = s->q_head;
    list_remove(&s->q_head, &s->q_tail, it);
    item_free(it);
  }
  while (s->r_head != NULL) {
    item *it = s->r_head;
    list_remove(&s->r_head, &s->r_tail, it);
    item_free(it);
  }
  sk_bucket_free(s->bucket);
  if (s->pump != NULL)
    event_free(s->pump);
  if (s->api_key != NULL)
    OPENSSL_cleanse(s->api_key, strlen(s->api_key));
  if (s->auth != NULL)
    OPENSSL_cleanse(s->auth, strlen(s->auth));
  free(s->api_key);
  free(s->auth);
  free(s->url_one);
  free(s->url_batch);
  free(s->default_from);
  free(s);
}

static void resend_free(sk_sender *base) {
  resend *s = (resend *)base;
  if (s->depth > 0) {
    s->dying = 1;
    return;
  }
  really_free(s);
}

static const sk_sender_ops resend_ops = {"resend", resend_send, resend_in_flight, resend_free};

int sk_resend_adopt_batch(sk_sender *base, const char *batch_key, const char *const *member_keys,
                          size_t n, const void *body, size_t len) {
  resend *s = (resend *)base;
  assert(base->ops == &resend_ops);
  if (batch_key == NULL || strncmp(batch_key, "skb_", 4) != 0 || body == NULL)
    return -1;
  for (size_t i = 0; i < n; i++)
    if (member_keys[i] == NULL || ref_find(s, member_keys[i]) != NULL)
      return -1; /* already remembered: the first one stands */
  return replay_new(s, batch_key, member_keys, n, body, len) != NULL ? 0 : -1;
}

size_t sk_resend_remembered_batches(const sk_sender *base) {
  const resend *s = (const resend *)base;
  size_t n = 0;
  assert(base->ops == &resend_ops);
  for (const replay *r = s->replays; r != NULL; r = r->next)
    n++;
  return n;
}

void sk_resend_options_init(sk_resend_options *o) {
  memset(o, 0, sizeof *o);
  o->rps = 2;
  o->burst = 1;
  o->batch = 1;
  o->max_batch = SK_RESEND_MAX_BATCH;
}

static const char *env(const char *name) {
  const char *v = getenv(name);
  return v != NULL && v[0] != '\0' ? v : NULL;
}

int sk_resend_options_from_env(sk_resend_options *o, char *err, size_t errlen) {
  const char *v;
  if ((v = env("RESEND_API_KEY")) != NULL)
    o->api_key = v;
  if ((v = env("RESEND_API_URL")) != NULL)
    o->api_url = v;
  if ((v = env("SKENE_EMAIL_FROM")) != NULL)
    o->default_from = v;
  if ((v = env("SKENE_RESEND_RPS")) != NULL) {
    char *end;
    errno = 0;
    double r = strtod(v, &end);
    if (errno != 0 || *end != '\0' || !(r > 0) || r > 10000) {
      snprintf(err, errlen, "bad SKENE_RESEND_RPS '%s': expected requests a second, e.g. 2", v);
      return -1;
    }
    o->rps = r;
  }
  if ((v = env("SKENE_RESEND_BURST")) != NULL) {
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < 1 || n > 10000) {
      snprintf(err, errlen, "bad SKENE_RESEND_BURST '%s': expected a whole number from 1", v);
      return -1;
    }
    o->burst = (unsigned)n;
  }
  return 0;
}

/* base + path, without a doubled '/'. */
static char *join_url(const char *base, const char *path) {
  size_t bl = strlen(base);
  while (bl > 0 && base[bl - 1] == '/')
    bl--;
  size_t n = bl + strlen(path) + 1;
  char *p = malloc(n);
  if (p != NULL)
    snprintf(p, n, "%.*s%s", (int)bl, base, path);
  return p;
}

static sk_http *own_or_shared(struct event_base *base, sk_http *shared, const sk_http_options *o,
                              int *own, char *err, size_t errlen) {
  *own = 0;
  if (shared != NULL)
    return shared;
  *own = 1;
  return sk_http_new(base, o, err, errlen);
}

sk_sender *sk_resend_new(struct event_base *base, const sk_resend_options *options, char *err,
                         size_t errlen) {
  sk_resend_options o;
  resend *s = NULL;
  if (options != NULL)
    o = *options;
  else
    sk_resend_options_init(&o);
  if (o.api_key == NULL || o.api_key[0] == '\0') {
    snprintf(err, errlen, "resend: no API key (RESEND_API_KEY)");
    return NULL;
  }
  if (strpbrk(o.api_key, "\r\n") != NULL) {
    snprintf(err, errlen, "resend: the API key (RESEND_API_KEY) has a line break");
    return NULL;
  }
  const char *url = o.api_url != NULL ? o.api_url : SK_RESEND_API_URL_DEFAULT;
  if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
    snprintf(err, errlen, "resend: bad RESEND_API_URL '%.100s': expected http:// or https://", url);
    return NULL;
  }
  if (!(o.rps > 0) || o.burst < 1 || o.max_batch < 2 || o.max_batch > SK_RESEND_MAX_BATCH) {
    snprintf(err, errlen, "resend: bad options (rps > 0, burst >= 1, max_batch 2..100)");
    return NULL;
  }
  s = calloc(1, sizeof *s);
  if (s == NULL)
    goto oom;
  s->base.ops = &resend_ops;
  s->evb = base;
  s->batch = o.batch;
  s->max_batch = o.max_batch;
  s->record = o.record_batch;
  s->record_privdata = o.record_privdata;
  s->api_key = strdup(o.api_key);
  size_t al = strlen(o.api_key) + sizeof "Authorization: Bearer ";
  s->auth = malloc(al);
  s->url_one = join_url(url, "/emails");
  s->url_batch = join_url(url, "/emails/batch");
  if (o.default_from != NULL && (s->default_from = strdup(o.default_from)) == NULL)
    goto oom;
  if (s->api_key == NULL || s->auth == NULL || s->url_one == NULL || s->url_batch == NULL)
    goto oom;
  snprintf(s->auth, al, "Authorization: Bearer %s", o.api_key);
  s->pump = event_new(base, -1, 0, on_pump, s);
  s->bucket = sk_bucket_new(base, "resend", o.rps, o.burst, o.redis, o.key_prefix);
  if (s->pump == NULL || s->bucket == NULL)
    goto oom;
  s->http = own_or_shared(base, o.http, o.http_options, &s->own_http, err, errlen);
  if (s->http == NULL) {
    s->own_http = 0;
    really_free(s);
    return NULL;
  }
  return &s->base;
oom:
  snprintf(err, errlen, "resend: out of memory");
  if (s != NULL)
    really_free(s);
  return NULL;
}

void sk_resend_get_stats(const sk_sender *base, sk_resend_stats *out) {
  const resend *s = (const resend *)base;
  assert(base->ops == &resend_ops);
  *out = s->stats;
  out->redis_commands = sk_bucket_redis_commands(s->bucket);
}

/* ---- the webhook sender ---- */

typedef struct hook_req {
  struct hook_req *prev, *next;
  struct webhook *w;
  uint64_t http_id;
  sk_sender_done_fn cb;
  void *privdata;
  char *fail; /* failed at send time (permanent): why */
} hook_req;

typedef struct webhook {
  sk_sender base;
  sk_http *http;
  int own_http;
  hook_req *reqs;  /* in flight */
  hook_req *fails; /* failed at send time, to call back from the loop */
  size_t n;
  struct event *pump;
  int depth, dying;
} webhook;

static void hook_link(hook_req **head, hook_req *r) {
  r->prev = NULL;
  r->next = *head;
  if (*head != NULL)
    (*head)->prev = r;
  *head = r;
}

static void hook_unlink(hook_req **head, hook_req *r) {
  if (r->prev != NULL)
    r->prev->next = r->next;
  else
    *head = r->next;
  if (r->next != NULL)
    r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

static void hook_really_free(webhook *w) {
  while (w->reqs != NULL) {
    hook_req *r = w->reqs;
    hook_unlink(&w->reqs, r);
    if (!w->own_http)
      sk_http_cancel(w->http, r->http_id);
    free(r);
  }
  while (w->fails != NULL) {
    hook_req *r = w->fails;
    hook_unlink(&w->fails, r);
    free(r->fail);
    free(r);
  }
  if (w->own_http)
    sk_http_free(w->http);
  if (w->pump != NULL)
    event_free(w->pump);
  free(w);
}

static void hook_leave(webhook *w) {
  if (--w->depth == 0 && w->dying)
    hook_really_free(w);
}

static void on_hook_done(const sk_http_response *res, void *privdata) {
  hook_req *r = privdata;
  webhook *w = r->w;
  sk_io io;
  char status[24];
  w->depth++;
  hook_unlink(&w->reqs, r);
  w->n--;
  memset(&io, 0, sizeof io);
  if (is_success(res)) {
    io.ok = 1;
    snprintf(status, sizeof status, "%ld", res->status);
    io.result = sk_str_from(status);
  } else {
    classify_failure("webhook", 0, res, NULL, &io);
  }
  if (!w->dying)
    r->cb(&io, r->privdata);
  sk_str_unref(io.result);
  free(r);
  hook_leave(w);
}

static void on_hook_pump(evutil_socket_t fd, short what, void *arg) {
  webhook *w = arg;
  (void)fd;
  (void)what;
  w->depth++;
  while (w->fails != NULL && !w->dying) {
    hook_req *r = w->fails;
    sk_io io;
    hook_unlink(&w->fails, r);
    w->n--;
    memset(&io, 0, sizeof io);
    set_reason(&io, NULL, "webhook: %s", r->fail);
    r->cb(&io, r->privdata);
    free(r->fail);
    free(r);
  }
  hook_leave(w);
}

/* RFC 9110 token characters (a header name). */
static int is_token(const char *s) {
  if (*s == '\0')
    return 0;
  for (; *s != '\0'; s++)
    if (!isalnum((unsigned char)*s) && strchr("!#$%&'*+-.^_`|~", *s) == NULL)
      return 0;
  return 1;
}

/* The header lines of a webhook call into lines[] (owned, freed by the caller), with ours; NULL
   on success, else why the call cannot be sent (*oom set when memory ran out). */
static const char *hook_headers(const sk_effect_call *c, char **lines, size_t *n, size_t max,
                                int *oom) {
  static const char *const reserved[] = {"host", "content-length", "transfer-encoding",
                                         "connection", "expect", "idempotency-key"};
  int have_type = 0;
  *n = 0;
  *oom = 0;
  for (uint32_t i = 0; i < c->nfields; i++) {
    const char *name = c->fields[i].name;
    const sk_string *v = c->fields[i].value;
    if (v == NULL || strncmp(name, "header.", 7) != 0)
      continue;
    name += 7;
    if (!is_token(name))
      return "a header name is not a valid HTTP token";
    for (size_t k = 0; k < sizeof reserved / sizeof *reserved; k++)
      if (strcasecmp(name, reserved[k]) == 0)
        return "a header sets Host, Content-Length, Transfer-Encoding, Connection, Expect or "
               "Idempotency-Key, which Skene sets itself";
    if (memchr(v->data, '\r', v->len) != NULL || memchr(v->data, '\n', v->len) != NULL ||
        memchr(v->data, '\0', v->len) != NULL)
      return "a header value has a line break";
    if (*n + 2 >= max)
      return "too many headers";
    have_type |= strcasecmp(name, "content-type") == 0;
    size_t len = strlen(name) + v->len + 3;
    char *line = malloc(len);
    if (line == NULL) {
      *oom = 1;
      return "out of memory";
    }
    snprintf(line, len, "%s: %.*s", name, (int)v->len, v->data);
    lines[(*n)++] = line;
  }
  size_t len = strlen(c->idempotency_key) + sizeof "Idempotency-Key: ";
  char *idem = malloc(len), *type = have_type ? NULL : strdup("Content-Type: application/json");
  if (idem == NULL || (!have_type && type == NULL)) {
    free(idem);
    free(type);
    *oom = 1;
    return "out of memory";
  }
  snprintf(idem, len, "Idempotency-Key: %s", c->idempotency_key);
  if (type != NULL)
    lines[(*n)++] = type;
  lines[(*n)++] = idem;
  return NULL;
}

static int webhook_send(sk_sender *base, const sk_effect_call *call, sk_sender_done_fn cb,
                        void *privdata, sk_io *io) {
  webhook *w = (webhook *)base;
  enum { MAX_LINES = 66 };
  char *lines[MAX_LINES];
  size_t nlines = 0;
  int oom = 0;
  char err[160];
  const char *why = NULL;
  const sk_string *url = field(call, "url"), *body = field(call, "body");
  hook_req *r = calloc(1, sizeof *r);
  if (r == NULL)
    goto oom;
  r->w = w;
  r->cb = cb;
  r->privdata = privdata;
  if (url == NULL || url->len == 0)
    why = "no url";
  else if (strlen(url->data) != url->len || (strncmp(url->data, "https://", 8) != 0 &&
                                              strncmp(url->data, "http://", 7) != 0))
    why = "the url is not an http:// or https:// URL";
  else
    why = hook_headers(call, lines, &nlines, MAX_LINES, &oom);
  if (oom)
    goto oom;
  if (why == NULL) {
    r->http_id = sk_http_request(w->http, "POST", url->data, (const char *const *)lines, nlines,
                                 body != NULL ? body->data : NULL, body != NULL ? body->len : 0,
                                 on_hook_done, r, err, sizeof err);
    if (r->http_id == 0) {
      io_transient(io, NULL, "webhook", err);
      goto fail;
    }
    hook_link(&w->reqs, r);
  } else {
    if ((r->fail = strdup(why)) == NULL)
      goto oom;
    hook_link(&w->fails, r);
    if (!event_pending(w->pump, EV_TIMEOUT, NULL))
      event_active(w->pump, EV_TIMEOUT, 1);
  }
  w->n++;
  for (size_t i = 0; i < nlines; i++)
    free(lines[i]);
  return 0;
oom:
  io_transient(io, NULL, "webhook", "out of memory");
fail:
  for (size_t i = 0; i < nlines; i++)
    free(lines[i]);
  if (r != NULL)
    free(r->fail);
  free(r);
  return -1;
}

static size_t webhook_in_flight(const sk_sender *base) { return ((const webhook *)base)->n; }

static void webhook_free(sk_sender *base) {
  webhook *w = (webhook *)base;
  if (w->depth > 0) {
    w->dying = 1;
    return;
  }
  hook_really_free(w);
}

static const sk_sender_ops webhook_ops = {"webhook", webhook_send, webhook_in_flight,
                                          webhook_free};

sk_sender *sk_webhook_new(struct event_base *base, const sk_webhook_options *options, char *err,
                          size_t errlen) {
  webhook *w = calloc(1, sizeof *w);
  if (w == NULL) {
    snprintf(err, errlen, "webhook: out of memory");
    return NULL;
  }
  w->base.ops = &webhook_ops;
  w->pump = event_new(base, -1, 0, on_hook_pump, w);
  if (w->pump == NULL) {
    snprintf(err, errlen, "webhook: out of memory");
    hook_really_free(w);
    return NULL;
  }
  w->http = own_or_shared(base, options != NULL ? options->http : NULL,
                          options != NULL ? options->http_options : NULL, &w->own_http, err,
                          errlen);
  if (w->http == NULL) {
    w->own_http = 0;
    hook_really_free(w);
    return NULL;
  }
  return &w->base;
}
