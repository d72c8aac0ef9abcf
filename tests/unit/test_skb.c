/*
 * test_skb.c: unit tests of the .skb format (vm/skb.c), its loader and verifier (vm/load.c) and the
 * disassembler (vm/dump.c).
 *
 * A small module is built by hand (two loops: an activation loop with a query condition and an email,
 * using every opcode; a retention loop with a Redis condition, a webhook and a Redis effect). It must
 * round-trip through sk_module_write / sk_module_load field for field and byte for byte. Then every
 * verifier rule is exercised: the in-memory module is mutated, written (the writer recomputes the hash)
 * and loaded, and the refusal message must name the problem; byte-level damage (magic, truncation, hash,
 * version, section table) is tested on the written image.
 *
 * `test_skb --write-sample FILE` writes the hand-built module to FILE (a seed for tests/skb_mutate.c).
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
#include <xxhash.h>

#include "dump.h"
#include "opcodes.h"
#include "skb.h"

/* ---- building a module by hand ---- */

static void *grow(void *p, size_t elem, size_t n) {
  void *q = realloc(p, elem * n);
  assert_non_null(q);
  return q;
}

/* Appends a record to m->arr and returns its index. */
#define ADD(m, arr, cnt, T, ...) \
  ((m)->arr = grow((m)->arr, sizeof(T), (size_t)(m)->cnt + 1), (m)->arr[(m)->cnt] = (T){__VA_ARGS__}, (m)->cnt++)

/* Appends a string (NUL-terminated in strbytes, as the loader lays them out) and returns its index. */
static uint32_t S(sk_module *m, const char *s) {
  uint32_t len = (uint32_t)strlen(s);
  m->strbytes = grow(m->strbytes, 1, (size_t)m->strbytes_len + len + 1);
  memcpy(m->strbytes + m->strbytes_len, s, (size_t)len + 1);
  uint32_t i = ADD(m, strs, nstrs, sk_str_rec, m->strbytes_len, len);
  m->strbytes_len += len + 1;
  return i;
}

static uint32_t lit(sk_module *m, const char *text) {
  return ADD(m, segs, nsegs, sk_seg_rec, SK_SEG_LIT, S(m, text), 0, SK_NONE, SK_NONE);
}
static uint32_t var(sk_module *m, const char *field, uint32_t reg, const char *dflt, const char *display) {
  return ADD(m, segs, nsegs, sk_seg_rec, SK_SEG_VAR, field ? S(m, field) : SK_NONE, reg, dflt ? S(m, dflt) : SK_NONE,
             S(m, display));
}
static uint32_t now_seg(sk_module *m) {
  return ADD(m, segs, nsegs, sk_seg_rec, SK_SEG_NOW, S(m, "now"), 0, SK_NONE, SK_NONE);
}
/* A template over the segments [first, nsegs), relative index rel in its loop. */
static void tmpl(sk_module *m, uint32_t first, uint32_t esc, const char *name) {
  ADD(m, tmpls, ntmpls, sk_tmpl_rec, first, m->nsegs - first, esc, S(m, name));
}
static uint32_t field(sk_module *m, const char *name, uint32_t rel_tmpl) {
  return ADD(m, fields, nfields, sk_field_rec, S(m, name), rel_tmpl);
}

#define ABC(op, a, b, c) SK_CREATE_ABC(SK_OP_##op, a, b, c)
#define ABx(op, a, bx) SK_CREATE_ABx(SK_OP_##op, a, bx)
#define AsBx(op, a, sbx) SK_CREATE_AsBx(SK_OP_##op, a, sbx)
#define sJ(op, sj) SK_CREATE_sJ(SK_OP_##op, sj)

static void code(sk_module *m, uint32_t insn, uint32_t line, uint32_t col) {
  ADD(m, code, ncode, sk_insn_rec, insn);
  ADD(m, debug, ndebug, sk_debug_rec, line, col);
}

/* Global indexes of a few records the mutation tests aim at. */
enum { L0_CODE = 0, L0_NCODE = 20, L1_CODE = 20, L1_NCODE = 7 };

static sk_module *build_module(void) {
  sk_module *m = calloc(1, sizeof *m);
  assert_non_null(m);
  ADD(m, meta, nmeta, sk_meta_rec, S(m, "examples/activation/skene.config.ts"), S(m, "skenec 0.1.0"));
  ADD(m, tables, ntables, sk_table_rec, S(m, "users"), S(m, "users:{id}"), SK_FORMAT_HASH, SK_TABLE_FEED_STREAM, S(m, "user"));
  ADD(m, tables, ntables, sk_table_rec, S(m, "user_actions"), S(m, "user_actions:{id}"), SK_FORMAT_JSON, SK_TABLE_FEED_KEYSPACE,
      S(m, "user_action"));
  ADD(m, shapes, nshapes, sk_shape_rec, 1, S(m, "action_type,user_id"));

  /* Loop 0: activation. */
  ADD(m, events, nevents, sk_event_rec, 0, SK_EVENT_INSERT, SK_NONE);
  ADD(m, consts, nconsts, sk_const_rec, SK_CONST_INT, SK_NONE, 300000);
  ADD(m, consts, nconsts, sk_const_rec, SK_CONST_STR, S(m, "hello \"you\"\n"), 0);
  ADD(m, consts, nconsts, sk_const_rec, SK_CONST_INT, SK_NONE, (uint64_t)-1);
  ADD(m, consts, nconsts, sk_const_rec, SK_CONST_INT, SK_NONE, 86400000);
  uint32_t s;
  s = var(m, "email", 1, NULL, "user.email"); tmpl(m, s, SK_ESC_NONE, "to");                       /* t0 */
  s = lit(m, "Welcome to the app, "); var(m, NULL, 5, NULL, "name"); tmpl(m, s, SK_ESC_NONE, "subject"); /* t1 */
  s = lit(m, "<p>Hi "); var(m, NULL, 5, "there", "name"); lit(m, ",</p>\n<p>Sent at "); now_seg(m); lit(m, "</p>\n");
  tmpl(m, s, SK_ESC_HTML, "html");                                                                 /* t2 */
  s = lit(m, "Hi "); var(m, NULL, 5, NULL, "name"); lit(m, "\nwelcome"); tmpl(m, s, SK_ESC_NONE, "text"); /* t3 */
  s = var(m, "name", 1, "there", "user.name"); tmpl(m, s, SK_ESC_NONE, "personalization.name");   /* t4 */
  s = lit(m, "first_project_created"); tmpl(m, s, SK_ESC_NONE, "action_type");                    /* t5 */
  s = var(m, NULL, 0, NULL, "row.id"); tmpl(m, s, SK_ESC_NONE, "user_id");                         /* t6 */
  field(m, "action_type", 5); field(m, "user_id", 6);                                              /* f0-1 */
  field(m, "to", 0); field(m, "subject", 1); field(m, "html", 2); field(m, "text", 3);
  field(m, "personalization.name", 4);                                                             /* f2-6 */
  ADD(m, conds, nconds, sk_cond_rec, SK_COND_QUERY, 0, 0, 2, 1, 0,
      S(m, "SELECT * FROM user_actions WHERE user_id = $1 AND action_type = 'first_project_created'"), 30000);
  ADD(m, effects, neffects, sk_effect_rec, SK_EFFECT_EMAIL, SK_PROVIDER_RESEND, 0, 0, 2, 5, 0x1234567890abcdefull, 9, 7);
  ADD(m, effects, neffects, sk_effect_rec, SK_EFFECT_EMAIL, SK_PROVIDER_OUTBOX, 1, 0, 2, 2, 0xfedcba0987654321ull, 14, 7);
  ADD(m, steps, nsteps, sk_step_rec, 0, 0, 0, 300000, 0, SK_NONE, 5, 5);
  ADD(m, steps, nsteps, sk_step_rec, SK_NONE, 86400000, 0, 0, 1, SK_NONE, 12, 5);
  code(m, ABx(DEADLINE, 2, 0), 7, 5);   /*  0 */
  code(m, ABx(AWAIT, 2, 0), 7, 5);      /*  1 */
  code(m, AsBx(JMPIFNOT, 2, 15), 7, 5); /*  2 -> 18 */
  code(m, ABx(RENDER, 5, 4), 9, 7);     /*  3 */
  code(m, ABx(EFFECT, 6, 0), 9, 7);     /*  4 */
  code(m, ABx(LOADK, 4, 1), 10, 3);     /*  5 */
  code(m, ABC(MOVE, 7, 4, 0), 10, 3);   /*  6 */
  code(m, ABC(LOADNIL, 7, 0, 0), 10, 3);/*  7 */
  code(m, ABC(NOP, 0, 0, 0), 10, 3);    /*  8 */
  code(m, ABC(LOADNIL, 2, 0, 0), 11, 3);/*  9 */
  code(m, ABx(WAITEV, 2, 0), 11, 3);    /* 10 */
  code(m, ABx(DEADLINE, 4, 3), 12, 5);  /* 11 */
  code(m, ABC(SLEEP, 4, 0, 0), 12, 5);  /* 12 */
  code(m, ABx(CHECK, 2, 0), 13, 5);     /* 13 */
  code(m, AsBx(JMPIF, 2, 1), 13, 5);    /* 14 -> 16 */
  code(m, sJ(JMP, 3), 13, 5);           /* 15 -> 19 */
  code(m, ABx(EFFECT, 6, 1), 14, 7);    /* 16 */
  code(m, ABC(END, SK_OUTCOME_COMPLETED, 0, 0), 14, 7); /* 17 */
  code(m, ABC(END, SK_OUTCOME_TIMED_OUT, 0, 0), 5, 5);  /* 18 */
  code(m, ABC(END, SK_OUTCOME_SKIPPED, 0, 0), 12, 5);   /* 19 */
  ADD(m, loops, nloops, sk_loop_rec, S(m, "activation"), SK_LOOP_ACTIVATION,
      S(m, "Detect when users complete their first project and welcome them"), 8, 0,
      L0_CODE, L0_NCODE, 0, 4, 0, 7, 0, 1, 0, 2, 0, 1, 0, 2,
      3, SK_BACKOFF_EXPONENTIAL, 1000, 3600000, 1, 2, 27);

  /* Loop 1: retention. */
  ADD(m, events, nevents, sk_event_rec, 0, SK_EVENT_UPDATE, S(m, "user_id"));
  ADD(m, consts, nconsts, sk_const_rec, SK_CONST_INT, SK_NONE, 3600000);
  s = lit(m, "GET"); tmpl(m, s, SK_ESC_NONE, "argv");                                              /* t0 */
  s = lit(m, "flags:"); var(m, NULL, 0, NULL, "row.id"); tmpl(m, s, SK_ESC_NONE, "argv");         /* t1 */
  s = lit(m, "https://hooks.example.com/nudge"); tmpl(m, s, SK_ESC_URL, "url");                    /* t2 */
  s = lit(m, "Bearer abc"); tmpl(m, s, SK_ESC_NONE, "header.Authorization");                       /* t3 */
  s = lit(m, "{\"id\":\""); var(m, NULL, 0, NULL, "row.id"); lit(m, "\"}"); tmpl(m, s, SK_ESC_JSON, "body"); /* t4 */
  s = lit(m, "HSET"); tmpl(m, s, SK_ESC_NONE, "argv");                                             /* t5 */
  s = lit(m, "users:"); var(m, NULL, 0, NULL, "row.id"); tmpl(m, s, SK_ESC_NONE, "argv");         /* t6 */
  s = lit(m, "nudged at"); tmpl(m, s, SK_ESC_NONE, "argv");                                        /* t7 */
  s = now_seg(m); tmpl(m, s, SK_ESC_NONE, "argv");                                                 /* t8 */
  field(m, "argv", 0); field(m, "argv", 1);                                                         /* f7-8 */
  field(m, "url", 2); field(m, "header.Authorization", 3); field(m, "body", 4);                   /* f9-11 */
  field(m, "argv", 5); field(m, "argv", 6); field(m, "argv", 7); field(m, "argv", 8);             /* f12-15 */
  ADD(m, conds, nconds, sk_cond_rec, SK_COND_REDIS, SK_NONE, 7, 2, 1, 0, S(m, "['GET', 'flags:{{row.id}}']"), 60000);
  ADD(m, effects, neffects, sk_effect_rec, SK_EFFECT_WEBHOOK, SK_PROVIDER_NONE, 0, 0, 9, 3, 42, 30, 9);
  ADD(m, effects, neffects, sk_effect_rec, SK_EFFECT_REDIS, SK_PROVIDER_NONE, 0, 1, 12, 4, 43, 31, 9);
  ADD(m, steps, nsteps, sk_step_rec, 0, 0, 0, 3600000, 0, 1, 29, 5);
  code(m, ABx(DEADLINE, 2, 0), 29, 5);  /* 0 */
  code(m, ABx(AWAIT, 2, 0), 29, 5);     /* 1 */
  code(m, AsBx(JMPIFNOT, 2, 2), 29, 5); /* 2 -> 5 */
  code(m, ABx(EFFECT, 2, 0), 30, 9);    /* 3 */
  code(m, ABC(END, SK_OUTCOME_COMPLETED, 0, 0), 30, 9); /* 4 */
  code(m, ABx(EFFECT, 2, 1), 31, 9);    /* 5 */
  code(m, ABC(END, SK_OUTCOME_TIMED_OUT, 0, 0), 31, 9); /* 6 */
  ADD(m, loops, nloops, sk_loop_rec, S(m, "nudge"), SK_LOOP_RETENTION, S(m, "Nudge users whose flags change"), 4, 0,
      L1_CODE, L1_NCODE, 4, 1, 7, 9, 1, 1, 2, 2, 1, 1, 2, 1,
      0, SK_BACKOFF_FIXED, 250, 250, 0, 28, 3);
  return m;
}

/* Writes m and returns the image (caller frees). */
static uint8_t *write_module(sk_module *m, size_t *len) {
  uint8_t *buf = NULL;
  assert_int_equal(sk_module_write(m, &buf, len), 0);
  assert_non_null(buf);
  return buf;
}

static void rehash(uint8_t *buf, size_t len) { sk_wr64(buf + 8, XXH3_64bits(buf + 16, len - 16)); }

/* ---- round trip ---- */

#define CMP_U32(name) assert_int_equal(a->name, b->name);
#define CMP_U64(name) assert_true(a->name == b->name);
#define CMP_F(type, name, doc) CMP_##type(name)
#define REC_CMP(lname, UNAME) \
  static void cmp_##lname(const sk_##lname##_rec *a, const sk_##lname##_rec *b) { SKB_REC_##UNAME(CMP_F) }
SKB_RECORDS(REC_CMP)
#undef REC_CMP

static void assert_modules_equal(const sk_module *a, const sk_module *b) {
#define CMP_SECT(fourcc, rec, arr, cnt) \
  assert_int_equal(a->cnt, b->cnt); \
  if (strcmp(fourcc, "STRS") != 0) for (uint32_t i = 0; i < a->cnt; i++) cmp_##rec(&a->arr[i], &b->arr[i]);
  SKB_SECTIONS(CMP_SECT)
#undef CMP_SECT
  for (uint32_t i = 0; i < a->nstrs; i++) {
    assert_int_equal(a->strs[i].len, b->strs[i].len);
    assert_memory_equal(a->strbytes + a->strs[i].off, b->strbytes + b->strs[i].off, a->strs[i].len);
    assert_string_equal(sk_str(a, i), sk_str(b, i));
  }
}

static void test_roundtrip(void **state) {
  (void)state;
  sk_module *m = build_module();
  size_t len1, len2, len3;
  uint8_t *img1 = write_module(m, &len1);
  uint8_t *img2 = write_module(m, &len2);
  assert_int_equal(len1, len2);
  assert_memory_equal(img1, img2, len1);
  assert_int_equal(len1 % 4, 0);

  sk_module *l = NULL;
  char err[256] = "x";
  int rc = sk_module_load(img1, len1, &l, err, sizeof err);
  if (rc != 0) fail_msg("refused: %s", err);
  assert_string_equal(err, "");
  assert_modules_equal(m, l);
  assert_true(l->hash == m->hash);
  assert_true(l->hash == XXH3_64bits(img1 + 16, len1 - 16));
  assert_int_equal(l->major, SKB_VERSION_MAJOR);
  assert_int_equal(l->minor, SKB_VERSION_MINOR);
  assert_int_equal(l->strbytes_len, m->strbytes_len);

  uint8_t *img3 = write_module(l, &len3);
  assert_int_equal(len1, len3);
  assert_memory_equal(img1, img3, len1);
  free(img1);
  free(img2);
  free(img3);
  sk_module_free(l);
  sk_module_free(m);
  sk_module_free(NULL);
}

/* ---- verifier rules on the in-memory module ---- */

typedef struct {
  const char *name;
  void (*mutate)(sk_module *m);
  const char *expect;
} mutation;

static void m_reg(sk_module *m) { m->code[L0_CODE + 6].insn = ABC(MOVE, 9, 4, 0); }
static void m_reg_b(sk_module *m) { m->code[L0_CODE + 6].insn = ABC(MOVE, 7, 200, 0); }
static void m_write_r0(sk_module *m) { m->code[L0_CODE + 5].insn = ABx(LOADK, 0, 0); }
static void m_write_r1(sk_module *m) { m->code[L0_CODE + 6].insn = ABC(MOVE, 1, 4, 0); }
static void m_pair_r1(sk_module *m) { m->code[L0_CODE + 1].insn = ABx(AWAIT, 1, 0); }
static void m_pair(sk_module *m) { m->code[L0_CODE + 1].insn = ABx(AWAIT, 7, 0); }
static void m_konst(sk_module *m) { m->code[L0_CODE + 5].insn = ABx(LOADK, 4, 9); }
static void m_dur_str(sk_module *m) { m->code[L0_CODE + 0].insn = ABx(DEADLINE, 2, 1); }
static void m_dur_neg(sk_module *m) { m->code[L0_CODE + 0].insn = ABx(DEADLINE, 2, 2); }
static void m_dur_range(sk_module *m) { m->code[L0_CODE + 0].insn = ABx(DEADLINE, 2, 4); }
static void m_tmpl(sk_module *m) { m->code[L0_CODE + 3].insn = ABx(RENDER, 5, 7); }
static void m_cond(sk_module *m) { m->code[L0_CODE + 13].insn = ABx(CHECK, 2, 1); }
static void m_eff(sk_module *m) { m->code[L0_CODE + 4].insn = ABx(EFFECT, 6, 2); }
static void m_ev(sk_module *m) { m->code[L0_CODE + 10].insn = ABx(WAITEV, 2, 1); }
static void m_unused(sk_module *m) { m->code[L0_CODE + 8].insn = ABC(NOP, 1, 0, 0); }
static void m_unused_c(sk_module *m) { m->code[L0_CODE + 12].insn = ABC(SLEEP, 4, 0, 3); }
static void m_opcode(sk_module *m) { m->code[L0_CODE + 8].insn = 0xEE; }
static void m_jump_far(sk_module *m) { m->code[L0_CODE + 15].insn = sJ(JMP, 4); }
static void m_jump_back(sk_module *m) { m->code[L0_CODE + 2].insn = AsBx(JMPIFNOT, 2, -10); }
static void m_jump_other(sk_module *m) { m->code[L1_CODE + 2].insn = AsBx(JMPIFNOT, 2, -5); }
static void m_falloff(sk_module *m) { m->code[L0_CODE + 19].insn = ABC(NOP, 0, 0, 0); }
static void m_spin(sk_module *m) { m->code[L0_CODE + 15].insn = sJ(JMP, -1); }
static void m_spin2(sk_module *m) { m->code[L0_CODE + 15].insn = sJ(JMP, -2); }
static void m_outcome(sk_module *m) { m->code[L0_CODE + 17].insn = ABC(END, 9, 0, 0); }
static void m_str_range(sk_module *m) { m->loops[0].opinion_str = 999; }
static void m_str_absent(sk_module *m) { m->tables[0].key_str = SK_NONE; }
static void m_meta_str(sk_module *m) { m->meta[0].compiler_str = SK_NONE; }
static void m_loop_type(sk_module *m) { m->loops[0].type = 9; }
static void m_backoff(sk_module *m) { m->loops[1].backoff = 0; }
static void m_jitter(sk_module *m) { m->loops[0].jitter = 2; }
static void m_retries(sk_module *m) { m->loops[0].retries = 21; }
static void m_delay(sk_module *m) { m->loops[0].delay_ms = 7200000; }
static void m_max_delay(sk_module *m) { m->loops[0].max_delay_ms = UINT64_MAX; }
static void m_nregs_low(sk_module *m) { m->loops[0].nregs = 1; }
static void m_nregs_high(sk_module *m) { m->loops[0].nregs = 300; }
static void m_no_code(sk_module *m) { m->loops[0].code_count = 0; }
static void m_no_steps(sk_module *m) { m->loops[1].step_count = 0; }
static void m_trigger(sk_module *m) { m->loops[0].trigger = 1; }
static void m_range(sk_module *m) { m->loops[1].step_count = 5; }
static void m_range_wrap(sk_module *m) { m->loops[1].k_first = 0xFFFFFFF0u; m->loops[1].k_count = 0x20; }
static void m_overlap(sk_module *m) { m->loops[1].code_first = 15; }
static void m_order(sk_module *m) { m->loops[0].tmpl_first = 7; m->loops[1].tmpl_first = 0; m->loops[1].tmpl_count = 7; }
static void m_dup_name(sk_module *m) { m->loops[1].name_str = m->loops[0].name_str; }
static void m_table_fmt(sk_module *m) { m->tables[1].format = 7; }
static void m_table_feed(sk_module *m) { m->tables[0].feed = 0; }
static void m_table_key(sk_module *m) { m->tables[0].key_str = m->tables[0].name_str; }
static void m_shape_table(sk_module *m) { m->shapes[0].table = 2; }
static void m_event_table(sk_module *m) { m->events[1].table = 5; }
static void m_event_kind(sk_module *m) { m->events[0].kind = 3; }
static void m_event_col(sk_module *m) { m->events[1].subject_col_str = 100000; }
static void m_cond_kind(sk_module *m) { m->conds[0].kind = 0; }
static void m_cond_shape(sk_module *m) { m->conds[0].shape = 5; }
static void m_redis_shape(sk_module *m) { m->conds[1].shape = 0; }
static void m_cond_flds(sk_module *m) { m->conds[0].fld_first = 15; }
static void m_min_rows(sk_module *m) { m->conds[0].min_rows = 0; }
static void m_cond_text(sk_module *m) { m->conds[1].text_str = SK_NONE; }
static void m_cond_poll(sk_module *m) { m->conds[0].poll_ms = 1ull << 62; }
static void m_query_cols(sk_module *m) { m->conds[0].fld_count = 1; }
static void m_redis_argv(sk_module *m) { m->conds[1].fld_count = 0; }
static void m_field_tmpl(sk_module *m) { m->fields[1].tmpl = 7; }
static void m_field_tmpl1(sk_module *m) { m->fields[8].tmpl = 9; }
static void m_field_name(sk_module *m) { m->fields[3].name_str = SK_NONE; }
static void m_eff_kind(sk_module *m) { m->effects[0].kind = 4; }
static void m_email_provider(sk_module *m) { m->effects[0].provider = SK_PROVIDER_NONE; }
static void m_hook_provider(sk_module *m) { m->effects[2].provider = SK_PROVIDER_RESEND; }
static void m_eff_slot(sk_module *m) { m->effects[1].slot = 2; }
static void m_eff_step(sk_module *m) { m->effects[1].step = 2; }
static void m_eff_flds(sk_module *m) { m->effects[3].fld_count = 5; }
static void m_tmpl_segs(sk_module *m) { m->tmpls[3].seg_count = 100; }
static void m_tmpl_escape(sk_module *m) { m->tmpls[2].escape = 4; }
static void m_tmpl_name(sk_module *m) { m->tmpls[2].name_str = SK_NONE; }
static void m_seg_kind(sk_module *m) { m->segs[0].kind = 3; }
static void m_seg_reg(sk_module *m) { m->segs[0].reg = 8; }
static void m_seg_reg1(sk_module *m) { m->segs[m->tmpls[8].seg_first + 1].reg = 4; }
static void m_seg_lit(sk_module *m) { m->segs[1].str = SK_NONE; }
static void m_seg_display(sk_module *m) { m->segs[0].display_str = SK_NONE; }
static void m_seg_default(sk_module *m) { m->segs[2].default_str = 77777; }
static void m_const_type(sk_module *m) { m->consts[0].type = 0; }
static void m_const_str(sk_module *m) { m->consts[1].str = SK_NONE; }
static void m_const_int(sk_module *m) { m->consts[0].str = 0; }
static void m_step_cond(sk_module *m) { m->steps[0].cond = 3; }
static void m_step_trigger(sk_module *m) { m->steps[2].trigger = 1; }
static void m_step_action(sk_module *m) { m->steps[1].action = 2; }
static void m_step_timeout(sk_module *m) { m->steps[2].on_timeout = 2; }
static void m_step_dur(sk_module *m) { m->steps[0].timeout_ms = UINT64_MAX; }
static void m_meta_count(sk_module *m) { ADD(m, meta, nmeta, sk_meta_rec, 0, 1); }
static void m_debug_count(sk_module *m) { m->ndebug--; }
static void m_nul(sk_module *m) { m->strbytes[m->strs[m->loops[0].opinion_str].off + 3] = '\0'; }

static const mutation mutations[] = {
  {"register out of range", m_reg, "CODE record 6 (offset 0x"},
  {"R0 is read-only", m_write_r0, "LOADK: writes R0, which holds the subject and is read-only"},
  {"R1 is read-only", m_write_r1, "MOVE: writes R1, which holds the trigger row and is read-only"},
  {"a pair cannot start at R1", m_pair_r1, "AWAIT: writes R1, which holds the trigger row and is read-only"},
  {"register out of range (message)", m_reg, "MOVE: register 9 out of range (loop 'activation' has 8 registers)"},
  {"register B out of range", m_reg_b, "register 200 out of range"},
  {"register pair out of range", m_pair, "AWAIT: register pair 7,8 out of range (loop 'activation' has 8 registers)"},
  {"constant out of range", m_konst, "LOADK: operand Bx 9 out of range (loop 'activation' has 4 constants)"},
  {"duration is a string", m_dur_str, "DEADLINE: constant 1 is not a duration"},
  {"duration is negative", m_dur_neg, "DEADLINE: constant 2 is not a duration"},
  {"duration constant out of range", m_dur_range, "DEADLINE: operand Bx 4 out of range"},
  {"template out of range", m_tmpl, "RENDER: operand Bx 7 out of range (loop 'activation' has 7 templates)"},
  {"condition out of range", m_cond, "CHECK: operand Bx 1 out of range (loop 'activation' has 1 conditions)"},
  {"effect out of range", m_eff, "EFFECT: operand Bx 2 out of range (loop 'activation' has 2 effects)"},
  {"event out of range", m_ev, "WAITEV: operand Bx 1 out of range (loop 'activation' has 1 events)"},
  {"unused operand A", m_unused, "NOP: operand A is 1, must be 0"},
  {"unused operand C", m_unused_c, "SLEEP: operand C is 3, must be 0"},
  {"unknown opcode", m_opcode, "CODE record 8 (offset 0x"},
  {"unknown opcode (message)", m_opcode, "unknown opcode 238 (loop 'activation' pc 8)"},
  {"jump past the loop", m_jump_far, "JMP: jump target 20 outside loop 'activation' (pc 0..19"},
  {"jump before the loop", m_jump_back, "JMPIFNOT: jump target -7 outside loop 'activation'"},
  {"jump into another loop", m_jump_other, "JMPIFNOT: jump target -2 outside loop 'nudge'"},
  {"falls off the end", m_falloff, "loop 'activation' ends with NOP at pc 19: control falls off the end"},
  {"cycle to itself", m_spin, "pc 15 -> pc 15 closes a cycle that never suspends"},
  {"cycle through a branch", m_spin2, "closes a cycle that never suspends (loop 'activation'"},
  {"outcome out of range", m_outcome, "END: outcome 9 out of range"},
  {"string out of range", m_str_range, "LOOP record 0 (offset 0x"},
  {"string out of range (message)", m_str_range, "opinion_str 999 out of range (the file has"},
  {"required string absent", m_str_absent, "TABL record 0 (offset 0x"},
  {"required string absent (message)", m_str_absent, "key_str is absent but required"},
  {"meta string absent", m_meta_str, "META record 0 (offset 0x"},
  {"bad loop type", m_loop_type, "type 9 is not a valid sk_loop_type (1..5)"},
  {"bad backoff", m_backoff, "LOOP record 1 (offset 0x"},
  {"bad backoff (message)", m_backoff, "backoff 0 is not a valid sk_backoff"},
  {"bad jitter", m_jitter, "jitter 2 is not 0 or 1"},
  {"too many retries", m_retries, "retries 21 outside 0..20"},
  {"delay over max delay", m_delay, "retry delay 7200000 ms exceeds max delay 3600000 ms"},
  {"max delay absurd", m_max_delay, "max_delay_ms 18446744073709551615 ms exceeds the limit"},
  {"one register", m_nregs_low, "register count 1 outside 2..256"},
  {"too many registers", m_nregs_high, "register count 300 outside 2..256"},
  {"no code", m_no_code, "loop 'activation' has no code"},
  {"no steps", m_no_steps, "loop 'nudge' has no steps"},
  {"trigger out of range", m_trigger, "trigger 1 out of range (loop 'activation' has 1 events)"},
  {"loop range past its section", m_range, "step range [2, +5) exceeds section STEP (3 records)"},
  {"loop range wraps around", m_range_wrap, "constant range [4294967280, +32) exceeds section KONS"},
  {"overlapping loop ranges", m_overlap, "LOOP record 1 (offset 0x"},
  {"overlapping loop ranges (message)", m_overlap, "code range [15, +7) overlaps or precedes an earlier loop's (which ends at 20)"},
  {"loop ranges out of order", m_order, "template range [0, +7) overlaps or precedes"},
  {"duplicate loop names", m_dup_name, "loop name 'activation' is already used by loop 0"},
  {"bad row format", m_table_fmt, "TABL record 1 (offset 0x"},
  {"bad row format (message)", m_table_fmt, "format 7 is not a valid sk_row_format"},
  {"bad feed", m_table_feed, "feed 0 is not a valid sk_table_feed"},
  {"key without {id}", m_table_key, "key pattern has no {id}"},
  {"shape's table out of range", m_shape_table, "SHAP record 0 (offset 0x"},
  {"shape's table out of range (message)", m_shape_table, "table 2 out of range (the file has 2 tables)"},
  {"event's table out of range", m_event_table, "EVNT record 1 (offset 0x"},
  {"bad event kind", m_event_kind, "kind 3 is not a valid sk_event_kind"},
  {"bad subject column", m_event_col, "subject_col_str 100000 out of range"},
  {"bad condition kind", m_cond_kind, "COND record 0 (offset 0x"},
  {"bad condition kind (message)", m_cond_kind, "kind 0 is not a valid sk_cond_kind"},
  {"shape out of range", m_cond_shape, "shape 5 out of range (the file has 1 shapes)"},
  {"redis condition with a shape", m_redis_shape, "a redis condition has shape 0"},
  {"condition fields past FLDS", m_cond_flds, "field range [15, +2) exceeds section FLDS (16 records)"},
  {"min rows 0", m_min_rows, "min_rows is 0, expected at least 1"},
  {"condition text absent", m_cond_text, "COND record 1 (offset 0x"},
  {"poll absurd", m_cond_poll, "poll_ms 4611686018427387904 ms exceeds the limit"},
  {"query values vs shape columns", m_query_cols, "1 values for shape 0 which has 2 columns"},
  {"redis condition without argv", m_redis_argv, "a redis condition has no command"},
  {"field template out of range", m_field_tmpl, "FLDS record 1 (offset 0x"},
  {"field template out of range (message)", m_field_tmpl, "template 7 out of range (loop 'activation' has 7 templates)"},
  {"field template of loop 1", m_field_tmpl1, "template 9 out of range (loop 'nudge' has 9 templates)"},
  {"field name absent", m_field_name, "FLDS record 3 (offset 0x"},
  {"bad effect kind", m_eff_kind, "EFCT record 0 (offset 0x"},
  {"bad effect kind (message)", m_eff_kind, "kind 4 is not a valid sk_effect_kind"},
  {"email without provider", m_email_provider, "provider 0 is not valid for an email (resend or outbox)"},
  {"webhook with provider", m_hook_provider, "provider 1 is not valid for a webhook effect (none)"},
  {"bad effect slot", m_eff_slot, "slot 2 is not 0 (action) or 1 (onTimeout)"},
  {"effect step out of range", m_eff_step, "step 2 out of range (loop 'activation' has 2 steps)"},
  {"effect fields past FLDS", m_eff_flds, "field range [12, +5) exceeds section FLDS"},
  {"template segments past SEGS", m_tmpl_segs, "TMPL record 3 (offset 0x"},
  {"bad escape", m_tmpl_escape, "escape 4 is not a valid sk_escape"},
  {"template name absent", m_tmpl_name, "TMPL record 2 (offset 0x"},
  {"bad segment kind", m_seg_kind, "kind 3 is not a valid sk_seg_kind"},
  {"segment register out of range", m_seg_reg, "SEGS record 0 (offset 0x"},
  {"segment register out of range (message)", m_seg_reg, "register 8 out of range (loop 'activation' has 8 registers)"},
  {"segment register of loop 1", m_seg_reg1, "register 4 out of range (loop 'nudge' has 4 registers)"},
  {"literal without text", m_seg_lit, "SEGS record 1 (offset 0x"},
  {"literal without text (message)", m_seg_lit, "str is absent but required"},
  {"variable without display", m_seg_display, "display_str is absent but required"},
  {"bad default", m_seg_default, "default_str 77777 out of range"},
  {"bad constant type", m_const_type, "KONS record 0 (offset 0x"},
  {"string constant without string", m_const_str, "KONS record 1 (offset 0x"},
  {"int constant with string", m_const_int, "an integer constant has str 0, expected none"},
  {"step condition out of range", m_step_cond, "STEP record 0 (offset 0x"},
  {"step condition out of range (message)", m_step_cond, "cond 3 out of range (loop 'activation' has 1 conditions)"},
  {"step trigger out of range", m_step_trigger, "trigger 1 out of range (loop 'nudge' has 1 events)"},
  {"step action out of range", m_step_action, "action 2 out of range (loop 'activation' has 2 effects)"},
  {"step on_timeout out of range", m_step_timeout, "on_timeout 2 out of range (loop 'nudge' has 2 effects)"},
  {"step timeout absurd", m_step_dur, "timeout_ms 18446744073709551615 ms exceeds the limit"},
  {"two META records", m_meta_count, "section META (offset 0x"},
  {"two META records (message)", m_meta_count, "2 records, expected exactly 1"},
  {"DEBG count differs from CODE", m_debug_count, "section DEBG (offset 0x"},
  {"DEBG count differs (message)", m_debug_count, "26 records, expected one per CODE record (27)"},
  {"NUL inside a string", m_nul, "string contains a NUL byte"},
};

static void test_mutation(void **state) {
  const mutation *mu = *state;
  sk_module *m = build_module();
  mu->mutate(m);
  size_t len;
  uint8_t *img = write_module(m, &len);
  sk_module *l = (sk_module *)1;
  char err[512] = "";
  int rc = sk_module_load(img, len, &l, err, sizeof err);
  if (rc == 0) fail_msg("accepted; expected a refusal containing: %s", mu->expect);
  assert_null(l);
  if (!strstr(err, mu->expect)) fail_msg("message \"%s\" lacks \"%s\"", err, mu->expect);
  free(img);
  sk_module_free(m);
}

/* A backward jump whose cycle passes through a suspending instruction is accepted. */
static void test_cycle_through_suspension(void **state) {
  (void)state;
  sk_module *m = build_module();
  m->code[L0_CODE + 15].insn = sJ(JMP, -4); /* 15 -> 12 (SLEEP) */
  size_t len;
  uint8_t *img = write_module(m, &len);
  sk_module *l = NULL;
  char err[256];
  if (sk_module_load(img, len, &l, err, sizeof err) != 0) fail_msg("refused: %s", err);
  sk_module_free(l);
  free(img);
  sk_module_free(m);
}

/* ---- byte-level damage ---- */

/* Loads the image (len bytes) and asserts refusal with a message containing expect. */
static void expect_refused(const uint8_t *img, size_t len, const char *expect) {
  sk_module *l = (sk_module *)1;
  char err[512] = "";
  if (sk_module_load(img, len, &l, err, sizeof err) == 0) fail_msg("accepted; expected: %s", expect);
  assert_null(l);
  if (!strstr(err, expect)) fail_msg("message \"%s\" lacks \"%s\"", err, expect);
}

static uint8_t *sample(size_t *len) {
  sk_module *m = build_module();
  uint8_t *img = write_module(m, len);
  sk_module_free(m);
  return img;
}

static uint8_t *entry(uint8_t *img, int s) { return img + SKB_HEADER_SIZE + (size_t)s * SKB_SECTION_ENTRY_SIZE; }

static void test_bad_magic(void **state) {
  (void)state;
  size_t len;
  uint8_t *img = sample(&len);
  img[1] = 'X';
  expect_refused(img, len, "bad magic: not a .skb file");
  free(img);
}

static void test_truncated(void **state) {
  (void)state;
  size_t len;
  uint8_t *img = sample(&len);
  expect_refused(img, 20, "truncated file: 20 bytes, header needs 24");
  expect_refused(img, 0, "truncated file: 0 bytes");
  expect_refused(NULL, 0, "truncated file: 0 bytes");
  for (size_t n = 0; n < len; n++) {
    sk_module *l = NULL;
    char err[256] = "";
    assert_int_equal(sk_module_load(img, n, &l, err, sizeof err), -1);
    assert_true(err[0] != '\0');
  }
  free(img);
}

static void test_hash_mismatch(void **state) {
  (void)state;
  size_t len;
  uint8_t *img = sample(&len);
  img[len - 5] ^= 0x40;
  expect_refused(img, len, "hash mismatch: file is corrupt (stored 0x");
  free(img);
}

static void test_version(void **state) {
  (void)state;
  size_t len;
  uint8_t *img = sample(&len);
  img[16] = 2;
  rehash(img, len);
  expect_refused(img, len, "unsupported format version 2.0 (this build reads 1.x)");
  img[16] = 1;
  img[18] = 7;
  rehash(img, len);
  sk_module *l = NULL;
  char err[256];
  if (sk_module_load(img, len, &l, err, sizeof err) != 0) fail_msg("a newer minor was refused: %s", err);
  assert_int_equal(l->minor, 7);
  sk_module_free(l);
  free(img);
}

static void test_section_count(void **state) {
  (void)state;
  size_t len;
  uint8_t *img = sample(&len);
  sk_wr32(img + 20, 14);
  rehash(img, len);
  expect_refused(img, len, "section table (offset 0x14): 14 sections, expected 15");
  free(img);
}

static void test_section_order(void **state) {
  (void)state;
  size_t len;
  uint8_t *img = sample(&len);
  uint8_t tmp[SKB_SECTION_ENTRY_SIZE];
  memcpy(tmp, entry(img, 2), sizeof tmp);
  memcpy(entry(img, 2), entry(img, 3), sizeof tmp);
  memcpy(entry(img, 3), tmp, sizeof tmp);
  rehash(img, len);
  expect_refused(img, len, "section table entry 2 (offset 0x38): found 'SHAP', expected 'TABL'");
  free(img);
}

static void test_section_overlap(void **state) {
  (void)state;
  size_t len;
  uint8_t *img = sample(&len);
  sk_wr32(entry(img, 3) + 8, sk_rd32(entry(img, 2) + 8) + 4); /* SHAP starts inside TABL */
  rehash(img, len);
  expect_refused(img, len, "overlaps section TABL (which ends at 0x");
  free(img);
}

static void test_section_into_header(void **state) {
  (void)state;
  size_t len;
  uint8_t *img = sample(&len);
  sk_wr32(entry(img, 0) + 8, 16);
  rehash(img, len);
  expect_refused(img, len, "section META (offset 0x10): overlaps the header and section table");
  free(img);
}

static void test_section_misaligned(void **state) {
  (void)state;
  size_t len;
  uint8_t *img = sample(&len);
  sk_wr32(entry(img, 13) + 8, sk_rd32(entry(img, 13) + 8) + 2);
  rehash(img, len);
  expect_refused(img, len, "section CODE (offset 0x");
  expect_refused(img, len, "offset is not 4-byte aligned");
  free(img);
}

static void test_section_past_end(void **state) {
  (void)state;
  size_t len;
  uint8_t *img = sample(&len);
  sk_wr32(entry(img, 14) + 12, 0x10000);
  rehash(img, len);
  expect_refused(img, len, "section DEBG (offset 0x");
  expect_refused(img, len, "run past the end of the file");
  free(img);
}

static void test_section_size(void **state) {
  (void)state;
  size_t len;
  uint8_t *img = sample(&len);
  sk_wr32(entry(img, 4) + 4, sk_rd32(entry(img, 4) + 4) + 1); /* one more LOOP record than its size holds */
  rehash(img, len);
  expect_refused(img, len, "section LOOP (offset 0x");
  expect_refused(img, len, "does not fit 3 records of");
  sk_wr32(entry(img, 4) + 4, 0xFFFFFFFFu);
  rehash(img, len);
  expect_refused(img, len, "does not fit 4294967295 records of");
  free(img);
}

static void test_string_bytes(void **state) {
  (void)state;
  size_t len;
  uint8_t *img = sample(&len);
  uint8_t *strs = img + sk_rd32(entry(img, 1) + 8);
  sk_wr32(strs + 4, 0x7FFFFFFF); /* string 0's length */
  rehash(img, len);
  expect_refused(img, len, "STRS record 0 (offset 0x");
  expect_refused(img, len, "run past the section's");
  free(img);
  img = sample(&len);
  strs = img + sk_rd32(entry(img, 1) + 8);
  sk_wr32(strs + 8, sk_rd32(strs + 8) + 1); /* string 1 starts one byte late */
  rehash(img, len);
  expect_refused(img, len, "STRS record 1 (offset 0x");
  expect_refused(img, len, "strings are stored in order, without gaps");
  free(img);
}

/* ---- the dump ---- */

static char *dump_text(const sk_module *m) {
  char *text = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&text, &size);
  assert_non_null(f);
  assert_int_equal(sk_dump(m, f), 0);
  assert_int_equal(fclose(f), 0);
  return text;
}

static void assert_contains(const char *text, const char *needle) {
  if (!strstr(text, needle)) fail_msg("dump lacks \"%s\":\n%s", needle, text);
}

static void test_dump(void **state) {
  (void)state;
  sk_module *m = build_module();
  char *mem = dump_text(m);
  size_t len;
  uint8_t *img = write_module(m, &len);
  sk_module *l = NULL;
  char err[256];
  assert_int_equal(sk_module_load(img, len, &l, err, sizeof err), 0);
  char *file = dump_text(l);
  assert_string_equal(mem, file); /* compiled in memory or loaded: the same listing */
  static const char *const lines[] = {
    "skene bytecode 1.0 from examples/activation/skene.config.ts (skenec 0.1.0)\n",
    "  users         key users:{id}         hash  feed stream    bound as user\n",
    "  user_actions  key user_actions:{id}  json  feed keyspace  bound as user_action\n",
    "indexes:\n  #0 user_actions(action_type,user_id)\n",
    "loop 'activation' (activation) at line 2:27, 8 registers\n",
    "  opinion:  Detect when users complete their first project and welcome them\n",
    "  recovery: retries 3, backoff exponential, delay 1s, max delay 1h, jitter on\n",
    "  step 1 (line 5):\n",
    "    trigger:    insert into users; the subject is the row id (reads users:{id})\n",
    "    condition:  SELECT * FROM user_actions WHERE user_id = $1 AND action_type = 'first_project_created'\n",
    "                index #0 user_actions(action_type,user_id) = ('first_project_created', {{row.id}}); at least 1 row\n",
    "                waits up to 5m, woken by the user_actions feed (poll every 30s); on timeout: end timed_out\n",
    "    action:     email via resend\n",
    "                to:      {{user.email}}\n",
    "                from:    (SKENE_EMAIL_FROM)\n",
    "                subject: Welcome to the app, {{name}}\n",
    ("                html:    | <p>Hi {{name | default: 'there'}},</p>\n"
     "                         | <p>Sent at {{now}}</p>\n"),
    "                text:    | Hi {{name}}\n                         | welcome\n",
    "                personalization.name = {{user.name | default: 'there'}}\n",
    "  step 2 (line 12):\n    delay:      1d\n",
    "                checked once; when it does not hold, the action is skipped\n",
    "    action:     email via outbox\n",
    "  redis keys read:    users:{id}, user_actions:{id} (through index #0)\n",
    "  redis keys written: (none)\n",
    "  pc  line:col  opcode    A   B  C  ; comment\n",
    "   0  7:5       DEADLINE  2   0     ; R2 := now + 5m\n",
    "   1  7:5       AWAIT     2   0     ; await cond[0] \"SELECT * FROM user_actions WHERE user_id = $1 AND \xe2\x80\xa6\" until R2; R2, R3 := held, match\n",
    "   2  7:5       JMPIFNOT  2  15     ; if not R2 then to pc 18\n",
    "   3  9:7       RENDER    5   4     ; R5 := render(tmpl[4] \"personalization.name\")\n",
    "   4  9:7       EFFECT    6   0     ; R6 := perform(effect[0] email via resend, step 1 action)\n",
    "   5  10:3      LOADK     4   1     ; R4 := \"hello \\\"you\\\"\\n\"\n",
    "   6  10:3      MOVE      7   4  0  ; R7 := R4\n",
    "   7  10:3      LOADNIL   7   0  0  ; R7 := nil\n",
    "   8  10:3      NOP       0   0  0\n",
    "  10  11:3      WAITEV    2   0     ; await event[0] (insert into users) until R2; R2, R3 := seen, row\n",
    "  11  12:5      DEADLINE  4   3     ; R4 := now + 1d\n",
    "  12  12:5      SLEEP     4   0  0  ; sleep until R4\n",
    "  15  13:5      JMP       3         ; to pc 19\n",
    "  18  5:5       END       1   0  0  ; end timed_out\n",
    "loop 'nudge' (retention) at line 28:3, 4 registers\n",
    "  recovery: retries 0, backoff fixed, delay 250ms, max delay 250ms, jitter off\n",
    "    trigger:    update of users; the subject is column user_id (reads users:{id})\n",
    "    condition:  ['GET', 'flags:{{row.id}}']\n",
    "                command: GET flags:{{row.id}}; holds when the reply is truthy\n",
    "                waits up to 1h (poll every 1m); on timeout: the effect below, then end timed_out\n",
    "    action:     webhook\n",
    "                url:                  https://hooks.example.com/nudge\n",
    "                header.Authorization: Bearer abc\n",
    "                body:                 {\"id\":\"{{row.id}}\"}\n",
    "    on timeout: redis HSET users:{{row.id}} \"nudged at\" {{now}}\n",
    "  redis keys read:    users:{id}, GET flags:{{row.id}}\n",
    "  redis keys written: HSET users:{{row.id}}\n",
    "   5  31:9      EFFECT    2  1     ; R2 := perform(effect[1] redis, step 1 on timeout)\n",
  };
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) assert_contains(mem, lines[i]);
  assert_null(strstr(mem, "hash"  " 0x"));
  assert_null(strstr(mem, " \n")); /* no trailing spaces */

  char buf[200];
  int n = sk_disasm_insn(m, 0, 0, buf, sizeof buf);
  assert_string_equal(buf, "DEADLINE  2 0         ; R2 := now + 5m");
  assert_int_equal(n, (int)strlen(buf));
  n = sk_disasm_insn(m, 0, 8, buf, sizeof buf);
  assert_string_equal(buf, "NOP       0 0 0");
  n = sk_disasm_insn(m, 0, 0, buf, 5);
  assert_string_equal(buf, "DEAD");
  assert_true(n > 5);

  static const struct { uint64_t ms; const char *text; } durations[] = {
    {0, "0ms"}, {1500, "1500ms"}, {1000, "1s"}, {300000, "5m"}, {3600000, "1h"}, {86400000, "1d"},
    {90000, "90s"}, {172800000, "2d"}, {5400000, "90m"}};
  for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
    sk_format_duration(durations[i].ms, buf, sizeof buf);
    assert_string_equal(buf, durations[i].text);
  }

  FILE *ro = tmpfile();
  if (ro) { /* a stream that refuses writes: sk_dump reports it */
    FILE *rd = freopen(NULL, "r", ro);
    if (rd) { assert_int_equal(sk_dump(m, rd), -1); fclose(rd); }
  }
  free(mem);
  free(file);
  free(img);
  sk_module_free(l);
  sk_module_free(m);
}

/* A module with no loops, tables or shapes is valid and dumps. */
static void test_empty_module(void **state) {
  (void)state;
  sk_module *m = calloc(1, sizeof *m);
  assert_non_null(m);
  ADD(m, meta, nmeta, sk_meta_rec, S(m, "empty.config.ts"), S(m, "skenec 0.1.0"));
  size_t len;
  uint8_t *img = write_module(m, &len);
  sk_module *l = NULL;
  char err[256];
  if (sk_module_load(img, len, &l, err, sizeof err) != 0) fail_msg("refused: %s", err);
  assert_modules_equal(m, l);
  char *text = dump_text(l);
  assert_string_equal(text, "skene bytecode 1.0 from empty.config.ts (skenec 0.1.0)\ntables: (none)\nindexes: (none)\n");
  free(text);
  free(img);
  sk_module_free(l);
  sk_module_free(m);
}

static int write_sample(const char *path) {
  sk_module *m = build_module();
  uint8_t *img = NULL;
  size_t len = 0;
  int rc = sk_module_write(m, &img, &len);
  sk_module_free(m);
  if (rc != 0) return 2;
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(img, 1, len, f) != len || fclose(f) != 0) {
    fprintf(stderr, "test_skb: cannot write %s\n", path);
    free(img);
    return 2;
  }
  free(img);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--write-sample") == 0) return write_sample(argv[2]);
  enum { NFIXED = 16, NMUT = sizeof mutations / sizeof mutations[0] };
  struct CMUnitTest tests[NFIXED + NMUT] = {
    cmocka_unit_test(test_roundtrip),
    cmocka_unit_test(test_cycle_through_suspension),
    cmocka_unit_test(test_bad_magic),
    cmocka_unit_test(test_truncated),
    cmocka_unit_test(test_hash_mismatch),
    cmocka_unit_test(test_version),
    cmocka_unit_test(test_section_count),
    cmocka_unit_test(test_section_order),
    cmocka_unit_test(test_section_overlap),
    cmocka_unit_test(test_section_into_header),
    cmocka_unit_test(test_section_misaligned),
    cmocka_unit_test(test_section_past_end),
    cmocka_unit_test(test_section_size),
    cmocka_unit_test(test_string_bytes),
    cmocka_unit_test(test_dump),
    cmocka_unit_test(test_empty_module),
  };
  for (size_t i = 0; i < NMUT; i++) {
    struct CMUnitTest t = {mutations[i].name, test_mutation, NULL, NULL, (void *)&mutations[i]};
    tests[NFIXED + i] = t;
  }
  return _cmocka_run_group_tests("test_skb", tests, NFIXED + NMUT, NULL, NULL) ? 1 : 0;
}
