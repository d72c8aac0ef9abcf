/* feed.h: change feeds, how skene-vm learns that a row of a table was inserted or updated
 * (DESIGN.md, "The contract with the product's Redis").
 *
 * One sk_feed watches one table, in one of these ways (tables.T.feed):
 *   stream  (default, at-least-once): the app writes `XADD skene:T * id <id> [op insert|update]` in
 *           the MULTI of its HSET. The feed reads it with the consumer group SK_FEED_GROUP on a
 *           connection of its own (blocking reads), re-reads its own pending entries first after a
 *           restart, claims the entries of dead consumers, and keeps its unacknowledged entries
 *           under a bound (Upstash refuses XREADGROUP at 1,000).
 *   scan    (small tables): a periodic SCAN of the row keys; an id not yet in the SEEN set is an
 *           insert. On the first start (see below) existing rows are recorded, not reported,
 *           unless `backfill` asks for them.
 *   keyspace (no change to the app): the feed merges the flags it needs into notify-keyspace-events
 *           (K, n for new keys, and h or $ for writes when `updates` is on; the product's own flags
 *           stay), subscribes to the row keys' notifications on a connection of its own, and treats
 *           a new key not in SEEN as an insert and a write to a seen row as an update.
 * Notifications are fire-and-forget, so it also runs the scan feed's passes: at start, after every
 *           reconnection of its subscriber, and every scan_interval_ms. An update to a row whose
 *           insert is not yet acknowledged is not reported (the insert's work reads the row).
 *
 * Every event, whatever the kind, goes to one callback, on_event(feed, table, op, row id, entry id
 * or NULL). The caller says when the work an event started is durable, and only then is the event
 * forgotten: sk_feed_ack (stream: XACK) or sk_feed_ack_row (scan: SADD to SEEN). An event not
 * acknowledged comes again (after a restart, or from another worker): at-least-once, so whoever
 * consumes events must be idempotent (one instance per (loop, subject)).
 *
 * The SEEN set (keys.h) also holds one member that is not an id, the empty string: written once a
 * first full pass over the table has recorded it, so that "first start" means "no pass ever
 * finished", not "the set is empty" (a table empty at first start is not first-started again).
 *
 * The first start (scan, keyspace): rows found by the first pass ever are recorded, not reported.
 * Everything runs on the thread of the event_base. Commands other than the blocking read go to the
 * caller's connection, batched: an idle stream feed costs one XREADGROUP per block_ms and one
 * XAUTOCLAIM per claim_interval_ms; a scan pass costs one SCAN per scan_count keys of the whole
 * database, plus one SMISMEMBER per SCAN reply that found rows; a keyspace feed costs a pass per
 * scan_interval_ms, one SMISMEMBER per loop iteration that got notifications, and CONFIG GET (and
 * SET when flags are missing) plus a pass per (re)connection of its subscriber.
 */
#ifndef SKENE_RUNTIME_FEED_H
#define SKENE_RUNTIME_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "redis.h"

struct event_base;

typedef struct sk_feed sk_feed;

typedef enum sk_feed_kind { SK_FEED_STREAM = 0, SK_FEED_SCAN, SK_FEED_KEYSPACE } sk_feed_kind;
typedef enum sk_feed_op { SK_FEED_INSERT = 0, SK_FEED_UPDATE } sk_feed_op;

/* A row changed. table, row_id and entry_id are borrowed, valid until the callback returns;
 * entry_id is the stream entry's id ("1700000000000-0") for a stream feed, else NULL. The callback
 * may call sk_feed_ack, sk_feed_ack_row and sk_feed_free. */
typedef void (*sk_feed_event_fn)(sk_feed *feed, const char *table, sk_feed_op op,
                                 const char *row_id, const char *entry_id, void *privdata);

/* Something went wrong that the feed cannot fix alone but works around: a malformed stream entry
 * (entry_id set; it was acknowledged, so it never blocks the feed), or a failed command (entry_id
 * NULL; the feed retries after retry_ms). message is borrowed, e.g. "stream entry 1-0 of
 * skene:users has no 'id' field". The callback may call sk_feed_free. */
typedef void (*sk_feed_error_fn)(sk_feed *feed, const char *entry_id, const char *message,
                                 void *privdata);

/* Filled by the caller after sk_feed_options_init; strings are copied by sk_feed_new. Durations in
 * milliseconds; 0 (or NULL) takes the default. */
typedef struct sk_feed_options {
  sk_feed_kind kind;
  const char *table;     /* required: "users" */
  const char *prefix;    /* Skene's key prefix; default SK_KEY_PREFIX_DEFAULT */
  const char *key;       /* scan, keyspace: the row key pattern with one {id}, default
                            "<table>:{id}" */
  const char *row_type;  /* scan, keyspace: the rows' Redis type, "hash" (default) or "string"
                            (format json); keys of another type are not rows (SCAN ... TYPE) */
  const char *consumer;  /* stream: required, unique per worker and stable across its restarts */
  int batch;             /* stream: most entries per XREADGROUP / XAUTOCLAIM; default 100 */
  int block_ms;          /* stream: BLOCK of a read; default 30000 */
  int max_pending;       /* stream: most entries delivered and not yet acknowledged; default 500 */
  int claim_min_idle_ms; /* stream: claim entries idle this long; default 60000 */
  int claim_interval_ms; /* stream: how often to look for them; default 120000 */
  int scan_interval_ms;  /* scan, keyspace: from the end of one pass to the next; default 60000,
                            keyspace 600000 */
  int scan_count;        /* scan, keyspace: COUNT of each SCAN; default 1000 */
  int backfill;          /* scan, keyspace: 1: at first start, existing rows are inserts too */
  int updates;           /* keyspace: 1: report writes to seen rows as updates */
  int retry_ms;          /* after a failed command; default 1000 */
  sk_feed_event_fn on_event; /* required */
  sk_feed_error_fn on_error; /* may be NULL */
  void *privdata;
} sk_feed_options;

#define SK_FEED_DEFAULT_MAX_PENDING 500

/* Fills o with zeros (the defaults above) and kind SK_FEED_STREAM. */
void sk_feed_options_init(sk_feed_options *o);

/* Creates a feed on base. conn is the caller's connection for short commands (XACK, XAUTOCLAIM,
 * SCAN, SMISMEMBER, SADD, CONFIG); it must outlive the feed. A stream feed (blocking reads) and a
 * keyspace feed (subscriber) open a connection of their own to url with redis_options (may be
 * NULL); a scan feed ignores both (url may be NULL). Nothing is sent and nothing called back
 * before the loop runs. Returns NULL with a message in err (at most errlen bytes) for bad options
 * (a missing table, consumer, URL or callback, a bad URL, a key pattern without exactly one {id})
 * or when out of memory. The caller owns the feed: sk_feed_free. */
sk_feed *sk_feed_new(struct event_base *base, sk_redis *conn, const char *url,
                     const sk_redis_options *redis_options, const sk_feed_options *o, char *err,
                     size_t errlen);

/* Stops the feed and frees it; entries delivered and not acknowledged stay pending in Redis (a new
 * feed with the same consumer gets them again first). Acknowledgements not yet sent are dropped
 * likewise. Commands in flight on conn are called back later and ignored. May be called from a
 * callback: the free then happens when the feed's code unwinds. NULL is fine. */
void sk_feed_free(sk_feed *feed);

/* Stream: the work of entry_id is durable; acknowledge it. XACKs of one loop iteration go out as
 * one command; the entry stops counting against max_pending once Redis confirmed it. A failed XACK
 * is retried. Returns 0, or -1 (nothing done) when entry_id is not a stream id or the feed is not a
 * stream feed. Cost: O(1) plus the batched command. */
int sk_feed_ack(sk_feed *feed, const char *entry_id);

/* Scan, keyspace: the work of row_id's insert is durable; record the id in SEEN (SADD, batched like
 * sk_feed_ack). Until then the id is not reported again by this feed. Returns 0, or -1 when the
 * feed is a stream feed or row_id is empty. */
int sk_feed_ack_row(sk_feed *feed, const char *row_id);

/* Stream: entries delivered (or claimed) and not yet acknowledged by Redis. Scan, keyspace:
 * inserts delivered and not yet recorded in SEEN. */
size_t sk_feed_outstanding(const sk_feed *feed);

/* Scan, keyspace: full passes finished since sk_feed_new (for tests and metrics). */
unsigned sk_feed_passes(const sk_feed *feed);

/* Stream: look for dead consumers' entries within delay_ms (sooner than the claim interval), e.g.
 * once the caller has seen a worker die. Nothing for other feeds, or when a claim is in flight. */
void sk_feed_claim_soon(sk_feed *feed, int delay_ms);

/* Commands written on the feed's own connection (blocking reads, subscriptions, AUTH): with
 * sk_redis_commands_sent of the caller's connection, what the feed costs on the wire. */
uint64_t sk_feed_commands_sent(const sk_feed *feed);

#endif
