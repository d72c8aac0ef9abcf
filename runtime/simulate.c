/*
 * simulate.c: `skene-vm simulate` (see simulate.h): the scenario reader, the driver that advances the
 * virtual clock from event to timer, and the printers (JSON lines, text, summary).
 *
 * The driver is the production runtime's loop with the I/O taken out: at each instant t (the earliest
 * scenario event or timer), every scenario event at t is applied to the store in file order and its
 * row announced to the scheduler (which starts, wakes and runs instances), then the timers due at t
 * fire. Nothing depends on the wall clock or on addresses, so the output is a function of the module,
 * the scenario and the seed.
 */
#define _POSIX_C_SOURCE 200809L
#include "simulate.h"
#include "sbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memstore.h"
#include "opcodes.h"
#include "vm.h"

#define DEFAULT_START_MS INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */
#define DEFAULT_UNTIL_MS INT64_C(86400000)      /* 1d */
#define MAX_DURATION_MS (INT64_C(3650) * 86400000) /* ten years: keeps every sum of times in range */
#define MAX_GEN_COUNT (UINT64_C(1) << 32)
#define MAX_GEN_FACTOR (UINT64_C(1) << 31)

/* ---- the scenario ---- */

/* A row write: `rows` (at is unused) and `events`. Strings and rows are borrowed from the JSON root. */
typedef struct {
  const char *table, *id;
  json_t *row;
  int64_t at;      /* ms after the start */
  uint32_t op;     /* SK_EVENT_INSERT / SK_EVENT_UPDATE as the feed delivers it; 0: as the store saw it */
  size_t order;    /* position in the file, for a stable sort */
} sc_write;

/* A `generate` text: literals and {n}, {n*K}, {n+K} (the value n*mul + add). */
typedef struct {
  const char *lit;
  size_t len;      /* literal when lit != NULL */
  uint64_t mul, add;
} tpart;
typedef struct {
  tpart *v;
  size_t n;
  size_t max_len;  /* the longest text it makes: its literals and 20 digits a placeholder */
} gtext;

typedef struct {
  const char *key;
  json_t *value;   /* copied as it is when not a string */
  gtext text;       /* a string value, with its placeholders */
} gen_field;

typedef struct {
  uint64_t count;
  int64_t start, every;
  const char *table;
  uint32_t op;
  gtext id;
  gen_field *fields;
  size_t nfields;
} sc_gen;

typedef struct {
  const char *provider;
  int status;      /* 0: a timeout */
  uint32_t count;
  int64_t retry_after_ms;
} sc_fault;

typedef struct {
  const char **argv;
  uint32_t argc;
} sc_redis;

struct sk_scenario {
  char *path;
  json_t *root;
  int64_t start_ms, until_ms;
  uint64_t seed;
  sc_write *rows, *events;
  size_t nrows, nevents;
  sc_fault *faults;
  size_t nfaults;
  sc_redis *redis;
  size_t nredis;
  sc_gen *gens;
  size_t ngens;
};

typedef struct {
  const char *path;
  char *err;
  size_t errlen;
} reader;

static int fail(reader *r, const char *where, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(reader *r, const char *where, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(r->err, r->errlen, "%s: %s%s%s", r->path, where, where[0] ? ": " : "", msg);
  return SK_SIM_EINPUT;
}

static int oom(reader *r) {
  snprintf(r->err, r->errlen, "%s: out of memory", r->path);
  return SK_SIM_EIO;
}

/* Duration: a non-negative integer of ms, or "<digits>(ms|s|m|h|d)". */
static int parse_duration(reader *r, const char *where, const json_t *v, int64_t *out) {
  if (json_is_integer(v)) {
    json_int_t n = json_integer_value(v);
    if (n < 0 || n > MAX_DURATION_MS) return fail(r, where, "invalid duration %" JSON_INTEGER_FORMAT ": must be 0 to 3650d in ms", n);
    *out = n;
    return SK_SIM_OK;
  }
  if (!json_is_string(v)) return fail(r, where, "a duration must be a string such as '30s' or a number of milliseconds");
  const char *s = json_string_value(v), *p = s;
  int64_t n = 0;
  while (*p >= '0' && *p <= '9' && n <= MAX_DURATION_MS) n = n * 10 + (*p++ - '0');
  int64_t unit = 0;
  if (p > s && n <= MAX_DURATION_MS) {
    if (strcmp(p, "ms") == 0) unit = 1;
    else if (strcmp(p, "s") == 0) unit = 1000;
    else if (strcmp(p, "m") == 0) unit = 60000;
    else if (strcmp(p, "h") == 0) unit = 3600000;
    else if (strcmp(p, "d") == 0) unit = 86400000;
  }
  if (!unit) return fail(r, where, "invalid duration '%s': use '250ms', '30s', '5m', '2h', '7d' or a number of milliseconds", s);
  if (n > MAX_DURATION_MS / unit) return fail(r, where, "invalid duration '%s': longer than 3650d", s);
  *out = n * unit;
  return SK_SIM_OK;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t mo, int64_t d) {
  y -= mo <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DDTHH:MM:SS[.mmm]Z" in UTC -> ms since the Unix epoch. */
static int parse_time(reader *r, const char *where, const json_t *v, int64_t *out) {
  const char *s = json_is_string(v) ? json_string_value(v) : NULL;
  int f[6] = {0}, ms = 0;
  static const int width[6] = {4, 2, 2, 2, 2, 2};
  static const char sep[6] = {'-', '-', 'T', ':', ':', 0};
  const char *p = s;
  int ok = p != NULL;
  for (int i = 0; ok && i < 6; i++) {
    for (int k = 0; k < width[i]; k++, p++) {
      if (*p < '0' || *p > '9') ok = 0;
      if (!ok) break;
      f[i] = f[i] * 10 + (*p - '0');
    }
    if (ok && sep[i]) ok = *p++ == sep[i];
  }
  if (ok && *p == '.') {
    p++;
    for (int k = 0; k < 3 && ok; k++, p++) {
      ok = *p >= '0' && *p <= '9';
      if (ok) ms = ms * 10 + (*p - '0');
    }
  }
  ok = ok && p[0] == 'Z' && p[1] == 0;
  static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (f[0] % 4 == 0 && f[0] % 100 != 0) || f[0] % 400 == 0;
  ok = ok && f[0] >= 1970 && f[1] >= 1 && f[1] <= 12 && f[2] >= 1 && f[2] <= mdays[f[1] - 1] &&
       !(f[1] == 2 && f[2] == 29 && !leap) && f[3] <= 23 && f[4] <= 59 && f[5] <= 59;
  if (!ok)
    return fail(r, where, "invalid time %s%s%s: use UTC ISO 8601, 'YYYY-MM-DDTHH:MM:SS[.mmm]Z'", s ? "'" : "",
                s ? s : "(not a string)", s ? "'" : "");
  *out = ((days_from_civil(f[0], f[1], f[2]) * 24 + f[3]) * 60 + f[4]) * 60000 + (int64_t)f[5] * 1000 + ms;
  return SK_SIM_OK;
}

/* Checks that obj is an object whose keys are all in `allowed` (NULL-terminated). */
static int check_object(reader *r, const char *where, const json_t *obj, const char *const *allowed) {
  if (!json_is_object(obj)) return fail(r, where, "must be an object");
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)obj, key, val) {
    int known = 0;
    for (size_t i = 0; allowed[i] && !known; i++) known = strcmp(key, allowed[i]) == 0;
    if (known) continue;
    char list[256] = "";
    for (size_t i = 0; allowed[i]; i++) {
      size_t l = strlen(list);
      snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", allowed[i]);
    }
    return fail(r, where, "unknown key '%s' (expected: %s)", key, list);
  }
  return SK_SIM_OK;
}

static int get_string(reader *r, const char *where, const json_t *obj, const char *key, int required, const char **out) {
  json_t *v = json_object_get(obj, key);
  char w[160];
  snprintf(w, sizeof w, "%s%s%s", where, where[0] ? "." : "", key);
  if (!v) {
    if (required) return fail(r, where, "'%s' is required", key);
    *out = NULL;
    return SK_SIM_OK;
  }
  if (!json_is_string(v) || json_string_length(v) == 0) return fail(r, w, "must be a non-empty string");
  if (strlen(json_string_value(v)) != json_string_length(v)) return fail(r, w, "must not contain NUL characters");
  *out = json_string_value(v);
  return SK_SIM_OK;
}

static int get_op(reader *r, const char *where, const json_t *obj, uint32_t *op) {
  const char *s = NULL;
  int rc = get_string(r, where, obj, "op", 0, &s);
  if (rc) return rc;
  *op = 0;
  if (!s) return SK_SIM_OK;
  if (strcmp(s, "insert") == 0) *op = SK_EVENT_INSERT;
  else if (strcmp(s, "update") == 0) *op = SK_EVENT_UPDATE;
  else {
    char w[160];
    snprintf(w, sizeof w, "%s.op", where);
    return fail(r, w, "invalid op '%s': use 'insert' or 'update'", s);
  }
  return SK_SIM_OK;
}

static int read_write(reader *r, const char *where, const json_t *v, int timed, sc_write *w) {
  static const char *const ev_keys[] = {"at", "table", "op", "id", "row", NULL};
  static const char *const row_keys[] = {"table", "id", "row", NULL};
  int rc = check_object(r, where, v, timed ? ev_keys : row_keys);
  if (rc) return rc;
  if ((rc = get_string(r, where, v, "table", 1, &w->table)) || (rc = get_string(r, where, v, "id", 1, &w->id))) return rc;
  w->row = json_object_get(v, "row");
  char p[160];
  snprintf(p, sizeof p, "%s.row", where);
  if (!w->row) return fail(r, where, "'row' is required (an object of the row's fields)");
  if (!json_is_object(w->row)) return fail(r, p, "must be an object of the row's fields");
  if (!timed) return SK_SIM_OK;
  json_t *at = json_object_get(v, "at");
  snprintf(p, sizeof p, "%s.at", where);
  if (!at) return fail(r, where, "'at' is required (a duration after the start)");
  if ((rc = parse_duration(r, p, at, &w->at))) return rc;
  return get_op(r, where, v, &w->op);
}

/* Parses a generate text; {n}, {n*K}, {n+K} are placeholders, any other brace is literal. */
static int tmpl_parse(reader *r, const char *where, const char *s, gtext *t) {
  size_t cap = 4;
  t->v = malloc(cap * sizeof *t->v);
  t->n = 0;
  if (!t->v) return oom(r);
  const char *lit = s;
  for (const char *p = s;;) {
    const char *ph = strstr(p, "{n");
    if (!ph) break;
    const char *q = ph + 2;
    uint64_t k = 0, mul = 1, add = 0;
    int ok = 1;
    if (*q == '*' || *q == '+') {
      char opc = *q++;
      const char *digits = q;
      while (*q >= '0' && *q <= '9' && k < MAX_GEN_FACTOR) k = k * 10 + (uint64_t)(*q++ - '0');
      ok = q > digits && k < MAX_GEN_FACTOR;
      if (opc == '*') mul = k;
      else add = k;
    }
    if (!ok || *q != '}') {
      if (ok) {
        p = ph + 1;
        continue;
      }
      return fail(r, where, "invalid placeholder in '%s': use {n}, {n*K} or {n+K} with K below 2^31", s);
    }
    if (t->n + 2 > cap) {
      cap *= 2;
      tpart *nv = realloc(t->v, cap * sizeof *nv);
      if (!nv) return oom(r);
      t->v = nv;
    }
    if (ph > lit) t->v[t->n++] = (tpart){lit, (size_t)(ph - lit), 0, 0};
    t->v[t->n++] = (tpart){NULL, 0, mul, add};
    p = lit = q + 1;
  }
  if (*lit) {
    if (t->n + 1 > cap) {
      tpart *nv = realloc(t->v, (cap + 1) * sizeof *nv);
      if (!nv) return oom(r);
      t->v = nv;
    }
    t->v[t->n++] = (tpart){lit, strlen(lit), 0, 0};
  }
  for (size_t i = 0; i < t->n; i++) t->max_len += t->v[i].lit ? t->v[i].len : 20; /* n*mul + add < 2^64 */
  return SK_SIM_OK;
}

static int read_gen(reader *r, const char *where, const json_t *v, sc_gen *g) {
  static const char *const keys[] = {"count", "start", "every", "table", "op", "id", "row", NULL};
  int rc = check_object(r, where, v, keys);
  if (rc) return rc;
  char p[160];
  json_t *count = json_object_get(v, "count");
  snprintf(p, sizeof p, "%s.count", where);
  if (!count) return fail(r, where, "'count' is required");
  if (!json_is_integer(count) || json_integer_value(count) < 0 || (uint64_t)json_integer_value(count) > MAX_GEN_COUNT)
    return fail(r, p, "must be an integer from 0 to 2^32");
  g->count = (uint64_t)json_integer_value(count);
  json_t *start = json_object_get(v, "start"), *every = json_object_get(v, "every");
  g->start = 0;
  g->every = 1;
  snprintf(p, sizeof p, "%s.start", where);
  if (start && (rc = parse_duration(r, p, start, &g->start))) return rc;
  snprintf(p, sizeof p, "%s.every", where);
  if (every && (rc = parse_duration(r, p, every, &g->every))) return rc;
  if (g->count && (uint64_t)g->every > (uint64_t)(MAX_DURATION_MS - g->start) / g->count)
    return fail(r, where, "the last event would be more than 3650d after the start");
  const char *id;
  if ((rc = get_string(r, where, v, "table", 1, &g->table)) || (rc = get_string(r, where, v, "id", 1, &id)) ||
      (rc = get_op(r, where, v, &g->op)))
    return rc;
  snprintf(p, sizeof p, "%s.id", where);
  if ((rc = tmpl_parse(r, p, id, &g->id))) return rc;
  json_t *row = json_object_get(v, "row");
  snprintf(p, sizeof p, "%s.row", where);
  if (row && !json_is_object(row)) return fail(r, p, "must be an object of the row's fields");
  size_t n = row ? json_object_size(row) : 0;
  g->fields = calloc(n + 1, sizeof *g->fields);
  if (!g->fields) return oom(r);
  const char *key;
  json_t *val;
  if (row) json_object_foreach(row, key, val) {
    gen_field *f = &g->fields[g->nfields++];
    f->key = key;
    f->value = val;
    if (!json_is_string(val)) continue;
    char fp[200];
    snprintf(fp, sizeof fp, "%s.row.%s", where, key);
    if ((rc = tmpl_parse(r, fp, json_string_value(val), &f->text))) return rc;
  }
  return SK_SIM_OK;
}

static void tmpl_free(gtext *t) { free(t->v); }

void sk_scenario_free(sk_scenario *sc) {
  if (!sc) return;
  for (size_t i = 0; i < sc->ngens; i++) {
    tmpl_free(&sc->gens[i].id);
    for (size_t k = 0; k < sc->gens[i].nfields; k++) tmpl_free(&sc->gens[i].fields[k].text);
    free(sc->gens[i].fields);
  }
  free(sc->gens);
  for (size_t i = 0; i < sc->nredis; i++) free(sc->redis[i].argv);
  free(sc->redis);
  free(sc->faults);
  free(sc->rows);
  free(sc->events);
  json_decref(sc->root);
  free(sc->path);
  free(sc);
}

static int write_cmp(const void *a, const void *b) {
  const sc_write *x = a, *y = b;
  if (x->at != y->at) return x->at < y->at ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

/* The array at key (NULL when absent), or an error when it is not an array. */
static int get_array(reader *r, const json_t *root, const char *key, json_t **out) {
  *out = json_object_get(root, key);
  if (*out && !json_is_array(*out)) return fail(r, key, "must be an array");
  return SK_SIM_OK;
}

size_t sk_scenario_nfaults(const sk_scenario *sc) { return sc->nfaults; }

void sk_scenario_fault(const sk_scenario *sc, size_t i, const char **provider, int *status, uint32_t *count,
                       int64_t *retry_after_ms) {
  const sc_fault *f = &sc->faults[i];
  *provider = f->provider;
  *status = f->status;
  *count = f->count;
  *retry_after_ms = f->retry_after_ms;
}

static int read_faults(reader *r, sk_scenario *sc, const json_t *arr) {
  static const char *const keys[] = {"provider", "status", "error", "count", "retryAfter", NULL};
  static const char *const providers[] = {"resend", "outbox", "webhook", "redis"};
  sc->faults = calloc(json_array_size(arr) + 1, sizeof *sc->faults);
  if (!sc->faults) return oom(r);
  for (size_t i = 0; i < json_array_size(arr); i++) {
    json_t *v = json_array_get(arr, i);
    sc_fault *f = &sc->faults[sc->nfaults++];
    char w[64], p[96];
    snprintf(w, sizeof w, "faults[%zu]", i);
    int rc = check_object(r, w, v, keys);
    if (rc || (rc = get_string(r, w, v, "provider", 1, &f->provider))) return rc;
    int known = 0;
    for (size_t k = 0; k < 4; k++) known |= strcmp(f->provider, providers[k]) == 0;
    snprintf(p, sizeof p, "%s.provider", w);
    if (!known) return fail(r, p, "unknown provider '%s': use resend, outbox, webhook or redis", f->provider);
    json_t *status = json_object_get(v, "status"), *error = json_object_get(v, "error");
    if (!!status == !!error) return fail(r, w, "give either 'status' (an HTTP status) or \"error\": \"timeout\"");
    if (status) {
      snprintf(p, sizeof p, "%s.status", w);
      if (!json_is_integer(status) || json_integer_value(status) < 100 || json_integer_value(status) > 599)
        return fail(r, p, "must be an HTTP status, 100 to 599");
      f->status = (int)json_integer_value(status);
    } else {
      snprintf(p, sizeof p, "%s.error", w);
      if (!json_is_string(error) || strcmp(json_string_value(error), "timeout") != 0)
        return fail(r, p, "the only error is \"timeout\"");
      f->status = 0;
    }
    json_t *count = json_object_get(v, "count"), *ra = json_object_get(v, "retryAfter");
    f->count = 1;
    if (count) {
      snprintf(p, sizeof p, "%s.count", w);
      if (!json_is_integer(count) || json_integer_value(count) < 0 || json_integer_value(count) > UINT32_MAX)
        return fail(r, p, "must be a non-negative integer");
      f->count = (uint32_t)json_integer_value(count);
    }
    snprintf(p, sizeof p, "%s.retryAfter", w);
    if (ra && (rc = parse_duration(r, p, ra, &f->retry_after_ms))) return rc;
  }
  return SK_SIM_OK;
}

static int read_redis(reader *r, sk_scenario *sc, const json_t *arr) {
  sc->redis = calloc(json_array_size(arr) + 1, sizeof *sc->redis);
  if (!sc->redis) return oom(r);
  for (size_t i = 0; i < json_array_size(arr); i++) {
    json_t *cmd = json_array_get(arr, i);
    char w[64];
    snprintf(w, sizeof w, "redis[%zu]", i);
    if (!json_is_array(cmd) || json_array_size(cmd) == 0 || json_array_size(cmd) > 64)
      return fail(r, w, "must be a command: an array of 1 to 64 strings, e.g. [\"SADD\", \"onboarded\", \"u1\"]");
    sc_redis *c = &sc->redis[sc->nredis++];
    c->argv = calloc(json_array_size(cmd), sizeof *c->argv);
    if (!c->argv) return oom(r);
    for (size_t k = 0; k < json_array_size(cmd); k++) {
      json_t *a = json_array_get(cmd, k);
      if (!json_is_string(a) || strlen(json_string_value(a)) != json_string_length(a)) {
        char p[96];
        snprintf(p, sizeof p, "%s[%zu]", w, k);
        return fail(r, p, "must be a string");
      }
      c->argv[c->argc++] = json_string_value(a);
    }
  }
  return SK_SIM_OK;
}

static int read_scenario(reader *r, sk_scenario *sc) {
  static const char *const keys[] = {"description", "start", "until", "seed", "rows", "events",
                                     "faults", "redis", "generate", NULL};
  json_t *root = sc->root;
  int rc = check_object(r, "", root, keys);
  if (rc) return rc;
  json_t *v;
  if ((v = json_object_get(root, "description")) && !json_is_string(v)) return fail(r, "description", "must be a string");
  sc->start_ms = DEFAULT_START_MS;
  sc->until_ms = DEFAULT_UNTIL_MS;
  if ((v = json_object_get(root, "start")) && (rc = parse_time(r, "start", v, &sc->start_ms))) return rc;
  if ((v = json_object_get(root, "until")) && (rc = parse_duration(r, "until", v, &sc->until_ms))) return rc;
  if ((v = json_object_get(root, "seed"))) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return fail(r, "seed", "must be a non-negative integer");
    sc->seed = (uint64_t)json_integer_value(v);
  }
  json_t *rows, *events, *faults, *redis, *gen;
  if ((rc = get_array(r, root, "rows", &rows)) || (rc = get_array(r, root, "events", &events)) ||
      (rc = get_array(r, root, "faults", &faults)) || (rc = get_array(r, root, "redis", &redis)) ||
      (rc = get_array(r, root, "generate", &gen)))
    return rc;
  sc->rows = calloc(json_array_size(rows) + 1, sizeof *sc->rows);
  sc->events = calloc(json_array_size(events) + 1, sizeof *sc->events);
  sc->gens = calloc(json_array_size(gen) + 1, sizeof *sc->gens);
  if (!sc->rows || !sc->events || !sc->gens) return oom(r);
  for (size_t i = 0; i < json_array_size(rows); i++) {
    char w[64];
    snprintf(w, sizeof w, "rows[%zu]", i);
    if ((rc = read_write(r, w, json_array_get(rows, i), 0, &sc->rows[sc->nrows++]))) return rc;
  }
  for (size_t i = 0; i < json_array_size(events); i++) {
    char w[64];
    snprintf(w, sizeof w, "events[%zu]", i);
    sc_write *e = &sc->events[sc->nevents++];
    e->order = i;
    if ((rc = read_write(r, w, json_array_get(events, i), 1, e))) return rc;
  }
  qsort(sc->events, sc->nevents, sizeof *sc->events, write_cmp);
  for (size_t i = 0; i < json_array_size(gen); i++) {
    char w[64];
    snprintf(w, sizeof w, "generate[%zu]", i);
    if ((rc = read_gen(r, w, json_array_get(gen, i), &sc->gens[sc->ngens++]))) return rc;
  }
  if (faults && (rc = read_faults(r, sc, faults))) return rc;
  if (redis && (rc = read_redis(r, sc, redis))) return rc;
  return SK_SIM_OK;
}

int sk_scenario_load(const char *path, sk_scenario **out, char *err, size_t errlen) {
  reader r = {path, err, errlen};
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return SK_SIM_EIO;
  }
  json_error_t je;
  json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
  int read_err = ferror(f);
  fclose(f);
  if (read_err) {
    snprintf(err, errlen, "cannot read %s", path);
    json_decref(root);
    return SK_SIM_EIO;
  }
  if (!root) {
    snprintf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    return SK_SIM_EINPUT;
  }
  sk_scenario *sc = calloc(1, sizeof *sc);
  if (!sc || !(sc->path = strdup(path))) {
    free(sc);
    json_decref(root);
    return oom(&r);
  }
  sc->root = root;
  int rc = read_scenario(&r, sc);
  if (rc) {
    sk_scenario_free(sc);
    return rc;
  }
  *out = sc;
  return SK_SIM_OK;
}

/* ---- output ---- */

/* A JSON string: quotes, backslashes and control characters escaped; other bytes as they are (the
   timelines' own rules, which their golden files fix: not sk_sbuf.h's). */
static void sim_json(sk_sbuf *b, const char *s, size_t n) {
  sk_sb_put(b, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') {
      run++;
      continue;
    }
    sk_sb_put(b, s + i - run, run);
    run = 0;
    char esc[8];
    switch (c) {
    case '"': sk_sb_put(b, "\\\"", 2); break;
    case '\\': sk_sb_put(b, "\\\\", 2); break;
    case '\n': sk_sb_put(b, "\\n", 2); break;
    case '\r': sk_sb_put(b, "\\r", 2); break;
    case '\t': sk_sb_put(b, "\\t", 2); break;
    case '\b': sk_sb_put(b, "\\b", 2); break;
    case '\f': sk_sb_put(b, "\\f", 2); break;
    default:
      snprintf(esc, sizeof esc, "\\u%04x", c);
      sk_sb_put(b, esc, 6);
    }
  }
  sk_sb_put(b, s + n - run, run);
  sk_sb_put(b, "\"", 1);
}

static void sb_jstr(sk_sbuf *b, const sk_string *s) {
  if (s) sim_json(b, s->data, s->len);
  else sk_sb_puts(b, "null");
}

/* ",\"key\":" */
static void sb_key(sk_sbuf *b, const char *key) {
  sk_sb_put(b, ",\"", 2);
  sk_sb_puts(b, key);
  sk_sb_put(b, "\":", 2);
}

/* "+3m00.000s": an offset from the start, for the text timeline. */
static void fmt_offset(int64_t ms, char out[40]) {
  int64_t d = ms / 86400000, h = ms / 3600000 % 24, m = ms / 60000 % 60, s = ms / 1000 % 60, f = ms % 1000;
  if (d) snprintf(out, 40, "%" PRId64 "d%02" PRId64 "h%02" PRId64 "m%02" PRId64 ".%03" PRId64 "s", d, h, m, s, f);
  else if (h) snprintf(out, 40, "%" PRId64 "h%02" PRId64 "m%02" PRId64 ".%03" PRId64 "s", h, m, s, f);
  else if (m) snprintf(out, 40, "%" PRId64 "m%02" PRId64 ".%03" PRId64 "s", m, s, f);
  else snprintf(out, 40, "%" PRId64 ".%03" PRId64 "s", s, f);
}

/* The first field of the call named `name`, or NULL. */
static const sk_string *field(const sk_effect_call *c, const char *name) {
  for (uint32_t i = 0; i < c->nfields; i++)
    if (strcmp(c->fields[i].name, name) == 0) return c->fields[i].value;
  return NULL;
}

/* The fields named prefix + X as a JSON object {X: value, ...}, in the module's order. */
static void json_fields_object(sk_sbuf *b, const sk_effect_call *c, const char *prefix) {
  size_t pl = strlen(prefix);
  int first = 1;
  sk_sb_put(b, "{", 1);
  for (uint32_t i = 0; i < c->nfields; i++) {
    if (strncmp(c->fields[i].name, prefix, pl) != 0) continue;
    if (!first) sk_sb_put(b, ",", 1);
    first = 0;
    sim_json(b, c->fields[i].name + pl, strlen(c->fields[i].name + pl));
    sk_sb_put(b, ":", 1);
    sb_jstr(b, c->fields[i].value);
  }
  sk_sb_put(b, "}", 1);
}

static int has_prefix(const sk_effect_call *c, const char *prefix) {
  for (uint32_t i = 0; i < c->nfields; i++)
    if (strncmp(c->fields[i].name, prefix, strlen(prefix)) == 0) return 1;
  return 0;
}

/* The rendered effect of an action.ok, as its JSON members. */
static void json_effect(sk_sbuf *b, const sk_effect_call *c, const char *email_from) {
  const sk_effect_rec *e = c->effect;
  if (e->kind == SK_EFFECT_EMAIL) {
    const sk_string *from = field(c, "from"), *reply = field(c, "reply_to"), *tid = field(c, "template");
    sk_sb_puts(b, ",\"email\":{\"provider\":");
    sim_json(b, sk_provider_name(e->provider), strlen(sk_provider_name(e->provider)));
    sb_key(b, "to");
    sb_jstr(b, field(c, "to"));
    sb_key(b, "from");
    if (from) sb_jstr(b, from);
    else if (email_from) sim_json(b, email_from, strlen(email_from));
    else sk_sb_puts(b, "null");
    if (reply) {
      sb_key(b, "reply_to");
      sb_jstr(b, reply);
    }
    if (tid) {
      const sk_string *subject = field(c, "subject");
      if (subject) { /* replaces the template's own */
        sb_key(b, "subject");
        sb_jstr(b, subject);
      }
      sb_key(b, "template");
      sb_jstr(b, tid);
      sb_key(b, "variables");
      json_fields_object(b, c, "var.");
    } else {
      sb_key(b, "subject");
      sb_jstr(b, field(c, "subject"));
      sb_key(b, "html");
      sb_jstr(b, field(c, "html"));
      sb_key(b, "text");
      sb_jstr(b, field(c, "text"));
    }
    if (has_prefix(c, "tag.")) {
      sb_key(b, "tags");
      json_fields_object(b, c, "tag.");
    }
  } else if (e->kind == SK_EFFECT_WEBHOOK) {
    sk_sb_puts(b, ",\"webhook\":{\"url\":");
    sb_jstr(b, field(c, "url"));
    sb_key(b, "headers");
    json_fields_object(b, c, "header.");
    sb_key(b, "body");
    sb_jstr(b, field(c, "body"));
  } else {
    sk_sb_puts(b, ",\"command\":[");
    for (uint32_t i = 0, n = 0; i < c->nfields; i++) {
      if (strcmp(c->fields[i].name, "argv") != 0) continue;
      if (n++) sk_sb_put(b, ",", 1);
      sb_jstr(b, c->fields[i].value);
    }
    sk_sb_puts(b, "]");
    return;
  }
  sb_key(b, "idempotency_key");
  sim_json(b, c->idempotency_key, strlen(c->idempotency_key));
  sk_sb_put(b, "}", 1);
}

/* The rendered effect of an action.ok, in a few words. */
static void text_effect(sk_sbuf *b, const sk_effect_call *c) {
  const sk_effect_rec *e = c->effect;
  if (e->kind == SK_EFFECT_EMAIL) {
    const sk_string *to = field(c, "to"), *subject = field(c, "subject"), *tid = field(c, "template");
    sk_sb_printf(b, "%s %s to %s", sk_provider_name(e->provider), "email", to ? to->data : "(nobody)");
    if (tid) {
      sk_sb_puts(b, " template ");
      sk_sb_put(b, tid->data, tid->len);
    } else if (subject) {
      sk_sb_put(b, " ", 1);
      sim_json(b, subject->data, subject->len);
    }
  } else if (e->kind == SK_EFFECT_WEBHOOK) {
    const sk_string *url = field(c, "url");
    sk_sb_printf(b, "webhook %s", url ? url->data : "");
  } else {
    sk_sb_puts(b, "redis");
    for (uint32_t i = 0; i < c->nfields; i++) {
      if (strcmp(c->fields[i].name, "argv") != 0) continue;
      sk_sb_put(b, " ", 1);
      sk_sb_put(b, c->fields[i].value->data, c->fields[i].value->len);
    }
  }
}

typedef struct {
  const sk_module *m;
  const sk_sim_options *o;
  int64_t start;
  sk_sbuf line;
  /* the last action.attempt, so that the action.retry that follows it can say which attempt failed */
  int last_was_attempt;
  uint32_t last_loop, last_attempt;
  const sk_string *last_subject;
} printer;

static void on_trace(void *ud, const sk_trace *t) {
  printer *p = ud;
  sk_sbuf *b = &p->line;
  const sk_module *m = p->m;
  const char *loop = sk_str(m, m->loops[t->loop].name_str);
  const char *event = sk_trace_name(t->kind);
  int64_t at = t->now - p->start;
  int has_step = t->kind != SK_TR_INSTANCE_START && t->kind != SK_TR_INSTANCE_END;
  uint32_t attempt = 0;
  if (t->kind == SK_TR_ACTION_ATTEMPT && t->call) attempt = t->call->attempt;
  if (t->kind == SK_TR_ACTION_RETRY && p->last_was_attempt && p->last_loop == t->loop &&
      sk_str_eq(p->last_subject, t->subject))
    attempt = p->last_attempt;
  p->last_was_attempt = t->kind == SK_TR_ACTION_ATTEMPT;
  p->last_loop = t->loop;
  p->last_subject = t->subject;
  p->last_attempt = attempt;
  b->len = 0;
  if (p->o->format == SK_SIM_JSONL) {
    sk_sb_printf(b, "{\"t_ms\":%" PRId64 ",\"loop\":", at);
    sim_json(b, loop, strlen(loop));
    sb_key(b, "subject");
    sb_jstr(b, t->subject);
    sb_key(b, "event");
    sim_json(b, event, strlen(event));
    if (has_step) sk_sb_printf(b, ",\"step\":%" PRIu32, t->step + 1);
    switch (t->kind) {
    case SK_TR_CONDITION_MET: sk_sb_printf(b, ",\"rows\":%" PRIu32, t->count); break;
    case SK_TR_ACTION_ATTEMPT: sk_sb_printf(b, ",\"attempt\":%" PRIu32, attempt); break;
    case SK_TR_ACTION_RETRY:
      if (attempt) sk_sb_printf(b, ",\"attempt\":%" PRIu32, attempt);
      sk_sb_printf(b, ",\"delay_ms\":%" PRId64, t->delay_ms);
      sb_key(b, "reason");
      sim_json(b, t->reason ? t->reason : "", t->reason ? strlen(t->reason) : 0);
      break;
    case SK_TR_ACTION_OK:
      if (t->call) json_effect(b, t->call, p->o->email_from);
      break;
    case SK_TR_ACTION_FAILED:
      sb_key(b, "reason");
      sim_json(b, t->reason ? t->reason : "", t->reason ? strlen(t->reason) : 0);
      break;
    case SK_TR_INSTANCE_END:
      sb_key(b, "outcome");
      sim_json(b, sk_outcome_name(t->outcome), strlen(sk_outcome_name(t->outcome)));
      if (t->outcome == SK_OUTCOME_FAILED && t->reason) {
        sb_key(b, "reason");
        sim_json(b, t->reason, strlen(t->reason));
      }
      break;
    default: break;
    }
    sk_sb_put(b, "}\n", 2);
  } else {
    char off[40], delay[40];
    fmt_offset(at, off);
    sk_sb_printf(b, "  +%-12s %s ", off, loop);
    sk_sb_put(b, t->subject ? t->subject->data : "", t->subject ? t->subject->len : 0);
    sk_sb_printf(b, "  %-17s  ", event);
    if (has_step) sk_sb_printf(b, "step %" PRIu32, t->step + 1);
    switch (t->kind) {
    case SK_TR_CONDITION_MET: sk_sb_printf(b, ", %" PRIu32 " row%s", t->count, t->count == 1 ? "" : "s"); break;
    case SK_TR_ACTION_ATTEMPT: sk_sb_printf(b, ", attempt %" PRIu32, attempt); break;
    case SK_TR_ACTION_RETRY:
      fmt_offset(t->delay_ms, delay);
      if (attempt) sk_sb_printf(b, ", attempt %" PRIu32, attempt);
      sk_sb_printf(b, " failed (%s); retry in %s", t->reason ? t->reason : "", delay);
      break;
    case SK_TR_ACTION_OK:
      sk_sb_puts(b, ": ");
      if (t->call) text_effect(b, t->call);
      break;
    case SK_TR_ACTION_FAILED: sk_sb_printf(b, ": %s", t->reason ? t->reason : ""); break;
    case SK_TR_INSTANCE_END:
      sk_sb_puts(b, sk_outcome_name(t->outcome));
      if (t->outcome == SK_OUTCOME_FAILED && t->reason) sk_sb_printf(b, ": %s", t->reason);
      break;
    default: break;
    }
    while (b->len && b->p[b->len - 1] == ' ') b->p[--b->len] = 0;
    sk_sb_put(b, "\n", 1);
  }
  if (!b->oom) fwrite(b->p, 1, b->len, p->o->out);
}

/* ---- the driver ---- */

typedef struct {
  const sk_scenario *sc;
  sk_memstore *store;
  sk_sched *sched;
  sk_sbuf id, text;      /* scratch for generated ids and values */
  char *err;
  size_t errlen;
} driver;

/* Writes a row and tells the scheduler (which runs what it starts or wakes). */
static int apply(driver *d, const char *table, const char *id, json_t *row, uint32_t op) {
  uint32_t kind, ti;
  if (sk_memstore_put(d->store, table, id, row, &kind, &ti) != 0) {
    snprintf(d->err, d->errlen, "out of memory writing %s %s", table, id);
    return SK_SIM_EIO;
  }
  if (ti == UINT32_MAX) return SK_SIM_OK;
  sk_sched_row(d->sched, ti, op ? op : kind, sk_memstore_row_id(d->store, ti, id));
  sk_sched_run(d->sched);
  return SK_SIM_OK;
}

/* Writes v in decimal at p (no NUL), two digits a step; returns the number of digits (1 to 20). */
static size_t put_decimal(char *p, uint64_t v) {
  static const char pairs[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                 "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                 "8081828384858687888990919293949596979899";
  size_t len = 1;
  for (uint64_t ten = 10; len < 20 && v >= ten; ten *= 10) len++; /* 10^19 is the last power below 2^64 */
  char *q = p + len;
  for (; v >= 100; v /= 100) {
    q -= 2;
    memcpy(q, pairs + 2 * (v % 100), 2);
  }
  if (v >= 10) memcpy(q - 2, pairs + 2 * v, 2);
  else q[-1] = (char)('0' + v);
  return len;
}

/* Appends generated text t for event n to b: room for the longest is made once, then the parts are
   written in place. */
static void tmpl_append(sk_sbuf *b, const gtext *t, uint64_t n) {
  if (sk_sb_reserve(b, t->max_len) != 0) return;
  char *p = b->p + b->len;
  for (size_t i = 0; i < t->n; i++) {
    if (t->v[i].lit) {
      memcpy(p, t->v[i].lit, t->v[i].len);
      p += t->v[i].len;
    } else {
      p += put_decimal(p, n * t->v[i].mul + t->v[i].add);
    }
  }
  b->len = (size_t)(p - b->p);
  b->p[b->len] = 0;
}

static void tmpl_render(sk_sbuf *b, const gtext *t, uint64_t n) {
  b->len = 0;
  tmpl_append(b, t, n);
}

/* Event n of generator g: its fields rendered into one buffer the store copies (no JSON object and no
   allocation per event: at a million events that would cost more than the simulation). */
static int apply_generated(driver *d, const sc_gen *g, uint64_t n) {
  const char *names[64], *values[64];
  size_t lens[64], offs[64];
  size_t nf = g->nfields < 64 ? g->nfields : 64;
  char *dumped[64];
  d->text.len = 0;
  sk_sbuf *b = &d->text;
  for (size_t i = 0; i < nf; i++) {
    const gen_field *f = &g->fields[i];
    names[i] = f->key;
    values[i] = NULL;
    dumped[i] = NULL;
    offs[i] = b->len;
    if (json_is_string(f->value)) {
      tmpl_append(b, &f->text, n);
      lens[i] = b->len - offs[i];
      values[i] = "";
    } else if (!json_is_null(f->value)) {
      dumped[i] = json_dumps(f->value, JSON_COMPACT | JSON_ENCODE_ANY);
      values[i] = dumped[i];
      lens[i] = dumped[i] ? strlen(dumped[i]) : 0;
    }
  }
  tmpl_render(&d->id, &g->id, n);
  int rc = SK_SIM_OK;
  if (b->oom || d->id.oom) {
    snprintf(d->err, d->errlen, "out of memory generating events");
    rc = SK_SIM_EIO;
    goto out;
  }
  for (size_t i = 0; i < nf; i++)
    if (values[i] && !dumped[i]) values[i] = b->p + offs[i];
  uint32_t kind, ti;
  sk_string *row_id;
  if (sk_memstore_put_values(d->store, g->table, d->id.p, names, values, lens, nf, &kind, &ti, &row_id) != 0) {
    snprintf(d->err, d->errlen, "out of memory writing %s %s", g->table, d->id.p);
    rc = SK_SIM_EIO;
    goto out;
  }
  if (ti != UINT32_MAX) {
    sk_sched_row(d->sched, ti, g->op ? g->op : kind, row_id);
    sk_sched_run(d->sched);
  }
out:
  for (size_t i = 0; i < nf; i++) free(dumped[i]);
  return rc;
}

/* One warning per table the scenario writes that no loop uses: likely a typo. */
static void warn_tables(const sk_module *m, const sk_scenario *sc) {
  const char *warned[16];
  size_t nwarned = 0;
  size_t total = sc->nrows + sc->nevents + sc->ngens;
  for (size_t i = 0; i < total; i++) {
    const char *t = i < sc->nrows ? sc->rows[i].table
                    : i < sc->nrows + sc->nevents ? sc->events[i - sc->nrows].table
                                                  : sc->gens[i - sc->nrows - sc->nevents].table;
    int known = 0;
    for (uint32_t k = 0; k < m->ntables && !known; k++) known = strcmp(sk_str(m, m->tables[k].name_str), t) == 0;
    for (size_t k = 0; k < nwarned && !known; k++) known = strcmp(warned[k], t) == 0;
    if (known) continue;
    if (nwarned < 16) warned[nwarned++] = t;
    fprintf(stderr, "skene-vm: warning: %s: no loop uses table '%s'; its rows are stored and trigger nothing\n",
            sc->path, t);
  }
}

/* How many events generator g makes up to `until`. */
static uint64_t gen_events(const sk_scenario *sc, const sc_gen *g) {
  if (g->start > sc->until_ms) return 0;
  if (g->every == 0) return g->count;
  uint64_t within = (uint64_t)(sc->until_ms - g->start) / (uint64_t)g->every + 1;
  return within < g->count ? within : g->count;
}

/* Tells the store how many rows the generators will write to each table (a hint: it sizes the table and
   its indexes once instead of growing them step by step as the rows come). */
static void reserve_generated(sk_memstore *store, const sk_scenario *sc) {
  for (size_t g = 0; g < sc->ngens; g++) {
    const char *table = sc->gens[g].table;
    int done = 0;
    for (size_t k = 0; k < g && !done; k++) done = strcmp(sc->gens[k].table, table) == 0;
    if (done) continue; /* with the table's first generator */
    uint64_t rows = 0;
    for (size_t k = g; k < sc->ngens; k++)
      if (strcmp(sc->gens[k].table, table) == 0) rows += gen_events(sc, &sc->gens[k]);
    (void)sk_memstore_reserve(store, table, rows); /* if it fails, the table grows as it goes */
  }
}

static double elapsed_since(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void print_summary(FILE *out, const sk_sched_stats *st, uint64_t sent) {
  fprintf(out,
          "summary: started %" PRIu64 ", completed %" PRIu64 ", timed_out %" PRIu64 ", skipped %" PRIu64
          ", failed %" PRIu64 ", still waiting %" PRIu64 "; dead letters %" PRIu64 "; emails and webhooks sent %" PRIu64
          "\n",
          st->started, st->outcomes[SK_OUTCOME_COMPLETED], st->outcomes[SK_OUTCOME_TIMED_OUT],
          st->outcomes[SK_OUTCOME_SKIPPED], st->outcomes[SK_OUTCOME_FAILED], st->waiting, st->dead_letters, sent);
}

int sk_simulate(const sk_module *m, const sk_scenario *sc, const sk_sim_options *o, char *err, size_t errlen) {
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  err[0] = 0;
  int rc = SK_SIM_OK;
  printer pr = {m, o, sc->start_ms, {0}, 0, 0, 0, NULL};
  driver d = {sc, NULL, NULL, {0}, {0}, err, errlen};
  sk_vm *vm = NULL;
  uint64_t *gnext = calloc(sc->ngens + 1, sizeof *gnext);
  /* --quiet: no trace callback at all, so the VM does not even build the trace events */
  sk_runtime_ops ops = *sk_memstore_ops();
  if (o->quiet) ops.trace = NULL;
  d.store = sk_memstore_new(m, sc->start_ms);
  if (d.store) vm = sk_vm_new(m, &ops, d.store);
  if (vm) d.sched = sk_sched_new(vm, sc->seed);
  if (!gnext || !d.sched) {
    snprintf(err, errlen, "out of memory");
    rc = SK_SIM_EIO;
    goto done;
  }
  if (!o->quiet) sk_memstore_set_trace(d.store, on_trace, &pr);
  sk_memstore_set_email_from(d.store, o->email_from);
  warn_tables(m, sc);

  /* Before the start: Redis data, rows that trigger nothing, the providers' script. */
  for (size_t i = 0; i < sc->nredis; i++) {
    if (sk_memstore_redis(d.store, sc->redis[i].argv, sc->redis[i].argc) != 0) {
      snprintf(err, errlen, "%s: redis[%zu]: the simulator's Redis refused '%s' (unknown command, or wrong arguments or type)",
               sc->path, i, sc->redis[i].argv[0]);
      rc = SK_SIM_EINPUT;
      goto done;
    }
  }
  for (size_t i = 0; i < sc->nrows; i++) {
    uint32_t kind, ti;
    if (sk_memstore_put(d.store, sc->rows[i].table, sc->rows[i].id, sc->rows[i].row, &kind, &ti) != 0) {
      snprintf(err, errlen, "out of memory");
      rc = SK_SIM_EIO;
      goto done;
    }
  }
  for (size_t i = 0; i < sc->nfaults; i++) {
    const sc_fault *f = &sc->faults[i];
    if (sk_memstore_add_fault(d.store, f->provider, f->status, f->count, f->retry_after_ms) != 0) {
      snprintf(err, errlen, "out of memory");
      rc = SK_SIM_EIO;
      goto done;
    }
  }

  /* The clock moves from instant to instant: the next scenario event or timer, whichever is first. */
  const int64_t end = sc->start_ms + sc->until_ms;
  reserve_generated(d.store, sc);
  size_t ei = 0;
  uint64_t peak_waiting = 0, peak_waiting_bytes = 0, peak_bytes = 0;
  for (;;) {
    int64_t t = sk_sched_next_timer(d.sched);
    if (ei < sc->nevents && sc->start_ms + sc->events[ei].at < t) t = sc->start_ms + sc->events[ei].at;
    for (size_t g = 0; g < sc->ngens; g++) {
      const sc_gen *gn = &sc->gens[g];
      int64_t tg = sc->start_ms + gn->start + (int64_t)gnext[g] * gn->every;
      if (gnext[g] < gn->count && tg < t) t = tg;
    }
    if (t == SK_TIME_NONE || t > end) break;
    sk_memstore_set_now(d.store, t);
    while (rc == SK_SIM_OK && ei < sc->nevents && sc->start_ms + sc->events[ei].at == t) {
      const sc_write *w = &sc->events[ei++];
      rc = apply(&d, w->table, w->id, w->row, w->op);
    }
    for (size_t g = 0; g < sc->ngens && rc == SK_SIM_OK; g++) {
      const sc_gen *gn = &sc->gens[g];
      while (rc == SK_SIM_OK && gnext[g] < gn->count && sc->start_ms + gn->start + (int64_t)gnext[g] * gn->every == t)
        rc = apply_generated(&d, gn, gnext[g]++);
    }
    if (rc) goto done;
    sk_sched_fire_timers(d.sched, t);
    sk_sched_stats st;
    sk_sched_get_stats(d.sched, &st);
    if (st.waiting > peak_waiting) {
      peak_waiting = st.waiting;
      peak_waiting_bytes = st.bytes;
    }
    if (st.bytes > peak_bytes) peak_bytes = st.bytes;
    if (pr.line.oom) {
      snprintf(err, errlen, "out of memory printing the timeline");
      rc = SK_SIM_EIO;
      goto done;
    }
  }

  sk_sched_stats st;
  sk_sched_get_stats(d.sched, &st);
  if (o->format == SK_SIM_TEXT && !o->quiet) fputc('\n', o->out);
  if (o->format == SK_SIM_TEXT || o->quiet) print_summary(o->out, &st, sk_memstore_sent(d.store));
  if (o->quiet) {
    double secs = elapsed_since(&t0);
    fprintf(o->out,
            "bench: %.3f s wall, %.0f instances/s; peak %" PRIu64 " waiting instances, scheduler memory %" PRIu64
            " bytes then (%.1f bytes per waiting instance), %" PRIu64 " bytes at most\n",
            secs, secs > 0 ? (double)st.started / secs : 0.0, peak_waiting, peak_waiting_bytes,
            peak_waiting ? (double)peak_waiting_bytes / (double)peak_waiting : 0.0, peak_bytes);
  }
  if (fflush(o->out) != 0 || ferror(o->out)) {
    snprintf(err, errlen, "writing the output: %s", strerror(errno));
    rc = SK_SIM_EIO;
  }
done:
  sk_sched_free(d.sched);
  sk_vm_free(vm);
  sk_memstore_free(d.store);
  free(gnext);
  free(pr.line.p);
  free(d.id.p);
  free(d.text.p);
  return rc;
}
