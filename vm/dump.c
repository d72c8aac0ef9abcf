/*
 * dump.c: the disassembler (sk_disasm_insn) and the auditor's view of a module (sk_dump).
 *
 * Text is assembled in growable buffers (sbuf) and written line by line. The listing's comments come
 * from each opcode's synopsis in SK_OPCODES with the operand references (R[A], K[Bx], cond[Bx], pc += sJ,
 * ...) replaced by what they resolve to, so a new opcode is disassembled without code here. The module
 * must be verified: its invariants are asserted, never re-checked.
 */
#include "dump.h"

#include "opcodes.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define SK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SK_PRINTF(f, a)
#endif

#define COND_TEXT_MAX 50   /* characters of a condition shown in a listing comment */
#define CONST_TEXT_MAX 40  /* characters of a string constant shown in a listing comment */
#define KEYS_MAX 64        /* distinct Redis keys listed per loop */
#define LABEL_WIDTH 12     /* "on timeout: " */
#define STEP_INDENT 4

/* ---- growable strings ---- */

typedef struct {
  char *p;
  size_t len, cap;
  int oom;
} sbuf;

static int sb_reserve(sbuf *b, size_t extra) {
  if (b->oom) return -1;
  if (b->len + extra + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) { b->oom = 1; return -1; }
  b->p = p;
  b->cap = cap;
  return 0;
}

static void sb_putn(sbuf *b, const char *s, size_t n) {
  if (sb_reserve(b, n) != 0) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }
static void sb_putc(sbuf *b, char c) { sb_putn(b, &c, 1); }

static void sb_printf(sbuf *b, const char *fmt, ...) SK_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
  char small[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) { b->oom = 1; return; }
  if ((size_t)n < sizeof small) { sb_putn(b, small, (size_t)n); return; }
  if (sb_reserve(b, (size_t)n) != 0) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

static void sb_reset(sbuf *b) {
  b->len = 0;
  if (b->p) b->p[0] = '\0';
}

static const char *sb_str(const sbuf *b) { return b->p ? b->p : ""; }

/*
 * Appends s[0..n) with control bytes escaped (\n, \t, \r, \xNN); with quote ('"' or '\'', or 0 for
 * none), surrounded by that quote, with it and '\' escaped too. maxchars > 0 keeps at most that many characters (UTF-8
 * aware) and then appends "…".
 */
static void sb_escape(sbuf *b, const char *s, size_t n, char quote, size_t maxchars) {
  size_t chars = 0;
  if (quote) sb_putc(b, quote);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c & 0xc0) != 0x80) {
      if (maxchars && chars == maxchars) { sb_puts(b, "\xe2\x80\xa6"); break; }
      chars++;
    }
    if (c == '\n') sb_puts(b, "\\n");
    else if (c == '\t') sb_puts(b, "\\t");
    else if (c == '\r') sb_puts(b, "\\r");
    else if (c < 0x20 || c == 0x7f) sb_printf(b, "\\x%02x", c);
    else if (quote && (c == (unsigned char)quote || c == '\\')) { sb_putc(b, '\\'); sb_putc(b, (char)c); }
    else sb_putc(b, (char)c);
  }
  if (quote) sb_putc(b, quote);
}

/* Appends string i of m (verified: i < nstrs) escaped for a single line. */
static void sb_str_inline(sbuf *b, const sk_module *m, uint32_t i, char quote, size_t maxchars) {
  assert(i < m->nstrs);
  sb_escape(b, m->strbytes + m->strs[i].off, m->strs[i].len, quote, maxchars);
}

int sk_format_duration(uint64_t ms, char *buf, size_t cap) {
  static const struct { uint64_t unit; const char *suffix; } units[] = {
    {86400000u, "d"}, {3600000u, "h"}, {60000u, "m"}, {1000u, "s"}};
  if (ms)
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
      if (ms % units[i].unit == 0) return snprintf(buf, cap, "%" PRIu64 "%s", ms / units[i].unit, units[i].suffix);
  return snprintf(buf, cap, "%" PRIu64 "ms", ms);
}

static void sb_duration(sbuf *b, uint64_t ms) {
  char t[32];
  sk_format_duration(ms, t, sizeof t);
  sb_puts(b, t);
}

/* ---- module pieces as text ---- */

/* The text of template t (global index), rebuilt from its segments, raw (newlines kept). */
static void sb_template(sbuf *b, const sk_module *m, uint32_t t) {
  assert(t < m->ntmpls);
  const sk_tmpl_rec *tr = &m->tmpls[t];
  for (uint32_t s = tr->seg_first; s < tr->seg_first + tr->seg_count; s++) {
    const sk_seg_rec *g = &m->segs[s];
    switch (g->kind) {
    case SK_SEG_LIT: sb_puts(b, sk_str(m, g->str)); break;
    case SK_SEG_NOW: sb_puts(b, "{{now}}"); break;
    case SK_SEG_VAR:
      sb_puts(b, "{{");
      sb_puts(b, sk_str(m, g->display_str));
      if (g->default_str != SK_NONE) {
        const char *dflt = sk_str(m, g->default_str);
        char q = strchr(dflt, '\'') ? '"' : '\'';
        sb_puts(b, " | default: ");
        sb_putc(b, q);
        sb_puts(b, dflt);
        sb_putc(b, q);
      }
      sb_puts(b, "}}");
      break;
    default: assert(0 && "verified segment kind");
    }
  }
}

/* A template as a value: a lone placeholder bare, anything else as a string in single quotes (as in SQL). */
static void sb_template_value(sbuf *b, const sk_module *m, uint32_t t) {
  sbuf raw = {0};
  const sk_tmpl_rec *tr = &m->tmpls[t];
  sb_template(&raw, m, t);
  if (tr->seg_count == 1 && m->segs[tr->seg_first].kind != SK_SEG_LIT) sb_escape(b, sb_str(&raw), raw.len, 0, 0);
  else sb_escape(b, sb_str(&raw), raw.len, '\'', 0);
  if (raw.oom) b->oom = 1;
  free(raw.p);
}

/* A command argument: bare unless empty or containing a space, then quoted. */
static void sb_template_arg(sbuf *b, const sk_module *m, uint32_t t) {
  sbuf raw = {0};
  sb_template(&raw, m, t);
  int quote = raw.len == 0 || strpbrk(sb_str(&raw), " \t\n\r\"") != NULL;
  sb_escape(b, sb_str(&raw), raw.len, quote ? '"' : 0, 0);
  if (raw.oom) b->oom = 1;
  free(raw.p);
}

/* The template of field f of loop l (its tmpl is loop-relative). */
static uint32_t field_tmpl(const sk_module *m, const sk_loop_rec *l, uint32_t f) {
  assert(f < m->nfields && m->fields[f].tmpl < l->tmpl_count);
  return l->tmpl_first + m->fields[f].tmpl;
}

/* Fields [first, first+count) as a command line: argv joined with spaces. At most max arguments (0: all). */
static void sb_argv(sbuf *b, const sk_module *m, const sk_loop_rec *l, uint32_t first, uint32_t count, uint32_t max) {
  for (uint32_t f = first; f < first + count && (!max || f < first + max); f++) {
    if (f > first) sb_putc(b, ' ');
    sb_template_arg(b, m, field_tmpl(m, l, f));
  }
}

static void sb_table_name(sbuf *b, const sk_module *m, uint32_t t) {
  assert(t < m->ntables);
  sb_str_inline(b, m, m->tables[t].name_str, 0, 0);
}

static void sb_event(sbuf *b, const sk_module *m, uint32_t e) {
  assert(e < m->nevents);
  sb_puts(b, m->events[e].kind == SK_EVENT_INSERT ? "insert into " : "update of ");
  sb_table_name(b, m, m->events[e].table);
}

static void sb_shape(sbuf *b, const sk_module *m, uint32_t s) {
  assert(s < m->nshapes);
  sb_printf(b, "#%" PRIu32 " ", s);
  sb_table_name(b, m, m->shapes[s].table);
  sb_putc(b, '(');
  sb_str_inline(b, m, m->shapes[s].cols_str, 0, 0);
  sb_putc(b, ')');
}

static void sb_effect_brief(sbuf *b, const sk_module *m, uint32_t e) {
  assert(e < m->neffects);
  const sk_effect_rec *er = &m->effects[e];
  sb_puts(b, sk_effect_name(er->kind));
  if (er->kind == SK_EFFECT_EMAIL) sb_printf(b, " via %s", sk_provider_name(er->provider));
  sb_printf(b, ", step %" PRIu32 " %s", er->step + 1, er->slot ? "on timeout" : "action");
}

static void sb_const(sbuf *b, const sk_module *m, uint32_t k, int as_duration) {
  assert(k < m->nconsts);
  const sk_const_rec *c = &m->consts[k];
  if (c->type == SK_CONST_STR) sb_str_inline(b, m, c->str, '"', CONST_TEXT_MAX);
  else if (as_duration) sb_duration(b, c->ival);
  else sb_printf(b, "%" PRId64, (int64_t)c->ival);
}

/* ---- the listing ---- */


/* Operand references in synopses, and the operand (by position) each names. */
static const struct { const char *token; int operand; } refs[] = {
  {"R[A+1]", 0}, {"R[A]", 0}, {"R[B]", 1}, {"R[C]", 2}, {"K[Bx]", 1}, {"cond[Bx]", 1}, {"event[Bx]", 1},
  {"tmpl[Bx]", 1}, {"effect[Bx]", 1}, {"pc += sBx", 1}, {"pc += sJ", 0}, {"outcome A", 0},
};

/* The comment of instruction pc of loop li: its synopsis with the operands resolved. */
static void sb_comment(sbuf *b, const sk_module *m, uint32_t li, uint32_t pc) {
  const sk_loop_rec *l = &m->loops[li];
  uint32_t insn = m->code[l->code_first + pc].insn;
  const sk_opinfo *info = &sk_opinfo_table[SK_GET_OP(insn)];
  int32_t v[3] = {0, 0, 0};
  int n = sk_insn_operands(insn, v);
  for (const char *s = info->synopsis; *s;) {
    size_t r = 0, nrefs = sizeof refs / sizeof refs[0];
    while (r < nrefs && strncmp(s, refs[r].token, strlen(refs[r].token)) != 0) r++;
    if (r == nrefs || refs[r].operand >= n) { sb_putc(b, *s++); continue; }
    const char *tok = refs[r].token;
    int32_t x = v[refs[r].operand];
    uint32_t u = (uint32_t)x;
    char kind = info->kinds[refs[r].operand];
    s += strlen(tok);
    if (tok[0] == 'R') sb_printf(b, "R%" PRIu32, u + (strcmp(tok, "R[A+1]") == 0));
    else if (tok[0] == 'K') { assert(u < l->k_count); sb_const(b, m, l->k_first + u, kind == 'D'); }
    else if (tok[0] == 'c') {
      assert(u < l->cond_count);
      sb_printf(b, "cond[%" PRIu32 "] ", u);
      sb_str_inline(b, m, m->conds[l->cond_first + u].text_str, '"', COND_TEXT_MAX);
    } else if (tok[0] == 'e' && tok[1] == 'v') {
      assert(u < l->ev_count);
      sb_printf(b, "event[%" PRIu32 "] (", u);
      sb_event(b, m, l->ev_first + u);
      sb_putc(b, ')');
    } else if (tok[0] == 't') {
      assert(u < l->tmpl_count);
      sb_printf(b, "tmpl[%" PRIu32 "] ", u);
      sb_str_inline(b, m, m->tmpls[l->tmpl_first + u].name_str, '"', CONST_TEXT_MAX);
    } else if (tok[0] == 'e') {
      assert(u < l->eff_count);
      sb_printf(b, "effect[%" PRIu32 "] ", u);
      sb_effect_brief(b, m, l->eff_first + u);
    } else if (tok[0] == 'p') sb_printf(b, "to pc %" PRId64, (int64_t)pc + 1 + x);
    else sb_puts(b, sk_outcome_name(u));
  }
}

/* Raw operands as text, one string per operand. */
static int operand_texts(uint32_t insn, char t[3][16]) {
  int32_t v[3];
  int n = sk_insn_operands(insn, v);
  for (int i = 0; i < 3; i++) t[i][0] = '\0';
  for (int i = 0; i < n; i++) snprintf(t[i], sizeof t[i], "%" PRId32, v[i]);
  return n;
}

int sk_disasm_insn(const sk_module *m, uint32_t loop, uint32_t pc, char *buf, size_t cap) {
  assert(m && loop < m->nloops && pc < m->loops[loop].code_count);
  uint32_t insn = m->code[m->loops[loop].code_first + pc].insn;
  char t[3][16];
  sbuf b = {0}, ops = {0};
  int n = operand_texts(insn, t);
  for (int i = 0; i < n; i++) sb_printf(&ops, "%s%s", i ? " " : "", t[i]);
  sb_printf(&b, "%-8s  %-12s", sk_opinfo_table[SK_GET_OP(insn)].name, sb_str(&ops));
  size_t before = b.len;
  sb_puts(&b, "; ");
  sb_comment(&b, m, loop, pc);
  if (b.len == before + 2) b.len = before;  /* no comment */
  while (b.len && b.p[b.len - 1] == ' ') b.len--;
  int rc = -1;
  if (!b.oom && !ops.oom) {
    b.p[b.len] = '\0';
    rc = snprintf(buf, cap, "%s", b.p);
  } else if (cap) {
    buf[0] = '\0';
  }
  free(b.p);
  free(ops.p);
  return rc;
}

/* ---- output ---- */

typedef struct {
  FILE *out;
  const sk_module *m;
  int failed;
  sbuf line;   /* scratch for the line being built */
} dumper;

static void emit(dumper *d, const char *fmt, ...) SK_PRINTF(2, 3);
static void emit(dumper *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (vfprintf(d->out, fmt, ap) < 0) d->failed = 1;
  va_end(ap);
}

/* Writes the scratch line (trailing spaces trimmed) and a newline, and clears it. */
static void emit_line(dumper *d) {
  sbuf *b = &d->line;
  if (b->oom) { d->failed = 1; sb_reset(b); return; }
  while (b->len && b->p[b->len - 1] == ' ') b->len--;
  if (b->p) b->p[b->len] = '\0';
  emit(d, "%s\n", sb_str(b));
  sb_reset(b);
}

static void pad_to(sbuf *b, size_t start, size_t width) {
  while (b->len - start < width) sb_putc(b, ' ');
}

static void indent(sbuf *b, size_t n) {
  for (size_t i = 0; i < n; i++) sb_putc(b, ' ');
}

/*
 * Appends text (raw, possibly several lines) to the scratch line and emits it; continuation lines start
 * at column col. With bar, every line is prefixed with "| " (a template's lines).
 */
static void emit_text(dumper *d, const char *text, size_t n, size_t col, int bar) {
  size_t start = 0;
  if (n > 0 && text[n - 1] == '\n' && bar) n--;
  for (;;) {
    const char *nl = memchr(text + start, '\n', n - start);
    size_t end = nl ? (size_t)(nl - text) : n;
    if (bar) sb_puts(&d->line, "| ");
    sb_escape(&d->line, text + start, end - start, 0, 0);
    emit_line(d);
    if (!nl) break;
    start = end + 1;
    indent(&d->line, col);
  }
}

/* Starts a summary line "    label:" padded to the value column. */
static void label(dumper *d, const char *name) {
  indent(&d->line, STEP_INDENT);
  size_t start = d->line.len;
  if (name[0]) sb_printf(&d->line, "%s:", name);
  pad_to(&d->line, start, LABEL_WIDTH);
}

/* A set of distinct key descriptions, in order of first appearance, at most KEYS_MAX. */
typedef struct {
  char *items[KEYS_MAX];
  size_t n, more;
  int oom;
} keyset;

static void keyset_add(keyset *k, sbuf *text) {
  if (text->oom) { k->oom = 1; return; }
  const char *s = sb_str(text);
  for (size_t i = 0; i < k->n; i++)
    if (strcmp(k->items[i], s) == 0) return;
  if (k->n == KEYS_MAX) { k->more++; return; }
  char *copy = malloc(text->len + 1);
  if (!copy) { k->oom = 1; return; }
  memcpy(copy, s, text->len + 1);
  k->items[k->n++] = copy;
}

static void keyset_emit(dumper *d, const char *title, keyset *k) {
  sb_printf(&d->line, "  %-20s", title);
  if (k->n == 0) sb_puts(&d->line, "(none)");
  for (size_t i = 0; i < k->n; i++) sb_printf(&d->line, "%s%s", i ? ", " : "", k->items[i]);
  if (k->more) sb_printf(&d->line, " and %zu more", k->more);
  if (k->oom) d->failed = 1;
  emit_line(d);
  for (size_t i = 0; i < k->n; i++) free(k->items[i]);
  k->n = k->more = 0;
}

/* The key pattern of table t, escaped. */
static void sb_table_key(sbuf *b, const sk_module *m, uint32_t t) {
  assert(t < m->ntables);
  sb_str_inline(b, m, m->tables[t].key_str, 0, 0);
}

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* Prints effect e (global) of loop l under the label already on the scratch line. */
static void emit_effect(dumper *d, const sk_loop_rec *l, uint32_t e) {
  const sk_module *m = d->m;
  const sk_effect_rec *er = &m->effects[e];
  size_t col = STEP_INDENT + LABEL_WIDTH;
  if (er->kind == SK_EFFECT_REDIS) {
    sb_puts(&d->line, "redis ");
    sb_argv(&d->line, m, l, er->fld_first, er->fld_count, 0);
    emit_line(d);
    return;
  }
  sb_puts(&d->line, sk_effect_name(er->kind));
  if (er->kind == SK_EFFECT_EMAIL) sb_printf(&d->line, " via %s", sk_provider_name(er->provider));
  emit_line(d);
  /* The values a template's {{name}} placeholders read are the RENDERs right before the EFFECT. */
  for (uint32_t pc = 0; pc < l->code_count; pc++) {
    uint32_t insn = m->code[l->code_first + pc].insn;
    if (SK_GET_OP(insn) != SK_OP_EFFECT || l->eff_first + SK_GETARG_Bx(insn) != e) continue;
    uint32_t first = pc;
    while (first > 0 && SK_GET_OP(m->code[l->code_first + first - 1].insn) == SK_OP_RENDER) first--;
    sbuf text = {0};
    for (uint32_t r = first; r < pc; r++) {
      uint32_t t = l->tmpl_first + SK_GETARG_Bx(m->code[l->code_first + r].insn);
      const char *name = sk_str(m, m->tmpls[t].name_str);
      if (starts_with(name, "personalization.")) name += strlen("personalization.");
      sb_reset(&text);
      sb_template(&text, m, t);
      if (text.oom) d->failed = 1;
      indent(&d->line, col);
      sb_printf(&d->line, "{{%s}} = R%u = ", name, SK_GETARG_A(m->code[l->code_first + r].insn));
      emit_text(d, sb_str(&text), text.len, col + strlen(name) + 12, 0);
    }
    free(text.p);
    break;
  }
  size_t width = er->kind == SK_EFFECT_EMAIL ? strlen("subject: ") : strlen("url: ");
  int has_from = 0;
  for (uint32_t f = er->fld_first; f < er->fld_first + er->fld_count; f++) {
    const char *name = sk_str(m, m->fields[f].name_str);
    has_from |= strcmp(name, "from") == 0;
    if (!starts_with(name, "personalization.") && strlen(name) + 2 > width) width = strlen(name) + 2;
  }
  sbuf text = {0};
  for (uint32_t f = er->fld_first; f < er->fld_first + er->fld_count; f++) {
    const char *name = sk_str(m, m->fields[f].name_str);
    sb_reset(&text);
    sb_template(&text, m, field_tmpl(m, l, f));
    if (text.oom) d->failed = 1;
    indent(&d->line, col);
    if (starts_with(name, "personalization.")) {
      sb_str_inline(&d->line, m, m->fields[f].name_str, 0, 0);
      sb_puts(&d->line, " = ");
      emit_text(d, sb_str(&text), text.len, col + strlen(name) + 3, 0);
      continue;
    }
    size_t start = d->line.len;
    sb_str_inline(&d->line, m, m->fields[f].name_str, 0, 0);
    sb_putc(&d->line, ':');
    pad_to(&d->line, start, width);
    int bar = strcmp(name, "html") == 0 || strcmp(name, "text") == 0 || memchr(sb_str(&text), '\n', text.len);
    emit_text(d, sb_str(&text), text.len, col + width, bar);
    if (strcmp(name, "to") == 0 && er->kind == SK_EFFECT_EMAIL && !has_from) {
      indent(&d->line, col);
      start = d->line.len;
      sb_puts(&d->line, "from:");
      pad_to(&d->line, start, width);
      sb_puts(&d->line, "(SKENE_EMAIL_FROM)");
      emit_line(d);
      has_from = 1;
    }
  }
  if (er->kind == SK_EFFECT_EMAIL && !has_from) {
    indent(&d->line, col);
    size_t start = d->line.len;
    sb_puts(&d->line, "from:");
    pad_to(&d->line, start, width);
    sb_puts(&d->line, "(SKENE_EMAIL_FROM)");
    emit_line(d);
  }
  free(text.p);
}

/* Prints the condition c (global) of step st of loop l, and records the keys it reads. */
static void emit_condition(dumper *d, const sk_loop_rec *l, const sk_step_rec *st, keyset *reads) {
  const sk_module *m = d->m;
  const sk_cond_rec *c = &m->conds[l->cond_first + st->cond];
  size_t col = STEP_INDENT + LABEL_WIDTH;
  sbuf key = {0};
  label(d, "condition");
  const sk_str_rec *text = &m->strs[c->text_str];
  emit_text(d, m->strbytes + text->off, text->len, col, 0);
  indent(&d->line, col);
  if (c->kind == SK_COND_QUERY) {
    const sk_shape_rec *sh = &m->shapes[c->shape];
    sb_puts(&d->line, "index ");
    sb_shape(&d->line, m, c->shape);
    sb_puts(&d->line, " = (");
    for (uint32_t f = c->fld_first; f < c->fld_first + c->fld_count; f++) {
      if (f > c->fld_first) sb_puts(&d->line, ", ");
      sb_template_value(&d->line, m, field_tmpl(m, l, f));
    }
    sb_printf(&d->line, "); at least %" PRIu32 " row%s", c->min_rows, c->min_rows == 1 ? "" : "s");
    if (c->limit) sb_printf(&d->line, ", limit %" PRIu32, c->limit);
    sb_table_key(&key, m, sh->table);
    sb_printf(&key, " (through index #%" PRIu32 ")", c->shape);
  } else {
    sb_puts(&d->line, "command: ");
    sb_argv(&d->line, m, l, c->fld_first, c->fld_count, 0);
    sb_puts(&d->line, "; holds when the reply is truthy");
    sb_argv(&key, m, l, c->fld_first, c->fld_count, 2);
  }
  emit_line(d);
  keyset_add(reads, &key);
  free(key.p);
  indent(&d->line, col);
  if (st->timeout_ms == 0) {
    sb_puts(&d->line, "checked once; when it does not hold, the action is skipped");
  } else {
    sb_puts(&d->line, "waits up to ");
    sb_duration(&d->line, st->timeout_ms);
    if (c->kind == SK_COND_QUERY) {
      sb_puts(&d->line, ", woken by the ");
      sb_table_name(&d->line, m, m->shapes[c->shape].table);
      sb_puts(&d->line, " feed");
    }
    if (c->poll_ms) {
      sb_puts(&d->line, " (poll every ");
      sb_duration(&d->line, c->poll_ms);
      sb_putc(&d->line, ')');
    }
    sb_puts(&d->line, "; on timeout: ");
    if (st->on_timeout == SK_NONE) sb_printf(&d->line, "end %s", sk_outcome_name(SK_OUTCOME_TIMED_OUT));
    else sb_printf(&d->line, "the effect below, then end %s", sk_outcome_name(SK_OUTCOME_TIMED_OUT));
  }
  emit_line(d);
}

static void emit_step(dumper *d, const sk_loop_rec *l, uint32_t k, keyset *reads, keyset *writes) {
  const sk_module *m = d->m;
  const sk_step_rec *st = &m->steps[l->step_first + k];
  sb_printf(&d->line, "  step %" PRIu32 " (line %" PRIu32 "):", k + 1, st->line);
  emit_line(d);
  if (st->trigger != SK_NONE) {
    assert(st->trigger < l->ev_count);
    const sk_event_rec *ev = &m->events[l->ev_first + st->trigger];
    sbuf key = {0};
    label(d, "trigger");
    if (k > 0) sb_puts(&d->line, "waits for ");
    sb_event(&d->line, m, l->ev_first + st->trigger);
    sb_puts(&d->line, "; the subject is ");
    if (ev->subject_col_str == SK_NONE) sb_puts(&d->line, "the row id");
    else { sb_puts(&d->line, "column "); sb_str_inline(&d->line, m, ev->subject_col_str, 0, 0); }
    sb_table_key(&key, m, ev->table);
    sb_printf(&d->line, " (reads %s)", sb_str(&key));
    emit_line(d);
    keyset_add(reads, &key);
    free(key.p);
  }
  if (st->delay_ms) {
    label(d, "delay");
    sb_duration(&d->line, st->delay_ms);
    emit_line(d);
  }
  if (st->cond != SK_NONE) {
    assert(st->cond < l->cond_count);
    emit_condition(d, l, st, reads);
  }
  static const char *const slot_label[2] = {"action", "on timeout"};
  uint32_t slots[2] = {st->action, st->on_timeout};
  for (int s = 0; s < 2; s++) {
    if (slots[s] == SK_NONE) {
      if (s == 0) { label(d, "action"); sb_puts(&d->line, "(none)"); emit_line(d); }
      continue;
    }
    assert(slots[s] < l->eff_count);
    uint32_t e = l->eff_first + slots[s];
    label(d, slot_label[s]);
    emit_effect(d, l, e);
    if (m->effects[e].kind == SK_EFFECT_REDIS) {
      sbuf key = {0};
      sb_argv(&key, m, l, m->effects[e].fld_first, m->effects[e].fld_count, 2);
      keyset_add(writes, &key);
      free(key.p);
    }
  }
}

static void emit_listing(dumper *d, uint32_t li) {
  const sk_module *m = d->m;
  const sk_loop_rec *l = &m->loops[li];
  size_t wpc = 2, wpos = strlen("line:col"), wop = strlen("opcode"), wopnd[3] = {1, 1, 1};
  char t[3][16], pos[32];
  for (uint32_t pc = 0; pc < l->code_count; pc++) {
    uint32_t g = l->code_first + pc;
    int n = operand_texts(m->code[g].insn, t);
    for (int i = 0; i < n; i++) if (strlen(t[i]) > wopnd[i]) wopnd[i] = strlen(t[i]);
    int w = snprintf(pos, sizeof pos, "%" PRIu32 ":%" PRIu32, m->debug[g].line, m->debug[g].col);
    if ((size_t)w > wpos) wpos = (size_t)w;
    w = snprintf(pos, sizeof pos, "%" PRIu32, pc);
    if ((size_t)w > wpc) wpc = (size_t)w;
    size_t on = strlen(sk_opinfo_table[SK_GET_OP(m->code[g].insn)].name);
    if (on > wop) wop = on;
  }
  sb_printf(&d->line, "  %*s  %-*s  %-*s  %*s  %*s  %*s  ; comment", (int)wpc, "pc", (int)wpos, "line:col", (int)wop, "opcode",
            (int)wopnd[0], "A", (int)wopnd[1], "B", (int)wopnd[2], "C");
  emit_line(d);
  for (uint32_t pc = 0; pc < l->code_count; pc++) {
    uint32_t g = l->code_first + pc;
    operand_texts(m->code[g].insn, t);
    snprintf(pos, sizeof pos, "%" PRIu32 ":%" PRIu32, m->debug[g].line, m->debug[g].col);
    sb_printf(&d->line, "  %*" PRIu32 "  %-*s  %-*s  %*s  %*s  %*s  ", (int)wpc, pc, (int)wpos, pos, (int)wop,
              sk_opinfo_table[SK_GET_OP(m->code[g].insn)].name, (int)wopnd[0], t[0], (int)wopnd[1], t[1], (int)wopnd[2], t[2]);
    size_t before = d->line.len;
    sb_puts(&d->line, "; ");
    sb_comment(&d->line, m, li, pc);
    if (d->line.len == before + 2) d->line.len = before;
    emit_line(d);
  }
}

static void emit_loop(dumper *d, uint32_t li) {
  const sk_module *m = d->m;
  const sk_loop_rec *l = &m->loops[li];
  keyset reads = {.n = 0}, writes = {.n = 0};
  emit(d, "\n");
  sb_puts(&d->line, "loop '");
  sb_str_inline(&d->line, m, l->name_str, 0, 0);
  sb_printf(&d->line, "' (%s) at line %" PRIu32 ":%" PRIu32 ", %" PRIu32 " registers", sk_loop_type_name(l->type), l->line,
            l->col, l->nregs);
  emit_line(d);
  sb_puts(&d->line, "  opinion:  ");
  const sk_str_rec *op = &m->strs[l->opinion_str];
  emit_text(d, m->strbytes + op->off, op->len, 12, 0);
  sb_printf(&d->line, "  recovery: retries %" PRIu32 ", backoff %s, delay ", l->retries, sk_backoff_name(l->backoff));
  sb_duration(&d->line, l->delay_ms);
  sb_puts(&d->line, ", max delay ");
  sb_duration(&d->line, l->max_delay_ms);
  sb_printf(&d->line, ", jitter %s", l->jitter ? "on" : "off");
  emit_line(d);
  {
    sbuf key = {0};
    assert(l->trigger < l->ev_count);
    sb_table_key(&key, m, m->events[l->ev_first + l->trigger].table);
    keyset_add(&reads, &key);
    free(key.p);
  }
  for (uint32_t k = 0; k < l->step_count; k++) emit_step(d, l, k, &reads, &writes);
  keyset_emit(d, "redis keys read:", &reads);
  keyset_emit(d, "redis keys written:", &writes);
  emit(d, "\n");
  emit_listing(d, li);
}

static void emit_tables(dumper *d) {
  const sk_module *m = d->m;
  size_t wname = 0, wkey = 0, wfeed = 0;
  sbuf tmp = {0};
  for (uint32_t t = 0; t < m->ntables; t++) {
    sb_reset(&tmp);
    sb_table_name(&tmp, m, t);
    if (tmp.len > wname) wname = tmp.len;
    sb_reset(&tmp);
    sb_table_key(&tmp, m, t);
    if (tmp.len > wkey) wkey = tmp.len;
    if (strlen(sk_feed_name(m->tables[t].feed)) > wfeed) wfeed = strlen(sk_feed_name(m->tables[t].feed));
  }
  free(tmp.p);
  emit(d, "tables:%s\n", m->ntables ? "" : " (none)");
  for (uint32_t t = 0; t < m->ntables; t++) {
    const sk_table_rec *tr = &m->tables[t];
    sb_puts(&d->line, "  ");
    size_t start = d->line.len;
    sb_table_name(&d->line, m, t);
    pad_to(&d->line, start, wname + 2);
    start = d->line.len;
    sb_puts(&d->line, "key ");
    sb_table_key(&d->line, m, t);
    pad_to(&d->line, start, wkey + 6);
    sb_printf(&d->line, "%-4s  feed %-*s  bound as ", sk_format_name(tr->format), (int)wfeed, sk_feed_name(tr->feed));
    sb_str_inline(&d->line, m, tr->singular_str, 0, 0);
    emit_line(d);
  }
  emit(d, "indexes:%s\n", m->nshapes ? "" : " (none)");
  for (uint32_t s = 0; s < m->nshapes; s++) {
    sb_puts(&d->line, "  ");
    sb_shape(&d->line, m, s);
    emit_line(d);
  }
}

int sk_dump(const sk_module *m, FILE *out) {
  assert(m && out && m->nmeta == 1);
  dumper d = {.out = out, .m = m};
  unsigned major = m->major ? m->major : SKB_VERSION_MAJOR, minor = m->major ? m->minor : SKB_VERSION_MINOR;
  sb_printf(&d.line, "skene bytecode %u.%u from ", major, minor);
  sb_str_inline(&d.line, m, m->meta[0].source_str, 0, 0);
  sb_puts(&d.line, " (");
  sb_str_inline(&d.line, m, m->meta[0].compiler_str, 0, 0);
  sb_putc(&d.line, ')');
  emit_line(&d);
  emit_tables(&d);
  for (uint32_t li = 0; li < m->nloops; li++) emit_loop(&d, li);
  free(d.line.p);
  if (fflush(out) != 0 || ferror(out)) d.failed = 1;
  return d.failed ? -1 : 0;
}
