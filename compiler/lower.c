/*
 * lower.c: from a checked sk_config to an sk_module (the in-memory .skb). Each loop becomes a range of
 * code and of every per-loop section; placeholders become template segments that read registers;
 * conditions become index lookups on query shapes shared by the whole file. The emitter returns the
 * address of each instruction and forward jumps are patched once their target is known.
 *
 * Code shape of one step (registers allocated fresh per step; R0 subject id, R1 trigger row):
 *
 *     [later trigger]  LOADNIL Rw; WAITEV Rw ev          R[w+1] := the event's row
 *     [delay]          DEADLINE Rt K(delay); SLEEP Rt
 *     [wait]           DEADLINE Rc K(timeout); AWAIT Rc q; JMPIFNOT Rc -> timeout
 *     [check]          CHECK Rc q; JMPIFNOT Rc -> next step (or END skipped after the last)
 *     [action]         RENDER Rp tmpl (each personalization value); EFFECT Rr e
 *     [wait]           JMP -> next step
 *                      timeout: [onTimeout: RENDER...; EFFECT] END timed_out
 *   after the last step: END completed
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "../vm/opcodes.h"
#include "lower.h"

#define SK_SKENEC_VERSION "0.1.0"
#define SK_POLL_MS 30000u

/* Open-addressing map from a byte string to a u32 (string interning, shape de-duplication). */
typedef struct { uint64_t *hash; uint32_t *val; char **key; size_t *klen; size_t cap, n; } strmap;

static void map_free(strmap *m) {
  for (size_t i = 0; i < m->cap; i++) free(m->key[i]);
  free(m->hash);
  free(m->val);
  free(m->key);
  free(m->klen);
}

static int map_grow(strmap *m) {
  strmap n = {0};
  n.cap = m->cap ? m->cap * 2 : 1024;
  n.hash = calloc(n.cap, sizeof *n.hash);
  n.val = calloc(n.cap, sizeof *n.val);
  n.key = calloc(n.cap, sizeof *n.key);
  n.klen = calloc(n.cap, sizeof *n.klen);
  if (!n.hash || !n.val || !n.key || !n.klen) {
    map_free(&n);
    return -1;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->key[i]) continue;
    size_t j = m->hash[i] & (n.cap - 1);
    while (n.key[j]) j = (j + 1) & (n.cap - 1);
    n.hash[j] = m->hash[i];
    n.val[j] = m->val[i];
    n.key[j] = m->key[i];
    n.klen[j] = m->klen[i];
    m->key[i] = NULL;
  }
  n.n = m->n;
  map_free(m);
  *m = n;
  return 0;
}

/* Finds key; if absent and insert_val != SK_NONE, inserts it. Returns the value or SK_NONE. */
static uint32_t map_get(strmap *m, const char *key, size_t len, uint32_t insert_val) {
  if ((m->n + 1) * 2 > m->cap && map_grow(m) != 0) return SK_NONE;
  uint64_t h = XXH3_64bits(key, len);
  size_t j = h & (m->cap - 1);
  while (m->key[j]) {
    if (m->hash[j] == h && m->klen[j] == len && memcmp(m->key[j], key, len) == 0) return m->val[j];
    j = (j + 1) & (m->cap - 1);
  }
  if (insert_val == SK_NONE) return SK_NONE;
  m->key[j] = malloc(len + 1);
  if (!m->key[j]) return SK_NONE;
  memcpy(m->key[j], key, len);
  m->key[j][len] = 0;
  m->hash[j] = h;
  m->klen[j] = len;
  m->val[j] = insert_val;
  m->n++;
  return insert_val;
}

#define VEC(T) struct { T *v; size_t n, cap; }

typedef struct {
  sk_diags *d;
  const sk_source *src;
  const sk_config *cfg;
  strmap strings, shapes;
  sk_buf strbytes;
  VEC(sk_str_rec) strs;
  VEC(sk_table_rec) tables;
  VEC(sk_shape_rec) shapes_v;
  VEC(sk_loop_rec) loops;
  VEC(sk_step_rec) steps;
  VEC(sk_event_rec) events;
  VEC(sk_cond_rec) conds;
  VEC(sk_effect_rec) effects;
  VEC(sk_field_rec) fields;
  VEC(sk_tmpl_rec) tmpls;
  VEC(sk_seg_rec) segs;
  VEC(sk_const_rec) consts;
  VEC(sk_insn_rec) code;
  VEC(sk_debug_rec) debug;
  /* per loop */
  sk_loop_rec *loop;
  uint32_t nregs;
  int reg_overflow;
  uint32_t cur_line, cur_col;
  uint32_t *event_row_reg;  /* per step: register of the row a later trigger delivered */
  uint32_t match_reg;       /* the current step's match register */
  uint32_t *pers_reg;       /* the current effect's personalization registers */
} lw;

static uint32_t str(lw *w, const char *s) {
  size_t len = strlen(s);
  uint32_t next = (uint32_t)w->strs.n;
  uint32_t idx = map_get(&w->strings, s, len, next);
  if (idx == next) {
    sk_str_rec r = {(uint32_t)w->strbytes.len, (uint32_t)len};
    SK_VEC_PUSH(w->strs, r);
    sk_buf_put(&w->strbytes, s, len + 1);
  }
  return idx;
}

static uint32_t alloc_reg(lw *w, uint32_t n) {
  uint32_t r = w->nregs;
  if (w->nregs + n > 256) {
    w->reg_overflow = 1;
    return 0;
  }
  w->nregs += n;
  return r;
}

static uint32_t emit(lw *w, uint32_t insn) {
  sk_insn_rec r = {insn};
  sk_debug_rec d = {w->cur_line, w->cur_col};
  SK_VEC_PUSH(w->code, r);
  SK_VEC_PUSH(w->debug, d);
  return (uint32_t)(w->code.n - 1 - w->loop->code_first); /* loop-relative pc */
}

/* Points the jump at pc `at` to `target` (both loop-relative). */
static void patch(lw *w, uint32_t at, uint32_t target) {
  sk_insn_rec *r = &w->code.v[w->loop->code_first + at];
  int32_t off = (int32_t)target - (int32_t)(at + 1);
  unsigned op = SK_GET_OP(r->insn);
  if (op == SK_OP_JMP) r->insn = SK_CREATE_sJ(op, off);
  else r->insn = SK_CREATE_AsBx(op, SK_GETARG_A(r->insn), off);
}

static uint32_t here(lw *w) { return (uint32_t)(w->code.n - w->loop->code_first); }

static uint32_t const_int(lw *w, uint64_t v) {
  for (uint32_t i = w->loop->k_first; i < w->consts.n; i++)
    if (w->consts.v[i].type == SK_CONST_INT && w->consts.v[i].ival == v) return i - w->loop->k_first;
  sk_const_rec k = {SK_CONST_INT, SK_NONE, v};
  SK_VEC_PUSH(w->consts, k);
  return (uint32_t)(w->consts.n - 1 - w->loop->k_first);
}

static void at_pos(lw *w, uint32_t line, uint32_t col) {
  w->cur_line = line;
  w->cur_col = col;
}

/* Emits a template of literal text only; returns its loop-relative index. */
static uint32_t tmpl_literal(lw *w, const char *name, const char *text) {
  sk_tmpl_rec t = {(uint32_t)w->segs.n, 0, SK_ESC_NONE, str(w, name)};
  if (*text) {
    sk_seg_rec s = {SK_SEG_LIT, str(w, text), 0, SK_NONE, SK_NONE};
    SK_VEC_PUSH(w->segs, s);
    t.seg_count = 1;
  }
  SK_VEC_PUSH(w->tmpls, t);
  return (uint32_t)(w->tmpls.n - 1 - w->loop->tmpl_first);
}

/* Emits the template of a checked text; returns its loop-relative index. */
static uint32_t tmpl_text(lw *w, const char *name, const sk_text *t, const sk_cfg_loop *loop) {
  sk_tmpl_rec rec = {(uint32_t)w->segs.n, 0, t->escape, str(w, name)};
  for (size_t i = 0; t->tmpl && i < t->tmpl->nparts; i++) {
    const sk_tpart *p = &t->tmpl->parts[i];
    sk_seg_rec s = {SK_SEG_LIT, SK_NONE, 0, SK_NONE, SK_NONE};
    if (!p->is_var) {
      s.str = str(w, p->text);
    } else {
      const sk_var_ref *r = &t->refs[i];
      s.kind = SK_SEG_VAR;
      s.display_str = str(w, p->text);
      s.default_str = p->deflt ? str(w, p->deflt) : SK_NONE;
      switch (r->kind) {
      case SK_REF_SUBJECT: s.reg = 0; break;
      case SK_REF_ROW: s.reg = 1; s.str = str(w, r->field); break;
      /* A row's id is the one in its key, which the row reference holds: {{match.id}} reads it. */
      case SK_REF_MATCH: s.reg = w->match_reg + 1; s.str = strcmp(r->field, "id") ? str(w, r->field) : SK_NONE; break;
      case SK_REF_EVENT:
        s.reg = w->event_row_reg[r->index];
        s.str = strcmp(r->field, "id") ? str(w, r->field) : SK_NONE;
        break;
      case SK_REF_PERS: s.reg = w->pers_reg ? w->pers_reg[r->index] : 0; break;
      case SK_REF_LOOP_NAME: s.kind = SK_SEG_LIT; s.str = str(w, loop->name); s.display_str = SK_NONE; s.default_str = SK_NONE; break;
      case SK_REF_NOW: s.kind = SK_SEG_NOW; break;
      }
    }
    SK_VEC_PUSH(w->segs, s);
    rec.seg_count++;
  }
  SK_VEC_PUSH(w->tmpls, rec);
  return (uint32_t)(w->tmpls.n - 1 - w->loop->tmpl_first);
}

static int cmp_pred(const void *a, const void *b) {
  const sk_sql_pred *const *pa = a, *const *pb = b;
  return strcmp((*pa)->column, (*pb)->column);
}

static uint32_t lower_cond(lw *w, const sk_cfg_cond *c, const sk_cfg_loop *loop) {
  sk_cond_rec r = {c->kind, SK_NONE, (uint32_t)w->fields.n, 0, c->min_rows, 0, str(w, c->text ? c->text : ""), SK_POLL_MS};
  VEC(sk_field_rec) f = {0};
  if (c->kind == SK_COND_QUERY) {
    const sk_sql_query *q = c->sql;
    const sk_sql_pred **sorted = malloc(q->npreds * sizeof *sorted);
    for (size_t i = 0; i < q->npreds; i++) sorted[i] = &q->preds[i];
    qsort(sorted, q->npreds, sizeof *sorted, cmp_pred);
    sk_buf cols = {0};
    for (size_t i = 0; i < q->npreds; i++) {
      if (i) sk_buf_putc(&cols, ',');
      sk_buf_puts(&cols, sorted[i]->column);
      const sk_sql_pred *p = sorted[i];
      uint32_t t;
      if (p->kind == SK_SQL_PARAM) {
        if (c->params.n >= (size_t)p->param) t = tmpl_text(w, p->column, &c->params.v[p->param - 1], loop);
        else {
          /* $1 without params: the subject's id */
          sk_tmpl_rec rec = {(uint32_t)w->segs.n, 1, SK_ESC_NONE, str(w, p->column)};
          sk_seg_rec s = {SK_SEG_VAR, SK_NONE, 0, SK_NONE, str(w, "row.id")};
          SK_VEC_PUSH(w->segs, s);
          SK_VEC_PUSH(w->tmpls, rec);
          t = (uint32_t)(w->tmpls.n - 1 - w->loop->tmpl_first);
        }
      } else {
        t = tmpl_literal(w, p->column, p->text);
      }
      sk_field_rec fr = {str(w, p->column), t};
      SK_VEC_PUSH(f, fr);
    }
    uint32_t table = (uint32_t)c->table;
    sk_buf key = {0};
    sk_buf_printf(&key, "%u/%s", table, cols.data ? cols.data : "");
    uint32_t next = (uint32_t)w->shapes_v.n;
    uint32_t shape = map_get(&w->shapes, key.data, key.len, next);
    if (shape == next) {
      sk_shape_rec s = {table, str(w, cols.data ? cols.data : "")};
      SK_VEC_PUSH(w->shapes_v, s);
    }
    r.shape = shape;
    r.limit = q->limit > 0 ? (uint32_t)q->limit : 0;
    sk_buf_free(&key);
    sk_buf_free(&cols);
    free(sorted);
  } else {
    for (size_t i = 0; i < c->argv.n; i++) {
      sk_field_rec fr = {str(w, "argv"), tmpl_text(w, "argv", &c->argv.v[i], loop)};
      SK_VEC_PUSH(f, fr);
    }
  }
  r.fld_first = (uint32_t)w->fields.n;
  r.fld_count = (uint32_t)f.n;
  for (size_t i = 0; i < f.n; i++) SK_VEC_PUSH(w->fields, f.v[i]);
  free(f.v);
  SK_VEC_PUSH(w->conds, r);
  return (uint32_t)(w->conds.n - 1 - w->loop->cond_first);
}

/* Emits RENDERs for the personalization values and the EFFECT; returns the effect's index. */
static void lower_effect(lw *w, const sk_cfg_effect *e, const sk_cfg_loop *loop, uint32_t step, uint32_t slot) {
  at_pos(w, e->line, e->col);
  /* Personalization values are rendered first only when a field reads them ({{name}} in a template
     file); a Resend-hosted template gets them as variables, rendered straight into its fields. */
  int uses_pers = 0;
  for (size_t i = 0; i < e->fields.n && !uses_pers; i++) {
    const sk_text *t = &e->fields.v[i].text;
    for (size_t k = 0; t->tmpl && k < t->tmpl->nparts; k++)
      if (t->tmpl->parts[k].is_var && t->refs[k].kind == SK_REF_PERS) uses_pers = 1;
  }
  size_t npers = uses_pers ? e->personalization.n : 0;
  uint32_t *pers = npers ? calloc(npers, sizeof *pers) : NULL;
  for (size_t i = 0; i < npers; i++) {
    const sk_named_text *p = &e->personalization.v[i];
    char name[300];
    snprintf(name, sizeof name, "personalization.%s", p->name);
    w->pers_reg = NULL;
    uint32_t t = tmpl_text(w, name, &p->text, loop);
    pers[i] = alloc_reg(w, 1);
    at_pos(w, p->text.line, p->text.col);
    emit(w, SK_CREATE_ABx(SK_OP_RENDER, pers[i], t));
  }
  w->pers_reg = pers;
  sk_effect_rec r = {e->kind, e->provider, step, slot, 0, 0, 0, e->line, e->col};
  VEC(sk_field_rec) f = {0};
  for (size_t i = 0; i < e->fields.n; i++) {
    sk_field_rec fr = {str(w, e->fields.v[i].name), tmpl_text(w, e->fields.v[i].name, &e->fields.v[i].text, loop)};
    SK_VEC_PUSH(f, fr);
  }
  r.fld_first = (uint32_t)w->fields.n;
  r.fld_count = (uint32_t)f.n;
  for (size_t i = 0; i < f.n; i++) SK_VEC_PUSH(w->fields, f.v[i]);
  free(f.v);
  char seed[400];
  int n = snprintf(seed, sizeof seed, "%s%c%u%c%u", loop->name, 0, step, 0, slot);
  r.key_seed = XXH3_64bits(seed, (size_t)n);
  SK_VEC_PUSH(w->effects, r);
  uint32_t idx = (uint32_t)(w->effects.n - 1 - w->loop->eff_first);
  uint32_t res = alloc_reg(w, 1);
  at_pos(w, e->line, e->col);
  emit(w, SK_CREATE_ABx(SK_OP_EFFECT, res, idx));
  w->pers_reg = NULL;
  free(pers);
}

static uint32_t lower_event(lw *w, const sk_cfg_trigger *t, const sk_cfg_loop *loop, int first_table) {
  (void)loop;
  sk_event_rec e = {(uint32_t)t->table, t->event, SK_NONE};
  if (first_table >= 0 && t->table != first_table)
    e.subject_col_str = str(w, sk_arena_printf(w->d->arena, "%s_id", w->cfg->tables.v[first_table].singular));
  SK_VEC_PUSH(w->events, e);
  return (uint32_t)(w->events.n - 1 - w->loop->ev_first);
}

static void lower_loop(lw *w, const sk_cfg_loop *l) {
  sk_loop_rec rec = {0};
  rec.name_str = str(w, l->name);
  rec.type = l->type;
  rec.opinion_str = str(w, l->opinion);
  rec.code_first = (uint32_t)w->code.n;
  rec.k_first = (uint32_t)w->consts.n;
  rec.tmpl_first = (uint32_t)w->tmpls.n;
  rec.cond_first = (uint32_t)w->conds.n;
  rec.eff_first = (uint32_t)w->effects.n;
  rec.ev_first = (uint32_t)w->events.n;
  rec.step_first = (uint32_t)w->steps.n;
  rec.retries = l->retries;
  rec.backoff = l->backoff;
  rec.delay_ms = l->delay_ms;
  rec.max_delay_ms = l->max_delay_ms;
  rec.jitter = l->jitter;
  rec.line = l->line;
  rec.col = l->col;
  w->loop = &rec;
  w->nregs = 2;
  w->reg_overflow = 0;
  w->event_row_reg = calloc(l->steps.n + 1, sizeof *w->event_row_reg);
  int first_table = l->steps.n && l->steps.v[0].trigger ? l->steps.v[0].trigger->table : -1;
  rec.trigger = lower_event(w, l->steps.v[0].trigger, l, -1);

  VEC(uint32_t) to_next = {0};  /* jumps to the start of the next step */
  VEC(uint32_t) to_skipped = {0};
  for (size_t si = 0; si < l->steps.n; si++) {
    const sk_cfg_step *st = &l->steps.v[si];
    uint32_t start = here(w);
    for (size_t k = 0; k < to_next.n; k++) patch(w, to_next.v[k], start);
    to_next.n = 0;
    sk_step_rec sr = {SK_NONE, st->delay_ms, SK_NONE, 0, SK_NONE, SK_NONE, st->line, st->col};
    if (si == 0) {
      sr.trigger = rec.trigger;
    } else if (st->trigger) {
      sr.trigger = lower_event(w, st->trigger, l, first_table);
      uint32_t r = alloc_reg(w, 2);
      at_pos(w, st->trigger->line, st->trigger->col);
      emit(w, SK_CREATE_ABC(SK_OP_LOADNIL, r, 0, 0));
      emit(w, SK_CREATE_ABx(SK_OP_WAITEV, r, sr.trigger));
      w->event_row_reg[si] = r + 1;
    }
    if (st->delay_ms) {
      uint32_t r = alloc_reg(w, 1);
      at_pos(w, st->line, st->col);
      emit(w, SK_CREATE_ABx(SK_OP_DEADLINE, r, const_int(w, st->delay_ms)));
      emit(w, SK_CREATE_ABC(SK_OP_SLEEP, r, 0, 0));
    }
    uint32_t timeout_jump = SK_NONE;
    if (st->cond) {
      sr.cond = lower_cond(w, st->cond, l);
      sr.timeout_ms = st->cond->timeout_ms;
      uint32_t r = alloc_reg(w, 2);
      w->match_reg = r;
      at_pos(w, st->cond->line, st->cond->col);
      if (st->cond->timeout_ms) {
        emit(w, SK_CREATE_ABx(SK_OP_DEADLINE, r, const_int(w, st->cond->timeout_ms)));
        emit(w, SK_CREATE_ABx(SK_OP_AWAIT, r, sr.cond));
        timeout_jump = emit(w, SK_CREATE_AsBx(SK_OP_JMPIFNOT, r, 0));
      } else {
        emit(w, SK_CREATE_ABx(SK_OP_CHECK, r, sr.cond));
        uint32_t j = emit(w, SK_CREATE_AsBx(SK_OP_JMPIFNOT, r, 0));
        if (si + 1 < l->steps.n) SK_VEC_PUSH(to_next, j);
        else SK_VEC_PUSH(to_skipped, j);
      }
    }
    if (st->action) {
      lower_effect(w, st->action, l, (uint32_t)si, 0);
      sr.action = (uint32_t)(w->effects.n - 1 - rec.eff_first);
    }
    if (timeout_jump != SK_NONE) {
      at_pos(w, st->cond->line, st->cond->col);
      uint32_t j = emit(w, SK_CREATE_sJ(SK_OP_JMP, 0));
      SK_VEC_PUSH(to_next, j);
      patch(w, timeout_jump, here(w));
      if (st->on_timeout) {
        lower_effect(w, st->on_timeout, l, (uint32_t)si, 1);
        sr.on_timeout = (uint32_t)(w->effects.n - 1 - rec.eff_first);
      }
      at_pos(w, st->cond->line, st->cond->col);
      emit(w, SK_CREATE_ABC(SK_OP_END, SK_OUTCOME_TIMED_OUT, 0, 0));
    }
    SK_VEC_PUSH(w->steps, sr);
  }
  at_pos(w, l->line, l->col);
  uint32_t end = emit(w, SK_CREATE_ABC(SK_OP_END, SK_OUTCOME_COMPLETED, 0, 0));
  for (size_t k = 0; k < to_next.n; k++) patch(w, to_next.v[k], end);
  if (to_skipped.n) {
    uint32_t sk = emit(w, SK_CREATE_ABC(SK_OP_END, SK_OUTCOME_SKIPPED, 0, 0));
    for (size_t k = 0; k < to_skipped.n; k++) patch(w, to_skipped.v[k], sk);
  }
  free(to_next.v);
  free(to_skipped.v);
  free(w->event_row_reg);
  w->event_row_reg = NULL;
  if (w->reg_overflow)
    sk_diag(w->d, SK_ERROR, w->src, 0, 0, "loop '%s' needs more than 256 registers: split it into smaller loops", l->name);
  rec.nregs = w->nregs;
  rec.code_count = (uint32_t)w->code.n - rec.code_first;
  rec.k_count = (uint32_t)w->consts.n - rec.k_first;
  rec.tmpl_count = (uint32_t)w->tmpls.n - rec.tmpl_first;
  rec.cond_count = (uint32_t)w->conds.n - rec.cond_first;
  rec.eff_count = (uint32_t)w->effects.n - rec.eff_first;
  rec.ev_count = (uint32_t)w->events.n - rec.ev_first;
  rec.step_count = (uint32_t)w->steps.n - rec.step_first;
  w->loop = NULL;
  SK_VEC_PUSH(w->loops, rec);
}

#define MOVE_OUT(vec, arr, cnt) do { m->arr = (void *)(vec).v; m->cnt = (uint32_t)(vec).n; (vec).v = NULL; } while (0)

sk_module *sk_lower(const sk_config *cfg, const sk_source *src, sk_diags *d) {
  lw w = {0};
  w.d = d;
  w.src = src;
  w.cfg = cfg;
  sk_module *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  str(&w, ""); /* string 0 is the empty string */
  for (size_t i = 0; i < cfg->tables.n; i++) {
    const sk_cfg_table *t = &cfg->tables.v[i];
    sk_table_rec r = {str(&w, t->name), str(&w, t->key), t->format, t->feed, str(&w, t->singular)};
    SK_VEC_PUSH(w.tables, r);
  }
  for (size_t i = 0; i < cfg->loops.n; i++) lower_loop(&w, &cfg->loops.v[i]);
  sk_meta_rec meta = {str(&w, cfg->source_path), str(&w, "skenec " SK_SKENEC_VERSION)};
  m->meta = malloc(sizeof meta);
  *m->meta = meta;
  m->nmeta = 1;
  MOVE_OUT(w.strs, strs, nstrs);
  MOVE_OUT(w.tables, tables, ntables);
  MOVE_OUT(w.shapes_v, shapes, nshapes);
  MOVE_OUT(w.loops, loops, nloops);
  MOVE_OUT(w.steps, steps, nsteps);
  MOVE_OUT(w.events, events, nevents);
  MOVE_OUT(w.conds, conds, nconds);
  MOVE_OUT(w.effects, effects, neffects);
  MOVE_OUT(w.fields, fields, nfields);
  MOVE_OUT(w.tmpls, tmpls, ntmpls);
  MOVE_OUT(w.segs, segs, nsegs);
  MOVE_OUT(w.consts, consts, nconsts);
  MOVE_OUT(w.code, code, ncode);
  MOVE_OUT(w.debug, debug, ndebug);
  m->strbytes = w.strbytes.data;
  m->strbytes_len = (uint32_t)w.strbytes.len;
  map_free(&w.strings);
  map_free(&w.shapes);
  return m;
}

const char *sk_compiler_version(void) { return SK_SKENEC_VERSION; }
