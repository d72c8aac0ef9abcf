/*
 * test_compile.c: the compiler pipeline in memory, source text to verified module: what the lowering
 * produces (code shape, registers that templates read, query shapes, defaults), that string positions
 * survive escapes and newlines, and the helpers the checker relies on.
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
#include "opcodes.h"
#include "skb.h"
#include "value.h"

typedef struct {
  sk_diags *d;
  sk_arena *arena;
  sk_config *cfg;
  sk_module *m;     /* loaded back from the written bytes */
  uint8_t *bytes;
  size_t len;
} compiled;

static void compile_text(compiled *c, const char *text, const char *templates) {
  memset(c, 0, sizeof *c);
  c->d = sk_diags_new(50);
  c->arena = sk_arena_new();
  sk_source *src = sk_diags_source(c->d, "t.ts", text, strlen(text));
  sk_value *root = sk_extract(src, c->arena, c->d);
  sk_check_options o = {templates};
  if (c->d->nerrors == 0) c->cfg = sk_check(root, src, c->arena, c->d, &o);
  if (c->d->nerrors == 0 && c->cfg) {
    sk_module *m = sk_lower(c->cfg, src, c->d);
    assert_non_null(m);
    assert_int_equal(sk_module_write(m, &c->bytes, &c->len), 0);
    sk_module_free(m);
    char err[300];
    if (sk_module_load(c->bytes, c->len, &c->m, err, sizeof err) != 0) fail_msg("does not verify: %s", err);
  }
}

static void compiled_free(compiled *c) {
  sk_module_free(c->m);
  free(c->bytes);
  sk_config_free(c->cfg);
  sk_arena_free(c->arena);
  sk_diags_free(c->d);
}

static const char *first_error(compiled *c) {
  for (size_t i = 0; i < c->d->list.n; i++)
    if (c->d->list.v[i].sev == SK_ERROR) return c->d->list.v[i].msg;
  return NULL;
}

static unsigned op_at(const sk_module *m, uint32_t loop, uint32_t pc) {
  return SK_GET_OP(m->code[m->loops[loop].code_first + pc].insn);
}

#define HEAD "import { defineLoop } from '@skene/sdk';\n"

static void test_activation_shape(void **state) {
  (void)state;
  compiled c;
  compile_text(&c,
               HEAD "export default defineLoop({ type: 'activation', steps: [{\n"
                    "  trigger: { type: 'database', table: 'users', event: 'insert' },\n"
                    "  condition: { type: 'query', timeout: '5m',\n"
                    "    query: `SELECT * FROM user_actions WHERE user_id = $1 AND action_type = 'first_project_created'` },\n"
                    "  action: { type: 'email', provider: 'resend', template: 'activation_welcome',\n"
                    "    personalization: { name: '{{user.name | default: \"there\"}}', activationLink: '{{user.link}}' } } }] });\n",
               SK_SOURCE_DIR "/examples/activation/templates");
  assert_null(first_error(&c));
  const sk_module *m = c.m;
  assert_int_equal(m->nloops, 1);
  const sk_loop_rec *l = &m->loops[0];
  assert_string_equal(sk_str(m, l->name_str), "activation");
  assert_int_equal(l->retries, 3);
  assert_int_equal(l->backoff, SK_BACKOFF_EXPONENTIAL);
  assert_int_equal(l->delay_ms, 1000);
  assert_int_equal(l->max_delay_ms, 3600000);
  /* DEADLINE, AWAIT, JMPIFNOT, RENDER x2 (the template file reads {{name}}, {{activationLink}}),
     EFFECT, JMP, END timed_out, END completed */
  const unsigned want[] = {SK_OP_DEADLINE, SK_OP_AWAIT, SK_OP_JMPIFNOT, SK_OP_RENDER, SK_OP_RENDER,
                           SK_OP_EFFECT, SK_OP_JMP, SK_OP_END, SK_OP_END};
  assert_int_equal(l->code_count, 9);
  for (uint32_t pc = 0; pc < 9; pc++) assert_int_equal(op_at(m, 0, pc), want[pc]);
  uint32_t deadline = m->code[l->code_first].insn;
  const sk_const_rec *k = &m->consts[l->k_first + SK_GETARG_Bx(deadline)];
  assert_int_equal(k->type, SK_CONST_INT);
  assert_int_equal(k->ival, 300000);
  assert_int_equal(SK_GETARG_A(m->code[l->code_first + 7].insn), SK_OUTCOME_TIMED_OUT);
  assert_int_equal(SK_GETARG_A(m->code[l->code_first + 8].insn), SK_OUTCOME_COMPLETED);
  /* the condition: shape user_actions(action_type,user_id); $1 is the subject (R0) */
  const sk_cond_rec *cd = &m->conds[l->cond_first];
  assert_int_equal(m->nshapes, 1);
  assert_string_equal(sk_str(m, m->shapes[cd->shape].cols_str), "action_type,user_id");
  assert_string_equal(sk_str(m, m->tables[m->shapes[cd->shape].table].name_str), "user_actions");
  assert_int_equal(cd->fld_count, 2);
  const sk_tmpl_rec *t_uid = &m->tmpls[l->tmpl_first + m->fields[cd->fld_first + 1].tmpl];
  assert_int_equal(t_uid->seg_count, 1);
  assert_int_equal(m->segs[t_uid->seg_first].kind, SK_SEG_VAR);
  assert_int_equal(m->segs[t_uid->seg_first].reg, 0);
  /* personalization: {{user.name | default: "there"}} reads field name of R1 */
  uint32_t render = m->code[l->code_first + 3].insn;
  const sk_tmpl_rec *tp = &m->tmpls[l->tmpl_first + SK_GETARG_Bx(render)];
  assert_string_equal(sk_str(m, tp->name_str), "personalization.name");
  const sk_seg_rec *s = &m->segs[tp->seg_first];
  assert_int_equal(s->reg, 1);
  assert_string_equal(sk_str(m, s->str), "name");
  assert_string_equal(sk_str(m, s->default_str), "there");
  /* the email: default to is {{row.email}}; the html body reads {{name}} from the RENDER's register
     and escapes it for HTML */
  const sk_effect_rec *e = &m->effects[l->eff_first];
  assert_int_equal(e->kind, SK_EFFECT_EMAIL);
  assert_int_equal(e->provider, SK_PROVIDER_RESEND);
  int saw_to = 0, saw_html = 0, saw_subject = 0;
  for (uint32_t i = 0; i < e->fld_count; i++) {
    const char *name = sk_str(m, m->fields[e->fld_first + i].name_str);
    const sk_tmpl_rec *t = &m->tmpls[l->tmpl_first + m->fields[e->fld_first + i].tmpl];
    if (strcmp(name, "to") == 0) {
      saw_to = 1;
      assert_int_equal(m->segs[t->seg_first].reg, 1);
      assert_string_equal(sk_str(m, m->segs[t->seg_first].str), "email");
    } else if (strcmp(name, "html") == 0) {
      saw_html = 1;
      assert_int_equal(t->escape, SK_ESC_HTML);
      int reads_name = 0;
      for (uint32_t si = 0; si < t->seg_count; si++) {
        const sk_seg_rec *sg = &m->segs[t->seg_first + si];
        if (sg->kind == SK_SEG_VAR && strcmp(sk_str(m, sg->display_str), "name") == 0) {
          reads_name = 1;
          assert_int_equal(sg->reg, SK_GETARG_A(render));
          assert_int_equal(sg->str, SK_NONE);
        }
      }
      assert_true(reads_name);
    } else if (strcmp(name, "subject") == 0) {
      saw_subject = 1;
    }
  }
  assert_true(saw_to && saw_html && saw_subject);
  /* the idempotency seed depends on (loop, step, slot) only */
  assert_int_not_equal(e->key_seed, 0);
  compiled_free(&c);
}

static void test_resend_template(void **state) {
  (void)state;
  compiled c;
  compile_text(&c,
               HEAD "export default defineLoop({ type: 'activation', steps: [{\n"
                    "  trigger: { type: 'database', table: 'users', event: 'insert' },\n"
                    "  action: { type: 'email', template: 'resend:welcome-v2',\n"
                    "    personalization: { name: '{{user.name}}' } } }] });\n",
               NULL);
  assert_null(first_error(&c));
  const sk_module *m = c.m;
  const sk_loop_rec *l = &m->loops[0];
  /* Resend renders the template: the variables go in the request, no RENDER into registers */
  assert_int_equal(l->code_count, 2);
  assert_int_equal(op_at(m, 0, 0), SK_OP_EFFECT);
  const sk_effect_rec *e = &m->effects[l->eff_first];
  int saw_tmpl = 0, saw_var = 0;
  for (uint32_t i = 0; i < e->fld_count; i++) {
    const char *name = sk_str(m, m->fields[e->fld_first + i].name_str);
    const sk_tmpl_rec *t = &m->tmpls[l->tmpl_first + m->fields[e->fld_first + i].tmpl];
    if (strcmp(name, "template") == 0) {
      saw_tmpl = 1;
      assert_string_equal(sk_str(m, m->segs[t->seg_first].str), "welcome-v2");
    } else if (strcmp(name, "var.name") == 0) {
      saw_var = 1;
      assert_int_equal(m->segs[t->seg_first].reg, 1);
      assert_string_equal(sk_str(m, m->segs[t->seg_first].str), "name");
    }
  }
  assert_true(saw_tmpl && saw_var);
  compiled_free(&c);
}

static void test_skip_and_multistep(void **state) {
  (void)state;
  compiled c;
  compile_text(&c,
               HEAD "export default defineLoop({ type: 'retention', steps: [\n"
                    "  { trigger: { type: 'database', table: 'users', event: 'insert' },\n"
                    "    condition: { type: 'redis', command: ['SISMEMBER', 'vip', '{{user.id}}'] },\n"
                    "    action: { type: 'redis', command: ['HSET', 'users:{{row.id}}', 'vip_seen', '{{now}}'] } },\n"
                    "  { trigger: { type: 'database', table: 'projects', event: 'insert' }, delay: '1h',\n"
                    "    condition: { type: 'redis', command: ['EXISTS', 'x:{{project.name}}'] },\n"
                    "    action: { type: 'webhook', url: 'https://example.com/h?u={{user.id}}',\n"
                    "      body: { user: '{{user.id}}', n: 1, ok: true } } } ] });\n",
               NULL);
  assert_null(first_error(&c));
  const sk_module *m = c.m;
  const sk_loop_rec *l = &m->loops[0];
  assert_int_equal(l->step_count, 2);
  assert_int_equal(l->ev_count, 2);
  /* the second trigger links the subject through user_id */
  assert_string_equal(sk_str(m, m->events[l->ev_first + 1].subject_col_str), "user_id");
  assert_int_equal(m->events[l->ev_first].subject_col_str, SK_NONE);
  /* the last step's false condition ends the instance as skipped */
  uint32_t last = l->code_count - 1;
  assert_int_equal(op_at(m, 0, last), SK_OP_END);
  assert_int_equal(SK_GETARG_A(m->code[l->code_first + last].insn), SK_OUTCOME_SKIPPED);
  /* the first step's false condition jumps to the second step's WAITEV preamble */
  assert_int_equal(op_at(m, 0, 0), SK_OP_CHECK);
  uint32_t j = m->code[l->code_first + 1].insn;
  assert_int_equal(SK_GET_OP(j), SK_OP_JMPIFNOT);
  uint32_t target = 2 + (uint32_t)SK_GETARG_sBx(j);
  assert_int_equal(op_at(m, 0, target), SK_OP_LOADNIL);
  assert_int_equal(op_at(m, 0, target + 1), SK_OP_WAITEV);
  /* the webhook body is a JSON template whose placeholders are JSON-escaped */
  const sk_effect_rec *e = &m->effects[l->eff_first + 1];
  assert_int_equal(e->kind, SK_EFFECT_WEBHOOK);
  int saw_body = 0, saw_url = 0;
  for (uint32_t i = 0; i < e->fld_count; i++) {
    const char *name = sk_str(m, m->fields[e->fld_first + i].name_str);
    const sk_tmpl_rec *t = &m->tmpls[l->tmpl_first + m->fields[e->fld_first + i].tmpl];
    if (strcmp(name, "body") == 0) {
      saw_body = 1;
      assert_int_equal(t->escape, SK_ESC_JSON);
      assert_string_equal(sk_str(m, m->segs[t->seg_first].str), "{\"user\":\"");
      assert_string_equal(sk_str(m, m->segs[t->seg_first + 2].str), "\",\"n\":1,\"ok\":true}");
    } else if (strcmp(name, "url") == 0) {
      saw_url = 1;
      assert_int_equal(t->escape, SK_ESC_URL);
    }
  }
  assert_true(saw_body && saw_url);
  /* {{project.name}} reads the row register the WAITEV filled (its A + 1) */
  const sk_cond_rec *cd = &m->conds[l->cond_first + 1];
  const sk_tmpl_rec *t = &m->tmpls[l->tmpl_first + m->fields[cd->fld_first + 1].tmpl];
  assert_int_equal(m->segs[t->seg_first + 1].reg, SK_GETARG_A(m->code[l->code_first + target + 1].insn) + 1);
  compiled_free(&c);
}

/* A webhook body: a placeholder whose default has double quotes keeps it; a key that looks like a
   placeholder is plain text, JSON-escaped. (Both once broke: the body was re-parsed from its JSON.) */
static void test_webhook_body(void **state) {
  (void)state;
  compiled c;
  compile_text(&c,
               HEAD "export default defineLoop({ type: 'activation', steps: [{\n"
                    "  trigger: { type: 'database', table: 'users', event: 'insert' },\n"
                    "  action: { type: 'webhook', url: 'https://example.com/h',\n"
                    "    body: { who: `{{user.name | default: \"a 'b'\"}}`, '{{k}}': 1 } } }] });\n",
               NULL);
  assert_null(first_error(&c));
  const sk_module *m = c.m;
  const sk_loop_rec *l = &m->loops[0];
  const sk_effect_rec *e = &m->effects[l->eff_first];
  const sk_tmpl_rec *t = NULL;
  for (uint32_t i = 0; i < e->fld_count; i++)
    if (strcmp(sk_str(m, m->fields[e->fld_first + i].name_str), "body") == 0)
      t = &m->tmpls[l->tmpl_first + m->fields[e->fld_first + i].tmpl];
  assert_non_null(t);
  assert_int_equal(t->escape, SK_ESC_JSON);
  assert_int_equal(t->seg_count, 3);
  assert_string_equal(sk_str(m, m->segs[t->seg_first].str), "{\"who\":\"");
  const sk_seg_rec *v = &m->segs[t->seg_first + 1];
  assert_int_equal(v->kind, SK_SEG_VAR);
  assert_string_equal(sk_str(m, v->str), "name");
  assert_string_equal(sk_str(m, v->default_str), "a 'b'");
  assert_string_equal(sk_str(m, m->segs[t->seg_first + 2].str), "\",\"{{k}}\":1}");
  compiled_free(&c);
}

static void test_deterministic(void **state) {
  (void)state;
  const char *text = HEAD "const T = '2h' as const;\n"
                          "export default [defineLoop({ type: 'conversion', name: 'a', steps: [{\n"
                          "  trigger: { type: 'database', table: 'orgs', event: 'update' },\n"
                          "  condition: { type: 'query', query: 'select id from plans where org_id = $1 limit 1', timeout: T },\n"
                          "  action: { type: 'redis', command: ['SET', 'k:{{org.id}}', '1'] } }] }),\n"
                          " defineLoop({ type: 'conversion', name: 'b', steps: [{\n"
                          "  trigger: { type: 'database', table: 'orgs', event: 'insert' },\n"
                          "  condition: { type: 'query', query: 'SELECT * FROM plans WHERE org_id = $1', timeout: 7200000 },\n"
                          "  action: { type: 'redis', command: ['SET', 'k:{{org.id}}', '2'] } }] })];\n";
  compiled a, b;
  compile_text(&a, text, NULL);
  compile_text(&b, text, NULL);
  assert_null(first_error(&a));
  assert_int_equal(a.len, b.len);
  assert_memory_equal(a.bytes, b.bytes, a.len);
  /* two loops share one index (same table and columns); 'orgs' is bound as 'org' */
  assert_int_equal(a.m->nshapes, 1);
  assert_int_equal(a.m->nloops, 2);
  assert_string_equal(sk_str(a.m, a.m->tables[0].singular_str), "org");
  /* '2h' through a const and 7200000 are the same constant */
  const sk_const_rec *k0 = &a.m->consts[a.m->loops[0].k_first];
  const sk_const_rec *k1 = &a.m->consts[a.m->loops[1].k_first];
  assert_int_equal(k0->ival, 7200000);
  assert_int_equal(k1->ival, 7200000);
  compiled_free(&a);
  compiled_free(&b);
}

static void test_string_positions(void **state) {
  (void)state;
  /* An escape before the error shifts the decoded text; the diagnostic must still hit the token. */
  const char *text = HEAD "export default defineLoop({ type: 'activation', steps: [{\n"
                          "  trigger: { type: 'database', table: 'users', event: 'insert' },\n"
                          "  condition: { type: 'query', query: 'SELECT * FROM t WHERE a = \\'x\\' OR b = 1' } }] });\n";
  compiled c;
  compile_text(&c, text, NULL);
  const char *msg = first_error(&c);
  assert_non_null(msg);
  assert_string_equal(msg, "'OR' is not supported: conditions combine with AND only");
  uint32_t line, col;
  const sk_diag_item *g = &c.d->list.v[0];
  sk_source_pos(g->src, g->off, &line, &col);
  assert_int_equal(line, 4);
  assert_memory_equal(text + g->off, "OR", 2);
  assert_int_equal(g->len, 2);
  compiled_free(&c);
}

/* A surrogate pair (\uD83D\uDE00) and a code point escape (\u{1F600}) are the same 4 bytes of UTF-8. */
static void test_surrogate_pair(void **state) {
  (void)state;
  compiled c;
  compile_text(&c,
               HEAD "export default defineLoop({ type: 'activation', opinion: '\\uD83D\\uDE00|\\u{1F600}|\\u00e9',\n"
                    "  steps: [{ trigger: { type: 'database', table: 'users', event: 'insert' } }] });\n",
               NULL);
  assert_null(first_error(&c));
  assert_string_equal(sk_str(c.m, c.m->loops[0].opinion_str), "\xf0\x9f\x98\x80|\xf0\x9f\x98\x80|\xc3\xa9");
  compiled_free(&c);
}

static void test_singular(void **state) {
  (void)state;
  sk_arena *a = sk_arena_new();
  assert_string_equal(sk_singular(a, "users"), "user");
  assert_string_equal(sk_singular(a, "companies"), "company");
  assert_string_equal(sk_singular(a, "addresses"), "address");
  assert_string_equal(sk_singular(a, "user_actions"), "user_action");
  assert_string_equal(sk_singular(a, "boxes"), "box");
  assert_string_equal(sk_singular(a, "class"), "class");
  assert_string_equal(sk_singular(a, "data"), "data");
  sk_arena_free(a);
}

static void test_suggest(void **state) {
  (void)state;
  const char *keys[] = {"trigger", "delay", "condition", "action", "onTimeout"};
  assert_string_equal(sk_suggest("triger", keys, 5), "trigger");
  assert_string_equal(sk_suggest("ontimeout", keys, 5), "onTimeout");
  assert_null(sk_suggest("zzzzzz", keys, 5));
  assert_int_equal(sk_edit_distance("kitten", "sitting"), 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_activation_shape), cmocka_unit_test(test_resend_template),
      cmocka_unit_test(test_skip_and_multistep),
      cmocka_unit_test(test_webhook_body),     cmocka_unit_test(test_deterministic),    cmocka_unit_test(test_string_positions),
      cmocka_unit_test(test_surrogate_pair),   cmocka_unit_test(test_singular),         cmocka_unit_test(test_suggest),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
