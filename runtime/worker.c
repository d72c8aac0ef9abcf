/* worker.c: `skene-vm run`'s engine (worker.h). Read worker.h first: what is durable when, and why.
 *
 * The pieces, in the order an activation meets them:
 *   feed event  -> evt (acknowledged when its refs drop to 0 and nothing failed)
 *               -> begin: a new instance, durable and leased in one script -> act -> run
 *               -> the row: index_add per query shape of its table -> waiters -> wake (claim)
 *               -> WAITEV sets: SMEMBERS -> claim with the event
 *   act         an instance in memory, leased: run() executes it until it must wait;
 *               every "not yet" of the runtime ops below is one Redis command (or a send) whose
 *               answer runs it again; a suspension parks it (snapshot + timer + wait set + lease
 *               back, one script) and it leaves memory
 *   due timer   the shared timer set, read when its earliest timer is due -> claim -> run
 * An act never leaves memory with a command in flight for it; a failed store command drops it (its
 * last durable state and its lease-end timer bring it back).
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* strsep */

#include "worker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "feed.h"
#include "keys.h"
#include "opcodes.h"
#include "sbuf.h"
#include "store.h"
#include "vm.h"

#define MAX_ROWS 8      /* rows one instance reads between two suspensions */
#define MAX_QVALS 64
#define DUE_BATCH 200

/* ---- small helpers ---- */

static void sb_key(sk_sbuf *b, const char *k) {
  sk_sb_put(b, ",\"", 2);
  sk_sb_puts(b, k);
  sk_sb_put(b, "\":", 2);
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- types ---- */

typedef struct version {
  uint64_t hash;
  sk_module *m;
  sk_vm *vm;
} version;

typedef struct shape_info {
  uint32_t table;
  uint32_t ncols;
  char **cols;
} shape_info;

typedef struct evkind {
  uint32_t table, kind, subject_col; /* subject_col: string index or SK_NONE */
  uint32_t loops[8], nloops;         /* the loops with a WAITEV on it (each has a box) */
} evkind;

typedef struct feedctx {
  struct sk_worker *w;
  uint32_t table;
  sk_feed *feed;
} feedctx;

/* A feed event being processed: acknowledged when refs drops to 0, unless something failed. */
typedef struct evt {
  struct sk_worker *w;
  feedctx *fc;          /* NULL: a backfilled row (nothing to acknowledge) */
  char *entry;          /* stream entry id, or NULL */
  sk_string *row;       /* the row id */
  uint32_t table, kind;
  int refs;
  int failed;
  /* a failed event is processed again after a backoff (Redis restarting, a lease elsewhere): its
     entry stays unacknowledged meanwhile */
  int attempts;
  struct event *retry_ev;
  struct evt *rnext, *rprev;
} evt;

typedef struct row {
  uint32_t table;
  sk_string *id;
  int loaded;
  uint32_t n;
  sk_string **k, **v;
} row;

enum pend { P_NONE = 0, P_ROW, P_QUERY, P_REDIS, P_EFFECT, P_UNBORN };

typedef struct act {
  struct sk_worker *w;
  uint32_t id;
  uint32_t gen;             /* bumped when the slot is reused: stale answers are ignored */
  version *ver;
  sk_inst *inst;            /* NULL while claiming */
  const char *loop_name;    /* the current module's name for the loop (claim: from the key) */
  char *loop_buf;
  sk_string *subject;
  char *ikey;
  size_t ikey_len;
  uint64_t khash;
  struct act *hnext;
  int pend;
  int64_t leased_at;        /* wall ms the lease was last taken or renewed (act_new: about then) */
  int recheck;              /* woken while in memory: look again before leaving */
  int from_due;             /* claimed from the timer set */
  int unborn;               /* a new instance run in memory up to its first wait, not yet in
                               Redis: it may read, never act (see begin) */
  evt *born_ev;             /* the event that starts it, while unborn */
  int q_ready, q_parked;
  uint32_t q_count;
  sk_string *q_first;
  uint32_t q_shape, q_n, q_limit;
  sk_string *q_vals[MAX_QVALS];
  int r_ready;
  sk_io r_io;
  int64_t clock;            /* the clock a re-run after a check sees (0: the real one) */
  row rows[MAX_ROWS];
  uint32_t nrows;
  char *wait_key;           /* the index wait set of the last AWAIT (left when the instance ends) */
  size_t wait_len;
  char *leave_key;          /* the event wait set it was woken from */
  size_t leave_len;
  evt *ev;                  /* the event that woke it from a WAITEV: released once durable */
  /* woken from an index's wait set: the index counted by the claim (claim_check), the answer
     to the AWAIT it stands at when that AWAIT's wait key is pre_key */
  char *pre_key;
  size_t pre_len;
  int pre_ready;
  long long pre_rows;
  sk_string *pre_first;
  /* an event wake being claimed */
  uint32_t ev_table, ev_kind;
  sk_string *ev_row;
} act;

struct sk_worker {
  struct event_base *base;
  sk_worker_options o;
  char *url, *prefix, *worker_id;
  double scale;
  uint8_t *skb;
  size_t skb_len;
  version **vers;           /* each allocated alone: acts point at theirs while more are added */
  uint32_t nvers;
  const sk_module *m;       /* the current version's module (vers[0]) */
  shape_info *shapes;
  evkind *evkinds;
  uint32_t nevkinds;
  sk_runtime_ops ops;
  sk_redis *r;
  sk_store *store;
  feedctx *feeds;
  uint32_t nfeeds;
  struct {
    act **v;
    uint32_t n, cap;
  } acts;
  struct {
    uint32_t *v;
    uint32_t n, cap;
  } free_ids;
  act **map;                /* inst key -> act, chained, power-of-two buckets */
  uint32_t map_cap, nactive;
  act *running;
  evt *retrying;            /* failed events waiting for their next attempt */
  struct event *due_ev, *drain_ev, *renew_ev;
  int64_t due_at;           /* wall ms of the next due look (INT64_MAX: none scheduled) */
  int due_inflight, due_again;
  uint64_t wire_closed;     /* commands sent by feeds closed since (drain) */
  int64_t dead_seen_at;     /* wall ms a dead worker's instance was last found (0: never) */
  uint32_t gen;
  int started, draining;
  void (*drain_done)(void *);
  void *drain_ud;
  uint64_t rng;
  FILE *log;
  sk_worker_stats stats;
};

static void run(act *a);
static void handle(act *a, sk_exec_status st, sk_exec_result *r);
static void claim(sk_worker *w, const char *ikey, size_t ikey_len, evt *ev, uint32_t ev_table,
                  uint32_t ev_kind, const sk_string *ev_row, const char *idx_key, size_t idx_len);
static void schedule_due(sk_worker *w, int64_t at_wall);
static void check_drained(sk_worker *w);

/* ---- time: the loops' clock, the wall clock times the scale ---- */

/* The loops' clock: the wall clock, or, under a time scale, the anchor (the wall time the first
   worker on this Redis started with that scale) plus the wall time since then times the scale, so
   that every worker computes the same and `{{now}}` starts from today. */
static int64_t vnow(const sk_worker *w) {
  int64_t a = w->o.clock_anchor_ms;
  return a + (int64_t)((double)(wall_ms() - a) * w->scale);
}
static int64_t v2wall(const sk_worker *w, int64_t v) {
  int64_t a = w->o.clock_anchor_ms;
  return v == SK_TIME_NONE ? INT64_MAX : a + (int64_t)((double)(v - a) / w->scale);
}
static int64_t lease_end_v(const sk_worker *w) {
  return vnow(w) + (int64_t)((double)w->o.lease_ms * w->scale);
}

/* ---- logs: one JSON object per line ---- */

static void log_begin(sk_worker *w, sk_sbuf *b, const char *level, const char *event) {
  char ts[40];
  int64_t now = wall_ms();
  time_t sec = (time_t)(now / 1000);
  struct tm tm;
  gmtime_r(&sec, &tm);
  size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts + n, sizeof ts - n, ".%03dZ", (int)(now % 1000));
  sk_sb_puts(b, "{\"ts\":\"");
  sk_sb_puts(b, ts);
  sk_sb_puts(b, "\",\"level\":\"");
  sk_sb_puts(b, level);
  sk_sb_puts(b, "\",\"worker\":");
  sk_sb_json(b, w->worker_id, strlen(w->worker_id));
  sk_sb_puts(b, ",\"event\":\"");
  sk_sb_puts(b, event);
  sk_sb_puts(b, "\"");
}

static void log_end(sk_worker *w, sk_sbuf *b) {
  sk_sb_put(b, "}\n", 2);
  if (b->p) {
    fwrite(b->p, 1, b->len, w->log);
    fflush(w->log);
  }
  free(b->p);
}

static void log_msg(sk_worker *w, const char *level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void log_msg(sk_worker *w, const char *level, const char *event, const char *fmt, ...) {
  sk_sbuf b = {0};
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  log_begin(w, &b, level, event);
  sb_key(&b, "message");
  sk_sb_json(&b, msg, strlen(msg));
  log_end(w, &b);
}

void sk_worker_log(sk_worker *w, const char *level, const char *event, const char *fmt, ...) {
  sk_sbuf b = {0};
  char members[2048] = "";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(members, sizeof members, fmt, ap);
    va_end(ap);
  }
  log_begin(w, &b, level, event);
  sk_sb_puts(&b, members);
  log_end(w, &b);
}

static const char *outcome_name(uint32_t o) {
  static const char *const names[] = {"completed", "timed_out", "skipped", "failed"};
  return o < 4 ? names[o] : "unknown";
}

static void op_trace(void *ud, const sk_trace *t) {
  sk_worker *w = ud;
  if (w->running && w->running->unborn) return; /* it may never be born: its life is traced then */
  sk_sbuf b = {0};
  log_begin(w, &b, t->kind == SK_TR_ACTION_FAILED ? "error" : "info", sk_trace_name(t->kind));
  sb_key(&b, "loop");
  const char *ln = sk_str(t->m, t->m->loops[t->loop].name_str);
  sk_sb_json(&b, ln, strlen(ln));
  sb_key(&b, "subject");
  if (t->subject) sk_sb_json(&b, t->subject->data, t->subject->len);
  else sk_sb_puts(&b, "null");
  if (t->kind != SK_TR_INSTANCE_START && t->kind != SK_TR_INSTANCE_END) {
    char n[24];
    snprintf(n, sizeof n, "%u", t->step + 1);
    sb_key(&b, "step");
    sk_sb_puts(&b, n);
  }
  if (t->kind == SK_TR_CONDITION_MET) {
    char n[24];
    snprintf(n, sizeof n, "%u", t->count);
    sb_key(&b, "rows");
    sk_sb_puts(&b, n);
  }
  if (t->call) {
    char n[24];
    snprintf(n, sizeof n, "%u", t->call->attempt);
    sb_key(&b, "attempt");
    sk_sb_puts(&b, n);
    sb_key(&b, "idempotency_key");
    sk_sb_json(&b, t->call->idempotency_key, strlen(t->call->idempotency_key));
    const sk_string *to = sk_call_field(t->call, "to");
    if (to) {
      sb_key(&b, "to");
      sk_sb_json(&b, to->data, to->len);
    }
  }
  if (t->result) {
    sb_key(&b, "id");
    sk_sb_json(&b, t->result->data, t->result->len);
  }
  if (t->kind == SK_TR_ACTION_RETRY) {
    char n[24];
    snprintf(n, sizeof n, "%" PRId64, t->delay_ms);
    sb_key(&b, "delay_ms");
    sk_sb_puts(&b, n);
  }
  if (t->kind == SK_TR_INSTANCE_END) {
    sb_key(&b, "outcome");
    sk_sb_json(&b, outcome_name(t->outcome), strlen(outcome_name(t->outcome)));
  }
  if (t->reason) {
    sb_key(&b, "reason");
    sk_sb_json(&b, t->reason, strlen(t->reason));
  }
  log_end(w, &b);
}

static void trace_inst(act *a, sk_trace_kind k, uint32_t step, const char *reason, int64_t delay,
                       uint32_t outcome) {
  sk_trace t = {k, a->ver->m, a->inst->loop, a->inst->regs[0].u.s, vnow(a->w), step, NULL, reason,
                delay, outcome, 0, NULL};
  op_trace(a->w, &t);
}

/* ---- modules ---- */

/* The keys of a row: the table's pattern with {id} replaced (new buffer). */
static char *row_key(const sk_module *m, uint32_t table, const sk_string *id, size_t *len) {
  const char *pat = sk_str(m, m->tables[table].key_str);
  const char *at = strstr(pat, "{id}");
  size_t pre = at ? (size_t)(at - pat) : strlen(pat);
  size_t post = at ? strlen(at + 4) : 0;
  char *k = malloc(pre + id->len + post + 1);
  if (!k) return NULL;
  memcpy(k, pat, pre);
  memcpy(k + pre, id->data, id->len);
  if (at) memcpy(k + pre + id->len, at + 4, post);
  *len = pre + id->len + post;
  k[*len] = 0;
  return k;
}

static version *version_add(sk_worker *w, sk_module *m) {
  version **vs = realloc(w->vers, (w->nvers + 1) * sizeof *vs);
  if (!vs) return NULL;
  w->vers = vs;
  version *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  v->hash = m->hash;
  v->m = m;
  v->vm = sk_vm_new(m, &w->ops, w);
  if (!v->vm) {
    free(v);
    return NULL;
  }
  w->vers[w->nvers++] = v;
  return v;
}

static version *version_find(sk_worker *w, uint64_t hash) {
  for (uint32_t i = 0; i < w->nvers; i++)
    if (w->vers[i]->hash == hash) return w->vers[i];
  return NULL;
}

/* ---- acts ---- */

static uint64_t key_hash(const char *k, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
  return h;
}

static act *map_find(sk_worker *w, const char *k, size_t n) {
  if (!w->map_cap) return NULL;
  uint64_t h = key_hash(k, n);
  for (act *a = w->map[h & (w->map_cap - 1)]; a; a = a->hnext)
    if (a->khash == h && a->ikey_len == n && memcmp(a->ikey, k, n) == 0) return a;
  return NULL;
}

static int map_insert(sk_worker *w, act *a) {
  if (w->nactive + 1 > w->map_cap / 2) {
    uint32_t nc = w->map_cap ? w->map_cap * 2 : 256;
    act **nm = calloc(nc, sizeof *nm);
    if (!nm) return -1;
    for (uint32_t i = 0; i < w->map_cap; i++) {
      act *x = w->map[i];
      while (x) {
        act *next = x->hnext;
        x->hnext = nm[x->khash & (nc - 1)];
        nm[x->khash & (nc - 1)] = x;
        x = next;
      }
    }
    free(w->map);
    w->map = nm;
    w->map_cap = nc;
  }
  a->khash = key_hash(a->ikey, a->ikey_len);
  a->hnext = w->map[a->khash & (w->map_cap - 1)];
  w->map[a->khash & (w->map_cap - 1)] = a;
  w->nactive++;
  return 0;
}

static void map_remove(sk_worker *w, act *a) {
  act **p = &w->map[a->khash & (w->map_cap - 1)];
  while (*p && *p != a) p = &(*p)->hnext;
  if (*p) {
    *p = a->hnext;
    w->nactive--;
  }
}

static act *act_new(sk_worker *w, const char *ikey, size_t ikey_len) {
  act *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  a->w = w;
  a->gen = ++w->gen;
  a->leased_at = wall_ms();
  a->ikey = malloc(ikey_len + 1);
  if (!a->ikey) {
    free(a);
    return NULL;
  }
  memcpy(a->ikey, ikey, ikey_len);
  a->ikey[ikey_len] = 0;
  a->ikey_len = ikey_len;
  if (w->free_ids.n) {
    a->id = w->free_ids.v[--w->free_ids.n];
  } else {
    if (w->acts.n == w->acts.cap) {
      uint32_t nc = w->acts.cap ? w->acts.cap * 2 : 256;
      act **v = realloc(w->acts.v, nc * sizeof *v);
      uint32_t *f = realloc(w->free_ids.v, nc * sizeof *f);
      if (v) w->acts.v = v;
      if (f) w->free_ids.v = f;
      if (!v || !f) {
        free(a->ikey);
        free(a);
        return NULL;
      }
      w->acts.cap = w->free_ids.cap = nc;
    }
    a->id = w->acts.n++;
  }
  w->acts.v[a->id] = a;
  if (map_insert(w, a) != 0) {
    w->acts.v[a->id] = NULL;
    w->free_ids.v[w->free_ids.n++] = a->id;
    free(a->ikey);
    free(a);
    return NULL;
  }
  return a;
}

static void evt_release(evt *e);

static void rows_clear(act *a) {
  for (uint32_t i = 0; i < a->nrows; i++) {
    row *r = &a->rows[i];
    sk_str_unref(r->id);
    for (uint32_t k = 0; k < r->n; k++) {
      sk_str_unref(r->k[k]);
      sk_str_unref(r->v[k]);
    }
    free(r->k);
    free(r->v);
  }
  a->nrows = 0;
}

static void q_clear(act *a) {
  for (uint32_t i = 0; i < a->q_n; i++) sk_str_unref(a->q_vals[i]);
  a->q_n = 0;
  sk_str_unref(a->q_first);
  a->q_first = NULL;
  a->q_ready = 0;
}

/* The act leaves memory. Its durable state is whatever Redis holds. */
static void act_drop(act *a) {
  sk_worker *w = a->w;
  int recheck = a->recheck;
  char *ikey = a->ikey;
  size_t ikey_len = a->ikey_len;
  map_remove(w, a);
  w->acts.v[a->id] = NULL;
  w->free_ids.v[w->free_ids.n++] = a->id;
  if (a->ev) evt_release(a->ev);
  sk_snapshot_free(a->inst);
  rows_clear(a);
  q_clear(a);
  sk_str_unref(a->r_io.result);
  sk_str_unref(a->subject);
  sk_str_unref(a->ev_row);
  free(a->loop_buf);
  free(a->wait_key);
  free(a->leave_key);
  free(a->pre_key);
  sk_str_unref(a->pre_first);
  free(a);
  if (recheck && !w->draining) claim(w, ikey, ikey_len, NULL, 0, 0, NULL, NULL, 0);
  free(ikey);
  check_drained(w);
}

/* A request's handle on an act: the act may have been dropped and its slot reused. */
typedef struct areq {
  sk_worker *w;
  uint32_t id, gen;
  uint32_t slot;
  int64_t wake_at; /* park, check, begin_check: the wake time it records */
} areq;

static areq *areq_new(act *a) {
  areq *q = malloc(sizeof *q);
  if (q) {
    q->w = a->w;
    q->id = a->id;
    q->gen = a->gen;
    q->slot = 0;
    q->wake_at = SK_TIME_NONE;
  }
  return q;
}

static act *areq_act(areq *q) {
  sk_worker *w = q->w;
  act *a = q->id < w->acts.n ? w->acts.v[q->id] : NULL;
  return a && a->gen == q->gen ? a : NULL;
}

/* ---- a later step's events: wait sets and boxes (keys.h WAIT "ev:...", EVBOX) ---- */

#define EVBOX_TTL_MS (7LL * 24 * 3600 * 1000)

/* "table:kind:subject" into a new buffer. */
static char *event_part(const char *table, uint32_t kind, const sk_string *subject, size_t *len) {
  char head[160];
  int hn = snprintf(head, sizeof head, "%s:%s:", table, kind == SK_EVENT_INSERT ? "insert" : "update");
  if (hn < 0 || (size_t)hn >= sizeof head) return NULL;
  *len = (size_t)hn + subject->len;
  char *p = malloc(*len + 1);
  if (!p) return NULL;
  memcpy(p, head, (size_t)hn);
  memcpy(p + hn, subject->data, subject->len);
  p[*len] = 0;
  return p;
}

/* wait:ev:table:kind:subject (new buffer). */
static char *event_wait_key(const sk_worker *w, const char *table, uint32_t kind, const sk_string *subject,
                            size_t *len) {
  size_t plen = 0;
  char *part = event_part(table, kind, subject, &plen);
  if (!part) return NULL;
  char *ev = malloc(plen + 4);
  char *key = NULL;
  if (ev) {
    memcpy(ev, "ev:", 3);
    memcpy(ev + 3, part, plen);
    size_t elen = plen + 3;
    const char *parts[1] = {ev};
    key = sk_key_format(w->prefix, SK_KEY_WAIT, parts, &elen, 1, len);
  }
  free(ev);
  free(part);
  return key;
}

/* evbox:loop:table:kind:subject (new buffer). */
static char *event_box_key(const sk_worker *w, const char *loop, const char *table, uint32_t kind,
                           const sk_string *subject, size_t *len) {
  size_t plen = 0;
  char *part = event_part(table, kind, subject, &plen);
  if (!part) return NULL;
  const char *parts[2] = {loop, part};
  size_t lens[2] = {strlen(loop), plen};
  char *key = sk_key_format(w->prefix, SK_KEY_EVBOX, parts, lens, 2, len);
  free(part);
  return key;
}

/* ---- parking and ending ---- */

/* A wake time recorded in Redis: look at the timer set then. Only once the script that recorded
   it has answered (the store now keeps the wire in order, EVAL and batches included, but a look
   scheduled from the answer needs nothing of the order at all). */
static void wake_recorded(act *a, int64_t wake_at) {
  if (wake_at != SK_TIME_NONE) schedule_due(a->w, v2wall(a->w, wake_at));
}

static void on_parked(const sk_store_result *res, void *privdata) {
  areq *q = privdata;
  act *a = areq_act(q);
  int64_t wake_at = q->wake_at;
  free(q);
  if (!a) return;
  if (res->ok) {
    a->w->stats.parked++;
    wake_recorded(a, wake_at);
  }
  else log_msg(a->w, "error", "store.error", "%s", res->errstr);
  act_drop(a);
}

static void park(act *a, int64_t wake_at, const char *wait_key, size_t wait_len) {
  sk_worker *w = a->w;
  uint8_t *snap = NULL;
  size_t snap_len = 0;
  areq *q = areq_new(a);
  if (!q || sk_snapshot_encode(a->ver->m, a->inst, &snap, &snap_len) != 0) {
    free(q);
    act_drop(a);
    return;
  }
  q->wake_at = wake_at;
  const sk_module *m = a->ver->m;
  const char *ln = sk_str(m, m->loops[a->inst->loop].name_str);
  const char *leave[2];
  size_t leave_lens[2], nleave = 0;
  if (a->leave_key) {
    leave[nleave] = a->leave_key;
    leave_lens[nleave++] = a->leave_len;
  }
  /* an index wait set it was woken from, unless it still waits there (at an AWAIT) */
  if (a->wait_key && SK_GET_OP(m->code[m->loops[a->inst->loop].code_first + a->inst->pc].insn) != SK_OP_AWAIT) {
    leave[nleave] = a->wait_key;
    leave_lens[nleave++] = a->wait_len;
  }
  w->stats.commands++;
  if (sk_store_park(w->store, ln, a->subject->data, a->subject->len, snap, snap_len, wake_at,
                    wait_key, wait_len, leave, leave_lens, nleave, w->worker_id, on_parked,
                    q) != 0) {
    free(q);
    act_drop(a);
  }
  free(snap);
}

static void on_parked_event(const sk_store_result *res, void *privdata) {
  areq *q = privdata;
  act *a = areq_act(q);
  int64_t wake_at = q->wake_at;
  free(q);
  if (!a) return;
  sk_worker *w = a->w;
  if (!res->ok) {
    log_msg(w, "error", "store.error", "%s", res->errstr);
    act_drop(a);
    return;
  }
  if (res->n == 1 && res->str) { /* the event came before the wait: take it and go on */
    const sk_module *m = a->ver->m;
    uint32_t insn = m->code[m->loops[a->inst->loop].code_first + a->inst->pc].insn;
    const sk_event_rec *er = &m->events[m->loops[a->inst->loop].ev_first + SK_GETARG_Bx(insn)];
    sk_string *rid = sk_str_new(res->str, res->len);
    sk_exec_event(a->ver->vm, a->inst, 1, er->table, rid);
    sk_str_unref(rid);
    run(a);
    return;
  }
  w->stats.parked++;
  wake_recorded(a, wake_at);
  act_drop(a);
}

/* A WAITEV: take an event from the loop's box if one came first, else wait for one (one script). */
static void park_event(act *a, int64_t wake_at) {
  sk_worker *w = a->w;
  const sk_module *m = a->ver->m;
  const sk_loop_rec *l = &m->loops[a->inst->loop];
  uint32_t insn = m->code[l->code_first + a->inst->pc].insn;
  const sk_event_rec *er = &m->events[l->ev_first + SK_GETARG_Bx(insn)];
  const char *tname = sk_str(m, m->tables[er->table].name_str), *ln = sk_str(m, l->name_str);
  size_t wlen = 0, blen = 0;
  char *wait = event_wait_key(w, tname, er->kind, a->subject, &wlen);
  char *box = event_box_key(w, ln, tname, er->kind, a->subject, &blen);
  uint8_t *snap = NULL;
  size_t snap_len = 0;
  areq *q = areq_new(a);
  const char *leave[2];
  size_t leave_lens[2], nleave = 0;
  if (a->leave_key && !(a->leave_len == wlen && wait && memcmp(a->leave_key, wait, wlen) == 0)) {
    leave[nleave] = a->leave_key;
    leave_lens[nleave++] = a->leave_len;
  }
  if (a->wait_key) {
    leave[nleave] = a->wait_key;
    leave_lens[nleave++] = a->wait_len;
  }
  int rc = -1;
  if (wait && box && q && sk_snapshot_encode(m, a->inst, &snap, &snap_len) == 0) {
    q->wake_at = wake_at;
    w->stats.commands++;
    rc = sk_store_park_event(w->store, ln, a->subject->data, a->subject->len, snap, snap_len, wake_at, wait,
                             wlen, box, blen, leave, leave_lens, nleave, w->worker_id, on_parked_event, q);
  }
  free(snap);
  free(wait);
  free(box);
  if (rc != 0) {
    free(q);
    act_drop(a);
  }
}

static void on_finished(const sk_store_result *res, void *privdata) {
  areq *q = privdata;
  act *a = areq_act(q);
  free(q);
  if (!a) return;
  if (res->ok) a->w->stats.ended++;
  else log_msg(a->w, "error", "store.error", "%s", res->errstr);
  act_drop(a);
}

static void finish(act *a, uint32_t outcome, const char *reason) {
  sk_worker *w = a->w;
  trace_inst(a, SK_TR_INSTANCE_END, 0, reason, 0, outcome);
  const char *keys[2];
  size_t lens[2], n = 0;
  if (a->wait_key) {
    keys[n] = a->wait_key;
    lens[n++] = a->wait_len;
  }
  if (a->leave_key) {
    keys[n] = a->leave_key;
    lens[n++] = a->leave_len;
  }
  areq *q = areq_new(a);
  const char *ln = sk_str(a->ver->m, a->ver->m->loops[a->inst->loop].name_str);
  w->stats.commands++;
  if (!q || sk_store_finish(w->store, ln, a->subject->data, a->subject->len, keys, lens, n,
                            w->worker_id, on_finished, q) != 0) {
    free(q);
    act_drop(a);
  }
}

static void on_ignored(sk_redis *r, const sk_redis_result *res, void *privdata) {
  (void)r;
  (void)res;
  (void)privdata;
}

static void on_dlq(sk_redis *r, const sk_redis_result *res, void *privdata) {
  (void)r;
  sk_worker *w = privdata;
  if (res->status != SK_REDIS_OK || res->reply->type == REDIS_REPLY_ERROR)
    log_msg(w, "error", "dlq.error", "could not add a dead letter: %s",
            res->status != SK_REDIS_OK ? res->errstr : res->reply->str);
}

/* A permanent failure: a dead letter (with the snapshot, to re-drive it), then the end. */
static void fail(act *a, const char *reason) {
  sk_worker *w = a->w;
  uint32_t step = sk_step_of_pc(a->ver->m, a->inst);
  trace_inst(a, SK_TR_ACTION_FAILED, step, reason, 0, 0);
  w->stats.failed++;
  uint8_t *snap = NULL;
  size_t snap_len = 0;
  uint32_t attempts = a->inst->attempts;
  a->inst->attempts = 0;
  int enc = sk_snapshot_encode(a->ver->m, a->inst, &snap, &snap_len);
  a->inst->attempts = attempts;
  size_t klen = 0;
  char *dlq = sk_key_format(w->prefix, SK_KEY_DLQ, NULL, NULL, 0, &klen);
  char sstep[16], ts[24];
  snprintf(sstep, sizeof sstep, "%u", step + 1);
  snprintf(ts, sizeof ts, "%" PRId64, wall_ms());
  const char *ln = sk_str(a->ver->m, a->ver->m->loops[a->inst->loop].name_str);
  const char *argv[] = {"XADD", dlq, "*", "loop", ln, "subject", a->subject->data, "step", sstep,
                        "reason", reason, "worker", w->worker_id, "at", ts, "snapshot",
                        enc == 0 ? (const char *)snap : ""};
  size_t lens[17];
  for (int i = 0; i < 17; i++) lens[i] = argv[i] ? strlen(argv[i]) : 0;
  lens[6] = a->subject->len;
  lens[16] = enc == 0 ? snap_len : 0;
  if (dlq) {
    w->stats.commands++;
    if (sk_redis_command(w->r, 17, argv, lens, on_dlq, w) != 0)
      log_msg(w, "error", "dlq.error", "could not add a dead letter: %s", sk_redis_errstr(w->r));
  }
  free(dlq);
  free(snap);
  finish(a, SK_OUTCOME_FAILED, reason);
}

/* ---- conditions on indexes ---- */

static void on_checked(const sk_store_result *res, void *privdata) {
  areq *q = privdata;
  act *a = areq_act(q);
  int parking = (int)q->slot;
  int64_t wake_at = q->wake_at;
  free(q);
  if (!a) return;
  a->pend = P_NONE;
  if (!res->ok) {
    log_msg(a->w, "error", "store.error", "%s", res->errstr);
    act_drop(a);
    return;
  }
  a->q_ready = 1;
  a->q_count = (uint32_t)res->n;
  a->q_first = res->str ? sk_str_new(res->str, res->len) : NULL;
  a->q_parked = parking && !res->held;
  if (a->q_parked) wake_recorded(a, wake_at);
  run(a);
}

/* An index of module m: shape with values (the shape's columns, split into colbuf). 0, or -1 when
   the values do not match the shape. */
typedef struct qix {
  char colbuf[1024];
  const char *cols[MAX_QVALS], *vals[MAX_QVALS];
  size_t vlens[MAX_QVALS];
  sk_store_index ix;
} qix;

static int make_qix(const sk_module *m, uint32_t shape, sk_string *const *values, uint32_t n, qix *q) {
  const sk_shape_rec *sh = &m->shapes[shape];
  size_t ncols = 0;
  snprintf(q->colbuf, sizeof q->colbuf, "%s", sk_str(m, sh->cols_str));
  for (char *s = q->colbuf, *tok; ncols < MAX_QVALS && (tok = strsep(&s, ",")) != NULL;) q->cols[ncols++] = tok;
  if (ncols != n) return -1;
  for (size_t i = 0; i < ncols; i++) {
    q->vals[i] = values[i]->data;
    q->vlens[i] = values[i]->len;
  }
  q->ix = (sk_store_index){sk_str(m, m->tables[sh->table].name_str), q->cols, q->vals, q->vlens, ncols};
  return 0;
}

/* The instance stopped at a CHECK or an AWAIT whose index count the VM asked for: count it, and for
 * an AWAIT whose deadline is ahead, wait in the same script (no lost wake-up). */
static void issue_check(act *a) {
  sk_worker *w = a->w;
  const sk_module *m = a->ver->m;
  const sk_loop_rec *lp = &m->loops[a->inst->loop];
  uint32_t insn = m->code[lp->code_first + a->inst->pc].insn;
  const sk_cond_rec *cr = &m->conds[lp->cond_first + SK_GETARG_Bx(insn)];
  qix qx;
  if (make_qix(m, cr->shape, a->q_vals, a->q_n, &qx) != 0) {
    fail(a, "internal: a condition's values do not match its index");
    return;
  }
  sk_store_index ix = qx.ix;
  areq *q = areq_new(a);
  if (!q) {
    act_drop(a);
    return;
  }
  int is_await = SK_GET_OP(insn) == SK_OP_AWAIT;
  int64_t now = vnow(w), deadline = SK_TIME_NONE;
  if (is_await) {
    const sk_val *d = &a->inst->regs[SK_GETARG_A(insn)];
    if (d->tag == SK_VAL_INT) deadline = d->u.i;
    free(a->wait_key);
    a->wait_key = sk_store_index_key(w->store, &ix, SK_KEY_WAIT, &a->wait_len);
  }
  int rc;
  w->stats.commands++;
  if (is_await && now < deadline) {
    uint8_t *snap = NULL;
    size_t snap_len = 0;
    uint8_t flags = a->inst->flags;
    a->inst->flags |= SK_INST_F_WAIT_ANNOUNCED; /* as it will be when it waits */
    int enc = sk_snapshot_encode(m, a->inst, &snap, &snap_len);
    a->inst->flags = flags;
    if (enc != 0) {
      free(q);
      act_drop(a);
      return;
    }
    q->slot = 1;
    a->clock = now; /* the re-run decides with the time the wait was recorded for */
    rc = sk_store_check_or_park(w->store, &ix, sk_str(m, lp->name_str), a->subject->data,
                                a->subject->len, cr->min_rows, a->q_limit, snap, snap_len,
                                deadline, w->worker_id, on_checked, q);
    q->wake_at = deadline;
    free(snap);
  } else {
    rc = sk_store_peek(w->store, &ix, cr->min_rows, a->q_limit, on_checked, q);
  }
  if (rc != 0) {
    free(q);
    log_msg(w, "error", "store.error", "%s", sk_store_errstr(w->store));
    act_drop(a);
    return;
  }
  a->pend = P_QUERY;
}

/* ---- the runtime the VM sees ---- */

static int64_t op_now(void *ud) {
  sk_worker *w = ud;
  if (w->running && w->running->clock) return w->running->clock;
  return vnow(w);
}

static void on_row(sk_redis *r, const sk_redis_result *res, void *privdata) {
  (void)r;
  areq *q = privdata;
  act *a = areq_act(q);
  uint32_t slot = q->slot;
  free(q);
  if (!a) return;
  sk_worker *w = a->w;
  a->pend = P_NONE;
  row *rw = &a->rows[slot];
  if (res->status != SK_REDIS_OK) {
    log_msg(w, "error", "redis.error", "reading a row: %s", res->errstr);
    act_drop(a);
    return;
  }
  const redisReply *x = res->reply;
  const sk_module *m = a->ver->m;
  const char *tname = sk_str(m, m->tables[rw->table].name_str);
  if (x->type == REDIS_REPLY_ERROR) {
    if (strncmp(x->str, "WRONGTYPE", 9) == 0)
      log_msg(w, "error", "row.error",
              "row %.*s of table %s is not a %s: set tables.%s.format to '%s' in the config",
              (int)rw->id->len, rw->id->data, tname,
              m->tables[rw->table].format == SK_FORMAT_JSON ? "string (JSON)" : "hash", tname,
              m->tables[rw->table].format == SK_FORMAT_JSON ? "hash" : "json");
    else { /* LOADING, BUSY, OOM...: Redis cannot answer now; the instance comes back from its
              last state when its lease ends, and reads the row again */
      log_msg(w, "error", "redis.error", "reading row %.*s of table %s: %s", (int)rw->id->len,
              rw->id->data, tname, x->str);
      act_drop(a);
      return;
    }
  } else if (x->type == REDIS_REPLY_ARRAY && x->elements % 2 == 0) {
    rw->n = (uint32_t)(x->elements / 2);
    rw->k = calloc(rw->n + 1, sizeof *rw->k);
    rw->v = calloc(rw->n + 1, sizeof *rw->v);
    if (!rw->k || !rw->v) rw->n = 0;
    for (uint32_t i = 0; i < rw->n; i++) {
      rw->k[i] = sk_str_new(x->element[2 * i]->str, x->element[2 * i]->len);
      rw->v[i] = sk_str_new(x->element[2 * i + 1]->str, x->element[2 * i + 1]->len);
    }
  } else if (x->type == REDIS_REPLY_STRING) {
    json_error_t je;
    json_t *o = json_loadb(x->str, x->len, 0, &je);
    if (!json_is_object(o)) {
      log_msg(w, "error", "row.error", "row %.*s of table %s is not a JSON object: %s",
              (int)rw->id->len, rw->id->data, tname, o ? "another JSON value" : je.text);
    } else {
      size_t n = json_object_size(o);
      rw->k = calloc(n + 1, sizeof *rw->k);
      rw->v = calloc(n + 1, sizeof *rw->v);
      const char *key;
      json_t *val;
      if (rw->k && rw->v) {
        json_object_foreach(o, key, val) {
          rw->k[rw->n] = sk_str_from(key);
          if (json_is_string(val)) {
            rw->v[rw->n] = sk_str_new(json_string_value(val), json_string_length(val));
          } else {
            char *t = json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT);
            rw->v[rw->n] = sk_str_from(t ? t : "");
            free(t);
          }
          rw->n++;
        }
      }
    }
    json_decref(o);
  }
  rw->loaded = 1;
  run(a);
}

static sk_string *op_row_field(void *ud, uint32_t table, const sk_string *id, const char *field) {
  sk_worker *w = ud;
  act *a = w->running;
  if (!a || !id) return NULL;
  for (uint32_t i = 0; i < a->nrows; i++) {
    row *rw = &a->rows[i];
    if (rw->table != table || !sk_str_eq(rw->id, id)) continue;
    if (!rw->loaded) return SK_PENDING;
    for (uint32_t k = 0; k < rw->n; k++)
      if (rw->k[k] && strcmp(rw->k[k]->data, field) == 0) return sk_str_ref(rw->v[k]);
    return NULL;
  }
  if (a->nrows == MAX_ROWS) return NULL;
  const sk_module *m = a->ver->m;
  size_t klen = 0;
  char *key = row_key(m, table, id, &klen);
  areq *q = areq_new(a);
  if (!key || !q) {
    free(key);
    free(q);
    return NULL;
  }
  row *rw = &a->rows[a->nrows];
  memset(rw, 0, sizeof *rw);
  rw->table = table;
  rw->id = sk_str_ref((sk_string *)id);
  q->slot = a->nrows++;
  int json = m->tables[table].format == SK_FORMAT_JSON;
  const char *argv[2] = {json ? "GET" : "HGETALL", key};
  size_t lens[2] = {json ? 3 : 7, klen};
  w->stats.commands++;
  int rc = sk_redis_command(w->r, 2, argv, lens, on_row, q);
  free(key);
  if (rc != 0) {
    free(q);
    rw->loaded = 1; /* read as missing; the render fails and says which value */
    return NULL;
  }
  a->pend = P_ROW;
  return SK_PENDING;
}

static uint32_t op_query(void *ud, uint32_t shape, sk_string *const *values, uint32_t n,
                         uint32_t limit, sk_string **first) {
  sk_worker *w = ud;
  act *a = w->running;
  *first = NULL;
  if (!a) return 0;
  if (a->q_ready) {
    uint32_t c = a->q_count;
    *first = a->q_first;
    a->q_first = NULL;
    q_clear(a);
    return c;
  }
  if (a->pre_ready) { /* the claim counted the index this instance was woken from */
    qix qx;
    size_t klen = 0;
    char *key = make_qix(a->ver->m, shape, values, n, &qx) == 0
                    ? sk_store_index_key(w->store, &qx.ix, SK_KEY_WAIT, &klen)
                    : NULL;
    a->pre_ready = 0;
    if (key && klen == a->pre_len && memcmp(key, a->pre_key, klen) == 0) {
      free(key);
      free(a->wait_key); /* it stays in this wait set until it moves on (park or finish) */
      a->wait_key = a->pre_key;
      a->wait_len = a->pre_len;
      a->pre_key = NULL;
      *first = a->pre_first;
      a->pre_first = NULL;
      long long c = a->pre_rows;
      if (limit > 0 && c > limit) c = limit;
      return (uint32_t)c;
    }
    free(key);
  }
  q_clear(a);
  a->q_shape = shape;
  a->q_limit = limit;
  for (uint32_t i = 0; i < n && i < MAX_QVALS; i++) a->q_vals[a->q_n++] = sk_str_ref(values[i]);
  a->pend = P_QUERY; /* run() sends the check once the instance stands at its instruction */
  return SK_QUERY_PENDING;
}

typedef struct rreq {
  areq q;
  int is_effect;
} rreq;

static void reply_to_io(const sk_redis_result *res, sk_io *io, const char *what) {
  memset(io, 0, sizeof *io);
  if (res->status != SK_REDIS_OK) {
    io->transient = 1;
    snprintf(io->reason, sizeof io->reason, "redis: %s", res->errstr);
    return;
  }
  const redisReply *x = res->reply;
  char num[32];
  switch (x->type) {
  case REDIS_REPLY_ERROR:
    snprintf(io->reason, sizeof io->reason, "redis: %s: %s", what, x->str);
    return; /* an error reply is permanent: the command is wrong for the data */
  case REDIS_REPLY_INTEGER:
    snprintf(num, sizeof num, "%lld", x->integer);
    io->result = sk_str_from(num);
    break;
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
    io->result = sk_str_new(x->str, x->len);
    break;
  case REDIS_REPLY_ARRAY:
    snprintf(num, sizeof num, "%zu", x->elements);
    io->result = sk_str_from(num);
    break;
  default:
    break; /* nil */
  }
  io->ok = 1;
}

static void on_redis(sk_redis *r, const sk_redis_result *res, void *privdata) {
  (void)r;
  rreq *q = privdata;
  act *a = areq_act(&q->q);
  int is_effect = q->is_effect;
  free(q);
  if (!a) return;
  a->pend = P_NONE;
  sk_io io;
  reply_to_io(res, &io, is_effect ? "action" : "condition");
  if (!is_effect) {
    a->r_io = io;
    a->r_ready = 1;
    run(a);
    return;
  }
  sk_exec_result er;
  int ok = sk_exec_effect_done(a->ver->vm, a->inst, &io, &er);
  sk_str_unref(io.result);
  if (ok) {
    run(a);
    return;
  }
  handle(a, er.status, &er); /* as run() handles a failed effect */
}

static void op_redis(void *ud, sk_string *const *argv, uint32_t argc, int is_effect, sk_io *out) {
  sk_worker *w = ud;
  act *a = w->running;
  memset(out, 0, sizeof *out);
  if (!a) {
    snprintf(out->reason, sizeof out->reason, "redis: no instance");
    return;
  }
  if (a->unborn) {
    a->pend = P_UNBORN;
    out->pending = 1;
    return;
  }
  if (!is_effect && a->r_ready) {
    *out = a->r_io;
    memset(&a->r_io, 0, sizeof a->r_io);
    a->r_ready = 0;
    return;
  }
  if (w->o.faults && sk_faults_take(w->o.faults, "redis", out)) return;
  const char *av[MAX_QVALS];
  size_t lens[MAX_QVALS];
  uint32_t n = argc < MAX_QVALS ? argc : MAX_QVALS;
  for (uint32_t i = 0; i < n; i++) {
    av[i] = argv[i]->data;
    lens[i] = argv[i]->len;
  }
  rreq *q = malloc(sizeof *q);
  if (!q || n == 0) {
    free(q);
    out->transient = n != 0;
    snprintf(out->reason, sizeof out->reason, n ? "redis: out of memory" : "redis: empty command");
    return;
  }
  q->q.w = w;
  q->q.id = a->id;
  q->q.gen = a->gen;
  q->is_effect = is_effect;
  w->stats.commands++;
  if (sk_redis_command(w->r, (int)n, av, lens, on_redis, q) != 0) {
    free(q);
    out->transient = 1;
    snprintf(out->reason, sizeof out->reason, "redis: %s", sk_redis_errstr(w->r));
    return;
  }
  a->pend = P_REDIS;
  out->pending = 1;
}

static void on_sent(const sk_io *io, void *privdata) {
  areq *q = privdata;
  act *a = areq_act(q);
  free(q);
  if (!a) return;
  if (io->ok && io->reason[0]) log_msg(a->w, "warn", "action.note", "instance %s: %s", a->ikey, io->reason);
  a->pend = P_NONE;
  sk_exec_result er;
  if (sk_exec_effect_done(a->ver->vm, a->inst, io, &er)) {
    run(a);
    return;
  }
  handle(a, er.status, &er);
}

static void op_effect(void *ud, const sk_effect_call *call, sk_io *out) {
  sk_worker *w = ud;
  act *a = w->running;
  memset(out, 0, sizeof *out);
  sk_sender *s = call->effect->kind == SK_EFFECT_EMAIL ? w->o.email : w->o.webhook;
  if (!a || !s) {
    snprintf(out->reason, sizeof out->reason, "no %s sender is configured",
             call->effect->kind == SK_EFFECT_EMAIL ? "email" : "webhook");
    return;
  }
  if (a && a->unborn) { /* not durable yet: it must not act; begin() starts it the plain way */
    a->pend = P_UNBORN;
    out->pending = 1;
    return;
  }
  const char *provider = call->effect->kind == SK_EFFECT_EMAIL ? sk_provider_name(call->effect->provider) : "webhook";
  if (w->o.faults && sk_faults_take(w->o.faults, provider, out)) return;
  areq *q = areq_new(a);
  if (!q) {
    out->transient = 1;
    snprintf(out->reason, sizeof out->reason, "out of memory");
    return;
  }
  if (sk_sender_send(s, call, on_sent, q, out) != 0) {
    free(q);
    return;
  }
  a->pend = P_EFFECT;
  out->pending = 1;
}

/* ---- running ---- */

/* An instance taken from the timer set stops again before its own wake time: the timer was the end
   of another worker's lease, so that worker died. Its unacknowledged stream entries (first
   projects, sign-ups) are then claimed as soon as they may be, not at the next claim interval. */
static void dead_worker_seen(sk_worker *w) {
  int64_t now = wall_ms();
  int idle = w->o.claim_idle_ms > 0 ? w->o.claim_idle_ms : 60000;
  if (w->dead_seen_at && now - w->dead_seen_at < idle) return;
  w->dead_seen_at = now;
  log_msg(w, "info", "worker.dead_seen", "an instance came back through the end of a lease (a worker stopped "
          "without recording it); unacknowledged stream entries are claimed within %d ms", idle);
  for (uint32_t i = 0; i < w->nfeeds; i++)
    if (w->feeds[i].feed) sk_feed_claim_soon(w->feeds[i].feed, idle);
}

/* Acts on what sk_exec (or a completed effect) said about a. */
static void unborn_stop(act *a, sk_exec_status st);
static void park_event(act *a, int64_t wake_at);

static void handle(act *a, sk_exec_status st, sk_exec_result *r) {
  sk_worker *w = a->w;
  const sk_loop_rec *l = &a->ver->m->loops[a->inst->loop];
  if (a->unborn) {
    unborn_stop(a, st);
    return;
  }
  if (a->from_due && ((st == SK_EXEC_AWAIT && r->key) || st == SK_EXEC_SLEEP || st == SK_EXEC_WAITEV) &&
      r->wake_at != SK_TIME_NONE && r->wake_at > vnow(w) + (int64_t)(1000 * w->scale)) {
    a->from_due = 0;
    dead_worker_seen(w);
  }
  switch (st) {
  case SK_EXEC_END:
    finish(a, r->outcome, NULL);
    return;
  case SK_EXEC_SLEEP:
    park(a, r->wake_at, NULL, 0);
    return;
  case SK_EXEC_AWAIT:
    if (a->q_parked) { /* the check recorded the wait (and gave the lease back) */
      a->q_parked = 0;
      w->stats.parked++;
      act_drop(a);
      return;
    }
    park(a, r->wake_at, NULL, 0); /* a polled condition: the timer is its wake-up */
    return;
  case SK_EXEC_WAITEV:
    park_event(a, r->wake_at);
    return;
  case SK_EXEC_IO:
    if (a->pend == P_QUERY) issue_check(a);
    return; /* the answer runs it again */
  case SK_EXEC_RETRY: {
    uint32_t step = sk_step_of_pc(a->ver->m, a->inst);
    a->inst->attempts++;
    if (a->inst->attempts > l->retries) {
      char reason[400];
      snprintf(reason, sizeof reason, "retries exhausted after %u attempts: %s", a->inst->attempts,
               r->reason);
      fail(a, reason);
      return;
    }
    int64_t delay = sk_retry_delay(l, a->inst->attempts, &w->rng);
    if (r->retry_after_ms > delay) delay = r->retry_after_ms;
    trace_inst(a, SK_TR_ACTION_RETRY, step, r->reason, delay, 0);
    park(a, vnow(w) + delay, NULL, 0);
    return;
  }
  case SK_EXEC_FAIL:
    fail(a, r->reason);
    return;
  }
}

static void run(act *a) {
  sk_worker *w = a->w;
  sk_exec_result r;
  w->running = a;
  a->inst->id = a->id;
  sk_exec_status st = sk_exec(a->ver->vm, a->inst, &r);
  w->running = NULL;
  a->clock = 0;
  handle(a, st, &r);
}

/* ---- starting, claiming, waking ---- */

typedef struct breq {
  sk_worker *w;
  evt *e;
  sk_inst *inst;
  uint32_t loop;
} breq;

static void evt_free(evt *e) {
  if (e->retry_ev) event_free(e->retry_ev);
  free(e->entry);
  sk_str_unref(e->row);
  free(e);
}

static void evt_process(evt *e);
static void evt_begin(evt *e);

static void evt_retry_fire(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  evt *e = arg;
  sk_worker *w = e->w;
  if (e->rprev) e->rprev->rnext = e->rnext;
  else w->retrying = e->rnext;
  if (e->rnext) e->rnext->rprev = e->rprev;
  e->rnext = e->rprev = NULL;
  if (w->draining || !e->fc->feed) { /* not acknowledged: the next start has it */
    evt_free(e);
    check_drained(w);
    return;
  }
  e->refs = 1;
  e->failed = 0;
  evt_process(e);
}

static void evt_release(evt *e) {
  if (--e->refs > 0) return;
  sk_worker *w = e->w;
  if (e->failed && e->fc && e->fc->feed && !w->draining) {
    /* again after 250 ms, doubling to 30 s: the entry stays pending until then */
    int64_t d = e->attempts < 7 ? 250LL << e->attempts : 30000;
    e->attempts++;
    if (!e->retry_ev) e->retry_ev = evtimer_new(w->base, evt_retry_fire, e);
    if (e->retry_ev) {
      struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
      evtimer_add(e->retry_ev, &tv);
      e->rnext = w->retrying;
      if (w->retrying) w->retrying->rprev = e;
      w->retrying = e;
      return;
    }
  }
  if (e->fc && e->fc->feed && !e->failed) {
    if (e->entry) sk_feed_ack(e->fc->feed, e->entry);
    else sk_feed_ack_row(e->fc->feed, e->row->data);
  }
  evt_free(e);
  check_drained(w);
}

static void on_begun(const sk_store_result *res, void *privdata) {
  breq *b = privdata;
  sk_worker *w = b->w;
  evt *e = b->e;
  if (!res->ok) {
    log_msg(w, "error", "store.error", "%s", res->errstr);
    e->failed = 1;
  }
  if (res->ok && res->n == 1 && !w->draining) {
    w->stats.started++;
    size_t klen = 0;
    const char *ln = sk_str(w->m, w->m->loops[b->loop].name_str);
    char *ikey = sk_store_inst_key(w->store, ln, e->row->data, e->row->len, &klen);
    act *a = ikey && !map_find(w, ikey, klen) ? act_new(w, ikey, klen) : NULL;
    free(ikey);
    if (a) {
      a->ver = w->vers[0];
      a->inst = b->inst;
      a->subject = sk_str_ref(e->row);
      b->inst = NULL;
      trace_inst(a, SK_TR_INSTANCE_START, 0, NULL, 0, 0);
      run(a);
    }
  }
  sk_snapshot_free(b->inst);
  free(b);
  evt_release(e);
}

static void begin_plain(sk_worker *w, evt *e, uint32_t li) {
  const sk_loop_rec *l = &w->m->loops[li];
  sk_inst *in = calloc(1, sizeof *in + l->nregs * sizeof(sk_val));
  breq *b = malloc(sizeof *b);
  uint8_t *snap = NULL;
  size_t snap_len = 0;
  if (!in || !b) goto oom;
  in->loop = li;
  in->nregs = (uint16_t)l->nregs;
  in->heap_pos = UINT32_MAX;
  in->regs[0] = sk_val_str(sk_str_ref(e->row));
  in->regs[1] = sk_val_row(e->table, sk_str_ref(e->row));
  if (sk_snapshot_encode(w->m, in, &snap, &snap_len) != 0) goto oom;
  b->w = w;
  b->e = e;
  b->inst = in;
  b->loop = li;
  e->refs++;
  w->stats.commands++;
  if (sk_store_begin(w->store, sk_str(w->m, l->name_str), e->row->data, e->row->len, snap,
                     snap_len, lease_end_v(w), w->worker_id, w->o.lease_ms, on_begun, b) != 0) {
    e->refs--;
    goto oom;
  }
  free(snap);
  return;
oom:
  e->failed = 1;
  sk_snapshot_free(in);
  free(b);
  free(snap);
}

/* ---- new instances, the short way ----
 * A loop whose code starts with its first condition (DEADLINE, then AWAIT on an index) is run in
 * memory before it exists in Redis, "unborn", up to that AWAIT (reading rows is allowed, acting is
 * not), and then started, recorded at the AWAIT and checked in one script (sk_store_begin_check):
 * one command instead of two for every sign-up. Anything else on the way (an effect, a Redis
 * command, a sleep, an end) abandons the unborn run, which had no effect and traced nothing, and
 * starts the instance the plain way (begin_plain). */

static int starts_with_await(const sk_module *m, uint32_t li) {
  const sk_loop_rec *l = &m->loops[li];
  uint32_t pc = 0;
  while (pc < l->code_count && SK_GET_OP(m->code[l->code_first + pc].insn) == SK_OP_DEADLINE) pc++;
  if (pc >= l->code_count) return 0;
  uint32_t insn = m->code[l->code_first + pc].insn;
  return SK_GET_OP(insn) == SK_OP_AWAIT && m->conds[l->cond_first + SK_GETARG_Bx(insn)].kind == SK_COND_QUERY;
}

static void on_begin_checked(const sk_store_result *res, void *privdata) {
  areq *q = privdata;
  act *a = areq_act(q);
  int64_t wake_at = q->wake_at;
  free(q);
  if (!a) return;
  sk_worker *w = a->w;
  evt *e = a->born_ev;
  a->born_ev = NULL;
  a->pend = P_NONE;
  if (!res->ok || res->n != 1) {
    if (!res->ok) {
      log_msg(w, "error", "store.error", "%s", res->errstr);
      e->failed = 1;
    }
    a->unborn = 0;
    evt_release(e);
    act_drop(a);
    return;
  }
  a->unborn = 0;
  w->stats.started++;
  trace_inst(a, SK_TR_INSTANCE_START, 0, NULL, 0, 0);
  a->q_ready = 1;
  a->q_count = (uint32_t)res->rows;
  a->q_first = res->str ? sk_str_new(res->str, res->len) : NULL;
  a->q_parked = !res->held;
  if (a->q_parked) wake_recorded(a, wake_at);
  evt_release(e);
  run(a);
}

/* Where an unborn run stopped: a row to read (go on), its AWAIT (begin_check), or anything else
   (start it the plain way). */
static void unborn_stop(act *a, sk_exec_status st) {
  sk_worker *w = a->w;
  const sk_module *m = a->ver->m;
  const sk_loop_rec *lp = &m->loops[a->inst->loop];
  uint32_t insn = m->code[lp->code_first + a->inst->pc].insn;
  if (st == SK_EXEC_IO && a->pend == P_ROW) return;
  if (st == SK_EXEC_IO && a->pend == P_QUERY && SK_GET_OP(insn) == SK_OP_AWAIT) {
    const sk_val *d = &a->inst->regs[SK_GETARG_A(insn)];
    int64_t now = vnow(w), deadline = d->tag == SK_VAL_INT ? d->u.i : SK_TIME_NONE;
    const sk_cond_rec *cr = &m->conds[lp->cond_first + SK_GETARG_Bx(insn)];
    qix qx;
    uint8_t *snap = NULL;
    size_t snap_len = 0;
    areq *q = NULL;
    if (now < deadline && make_qix(m, cr->shape, a->q_vals, a->q_n, &qx) == 0 && (q = areq_new(a)) != NULL) {
      uint8_t flags = a->inst->flags;
      a->inst->flags |= SK_INST_F_WAIT_ANNOUNCED;
      int enc = sk_snapshot_encode(m, a->inst, &snap, &snap_len);
      a->inst->flags = flags;
      free(a->wait_key);
      a->wait_key = sk_store_index_key(w->store, &qx.ix, SK_KEY_WAIT, &a->wait_len);
      w->stats.commands++;
      if (enc == 0 && sk_store_begin_check(w->store, &qx.ix, sk_str(m, lp->name_str), a->subject->data,
                                           a->subject->len, snap, snap_len, cr->min_rows, a->q_limit,
                                           w->worker_id, w->o.lease_ms, lease_end_v(w), deadline,
                                           on_begin_checked, q) == 0) {
        a->clock = now;
        a->pend = P_QUERY;
        q->wake_at = deadline;
        free(snap);
        return;
      }
      w->stats.commands--;
      free(snap);
      free(q);
    }
  }
  /* the plain way: a fresh instance from the start */
  evt *e = a->born_ev;
  uint32_t li = a->inst->loop;
  a->born_ev = NULL;
  a->unborn = 0;
  act_drop(a);
  begin_plain(w, e, li);
  evt_release(e);
}

static void begin(sk_worker *w, evt *e, uint32_t li) {
  const sk_loop_rec *l = &w->m->loops[li];
  if (starts_with_await(w->m, li)) {
    size_t klen = 0;
    char *ikey = sk_store_inst_key(w->store, sk_str(w->m, l->name_str), e->row->data, e->row->len, &klen);
    act *a = ikey && !map_find(w, ikey, klen) ? act_new(w, ikey, klen) : NULL;
    sk_inst *in = a ? calloc(1, sizeof *in + l->nregs * sizeof(sk_val)) : NULL;
    free(ikey);
    if (in) {
      in->loop = li;
      in->nregs = (uint16_t)l->nregs;
      in->heap_pos = UINT32_MAX;
      in->regs[0] = sk_val_str(sk_str_ref(e->row));
      in->regs[1] = sk_val_row(e->table, sk_str_ref(e->row));
      a->ver = w->vers[0];
      a->inst = in;
      a->subject = sk_str_ref(e->row);
      a->unborn = 1;
      a->born_ev = e;
      e->refs++;
      run(a);
      return;
    }
    if (a) act_drop(a);
  }
  begin_plain(w, e, li);
}

typedef struct creq {
  areq q;
} creq;

static void on_code(sk_redis *r, const sk_redis_result *res, void *privdata);

/* The claimed snapshot: decode it on its version and run. */
static void adopt(act *a, const char *snap, size_t len) {
  sk_worker *w = a->w;
  char err[256];
  if (len < 9) {
    log_msg(w, "error", "instance.error", "instance %s: snapshot too short", a->ikey);
    act_drop(a);
    return;
  }
  uint64_t hash = sk_rd64((const uint8_t *)snap + 1);
  version *v = version_find(w, hash);
  if (!v) {
    log_msg(w, "error", "instance.error", "instance %s: bytecode %016" PRIx64 " is not loaded",
            a->ikey, hash);
    act_drop(a);
    return;
  }
  a->ver = v;
  a->inst = sk_snapshot_decode(v->m, (const uint8_t *)snap, len, err, sizeof err);
  if (!a->inst) {
    log_msg(w, "error", "instance.error", "instance %s: %s", a->ikey, err);
    act_drop(a);
    return;
  }
  a->subject = sk_str_ref(a->inst->regs[0].u.s);
  w->stats.claimed++;
  if (a->ev) {
    /* woken by an event: resume the WAITEV it stands at, if it is this event's */
    const sk_module *m = v->m;
    const sk_loop_rec *l = &m->loops[a->inst->loop];
    uint32_t insn = m->code[l->code_first + a->inst->pc].insn;
    if (SK_GET_OP(insn) == SK_OP_WAITEV) {
      const sk_event_rec *er = &m->events[l->ev_first + SK_GETARG_Bx(insn)];
      const char *tn = sk_str(m, m->tables[er->table].name_str);
      const char *cn = sk_str(w->m, w->m->tables[a->ev_table].name_str);
      if (strcmp(tn, cn) == 0 && er->kind == a->ev_kind) {
        sk_exec_event(v->vm, a->inst, 1, er->table, a->ev_row);
        /* it took this event: out of its loop's box (else a later wait would take it again) */
        size_t blen = 0;
        char *box = event_box_key(w, sk_str(m, l->name_str), tn, er->kind, a->subject, &blen);
        const char *argv[3] = {"ZREM", box, a->ev_row->data};
        size_t lens[3] = {4, blen, a->ev_row->len};
        w->stats.commands++;
        if (!box || sk_redis_command(w->r, 3, argv, lens, on_ignored, NULL) != 0) w->stats.commands--;
        free(box);
      }
    }
  }
  run(a);
}

typedef struct codereq {
  areq q;
  char *snap;
  size_t len;
} codereq;

static void on_code(sk_redis *r, const sk_redis_result *res, void *privdata) {
  (void)r;
  codereq *c = privdata;
  act *a = areq_act(&c->q);
  if (a) {
    sk_worker *w = a->w;
    sk_module *m = NULL;
    char err[256] = "not found";
    if (res->status == SK_REDIS_OK && res->reply->type == REDIS_REPLY_STRING &&
        sk_module_load((const uint8_t *)res->reply->str, res->reply->len, &m, err, sizeof err) == 0) {
      if (!version_find(w, m->hash) && !version_add(w, m)) sk_module_free(m);
      else if (version_find(w, m->hash)->m != m) sk_module_free(m);
      adopt(a, c->snap, c->len);
    } else {
      log_msg(w, "error", "instance.error", "instance %s: its bytecode cannot be loaded: %s",
              a->ikey, res->status == SK_REDIS_OK ? err : res->errstr);
      act_drop(a);
    }
  }
  free(c->snap);
  free(c);
}

static void on_claimed(const sk_store_result *res, void *privdata) {
  areq *q = privdata;
  act *a = areq_act(q);
  free(q);
  if (!a) return;
  sk_worker *w = a->w;
  a->pend = P_NONE;
  if (!res->ok || res->n != 1) {
    if (!res->ok) log_msg(w, "error", "store.error", "%s", res->errstr);
    if (a->ev && res->n == 0) a->ev->failed = 1; /* leased elsewhere: the event comes again */
    act_drop(a);
    return;
  }
  if (a->pre_key) {
    a->pre_ready = 1;
    a->pre_rows = res->rows;
    a->pre_first = res->count ? sk_str_new(res->strs[0], res->lens[0]) : NULL;
  }
  if (res->len >= 9 && !version_find(w, sk_rd64((const uint8_t *)res->str + 1))) {
    /* another version of the bytecode: load it from code:{hash} */
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, sk_rd64((const uint8_t *)res->str + 1));
    const char *parts[1] = {hex};
    size_t klen = 0;
    char *key = sk_key_format(w->prefix, SK_KEY_CODE, parts, NULL, 1, &klen);
    codereq *c = calloc(1, sizeof *c);
    if (key && c && (c->snap = malloc(res->len)) != NULL) {
      memcpy(c->snap, res->str, res->len);
      c->len = res->len;
      c->q.w = w;
      c->q.id = a->id;
      c->q.gen = a->gen;
      const char *argv[2] = {"GET", key};
      size_t lens[2] = {3, klen};
      w->stats.commands++;
      if (sk_redis_command(w->r, 2, argv, lens, on_code, c) == 0) {
        free(key);
        return;
      }
      free(c->snap);
    }
    free(c);
    free(key);
    act_drop(a);
    return;
  }
  adopt(a, res->str, res->len);
}

static void claim(sk_worker *w, const char *ikey, size_t ikey_len, evt *ev, uint32_t ev_table,
                  uint32_t ev_kind, const sk_string *ev_row, const char *idx_key, size_t idx_len) {
  const char *loop, *subject;
  size_t loop_len, subject_len;
  if (w->draining) {
    if (ev) ev->failed = 1;
    return;
  }
  act *a = map_find(w, ikey, ikey_len);
  if (a) {
    a->recheck = 1; /* running here now: it looks again before it leaves */
    if (ev) ev->failed = 1;
    return;
  }
  if (sk_store_inst_parse(w->store, ikey, ikey_len, &loop, &loop_len, &subject, &subject_len) != 0) return;
  a = act_new(w, ikey, ikey_len);
  if (!a) {
    if (ev) ev->failed = 1;
    return;
  }
  a->loop_buf = malloc(loop_len + 1);
  areq *q = areq_new(a);
  if (!a->loop_buf || !q) {
    free(q);
    if (ev) ev->failed = 1;
    act_drop(a);
    return;
  }
  memcpy(a->loop_buf, loop, loop_len);
  a->loop_buf[loop_len] = 0;
  if (ev) {
    a->ev = ev;
    ev->refs++;
    a->ev_table = ev_table;
    a->ev_kind = ev_kind;
    a->ev_row = sk_str_ref((sk_string *)ev_row);
  }
  w->stats.commands++;
  int rc;
  if (idx_key) {
    /* the wait set of this index: the prefix, "wait:", the index key after the prefix */
    size_t pl = strlen(w->prefix);
    a->pre_len = idx_len + 5;
    a->pre_key = malloc(a->pre_len + 1);
    if (a->pre_key && idx_len >= pl) {
      memcpy(a->pre_key, w->prefix, pl);
      memcpy(a->pre_key + pl, "wait:", 5);
      memcpy(a->pre_key + pl + 5, idx_key + pl, idx_len - pl);
      a->pre_key[a->pre_len] = 0;
    }
    rc = sk_store_claim_check(w->store, a->loop_buf, subject, subject_len, w->worker_id,
                              w->o.lease_ms, lease_end_v(w), idx_key, idx_len, on_claimed, q);
  } else {
    rc = sk_store_claim(w->store, a->loop_buf, subject, subject_len, w->worker_id, w->o.lease_ms,
                        lease_end_v(w), on_claimed, q);
  }
  if (rc != 0) {
    free(q);
    if (ev) ev->failed = 1;
    act_drop(a);
  }
}

/* ---- feed events: starts, indexes, event waiters ---- */

typedef struct ereq {
  evt *e;
  char *key; /* index_add: the index key */
  size_t key_len;
} ereq;

static void on_index_added(const sk_store_result *res, void *privdata) {
  ereq *r = privdata;
  evt *e = r->e;
  sk_worker *w = e->w;
  if (!res->ok) {
    log_msg(w, "error", "store.error", "%s", res->errstr);
    e->failed = 1;
  } else {
    for (size_t i = 0; i < res->count; i++)
      claim(w, res->strs[i], res->lens[i], NULL, 0, 0, NULL, r->key, r->key_len);
  }
  free(r->key);
  free(r);
  evt_release(e);
}

static void on_event_waiters(const sk_store_result *res, void *privdata) {
  ereq *r = privdata;
  evt *e = r->e;
  sk_worker *w = e->w;
  free(r);
  if (!res->ok) {
    log_msg(w, "error", "store.error", "%s", res->errstr);
    e->failed = 1;
  } else {
    for (size_t i = 0; i < res->count; i++) claim(w, res->strs[i], res->lens[i], e, e->table, e->kind, e->row, NULL, 0);
  }
  evt_release(e);
}

/* The value of field name in a row reply (HGETALL pairs or a JSON object), as a new string. */
static sk_string *reply_field(const redisReply *x, json_t *obj, const char *name) {
  if (obj) {
    json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v)) return NULL;
    if (json_is_string(v)) return sk_str_new(json_string_value(v), json_string_length(v));
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    sk_string *s = sk_str_from(t ? t : "");
    free(t);
    return s;
  }
  if (x->type != REDIS_REPLY_ARRAY) return NULL;
  for (size_t i = 0; i + 1 < x->elements; i += 2)
    if (x->element[i]->type == REDIS_REPLY_STRING && strcmp(x->element[i]->str, name) == 0)
      return sk_str_new(x->element[i + 1]->str, x->element[i + 1]->len);
  return NULL;
}

static void on_event_row(sk_redis *rd, const sk_redis_result *res, void *privdata) {
  (void)rd;
  evt *e = privdata;
  sk_worker *w = e->w;
  const sk_module *m = w->m;
  if (res->status != SK_REDIS_OK) {
    log_msg(w, "error", "redis.error", "reading row %s of %s: %s", e->row->data,
            sk_str(m, m->tables[e->table].name_str), res->errstr);
    e->failed = 1;
    evt_begin(e);
    evt_release(e);
    return;
  }
  const redisReply *x = res->reply;
  json_t *obj = NULL;
  if (x->type == REDIS_REPLY_STRING) {
    obj = json_loadb(x->str, x->len, 0, NULL);
    if (!json_is_object(obj)) {
      json_decref(obj);
      obj = NULL;
    }
  } else if (x->type == REDIS_REPLY_ERROR) {
    const char *tn = sk_str(m, m->tables[e->table].name_str);
    if (strncmp(x->str, "WRONGTYPE", 9) != 0) { /* LOADING, BUSY...: try the event again later */
      log_msg(w, "error", "redis.error", "reading row %s of table %s: %s", e->row->data, tn, x->str);
      e->failed = 1;
      evt_begin(e);
      evt_release(e);
      return;
    }
    log_msg(w, "error", "row.error", "row %s of table %s is not a %s: set tables.%s.format to '%s' in the config",
            e->row->data, tn, m->tables[e->table].format == SK_FORMAT_JSON ? "string (JSON)" : "hash", tn,
            m->tables[e->table].format == SK_FORMAT_JSON ? "hash" : "json");
  }
  int64_t score = wall_ms();
  /* the indexes of this table */
  for (uint32_t s = 0; s < m->nshapes; s++) {
    const shape_info *si = &w->shapes[s];
    if (si->table != e->table) continue;
    sk_string *vals[MAX_QVALS];
    const char *vp[MAX_QVALS];
    size_t vl[MAX_QVALS];
    uint32_t n = 0;
    for (; n < si->ncols && n < MAX_QVALS; n++) {
      vals[n] = reply_field(x, obj, si->cols[n]);
      if (!vals[n]) break;
      vp[n] = vals[n]->data;
      vl[n] = vals[n]->len;
    }
    if (n == si->ncols) {
      sk_store_index ix = {sk_str(m, m->tables[si->table].name_str), (const char *const *)si->cols, vp, vl, n};
      ereq *r = malloc(sizeof *r);
      if (r) {
        r->e = e;
        r->key = sk_store_index_key(w->store, &ix, SK_KEY_INDEX, &r->key_len);
        e->refs++;
        w->stats.commands++;
        if (sk_store_index_add(w->store, &ix, e->row->data, e->row->len, score, on_index_added, r) != 0) {
          free(r->key);
          free(r);
          e->refs--;
          e->failed = 1;
        }
      } else {
        e->failed = 1;
      }
    }
    for (uint32_t k = 0; k < n; k++) sk_str_unref(vals[k]);
  }
  /* the later steps waiting for this event (WAITEV): into each loop's box, and wake the waiters */
  for (uint32_t k = 0; k < w->nevkinds; k++) {
    const evkind *ek = &w->evkinds[k];
    if (ek->table != e->table || ek->kind != e->kind || !e->fc) continue;
    sk_string *subject = ek->subject_col == SK_NONE ? sk_str_ref(e->row)
                                                 : reply_field(x, obj, sk_str(m, ek->subject_col));
    if (!subject) continue;
    const char *tn = sk_str(m, m->tables[e->table].name_str);
    size_t wlen = 0, blens[8];
    char *wait = event_wait_key(w, tn, e->kind, subject, &wlen), *boxes[8];
    uint32_t nb = 0;
    int ok = wait != NULL;
    for (; nb < ek->nloops; nb++) {
      boxes[nb] = event_box_key(w, sk_str(m, m->loops[ek->loops[nb]].name_str), tn, e->kind, subject, &blens[nb]);
      ok &= boxes[nb] != NULL;
    }
    sk_str_unref(subject);
    ereq *r = ok ? malloc(sizeof *r) : NULL;
    if (r) {
      r->e = e;
      r->key = NULL;
      e->refs++;
      w->stats.commands++;
      if (sk_store_event_post(w->store, wait, wlen, (const char *const *)boxes, blens, nb, e->row->data,
                              e->row->len, vnow(w), EVBOX_TTL_MS, on_event_waiters, r) != 0) {
        free(r);
        e->refs--;
        e->failed = 1;
      }
    } else {
      e->failed = 1;
    }
    free(wait);
    for (uint32_t b = 0; b < nb; b++) free(boxes[b]);
  }
  json_decref(obj);
  evt_begin(e); /* after the index writes: its first check sees its own row */
  evt_release(e);
}

static int table_needs_row(const sk_worker *w, uint32_t table, uint32_t kind) {
  for (uint32_t s = 0; s < w->m->nshapes; s++)
    if (w->shapes[s].table == table) return 1;
  for (uint32_t k = 0; k < w->nevkinds; k++)
    if (w->evkinds[k].table == table && w->evkinds[k].kind == kind) return 1;
  return 0;
}

/* The loops event e starts. */
static void evt_begin(evt *e) {
  sk_worker *w = e->w;
  const sk_module *m = w->m;
  if (!e->fc) return;
  for (uint32_t li = 0; li < m->nloops; li++) {
    const sk_loop_rec *l = &m->loops[li];
    const sk_event_rec *ev = &m->events[l->ev_first + l->trigger];
    if (ev->table == e->table && ev->kind == e->kind) begin(w, e, li);
  }
}

/* Indexes, wakes and starts for event e (refs 1, released here). The row goes into its indexes
 * before the loops it starts are begun: commands on one connection run in the order sent, so a new
 * instance's first check counts its own row, as the simulator's does (the store applies a row,
 * then the scheduler starts and wakes). */
static void evt_process(evt *e) {
  sk_worker *w = e->w;
  const sk_module *m = w->m;
  if (!table_needs_row(w, e->table, e->kind)) evt_begin(e);
  else {
    size_t klen = 0;
    char *key = row_key(m, e->table, e->row, &klen);
    int json = m->tables[e->table].format == SK_FORMAT_JSON;
    const char *argv[2] = {json ? "GET" : "HGETALL", key};
    size_t lens[2] = {json ? 3 : 7, klen};
    e->refs++;
    w->stats.commands++;
    if (!key || sk_redis_command(w->r, 2, argv, lens, on_event_row, e) != 0) {
      e->refs--;
      e->failed = 1;
      evt_begin(e);
    }
    free(key);
  }
  evt_release(e);
}

/* A row of table was inserted or updated: start, index, wake. fc NULL: a backfilled row. */
static void process_row(sk_worker *w, feedctx *fc, uint32_t table, uint32_t kind, const char *row_id,
                        size_t row_len, const char *entry_id) {
  evt *e = calloc(1, sizeof *e);
  if (!e) return; /* not acknowledged: it comes again */
  e->w = w;
  e->fc = fc;
  e->table = table;
  e->kind = kind;
  e->refs = 1;
  e->row = sk_str_new(row_id, row_len);
  e->entry = entry_id ? strdup(entry_id) : NULL;
  w->stats.events++;
  evt_process(e);
}

static void on_feed_event(sk_feed *feed, const char *table, sk_feed_op op, const char *row_id,
                          const char *entry_id, void *privdata) {
  (void)feed;
  (void)table;
  feedctx *fc = privdata;
  if (fc->w->draining) return; /* not acknowledged: the next start has it */
  process_row(fc->w, fc, fc->table, op == SK_FEED_INSERT ? SK_EVENT_INSERT : SK_EVENT_UPDATE,
              row_id, strlen(row_id), entry_id);
}

static void on_feed_error(sk_feed *feed, const char *entry_id, const char *message, void *privdata) {
  (void)feed;
  feedctx *fc = privdata;
  log_msg(fc->w, entry_id ? "warn" : "error", "feed.error", "%s", message);
}

/* ---- timers ---- */

static void on_due(const sk_store_result *res, void *privdata) {
  sk_worker *w = privdata;
  w->due_inflight = 0;
  if (w->draining) {
    check_drained(w);
    return;
  }
  if (!res->ok) {
    log_msg(w, "error", "store.error", "%s", res->errstr);
    schedule_due(w, wall_ms() + 1000);
    return;
  }
  for (size_t i = 0; i < res->count; i++) {
    if (map_find(w, res->strs[i], res->lens[i])) continue;
    claim(w, res->strs[i], res->lens[i], NULL, 0, 0, NULL, NULL, 0);
    act *a = map_find(w, res->strs[i], res->lens[i]);
    if (a) a->from_due = 1;
  }
  int64_t next = wall_ms() + w->o.due_interval_ms;
  if (res->count >= DUE_BATCH || w->due_again) next = wall_ms(); /* more are due */
  else if (res->n >= 0 && v2wall(w, res->n) < next) next = v2wall(w, res->n);
  w->due_again = 0;
  if (w->due_at < next) next = w->due_at;
  w->due_at = INT64_MAX;
  schedule_due(w, next);
}

static void due_fire(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  sk_worker *w = arg;
  w->due_at = INT64_MAX;
  if (w->draining) return;
  if (w->due_inflight) {
    w->due_again = 1; /* the answer looks again at once */
    return;
  }
  w->due_inflight = 1;
  w->stats.commands++;
  if (sk_store_due_next(w->store, vnow(w), DUE_BATCH, on_due, w) != 0) {
    w->due_inflight = 0;
    schedule_due(w, wall_ms() + 1000);
  }
}

/* Looks at the timer set at wall time at (or sooner if already scheduled sooner). */
static void schedule_due(sk_worker *w, int64_t at) {
  if (w->draining || !w->due_ev) return;
  if (at >= w->due_at) return;
  w->due_at = at;
  int64_t d = at - wall_ms();
  if (d < 0) d = 0;
  struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
  evtimer_add(w->due_ev, &tv);
}

/* ---- backfill: the rows that exist at the first start go into the indexes ---- */

typedef struct bfill {
  sk_worker *w;
  uint32_t table;
  char cursor[32];
  char *pattern, *marker;
  size_t pre, post;
  int inflight;
  int64_t rows;
} bfill;

static void bfill_next(bfill *b);

static void bfill_free(bfill *b) {
  free(b->pattern);
  free(b->marker);
  free(b);
}

static void on_bfill_done(sk_redis *r, const sk_redis_result *res, void *privdata) {
  (void)r;
  (void)res;
  bfill *b = privdata;
  log_msg(b->w, "info", "backfill.done", "table %s: %" PRId64 " rows indexed",
          sk_str(b->w->m, b->w->m->tables[b->table].name_str), b->rows);
  bfill_free(b);
}

static void on_bfill_scan(sk_redis *r, const sk_redis_result *res, void *privdata) {
  (void)r;
  bfill *b = privdata;
  sk_worker *w = b->w;
  if (res->status != SK_REDIS_OK || res->reply->type != REDIS_REPLY_ARRAY || res->reply->elements != 2) {
    log_msg(w, "error", "backfill.error", "SCAN failed: %s; retrying at the next start",
            res->status != SK_REDIS_OK ? res->errstr : "unexpected reply");
    bfill_free(b);
    return;
  }
  snprintf(b->cursor, sizeof b->cursor, "%s", res->reply->element[0]->str);
  const redisReply *keys = res->reply->element[1];
  for (size_t i = 0; i < keys->elements; i++) {
    const redisReply *k = keys->element[i];
    if (k->type != REDIS_REPLY_STRING || k->len < b->pre + b->post) continue;
    b->rows++;
    process_row(w, NULL, b->table, SK_EVENT_INSERT, k->str + b->pre, k->len - b->pre - b->post, NULL);
  }
  bfill_next(b);
}

static void bfill_next(bfill *b) {
  sk_worker *w = b->w;
  if (w->draining) {
    bfill_free(b);
    return;
  }
  if (strcmp(b->cursor, "0") == 0 && b->inflight) {
    const char *argv[3] = {"SET", b->marker, "1"};
    w->stats.commands++;
    if (sk_redis_command(w->r, 3, argv, NULL, on_bfill_done, b) != 0) on_bfill_done(w->r, NULL, b);
    return;
  }
  b->inflight = 1;
  const sk_module *m = w->m;
  const char *type = m->tables[b->table].format == SK_FORMAT_JSON ? "string" : "hash";
  const char *argv[8] = {"SCAN", b->cursor, "MATCH", b->pattern, "COUNT", "1000", "TYPE", type};
  w->stats.commands++;
  if (sk_redis_command(w->r, 8, argv, NULL, on_bfill_scan, b) != 0) {
    bfill_free(b);
  }
}

static void on_bfill_marker(sk_redis *r, const sk_redis_result *res, void *privdata) {
  (void)r;
  bfill *b = privdata;
  if (res->status == SK_REDIS_OK && res->reply->type == REDIS_REPLY_NIL) {
    log_msg(b->w, "info", "backfill.start", "table %s: indexing the rows that exist",
            sk_str(b->w->m, b->w->m->tables[b->table].name_str));
    bfill_next(b);
    return;
  }
  bfill_free(b);
}

static void backfill(sk_worker *w) {
  const sk_module *m = w->m;
  for (uint32_t t = 0; t < m->ntables; t++) {
    int has = 0;
    for (uint32_t s = 0; s < m->nshapes; s++) has |= w->shapes[s].table == t;
    if (!has) continue;
    bfill *b = calloc(1, sizeof *b);
    if (!b) continue;
    b->w = w;
    b->table = t;
    strcpy(b->cursor, "0");
    const char *pat = sk_str(m, m->tables[t].key_str);
    const char *at = strstr(pat, "{id}");
    b->pre = at ? (size_t)(at - pat) : strlen(pat);
    b->post = at ? strlen(at + 4) : 0;
    b->pattern = malloc(strlen(pat) + 8);
    const char *tn = sk_str(m, m->tables[t].name_str);
    const char *parts[1] = {tn};
    size_t klen;
    b->marker = sk_key_format(w->prefix, SK_KEY_BACKFILL, parts, NULL, 1, &klen);
    if (!b->pattern || !b->marker || !at) {
      bfill_free(b);
      continue;
    }
    /* the pattern with glob characters of the prefix and suffix escaped, {id} as * */
    char *p = b->pattern;
    for (const char *c = pat; c < at; c++) {
      if (strchr("*?[]\\", *c)) *p++ = '\\';
      *p++ = *c;
    }
    *p++ = '*';
    for (const char *c = at + 4; *c; c++) {
      if (strchr("*?[]\\", *c)) *p++ = '\\';
      *p++ = *c;
    }
    *p = 0;
    const char *argv[2] = {"GET", b->marker};
    w->stats.commands++;
    if (sk_redis_command(w->r, 2, argv, NULL, on_bfill_marker, b) != 0) {
      bfill_free(b);
    }
  }
}

/* ---- leases of long runs: an instance in memory longer than half its lease (a send waiting in
   the rate limiter's queue, a slow provider) renews it, and moves its timer with it ---- */

static const char renew_script[] =
    "if redis.call('GET',KEYS[1])~=ARGV[1] then return 0 end "
    "redis.call('PEXPIRE',KEYS[1],ARGV[2]) redis.call('ZADD',KEYS[2],'XX',ARGV[3],KEYS[3]) return 1";

static void on_renewed(sk_redis *r, const sk_redis_result *res, void *privdata) {
  (void)r;
  areq *q = privdata;
  act *a = areq_act(q);
  free(q);
  if (a && res->status == SK_REDIS_OK && res->reply->type == REDIS_REPLY_INTEGER && res->reply->integer == 0)
    log_msg(a->w, "warn", "lease.lost", "instance %s: its lease was taken over while it ran; a send it repeats "
            "carries the same idempotency key", a->ikey);
}

static void renew_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  sk_worker *w = arg;
  int64_t now = wall_ms();
  size_t tlen = 0;
  char *timers = sk_key_format(w->prefix, SK_KEY_TIMERS, NULL, NULL, 0, &tlen);
  char ttl[24], end[24];
  snprintf(ttl, sizeof ttl, "%d", w->o.lease_ms);
  snprintf(end, sizeof end, "%" PRId64, lease_end_v(w));
  for (uint32_t i = 0; timers && i < w->acts.n; i++) {
    act *a = w->acts.v[i];
    if (!a || !a->inst || a->unborn || now - a->leased_at < w->o.lease_ms / 2) continue;
    const char *ln = sk_str(a->ver->m, a->ver->m->loops[a->inst->loop].name_str);
    const char *parts[2] = {ln, a->subject->data};
    size_t lens[2] = {strlen(ln), a->subject->len}, llen = 0;
    char *lease = sk_key_format(w->prefix, SK_KEY_LEASE, parts, lens, 2, &llen);
    areq *q = lease ? areq_new(a) : NULL;
    const char *argv[] = {"EVAL", renew_script, "3", lease, timers, a->ikey, w->worker_id, ttl, end};
    size_t alens[] = {4, sizeof renew_script - 1, 1, llen, tlen, a->ikey_len, strlen(w->worker_id), strlen(ttl), strlen(end)};
    if (q && sk_redis_command(w->r, 9, argv, alens, on_renewed, q) == 0) {
      w->stats.commands++;
      a->leased_at = now;
    } else {
      free(q);
    }
    free(lease);
  }
  free(timers);
  if (!w->draining || w->nactive) {
    struct timeval tv = {(time_t)(w->o.lease_ms / 4 / 1000), (suseconds_t)(w->o.lease_ms / 4 % 1000) * 1000};
    evtimer_add(w->renew_ev, &tv);
  }
}

/* ---- lifetime ---- */

static void on_code_stored(sk_redis *r, const sk_redis_result *res, void *privdata) {
  (void)r;
  sk_worker *w = privdata;
  if (res->status != SK_REDIS_OK || res->reply->type == REDIS_REPLY_ERROR)
    log_msg(w, "error", "store.error", "storing the bytecode: %s",
            res->status != SK_REDIS_OK ? res->errstr : res->reply->str);
}

sk_worker *sk_worker_new(struct event_base *base, const uint8_t *skb, size_t skb_len,
                         const sk_worker_options *o, char *err, size_t errlen) {
  sk_worker *w = calloc(1, sizeof *w);
  sk_module *m = NULL;
  if (!w) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  w->base = base;
  w->o = *o;
  if (!o->worker_id || !o->worker_id[0] || !o->url) {
    snprintf(err, errlen, "a worker id and a Redis URL are required");
    goto fail;
  }
  w->url = strdup(o->url);
  w->prefix = strdup(o->prefix ? o->prefix : SK_KEY_PREFIX_DEFAULT);
  w->worker_id = strdup(o->worker_id);
  w->skb = malloc(skb_len ? skb_len : 1);
  if (!w->url || !w->prefix || !w->worker_id || !w->skb) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  memcpy(w->skb, skb, skb_len);
  w->skb_len = skb_len;
  w->scale = o->time_scale > 0 ? o->time_scale : 1.0;
  if (w->o.lease_ms <= 0) w->o.lease_ms = 30000;
  if (w->o.due_interval_ms <= 0) w->o.due_interval_ms = 120000;
  w->log = o->log ? o->log : stdout;
  w->rng = o->seed ? o->seed : (uint64_t)wall_ms() ^ (uint64_t)(uintptr_t)w;
  w->due_at = INT64_MAX;
  w->ops.now = op_now;
  w->ops.row_field = op_row_field;
  w->ops.query = op_query;
  w->ops.redis = op_redis;
  w->ops.effect = op_effect;
  w->ops.trace = op_trace;
  if (sk_module_load(skb, skb_len, &m, err, errlen) != 0) goto fail;
  if (!version_add(w, m)) {
    sk_module_free(m);
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  w->m = m;
  w->shapes = calloc(m->nshapes + 1, sizeof *w->shapes);
  w->evkinds = calloc(m->nevents + 1, sizeof *w->evkinds);
  if (!w->shapes || !w->evkinds) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  for (uint32_t s = 0; s < m->nshapes; s++) {
    shape_info *si = &w->shapes[s];
    si->table = m->shapes[s].table;
    char *cols = strdup(sk_str(m, m->shapes[s].cols_str));
    si->cols = calloc(MAX_QVALS, sizeof *si->cols);
    if (!cols || !si->cols) {
      free(cols);
      snprintf(err, errlen, "out of memory");
      goto fail;
    }
    for (char *p = cols, *tok; si->ncols < MAX_QVALS && (tok = strsep(&p, ",")) != NULL;)
      si->cols[si->ncols++] = strdup(tok);
    free(cols);
  }
  for (uint32_t li = 0; li < m->nloops; li++) {
    const sk_loop_rec *l = &m->loops[li];
    for (uint32_t e = 0; e < l->ev_count; e++) {
      if (e == l->trigger) continue;
      const sk_event_rec *er = &m->events[l->ev_first + e];
      uint32_t k = 0;
      for (; k < w->nevkinds; k++)
        if (w->evkinds[k].table == er->table && w->evkinds[k].kind == er->kind &&
            w->evkinds[k].subject_col == er->subject_col_str)
          break;
      if (k == w->nevkinds) w->evkinds[w->nevkinds++] = (evkind){er->table, er->kind, er->subject_col_str, {0}, 0};
      evkind *ek = &w->evkinds[k];
      uint32_t j = 0;
      while (j < ek->nloops && ek->loops[j] != li) j++;
      if (j == ek->nloops && ek->nloops < 8) ek->loops[ek->nloops++] = li;
    }
  }
  w->r = sk_redis_new(base, w->url, o->redis);
  w->store = w->r ? sk_store_new(w->r, w->prefix) : NULL;
  w->due_ev = evtimer_new(base, due_fire, w);
  if (!w->r || !w->store || !w->due_ev) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  return w;
fail:
  sk_worker_free(w);
  return NULL;
}

int sk_worker_start(sk_worker *w, char *err, size_t errlen) {
  const sk_module *m = w->m;
  char hex[17];
  snprintf(hex, sizeof hex, "%016" PRIx64, m->hash);
  const char *parts[1] = {hex};
  size_t klen = 0;
  char *key = sk_key_format(w->prefix, SK_KEY_CODE, parts, NULL, 1, &klen);
  const char *argv[3] = {"SET", key, (const char *)w->skb};
  size_t lens[3] = {3, klen, w->skb_len};
  w->stats.commands++;
  if (!key || sk_redis_command(w->r, 3, argv, lens, on_code_stored, w) != 0) {
    free(key);
    snprintf(err, errlen, "storing the bytecode: %s", sk_redis_errstr(w->r));
    return -1;
  }
  free(key);
  backfill(w);
  w->feeds = calloc(m->ntables + 1, sizeof *w->feeds);
  if (!w->feeds) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  int nstreams = 0;
  for (uint32_t t = 0; t < m->ntables; t++) nstreams += m->tables[t].feed == SK_TABLE_FEED_STREAM;
  for (uint32_t t = 0; t < m->ntables; t++) {
    const sk_table_rec *tr = &m->tables[t];
    feedctx *fc = &w->feeds[w->nfeeds];
    fc->w = w;
    fc->table = t;
    sk_feed_options fo;
    sk_feed_options_init(&fo);
    fo.kind = tr->feed == SK_TABLE_FEED_KEYSPACE ? SK_FEED_KEYSPACE
              : tr->feed == SK_TABLE_FEED_SCAN   ? SK_FEED_SCAN
                                                 : SK_FEED_STREAM;
    fo.table = sk_str(m, tr->name_str);
    fo.prefix = w->prefix;
    fo.key = sk_str(m, tr->key_str);
    fo.row_type = tr->format == SK_FORMAT_JSON ? "string" : "hash";
    fo.consumer = w->worker_id;
    /* Idle cost: each stream table blocks in its own read, 2 minutes (a read returns as soon as
       an entry comes: only idle time is stretched; a connection that died silently is noticed by
       TCP keepalive within about a minute, runtime/redis.c). With more than two tables, each
       blocks longer and looks for dead consumers' entries less often, so that an idle worker
       stays near 60 reads and 24 claims an hour whatever the number of tables. */
    int spread = nstreams > 2 ? nstreams : 2;
    fo.block_ms = w->o.block_ms > 0 ? w->o.block_ms : 60000 * spread;
    fo.claim_min_idle_ms = w->o.claim_idle_ms > 0 ? w->o.claim_idle_ms : 60000;
    fo.claim_interval_ms = w->o.claim_interval_ms > 0 ? w->o.claim_interval_ms
                                                      : 5 * fo.claim_min_idle_ms * spread / 2;
    fo.scan_interval_ms = w->o.scan_interval_ms;
    fo.backfill = w->o.backfill;
    int updates = 0;
    for (uint32_t li = 0; li < m->nloops; li++)
      for (uint32_t e = 0; e < m->loops[li].ev_count; e++) {
        const sk_event_rec *er = &m->events[m->loops[li].ev_first + e];
        if (er->table == t && er->kind == SK_EVENT_UPDATE) updates = 1;
      }
    fo.updates = updates;
    fo.on_event = on_feed_event;
    fo.on_error = on_feed_error;
    fo.privdata = fc;
    fc->feed = sk_feed_new(w->base, w->r, w->url, w->o.redis, &fo, err, errlen);
    if (!fc->feed) return -1;
    w->nfeeds++;
  }
  w->started = 1;
  schedule_due(w, wall_ms());
  w->renew_ev = evtimer_new(w->base, renew_tick, w);
  if (w->renew_ev) {
    struct timeval tv = {(time_t)(w->o.lease_ms / 4 / 1000), (suseconds_t)(w->o.lease_ms / 4 % 1000) * 1000};
    evtimer_add(w->renew_ev, &tv);
  }
  return 0;
}

static void drain_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  check_drained(arg);
}

static void check_drained(sk_worker *w) {
  if (!w->draining || !w->drain_done) return;
  size_t sending = (w->o.email ? sk_sender_in_flight(w->o.email) : 0) +
                   (w->o.webhook ? sk_sender_in_flight(w->o.webhook) : 0);
  if (w->nactive > 0 || sending > 0 || w->due_inflight) {
    if (w->drain_ev && !evtimer_pending(w->drain_ev, NULL)) {
      struct timeval tv = {0, 100000};
      evtimer_add(w->drain_ev, &tv);
    }
    return;
  }
  void (*done)(void *) = w->drain_done;
  w->drain_done = NULL;
  done(w->drain_ud);
}

void sk_worker_drain(sk_worker *w, void (*done)(void *ud), void *ud) {
  w->draining = 1;
  w->drain_done = done;
  w->drain_ud = ud;
  for (uint32_t i = 0; i < w->nfeeds; i++) {
    if (w->feeds[i].feed) w->wire_closed += sk_feed_commands_sent(w->feeds[i].feed);
    sk_feed_free(w->feeds[i].feed);
    w->feeds[i].feed = NULL;
  }
  if (w->due_ev) evtimer_del(w->due_ev);
  while (w->retrying) { /* not acknowledged: the next start has them */
    evt *e = w->retrying;
    w->retrying = e->rnext;
    evt_free(e);
  }
  if (!w->drain_ev) w->drain_ev = evtimer_new(w->base, drain_tick, w);
  check_drained(w);
}

size_t sk_worker_active(const sk_worker *w) { return w->nactive; }

void sk_worker_get_stats(const sk_worker *w, sk_worker_stats *out) {
  *out = w->stats;
  out->wire = sk_redis_commands_sent(w->r);
  for (uint32_t i = 0; i < w->nfeeds; i++)
    if (w->feeds[i].feed) out->wire += sk_feed_commands_sent(w->feeds[i].feed);
  out->wire += w->wire_closed;
}

void sk_worker_free(sk_worker *w) {
  if (!w) return;
  w->draining = 1;
  for (uint32_t i = 0; i < w->nfeeds; i++) {
    sk_feed_free(w->feeds[i].feed);
    w->feeds[i].feed = NULL; /* events still referenced are not acknowledged */
  }
  for (uint32_t i = 0; i < w->acts.n; i++) {
    act *a = w->acts.v[i];
    if (!a) continue;
    a->recheck = 0;
    act_drop(a);
  }
  while (w->retrying) {
    evt *e = w->retrying;
    w->retrying = e->rnext;
    evt_free(e);
  }
  sk_store_free(w->store);
  sk_redis_free(w->r); /* calls back what is in flight: the acts are gone, so nothing runs */
  free(w->feeds);
  if (w->due_ev) event_free(w->due_ev);
  if (w->drain_ev) event_free(w->drain_ev);
  if (w->renew_ev) event_free(w->renew_ev);
  for (uint32_t s = 0; w->shapes && s < w->m->nshapes; s++) {
    for (uint32_t c = 0; c < w->shapes[s].ncols; c++) free(w->shapes[s].cols[c]);
    free(w->shapes[s].cols);
  }
  free(w->shapes);
  free(w->evkinds);
  for (uint32_t i = 0; i < w->nvers; i++) {
    sk_vm_free(w->vers[i]->vm);
    sk_module_free(w->vers[i]->m);
    free(w->vers[i]);
  }
  free(w->vers);
  free(w->acts.v);
  free(w->free_ids.v);
  free(w->map);
  free(w->url);
  free(w->prefix);
  free(w->worker_id);
  free(w->skb);
  free(w);
}
