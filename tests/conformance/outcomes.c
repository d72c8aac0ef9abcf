/*
 * outcomes.c: conf-outcomes, what the conformance suite compares (tests/conformance/README.md). It
 * reads what one store did and prints its outcomes, one per line, sorted, without times:
 *
 *   conf-outcomes sim TIMELINE.jsonl            the simulator's timeline (`skene-vm simulate`)
 *   conf-outcomes redis REPLAY.jsonl OUTBOX     conf-replay's output (the worker's log) and the .eml
 *                                               files the worker's outbox wrote
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
 *   dead letter LOOP SUBJECT step N: REASON  the simulator's action.failed; conf-replay's replay.dlq
 * and, for the Redis run only, what should never be there:
 *   worker LEVEL EVENT: MESSAGE              a warning or error the worker logged (not a trace event)
 *   worker: ...                              no worker.stop line; emails written twice to the outbox
 *
 * Exit status: 0, or 2 on usage or I/O errors.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void print_lines(lines *l) {
  qsort(l->v, l->n, sizeof *l->v, str_cmp);
  for (size_t i = 0; i < l->n; i++) {
    if (i == 0 || strcmp(l->v[i], l->v[i - 1]) != 0) puts(l->v[i]);
  }
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
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

/* ---- the simulator ---- */

typedef struct sim {
  tally t;
  lines *l;
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
  } else if (strcmp(event, "action.failed") == 0) {
    out(s->l, "dead letter %s %s step %lld: %s", loop, subject,
        (long long)json_integer_value(json_object_get(o, "step")), sget(o, "reason"));
  }
}

/* ---- the Redis run ---- */

typedef struct run {
  tally t;
  lines *l;
  int stopped;
} run;

static void run_line(const json_t *o, void *ud) {
  run *r = ud;
  const char *event = sget(o, "event"), *level = sget(o, "level");
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

int main(int argc, char **argv) {
  lines l = {0};
  if (argc == 3 && strcmp(argv[1], "sim") == 0) {
    sim s = {{0}, &l};
    each_line(argv[2], sim_line, &s);
    tally_print(&s.t, &l);
  } else if (argc == 4 && strcmp(argv[1], "redis") == 0) {
    run r = {{0}, &l, 0};
    each_line(argv[2], run_line, &r);
    tally_print(&r.t, &l);
    read_outbox(argv[3], &l);
    if (!r.stopped) out(&l, "worker: no worker.stop line (it did not drain and stop)");
  } else {
    fprintf(stderr, "usage: conf-outcomes sim TIMELINE.jsonl\n"
                    "       conf-outcomes redis REPLAY.jsonl OUTBOX\n");
    return 2;
  }
  print_lines(&l);
  return 0;
}
