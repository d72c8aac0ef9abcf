/* feed.c: change feeds over Redis (feed.h): the stream feed (consumer group, blocking reads on a
 * connection of its own, bounded pending entries, claims of dead consumers' entries, batched XACK),
 * the scan feed (periodic SCAN, first sight through the SEEN set, batched SADD) and the keyspace
 * feed (notify-keyspace-events merged in, PSUBSCRIBE on a connection of its own, notifications of
 * one loop iteration checked against SEEN in one SMISMEMBER, and the scan feed's passes to
 * reconcile: at start, after every resubscription, periodically).
 *
 * Every command carries a feed_req: the callback finds the feed through it, and sk_feed_free
 * detaches the requests still in flight (their replies are then dropped), so conn, which outlives
 * the feed, never calls back into freed memory. Re-entrancy follows redis.c: user callbacks run
 * with f->depth > 0, and sk_feed_free from inside one is finished by the outermost entry point
 * (leave()).
 *
 * Stream accounting: `outstanding` holds the ids delivered (read, re-read or claimed) and not yet
 * confirmed acknowledged; a read or a claim asks for at most max_pending - outstanding - what the
 * other one has asked for, so the consumer's pending entries never exceed max_pending.
 */
#define _POSIX_C_SOURCE 200809L

#include "feed.h"

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

/* The key patterns of keys.h, by sk_key_kind. */
static const char *const key_patterns[] = {
#define SK_KEY_PATTERN(name, pattern, type, doc) pattern,
    SK_KEYS(SK_KEY_PATTERN)
#undef SK_KEY_PATTERN
};

enum { ENTRY_ID_MAX = 48, ACK_CHUNK = 1000, READ_TIMEOUT_MARGIN_MS = 10000 };

/* ---- small containers ---- */

typedef struct strvec {
  char **v;
  size_t n, cap;
} strvec;

static int strvec_push(strvec *s, const char *str, size_t len) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 16;
    char **v = realloc(s->v, cap * sizeof *v);
    if (v == NULL)
      return -1;
    s->v = v;
    s->cap = cap;
  }
  char *copy = malloc(len + 1);
  if (copy == NULL)
    return -1;
  memcpy(copy, str, len);
  copy[len] = '\0';
  s->v[s->n++] = copy;
  return 0;
}

static void strvec_clear(strvec *s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->v[i]);
  free(s->v);
  s->v = NULL;
  s->n = s->cap = 0;
}

/* Moves the first n strings of from to the end of to (to takes ownership). */
static int strvec_move(strvec *to, strvec *from, size_t n) {
  if (to->n + n > to->cap) {
    size_t cap = to->cap ? to->cap : 16;
    while (cap < to->n + n)
      cap *= 2;
    char **v = realloc(to->v, cap * sizeof *v);
    if (v == NULL)
      return -1;
    to->v = v;
    to->cap = cap;
  }
  memcpy(to->v + to->n, from->v, n * sizeof *from->v);
  to->n += n;
  memmove(from->v, from->v + n, (from->n - n) * sizeof *from->v);
  from->n -= n;
  return 0;
}

/* A set of strings: open addressing, linear probing, deletion by backward shift. O(1) expected. */
typedef struct strset {
  char **slot;
  size_t cap, n; /* cap: 0 or a power of two */
} strset;

static size_t str_hash(const char *s) {
  uint64_t h = 0xcbf29ce484222325u;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 0x100000001b3u;
  return (size_t)(h ^ (h >> 29));
}

static size_t strset_find(const strset *s, const char *str) {
  size_t i = str_hash(str) & (s->cap - 1);
  while (s->slot[i] != NULL && strcmp(s->slot[i], str) != 0)
    i = (i + 1) & (s->cap - 1);
  return i;
}

static int strset_has(const strset *s, const char *str) {
  return s->cap != 0 && s->slot[strset_find(s, str)] != NULL;
}

/* Returns 1 when added, 0 when already there, -1 when out of memory. */
static int strset_add(strset *s, const char *str) {
  if ((s->n + 1) * 2 > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    char **slot = calloc(cap, sizeof *slot);
    if (slot == NULL)
      return -1;
    strset old = *s;
    s->slot = slot;
    s->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
      if (old.slot[i] != NULL)
        s->slot[strset_find(s, old.slot[i])] = old.slot[i];
    free(old.slot);
  }
  size_t i = strset_find(s, str);
  if (s->slot[i] != NULL)
    return 0;
  if ((s->slot[i] = strdup(str)) == NULL)
    return -1;
  s->n++;
  return 1;
}

static void strset_del(strset *s, const char *str) {
  if (s->cap == 0)
    return;
  size_t mask = s->cap - 1, i = strset_find(s, str);
  if (s->slot[i] == NULL)
    return;
  free(s->slot[i]);
  s->slot[i] = NULL;
  s->n--;
  /* Shift back the entries of the run after i that would no longer be found. */
  for (size_t j = (i + 1) & mask; s->slot[j] != NULL; j = (j + 1) & mask) {
    size_t home = str_hash(s->slot[j]) & mask;
    if (((j - home) & mask) >= ((j - i) & mask)) {
      s->slot[i] = s->slot[j];
      s->slot[j] = NULL;
      i = j;
    }
  }
}

static void strset_clear(strset *s) {
  for (size_t i = 0; i < s->cap; i++)
    free(s->slot[i]);
  free(s->slot);
  memset(s, 0, sizeof *s);
}

/* ---- the feed ---- */

enum req_kind {
  REQ_GROUP,      /* XGROUP CREATE */
  REQ_READ,       /* XREADGROUP */
  REQ_CLAIM,      /* XAUTOCLAIM */
  REQ_ACK,        /* XACK ids */
  REQ_MARKER,     /* SISMEMBER seen "" */
  REQ_SCAN,       /* SCAN */
  REQ_MISMEMBER,  /* SMISMEMBER seen ids */
  REQ_RECORD,     /* SADD seen ids, first pass without backfill */
  REQ_MARK,       /* SADD seen "" */
  REQ_SEEN,       /* SADD seen ids, sk_feed_ack_row */
  REQ_CONFIG_GET, /* CONFIG GET notify-keyspace-events */
  REQ_CONFIG_SET, /* CONFIG SET notify-keyspace-events merged */
  REQ_NOTIFIED    /* NOTIFIED_SCRIPT: seen? and type of the ids notified */
};

typedef struct feed_req {
  struct feed_req *prev, *next;
  sk_feed *feed; /* NULL once the feed is freed: the reply is dropped */
  enum req_kind kind;
  int count;     /* REQ_READ, REQ_CLAIM: the COUNT asked for */
  strvec ids;    /* REQ_ACK, REQ_MISMEMBER, REQ_RECORD, REQ_SEEN, REQ_NOTIFIED: the ids sent */
  char *updates; /* REQ_NOTIFIED: per id, 1 when only an update was notified */
} feed_req;

enum phase { PH_HISTORY, PH_LIVE };
enum scan_state { SC_IDLE, SC_MARKER, SC_SCAN, SC_MARK, SC_WAIT };

struct sk_feed {
  struct event_base *base;
  sk_redis *conn;  /* the caller's */
  sk_redis *rconn; /* stream: ours, for the blocking reads */
  sk_feed_options o;
  char *table, *prefix, *consumer, *row_type;
  char *stream_key, *seen_key;
  char *key_prefix, *key_suffix, *match; /* scan: the row key around {id}, and its SCAN glob */
  feed_req *reqs;                        /* in flight */
  int depth, free_pending, closing;

  struct event *read_ev, *claim_ev, *flush_ev, *scan_ev;

  /* stream */
  enum phase phase;
  char history_from[ENTRY_ID_MAX]; /* PH_HISTORY: re-read our pending entries after this id */
  int need_group;
  int read_count;  /* the COUNT of the read in flight, 0: none */
  int claim_count; /* the COUNT of the claim in flight, 0: none */
  char claim_cursor[ENTRY_ID_MAX];
  strset outstanding;
  strvec acks; /* ids (stream) or rows (scan) to acknowledge */
  int flush_armed;

  /* scan */
  enum scan_state scan;
  int first;            /* this pass records without reporting */
  char cursor[32];      /* of the SCAN in progress */
  char next_cursor[32]; /* its reply's, applied once its ids are handled */
  strset delivered;     /* inserts reported and not yet recorded in SEEN */
  unsigned passes;
  int rescan; /* keyspace: start another pass as soon as this one ends */

  /* keyspace */
  struct event *notify_ev; /* checks the notifications of one loop iteration */
  char *channel_prefix;    /* "__keyspace@0__:" */
  strvec notified;         /* ids, each prefixed by 'n' (new key) or 'u' (written) */
  int config_busy;         /* CONFIG GET / SET in flight */
};

static void destroy(sk_feed *f);
static void stream_read(sk_feed *f);
static void flush_acks(sk_feed *f);
static void scan_step(sk_feed *f);
static void config_reply(sk_feed *f, feed_req *q, const sk_redis_result *res);
static void notified_reply(sk_feed *f, feed_req *q, const sk_redis_result *res);
static int keyspace_subscribe(sk_feed *f, const char *url, char *err, size_t errlen);

static void enter(sk_feed *f) { f->depth++; }

/* Leaves an entry point; frees f if a callback asked for it. f is invalid afterwards. */
static void leave(sk_feed *f) {
  assert(f->depth > 0);
  if (--f->depth == 0 && f->free_pending)
    destroy(f);
}

static void report(sk_feed *f, const char *entry_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(sk_feed *f, const char *entry_id, const char *fmt, ...) {
  if (f->o.on_error == NULL || f->free_pending)
    return;
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  f->depth++;
  f->o.on_error(f, entry_id, msg, f->o.privdata);
  f->depth--;
}

static void arm(struct event *ev, int ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  evtimer_add(ev, &tv);
}

static char *concat(const char *a, const char *b, size_t blen) {
  size_t alen = strlen(a);
  char *s = malloc(alen + blen + 1);
  if (s == NULL)
    return NULL;
  memcpy(s, a, alen);
  memcpy(s + alen, b, blen);
  s[alen + blen] = '\0';
  return s;
}

/* prefix + keys.h pattern with {table} replaced by table. */
static char *skene_key(const char *prefix, sk_key_kind kind, const char *table) {
  const char *pat = key_patterns[kind];
  const char *at = strstr(pat, "{table}");
  assert(at != NULL);
  size_t plen = strlen(prefix), before = (size_t)(at - pat), tlen = strlen(table);
  const char *after = at + strlen("{table}");
  char *s = malloc(plen + before + tlen + strlen(after) + 1);
  if (s == NULL)
    return NULL;
  sprintf(s, "%s%.*s%s%s", prefix, (int)before, pat, table, after);
  return s;
}

/* s with the glob characters of SCAN MATCH escaped, into out (>= 2 * strlen(s) + 1 bytes). */
static size_t glob_escape(char *out, const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    if (strchr("*?[]\\", s[i]) != NULL)
      out[n++] = '\\';
    out[n++] = s[i];
  }
  return n;
}

/* ---- requests ---- */

static feed_req *req_new(sk_feed *f, enum req_kind kind) {
  feed_req *q = calloc(1, sizeof *q);
  if (q == NULL)
    return NULL;
  q->feed = f;
  q->kind = kind;
  q->next = f->reqs;
  if (f->reqs != NULL)
    f->reqs->prev = q;
  f->reqs = q;
  return q;
}

static void req_unlink(sk_feed *f, feed_req *q) {
  if (q->prev != NULL)
    q->prev->next = q->next;
  else
    f->reqs = q->next;
  if (q->next != NULL)
    q->next->prev = q->prev;
  q->prev = q->next = NULL;
}

static void req_free(feed_req *q) {
  strvec_clear(&q->ids);
  free(q->updates);
  free(q);
}

static void on_reply(sk_redis *r, const sk_redis_result *res, void *privdata);

/* Sends argv on c for q (timeout_ms < 0: the connection's default). Returns 0, or -1 when c
 * refused it: q is then freed and the failure reported. */
static int req_send(sk_feed *f, sk_redis *c, feed_req *q, int timeout_ms, int argc,
                    const char **argv) {
  int rc = timeout_ms < 0 ? sk_redis_command(c, argc, argv, NULL, on_reply, q)
                          : sk_redis_command_timeout(c, timeout_ms, argc, argv, NULL, on_reply, q);
  if (rc == 0)
    return 0;
  req_unlink(f, q);
  req_free(q);
  report(f, NULL, "%s not sent: %s", argv[0], sk_redis_errstr(c));
  return -1;
}

/* Sends head[0..nhead) followed by every string of ids for q. On success q takes the ids (ids is
 * left empty); on failure they stay in ids and q is freed. Returns as req_send. */
static int req_send_ids(sk_feed *f, feed_req *q, int nhead, const char **head, strvec *ids) {
  const char **argv = malloc((nhead + ids->n) * sizeof *argv);
  if (argv == NULL) {
    req_unlink(f, q);
    req_free(q);
    report(f, NULL, "%s not sent: out of memory", head[0]);
    return -1;
  }
  memcpy(argv, head, nhead * sizeof *argv);
  for (size_t i = 0; i < ids->n; i++)
    argv[nhead + i] = ids->v[i];
  int rc = req_send(f, f->conn, q, -1, nhead + (int)ids->n, argv); /* copies the arguments */
  free(argv);
  if (rc == 0) {
    q->ids = *ids;
    memset(ids, 0, sizeof *ids);
  }
  return rc;
}

/* ---- stream: delivering entries ---- */

static int is_entry_id(const char *s, size_t len) {
  size_t i = 0, digits = 0;
  while (i < len && s[i] >= '0' && s[i] <= '9')
    i++, digits++;
  if (digits == 0 || i == len || s[i] != '-')
    return 0;
  i++;
  digits = 0;
  while (i < len && s[i] >= '0' && s[i] <= '9')
    i++, digits++;
  return digits > 0 && i == len && len < ENTRY_ID_MAX;
}

static void queue_ack(sk_feed *f, const char *id) {
  if (strvec_push(&f->acks, id, strlen(id)) != 0) {
    report(f, id, "cannot acknowledge %s: out of memory", id);
    return;
  }
  if (!f->flush_armed) {
    f->flush_armed = 1;
    arm(f->flush_ev, 0);
  }
}

/* Why the fields of an entry are not a row event, or NULL; sets *row and *op when they are. */
static const char *parse_fields(const redisReply *fields, const redisReply **row, sk_feed_op *op) {
  *row = NULL;
  *op = SK_FEED_INSERT;
  if (fields->type != REDIS_REPLY_ARRAY)
    return "was deleted from the stream";
  if (fields->elements % 2 != 0)
    return "has an odd number of fields";
  for (size_t i = 0; i < fields->elements; i += 2) {
    const redisReply *k = fields->element[i], *v = fields->element[i + 1];
    if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
      return "has a field that is not a string";
    if (k->len == 2 && memcmp(k->str, "id", 2) == 0) {
      *row = v;
    } else if (k->len == 2 && memcmp(k->str, "op", 2) == 0) {
      if (v->len == 6 && memcmp(v->str, "insert", 6) == 0)
        *op = SK_FEED_INSERT;
      else if (v->len == 6 && memcmp(v->str, "update", 6) == 0)
        *op = SK_FEED_UPDATE;
      else
        return "has an 'op' that is neither insert nor update";
    }
  }
  if (*row == NULL)
    return "has no 'id' field";
  if ((*row)->len == 0 || memchr((*row)->str, '\0', (*row)->len) != NULL)
    return "has an empty 'id' or one with a NUL byte";
  return NULL;
}

/* Hands each entry of an XREADGROUP / XAUTOCLAIM entries array to on_event, once per delivery
 * (ids already outstanding are skipped); malformed entries are acknowledged and reported. Copies
 * the id of the last entry into last (when not NULL). Stops early if the feed is being freed.
 * Cost: O(entries * fields). */
static void deliver_entries(sk_feed *f, const redisReply *entries, char *last) {
  for (size_t i = 0; i < entries->elements && !f->free_pending; i++) {
    const redisReply *e = entries->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING ||
        !is_entry_id(e->element[0]->str, e->element[0]->len)) {
      report(f, NULL, "unexpected stream entry in a reply about %s", f->stream_key);
      continue;
    }
    const char *id = e->element[0]->str;
    if (last != NULL)
      snprintf(last, ENTRY_ID_MAX, "%s", id);
    int added = strset_add(&f->outstanding, id);
    if (added == 0)
      continue; /* delivered already, not yet acknowledged */
    if (added < 0) {
      report(f, id, "cannot track stream entry %s: out of memory", id);
      continue;
    }
    const redisReply *row;
    sk_feed_op op;
    const char *bad = parse_fields(e->element[1], &row, &op);
    if (bad != NULL) {
      queue_ack(f, id);
      report(f, id, "stream entry %s of %s %s: acknowledged and skipped", id, f->stream_key, bad);
      continue;
    }
    f->depth++;
    f->o.on_event(f, f->table, op, row->str, id, f->o.privdata);
    f->depth--;
  }
}

/* ---- stream: reading ---- */

static int room(const sk_feed *f, int other) {
  long r = (long)f->o.max_pending - (long)f->outstanding.n - other;
  return r > 0 ? (int)r : 0;
}

/* Issues the next read unless one is in flight or the pending bound is reached (then the next
 * confirmed XACK calls this again). */
static void stream_read(sk_feed *f) {
  if (f->read_count > 0 || f->free_pending || evtimer_pending(f->read_ev, NULL))
    return;
  int count = room(f, f->claim_count);
  if (count == 0)
    return;
  if (count > f->o.batch)
    count = f->o.batch;
  if (f->need_group) {
    const char *argv[] = {"XGROUP", "CREATE", f->stream_key, SK_FEED_GROUP, "0", "MKSTREAM"};
    feed_req *q = req_new(f, REQ_GROUP);
    if (q == NULL || req_send(f, f->rconn, q, -1, 6, argv) != 0) {
      arm(f->read_ev, f->o.retry_ms);
      return;
    }
    f->need_group = 0;
  }
  char countbuf[16], blockbuf[16];
  snprintf(countbuf, sizeof countbuf, "%d", count);
  snprintf(blockbuf, sizeof blockbuf, "%d", f->o.block_ms);
  const char *argv[12] = {"XREADGROUP", "GROUP", SK_FEED_GROUP, f->consumer, "COUNT", countbuf};
  int argc = 6, timeout = -1;
  if (f->phase == PH_LIVE) {
    argv[argc++] = "BLOCK";
    argv[argc++] = blockbuf;
    timeout = f->o.block_ms + READ_TIMEOUT_MARGIN_MS;
  }
  argv[argc++] = "STREAMS";
  argv[argc++] = f->stream_key;
  argv[argc++] = f->phase == PH_LIVE ? ">" : f->history_from;
  feed_req *q = req_new(f, REQ_READ);
  if (q == NULL || req_send(f, f->rconn, q, timeout, argc, argv) != 0) {
    arm(f->read_ev, f->o.retry_ms);
    return;
  }
  q->count = count;
  f->read_count = count;
}

static void read_done(sk_feed *f, const sk_redis_result *res) {
  f->read_count = 0;
  if (res->status != SK_REDIS_OK) {
    /* The read may have run: entries may be ours that we never saw. Re-read our own pending
     * entries once connected again (the command waits in the connection's queue). */
    f->phase = PH_HISTORY;
    strcpy(f->history_from, "0");
    f->need_group = 1;
    if (res->status == SK_REDIS_CONN_LOST || res->status == SK_REDIS_NOT_SENT) {
      if (!sk_redis_has_failed(f->rconn)) {
        stream_read(f);
        return;
      }
    }
    report(f, NULL, "XREADGROUP on %s failed: %s", f->stream_key, res->errstr);
    arm(f->read_ev, f->o.retry_ms);
    return;
  }
  const redisReply *reply = res->reply;
  if (reply->type == REDIS_REPLY_ERROR) {
    if (strncmp(reply->str, "NOGROUP", 7) == 0)
      f->need_group = 1;
    report(f, NULL, "XREADGROUP on %s failed: %s", f->stream_key, reply->str);
    arm(f->read_ev, f->o.retry_ms);
    return;
  }
  size_t got = 0;
  if (reply->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i < reply->elements; i++) {
      const redisReply *s = reply->element[i];
      if (s->type == REDIS_REPLY_ARRAY && s->elements == 2 &&
          s->element[1]->type == REDIS_REPLY_ARRAY) {
        got += s->element[1]->elements;
        deliver_entries(f, s->element[1], f->phase == PH_HISTORY ? f->history_from : NULL);
      }
    }
  } else if (reply->type != REDIS_REPLY_NIL) {
    report(f, NULL, "unexpected reply to XREADGROUP on %s", f->stream_key);
    arm(f->read_ev, f->o.retry_ms);
    return;
  }
  if (f->phase == PH_HISTORY && got == 0)
    f->phase = PH_LIVE;
  stream_read(f);
}

/* ---- stream: claiming the entries of dead consumers ---- */

static void stream_claim(sk_feed *f) {
  if (f->claim_count > 0 || f->free_pending)
    return;
  int count = room(f, f->read_count);
  if (count == 0) {
    arm(f->claim_ev, f->o.claim_interval_ms);
    return;
  }
  if (count > f->o.batch)
    count = f->o.batch;
  char idle[16], countbuf[16];
  snprintf(idle, sizeof idle, "%d", f->o.claim_min_idle_ms);
  snprintf(countbuf, sizeof countbuf, "%d", count);
  const char *argv[] = {"XAUTOCLAIM", f->stream_key,   SK_FEED_GROUP, f->consumer,
                        idle,         f->claim_cursor, "COUNT",       countbuf};
  feed_req *q = req_new(f, REQ_CLAIM);
  if (q == NULL || req_send(f, f->conn, q, -1, 8, argv) != 0) {
    arm(f->claim_ev, f->o.retry_ms);
    return;
  }
  q->count = count;
  f->claim_count = count;
}

static void claim_done(sk_feed *f, const sk_redis_result *res) {
  f->claim_count = 0;
  const redisReply *reply = res->reply;
  if (res->status != SK_REDIS_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
      reply->element[0]->type != REDIS_REPLY_STRING ||
      reply->element[1]->type != REDIS_REPLY_ARRAY ||
      !is_entry_id(reply->element[0]->str, reply->element[0]->len)) {
    /* NOGROUP before the first read created the group is not worth a report. */
    if (!(res->status == SK_REDIS_OK && reply->type == REDIS_REPLY_ERROR &&
          strncmp(reply->str, "NOGROUP", 7) == 0))
      report(f, NULL, "XAUTOCLAIM on %s failed: %s", f->stream_key,
             res->status != SK_REDIS_OK         ? res->errstr
             : reply->type == REDIS_REPLY_ERROR ? reply->str
                                                : "unexpected reply");
    strcpy(f->claim_cursor, "0-0");
    arm(f->claim_ev, res->status == SK_REDIS_OK ? f->o.claim_interval_ms : f->o.retry_ms);
    stream_read(f); /* the room the claim held is free again */
    return;
  }
  deliver_entries(f, reply->element[1], NULL);
  snprintf(f->claim_cursor, sizeof f->claim_cursor, "%s", reply->element[0]->str);
  if (strcmp(f->claim_cursor, "0-0") != 0 && !f->free_pending)
    stream_claim(f);
  else
    arm(f->claim_ev, f->o.claim_interval_ms);
  stream_read(f);
}

/* ---- acknowledgements (XACK for a stream, SADD to SEEN for a scan) ---- */

static void flush_acks(sk_feed *f) {
  while (f->acks.n > 0 && !f->free_pending) {
    int stream = f->o.kind == SK_FEED_STREAM;
    feed_req *q = req_new(f, stream ? REQ_ACK : REQ_SEEN);
    if (q == NULL) {
      arm(f->flush_ev, f->o.retry_ms);
      f->flush_armed = 1;
      return;
    }
    strvec chunk = {0};
    size_t n = f->acks.n < ACK_CHUNK ? f->acks.n : ACK_CHUNK;
    if (strvec_move(&chunk, &f->acks, n) != 0) {
      req_unlink(f, q);
      req_free(q);
      arm(f->flush_ev, f->o.retry_ms);
      f->flush_armed = 1;
      return;
    }
    const char *xack[] = {"XACK", f->stream_key, SK_FEED_GROUP};
    const char *sadd[] = {"SADD", f->seen_key};
    if (req_send_ids(f, q, stream ? 3 : 2, stream ? xack : sadd, &chunk) != 0) {
      /* Back to the queue, for a later try. */
      strvec_move(&f->acks, &chunk, chunk.n);
      strvec_clear(&chunk);
      arm(f->flush_ev, f->o.retry_ms);
      f->flush_armed = 1;
      return;
    }
    strvec_clear(&chunk);
  }
}

static void ack_done(sk_feed *f, feed_req *q, const sk_redis_result *res) {
  if (res->status != SK_REDIS_OK) {
    /* XACK and SADD are idempotent: send them again. */
    if (strvec_move(&f->acks, &q->ids, q->ids.n) == 0 && !f->flush_armed) {
      f->flush_armed = 1;
      arm(f->flush_ev, f->o.retry_ms);
    }
    return;
  }
  if (res->reply->type == REDIS_REPLY_ERROR)
    report(f, NULL, "%s on %s failed: %s", q->kind == REQ_ACK ? "XACK" : "SADD",
           q->kind == REQ_ACK ? f->stream_key : f->seen_key, res->reply->str);
  /* Done, or impossible for good (the group or the set is gone): forget them either way. */
  strset *set = q->kind == REQ_ACK ? &f->outstanding : &f->delivered;
  for (size_t i = 0; i < q->ids.n; i++)
    strset_del(set, q->ids.v[i]);
  if (q->kind == REQ_ACK)
    stream_read(f);
}

/* ---- scan ---- */

static void scan_retry(sk_feed *f, const char *what, const sk_redis_result *res) {
  report(f, NULL, "%s for the scan feed of %s failed: %s", what, f->table,
         res->status != SK_REDIS_OK              ? res->errstr
         : res->reply->type == REDIS_REPLY_ERROR ? res->reply->str
                                                 : "unexpected reply");
  if (f->scan == SC_SCAN || f->scan == SC_WAIT)
    f->scan = SC_SCAN;
  arm(f->scan_ev, f->o.retry_ms);
}

/* Sends the command of the current step. */
static void scan_step(sk_feed *f) {
  if (f->free_pending)
    return;
  feed_req *q = NULL;
  int rc = -1;
  if (f->scan == SC_MARKER) {
    const char *argv[] = {"SISMEMBER", f->seen_key, ""};
    if ((q = req_new(f, REQ_MARKER)) != NULL)
      rc = req_send(f, f->conn, q, -1, 3, argv);
  } else if (f->scan == SC_SCAN) {
    char count[16];
    snprintf(count, sizeof count, "%d", f->o.scan_count);
    const char *argv[] = {"SCAN",  f->cursor, "MATCH", f->match,
                          "COUNT", count,     "TYPE",  f->row_type};
    if ((q = req_new(f, REQ_SCAN)) != NULL)
      rc = req_send(f, f->conn, q, -1, 8, argv);
  } else if (f->scan == SC_MARK) {
    const char *argv[] = {"SADD", f->seen_key, ""};
    if ((q = req_new(f, REQ_MARK)) != NULL)
      rc = req_send(f, f->conn, q, -1, 3, argv);
  }
  if (rc != 0)
    arm(f->scan_ev, f->o.retry_ms);
}

/* A pass is over: wait for the next one, or start it at once when asked for meanwhile. */
static void pass_done(sk_feed *f) {
  f->passes++;
  f->scan = SC_WAIT;
  if (f->rescan) {
    f->rescan = 0;
    arm(f->scan_ev, 0);
  } else {
    arm(f->scan_ev, f->o.scan_interval_ms);
  }
}

/* Keyspace: a pass as soon as possible (notifications may have been missed). */
static void request_pass(sk_feed *f) {
  if (f->scan == SC_IDLE) {
    f->scan = SC_MARKER;
    scan_step(f);
  } else if (f->scan == SC_WAIT) {
    arm(f->scan_ev, 0);
  } else {
    f->rescan = 1;
  }
}

/* The ids of a SCAN reply are handled: on to the next cursor, or the pass is over. */
static void scan_next(sk_feed *f) {
  memcpy(f->cursor, f->next_cursor, sizeof f->cursor);
  if (strcmp(f->cursor, "0") != 0) {
    scan_step(f);
  } else if (f->first) {
    f->scan = SC_MARK;
    scan_step(f);
  } else {
    pass_done(f);
  }
}

static void scan_reply(sk_feed *f, const sk_redis_result *res) {
  const redisReply *reply = res->reply;
  if (res->status != SK_REDIS_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
      reply->element[0]->type != REDIS_REPLY_STRING ||
      reply->element[0]->len >= sizeof f->next_cursor ||
      reply->element[1]->type != REDIS_REPLY_ARRAY) {
    scan_retry(f, "SCAN", res);
    return;
  }
  memcpy(f->next_cursor, reply->element[0]->str, reply->element[0]->len + 1);
  size_t plen = strlen(f->key_prefix), slen = strlen(f->key_suffix);
  strvec ids = {0};
  const redisReply *keys = reply->element[1];
  for (size_t i = 0; i < keys->elements; i++) {
    const redisReply *k = keys->element[i];
    if (k->type != REDIS_REPLY_STRING || k->len <= plen + slen ||
        memcmp(k->str, f->key_prefix, plen) != 0 ||
        memcmp(k->str + k->len - slen, f->key_suffix, slen) != 0 ||
        memchr(k->str, '\0', k->len) != NULL)
      continue;
    if (strvec_push(&ids, k->str + plen, k->len - plen - slen) != 0) {
      strvec_clear(&ids);
      report(f, NULL, "scan feed of %s: out of memory", f->table);
      arm(f->scan_ev, f->o.retry_ms);
      return;
    }
    if (strset_has(&f->delivered, ids.v[ids.n - 1]))
      free(ids.v[--ids.n]); /* reported, not yet acknowledged */
  }
  if (ids.n == 0) {
    strvec_clear(&ids);
    scan_next(f);
    return;
  }
  int record = f->first && !f->o.backfill;
  const char *head[] = {record ? "SADD" : "SMISMEMBER", f->seen_key};
  feed_req *q = req_new(f, record ? REQ_RECORD : REQ_MISMEMBER);
  if (q == NULL || req_send_ids(f, q, 2, head, &ids) != 0)
    arm(f->scan_ev, f->o.retry_ms);
  strvec_clear(&ids);
}

static void mismember_reply(sk_feed *f, feed_req *q, const sk_redis_result *res) {
  const redisReply *reply = res->reply;
  if (res->status != SK_REDIS_OK || reply->type != REDIS_REPLY_ARRAY ||
      reply->elements != q->ids.n) {
    scan_retry(f, "SMISMEMBER", res);
    return;
  }
  for (size_t i = 0; i < q->ids.n && !f->free_pending; i++) {
    const char *id = q->ids.v[i];
    if (reply->element[i]->type != REDIS_REPLY_INTEGER || reply->element[i]->integer != 0)
      continue;
    int added = strset_add(&f->delivered, id);
    if (added <= 0)
      continue; /* reported already (a key twice in one SCAN), or out of memory: next pass */
    f->depth++;
    f->o.on_event(f, f->table, SK_FEED_INSERT, id, NULL, f->o.privdata);
    f->depth--;
  }
  scan_next(f);
}

/* ---- keyspace ---- */

/* Sends CONFIG GET notify-keyspace-events (then CONFIG SET when flags are missing, then a pass):
 * after every (re)subscription, since a restarted server may have lost the setting. */
static void config_start(sk_feed *f) {
  if (f->config_busy || f->free_pending)
    return;
  const char *argv[] = {"CONFIG", "GET", "notify-keyspace-events"};
  feed_req *q = req_new(f, REQ_CONFIG_GET);
  if (q == NULL || req_send(f, f->conn, q, -1, 3, argv) != 0) {
    request_pass(f);
    return;
  }
  f->config_busy = 1;
}

/* The flags this feed needs that current lacks ('n' is not part of 'A' and must be named). */
static void missing_flags(const sk_feed *f, const char *current, char *out) {
  char need[4];
  size_t n = 0, k = 0;
  need[n++] = 'K';
  need[n++] = 'n';
  if (f->o.updates && strchr(current, 'A') == NULL)
    need[n++] = strcmp(f->row_type, "hash") == 0 ? 'h' : '$';
  for (size_t i = 0; i < n; i++)
    if (strchr(current, need[i]) == NULL)
      out[k++] = need[i];
  out[k] = '\0';
}

static void config_reply(sk_feed *f, feed_req *q, const sk_redis_result *res) {
  f->config_busy = 0;
  const redisReply *reply = res->status == SK_REDIS_OK ? res->reply : NULL;
  int ok = reply != NULL &&
           (q->kind == REQ_CONFIG_SET ? reply->type == REDIS_REPLY_STATUS
                                      : reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                                            reply->element[1]->type == REDIS_REPLY_STRING);
  if (!ok) {
    report(f, NULL,
           "%s notify-keyspace-events failed (the keyspace feed of %s relies on its periodic "
           "scans meanwhile): %s",
           q->kind == REQ_CONFIG_SET ? "CONFIG SET" : "CONFIG GET", f->table,
           reply == NULL                      ? res->errstr
           : reply->type == REDIS_REPLY_ERROR ? reply->str
                                              : "unexpected reply");
    request_pass(f);
    return;
  }
  if (q->kind == REQ_CONFIG_GET) {
    const char *current = reply->element[1]->str;
    char missing[4];
    missing_flags(f, current, missing);
    if (missing[0] != '\0') {
      char *merged = concat(current, missing, strlen(missing));
      const char *argv[] = {"CONFIG", "SET", "notify-keyspace-events", merged};
      feed_req *set = merged != NULL ? req_new(f, REQ_CONFIG_SET) : NULL;
      if (set != NULL && req_send(f, f->conn, set, -1, 4, argv) == 0) {
        f->config_busy = 1;
        free(merged);
        return; /* the pass comes after the SET */
      }
      free(merged);
    }
  }
  request_pass(f);
}

/* A message on the subscriber connection: a (re)subscription, or a notification. */
static void on_push(sk_redis *r, const redisReply *msg, void *privdata) {
  sk_feed *f = privdata;
  (void)r;
  if (msg->type != REDIS_REPLY_ARRAY || msg->elements < 3 ||
      msg->element[0]->type != REDIS_REPLY_STRING)
    return;
  enter(f);
  const char *kind = msg->element[0]->str;
  if (strcmp(kind, "psubscribe") == 0) {
    config_start(f); /* and then a pass: notifications may have been missed */
  } else if (strcmp(kind, "pmessage") == 0 && msg->elements == 4 &&
             msg->element[2]->type == REDIS_REPLY_STRING &&
             msg->element[3]->type == REDIS_REPLY_STRING) {
    const redisReply *ch = msg->element[2], *ev = msg->element[3];
    size_t cplen = strlen(f->channel_prefix), plen = strlen(f->key_prefix),
           slen = strlen(f->key_suffix);
    char tag = 0;
    if (strcmp(ev->str, "new") == 0)
      tag = 'n';
    else if (f->o.updates &&
             strcmp(ev->str, strcmp(f->row_type, "hash") == 0 ? "hset" : "set") == 0)
      tag = 'u';
    if (tag != 0 && ch->len > cplen + plen + slen &&
        memcmp(ch->str, f->channel_prefix, cplen) == 0 &&
        memcmp(ch->str + cplen, f->key_prefix, plen) == 0 &&
        memcmp(ch->str + ch->len - slen, f->key_suffix, slen) == 0 &&
        memchr(ch->str, '\0', ch->len) == NULL) {
      size_t idlen = ch->len - cplen - plen - slen;
      char *tagged = malloc(idlen + 2);
      if (tagged != NULL) {
        tagged[0] = tag;
        memcpy(tagged + 1, ch->str + cplen + plen, idlen);
        tagged[idlen + 1] = '\0';
        if (strvec_push(&f->notified, tagged, idlen + 1) == 0 &&
            !evtimer_pending(f->notify_ev, NULL))
          arm(f->notify_ev, 0);
        free(tagged);
      }
    }
  }
  leave(f);
}

/* For each row key KEYS[2..]: whether its id ARGV[i-1] is in the SEEN set KEYS[1], and the key's
 * type (a "new" notification does not say it: a key matching the pattern may not be a row). */
static const char NOTIFIED_SCRIPT[] =
    "local out = {}\n"
    "for i = 2, #KEYS do\n"
    "  out[#out + 1] = redis.call('SISMEMBER', KEYS[1], ARGV[i - 1])\n"
    "  out[#out + 1] = redis.call('TYPE', KEYS[i]).ok\n"
    "end\n"
    "return out\n";

/* Sends NOTIFIED_SCRIPT for ids; on success q takes them, else q is freed and they stay. Returns
 * 0 or -1. */
static int eval_notified(sk_feed *f, feed_req *q, strvec *ids) {
  size_t n = ids->n, made = 0, plen = strlen(f->key_prefix), slen = strlen(f->key_suffix);
  const char **argv = malloc((4 + 2 * n) * sizeof *argv);
  char **keys = calloc(n + 1, sizeof *keys);
  char numkeys[24];
  int rc = -1;
  if (argv != NULL && keys != NULL) {
    snprintf(numkeys, sizeof numkeys, "%zu", n + 1);
    argv[0] = "EVAL";
    argv[1] = NOTIFIED_SCRIPT;
    argv[2] = numkeys;
    argv[3] = f->seen_key;
    for (; made < n; made++) {
      const char *id = ids->v[made];
      size_t idlen = strlen(id);
      if ((keys[made] = malloc(plen + idlen + slen + 1)) == NULL)
        break;
      memcpy(keys[made], f->key_prefix, plen);
      memcpy(keys[made] + plen, id, idlen);
      memcpy(keys[made] + plen + idlen, f->key_suffix, slen + 1);
      argv[4 + made] = keys[made];
      argv[4 + n + made] = id;
    }
  }
  if (made == n && argv != NULL && keys != NULL) {
    rc = req_send(f, f->conn, q, -1, (int)(4 + 2 * n), argv); /* copies the arguments */
  } else {
    req_unlink(f, q);
    req_free(q);
    report(f, NULL, "EVAL not sent: out of memory");
  }
  if (rc == 0) {
    q->ids = *ids;
    memset(ids, 0, sizeof *ids);
  }
  for (size_t i = 0; keys != NULL && i < made; i++)
    free(keys[i]);
  free(keys);
  free(argv);
  return rc;
}

/* Checks the ids notified since the last check, in one EVAL: an id not in SEEN whose key is a
 * row is an insert; a seen one only written, an update. Cost: O(notified), one command. */
static void notified_check(sk_feed *f) {
  strset news = {0}, asked = {0};
  strvec ids = {0};
  char *updates = malloc(f->notified.n);
  int oom = updates == NULL;
  for (size_t i = 0; i < f->notified.n && !oom; i++)
    if (f->notified.v[i][0] == 'n' && strset_add(&news, f->notified.v[i] + 1) < 0)
      oom = 1;
  for (size_t i = 0; i < f->notified.n && !oom; i++) {
    const char *id = f->notified.v[i] + 1;
    int added = strset_add(&asked, id);
    if (added < 0 || (added == 1 && strvec_push(&ids, id, strlen(id)) != 0)) {
      oom = 1;
    } else if (added == 1) {
      updates[ids.n - 1] = !strset_has(&news, id);
    }
  }
  strvec_clear(&f->notified);
  strset_clear(&news);
  strset_clear(&asked);
  if (oom) {
    free(updates);
    strvec_clear(&ids);
    report(f, NULL, "keyspace feed of %s: out of memory (the next pass catches up)", f->table);
    return;
  }
  feed_req *q = req_new(f, REQ_NOTIFIED);
  if (q != NULL) {
    q->updates = updates;
    updates = NULL;
    if (eval_notified(f, q, &ids) != 0)
      f->rescan = 1; /* the next pass catches up */
  }
  free(updates);
  strvec_clear(&ids);
}

static void notified_reply(sk_feed *f, feed_req *q, const sk_redis_result *res) {
  const redisReply *reply = res->reply;
  if (res->status != SK_REDIS_OK || reply->type != REDIS_REPLY_ARRAY ||
      reply->elements != 2 * q->ids.n) {
    report(f, NULL, "EVAL for the keyspace feed of %s failed: %s", f->table,
           res->status != SK_REDIS_OK         ? res->errstr
           : reply->type == REDIS_REPLY_ERROR ? reply->str
                                              : "unexpected reply");
    request_pass(f);
    return;
  }
  for (size_t i = 0; i < q->ids.n && !f->free_pending; i++) {
    const char *id = q->ids.v[i];
    const redisReply *sm = reply->element[2 * i], *type = reply->element[2 * i + 1];
    int seen = sm->type == REDIS_REPLY_INTEGER && sm->integer != 0;
    if (type->type != REDIS_REPLY_STRING || strcmp(type->str, f->row_type) != 0)
      continue; /* not a row (or deleted since) */
    sk_feed_op op;
    if (!seen) {
      if (strset_add(&f->delivered, id) <= 0)
        continue; /* its insert is reported and not yet acknowledged */
      op = SK_FEED_INSERT;
    } else if (q->updates[i] && !strset_has(&f->delivered, id)) {
      op = SK_FEED_UPDATE;
    } else {
      continue;
    }
    f->depth++;
    f->o.on_event(f, f->table, op, id, NULL, f->o.privdata);
    f->depth--;
  }
}

static void on_notify_timer(evutil_socket_t fd, short what, void *arg) {
  sk_feed *f = arg;
  (void)fd;
  (void)what;
  enter(f);
  notified_check(f);
  leave(f);
}

/* ---- callbacks from the connections and the timers ---- */

static void on_reply(sk_redis *r, const sk_redis_result *res, void *privdata) {
  feed_req *q = privdata;
  sk_feed *f = q->feed;
  (void)r;
  if (f == NULL) {
    req_free(q);
    return;
  }
  req_unlink(f, q);
  enter(f);
  const redisReply *reply = res->status == SK_REDIS_OK ? res->reply : NULL;
  switch (q->kind) {
  case REQ_GROUP:
    if (reply == NULL)
      f->need_group = 1;
    else if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "BUSYGROUP", 9) != 0)
      report(f, NULL, "XGROUP CREATE on %s failed: %s", f->stream_key, reply->str);
    break;
  case REQ_READ:
    read_done(f, res);
    break;
  case REQ_CLAIM:
    claim_done(f, res);
    break;
  case REQ_ACK:
  case REQ_SEEN:
    ack_done(f, q, res);
    break;
  case REQ_MARKER:
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
      scan_retry(f, "SISMEMBER", res);
    } else {
      f->first = reply->integer == 0;
      f->scan = SC_SCAN;
      strcpy(f->cursor, "0");
      scan_step(f);
    }
    break;
  case REQ_SCAN:
    scan_reply(f, res);
    break;
  case REQ_MISMEMBER:
    mismember_reply(f, q, res);
    break;
  case REQ_RECORD:
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER)
      scan_retry(f, "SADD", res);
    else
      scan_next(f);
    break;
  case REQ_MARK:
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
      scan_retry(f, "SADD", res);
    } else {
      f->first = 0;
      pass_done(f);
    }
    break;
  case REQ_CONFIG_GET:
  case REQ_CONFIG_SET:
    config_reply(f, q, res);
    break;
  case REQ_NOTIFIED:
    notified_reply(f, q, res);
    break;
  }
  req_free(q);
  leave(f);
}

static void on_read_timer(evutil_socket_t fd, short what, void *arg) {
  sk_feed *f = arg;
  (void)fd;
  (void)what;
  enter(f);
  stream_read(f);
  leave(f);
}

static void on_claim_timer(evutil_socket_t fd, short what, void *arg) {
  sk_feed *f = arg;
  (void)fd;
  (void)what;
  enter(f);
  stream_claim(f);
  leave(f);
}

static void on_flush_timer(evutil_socket_t fd, short what, void *arg) {
  sk_feed *f = arg;
  (void)fd;
  (void)what;
  enter(f);
  f->flush_armed = 0;
  flush_acks(f);
  leave(f);
}

static void on_scan_timer(evutil_socket_t fd, short what, void *arg) {
  sk_feed *f = arg;
  (void)fd;
  (void)what;
  enter(f);
  if (f->scan == SC_WAIT) {
    f->scan = SC_SCAN;
    strcpy(f->cursor, "0");
  }
  scan_step(f);
  leave(f);
}

/* ---- the API ---- */

void sk_feed_options_init(sk_feed_options *o) {
  memset(o, 0, sizeof *o);
  o->kind = SK_FEED_STREAM;
}

static int dflt(int v, int d) { return v > 0 ? v : d; }

/* Splits the row key pattern around its one {id}; builds the SCAN glob. Returns 0, or -1 with
 * a message. */
static int parse_key_pattern(sk_feed *f, const char *pattern, char *err, size_t errlen) {
  const char *at = strstr(pattern, "{id}");
  if (at == NULL || strstr(at + 4, "{id}") != NULL) {
    snprintf(err, errlen,
             "table %s: key pattern '%s' must contain {id} exactly once (e.g. '%s:{id}')", f->table,
             pattern, f->table);
    return -1;
  }
  size_t plen = (size_t)(at - pattern), slen = strlen(at + 4);
  f->key_prefix = concat("", pattern, plen);
  f->key_suffix = concat("", at + 4, slen);
  f->match = malloc(2 * (plen + slen) + 2);
  if (f->key_prefix == NULL || f->key_suffix == NULL || f->match == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  size_t n = glob_escape(f->match, pattern, plen);
  f->match[n++] = '*';
  n += glob_escape(f->match + n, at + 4, slen);
  f->match[n] = '\0';
  return 0;
}

sk_feed *sk_feed_new(struct event_base *base, sk_redis *conn, const char *url,
                     const sk_redis_options *redis_options, const sk_feed_options *o, char *err,
                     size_t errlen) {
  char dummy[1];
  if (err == NULL || errlen == 0) {
    err = dummy;
    errlen = sizeof dummy;
  }
  err[0] = '\0';
  if (base == NULL || conn == NULL || o == NULL) {
    snprintf(err, errlen, "sk_feed_new: base, conn and options are required");
    return NULL;
  }
  if (o->table == NULL || o->table[0] == '\0' || o->on_event == NULL) {
    snprintf(err, errlen, "feed: a table and an on_event callback are required");
    return NULL;
  }
  if (o->kind != SK_FEED_STREAM && o->kind != SK_FEED_SCAN && o->kind != SK_FEED_KEYSPACE) {
    snprintf(err, errlen, "table %s: unknown feed kind %d", o->table, (int)o->kind);
    return NULL;
  }
  if (o->kind == SK_FEED_STREAM && (o->consumer == NULL || o->consumer[0] == '\0' || url == NULL)) {
    snprintf(err, errlen, "table %s: a stream feed needs a consumer name and a Redis URL",
             o->table);
    return NULL;
  }
  if (o->kind == SK_FEED_KEYSPACE && url == NULL) {
    snprintf(err, errlen, "table %s: a keyspace feed needs a Redis URL", o->table);
    return NULL;
  }
  if (o->row_type != NULL && strcmp(o->row_type, "hash") != 0 &&
      strcmp(o->row_type, "string") != 0) {
    snprintf(err, errlen, "table %s: row type '%s' is neither hash nor string", o->table,
             o->row_type);
    return NULL;
  }

  sk_feed *f = calloc(1, sizeof *f);
  if (f == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  f->base = base;
  f->conn = conn;
  f->o = *o;
  f->o.batch = dflt(o->batch, 100);
  f->o.block_ms = dflt(o->block_ms, 30000);
  f->o.max_pending = dflt(o->max_pending, SK_FEED_DEFAULT_MAX_PENDING);
  f->o.claim_min_idle_ms = dflt(o->claim_min_idle_ms, 60000);
  f->o.claim_interval_ms = dflt(o->claim_interval_ms, 120000);
  f->o.scan_interval_ms = dflt(o->scan_interval_ms, o->kind == SK_FEED_KEYSPACE ? 600000 : 60000);
  f->o.scan_count = dflt(o->scan_count, 1000);
  f->o.retry_ms = dflt(o->retry_ms, 1000);
  f->table = strdup(o->table);
  f->prefix = strdup(o->prefix != NULL ? o->prefix : SK_KEY_PREFIX_DEFAULT);
  f->consumer = strdup(o->consumer != NULL ? o->consumer : "");
  f->row_type = strdup(o->row_type != NULL ? o->row_type : "hash");
  f->read_ev = evtimer_new(base, on_read_timer, f);
  f->claim_ev = evtimer_new(base, on_claim_timer, f);
  f->flush_ev = evtimer_new(base, on_flush_timer, f);
  f->scan_ev = evtimer_new(base, on_scan_timer, f);
  f->notify_ev = evtimer_new(base, on_notify_timer, f);
  if (f->table == NULL || f->prefix == NULL || f->consumer == NULL || f->row_type == NULL ||
      f->read_ev == NULL || f->claim_ev == NULL || f->flush_ev == NULL || f->scan_ev == NULL ||
      f->notify_ev == NULL)
    goto oom;
  f->o.table = f->table;
  f->o.prefix = f->prefix;
  f->o.consumer = f->consumer;
  f->o.row_type = f->row_type;
  f->o.key = NULL;
  f->stream_key = skene_key(f->prefix, SK_KEY_FEED, f->table);
  f->seen_key = skene_key(f->prefix, SK_KEY_SEEN, f->table);
  if (f->stream_key == NULL || f->seen_key == NULL)
    goto oom;

  if (o->kind != SK_FEED_SCAN) {
    sk_redis_options ro;
    if (redis_options != NULL)
      ro = *redis_options;
    else
      sk_redis_options_init(&ro);
    f->rconn = sk_redis_new(base, url, &ro);
    if (f->rconn == NULL)
      goto oom;
    if (sk_redis_has_failed(f->rconn)) {
      snprintf(err, errlen, "table %s: %s", f->table, sk_redis_errstr(f->rconn));
      f->closing = 1;
      destroy(f);
      return NULL;
    }
  }
  if (o->kind == SK_FEED_STREAM) {
    f->phase = PH_HISTORY;
    strcpy(f->history_from, "0");
    strcpy(f->claim_cursor, "0-0");
    f->need_group = 1;
    arm(f->read_ev, 0);
    arm(f->claim_ev, 0);
  } else {
    char *pattern = o->key != NULL ? strdup(o->key) : concat(f->table, ":{id}", 5);
    if (pattern == NULL)
      goto oom;
    int rc = parse_key_pattern(f, pattern, err, errlen);
    free(pattern);
    if (rc != 0) {
      f->closing = 1;
      destroy(f);
      return NULL;
    }
    if (o->kind == SK_FEED_SCAN) {
      f->scan = SC_MARKER;
      arm(f->scan_ev, 0);
    } else if (keyspace_subscribe(f, url, err, errlen) != 0) {
      f->closing = 1;
      destroy(f);
      return NULL;
    }
  }
  return f;

oom:
  snprintf(err, errlen, "out of memory");
  f->closing = 1;
  destroy(f);
  return NULL;
}

/* Keyspace: PSUBSCRIBE __keyspace@<db>__:<row glob> on our connection. The confirmation, on every
 * (re)connection, starts the configuration and a reconciliation pass (on_push). Returns 0, or -1
 * with a message. */
static int keyspace_subscribe(sk_feed *f, const char *url, char *err, size_t errlen) {
  sk_redis_url *u = sk_redis_url_parse(url, NULL, err, errlen);
  if (u == NULL)
    return -1;
  char buf[48];
  snprintf(buf, sizeof buf, "__keyspace@%d__:", u->db > 0 ? u->db : 0);
  sk_redis_url_free(u);
  f->channel_prefix = strdup(buf);
  char *pattern = f->channel_prefix != NULL ? concat(buf, f->match, strlen(f->match)) : NULL;
  const char *patterns[] = {pattern};
  int rc = pattern != NULL ? sk_redis_psubscribe(f->rconn, 1, patterns, on_push, f) : -1;
  free(pattern);
  if (rc != 0)
    snprintf(err, errlen, "table %s: cannot subscribe: %s", f->table,
             f->channel_prefix != NULL ? sk_redis_errstr(f->rconn) : "out of memory");
  return rc;
}

/* Frees f: detaches the requests in flight, closes our own connection. */
static void destroy(sk_feed *f) {
  f->closing = 1;
  for (feed_req *q = f->reqs, *next; q != NULL; q = next) {
    next = q->next;
    q->feed = NULL;
    q->prev = q->next = NULL;
  }
  f->reqs = NULL;
  sk_redis_free(f->rconn); /* calls back what is in flight there: detached above */
  struct event *evs[] = {f->read_ev, f->claim_ev, f->flush_ev, f->scan_ev, f->notify_ev};
  for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
    if (evs[i] != NULL)
      event_free(evs[i]);
  strset_clear(&f->outstanding);
  strset_clear(&f->delivered);
  strvec_clear(&f->acks);
  strvec_clear(&f->notified);
  free(f->channel_prefix);
  free(f->table);
  free(f->prefix);
  free(f->consumer);
  free(f->row_type);
  free(f->stream_key);
  free(f->seen_key);
  free(f->key_prefix);
  free(f->key_suffix);
  free(f->match);
  free(f);
}

void sk_feed_free(sk_feed *f) {
  if (f == NULL || f->closing)
    return;
  if (f->depth > 0) {
    f->free_pending = 1;
    return;
  }
  destroy(f);
}

int sk_feed_ack(sk_feed *f, const char *entry_id) {
  if (f == NULL || f->closing || f->free_pending || f->o.kind != SK_FEED_STREAM ||
      entry_id == NULL || !is_entry_id(entry_id, strlen(entry_id)))
    return -1;
  queue_ack(f, entry_id);
  return 0;
}

int sk_feed_ack_row(sk_feed *f, const char *row_id) {
  if (f == NULL || f->closing || f->free_pending || f->o.kind == SK_FEED_STREAM || row_id == NULL ||
      row_id[0] == '\0')
    return -1;
  if (strvec_push(&f->acks, row_id, strlen(row_id)) != 0)
    return -1;
  if (!f->flush_armed) {
    f->flush_armed = 1;
    arm(f->flush_ev, 0);
  }
  return 0;
}

size_t sk_feed_outstanding(const sk_feed *f) {
  return f->o.kind == SK_FEED_STREAM ? f->outstanding.n : f->delivered.n;
}

unsigned sk_feed_passes(const sk_feed *f) { return f->passes; }

uint64_t sk_feed_commands_sent(const sk_feed *f) { return f->rconn != NULL ? sk_redis_commands_sent(f->rconn) : 0; }

void sk_feed_claim_soon(sk_feed *f, int delay_ms) {
  if (f->o.kind != SK_FEED_STREAM || f->claim_count > 0 || f->free_pending)
    return;
  struct timeval left;
  if (evtimer_pending(f->claim_ev, &left)) {
    struct timeval now;
    evutil_gettimeofday(&now, NULL);
    long long ms = (long long)(left.tv_sec - now.tv_sec) * 1000 + (left.tv_usec - now.tv_usec) / 1000;
    if (ms <= delay_ms)
      return;
  }
  arm(f->claim_ev, delay_ms);
}
