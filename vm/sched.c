/*
 * sched.c: instances and the scheduler.
 *
 *   - one instance per (loop, subject), ever: a set of 128-bit hashes of (loop, subject) remembers every
 *     pair that was started, so a trigger delivered twice (or after the instance ended) starts nothing;
 *   - a 4-ary min-heap of timers (deadline, then the order they were set), each instance in it at most
 *     once (it knows its heap position, so a wake-up by key cancels its deadline in O(log n));
 *   - waiters: a chained hash from a 64-bit wake-up key to the instances waiting on it, the chains
 *     threaded through the instances themselves (4 bytes of bucket per waiting instance, no allocation
 *     per wait);
 *   - a FIFO run queue;
 *   - the recovery policy: retries with exponential / linear / fixed backoff from `delay`, capped at
 *     `maxDelay`, "equal jitter" drawn from a seeded generator, and a provider's Retry-After when it is
 *     longer; then the dead letter.
 * Memory per waiting instance: the instance (a 40-byte header + 16 bytes a register, from a slab), a
 * heap slot, a waiter-map slot, a seen-set slot (and its tag byte) and a pointer; rows and their ids
 * belong to the store.
 */
#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "opcodes.h"
#include "vm.h"

typedef struct { int64_t at; uint32_t id; uint32_t seq; } timer_ent;
typedef struct { uint64_t lo, hi; } seen_ent;

typedef struct {
  uint32_t table, kind;       /* an event some WAITEV waits for */
  uint32_t subject_col;       /* string index or SK_NONE */
} ev_kind;

typedef struct {
  uint32_t table;
  uint32_t ncols;
  char **cols;
} shape_info;

/* Instances of one size come from 64 KiB slabs with a free list: no allocator header per instance,
   and freed instances are reused. */
#define SLAB_BYTES 65536
typedef struct slab { struct slab *next; max_align_t data[]; } slab;
typedef struct { void *free; slab *slabs; } size_class;

struct sk_sched {
  sk_vm *vm;
  size_class classes[257];   /* by register count */
  const sk_module *m;
  uint64_t rng;
  struct { sk_inst **v; uint32_t n, cap; } insts;
  struct { uint32_t *v; uint32_t n, cap; } free_ids;
  struct { timer_ent *v; uint32_t n, cap; } heap;
  uint32_t timer_seq;
  /* waiters: a chained hash whose chains run through the instances (wait_next / wait_prev): bucket
     heads are instance id + 1, 0 when empty; cap is a power of two, n the waiting instances */
  struct { uint32_t *v; uint32_t n, cap; } waiters;
  struct { seen_ent *v; uint8_t *tags; uint64_t n, cap; } seen;
  struct { uint32_t *v; uint32_t head, n, cap; } queue;
  struct { ev_kind *v; uint32_t n, cap; } evkinds;
  shape_info *shapes;
  uint64_t inst_bytes;
  sk_sched_stats stats;
};

/* ---- helpers ---- */

static void *grow(void *v, uint32_t *cap, uint32_t need, size_t elem) {
  if (need <= *cap) return v;
  uint32_t nc = *cap ? *cap * 2 : 64;
  while (nc < need) nc *= 2;
  void *p = realloc(v, (size_t)nc * elem);
  if (!p) {
    fputs("skene-vm: out of memory\n", stderr);
    abort(); /* the scheduler cannot lose instances; there is no safe way on */
  }
  *cap = nc;
  return p;
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static int64_t now(sk_sched *s) { return sk_vm_now(s->vm); }

static void trace(sk_sched *s, sk_inst *in, sk_trace_kind k, uint32_t step, const char *reason, int64_t delay,
                  uint32_t outcome) {
  sk_trace t = {k, s->m, in->loop, in->regs[0].u.s, now(s), step, NULL, reason, delay, outcome, 0, NULL};
  sk_vm_trace(s->vm, &t);
}

/* ---- timers ---- */

static int timer_less(const timer_ent *a, const timer_ent *b) {
  return a->at < b->at || (a->at == b->at && (int32_t)(a->seq - b->seq) < 0);
}

static void heap_set(sk_sched *s, uint32_t pos, timer_ent e) {
  s->heap.v[pos] = e;
  s->insts.v[e.id]->heap_pos = pos;
}

/* The heap is 4-ary: half the levels of a binary heap, so a pop moves (and re-indexes) half the
   instances; a node's four children sit side by side. Children of p: 4p+1 .. 4p+4. */
#define HEAP_ARITY 4u

static void heap_up(sk_sched *s, uint32_t pos) {
  timer_ent e = s->heap.v[pos];
  while (pos > 0) {
    uint32_t parent = (pos - 1) / HEAP_ARITY;
    if (!timer_less(&e, &s->heap.v[parent])) break;
    heap_set(s, pos, s->heap.v[parent]);
    pos = parent;
  }
  heap_set(s, pos, e);
}

static void heap_down(sk_sched *s, uint32_t pos) {
  timer_ent e = s->heap.v[pos];
  for (;;) {
    uint32_t first = HEAP_ARITY * pos + 1, c = first;
    if (first >= s->heap.n) break;
    uint32_t end = s->heap.n - first < HEAP_ARITY ? s->heap.n : first + HEAP_ARITY;
    for (uint32_t k = first + 1; k < end; k++)
      if (timer_less(&s->heap.v[k], &s->heap.v[c])) c = k;
    if (!timer_less(&s->heap.v[c], &e)) break;
    heap_set(s, pos, s->heap.v[c]);
    pos = c;
  }
  heap_set(s, pos, e);
}

static void timer_cancel(sk_sched *s, sk_inst *in) {
  uint32_t pos = in->heap_pos;
  if (pos == UINT32_MAX) return;
  in->heap_pos = UINT32_MAX;
  timer_ent last = s->heap.v[--s->heap.n];
  if (pos == s->heap.n) return;
  /* the last entry fills the hole and moves up or down from there (each move re-indexes an instance) */
  s->heap.v[pos] = last;
  if (pos > 0 && timer_less(&last, &s->heap.v[(pos - 1) / HEAP_ARITY])) heap_up(s, pos);
  else heap_down(s, pos);
}

static void timer_set(sk_sched *s, sk_inst *in, int64_t at) {
  timer_cancel(s, in);
  if (at == SK_TIME_NONE) return;
  s->heap.v = grow(s->heap.v, &s->heap.cap, s->heap.n + 1, sizeof *s->heap.v);
  timer_ent e = {at, in->id, s->timer_seq++};
  s->heap.v[s->heap.n++] = e;
  heap_up(s, s->heap.n - 1);
}

int64_t sk_sched_next_timer(const sk_sched *s) { return s->heap.n ? s->heap.v[0].at : SK_TIME_NONE; }

/* ---- waiters ---- */

/* Rebuilds the buckets at twice the size (every waiting instance is re-linked). Cost O(waiting). */
static void wmap_grow(sk_sched *s) {
  uint32_t oc = s->waiters.cap;
  uint32_t *old = s->waiters.v;
  s->waiters.cap = oc ? oc * 2 : 1024;
  s->waiters.v = calloc(s->waiters.cap, sizeof *s->waiters.v);
  if (!s->waiters.v) {
    fputs("skene-vm: out of memory\n", stderr);
    abort();
  }
  uint32_t mask = s->waiters.cap - 1;
  for (uint32_t b = 0; b < oc; b++) {
    for (uint32_t next = old[b]; next;) {
      sk_inst *in = s->insts.v[next - 1];
      next = in->wait_next;
      uint32_t *head = &s->waiters.v[(uint32_t)in->wait_key & mask];
      in->wait_prev = 0;
      in->wait_next = *head;
      if (*head) s->insts.v[*head - 1]->wait_prev = in->id + 1;
      *head = in->id + 1;
    }
  }
  free(old);
}

static void wait_add(sk_sched *s, sk_inst *in, uint64_t key) {
  assert(key != 0 && in->wait_key == 0);
  if ((s->waiters.n + 1) * 2 > s->waiters.cap) wmap_grow(s); /* chains of ~1: few misses walking them */
  uint32_t *head = &s->waiters.v[(uint32_t)key & (s->waiters.cap - 1)];
  in->wait_key = key;
  in->wait_prev = 0;
  in->wait_next = *head;
  if (*head) s->insts.v[*head - 1]->wait_prev = in->id + 1;
  *head = in->id + 1;
  s->waiters.n++;
}

static void wait_remove(sk_sched *s, sk_inst *in) {
  if (!in->wait_key) return;
  if (in->wait_next) s->insts.v[in->wait_next - 1]->wait_prev = in->wait_prev;
  if (in->wait_prev) s->insts.v[in->wait_prev - 1]->wait_next = in->wait_next;
  else s->waiters.v[(uint32_t)in->wait_key & (s->waiters.cap - 1)] = in->wait_next;
  in->wait_key = 0;
  in->wait_next = in->wait_prev = 0;
  s->waiters.n--;
}

/* ---- the run queue ---- */

static void enqueue(sk_sched *s, sk_inst *in) {
  in->state = SK_INST_RUNNABLE;
  if (s->queue.n == s->queue.cap) {
    uint32_t oc = s->queue.cap;
    uint32_t *nv = malloc((size_t)(oc ? oc * 2 : 256) * sizeof *nv);
    if (!nv) {
      fputs("skene-vm: out of memory\n", stderr);
      abort();
    }
    for (uint32_t i = 0; i < s->queue.n; i++) nv[i] = s->queue.v[(s->queue.head + i) % (oc ? oc : 1)];
    free(s->queue.v);
    s->queue.v = nv;
    s->queue.head = 0;
    s->queue.cap = oc ? oc * 2 : 256;
  }
  s->queue.v[(s->queue.head + s->queue.n++) % s->queue.cap] = in->id;
}

/* ---- instances ---- */

static size_t inst_size(uint32_t nregs) { return sizeof(sk_inst) + (size_t)nregs * sizeof(sk_val); }

#if defined(__SANITIZE_ADDRESS__)
/* Under ASan every instance is its own allocation, so a use after free is caught, not recycled. */
static sk_inst *inst_alloc(sk_sched *s, uint32_t nregs) {
  sk_inst *in = calloc(1, inst_size(nregs));
  if (!in) {
    fputs("skene-vm: out of memory\n", stderr);
    abort();
  }
  s->inst_bytes += inst_size(nregs);
  return in;
}

static void inst_release(sk_sched *s, sk_inst *in) {
  s->inst_bytes -= inst_size(in->nregs);
  free(in);
}
#else
static sk_inst *inst_alloc(sk_sched *s, uint32_t nregs) {
  size_class *c = &s->classes[nregs];
  size_t size = (inst_size(nregs) + 15u) & ~(size_t)15u;
  if (!c->free) {
    slab *sl = malloc(sizeof(slab) + SLAB_BYTES);
    if (!sl) {
      fputs("skene-vm: out of memory\n", stderr);
      abort();
    }
    sl->next = c->slabs;
    c->slabs = sl;
    s->inst_bytes += sizeof(slab) + SLAB_BYTES;
    char *p = (char *)sl->data;
    for (size_t off = 0; off + size <= SLAB_BYTES; off += size) {
      *(void **)(p + off) = c->free;
      c->free = p + off;
    }
  }
  sk_inst *in = c->free;
  c->free = *(void **)c->free;
  memset(in, 0, inst_size(nregs));
  return in;
}

static void inst_release(sk_sched *s, sk_inst *in) {
  size_class *c = &s->classes[in->nregs];
  *(void **)in = c->free;
  c->free = in;
}
#endif

static sk_inst *inst_new(sk_sched *s, uint32_t loop) {
  const sk_loop_rec *l = &s->m->loops[loop];
  sk_inst *in = inst_alloc(s, l->nregs);
  uint32_t id;
  if (s->free_ids.n) {
    id = s->free_ids.v[--s->free_ids.n];
  } else {
    s->insts.v = grow(s->insts.v, &s->insts.cap, s->insts.n + 1, sizeof *s->insts.v);
    id = s->insts.n++;
  }
  s->insts.v[id] = in;
  in->id = id;
  in->loop = loop;
  in->nregs = (uint16_t)l->nregs;
  in->heap_pos = UINT32_MAX;
  return in;
}

static void inst_free(sk_sched *s, sk_inst *in) {
  timer_cancel(s, in);
  wait_remove(s, in);
  for (uint32_t r = 0; r < in->nregs; r++) sk_val_clear(&in->regs[r]);
  s->insts.v[in->id] = NULL;
  s->free_ids.v = grow(s->free_ids.v, &s->free_ids.cap, s->free_ids.n + 1, sizeof *s->free_ids.v);
  s->free_ids.v[s->free_ids.n++] = in->id;
  inst_release(s, in);
}

/* Adds (loop, subject) to the seen set; returns 0 if it was there already. The set is open addressing
   over 128-bit hashes, with a tag byte a slot in an array of its own (0: empty, else 7 bits of the hash):
   a new pair, the common case, is found missing from the tags alone, and its entry is only written. */
static int seen_add(sk_sched *s, uint32_t loop, const sk_string *subject) {
  XXH128_hash_t h = XXH3_128bits_withSeed(subject->data, subject->len, loop);
  seen_ent e = {h.low64, h.high64}; /* the slot comes from hi, the tag from lo */
  uint8_t tag = (uint8_t)(0x80u | (e.lo >> 57));
  if ((s->seen.n + 1) * 4 > s->seen.cap * 3) {
    uint64_t oc = s->seen.cap;
    seen_ent *old = s->seen.v;
    uint8_t *old_tags = s->seen.tags;
    s->seen.cap = oc ? oc * 2 : 1024;
    s->seen.v = malloc(s->seen.cap * sizeof *s->seen.v); /* an entry is read only when its tag is set */
    s->seen.tags = calloc(s->seen.cap, 1);
    if (!s->seen.v || !s->seen.tags) {
      fputs("skene-vm: out of memory\n", stderr);
      abort();
    }
    for (uint64_t i = 0; i < oc; i++) {
      if (!old_tags[i]) continue;
      uint64_t j = old[i].hi & (s->seen.cap - 1);
      while (s->seen.tags[j]) j = (j + 1) & (s->seen.cap - 1);
      s->seen.v[j] = old[i];
      s->seen.tags[j] = old_tags[i];
    }
    free(old);
    free(old_tags);
  }
  uint64_t mask = s->seen.cap - 1;
  for (uint64_t j = e.hi & mask;; j = (j + 1) & mask) {
    if (!s->seen.tags[j]) {
      s->seen.v[j] = e;
      s->seen.tags[j] = tag;
      s->seen.n++;
      return 1;
    }
    if (s->seen.tags[j] == tag && s->seen.v[j].lo == e.lo && s->seen.v[j].hi == e.hi) return 0;
  }
}

static void end_instance(sk_sched *s, sk_inst *in, uint32_t outcome, const char *reason) {
  in->state = SK_INST_ENDED;
  trace(s, in, SK_TR_INSTANCE_END, 0, reason, 0, outcome);
  s->stats.ended++;
  if (outcome < 4) s->stats.outcomes[outcome]++;
  inst_free(s, in);
}

/* ---- the recovery policy ---- */

int64_t sk_retry_delay(const sk_loop_rec *l, uint32_t attempt, uint64_t *rng) {
  uint64_t d = l->delay_ms;
  if (l->backoff == SK_BACKOFF_EXPONENTIAL) {
    for (uint32_t i = 1; i < attempt && d < l->max_delay_ms; i++) d *= 2;
  } else if (l->backoff == SK_BACKOFF_LINEAR) {
    d *= attempt;
  }
  if (d > l->max_delay_ms) d = l->max_delay_ms;
  if (l->jitter && d > 1) d = d / 2 + splitmix(rng) % (d / 2 + 1);
  return (int64_t)d;
}

uint32_t sk_step_of_pc(const sk_module *m, const sk_inst *in) {
  const sk_loop_rec *l = &m->loops[in->loop];
  uint32_t pc = in->pc;
  uint32_t insn = m->code[l->code_first + pc].insn;
  while (SK_GET_OP(insn) == SK_OP_RENDER && pc + 1 < l->code_count) insn = m->code[l->code_first + ++pc].insn;
  if (SK_GET_OP(insn) == SK_OP_EFFECT) return m->effects[l->eff_first + SK_GETARG_Bx(insn)].step;
  for (uint32_t k = 0; k < l->step_count; k++)
    if (m->steps[l->step_first + k].cond == SK_GETARG_Bx(insn)) return k;
  return 0;
}

/* ---- running ---- */

/* Acts on what sk_exec (or an asynchronous effect's completion) said about instance in. */
static void handle(sk_sched *s, sk_inst *in, sk_exec_status status, const sk_exec_result *r) {
  const sk_loop_rec *l = &s->m->loops[in->loop];
  switch (status) {
  case SK_EXEC_END:
    end_instance(s, in, r->outcome, NULL);
    return;
  case SK_EXEC_SLEEP:
    in->state = SK_INST_SLEEPING;
    timer_set(s, in, r->wake_at);
    return;
  case SK_EXEC_AWAIT:
    in->state = SK_INST_AWAITING;
    if (r->key) wait_add(s, in, r->key);
    timer_set(s, in, r->wake_at);
    return;
  case SK_EXEC_WAITEV:
    in->state = SK_INST_WAITEV;
    wait_add(s, in, r->key);
    timer_set(s, in, r->wake_at);
    return;
  case SK_EXEC_IO:
    in->state = SK_INST_IO; /* the runtime resumes it: sk_sched_io_ready / sk_sched_io_done */
    return;
  case SK_EXEC_RETRY: {
    uint32_t step = sk_step_of_pc(s->m, in);
    in->attempts++;
    if (in->attempts > l->retries) {
      char reason[400];
      snprintf(reason, sizeof reason, "retries exhausted after %u attempts: %s", in->attempts, r->reason);
      trace(s, in, SK_TR_ACTION_FAILED, step, reason, 0, 0);
      s->stats.dead_letters++;
      end_instance(s, in, SK_OUTCOME_FAILED, reason);
      return;
    }
    int64_t delay = sk_retry_delay(l, in->attempts, &s->rng);
    if (r->retry_after_ms > delay) delay = r->retry_after_ms;
    trace(s, in, SK_TR_ACTION_RETRY, step, r->reason, delay, 0);
    in->state = SK_INST_RETRYING;
    timer_set(s, in, now(s) + delay);
    return;
  }
  case SK_EXEC_FAIL: {
    uint32_t step = sk_step_of_pc(s->m, in);
    trace(s, in, SK_TR_ACTION_FAILED, step, r->reason, 0, 0);
    s->stats.dead_letters++;
    end_instance(s, in, SK_OUTCOME_FAILED, r->reason);
    return;
  }
  }
}

static void run_one(sk_sched *s, sk_inst *in) {
  sk_exec_result r;
  sk_exec_status st = sk_exec(s->vm, in, &r);
  handle(s, in, st, &r);
}

void sk_sched_io_ready(sk_sched *s, uint32_t id) {
  sk_inst *in = id < s->insts.n ? s->insts.v[id] : NULL;
  if (in && in->state == SK_INST_IO && !(in->flags & SK_INST_F_EFFECT_STARTED)) enqueue(s, in);
}

void sk_sched_io_done(sk_sched *s, uint32_t id, const sk_io *io) {
  sk_inst *in = id < s->insts.n ? s->insts.v[id] : NULL;
  if (!in || in->state != SK_INST_IO || !(in->flags & SK_INST_F_EFFECT_STARTED)) return;
  sk_exec_result r;
  if (sk_exec_effect_done(s->vm, in, io, &r)) enqueue(s, in);
  else handle(s, in, r.status, &r);
}

void sk_sched_run(sk_sched *s) {
  while (s->queue.n) {
    uint32_t id = s->queue.v[s->queue.head];
    s->queue.head = (s->queue.head + 1) % s->queue.cap;
    s->queue.n--;
    sk_inst *in = s->insts.v[id];
    if (in && in->state == SK_INST_RUNNABLE) run_one(s, in);
  }
}

void sk_sched_fire_timers(sk_sched *s, int64_t t) {
  while (s->heap.n && s->heap.v[0].at <= t) {
    sk_inst *in = s->insts.v[s->heap.v[0].id];
    timer_cancel(s, in);
    wait_remove(s, in);
    enqueue(s, in);
  }
  sk_sched_run(s);
}

/* Wakes every instance waiting on key; event says how (NULL: an index key, re-check). */
static void wake(sk_sched *s, uint64_t key, const ev_kind *ev, uint32_t table, sk_string *id, const sk_string *subject) {
  if (!s->waiters.cap) return;
  uint32_t next = s->waiters.v[(uint32_t)key & (s->waiters.cap - 1)];
  while (next) {
    sk_inst *in = s->insts.v[next - 1];
    next = in->wait_next;
    if (in->wait_key != key) continue; /* another key in the same bucket */
    if (ev) {
      /* A WAITEV resumes only for its own event and subject (a key collision must not resume it). */
      const sk_loop_rec *l = &s->m->loops[in->loop];
      uint32_t insn = s->m->code[l->code_first + in->pc].insn;
      if (in->state != SK_INST_WAITEV || SK_GET_OP(insn) != SK_OP_WAITEV) continue;
      const sk_event_rec *er = &s->m->events[l->ev_first + SK_GETARG_Bx(insn)];
      if (er->table != ev->table || er->kind != ev->kind || er->subject_col_str != ev->subject_col ||
          !sk_str_eq(in->regs[0].u.s, subject))
        continue;
      timer_cancel(s, in);
      wait_remove(s, in);
      sk_exec_event(s->vm, in, 1, table, id);
      enqueue(s, in);
    } else {
      if (in->state != SK_INST_AWAITING) continue;
      timer_cancel(s, in);
      wait_remove(s, in);
      enqueue(s, in);
    }
  }
}

void sk_sched_row(sk_sched *s, uint32_t table, uint32_t kind, sk_string *id) {
  const sk_module *m = s->m;
  /* 1. the loops this event starts */
  for (uint32_t li = 0; li < m->nloops; li++) {
    const sk_loop_rec *l = &m->loops[li];
    const sk_event_rec *ev = &m->events[l->ev_first + l->trigger];
    if (ev->table != table || ev->kind != kind) continue;
    if (!seen_add(s, li, id)) continue;
    sk_inst *in = inst_new(s, li);
    in->regs[0] = sk_val_str(sk_str_ref(id));
    in->regs[1] = sk_val_row(table, sk_str_ref(id));
    s->stats.started++;
    trace(s, in, SK_TR_INSTANCE_START, 0, NULL, 0, 0);
    enqueue(s, in);
  }
  /* 2. the WAITEVs waiting for it */
  for (uint32_t k = 0; k < s->evkinds.n; k++) {
    const ev_kind *ek = &s->evkinds.v[k];
    if (ek->table != table || ek->kind != kind) continue;
    sk_string *subject = ek->subject_col == SK_NONE ? sk_str_ref(id)
                                                 : sk_vm_row_field(s->vm, table, id, sk_str(m, ek->subject_col));
    if (!subject || subject == SK_PENDING) continue; /* a runtime must answer here (vm.h) */
    wake(s, sk_event_key(table, kind, subject), ek, table, id, subject);
    sk_str_unref(subject);
  }
  /* 3. the AWAITs whose index keys this row is under */
  for (uint32_t sh = 0; sh < m->nshapes; sh++) {
    const shape_info *si = &s->shapes[sh];
    if (si->table != table) continue;
    sk_string *vals[64];
    uint32_t n = 0;
    for (; n < si->ncols && n < 64; n++) {
      vals[n] = sk_vm_row_field(s->vm, table, id, si->cols[n]);
      if (vals[n] == SK_PENDING) vals[n] = NULL; /* a runtime must answer here (vm.h) */
      if (!vals[n]) break;
    }
    if (n == si->ncols) wake(s, sk_index_key(sh, vals, n), NULL, table, id, NULL);
    for (uint32_t k = 0; k < n; k++) sk_str_unref(vals[k]);
  }
}

/* ---- lifetime ---- */

sk_sched *sk_sched_new(sk_vm *vm, uint64_t seed) {
  sk_sched *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->vm = vm;
  s->m = sk_vm_module(vm);
  s->rng = seed;
  const sk_module *m = s->m;
  s->shapes = calloc(m->nshapes + 1, sizeof *s->shapes);
  if (!s->shapes) goto fail;
  for (uint32_t i = 0; i < m->nshapes; i++) {
    shape_info *si = &s->shapes[i];
    si->table = m->shapes[i].table;
    const char *cols = sk_str(m, m->shapes[i].cols_str);
    si->ncols = 1;
    for (const char *p = cols; *p; p++) si->ncols += *p == ',';
    si->cols = calloc(si->ncols, sizeof *si->cols);
    if (!si->cols) goto fail;
    for (uint32_t c = 0; c < si->ncols; c++) {
      const char *e = strchr(cols, ',');
      size_t len = e ? (size_t)(e - cols) : strlen(cols);
      si->cols[c] = malloc(len + 1);
      if (!si->cols[c]) goto fail;
      memcpy(si->cols[c], cols, len);
      si->cols[c][len] = 0;
      cols += len + (e ? 1 : 0);
    }
  }
  for (uint32_t li = 0; li < m->nloops; li++) {
    const sk_loop_rec *l = &m->loops[li];
    for (uint32_t e = 0; e < l->ev_count; e++) {
      if (e == l->trigger) continue;
      const sk_event_rec *er = &m->events[l->ev_first + e];
      ev_kind k = {er->table, er->kind, er->subject_col_str};
      int dup = 0;
      for (uint32_t i = 0; i < s->evkinds.n; i++)
        dup |= s->evkinds.v[i].table == k.table && s->evkinds.v[i].kind == k.kind &&
               s->evkinds.v[i].subject_col == k.subject_col;
      if (dup) continue;
      s->evkinds.v = grow(s->evkinds.v, &s->evkinds.cap, s->evkinds.n + 1, sizeof *s->evkinds.v);
      s->evkinds.v[s->evkinds.n++] = k;
    }
  }
  return s;
fail:
  sk_sched_free(s);
  return NULL;
}

void sk_sched_free(sk_sched *s) {
  if (!s) return;
  for (uint32_t i = 0; i < s->insts.n; i++) {
    sk_inst *in = s->insts.v[i];
    if (!in) continue;
    for (uint32_t r = 0; r < in->nregs; r++) sk_val_clear(&in->regs[r]);
#if defined(__SANITIZE_ADDRESS__)
    free(in);
#endif
  }
  for (int c = 0; c < 257; c++)
    for (slab *sl = s->classes[c].slabs, *next; sl; sl = next) {
      next = sl->next;
      free(sl);
    }
  for (uint32_t i = 0; s->shapes && i < s->m->nshapes; i++) {
    for (uint32_t c = 0; s->shapes[i].cols && c < s->shapes[i].ncols; c++) free(s->shapes[i].cols[c]);
    free(s->shapes[i].cols);
  }
  free(s->shapes);
  free(s->insts.v);
  free(s->free_ids.v);
  free(s->heap.v);
  free(s->waiters.v);
  free(s->seen.v);
  free(s->seen.tags);
  free(s->queue.v);
  free(s->evkinds.v);
  free(s);
}

void sk_sched_get_stats(const sk_sched *s, sk_sched_stats *out) {
  *out = s->stats;
  out->waiting = s->stats.started - s->stats.ended;
  out->bytes = s->inst_bytes + (uint64_t)s->insts.cap * sizeof(sk_inst *) + (uint64_t)s->heap.cap * sizeof(timer_ent) +
               (uint64_t)s->waiters.cap * sizeof(uint32_t) + s->seen.cap * (sizeof(seen_ent) + 1) +
               (uint64_t)s->queue.cap * sizeof(uint32_t) + (uint64_t)s->free_ids.cap * sizeof(uint32_t);
}
