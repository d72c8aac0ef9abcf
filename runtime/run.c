/* run.c: `skene-vm run FILE.skb`, the production runtime (worker.h) with its configuration from the
 * environment, its start-up checks, its signals and its JSON-line logs.
 *
 * Start-up refuses to work, with one message per problem on stderr and exit 1, when: no Redis URL,
 * a bad one, Redis unreachable, TLS or credentials refused; an email with no `from` and no
 * SKENE_EMAIL_FROM; the outbox folder not writable; an action this build cannot perform.
 * SIGTERM or SIGINT: stop taking work, let what runs record its state, exit 0. A second signal:
 * exit at once with status 3; nothing is lost (every state an instance relies on is in Redis, and
 * a feed entry is acknowledged only after the work it started is durable).
 */
#define _POSIX_C_SOURCE 200809L

#include "run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "redis.h"
#include "sender.h"
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
} runctx;

/* The worker's counters as one log line (at the end, and on SIGUSR1 for benchmarks). */
static void log_stats(runctx *c, const char *event) {
  sk_worker_stats s;
  sk_worker_get_stats(c->w, &s);
  fprintf(stdout, "{\"level\":\"info\",\"event\":\"%s\",\"worker\":\"%s\",\"events\":%llu,"
                  "\"started\":%llu,\"claimed\":%llu,\"ended\":%llu,\"parked\":%llu,\"failed\":%llu,"
                  "\"commands\":%llu,\"wire_commands\":%llu,\"active\":%zu,\"outbox_duplicates\":%zu}\n",
          event, c->worker_id, (unsigned long long)s.events, (unsigned long long)s.started,
          (unsigned long long)s.claimed, (unsigned long long)s.ended, (unsigned long long)s.parked,
          (unsigned long long)s.failed, (unsigned long long)s.commands, (unsigned long long)s.wire,
          sk_worker_active(c->w),
          c->email && strcmp(c->email->ops->name, "outbox") == 0 ? sk_outbox_duplicates(c->email) : 0);
  fflush(stdout);
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
    fprintf(stdout, "{\"level\":\"info\",\"event\":\"worker.drain\",\"signal\":\"%s\",\"active\":%zu}\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", sk_worker_active(c->w));
    fflush(stdout);
    sk_worker_drain(c->w, on_drained, c);
    return;
  }
  fprintf(stdout, "{\"level\":\"warn\",\"event\":\"worker.exit\",\"signal\":\"%s\",\"message\":\"second signal: "
                  "exiting at once; the instances in memory resume from Redis\"}\n",
          sig == SIGTERM ? "SIGTERM" : "SIGINT");
  fflush(stdout);
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

int sk_run_main(int argc, char **argv) {
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
  if (api_key && api_key[0] && emails) {
    fprintf(stderr, "skene-vm: RESEND_API_KEY is set, but this build sends email through the outbox "
                    "only (the Resend sender is not built yet): unset it to write .eml files\n");
    problems++;
  }
  if (webhooks) {
    fprintf(stderr, "skene-vm: %s has %d webhook action(s): this build cannot call webhooks yet\n", file,
            webhooks);
    problems++;
  }
  struct event_base *base = event_base_new();
  sk_sender *email = NULL;
  const char *outdir = getenv("SKENE_OUTBOX");
  if (!outdir || !outdir[0]) outdir = "outbox";
  if (base && emails) {
    email = sk_outbox_new(base, outdir, from, err, sizeof err);
    if (!email) {
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
  wo.log = stdout;
  wo.faults = faults_file ? &faults : NULL;
  runctx c = {base, NULL, 0, 0, NULL, NULL};
  c.w = sk_worker_new(base, skb, skb_len, &wo, err, sizeof err);
  int rc = 0;
  if (!c.w || sk_worker_start(c.w, err, sizeof err) != 0) {
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
    fprintf(stdout, "{\"level\":\"info\",\"event\":\"worker.start\",\"worker\":\"%s\",\"bytecode\":\"%s\","
                    "\"loops\":%u,\"tables\":%u,\"email\":\"%s\",\"time_scale\":%g,\"pid\":%ld}\n",
            worker_id, hex, m->nloops, m->ntables, email ? "outbox" : "none", scale, (long)getpid());
    fflush(stdout);
    event_base_dispatch(base);
    log_stats(&c, "worker.stop");
    event_free(su);
    event_free(st);
    event_free(si);
  }
  sk_worker_free(c.w);
  sk_faults_free(&faults);
  sk_sender_free(email);
  event_base_free(base);
  sk_module_free(m);
  free(skb);
  return rc;
}
