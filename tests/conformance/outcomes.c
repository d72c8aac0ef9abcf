/*
 * outcomes.c: conf-outcomes, what the conformance suite compares (tests/conformance/README.md). It
 * reads what one store did and prints its outcomes, one per line, sorted, without times:
 *
 *   conf-outcomes sim TIMELINE.jsonl            the simulator's timeline (`skene-vm simulate`)
 *   conf-outcomes redis REPLAY.jsonl OUTBOX [SINK.jsonl]
 *                                               conf-replay's output (the worker's log), the .eml
 *                                               files the worker's outbox wrote, and the requests
 *                                               conf-sink received (the case's webhooks)
 *
 * run.sh prints both and diffs them. The lines:
 *   instance LOOP SUBJECT: OUTCOME           completed, timed_out, skipped, failed, or waiting (started
 *                                            and not ended when the run stops); "(started N times,
 *                                            ended M times)" is added unless both are 1 (0 ends for
 *                                            waiting): one instance per (loop, subject)
 *   condition LOOP SUBJECT step N: waits W, met M (rows R,...), timeouts T
 *                                            the condition.* events of one step: how often it began
 *                                            to wait, held (with the rows of each) or timed out
 *   action LOOP SUBJECT step N: attempts A, retries R, ok K, failed F
 *                                            the action.* events of one step (a condition retried
 *                                            after a transient failure counts in retries)
 *   email KEY LOOP SUBJECT: to TO, subject SUBJ | template ID
 *                                            each email sent, by its idempotency key: the simulator's
 *                                            action.ok, the Redis run's .eml files (To, Subject, or
 *                                            the id of a Resend-hosted template)
 *   webhook KEY LOOP SUBJECT: METHOD PATH, headers {NAME: VALUE, ...}, body BODY
 *                                            each webhook call, by its idempotency key: the
 *                                            simulator's action.ok (POST, the url's path and query,
 *                                            its headers, its body), the requests conf-sink received
 *                                            (Idempotency-Key, method, target, headers, body; LOOP
 *                                            and SUBJECT from the worker's log line with that key).
 *                                            Headers: names in lower case, sorted, without those of
 *                                            the transport (webhook_header_skipped); the simulator's
 *                                            gain the sender's default Content-Type. In the body,
 *                                            what {{now}} renders (YYYY-MM-DDTHH:MM:SS.mmmZ) is
 *                                            written {{now}}: the clocks differ. "(N times)" is
 *                                            added when the same call came N > 1 times
 *   dead letter LOOP SUBJECT step N: REASON  the simulator's action.failed; conf-replay's replay.dlq
 * and, for the Redis run only, what should never be there:
 *   worker LEVEL EVENT: MESSAGE              a warning or error the worker logged (not a trace event)
 *   worker: ...                              no worker.stop line; emails written twice to the outbox
 *
 * Exit status: 0, or 2 on usage or I/O errors.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("conf-outcomes: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) die("out of memory");
  return p;
}

static char *xstrdup(const char *s) {
  char *d = strdup(s ? s : "");
  if (!d) die("out of memory");
  return d;
}

/* ---- the output: lines, sorted and printed once each ---- */

typedef struct lines {
  char **v;
  size_t n, cap;
} lines;

static void out(lines *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(lines *l, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) die("cannot format a line");
  char *s = xrealloc(NULL, (size_t)n + 1);
  vsnprintf(s, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 64;
    l->v = xrealloc(l->v, l->cap * sizeof *l->v);
  }
  l->v[l->n++] = s;
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void sort_lines(lines *l) {
  if (l->n > 1) qsort(l->v, l->n, sizeof *l->v, str_cmp); /* v is NULL while empty */
}

static void lines_free(lines *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
}

static void print_lines(lines *l) {
  sort_lines(l);
  for (size_t i = 0; i < l->n; i++) {
    if (i == 0 || strcmp(l->v[i], l->v[i - 1]) != 0) puts(l->v[i]);
  }
  lines_free(l);
}

/* Moves the lines of from into l, one per distinct line, with "(N times)" when it came N > 1
   times; frees from. */
static void add_counted(lines *l, lines *from) {
  sort_lines(from);
  for (size_t i = 0, j; i < from->n; i = j) {
    for (j = i + 1; j < from->n && strcmp(from->v[i], from->v[j]) == 0; j++) {
    }
    if (j - i == 1) out(l, "%s", from->v[i]);
    else out(l, "%s (%zu times)", from->v[i], j - i);
  }
  lines_free(from);
}

/* ---- instances and steps, from trace events (the same names in both stores) ---- */

typedef struct inst {
  char *loop, *subject;
  int starts, ends;
  char *outcome, *reason;
} inst;

typedef struct step {
  char *loop, *subject;
  long step;
  int attempts, retries, ok, failed;
  int waits, met, timeouts;
  char rows[64]; /* the rows of each condition.met, comma-separated */
} step;

typedef struct tally {
  inst *in;
  size_t nin, capin;
  step *st;
  size_t nst, capst;
} tally;

static inst *inst_of(tally *t, const char *loop, const char *subject) {
  for (size_t i = 0; i < t->nin; i++)
    if (strcmp(t->in[i].loop, loop) == 0 && strcmp(t->in[i].subject, subject) == 0) return &t->in[i];
  if (t->nin == t->capin) {
    t->capin = t->capin ? t->capin * 2 : 16;
    t->in = xrealloc(t->in, t->capin * sizeof *t->in);
  }
  inst *n = &t->in[t->nin++];
  memset(n, 0, sizeof *n);
  n->loop = xstrdup(loop);
  n->subject = xstrdup(subject);
  return n;
}

static step *step_of(tally *t, const char *loop, const char *subject, long s) {
  for (size_t i = 0; i < t->nst; i++)
    if (t->st[i].step == s && strcmp(t->st[i].loop, loop) == 0 && strcmp(t->st[i].subject, subject) == 0)
      return &t->st[i];
  if (t->nst == t->capst) {
    t->capst = t->capst ? t->capst * 2 : 16;
    t->st = xrealloc(t->st, t->capst * sizeof *t->st);
  }
  step *n = &t->st[t->nst++];
  memset(n, 0, sizeof *n);
  n->loop = xstrdup(loop);
  n->subject = xstrdup(subject);
  n->step = s;
  return n;
}

static const char *sget(const json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "";
}

/* Counts one trace event; returns 0 when `event` is not one. */
static int tally_event(tally *t, const json_t *o, const char *event) {
  const char *loop = sget(o, "loop"), *subject = sget(o, "subject");
  long s = (long)json_integer_value(json_object_get(o, "step"));
  if (strcmp(event, "instance.start") == 0) {
    inst_of(t, loop, subject)->starts++;
  } else if (strcmp(event, "instance.end") == 0) {
    inst *i = inst_of(t, loop, subject);
    i->ends++;
    free(i->outcome);
    free(i->reason);
    i->outcome = xstrdup(sget(o, "outcome"));
    i->reason = json_object_get(o, "reason") ? xstrdup(sget(o, "reason")) : NULL;
  } else if (strcmp(event, "action.attempt") == 0) {
    step_of(t, loop, subject, s)->attempts++;
  } else if (strcmp(event, "action.retry") == 0) {
    step_of(t, loop, subject, s)->retries++;
  } else if (strcmp(event, "action.ok") == 0) {
    step_of(t, loop, subject, s)->ok++;
  } else if (strcmp(event, "action.failed") == 0) {
    step_of(t, loop, subject, s)->failed++;
  } else if (strcmp(event, "condition.wait") == 0) {
    step_of(t, loop, subject, s)->waits++;
  } else if (strcmp(event, "condition.met") == 0) {
    step *st = step_of(t, loop, subject, s);
    size_t len = strlen(st->rows);
    snprintf(st->rows + len, sizeof st->rows - len, "%s%lld", st->met++ ? "," : "",
             (long long)json_integer_value(json_object_get(o, "rows")));
  } else if (strcmp(event, "condition.timeout") == 0) {
    step_of(t, loop, subject, s)->timeouts++;
  } else {
    return 0;
  }
  return 1;
}

static void tally_print(tally *t, lines *l) {
  for (size_t k = 0; k < t->nin; k++) {
    inst *i = &t->in[k];
    const char *outcome = i->ends ? i->outcome : "waiting";
    char counts[96] = "";
    if (i->starts != 1 || i->ends > 1)
      snprintf(counts, sizeof counts, " (started %d times, ended %d times)", i->starts, i->ends);
    if (i->reason) out(l, "instance %s %s: %s: %s%s", i->loop, i->subject, outcome, i->reason, counts);
    else out(l, "instance %s %s: %s%s", i->loop, i->subject, outcome, counts);
    free(i->loop);
    free(i->subject);
    free(i->outcome);
    free(i->reason);
  }
  for (size_t k = 0; k < t->nst; k++) {
    step *s = &t->st[k];
    if (s->waits || s->met || s->timeouts)
      out(l, "condition %s %s step %ld: waits %d, met %d (rows %s), timeouts %d", s->loop, s->subject, s->step,
          s->waits, s->met, s->met ? s->rows : "-", s->timeouts);
    if (s->attempts || s->retries || s->ok || s->failed)
      out(l, "action %s %s step %ld: attempts %d, retries %d, ok %d, failed %d", s->loop, s->subject, s->step,
          s->attempts, s->retries, s->ok, s->failed);
    free(s->loop);
    free(s->subject);
  }
  free(t->in);
  free(t->st);
}

/* Calls fn for each JSON object line of path. */
static void each_line(const char *path, void (*fn)(const json_t *o, void *ud), void *ud) {
  FILE *f = fopen(path, "r");
  if (!f) die("cannot read %s: %s", path, strerror(errno));
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  size_t lineno = 0;
  while ((n = getline(&line, &cap, f)) > 0) {
    lineno++;
    json_error_t je;
    json_t *o = json_loadb(line, (size_t)n, 0, &je);
    if (!json_is_object(o)) die("%s:%zu: not a JSON object: %s", path, lineno, je.text);
    fn(o, ud);
    json_decref(o);
  }
  free(line);
  fclose(f);
}

/* ---- webhooks: one line per call, the same from the simulator's action.ok and from conf-sink ---- */

/* A growable string. */
typedef struct sbuf {
  char *p;
  size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    b->cap = (b->n + n + 1) * 2;
    b->p = xrealloc(b->p, b->cap);
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* The headers a request carries for its transport, not for the receiver: neither side shows them
   (Idempotency-Key has its own place in the line). */
static int webhook_header_skipped(const char *name) {
  static const char *const names[] = {"host", "content-length", "user-agent", "accept", "accept-encoding",
                                      "connection", "expect", "transfer-encoding", "idempotency-key"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcasecmp(name, names[i]) == 0) return 1;
  return 0;
}

/* Adds "name: value" (name in lower case) to hs unless the transport's. */
static void header_add(lines *hs, const char *name, const char *value) {
  if (webhook_header_skipped(name)) return;
  char *lower = xstrdup(name);
  for (char *c = lower; *c; c++) *c = (char)tolower((unsigned char)*c);
  out(hs, "%s: %s", lower, value);
  free(lower);
}

/* The length of what {{now}} renders, YYYY-MM-DDTHH:MM:SS.mmmZ (vm/interp.c format_now), when s[0..n)
   starts with one; else 0. */
static size_t now_len(const char *s, size_t n) {
  static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (n < sizeof shape - 1) return 0;
  for (size_t i = 0; i < sizeof shape - 1; i++) {
    if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i]) return 0;
  }
  return sizeof shape - 1;
}

/* Appends body to b with each {{now}} value written {{now}} and control bytes as \xNN (one line). */
static void body_put(sbuf *b, const char *body, size_t n) {
  for (size_t i = 0, k; i < n;) {
    if ((k = now_len(body + i, n - i)) > 0) {
      sb_puts(b, "{{now}}");
      i += k;
    } else if ((unsigned char)body[i] < 0x20 || body[i] == 0x7f) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\x%02x", (unsigned char)body[i++]);
      sb_puts(b, esc);
    } else {
      sb_put(b, body + i++, 1);
    }
  }
}

/* Adds the line of one webhook call to l. hs: its headers ("name: value", freed here). */
static void webhook_line(lines *l, const char *key, const char *loop, const char *subject, const char *method,
                         const char *path, lines *hs, const char *body, size_t body_len) {
  sbuf b = {0};
  sb_puts(&b, "headers {");
  sort_lines(hs);
  for (size_t i = 0; i < hs->n; i++) {
    if (i) sb_puts(&b, ", ");
    sb_puts(&b, hs->v[i]);
  }
  sb_puts(&b, "}, ");
  if (body && body_len) {
    sb_puts(&b, "body ");
    body_put(&b, body, body_len);
  } else {
    sb_puts(&b, "no body");
  }
  out(l, "webhook %s %s %s: %s %s, %s", key, loop, subject, method, path, b.p);
  free(b.p);
  lines_free(hs);
}

/* The request target of url: its path and query ("/" when it has no path), without the fragment,
   as an HTTP client sends it. malloc'ed. */
static char *url_target(const char *url) {
  const char *p = strstr(url, "://");
  p = p ? p + 3 : url;
  p += strcspn(p, "/?#");
  size_t n = strcspn(p, "#");
  char *t = xrealloc(NULL, n + 2), *q = t;
  if (*p != '/') *q++ = '/';
  memcpy(q, p, n);
  q[n] = 0;
  return t;
}

/* The simulator's webhook call (action.ok's "webhook"): POST to its url's target, its headers plus
   the sender's default Content-Type (runtime/resend.h), its body. */
static void sim_webhook(lines *l, const char *loop, const char *subject, const json_t *wh) {
  lines hs = {0};
  const char *name;
  json_t *v;
  int content_type = 0;
  json_object_foreach((json_t *)json_object_get(wh, "headers"), name, v) {
    header_add(&hs, name, json_string_value(v) ? json_string_value(v) : "?");
    content_type |= strcasecmp(name, "content-type") == 0;
  }
  if (!content_type) header_add(&hs, "Content-Type", "application/json");
  char *target = url_target(sget(wh, "url"));
  const json_t *body = json_object_get(wh, "body");
  webhook_line(l, sget(wh, "idempotency_key"), loop, subject, "POST", target, &hs, json_string_value(body),
               json_string_length(body));
  free(target);
}

/* ---- the simulator ---- */

typedef struct sim {
  tally t;
  lines *l;
  lines webhooks;
} sim;

static void sim_line(const json_t *o, void *ud) {
  sim *s = ud;
  const char *event = sget(o, "event"), *loop = sget(o, "loop"), *subject = sget(o, "subject");
  tally_event(&s->t, o, event);
  if (strcmp(event, "action.ok") == 0) {
    const json_t *e = json_object_get(o, "email");
    if (e) {
      const char *key = sget(e, "idempotency_key"), *to = sget(e, "to");
      if (json_object_get(e, "template"))
        out(s->l, "email %s %s %s: to %s, template %s", key, loop, subject, to, sget(e, "template"));
      else if (json_is_string(json_object_get(e, "subject")))
        out(s->l, "email %s %s %s: to %s, subject %s", key, loop, subject, to, sget(e, "subject"));
      else
        out(s->l, "email %s %s %s: to %s, no subject", key, loop, subject, to);
    }
    const json_t *wh = json_object_get(o, "webhook");
    if (wh) sim_webhook(&s->webhooks, loop, subject, wh);
  } else if (strcmp(event, "action.failed") == 0) {
    out(s->l, "dead letter %s %s step %lld: %s", loop, subject,
        (long long)json_integer_value(json_object_get(o, "step")), sget(o, "reason"));
  }
}

/* ---- the Redis run ---- */

/* An idempotency key the worker logged, with its loop and subject. */
typedef struct keyed {
  char *key, *loop, *subject;
} keyed;

typedef struct run {
  tally t;
  lines *l;
  int stopped;
  keyed *keys;
  size_t nkeys, capkeys;
} run;

static const keyed *key_find(const run *r, const char *key) {
  for (size_t i = 0; i < r->nkeys; i++)
    if (strcmp(r->keys[i].key, key) == 0) return &r->keys[i];
  return NULL;
}

/* Remembers the loop and subject of a worker's log line with an idempotency key. */
static void key_note(run *r, const json_t *o) {
  const char *key = json_string_value(json_object_get(o, "idempotency_key"));
  if (!key || key_find(r, key)) return;
  if (r->nkeys == r->capkeys) {
    r->capkeys = r->capkeys ? r->capkeys * 2 : 16;
    r->keys = xrealloc(r->keys, r->capkeys * sizeof *r->keys);
  }
  keyed *k = &r->keys[r->nkeys++];
  k->key = xstrdup(key);
  k->loop = xstrdup(sget(o, "loop"));
  k->subject = xstrdup(sget(o, "subject"));
}

static void run_line(const json_t *o, void *ud) {
  run *r = ud;
  const char *event = sget(o, "event"), *level = sget(o, "level");
  key_note(r, o);
  if (tally_event(&r->t, o, event)) return;
  if (strcmp(event, "replay.dlq") == 0) {
    out(r->l, "dead letter %s %s step %s: %s", sget(o, "loop"), sget(o, "subject"), sget(o, "step"),
        sget(o, "reason"));
  } else if (strcmp(event, "worker.stop") == 0) {
    r->stopped = 1;
    json_int_t dup = json_integer_value(json_object_get(o, "outbox_duplicates"));
    if (dup) out(r->l, "worker: %lld emails written to the outbox again (once expected)", (long long)dup);
  } else if (strcmp(level, "warn") == 0 || strcmp(level, "error") == 0) {
    out(r->l, "worker %s %s: %s", level, event, sget(o, "message"));
  }
}

/* Decodes an RFC 2047 "=?UTF-8?B?...?=" word (as the outbox writes a Subject that is not ASCII);
   anything else is returned as it is. malloc'ed. */
static char *decode_subject(const char *v) {
  size_t n = strlen(v);
  if (n < 12 || strncmp(v, "=?UTF-8?B?", 10) != 0 || strcmp(v + n - 2, "?=") != 0) return xstrdup(v);
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *o = xrealloc(NULL, n), *q = o;
  uint32_t acc = 0;
  int bits = 0;
  for (const char *p = v + 10; p < v + n - 2 && *p != '='; p++) {
    const char *c = strchr(b64, *p);
    if (!c || !*p) break;
    acc = (acc << 6) | (uint32_t)(c - b64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      *q++ = (char)((acc >> bits) & 0xff);
    }
  }
  *q = 0;
  return o;
}

/* One .eml of the outbox: its headers, and for a Resend-hosted template the id in its JSON body. */
static void read_eml(const char *dir, const char *name, lines *l) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "r");
  if (!f) die("cannot read %s: %s", path, strerror(errno));
  char *line = NULL, *to = NULL, *subject = NULL, *loop = NULL, *subj = NULL, *key = NULL;
  size_t cap = 0;
  int json = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, f)) > 0) {
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    if (n == 0) break; /* the end of the headers */
    char *colon = strchr(line, ':');
    if (!colon) continue;
    *colon = 0;
    const char *v = colon + 1 + (colon[1] == ' ');
    if (strcmp(line, "To") == 0) to = xstrdup(v);
    else if (strcmp(line, "Subject") == 0) subject = decode_subject(v);
    else if (strcmp(line, "X-Skene-Loop") == 0) loop = xstrdup(v);
    else if (strcmp(line, "X-Skene-Subject") == 0) subj = xstrdup(v);
    else if (strcmp(line, "X-Skene-Idempotency-Key") == 0) key = xstrdup(v);
    else if (strcmp(line, "Content-Type") == 0) json = strncmp(v, "application/json", 16) == 0;
  }
  const char *kname = key ? key : name;
  if (json) {
    json_error_t je;
    json_t *body = json_loadf(f, 0, &je);
    const char *id = json_string_value(json_object_get(json_object_get(body, "template"), "id"));
    out(l, "email %s %s %s: to %s, template %s", kname, loop ? loop : "?", subj ? subj : "?", to ? to : "?",
        id ? id : "?");
    json_decref(body);
  } else if (subject) {
    out(l, "email %s %s %s: to %s, subject %s", kname, loop ? loop : "?", subj ? subj : "?", to ? to : "?", subject);
  } else {
    out(l, "email %s %s %s: to %s, no subject", kname, loop ? loop : "?", subj ? subj : "?", to ? to : "?");
  }
  if (key && strlen(name) != strlen(key) + 4)
    out(l, "worker: %s is not named by its idempotency key %s", name, key);
  free(line);
  free(to);
  free(subject);
  free(loop);
  free(subj);
  free(key);
  fclose(f);
}

static void read_outbox(const char *dir, lines *l) {
  DIR *d = opendir(dir);
  if (!d) die("cannot read the outbox %s: %s", dir, strerror(errno));
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n > 4 && strcmp(e->d_name + n - 4, ".eml") == 0) read_eml(dir, e->d_name, l);
  }
  closedir(d);
}

typedef struct sinkread {
  const run *r;
  lines webhooks;
} sinkread;

/* One request conf-sink received: its line, with the loop and subject of its Idempotency-Key. */
static void sink_line(const json_t *o, void *ud) {
  sinkread *s = ud;
  lines hs = {0};
  const char *key = "-";
  size_t i;
  json_t *h;
  json_array_foreach(json_object_get(o, "headers"), i, h) {
    const char *name = json_string_value(json_array_get(h, 0)), *value = json_string_value(json_array_get(h, 1));
    if (!name || !value) continue;
    if (strcasecmp(name, "idempotency-key") == 0) key = value;
    header_add(&hs, name, value);
  }
  const keyed *k = key_find(s->r, key);
  const json_t *body = json_object_get(o, "body");
  char note[64];
  const char *text = json_string_value(body);
  size_t len = json_string_length(body);
  if (!text) { /* conf-sink could not log it as text */
    len = (size_t)snprintf(note, sizeof note, "(%lld bytes, not UTF-8)",
                           (long long)json_integer_value(json_object_get(o, "body_bytes")));
    text = note;
  }
  webhook_line(&s->webhooks, key, k ? k->loop : "?", k ? k->subject : "?", sget(o, "method"), sget(o, "path"), &hs,
               text, len);
}

int main(int argc, char **argv) {
  lines l = {0};
  if (argc == 3 && strcmp(argv[1], "sim") == 0) {
    sim s = {{0}, &l, {0}};
    each_line(argv[2], sim_line, &s);
    tally_print(&s.t, &l);
    add_counted(&l, &s.webhooks);
  } else if ((argc == 4 || argc == 5) && strcmp(argv[1], "redis") == 0) {
    run r = {{0}, &l, 0, NULL, 0, 0};
    each_line(argv[2], run_line, &r);
    tally_print(&r.t, &l);
    read_outbox(argv[3], &l);
    if (argc == 5) {
      sinkread sr = {&r, {0}};
      each_line(argv[4], sink_line, &sr);
      add_counted(&l, &sr.webhooks);
    }
    if (!r.stopped) out(&l, "worker: no worker.stop line (it did not drain and stop)");
    for (size_t i = 0; i < r.nkeys; i++) {
      free(r.keys[i].key);
      free(r.keys[i].loop);
      free(r.keys[i].subject);
    }
    free(r.keys);
  } else {
    fprintf(stderr, "usage: conf-outcomes sim TIMELINE.jsonl\n"
                    "       conf-outcomes redis REPLAY.jsonl OUTBOX [SINK.jsonl]\n");
    return 2;
  }
  print_lines(&l);
  return 0;
}
