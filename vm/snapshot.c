/*
 * snapshot.c: an instance's state as bytes, for the durable store (the Redis runtime writes one at every
 * suspension, before the work it waits for is relied on) and back.
 *
 * Layout, little-endian:
 *   u8  format (SK_SNAPSHOT_VERSION)
 *   u64 the module's hash (an instance finishes on the bytecode it started with)
 *   u32 loop, u32 pc, u32 attempts, u8 flags, u8 state, u16 nregs
 *   per register: u8 tag, then  INT: i64 | STR: u32 len, bytes | ROW: u32 table, u32 len, bytes | NIL: -
 * The decoder trusts nothing: the module hash, the loop, the pc, the register count and every tag,
 * table and length are checked against the module, so a corrupt or foreign snapshot is refused with a
 * message, never run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm.h"

#define SK_SNAPSHOT_VERSION 1

typedef struct { uint8_t *p; size_t len, cap; int oom; } wbuf;

static void put(wbuf *b, const void *src, size_t n) {
  if (b->oom) return;
  if (b->len + n > b->cap) {
    size_t nc = b->cap ? b->cap * 2 : 128;
    while (nc < b->len + n) nc *= 2;
    uint8_t *p = realloc(b->p, nc);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = nc;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}

static void put_u8(wbuf *b, uint8_t v) { put(b, &v, 1); }
static void put_u16(wbuf *b, uint16_t v) {
  uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
  put(b, x, 2);
}
static void put_u32(wbuf *b, uint32_t v) {
  uint8_t x[4];
  sk_wr32(x, v);
  put(b, x, 4);
}
static void put_u64(wbuf *b, uint64_t v) {
  uint8_t x[8];
  sk_wr64(x, v);
  put(b, x, 8);
}

int sk_snapshot_encode(const sk_module *m, const sk_inst *in, uint8_t **out, size_t *out_len) {
  wbuf b = {0};
  put_u8(&b, SK_SNAPSHOT_VERSION);
  put_u64(&b, m->hash);
  put_u32(&b, in->loop);
  put_u32(&b, in->pc);
  put_u32(&b, in->attempts);
  put_u8(&b, in->flags);
  put_u8(&b, in->state);
  put_u16(&b, in->nregs);
  for (uint32_t r = 0; r < in->nregs; r++) {
    const sk_val *v = &in->regs[r];
    put_u8(&b, (uint8_t)v->tag);
    switch (v->tag) {
    case SK_VAL_INT: put_u64(&b, (uint64_t)v->u.i); break;
    case SK_VAL_ROW: put_u32(&b, v->table); /* fall through: then the id */
    /* FALLTHROUGH */
    case SK_VAL_STR:
      put_u32(&b, v->u.s->len);
      put(&b, v->u.s->data, v->u.s->len);
      break;
    default: break;
    }
  }
  if (b.oom) {
    free(b.p);
    return -1;
  }
  *out = b.p;
  *out_len = b.len;
  return 0;
}

typedef struct { const uint8_t *p; size_t len, pos; } rbuf;

static int take(rbuf *b, size_t n, const uint8_t **at) {
  if (b->len - b->pos < n) return -1;
  *at = b->p + b->pos;
  b->pos += n;
  return 0;
}
static int get_u8(rbuf *b, uint8_t *v) {
  const uint8_t *p;
  if (take(b, 1, &p)) return -1;
  *v = p[0];
  return 0;
}
static int get_u16(rbuf *b, uint16_t *v) {
  const uint8_t *p;
  if (take(b, 2, &p)) return -1;
  *v = (uint16_t)(p[0] | (p[1] << 8));
  return 0;
}
static int get_u32(rbuf *b, uint32_t *v) {
  const uint8_t *p;
  if (take(b, 4, &p)) return -1;
  *v = sk_rd32(p);
  return 0;
}
static int get_u64(rbuf *b, uint64_t *v) {
  const uint8_t *p;
  if (take(b, 8, &p)) return -1;
  *v = sk_rd64(p);
  return 0;
}

sk_inst *sk_snapshot_decode(const sk_module *m, const uint8_t *data, size_t len, char *err, size_t errlen) {
  rbuf b = {data, len, 0};
  uint8_t version = 0, flags = 0, state = 0, tag = 0;
  uint16_t nregs = 0;
  uint64_t hash = 0;
  uint32_t loop = 0, pc = 0, attempts = 0;
  sk_inst *in = NULL;
  if (get_u8(&b, &version) || get_u64(&b, &hash) || get_u32(&b, &loop) || get_u32(&b, &pc) ||
      get_u32(&b, &attempts) || get_u8(&b, &flags) || get_u8(&b, &state) || get_u16(&b, &nregs)) {
    snprintf(err, errlen, "truncated snapshot (%zu bytes)", len);
    return NULL;
  }
  if (version != SK_SNAPSHOT_VERSION) {
    snprintf(err, errlen, "snapshot format %u, this build reads %d", version, SK_SNAPSHOT_VERSION);
    return NULL;
  }
  if (hash != m->hash) {
    snprintf(err, errlen, "snapshot of another bytecode (hash %016llx, this one %016llx)", (unsigned long long)hash,
             (unsigned long long)m->hash);
    return NULL;
  }
  if (loop >= m->nloops || nregs != m->loops[loop].nregs || pc >= m->loops[loop].code_count ||
      state > SK_INST_ENDED || attempts > 1000) {
    snprintf(err, errlen, "snapshot does not fit its bytecode (loop %u, pc %u, %u registers)", loop, pc, nregs);
    return NULL;
  }
  in = calloc(1, sizeof *in + (size_t)nregs * sizeof(sk_val));
  if (!in) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  in->loop = loop;
  in->pc = pc;
  in->attempts = attempts;
  in->flags = flags;
  in->state = state;
  in->nregs = nregs;
  in->heap_pos = UINT32_MAX;
  for (uint32_t r = 0; r < nregs; r++) {
    uint32_t table = 0, slen = 0;
    uint64_t i = 0;
    const uint8_t *bytes;
    if (get_u8(&b, &tag)) goto truncated;
    switch (tag) {
    case SK_VAL_NIL: break;
    case SK_VAL_INT:
      if (get_u64(&b, &i)) goto truncated;
      in->regs[r] = sk_val_int((int64_t)i);
      break;
    case SK_VAL_ROW:
      if (get_u32(&b, &table)) goto truncated;
      if (table >= m->ntables) {
        snprintf(err, errlen, "snapshot register %u: table %u out of range", r, table);
        goto fail;
      }
      /* FALLTHROUGH */
    case SK_VAL_STR: {
      if (get_u32(&b, &slen) || take(&b, slen, &bytes)) goto truncated;
      sk_string *s = sk_str_new((const char *)bytes, slen);
      if (!s) {
        snprintf(err, errlen, "out of memory");
        goto fail;
      }
      in->regs[r] = tag == SK_VAL_STR ? sk_val_str(s) : sk_val_row(table, s);
      break;
    }
    default:
      snprintf(err, errlen, "snapshot register %u: unknown value tag %u", r, tag);
      goto fail;
    }
  }
  if (nregs < 2 || in->regs[0].tag != SK_VAL_STR || in->regs[1].tag != SK_VAL_ROW) {
    snprintf(err, errlen, "snapshot has no subject and trigger row in R0, R1");
    goto fail;
  }
  if (b.pos != len) {
    snprintf(err, errlen, "snapshot has %zu bytes after its last register", len - b.pos);
    goto fail;
  }
  return in;
truncated:
  snprintf(err, errlen, "truncated snapshot (%zu bytes)", len);
fail:
  sk_snapshot_free(in);
  return NULL;
}

void sk_snapshot_free(sk_inst *in) {
  if (!in) return;
  for (uint32_t r = 0; r < in->nregs; r++) sk_val_clear(&in->regs[r]);
  free(in);
}
