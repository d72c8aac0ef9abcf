/*
 * keys.h: every key Skene reads or writes in the product's Redis, in one place (DESIGN.md: "All of
 * Skene's own keys live under one prefix, listed in one place in the code").
 *
 * The product's own keys are read only: its rows (`tables.T.key`, e.g. `users:{id}`) and, for a
 * `stream` feed, the stream it writes for Skene. Everything else is Skene's, under the prefix
 * (default "skene:", SKENE_REDIS_PREFIX to change it). Curly braces in the patterns below are
 * placeholders, not Redis Cluster hash tags. A server-side script names every key it touches in KEYS.
 *
 * SK_KEYS(X): X(NAME, pattern after the prefix, Redis type, what it holds)
 */
#ifndef SK_KEYS_H
#define SK_KEYS_H

#include <stddef.h>

#define SK_KEY_PREFIX_DEFAULT "skene:"

/* The consumer group Skene reads every stream feed with (one group: workers share the work). */
#define SK_FEED_GROUP "skene"

#define SK_KEYS(X) \
  X(FEED,    "{table}",              "stream", "the change feed the app writes: XADD skene:users * id <id> [op insert|update]") \
  X(SEEN,    "seen:{table}",         "set",    "ids of a keyspace or scan table seen so far (first sight triggers, later ones do not); "   \
                                               "the empty string marks a first full pass done") \
  X(INDEX,   "idx:{shape}:{values}", "zset",   "rows under one query shape and values: member row id, score insertion order; ZCARD counts") \
  X(STARTED, "started:{loop}",       "set",    "subjects a loop was ever started for: one instance per (loop, subject), ever") \
  X(INST,    "inst:{loop}:{subject}", "string", "an instance's snapshot (vm/snapshot.c), written at every suspension") \
  X(TIMERS,  "timers",               "zset",   "instances with a deadline or a retry: member inst key, score wake time (ms)") \
  X(WAIT,    "wait:{key}",           "hash/set", "instances waiting on a wake-up key {group}:{rest} (idx:{shape}:{values}, or ev:{table}:{kind}:{subject}): " \
                                               "the hash wait:{group} maps {rest} to the one waiting instance's key, or to \"*\" when several wait, and then " \
                                               "they are the set wait:{group}:{rest}; store.c's scripts keep the two together") \
  X(EVBOX,   "evbox:{loop}:{event}", "zset",   "a later step's events (table:kind:subject) a loop has not consumed yet: member row id, score event time; " \
                                               "a WAITEV takes the oldest instead of waiting, so an event that came first is not lost; expires after 7 days") \
  X(LEASE,   "lease:{loop}:{subject}", "string", "the worker running an instance now (SET NX PX): one worker at a time") \
  X(CODE,    "code:{hash}",          "string", "a .skb by its xxh3: an instance finishes on the bytecode it started with") \
  X(DLQ,     "dlq",                  "stream", "dead letters: loop, subject, step, reason; re-driven by skene-vm dlq retry") \
  X(CLOCK,   "clock",                "string", "under skene-vm run --time-scale: the wall time (ms) the loops' clock is anchored at, set by the first worker") \
  X(BACKFILL, "backfill:{table}",    "string", "set once the rows a table had at the first start are in its indexes") \
  X(BATCH,   "batch:{key}",          "hash",   "a Resend batch recorded before it is sent: members (idempotency keys, one per line) and body (the exact request); "  \
                                               "kept 24 hours, so a worker restarted after a crash sends the same batch under the same key") \
  X(BATCHES, "batches",              "zset",   "the recorded batches: member batch key, score the time it was recorded (ms)") \
  X(RATELIMIT, "ratelimit:{provider}", "hash",  "a provider's shared rate limit: field tat, the next request's slot (GCRA, ms of the server's TIME), changed only by " \
                                               "the script of runtime/ratelimit.c; expires a minute after its last use")

typedef enum {
#define SK_KEY_ENUM(name, pattern, type, doc) SK_KEY_##name,
  SK_KEYS(SK_KEY_ENUM)
#undef SK_KEY_ENUM
  SK_KEY_COUNT
} sk_key_kind;

#endif
