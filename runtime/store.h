/* store.h: the durable state of loops in the product's Redis (DESIGN.md, "Execution"): instance
 * snapshots, the once-ever start of an instance, timers, the indexes conditions count and the
 * instances waiting on them, and leases. Asynchronous, on an sk_redis connection.
 *
 * Every operation is ONE round trip and one command on the wire: a short server-side Lua script that
 * names every key in KEYS, sent as EVAL with its text (never EVALSHA, whose NOSCRIPT after a
 * restart would have it sent again behind the commands queued after it), or a plain command. Upstash bills the one command; Redis's
 * INFO commandstats also counts the commands a script runs, so each operation below lists both:
 * "wire 1; inside: ...".
 *
 * Batches: the operations every activation goes through (begin_check, index_add, claim_check,
 * finish) are held back until the callbacks running now are done, and the entries of one operation
 * queued together go as ONE script, whose commands that take many keys or members (MSET, MGET, DEL,
 * ZADD, ZREM, SADD, SMISMEMBER, HMGET, HSET, HDEL, EXISTS) run once per batch: "per batch" below.
 * Each entry is still called back alone, with exactly what the operation alone would give. The
 * batch is sent early when another kind of operation comes, at 128 entries, or when anything else
 * is about to be sent on the connection (sk_redis_set_presend), so the wire keeps the order of the
 * calls. The store owns the connection's presend hook.
 *
 * Keys (keys.h) are built under the store's prefix (default "skene:"):
 *   inst:{loop}:{subject}      the snapshot; this key string is also the instance's member in `timers`
 *                              and in waits (sk_store_inst_parse splits it again)
 *   idx:{table}({cols}):{values}   an index: the shape named by its table and columns (stable across
 *                              deploys), the values joined by the byte 0x1F; a 0x1E or 0x1F byte
 *                              inside a value is written as 0x1E then that byte, so keys never collide
 *   wait:idx:{shape}           the instances waiting on each values of that index: a hash, field
 *                              {values} = the waiting instance's key, or "*" when several wait, and
 *                              then they are the set wait:idx:{shape}:{values} (sk_store_wait_split);
 *                              the same for events: wait:ev:{table}:{kind}, field {subject}
 *   started:{loop}, timers, lease:{loop}:{subject}
 * Loop names never contain ':' (the compiler allows letters, digits, '_', '-', '.'); subjects, values
 * and row ids are binary-safe.
 *
 * Ownership: every input is copied before the call returns (the caller may free it at once). A
 * result and everything it points to are borrowed, valid until the callback returns.
 *
 * Everything runs on the thread of the connection's event_base.
 */
#ifndef SKENE_RUNTIME_STORE_H
#define SKENE_RUNTIME_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "redis.h"

/* "No timer" for wake_at_ms; the same value as the VM's SK_TIME_NONE. */
#define SK_STORE_NO_WAKE INT64_MAX

/* ---- keys ---- */

/* The pattern of a key after the prefix, as keys.h lists it ("inst:{loop}:{subject}"). */
const char *sk_key_pattern(sk_key_kind kind);

/* Formats prefix + the pattern of kind with its {...} placeholders filled, in order, by parts[i]
 * (lens[i] bytes; lens NULL: strlen). Binary-safe. Returns a new NUL-terminated buffer (the caller
 * frees it) with its length in *len, or NULL when nparts is not the pattern's number of placeholders
 * or memory runs out. Cost O(length). */
char *sk_key_format(const char *prefix, sk_key_kind kind, const char *const *parts,
                    const size_t *lens, size_t nparts, size_t *len);

/* A query shape and its values: `WHERE action_type = $1 AND user_id = $2` on user_actions is
 * {"user_actions", {"action_type", "user_id"}, {values...}, lens, 2}. */
typedef struct sk_store_index {
  const char *table;         /* identifier */
  const char *const *cols;   /* ncols column names (identifiers), in the shape's order */
  const char *const *values; /* ncols values, binary-safe */
  const size_t *value_lens;  /* their lengths; NULL: strlen */
  size_t ncols;              /* >= 1 */
} sk_store_index;

/* ---- the store ---- */

typedef struct sk_store sk_store;

/* Creates a store on r (borrowed: it must outlive the store) with the key prefix (copied; NULL:
 * SK_KEY_PREFIX_DEFAULT). Computes the scripts' SHA-1s; sends nothing. NULL when out of memory.
 * The caller owns it: sk_store_free. */
sk_store *sk_store_new(sk_redis *r, const char *prefix);
/* Frees the store. Operations in flight are not cancelled: each still calls its callback (they
 * hold no reference to the store). NULL is fine. */
void sk_store_free(sk_store *s);

/* Why the last operation was refused (returned -1); "" when none. */
const char *sk_store_errstr(const sk_store *s);

/* The keys of an index and of its waiters (which: SK_KEY_INDEX or SK_KEY_WAIT), as the store writes
 * them: a new buffer (the caller frees it) and *len, or NULL (bad which, no column, out of memory).
 * For sk_store_suspend's wait key, and for tests. */
char *sk_store_index_key(const sk_store *s, const sk_store_index *ix, sk_key_kind which,
                         size_t *len);
/* A wait key (from sk_store_index_key(SK_KEY_WAIT): wait:idx:{shape}:{values}, or
 * wait:ev:{table}:{kind}:{subject}) as Redis holds it: its first *hash_len bytes are the key of its
 * group's hash (wait:idx:{shape}), the rest after the ':' is its field there; the key itself names
 * the set its waiters go to when more than one waits (keys.h WAIT). 0, or -1 when key is not a
 * wait key under this prefix. */
int sk_store_wait_split(const sk_store *s, const char *key, size_t len, size_t *hash_len);
/* The instance key inst:{loop}:{subject} under the prefix (new buffer, *len), NULL out of memory. */
char *sk_store_inst_key(const sk_store *s, const char *loop, const char *subject,
                        size_t subject_len, size_t *len);
/* Splits an instance key (from sk_store_due or sk_store_index_add) into its loop and subject,
 * pointers into key. 0, or -1 when it is not an instance key under this prefix. */
int sk_store_inst_parse(const sk_store *s, const char *key, size_t len, const char **loop,
                        size_t *loop_len, const char **subject, size_t *subject_len);

/* ---- results ---- */

typedef struct sk_store_result {
  int ok;                 /* 1: the operation ran and its reply had the expected shape */
  sk_redis_status status; /* from sk_redis. When !ok: SK_REDIS_NOT_SENT, it certainly did not run;
                             SK_REDIS_OK, Redis answered an error (OOM, WRONGTYPE) or a reply of an
                             unexpected shape; the others, it may or may not have run */
  const char *errstr;     /* why, when !ok, e.g. "suspend: OOM command not allowed ..."; else "" */
  long long n;            /* per operation, below */
  int held;               /* check_or_wait: 1 when the condition holds */
  const char *str;        /* load: the snapshot, NULL when none; check_or_wait: the first row's id,
                             NULL when none */
  size_t len;             /* str's length */
  size_t count;           /* due, index_add: the instance keys in strs / lens */
  const char *const *strs;
  const size_t *lens;
  long long rows;         /* claim_check: the index's ZCARD */
} sk_store_result;

/* Called exactly once per accepted operation, from the event loop (never from inside the call that
 * queued it). It may queue more operations and free the store or the connection. */
typedef void (*sk_store_callback)(const sk_store_result *res, void *privdata);

/* Every operation returns 0 when queued (the callback will be called), or -1 when refused (bad
 * arguments, out of memory, or sk_redis refused the command: see sk_store_errstr; the callback is
 * never called). loop is a NUL-terminated loop name; subject is subject_len bytes. */

/* Starts the instance (loop, subject) once ever: SADD started:{loop} subject, and only if it was
 * added, SET inst:... snapshot. n: 1 started now, 0 started before (nothing written).
 * Wire 1; inside: SADD [+ SET]. */
int sk_store_start(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                   const void *snapshot, size_t snapshot_len, sk_store_callback cb,
                   void *privdata);

/* Records a suspension: SET the snapshot; ZADD timers wake_at_ms inst, or ZREM it when wake_at_ms
 * is SK_STORE_NO_WAKE; the instance joins wait_key (a key from sk_store_index_key(SK_KEY_WAIT) or
 * another wait:... key) unless wait_key is NULL. Call it at every suspension, before relying on the
 * work waited for. n: 1. Wire 1; inside: SET, ZADD or ZREM [, HGET + HSET]. */
int sk_store_suspend(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                     const void *snapshot, size_t snapshot_len, int64_t wake_at_ms,
                     const char *wait_key, size_t wait_key_len, sk_store_callback cb,
                     void *privdata);

/* Ends the instance: DEL the snapshot, ZREM the timer, leave wait_key unless NULL. started keeps
 * the subject: the instance never starts again. n: 1. Wire 1; inside: DEL, ZREM [, HGET + HDEL]. */
int sk_store_end(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                 const char *wait_key, size_t wait_key_len, sk_store_callback cb, void *privdata);

/* A condition on an index, checked and waited for atomically (no wake-up can be lost between the
 * two): n := ZCARD idx, capped at limit when limit > 0. If n >= min_rows: held, the instance leaves
 * its wait, str := the first row id (ZRANGE idx 0 0; NULL when the index is empty). Else: the
 * instance joins the wait (keys.h WAIT: a field of the shape's hash, or its set), and when
 * snapshot is not NULL the suspension is recorded in the same script as sk_store_suspend does
 * (SET snapshot, ZADD/ZREM the timer): one round trip instead of two, and never a waiter without
 * its snapshot. Wire 1; inside: ZCARD + HGET [+ HDEL] + ZRANGE held, ZCARD + HGET + HSET [+ SET +
 * ZADD or ZREM] waiting (SADD/SREM instead when several wait on one key). */
int sk_store_check_or_wait(sk_store *s, const sk_store_index *ix, const char *loop,
                           const char *subject, size_t subject_len, uint32_t min_rows,
                           uint32_t limit, const void *snapshot, size_t snapshot_len,
                           int64_t wake_at_ms, sk_store_callback cb, void *privdata);

/* A row of the index's table now has these values: ZADD idx NX score row_id (score: insertion
 * order), then reads the waiters, whatever ZADD did. n: 1 when the row was added, 0 when it
 * was there already; strs: the waiters' instance keys, for the runtime to wake. They stay in the set
 * until their own check_or_wait finds the condition held (or end removes them): a worker that dies
 * before waking them loses nothing, the feed entry is delivered again and wakes them again, and a
 * woken instance only re-checks. Batched: per entry ZADD (+ SMEMBERS when several wait); per batch
 * HMGET. */
int sk_store_index_add(sk_store *s, const sk_store_index *ix, const char *row_id,
                       size_t row_id_len, int64_t score, sk_store_callback cb, void *privdata);

/* The snapshot: GET inst:... . str/len: it, or NULL; n: 1 found, 0 not. Wire 1. */
int sk_store_load(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                  sk_store_callback cb, void *privdata);

/* Timers due at or before now_ms, earliest first, at most max (>= 1): ZRANGEBYSCORE timers -inf
 * now_ms LIMIT 0 max. strs: instance keys. They stay in `timers` until a suspend or end of the
 * instance moves or removes them. Wire 1. */
int sk_store_due(sk_store *s, int64_t now_ms, uint32_t max, sk_store_callback cb, void *privdata);

/* Takes the lease of an instance for ttl_ms (>= 1): SET lease:... worker NX PX ttl_ms. n: 1 taken,
 * 0 held by someone (this worker included: it does not renew). Wire 1. */
int sk_store_lease(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                   const char *worker, int64_t ttl_ms, sk_store_callback cb, void *privdata);

/* Gives the lease back only if worker still holds it (GET, compare, DEL in a script). n: 1
 * released, 0 not ours (expired, or taken by another). Wire 1; inside: GET [+ DEL]. */
int sk_store_release(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                     const char *worker, sk_store_callback cb, void *privdata);

/* ---- the worker's operations (skene-vm run): the lease goes with the state it guards ----
 *
 * A worker runs an instance only while it holds the instance's lease (lease:{loop}:{subject}, SET
 * NX PX). While it runs, the instance's timer points at the lease's end (wake_at_ms given by the
 * caller: now + the lease in the store's clock), so an instance whose worker died comes back
 * through sk_store_due. Each suspension gives the lease back in the script that records it. */

/* Starts (loop, subject) once ever, as sk_store_start, and when it starts now also sets its timer to
 * wake_at_ms and takes its lease for worker (lease_ms). n: 1 started now (leased to worker), 0
 * started before. Wire 1; inside: SADD [+ SET + ZADD + SET]. */
int sk_store_begin(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                   const void *snapshot, size_t snapshot_len, int64_t wake_at_ms,
                   const char *worker, int64_t lease_ms, sk_store_callback cb, void *privdata);

/* sk_store_begin and the instance's first condition in one script, for an instance whose first
 * suspension is an AWAIT on index ix (snapshot: the instance standing at that AWAIT): started once
 * ever, then, as check_or_park does, held (the lease is worker's and the timer at lease_end_ms) or
 * waiting (in the wait, the timer at deadline_ms, no lease). n: 1 started now, 0 started
 * before (nothing written); held, rows (the count capped at limit), str: the first row id.
 * Batched: per batch SMISMEMBER + SADD (started), MSET, EXISTS (the indexes), HMGET + HSET (waits),
 * ZADD/ZREM (timers); per entry only a ZRANGE when its index exists, and SET PX when held. */
int sk_store_begin_check(sk_store *s, const sk_store_index *ix, const char *loop,
                         const char *subject, size_t subject_len, const void *snapshot,
                         size_t snapshot_len, uint32_t min_rows, uint32_t limit,
                         const char *worker, int64_t lease_ms, int64_t lease_end_ms,
                         int64_t deadline_ms, sk_store_callback cb, void *privdata);

/* A later step's event (a row of another table linked to subject): into the box of each loop that
 * waits for such events (evbox:{loop}:{table}:{kind}:{subject}, boxes: at most 8, each kept ttl_ms
 * after its last event), and the instances waiting on wait_key now (strs). Wire 1; inside: ZADD and
 * PEXPIRE per box, HGET [+ SMEMBERS when several wait]. */
int sk_store_event_post(sk_store *s, const char *wait_key, size_t wait_len,
                        const char *const *boxes, const size_t *box_lens, size_t nboxes,
                        const char *row, size_t row_len, int64_t score, int64_t ttl_ms,
                        sk_store_callback cb, void *privdata);

/* A WAITEV's suspension: if the loop's box (box) holds an event, the oldest is taken instead (n 1,
 * str: its row id; nothing else is written, the lease stays); else as sk_store_park with wait_key
 * (n 0). No event is lost between its arrival and the wait. Wire 1. */
int sk_store_park_event(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                        const void *snapshot, size_t snapshot_len, int64_t wake_at_ms,
                        const char *wait_key, size_t wait_len, const char *box, size_t box_len,
                        const char *const *leave_keys, const size_t *leave_lens, size_t nleave,
                        const char *worker, sk_store_callback cb, void *privdata);

/* Takes an existing instance to run it: the lease (NX), then the snapshot, and the timer moved to
 * wake_at_ms. n: 1 taken (str/len: the snapshot), 0 leased by another worker (or by this one:
 * leases do not nest), 2 no such instance (it ended; a stray timer is removed). Wire 1; inside:
 * SET [+ GET + ZADD or DEL + ZREM]. */
int sk_store_claim(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                   const char *worker, int64_t lease_ms, int64_t wake_at_ms,
                   sk_store_callback cb, void *privdata);

/* sk_store_claim for an instance woken from the wait of index idx_key (the key
 * sk_store_index_key(SK_KEY_INDEX) gives), which also counts that index in the same script: the
 * woken AWAIT then needs no check of its own. rows: ZCARD; strs[0] (count 1): the first row id.
 * The instance stays in the wait (park or finish takes it out once it moved on). Batched: per
 * entry SET NX PX (the lease) and ZRANGE (the index, a ZCARD more past 15 rows; once per index in
 * a batch); per batch MGET, ZADD, [DEL + ZREM for ended ones]. */
int sk_store_claim_check(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                         const char *worker, int64_t lease_ms, int64_t wake_at_ms,
                         const char *idx_key, size_t idx_len, sk_store_callback cb,
                         void *privdata);

/* Records a suspension and gives the lease back: SET the snapshot, ZADD the timer (ZREM when
 * SK_STORE_NO_WAKE), leave the nleave (at most 4) leave_keys (waits the instance was woken
 * from and left behind), join wait_key (NULL: none), DEL the lease if worker holds it. Wire 1;
 * inside: SET, ZADD or ZREM, [HGET + HDEL per wait left,] [HGET + HSET,] GET [+ DEL]. */
int sk_store_park(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                  const void *snapshot, size_t snapshot_len, int64_t wake_at_ms,
                  const char *wait_key, size_t wait_key_len, const char *const *leave_keys,
                  const size_t *leave_lens, size_t nleave, const char *worker,
                  sk_store_callback cb, void *privdata);

/* Ends the instance and gives the lease back: DEL the snapshot, ZREM the timer, leave each of the
 * nleave (at most 4) waits, DEL the lease if worker holds it. Batched: per batch MGET (leases), DEL,
 * ZREM, HMGET + HDEL (waits); nothing per entry but when several wait on one key (SREM). */
int sk_store_finish(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                    const char *const *leave_keys, const size_t *leave_lens, size_t nleave,
                    const char *worker, sk_store_callback cb, void *privdata);

/* sk_store_due, and the time of the next timer in the same round trip: strs: the due instance keys
 * (at most max, earliest first); n: the time of the first timer not given (after now_ms, or at or
 * before it when more than max are due), -1 when none. The worker sleeps until then (or its idle
 * bound). One plain command: ZRANGEBYSCORE timers -inf +inf WITHSCORES LIMIT 0 max+1. */
int sk_store_due_next(sk_store *s, int64_t now_ms, uint32_t max, sk_store_callback cb,
                      void *privdata);

/* sk_store_check_or_wait that also gives the lease back when it records the suspension (not held).
 * snapshot and worker are required. Wire 1. */
int sk_store_check_or_park(sk_store *s, const sk_store_index *ix, const char *loop,
                           const char *subject, size_t subject_len, uint32_t min_rows,
                           uint32_t limit, const void *snapshot, size_t snapshot_len,
                           int64_t wake_at_ms, const char *worker, sk_store_callback cb,
                           void *privdata);

/* A condition checked once (CHECK): held, n := ZCARD capped at limit, str := the first row id;
 * writes nothing. Wire 1; inside: ZCARD + ZRANGE. */
int sk_store_peek(sk_store *s, const sk_store_index *ix, uint32_t min_rows, uint32_t limit,
                  sk_store_callback cb, void *privdata);

#endif
