/*
 * skb.h: the .skb bytecode file and its in-memory form, sk_module.
 *
 * A .skb is little-endian, fixed-width and deterministic (same input, same bytes):
 *
 *   offset  size  field
 *   0       8     magic "\x89SKB\r\n\x1a\n"   (PNG-style: catches text-mode and truncation damage)
 *   8       8     xxh3-64 of every byte from offset 16 to the end of the file
 *   16      2     format major version (SKB_VERSION_MAJOR; a reader refuses another major)
 *   18      2     format minor version
 *   20      4     number of sections
 *   24      16*n  section table: {u32 id (fourcc), u32 count, u32 offset, u32 size} per section,
 *                 in the order of SKB_SECTIONS, each section present exactly once
 *   ...           section bodies: `count` fixed-width records of the section's record type, except
 *                 STRS whose records are {u32 offset, u32 length} into the string bytes that follow
 *                 them (offsets relative to the end of the records); sections are 4-byte aligned.
 *
 * Every record type is an X-macro list of u32 / u64 fields (SKB_RECORDS); the struct, the record size,
 * the encoder (writer) and decoder (loader) are all generated from it, so they cannot disagree.
 *
 * Indexes: strings, tables and shapes are global to the file. Everything else a loop owns is a
 * contiguous range of its section (code, constants, templates, conditions, effects, events, steps), and
 * every index *inside* a loop's instructions and records is relative to the start of that loop's range
 * of the referenced section (so a loop's code is position-independent, like a Lua proto). Template
 * segments and condition/effect fields are ranges of SEGS / FLDS owned through their template/record.
 * SK_NONE (0xFFFFFFFF) marks an absent optional index.
 */
#ifndef SK_SKB_H
#define SK_SKB_H

#include <stddef.h>
#include <stdint.h>

#define SKB_MAGIC "\x89SKB\r\n\x1a\n"
#define SKB_MAGIC_LEN 8
#define SKB_VERSION_MAJOR 1
#define SKB_VERSION_MINOR 0
#define SKB_HEADER_SIZE 24
#define SKB_SECTION_ENTRY_SIZE 16
#define SK_NONE 0xFFFFFFFFu

/* Enumerations stored in records. */
typedef enum { SK_LOOP_ACTIVATION = 1, SK_LOOP_RETENTION, SK_LOOP_REFERRAL, SK_LOOP_CONVERSION, SK_LOOP_EXPANSION } sk_loop_type;
typedef enum { SK_BACKOFF_EXPONENTIAL = 1, SK_BACKOFF_LINEAR, SK_BACKOFF_FIXED } sk_backoff;
typedef enum { SK_FORMAT_HASH = 1, SK_FORMAT_JSON } sk_row_format;
typedef enum { SK_TABLE_FEED_STREAM = 1, SK_TABLE_FEED_KEYSPACE, SK_TABLE_FEED_SCAN } sk_table_feed;
typedef enum { SK_EVENT_INSERT = 1, SK_EVENT_UPDATE } sk_event_kind;
typedef enum { SK_CONST_INT = 1, SK_CONST_STR } sk_const_type;
typedef enum { SK_ESC_NONE = 0, SK_ESC_HTML, SK_ESC_JSON, SK_ESC_URL } sk_escape;
typedef enum { SK_SEG_LIT = 0, SK_SEG_VAR, SK_SEG_NOW } sk_seg_kind;
typedef enum { SK_COND_QUERY = 1, SK_COND_REDIS } sk_cond_kind;
typedef enum { SK_EFFECT_EMAIL = 1, SK_EFFECT_WEBHOOK, SK_EFFECT_REDIS } sk_effect_kind;
typedef enum { SK_PROVIDER_NONE = 0, SK_PROVIDER_RESEND, SK_PROVIDER_OUTBOX } sk_provider;

const char *sk_loop_type_name(uint32_t v);
const char *sk_backoff_name(uint32_t v);
const char *sk_format_name(uint32_t v);
const char *sk_feed_name(uint32_t v);
const char *sk_event_name(uint32_t v);
const char *sk_escape_name(uint32_t v);
const char *sk_effect_name(uint32_t v);
const char *sk_provider_name(uint32_t v);

/*
 * The record types. F(type, name, comment): type is U32 or U64 (stored as two u32, low first).
 * Names ending in _str index STRS; enum fields name their enum in the comment.
 */
#define SKB_REC_META(F) \
  F(U32, source_str,   "the config path as given to skenec") \
  F(U32, compiler_str, "skenec version that wrote the file")

#define SKB_REC_LOOP(F) \
  F(U32, name_str,     "") \
  F(U32, type,         "sk_loop_type") \
  F(U32, opinion_str,  "the human intent") \
  F(U32, nregs,        "registers used, >= 2") \
  F(U32, trigger,      "event (loop-relative) that starts an instance") \
  F(U32, code_first,   "") F(U32, code_count, "") \
  F(U32, k_first,      "") F(U32, k_count, "") \
  F(U32, tmpl_first,   "") F(U32, tmpl_count, "") \
  F(U32, cond_first,   "") F(U32, cond_count, "") \
  F(U32, eff_first,    "") F(U32, eff_count, "") \
  F(U32, ev_first,     "") F(U32, ev_count, "") \
  F(U32, step_first,   "") F(U32, step_count, "") \
  F(U32, retries,      "0..20") \
  F(U32, backoff,      "sk_backoff") \
  F(U64, delay_ms,     "first retry delay") \
  F(U64, max_delay_ms, "cap on a retry delay") \
  F(U32, jitter,       "0 or 1") \
  F(U32, line,         "source position of the loop") F(U32, col, "")

#define SKB_REC_CONST(F) \
  F(U32, type,         "sk_const_type") \
  F(U32, str,          "string index for SK_CONST_STR, else SK_NONE") \
  F(U64, ival,         "two's complement value for SK_CONST_INT")

#define SKB_REC_TMPL(F) \
  F(U32, seg_first,    "global index into SEGS") F(U32, seg_count, "") \
  F(U32, escape,       "sk_escape applied to variables") \
  F(U32, name_str,     "what the template is for, e.g. 'personalization.name'")

#define SKB_REC_SEG(F) \
  F(U32, kind,         "sk_seg_kind") \
  F(U32, str,          "literal text, or the field of the register (SK_NONE: the register itself)") \
  F(U32, reg,          "register for SK_SEG_VAR") \
  F(U32, default_str,  "fallback text or SK_NONE") \
  F(U32, display_str,  "the placeholder as written: 'user.name'")

#define SKB_REC_COND(F) \
  F(U32, kind,         "sk_cond_kind") \
  F(U32, shape,        "global shape index for a query, SK_NONE for redis") \
  F(U32, fld_first,    "global index into FLDS: a query's column values in shape order, or a command's argv") \
  F(U32, fld_count,    "") \
  F(U32, min_rows,     ">= 1") \
  F(U32, limit,        "0: none") \
  F(U32, text_str,     "the query or command as written") \
  F(U64, poll_ms,      "safety-net poll while waiting")

#define SKB_REC_FIELD(F) \
  F(U32, name_str,     "field name: to, subject, html, header.X, argv, a column, ...") \
  F(U32, tmpl,         "loop-relative template")

#define SKB_REC_SHAPE(F) \
  F(U32, table,        "global table index") \
  F(U32, cols_str,     "equality columns, sorted, comma-separated")

#define SKB_REC_EFFECT(F) \
  F(U32, kind,         "sk_effect_kind") \
  F(U32, provider,     "sk_provider") \
  F(U32, step,         "0-based step") \
  F(U32, slot,         "0: action, 1: onTimeout") \
  F(U32, fld_first,    "global index into FLDS") F(U32, fld_count, "") \
  F(U64, key_seed,     "xxh3-64 of (loop, step, slot): the idempotency key is derived from it and the subject") \
  F(U32, line,         "") F(U32, col, "")

#define SKB_REC_EVENT(F) \
  F(U32, table,        "global table index") \
  F(U32, kind,         "sk_event_kind") \
  F(U32, subject_col_str, "column holding the subject's id, SK_NONE: the row id")

#define SKB_REC_STEP(F) \
  F(U32, trigger,      "loop-relative event or SK_NONE") \
  F(U64, delay_ms,     "wait before the step, 0 none") \
  F(U32, cond,         "loop-relative condition or SK_NONE") \
  F(U64, timeout_ms,   "0: no wait (a false condition skips the action)") \
  F(U32, action,       "loop-relative effect or SK_NONE") \
  F(U32, on_timeout,   "loop-relative effect or SK_NONE") \
  F(U32, line,         "") F(U32, col, "")

#define SKB_REC_TABLE(F) \
  F(U32, name_str,     "") \
  F(U32, key_str,      "key pattern with {id}") \
  F(U32, format,       "sk_row_format") \
  F(U32, feed,         "sk_table_feed") \
  F(U32, singular_str, "template root name: users -> user")

#define SKB_REC_INSN(F)  F(U32, insn, "")
#define SKB_REC_DEBUG(F) F(U32, line, "") F(U32, col, "")
#define SKB_REC_STR(F)   F(U32, off, "") F(U32, len, "")

#define SKB_RECORDS(R) \
  R(meta, META) R(loop, LOOP) R(const, CONST) R(tmpl, TMPL) R(seg, SEG) R(cond, COND) R(field, FIELD) \
  R(shape, SHAPE) R(effect, EFFECT) R(event, EVENT) R(step, STEP) R(table, TABLE) R(insn, INSN) \
  R(debug, DEBUG) R(str, STR)

#define SKB_FIELD_U32(name) uint32_t name;
#define SKB_FIELD_U64(name) uint64_t name;
#define SKB_FIELD_DECL(type, name, doc) SKB_FIELD_##type(name)
#define SKB_REC_STRUCT(lname, UNAME) typedef struct { SKB_REC_##UNAME(SKB_FIELD_DECL) } sk_##lname##_rec;
SKB_RECORDS(SKB_REC_STRUCT)
#undef SKB_REC_STRUCT

/*
 * The sections, in file order: X(fourcc, record type, sk_module array, sk_module count).
 * Code and debug info are parallel arrays (debug[i] is the source position of code[i]).
 */
#define SKB_SECTIONS(X) \
  X("META", meta,   meta,   nmeta) \
  X("STRS", str,    strs,   nstrs) \
  X("TABL", table,  tables, ntables) \
  X("SHAP", shape,  shapes, nshapes) \
  X("LOOP", loop,   loops,  nloops) \
  X("STEP", step,   steps,  nsteps) \
  X("EVNT", event,  events, nevents) \
  X("COND", cond,   conds,  nconds) \
  X("EFCT", effect, effects, neffects) \
  X("FLDS", field,  fields, nfields) \
  X("TMPL", tmpl,   tmpls,  ntmpls) \
  X("SEGS", seg,    segs,   nsegs) \
  X("KONS", const,  consts, nconsts) \
  X("CODE", insn,   code,   ncode) \
  X("DEBG", debug,  debug,  ndebug)

/*
 * sk_module: a whole .skb in memory. The loader fills it from a verified file; the compiler fills it
 * and the writer serialises it. Strings live in `strbytes` (each NUL-terminated for convenience;
 * strs[i].off / len locate string i in it).
 */
typedef struct sk_module {
#define SKB_MODULE_FIELD(fourcc, rec, arr, cnt) sk_##rec##_rec *arr; uint32_t cnt;
  SKB_SECTIONS(SKB_MODULE_FIELD)
#undef SKB_MODULE_FIELD
  char *strbytes;
  uint32_t strbytes_len;
  uint16_t major, minor;
  uint64_t hash;            /* the file's xxh3-64 (set by the loader and by the writer) */
} sk_module;

void sk_module_free(sk_module *m);

/* String i of the module; "" for SK_NONE or out of range (never NULL). */
const char *sk_str(const sk_module *m, uint32_t i);

/* Record encoders/decoders, generated. The size is the record's size in the file. */
#define SKB_REC_PROTOS(lname, UNAME) \
  size_t sk_##lname##_rec_size(void); \
  void sk_##lname##_rec_encode(uint8_t *out, const sk_##lname##_rec *r); \
  void sk_##lname##_rec_decode(const uint8_t *in, sk_##lname##_rec *r);
SKB_RECORDS(SKB_REC_PROTOS)
#undef SKB_REC_PROTOS

/* Little-endian helpers. */
static inline uint32_t sk_rd32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline void sk_wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline uint64_t sk_rd64(const uint8_t *p) { return (uint64_t)sk_rd32(p) | ((uint64_t)sk_rd32(p + 4) << 32); }
static inline void sk_wr64(uint8_t *p, uint64_t v) { sk_wr32(p, (uint32_t)v); sk_wr32(p + 4, (uint32_t)(v >> 32)); }

/*
 * Serialises m into a new buffer (*out, *out_len; the caller frees *out) and sets m->hash.
 * Deterministic. Returns 0, or -1 when a count exceeds the format's 32-bit limits or memory runs out.
 */
int sk_module_write(sk_module *m, uint8_t **out, size_t *out_len);

/*
 * Loads and verifies a .skb image. On success returns 0 and *out (free with sk_module_free). On failure
 * returns -1 and writes a one-line reason naming the section and offset into err (errlen bytes).
 * Never trusts the input: a corrupt or hostile file is refused, never crashes. Cost O(file size).
 */
int sk_module_load(const uint8_t *data, size_t len, sk_module **out, char *err, size_t errlen);

#endif
