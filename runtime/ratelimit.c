/* ratelimit.c: the token bucket of a provider (ratelimit.h), local or shared through one Lua
 * script on Redis.
 *
 * A take is served by one timer: it fires at once for a first try, then whenever the bucket says
 * the next token will be there. A shared try sends the script (EVALSHA, then EVAL after NOSCRIPT);
 * its reply holds {tokens taken, ms until the next token}. The Redis call's privdata is a small op
 * that outlives the bucket when the bucket is freed first (sk_redis has no cancel).
 */
#define _POSIX_C_SOURCE 200809L

#include "ratelimit.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/sha.h>

#include "keys.h"

/* KEYS[1] the bucket: a hash whose field `tat` is the theoretical arrival time (GCRA, ms of the
   server's TIME) of the next request; ARGV rate (requests/s), burst, want, pause_ms (0 none), cap
   (-1 none: else the requests the provider said are left now).
   Takes k = min(want, burst) tokens and reserves for them the earliest time t at which k requests
   sent together keep to the rate; returns {k, ms from now until t}. Reservations are handed out in
   the order the calls reach Redis, so workers with a backlog take turns and no call comes back
   empty. The key expires a minute after the last reservation: an idle bucket is a full one. */
const char sk_bucket_script[] =
    "local t=redis.call('TIME') local now=t[1]*1000+t[2]/1000 "
    "local iv=1000/tonumber(ARGV[1]) local b=tonumber(ARGV[2]) "
    "local tat=tonumber(redis.call('HGET',KEYS[1],'tat')) or now "
    "local p=tonumber(ARGV[4]) if p>0 then tat=math.max(tat,now+p+(b-1)*iv) end "
    "local c=tonumber(ARGV[5]) if c>=0 then tat=math.max(tat,now+(b-c)*iv) end "
    "local k=math.min(tonumber(ARGV[3]),b) "
    "local at=math.max(now,tat+(k-b)*iv) "
    "tat=math.max(tat,at)+k*iv "
    "redis.call('HSET',KEYS[1],'tat',tat) "
    "redis.call('PEXPIRE',KEYS[1],math.ceil(tat-now)+60000) "
    "return {k,math.ceil(at-now)}";

/* Requests go at this fraction of the rate: a provider counting in fixed one-second windows (Resend)
   must never see rate + 1 requests in one, and a send that leaves late (its batch recorded first)
   shortens the gap to the next. 10% of margin absorbs that. */
#define PACE 0.9

enum { OP_ARGC = 9 }; /* EVALSHA sha 1 key rate burst want pause cap */

typedef struct op {
  sk_bucket *b; /* NULL once the bucket is freed */
  int fell_back;
  const char *argv[OP_ARGC];
  size_t lens[OP_ARGC];
  char buf[5][32];
} op;

struct sk_bucket {
  struct event_base *base;
  struct event *timer;
  double rate_opt, rate;
  unsigned burst;
  /* the local bucket */
  double tokens;
  int64_t ts_ms, paused_until_ms;
  /* the shared one */
  sk_redis *redis;
  char *key;
  char sha[41];
  op *op;                /* the Redis call in flight */
  unsigned reserved;      /* tokens reserved in Redis, handed over when the timer fires */
  int64_t send_pause_ms; /* to pass on with the next shared take */
  long send_cap;         /* ditto, -1 none */
  uint64_t commands;
  char err[256];
  /* the ask */
  int asking;
  unsigned want;
  sk_bucket_grant_fn grant;
  void *privdata;
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void arm(sk_bucket *b, int64_t ms) {
  if (ms < 0)
    ms = 0;
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
  evtimer_add(b->timer, &tv);
}

/* Hands n tokens to the asker; the callback may free b. */
static void deliver(sk_bucket *b, unsigned n) {
  sk_bucket_grant_fn fn = b->grant;
  void *pd = b->privdata;
  assert(n >= 1 && n <= b->want);
  b->asking = 0;
  b->grant = NULL;
  fn(n, pd);
}

static void refill(sk_bucket *b, int64_t now) {
  if (now > b->ts_ms) {
    b->tokens += (double)(now - b->ts_ms) * b->rate * PACE / 1000.0;
    if (b->tokens > b->burst)
      b->tokens = b->burst;
    b->ts_ms = now;
  }
}

/* One try on the local bucket: deliver, or arm the timer for when a token will be there. */
static void try_local(sk_bucket *b) {
  int64_t now = now_ms();
  refill(b, now);
  if (now < b->paused_until_ms) {
    arm(b, b->paused_until_ms - now);
    return;
  }
  if (b->tokens >= 1.0) {
    unsigned n = (unsigned)floor(b->tokens);
    if (n > b->want)
      n = b->want;
    b->tokens -= n;
    deliver(b, n);
    return;
  }
  arm(b, (int64_t)ceil((1.0 - b->tokens) * 1000.0 / (b->rate * PACE)));
}

static void on_reply(sk_redis *r, const sk_redis_result *res, void *privdata);

/* One try on the shared bucket; the local one when Redis is not there. */
static void try_shared(sk_bucket *b) {
  if (!sk_redis_is_ready(b->redis)) {
    snprintf(b->err, sizeof b->err, "rate limit: Redis is not connected%s%s",
             sk_redis_errstr(b->redis)[0] ? ": " : "", sk_redis_errstr(b->redis));
    try_local(b);
    return;
  }
  op *o = calloc(1, sizeof *o);
  if (o == NULL) {
    try_local(b);
    return;
  }
  o->b = b;
  snprintf(o->buf[0], sizeof o->buf[0], "%.6f", b->rate * PACE);
  snprintf(o->buf[1], sizeof o->buf[1], "%u", b->burst);
  snprintf(o->buf[2], sizeof o->buf[2], "%u", b->want);
  snprintf(o->buf[3], sizeof o->buf[3], "%lld", (long long)b->send_pause_ms);
  snprintf(o->buf[4], sizeof o->buf[4], "%ld", b->send_cap);
  o->argv[0] = "EVALSHA";
  o->argv[1] = b->sha;
  o->argv[2] = "1";
  o->argv[3] = b->key;
  for (int i = 0; i < 5; i++)
    o->argv[4 + i] = o->buf[i];
  for (int i = 0; i < OP_ARGC; i++)
    o->lens[i] = strlen(o->argv[i]);
  b->commands++;
  if (sk_redis_command(b->redis, OP_ARGC, o->argv, o->lens, on_reply, o) != 0) {
    snprintf(b->err, sizeof b->err, "rate limit: %s", sk_redis_errstr(b->redis));
    free(o);
    try_local(b);
    return;
  }
  b->op = o;
  b->send_pause_ms = 0; /* passed on */
  b->send_cap = -1;
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  sk_bucket *b = arg;
  (void)fd;
  (void)what;
  if (!b->asking) {
    b->reserved = 0; /* a reservation nobody wants any more: used late, it could break the burst */
    return;
  }
  if (b->op != NULL)
    return;
  if (b->reserved > 0) { /* a reservation's time has come */
    unsigned n = b->reserved < b->want ? b->reserved : b->want;
    b->reserved = 0;
    deliver(b, n);
    return;
  }
  if (b->redis != NULL)
    try_shared(b);
  else
    try_local(b);
}

static void on_reply(sk_redis *r, const sk_redis_result *res, void *privdata) {
  op *o = privdata;
  sk_bucket *b = o->b;
  const redisReply *x = res->reply;
  if (b == NULL) { /* the bucket was freed */
    free(o);
    return;
  }
  if (res->status == SK_REDIS_OK && x->type == REDIS_REPLY_ERROR && !o->fell_back &&
      strncmp(x->str, "NOSCRIPT", 8) == 0) {
    /* The server does not know the script (restarted, SCRIPT FLUSH): send its text, once. */
    o->fell_back = 1;
    o->argv[0] = "EVAL";
    o->lens[0] = 4;
    o->argv[1] = sk_bucket_script;
    o->lens[1] = strlen(sk_bucket_script);
    b->commands++;
    if (sk_redis_command(r, OP_ARGC, o->argv, o->lens, on_reply, o) == 0)
      return;
  }
  b->op = NULL;
  if (res->status == SK_REDIS_OK && x->type == REDIS_REPLY_ARRAY && x->elements == 2 &&
      x->element[0]->type == REDIS_REPLY_INTEGER && x->element[1]->type == REDIS_REPLY_INTEGER) {
    long long got = x->element[0]->integer, wait = x->element[1]->integer;
    free(o);
    if (!b->asking || got <= 0)
      return; /* cancelled meanwhile: the reservation is lost, which only slows things down */
    unsigned n = got > (long long)b->want ? b->want : (unsigned)got;
    if (wait > 0) {
      b->reserved = n;
      arm(b, wait);
      return;
    }
    deliver(b, n);
    return;
  }
  if (res->status != SK_REDIS_OK)
    snprintf(b->err, sizeof b->err, "rate limit: %s", res->errstr);
  else if (x->type == REDIS_REPLY_ERROR)
    snprintf(b->err, sizeof b->err, "rate limit: %.*s", (int)x->len, x->str);
  else
    snprintf(b->err, sizeof b->err, "rate limit: unexpected reply (type %d)", x->type);
  free(o);
  if (b->asking)
    try_local(b);
}

sk_bucket *sk_bucket_new(struct event_base *base, const char *provider, double rate, unsigned burst,
                         sk_redis *redis, const char *prefix) {
  static const char hex[] = "0123456789abcdef";
  static const char *const patterns[] = {
#define SK_KEY_PATTERN(name, pattern, type, doc) pattern,
      SK_KEYS(SK_KEY_PATTERN)
#undef SK_KEY_PATTERN
  };
  if (!(rate > 0) || !isfinite(rate) || burst < 1 || provider == NULL || provider[0] == '\0')
    return NULL;
  sk_bucket *b = calloc(1, sizeof *b);
  if (b == NULL)
    return NULL;
  b->base = base;
  b->rate_opt = b->rate = rate;
  b->burst = burst;
  b->tokens = burst;
  b->ts_ms = now_ms();
  b->redis = redis;
  b->send_cap = -1;
  b->timer = evtimer_new(base, on_timer, b);
  if (b->timer == NULL)
    goto fail;
  if (redis != NULL) {
    /* prefix + "ratelimit:{provider}" with the placeholder filled */
    const char *pat = patterns[SK_KEY_RATELIMIT], *brace = strchr(pat, '{');
    const char *close = brace != NULL ? strchr(brace, '}') : NULL;
    if (prefix == NULL)
      prefix = SK_KEY_PREFIX_DEFAULT;
    assert(close != NULL);
    size_t n = strlen(prefix) + (size_t)(brace - pat) + strlen(provider) + strlen(close + 1) + 1;
    b->key = malloc(n);
    if (b->key == NULL)
      goto fail;
    snprintf(b->key, n, "%s%.*s%s%s", prefix, (int)(brace - pat), pat, provider, close + 1);
    unsigned char d[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)sk_bucket_script, strlen(sk_bucket_script), d);
    for (int j = 0; j < SHA_DIGEST_LENGTH; j++) {
      b->sha[2 * j] = hex[d[j] >> 4];
      b->sha[2 * j + 1] = hex[d[j] & 15];
    }
    b->sha[40] = '\0';
  }
  return b;
fail:
  sk_bucket_free(b);
  return NULL;
}

void sk_bucket_free(sk_bucket *b) {
  if (b == NULL)
    return;
  if (b->op != NULL)
    b->op->b = NULL; /* its reply frees it */
  if (b->timer != NULL)
    event_free(b->timer);
  free(b->key);
  free(b);
}

int sk_bucket_take(sk_bucket *b, unsigned want, sk_bucket_grant_fn grant, void *privdata) {
  if (b->asking || want == 0 || grant == NULL)
    return -1;
  b->asking = 1;
  b->want = want;
  b->grant = grant;
  b->privdata = privdata;
  if (b->op == NULL && !evtimer_pending(b->timer, NULL))
    arm(b, 0);
  /* else: a cancelled ask's Redis call or reservation is still there and serves this one */
  return 0;
}

void sk_bucket_cancel(sk_bucket *b) {
  b->asking = 0;
  b->grant = NULL;
  if (b->reserved == 0)
    evtimer_del(b->timer); /* a reservation stays, for the next ask */
}

int sk_bucket_pending(const sk_bucket *b) { return b->asking; }

void sk_bucket_observe(sk_bucket *b, long limit, long remaining, int64_t reset_ms,
                       int64_t retry_after_ms) {
  int64_t pause = retry_after_ms > 0 ? retry_after_ms : 0;
  if (limit > 0)
    b->rate = (double)limit < b->rate_opt ? (double)limit : b->rate_opt;
  if (remaining >= 0) {
    if (b->tokens > (double)remaining)
      b->tokens = (double)remaining;
    if (b->send_cap < 0 || remaining < b->send_cap)
      b->send_cap = remaining;
    /* Nothing left in the provider's window: wait for its reset, however short. */
    if (remaining == 0 && reset_ms > pause)
      pause = reset_ms;
  }
  if (pause > 0) {
    int64_t until = now_ms() + pause;
    if (until > b->paused_until_ms)
      b->paused_until_ms = until;
    b->tokens = 0;
    if (pause > b->send_pause_ms)
      b->send_pause_ms = pause;
    /* A waiting ask armed for an earlier time finds the pause when its timer fires. */
  }
}

double sk_bucket_rate(const sk_bucket *b) { return b->rate; }

uint64_t sk_bucket_redis_commands(const sk_bucket *b) { return b->commands; }

const char *sk_bucket_errstr(const sk_bucket *b) { return b->err; }
