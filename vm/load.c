/*
 * load.c: sk_module_load, the .skb loader and verifier.
 *
 * Nothing in the file is trusted. The checks run in this order, and the first failure is reported as
 * one line naming the section, the record and its byte offset:
 *   1. header: size, magic, xxh3-64 hash, major version;
 *   2. section table: count, fourcc order, alignment, bounds, no overlap, sizes that match the counts;
 *   3. decoding every record into a fresh sk_module (strings copied, NUL-terminated);
 *   4. every record on its own: string references, enums, global indexes, ranges, durations;
 *   5. every loop: its ranges (inside their sections, disjoint and in loop order), and everything its
 *      templates, conditions, effects, steps and instructions reference, against the loop's counts;
 *   6. its code: operands by the kinds of SK_OPCODES, jump targets, no falling off the end, and no
 *      cycle that never suspends (so the interpreter needs no instruction budget).
 * What a verified module guarantees to the interpreter and the disassembler (no checks needed there):
 *   - every string index that is not SK_NONE is < nstrs, and optional ones are the only SK_NONE ones;
 *     strings contain no NUL byte (sk_str is the whole string);
 *   - every enum field holds a named value; every global index (table, shape, SEGS/FLDS range) is in
 *     bounds; every loop-relative index (trigger, step refs, field templates, effect step, operands)
 *     is below the owning loop's count; a VAR segment's register is below the loop's nregs;
 *   - a query condition has exactly one field per column of its shape;
 *   - each loop has 2..256 registers, at least one step and one instruction, and its code ends in END
 *     or JMP; D operands name a non-negative integer constant of at most SK_MAX_DURATION_MS;
 *   - durations (delays, timeouts, polls, retry delays) are at most SK_MAX_DURATION_MS, so
 *     `now + duration` cannot overflow; loop names are unique.
 */
#include "opcodes.h"
#include "skb.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#if defined(__GNUC__)
#define SK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SK_PRINTF(f, a)
#endif

/* Ten years: any duration beyond it is a corrupt file, and it keeps `now + duration` far from overflow. */
#define SK_MAX_DURATION_MS (10ull * 365u * 24u * 3600u * 1000u)
#define SK_MAX_RETRIES 20u
#define SK_MAX_REGS 256u

enum {
#define SKB_SEC_ENUM(fourcc, rec, arr, cnt) SEC_##rec,
  SKB_SECTIONS(SKB_SEC_ENUM)
#undef SKB_SEC_ENUM
  NSECT
};

static const char *const sec_name[NSECT] = {
#define SKB_SEC_NAME(fourcc, rec, arr, cnt) fourcc,
  SKB_SECTIONS(SKB_SEC_NAME)
#undef SKB_SEC_NAME
};

static size_t rec_size(int sec) {
  switch (sec) {
#define SKB_SEC_SIZE(fourcc, rec, arr, cnt) case SEC_##rec: return sk_##rec##_rec_size();
    SKB_SECTIONS(SKB_SEC_SIZE)
#undef SKB_SEC_SIZE
  }
  assert(0 && "unknown section");
  return 0;
}

typedef struct {
  const uint8_t *data;
  size_t len;
  char *err;
  size_t errlen;
  uint32_t off[NSECT];   /* file offset of each section body */
  sk_module *m;
  char name[64];         /* printable copy of the loop name being checked */
} loader;

static int vfail(loader *L, const char *prefix, const char *fmt, va_list ap) SK_PRINTF(3, 0);
static int vfail(loader *L, const char *prefix, const char *fmt, va_list ap) {
  if (L->err && L->errlen) {
    size_t n = (size_t)snprintf(L->err, L->errlen, "%s", prefix);
    if (n < L->errlen) vsnprintf(L->err + n, L->errlen - n, fmt, ap);
  }
  return -1;
}

/* Records the reason for refusing the file; always returns -1. */
static int fail(loader *L, const char *fmt, ...) SK_PRINTF(2, 3);
static int fail(loader *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(L, "", fmt, ap);
  va_end(ap);
  return -1;
}

/* As fail, prefixed with "SECT record i (offset 0x...): ". */
static int rec_fail(loader *L, int sec, uint32_t i, const char *fmt, ...) SK_PRINTF(4, 5);
static int rec_fail(loader *L, int sec, uint32_t i, const char *fmt, ...) {
  char prefix[80];
  uint64_t off = (uint64_t)L->off[sec] + (uint64_t)i * rec_size(sec);
  snprintf(prefix, sizeof prefix, "%s record %" PRIu32 " (offset 0x%" PRIx64 "): ", sec_name[sec], i, off);
  va_list ap;
  va_start(ap, fmt);
  vfail(L, prefix, fmt, ap);
  va_end(ap);
  return -1;
}

/* A printable, bounded copy of a verified string, for messages. */
static const char *printable(char *buf, size_t cap, const char *s) {
  size_t n = 0;
  assert(cap > 4);
  for (; *s && n + 4 < cap; s++) buf[n++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
  if (*s) { buf[n++] = '.'; buf[n++] = '.'; buf[n++] = '.'; }
  buf[n] = '\0';
  return buf;
}

static const char *loop_name(loader *L, uint32_t li) {
  return printable(L->name, sizeof L->name, sk_str(L->m, L->m->loops[li].name_str));
}

/* ---- 1, 2: header and section table ---- */

static int check_header(loader *L) {
  const uint8_t *d = L->data;
  if (L->len < SKB_HEADER_SIZE)
    return fail(L, "truncated file: %zu bytes, header needs %d", L->len, SKB_HEADER_SIZE);
  if (memcmp(d, SKB_MAGIC, SKB_MAGIC_LEN) != 0) return fail(L, "bad magic: not a .skb file");
  uint64_t stored = sk_rd64(d + 8);
  uint64_t computed = XXH3_64bits(d + 16, L->len - 16);
  if (stored != computed)
    return fail(L, "hash mismatch: file is corrupt (stored 0x%016" PRIx64 ", computed 0x%016" PRIx64 ")",
                stored, computed);
  unsigned major = (unsigned)d[16] | ((unsigned)d[17] << 8), minor = (unsigned)d[18] | ((unsigned)d[19] << 8);
  if (major != SKB_VERSION_MAJOR)
    return fail(L, "unsupported format version %u.%u (this build reads %d.x)", major, minor, SKB_VERSION_MAJOR);
  return 0;
}

static void fourcc_text(char out[5], const uint8_t *p) {
  for (int i = 0; i < 4; i++) out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
  out[4] = '\0';
}

/*
 * Checks the section table and fills L->off; counts[s] and sizes[s] receive each entry's count and
 * size. Sections must be in SKB_SECTIONS order in the table and in the file, without overlap.
 */
static int check_sections(loader *L, uint32_t counts[NSECT], uint32_t sizes[NSECT]) {
  uint32_t n = sk_rd32(L->data + 20);
  if (n != NSECT) return fail(L, "section table (offset 0x14): %" PRIu32 " sections, expected %d", n, NSECT);
  size_t table_end = SKB_HEADER_SIZE + (size_t)NSECT * SKB_SECTION_ENTRY_SIZE;
  if (L->len < table_end)
    return fail(L, "truncated file: %zu bytes, section table needs %zu", L->len, table_end);
  uint64_t prev_end = table_end;
  int prev = -1;
  for (int s = 0; s < NSECT; s++) {
    size_t eoff = SKB_HEADER_SIZE + (size_t)s * SKB_SECTION_ENTRY_SIZE;
    const uint8_t *e = L->data + eoff;
    char cc[5];
    fourcc_text(cc, e);
    if (memcmp(e, sec_name[s], 4) != 0)
      return fail(L, "section table entry %d (offset 0x%zx): found '%s', expected '%s'", s, eoff, cc, sec_name[s]);
    uint32_t count = sk_rd32(e + 4), off = sk_rd32(e + 8), size = sk_rd32(e + 12);
    if (off % 4 != 0)
      return fail(L, "section %s (offset 0x%" PRIx32 "): offset is not 4-byte aligned", cc, off);
    if ((uint64_t)off + size > L->len)
      return fail(L, "section %s (offset 0x%" PRIx32 "): %" PRIu32 " bytes run past the end of the file (%zu bytes)",
                  cc, off, size, L->len);
    if (off < table_end)
      return fail(L, "section %s (offset 0x%" PRIx32 "): overlaps the header and section table (which end at 0x%zx)",
                  cc, off, table_end);
    if (off < prev_end)
      return fail(L, "section %s (offset 0x%" PRIx32 "): overlaps section %s (which ends at 0x%" PRIx64 ")",
                  cc, off, sec_name[prev], prev_end);
    uint64_t need = (uint64_t)count * rec_size(s);
    if (s == SEC_str ? need > size : need != size)
      return fail(L, "section %s (offset 0x%" PRIx32 "): size %" PRIu32 " does not fit %" PRIu32 " records of %zu bytes",
                  cc, off, size, count, rec_size(s));
    L->off[s] = off;
    counts[s] = count;
    sizes[s] = size;
    prev_end = (uint64_t)off + size;
    prev = s;
  }
  return 0;
}

/* ---- 3: decoding ---- */

/* Decodes STRS: canonical layout (in order, no gaps, no NUL), copied into strbytes with a NUL each. */
static int decode_strings(loader *L, uint32_t count, uint32_t size) {
  sk_module *m = L->m;
  const uint8_t *recs = L->data + L->off[SEC_str];
  size_t nbytes = size - (size_t)count * sk_str_rec_size();
  const uint8_t *bytes = recs + (size_t)count * sk_str_rec_size();
  m->nstrs = count;
  m->strs = count ? calloc(count, sizeof *m->strs) : NULL;
  m->strbytes = malloc(nbytes + count + 1);
  if ((count && !m->strs) || !m->strbytes) return fail(L, "out of memory decoding section STRS");
  size_t pos = 0, dst = 0;
  for (uint32_t i = 0; i < count; i++) {
    sk_str_rec r;
    sk_str_rec_decode(recs + (size_t)i * sk_str_rec_size(), &r);
    if ((uint64_t)r.off + r.len > nbytes)
      return rec_fail(L, SEC_str, i, "string bytes [%" PRIu32 ", +%" PRIu32 ") run past the section's %zu string bytes",
                      r.off, r.len, nbytes);
    if (r.off != pos)
      return rec_fail(L, SEC_str, i, "string starts at byte %" PRIu32 ", expected %zu (strings are stored in order, without gaps)",
                      r.off, pos);
    if (memchr(bytes + r.off, 0, r.len))
      return rec_fail(L, SEC_str, i, "string contains a NUL byte");
    memcpy(m->strbytes + dst, bytes + r.off, r.len);
    m->strs[i].off = (uint32_t)dst;
    m->strs[i].len = r.len;
    dst += r.len;
    m->strbytes[dst++] = '\0';
    pos += r.len;
  }
  if (pos != nbytes)
    return fail(L, "section STRS (offset 0x%" PRIx32 "): %zu string bytes after the last string", L->off[SEC_str], nbytes - pos);
  m->strbytes[dst] = '\0';
  assert(dst <= UINT32_MAX);
  m->strbytes_len = (uint32_t)dst;
  return 0;
}

static int decode(loader *L, const uint32_t counts[NSECT], const uint32_t sizes[NSECT]) {
  sk_module *m = L->m;
#define SKB_DECODE(fourcc, rec, arr, cnt) \
  if (SEC_##rec != SEC_str) { \
    m->cnt = counts[SEC_##rec]; \
    if (m->cnt) { \
      m->arr = calloc(m->cnt, sizeof *m->arr); \
      if (!m->arr) return fail(L, "out of memory decoding section %s", fourcc); \
      for (uint32_t i = 0; i < m->cnt; i++) \
        sk_##rec##_rec_decode(L->data + L->off[SEC_##rec] + (size_t)i * sk_##rec##_rec_size(), &m->arr[i]); \
    } \
  }
  SKB_SECTIONS(SKB_DECODE)
#undef SKB_DECODE
  if (decode_strings(L, counts[SEC_str], sizes[SEC_str]) != 0) return -1;
  if (m->nmeta != 1)
    return fail(L, "section META (offset 0x%" PRIx32 "): %" PRIu32 " records, expected exactly 1", L->off[SEC_meta], m->nmeta);
  if (m->ndebug != m->ncode)
    return fail(L, "section DEBG (offset 0x%" PRIx32 "): %" PRIu32 " records, expected one per CODE record (%" PRIu32 ")",
                L->off[SEC_debug], m->ndebug, m->ncode);
  return 0;
}

/* ---- 4: each record on its own ---- */

/* A string reference: SK_NONE only when optional, else < nstrs. */
static int check_str(loader *L, int sec, uint32_t i, const char *field, uint32_t v, int optional) {
  if (v == SK_NONE) return optional ? 0 : rec_fail(L, sec, i, "%s is absent but required", field);
  if (v >= L->m->nstrs)
    return rec_fail(L, sec, i, "%s %" PRIu32 " out of range (the file has %" PRIu32 " strings)", field, v, L->m->nstrs);
  return 0;
}

static int check_enum(loader *L, int sec, uint32_t i, const char *field, uint32_t v, uint32_t lo, uint32_t hi,
                      const char *type) {
  if (v < lo || v > hi)
    return rec_fail(L, sec, i, "%s %" PRIu32 " is not a valid %s (%" PRIu32 "..%" PRIu32 ")", field, v, type, lo, hi);
  return 0;
}

/* A range [first, first+count) of section `target` (which has total records). */
static int check_range(loader *L, int sec, uint32_t i, const char *field, uint32_t first, uint32_t count,
                       int target, uint32_t total) {
  if ((uint64_t)first + count > total)
    return rec_fail(L, sec, i, "%s range [%" PRIu32 ", +%" PRIu32 ") exceeds section %s (%" PRIu32 " records)",
                    field, first, count, sec_name[target], total);
  return 0;
}

static int check_duration(loader *L, int sec, uint32_t i, const char *field, uint64_t ms) {
  if (ms > SK_MAX_DURATION_MS)
    return rec_fail(L, sec, i, "%s %" PRIu64 " ms exceeds the limit of %llu ms (ten years)", field, ms,
                    (unsigned long long)SK_MAX_DURATION_MS);
  return 0;
}

#define TRY(x) do { if ((x) != 0) return -1; } while (0)

static int check_globals(loader *L) {
  const sk_module *m = L->m;
  TRY(check_str(L, SEC_meta, 0, "source_str", m->meta[0].source_str, 0));
  TRY(check_str(L, SEC_meta, 0, "compiler_str", m->meta[0].compiler_str, 0));
  for (uint32_t i = 0; i < m->ntables; i++) {
    const sk_table_rec *t = &m->tables[i];
    TRY(check_str(L, SEC_table, i, "name_str", t->name_str, 0));
    TRY(check_str(L, SEC_table, i, "key_str", t->key_str, 0));
    TRY(check_str(L, SEC_table, i, "singular_str", t->singular_str, 0));
    TRY(check_enum(L, SEC_table, i, "format", t->format, SK_FORMAT_HASH, SK_FORMAT_JSON, "sk_row_format"));
    TRY(check_enum(L, SEC_table, i, "feed", t->feed, SK_TABLE_FEED_STREAM, SK_TABLE_FEED_SCAN, "sk_table_feed"));
    if (!strstr(sk_str(m, t->key_str), "{id}")) return rec_fail(L, SEC_table, i, "key pattern has no {id}");
  }
  for (uint32_t i = 0; i < m->nshapes; i++) {
    if (m->shapes[i].table >= m->ntables)
      return rec_fail(L, SEC_shape, i, "table %" PRIu32 " out of range (the file has %" PRIu32 " tables)",
                      m->shapes[i].table, m->ntables);
    TRY(check_str(L, SEC_shape, i, "cols_str", m->shapes[i].cols_str, 0));
  }
  for (uint32_t i = 0; i < m->nevents; i++) {
    const sk_event_rec *e = &m->events[i];
    if (e->table >= m->ntables)
      return rec_fail(L, SEC_event, i, "table %" PRIu32 " out of range (the file has %" PRIu32 " tables)", e->table, m->ntables);
    TRY(check_enum(L, SEC_event, i, "kind", e->kind, SK_EVENT_INSERT, SK_EVENT_UPDATE, "sk_event_kind"));
    TRY(check_str(L, SEC_event, i, "subject_col_str", e->subject_col_str, 1));
  }
  for (uint32_t i = 0; i < m->nconds; i++) {
    const sk_cond_rec *c = &m->conds[i];
    TRY(check_enum(L, SEC_cond, i, "kind", c->kind, SK_COND_QUERY, SK_COND_REDIS, "sk_cond_kind"));
    if (c->kind == SK_COND_QUERY && c->shape >= m->nshapes)
      return rec_fail(L, SEC_cond, i, "shape %" PRIu32 " out of range (the file has %" PRIu32 " shapes)", c->shape, m->nshapes);
    if (c->kind == SK_COND_REDIS && c->shape != SK_NONE)
      return rec_fail(L, SEC_cond, i, "a redis condition has shape %" PRIu32 ", expected none", c->shape);
    TRY(check_range(L, SEC_cond, i, "field", c->fld_first, c->fld_count, SEC_field, m->nfields));
    if (c->kind == SK_COND_REDIS && c->fld_count == 0) return rec_fail(L, SEC_cond, i, "a redis condition has no command");
    if (c->min_rows < 1) return rec_fail(L, SEC_cond, i, "min_rows is 0, expected at least 1");
    TRY(check_str(L, SEC_cond, i, "text_str", c->text_str, 0));
    TRY(check_duration(L, SEC_cond, i, "poll_ms", c->poll_ms));
  }
  for (uint32_t i = 0; i < m->neffects; i++) {
    const sk_effect_rec *e = &m->effects[i];
    TRY(check_enum(L, SEC_effect, i, "kind", e->kind, SK_EFFECT_EMAIL, SK_EFFECT_REDIS, "sk_effect_kind"));
    if (e->kind == SK_EFFECT_EMAIL) {
      if (e->provider != SK_PROVIDER_RESEND && e->provider != SK_PROVIDER_OUTBOX)
        return rec_fail(L, SEC_effect, i, "provider %" PRIu32 " is not valid for an email (resend or outbox)", e->provider);
    } else if (e->provider != SK_PROVIDER_NONE) {
      return rec_fail(L, SEC_effect, i, "provider %" PRIu32 " is not valid for a %s effect (none)", e->provider,
                      sk_effect_name(e->kind));
    }
    if (e->slot > 1) return rec_fail(L, SEC_effect, i, "slot %" PRIu32 " is not 0 (action) or 1 (onTimeout)", e->slot);
    TRY(check_range(L, SEC_effect, i, "field", e->fld_first, e->fld_count, SEC_field, m->nfields));
    if (e->kind == SK_EFFECT_REDIS && e->fld_count == 0) return rec_fail(L, SEC_effect, i, "a redis effect has no command");
  }
  for (uint32_t i = 0; i < m->nfields; i++) TRY(check_str(L, SEC_field, i, "name_str", m->fields[i].name_str, 0));
  for (uint32_t i = 0; i < m->ntmpls; i++) {
    const sk_tmpl_rec *t = &m->tmpls[i];
    TRY(check_range(L, SEC_tmpl, i, "segment", t->seg_first, t->seg_count, SEC_seg, m->nsegs));
    TRY(check_enum(L, SEC_tmpl, i, "escape", t->escape, SK_ESC_NONE, SK_ESC_URL, "sk_escape"));
    TRY(check_str(L, SEC_tmpl, i, "name_str", t->name_str, 0));
  }
  for (uint32_t i = 0; i < m->nsegs; i++) {
    const sk_seg_rec *s = &m->segs[i];
    TRY(check_enum(L, SEC_seg, i, "kind", s->kind, SK_SEG_LIT, SK_SEG_NOW, "sk_seg_kind"));
    TRY(check_str(L, SEC_seg, i, "str", s->str, s->kind != SK_SEG_LIT));
    TRY(check_str(L, SEC_seg, i, "default_str", s->default_str, 1));
    TRY(check_str(L, SEC_seg, i, "display_str", s->display_str, s->kind != SK_SEG_VAR));
  }
  for (uint32_t i = 0; i < m->nconsts; i++) {
    const sk_const_rec *k = &m->consts[i];
    TRY(check_enum(L, SEC_const, i, "type", k->type, SK_CONST_INT, SK_CONST_STR, "sk_const_type"));
    if (k->type == SK_CONST_STR) TRY(check_str(L, SEC_const, i, "str", k->str, 0));
    else if (k->str != SK_NONE) return rec_fail(L, SEC_const, i, "an integer constant has str %" PRIu32 ", expected none", k->str);
  }
  for (uint32_t i = 0; i < m->nsteps; i++) {
    TRY(check_duration(L, SEC_step, i, "delay_ms", m->steps[i].delay_ms));
    TRY(check_duration(L, SEC_step, i, "timeout_ms", m->steps[i].timeout_ms));
  }
  return 0;
}

/* ---- 5: loops ---- */

/* A loop's ranges, by section: X(section, first field, count field, what). */
#define SK_LOOP_RANGES(X) \
  X(insn, code_first, code_count, "code") X(const, k_first, k_count, "constant") \
  X(tmpl, tmpl_first, tmpl_count, "template") X(cond, cond_first, cond_count, "condition") \
  X(effect, eff_first, eff_count, "effect") X(event, ev_first, ev_count, "event") \
  X(step, step_first, step_count, "step")

static int check_loop_record(loader *L, uint32_t li) {
  const sk_module *m = L->m;
  const sk_loop_rec *l = &m->loops[li];
  TRY(check_str(L, SEC_loop, li, "name_str", l->name_str, 0));
  TRY(check_str(L, SEC_loop, li, "opinion_str", l->opinion_str, 0));
  TRY(check_enum(L, SEC_loop, li, "type", l->type, SK_LOOP_ACTIVATION, SK_LOOP_EXPANSION, "sk_loop_type"));
  if (l->nregs < 2 || l->nregs > SK_MAX_REGS)
    return rec_fail(L, SEC_loop, li, "register count %" PRIu32 " outside 2..%u", l->nregs, SK_MAX_REGS);
  if (l->retries > SK_MAX_RETRIES)
    return rec_fail(L, SEC_loop, li, "retries %" PRIu32 " outside 0..%u", l->retries, SK_MAX_RETRIES);
  TRY(check_enum(L, SEC_loop, li, "backoff", l->backoff, SK_BACKOFF_EXPONENTIAL, SK_BACKOFF_FIXED, "sk_backoff"));
  if (l->jitter > 1) return rec_fail(L, SEC_loop, li, "jitter %" PRIu32 " is not 0 or 1", l->jitter);
  TRY(check_duration(L, SEC_loop, li, "max_delay_ms", l->max_delay_ms));
  if (l->delay_ms > l->max_delay_ms)
    return rec_fail(L, SEC_loop, li, "retry delay %" PRIu64 " ms exceeds max delay %" PRIu64 " ms", l->delay_ms, l->max_delay_ms);
  TRY(check_range(L, SEC_loop, li, "code", l->code_first, l->code_count, SEC_insn, m->ncode));
  TRY(check_range(L, SEC_loop, li, "constant", l->k_first, l->k_count, SEC_const, m->nconsts));
  TRY(check_range(L, SEC_loop, li, "template", l->tmpl_first, l->tmpl_count, SEC_tmpl, m->ntmpls));
  TRY(check_range(L, SEC_loop, li, "condition", l->cond_first, l->cond_count, SEC_cond, m->nconds));
  TRY(check_range(L, SEC_loop, li, "effect", l->eff_first, l->eff_count, SEC_effect, m->neffects));
  TRY(check_range(L, SEC_loop, li, "event", l->ev_first, l->ev_count, SEC_event, m->nevents));
  TRY(check_range(L, SEC_loop, li, "step", l->step_first, l->step_count, SEC_step, m->nsteps));
  if (l->code_count < 1) return rec_fail(L, SEC_loop, li, "loop '%s' has no code", loop_name(L, li));
  if (l->step_count < 1) return rec_fail(L, SEC_loop, li, "loop '%s' has no steps", loop_name(L, li));
  if (l->trigger >= l->ev_count)
    return rec_fail(L, SEC_loop, li, "trigger %" PRIu32 " out of range (loop '%s' has %" PRIu32 " events)", l->trigger,
                    loop_name(L, li), l->ev_count);
  return 0;
}

/* Non-empty ranges of one section must be disjoint and in loop order. */
static int check_loop_order(loader *L) {
  const sk_module *m = L->m;
#define SK_ORDER(sec, first, count, what) { \
    uint64_t end = 0; \
    for (uint32_t li = 0; li < m->nloops; li++) { \
      const sk_loop_rec *l = &m->loops[li]; \
      if (l->count == 0) continue; \
      if (l->first < end) \
        return rec_fail(L, SEC_loop, li, "%s range [%" PRIu32 ", +%" PRIu32 ") overlaps or precedes an earlier loop's (which ends at %" PRIu64 ")", \
                        what, l->first, l->count, end); \
      end = (uint64_t)l->first + l->count; \
    } }
  SK_LOOP_RANGES(SK_ORDER)
#undef SK_ORDER
  return 0;
}

typedef struct { uint64_t h; uint32_t i; } name_hash;
static int cmp_name_hash(const void *a, const void *b) {
  const name_hash *x = a, *y = b;
  if (x->h != y->h) return x->h < y->h ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* Loop names are unique (instances are keyed by loop name and subject). O(n log n). */
static int check_unique_names(loader *L) {
  const sk_module *m = L->m;
  if (m->nloops < 2) return 0;
  name_hash *v = malloc((size_t)m->nloops * sizeof *v);
  if (!v) return fail(L, "out of memory checking loop names");
  for (uint32_t i = 0; i < m->nloops; i++) {
    const sk_str_rec *s = &m->strs[m->loops[i].name_str];
    v[i].h = XXH3_64bits(m->strbytes + s->off, s->len);
    v[i].i = i;
  }
  qsort(v, m->nloops, sizeof *v, cmp_name_hash);
  for (uint32_t k = 1; k < m->nloops; k++) {
    for (uint32_t j = k; j-- > 0 && v[j].h == v[k].h;) {
      if (strcmp(sk_str(m, m->loops[v[j].i].name_str), sk_str(m, m->loops[v[k].i].name_str)) == 0) {
        uint32_t a = v[j].i, b = v[k].i;
        free(v);
        return rec_fail(L, SEC_loop, b, "loop name '%s' is already used by loop %" PRIu32, loop_name(L, b), a);
      }
    }
  }
  free(v);
  return 0;
}

static uint32_t count_columns(const char *cols) {
  if (!*cols) return 0;
  uint32_t n = 1;
  for (; *cols; cols++) n += *cols == ',';
  return n;
}

/* The fields [first, first+count) of a condition or effect of loop li: templates of that loop. */
static int check_fields(loader *L, uint32_t li, uint32_t first, uint32_t count) {
  const sk_module *m = L->m;
  const sk_loop_rec *l = &m->loops[li];
  for (uint32_t f = first; f < first + count; f++)
    if (m->fields[f].tmpl >= l->tmpl_count)
      return rec_fail(L, SEC_field, f, "template %" PRIu32 " out of range (loop '%s' has %" PRIu32 " templates)",
                      m->fields[f].tmpl, loop_name(L, li), l->tmpl_count);
  return 0;
}

static int check_step_ref(loader *L, uint32_t si, uint32_t li, const char *field, uint32_t v, uint32_t n,
                          const char *what) {
  if (v != SK_NONE && v >= n)
    return rec_fail(L, SEC_step, si, "%s %" PRIu32 " out of range (loop '%s' has %" PRIu32 " %s)", field, v,
                    loop_name(L, li), n, what);
  return 0;
}

/* Everything loop li's records reference, against the loop's counts. */
static int check_loop_records(loader *L, uint32_t li) {
  const sk_module *m = L->m;
  const sk_loop_rec *l = &m->loops[li];
  for (uint32_t t = l->tmpl_first; t < l->tmpl_first + l->tmpl_count; t++) {
    const sk_tmpl_rec *tr = &m->tmpls[t];
    for (uint32_t s = tr->seg_first; s < tr->seg_first + tr->seg_count; s++)
      if (m->segs[s].kind == SK_SEG_VAR && m->segs[s].reg >= l->nregs)
        return rec_fail(L, SEC_seg, s, "register %" PRIu32 " out of range (loop '%s' has %" PRIu32 " registers)",
                        m->segs[s].reg, loop_name(L, li), l->nregs);
  }
  for (uint32_t c = l->cond_first; c < l->cond_first + l->cond_count; c++) {
    const sk_cond_rec *cr = &m->conds[c];
    TRY(check_fields(L, li, cr->fld_first, cr->fld_count));
    if (cr->kind == SK_COND_QUERY) {
      uint32_t ncols = count_columns(sk_str(m, m->shapes[cr->shape].cols_str));
      if (cr->fld_count != ncols)
        return rec_fail(L, SEC_cond, c, "%" PRIu32 " values for shape %" PRIu32 " which has %" PRIu32 " columns",
                        cr->fld_count, cr->shape, ncols);
    }
  }
  for (uint32_t e = l->eff_first; e < l->eff_first + l->eff_count; e++) {
    const sk_effect_rec *er = &m->effects[e];
    TRY(check_fields(L, li, er->fld_first, er->fld_count));
    if (er->step >= l->step_count)
      return rec_fail(L, SEC_effect, e, "step %" PRIu32 " out of range (loop '%s' has %" PRIu32 " steps)", er->step,
                      loop_name(L, li), l->step_count);
  }
  for (uint32_t s = l->step_first; s < l->step_first + l->step_count; s++) {
    const sk_step_rec *st = &m->steps[s];
    TRY(check_step_ref(L, s, li, "trigger", st->trigger, l->ev_count, "events"));
    TRY(check_step_ref(L, s, li, "cond", st->cond, l->cond_count, "conditions"));
    TRY(check_step_ref(L, s, li, "action", st->action, l->eff_count, "effects"));
    TRY(check_step_ref(L, s, li, "on_timeout", st->on_timeout, l->eff_count, "effects"));
  }
  return 0;
}

/* ---- 6: code ---- */



/* The jump target of insn at pc, or -1 when it does not jump. */
static int64_t jump_target(uint32_t insn, uint32_t pc) {
  unsigned op = SK_GET_OP(insn);
  const char *k = sk_opinfo_table[op].kinds;
  int32_t v[3];
  int n = sk_insn_operands(insn, v);
  for (int j = 0; j < n; j++)
    if (k[j] == 'J') return (int64_t)pc + 1 + v[j];
  return -1;
}

static int check_insn(loader *L, uint32_t li, uint32_t pc) {
  const sk_module *m = L->m;
  const sk_loop_rec *l = &m->loops[li];
  uint32_t g = l->code_first + pc;
  uint32_t insn = m->code[g].insn;
  unsigned op = SK_GET_OP(insn);
  if (op >= SK_OP_COUNT)
    return rec_fail(L, SEC_insn, g, "unknown opcode %u (loop '%s' pc %" PRIu32 ")", op, loop_name(L, li), pc);
  const sk_opinfo *info = &sk_opinfo_table[op];
  int32_t v[3];
  int n = sk_insn_operands(insn, v);
  assert(strlen(info->kinds) == (size_t)n);
  static const char *const field[4][3] = {{"A", "B", "C"}, {"A", "Bx", ""}, {"A", "sBx", ""}, {"sJ", "", ""}};
  for (int j = 0; j < n; j++) {
    const char *fname = field[info->fmt][j];
    int32_t x = v[j];
    uint32_t u = (uint32_t)x;
    uint32_t limit = 0;
    const char *what = NULL;
    assert((info->kinds[j] == 'J') == ((info->fmt == SK_FMT_AsBx && j == 1) || info->fmt == SK_FMT_sJ));
    switch (info->kinds[j]) {
    case '_':
      if (x != 0)
        return rec_fail(L, SEC_insn, g, "%s: operand %s is %" PRId32 ", must be 0 (loop '%s' pc %" PRIu32 ")", info->name,
                        fname, x, loop_name(L, li), pc);
      continue;
    case 'W':
      if (u < 2)
        return rec_fail(L, SEC_insn, g, "%s: writes R%" PRIu32 ", which holds the %s and is read-only (loop '%s' pc %" PRIu32 ")",
                        info->name, u, u == 0 ? "subject" : "trigger row", loop_name(L, li), pc);
      limit = l->nregs; what = "registers"; break;
    case 'R': limit = l->nregs; what = "registers"; break;
    case 'P':
      if (u < 2)
        return rec_fail(L, SEC_insn, g, "%s: writes R%" PRIu32 ", which holds the %s and is read-only (loop '%s' pc %" PRIu32 ")",
                        info->name, u, u == 0 ? "subject" : "trigger row", loop_name(L, li), pc);
      if (u + 1 >= l->nregs)
        return rec_fail(L, SEC_insn, g, "%s: register pair %" PRIu32 ",%" PRIu32 " out of range (loop '%s' has %" PRIu32 " registers)",
                        info->name, u, u + 1, loop_name(L, li), l->nregs);
      continue;
    case 'K': limit = l->k_count; what = "constants"; break;
    case 'D': {
      if (u >= l->k_count) { limit = l->k_count; what = "constants"; break; }
      const sk_const_rec *k = &m->consts[l->k_first + u];
      if (k->type != SK_CONST_INT || (int64_t)k->ival < 0 || k->ival > SK_MAX_DURATION_MS)
        return rec_fail(L, SEC_insn, g, "%s: constant %" PRIu32 " is not a duration (an integer 0..%llu ms) (loop '%s' pc %" PRIu32 ")",
                        info->name, u, (unsigned long long)SK_MAX_DURATION_MS, loop_name(L, li), pc);
      continue;
    }
    case 'T': limit = l->tmpl_count; what = "templates"; break;
    case 'Q': limit = l->cond_count; what = "conditions"; break;
    case 'E': limit = l->eff_count; what = "effects"; break;
    case 'V': limit = l->ev_count; what = "events"; break;
    case 'O': limit = SK_OUTCOME_COUNT; what = "outcomes"; break;
    case 'J': {
      int64_t t = (int64_t)pc + 1 + x;
      if (t < 0 || t >= l->code_count)
        return rec_fail(L, SEC_insn, g, "%s: jump target %" PRId64 " outside loop '%s' (pc 0..%" PRIu32 ", at pc %" PRIu32 ")",
                        info->name, t, loop_name(L, li), l->code_count - 1, pc);
      continue;
    }
    default: assert(0 && "unknown operand kind"); continue;
    }
    if (u >= limit) {
      if (info->kinds[j] == 'R' || info->kinds[j] == 'W')
        return rec_fail(L, SEC_insn, g, "%s: register %" PRIu32 " out of range (loop '%s' has %" PRIu32 " registers)",
                        info->name, u, loop_name(L, li), l->nregs);
      if (info->kinds[j] == 'O')
        return rec_fail(L, SEC_insn, g, "%s: outcome %" PRIu32 " out of range (%d outcomes)", info->name, u, SK_OUTCOME_COUNT);
      return rec_fail(L, SEC_insn, g, "%s: operand %s %" PRIu32 " out of range (loop '%s' has %" PRIu32 " %s)", info->name,
                      fname, u, loop_name(L, li), limit, what);
    }
  }
  return 0;
}

/*
 * A cycle of instructions none of which suspends would spin the interpreter forever: refuse it.
 * Iterative depth-first search over the loop's control-flow graph without the suspending
 * instructions' out-edges; a back edge is such a cycle. Runs after every instruction is checked.
 * Cost O(code_count) time and memory.
 */
static int check_cycles(loader *L, uint32_t li) {
  const sk_module *m = L->m;
  const sk_loop_rec *l = &m->loops[li];
  uint32_t n = l->code_count;
  uint8_t *state = calloc(n, 1);            /* 0 unseen, 1 on the stack, 2 done; +4 per successor tried */
  uint32_t *stack = malloc((size_t)n * sizeof *stack);
  int rc = 0;
  uint8_t suspends[SK_OP_COUNT]; /* the opcode hands control to the runtime: "suspends" in its SK_OPCODES doc */
  for (unsigned op = 0; op < SK_OP_COUNT; op++) suspends[op] = strstr(sk_opinfo_table[op].doc, "suspends") != NULL;
  if (!state || !stack) { free(state); free(stack); return fail(L, "out of memory checking code"); }
  for (uint32_t root = 0; root < n && rc == 0; root++) {
    if (state[root]) continue;
    uint32_t sp = 0;
    stack[sp++] = root;
    state[root] = 1;
    while (sp && rc == 0) {
      uint32_t pc = stack[sp - 1];
      uint32_t insn = m->code[l->code_first + pc].insn;
      unsigned op = SK_GET_OP(insn);
      unsigned tried = state[pc] >> 2;
      int64_t next = -1;
      if (!suspends[op]) {
        int falls = op != SK_OP_JMP && op != SK_OP_END;
        int64_t target = jump_target(insn, pc);
        while (next < 0 && tried < 2) {
          if (tried == 0 && falls) next = (int64_t)pc + 1;
          if (tried == 1) next = target;
          tried++;
        }
      }
      state[pc] = (uint8_t)((state[pc] & 3) | (tried << 2));
      if (next < 0) { state[pc] = (uint8_t)((state[pc] & ~3u) | 2); sp--; continue; }
      assert(next < n);
      uint32_t s = (uint32_t)next;
      if ((state[s] & 3) == 1)
        rc = rec_fail(L, SEC_insn, l->code_first + pc,
                      "pc %" PRIu32 " -> pc %" PRIu32 " closes a cycle that never suspends (loop '%s' would spin forever)", pc, s,
                      loop_name(L, li));
      else if ((state[s] & 3) == 0) { state[s] = 1; stack[sp++] = s; }
    }
  }
  free(state);
  free(stack);
  return rc;
}

static int check_code(loader *L, uint32_t li) {
  const sk_module *m = L->m;
  const sk_loop_rec *l = &m->loops[li];
  for (uint32_t pc = 0; pc < l->code_count; pc++) TRY(check_insn(L, li, pc));
  uint32_t last = l->code_first + l->code_count - 1;
  unsigned op = SK_GET_OP(m->code[last].insn);
  if (op != SK_OP_END && op != SK_OP_JMP)
    return rec_fail(L, SEC_insn, last, "loop '%s' ends with %s at pc %" PRIu32 ": control falls off the end (expected END or JMP)",
                    loop_name(L, li), sk_opinfo_table[op].name, l->code_count - 1);
  return check_cycles(L, li);
}

/* ---- entry point ---- */

int sk_module_load(const uint8_t *data, size_t len, sk_module **out, char *err, size_t errlen) {
  loader L = {.data = data, .len = len, .err = err, .errlen = errlen};
  uint32_t counts[NSECT] = {0}, sizes[NSECT] = {0};
  assert(out);
  *out = NULL;
  if (err && errlen) err[0] = '\0';
  if (!data && len) return fail(&L, "no data");
  if (check_header(&L) != 0 || check_sections(&L, counts, sizes) != 0) return -1;
  L.m = calloc(1, sizeof *L.m);
  if (!L.m) return fail(&L, "out of memory");
  if (decode(&L, counts, sizes) != 0 || check_globals(&L) != 0) goto refused;
  for (uint32_t li = 0; li < L.m->nloops; li++)
    if (check_loop_record(&L, li) != 0) goto refused;
  if (check_loop_order(&L) != 0 || check_unique_names(&L) != 0) goto refused;
  for (uint32_t li = 0; li < L.m->nloops; li++)
    if (check_loop_records(&L, li) != 0 || check_code(&L, li) != 0) goto refused;
  L.m->hash = sk_rd64(data + 8);
  L.m->major = (uint16_t)(data[16] | (data[17] << 8));
  L.m->minor = (uint16_t)(data[18] | (data[19] << 8));
  *out = L.m;
  return 0;
refused:
  sk_module_free(L.m);
  return -1;
}
