/*
 * vm.h: running verified bytecode. Three parts, one job each:
 *
 *   sk_exec (interp.c)   runs one instance from its pc until it must wait (a timer, a condition, an
 *                        event, a retry) or ends. Pure: everything outside the instance goes through
 *                        the runtime interface below.
 *   sk_sched (sched.c)   owns the instances: one per (loop, subject) however often a trigger is
 *                        delivered; a timer heap; waiters keyed by what they wait on; the recovery
 *                        policy (retries, backoff, jitter, Retry-After); outcomes and dead letters.
 *   sk_runtime_ops       what a store provides: the clock, row fields, query counts from the indexes,
 *                        Redis commands, effects (email, webhook), and where the trace goes. The
 *                        in-memory store with a virtual clock (memstore.c, `skene-vm simulate`) is one;
 *                        the Redis runtime is the other.
 *
 * Wake-ups are keyed by 64-bit hashes (sk_index_key, sk_event_key) of what an instance waits on. A hash
 * collision only wakes an instance that then re-checks its condition and waits again: never a lost or a
 * wrong effect. The store calls sk_sched_row() after it has applied a row change to its indexes, so a
 * waiter that registered before the change sees it on re-check: no lost wake-ups.
 */
#ifndef SK_VM_H
#define SK_VM_H

#include <stdint.h>

#include "skb.h"
#include "value.h"

#define SK_TIME_NONE INT64_MAX

/* ---- instances ---- */

typedef enum {
  SK_INST_RUNNABLE = 0, /* in the run queue */
  SK_INST_SLEEPING,     /* SLEEP: timer only */
  SK_INST_AWAITING,     /* AWAIT: an index key, and a timer for the deadline */
  SK_INST_WAITEV,       /* WAITEV: an event key, and a timer when there is a deadline */
  SK_INST_RETRYING,     /* EFFECT failed transiently: a timer for the next attempt */
  SK_INST_IO,           /* waiting for the runtime: data it is loading, or an effect it is performing */
  SK_INST_ENDED
} sk_inst_state;

typedef struct sk_inst {
  uint32_t id;          /* index in the scheduler's instance table */
  uint32_t loop;
  uint32_t pc;          /* loop-relative */
  uint16_t nregs;
  uint8_t state;        /* sk_inst_state */
  uint8_t flags;        /* SK_INST_F_* */
  uint32_t attempts;    /* failed attempts of the current effect */
  uint32_t heap_pos;    /* position in the timer heap (which holds the time), UINT32_MAX when none */
  uint64_t wait_key;    /* what it waits on (index or event key), 0 when none */
  uint32_t wait_next;   /* next instance id + 1 waiting on the same key, 0 at the end */
  uint32_t wait_prev;   /* previous instance id + 1, 0 when first */
  sk_val regs[];        /* nregs registers; R0 subject id, R1 trigger row */
} sk_inst;

#define SK_INST_F_WAIT_ANNOUNCED 1u  /* condition.wait was traced for the current AWAIT */
#define SK_INST_F_EFFECT_STARTED 2u  /* the EFFECT at pc is being performed by the runtime (asynchronously) */

/* ---- what exec and the runtime exchange ---- */

typedef struct {
  const char *name;     /* field name from the module: "to", "subject", "header.X", "argv", ... */
  sk_string *value;        /* rendered */
} sk_field_value;

typedef struct {
  const sk_module *m;
  uint32_t loop;
  const sk_inst *inst;
  const sk_effect_rec *effect;
  const sk_field_value *fields;
  uint32_t nfields;
  char idempotency_key[40];   /* "sk_" + 16 hex: xxh3 of the subject seeded with the effect's key_seed */
  uint32_t attempt;           /* 1-based */
} sk_effect_call;

typedef struct {
  int pending;                /* 1: started, the answer comes later through sk_sched_io_done */
  int ok;                     /* 1: done; 0: failed */
  int transient;              /* failed: 1 retry by the policy, 0 permanent (dead letter) */
  int64_t retry_after_ms;     /* transient: the provider's Retry-After, 0 when none */
  char reason[256];           /* failed: why, for the trace and the dead letter */
  sk_string *result;             /* ok: a value for R[A] (a provider's id, a Redis reply), or NULL */
} sk_io;

typedef enum {
  SK_TR_INSTANCE_START, SK_TR_CONDITION_WAIT, SK_TR_CONDITION_MET, SK_TR_CONDITION_TIMEOUT,
  SK_TR_ACTION_ATTEMPT, SK_TR_ACTION_RETRY, SK_TR_ACTION_OK, SK_TR_ACTION_FAILED, SK_TR_INSTANCE_END
} sk_trace_kind;

const char *sk_trace_name(sk_trace_kind k); /* "instance.start", ... */

typedef struct {
  sk_trace_kind kind;
  const sk_module *m;
  uint32_t loop;
  const sk_string *subject;
  int64_t now;
  uint32_t step;               /* 0-based step the event belongs to */
  const sk_effect_call *call;  /* ACTION_*: the effect and its rendered fields (OK, ATTEMPT) */
  const char *reason;          /* RETRY, FAILED, END(failed) */
  int64_t delay_ms;            /* RETRY */
  uint32_t outcome;            /* END: sk_outcome */
  uint32_t count;              /* CONDITION_MET: rows that matched */
  const sk_string *result;     /* ACTION_OK of an asynchronous effect: the provider's answer (an email
                                  id), or NULL */
} sk_trace;

/*
 * Asynchronous runtimes. Every operation may answer "not yet": row_field with SK_PENDING, query with
 * SK_QUERY_PENDING, redis and effect with io.pending. The runtime then starts loading (or performing)
 * what was asked, and the instance (sk_vm_running) suspends at that instruction; instructions have no
 * side effect until they complete, so it simply runs again when the runtime calls sk_sched_io_ready.
 * An effect is the exception: once started it is not started again; its answer comes through
 * sk_sched_io_done. The in-memory store always answers at once. Outside sk_exec (sk_vm_running is
 * SK_NONE) a runtime must answer at once.
 */
#define SK_PENDING ((sk_string *)(uintptr_t)1)
#define SK_QUERY_PENDING UINT32_MAX

typedef struct {
  int64_t (*now)(void *ud);
  /* Field of row (table, id), as a new reference; NULL when the row or the field does not exist. */
  sk_string *(*row_field)(void *ud, uint32_t table, const sk_string *id, const char *field);
  /* Rows of `shape` whose columns equal values[0..n) (the shape's column order), counted up to limit
     (0: no limit); *first := id of the first such row (new reference) or NULL. */
  uint32_t (*query)(void *ud, uint32_t shape, sk_string *const *values, uint32_t n, uint32_t limit, sk_string **first);
  /* A Redis command (a condition when is_effect is 0; an action otherwise). */
  void (*redis)(void *ud, sk_string *const *argv, uint32_t argc, int is_effect, sk_io *out);
  /* An email or a webhook. */
  void (*effect)(void *ud, const sk_effect_call *call, sk_io *out);
  void (*trace)(void *ud, const sk_trace *t);
} sk_runtime_ops;

/* ---- the interpreter ---- */

typedef struct sk_vm sk_vm;

/* A VM over a verified module (borrowed; must outlive the VM). NULL when memory runs out. */
sk_vm *sk_vm_new(const sk_module *m, const sk_runtime_ops *ops, void *ud);
void sk_vm_free(sk_vm *vm);
const sk_module *sk_vm_module(const sk_vm *vm);
/* The runtime's clock, row fields and trace, for the scheduler. */
int64_t sk_vm_now(const sk_vm *vm);
sk_string *sk_vm_row_field(sk_vm *vm, uint32_t table, const sk_string *id, const char *field);
void sk_vm_trace(sk_vm *vm, const sk_trace *t);

typedef enum {
  SK_EXEC_END,     /* END ran: outcome in r->outcome */
  SK_EXEC_SLEEP,   /* wait until r->wake_at */
  SK_EXEC_AWAIT,   /* wait for r->key (an index key) or r->wake_at (deadline) */
  SK_EXEC_WAITEV,  /* wait for r->key (an event key) or r->wake_at (SK_TIME_NONE: forever) */
  SK_EXEC_RETRY,   /* the effect at pc failed transiently: retry by the policy (r->reason, r->retry_after_ms) */
  SK_EXEC_FAIL,    /* permanent failure: dead letter with r->reason */
  SK_EXEC_IO       /* the runtime answered "not yet": wait for sk_sched_io_ready / sk_sched_io_done */
} sk_exec_status;

typedef struct {
  sk_exec_status status;
  uint32_t outcome;
  int64_t wake_at;
  uint64_t key;
  int64_t retry_after_ms;
  char reason[256];
} sk_exec_result;

/*
 * Runs inst from its pc until it must wait or ends. The instance's state and registers are updated;
 * the caller (the scheduler) registers the wait. Cost: the instructions run, each O(1) but RENDER and
 * EFFECT (O(size of the rendered text)) and CHECK/AWAIT (one runtime query).
 */
sk_exec_status sk_exec(sk_vm *vm, sk_inst *inst, sk_exec_result *r);

/* The id of the instance sk_exec is running (for a runtime that answers "not yet" and must remember
   whom to resume); SK_NONE outside sk_exec, where a runtime must answer at once (sk_sched_row reads
   the fields of the row it is told about: the runtime has that row in hand). */
uint32_t sk_vm_running(const sk_vm *vm);

/* Completes the EFFECT a runtime was performing asynchronously (SK_INST_F_EFFECT_STARTED): on success
   R[A] := the result, on to the next instruction, returns 1; on failure returns 0 with r filled as
   sk_exec does (SK_EXEC_RETRY or SK_EXEC_FAIL). */
int sk_exec_effect_done(sk_vm *vm, sk_inst *inst, const sk_io *io, sk_exec_result *r);

/* Resumes a WAITEV that saw its event (seen=1, row = (table, id)) or hit its deadline (seen=0). */
void sk_exec_event(sk_vm *vm, sk_inst *inst, int seen, uint32_t table, sk_string *id);
/* Resumes an AWAIT whose deadline passed: R[A] := 0 and on to the next instruction. */
void sk_exec_timeout(sk_vm *vm, sk_inst *inst);

/* The key an AWAIT on `shape` with these column values waits on; the store wakes it with the same. */
uint64_t sk_index_key(uint32_t shape, sk_string *const *values, uint32_t n);
/* The key a WAITEV waits on: an event of `kind` on `table` for `subject`. */
uint64_t sk_event_key(uint32_t table, uint32_t kind, const sk_string *subject);

/* ---- the recovery policy (sched.c), shared by the scheduler and the Redis runtime ---- */

/* The delay before retry number `attempt` (1-based) of loop l: backoff from delay_ms capped at
   max_delay_ms, "equal jitter" drawn from *rng (splitmix64) when the loop asks for it. */
int64_t sk_retry_delay(const sk_loop_rec *l, uint32_t attempt, uint64_t *rng);
/* The 0-based step the instruction at inst->pc belongs to (its condition's or its effect's). */
uint32_t sk_step_of_pc(const sk_module *m, const sk_inst *inst);

/* ---- snapshots: an instance's state as bytes (snapshot.c) ---- */

/* Encodes inst (of module m) into a new buffer (*out, caller frees). 0, or -1 out of memory. */
int sk_snapshot_encode(const sk_module *m, const sk_inst *inst, uint8_t **out, size_t *out_len);
/* Decodes a snapshot of module m into a new instance (free with sk_snapshot_free), checking everything
   against the module; NULL with a one-line reason in err when it is corrupt, truncated or of another
   bytecode. The instance's id, timer and wait links are left for the scheduler that adopts it. */
sk_inst *sk_snapshot_decode(const sk_module *m, const uint8_t *data, size_t len, char *err, size_t errlen);
void sk_snapshot_free(sk_inst *inst);

/* ---- the scheduler ---- */

typedef struct sk_sched sk_sched;

/* A scheduler for vm; seed drives the retry jitter (same seed, same delays). */
sk_sched *sk_sched_new(sk_vm *vm, uint64_t seed);
void sk_sched_free(sk_sched *s);

/*
 * A row of `table` was inserted or updated (kind: sk_event_kind) and the store's indexes already show
 * it. Starts the loops it triggers (once per (loop, subject), ever), wakes the WAITEVs waiting for it
 * and the AWAITs whose index keys it changed; they run on the next sk_sched_run.
 */
void sk_sched_row(sk_sched *s, uint32_t table, uint32_t kind, sk_string *id);

/* The runtime has what instance id was waiting for (SK_EXEC_IO): run it again. */
void sk_sched_io_ready(sk_sched *s, uint32_t id);
/* The runtime finished the effect instance id started: go on, retry or dead-letter by the answer. */
void sk_sched_io_done(sk_sched *s, uint32_t id, const sk_io *io);

/* Runs every runnable instance until none is left. */
void sk_sched_run(sk_sched *s);

/* The earliest timer, SK_TIME_NONE when none. */
int64_t sk_sched_next_timer(const sk_sched *s);
/* Fires every timer due at or before now (in time order, ties in the order they were set) and runs. */
void sk_sched_fire_timers(sk_sched *s, int64_t now);

typedef struct {
  uint64_t started, ended, waiting, dead_letters;
  uint64_t outcomes[4];        /* by sk_outcome */
  uint64_t bytes;              /* memory held by instances, timers and waiter maps */
} sk_sched_stats;
void sk_sched_get_stats(const sk_sched *s, sk_sched_stats *out);

#endif
