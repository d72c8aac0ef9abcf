/* worker.h: `skene-vm run`'s engine: the loops of a module run over the product's Redis
 * (DESIGN.md, "The contract with the product's Redis" and "Execution").
 *
 * A worker joins the pieces of this folder on one event loop:
 *   - a change feed per table the loops use (feed.h): an insert starts the loops it triggers, once
 *     per (loop, subject) ever (sk_store_begin), updates the indexes of its table
 *     (sk_store_index_add) and wakes the instances those indexes or that event keep waiting;
 *   - the durable store (store.h): every instance lives in Redis. In memory are only the instances
 *     this worker is running now (taken with a lease: sk_store_claim), so memory does not grow with
 *     the instances waiting. Each suspension is recorded, and the lease given back, in one script;
 *   - the VM (vm.h) over an asynchronous runtime: rows, index counts, Redis commands and effects
 *     answer "not yet", the instance waits at that instruction, and runs again with the answer;
 *   - timers: one sorted set shared by all workers, polled when the earliest timer is due (and at
 *     least every `due_interval_ms` while idle, for the timers of other workers that died);
 *   - senders (sender.h) for emails and webhooks, with the instance's idempotency key.
 *
 * Crash safety, step by step:
 *   - a feed event is acknowledged only once everything it started is durable: the instances it
 *     began are in Redis (with a timer at the end of their lease), its rows are in the indexes, and
 *     the instances it woke from a WAITEV have recorded their next state;
 *   - while an instance runs, its timer points at the end of its lease, so if the worker dies it
 *     comes back through the timer set in another worker (or this one, restarted), from its last
 *     snapshot; it re-runs from there: conditions are checked again, and an effect sent again
 *     carries the same idempotency key, so it is delivered once;
 *   - an index waiter stays registered until its own check holds (store.h), so a wake-up lost in a
 *     crash is delivered again by the feed entry that was not acknowledged.
 *
 * Several workers share one Redis: one consumer group per stream, one timer set, one lease per
 * instance. Bytecode versions: the module is stored at code:{hash}; an instance whose snapshot
 * names another hash is run on that version, loaded from Redis.
 *
 * Everything runs on the thread of the event_base.
 */
#ifndef SKENE_RUNTIME_WORKER_H
#define SKENE_RUNTIME_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "redis.h"
#include "faults.h"
#include "sender.h"

struct event_base;

typedef struct sk_worker sk_worker;

typedef struct sk_worker_options {
  const char *url;                     /* the product's Redis (REDIS_URL) */
  const sk_redis_options *redis;       /* may be NULL */
  const char *prefix;                  /* Skene's keys; NULL: "skene:" */
  const char *worker_id;               /* required: unique per worker, stable across its restarts */
  double time_scale;                   /* the loops' clock runs this many times faster than the
                                          wall clock (tests and demos); 0 or 1: real time. Every
                                          worker on one Redis must use the same. */
  int64_t clock_anchor_ms;             /* under a time scale: the wall time (ms) the loops' clock
                                          is anchored at, the same for every worker on one Redis
                                          (run.c keeps it at skene:clock); 0: none */
  int lease_ms;                        /* how long a claimed instance is ours (wall ms); 30000 */
  int due_interval_ms;                 /* longest wait between two looks at the timer set while
                                          idle (wall ms); 120000 */
  int block_ms;                        /* stream feeds: BLOCK of a read; 60000 times the number
                                          of stream tables, 120000 at least */
  int claim_idle_ms, claim_interval_ms; /* stream feeds: reclaiming a dead worker's entries;
                                          60000, and 5 times claim_idle_ms (times half the
                                          number of stream tables past two) */
  int scan_interval_ms;                /* scan and keyspace feeds; feed.h's defaults */
  int backfill;                        /* --backfill: rows of keyspace/scan tables that exist at
                                          the first start trigger loops too */
  sk_sender *email;                    /* borrowed; required when a loop sends email */
  sk_sender *webhook;                  /* borrowed; required when a loop calls a webhook */
  FILE *log;                           /* JSON lines; NULL: stdout */
  uint64_t seed;                       /* retry jitter; 0: from the clock */
  sk_faults *faults;                   /* scripted provider faults (tests), consumed as the
                                          simulator does; borrowed; NULL: none */
} sk_worker_options;

/* Creates a worker for the verified module image skb (copied). Nothing is sent before
 * sk_worker_start. NULL with a message in err for a bad image or bad options. */
sk_worker *sk_worker_new(struct event_base *base, const uint8_t *skb, size_t skb_len,
                         const sk_worker_options *o, char *err, size_t errlen);

/* Starts work: stores the module at code:{hash}, backfills the indexes on the first start, opens
 * the feeds, and looks at the timer set. 0, or -1 with a message in err. */
int sk_worker_start(sk_worker *w, char *err, size_t errlen);

/* Stops taking work (feeds closed: their unacknowledged entries stay pending for the next start)
 * and calls done once every instance in memory has recorded its state and every send answered. */
void sk_worker_drain(sk_worker *w, void (*done)(void *ud), void *ud);

/* Writes one log line as the worker writes its own: {"ts":...,"level":level,"worker":id,
 * "event":event then the members fmt formats (",\"k\":v..." JSON, already escaped), "}". */
void sk_worker_log(sk_worker *w, const char *level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Instances running in memory now. */
size_t sk_worker_active(const sk_worker *w);

typedef struct sk_worker_stats {
  uint64_t events, started, claimed, ended, parked, failed;
  uint64_t commands;   /* commands the worker itself asked for (each store script is one) */
  uint64_t wire;       /* commands written to Redis on all its connections (feeds' reads and
                          acknowledgements, retries and AUTH included): what Upstash bills. The
                          senders' connection (rate limit, recorded batches) is run.c's: its
                          worker.stats lines add it */
} sk_worker_stats;
void sk_worker_get_stats(const sk_worker *w, sk_worker_stats *out);

/* Frees the worker; anything in flight is abandoned (Redis keeps it durable). NULL is fine. */
void sk_worker_free(sk_worker *w);

#endif
