/*
 * memstore.c: the in-memory store behind `skene-vm simulate` (see memstore.h).
 *
 * Tables map row ids to JSON objects; every query shape the compiler declared has an exact index from
 * "value\x1fvalue..." to (count, first row in insertion order), kept up to date on every put before the
 * scheduler is told, so an instance that re-checks after a wake-up sees the row that woke it. A small
 * Redis (strings, sets, hashes) serves `redis` conditions and actions. Providers answer from a script of
 * faults, then succeed, and keep Resend's idempotency: a key seen before returns the first answer.
 */
#define _POSIX_C_SOURCE 200809L
#include "memstore.h"
#include "faults.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ---- the store's strings: an arena ---- */

/* Row ids, field names and values, index and idempotency keys live as long as the store: they come from
   64 KiB blocks, are never freed one by one (SK_STR_IMMORTAL), and go with the store. A value replaced
   by an update stays in its block until then: the simulator's runs are bounded. Pieces are aligned to 8
   bytes, all that strings, rows and index entries need (pointers and 64-bit integers): a row's strings
   are short, and a coarser alignment would waste a tenth of the memory. */
#define ARENA_ALIGN 8u
typedef struct ablock { struct ablock *next; size_t used, cap; max_align_t data[]; } ablock;
typedef struct { ablock *head; } sarena;

static_assert(_Alignof(sk_string) <= ARENA_ALIGN, "arena strings are 8-byte aligned");

/* n bytes (not zeroed) from the arena, aligned to ARENA_ALIGN; NULL when memory runs out. */
static void *arena_take(sarena *a, size_t n) {
  n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
  if (!a->head || a->head->cap - a->head->used < n) {
    size_t cap = n > 65536 ? n : 65536;
    ablock *b = malloc(sizeof *b + cap);
    if (!b) return NULL;
    b->next = a->head;
    b->used = 0;
    b->cap = cap;
    a->head = b;
  }
  void *p = (char *)a->head->data + a->head->used;
  a->head->used += n;
  return p;
}

static sk_string *arena_str(sarena *a, const char *p, size_t len) {
  sk_string *str = arena_take(a, sizeof(sk_string) + len + 1);
  if (!str) return NULL;
  str->refs = SK_STR_IMMORTAL;
  str->len = (uint32_t)len;
  if (len) memcpy(str->data, p, len);
  str->data[len] = 0;
  str->hash = 0; /* on first use (sk_str_hash); a map's key gets the map's hash when inserted */
  return str;
}

/* Zeroed memory from the arena (rows, index entries): freed with the store. */
static void *arena_alloc(sarena *a, size_t n) {
  void *p = arena_take(a, n);
  if (p) memset(p, 0, n);
  return p;
}

static void arena_free(sarena *a) {
  for (ablock *b = a->head, *n; b; b = n) {
    n = b->next;
    free(b);
  }
  a->head = NULL;
}

/* ---- a string-keyed map (open addressing, linear probing) ---- */

/* Keys are hashed as sk_str_hash does (XXH3-64 with bit 0 set), and the store's key strings keep that
   hash: a lookup by a string the store made (a row id, shared with instances) hashes nothing.
   Each slot has a tag byte, in an array of its own: 0 when the slot is empty, else 7 more bits of the
   key's hash. A probe reads tags (a byte a slot: a small array, mostly in cache) and reads an entry only
   when its tag matches, so a missing key costs no entry read, and a new one only the entry's write:
   with a million rows the entries are far out of cache, and that is most of a lookup's time. */
typedef struct { uint64_t hash; sk_string *key; void *val; } smap_ent; /* hash: the key's, cached */
typedef struct { smap_ent *v; uint8_t *tags; size_t n, cap; } smap;

static uint64_t key_hash(const char *k, size_t len) { return XXH3_64bits(k, len) | 1; }

/* The home slot of hash h: bit 0 is always set, so the slot comes from the bits above it. */
static size_t smap_home(uint64_t h, size_t mask) { return (size_t)(h >> 1) & mask; }

/* The tag of hash h: its top 7 bits (the home slot uses the low ones), never 0. */
static uint8_t smap_tag(uint64_t h) { return (uint8_t)(0x80u | (h >> 57)); }

/* Rehashes into a table with room for `want` keys (at most half full), at least twice as big. */
static int smap_grow_to(smap *m, size_t want) {
  size_t nc = m->cap ? m->cap * 2 : 64;
  while (nc / 2 < want) {
    if (nc > SIZE_MAX / 2 / sizeof(smap_ent)) return -1;
    nc *= 2;
  }
  smap_ent *nv = malloc(nc * sizeof *nv); /* a slot's entry is read only when its tag says it is used */
  uint8_t *nt = calloc(nc, 1);
  if (!nv || !nt) {
    free(nv);
    free(nt);
    return -1;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->tags[i]) continue;
    size_t j = smap_home(m->v[i].hash, nc - 1);
    while (nt[j]) j = (j + 1) & (nc - 1);
    nv[j] = m->v[i];
    nt[j] = m->tags[i];
  }
  free(m->v);
  free(m->tags);
  m->v = nv;
  m->tags = nt;
  m->cap = nc;
  return 0;
}

static int smap_grow(smap *m) { return smap_grow_to(m, 0); }

/* Makes room for n more keys without a rehash. */
static int smap_reserve(smap *m, size_t n) {
  return (m->n + n) * 2 > m->cap ? smap_grow_to(m, m->n + n) : 0;
}

/* The slot of key (text, len, hash), or of the empty slot where it would go. */
static size_t smap_slot(const smap *m, const char *k, size_t len, uint64_t h) {
  size_t mask = m->cap - 1;
  uint8_t tag = smap_tag(h);
  for (size_t j = smap_home(h, mask);; j = (j + 1) & mask) {
    if (!m->tags[j]) return j;
    const smap_ent *e = &m->v[j];
    if (m->tags[j] == tag && e->hash == h && e->key->len == len && memcmp(e->key->data, k, len) == 0) return j;
  }
}

static void *smap_get(smap *m, const char *k, size_t len) {
  if (!m->cap) return NULL;
  size_t j = smap_slot(m, k, len, key_hash(k, len));
  return m->tags[j] ? m->v[j].val : NULL;
}

/* smap_get by a string, with its cached hash; the store's own key string is found without a compare. */
static void *smap_get_str(smap *m, const sk_string *k) {
  if (!m->cap) return NULL;
  uint64_t h = sk_str_hash(k);
  size_t mask = m->cap - 1;
  uint8_t tag = smap_tag(h);
  for (size_t j = smap_home(h, mask);; j = (j + 1) & mask) {
    if (!m->tags[j]) return NULL;
    if (m->tags[j] != tag) continue;
    const smap_ent *e = &m->v[j];
    if (e->key == k || (e->hash == h && e->key->len == k->len && memcmp(e->key->data, k->data, k->len) == 0))
      return e->val;
  }
}

/* Finds or inserts key (a new key's string comes from arena a, with its hash); returns the entry (val
   NULL when new), or NULL when memory runs out. */
static smap_ent *smap_upsert(smap *m, sarena *a, const char *k, size_t len) {
  if ((m->n + 1) * 2 > m->cap && smap_grow(m) != 0) return NULL;
  uint64_t h = key_hash(k, len);
  size_t j = smap_slot(m, k, len, h);
  smap_ent *e = &m->v[j];
  if (!m->tags[j]) {
    sk_string *key = arena_str(a, k, len);
    if (!key) return NULL;
    key->hash = h;
    *e = (smap_ent){h, key, NULL};
    m->tags[j] = smap_tag(h);
    m->n++;
  }
  return e;
}

/* Removes key (backward-shift deletion); returns its value or NULL. The key's string is released. */
static void *smap_del(smap *m, const char *k, size_t len) {
  if (!m->cap) return NULL;
  size_t j = smap_slot(m, k, len, key_hash(k, len));
  if (!m->tags[j]) return NULL;
  void *val = m->v[j].val;
  size_t mask = m->cap - 1;
  sk_str_unref(m->v[j].key);
  m->n--;
  for (;;) {
    m->tags[j] = 0;
    size_t i = j;
    for (;;) {
      i = (i + 1) & mask;
      if (!m->tags[i]) return val;
      size_t home = smap_home(m->v[i].hash, mask);
      if ((i > j && (home <= j || home > i)) || (i < j && home <= j && home > i)) break;
    }
    m->v[j] = m->v[i];
    m->tags[j] = m->tags[i];
    j = i;
  }
}

static void smap_free(smap *m, void (*free_val)(void *)) {
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->tags[i]) continue;
    sk_str_unref(m->v[i].key);
    if (free_val) free_val(m->v[i].val);
  }
  free(m->v);
  free(m->tags);
  m->v = NULL;
  m->tags = NULL;
  m->n = m->cap = 0;
}

/* ---- the store ---- */

/* A row: its fields as (interned name, value) pairs. Values that were not JSON strings are kept as
   their JSON text; a template reads a field without copying it. */
typedef struct { sk_string *name, *value; } field_t;
typedef struct { sk_string *id; uint64_t seq; uint32_t n, cap; field_t *f; } row_ent;
typedef struct { uint32_t count; uint64_t first_seq; sk_string *first; } idx_ent;
static_assert(_Alignof(row_ent) <= ARENA_ALIGN && _Alignof(idx_ent) <= ARENA_ALIGN, "the arena's alignment");

typedef struct {
  char *name;
  uint32_t index;   /* module table index, UINT32_MAX for a table no loop uses */
  smap rows;
} table_t;

typedef struct { uint32_t ncols; char **cols; uint32_t table; smap idx; } index_t;

typedef enum { RV_STRING, RV_SET, RV_HASH } rv_type;
typedef struct { rv_type type; sk_string *s; smap m; } rval;


#define NAME_CACHE 8

struct sk_memstore {
  const sk_module *m;
  sarena arena;
  int64_t now;
  uint64_t seq, sent, ids;
  struct { table_t *v; size_t n, cap; } tables;
  index_t *indexes;
  smap redis;
  smap idem;        /* idempotency key -> result id */
  smap names;       /* interned field names */
  sk_string *name_cache[NAME_CACHE]; /* names interned last (round robin): most puts hash no name */
  size_t name_next;
  /* the row ms_row_field found last: a template reads several fields of one row in a row */
  uint32_t last_table;
  row_ent *last_row;
  sk_faults faults;
  void (*trace_fn)(void *, const sk_trace *);
  void *trace_ud;
  char *email_from;
};

static void *grow(void *v, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return v;
  size_t nc = *cap ? *cap * 2 : 16;
  while (nc < need) nc *= 2;
  void *p = realloc(v, nc * elem);
  if (!p) return NULL;
  *cap = nc;
  return p;
}

static table_t *table_named(sk_memstore *s, const char *name, int create) {
  for (size_t i = 0; i < s->tables.n; i++)
    if (strcmp(s->tables.v[i].name, name) == 0) return &s->tables.v[i];
  if (!create) return NULL;
  table_t *nv = grow(s->tables.v, &s->tables.cap, s->tables.n + 1, sizeof *nv);
  if (!nv) return NULL;
  s->tables.v = nv;
  table_t *t = &s->tables.v[s->tables.n];
  memset(t, 0, sizeof *t);
  if (!(t->name = strdup(name))) return NULL;
  t->index = UINT32_MAX;
  for (uint32_t i = 0; i < s->m->ntables; i++)
    if (strcmp(sk_str(s->m, s->m->tables[i].name_str), name) == 0) t->index = i;
  s->tables.n++;
  return t;
}

/* The table of module table `index`. The module's tables are created first, in the module's order, so
   it is found at its index (unless the module names a table twice: then by a scan). */
static table_t *table_at(sk_memstore *s, uint32_t index) {
  if (index < s->tables.n && s->tables.v[index].index == index) return &s->tables.v[index];
  for (size_t i = 0; i < s->tables.n; i++)
    if (s->tables.v[i].index == index) return &s->tables.v[i];
  return NULL;
}

sk_memstore *sk_memstore_new(const sk_module *m, int64_t start_ms) {
  sk_memstore *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->m = m;
  s->now = start_ms;
  s->indexes = calloc(m->nshapes + 1, sizeof *s->indexes);
  if (!s->indexes) goto fail;
  for (uint32_t i = 0; i < m->ntables; i++)
    if (!table_named(s, sk_str(m, m->tables[i].name_str), 1)) goto fail;
  for (uint32_t i = 0; i < m->nshapes; i++) {
    index_t *ix = &s->indexes[i];
    const char *cols = sk_str(m, m->shapes[i].cols_str);
    ix->table = m->shapes[i].table;
    ix->ncols = 1;
    for (const char *p = cols; *p; p++) ix->ncols += *p == ',';
    if (!(ix->cols = calloc(ix->ncols, sizeof *ix->cols))) goto fail;
    for (uint32_t c = 0; c < ix->ncols; c++) {
      const char *e = strchr(cols, ',');
      size_t len = e ? (size_t)(e - cols) : strlen(cols);
      if (!(ix->cols[c] = strndup(cols, len))) goto fail;
      cols += len + (e ? 1 : 0);
    }
  }
  return s;
fail:
  sk_memstore_free(s);
  return NULL;
}





static void free_rval(void *p) {
  rval *v = p;
  if (!v) return;
  sk_str_unref(v->s);
  smap_free(&v->m, (void (*)(void *))sk_str_unref);
  free(v);
}

void sk_memstore_free(sk_memstore *s) {
  if (!s) return;
  for (size_t i = 0; i < s->tables.n; i++) {
    smap_free(&s->tables.v[i].rows, NULL); /* rows are the arena's */
    free(s->tables.v[i].name);
  }
  free(s->tables.v);
  for (uint32_t i = 0; s->indexes && i < s->m->nshapes; i++) {
    for (uint32_t c = 0; s->indexes[i].cols && c < s->indexes[i].ncols; c++) free(s->indexes[i].cols[c]);
    free(s->indexes[i].cols);
    smap_free(&s->indexes[i].idx, NULL);
  }
  free(s->indexes);
  smap_free(&s->redis, free_rval);
  smap_free(&s->idem, (void (*)(void *))sk_str_unref);
  smap_free(&s->names, NULL);
  sk_faults_free(&s->faults);
  free(s->email_from);
  arena_free(&s->arena);
  free(s);
}

void sk_memstore_set_now(sk_memstore *s, int64_t ms) { s->now = ms; }
int64_t sk_memstore_now(const sk_memstore *s) { return s->now; }
uint64_t sk_memstore_sent(const sk_memstore *s) { return s->sent; }

void sk_memstore_set_trace(sk_memstore *s, void (*fn)(void *ud, const sk_trace *t), void *ud) {
  s->trace_fn = fn;
  s->trace_ud = ud;
}

void sk_memstore_set_email_from(sk_memstore *s, const char *from) {
  free(s->email_from);
  s->email_from = from ? strdup(from) : NULL;
}

/* A JSON value as the text a template shows: strings as they are, others as JSON; null is missing. */
static sk_string *json_text(const json_t *v) {
  char num[48];
  switch (json_typeof(v)) {
  case JSON_STRING: return sk_str_new(json_string_value(v), json_string_length(v));
  case JSON_INTEGER: snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); return sk_str_from(num);
  case JSON_REAL: snprintf(num, sizeof num, "%.17g", json_real_value(v)); return sk_str_from(num);
  case JSON_TRUE: return sk_str_from("true");
  case JSON_FALSE: return sk_str_from("false");
  case JSON_NULL: return NULL;
  default: {
    char *t = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    sk_string *r = t ? sk_str_from(t) : NULL;
    free(t);
    return r;
  }
  }
}

/* The value of field `name` of r (borrowed), or NULL. Rows have few fields: a scan beats a map, and
   the first bytes tell most names apart before a strcmp. */
static sk_string *row_value(const row_ent *r, const char *name) {
  for (uint32_t i = 0; i < r->n; i++)
    if (r->f[i].name->data[0] == name[0] && strcmp(r->f[i].name->data, name) == 0) return r->f[i].value;
  return NULL;
}

/* Field `path` of a row as a new reference: a plain field name, or a dotted path into a field that
   holds a JSON object (JSON rows). NULL when missing or null. */
static sk_string *row_field_path(const row_ent *r, const char *path) {
  sk_string *v = row_value(r, path);
  if (v) return sk_str_ref(v);
  const char *dot = strchr(path, '.');
  if (!dot) return NULL;
  char head[256];
  size_t hl = (size_t)(dot - path);
  if (hl >= sizeof head) return NULL;
  memcpy(head, path, hl);
  head[hl] = 0;
  v = row_value(r, head);
  if (!v || v->len == 0 || v->data[0] != '{') return NULL;
  json_t *obj = json_loadb(v->data, v->len, 0, NULL);
  const json_t *cur = obj;
  const char *p = dot + 1;
  char part[256];
  while (cur && *p) {
    const char *d = strchr(p, '.');
    size_t len = d ? (size_t)(d - p) : strlen(p);
    if (len >= sizeof part) {
      cur = NULL;
      break;
    }
    memcpy(part, p, len);
    part[len] = 0;
    cur = json_is_object(cur) ? json_object_get(cur, part) : NULL;
    p += len + (d ? 1 : 0);
  }
  sk_string *out = cur ? json_text(cur) : NULL;
  json_decref(obj);
  return out;
}

/* The row of module table `table` with this id, found by the id's cached hash, or NULL. The last row
   found is remembered: rows are never removed and their id strings live as long as the store, so an id
   that is the remembered row's own string is that row. */
static row_ent *row_by_id(sk_memstore *s, uint32_t table, const sk_string *id) {
  if (s->last_row && s->last_row->id == id && s->last_table == table) return s->last_row;
  table_t *t = table_at(s, table);
  row_ent *r = t ? smap_get_str(&t->rows, id) : NULL;
  if (r) {
    s->last_table = table;
    s->last_row = r;
  }
  return r;
}

static sk_string *ms_row_field(void *ud, uint32_t table, const sk_string *id, const char *field) {
  row_ent *r = id ? row_by_id(ud, table, id) : NULL;
  return r ? row_field_path(r, field) : NULL;
}

static void row_unset(row_ent *r, const char *name) {
  for (uint32_t i = 0; i < r->n; i++)
    if (strcmp(r->f[i].name->data, name) == 0) {
      sk_str_unref(r->f[i].name);
      sk_str_unref(r->f[i].value);
      r->f[i] = r->f[--r->n];
      return;
    }
}

/* The store's string for field name (interned: one per name, as long as the store). NULL out of memory.
   The names met last are compared first: a table's rows have the same few fields. */
static sk_string *intern_name(sk_memstore *s, const char *name, size_t nlen) {
  for (size_t i = 0; i < NAME_CACHE; i++) {
    sk_string *c = s->name_cache[i];
    if (c && c->len == nlen && memcmp(c->data, name, nlen) == 0) return c;
  }
  smap_ent *e = smap_upsert(&s->names, &s->arena, name, nlen);
  if (!e) return NULL;
  s->name_cache[s->name_next++ % NAME_CACHE] = e->key;
  return e->key;
}

/* Sets field name of r to value (takes the reference to value). Returns 0, or -1 out of memory. */
static int row_set(sk_memstore *s, row_ent *r, const char *name, size_t nlen, sk_string *value) {
  for (uint32_t i = 0; i < r->n; i++)
    if (r->f[i].name->len == nlen && memcmp(r->f[i].name->data, name, nlen) == 0) {
      sk_str_unref(r->f[i].value);
      r->f[i].value = value;
      return 0;
    }
  sk_string *interned = intern_name(s, name, nlen);
  if (!interned) return -1;
  if (r->n == r->cap) { /* a bigger array from the arena; the old one stays there until the end */
    uint32_t nc = r->cap ? r->cap * 2 : 4;
    field_t *nf = arena_alloc(&s->arena, nc * sizeof *nf);
    if (!nf) return -1;
    if (r->n) memcpy(nf, r->f, r->n * sizeof *nf);
    r->f = nf;
    r->cap = nc;
  }
  r->f[r->n].name = interned;
  r->f[r->n].value = value;
  r->n++;
  return 0;
}

/* The index key of a row for shape ix, in buf; 0 when a column is missing. */
static int index_key(const index_t *ix, const row_ent *r, char *buf, size_t cap, size_t *len) {
  size_t n = 0;
  for (uint32_t c = 0; c < ix->ncols; c++) {
    sk_string *t = row_field_path(r, ix->cols[c]);
    if (!t) return 0;
    if (n + t->len + 1 >= cap) {
      sk_str_unref(t);
      return 0;
    }
    if (c) buf[n++] = '\x1f';
    memcpy(buf + n, t->data, t->len);
    n += t->len;
    sk_str_unref(t);
  }
  *len = n;
  return 1;
}

/* The first row (insertion order) of table t under key in ix, by scanning: rare (an update moved the first). */
static row_ent *rescan_first(table_t *t, const index_t *ix, const char *key, size_t klen) {
  row_ent *best = NULL;
  char buf[4096];
  size_t len;
  for (size_t i = 0; i < t->rows.cap; i++) {
    row_ent *r = t->rows.tags[i] ? t->rows.v[i].val : NULL;
    if (!r || !index_key(ix, r, buf, sizeof buf, &len) || len != klen || memcmp(buf, key, len) != 0) continue;
    if (!best || r->seq < best->seq) best = r;
  }
  return best;
}

static void index_remove(sk_memstore *s, table_t *t, index_t *ix, const char *key, size_t len, const row_ent *row) {
  smap_ent *e = smap_upsert(&ix->idx, &s->arena, key, len);
  idx_ent *ie = e ? e->val : NULL;
  if (!ie) return;
  if (--ie->count == 0) {
    smap_del(&ix->idx, key, len); /* the entry is the arena's */
    return;
  }
  if (ie->first && sk_str_eq(ie->first, row->id)) {
    sk_str_unref(ie->first);
    ie->first = NULL;
    row_ent *f = rescan_first(t, ix, key, len);
    if (f && f != row) {
      ie->first = sk_str_ref(f->id);
      ie->first_seq = f->seq;
    }
  }
}

static void index_add(sk_memstore *s, index_t *ix, const char *key, size_t len, const row_ent *row) {
  smap_ent *e = smap_upsert(&ix->idx, &s->arena, key, len);
  if (!e) return;
  idx_ent *ie = e->val;
  if (!ie) {
    if (!(ie = arena_alloc(&s->arena, sizeof *ie))) return;
    e->val = ie;
  }
  ie->count++;
  if (!ie->first || row->seq < ie->first_seq) {
    sk_str_unref(ie->first);
    ie->first = sk_str_ref(row->id);
    ie->first_seq = row->seq;
  }
}

/* Writes row `id` of `table`: field names[i] := values[i] (lens[i] bytes, copied into the store's
   arena; a NULL value removes the field); *row_id := the row's id string. The shared part of
   sk_memstore_put and _put_values. */
static int put_row(sk_memstore *s, const char *table, const char *id, const char *const *names,
                   const char *const *values, const size_t *lens, size_t n, uint32_t *kind, uint32_t *table_index,
                   sk_string **row_id) {
  table_t *t = table_named(s, table, 1);
  smap_ent *e = t ? smap_upsert(&t->rows, &s->arena, id, strlen(id)) : NULL;
  if (!e) return -1;
  row_ent *r = e->val;
  char key[4096];
  size_t klen = 0;
  uint32_t nshapes = t->index == UINT32_MAX ? 0 : s->m->nshapes;
  if (!r) {
    if (!(r = arena_alloc(&s->arena, sizeof *r))) return -1;
    r->id = e->key;
    r->seq = ++s->seq;
    e->val = r;
    *kind = SK_EVENT_INSERT;
    uint32_t nset = 0; /* a new row's fields array is made to measure: rows are rarely updated */
    for (size_t i = 0; i < n; i++) nset += values[i] != NULL;
    if (nset && !(r->f = arena_alloc(&s->arena, nset * sizeof *r->f))) return -1;
    r->cap = nset;
  } else {
    *kind = SK_EVENT_UPDATE;
    /* take the row out of the indexes it is in, then put it back with its new values */
    for (uint32_t i = 0; i < nshapes; i++) {
      index_t *ix = &s->indexes[i];
      if (ix->table == t->index && index_key(ix, r, key, sizeof key, &klen)) index_remove(s, t, ix, key, klen, r);
    }
  }
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (!values[i]) {
      row_unset(r, names[i]);
      continue;
    }
    sk_string *v = arena_str(&s->arena, values[i], lens[i]);
    rc = v ? row_set(s, r, names[i], strlen(names[i]), v) : -1;
  }
  for (uint32_t i = 0; i < nshapes; i++) {
    index_t *ix = &s->indexes[i];
    if (ix->table == t->index && index_key(ix, r, key, sizeof key, &klen)) index_add(s, ix, key, klen, r);
  }
  *table_index = t->index;
  *row_id = r->id;
  return rc;
}

int sk_memstore_put(sk_memstore *s, const char *table, const char *id, json_t *row, uint32_t *kind,
                    uint32_t *table_index) {
  if (!json_is_object(row)) return -1;
  size_t n = json_object_size(row), i = 0;
  const char **names = calloc(n + 1, sizeof *names);
  const char **values = calloc(n + 1, sizeof *values);
  size_t *lens = calloc(n + 1, sizeof *lens);
  sk_string **texts = calloc(n + 1, sizeof *texts);
  int rc = -1;
  if (names && values && lens && texts) {
    const char *name;
    json_t *v;
    int bad = 0;
    json_object_foreach(row, name, v) {
      names[i] = name;
      if (!json_is_null(v)) { /* null removes the field: missing again */
        texts[i] = json_text(v);
        bad |= !texts[i];
        values[i] = texts[i] ? texts[i]->data : NULL;
        lens[i] = texts[i] ? texts[i]->len : 0;
      }
      i++;
    }
    sk_string *row_id;
    if (!bad) rc = put_row(s, table, id, names, values, lens, n, kind, table_index, &row_id);
  }
  for (size_t k = 0; texts && k < n; k++) sk_str_unref(texts[k]);
  free(names);
  free(values);
  free(lens);
  free(texts);
  return rc;
}

int sk_memstore_put_values(sk_memstore *s, const char *table, const char *id, const char *const *names,
                           const char *const *values, const size_t *lens, size_t n, uint32_t *kind,
                           uint32_t *table_index, sk_string **row_id) {
  return put_row(s, table, id, names, values, lens, n, kind, table_index, row_id);
}

int sk_memstore_reserve(sk_memstore *s, const char *table, uint64_t rows) {
  table_t *t = table_named(s, table, 1);
  if (!t || rows > SIZE_MAX / 4 || smap_reserve(&t->rows, (size_t)rows) != 0) return -1; /* no overflow below */
  for (uint32_t i = 0; t->index != UINT32_MAX && i < s->m->nshapes; i++)
    if (s->indexes[i].table == t->index && smap_reserve(&s->indexes[i].idx, (size_t)rows) != 0) return -1;
  return 0;
}

sk_string *sk_memstore_row_id(sk_memstore *s, uint32_t table_index, const char *id) {
  table_t *t = table_at(s, table_index);
  row_ent *r = t ? smap_get(&t->rows, id, strlen(id)) : NULL;
  return r ? r->id : NULL;
}

static uint32_t ms_query(void *ud, uint32_t shape, sk_string *const *values, uint32_t n, uint32_t limit,
                         sk_string **first) {
  sk_memstore *s = ud;
  char key[4096];
  size_t len = 0;
  *first = NULL;
  for (uint32_t i = 0; i < n; i++) {
    if (len + values[i]->len + 1 >= sizeof key) return 0;
    if (i) key[len++] = '\x1f';
    memcpy(key + len, values[i]->data, values[i]->len);
    len += values[i]->len;
  }
  idx_ent *ie = smap_get(&s->indexes[shape].idx, key, len);
  if (!ie) return 0;
  *first = sk_str_ref(ie->first);
  return limit && ie->count > limit ? limit : ie->count;
}

static int64_t ms_now(void *ud) { return ((sk_memstore *)ud)->now; }

static void ms_trace(void *ud, const sk_trace *t) {
  sk_memstore *s = ud;
  if (s->trace_fn) s->trace_fn(s->trace_ud, t);
}

/* ---- faults ---- */

int sk_memstore_add_fault(sk_memstore *s, const char *provider, int status, uint32_t count, int64_t retry_after_ms) {
  return sk_faults_add(&s->faults, provider, status, count, retry_after_ms);
}

static int take_fault(sk_memstore *s, const char *provider, sk_io *out) { return sk_faults_take(&s->faults, provider, out); }

static void ms_effect(void *ud, const sk_effect_call *call, sk_io *out) {
  sk_memstore *s = ud;
  const char *provider = call->effect->kind == SK_EFFECT_EMAIL ? sk_provider_name(call->effect->provider) : "webhook";
  if (take_fault(s, provider, out)) return;
  /* Resend keeps an Idempotency-Key for 24 hours: the same key answers with the same email. */
  smap_ent *e = smap_upsert(&s->idem, &s->arena, call->idempotency_key, strlen(call->idempotency_key));
  if (!e) {
    out->transient = 1;
    snprintf(out->reason, sizeof out->reason, "%s: out of memory", provider);
    return;
  }
  if (!e->val) {
    char id[64], digits[24];
    size_t k = sizeof digits, pl = strlen(provider);
    uint64_t v = ++s->ids;
    do digits[--k] = (char)('0' + v % 10); while ((v /= 10) > 0);
    memcpy(id, "sim_", 4);
    memcpy(id + 4, provider, pl);
    id[4 + pl] = '_';
    memcpy(id + 5 + pl, digits + k, sizeof digits - k);
    e->val = arena_str(&s->arena, id, 5 + pl + sizeof digits - k);
    s->sent++;
  }
  out->ok = 1;
  out->result = sk_str_ref(e->val);
}

/* ---- a small Redis ---- */

static rval *rv_get(sk_memstore *s, const sk_string *k, rv_type type, int create, int *wrong) {
  *wrong = 0;
  smap_ent *e = create ? smap_upsert(&s->redis, &s->arena, k->data, k->len) : NULL;
  rval *v = create ? (e ? e->val : NULL) : smap_get(&s->redis, k->data, k->len);
  if (v && v->type != type) {
    *wrong = 1;
    return NULL;
  }
  if (!v && create && e) {
    if (!(v = calloc(1, sizeof *v))) return NULL;
    v->type = type;
    e->val = v;
  }
  return v;
}

static sk_string *int_reply(int64_t n) {
  char b[32];
  snprintf(b, sizeof b, "%" PRId64, n);
  return sk_str_from(b);
}

/* Command names compare without regard to ASCII case, as Redis does. */
static int eq(const sk_string *a, const char *b) {
  size_t i = 0;
  for (; i < a->len && b[i]; i++) {
    char x = a->data[i], y = b[i];
    if (x >= 'a' && x <= 'z') x = (char)(x - 32);
    if (x != y) return 0;
  }
  return i == a->len && !b[i];
}

/* Runs argv; on success fills out->result (NULL for a nil reply). */
static void redis_exec(sk_memstore *s, sk_string *const *argv, uint32_t argc, sk_io *out) {
  int wrong = 0;
  rval *v;
  const sk_string *cmd = argv[0];
  out->ok = 1;
#define NEED(n) if (argc < (n)) goto arity
  if (eq(cmd, "GET")) {
    NEED(2);
    v = rv_get(s, argv[1], RV_STRING, 0, &wrong);
    if (!wrong) out->result = v ? sk_str_ref(v->s) : NULL;
  } else if (eq(cmd, "SET")) {
    NEED(3);
    v = rv_get(s, argv[1], RV_STRING, 1, &wrong);
    if (v) {
      sk_str_unref(v->s);
      v->s = sk_str_ref(argv[2]);
      out->result = sk_str_from("OK");
    }
  } else if (eq(cmd, "INCR")) {
    NEED(2);
    v = rv_get(s, argv[1], RV_STRING, 1, &wrong);
    if (v) {
      int64_t n = v->s ? strtoll(v->s->data, NULL, 10) : 0;
      sk_str_unref(v->s);
      v->s = int_reply(n + 1);
      out->result = sk_str_ref(v->s);
    }
  } else if (eq(cmd, "DEL") || eq(cmd, "EXISTS")) {
    NEED(2);
    int64_t n = 0, del = eq(cmd, "DEL");
    for (uint32_t i = 1; i < argc; i++) {
      if (del) {
        rval *old = smap_del(&s->redis, argv[i]->data, argv[i]->len);
        n += old != NULL;
        free_rval(old);
      } else {
        n += smap_get(&s->redis, argv[i]->data, argv[i]->len) != NULL;
      }
    }
    out->result = int_reply(n);
  } else if (eq(cmd, "SADD") || eq(cmd, "HSET")) {
    int hash = eq(cmd, "HSET");
    NEED(hash ? 4 : 3);
    if (hash && (argc - 2) % 2) goto arity;
    v = rv_get(s, argv[1], hash ? RV_HASH : RV_SET, 1, &wrong);
    int64_t added = 0;
    for (uint32_t i = 2; v && i < argc; i += hash ? 2 : 1) {
      smap_ent *e = smap_upsert(&v->m, &s->arena, argv[i]->data, argv[i]->len);
      if (!e) break;
      added += e->val == NULL;
      sk_str_unref(e->val);
      e->val = sk_str_ref(hash ? argv[i + 1] : argv[i]);
    }
    if (v) out->result = int_reply(added);
  } else if (eq(cmd, "SISMEMBER") || eq(cmd, "HEXISTS") || eq(cmd, "HGET")) {
    NEED(3);
    v = rv_get(s, argv[1], eq(cmd, "SISMEMBER") ? RV_SET : RV_HASH, 0, &wrong);
    sk_string *val = v ? smap_get(&v->m, argv[2]->data, argv[2]->len) : NULL;
    if (!wrong) out->result = eq(cmd, "HGET") ? sk_str_ref(val) : int_reply(val != NULL);
  } else if (eq(cmd, "SREM") || eq(cmd, "HDEL")) {
    NEED(3);
    v = rv_get(s, argv[1], eq(cmd, "SREM") ? RV_SET : RV_HASH, 0, &wrong);
    int64_t n = 0;
    for (uint32_t i = 2; v && i < argc; i++) {
      sk_string *old = smap_del(&v->m, argv[i]->data, argv[i]->len);
      n += old != NULL;
      sk_str_unref(old);
    }
    if (!wrong) out->result = int_reply(n);
  } else if (eq(cmd, "SCARD") || eq(cmd, "HLEN")) {
    NEED(2);
    v = rv_get(s, argv[1], eq(cmd, "SCARD") ? RV_SET : RV_HASH, 0, &wrong);
    if (!wrong) out->result = int_reply(v ? (int64_t)v->m.n : 0);
  } else {
    out->ok = 0;
    out->transient = 0;
    snprintf(out->reason, sizeof out->reason, "redis: the simulator does not implement %.40s", cmd->data);
    return;
  }
  if (wrong) {
    out->ok = 0;
    out->transient = 0;
    snprintf(out->reason, sizeof out->reason, "redis: WRONGTYPE Operation against a key holding the wrong kind of value");
  }
  return;
arity:
  out->ok = 0;
  out->transient = 0;
  snprintf(out->reason, sizeof out->reason, "redis: ERR wrong number of arguments for '%.40s' command", cmd->data);
#undef NEED
}

static void ms_redis(void *ud, sk_string *const *argv, uint32_t argc, int is_effect, sk_io *out) {
  sk_memstore *s = ud;
  (void)is_effect;
  if (take_fault(s, "redis", out)) return;
  redis_exec(s, argv, argc, out);
}

int sk_memstore_redis(sk_memstore *s, const char *const *argv, uint32_t argc) {
  if (argc == 0 || argc > 64) return -1;
  sk_string *av[64];
  for (uint32_t i = 0; i < argc; i++) av[i] = sk_str_from(argv[i]);
  sk_io io = {0};
  redis_exec(s, av, argc, &io);
  sk_str_unref(io.result);
  for (uint32_t i = 0; i < argc; i++) sk_str_unref(av[i]);
  return io.ok ? 0 : -1;
}

const sk_runtime_ops *sk_memstore_ops(void) {
  static const sk_runtime_ops ops = {ms_now, ms_row_field, ms_query, ms_redis, ms_effect, ms_trace};
  return &ops;
}
