/*
 * check.c: the config language. Walks the static value of `export default` and checks it against
 * DESIGN.md's schema: known keys (with "did you mean"), types, required fields, enums, ranges,
 * durations, the SQL subset, template placeholders and files, table mappings, unique loop names.
 * Every problem is reported at its exact place, and checking goes on after an error so one run shows
 * them all. The result is an sk_config for lower.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../vm/skb.h"
#include "config.h"

typedef struct {
  sk_config *cfg;
  const sk_source *src;
  sk_arena *arena;
  sk_diags *d;
  const sk_check_options *opts;
  int loop_table;           /* the current loop's first trigger table, -1 before it is known */
  struct { const sk_member **v; size_t n, cap; } mappings; /* the `tables` entry that configured each table */
  struct { uint32_t *v; size_t cap; } names;  /* open addressing: loop index + 1, by name (O(1) duplicates) */
} ck;

/* What placeholders may name where a text appears. */
typedef struct {
  int step;                 /* 0-based */
  int has_match;            /* the step's condition is a query and this is its action */
  int event_table;          /* later step's trigger table, or -1 */
  const sk_cfg_effect *pers; /* personalization names in scope, or NULL */
  int in_on_timeout;
} scope;

/* ---- small helpers ---- */

static void err_v(ck *c, const sk_value *v, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void err_v(ck *c, const sk_value *v, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sk_vdiag(c->d, SK_ERROR, c->src, v->off, v->len, fmt, ap);
  va_end(ap);
}

/* Points at the opening brace of an object: "this object is missing X". */
static void err_open(ck *c, const sk_value *v, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void err_open(ck *c, const sk_value *v, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sk_vdiag(c->d, SK_ERROR, c->src, v->off, 1, fmt, ap);
  va_end(ap);
}

static void pos_of(ck *c, uint32_t off, uint32_t *line, uint32_t *col) { sk_source_pos(c->src, off, line, col); }

/* "a, b or c"; with quote, "'a', 'b' or 'c'" (string values, as they are written). */
static const char *join_words(ck *c, const char *const *keys, size_t n, int quote) {
  sk_buf b = {0};
  for (size_t i = 0; i < n; i++) {
    if (i) sk_buf_puts(&b, i + 1 == n ? " or " : ", ");
    sk_buf_printf(&b, quote ? "'%s'" : "%s", keys[i]);
  }
  char *s = sk_arena_strdup(c->arena, b.data ? b.data : "");
  sk_buf_free(&b);
  return s;
}

static const char *join_keys(ck *c, const char *const *keys, size_t n) { return join_words(c, keys, n, 0); }

/* Reports every key of obj that is not in keys. */
static void check_keys(ck *c, const sk_value *obj, const char *what, const char *const *keys, size_t n) {
  for (size_t i = 0; i < obj->nmembers; i++) {
    const sk_member *m = &obj->members[i];
    size_t k;
    for (k = 0; k < n; k++)
      if (strcmp(m->key, keys[k]) == 0) break;
    if (k < n) continue;
    const char *s = sk_suggest(m->key, keys, n);
    if (s)
      sk_diag(c->d, SK_ERROR, c->src, m->key_off, m->key_len, "unknown key '%s' in %s (did you mean '%s'?)", m->key,
              what, s);
    else
      sk_diag(c->d, SK_ERROR, c->src, m->key_off, m->key_len, "unknown key '%s' in %s (expected %s)", m->key, what,
              join_keys(c, keys, n));
  }
}

/* Whether check_keys reported an unknown key of obj as a misspelling of key ("did you mean"): then
   "obj needs key" would only repeat that error. */
static int misspelled(const sk_value *obj, const char *key, const char *const *keys, size_t n) {
  for (size_t i = 0; i < obj->nmembers; i++) {
    size_t k;
    for (k = 0; k < n; k++)
      if (strcmp(obj->members[i].key, keys[k]) == 0) break;
    const char *s = k < n ? NULL : sk_suggest(obj->members[i].key, keys, n);
    if (s && strcmp(s, key) == 0) return 1;
  }
  return 0;
}

static const sk_value *get(const sk_value *obj, const char *key) {
  sk_member *m = sk_value_get(obj, key);
  return m ? m->val : NULL;
}

static int is_kind(ck *c, const sk_value *v, sk_vkind k, const char *what) {
  if (v->kind == k) return 1;
  sk_diag(c->d, SK_ERROR, c->src, v->off, v->len, "%s must be %s, not %s", what, sk_vkind_name(k), sk_vkind_name(v->kind));
  return 0;
}

static const sk_value *get_object(ck *c, const sk_value *obj, const char *key, const char *what) {
  const sk_value *v = get(obj, key);
  if (v && !is_kind(c, v, SK_V_OBJECT, what)) return NULL;
  return v;
}

static const char *get_string(ck *c, const sk_value *obj, const char *key, const char *what) {
  const sk_value *v = get(obj, key);
  if (!v || !is_kind(c, v, SK_V_STRING, what)) return NULL;
  return v->str;
}

/* Matches v (a string) against names; returns its index + first (enum values start at first), or 0. */
static uint32_t get_enum(ck *c, const sk_value *v, const char *what, const char *const *names, size_t n, uint32_t first) {
  if (!is_kind(c, v, SK_V_STRING, what)) return 0;
  for (size_t i = 0; i < n; i++)
    if (strcmp(v->str, names[i]) == 0) return (uint32_t)i + first;
  const char *s = sk_suggest(v->str, names, n);
  sk_buf b = {0};
  sk_buf_printf(&b, "unknown %s '%s': expected %s", what, v->str, join_words(c, names, n, 1));
  if (s) sk_buf_printf(&b, " (did you mean '%s'?)", s);
  sk_diag(c->d, SK_ERROR, c->src, v->off, v->len, "%s", b.data);
  sk_buf_free(&b);
  return 0;
}

/* Durations: '250ms', '30s', '5m', '2h', '7d', or a whole number of milliseconds. */
static int get_duration(ck *c, const sk_value *v, const char *what, uint64_t *ms) {
  if (v->kind == SK_V_NUMBER) {
    if (!v->is_int || v->num < 0 || v->num > 1e15) {
      sk_diag(c->d, SK_ERROR, c->src, v->off, v->len, "%s must be a whole, non-negative number of milliseconds", what);
      return 0;
    }
    *ms = (uint64_t)v->num;
    return 1;
  }
  if (v->kind != SK_V_STRING) {
    sk_diag(c->d, SK_ERROR, c->src, v->off, v->len, "%s must be a duration such as '30s' or '5m', not %s", what,
            sk_vkind_name(v->kind));
    return 0;
  }
  const char *s = v->str;
  uint64_t n = 0;
  size_t i = 0;
  while (isdigit((unsigned char)s[i]) && n < 1000000000000ull) n = n * 10 + (uint64_t)(s[i++] - '0');
  const char *unit = s + i;
  uint64_t mul = 0;
  if (strcmp(unit, "ms") == 0) mul = 1;
  else if (strcmp(unit, "s") == 0) mul = 1000;
  else if (strcmp(unit, "m") == 0) mul = 60000;
  else if (strcmp(unit, "h") == 0) mul = 3600000;
  else if (strcmp(unit, "d") == 0) mul = 86400000;
  if (i == 0 || mul == 0 || isdigit((unsigned char)s[i])) {
    sk_diag(c->d, SK_ERROR, c->src, v->off, v->len,
            "invalid duration '%s' for %s: write a whole number and a unit (ms, s, m, h or d), e.g. '5m'", s, what);
    return 0;
  }
  if (n > 1000000000000ull / mul) {
    sk_diag(c->d, SK_ERROR, c->src, v->off, v->len, "duration '%s' is too long", s);
    return 0;
  }
  *ms = n * mul;
  return 1;
}

const char *sk_singular(sk_arena *a, const char *p) {
  size_t n = strlen(p);
  if (n > 3 && strcmp(p + n - 3, "ies") == 0) return sk_arena_printf(a, "%.*sy", (int)(n - 3), p);
  if (n > 4 && (strcmp(p + n - 4, "sses") == 0 || strcmp(p + n - 4, "shes") == 0 || strcmp(p + n - 4, "ches") == 0 ||
                strcmp(p + n - 3, "xes") == 0 || strcmp(p + n - 3, "zes") == 0))
    return sk_arena_strndup(a, p, n - 2);
  if (n > 1 && p[n - 1] == 's' && p[n - 2] != 's') return sk_arena_strndup(a, p, n - 1);
  return p;
}

/* ---- templated texts ---- */

static void text_pos(const sk_text *t, size_t off, const sk_source **src, uint32_t *at) {
  *src = t->src;
  if (t->val) *at = sk_value_str_off(t->val, off);
  else *at = t->base_off + (uint32_t)off;
}

static void text_err(ck *c, const sk_text *t, size_t off, size_t len, const char *msg) {
  const sk_source *src;
  uint32_t a, b;
  text_pos(t, off, &src, &a);
  text_pos(t, off + len, &src, &b);
  sk_diag(c->d, SK_ERROR, src, a, b > a ? b - a : 1, "%s", msg);
}

/* Parses the placeholders of t (t->text, t->src and t->val or base_off set). Returns 0 on error. */
static int parse_text(ck *c, sk_text *t) {
  sk_tmpl_error e;
  if (sk_tmpl_parse(t->text, strlen(t->text), &t->tmpl, &e) != 0) {
    text_err(c, t, e.off, e.len, e.msg);
    return 0;
  }
  SK_VEC_PUSH(c->cfg->tmpls, t->tmpl);
  t->refs = sk_arena_alloc(c->arena, (t->tmpl->nparts + 1) * sizeof *t->refs);
  return 1;
}

/* A text from a string value in the .ts. */
static int text_of(ck *c, const sk_value *v, const char *what, sk_text *t) {
  memset(t, 0, sizeof *t);
  if (v->kind == SK_V_NUMBER && v->is_int) {
    t->text = sk_arena_printf(c->arena, "%.0f", v->num);
  } else if (!is_kind(c, v, SK_V_STRING, what)) {
    return 0;
  } else {
    t->text = v->str;
    t->val = v;
  }
  t->src = c->src;
  pos_of(c, v->off, &t->line, &t->col);
  if (!t->val) {
    t->base_off = v->off;
    sk_tmpl_error e;
    if (sk_tmpl_parse(t->text, strlen(t->text), &t->tmpl, &e) != 0) return 0;
    SK_VEC_PUSH(c->cfg->tmpls, t->tmpl);
    t->refs = sk_arena_alloc(c->arena, (t->tmpl->nparts + 1) * sizeof *t->refs);
    return 1;
  }
  return parse_text(c, t);
}

/* A text the compiler writes itself (a default), attributed to the value v. */
static void synth_text(ck *c, const sk_value *v, const char *text, sk_text *t) {
  memset(t, 0, sizeof *t);
  t->text = text;
  t->src = c->src;
  t->base_off = v->off;
  pos_of(c, v->off, &t->line, &t->col);
  sk_tmpl_error e;
  if (sk_tmpl_parse(text, strlen(text), &t->tmpl, &e) == 0) {
    SK_VEC_PUSH(c->cfg->tmpls, t->tmpl);
    t->refs = sk_arena_alloc(c->arena, (t->tmpl->nparts + 1) * sizeof *t->refs);
  }
}

static const char *const root_hint = "the trigger row (row, or its table name made singular), match, loop.name or now";

/* Resolves every placeholder of t in scope s, reporting what does not exist. */
static void resolve_text(ck *c, sk_text *t, const scope *s) {
  if (!t->tmpl) return;
  const sk_cfg_table *trig = c->loop_table >= 0 ? &c->cfg->tables.v[c->loop_table] : NULL;
  for (size_t i = 0; i < t->tmpl->nparts; i++) {
    const sk_tpart *p = &t->tmpl->parts[i];
    if (!p->is_var) continue;
    sk_var_ref *r = &t->refs[i];
    const char *path = p->text;
    const char *dot = strchr(path, '.');
    size_t rootlen = dot ? (size_t)(dot - path) : strlen(path);
    const char *field = dot ? dot + 1 : NULL;
    char *root = sk_arena_strndup(c->arena, path, rootlen);
    char msg[300];
    const sk_cfg_table *ev = s->event_table >= 0 ? &c->cfg->tables.v[s->event_table] : NULL;
    if (strcmp(root, "row") == 0 || (trig && strcmp(root, trig->singular) == 0)) {
      if (!field) {
        snprintf(msg, sizeof msg, "'%s' is a row: name one of its fields, e.g. {{%s.email}}", root, root);
        text_err(c, t, p->path_off, rootlen, msg);
        continue;
      }
      r->kind = strcmp(field, "id") == 0 ? SK_REF_SUBJECT : SK_REF_ROW;
      r->field = field;
    } else if (ev && strcmp(root, ev->singular) == 0) {
      if (!field) {
        snprintf(msg, sizeof msg, "'%s' is a row: name one of its fields", root);
        text_err(c, t, p->path_off, rootlen, msg);
        continue;
      }
      r->kind = SK_REF_EVENT;
      r->field = field;
      r->index = s->step;
    } else if (strcmp(root, "match") == 0) {
      if (!s->has_match) {
        text_err(c, t, p->path_off, rootlen,
                 s->in_on_timeout ? "'match' is not bound in onTimeout: no row satisfied the condition"
                                  : "'match' is only bound in the action of a step whose condition is a query");
        continue;
      }
      if (!field) {
        text_err(c, t, p->path_off, rootlen, "'match' is a row: name one of its fields, e.g. {{match.id}}");
        continue;
      }
      r->kind = SK_REF_MATCH;
      r->field = field;
    } else if (strcmp(root, "loop") == 0) {
      if (!field || strcmp(field, "name") != 0) {
        text_err(c, t, p->path_off, strlen(path), "'loop' has one field: {{loop.name}}");
        continue;
      }
      r->kind = SK_REF_LOOP_NAME;
    } else if (strcmp(root, "now") == 0) {
      if (field) {
        text_err(c, t, p->path_off, strlen(path), "'now' has no fields: write {{now}}");
        continue;
      }
      r->kind = SK_REF_NOW;
    } else {
      int found = -1;
      if (s->pers && !field)
        for (size_t k = 0; k < s->pers->personalization.n; k++)
          if (strcmp(s->pers->personalization.v[k].name, root) == 0) found = (int)k;
      if (found >= 0) {
        r->kind = SK_REF_PERS;
        r->index = found;
        continue;
      }
      /* Without a trigger table (its error is already reported) the root may be that table's name. */
      if (!trig) continue;
      const char *cands[40];
      size_t nc = 0;
      cands[nc++] = "row";
      cands[nc++] = "match";
      cands[nc++] = "loop";
      cands[nc++] = "now";
      if (trig) cands[nc++] = trig->singular;
      if (ev) cands[nc++] = ev->singular;
      if (s->pers)
        for (size_t k = 0; k < s->pers->personalization.n && nc < 40; k++) cands[nc++] = s->pers->personalization.v[k].name;
      const char *sug = sk_suggest(root, cands, nc);
      if (sug)
        snprintf(msg, sizeof msg, "unknown variable '%s' (did you mean '%s'?)", root, sug);
      else if (s->pers && s->pers->personalization.n)
        snprintf(msg, sizeof msg, "unknown variable '%s': expected a personalization key or %s", root, root_hint);
      else
        snprintf(msg, sizeof msg, "unknown variable '%s': expected %s", root, root_hint);
      text_err(c, t, p->path_off, rootlen, msg);
    }
  }
}

/* ---- tables ---- */

static int table_index(ck *c, const char *name) {
  for (size_t i = 0; i < c->cfg->tables.n; i++)
    if (strcmp(c->cfg->tables.v[i].name, name) == 0) return (int)i;
  sk_cfg_table t = {0};
  t.name = sk_arena_strdup(c->arena, name);
  t.singular = sk_singular(c->arena, t.name);
  t.key = sk_arena_printf(c->arena, "%s:{id}", name);
  t.format = SK_FORMAT_HASH;
  t.feed = SK_TABLE_FEED_STREAM;
  SK_VEC_PUSH(c->cfg->tables, t);
  return (int)c->cfg->tables.n - 1;
}

static int valid_table_name(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-') return 0;
  return 1;
}

static const char *const table_keys[] = {"key", "format", "feed"};
static const char *const format_names[] = {"hash", "json"};
static const char *const feed_names[] = {"stream", "keyspace", "scan"};

/* The `tables` entry (name: {...}) that mapped the table, for diagnostics; NULL if none did. */
static const sk_member *mapping_of(ck *c, const char *name) {
  for (size_t i = 0; i < c->mappings.n; i++)
    if (strcmp(c->mappings.v[i]->key, name) == 0) return c->mappings.v[i];
  return NULL;
}

static void check_tables(ck *c, const sk_value *tables) {
  for (size_t i = 0; i < tables->nmembers; i++) {
    const sk_member *m = &tables->members[i];
    if (!valid_table_name(m->key)) {
      sk_diag(c->d, SK_ERROR, c->src, m->key_off, m->key_len,
              "invalid table name '%s': use letters, digits, '_' and '-'", m->key);
      continue;
    }
    if (!is_kind(c, m->val, SK_V_OBJECT, "a table mapping")) continue;
    check_keys(c, m->val, "a table mapping", table_keys, 3);
    int idx = table_index(c, m->key);
    sk_cfg_table t = c->cfg->tables.v[idx];
    const sk_value *v;
    if ((v = get(m->val, "key")) && is_kind(c, v, SK_V_STRING, "'key'")) {
      const char *p = strstr(v->str, "{id}");
      if (!p || strstr(p + 4, "{id}"))
        sk_diag(c->d, SK_ERROR, c->src, v->off, v->len, "key pattern '%s' must contain {id} exactly once, e.g. '%s:{id}'",
                v->str, m->key);
      else
        t.key = v->str;
    }
    if ((v = get(m->val, "format"))) {
      uint32_t f = get_enum(c, v, "row format", format_names, 2, SK_FORMAT_HASH);
      if (f) t.format = f;
    }
    if ((v = get(m->val, "feed"))) {
      uint32_t f = get_enum(c, v, "feed", feed_names, 3, SK_TABLE_FEED_STREAM);
      if (f) t.feed = f;
    }
    sk_cfg_table *old = &c->cfg->tables.v[idx];
    if (old->configured && (strcmp(old->key, t.key) || old->format != t.format || old->feed != t.feed)) {
      uint32_t line, col;
      pos_of(c, mapping_of(c, m->key)->key_off, &line, &col);
      sk_diag(c->d, SK_ERROR, c->src, m->key_off, m->key_len,
              "table '%s' is mapped differently here than at line %u:%u: a table has one mapping in a build", m->key,
              line, col);
      continue;
    }
    if (!old->configured) SK_VEC_PUSH(c->mappings, m);
    t.configured = 1;
    t.where = m->val;
    *old = t;
  }
}

/* ---- steps ---- */

static const char *const trigger_keys[] = {"type", "table", "event"};
static const char *const event_names[] = {"insert", "update"};

static sk_cfg_trigger *check_trigger(ck *c, const sk_value *v) {
  if (!is_kind(c, v, SK_V_OBJECT, "a trigger")) return NULL;
  check_keys(c, v, "a trigger", trigger_keys, 3);
  const sk_value *type = get(v, "type");
  if (!type) {
    if (!misspelled(v, "type", trigger_keys, 3)) err_open(c, v, "a trigger needs a 'type': %s", "'database'");
  } else if (is_kind(c, type, SK_V_STRING, "a trigger's 'type'") && strcmp(type->str, "database") != 0) {
    static const char *const tn[] = {"database"};
    get_enum(c, type, "trigger type", tn, 1, 1);
  }
  sk_cfg_trigger *t = sk_arena_alloc(c->arena, sizeof *t);
  t->table = -1;
  pos_of(c, v->off, &t->line, &t->col);
  const sk_value *table = get(v, "table");
  if (!table) {
    if (!misspelled(v, "table", trigger_keys, 3))
      err_open(c, v, "a trigger needs a 'table': %s", "the table whose rows start the loop, e.g. 'users'");
  } else if (is_kind(c, table, SK_V_STRING, "a trigger's 'table'")) {
    if (!valid_table_name(table->str))
      err_v(c, table, "invalid table name '%s'%s", table->str, ": use letters, digits, '_' and '-'");
    else
      t->table = table_index(c, table->str);
  }
  const sk_value *ev = get(v, "event");
  if (!ev) {
    if (!misspelled(v, "event", trigger_keys, 3))
      err_open(c, v, "a trigger needs an 'event': %s", "'insert' or 'update'");
  } else {
    t->event = get_enum(c, ev, "event", event_names, 2, SK_EVENT_INSERT);
  }
  if (t->table < 0 || !t->event) return NULL;
  return t;
}

static const char *const cond_query_keys[] = {"type", "query", "params", "timeout", "minRows"};
static const char *const cond_redis_keys[] = {"type", "command", "timeout"};
static const char *const cond_types[] = {"query", "redis"};

static void check_argv(ck *c, const sk_value *cmd, void *vec_, const scope *s) {
  struct { sk_text *v; size_t n, cap; } *vec = vec_;
  if (!is_kind(c, cmd, SK_V_ARRAY, "'command'")) return;
  if (cmd->nitems == 0) {
    err_v(c, cmd, "'command' is empty: name a Redis command and its arguments, e.g. %s%s",
          "['HSET', 'users:{{row.id}}', 'activated_at', '{{now}}']", "");
    return;
  }
  for (size_t i = 0; i < cmd->nitems; i++) {
    sk_text t;
    if (!text_of(c, cmd->items[i], "a command argument", &t)) continue;
    if (i == 0 && t.tmpl && (t.tmpl->nparts != 1 || t.tmpl->parts[0].is_var))
      err_v(c, cmd->items[i], "the command name must be a plain word, not %s%s", "a placeholder", "");
    resolve_text(c, &t, s);
    SK_VEC_PUSH(*vec, t);
  }
}

static const char *join_argv(ck *c, const sk_value *cmd) {
  sk_buf b = {0};
  for (size_t i = 0; cmd && cmd->kind == SK_V_ARRAY && i < cmd->nitems; i++) {
    const sk_value *it = cmd->items[i];
    if (i) sk_buf_putc(&b, ' ');
    if (it->kind == SK_V_STRING) sk_buf_puts(&b, it->str);
    else if (it->kind == SK_V_NUMBER) sk_buf_printf(&b, "%.0f", it->num);
  }
  char *r = sk_arena_strdup(c->arena, b.data ? b.data : "");
  sk_buf_free(&b);
  return r;
}

static sk_cfg_cond *check_condition(ck *c, const sk_value *v, const scope *s) {
  if (!is_kind(c, v, SK_V_OBJECT, "a condition")) return NULL;
  const sk_value *type = get(v, "type");
  if (!type) {
    err_open(c, v, "a condition needs a 'type': %s", "'query' or 'redis'");
    return NULL;
  }
  uint32_t kind = get_enum(c, type, "condition type", cond_types, 2, SK_COND_QUERY);
  if (!kind) return NULL;
  sk_cfg_cond *cd = sk_arena_alloc(c->arena, sizeof *cd);
  cd->kind = kind;
  cd->table = -1;
  cd->min_rows = 1;
  cd->val = v;
  pos_of(c, v->off, &cd->line, &cd->col);
  const sk_value *tv = get(v, "timeout");
  if (tv && get_duration(c, tv, "'timeout'", &cd->timeout_ms) && cd->timeout_ms == 0)
    err_v(c, tv, "'timeout' must be longer than 0%s%s: leave it out to check once without waiting", "", "");
  if (kind == SK_COND_REDIS) {
    check_keys(c, v, "a redis condition", cond_redis_keys, 3);
    const sk_value *cmd = get(v, "command");
    if (!cmd) {
      if (!misspelled(v, "command", cond_redis_keys, 3))
        err_open(c, v, "a redis condition needs a 'command': %s", "e.g. ['SISMEMBER', 'onboarded', '{{row.id}}']");
    } else {
      check_argv(c, cmd, &cd->argv, s);
      cd->text = join_argv(c, cmd);
    }
    return cd;
  }
  check_keys(c, v, "a query condition", cond_query_keys, 5);
  const sk_value *q = get(v, "query");
  if (!q) {
    if (!misspelled(v, "query", cond_query_keys, 5))
      err_open(c, v, "a query condition needs a 'query': %s", "e.g. `SELECT * FROM user_actions WHERE user_id = $1`");
    return NULL;
  }
  if (!is_kind(c, q, SK_V_STRING, "'query'")) return NULL;
  cd->text = q->str;
  sk_sql_error e;
  if (sk_sql_parse(q->str, q->slen, &cd->sql, &e) != 0) {
    uint32_t a = sk_value_str_off(q, e.off), b = sk_value_str_off(q, e.off + e.len);
    sk_diag(c->d, SK_ERROR, c->src, a, b > a ? b - a : 1, "%s", e.msg);
    return NULL;
  }
  SK_VEC_PUSH(c->cfg->queries, cd->sql);
  if (!valid_table_name(cd->sql->table)) {
    uint32_t a = sk_value_str_off(q, cd->sql->table_off);
    sk_diag(c->d, SK_ERROR, c->src, a, (uint32_t)strlen(cd->sql->table), "invalid table name '%s'", cd->sql->table);
    return NULL;
  }
  cd->table = table_index(c, cd->sql->table);
  const sk_value *params = get(v, "params");
  size_t nparams = 1;
  if (params && is_kind(c, params, SK_V_ARRAY, "'params'")) {
    nparams = params->nitems;
    for (size_t i = 0; i < params->nitems; i++) {
      sk_text t;
      if (!text_of(c, params->items[i], "a query parameter", &t)) continue;
      resolve_text(c, &t, s);
      SK_VEC_PUSH(cd->params, t);
    }
  }
  for (size_t i = 0; i < cd->sql->npreds; i++) {
    const sk_sql_pred *p = &cd->sql->preds[i];
    if (p->kind == SK_SQL_PARAM && (size_t)p->param > nparams) {
      uint32_t a = sk_value_str_off(q, p->val_off), b = sk_value_str_off(q, p->val_off + p->val_len);
      if (params)
        sk_diag(c->d, SK_ERROR, c->src, a, b - a, "$%d has no value: 'params' gives %zu", p->param, nparams);
      else
        sk_diag(c->d, SK_ERROR, c->src, a, b - a,
                "$%d has no value: without 'params' only $1 (the trigger row's id) is bound", p->param);
    }
  }
  const sk_value *mr = get(v, "minRows");
  if (mr) {
    if (mr->kind != SK_V_NUMBER || !mr->is_int || mr->num < 1 || mr->num > 1000000)
      err_v(c, mr, "'minRows' must be a whole number from 1 to 1000000%s%s", "", "");
    else
      cd->min_rows = (uint32_t)mr->num;
  }
  if (cd->sql->limit >= 0 && (uint64_t)cd->sql->limit < cd->min_rows) {
    char buf[64];
    snprintf(buf, sizeof buf, "%ld", cd->sql->limit);
    err_v(c, mr ? mr : q, "'minRows' can never be reached: the query has LIMIT %s%s", buf, "");
  }
  return cd;
}

/* ---- actions ---- */

static const char *const action_types[] = {"email", "webhook", "redis"};
static const char *const email_keys[] = {"type", "provider", "template", "to", "from", "subject",
                                         "replyTo", "personalization", "tags"};
static const char *const webhook_keys[] = {"type", "url", "headers", "body"};
static const char *const redis_action_keys[] = {"type", "command"};
static const char *const provider_names[] = {"resend", "outbox"};

static void add_field(ck *c, sk_cfg_effect *e, const char *name, sk_text t) {
  (void)c;
  sk_named_text nt = {name, t};
  SK_VEC_PUSH(e->fields, nt);
}

static int valid_template_name(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.') return 0;
  return 1;
}

static const char *dir_of(ck *c, const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return ".";
  return sk_arena_strndup(c->arena, path, (size_t)(slash - path));
}

static const char *template_path(ck *c, const char *name, const char *ext) {
  if (c->opts && c->opts->templates_dir) return sk_arena_printf(c->arena, "%s/%s.%s", c->opts->templates_dir, name, ext);
  const char *dir = dir_of(c, c->cfg->source_path);
  if (strcmp(dir, ".") == 0) return sk_arena_printf(c->arena, "templates/%s.%s", name, ext);
  return sk_arena_printf(c->arena, "%s/templates/%s.%s", dir, name, ext);
}

/* Loads templates/<name>.<ext>; returns its source, or NULL when the file does not exist. */
static const sk_source *load_template_file(ck *c, const char *path, const sk_value *at) {
  char *text;
  size_t len;
  if (sk_read_file(path, &text, &len) != 0) {
    if (errno != ENOENT)
      sk_diag(c->d, SK_ERROR, c->src, at->off, at->len, "cannot read template %s: %s", path, strerror(errno));
    return NULL;
  }
  SK_VEC_PUSH(c->cfg->files, text);
  return sk_diags_source(c->d, path, text, len);
}

static void file_text(ck *c, const sk_source *src, size_t off, sk_text *t) {
  memset(t, 0, sizeof *t);
  t->text = sk_arena_strndup(c->arena, src->text + off, src->len - off);
  t->src = src;
  t->base_off = (uint32_t)off;
  sk_source_pos(src, (uint32_t)off, &t->line, &t->col);
  parse_text(c, t);
}

static void check_email_templates(ck *c, sk_cfg_effect *e, const sk_value *tv, const sk_value *subject_v,
                                  const scope *s) {
  const char *name = tv->str;
  if (strncmp(name, "resend:", 7) == 0) {
    if (!name[7]) {
      err_v(c, tv, "'resend:' needs a template id%s%s, e.g. 'resend:welcome-v2'", "", "");
      return;
    }
    e->resend_id = name + 7;
    sk_text t;
    synth_text(c, tv, "", &t);
    t.text = e->resend_id;
    sk_tmpl_free(t.tmpl);
    c->cfg->tmpls.n--;
    synth_text(c, tv, e->resend_id, &t);
    add_field(c, e, "template", t);
    if (subject_v) { /* Resend takes a subject with a template: it replaces the template's own */
      sk_text st;
      if (text_of(c, subject_v, "'subject'", &st)) {
        resolve_text(c, &st, s);
        add_field(c, e, "subject", st);
      }
    }
    for (size_t i = 0; i < e->personalization.n; i++)
      add_field(c, e, sk_arena_printf(c->arena, "var.%s", e->personalization.v[i].name), e->personalization.v[i].text);
    return;
  }
  if (!valid_template_name(name)) {
    err_v(c, tv, "invalid template name '%s'%s: use letters, digits, '_', '-' and '.' (or 'resend:<id>')", name, "");
    return;
  }
  e->template_name = name;
  const char *hp = template_path(c, name, "html"), *tp = template_path(c, name, "txt");
  const sk_source *html = load_template_file(c, hp, tv);
  const sk_source *txt = load_template_file(c, tp, tv);
  if (!html && !txt) {
    sk_diag(c->d, SK_ERROR, c->src, tv->off, tv->len, "template '%s' not found: expected %s (or %s)", name, hp, tp);
    return;
  }
  char *fm_subject = NULL;
  size_t fm_subject_off = 0;
  sk_text html_t = {0}, txt_t = {0}, subj_t = {0};
  int have_subject = 0, bad_front_matter = 0;
  const sk_source *srcs[2] = {html, txt};
  sk_text *outs[2] = {&html_t, &txt_t};
  for (int k = 0; k < 2; k++) {
    if (!srcs[k]) continue;
    size_t body_off = 0;
    char *subj = NULL;
    size_t subj_off = 0;
    sk_tmpl_error err;
    if (sk_front_matter(srcs[k]->text, srcs[k]->len, &subj, &subj_off, &body_off, &err) != 0) {
      sk_diag(c->d, SK_ERROR, srcs[k], (uint32_t)err.off, err.len ? (uint32_t)err.len : 1, "%s", err.msg);
      bad_front_matter = 1;
      continue;
    }
    if (subj && !fm_subject) {
      fm_subject = subj;
      fm_subject_off = subj_off;
      memset(&subj_t, 0, sizeof subj_t);
      subj_t.text = sk_arena_strdup(c->arena, subj);
      subj_t.src = srcs[k];
      subj_t.base_off = (uint32_t)subj_off;
      sk_source_pos(srcs[k], (uint32_t)subj_off, &subj_t.line, &subj_t.col);
      have_subject = parse_text(c, &subj_t);
    } else {
      free(subj);
    }
    file_text(c, srcs[k], body_off, outs[k]);
    outs[k]->escape = k == 0 ? SK_ESC_HTML : SK_ESC_NONE;
    resolve_text(c, outs[k], s);
  }
  (void)fm_subject_off;
  free(fm_subject);
  if (subject_v) {
    sk_text t;
    if (text_of(c, subject_v, "'subject'", &t)) {
      resolve_text(c, &t, s);
      add_field(c, e, "subject", t);
    }
  } else if (have_subject) {
    resolve_text(c, &subj_t, s);
    add_field(c, e, "subject", subj_t);
  } else if (!bad_front_matter) {
    sk_diag(c->d, SK_ERROR, c->src, tv->off, tv->len,
            "email '%s' has no subject: add 'subject' to the action, or front matter 'subject:' to %s", name,
            html ? hp : tp);
  }
  if (html_t.tmpl) add_field(c, e, "html", html_t);
  if (txt_t.tmpl) add_field(c, e, "text", txt_t);
}

static int plausible_address(const char *s) {
  const char *lt = strchr(s, '<');
  const char *at = strchr(s, '@');
  if (!at || at == s) return 0;
  if (lt) return strchr(lt, '>') != NULL && at > lt + 1;
  return strchr(at, '.') != NULL && !strchr(s, ' ');
}

static void check_address(ck *c, const sk_value *v, const sk_text *t, const char *what) {
  if (!t->tmpl || t->tmpl->nparts != 1 || t->tmpl->parts[0].is_var) return; /* placeholders: checked at run time */
  if (!plausible_address(v->str))
    err_v(c, v, "%s must be an email address, not '%s': write 'name@example.com' or 'Name <name@example.com>'", what,
          v->str);
}

/* ---- the webhook body ---- */

/* The body's template, built part by part: JSON syntax, keys and literal text are escaped here into
   literal parts; each string's placeholders, already parsed and resolved where the string is, are
   carried over as they are (their values are JSON-escaped when rendered). */
typedef struct {
  sk_tmpl *t;
  sk_buf lit;                                   /* pending literal text */
  struct { sk_var_ref *v; size_t n, cap; } refs;
} body_tmpl;

static void body_part(body_tmpl *bt, int is_var, const char *text, const char *deflt, const sk_var_ref *ref) {
  sk_tpart p = {is_var, strdup(text), deflt ? strdup(deflt) : NULL, 0, 0, 0};
  sk_var_ref none = {0};
  struct { sk_tpart *v; size_t n, cap; } parts = {bt->t->parts, bt->t->nparts, bt->t->nparts};
  if (!p.text || (deflt && !p.deflt)) abort(); /* as SK_VEC_PUSH does on OOM */
  SK_VEC_PUSH(parts, p);
  bt->t->parts = parts.v;
  bt->t->nparts = parts.n;
  SK_VEC_PUSH(bt->refs, ref ? *ref : none);
}

static void body_flush(body_tmpl *bt) {
  if (!bt->lit.len) return;
  body_part(bt, 0, bt->lit.data, NULL, NULL);
  bt->lit.len = 0;
}

/* Appends s as the inside of a JSON string. */
static void body_escaped(body_tmpl *bt, const char *s) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      sk_buf_putc(&bt->lit, '\\');
      sk_buf_putc(&bt->lit, (char)ch);
    } else if (ch == '\n') sk_buf_puts(&bt->lit, "\\n");
    else if (ch == '\t') sk_buf_puts(&bt->lit, "\\t");
    else if (ch == '\r') sk_buf_puts(&bt->lit, "\\r");
    else if (ch < 0x20) sk_buf_printf(&bt->lit, "\\u%04x", ch);
    else sk_buf_putc(&bt->lit, (char)ch);
  }
}

/* Appends the JSON of a scalar value; returns 0 after reporting what cannot be in a body. */
static int body_scalar(ck *c, body_tmpl *bt, const sk_value *v, const scope *s) {
  if (v->kind == SK_V_STRING) {
    sk_text st;
    if (!text_of(c, v, "a body value", &st)) return 0;
    resolve_text(c, &st, s);
    sk_buf_putc(&bt->lit, '"');
    for (size_t i = 0; i < st.tmpl->nparts; i++) {
      const sk_tpart *p = &st.tmpl->parts[i];
      if (!p->is_var) {
        body_escaped(bt, p->text);
        continue;
      }
      body_flush(bt);
      body_part(bt, 1, p->text, p->deflt, &st.refs[i]);
    }
    sk_buf_putc(&bt->lit, '"');
  } else if (v->kind == SK_V_NUMBER) {
    sk_buf_printf(&bt->lit, v->is_int ? "%.0f" : "%.17g", v->num);
  } else if (v->kind == SK_V_BOOL) {
    sk_buf_puts(&bt->lit, v->b ? "true" : "false");
  } else if (v->kind == SK_V_NULL) {
    sk_buf_puts(&bt->lit, "null");
  } else {
    err_v(c, v, "a webhook body cannot hold %s%s", sk_vkind_name(v->kind), "");
    return 0;
  }
  return 1;
}

/* Builds the body's text from the value body (iteratively; extract bounds the depth). Returns 0 when
   there was an error, reported at the value that caused it. */
static int body_text(ck *c, const sk_value *body, const scope *s, sk_text *out) {
  struct frame { const sk_value *v; size_t i; } fr[256];
  body_tmpl bt = {calloc(1, sizeof *bt.t), {0}, {0}};
  int ok = 1, sp = 0;
  if (!bt.t) abort();
  fr[0].v = body;
  fr[0].i = 0;
  for (;;) {
    struct frame *f = &fr[sp];
    const sk_value *cur = f->v;
    size_t n = cur->kind == SK_V_OBJECT ? cur->nmembers : cur->kind == SK_V_ARRAY ? cur->nitems : 0;
    if (cur->kind != SK_V_OBJECT && cur->kind != SK_V_ARRAY) {
      if (!body_scalar(c, &bt, cur, s)) ok = 0;
    } else if (f->i == 0) {
      sk_buf_putc(&bt.lit, cur->kind == SK_V_OBJECT ? '{' : '[');
    }
    if (f->i == n) {
      if (cur->kind == SK_V_OBJECT || cur->kind == SK_V_ARRAY) sk_buf_putc(&bt.lit, cur->kind == SK_V_OBJECT ? '}' : ']');
      if (sp == 0) break;
      sp--;
      continue;
    }
    if (f->i) sk_buf_putc(&bt.lit, ',');
    const sk_value *child;
    if (cur->kind == SK_V_OBJECT) {
      sk_buf_putc(&bt.lit, '"');
      body_escaped(&bt, cur->members[f->i].key);
      sk_buf_puts(&bt.lit, "\":");
      child = cur->members[f->i].val;
    } else {
      child = cur->items[f->i];
    }
    f->i++;
    if (sp + 1 >= (int)(sizeof fr / sizeof fr[0])) {
      err_v(c, child, "the webhook body is nested too deeply%s%s", "", "");
      ok = 0;
      break;
    }
    sp++;
    fr[sp].v = child;
    fr[sp].i = 0;
  }
  body_flush(&bt);
  sk_buf_free(&bt.lit);
  /* Kept even when !ok, so that sk_config_free frees it. */
  SK_VEC_PUSH(c->cfg->tmpls, bt.t);
  memset(out, 0, sizeof *out);
  out->text = "";
  out->tmpl = bt.t;
  out->src = c->src;
  out->escape = SK_ESC_JSON;
  pos_of(c, body->off, &out->line, &out->col);
  out->refs = sk_arena_alloc(c->arena, (bt.refs.n + 1) * sizeof *out->refs);
  if (bt.refs.n) memcpy(out->refs, bt.refs.v, bt.refs.n * sizeof *bt.refs.v);
  free(bt.refs.v);
  return ok;
}

static sk_cfg_effect *check_action(ck *c, const sk_value *v, const char *what, int slot, scope *s) {
  if (!is_kind(c, v, SK_V_OBJECT, what)) return NULL;
  const sk_value *type = get(v, "type");
  if (!type) {
    err_open(c, v, "an action needs a 'type': %s", "'email', 'webhook' or 'redis'");
    return NULL;
  }
  uint32_t kind = get_enum(c, type, "action type", action_types, 3, SK_EFFECT_EMAIL);
  if (!kind) return NULL;
  sk_cfg_effect *e = sk_arena_alloc(c->arena, sizeof *e);
  e->kind = kind;
  pos_of(c, v->off, &e->line, &e->col);
  (void)slot;
  if (kind == SK_EFFECT_REDIS) {
    check_keys(c, v, "a redis action", redis_action_keys, 2);
    const sk_value *cmd = get(v, "command");
    if (!cmd) {
      if (!misspelled(v, "command", redis_action_keys, 2))
        err_open(c, v, "a redis action needs a 'command': %s",
                 "e.g. ['HSET', 'users:{{row.id}}', 'activated_at', '{{now}}']");
      return NULL;
    }
    struct { sk_text *v; size_t n, cap; } argv = {0};
    check_argv(c, cmd, &argv, s);
    for (size_t i = 0; i < argv.n; i++) add_field(c, e, "argv", argv.v[i]);
    free(argv.v);
    return e;
  }
  if (kind == SK_EFFECT_WEBHOOK) {
    check_keys(c, v, "a webhook action", webhook_keys, 4);
    const sk_value *url = get(v, "url");
    sk_text t;
    if (!url) {
      if (!misspelled(v, "url", webhook_keys, 4))
        err_open(c, v, "a webhook needs a 'url': %s",
                 "the address to send the request to, e.g. 'https://hooks.example.com/skene'");
    }
    else if (text_of(c, url, "'url'", &t)) {
      if (strncmp(url->str, "https://", 8) != 0 && strncmp(url->str, "http://", 7) != 0)
        err_v(c, url, "webhook url '%s' must start with https:// or http://%s", url->str, "");
      t.escape = SK_ESC_URL;
      resolve_text(c, &t, s);
      add_field(c, e, "url", t);
    }
    const sk_value *headers = get_object(c, v, "headers", "'headers'");
    for (size_t i = 0; headers && i < headers->nmembers; i++) {
      const sk_member *m = &headers->members[i];
      int ok = m->key[0] != 0;
      for (const char *p = m->key; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p)) ok = 0;
      if (!ok) {
        sk_diag(c->d, SK_ERROR, c->src, m->key_off, m->key_len,
                "invalid HTTP header name '%s': use letters, digits and '-', e.g. 'X-Request-Id'", m->key);
        continue;
      }
      if (!text_of(c, m->val, "a header value", &t)) continue;
      resolve_text(c, &t, s);
      add_field(c, e, sk_arena_printf(c->arena, "header.%s", m->key), t);
    }
    const sk_value *body = get(v, "body");
    if (body) {
      sk_text bt;
      if (body_text(c, body, s, &bt)) add_field(c, e, "body", bt);
    }
    return e;
  }
  /* email */
  check_keys(c, v, "an email action", email_keys, 9);
  const sk_value *prov = get(v, "provider");
  e->provider = prov ? get_enum(c, prov, "email provider", provider_names, 2, SK_PROVIDER_RESEND) : SK_PROVIDER_RESEND;
  if (!e->provider) e->provider = SK_PROVIDER_RESEND;
  const sk_value *pers = get_object(c, v, "personalization", "'personalization'");
  for (size_t i = 0; pers && i < pers->nmembers; i++) {
    const sk_member *m = &pers->members[i];
    sk_text t;
    if (!text_of(c, m->val, "a personalization value", &t)) continue;
    resolve_text(c, &t, s); /* personalization values see the roots, not each other */
    sk_named_text nt = {m->key, t};
    SK_VEC_PUSH(e->personalization, nt);
  }
  scope es = *s;
  es.pers = e;
  sk_text t;
  const sk_value *to = get(v, "to");
  if (to) {
    if (text_of(c, to, "'to'", &t)) {
      check_address(c, to, &t, "'to'");
      resolve_text(c, &t, &es);
      add_field(c, e, "to", t);
    }
  } else {
    synth_text(c, v, "{{row.email}}", &t);
    resolve_text(c, &t, &es);
    add_field(c, e, "to", t);
  }
  const sk_value *from = get(v, "from");
  if (from && text_of(c, from, "'from'", &t)) {
    check_address(c, from, &t, "'from'");
    resolve_text(c, &t, &es);
    add_field(c, e, "from", t);
  }
  const sk_value *reply = get(v, "replyTo");
  if (reply && text_of(c, reply, "'replyTo'", &t)) {
    check_address(c, reply, &t, "'replyTo'");
    resolve_text(c, &t, &es);
    add_field(c, e, "reply_to", t);
  }
  const sk_value *tv = get(v, "template");
  if (!tv) {
    if (!misspelled(v, "template", email_keys, 9))
      err_open(c, v, "an email needs a 'template': %s", "a file in templates/ (name without extension) or 'resend:<id>'");
  } else if (is_kind(c, tv, SK_V_STRING, "'template'")) check_email_templates(c, e, tv, get(v, "subject"), &es);
  const sk_value *tags = get_object(c, v, "tags", "'tags'");
  for (size_t i = 0; tags && i < tags->nmembers; i++) {
    const sk_member *m = &tags->members[i];
    int ok = m->key[0] != 0 && strlen(m->key) <= 256;
    for (const char *p = m->key; *p; p++)
      if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-') ok = 0;
    if (!ok) {
      sk_diag(c->d, SK_ERROR, c->src, m->key_off, m->key_len,
              "invalid tag name '%s': Resend allows letters, digits, '_' and '-'", m->key);
      continue;
    }
    if (!text_of(c, m->val, "a tag value", &t)) continue;
    resolve_text(c, &t, &es);
    add_field(c, e, sk_arena_printf(c->arena, "tag.%s", m->key), t);
  }
  return e;
}

static const char *const step_keys[] = {"trigger", "delay", "condition", "action", "onTimeout"};

static void check_step(ck *c, const sk_value *v, int index, sk_cfg_loop *loop) {
  if (!is_kind(c, v, SK_V_OBJECT, "a step")) return;
  check_keys(c, v, "a step", step_keys, 5);
  sk_cfg_step st = {0};
  pos_of(c, v->off, &st.line, &st.col);
  scope s = {index, 0, -1, NULL, 0};
  const sk_value *tv = get(v, "trigger");
  if (tv) {
    st.trigger = check_trigger(c, tv);
    if (index == 0 && st.trigger) c->loop_table = st.trigger->table;
    else if (st.trigger && st.trigger->table != c->loop_table) s.event_table = st.trigger->table;
  } else if (index == 0 && !misspelled(v, "trigger", step_keys, 5)) {
    err_open(c, v, "the first step needs a 'trigger'%s: the table and event that start the loop", "");
  }
  const sk_value *dv = get(v, "delay");
  if (dv) get_duration(c, dv, "'delay'", &st.delay_ms);
  const sk_value *cv = get(v, "condition");
  if (cv) st.cond = check_condition(c, cv, &s);
  const sk_value *av = get(v, "action");
  const sk_value *ov = get(v, "onTimeout");
  if (av) {
    scope as = s;
    /* From the value, not st.cond: a query with errors still binds match (no cascade of errors). */
    const sk_value *ct = cv && cv->kind == SK_V_OBJECT ? get(cv, "type") : NULL;
    as.has_match = ct && ct->kind == SK_V_STRING && strcmp(ct->str, "query") == 0;
    st.action = check_action(c, av, "an action", 0, &as);
  }
  if (ov) {
    if (!cv || (st.cond && st.cond->timeout_ms == 0) || (cv->kind == SK_V_OBJECT && !get(cv, "timeout"))) {
      sk_member *m = sk_value_get(v, "onTimeout");
      sk_diag(c->d, SK_ERROR, c->src, m->key_off, m->key_len,
              "'onTimeout' needs a condition with a 'timeout': without one the step never times out "
              "(add e.g. timeout: '3d' to the condition)");
    }
    scope os = s;
    os.in_on_timeout = 1;
    st.on_timeout = check_action(c, ov, "an onTimeout action", 1, &os);
  }
  if (!tv && !dv && !cv && !av && index > 0)
    err_open(c, v, "this step does nothing: give it a trigger, a delay, a condition or an action%s", "");
  SK_VEC_PUSH(loop->steps, st);
}

/* ---- loops ---- */

static const char *const loop_keys[] = {"name", "type", "opinion", "tables", "steps", "recovery"};
static const char *const loop_types[] = {"activation", "retention", "referral", "conversion", "expansion"};
static const char *const recovery_keys[] = {"retries", "backoff", "delay", "maxDelay", "jitter"};
static const char *const backoff_names[] = {"exponential", "linear", "fixed"};

static int valid_loop_name(const char *s) {
  if (!*s || strlen(s) > 128) return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.') return 0;
  return 1;
}

static uint64_t name_hash(const char *name) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
  return h;
}

/* Records loop `self` (already in cfg->loops) under its name; returns the index of an earlier loop
   with the same name, or -1. Expected O(1): a build of 10,000 loops must not compare every pair. */
static int find_loop_name(ck *c, uint32_t self) {
  const sk_cfg_loop *loops = c->cfg->loops.v;
  if ((size_t)(self + 1) * 2 > c->names.cap) {
    size_t nc = c->names.cap ? c->names.cap * 2 : 64;
    uint32_t *nv = calloc(nc, sizeof *nv);
    if (!nv) return -1;
    for (size_t i = 0; i < c->names.cap; i++) {
      uint32_t v = c->names.v[i];
      if (!v) continue;
      size_t j = name_hash(loops[v - 1].name) & (nc - 1);
      while (nv[j]) j = (j + 1) & (nc - 1);
      nv[j] = v;
    }
    free(c->names.v);
    c->names.v = nv;
    c->names.cap = nc;
  }
  size_t mask = c->names.cap - 1;
  for (size_t j = name_hash(loops[self].name) & mask;; j = (j + 1) & mask) {
    uint32_t v = c->names.v[j];
    if (!v) {
      c->names.v[j] = self + 1;
      return -1;
    }
    if (strcmp(loops[v - 1].name, loops[self].name) == 0) return (int)v - 1;
  }
}

static void check_loop(ck *c, const sk_value *lv) {
  const sk_value *v = lv->arg;
  check_keys(c, v, "a loop", loop_keys, 6);
  sk_cfg_loop loop = {0};
  pos_of(c, lv->off, &loop.line, &loop.col);
  c->loop_table = -1;
  const sk_value *type = get(v, "type");
  if (!type) {
    if (!misspelled(v, "type", loop_keys, 6))
      err_open(c, v, "a loop needs a 'type': %s", "'activation', 'retention', 'referral', 'conversion' or 'expansion'");
  } else {
    loop.type = get_enum(c, type, "loop type", loop_types, 5, SK_LOOP_ACTIVATION);
  }
  const sk_value *name = get(v, "name");
  if (name) {
    if (is_kind(c, name, SK_V_STRING, "'name'")) {
      if (!valid_loop_name(name->str))
        err_v(c, name, "invalid loop name '%s'%s: use letters, digits, '_', '-' and '.' (at most 128)", name->str, "");
      loop.name = name->str;
    }
  } else if (loop.type) {
    loop.name = loop_types[loop.type - 1];
  }
  const char *opinion = get_string(c, v, "opinion", "'opinion'");
  loop.opinion = opinion ? opinion : "";
  const sk_value *tables = get_object(c, v, "tables", "'tables'");
  if (tables) check_tables(c, tables);
  loop.retries = 3;
  loop.backoff = SK_BACKOFF_EXPONENTIAL;
  loop.delay_ms = 1000;
  loop.max_delay_ms = 3600000;
  loop.jitter = 1;
  const sk_value *rec = get_object(c, v, "recovery", "'recovery'");
  if (rec) {
    check_keys(c, rec, "'recovery'", recovery_keys, 5);
    const sk_value *r;
    if ((r = get(rec, "retries"))) {
      if (r->kind != SK_V_NUMBER || !r->is_int || r->num < 0 || r->num > 20) {
        if (r->kind == SK_V_NUMBER)
          err_v(c, r, "'retries' must be a whole number from 0 to 20%s%s", "", "");
        else
          err_v(c, r, "'retries' must be a whole number from 0 to 20, not %s", sk_vkind_name(r->kind));
      } else {
        loop.retries = (uint32_t)r->num;
      }
    }
    if ((r = get(rec, "backoff"))) {
      uint32_t b = get_enum(c, r, "backoff", backoff_names, 3, SK_BACKOFF_EXPONENTIAL);
      if (b) loop.backoff = b;
    }
    if ((r = get(rec, "delay"))) get_duration(c, r, "'delay'", &loop.delay_ms);
    if ((r = get(rec, "maxDelay"))) {
      if (get_duration(c, r, "'maxDelay'", &loop.max_delay_ms) && loop.max_delay_ms < loop.delay_ms)
        err_v(c, r, "'maxDelay' is shorter than 'delay'%s%s", "", "");
    }
    if ((r = get(rec, "jitter")) && is_kind(c, r, SK_V_BOOL, "'jitter'")) loop.jitter = (uint32_t)r->b;
  }
  const sk_value *steps = get(v, "steps");
  if (!steps) {
    if (!misspelled(v, "steps", loop_keys, 6)) err_open(c, v, "a loop needs 'steps'%s: a non-empty array", "");
  } else if (is_kind(c, steps, SK_V_ARRAY, "'steps'")) {
    if (steps->nitems == 0) err_v(c, steps, "'steps' is empty%s%s: a loop needs at least one step", "", "");
    for (size_t i = 0; i < steps->nitems; i++) check_step(c, steps->items[i], (int)i, &loop);
  }
  SK_VEC_PUSH(c->cfg->loops, loop);
  int first = loop.name ? find_loop_name(c, (uint32_t)c->cfg->loops.n - 1) : -1;
  if (first >= 0) {
    char where[64];
    snprintf(where, sizeof where, "line %u:%u", c->cfg->loops.v[first].line, c->cfg->loops.v[first].col);
    const sk_value *at = name ? name : lv;
    if (name)
      err_v(c, at, "duplicate loop name '%s' (the loop at %s has it too): loop names must be unique in a build",
            loop.name, where);
    else
      err_v(c, at, "duplicate loop name '%s', taken from the type (the loop at %s has it too): give each loop a "
            "distinct 'name'", loop.name, where);
  }
}

sk_config *sk_check(const sk_value *root, const sk_source *src, sk_arena *arena, sk_diags *d,
                    const sk_check_options *opts) {
  if (!root) return NULL;
  sk_config *cfg = calloc(1, sizeof *cfg);
  if (!cfg) return NULL;
  cfg->source_path = src->path;
  ck c = {cfg, src, arena, d, opts, -1, {0}, {0}};
  if (root->kind == SK_V_LOOP) {
    check_loop(&c, root);
  } else if (root->kind == SK_V_ARRAY) {
    if (root->nitems == 0) err_v(&c, root, "the exported array is empty%s%s: export at least one defineLoop({...})", "", "");
    for (size_t i = 0; i < root->nitems; i++) {
      if (root->items[i]->kind != SK_V_LOOP)
        sk_diag(d, SK_ERROR, src, root->items[i]->off, root->items[i]->len,
                "each item of the exported array must be defineLoop({...}), not %s", sk_vkind_name(root->items[i]->kind));
      else
        check_loop(&c, root->items[i]);
    }
  } else {
    sk_diag(d, SK_ERROR, src, root->off, root->len,
            "`export default` must be defineLoop({...}) or an array of them, not %s", sk_vkind_name(root->kind));
  }
  for (size_t i = 0; i < cfg->tables.n; i++) {
    const sk_cfg_table *t = &cfg->tables.v[i];
    int used = 0;
    for (size_t l = 0; l < cfg->loops.n && !used; l++)
      for (size_t s = 0; s < cfg->loops.v[l].steps.n && !used; s++) {
        const sk_cfg_step *st = &cfg->loops.v[l].steps.v[s];
        if ((st->trigger && st->trigger->table == (int)i) || (st->cond && st->cond->table == (int)i)) used = 1;
      }
    const sk_member *m = mapping_of(&c, t->name);
    if (!used && m)
      sk_diag(d, SK_WARNING, src, m->key_off, m->key_len,
              "table '%s' is mapped but no trigger or query uses it: remove the mapping, or check the table names",
              t->name);
  }
  free(c.mappings.v);
  free(c.names.v);
  return cfg;
}

void sk_config_free(sk_config *cfg) {
  if (!cfg) return;
  for (size_t i = 0; i < cfg->tmpls.n; i++) sk_tmpl_free(cfg->tmpls.v[i]);
  for (size_t i = 0; i < cfg->queries.n; i++) sk_sql_query_free(cfg->queries.v[i]);
  for (size_t i = 0; i < cfg->files.n; i++) free(cfg->files.v[i]);
  for (size_t l = 0; l < cfg->loops.n; l++) {
    for (size_t s = 0; s < cfg->loops.v[l].steps.n; s++) {
      sk_cfg_step *st = &cfg->loops.v[l].steps.v[s];
      if (st->cond) {
        free(st->cond->params.v);
        free(st->cond->argv.v);
      }
      sk_cfg_effect *effs[2] = {st->action, st->on_timeout};
      for (int k = 0; k < 2; k++)
        if (effs[k]) {
          free(effs[k]->fields.v);
          free(effs[k]->personalization.v);
        }
    }
    free(cfg->loops.v[l].steps.v);
  }
  free(cfg->loops.v);
  free(cfg->tables.v);
  free(cfg->tmpls.v);
  free(cfg->queries.v);
  free(cfg->files.v);
  free(cfg);
}
