/*
 * test_vm.c: the interpreter and scheduler over the in-memory store, driven directly (no scenario file):
 * conditions that hold at once, later, or never; wake-ups only for the right key; one instance per
 * subject; retries by the policy; dead letters; rendering with escapes and defaults. Built twice: with
 * computed-goto dispatch and with the plain switch (SK_NO_JUMPTABLE), so both paths run.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "lower.h"
#include "memstore.h"
#include "opcodes.h"
#include "vm.h"

#define HEAD "import { defineLoop } from '@skene/sdk';\n"
#define START 1767225600000LL /* 2026-01-01T00:00:00Z */

typedef struct {
  sk_module *m;
  sk_memstore *store;
  sk_vm *vm;
  sk_sched *sched;
  char log[64][300];
  int n;
} world;

static void on_trace(void *ud, const sk_trace *t) {
  world *w = ud;
  if (w->n >= 64) return;
  char extra[200] = "";
  if (t->kind == SK_TR_INSTANCE_END) snprintf(extra, sizeof extra, " %s", sk_outcome_name(t->outcome));
  if (t->kind == SK_TR_ACTION_RETRY) snprintf(extra, sizeof extra, " +%lld", (long long)t->delay_ms);
  if (t->kind == SK_TR_ACTION_FAILED) snprintf(extra, sizeof extra, " %s", t->reason);
  if (t->kind == SK_TR_ACTION_OK && t->call) {
    for (uint32_t i = 0; i < t->call->nfields; i++)
      if (strcmp(t->call->fields[i].name, "subject") == 0 || strcmp(t->call->fields[i].name, "argv") == 0 ||
          strcmp(t->call->fields[i].name, "url") == 0 || strcmp(t->call->fields[i].name, "body") == 0) {
        size_t l = strlen(extra);
        snprintf(extra + l, sizeof extra - l, " %s", t->call->fields[i].value->data);
      }
  }
  snprintf(w->log[w->n++], sizeof w->log[0], "%llds %s %s%s", (long long)((t->now - START) / 1000), t->subject->data,
           sk_trace_name(t->kind), extra);
}

static void setup_world(world *w, const char *text) {
  memset(w, 0, sizeof *w);
  sk_diags *d = sk_diags_new(50);
  sk_arena *arena = sk_arena_new();
  sk_source *src = sk_diags_source(d, "t.ts", text, strlen(text));
  sk_value *root = sk_extract(src, arena, d);
  sk_config *cfg = d->nerrors ? NULL : sk_check(root, src, arena, d, NULL);
  if (d->nerrors) {
    sk_diags_print(d, stderr, 0);
    fail_msg("config does not compile");
  }
  sk_module *m = sk_lower(cfg, src, d);
  uint8_t *bytes;
  size_t len;
  assert_int_equal(sk_module_write(m, &bytes, &len), 0);
  sk_module_free(m);
  char err[300];
  if (sk_module_load(bytes, len, &w->m, err, sizeof err) != 0) fail_msg("%s", err);
  free(bytes);
  sk_config_free(cfg);
  sk_arena_free(arena);
  sk_diags_free(d);
  w->store = sk_memstore_new(w->m, START);
  sk_memstore_set_trace(w->store, on_trace, w);
  sk_memstore_set_email_from(w->store, "Acme <hi@acme.test>");
  w->vm = sk_vm_new(w->m, sk_memstore_ops(), w->store);
  w->sched = sk_sched_new(w->vm, 7);
  assert_non_null(w->sched);
}

static void teardown_world(world *w) {
  sk_sched_free(w->sched);
  sk_vm_free(w->vm);
  sk_memstore_free(w->store);
  sk_module_free(w->m);
}

/* Runs timers up to t (seconds after START). */
static void advance(world *w, int64_t secs) {
  int64_t until = START + secs * 1000;
  for (int64_t t; (t = sk_sched_next_timer(w->sched)) <= until;) {
    sk_memstore_set_now(w->store, t);
    sk_sched_fire_timers(w->sched, t);
  }
  sk_memstore_set_now(w->store, until);
}

static void put(world *w, const char *table, const char *id, const char *json) {
  json_error_t e;
  json_t *row = json_loads(json, 0, &e);
  assert_non_null(row);
  uint32_t kind, ti;
  assert_int_equal(sk_memstore_put(w->store, table, id, row, &kind, &ti), 0);
  json_decref(row);
  if (ti != UINT32_MAX) sk_sched_row(w->sched, ti, kind, sk_memstore_row_id(w->store, ti, id));
  sk_sched_run(w->sched);
}

static void print_log(const world *w) {
  for (int i = 0; i < w->n; i++) fprintf(stderr, "  %d: %s\n", i, w->log[i]);
}

static void expect_count(const world *w, int n) {
  if (w->n != n) {
    print_log(w);
    fail_msg("got %d events, want %d", w->n, n);
  }
}

static void expect_log(world *w, const char *const *want, int n) {
  for (int i = 0; i < w->n && i < n; i++)
    if (strcmp(w->log[i], want[i]) != 0) fail_msg("event %d: got '%s', want '%s'", i, w->log[i], want[i]);
  expect_count(w, n);
}

static const char *activation =
    HEAD "export default defineLoop({ type: 'activation', steps: [{\n"
         "  trigger: { type: 'database', table: 'users', event: 'insert' },\n"
         "  condition: { type: 'query', timeout: '5m',\n"
         "    query: `SELECT * FROM user_actions WHERE user_id = $1 AND action_type = 'first_project_created'` },\n"
         "  action: { type: 'redis', command: ['SET', 'hello:{{user.id}}', '{{user.name | default: \"there\"}} <{{match.id}}>'] },\n"
         "}], recovery: { retries: 3, backoff: 'exponential', delay: '1s', jitter: false } });\n";

static void test_becomes_true_later(void **state) {
  (void)state;
  world w;
  setup_world(&w, activation);
  put(&w, "users", "u1", "{\"name\": \"Ada\"}");
  put(&w, "users", "u2", "{}");
  advance(&w, 120);
  put(&w, "user_actions", "a1", "{\"user_id\": \"u2\", \"action_type\": \"other\"}");  /* another action type */
  advance(&w, 180);
  put(&w, "user_actions", "a2", "{\"user_id\": \"u1\", \"action_type\": \"first_project_created\"}");
  advance(&w, 600);
  const char *want[] = {
      "0s u1 instance.start", "0s u1 condition.wait", "0s u2 instance.start", "0s u2 condition.wait",
      "180s u1 condition.met", "180s u1 action.attempt", "180s u1 action.ok SET hello:u1 Ada <a2>",
      "180s u1 instance.end completed", "300s u2 condition.timeout", "300s u2 instance.end timed_out"};
  expect_log(&w, want, 10);
  teardown_world(&w);
}

static void test_already_true_and_twice(void **state) {
  (void)state;
  world w;
  setup_world(&w, activation);
  put(&w, "user_actions", "a1", "{\"user_id\": \"u1\", \"action_type\": \"first_project_created\"}");
  put(&w, "users", "u1", "{}");
  put(&w, "users", "u1", "{\"name\": \"again\"}"); /* an update: no second instance */
  advance(&w, 600);
  const char *want[] = {"0s u1 instance.start", "0s u1 condition.met", "0s u1 action.attempt",
                        "0s u1 action.ok SET hello:u1 there <a1>", "0s u1 instance.end completed"};
  expect_log(&w, want, 5);
  sk_sched_stats st;
  sk_sched_get_stats(w.sched, &st);
  assert_int_equal(st.started, 1);
  assert_int_equal(st.waiting, 0);
  teardown_world(&w);
}

static void test_retries_then_dead_letter(void **state) {
  (void)state;
  world w;
  setup_world(&w, activation);
  sk_memstore_add_fault(w.store, "redis", 500, 2, 0);
  put(&w, "user_actions", "a1", "{\"user_id\": \"u1\", \"action_type\": \"first_project_created\"}");
  put(&w, "users", "u1", "{}");
  advance(&w, 60);
  const char *want[] = {"0s u1 instance.start", "0s u1 condition.met", "0s u1 action.attempt",
                        "0s u1 action.retry +1000", "1s u1 action.attempt", "1s u1 action.retry +2000",
                        "3s u1 action.attempt", "3s u1 action.ok SET hello:u1 there <a1>", "3s u1 instance.end completed"};
  expect_log(&w, want, 9);
  teardown_world(&w);

  setup_world(&w, activation);
  sk_memstore_add_fault(w.store, "redis", 503, 10, 0);
  put(&w, "user_actions", "a1", "{\"user_id\": \"u1\", \"action_type\": \"first_project_created\"}");
  put(&w, "users", "u1", "{}");
  advance(&w, 60);
  /* 1 + 3 retries at +1s, +2s, +4s, then the dead letter */
  expect_count(&w, 11);
  assert_string_equal(w.log[7], "3s u1 action.retry +4000");
  assert_string_equal(w.log[8], "7s u1 action.attempt");
  assert_string_equal(w.log[9], "7s u1 action.failed retries exhausted after 4 attempts: redis: HTTP 503");
  assert_string_equal(w.log[10], "7s u1 instance.end failed");
  sk_sched_stats st;
  sk_sched_get_stats(w.sched, &st);
  assert_int_equal(st.dead_letters, 1);
  teardown_world(&w);
}

static void test_missing_value_dead_letter(void **state) {
  (void)state;
  world w;
  setup_world(&w, HEAD "export default defineLoop({ type: 'activation', steps: [{\n"
                       "  trigger: { type: 'database', table: 'users', event: 'insert' },\n"
                       "  action: { type: 'redis', command: ['SET', 'x', '{{user.name}}'] } }] });\n");
  put(&w, "users", "u1", "{\"email\": \"a@b.c\"}");
  const char *want[] = {"0s u1 instance.start",
                        "0s u1 action.failed template value missing: {{user.name}} has no value and no default (in argv)",
                        "0s u1 instance.end failed"};
  expect_log(&w, want, 3);
  teardown_world(&w);
}

static void test_html_escaping_and_multistep(void **state) {
  (void)state;
  world w;
  setup_world(&w, HEAD "export default defineLoop({ type: 'activation', steps: [\n"
                       "  { trigger: { type: 'database', table: 'users', event: 'insert' }, delay: '1h',\n"
                       "    action: { type: 'webhook', url: 'https://h.test/x?n={{user.name}}', body: { n: '{{user.name}}' } } },\n"
                       "  { trigger: { type: 'database', table: 'projects', event: 'insert' },\n"
                       "    action: { type: 'redis', command: ['SET', 'p', '{{project.title}}'] } }] });\n");
  put(&w, "users", "u1", "{\"name\": \"<script>\\\"x\\\"&\"}");
  put(&w, "projects", "p0", "{\"user_id\": \"u1\", \"title\": \"early\"}"); /* before the step waits: not seen */
  advance(&w, 3600);
  put(&w, "projects", "p1", "{\"user_id\": \"u2\", \"title\": \"other user\"}");
  put(&w, "projects", "p2", "{\"user_id\": \"u1\", \"title\": \"mine\"}");
  /* the webhook after the 1h delay: the name URL-encoded in the url, JSON-escaped in the body; then
     only u1's own project after the step began waiting (p0 came before, p1 is u2's) */
  const char *want[] = {"0s u1 instance.start", "3600s u1 action.attempt",
                        "3600s u1 action.ok https://h.test/x?n=%3Cscript%3E%22x%22%26 {\"n\":\"<script>\\\"x\\\"&\"}",
                        "3600s u1 action.attempt", "3600s u1 action.ok SET p mine", "3600s u1 instance.end completed"};
  expect_log(&w, want, 6);
  teardown_world(&w);
}

/* Snapshots: every kind of register round-trips; truncated, corrupt or foreign ones are refused. */
static void test_snapshot(void **state) {
  (void)state;
  world w;
  setup_world(&w, activation);
  const sk_loop_rec *l = &w.m->loops[0];
  sk_inst *in = calloc(1, sizeof *in + l->nregs * sizeof(sk_val));
  assert_non_null(in);
  in->nregs = (uint16_t)l->nregs;
  in->pc = 1;
  in->attempts = 2;
  in->state = SK_INST_AWAITING;
  in->regs[0] = sk_val_str(sk_str_from("u1"));
  in->regs[1] = sk_val_row(0, sk_str_from("u1"));
  in->regs[2] = sk_val_int(-1767225900000LL);
  in->regs[4] = sk_val_str(sk_str_new("a\0b\xff", 4));
  uint8_t *img;
  size_t len;
  assert_int_equal(sk_snapshot_encode(w.m, in, &img, &len), 0);
  char err[200];
  sk_inst *back = sk_snapshot_decode(w.m, img, len, err, sizeof err);
  if (!back) fail_msg("%s", err);
  assert_int_equal(back->pc, 1);
  assert_int_equal(back->attempts, 2);
  assert_int_equal(back->state, SK_INST_AWAITING);
  assert_int_equal(back->regs[2].tag, SK_VAL_INT);
  assert_int_equal(back->regs[2].u.i, -1767225900000LL);
  assert_int_equal(back->regs[3].tag, SK_VAL_NIL);
  assert_int_equal(back->regs[1].tag, SK_VAL_ROW);
  assert_true(sk_str_eq(back->regs[1].u.s, in->regs[1].u.s));
  assert_int_equal(back->regs[4].u.s->len, 4);
  assert_memory_equal(back->regs[4].u.s->data, "a\0b\xff", 4);
  /* the same bytes again */
  uint8_t *img2;
  size_t len2;
  assert_int_equal(sk_snapshot_encode(w.m, back, &img2, &len2), 0);
  assert_int_equal(len, len2);
  assert_memory_equal(img, img2, len);
  free(img2);
  sk_snapshot_free(back);
  for (size_t n = 0; n < len; n++) { /* every truncation */
    assert_null(sk_snapshot_decode(w.m, img, n, err, sizeof err));
    assert_true(err[0] != 0);
  }
  img[1] ^= 1; /* the module hash */
  assert_null(sk_snapshot_decode(w.m, img, len, err, sizeof err));
  assert_non_null(strstr(err, "another bytecode"));
  img[1] ^= 1;
  img[25] = 9; /* R0's tag */
  assert_null(sk_snapshot_decode(w.m, img, len, err, sizeof err));
  assert_non_null(strstr(err, "unknown value tag 9"));
  img[25] = SK_VAL_STR;
  img[26] = 0xff; /* R0's length runs past the end */
  assert_null(sk_snapshot_decode(w.m, img, len, err, sizeof err));
  assert_non_null(strstr(err, "truncated"));
  free(img);
  sk_snapshot_free(in);
  teardown_world(&w);
}

/*
 * An asynchronous runtime, as the Redis one will be: over the in-memory store, it answers "not yet" to
 * the first read of every row field and every index query (and loads it), and performs every effect
 * later. The instances must suspend, resume and end exactly as with the synchronous store.
 */
typedef struct {
  sk_memstore *store;
  sk_vm *vm;
  sk_sched *sched;
  char loaded[4096][96];
  int nloaded;
  uint32_t ready[256];      /* instances to resume when the loads complete */
  int nready;
  struct { uint32_t id; int fail_status; } effects[64];
  int neffects;
  int fail_next;            /* the next effect fails with this HTTP status (0: succeeds) */
  int pendings;             /* how many "not yet" answers were given */
} lazy;

static lazy *the_lazy;

static int lazy_loaded(lazy *z, const char *key) {
  if (sk_vm_running(z->vm) == SK_NONE) return 1; /* the scheduler reading a row it was told about */
  for (int i = 0; i < z->nloaded; i++)
    if (strcmp(z->loaded[i], key) == 0) return 1;
  assert_true(z->nloaded < 4096 && z->nready < 256);
  snprintf(z->loaded[z->nloaded++], sizeof z->loaded[0], "%s", key);
  z->ready[z->nready++] = sk_vm_running(z->vm);
  z->pendings++;
  return 0;
}

static int64_t lz_now(void *ud) { return sk_memstore_ops()->now(((lazy *)ud)->store); }
static sk_string *lz_row_field(void *ud, uint32_t table, const sk_string *id, const char *field) {
  lazy *z = ud;
  char key[96];
  snprintf(key, sizeof key, "row %u %s %s", table, id->data, field);
  if (!lazy_loaded(z, key)) return SK_PENDING;
  return sk_memstore_ops()->row_field(z->store, table, id, field);
}
static uint32_t lz_query(void *ud, uint32_t shape, sk_string *const *values, uint32_t n, uint32_t limit,
                         sk_string **first) {
  lazy *z = ud;
  char key[96];
  snprintf(key, sizeof key, "query %u %s", shape, n ? values[n - 1]->data : "");
  /* every evaluation of a condition is a fresh read: "not yet", then the answer, then "not yet" again */
  if (!lazy_loaded(z, key)) return SK_QUERY_PENDING;
  for (int i = 0; i < z->nloaded; i++)
    if (strcmp(z->loaded[i], key) == 0) memcpy(z->loaded[i], z->loaded[--z->nloaded], sizeof z->loaded[0]);
  return sk_memstore_ops()->query(z->store, shape, values, n, limit, first);
}
static void lz_redis(void *ud, sk_string *const *argv, uint32_t argc, int is_effect, sk_io *out) {
  lazy *z = ud;
  if (is_effect) {
    z->effects[z->neffects].id = sk_vm_running(z->vm);
    z->effects[z->neffects++].fail_status = z->fail_next;
    z->fail_next = 0;
    out->pending = 1;
    return;
  }
  sk_memstore_ops()->redis(z->store, argv, argc, is_effect, out);
}
static void lz_effect(void *ud, const sk_effect_call *call, sk_io *out) {
  lz_redis(ud, NULL, 0, 1, out);
  (void)call;
}
static void lz_trace(void *ud, const sk_trace *t) { sk_memstore_ops()->trace(((lazy *)ud)->store, t); }

/* Completes everything outstanding until nothing is: loads first, then effects. */
static void lazy_settle(lazy *z) {
  for (int round = 0; round < 100 && (z->nready || z->neffects); round++) {
    int n = z->nready;
    z->nready = 0;
    for (int i = 0; i < n; i++) sk_sched_io_ready(z->sched, z->ready[i]);
    sk_sched_run(z->sched);
    n = z->neffects;
    z->neffects = 0;
    for (int i = 0; i < n; i++) {
      sk_io io = {0};
      if (z->effects[i].fail_status) {
        io.transient = 1;
        snprintf(io.reason, sizeof io.reason, "redis: HTTP %d", z->effects[i].fail_status);
      } else {
        io.ok = 1;
        io.result = sk_str_from("OK");
      }
      sk_sched_io_done(z->sched, z->effects[i].id, &io);
      sk_str_unref(io.result);
    }
    sk_sched_run(z->sched);
  }
}

static void test_async_runtime(void **state) {
  (void)state;
  static const sk_runtime_ops lazy_ops = {lz_now, lz_row_field, lz_query, lz_redis, lz_effect, lz_trace};
  world w;
  setup_world(&w, activation);
  lazy *zp = calloc(1, sizeof *zp);
  assert_non_null(zp);
  lazy *z_ = zp;
#define z (*z_)
  the_lazy = zp;
  z.store = w.store;
  sk_sched_free(w.sched);
  sk_vm_free(w.vm);
  w.vm = z.vm = sk_vm_new(w.m, &lazy_ops, &z);
  w.sched = z.sched = sk_sched_new(w.vm, 7);
  z.fail_next = 500; /* the first send fails: retried after 1s, as with the synchronous store */
  put(&w, "users", "u1", "{\"name\": \"Ada\"}");
  lazy_settle(&z);
  put(&w, "users", "u2", "{}");
  lazy_settle(&z);
  advance(&w, 120);
  put(&w, "user_actions", "a2", "{\"user_id\": \"u1\", \"action_type\": \"first_project_created\"}");
  lazy_settle(&z);
  for (int64_t t = 120; t <= 600; t++) { /* a second at a time, settling the runtime in between */
    advance(&w, t);
    lazy_settle(&z);
  }
  const char *want[] = {
      "0s u1 instance.start", "0s u1 condition.wait", "0s u2 instance.start", "0s u2 condition.wait",
      "120s u1 condition.met", "120s u1 action.attempt", "120s u1 action.retry +1000",
      "121s u1 action.attempt", "121s u1 action.ok", "121s u1 instance.end completed",
      "300s u2 condition.timeout", "300s u2 instance.end timed_out"};
  expect_log(&w, want, 12);
  assert_true(z.pendings > 4); /* it really went through "not yet" */
  teardown_world(&w);
  free(zp);
#undef z
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_becomes_true_later), cmocka_unit_test(test_already_true_and_twice),
      cmocka_unit_test(test_retries_then_dead_letter), cmocka_unit_test(test_missing_value_dead_letter),
      cmocka_unit_test(test_html_escaping_and_multistep), cmocka_unit_test(test_snapshot),
      cmocka_unit_test(test_async_runtime),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
