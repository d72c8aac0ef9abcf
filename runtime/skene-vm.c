/*
 * skene-vm.c: the command line. `skene-vm simulate FILE.skb SCENARIO.json` loads and verifies the
 * bytecode and replays the scenario on the in-memory store (simulate.c); `skene-vm run FILE.skb` is the
 * production runtime over Redis (run.c, worker.c).
 * Exit 0 ok, 1 bad input (a .skb the verifier refuses, a bad scenario), 2 usage or I/O.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simulate.h"
#include "skb.h"
#ifdef SKENE_HAVE_RUN
#include "dlq.h"
#include "run.h"
#endif

#define SKENE_VM_VERSION "0.1.0"
#define MAX_SKB_BYTES (256u << 20)

static const char usage[] =
    "usage: skene-vm simulate [--format jsonl|text] [--quiet] FILE.skb SCENARIO.json\n"
    "       skene-vm run [--worker ID] [--time-scale N] [--backfill] [--lease-ms MS]\n"
    "                    [--claim-idle-ms MS] [--due-interval-ms MS] [--faults SCENARIO.json] FILE.skb\n"
    "       skene-vm dlq list [--json] | dlq retry ID... | dlq retry --all\n"
    "       skene-vm --help | --version\n"
    "\n"
    "Runs the loops of a verified Skene bytecode file (.skb, built by `skenec build`).\n"
    "\n"
    "commands:\n"
    "  simulate  replay SCENARIO.json (rows, timed row events, provider faults) on an in-memory store\n"
    "            with a virtual clock and print what the loops do: one JSON object per event on stdout\n"
    "            (the same file and seed give the same bytes). The scenario format is documented in\n"
    "            tests/sim/README.md.\n"
    "  run       the production runtime over the product's Redis: watches the tables' feeds, starts one\n"
    "            instance per (loop, subject), keeps every instance, timer and index in Redis, and sends\n"
    "            each email once. Several workers may share one Redis. Logs are JSON lines on stdout.\n"
    "            It checks its configuration first and refuses to start with one message per problem.\n"
    "            SIGTERM or SIGINT: finish what runs, record it, exit 0; a second signal exits at once\n"
    "            (status 3) and loses nothing: the instances resume from Redis. SIGUSR1: log the\n"
    "            worker's counters (a worker.stats line: instances, commands on the wire).\n"
    "  dlq       the dead letters of the Redis runtime (instances that failed for good: retries\n"
    "            exhausted, a permanent provider error, a missing value): `list` prints them, `retry`\n"
    "            puts them back as they stood at the failed action, attempts reset; running workers\n"
    "            take them at their next look at the timer set and log the outcome. See\n"
    "            `skene-vm dlq --help`.\n"
    "\n"
    "simulate options:\n"
    "  --format F     jsonl (default): one JSON object per event; text: a readable timeline and a summary\n"
    "  --quiet        no timeline: the summary, wall time, instances per second and scheduler memory\n"
    "                 per waiting instance (for benchmarks)\n"
    "run options:\n"
    "  --worker ID    this worker's name: unique among the workers on one Redis, the same across its\n"
    "                 restarts (its stream entries are read again first); default SKENE_WORKER, else\n"
    "                 the host name\n"
    "  --time-scale N the loops' clock runs N times faster than the wall clock (a 5m timeout takes 5m/N):\n"
    "                 for demos and tests; every worker on one Redis must use the same N. The clock\n"
    "                 starts from when the first such worker started (kept in Redis). Default 1\n"
    "  --backfill     rows that exist in keyspace and scan tables at the first start trigger loops too\n"
    "                 (by default they are recorded as seen: past users are not emailed)\n"
    "  --lease-ms MS  how long a worker owns an instance it runs before another may take it over;\n"
    "                 default 30000\n"
    "  --claim-idle-ms MS  stream entries delivered to a worker and not acknowledged for this long are\n"
    "                 taken over by another (a dead worker's); default 60000\n"
    "  --due-interval-ms MS  the longest wait between two looks at the shared timer set while idle;\n"
    "                 default 120000\n"
    "  --faults SCENARIO.json  for tests: the scenario's scripted provider faults (tests/sim/README.md)\n"
    "                 make the next calls of those providers fail, as simulate plays them\n"
    "  -h, --help     this text\n"
    "  --version      the version of skene-vm and of the bytecode format it reads\n"
    "\n"
    "environment:\n"
    "  REDIS_URL or UPSTASH_REDIS_URL  redis://[user:password@]host:port[/db], or rediss:// for TLS (run)\n"
    "  SKENE_REDIS_CA    a PEM file of the CA to trust instead of the system store (rediss://)\n"
    "  SKENE_REDIS_INSECURE=1  no certificate verification (only when asked)\n"
    "  SKENE_REDIS_PREFIX  the prefix of Skene's own keys; default skene:\n"
    "  SKENE_EMAIL_FROM  the sender of emails whose action names no `from`\n"
    "  RESEND_API_KEY    run: send email through Resend's API (unset: the outbox provider)\n"
    "  RESEND_API_URL    run: Resend's API; default https://api.resend.com\n"
    "  SKENE_HTTP_CA     run: a PEM file of the CA(s) the HTTP senders (Resend, webhooks) trust instead\n"
    "                    of the system store (https://); checked at start\n"
    "  SKENE_RESEND_RPS  run: requests a second to Resend, shared by all workers on one Redis and lowered\n"
    "                    by Resend's ratelimit-* headers; default 2. SKENE_RESEND_BURST: default 1\n"
    "  SKENE_OUTBOX      run: the folder the outbox provider writes one .eml per email to (named by its\n"
    "                    idempotency key); default ./outbox. Email goes there while RESEND_API_KEY is unset\n"
    "  SKENE_WORKER      run: the default of --worker\n"
    "\n"
    "exit status: 0 ok (run: drained after a signal), 1 bad input (a .skb the verifier refuses, a bad\n"
    "scenario; run: a start-up check failed), 2 usage or I/O error, 3 run stopped by a second signal\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("skene-vm: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\n(see skene-vm --help)\n", stderr);
  return SK_SIM_EIO;
}

/* Reads and verifies path. Returns 0 and *out, or an exit status after printing why. */
static int load_module(const char *path, sk_module **out) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "skene-vm: cannot read %s: %s\n", path, strerror(errno));
    return SK_SIM_EIO;
  }
  uint8_t *data = NULL;
  size_t len = 0, cap = 0;
  int rc = 0;
  for (;;) {
    if (len == cap) {
      if (cap >= MAX_SKB_BYTES) {
        fprintf(stderr, "%s: too large for a .skb (over %u MiB)\n", path, MAX_SKB_BYTES >> 20);
        rc = SK_SIM_EINPUT;
        break;
      }
      size_t nc = cap ? cap * 2 : 65536;
      uint8_t *p = realloc(data, nc);
      if (!p) {
        fprintf(stderr, "skene-vm: out of memory reading %s\n", path);
        rc = SK_SIM_EIO;
        break;
      }
      data = p;
      cap = nc;
    }
    size_t n = fread(data + len, 1, cap - len, f);
    len += n;
    if (n == 0) {
      if (ferror(f)) {
        fprintf(stderr, "skene-vm: cannot read %s: %s\n", path, strerror(errno));
        rc = SK_SIM_EIO;
      }
      break;
    }
  }
  fclose(f);
  if (rc == 0) {
    char err[512];
    if (sk_module_load(data, len, out, err, sizeof err) != 0) {
      fprintf(stderr, "%s: %s\n", path, err);
      rc = SK_SIM_EINPUT;
    }
  }
  free(data);
  return rc;
}

static int cmd_simulate(int argc, char **argv) {
  sk_sim_options o = {SK_SIM_JSONL, 0, getenv("SKENE_EMAIL_FROM"), stdout};
  const char *files[2] = {NULL, NULL};
  int nfiles = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *fmt = NULL;
    if (strcmp(a, "--format") == 0) {
      if (i + 1 >= argc) return usage_error("--format needs a value: jsonl or text");
      fmt = argv[++i];
    } else if (strncmp(a, "--format=", 9) == 0) {
      fmt = a + 9;
    } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
      o.quiet = 1;
      continue;
    } else if (a[0] == '-' && a[1]) {
      return usage_error("simulate: unknown option '%s'", a);
    } else {
      if (nfiles == 2) return usage_error("simulate: unexpected argument '%s'", a);
      files[nfiles++] = a;
      continue;
    }
    if (strcmp(fmt, "jsonl") == 0) o.format = SK_SIM_JSONL;
    else if (strcmp(fmt, "text") == 0) o.format = SK_SIM_TEXT;
    else return usage_error("simulate: unknown format '%s': use jsonl or text", fmt);
  }
  if (nfiles != 2) return usage_error("simulate needs FILE.skb and SCENARIO.json");
  if (o.email_from && !o.email_from[0]) o.email_from = NULL;

  sk_module *m = NULL;
  int rc = load_module(files[0], &m);
  if (rc) return rc;
  char err[1024];
  sk_scenario *sc = NULL;
  rc = sk_scenario_load(files[1], &sc, err, sizeof err);
  if (rc == SK_SIM_OK) {
    rc = sk_simulate(m, sc, &o, err, sizeof err);
    if (rc != SK_SIM_OK) fprintf(stderr, rc == SK_SIM_EINPUT ? "%s\n" : "skene-vm: %s\n", err);
  } else {
    fprintf(stderr, rc == SK_SIM_EINPUT ? "%s\n" : "skene-vm: %s\n", err);
  }
  sk_scenario_free(sc);
  sk_module_free(m);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) return usage_error("a command is needed: simulate, run or dlq");
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    fputs(usage, stdout);
    return fflush(stdout) == 0 ? 0 : SK_SIM_EIO;
  }
  if (strcmp(cmd, "--version") == 0) {
    printf("skene-vm %s (bytecode format %d.%d)\n", SKENE_VM_VERSION, SKB_VERSION_MAJOR, SKB_VERSION_MINOR);
    return fflush(stdout) == 0 ? 0 : SK_SIM_EIO;
  }
  if (strcmp(cmd, "simulate") == 0) return cmd_simulate(argc - 2, argv + 2);
  if (strcmp(cmd, "dlq") == 0) {
#ifdef SKENE_HAVE_RUN
    return sk_dlq_main(argc - 2, argv + 2);
#else
    fputs("skene-vm: dlq: this build has no Redis runtime\n", stderr);
    return SK_SIM_EIO;
#endif
  }
  if (strcmp(cmd, "run") == 0) {
#ifdef SKENE_HAVE_RUN
    return sk_run_main(argc - 2, argv + 2);
#else
    fputs("skene-vm: run: this build has no Redis runtime (hiredis, OpenSSL or libevent missing)\n", stderr);
    return SK_SIM_EIO;
#endif
  }
  return usage_error("unknown command '%s': use simulate, run or dlq", cmd);
}
