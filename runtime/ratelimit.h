/* ratelimit.h: the token bucket of one provider's rate limit (DESIGN.md, "Execution": providers'
 * rate limits are respected by a token bucket, not by hitting 429s).
 *
 * A bucket holds up to `burst` tokens and gains `rate` tokens a second; one HTTP request costs one
 * token (a batch of 100 emails is one request). The sender asks for the tokens its queue needs
 * (sk_bucket_take) and gets at least one back later, from the loop, when they are there: waiting is
 * one evtimer, never a busy loop.
 *
 * Two kinds, one interface:
 *   local   this process only: tokens and the time of the last refill, no I/O.
 *   shared  every worker on the same Redis: one hash, `<prefix>ratelimit:<provider>` (keys.h,
 *           RATELIMIT), changed only by a short Lua script on the server's TIME (the workers'
 *           clocks never matter). It keeps the same bucket in GCRA form (one timestamp: when the
 *           next request may go) and hands out reservations: a call takes up to `burst` tokens
 *           and learns when it may use them, in the order the calls reach Redis, so workers with
 *           a backlog take turns and no call comes back empty.
 *           Cost: exactly one EVALSHA per sk_bucket_take (one EVAL more after a NOSCRIPT),
 *           whatever it asks for; none while idle. A sender asks at most once per request it
 *           sends, and a request is up to 100 emails under load: one command per email at worst
 *           (emails one at a time), one per 100 at best. When Redis answers with an error or the
 *           connection is down, that round is served by the local bucket (slower to agree, never
 *           stuck), and the error is kept for sk_bucket_errstr.
 *
 * What providers say in their responses adjusts the bucket (sk_bucket_observe): a lower
 * `ratelimit-limit` (read as requests a second: Resend's window is one second) lowers the rate
 * (the option is a ceiling, never raised by the provider), `ratelimit-remaining` caps the
 * tokens, and a `retry-after` (or `ratelimit-remaining: 0` with a reset longer than a second)
 * pauses every taker until then; the shared bucket passes these on to the other workers with the
 * next take.
 *
 * Everything runs on the thread of the event_base.
 */
#ifndef SKENE_RUNTIME_RATELIMIT_H
#define SKENE_RUNTIME_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "redis.h"

struct event_base;

typedef struct sk_bucket sk_bucket;

/* Tokens granted: n >= 1, at most what was asked. Called from the loop. */
typedef void (*sk_bucket_grant_fn)(unsigned n, void *privdata);

/* A bucket for `provider` ("resend": names the Redis key) of rate tokens a second (> 0) and burst
 * tokens (>= 1). redis (borrowed; NULL: local) shares it; prefix is Skene's key prefix (NULL:
 * SK_KEY_PREFIX_DEFAULT). NULL when out of memory or given a bad rate, burst or provider. */
sk_bucket *sk_bucket_new(struct event_base *base, const char *provider, double rate, unsigned burst,
                         sk_redis *redis, const char *prefix);
/* Frees b; a pending grant is dropped. NULL is fine. */
void sk_bucket_free(sk_bucket *b);

/* Asks for up to want (>= 1) tokens; grant is called once with 1..want of them, from the loop
 * (also when they are there now). One ask at a time: -1 when one is pending. */
int sk_bucket_take(sk_bucket *b, unsigned want, sk_bucket_grant_fn grant, void *privdata);
/* Drops the pending ask (its grant is never called). */
void sk_bucket_cancel(sk_bucket *b);
int sk_bucket_pending(const sk_bucket *b);

/* What a response said: limit (requests per second, < 0 unknown), remaining (< 0 unknown),
 * reset_ms (until the window resets, < 0 unknown), retry_after_ms (a pause asked for, 0 none). */
void sk_bucket_observe(sk_bucket *b, long limit, long remaining, int64_t reset_ms,
                       int64_t retry_after_ms);

/* The rate in force (the option, or less when the provider said so). */
double sk_bucket_rate(const sk_bucket *b);
/* Commands sent to Redis by this bucket (EVALSHA and EVAL): for tests and the cost figures. */
uint64_t sk_bucket_redis_commands(const sk_bucket *b);
/* The last Redis failure that made a round fall back to the local bucket, or "". */
const char *sk_bucket_errstr(const sk_bucket *b);

/* The shared bucket's script (KEYS[1] bucket; ARGV rate, burst, want, pause_ms, cap; returns
 * {tokens, ms until they may be used}). */
extern const char sk_bucket_script[];

#endif
