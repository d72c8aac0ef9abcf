/* run.c: `skene-vm run FILE.skb`, the production runtime (worker.h) with its configuration from the
 * environment, its start-up checks, its signals and its JSON-line logs.
 *
 * Start-up refuses to work, with one message per problem on stderr and exit 1, when: no Redis URL,
 * a bad one, Redis unreachable, TLS or credentials refused; an email with no `from` and no
 * SKENE_EMAIL_FROM; the outbox folder not writable; an action this build cannot perform;
 * SKENE_HTTP_CA (the CA(s) the HTTP senders trust instead of the system store) unreadable or
 * without a PEM certificate, when an HTTP sender (resend, webhook) is used.
 * SIGTERM or SIGINT: stop taking work, let what runs record its state, exit 0. A second signal:
 * exit at once with status 3; nothing is lost (every state an instance relies on is in Redis, and
 * a feed entry is acknowledged only after the work it started is durable).
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* strsep */

#include "run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "http.h"
#include "keys.h"
#include "redis.h"
#include "resend.h"
#include "sender.h"
#include "store.h"
#include "simulate.h"
#include "worker.h"

#define RUN_EXIT_CONFIG 1
#define RUN_EXIT_USAGE 2
#define RUN_EXIT_SIGNAL 3

typedef struct runctx {
  struct event_base *base;
  sk_worker *w;
  int signals;
  int drained;
  sk_sender *email;
  const char *worker_id;
  sk_redis *side; /* the senders' connection, counted with the worker's */
} runctx;

/* The worker's counters as one log line (at the end, and on SIGUSR1 for benchmarks). */
static void log_stats(runctx *c, const char *event) {
  sk_worker_stats s;
  sk_worker_get_stats(c->w, &s);
  sk_worker_log(c->w, "info", event,
                ",\"events\":%llu,\"started\":%llu,\"claimed\":%llu,\"ended\":%llu,\"parked\":%llu,"
                "\"failed\":%llu,\"commands\":%llu,\"wire_commands\":%llu,\"active\":%zu,\"outbox_duplicates\":%zu",
                (unsigned long long)s.events, (unsigned long long)s.started, (unsigned long long)s.claimed,
                (unsigned long long)s.ended, (unsigned long long)s.parked, (unsigned long long)s.failed,
                (unsigned long long)s.commands,
                (unsigned long long)(s.wire + (c->side ? sk_redis_commands_sent(c->side) : 0)), sk_worker_active(c->w),
                c->email && strcmp(c->email->ops->name, "outbox") == 0 ? sk_outbox_duplicates(c->email) : 0);
}

static void on_usr1(evutil_socket_t sig, short what, void *arg) {
  (void)sig;
  (void)what;
  log_stats(arg, "worker.stats");
}

static void on_drained(void *ud) {
  runctx *c = ud;
  c->drained = 1;
  event_base_loopexit(c->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)what;
  runctx *c = arg;
  if (++c->signals == 1) {
    sk_worker_log(c->w, "info", "worker.drain", ",\"signal\":\"%s\",\"active\":%zu",
                  sig == SIGTERM ? "SIGTERM" : "SIGINT", sk_worker_active(c->w));
    sk_worker_drain(c->w, on_drained, c);
    return;
  }
  sk_worker_log(c->w, "warn", "worker.exit",
                ",\"signal\":\"%s\",\"message\":\"second signal: exiting at once; the instances in memory "
                "resume from Redis\"",
                sig == SIGTERM ? "SIGTERM" : "SIGINT");
  _exit(RUN_EXIT_SIGNAL);
}

static int read_file(const char *path, uint8_t **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  uint8_t *p = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 65536;
      if (cap > (256u << 20)) {
        errno = EFBIG;
        break;
      }
      uint8_t *q = realloc(p, cap);
      if (!q) break;
      p = q;
    }
    size_t r = fread(p + n, 1, cap - n, f);
    n += r;
    if (r == 0) {
      if (ferror(f)) break;
      fclose(f);
      *out = p;
      *len = n;
      return 0;
    }
  }
  int e = errno;
  fclose(f);
  free(p);
  errno = e ? e : ENOMEM;
  return -1;
}

static int parse_pos(const char *opt, const char *v, double *out) {
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (errno || end == v || *end || !(d > 0) || d > 1e6) {
    fprintf(stderr, "skene-vm: run: %s needs a positive number, not '%s'\n", opt, v);
    return -1;
  }
  *out = d;
  return 0;
}

/* SKENE_HTTP_CA: a file that can be read and holds at least one PEM certificate (what curl needs
   of CURLOPT_CAINFO; other PEM blocks are skipped). 0, or -1 with why in err. */
static int check_http_ca(const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "cannot load the CA file '%s' (SKENE_HTTP_CA): %s", path, strerror(errno));
    return -1;
  }
  int certs = 0;
  X509 *x;
  errno = 0;
  while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
    X509_free(x);
    certs++;
  }
  int e = ferror(f) ? (errno ? errno : EIO) : 0;
  ERR_clear_error(); /* the end of the file is an error for OpenSSL */
  fclose(f);
  if (e) {
    snprintf(err, errlen, "cannot load the CA file '%s' (SKENE_HTTP_CA): %s", path, strerror(e));
    return -1;
  }
  if (certs == 0) {
    snprintf(err, errlen, "cannot load the CA file '%s' (SKENE_HTTP_CA): no PEM certificate in it", path);
    return -1;
  }
  return 0;
}

/* ---- Resend batches: recorded before they are sent, adopted again at start ---- */

static void on_ignored(sk_redis *r, const sk_redis_result *res, void *privdata) {
  (void)r;
  (void)res;
  (void)privdata;
}

#define BATCH_KEEP_MS (24LL * 3600 * 1000) /* Resend keeps an Idempotency-Key 24 hours */

typedef struct batchrec {
  sk_resend_recorded_fn done;
  void *ctx;
} batchrec;

static long long wall_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_batch_recorded(sk_redis *r, const sk_redis_result *res, void *privdata) {
  (void)r;
  batchrec *b = privdata;
  const char *err = res->status != SK_REDIS_OK ? res->errstr
                    : res->reply->type == REDIS_REPLY_ERROR ? res->reply->str
                                                            : NULL;
  b->done(b->ctx, err);
  free(b);
}

typedef struct recorder {
  sk_redis *r;
  const char *prefix;
} recorder;

/* record_batch hook: one EVAL writes batch:{key} (members, body; expires with Resend's key) and
   its entry in `batches`; the batch is sent once Redis has it. */
static void record_batch(const char *batch_key, const char *const *member_keys, size_t n, const char *body,
                         size_t len, void *privdata, sk_resend_recorded_fn done, void *ctx) {
  recorder *rc = privdata;
  static const char script[] =
      "redis.call('HSET',KEYS[1],'members',ARGV[1],'body',ARGV[2]) redis.call('PEXPIRE',KEYS[1],ARGV[3]) "
      "redis.call('ZADD',KEYS[2],ARGV[4],ARGV[5]) return 1";
  size_t mlen = 0, klen = 0, zlen = 0;
  for (size_t i = 0; i < n; i++) mlen += strlen(member_keys[i]) + 1;
  char *members = malloc(mlen + 1), keep[24], now[24];
  const char *parts[1] = {batch_key};
  char *key = sk_key_format(rc->prefix, SK_KEY_BATCH, parts, NULL, 1, &klen);
  char *zkey = sk_key_format(rc->prefix, SK_KEY_BATCHES, NULL, NULL, 0, &zlen);
  batchrec *b = malloc(sizeof *b);
  if (!members || !key || !zkey || !b) {
    free(members);
    free(key);
    free(zkey);
    free(b);
    done(ctx, "out of memory");
    return;
  }
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    size_t kl = strlen(member_keys[i]);
    memcpy(members + off, member_keys[i], kl);
    members[off + kl] = '\n';
    off += kl + 1;
  }
  snprintf(keep, sizeof keep, "%lld", BATCH_KEEP_MS);
  snprintf(now, sizeof now, "%lld", wall_now_ms());
  const char *argv[] = {"EVAL", script, "2", key, zkey, members, body, keep, now, batch_key};
  size_t lens[] = {4, sizeof script - 1, 1, klen, zlen, mlen, len, strlen(keep), strlen(now), strlen(batch_key)};
  b->done = done;
  b->ctx = ctx;
  if (sk_redis_command(rc->r, 10, argv, lens, on_batch_recorded, b) != 0) {
    free(b);
    done(ctx, sk_redis_errstr(rc->r));
  }
  free(members);
  free(key);
  free(zkey);
}

typedef struct adoption {
  struct event_base *base;
  sk_sender *sender;
  const char *prefix;
  sk_redis *r;
  int pending, adopted, failed;
} adoption;

static void on_batch_loaded(sk_redis *r, const sk_redis_result *res, void *privdata) {
  (void)r;
  adoption *ad = privdata;
  const redisReply *x = res->status == SK_REDIS_OK ? res->reply : NULL;
  /* HMGET members body batchkey-less: members, body */
  if (x && x->type == REDIS_REPLY_ARRAY && x->elements == 3 && x->element[0]->type == REDIS_REPLY_STRING &&
      x->element[1]->type == REDIS_REPLY_STRING && x->element[2]->type == REDIS_REPLY_STRING) {
    const char *keys[SK_RESEND_MAX_BATCH];
    size_t n = 0;
    char *m = strndup(x->element[0]->str, x->element[0]->len);
    for (char *p = m, *tok; m && n < SK_RESEND_MAX_BATCH && (tok = strsep(&p, "\n")) != NULL;)
      if (*tok) keys[n++] = tok;
    if (m && sk_resend_adopt_batch(ad->sender, x->element[2]->str, keys, n, x->element[1]->str,
                                   x->element[1]->len) == 0)
      ad->adopted++;
    else
      ad->failed++;
    free(m);
  }
  if (--ad->pending == 0) event_base_loopexit(ad->base, NULL);
}

static void on_batches_listed(sk_redis *r, const sk_redis_result *res, void *privdata) {
  adoption *ad = privdata;
  const redisReply *x = res->status == SK_REDIS_OK ? res->reply : NULL;
  if (x && x->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i < x->elements; i++) {
      const redisReply *k = x->element[i];
      if (k->type != REDIS_REPLY_STRING) continue;
      size_t klen = 0;
      const char *parts[1] = {k->str};
      char *key = sk_key_format(ad->prefix, SK_KEY_BATCH, parts, NULL, 1, &klen);
      /* the batch key is asked back as a field that does not exist: HMGET returns it as nil, so
         ask for it by name through a literal third field instead */
      const char *argv[] = {"EVAL", "local v=redis.call('HMGET',KEYS[1],'members','body') "
                                    "if not v[1] then return nil end return {v[1],v[2],ARGV[1]}",
                            "1", key, k->str};
      size_t lens[] = {4, strlen(argv[1]), 1, klen, k->len};
      ad->pending++;
      if (!key || sk_redis_command(r, 5, argv, lens, on_batch_loaded, ad) != 0) ad->pending--;
      free(key);
    }
  }
  if (--ad->pending == 0) event_base_loopexit(ad->base, NULL);
}

/* Batches recorded in the last 24 hours go back into the sender, so that a member retried after a
   crash sends its batch again as it was, under the same key. Runs the loop until done. */
static int adopt_batches(struct event_base *base, sk_redis *r, sk_sender *sender, const char *prefix, sk_worker *w) {
  adoption ad = {base, sender, prefix, r, 1, 0, 0};
  size_t zlen = 0;
  char *zkey = sk_key_format(prefix, SK_KEY_BATCHES, NULL, NULL, 0, &zlen);
  char since[24], old[24];
  snprintf(since, sizeof since, "%lld", wall_now_ms() - BATCH_KEEP_MS);
  snprintf(old, sizeof old, "(%lld", wall_now_ms() - BATCH_KEEP_MS);
  const char *trim[] = {"ZREMRANGEBYSCORE", zkey, "-inf", old};
  const char *list[] = {"ZRANGEBYSCORE", zkey, since, "+inf"};
  if (!zkey || sk_redis_command(r, 4, trim, NULL, on_ignored, NULL) != 0 ||
      sk_redis_command(r, 4, list, NULL, on_batches_listed, &ad) != 0) {
    free(zkey);
    return -1;
  }
  free(zkey);
  event_base_dispatch(base);
  if (ad.adopted || ad.failed)
    sk_worker_log(w, ad.failed ? "warn" : "info", "resend.batches", ",\"adopted\":%d,\"unreadable\":%d", ad.adopted,
                  ad.failed);
  return 0;
}

/* ---- the loops' clock under --time-scale: one anchor for every worker on this Redis ---- */

typedef struct anchorq {
  struct event_base *base;
  int done;
  long long value;
  char err[256];
} anchorq;

static void on_anchor(sk_redis *r, const sk_redis_result *res, void *privdata) {
  (void)r;
  anchorq *q = privdata;
  q->done = 1;
  if (res->status != SK_REDIS_OK)
    snprintf(q->err, sizeof q->err, "%s", res->errstr);
  else if (res->reply->type == REDIS_REPLY_STRING)
    q->value = strtoll(res->reply->str, NULL, 10);
  else
    snprintf(q->err, sizeof q->err, "%s", res->reply->type == REDIS_REPLY_ERROR ? res->reply->str : "no anchor");
  event_base_loopbreak(q->base);
}

/* SET clock NX to now, then GET it: the anchor the first worker set. 0, or -1 with err. */
static int clock_anchor(struct event_base *base, sk_redis *r, const char *prefix, long long *out, char *err,
                        size_t errlen) {
  size_t klen = 0;
  char *key = sk_key_format(prefix, SK_KEY_CLOCK, NULL, NULL, 0, &klen);
  char now[24];
  snprintf(now, sizeof now, "%lld", wall_now_ms());
  const char *set[] = {"SET", key, now, "NX"}, *get[] = {"GET", key};
  anchorq q = {base, 0, 0, ""};
  anchorq ignore = {base, 0, 0, ""};
  int rc = -1;
  if (key && sk_redis_command(r, 4, set, NULL, on_anchor, &ignore) == 0 &&
      sk_redis_command(r, 2, get, NULL, on_anchor, &q) == 0) {
    while (!q.done) event_base_loop(base, EVLOOP_ONCE);
    if (!q.err[0] && q.value > 0) {
      *out = q.value;
      rc = 0;
    } else {
      snprintf(err, errlen, "reading the clock's anchor: %s", q.err[0] ? q.err : "not a time");
    }
  } else {
    snprintf(err, errlen, "reading the clock's anchor: %s", sk_redis_errstr(r));
  }
  free(key);
  return rc;
}

int sk_run_main(int argc, char **argv) {
  /* SIGUSR1 asks for the counters once the loop runs; before that it must not kill the worker */
  signal(SIGUSR1, SIG_IGN);
  const char *file = NULL, *worker_id = getenv("SKENE_WORKER"), *faults_file = NULL;
  double scale = 1, lease = 30000, claim_idle = 0, due = 0;
  int backfill = 0;
  char host[256] = "worker";
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    double *num = NULL;
    if (strcmp(a, "--worker") == 0) {
      if (!v) goto needs_value;
      worker_id = v;
      i++;
      continue;
    } else if (strcmp(a, "--faults") == 0) {
      if (!v) goto needs_value;
      faults_file = v;
      i++;
      continue;
    } else if (strcmp(a, "--backfill") == 0) {
      backfill = 1;
      continue;
    } else if (strcmp(a, "--time-scale") == 0) {
      num = &scale;
    } else if (strcmp(a, "--lease-ms") == 0) {
      num = &lease;
    } else if (strcmp(a, "--claim-idle-ms") == 0) {
      num = &claim_idle;
    } else if (strcmp(a, "--due-interval-ms") == 0) {
      num = &due;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "skene-vm: run: unknown option '%s'\n(see skene-vm --help)\n", a);
      return RUN_EXIT_USAGE;
    } else {
      if (file) {
        fprintf(stderr, "skene-vm: run: unexpected argument '%s'\n(see skene-vm --help)\n", a);
        return RUN_EXIT_USAGE;
      }
      file = a;
      continue;
    }
    if (!v) goto needs_value;
    if (parse_pos(a, v, num) != 0) return RUN_EXIT_USAGE;
    i++;
    continue;
  needs_value:
    fprintf(stderr, "skene-vm: run: %s needs a value\n(see skene-vm --help)\n", a);
    return RUN_EXIT_USAGE;
  }
  if (!file) {
    fprintf(stderr, "skene-vm: run needs FILE.skb\n(see skene-vm --help)\n");
    return RUN_EXIT_USAGE;
  }
  if (!worker_id || !worker_id[0]) {
    if (gethostname(host, sizeof host) != 0 || !host[0]) snprintf(host, sizeof host, "worker");
    host[sizeof host - 1] = 0;
    worker_id = host;
  }

  uint8_t *skb = NULL;
  size_t skb_len = 0;
  if (read_file(file, &skb, &skb_len) != 0) {
    fprintf(stderr, "skene-vm: cannot read %s: %s\n", file, strerror(errno));
    return RUN_EXIT_USAGE;
  }
  sk_module *m = NULL;
  char err[1024];
  if (sk_module_load(skb, skb_len, &m, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", file, err);
    free(skb);
    return RUN_EXIT_CONFIG;
  }

  /* ---- the checks: every problem, one line each ---- */
  int problems = 0;
  sk_faults faults = {0};
  if (faults_file) {
    sk_scenario *sc = NULL;
    if (sk_scenario_load(faults_file, &sc, err, sizeof err) != SK_SIM_OK) {
      fprintf(stderr, "%s\n", err);
      problems++;
    } else {
      for (size_t i = 0; i < sk_scenario_nfaults(sc); i++) {
        const char *p;
        int status;
        uint32_t count;
        int64_t ra;
        sk_scenario_fault(sc, i, &p, &status, &count, &ra);
        if (sk_faults_add(&faults, p, status, count, ra) != 0) problems++;
      }
    }
    sk_scenario_free(sc);
  }
  const char *url = getenv("REDIS_URL"), *url_name = "REDIS_URL";
  if (!url || !url[0]) {
    url = getenv("UPSTASH_REDIS_URL");
    url_name = "UPSTASH_REDIS_URL";
  }
  sk_redis_options ro;
  sk_redis_options_init(&ro);
  ro.url_name = url_name;
  if (sk_redis_options_from_env(&ro, err, sizeof err) != 0) {
    fprintf(stderr, "skene-vm: %s\n", err);
    problems++;
  }
  if (!url || !url[0]) {
    fprintf(stderr, "skene-vm: REDIS_URL is not set (or UPSTASH_REDIS_URL): the Redis the loops run on, "
                    "e.g. redis://127.0.0.1:6379 or rediss://default:PASSWORD@HOST:6379\n");
    problems++;
  } else if (problems == 0 && sk_redis_check(url, &ro, 5000, err, sizeof err) != 0) {
    fprintf(stderr, "skene-vm: %s\n", err);
    problems++;
  }
  const char *from = getenv("SKENE_EMAIL_FROM");
  if (from && !from[0]) from = NULL;
  int emails = 0, webhooks = 0;
  for (uint32_t e = 0; e < m->neffects; e++) {
    const sk_effect_rec *er = &m->effects[e];
    if (er->kind == SK_EFFECT_WEBHOOK) webhooks++;
    if (er->kind != SK_EFFECT_EMAIL) continue;
    emails++;
    int has_from = 0;
    for (uint32_t f = 0; f < er->fld_count; f++)
      has_from |= strcmp(sk_str(m, m->fields[er->fld_first + f].name_str), "from") == 0;
    if (!has_from && !from) {
      fprintf(stderr, "%s: line %u: this email has no `from` and SKENE_EMAIL_FROM is not set "
                      "(e.g. SKENE_EMAIL_FROM='Acme <hello@acme.example>')\n", file, er->line);
      problems++;
    }
  }
  const char *api_key = getenv("RESEND_API_KEY");
  int use_resend = api_key && api_key[0];
  struct event_base *base = event_base_new();
  sk_sender *email = NULL, *webhook = NULL;
  sk_http *http = NULL;
  sk_redis *side = NULL; /* the senders' connection: the shared rate limit, recorded batches */
  const char *prefix = getenv("SKENE_REDIS_PREFIX");
  if (!prefix || !prefix[0]) prefix = SK_KEY_PREFIX_DEFAULT;
  recorder rec = {NULL, prefix};
  const char *outdir = getenv("SKENE_OUTBOX");
  if (!outdir || !outdir[0]) outdir = "outbox";
  const char *http_ca = getenv("SKENE_HTTP_CA");
  if (http_ca && !http_ca[0]) http_ca = NULL;
  if (base && (webhooks || (emails && use_resend))) {
    sk_http_options ho;
    sk_http_options_init(&ho);
    ho.ca_file = http_ca; /* NULL: the system store */
    if (http_ca && check_http_ca(http_ca, err, sizeof err) != 0) {
      fprintf(stderr, "skene-vm: %s\n", err);
      problems++;
    } else if (!(http = sk_http_new(base, &ho, err, sizeof err))) {
      fprintf(stderr, "skene-vm: %s\n", err);
      problems++;
    }
  }
  if (base && emails && use_resend && http && problems == 0) {
    sk_resend_options rs;
    sk_resend_options_init(&rs);
    if (sk_resend_options_from_env(&rs, err, sizeof err) != 0) {
      fprintf(stderr, "skene-vm: %s\n", err);
      problems++;
    } else {
      side = sk_redis_new(base, url, &ro);
      rec.r = side;
      rs.redis = side;
      rs.key_prefix = prefix;
      rs.record_batch = record_batch;
      rs.record_privdata = &rec;
      rs.http = http;
      email = side ? sk_resend_new(base, &rs, err, sizeof err) : NULL;
      if (!email) {
        fprintf(stderr, "skene-vm: %s\n", side ? err : "out of memory");
        problems++;
      }
    }
  } else if (base && emails && !use_resend) {
    email = sk_outbox_new(base, outdir, from, err, sizeof err);
    if (!email) {
      fprintf(stderr, "skene-vm: %s\n", err);
      problems++;
    }
  }
  if (base && webhooks && http) {
    sk_webhook_options wh = {http, NULL};
    webhook = sk_webhook_new(base, &wh, err, sizeof err);
    if (!webhook) {
      fprintf(stderr, "skene-vm: %s\n", err);
      problems++;
    }
  }
  if (!base) {
    fprintf(stderr, "skene-vm: cannot create the event loop\n");
    problems++;
  }
  if (problems) {
    fprintf(stderr, "skene-vm: run: %d problem%s; not starting\n", problems, problems > 1 ? "s" : "");
    sk_sender_free(email);
    sk_sender_free(webhook);
    sk_http_free(http);
    sk_redis_free(side);
    sk_faults_free(&faults);
    if (base) event_base_free(base);
    sk_module_free(m);
    free(skb);
    return RUN_EXIT_CONFIG;
  }

  /* ---- run ---- */
  signal(SIGPIPE, SIG_IGN);
  sk_worker_options wo;
  memset(&wo, 0, sizeof wo);
  wo.url = url;
  wo.redis = &ro;
  wo.prefix = getenv("SKENE_REDIS_PREFIX");
  if (wo.prefix && !wo.prefix[0]) wo.prefix = NULL;
  wo.worker_id = worker_id;
  wo.time_scale = scale;
  wo.lease_ms = (int)lease;
  wo.claim_idle_ms = (int)claim_idle;
  wo.due_interval_ms = (int)due;
  wo.backfill = backfill;
  wo.email = email;
  wo.webhook = webhook;
  wo.log = stdout;
  wo.faults = faults_file ? &faults : NULL;
  if (scale != 1) {
    /* the worker's own connection is not open yet: a short one for the anchor */
    sk_redis *ar = sk_redis_new(base, url, &ro);
    long long anchor = 0;
    if (!ar || clock_anchor(base, ar, wo.prefix ? wo.prefix : SK_KEY_PREFIX_DEFAULT, &anchor, err, sizeof err) != 0) {
      fprintf(stderr, "skene-vm: %s\n", ar ? err : "out of memory");
      sk_redis_free(ar);
      sk_sender_free(email);
      sk_sender_free(webhook);
      sk_http_free(http);
      sk_redis_free(side);
      sk_faults_free(&faults);
      event_base_free(base);
      sk_module_free(m);
      free(skb);
      return RUN_EXIT_CONFIG;
    }
    sk_redis_free(ar);
    wo.clock_anchor_ms = anchor;
  }
  runctx c = {base, NULL, 0, 0, NULL, NULL, side};
  c.w = sk_worker_new(base, skb, skb_len, &wo, err, sizeof err);
  int rc = 0;
  if (c.w && side && adopt_batches(base, side, email, prefix, c.w) != 0) {
    fprintf(stderr, "skene-vm: cannot read the recorded Resend batches: %s\n", sk_redis_errstr(side));
    rc = RUN_EXIT_CONFIG;
  } else if (!c.w || sk_worker_start(c.w, err, sizeof err) != 0) {
    fprintf(stderr, "skene-vm: %s\n", err);
    rc = RUN_EXIT_CONFIG;
  } else {
    c.email = email;
    c.worker_id = worker_id;
    struct event *su = evsignal_new(base, SIGUSR1, on_usr1, &c);
    evsignal_add(su, NULL);
    struct event *st = evsignal_new(base, SIGTERM, on_signal, &c);
    struct event *si = evsignal_new(base, SIGINT, on_signal, &c);
    evsignal_add(st, NULL);
    evsignal_add(si, NULL);
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)m->hash);
    sk_worker_log(c.w, "info", "worker.start",
                  ",\"bytecode\":\"%s\",\"loops\":%u,\"tables\":%u,\"email\":\"%s\",\"time_scale\":%g,\"pid\":%ld",
                  hex, m->nloops, m->ntables, email ? email->ops->name : "none", scale, (long)getpid());
    event_base_dispatch(base);
    log_stats(&c, "worker.stop");
    event_free(su);
    event_free(st);
    event_free(si);
  }
  sk_worker_free(c.w);
  sk_faults_free(&faults);
  sk_sender_free(email);
  sk_sender_free(webhook);
  sk_http_free(http);
  sk_redis_free(side);
  event_base_free(base);
  sk_module_free(m);
  free(skb);
  return rc;
}
