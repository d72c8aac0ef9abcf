/*
 * skb.c: record encoders/decoders generated from SKB_RECORDS, enum names, the writer, and
 * sk_module_free. The loader and verifier are in load.c.
 */
#include "skb.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define SKB_SIZE_U32 4
#define SKB_SIZE_U64 8
#define SKB_ENC_U32(name) sk_wr32(out + o, r->name); o += 4;
#define SKB_ENC_U64(name) sk_wr64(out + o, r->name); o += 8;
#define SKB_DEC_U32(name) r->name = sk_rd32(in + o); o += 4;
#define SKB_DEC_U64(name) r->name = sk_rd64(in + o); o += 8;
#define SKB_SIZE_F(type, name, doc) + SKB_SIZE_##type
#define SKB_ENC_F(type, name, doc) SKB_ENC_##type(name)
#define SKB_DEC_F(type, name, doc) SKB_DEC_##type(name)

#define SKB_REC_IMPL(lname, UNAME) \
  size_t sk_##lname##_rec_size(void) { return 0 SKB_REC_##UNAME(SKB_SIZE_F); } \
  void sk_##lname##_rec_encode(uint8_t *out, const sk_##lname##_rec *r) { \
    size_t o = 0; SKB_REC_##UNAME(SKB_ENC_F) (void)o; } \
  void sk_##lname##_rec_decode(const uint8_t *in, sk_##lname##_rec *r) { \
    size_t o = 0; SKB_REC_##UNAME(SKB_DEC_F) (void)o; }
SKB_RECORDS(SKB_REC_IMPL)
#undef SKB_REC_IMPL

static const char *name_of(uint32_t v, const char *const *names, uint32_t n) {
  return v < n && names[v] ? names[v] : "?";
}
const char *sk_loop_type_name(uint32_t v) {
  static const char *const n[] = {NULL, "activation", "retention", "referral", "conversion", "expansion"};
  return name_of(v, n, 6);
}
const char *sk_backoff_name(uint32_t v) {
  static const char *const n[] = {NULL, "exponential", "linear", "fixed"};
  return name_of(v, n, 4);
}
const char *sk_format_name(uint32_t v) {
  static const char *const n[] = {NULL, "hash", "json"};
  return name_of(v, n, 3);
}
const char *sk_feed_name(uint32_t v) {
  static const char *const n[] = {NULL, "stream", "keyspace", "scan"};
  return name_of(v, n, 4);
}
const char *sk_event_name(uint32_t v) {
  static const char *const n[] = {NULL, "insert", "update"};
  return name_of(v, n, 3);
}
const char *sk_escape_name(uint32_t v) {
  static const char *const n[] = {"none", "html", "json", "url"};
  return name_of(v, n, 4);
}
const char *sk_effect_name(uint32_t v) {
  static const char *const n[] = {NULL, "email", "webhook", "redis"};
  return name_of(v, n, 4);
}
const char *sk_provider_name(uint32_t v) {
  static const char *const n[] = {"none", "resend", "outbox"};
  return name_of(v, n, 3);
}

const char *sk_str(const sk_module *m, uint32_t i) {
  if (!m || i >= m->nstrs || !m->strbytes) return "";
  return m->strbytes + m->strs[i].off;
}

void sk_module_free(sk_module *m) {
  if (!m) return;
#define SKB_FREE_ARR(fourcc, rec, arr, cnt) free(m->arr);
  SKB_SECTIONS(SKB_FREE_ARR)
#undef SKB_FREE_ARR
  free(m->strbytes);
  free(m);
}

static size_t align4(size_t n) { return (n + 3u) & ~(size_t)3u; }

/* Body size of the STRS section: the records, then the bytes without the in-memory NULs. */
static size_t strs_body_size(const sk_module *m) {
  size_t n = (size_t)m->nstrs * sk_str_rec_size();
  for (uint32_t i = 0; i < m->nstrs; i++) n += m->strs[i].len;
  return n;
}

int sk_module_write(sk_module *m, uint8_t **out, size_t *out_len) {
  enum { NSECT = 0
#define SKB_COUNT_SECT(fourcc, rec, arr, cnt) + 1
    SKB_SECTIONS(SKB_COUNT_SECT)
#undef SKB_COUNT_SECT
  };
  size_t sizes[NSECT], offs[NSECT];
  size_t pos = SKB_HEADER_SIZE + (size_t)NSECT * SKB_SECTION_ENTRY_SIZE;
  int s = 0;
  *out = NULL;
  *out_len = 0;
#define SKB_SIZE_SECT(fourcc, rec, arr, cnt) \
  sizes[s] = (strcmp(fourcc, "STRS") == 0) ? strs_body_size(m) : (size_t)m->cnt * sk_##rec##_rec_size(); \
  offs[s] = pos; pos = align4(pos + sizes[s]); s++;
  SKB_SECTIONS(SKB_SIZE_SECT)
#undef SKB_SIZE_SECT
  if (pos > UINT32_MAX) return -1;
  uint8_t *buf = calloc(1, pos ? pos : 1);
  if (!buf) return -1;
  memcpy(buf, SKB_MAGIC, SKB_MAGIC_LEN);
  buf[16] = SKB_VERSION_MAJOR & 0xff; buf[17] = SKB_VERSION_MAJOR >> 8;
  buf[18] = SKB_VERSION_MINOR & 0xff; buf[19] = SKB_VERSION_MINOR >> 8;
  sk_wr32(buf + 20, NSECT);
  s = 0;
#define SKB_PUT_SECT(fourcc, rec, arr, cnt) { \
    uint8_t *e = buf + SKB_HEADER_SIZE + (size_t)s * SKB_SECTION_ENTRY_SIZE; \
    memcpy(e, fourcc, 4); sk_wr32(e + 4, m->cnt); sk_wr32(e + 8, (uint32_t)offs[s]); sk_wr32(e + 12, (uint32_t)sizes[s]); \
    uint8_t *p = buf + offs[s]; \
    if (strcmp(fourcc, "STRS") == 0) { \
      uint8_t *bytes = p + (size_t)m->nstrs * sk_str_rec_size(); uint32_t boff = 0; \
      for (uint32_t i = 0; i < m->nstrs; i++) { \
        sk_str_rec r = {boff, m->strs[i].len}; sk_str_rec_encode(p + (size_t)i * sk_str_rec_size(), &r); \
        if (m->strs[i].len) { memcpy(bytes + boff, m->strbytes + m->strs[i].off, m->strs[i].len); } boff += m->strs[i].len; } \
    } else { \
      for (uint32_t i = 0; i < m->cnt; i++) sk_##rec##_rec_encode(p + (size_t)i * sk_##rec##_rec_size(), (const void *)&m->arr[i]); \
    } \
    s++; }
  SKB_SECTIONS(SKB_PUT_SECT)
#undef SKB_PUT_SECT
  m->hash = XXH3_64bits(buf + 16, pos - 16);
  sk_wr64(buf + 8, m->hash);
  m->major = SKB_VERSION_MAJOR;
  m->minor = SKB_VERSION_MINOR;
  *out = buf;
  *out_len = pos;
  return 0;
}
