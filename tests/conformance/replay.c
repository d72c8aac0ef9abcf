/*
 * replay.c: conf-replay, the driver of the conformance suite (tests/conformance/README.md). It plays
 * a simulator scenario (tests/sim/README.md) onto a real Redis in scaled real time, with a real
 * `skene-vm run` worker, and prints what the worker logged:
 *
 *   conf-replay --vm SKENE_VM --outbox DIR [--timeline SIM.jsonl] [--time-scale S] [--min-gap-ms G]
 *               [--cap-ms C] [--margin-ms M] SCENARIO.json FILE.skb
 *
 * In order: runs the scenario's `redis` commands and writes its `rows` (no feed entry: they exist
 * before the start); starts `skene-vm run --worker conf --time-scale S --faults SCENARIO.json
 * FILE.skb` (REDIS_URL and SKENE_EMAIL_FROM from the environment, SKENE_OUTBOX=DIR); waits for its
 * `worker.start` line and one `backfill.done` per table with indexes; writes each event as the app
 * does (stream tables: MULTI, HSET or SET, XADD skene:T * id ID op OP, EXEC; keyspace and scan
 * tables: the write alone) at its real time; waits for the end; SIGTERMs the worker, which drains
 * and exits 0. Then prints on stdout a `replay.plan` line, the worker's log, one `replay.write`
 * line per event (with how late it was written) and one `replay.dlq` line per dead letter.
 *
 * Times (README.md, "How times are scaled"): the times that matter are the scenario's start (0),
 * its event times and every time of the simulator's timeline (--timeline: deadlines, retries,
 * delays), up to `until`. S is the largest scale that keeps the smallest gap between two of them at
 * G ms of real time (default 50), unless the last of them would then come later than C ms
 * (default 3000): then S = last / C. The time that matters t_i is played at
 * r_i = max(t_i / S, r_{i-1} + G) ms after the start, so that times closer than G are pulled apart
 * and keep their order. The run ends M ms (default 300) after the last one, not at `until`: by the
 * simulator's timeline nothing happens in between.
 *
 * Exit status: 0 ok; 1 the run failed (Redis refused a write, the worker did not start, did not
 * drain or exited with another status); 2 usage, a bad scenario or I/O.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "keys.h"
#include "skb.h"

#define EXIT_RUN 1
#define EXIT_USAGE 2

#define DAY_MS 86400000LL
#define START_TIMEOUT_MS 15000 /* from the spawn to worker.start and the backfills */
#define DRAIN_TIMEOUT_MS 15000 /* from SIGTERM to the worker's exit */

static void die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* ---- clocks ---- */

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps until the monotonic clock reads at_ms (at once when it has passed). */
static void sleep_until(int64_t at_ms) {
  struct timespec ts = {(time_t)(at_ms / 1000), (long)(at_ms % 1000) * 1000000L};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

/* ---- the worker process ---- */

static pid_t worker_pid = 0;

/* Stops the worker we started, by its pid, at once (on the way out after a failure). */
static void kill_worker(void) {
  if (worker_pid > 0) {
    kill(worker_pid, SIGKILL);
    waitpid(worker_pid, NULL, 0);
    worker_pid = 0;
  }
}

static void die(int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("conf-replay: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  kill_worker();
  exit(status);
}

/* ---- the .skb: the tables, their keys, formats and feeds ---- */

typedef struct table {
  const char *name;
  const char *key;   /* pattern with {id} */
  int json;          /* SK_FORMAT_JSON */
  int stream;        /* SK_TABLE_FEED_STREAM: the app adds a feed entry in the same MULTI */
} table;

typedef struct module_info {
  sk_module *m;
  table *tables;
  uint32_t ntables;
  uint32_t nindexed; /* tables with at least one index: one backfill.done each */
} module_info;

static uint8_t *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) die(EXIT_USAGE, "cannot read %s: %s", path, strerror(errno));
  uint8_t *p = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 65536;
      p = realloc(p, cap);
      if (!p) die(EXIT_USAGE, "out of memory reading %s", path);
    }
    size_t r = fread(p + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
  }
  if (ferror(f)) die(EXIT_USAGE, "cannot read %s: %s", path, strerror(errno));
  fclose(f);
  *len = n;
  return p;
}

static void module_read(const char *path, module_info *mi) {
  size_t len;
  uint8_t *skb = read_all(path, &len);
  char err[512];
  if (sk_module_load(skb, len, &mi->m, err, sizeof err) != 0) die(EXIT_USAGE, "%s: %s", path, err);
  free(skb);
  const sk_module *m = mi->m;
  mi->ntables = m->ntables;
  mi->tables = calloc(m->ntables ? m->ntables : 1, sizeof *mi->tables);
  if (!mi->tables) die(EXIT_USAGE, "out of memory");
  for (uint32_t t = 0; t < m->ntables; t++) {
    mi->tables[t].name = sk_str(m, m->tables[t].name_str);
    mi->tables[t].key = sk_str(m, m->tables[t].key_str);
    mi->tables[t].json = m->tables[t].format == SK_FORMAT_JSON;
    mi->tables[t].stream = m->tables[t].feed == SK_TABLE_FEED_STREAM;
    int indexed = 0;
    for (uint32_t s = 0; s < m->nshapes; s++) indexed |= m->shapes[s].table == t;
    mi->nindexed += (uint32_t)indexed;
  }
}

/* The table named name; a table no loop uses is a hash at NAME:{id} with no feed (the simulator
   stores its rows and warns). */
static table table_of(const module_info *mi, const char *name) {
  for (uint32_t t = 0; t < mi->ntables; t++)
    if (strcmp(mi->tables[t].name, name) == 0) return mi->tables[t];
  table none = {name, NULL, 0, 0};
  return none;
}

/* The Redis key of row id of t (malloc'ed). */
static char *row_key(const table *t, const char *id) {
  const char *pat = t->key, *at = pat ? strstr(pat, "{id}") : NULL;
  size_t n = at ? strlen(pat) - 4 + strlen(id) + 1 : strlen(t->name) + strlen(id) + 2;
  char *k = malloc(n);
  if (!k) die(EXIT_USAGE, "out of memory");
  if (at) snprintf(k, n, "%.*s%s%s", (int)(at - pat), pat, id, at + 4);
  else snprintf(k, n, "%s:%s", t->name, id);
  return k;
}

/* ---- the scenario ---- */

/* A duration as the simulator reads it: integer ms, or "<digits>(ms|s|m|h|d)"; -1 when invalid. */
static int64_t duration_ms(const json_t *v) {
  if (json_is_integer(v)) return json_integer_value(v) >= 0 ? (int64_t)json_integer_value(v) : -1;
  if (!json_is_string(v)) return -1;
  const char *s = json_string_value(v), *p = s;
  int64_t n = 0;
  while (*p >= '0' && *p <= '9' && n < 3650 * DAY_MS) n = n * 10 + (*p++ - '0');
  if (p == s) return -1;
  static const struct { const char *unit; int64_t ms; } units[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", DAY_MS}};
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
    if (strcmp(p, units[i].unit) == 0) return n * units[i].ms;
  return -1;
}

typedef struct event {
  int64_t at;                  /* virtual ms after the start */
  size_t order;                /* its place in the file: events at the same time keep it */
  const char *table, *id, *op; /* op NULL: insert for a new row, update for an existing one */
  json_t *row;                 /* borrowed from the scenario */
  int64_t real;                /* planned: real ms after the start */
} event;

static int event_cmp(const void *a, const void *b) {
  const event *x = a, *y = b;
  if (x->at != y->at) return x->at < y->at ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

static int i64_cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static const char *str_field(const json_t *o, const char *key, const char *where, size_t i) {
  const json_t *v = json_object_get(o, key);
  if (!json_is_string(v)) die(EXIT_USAGE, "%s[%zu].%s: a string is required", where, i, key);
  return json_string_value(v);
}

/* The events up to `until`, in the order they are applied (time, then file order). */
static event *scenario_events(json_t *sc, int64_t until, size_t *n) {
  json_t *evs = json_object_get(sc, "events");
  size_t cap = json_array_size(evs), k = 0;
  event *v = calloc(cap ? cap : 1, sizeof *v);
  if (!v) die(EXIT_USAGE, "out of memory");
  for (size_t i = 0; i < cap; i++) {
    json_t *e = json_array_get(evs, i);
    int64_t at = duration_ms(json_object_get(e, "at"));
    if (at < 0) die(EXIT_USAGE, "events[%zu].at: not a duration", i);
    if (at > until) continue; /* the simulator does not run it either */
    event *ev = &v[k++];
    ev->at = at;
    ev->order = i;
    ev->table = str_field(e, "table", "events", i);
    ev->id = str_field(e, "id", "events", i);
    ev->op = json_object_get(e, "op") ? str_field(e, "op", "events", i) : NULL;
    ev->row = json_object_get(e, "row");
    if (ev->row && !json_is_object(ev->row)) die(EXIT_USAGE, "events[%zu].row: an object is required", i);
  }
  qsort(v, k, sizeof *v, event_cmp);
  *n = k;
  return v;
}

/* ---- the plan: the time scale and the real time of each time that matters ---- */

typedef struct plan {
  double scale;
  int64_t *t, *r; /* the times that matter (virtual ms, ascending, distinct) and their real ms */
  size_t n;
  int64_t end;    /* real ms after the start at which the worker is stopped */
  int64_t min_gap; /* the smallest gap between two times that matter (virtual ms); 0: one time */
} plan;

/* Appends the t_ms of every line of the simulator's timeline (up to until) to *t. */
static void timeline_times(const char *path, int64_t until, int64_t **t, size_t *n, size_t *cap) {
  FILE *f = fopen(path, "r");
  if (!f) die(EXIT_USAGE, "cannot read %s: %s", path, strerror(errno));
  char *line = NULL;
  size_t lcap = 0;
  size_t lineno = 0;
  while (getline(&line, &lcap, f) > 0) {
    lineno++;
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    json_t *tv = o ? json_object_get(o, "t_ms") : NULL;
    if (!json_is_integer(tv)) die(EXIT_USAGE, "%s:%zu: not a timeline line (no t_ms)", path, lineno);
    int64_t ms = (int64_t)json_integer_value(tv);
    json_decref(o);
    if (ms > until) continue;
    if (*n == *cap) {
      *cap = *cap ? *cap * 2 : 64;
      *t = realloc(*t, *cap * sizeof **t);
      if (!*t) die(EXIT_USAGE, "out of memory");
    }
    (*t)[(*n)++] = ms;
  }
  free(line);
  fclose(f);
}

static void make_plan(plan *p, const event *ev, size_t nev, const char *timeline, int64_t until,
                      double forced_scale, int64_t gap, int64_t cap_ms, int64_t margin) {
  size_t n = 0, cap = nev + 1;
  int64_t *t = malloc(cap * sizeof *t);
  if (!t) die(EXIT_USAGE, "out of memory");
  t[n++] = 0; /* the start */
  for (size_t i = 0; i < nev; i++) t[n++] = ev[i].at;
  if (timeline) timeline_times(timeline, until, &t, &n, &cap);
  qsort(t, n, sizeof *t, i64_cmp);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (k == 0 || t[i] != t[k - 1]) t[k++] = t[i];
  n = k;
  p->t = t;
  p->n = n;
  p->min_gap = 0;
  for (size_t i = 1; i < n; i++)
    if (p->min_gap == 0 || t[i] - t[i - 1] < p->min_gap) p->min_gap = t[i] - t[i - 1];
  int64_t last = t[n - 1];
  if (forced_scale > 0) {
    p->scale = forced_scale;
  } else if (n == 1) {
    p->scale = 1; /* everything happens at the start */
  } else {
    double by_gap = (double)p->min_gap / (double)gap;   /* the largest scale that keeps every gap */
    double by_cap = (double)last / (double)cap_ms;      /* the smallest that ends within the cap */
    p->scale = by_gap > by_cap ? by_gap : by_cap;
    if (p->scale > 1e6) p->scale = 1e6; /* skene-vm run's limit */
  }
  p->r = malloc(n * sizeof *p->r);
  if (!p->r) die(EXIT_USAGE, "out of memory");
  for (size_t i = 0; i < n; i++) {
    int64_t r = (int64_t)((double)t[i] / p->scale + 0.5);
    if (i > 0 && r < p->r[i - 1] + gap) r = p->r[i - 1] + gap;
    p->r[i] = i == 0 ? 0 : r;
  }
  p->end = p->r[n - 1] + margin;
  if ((double)last + (double)margin * p->scale > (double)until)
    fprintf(stderr, "conf-replay: note: the margin after the last time that matters reaches past `until` "
                    "(the worker's clock runs %.0f ms beyond it)\n",
            (double)last + (double)margin * p->scale - (double)until);
}

static int64_t real_of(const plan *p, int64_t at) {
  size_t lo = 0, hi = p->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (p->t[mid] < at) lo = mid + 1;
    else hi = mid;
  }
  return lo < p->n && p->t[lo] == at ? p->r[lo] : (int64_t)((double)at / p->scale);
}

/* ---- Redis ---- */

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes s[0..n) into a new string. */
static char *pct_decode(const char *s, size_t n) {
  char *o = malloc(n + 1), *q = o;
  if (!o) die(EXIT_USAGE, "out of memory");
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      *q++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    } else {
      *q++ = s[i];
    }
  }
  *q = 0;
  return o;
}

/* Connects to redis://[[user]:password@]host[:port][/db] (plain TCP: the harness's server). */
static redisContext *redis_connect(const char *url) {
  if (strncmp(url, "redis://", 8) != 0)
    die(EXIT_USAGE, "REDIS_URL must start with redis:// (the replay speaks plain TCP to the test's server)");
  const char *p = url + 8, *at = strrchr(p, '@');
  char *user = NULL, *pass = NULL;
  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (colon) {
      if (colon > p) user = pct_decode(p, (size_t)(colon - p));
      pass = pct_decode(colon + 1, (size_t)(at - colon - 1));
    } else {
      pass = pct_decode(p, (size_t)(at - p));
    }
    p = at + 1;
  }
  size_t hl = strcspn(p, ":/");
  char host[256];
  snprintf(host, sizeof host, "%.*s", (int)(hl < 255 ? hl : 255), p);
  int port = 6379, db = 0;
  p += hl;
  if (*p == ':') port = atoi(++p);
  p += strcspn(p, "/");
  if (*p == '/') db = atoi(p + 1);
  struct timeval tv = {5, 0};
  redisContext *c = redisConnectWithTimeout(host, port, tv);
  if (!c || c->err) die(EXIT_RUN, "cannot connect to Redis at %s:%d: %s", host, port, c ? c->errstr : "out of memory");
  redisSetTimeout(c, tv);
  if (pass) {
    redisReply *r = user ? redisCommand(c, "AUTH %s %s", user, pass) : redisCommand(c, "AUTH %s", pass);
    if (!r || r->type == REDIS_REPLY_ERROR) die(EXIT_RUN, "Redis refused AUTH: %s", r ? r->str : c->errstr);
    freeReplyObject(r);
  }
  if (db) {
    redisReply *r = redisCommand(c, "SELECT %d", db);
    if (!r || r->type == REDIS_REPLY_ERROR) die(EXIT_RUN, "Redis refused SELECT %d", db);
    freeReplyObject(r);
  }
  free(user);
  free(pass);
  return c;
}

/* A command as an argument vector, built up and then sent. */
typedef struct cmd {
  const char **argv;
  size_t *lens;
  char **owned;
  size_t n, cap, nowned;
} cmd;

static void cmd_arg(cmd *c, const char *s, size_t len, int own) {
  if (c->n == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 16;
    c->argv = realloc(c->argv, c->cap * sizeof *c->argv);
    c->lens = realloc(c->lens, c->cap * sizeof *c->lens);
    c->owned = realloc(c->owned, c->cap * sizeof *c->owned);
    if (!c->argv || !c->lens || !c->owned) die(EXIT_USAGE, "out of memory");
  }
  c->argv[c->n] = s;
  c->lens[c->n++] = len;
  if (own) c->owned[c->nowned++] = (char *)s;
}

static void cmd_str(cmd *c, const char *s) { cmd_arg(c, s, strlen(s), 0); }

static void cmd_reset(cmd *c) {
  for (size_t i = 0; i < c->nowned; i++) free(c->owned[i]);
  c->n = c->nowned = 0;
}

static void cmd_free(cmd *c) {
  cmd_reset(c);
  free(c->argv);
  free(c->lens);
  free(c->owned);
}

/* Runs one command; dies on an error. The caller frees the reply. */
static redisReply *run_cmd(redisContext *rc, const cmd *c, const char *what) {
  redisReply *r = redisCommandArgv(rc, (int)c->n, c->argv, c->lens);
  if (!r) die(EXIT_RUN, "%s: %s", what, rc->errstr);
  if (r->type == REDIS_REPLY_ERROR) die(EXIT_RUN, "%s: Redis refused %s: %s", what, c->argv[0], r->str);
  return r;
}

static void append_cmd(redisContext *rc, const cmd *c) {
  if (redisAppendCommandArgv(rc, (int)c->n, c->argv, c->lens) != REDIS_OK) die(EXIT_RUN, "%s", rc->errstr);
}

/* The text the simulator reads a value as: a string as it is, anything else as its JSON text. */
static char *value_text(const json_t *v) {
  char *s = json_is_string(v) ? strdup(json_string_value(v)) : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!s) die(EXIT_USAGE, "out of memory");
  return s;
}

/* The JSON text of row key of a json table once `row` is merged into what it holds (GET, at once:
   call it before a MULTI is queued); a null field is removed. malloc'ed. */
static char *json_merged(redisContext *rc, const char *key, const json_t *row) {
  redisReply *r = redisCommand(rc, "GET %s", key);
  if (!r || r->type == REDIS_REPLY_ERROR) die(EXIT_RUN, "GET %s: %s", key, r ? r->str : rc->errstr);
  json_t *obj = NULL;
  if (r->type == REDIS_REPLY_STRING) {
    json_error_t je;
    obj = json_loadb(r->str, r->len, 0, &je);
    if (!json_is_object(obj)) die(EXIT_RUN, "%s holds no JSON object", key);
  } else {
    obj = json_object();
  }
  freeReplyObject(r);
  const char *name;
  json_t *v;
  json_object_foreach((json_t *)row, name, v) {
    if (json_is_null(v)) json_object_del(obj, name);
    else json_object_set(obj, name, v);
  }
  char *text = json_dumps(obj, JSON_COMPACT);
  json_decref(obj);
  if (!text) die(EXIT_USAGE, "out of memory");
  return text;
}

/* Queues the commands that write fields `row` into row `key` of t on rc's pipeline: SET of json (the
   merged object, from json_merged) for a json table; HSET, and HDEL for the null fields, for a hash.
   Returns how many replies they will have. */
static int append_row_write(redisContext *rc, const table *t, const char *key, const json_t *row,
                            const char *json) {
  cmd c = {0};
  int replies = 0;
  const char *name;
  json_t *v;
  if (t->json) {
    cmd_str(&c, "SET");
    cmd_str(&c, key);
    cmd_str(&c, json);
    append_cmd(rc, &c);
    cmd_free(&c);
    return 1;
  }
  cmd_str(&c, "HSET");
  cmd_str(&c, key);
  json_object_foreach((json_t *)row, name, v) {
    if (json_is_null(v)) continue;
    cmd_str(&c, name);
    char *s = value_text(v);
    cmd_arg(&c, s, strlen(s), 1);
  }
  if (c.n > 2) {
    append_cmd(rc, &c);
    replies++;
  }
  cmd_reset(&c);
  cmd_str(&c, "HDEL");
  cmd_str(&c, key);
  json_object_foreach((json_t *)row, name, v) {
    if (json_is_null(v)) cmd_str(&c, name);
  }
  if (c.n > 2) {
    append_cmd(rc, &c);
    replies++;
  }
  cmd_free(&c);
  return replies;
}

/* Reads n replies of the pipeline; dies on the first error. */
static void read_replies(redisContext *rc, int n, const char *what) {
  for (int i = 0; i < n; i++) {
    void *p = NULL;
    if (redisGetReply(rc, &p) != REDIS_OK) die(EXIT_RUN, "%s: %s", what, rc->errstr);
    redisReply *r = p;
    if (r->type == REDIS_REPLY_ERROR) die(EXIT_RUN, "%s: Redis refused a command: %s", what, r->str);
    if (r->type == REDIS_REPLY_ARRAY)
      for (size_t k = 0; k < r->elements; k++)
        if (r->element[k]->type == REDIS_REPLY_ERROR)
          die(EXIT_RUN, "%s: Redis refused a command in the MULTI: %s", what, r->element[k]->str);
    freeReplyObject(r);
  }
}

/* A row that exists before the start: the write alone, nothing in any feed. */
static void write_initial_row(redisContext *rc, const module_info *mi, const char *tname, const char *id,
                              const json_t *row) {
  table t = table_of(mi, tname);
  char *key = row_key(&t, id);
  char *json = t.json ? json_merged(rc, key, row) : NULL;
  read_replies(rc, append_row_write(rc, &t, key, row, json), key);
  free(json);
  free(key);
}

/* An event, as the app writes it. Returns the op the feed delivers ("insert" or "update"). */
static const char *write_event(redisContext *rc, const module_info *mi, const event *e) {
  table t = table_of(mi, e->table);
  char *key = row_key(&t, e->id);
  const char *op = e->op;
  if (!op) {
    redisReply *r = redisCommand(rc, "EXISTS %s", key);
    if (!r || r->type != REDIS_REPLY_INTEGER) die(EXIT_RUN, "EXISTS %s failed", key);
    op = r->integer ? "update" : "insert";
    freeReplyObject(r);
  }
  json_t *empty = json_object();
  const json_t *row = e->row ? e->row : empty;
  char *json = t.json ? json_merged(rc, key, row) : NULL;
  if (!t.stream) { /* keyspace and scan feeds see the write itself */
    read_replies(rc, append_row_write(rc, &t, key, row, json), key);
  } else {
    char stream[256];
    snprintf(stream, sizeof stream, "%s%s", SK_KEY_PREFIX_DEFAULT, t.name);
    cmd c = {0};
    cmd_str(&c, "MULTI");
    append_cmd(rc, &c);
    int n = 1 + append_row_write(rc, &t, key, row, json); /* queued: +QUEUED each */
    cmd_reset(&c);
    const char *xadd[] = {"XADD", stream, "*", "id", e->id, "op", op};
    for (size_t i = 0; i < sizeof xadd / sizeof xadd[0]; i++) cmd_str(&c, xadd[i]);
    append_cmd(rc, &c);
    cmd_reset(&c);
    cmd_str(&c, "EXEC");
    append_cmd(rc, &c);
    cmd_free(&c);
    read_replies(rc, n + 2, key);
  }
  free(json);
  json_decref(empty);
  free(key);
  return op;
}

/* ---- output: our own lines, printed after the worker's log ---- */

typedef struct lines {
  char **v;
  size_t n, cap;
} lines;

static void lines_add(lines *l, json_t *o) {
  char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (!s) die(EXIT_USAGE, "out of memory");
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 32;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    if (!l->v) die(EXIT_USAGE, "out of memory");
  }
  l->v[l->n++] = s;
}

/* The dead letters the worker left in skene:dlq, one replay.dlq line each. */
static void read_dlq(redisContext *rc, lines *out) {
  char key[64];
  snprintf(key, sizeof key, "%sdlq", SK_KEY_PREFIX_DEFAULT);
  redisReply *r = redisCommand(rc, "XRANGE %s - +", key);
  if (!r || r->type != REDIS_REPLY_ARRAY) die(EXIT_RUN, "XRANGE %s failed", key);
  for (size_t i = 0; i < r->elements; i++) {
    const redisReply *e = r->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
    const redisReply *f = e->element[1];
    json_t *o = json_pack("{ss}", "event", "replay.dlq");
    for (size_t k = 0; k + 1 < f->elements; k += 2) {
      const char *name = f->element[k]->str;
      if (strcmp(name, "loop") == 0 || strcmp(name, "subject") == 0 || strcmp(name, "step") == 0 ||
          strcmp(name, "reason") == 0)
        json_object_set_new(o, name, json_stringn(f->element[k + 1]->str, f->element[k + 1]->len));
    }
    lines_add(out, o);
  }
  freeReplyObject(r);
}

/* ---- waiting for the worker ---- */

typedef struct logtail {
  int fd;
  off_t off;       /* how much of the log was read */
  char *buf;       /* a line not yet complete */
  size_t len, cap;
} logtail;

/* Reads what the worker logged since the last call and, for each line whose event is names[i],
   adds one to counts[i] (n names). */
static void tail_count(logtail *lt, const char *const *names, int *counts, size_t n) {
  char chunk[4096];
  ssize_t r;
  while ((r = pread(lt->fd, chunk, sizeof chunk, lt->off)) > 0) {
    lt->off += r;
    if (lt->len + (size_t)r + 1 > lt->cap) {
      lt->cap = (lt->len + (size_t)r + 1) * 2;
      lt->buf = realloc(lt->buf, lt->cap);
      if (!lt->buf) die(EXIT_USAGE, "out of memory");
    }
    memcpy(lt->buf + lt->len, chunk, (size_t)r);
    lt->len += (size_t)r;
  }
  char *nl;
  while (lt->len && (nl = memchr(lt->buf, '\n', lt->len)) != NULL) {
    json_error_t je;
    json_t *o = json_loadb(lt->buf, (size_t)(nl - lt->buf), 0, &je);
    const char *ev = json_string_value(json_object_get(o, "event"));
    for (size_t i = 0; ev && i < n; i++) counts[i] += strcmp(ev, names[i]) == 0;
    json_decref(o);
    size_t used = (size_t)(nl - lt->buf) + 1;
    memmove(lt->buf, nl + 1, lt->len - used);
    lt->len -= used;
  }
}

/* Keyspace and scan tables: waits until the worker's feed finished its first pass (the empty member
   of skene:seen:T, feed.h), so that no row written from now on is taken for one that existed. */
static void wait_first_passes(redisContext *rc, const module_info *mi, int64_t deadline) {
  for (uint32_t t = 0; t < mi->ntables; t++) {
    if (mi->tables[t].stream) continue;
    char key[512];
    snprintf(key, sizeof key, "%sseen:%s", SK_KEY_PREFIX_DEFAULT, mi->tables[t].name);
    for (;;) {
      redisReply *r = redisCommand(rc, "SISMEMBER %s %b", key, "", (size_t)0);
      if (!r || r->type != REDIS_REPLY_INTEGER) die(EXIT_RUN, "SISMEMBER %s failed", key);
      long long done = r->integer;
      freeReplyObject(r);
      if (done) break;
      if (mono_ms() > deadline)
        die(EXIT_RUN, "the %s feed did not finish its first pass within %d ms", mi->tables[t].name,
            START_TIMEOUT_MS);
      sleep_until(mono_ms() + 5);
    }
  }
}

/* Copies the whole log to stdout. */
static void print_log(int fd) {
  char chunk[65536];
  ssize_t r;
  off_t off = 0;
  while ((r = pread(fd, chunk, sizeof chunk, off)) > 0) {
    fwrite(chunk, 1, (size_t)r, stdout);
    off += r;
  }
}

/* ---- main ---- */

static void usage(void) {
  fprintf(stderr, "usage: conf-replay --vm SKENE_VM --outbox DIR [--timeline SIM.jsonl] [--time-scale S]\n"
                  "                   [--min-gap-ms G] [--cap-ms C] [--margin-ms M] SCENARIO.json FILE.skb\n");
  exit(EXIT_USAGE);
}

static int64_t pos_arg(const char *opt, const char *v) {
  char *end;
  long long n = strtoll(v, &end, 10);
  if (end == v || *end || n <= 0) die(EXIT_USAGE, "%s needs a positive number of ms, not '%s'", opt, v);
  return (int64_t)n;
}

int main(int argc, char **argv) {
  const char *vm = NULL, *outbox = NULL, *timeline = NULL, *scenario = NULL, *skb = NULL;
  double forced_scale = 0;
  int64_t gap = 50, cap_ms = 3000, margin = 300;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (a[0] == '-' && a[1] == '-' && !v) usage();
    if (strcmp(a, "--vm") == 0) vm = argv[++i];
    else if (strcmp(a, "--outbox") == 0) outbox = argv[++i];
    else if (strcmp(a, "--timeline") == 0) timeline = argv[++i];
    else if (strcmp(a, "--time-scale") == 0) {
      forced_scale = strtod(v, NULL);
      if (!(forced_scale > 0)) die(EXIT_USAGE, "--time-scale needs a positive number");
      i++;
    } else if (strcmp(a, "--min-gap-ms") == 0) gap = pos_arg(a, argv[++i]);
    else if (strcmp(a, "--cap-ms") == 0) cap_ms = pos_arg(a, argv[++i]);
    else if (strcmp(a, "--margin-ms") == 0) margin = pos_arg(a, argv[++i]);
    else if (a[0] == '-') usage();
    else if (!scenario) scenario = a;
    else if (!skb) skb = a;
    else usage();
  }
  if (!vm || !outbox || !scenario || !skb) usage();
  const char *url = getenv("REDIS_URL");
  if (!url || !url[0]) die(EXIT_USAGE, "REDIS_URL is not set (run under tests/redis/with-redis.sh)");

  module_info mi = {0};
  module_read(skb, &mi);

  json_error_t je;
  json_t *sc = json_load_file(scenario, 0, &je);
  if (!json_is_object(sc)) die(EXIT_USAGE, "%s:%d:%d: %s", scenario, je.line, je.column, je.text);
  if (json_object_get(sc, "generate"))
    die(EXIT_USAGE, "%s: `generate` (the benchmark extension) is not replayed on Redis", scenario);
  int64_t until = json_object_get(sc, "until") ? duration_ms(json_object_get(sc, "until")) : DAY_MS;
  if (until < 0) die(EXIT_USAGE, "%s: until: not a duration", scenario);
  size_t nev;
  event *ev = scenario_events(sc, until, &nev);

  plan p;
  make_plan(&p, ev, nev, timeline, until, forced_scale, gap, cap_ms, margin);
  for (size_t i = 0; i < nev; i++) ev[i].real = real_of(&p, ev[i].at);
  lines out = {0};
  lines_add(&out, json_pack("{ss sf sI sI sI sI sI}", "event", "replay.plan", "time_scale", p.scale,
                            "min_gap_ms", (json_int_t)p.min_gap, "last_ms", (json_int_t)p.t[p.n - 1],
                            "real_ms", (json_int_t)p.end, "events", (json_int_t)nev,
                            "indexed_tables", (json_int_t)mi.nindexed));

  /* ---- before the start: Redis data and rows ---- */
  redisContext *rc = redis_connect(url);
  json_t *cmds = json_object_get(sc, "redis"), *c1;
  size_t i;
  json_array_foreach(cmds, i, c1) {
    cmd c = {0};
    size_t k;
    json_t *a;
    json_array_foreach(c1, k, a) {
      if (!json_is_string(a)) die(EXIT_USAGE, "redis[%zu][%zu]: a string is required", i, k);
      cmd_arg(&c, json_string_value(a), json_string_length(a), 0);
    }
    if (c.n == 0) die(EXIT_USAGE, "redis[%zu]: an empty command", i);
    freeReplyObject(run_cmd(rc, &c, "redis"));
    cmd_free(&c);
  }
  json_t *rows = json_object_get(sc, "rows"), *row;
  json_array_foreach(rows, i, row) {
    const json_t *fields = json_object_get(row, "row");
    json_t *empty = json_object();
    write_initial_row(rc, &mi, str_field(row, "table", "rows", i), str_field(row, "id", "rows", i),
                      json_is_object(fields) ? fields : empty);
    json_decref(empty);
  }

  /* ---- the worker ---- */
  FILE *log = tmpfile(); /* the worker's stdout */
  if (!log) die(EXIT_USAGE, "cannot create a temporary file: %s", strerror(errno));
  char scale_arg[64];
  snprintf(scale_arg, sizeof scale_arg, "%.17g", p.scale);
  if (setenv("SKENE_OUTBOX", outbox, 1) != 0) die(EXIT_USAGE, "setenv: %s", strerror(errno));
  fflush(NULL);
  pid_t parent = getpid();
  worker_pid = fork();
  if (worker_pid < 0) die(EXIT_RUN, "fork: %s", strerror(errno));
  if (worker_pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the driver */
    if (getppid() != parent) _exit(127);
    dup2(fileno(log), STDOUT_FILENO);
    const char *wargv[] = {vm, "run", "--worker", "conf", "--time-scale", scale_arg, "--faults", scenario, skb, NULL};
    execv(vm, (char *const *)wargv);
    fprintf(stderr, "conf-replay: cannot run %s: %s\n", vm, strerror(errno));
    _exit(127);
  }
  logtail lt = {fileno(log), 0, NULL, 0, 0};
  static const char *const marks[] = {"worker.start", "backfill.done", "backfill.error"};
  int seen[3] = {0, 0, 0};
  int64_t deadline = mono_ms() + START_TIMEOUT_MS;
  while (!seen[0] || seen[1] < (int)mi.nindexed) {
    int status;
    if (waitpid(worker_pid, &status, WNOHANG) == worker_pid) {
      worker_pid = 0;
      die(EXIT_RUN, "the worker exited before it started (status %d)",
          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    if (seen[2]) die(EXIT_RUN, "the worker could not backfill its indexes (backfill.error)");
    if (mono_ms() > deadline)
      die(EXIT_RUN, "no worker.start and %u backfill.done lines within %d ms", mi.nindexed, START_TIMEOUT_MS);
    sleep_until(mono_ms() + 2);
    tail_count(&lt, marks, seen, 3);
  }
  wait_first_passes(rc, &mi, deadline);

  /* ---- the events, in scaled real time ---- */
  int64_t t0 = mono_ms();
  for (size_t k = 0; k < nev; k++) {
    sleep_until(t0 + ev[k].real);
    int64_t late = mono_ms() - (t0 + ev[k].real);
    const char *op = write_event(rc, &mi, &ev[k]);
    lines_add(&out, json_pack("{ss sI sI sI ss ss ss}", "event", "replay.write", "at_ms", (json_int_t)ev[k].at,
                              "real_ms", (json_int_t)ev[k].real, "late_ms", (json_int_t)late, "table",
                              ev[k].table, "id", ev[k].id, "op", op));
  }
  sleep_until(t0 + p.end);

  /* ---- stop: SIGTERM, the worker drains and exits 0 ---- */
  kill(worker_pid, SIGTERM);
  int status = 0;
  deadline = mono_ms() + DRAIN_TIMEOUT_MS;
  for (;;) {
    pid_t w = waitpid(worker_pid, &status, WNOHANG);
    if (w == worker_pid) break;
    if (mono_ms() > deadline) die(EXIT_RUN, "the worker did not exit within %d ms of SIGTERM", DRAIN_TIMEOUT_MS);
    sleep_until(mono_ms() + 5);
  }
  worker_pid = 0;
  read_dlq(rc, &out);
  redisFree(rc);

  /* ---- the report: our plan, the worker's log, our writes and the dead letters ---- */
  puts(out.v[0]);
  print_log(fileno(log));
  for (size_t k = 1; k < out.n; k++) puts(out.v[k]);
  for (size_t k = 0; k < out.n; k++) free(out.v[k]);
  free(out.v);
  fclose(log);
  free(lt.buf);
  free(ev);
  free(p.t);
  free(p.r);
  json_decref(sc);
  free(mi.tables);
  sk_module_free(mi.m);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "conf-replay: the worker exited with status %d after SIGTERM (0 expected: it drains)\n",
            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return EXIT_RUN;
  }
  return 0;
}
