/* dlq.c: `skene-vm dlq list` and `skene-vm dlq retry ID|--all`: the dead letters of the Redis
 * runtime (the stream skene:dlq, keys.h), read and re-driven.
 *
 * A dead letter holds the instance's snapshot as it stood at the action that failed for good (its
 * attempts reset). Retrying one puts that snapshot back as the instance, with a timer due now, and
 * deletes the letter, in one script: the running workers pick it up at their next look at the
 * timer set (at most --due-interval-ms later) and log what happens to it, as for any instance. An
 * instance that exists again already (retried before) is left alone.
 */
#define _POSIX_C_SOURCE 200809L

#include "dlq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "keys.h"
#include "redis.h"
#include "store.h"

typedef struct call {
  struct event_base *base;
  int done;
  sk_redis_status status;
  char err[512];
  redisReply *copy; /* a deep copy of the reply */
} call;

static redisReply *copy_reply(const redisReply *x) {
  redisReply *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->type = x->type;
  c->integer = x->integer;
  if (x->str) {
    c->str = malloc(x->len + 1);
    if (!c->str) return c;
    memcpy(c->str, x->str, x->len);
    c->str[x->len] = 0;
    c->len = x->len;
  }
  if (x->elements) {
    c->element = calloc(x->elements, sizeof *c->element);
    if (!c->element) return c;
    c->elements = x->elements;
    for (size_t i = 0; i < x->elements; i++) c->element[i] = copy_reply(x->element[i]);
  }
  return c;
}

static void free_reply(redisReply *x) {
  if (!x) return;
  for (size_t i = 0; i < x->elements; i++) free_reply(x->element[i]);
  free(x->element);
  free(x->str);
  free(x);
}

static void on_reply(sk_redis *r, const sk_redis_result *res, void *privdata) {
  (void)r;
  call *c = privdata;
  c->done = 1;
  c->status = res->status;
  if (res->status != SK_REDIS_OK) snprintf(c->err, sizeof c->err, "%s", res->errstr);
  else if (res->reply->type == REDIS_REPLY_ERROR) snprintf(c->err, sizeof c->err, "%s", res->reply->str);
  else c->copy = copy_reply(res->reply);
  event_base_loopbreak(c->base);
}

/* One command, waited for. The reply (caller frees with free_reply), or NULL with err filled. */
static redisReply *cmd(struct event_base *base, sk_redis *r, int argc, const char **argv, const size_t *lens,
                       char *err, size_t errlen) {
  call c = {base, 0, SK_REDIS_OK, "", NULL};
  if (sk_redis_command(r, argc, argv, lens, on_reply, &c) != 0) {
    snprintf(err, errlen, "%s", sk_redis_errstr(r));
    return NULL;
  }
  while (!c.done) event_base_loop(base, EVLOOP_ONCE);
  if (!c.copy) snprintf(err, errlen, "%s", c.err[0] ? c.err : "out of memory");
  return c.copy;
}

static const redisReply *field(const redisReply *fields, const char *name) {
  if (!fields || fields->type != REDIS_REPLY_ARRAY) return NULL;
  for (size_t i = 0; i + 1 < fields->elements; i += 2)
    if (fields->element[i]->type == REDIS_REPLY_STRING && strcmp(fields->element[i]->str, name) == 0)
      return fields->element[i + 1];
  return NULL;
}

static void json_str(FILE *out, const char *s, size_t n) {
  fputc('"', out);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\') fprintf(out, "\\%c", ch);
    else if (ch == '\n') fputs("\\n", out);
    else if (ch < 0x20) fprintf(out, "\\u%04x", ch);
    else fputc(ch, out);
  }
  fputc('"', out);
}

static const char *fstr(const redisReply *f) { return f && f->str ? f->str : ""; }

/* One letter as a line: text (id, loop, subject, step, when, reason) or JSON. */
static void print_letter(FILE *out, const redisReply *entry, int json) {
  const redisReply *id = entry->element[0], *fields = entry->element[1];
  const redisReply *loop = field(fields, "loop"), *subject = field(fields, "subject"), *step = field(fields, "step");
  const redisReply *reason = field(fields, "reason"), *at = field(fields, "at"), *worker = field(fields, "worker");
  char when[40] = "?";
  if (at && at->str) {
    time_t t = (time_t)(strtoll(at->str, NULL, 10) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  }
  if (json) {
    fputs("{\"id\":", out);
    json_str(out, id->str, id->len);
    fputs(",\"loop\":", out);
    json_str(out, fstr(loop), loop ? loop->len : 0);
    fputs(",\"subject\":", out);
    json_str(out, fstr(subject), subject ? subject->len : 0);
    fprintf(out, ",\"step\":%s,\"at\":\"%s\",\"worker\":", step && step->str ? step->str : "null", when);
    json_str(out, fstr(worker), worker ? worker->len : 0);
    fputs(",\"reason\":", out);
    json_str(out, fstr(reason), reason ? reason->len : 0);
    fputs("}\n", out);
  } else {
    fprintf(out, "%s  %s  %.*s  step %s  %s  %s\n", id->str, fstr(loop), subject ? (int)subject->len : 0,
            fstr(subject), fstr(step), when, fstr(reason));
  }
}

static const char retry_script[] =
    "if redis.call('EXISTS',KEYS[2])==1 then return 0 end "
    "redis.call('SET',KEYS[2],ARGV[2]) redis.call('ZADD',KEYS[3],ARGV[3],KEYS[2]) "
    "redis.call('XDEL',KEYS[1],ARGV[1]) return 1";

/* Re-drives one letter (an XRANGE entry). 0 requeued, 1 left alone (already running), -1 error. */
static int retry_letter(struct event_base *base, sk_redis *r, sk_store *st, const char *prefix, const char *dlq,
                        const redisReply *entry, char *err, size_t errlen) {
  const redisReply *id = entry->element[0], *fields = entry->element[1];
  const redisReply *loop = field(fields, "loop"), *subject = field(fields, "subject"), *snap = field(fields, "snapshot");
  if (!loop || !subject || !snap || !snap->len) {
    snprintf(err, errlen, "dead letter %s has no snapshot to re-drive (written by an older skene-vm?)", id->str);
    return -1;
  }
  size_t klen = 0;
  char *ikey = sk_store_inst_key(st, loop->str, subject->str, subject->len, &klen);
  size_t tlen = 0;
  char *tkey = sk_key_format(prefix, SK_KEY_TIMERS, NULL, NULL, 0, &tlen);
  char now[24];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  /* due at once whatever the workers' --time-scale: their clock is at least the wall clock */
  snprintf(now, sizeof now, "%lld", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
  const char *argv[] = {"EVAL", retry_script, "3", dlq, ikey ? ikey : "", tkey ? tkey : "", id->str, snap->str, now};
  size_t lens[] = {4, sizeof retry_script - 1, 1, strlen(dlq), klen, tlen, id->len, snap->len, strlen(now)};
  redisReply *x = ikey && tkey ? cmd(base, r, 9, argv, lens, err, errlen) : NULL;
  if (!ikey || !tkey) snprintf(err, errlen, "out of memory");
  free(ikey);
  free(tkey);
  if (!x) return -1;
  int rc = x->type == REDIS_REPLY_INTEGER && x->integer == 1 ? 0 : 1;
  free_reply(x);
  return rc;
}

static void print_retry(const redisReply *entry, const char *result, const char *why) {
  const redisReply *fields = entry->element[1];
  const redisReply *loop = field(fields, "loop"), *subject = field(fields, "subject");
  fputs("{\"event\":\"dlq.retry\",\"id\":", stdout);
  json_str(stdout, entry->element[0]->str, entry->element[0]->len);
  fputs(",\"loop\":", stdout);
  json_str(stdout, fstr(loop), loop ? loop->len : 0);
  fputs(",\"subject\":", stdout);
  json_str(stdout, fstr(subject), subject ? subject->len : 0);
  fprintf(stdout, ",\"result\":\"%s\"", result);
  if (why) {
    fputs(",\"reason\":", stdout);
    json_str(stdout, why, strlen(why));
  }
  fputs("}\n", stdout);
}

static const char usage[] =
    "usage: skene-vm dlq list [--json]\n"
    "       skene-vm dlq retry ID... | --all\n"
    "Dead letters of the Redis runtime (REDIS_URL or UPSTASH_REDIS_URL, SKENE_REDIS_PREFIX):\n"
    "  list   one line per letter, oldest first: id, loop, subject, step, when, reason (--json: JSON lines)\n"
    "  retry  puts each instance back as it stood at its failed action, attempts reset, due now; the\n"
    "         running workers take it at their next look at the timer set and log its outcome. Prints\n"
    "         one JSON line per letter: result requeued, running (it exists again: left alone) or error.\n"
    "exit status: 0 ok, 1 a letter could not be re-driven or Redis failed, 2 usage\n";

int sk_dlq_main(int argc, char **argv) {
  if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
    fputs(usage, argc < 1 ? stderr : stdout);
    return argc < 1 ? 2 : 0;
  }
  int list = strcmp(argv[0], "list") == 0, retry = strcmp(argv[0], "retry") == 0, json = 0, all = 0;
  if (!list && !retry) {
    fprintf(stderr, "skene-vm: dlq: unknown command '%s': use list or retry\n%s", argv[0], usage);
    return 2;
  }
  int nids = 0;
  for (int i = 1; i < argc; i++) {
    if (list && strcmp(argv[i], "--json") == 0) json = 1;
    else if (retry && strcmp(argv[i], "--all") == 0) all = 1;
    else if (retry && argv[i][0] != '-') nids++;
    else {
      fprintf(stderr, "skene-vm: dlq %s: unexpected argument '%s'\n%s", argv[0], argv[i], usage);
      return 2;
    }
  }
  if (retry && !all && nids == 0) {
    fprintf(stderr, "skene-vm: dlq retry needs letter ids or --all\n%s", usage);
    return 2;
  }
  const char *url = getenv("REDIS_URL"), *url_name = "REDIS_URL";
  if (!url || !url[0]) {
    url = getenv("UPSTASH_REDIS_URL");
    url_name = "UPSTASH_REDIS_URL";
  }
  if (!url || !url[0]) {
    fprintf(stderr, "skene-vm: REDIS_URL is not set (or UPSTASH_REDIS_URL)\n");
    return 1;
  }
  char err[512];
  sk_redis_options ro;
  sk_redis_options_init(&ro);
  ro.url_name = url_name;
  ro.reconnect = 0;
  if (sk_redis_options_from_env(&ro, err, sizeof err) != 0) {
    fprintf(stderr, "skene-vm: %s\n", err);
    return 1;
  }
  const char *prefix = getenv("SKENE_REDIS_PREFIX");
  if (!prefix || !prefix[0]) prefix = SK_KEY_PREFIX_DEFAULT;
  struct event_base *base = event_base_new();
  sk_redis *r = base ? sk_redis_new(base, url, &ro) : NULL;
  sk_store *st = r ? sk_store_new(r, prefix) : NULL;
  size_t dlen = 0;
  char *dlq = sk_key_format(prefix, SK_KEY_DLQ, NULL, NULL, 0, &dlen);
  int rc = 0;
  if (!st || !dlq) {
    fprintf(stderr, "skene-vm: out of memory\n");
    rc = 1;
    goto done;
  }
  if (list || all) {
    /* page through the stream, oldest first */
    char start[64] = "-";
    for (;;) {
      const char *xr[] = {"XRANGE", dlq, start, "+", "COUNT", "500"};
      redisReply *x = cmd(base, r, 6, xr, NULL, err, sizeof err);
      if (!x) {
        fprintf(stderr, "skene-vm: dlq: %s\n", err);
        rc = 1;
        break;
      }
      size_t n = x->type == REDIS_REPLY_ARRAY ? x->elements : 0;
      for (size_t i = 0; i < n; i++) {
        const redisReply *e = x->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
        if (list) {
          print_letter(stdout, e, json);
        } else {
          int k = retry_letter(base, r, st, prefix, dlq, e, err, sizeof err);
          print_retry(e, k == 0 ? "requeued" : k == 1 ? "running" : "error", k < 0 ? err : NULL);
          if (k < 0) rc = 1;
        }
      }
      if (n < 500) {
        free_reply(x);
        break;
      }
      snprintf(start, sizeof start, "(%s", x->element[n - 1]->element[0]->str);
      free_reply(x);
    }
  } else {
    for (int i = 1; i < argc; i++) {
      if (argv[i][0] == '-') continue;
      const char *xr[] = {"XRANGE", dlq, argv[i], argv[i]};
      redisReply *x = cmd(base, r, 4, xr, NULL, err, sizeof err);
      if (!x) {
        fprintf(stderr, "skene-vm: dlq: %s\n", err);
        rc = 1;
        continue;
      }
      if (x->type != REDIS_REPLY_ARRAY || x->elements != 1) {
        printf("{\"event\":\"dlq.retry\",\"id\":");
        json_str(stdout, argv[i], strlen(argv[i]));
        printf(",\"result\":\"error\",\"reason\":\"no such dead letter\"}\n");
        rc = 1;
      } else {
        int k = retry_letter(base, r, st, prefix, dlq, x->element[0], err, sizeof err);
        print_retry(x->element[0], k == 0 ? "requeued" : k == 1 ? "running" : "error", k < 0 ? err : NULL);
        if (k < 0) rc = 1;
      }
      free_reply(x);
    }
  }
done:
  fflush(stdout);
  free(dlq);
  sk_store_free(st);
  sk_redis_free(r);
  if (base) event_base_free(base);
  return rc;
}
