/*
 * skb_mutate.c: robustness driver for the .skb loader and verifier (vm/load.c) and the dump (vm/dump.c).
 *
 *   skb_mutate [--mutations N] [--seed S] FILE.skb...
 *
 * For each file (which must load as it is):
 *   - every truncation (0 .. len-1 bytes) must be refused with a non-empty message;
 *   - N seeded random mutants (1-4 bit flips, byte sets, u32 sets, inserts, deletes each; in every
 *     second one the xxh3 hash is recomputed, so the verifier behind the hash check is exercised) must
 *     each be refused with a message, or accepted, dumped, written again, reloaded and dumped to the
 *     same text.
 * Every image is loaded from a buffer of exactly its size, so ASan catches any read past the end; run
 * it under ASan/UBSan. Prints one summary line per file and the most common refusals (digits folded to
 * '#'), and exits 1 when anything was violated, 2 on usage or I/O errors. Cost: O(len^2) for the
 * truncations, O(N * len) for the mutants: meant for small files.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "dump.h"
#include "memstore.h"
#include "skb.h"

#define ERR_LEN 512
#define MSG_PREFIX 60
#define MAX_MSGS 4096
#define TOP_MSGS 5
#define MAX_REPORTS 10

typedef struct {
  char text[MSG_PREFIX + 1];
  unsigned long count;
} msg_count;

typedef struct {
  unsigned long violations;
  msg_count *msgs;
  size_t nmsgs;
  unsigned long other_msgs;   /* refusals not counted once MAX_MSGS distinct messages are seen */
} stats;

/* splitmix64: small, seedable, the same on every platform. */
static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static size_t rng_below(uint64_t *s, size_t n) { return n ? (size_t)(rng_next(s) % n) : 0; }

/* Reports one broken guarantee (what: e.g. "mutation #12 refused without a message"). */
static void violation(stats *st, const char *file, const char *what, const char *detail) {
  if (st->violations++ < MAX_REPORTS)
    fprintf(stderr, "skb_mutate: %s: VIOLATION: %s%s%s\n", file, what, detail ? ": " : "", detail ? detail : "");
}

/* Counts a refusal message by its first MSG_PREFIX characters, digit runs folded to '#'. */
static void count_message(stats *st, const char *err) {
  char key[MSG_PREFIX + 1];
  size_t n = 0;
  for (const char *p = err; *p && n < MSG_PREFIX;) {
    if (p[0] == '0' && p[1] == 'x') {
      p += 2;
      while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')) p++;
      key[n++] = '#';
    } else if (*p >= '0' && *p <= '9') {
      while (*p >= '0' && *p <= '9') p++;
      key[n++] = '#';
    } else {
      key[n++] = *p++;
    }
  }
  key[n] = '\0';
  for (size_t i = 0; i < st->nmsgs; i++)
    if (strcmp(st->msgs[i].text, key) == 0) { st->msgs[i].count++; return; }
  if (st->nmsgs == MAX_MSGS) { st->other_msgs++; return; }
  memcpy(st->msgs[st->nmsgs].text, key, n + 1);
  st->msgs[st->nmsgs++].count = 1;
}

/* Loads data[0..len) from an exact-size copy. Returns sk_module_load's result; err receives the message. */
static int load_exact(const uint8_t *data, size_t len, sk_module **out, char *err) {
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) { snprintf(err, ERR_LEN, "out of memory"); *out = NULL; return -2; }
  if (len) memcpy(copy, data, len);
  err[0] = '\0';
  int rc = sk_module_load(len ? copy : NULL, len, out, err, ERR_LEN);
  free(copy);
  return rc;
}

/* The dump of m as a new string (caller frees), or NULL when sk_dump fails. */
static char *dump_string(const sk_module *m) {
  char *text = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&text, &size);
  if (!f) return NULL;
  int rc = sk_dump(m, f);
  if (fclose(f) != 0) rc = -1;
  if (rc != 0) { free(text); return NULL; }
  return text;
}

/*
 * An accepted module must also run: every table gets two rows (inserted, then one updated) whose
 * fields are named after every column and subject link the module mentions, with one failing provider
 * call scripted per provider, and timers are fired across 30 days of virtual time. Whatever the module
 * does, the interpreter and the scheduler must not crash or trip a sanitizer. Returns the outcome count.
 */
static uint64_t run_module(const sk_module *m) {
  const int64_t start = 1767225600000LL;
  sk_memstore *store = sk_memstore_new(m, start);
  sk_vm *vm = store ? sk_vm_new(m, sk_memstore_ops(), store) : NULL;
  sk_sched *sched = vm ? sk_sched_new(vm, 1) : NULL;
  uint64_t ended = 0;
  if (!sched) goto out;
  static const char *const providers[] = {"resend", "outbox", "webhook", "redis"};
  for (size_t i = 0; i < 4; i++) sk_memstore_add_fault(store, providers[i], i % 2 ? 429 : 500, 1, 1000);
  json_t *row = json_object();
  json_object_set_new(row, "email", json_string("a@example.com"));
  json_object_set_new(row, "name", json_string("<Ada>"));
  for (uint32_t i = 0; i < m->nstrs; i++) /* every string as a field: columns, links, template fields */
    if (m->strs[i].len > 0 && m->strs[i].len < 40) json_object_set_new(row, sk_str(m, i), json_string("u1"));
  static const char *const ids[] = {"u1", "u2", "u1"};
  for (int round = 0; round < 3; round++) {
    /* an hour between rounds, so a later step that waits for a row is waiting when it comes */
    int64_t at = start + round * 3600000LL;
    for (int64_t t; (t = sk_sched_next_timer(sched)) <= at;) {
      sk_memstore_set_now(store, t);
      sk_sched_fire_timers(sched, t);
    }
    sk_memstore_set_now(store, at);
    for (uint32_t t = 0; t < m->ntables; t++) {
      uint32_t kind, ti;
      if (sk_memstore_put(store, sk_str(m, m->tables[t].name_str), ids[round], row, &kind, &ti) != 0) continue;
      if (ti != UINT32_MAX) sk_sched_row(sched, ti, kind, sk_memstore_row_id(store, ti, ids[round]));
      sk_sched_run(sched);
    }
  }
  json_decref(row);
  for (int64_t t; (t = sk_sched_next_timer(sched)) <= start + 30LL * 86400000;) {
    sk_memstore_set_now(store, t);
    sk_sched_fire_timers(sched, t);
  }
  sk_sched_stats st;
  sk_sched_get_stats(sched, &st);
  ended = st.ended;
out:
  sk_sched_free(sched);
  sk_vm_free(vm);
  sk_memstore_free(store);
  return ended;
}

/*
 * An accepted module must dump, and survive sk_module_write + sk_module_load with the same dump. The
 * instruction disassembler is exercised on every instruction too. Returns NULL or what went wrong.
 */
static const char *check_accepted(sk_module *m) {
  char line[256];
  for (uint32_t li = 0; li < m->nloops; li++)
    for (uint32_t pc = 0; pc < m->loops[li].code_count; pc++)
      if (sk_disasm_insn(m, li, pc, line, sizeof line) < 0) return "sk_disasm_insn failed";
  char *first = dump_string(m);
  if (!first) return "sk_dump failed";
  free(first);
  uint8_t *img = NULL;
  size_t len = 0;
  if (sk_module_write(m, &img, &len) != 0) return "sk_module_write failed";
  sk_module *again = NULL;
  char err[ERR_LEN];
  int rc = load_exact(img, len, &again, err);
  free(img);
  if (rc != 0) return "rewritten module refused";
  run_module(again);
  char *a = dump_string(m), *b = dump_string(again);
  const char *problem = (!a || !b) ? "sk_dump failed" : strcmp(a, b) != 0 ? "rewritten module dumps differently" : NULL;
  free(a);
  free(b);
  sk_module_free(again);
  return problem;
}

/* Applies 1-4 random edits to buf (len bytes, capacity cap >= len + 16); returns the new length. */
static size_t mutate(uint8_t *buf, size_t len, uint64_t *rng) {
  static const uint32_t interesting[] = {0, 1, 2, 3, 4, 7, 8, 0x10, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000,
                                         0x7fffffff, 0x80000000u, 0xfffffffeu, 0xffffffffu};
  int edits = 1 + (int)rng_below(rng, 4);
  for (int e = 0; e < edits; e++) {
    switch (rng_below(rng, 5)) {
    case 0:
      if (len) buf[rng_below(rng, len)] ^= (uint8_t)(1u << rng_below(rng, 8));
      break;
    case 1:
      if (len) buf[rng_below(rng, len)] = (uint8_t)(rng_below(rng, 2) ? rng_next(rng) : interesting[rng_below(rng, 11)]);
      break;
    case 2:
      if (len >= 4) {
        size_t at = rng_below(rng, len / 4) * 4;
        uint32_t v = (uint32_t)interesting[rng_below(rng, sizeof interesting / sizeof interesting[0])];
        uint32_t old = sk_rd32(buf + at);
        sk_wr32(buf + at, rng_below(rng, 3) ? v : old + (uint32_t)rng_below(rng, 5) - 2u);
      }
      break;
    case 3: {
      size_t n = 1 + rng_below(rng, 4), at = rng_below(rng, len + 1);
      memmove(buf + at + n, buf + at, len - at);
      for (size_t i = 0; i < n; i++) buf[at + i] = (uint8_t)rng_next(rng);
      len += n;
      break;
    }
    default:
      if (len) {
        size_t at = rng_below(rng, len), n = 1 + rng_below(rng, 4);
        if (n > len - at) n = len - at;
        memmove(buf + at, buf + at + n, len - at - n);
        len -= n;
      }
      break;
    }
  }
  return len;
}

static int by_count(const void *a, const void *b) {
  const msg_count *x = a, *y = b;
  if (x->count != y->count) return x->count < y->count ? 1 : -1;
  return strcmp(x->text, y->text);
}

static uint8_t *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    uint8_t *bigger = realloc(buf, cap * 2);
    if (!bigger) { free(buf); buf = NULL; break; }
    buf = bigger;
    cap *= 2;
  }
  if (ferror(f)) { free(buf); buf = NULL; }
  fclose(f);
  *len = n;
  return buf;
}

/* Runs the whole check on one file. Returns 0, 1 (violations) or 2 (I/O). */
static int run_file(const char *path, unsigned long mutations, uint64_t seed) {
  size_t len = 0;
  uint8_t *orig = read_file(path, &len);
  if (!orig) { fprintf(stderr, "skb_mutate: %s: %s\n", path, strerror(errno)); return 2; }
  stats st = {0};
  st.msgs = calloc(MAX_MSGS, sizeof *st.msgs);
  uint8_t *buf = malloc(len + 4 * 16 + 16);
  char err[ERR_LEN];
  sk_module *m = NULL;
  if (!st.msgs || !buf) { fprintf(stderr, "skb_mutate: out of memory\n"); free(orig); free(st.msgs); free(buf); return 2; }
  if (load_exact(orig, len, &m, err) != 0) {
    fprintf(stderr, "skb_mutate: %s: the file itself is refused: %s\n", path, err);
    free(orig); free(st.msgs); free(buf);
    return 2;
  }
  const char *problem = check_accepted(m);
  if (problem) violation(&st, path, "the file itself", problem);
  /* the unmutated file must really run (or running mutants proves nothing) */
  uint64_t ended = run_module(m);
  if (ended == 0) violation(&st, path, "the file itself", "no instance ran to an end in 30 days");
  sk_module_free(m);

  char what[96];
  unsigned long truncs = 0;
  for (size_t n = 0; n < len; n++) {
    int rc = load_exact(orig, n, &m, err);
    snprintf(what, sizeof what, "truncation to %zu bytes", n);
    if (rc == 0) { sk_module_free(m); violation(&st, path, what, "accepted"); }
    else if (!err[0]) violation(&st, path, what, "refused without a message");
    else truncs++;
  }

  uint64_t rng = seed;
  unsigned long accepted = 0, refused = 0;
  for (unsigned long i = 0; i < mutations; i++) {
    memcpy(buf, orig, len);
    size_t n = mutate(buf, len, &rng);
    if (i % 2 == 1 && n >= 16) sk_wr64(buf + 8, XXH3_64bits(buf + 16, n - 16));
    int rc = load_exact(buf, n, &m, err);
    snprintf(what, sizeof what, "mutation #%lu (--seed %" PRIu64 ")", i, seed);
    if (rc == 0) {
      problem = check_accepted(m);
      if (problem) violation(&st, path, what, problem);
      else accepted++;
      sk_module_free(m);
    } else if (!err[0]) {
      violation(&st, path, what, "refused without a message");
    } else {
      refused++;
      count_message(&st, err);
    }
  }

  printf("skb_mutate: %s: the file runs %" PRIu64 " instances to an end; %lu truncations refused, %lu mutations: %lu accepted+dumped+run, %lu refused%s\n", path, ended, truncs,
         mutations, accepted, refused, st.violations ? "" : ", 0 violations");
  qsort(st.msgs, st.nmsgs, sizeof *st.msgs, by_count);
  printf("  most common refusals (of %zu distinct):\n", st.nmsgs + (st.other_msgs ? 1 : 0));
  for (size_t k = 0; k < st.nmsgs && k < TOP_MSGS; k++) printf("  %7lu  %s\n", st.msgs[k].count, st.msgs[k].text);
  if (st.violations) printf("skb_mutate: %s: %lu violations\n", path, st.violations);
  free(orig);
  free(buf);
  free(st.msgs);
  return st.violations ? 1 : 0;
}

static int parse_u64(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  if (!s || !*s || *s == '-') return -1;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || *end) return -1;
  *out = v;
  return 0;
}

static int usage(void) {
  fprintf(stderr, "usage: skb_mutate [--mutations N] [--seed S] FILE.skb...\n");
  return 2;
}

int main(int argc, char **argv) {
  uint64_t mutations = 10000, seed = 1;
  int i = 1;
  while (i < argc && strncmp(argv[i], "--", 2) == 0) { /* options, each with its value: --name N */
    if (strcmp(argv[i], "--") == 0) { i++; break; }
    uint64_t *target = strcmp(argv[i], "--mutations") == 0 ? &mutations : strcmp(argv[i], "--seed") == 0 ? &seed : NULL;
    if (!target || i + 1 >= argc || parse_u64(argv[i + 1], target) != 0) return usage();
    i += 2;
  }
  if (i >= argc) return usage();
  int worst = 0, files = 0, failed = 0;
  for (; i < argc; i++) {
    int rc = run_file(argv[i], (unsigned long)mutations, seed);
    files++;
    failed += rc != 0;
    if (rc > worst) worst = rc;
  }
  printf("skb_mutate: %d files, %d passed, %d failed\n", files, files - failed, failed);
  return worst;
}
