/*
 * interp.c: the register interpreter (sk_exec), template rendering, and the wake-up keys.
 *
 * Code is verified before it runs (load.c), so the hot path checks nothing the verifier guarantees:
 * operands in range, jump targets inside the loop, no fall-through past the end, no cycle that never
 * suspends. What the verifier cannot know, the types that registers hold at run time, is handled
 * without trust: a non-integer deadline means "none", a nil row reads as missing.
 *
 * Dispatch is a computed goto on GCC and Clang (one indirect jump per opcode, better branch
 * prediction) and a plain switch elsewhere; the test build compiles both (SK_NO_JUMPTABLE).
 * Each opcode is documented above its case: operands, synopsis, and what it does on error.
 */
#define _POSIX_C_SOURCE 200809L
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "opcodes.h"
#include "vm.h"

struct sk_vm {
  const sk_module *m;
  uint32_t running;       /* id of the instance sk_exec runs */
  const sk_runtime_ops *ops;
  void *ud;
  sk_string **kstr;          /* per constant: its string as an sk_str (SK_CONST_STR), else NULL */
  sk_string **seg_lit;       /* per segment: literal text as sk_string, or NULL */
  uint32_t *cond_step;    /* per condition (global index): its step, 0-based */
  /* scratch, reused across calls */
  char *buf;
  size_t cap;
  sk_string *scratch[64];     /* rendered effect fields, reused while nobody else holds them */
  size_t scratch_cap[64];     /* bytes of scratch[i]'s data, its NUL included */
};

const char *sk_trace_name(sk_trace_kind k) {
  static const char *const n[] = {"instance.start", "condition.wait", "condition.met", "condition.timeout",
                                  "action.attempt", "action.retry",   "action.ok",     "action.failed",
                                  "instance.end"};
  return (unsigned)k < sizeof n / sizeof *n ? n[k] : "?";
}

sk_vm *sk_vm_new(const sk_module *m, const sk_runtime_ops *ops, void *ud) {
  sk_vm *vm = calloc(1, sizeof *vm);
  if (!vm) return NULL;
  vm->m = m;
  vm->ops = ops;
  vm->ud = ud;
  vm->running = SK_NONE;
  vm->kstr = calloc(m->nconsts + 1, sizeof *vm->kstr);
  vm->seg_lit = calloc(m->nsegs + 1, sizeof *vm->seg_lit);
  vm->cond_step = calloc(m->nconds + 1, sizeof *vm->cond_step);
  if (!vm->kstr || !vm->seg_lit || !vm->cond_step) goto fail;
  for (uint32_t i = 0; i < m->nconsts; i++)
    if (m->consts[i].type == SK_CONST_STR && !(vm->kstr[i] = sk_str_from(sk_str(m, m->consts[i].str)))) goto fail;
  for (uint32_t i = 0; i < m->nsegs; i++)
    if (m->segs[i].kind == SK_SEG_LIT && !(vm->seg_lit[i] = sk_str_from(sk_str(m, m->segs[i].str)))) goto fail;
  for (uint32_t l = 0; l < m->nloops; l++) {
    const sk_loop_rec *lp = &m->loops[l];
    for (uint32_t s = 0; s < lp->step_count; s++) {
      uint32_t c = m->steps[lp->step_first + s].cond;
      if (c != SK_NONE) vm->cond_step[lp->cond_first + c] = s;
    }
  }
  return vm;
fail:
  sk_vm_free(vm);
  return NULL;
}

void sk_vm_free(sk_vm *vm) {
  if (!vm) return;
  for (uint32_t i = 0; vm->kstr && i < vm->m->nconsts; i++) sk_str_unref(vm->kstr[i]);
  for (uint32_t i = 0; vm->seg_lit && i < vm->m->nsegs; i++) sk_str_unref(vm->seg_lit[i]);
  free(vm->kstr);
  free(vm->seg_lit);
  free(vm->cond_step);
  free(vm->buf);
  for (int i = 0; i < 64; i++) sk_str_unref(vm->scratch[i]);
  free(vm);
}

const sk_module *sk_vm_module(const sk_vm *vm) { return vm->m; }
int64_t sk_vm_now(const sk_vm *vm) { return vm->ops->now(vm->ud); }
uint32_t sk_vm_running(const sk_vm *vm) { return vm->running; }
sk_string *sk_vm_row_field(sk_vm *vm, uint32_t table, const sk_string *id, const char *field) {
  return vm->ops->row_field(vm->ud, table, id, field);
}
void sk_vm_trace(sk_vm *vm, const sk_trace *t) {
  if (vm->ops->trace) vm->ops->trace(vm->ud, t);
}

/* A 64-bit mixer (the finaliser of splitmix64 / MurmurHash3): wake-up keys combine strings' cached
   hashes with it instead of hashing bytes again. A collision only wakes an instance that re-checks. */
static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t sk_index_key(uint32_t shape, sk_string *const *values, uint32_t n) {
  uint64_t h = mix64(0x736b2d696478ull + shape);
  for (uint32_t i = 0; i < n; i++)
    h = mix64(h ^ (values[i] ? sk_str_hash(values[i]) + values[i]->len : 0x9E3779B97F4A7C15ull));
  return h ? h : 1;
}

uint64_t sk_event_key(uint32_t table, uint32_t kind, const sk_string *subject) {
  uint64_t h = mix64(0x736b2d657674ull + ((uint64_t)table << 8) + kind);
  h = mix64(h ^ (subject ? sk_str_hash(subject) + subject->len : 0));
  return h ? h : 1;
}

/* ---- rendering ---- */

/* Where a render writes: p[0..len) of cap bytes (a NUL included). When str is set, p is str->data and
   growing reallocates the string, so the text is rendered in place, with no copy at the end. */
typedef struct { char *p; size_t len, cap; int oom; sk_string *str; } obuf;

static void ob_put(obuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap * 2 : 256;
    while (nc < b->len + n + 1) nc *= 2;
    if (b->str) {
      sk_string *str = realloc(b->str, sizeof *str + nc);
      if (!str) {
        b->oom = 1;
        return;
      }
      b->str = str;
      b->p = str->data;
    } else {
      char *p = realloc(b->p, nc);
      if (!p) {
        b->oom = 1;
        return;
      }
      b->p = p;
    }
    b->cap = nc;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

/* Which bytes each escape mode rewrites (1) or keeps (0): none; HTML & < > " '; JSON " \\ and control
   characters; URL all but the unreserved A-Z a-z 0-9 - _ . ~ (RFC 3986). */
static const unsigned char esc_table[4][256] = {
    {
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    },
    {
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,1,0,0,0,1,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,1,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    },
    {
      1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
      0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
      0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    },
    {
      1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
      1,1,1,1,1,1,1,1,1,1,1,1,1,0,0,1,0,0,0,0,0,0,0,0,0,0,1,1,1,1,1,1,
      1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,1,1,1,0,
      1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,1,1,0,1,
      1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
      1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
      1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
      1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    },
};

/* Appends s[0..n) escaped for esc: runs that need nothing are copied whole. Cost O(n). */
static void ob_escaped(obuf *b, const char *s, size_t n, uint32_t esc) {
  static const char hex[] = "0123456789ABCDEF";
  if (esc == SK_ESC_NONE || esc >= 4) { /* the table rewrites nothing */
    ob_put(b, s, n);
    return;
  }
  const unsigned char *t = esc_table[esc];
  size_t i = 0;
  while (i < n) {
    size_t run = i;
    while (run < n && !t[(unsigned char)s[run]]) run++;
    ob_put(b, s + i, run - i);
    if (run == n) return;
    unsigned char c = (unsigned char)s[run];
    char tmp[8];
    const char *rep = tmp;
    if (esc == SK_ESC_HTML) {
      rep = c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '"' ? "&quot;" : "&#39;";
    } else if (esc == SK_ESC_JSON) {
      if (c == '"') rep = "\\\"";
      else if (c == '\\') rep = "\\\\";
      else if (c == '\n') rep = "\\n";
      else if (c == '\r') rep = "\\r";
      else if (c == '\t') rep = "\\t";
      else snprintf(tmp, sizeof tmp, "\\u%04x", c);
    } else {
      tmp[0] = '%';
      tmp[1] = hex[c >> 4];
      tmp[2] = hex[c & 15];
      tmp[3] = 0;
    }
    ob_put(b, rep, strlen(rep));
    i = run + 1;
  }
}

/* ISO 8601 in UTC with milliseconds: 2026-01-05T09:03:00.000Z. */
static void format_now(int64_t ms, char out[48]) {
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  if (ms < 0 || !gmtime_r(&secs, &tm)) {
    snprintf(out, 48, "1970-01-01T00:00:00.000Z");
    return;
  }
  snprintf(out, 48, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100,
           tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100, (int)(ms % 1000));
}

/*
 * Appends template tr's segments over inst's registers to b. Returns 1, 0 on a missing value without a
 * default (and says which in reason), or -1 when the runtime is still loading a row. Cost O(output).
 */
static int render_segs(sk_vm *vm, const sk_inst *inst, const sk_tmpl_rec *tr, obuf *b, char *reason, size_t rcap) {
  const sk_module *m = vm->m;
  for (uint32_t i = 0; i < tr->seg_count; i++) {
    const sk_seg_rec *s = &m->segs[tr->seg_first + i];
    if (s->kind == SK_SEG_LIT) {
      const sk_string *lit = vm->seg_lit[tr->seg_first + i];
      ob_put(b, lit->data, lit->len);
      continue;
    }
    if (s->kind == SK_SEG_NOW) {
      char now[48];
      format_now(vm->ops->now(vm->ud), now);
      ob_put(b, now, strlen(now));
      continue;
    }
    const sk_val *v = &inst->regs[s->reg];
    sk_string *val = NULL;
    char num[32];
    if (s->str == SK_NONE) {
      if (v->tag == SK_VAL_STR || v->tag == SK_VAL_ROW) val = sk_str_ref(v->u.s);
      else if (v->tag == SK_VAL_INT) {
        int n = snprintf(num, sizeof num, "%" PRId64, v->u.i);
        val = sk_str_new(num, (size_t)n);
      }
    } else if (v->tag == SK_VAL_ROW) {
      val = vm->ops->row_field(vm->ud, v->table, v->u.s, sk_str(m, s->str));
      if (val == SK_PENDING) return -1;
    }
    if (val && val->len == 0 && s->default_str != SK_NONE) {
      sk_str_unref(val);
      val = NULL;
    }
    if (!val) {
      if (s->default_str == SK_NONE) {
        snprintf(reason, rcap, "template value missing: {{%s}} has no value and no default (in %s)",
                 sk_str(m, s->display_str), sk_str(m, tr->name_str));
        return 0;
      }
      const char *d = sk_str(m, s->default_str);
      ob_escaped(b, d, strlen(d), tr->escape);
      continue;
    }
    ob_escaped(b, val->data, val->len, tr->escape);
    sk_str_unref(val);
  }
  return 1;
}

/*
 * Renders template t (global index) of loop `lp` over inst's registers into a string (a new
 * reference). slot 0..63: into that scratch string of the VM, in place, unless a runtime kept a
 * reference to it (then a fresh one); other slots: a new string of the exact size. On a missing value
 * without a default returns NULL and says which in reason; SK_PENDING while the runtime loads a row.
 * Cost O(output).
 */
static sk_string *render(sk_vm *vm, const sk_inst *inst, uint32_t t, char *reason, size_t rcap, int slot) {
  const sk_module *m = vm->m;
  const sk_tmpl_rec *tr = &m->tmpls[t];
  /* A single literal, or a single placeholder that needs no escaping, is the value itself: no copy. */
  if (tr->seg_count == 1) {
    const sk_seg_rec *s = &m->segs[tr->seg_first];
    if (s->kind == SK_SEG_LIT) return sk_str_ref(vm->seg_lit[tr->seg_first]);
    if (s->kind == SK_SEG_VAR && tr->escape == SK_ESC_NONE) {
      const sk_val *v = &inst->regs[s->reg];
      sk_string *val = NULL;
      if (s->str == SK_NONE && (v->tag == SK_VAL_STR || v->tag == SK_VAL_ROW)) val = sk_str_ref(v->u.s);
      else if (s->str != SK_NONE && v->tag == SK_VAL_ROW) val = vm->ops->row_field(vm->ud, v->table, v->u.s, sk_str(m, s->str));
      if (val == SK_PENDING || (val && val->len > 0)) return val;
      sk_str_unref(val);
    }
  }
  if (tr->seg_count == 0) return sk_str_new("", 0);
  int scratch = slot >= 0 && slot < 64;
  obuf b = {vm->buf, 0, vm->cap, 0, NULL};
  if (scratch) {
    sk_string *sc = vm->scratch[slot];
    if (sc && sc->refs != 1) { /* a runtime kept it: it is theirs now */
      sk_str_unref(sc);
      sc = NULL;
    }
    if (!sc) {
      vm->scratch_cap[slot] = 256;
      if ((sc = malloc(sizeof *sc + vm->scratch_cap[slot]))) sc->refs = 1;
    }
    vm->scratch[slot] = sc;
    if (!sc) {
      snprintf(reason, rcap, "out of memory rendering %s", sk_str(m, tr->name_str));
      return NULL;
    }
    b = (obuf){sc->data, 0, vm->scratch_cap[slot], 0, sc};
  }
  int ok = render_segs(vm, inst, tr, &b, reason, rcap);
  if (ok < 0) { /* a row is still loading */
    if (scratch) {
      vm->scratch[slot] = b.str;
      vm->scratch_cap[slot] = b.cap;
    } else {
      vm->buf = b.p;
      vm->cap = b.cap;
    }
    return SK_PENDING;
  }
  if (scratch) { /* the string may have moved as it grew */
    vm->scratch[slot] = b.str;
    vm->scratch_cap[slot] = b.cap;
  } else {
    vm->buf = b.p;
    vm->cap = b.cap;
  }
  if (!ok) return NULL;
  if (b.oom) {
    snprintf(reason, rcap, "out of memory rendering %s", sk_str(m, tr->name_str));
    return NULL;
  }
  if (!scratch) return sk_str_new(b.p ? b.p : "", b.len);
  sk_string *sc = b.str;
  sc->data[b.len] = 0;
  sc->len = (uint32_t)b.len;
  sc->hash = 0; /* computed when first needed: a rendered body is rarely compared */
  return sk_str_ref(sc);
}

/* ---- conditions and effects ---- */

typedef struct {
  int failed, transient, pending;
  int64_t retry_after_ms;
  uint32_t held, count;
  uint64_t key;           /* index key to wait on, 0 when the condition cannot be woken (redis: poll) */
  uint32_t match_table;
  sk_string *match;          /* first matching row id (owned) */
} cond_eval;

#define SK_MAX_FIELDS 64

static void eval_cond(sk_vm *vm, sk_inst *inst, uint32_t c, cond_eval *ce, char *reason, size_t rcap) {
  const sk_module *m = vm->m;
  const sk_loop_rec *lp = &m->loops[inst->loop];
  const sk_cond_rec *cr = &m->conds[c];
  sk_string *vals[SK_MAX_FIELDS];
  uint32_t n = cr->fld_count < SK_MAX_FIELDS ? cr->fld_count : SK_MAX_FIELDS;
  memset(ce, 0, sizeof *ce);
  for (uint32_t i = 0; i < n; i++) {
    vals[i] = render(vm, inst, lp->tmpl_first + m->fields[cr->fld_first + i].tmpl, reason, rcap, (int)i);
    if (!vals[i] || vals[i] == SK_PENDING) {
      ce->pending = vals[i] == SK_PENDING;
      ce->failed = !ce->pending;
      for (uint32_t k = 0; k < i; k++) sk_str_unref(vals[k]);
      return;
    }
  }
  if (cr->kind == SK_COND_QUERY) {
    ce->count = vm->ops->query(vm->ud, cr->shape, vals, n, cr->limit, &ce->match);
    if (ce->count == SK_QUERY_PENDING) {
      ce->pending = 1;
      ce->count = 0;
      for (uint32_t i = 0; i < n; i++) sk_str_unref(vals[i]);
      return;
    }
    ce->held = ce->count >= cr->min_rows;
    ce->key = sk_index_key(cr->shape, vals, n);
    ce->match_table = m->shapes[cr->shape].table;
  } else {
    sk_io io = {0};
    vm->ops->redis(vm->ud, vals, n, 0, &io);
    if (io.pending) {
      ce->pending = 1;
    } else if (!io.ok) {
      ce->failed = 1;
      ce->transient = io.transient;
      ce->retry_after_ms = io.retry_after_ms;
      snprintf(reason, rcap, "%s", io.reason);
    } else {
      ce->held = io.result && io.result->len > 0 && !(io.result->len == 1 && io.result->data[0] == '0');
      ce->count = ce->held;
    }
    sk_str_unref(io.result);
  }
  for (uint32_t i = 0; i < n; i++) sk_str_unref(vals[i]);
  if (!ce->failed && !ce->pending) inst->attempts = 0; /* it answered: its retries are over, the action's start from 0 */
}

/* When a condition could not be evaluated (a failure, or the runtime is still loading), stops the
   instance at pc with the status the scheduler acts on; returns 1 then. */
static int cond_stops(const cond_eval *ce, sk_inst *inst, uint32_t pc, sk_exec_result *r) {
  if (!ce->failed && !ce->pending) return 0;
  inst->pc = pc;
  r->status = ce->pending ? SK_EXEC_IO : ce->transient ? SK_EXEC_RETRY : SK_EXEC_FAIL;
  r->retry_after_ms = ce->retry_after_ms;
  return 1;
}

static void trace(sk_vm *vm, sk_inst *inst, sk_trace_kind k, uint32_t step, const sk_effect_call *call,
                  const char *reason, uint32_t count) {
  if (!vm->ops->trace) return;
  sk_trace t = {k, vm->m, inst->loop, inst->regs[0].u.s, vm->ops->now(vm->ud), step, call, reason, 0, 0, count, NULL};
  vm->ops->trace(vm->ud, &t);
}

/* Runs effect e (global index). Returns 1 done (R[a] set), 0 failed (r filled), -1 waiting for the
   runtime (r->status SK_EXEC_IO: a row still loading, or the effect started asynchronously). */
static int do_effect(sk_vm *vm, sk_inst *inst, uint32_t a, uint32_t e, sk_exec_result *r) {
  const sk_module *m = vm->m;
  const sk_loop_rec *lp = &m->loops[inst->loop];
  const sk_effect_rec *er = &m->effects[e];
  sk_field_value fv[SK_MAX_FIELDS];
  uint32_t n = er->fld_count < SK_MAX_FIELDS ? er->fld_count : SK_MAX_FIELDS;
  for (uint32_t i = 0; i < n; i++) {
    const sk_field_rec *f = &m->fields[er->fld_first + i];
    fv[i].name = sk_str(m, f->name_str);
    fv[i].value = render(vm, inst, lp->tmpl_first + f->tmpl, r->reason, sizeof r->reason, (int)i);
    if (!fv[i].value || fv[i].value == SK_PENDING) {
      int pending = fv[i].value == SK_PENDING;
      for (uint32_t k = 0; k < i; k++) sk_str_unref(fv[k].value);
      r->status = pending ? SK_EXEC_IO : SK_EXEC_FAIL;
      return pending ? -1 : 0;
    }
  }
  sk_effect_call call = {m, inst->loop, inst, er, fv, n, {0}, inst->attempts + 1};
  const sk_string *subj = inst->regs[0].u.s;
  uint64_t key = XXH3_64bits_withSeed(subj ? subj->data : "", subj ? subj->len : 0, er->key_seed);
  static const char hex[] = "0123456789abcdef";
  memcpy(call.idempotency_key, "sk_", 3);
  for (int k = 0; k < 16; k++) call.idempotency_key[3 + k] = hex[(key >> (60 - 4 * k)) & 15];
  call.idempotency_key[19] = 0;
  trace(vm, inst, SK_TR_ACTION_ATTEMPT, er->step, &call, NULL, 0);
  sk_io io = {0};
  if (er->kind == SK_EFFECT_REDIS) {
    sk_string *argv[SK_MAX_FIELDS];
    for (uint32_t i = 0; i < n; i++) argv[i] = fv[i].value;
    vm->ops->redis(vm->ud, argv, n, 1, &io);
  } else {
    vm->ops->effect(vm->ud, &call, &io);
  }
  if (io.pending) { /* the runtime performs it; its answer comes through sk_exec_effect_done */
    inst->flags |= SK_INST_F_EFFECT_STARTED;
    for (uint32_t i = 0; i < n; i++) sk_str_unref(fv[i].value);
    r->status = SK_EXEC_IO;
    return -1;
  }
  int ok = io.ok;
  if (ok) {
    trace(vm, inst, SK_TR_ACTION_OK, er->step, &call, NULL, 0);
    sk_val_clear(&inst->regs[a]);
    if (io.result) inst->regs[a] = sk_val_str(io.result);
    inst->attempts = 0;
  } else {
    sk_str_unref(io.result);
    r->status = io.transient ? SK_EXEC_RETRY : SK_EXEC_FAIL;
    r->retry_after_ms = io.retry_after_ms;
    snprintf(r->reason, sizeof r->reason, "%s", io.reason[0] ? io.reason : "failed");
  }
  for (uint32_t i = 0; i < n; i++) sk_str_unref(fv[i].value);
  return ok;
}

int sk_exec_effect_done(sk_vm *vm, sk_inst *inst, const sk_io *io, sk_exec_result *r) {
  const sk_module *m = vm->m;
  const sk_loop_rec *lp = &m->loops[inst->loop];
  uint32_t insn = m->code[lp->code_first + inst->pc].insn;
  assert(SK_GET_OP(insn) == SK_OP_EFFECT && (inst->flags & SK_INST_F_EFFECT_STARTED));
  const sk_effect_rec *er = &m->effects[lp->eff_first + SK_GETARG_Bx(insn)];
  memset(r, 0, sizeof *r);
  r->wake_at = SK_TIME_NONE;
  inst->flags &= (uint8_t)~SK_INST_F_EFFECT_STARTED;
  if (io->ok) {
    if (vm->ops->trace) { /* the runtime has the request itself; the answer goes with the trace */
      sk_trace t = {SK_TR_ACTION_OK, vm->m, inst->loop, inst->regs[0].u.s, vm->ops->now(vm->ud), er->step, NULL, NULL, 0, 0, 0, io->result};
      vm->ops->trace(vm->ud, &t);
    }
    sk_val_clear(&inst->regs[SK_GETARG_A(insn)]);
    if (io->result) inst->regs[SK_GETARG_A(insn)] = sk_val_str(sk_str_ref(io->result));
    inst->attempts = 0;
    inst->pc++;
    return 1;
  }
  r->status = io->transient ? SK_EXEC_RETRY : SK_EXEC_FAIL;
  r->retry_after_ms = io->retry_after_ms;
  snprintf(r->reason, sizeof r->reason, "%s", io->reason[0] ? io->reason : "failed");
  return 0;
}

/* ---- the interpreter ---- */

#if defined(__GNUC__) && !defined(SK_NO_JUMPTABLE)
#define SK_USE_JUMPTABLE 1
#endif

static sk_exec_status exec(sk_vm *vm, sk_inst *inst, sk_exec_result *r);

sk_exec_status sk_exec(sk_vm *vm, sk_inst *inst, sk_exec_result *r) {
  vm->running = inst->id;
  sk_exec_status st = exec(vm, inst, r);
  vm->running = SK_NONE;
  return st;
}

static sk_exec_status exec(sk_vm *vm, sk_inst *inst, sk_exec_result *r) {
  const sk_module *m = vm->m;
  const sk_loop_rec *lp = &m->loops[inst->loop];
  const uint32_t *code = &m->code[lp->code_first].insn;
  sk_val *R = inst->regs;
  uint32_t pc = inst->pc;
  uint32_t i;
  /* the result's fields, without its reason buffer: a status that needs one writes it */
  r->status = SK_EXEC_END;
  r->outcome = 0;
  r->wake_at = SK_TIME_NONE;
  r->key = 0;
  r->retry_after_ms = 0;
  r->reason[0] = 0;

#ifdef SK_USE_JUMPTABLE
  static const void *const jump[SK_OP_COUNT] = {
#define SK_OP_LABEL(name, fmt, kinds, syn, doc) &&op_##name,
      SK_OPCODES(SK_OP_LABEL)
#undef SK_OP_LABEL
  };
#define vmdispatch(o) goto *jump[o];
#define vmcase(name) op_##name:
#define vmbreak                                                                                                        \
  i = code[pc];                                                                                                        \
  goto *jump[SK_GET_OP(i)];
#else
#define vmdispatch(o) switch (o)
#define vmcase(name) case SK_OP_##name:
#define vmbreak continue
#endif
  /* code[] is a sequence of sk_insn_rec, each one uint32_t: index it as an array of words. */
  static_assert(sizeof(sk_insn_rec) == sizeof(uint32_t), "instruction records are bare words");
  for (;;) {
    i = code[pc];
    vmdispatch(SK_GET_OP(i)) {
      /* Opcode: NOP. Does nothing. */
      vmcase(NOP) {
        pc++;
        vmbreak;
      }
      /* Opcode: MOVE A B. R[A] := R[B]. */
      vmcase(MOVE) {
        sk_val_set(&R[SK_GETARG_A(i)], R[SK_GETARG_B(i)]);
        pc++;
        vmbreak;
      }
      /* Opcode: LOADK A Bx. R[A] := K[Bx] (an integer or a string). */
      vmcase(LOADK) {
        uint32_t k = lp->k_first + SK_GETARG_Bx(i);
        const sk_const_rec *kr = &m->consts[k];
        sk_val v = kr->type == SK_CONST_INT ? sk_val_int((int64_t)kr->ival) : sk_val_str(vm->kstr[k]);
        sk_val_set(&R[SK_GETARG_A(i)], v);
        pc++;
        vmbreak;
      }
      /* Opcode: LOADNIL A. R[A] := nil. */
      vmcase(LOADNIL) {
        sk_val_clear(&R[SK_GETARG_A(i)]);
        pc++;
        vmbreak;
      }
      /* Opcode: JMP sJ. pc += sJ (relative to the next instruction). */
      vmcase(JMP) {
        pc = (uint32_t)((int32_t)pc + 1 + SK_GETARG_sJ(i));
        vmbreak;
      }
      /* Opcode: JMPIF A sBx. If R[A] is truthy, pc += sBx. */
      vmcase(JMPIF) {
        pc = sk_val_truthy(R[SK_GETARG_A(i)]) ? (uint32_t)((int32_t)pc + 1 + SK_GETARG_sBx(i)) : pc + 1;
        vmbreak;
      }
      /* Opcode: JMPIFNOT A sBx. If R[A] is falsy, pc += sBx. */
      vmcase(JMPIFNOT) {
        pc = sk_val_truthy(R[SK_GETARG_A(i)]) ? pc + 1 : (uint32_t)((int32_t)pc + 1 + SK_GETARG_sBx(i));
        vmbreak;
      }
      /* Opcode: DEADLINE A Bx. R[A] := now + K[Bx] (ms; the verifier made K[Bx] a small integer). */
      vmcase(DEADLINE) {
        const sk_const_rec *kr = &m->consts[lp->k_first + SK_GETARG_Bx(i)];
        sk_val_clear(&R[SK_GETARG_A(i)]);
        R[SK_GETARG_A(i)] = sk_val_int(vm->ops->now(vm->ud) + (int64_t)kr->ival);
        pc++;
        vmbreak;
      }
      /* Opcode: SLEEP A. Suspends until the time in R[A]; goes on at once if it has passed or R[A] is
         not a time. */
      vmcase(SLEEP) {
        const sk_val *t = &R[SK_GETARG_A(i)];
        if (t->tag == SK_VAL_INT && t->u.i > vm->ops->now(vm->ud)) {
          inst->pc = pc;
          r->status = SK_EXEC_SLEEP;
          r->wake_at = t->u.i;
          return r->status;
        }
        pc++;
        vmbreak;
      }
      /* Opcode: CHECK A Bx. Evaluates condition Bx once: R[A] := 1 if it holds else 0, R[A+1] := the
         first matching row. A value missing from its parameters fails the instance (dead letter); a
         Redis error is retried by the recovery policy. */
      vmcase(CHECK) {
        uint32_t a = SK_GETARG_A(i), c = lp->cond_first + SK_GETARG_Bx(i);
        cond_eval ce;
        eval_cond(vm, inst, c, &ce, r->reason, sizeof r->reason);
        if (cond_stops(&ce, inst, pc, r)) return r->status;
        sk_val_clear(&R[a]);
        R[a] = sk_val_int(ce.held);
        sk_val_clear(&R[a + 1]);
        if (ce.match) R[a + 1] = sk_val_row(ce.match_table, ce.match);
        if (ce.held) trace(vm, inst, SK_TR_CONDITION_MET, vm->cond_step[c], NULL, NULL, ce.count);
        pc++;
        vmbreak;
      }
      /* Opcode: AWAIT A Bx. Waits until condition Bx holds or the deadline in R[A] passes (R[A] not a
         time: no deadline). Then R[A] := 1 and R[A+1] := the first match, or R[A] := 0 on timeout.
         Suspends with the index key that wakes it; failures as CHECK. */
      vmcase(AWAIT) {
        uint32_t a = SK_GETARG_A(i), c = lp->cond_first + SK_GETARG_Bx(i);
        cond_eval ce;
        eval_cond(vm, inst, c, &ce, r->reason, sizeof r->reason);
        if (cond_stops(&ce, inst, pc, r)) return r->status;
        int64_t deadline = R[a].tag == SK_VAL_INT ? R[a].u.i : SK_TIME_NONE;
        if (ce.held) {
          inst->flags &= (uint8_t)~SK_INST_F_WAIT_ANNOUNCED;
          trace(vm, inst, SK_TR_CONDITION_MET, vm->cond_step[c], NULL, NULL, ce.count);
          sk_val_clear(&R[a]);
          R[a] = sk_val_int(1);
          sk_val_clear(&R[a + 1]);
          if (ce.match) R[a + 1] = sk_val_row(ce.match_table, ce.match);
          pc++;
          vmbreak;
        }
        sk_str_unref(ce.match);
        if (vm->ops->now(vm->ud) >= deadline) {
          inst->flags &= (uint8_t)~SK_INST_F_WAIT_ANNOUNCED;
          trace(vm, inst, SK_TR_CONDITION_TIMEOUT, vm->cond_step[c], NULL, NULL, 0);
          sk_val_clear(&R[a]);
          R[a] = sk_val_int(0);
          sk_val_clear(&R[a + 1]);
          pc++;
          vmbreak;
        }
        if (!(inst->flags & SK_INST_F_WAIT_ANNOUNCED)) {
          inst->flags |= SK_INST_F_WAIT_ANNOUNCED;
          trace(vm, inst, SK_TR_CONDITION_WAIT, vm->cond_step[c], NULL, NULL, 0);
        }
        inst->pc = pc;
        r->status = SK_EXEC_AWAIT;
        r->key = ce.key;
        r->wake_at = deadline;
        if (!ce.key) { /* nothing can wake it: poll */
          int64_t poll = vm->ops->now(vm->ud) + (int64_t)m->conds[c].poll_ms;
          if (poll < r->wake_at) r->wake_at = poll;
        }
        return r->status;
      }
      /* Opcode: WAITEV A Bx. Waits for event Bx on the subject until the deadline in R[A] (not a time:
         forever). The scheduler resumes it through sk_exec_event; on the deadline R[A] := 0. */
      vmcase(WAITEV) {
        uint32_t a = SK_GETARG_A(i);
        const sk_event_rec *ev = &m->events[lp->ev_first + SK_GETARG_Bx(i)];
        int64_t deadline = R[a].tag == SK_VAL_INT ? R[a].u.i : SK_TIME_NONE;
        if (vm->ops->now(vm->ud) >= deadline) {
          sk_val_clear(&R[a]);
          R[a] = sk_val_int(0);
          sk_val_clear(&R[a + 1]);
          pc++;
          vmbreak;
        }
        inst->pc = pc;
        r->status = SK_EXEC_WAITEV;
        r->key = sk_event_key(ev->table, ev->kind, R[0].u.s);
        r->wake_at = deadline;
        return r->status;
      }
      /* Opcode: RENDER A Bx. R[A] := template Bx rendered over the registers. A missing value without a
         default fails the instance (permanent: dead letter with the placeholder named); a row the
         runtime is still loading suspends it here (SK_EXEC_IO). */
      vmcase(RENDER) {
        sk_string *s = render(vm, inst, lp->tmpl_first + SK_GETARG_Bx(i), r->reason, sizeof r->reason, -1);
        if (!s || s == SK_PENDING) {
          inst->pc = pc;
          r->status = s ? SK_EXEC_IO : SK_EXEC_FAIL;
          return r->status;
        }
        sk_val_clear(&R[SK_GETARG_A(i)]);
        R[SK_GETARG_A(i)] = sk_val_str(s);
        pc++;
        vmbreak;
      }
      /* Opcode: EFFECT A Bx. Renders effect Bx's fields and performs it (email, webhook, Redis) with its
         idempotency key; R[A] := the provider's result. A transient failure leaves pc here for the
         recovery policy to retry; a permanent one fails the instance. */
      vmcase(EFFECT) {
        if (do_effect(vm, inst, SK_GETARG_A(i), lp->eff_first + SK_GETARG_Bx(i), r) != 1) {
          inst->pc = pc;
          return r->status;
        }
        pc++;
        vmbreak;
      }
      /* Opcode: END A. Ends the instance with outcome A. */
      vmcase(END) {
        inst->pc = pc;
        r->status = SK_EXEC_END;
        r->outcome = SK_GETARG_A(i);
        return r->status;
      }
#ifndef SK_USE_JUMPTABLE
    default:
      assert(!"unverified opcode");
      r->status = SK_EXEC_FAIL;
      snprintf(r->reason, sizeof r->reason, "invalid opcode");
      return r->status;
#endif
    }
  }
}

void sk_exec_event(sk_vm *vm, sk_inst *inst, int seen, uint32_t table, sk_string *id) {
  const sk_module *m = vm->m;
  uint32_t i = m->code[m->loops[inst->loop].code_first + inst->pc].insn;
  assert(SK_GET_OP(i) == SK_OP_WAITEV);
  uint32_t a = SK_GETARG_A(i);
  sk_val_clear(&inst->regs[a]);
  inst->regs[a] = sk_val_int(seen);
  sk_val_clear(&inst->regs[a + 1]);
  if (seen && id) inst->regs[a + 1] = sk_val_row(table, sk_str_ref(id));
  inst->pc++;
}

void sk_exec_timeout(sk_vm *vm, sk_inst *inst) {
  const sk_module *m = vm->m;
  uint32_t i = m->code[m->loops[inst->loop].code_first + inst->pc].insn;
  uint32_t a = SK_GETARG_A(i);
  sk_val_clear(&inst->regs[a]);
  inst->regs[a] = sk_val_int(0);
  sk_val_clear(&inst->regs[a + 1]);
  inst->pc++;
}
