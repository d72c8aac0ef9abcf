/* store.c: the durable state of loops in Redis (store.h): key formatting, the scripts and the
 * EVALSHA -> EVAL fallback, and the reading of each operation's reply.
 *
 * An operation copies its whole command (EVALSHA, sha, numkeys, keys, args) into one allocation,
 * the `op`, which is the sk_redis privdata. When Redis answers NOSCRIPT the same op is sent again
 * as EVAL with the script's text, once; then its reply is read and given to the caller. An op holds
 * no pointer to the store, so the store may be freed with operations in flight.
 */
#define _POSIX_C_SOURCE 200809L

#include "store.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

/* ---- keys ---- */

static const char *const key_patterns[SK_KEY_COUNT] = {
#define SK_KEY_PATTERN(name, pattern, type, doc) pattern,
    SK_KEYS(SK_KEY_PATTERN)
#undef SK_KEY_PATTERN
};

const char *sk_key_pattern(sk_key_kind kind) {
  return (unsigned)kind < SK_KEY_COUNT ? key_patterns[kind] : NULL;
}

/* A growable byte buffer; oom is sticky. */
typedef struct kbuf {
  char *p;
  size_t len, cap;
  int oom;
} kbuf;

static void kb_put(kbuf *b, const void *src, size_t n) {
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap * 2 : 64;
    while (nc < b->len + n + 1)
      nc *= 2;
    char *p = realloc(b->p, nc);
    if (p == NULL) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = nc;
  }
  if (n > 0)
    memcpy(b->p + b->len, src, n);
  b->len += n;
  b->p[b->len] = '\0';
}

/* The buffer as a NUL-terminated string the caller owns, or NULL (out of memory). */
static char *kb_take(kbuf *b, size_t *len) {
  if (b->oom || b->p == NULL) {
    free(b->p);
    return NULL;
  }
  *len = b->len;
  return b->p;
}

char *sk_key_format(const char *prefix, sk_key_kind kind, const char *const *parts,
                    const size_t *lens, size_t nparts, size_t *len) {
  const char *pat = sk_key_pattern(kind);
  kbuf b = {0};
  size_t used = 0;
  if (pat == NULL || prefix == NULL)
    return NULL;
  kb_put(&b, prefix, strlen(prefix)); /* allocates, even for an empty prefix */
  for (const char *c = pat; *c != '\0'; c++) {
    const char *close = *c == '{' ? strchr(c, '}') : NULL;
    if (close == NULL) {
      kb_put(&b, c, 1);
      continue;
    }
    if (used == nparts) { /* more placeholders than parts */
      used = nparts + 1;
      break;
    }
    kb_put(&b, parts[used], lens != NULL ? lens[used] : strlen(parts[used]));
    used++;
    c = close;
  }
  if (used != nparts) {
    free(b.p);
    return NULL;
  }
  return kb_take(&b, len);
}

/* ---- the scripts ---- */

enum script_id { SC_START, SC_SUSPEND, SC_END, SC_CHECK, SC_INDEX_ADD, SC_RELEASE, SC_BEGIN, SC_CLAIM,
                 SC_PARK, SC_FINISH, SC_PEEK, SC_DUE_NEXT, SC_CLAIM_CHECK, SC_BEGIN_CHECK, SC_EVENT_POST, SC_PARK_EV, SC_COUNT };

/* KEYS and ARGV of each are documented above its text. Short: Upstash runs a script under a lock. */
static const char *const scripts[SC_COUNT] = {
    /* KEYS started, inst; ARGV subject, snapshot */
    "if redis.call('SADD',KEYS[1],ARGV[1])==1 then redis.call('SET',KEYS[2],ARGV[2]) return 1 end "
    "return 0",
    /* KEYS inst, timers[, wait]; ARGV snapshot, wake_at ('' none). The member is the inst key. */
    "redis.call('SET',KEYS[1],ARGV[1]) "
    "if ARGV[2]=='' then redis.call('ZREM',KEYS[2],KEYS[1]) "
    "else redis.call('ZADD',KEYS[2],ARGV[2],KEYS[1]) end "
    "if KEYS[3] then redis.call('SADD',KEYS[3],KEYS[1]) end "
    "return 1",
    /* KEYS inst, timers[, wait] */
    "redis.call('DEL',KEYS[1]) redis.call('ZREM',KEYS[2],KEYS[1]) "
    "if KEYS[3] then redis.call('SREM',KEYS[3],KEYS[1]) end "
    "return 1",
    /* KEYS idx, wait, inst, timers[, lease]; ARGV min_rows, limit[, snapshot, wake_at ('' none)
       [, worker]]. Returns {1, count[, first row]} held, {0, count} waiting (the lease, when
       given and held by worker, is given back with the suspension). */
    "local n=redis.call('ZCARD',KEYS[1]) local l=tonumber(ARGV[2]) "
    "if l>0 and n>l then n=l end "
    "if n>=tonumber(ARGV[1]) then redis.call('SREM',KEYS[2],KEYS[3]) "
    "local f=redis.call('ZRANGE',KEYS[1],0,0) return {1,n,f[1]} end "
    "redis.call('SADD',KEYS[2],KEYS[3]) "
    "if ARGV[3] then redis.call('SET',KEYS[3],ARGV[3]) "
    "if ARGV[4]=='' then redis.call('ZREM',KEYS[4],KEYS[3]) "
    "else redis.call('ZADD',KEYS[4],ARGV[4],KEYS[3]) end "
    "if KEYS[5] and redis.call('GET',KEYS[5])==ARGV[5] then redis.call('DEL',KEYS[5]) end end "
    "return {0,n}",
    /* KEYS idx, wait; ARGV score, row id. Returns {added, waiter...}. */
    "local a=redis.call('ZADD',KEYS[1],'NX',ARGV[1],ARGV[2]) "
    "local w=redis.call('SMEMBERS',KEYS[2]) "
    "table.insert(w,1,a) return w",
    /* KEYS lease; ARGV worker */
    "if redis.call('GET',KEYS[1])==ARGV[1] then redis.call('DEL',KEYS[1]) return 1 end return 0",
    /* begin. KEYS started, inst, timers, lease; ARGV subject, snapshot, wake_at, worker, ttl */
    "if redis.call('SADD',KEYS[1],ARGV[1])==0 then return 0 end "
    "redis.call('SET',KEYS[2],ARGV[2]) redis.call('ZADD',KEYS[3],ARGV[3],KEYS[2]) "
    "redis.call('SET',KEYS[4],ARGV[4],'PX',ARGV[5]) return 1",
    /* claim. KEYS lease, inst, timers; ARGV worker, ttl, wake_at. {0} leased by another, {2} no
       instance (ended: its stray timer goes), {1, snapshot} ours */
    "if not redis.call('SET',KEYS[1],ARGV[1],'NX','PX',ARGV[2]) then return {0} end "
    "local s=redis.call('GET',KEYS[2]) "
    "if not s then redis.call('DEL',KEYS[1]) redis.call('ZREM',KEYS[3],KEYS[2]) return {2} end "
    "redis.call('ZADD',KEYS[3],ARGV[3],KEYS[2]) return {1,s}",
    /* park. KEYS inst, timers, lease, wait (ARGV[4] of them: 0 or 1), leave...; ARGV snapshot,
       wake_at ('' none), worker, nwait */
    "redis.call('SET',KEYS[1],ARGV[1]) "
    "if ARGV[2]=='' then redis.call('ZREM',KEYS[2],KEYS[1]) "
    "else redis.call('ZADD',KEYS[2],ARGV[2],KEYS[1]) end "
    "local w=tonumber(ARGV[4]) "
    "for i=4+w,#KEYS do redis.call('SREM',KEYS[i],KEYS[1]) end "
    "for i=4,3+w do redis.call('SADD',KEYS[i],KEYS[1]) end "
    "if redis.call('GET',KEYS[3])==ARGV[3] then redis.call('DEL',KEYS[3]) end return 1",
    /* finish. KEYS inst, timers, lease, leave...; ARGV worker */
    "redis.call('DEL',KEYS[1]) redis.call('ZREM',KEYS[2],KEYS[1]) "
    "for i=4,#KEYS do redis.call('SREM',KEYS[i],KEYS[1]) end "
    "if redis.call('GET',KEYS[3])==ARGV[1] then redis.call('DEL',KEYS[3]) end return 1",
    /* peek. KEYS idx; ARGV min_rows, limit. {held, count[, first row]}, nothing written */
    "local n=redis.call('ZCARD',KEYS[1]) local l=tonumber(ARGV[2]) "
    "if l>0 and n>l then n=l end local f=redis.call('ZRANGE',KEYS[1],0,0) "
    "return {n>=tonumber(ARGV[1]) and 1 or 0,n,f[1]}",
    /* due_next. KEYS timers; ARGV now, max. {next score after now or '', due inst keys...} */
    "local d=redis.call('ZRANGEBYSCORE',KEYS[1],'-inf',ARGV[1],'LIMIT',0,tonumber(ARGV[2])) "
    "local n=redis.call('ZRANGEBYSCORE',KEYS[1],'('..ARGV[1],'+inf','WITHSCORES','LIMIT',0,1) "
    "table.insert(d,1,n[2] or '') return d",
    /* claim_check. KEYS lease, inst, timers, idx; ARGV worker, ttl, wake_at. As claim, and when
       taken {1, snapshot, ZCARD idx[, first row]} */
    "if not redis.call('SET',KEYS[1],ARGV[1],'NX','PX',ARGV[2]) then return {0} end "
    "local s=redis.call('GET',KEYS[2]) "
    "if not s then redis.call('DEL',KEYS[1]) redis.call('ZREM',KEYS[3],KEYS[2]) return {2} end "
    "redis.call('ZADD',KEYS[3],ARGV[3],KEYS[2]) "
    "local f=redis.call('ZRANGE',KEYS[4],0,0) "
    "return {1,s,redis.call('ZCARD',KEYS[4]),f[1]}",
    /* begin_check. KEYS started, inst, timers, lease, idx, wait; ARGV subject, snapshot, min_rows,
       limit, worker, ttl, lease_end, deadline ('' none). {0} started before; {1, held, count[,
       first]}: started, and either held (leased to worker, timer at lease_end) or waiting (in the
       wait set, timer at the deadline) */
    "if redis.call('SADD',KEYS[1],ARGV[1])==0 then return {0} end "
    "redis.call('SET',KEYS[2],ARGV[2]) "
    "local n=redis.call('ZCARD',KEYS[5]) local l=tonumber(ARGV[4]) "
    "if l>0 and n>l then n=l end "
    "if n>=tonumber(ARGV[3]) then redis.call('SET',KEYS[4],ARGV[5],'PX',ARGV[6]) "
    "redis.call('ZADD',KEYS[3],ARGV[7],KEYS[2]) "
    "local f=redis.call('ZRANGE',KEYS[5],0,0) return {1,1,n,f[1]} end "
    "redis.call('SADD',KEYS[6],KEYS[2]) "
    "if ARGV[8]=='' then redis.call('ZREM',KEYS[3],KEYS[2]) "
    "else redis.call('ZADD',KEYS[3],ARGV[8],KEYS[2]) end return {1,0,n}",
    /* event_post. KEYS wait, evbox...; ARGV row, score, ttl. The event goes into each loop's box;
       returns the waiters */
    "for i=2,#KEYS do redis.call('ZADD',KEYS[i],'NX',ARGV[2],ARGV[1]) "
    "redis.call('PEXPIRE',KEYS[i],ARGV[3]) end return redis.call('SMEMBERS',KEYS[1])",
    /* park_ev. KEYS inst, timers, lease, wait, evbox, leave...; ARGV snapshot, wake_at ('' none),
       worker. {1, row}: an event was in the box (taken; nothing else written), {0}: parked */
    "local e=redis.call('ZRANGE',KEYS[5],0,0) "
    "if e[1] then redis.call('ZREM',KEYS[5],e[1]) return {1,e[1]} end "
    "redis.call('SET',KEYS[1],ARGV[1]) "
    "if ARGV[2]=='' then redis.call('ZREM',KEYS[2],KEYS[1]) "
    "else redis.call('ZADD',KEYS[2],ARGV[2],KEYS[1]) end "
    "for i=6,#KEYS do redis.call('SREM',KEYS[i],KEYS[1]) end "
    "redis.call('SADD',KEYS[4],KEYS[1]) "
    "if redis.call('GET',KEYS[3])==ARGV[3] then redis.call('DEL',KEYS[3]) end return {0}",
};

/* ---- the store ---- */

struct sk_store {
  sk_redis *r;
  char *prefix;
  size_t prefix_len;
  char sha[SC_COUNT][41];
  char err[256];
};

sk_store *sk_store_new(sk_redis *r, const char *prefix) {
  static const char hex[] = "0123456789abcdef";
  sk_store *s = calloc(1, sizeof *s);
  if (s == NULL)
    goto fail;
  s->r = r;
  s->prefix = strdup(prefix != NULL ? prefix : SK_KEY_PREFIX_DEFAULT);
  if (s->prefix == NULL)
    goto fail;
  s->prefix_len = strlen(s->prefix);
  for (int i = 0; i < SC_COUNT; i++) {
    unsigned char d[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)scripts[i], strlen(scripts[i]), d);
    for (int j = 0; j < SHA_DIGEST_LENGTH; j++) {
      s->sha[i][2 * j] = hex[d[j] >> 4];
      s->sha[i][2 * j + 1] = hex[d[j] & 15];
    }
    s->sha[i][40] = '\0';
  }
  return s;
fail:
  sk_store_free(s);
  return NULL;
}

void sk_store_free(sk_store *s) {
  if (s == NULL)
    return;
  free(s->prefix);
  free(s);
}

const char *sk_store_errstr(const sk_store *s) { return s->err; }

char *sk_store_inst_key(const sk_store *s, const char *loop, const char *subject,
                        size_t subject_len, size_t *len) {
  const char *parts[2] = {loop, subject};
  size_t lens[2] = {strlen(loop), subject_len};
  return sk_key_format(s->prefix, SK_KEY_INST, parts, lens, 2, len);
}

/* A value of an index key: bytes 0x1E and 0x1F are escaped by 0x1E, so the separator 0x1F never
   appears inside a value and two different value lists never give the same key. */
static void put_value(kbuf *b, const char *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (v[i] == '\x1e' || v[i] == '\x1f')
      kb_put(b, "\x1e", 1);
    kb_put(b, v + i, 1);
  }
}

char *sk_store_index_key(const sk_store *s, const sk_store_index *ix, sk_key_kind which,
                         size_t *len) {
  kbuf shape = {0}, values = {0};
  char *key = NULL;
  size_t shape_len = 0, values_len = 0;
  if ((which != SK_KEY_INDEX && which != SK_KEY_WAIT) || ix->ncols == 0 || ix->table == NULL)
    return NULL;
  kb_put(&shape, ix->table, strlen(ix->table));
  kb_put(&shape, "(", 1);
  for (size_t i = 0; i < ix->ncols; i++) {
    if (i > 0) {
      kb_put(&shape, ",", 1);
      kb_put(&values, "\x1f", 1);
    }
    kb_put(&shape, ix->cols[i], strlen(ix->cols[i]));
    put_value(&values, ix->values[i],
              ix->value_lens != NULL ? ix->value_lens[i] : strlen(ix->values[i]));
  }
  kb_put(&shape, ")", 1);
  kb_put(&values, "", 0); /* an empty single value still gives a buffer */
  char *sp = kb_take(&shape, &shape_len), *vp = kb_take(&values, &values_len);
  if (sp != NULL && vp != NULL) {
    const char *parts[2] = {sp, vp};
    size_t lens[2] = {shape_len, values_len};
    if (which == SK_KEY_INDEX) {
      key = sk_key_format(s->prefix, SK_KEY_INDEX, parts, lens, 2, len);
    } else {
      /* wait: + the index key after the prefix */
      size_t idx_len;
      char *idx = sk_key_format("", SK_KEY_INDEX, parts, lens, 2, &idx_len);
      if (idx != NULL) {
        const char *wp[1] = {idx};
        key = sk_key_format(s->prefix, SK_KEY_WAIT, wp, &idx_len, 1, len);
      }
      free(idx);
    }
  }
  free(sp);
  free(vp);
  return key;
}

int sk_store_inst_parse(const sk_store *s, const char *key, size_t len, const char **loop,
                        size_t *loop_len, const char **subject, size_t *subject_len) {
  static const char tag[] = "inst:";
  size_t head = s->prefix_len + sizeof tag - 1;
  if (len < head || memcmp(key, s->prefix, s->prefix_len) != 0 ||
      memcmp(key + s->prefix_len, tag, sizeof tag - 1) != 0)
    return -1;
  const char *colon = memchr(key + head, ':', len - head);
  if (colon == NULL || colon == key + head)
    return -1;
  *loop = key + head;
  *loop_len = (size_t)(colon - *loop);
  *subject = colon + 1;
  *subject_len = len - (size_t)(*subject - key);
  return 0;
}

/* ---- operations ---- */

enum op_kind { OP_START, OP_SUSPEND, OP_END, OP_CHECK, OP_INDEX_ADD, OP_LOAD, OP_DUE, OP_LEASE,
               OP_RELEASE, OP_BEGIN, OP_CLAIM, OP_PARK, OP_FINISH, OP_PEEK, OP_DUE_NEXT, OP_CLAIM_CHECK, OP_BEGIN_CHECK, OP_EVENT_POST, OP_PARK_EV };

static const char *const op_names[] = {"start", "suspend", "end", "check_or_wait", "index_add",
                                       "load", "due", "lease", "release", "begin", "claim",
                                       "park", "finish", "peek", "due", "claim", "begin", "event_post", "park"};

#define MAX_ARGS 16

/* The arguments of one command as they are gathered; `owned` are freed after sending. */
typedef struct args {
  int argc;
  const char *argv[MAX_ARGS];
  size_t lens[MAX_ARGS];
  char *owned[8];
  int nowned;
} args;

static void arg(args *a, const void *p, size_t n) {
  assert(a->argc < MAX_ARGS);
  a->argv[a->argc] = p;
  a->lens[a->argc] = n;
  a->argc++;
}

static void arg_str(args *a, const char *p) { arg(a, p, strlen(p)); }

/* Adds a key of *n bytes that a takes over (NULL: out of memory, reported by send_op). n is a
   pointer so that arg_owned(a, make_key(&n), &n) reads it after make_key wrote it. */
static int arg_owned(args *a, char *p, const size_t *n) {
  assert(a->nowned < 8);
  a->owned[a->nowned++] = p;
  if (p == NULL)
    return -1;
  arg(a, p, *n);
  return 0;
}

static void args_free(args *a) {
  for (int i = 0; i < a->nowned; i++)
    free(a->owned[i]);
}

typedef struct op {
  enum op_kind kind;
  int script; /* enum script_id, or -1 for a plain command */
  int fell_back;
  int argc;
  const char **argv; /* into this allocation; argv[1] of EVALSHA is the sha, then the text */
  size_t *lens;
  sk_store_callback cb;
  void *privdata;
} op;

static void on_reply(sk_redis *r, const sk_redis_result *res, void *privdata);

/* Copies the command a (with EVALSHA sha numkeys in front when script >= 0) into a new op and
   queues it. Frees a's owned keys. 0, or -1 with s->err set. */
static int send_op(sk_store *s, enum op_kind kind, int script, int nkeys, args *a,
                   sk_store_callback cb, void *privdata) {
  char numkeys[16];
  const char *head[3];
  size_t head_lens[3];
  int nhead = 0, rc = -1;
  op *o = NULL;
  for (int i = 0; i < a->nowned; i++)
    if (a->owned[i] == NULL) {
      snprintf(s->err, sizeof s->err, "%s: out of memory", op_names[kind]);
      goto done;
    }
  if (script >= 0) {
    snprintf(numkeys, sizeof numkeys, "%d", nkeys);
    head[0] = "EVALSHA";
    head[1] = s->sha[script];
    head[2] = numkeys;
    for (int i = 0; i < 3; i++)
      head_lens[i] = strlen(head[i]);
    nhead = 3;
  }
  int argc = nhead + a->argc;
  size_t bytes = sizeof *o + (size_t)argc * (sizeof(char *) + sizeof(size_t));
  for (int i = 0; i < nhead; i++)
    bytes += head_lens[i] + 1;
  for (int i = 0; i < a->argc; i++)
    bytes += a->lens[i] + 1;
  o = malloc(bytes);
  if (o == NULL) {
    snprintf(s->err, sizeof s->err, "%s: out of memory", op_names[kind]);
    goto done;
  }
  o->kind = kind;
  o->script = script;
  o->fell_back = 0;
  o->argc = argc;
  o->argv = (const char **)(o + 1);
  o->lens = (size_t *)(o->argv + argc);
  o->cb = cb;
  o->privdata = privdata;
  char *p = (char *)(o->lens + argc);
  for (int i = 0; i < argc; i++) {
    const char *src = i < nhead ? head[i] : a->argv[i - nhead];
    size_t n = i < nhead ? head_lens[i] : a->lens[i - nhead];
    if (n > 0)
      memcpy(p, src, n);
    p[n] = '\0';
    o->argv[i] = p;
    o->lens[i] = n;
    p += n + 1;
  }
  if (sk_redis_command(s->r, o->argc, o->argv, o->lens, on_reply, o) != 0) {
    snprintf(s->err, sizeof s->err, "%s: %s", op_names[kind], sk_redis_errstr(s->r));
    free(o);
    goto done;
  }
  s->err[0] = '\0';
  rc = 0;
done:
  args_free(a);
  return rc;
}

static int is_str(const redisReply *x) {
  return x->type == REDIS_REPLY_STRING || x->type == REDIS_REPLY_STATUS;
}

/* Fills out from an array of strings el[0..n): strs/lens are new arrays in *ps / *pl (freed by the
   caller after the callback). -1 when an element is not a string or memory runs out. */
static int read_strings(redisReply **el, size_t n, sk_store_result *out, const char ***ps,
                        size_t **pl) {
  *ps = NULL;
  *pl = NULL;
  if (n == 0)
    return 0;
  *ps = malloc(n * sizeof **ps);
  *pl = malloc(n * sizeof **pl);
  if (*ps == NULL || *pl == NULL)
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (!is_str(el[i]))
      return -1;
    (*ps)[i] = el[i]->str;
    (*pl)[i] = el[i]->len;
  }
  out->strs = *ps;
  out->lens = *pl;
  out->count = n;
  return 0;
}

/* Reads a reply of the shape o->kind expects into out; 0, or -1 when it has another shape. */
static int read_reply(const op *o, const redisReply *x, sk_store_result *out, const char ***ps,
                      size_t **pl) {
  switch (o->kind) {
  case OP_START:
  case OP_SUSPEND:
  case OP_END:
  case OP_RELEASE:
  case OP_BEGIN:
  case OP_PARK:
  case OP_FINISH:
    if (x->type != REDIS_REPLY_INTEGER)
      return -1;
    out->n = x->integer;
    return 0;
  case OP_LEASE:
    if (x->type == REDIS_REPLY_NIL)
      return 0;
    if (x->type != REDIS_REPLY_STATUS || strcmp(x->str, "OK") != 0)
      return -1;
    out->n = 1;
    return 0;
  case OP_LOAD:
    if (x->type == REDIS_REPLY_NIL)
      return 0;
    if (x->type != REDIS_REPLY_STRING)
      return -1;
    out->n = 1;
    out->str = x->str;
    out->len = x->len;
    return 0;
  case OP_PARK_EV:
    if (x->type != REDIS_REPLY_ARRAY || x->elements < 1 || x->elements > 2 ||
        x->element[0]->type != REDIS_REPLY_INTEGER)
      return -1;
    out->n = x->element[0]->integer;
    if (x->elements == 2) {
      if (!is_str(x->element[1]))
        return -1;
      out->str = x->element[1]->str;
      out->len = x->element[1]->len;
    }
    return 0;
  case OP_EVENT_POST:
  case OP_DUE:
    if (x->type != REDIS_REPLY_ARRAY)
      return -1;
    return read_strings(x->element, x->elements, out, ps, pl);
  case OP_DUE_NEXT:
    if (x->type != REDIS_REPLY_ARRAY || x->elements < 1 || !is_str(x->element[0]))
      return -1;
    out->n = x->element[0]->len > 0 ? strtoll(x->element[0]->str, NULL, 10) : -1;
    return read_strings(x->element + 1, x->elements - 1, out, ps, pl);
  case OP_CLAIM:
  case OP_CLAIM_CHECK:
    if (x->type != REDIS_REPLY_ARRAY || x->elements < 1 || x->elements > 4 ||
        x->element[0]->type != REDIS_REPLY_INTEGER)
      return -1;
    out->n = x->element[0]->integer;
    if (x->elements >= 2) {
      if (!is_str(x->element[1]))
        return -1;
      out->str = x->element[1]->str;
      out->len = x->element[1]->len;
    }
    if (x->elements >= 3) {
      if (x->element[2]->type != REDIS_REPLY_INTEGER)
        return -1;
      out->rows = x->element[2]->integer;
    }
    if (x->elements == 4 && read_strings(x->element + 3, 1, out, ps, pl) != 0)
      return -1;
    return out->n == 1 && out->str == NULL ? -1 : 0;
  case OP_BEGIN_CHECK:
    if (x->type != REDIS_REPLY_ARRAY || x->elements < 1 || x->element[0]->type != REDIS_REPLY_INTEGER)
      return -1;
    out->n = x->element[0]->integer;
    if (out->n == 0)
      return x->elements == 1 ? 0 : -1;
    if (x->elements < 3 || x->elements > 4 || x->element[1]->type != REDIS_REPLY_INTEGER ||
        x->element[2]->type != REDIS_REPLY_INTEGER)
      return -1;
    out->held = x->element[1]->integer == 1;
    out->rows = x->element[2]->integer;
    if (x->elements == 4) {
      if (!is_str(x->element[3]))
        return -1;
      out->str = x->element[3]->str;
      out->len = x->element[3]->len;
    }
    return 0;
  case OP_CHECK:
  case OP_PEEK:
    if (x->type != REDIS_REPLY_ARRAY || x->elements < 2 || x->elements > 3 ||
        x->element[0]->type != REDIS_REPLY_INTEGER || x->element[1]->type != REDIS_REPLY_INTEGER)
      return -1;
    out->held = x->element[0]->integer == 1;
    out->n = x->element[1]->integer;
    if (x->elements == 3) {
      if (!is_str(x->element[2]))
        return -1;
      out->str = x->element[2]->str;
      out->len = x->element[2]->len;
    }
    return 0;
  case OP_INDEX_ADD:
    if (x->type != REDIS_REPLY_ARRAY || x->elements < 1 ||
        x->element[0]->type != REDIS_REPLY_INTEGER)
      return -1;
    out->n = x->element[0]->integer;
    return read_strings(x->element + 1, x->elements - 1, out, ps, pl);
  }
  return -1;
}

static void on_reply(sk_redis *r, const sk_redis_result *res, void *privdata) {
  op *o = privdata;
  const redisReply *x = res->reply;
  sk_store_result out;
  char err[512];
  const char **strs = NULL;
  size_t *lens = NULL;
  memset(&out, 0, sizeof out);
  out.status = res->status;
  out.errstr = "";
  if (res->status != SK_REDIS_OK) {
    snprintf(err, sizeof err, "%s: %s", op_names[o->kind], res->errstr);
    out.errstr = err;
  } else if (x->type == REDIS_REPLY_ERROR && o->script >= 0 && !o->fell_back &&
             strncmp(x->str, "NOSCRIPT", 8) == 0) {
    /* The server does not know the script (restarted, SCRIPT FLUSH): send its text, once. */
    o->fell_back = 1;
    o->argv[0] = "EVAL";
    o->lens[0] = 4;
    o->argv[1] = scripts[o->script];
    o->lens[1] = strlen(scripts[o->script]);
    if (sk_redis_command(r, o->argc, o->argv, o->lens, on_reply, o) == 0)
      return;
    out.status = SK_REDIS_NOT_SENT;
    snprintf(err, sizeof err, "%s: %s", op_names[o->kind], sk_redis_errstr(r));
    out.errstr = err;
  } else if (x->type == REDIS_REPLY_ERROR) {
    snprintf(err, sizeof err, "%s: %.*s", op_names[o->kind], (int)x->len, x->str);
    out.errstr = err;
  } else if (read_reply(o, x, &out, &strs, &lens) != 0) {
    snprintf(err, sizeof err, "%s: unexpected reply (type %d)", op_names[o->kind], x->type);
    memset(&out, 0, sizeof out);
    out.status = SK_REDIS_OK;
    out.errstr = err;
  } else {
    out.ok = 1;
  }
  o->cb(&out, o->privdata);
  free(strs);
  free(lens);
  free(o);
}

/* ARGV text of a time or a score. */
static void fmt_i64(char *buf, size_t n, int64_t v) { snprintf(buf, n, "%lld", (long long)v); }

static int check_inst(sk_store *s, enum op_kind kind, const char *loop, const char *subject,
                      size_t subject_len) {
  if (loop == NULL || loop[0] == '\0' || strchr(loop, ':') != NULL ||
      (subject == NULL && subject_len > 0)) {
    snprintf(s->err, sizeof s->err, "%s: bad loop name or subject", op_names[kind]);
    return -1;
  }
  return 0;
}

static int arg_inst(sk_store *s, args *a, const char *loop, const char *subject,
                    size_t subject_len) {
  size_t n = 0;
  char *k = sk_store_inst_key(s, loop, subject != NULL ? subject : "", subject_len, &n);
  return arg_owned(a, k, &n);
}

int sk_store_start(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                   const void *snapshot, size_t snapshot_len, sk_store_callback cb,
                   void *privdata) {
  args a = {0};
  size_t n = 0;
  if (check_inst(s, OP_START, loop, subject, subject_len) != 0)
    return -1;
  const char *loop_part[1] = {loop};
  arg_owned(&a, sk_key_format(s->prefix, SK_KEY_STARTED, loop_part, NULL, 1, &n), &n);
  arg_inst(s, &a, loop, subject, subject_len);
  arg(&a, subject != NULL ? subject : "", subject_len);
  arg(&a, snapshot != NULL ? snapshot : "", snapshot_len);
  return send_op(s, OP_START, SC_START, 2, &a, cb, privdata);
}

int sk_store_suspend(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                     const void *snapshot, size_t snapshot_len, int64_t wake_at_ms,
                     const char *wait_key, size_t wait_key_len, sk_store_callback cb,
                     void *privdata) {
  args a = {0};
  char wake[24] = "";
  if (check_inst(s, OP_SUSPEND, loop, subject, subject_len) != 0)
    return -1;
  if (wake_at_ms != SK_STORE_NO_WAKE)
    fmt_i64(wake, sizeof wake, wake_at_ms);
  arg_inst(s, &a, loop, subject, subject_len);
  size_t n = 0;
  arg_owned(&a, sk_key_format(s->prefix, SK_KEY_TIMERS, NULL, NULL, 0, &n), &n);
  if (wait_key != NULL)
    arg(&a, wait_key, wait_key_len);
  arg(&a, snapshot != NULL ? snapshot : "", snapshot_len);
  arg_str(&a, wake);
  return send_op(s, OP_SUSPEND, SC_SUSPEND, wait_key != NULL ? 3 : 2, &a, cb, privdata);
}

int sk_store_end(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                 const char *wait_key, size_t wait_key_len, sk_store_callback cb, void *privdata) {
  args a = {0};
  size_t n = 0;
  if (check_inst(s, OP_END, loop, subject, subject_len) != 0)
    return -1;
  arg_inst(s, &a, loop, subject, subject_len);
  arg_owned(&a, sk_key_format(s->prefix, SK_KEY_TIMERS, NULL, NULL, 0, &n), &n);
  if (wait_key != NULL)
    arg(&a, wait_key, wait_key_len);
  return send_op(s, OP_END, SC_END, wait_key != NULL ? 3 : 2, &a, cb, privdata);
}

static int arg_lease(sk_store *s, args *a, const char *loop, const char *subject,
                     size_t subject_len);

static int check_or_wait(sk_store *s, const sk_store_index *ix, const char *loop,
                         const char *subject, size_t subject_len, uint32_t min_rows,
                         uint32_t limit, const void *snapshot, size_t snapshot_len,
                         int64_t wake_at_ms, const char *worker, sk_store_callback cb,
                         void *privdata);

int sk_store_check_or_wait(sk_store *s, const sk_store_index *ix, const char *loop,
                           const char *subject, size_t subject_len, uint32_t min_rows,
                           uint32_t limit, const void *snapshot, size_t snapshot_len,
                           int64_t wake_at_ms, sk_store_callback cb, void *privdata) {
  return check_or_wait(s, ix, loop, subject, subject_len, min_rows, limit, snapshot,
                       snapshot_len, wake_at_ms, NULL, cb, privdata);
}

int sk_store_check_or_park(sk_store *s, const sk_store_index *ix, const char *loop,
                           const char *subject, size_t subject_len, uint32_t min_rows,
                           uint32_t limit, const void *snapshot, size_t snapshot_len,
                           int64_t wake_at_ms, const char *worker, sk_store_callback cb,
                           void *privdata) {
  if (snapshot == NULL || worker == NULL || worker[0] == '\0') {
    snprintf(s->err, sizeof s->err, "check_or_wait: parking needs a snapshot and a worker id");
    return -1;
  }
  return check_or_wait(s, ix, loop, subject, subject_len, min_rows, limit, snapshot,
                       snapshot_len, wake_at_ms, worker, cb, privdata);
}

static int check_or_wait(sk_store *s, const sk_store_index *ix, const char *loop,
                         const char *subject, size_t subject_len, uint32_t min_rows,
                         uint32_t limit, const void *snapshot, size_t snapshot_len,
                         int64_t wake_at_ms, const char *worker, sk_store_callback cb,
                         void *privdata) {
  args a = {0};
  char smin[16], slimit[16], wake[24] = "";
  size_t n = 0;
  if (check_inst(s, OP_CHECK, loop, subject, subject_len) != 0)
    return -1;
  snprintf(smin, sizeof smin, "%u", (unsigned)min_rows);
  snprintf(slimit, sizeof slimit, "%u", (unsigned)limit);
  if (wake_at_ms != SK_STORE_NO_WAKE)
    fmt_i64(wake, sizeof wake, wake_at_ms);
  arg_owned(&a, sk_store_index_key(s, ix, SK_KEY_INDEX, &n), &n);
  arg_owned(&a, sk_store_index_key(s, ix, SK_KEY_WAIT, &n), &n);
  arg_inst(s, &a, loop, subject, subject_len);
  arg_owned(&a, sk_key_format(s->prefix, SK_KEY_TIMERS, NULL, NULL, 0, &n), &n);
  if (worker != NULL)
    arg_lease(s, &a, loop, subject, subject_len);
  arg_str(&a, smin);
  arg_str(&a, slimit);
  if (snapshot != NULL) {
    arg(&a, snapshot, snapshot_len);
    arg_str(&a, wake);
  }
  if (worker != NULL)
    arg_str(&a, worker);
  return send_op(s, OP_CHECK, SC_CHECK, worker != NULL ? 5 : 4, &a, cb, privdata);
}

int sk_store_index_add(sk_store *s, const sk_store_index *ix, const char *row_id,
                       size_t row_id_len, int64_t score, sk_store_callback cb, void *privdata) {
  args a = {0};
  char sscore[24];
  size_t n = 0;
  fmt_i64(sscore, sizeof sscore, score);
  arg_owned(&a, sk_store_index_key(s, ix, SK_KEY_INDEX, &n), &n);
  arg_owned(&a, sk_store_index_key(s, ix, SK_KEY_WAIT, &n), &n);
  arg_str(&a, sscore);
  arg(&a, row_id != NULL ? row_id : "", row_id_len);
  return send_op(s, OP_INDEX_ADD, SC_INDEX_ADD, 2, &a, cb, privdata);
}

int sk_store_load(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                  sk_store_callback cb, void *privdata) {
  args a = {0};
  if (check_inst(s, OP_LOAD, loop, subject, subject_len) != 0)
    return -1;
  arg_str(&a, "GET");
  arg_inst(s, &a, loop, subject, subject_len);
  return send_op(s, OP_LOAD, -1, 0, &a, cb, privdata);
}

/* due and due_next: ZRANGEBYSCORE timers -inf now LIMIT 0 max, plain or in the due_next script. */
static int due(sk_store *s, int next, int64_t now_ms, uint32_t max, sk_store_callback cb,
               void *privdata) {
  args a = {0};
  char now[24], smax[16];
  size_t n = 0;
  if (max == 0) {
    snprintf(s->err, sizeof s->err, "due: max must be at least 1");
    return -1;
  }
  fmt_i64(now, sizeof now, now_ms);
  snprintf(smax, sizeof smax, "%u", (unsigned)max);
  if (!next)
    arg_str(&a, "ZRANGEBYSCORE");
  arg_owned(&a, sk_key_format(s->prefix, SK_KEY_TIMERS, NULL, NULL, 0, &n), &n);
  if (!next)
    arg_str(&a, "-inf");
  arg_str(&a, now);
  if (!next) {
    arg_str(&a, "LIMIT");
    arg_str(&a, "0");
  }
  arg_str(&a, smax);
  if (next)
    return send_op(s, OP_DUE_NEXT, SC_DUE_NEXT, 1, &a, cb, privdata);
  return send_op(s, OP_DUE, -1, 0, &a, cb, privdata);
}

int sk_store_due(sk_store *s, int64_t now_ms, uint32_t max, sk_store_callback cb, void *privdata) {
  return due(s, 0, now_ms, max, cb, privdata);
}

int sk_store_due_next(sk_store *s, int64_t now_ms, uint32_t max, sk_store_callback cb,
                      void *privdata) {
  return due(s, 1, now_ms, max, cb, privdata);
}

/* The lease key of (loop, subject). */
static int arg_lease(sk_store *s, args *a, const char *loop, const char *subject,
                     size_t subject_len) {
  const char *parts[2] = {loop, subject != NULL ? subject : ""};
  size_t lens[2] = {strlen(loop), subject_len}, n = 0;
  return arg_owned(a, sk_key_format(s->prefix, SK_KEY_LEASE, parts, lens, 2, &n), &n);
}

int sk_store_lease(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                   const char *worker, int64_t ttl_ms, sk_store_callback cb, void *privdata) {
  args a = {0};
  char ttl[24];
  if (check_inst(s, OP_LEASE, loop, subject, subject_len) != 0)
    return -1;
  if (worker == NULL || worker[0] == '\0' || ttl_ms < 1) {
    snprintf(s->err, sizeof s->err, "lease: needs a worker id and a ttl of at least 1 ms");
    return -1;
  }
  fmt_i64(ttl, sizeof ttl, ttl_ms);
  arg_str(&a, "SET");
  arg_lease(s, &a, loop, subject, subject_len);
  arg_str(&a, worker);
  arg_str(&a, "NX");
  arg_str(&a, "PX");
  arg_str(&a, ttl);
  return send_op(s, OP_LEASE, -1, 0, &a, cb, privdata);
}

int sk_store_release(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                     const char *worker, sk_store_callback cb, void *privdata) {
  args a = {0};
  if (check_inst(s, OP_RELEASE, loop, subject, subject_len) != 0)
    return -1;
  if (worker == NULL || worker[0] == '\0') {
    snprintf(s->err, sizeof s->err, "release: needs a worker id");
    return -1;
  }
  arg_lease(s, &a, loop, subject, subject_len);
  arg_str(&a, worker);
  return send_op(s, OP_RELEASE, SC_RELEASE, 1, &a, cb, privdata);
}

/* ---- the worker's operations: leases taken and given back with the state they guard ---- */

static int check_worker(sk_store *s, enum op_kind kind, const char *worker) {
  if (worker == NULL || worker[0] == '\0') {
    snprintf(s->err, sizeof s->err, "%s: needs a worker id", op_names[kind]);
    return -1;
  }
  return 0;
}

int sk_store_begin(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                   const void *snapshot, size_t snapshot_len, int64_t wake_at_ms,
                   const char *worker, int64_t lease_ms, sk_store_callback cb, void *privdata) {
  args a = {0};
  size_t n = 0;
  char wake[24], ttl[24];
  if (check_inst(s, OP_BEGIN, loop, subject, subject_len) != 0 ||
      check_worker(s, OP_BEGIN, worker) != 0)
    return -1;
  fmt_i64(wake, sizeof wake, wake_at_ms);
  fmt_i64(ttl, sizeof ttl, lease_ms < 1 ? 1 : lease_ms);
  const char *loop_part[1] = {loop};
  arg_owned(&a, sk_key_format(s->prefix, SK_KEY_STARTED, loop_part, NULL, 1, &n), &n);
  arg_inst(s, &a, loop, subject, subject_len);
  arg_owned(&a, sk_key_format(s->prefix, SK_KEY_TIMERS, NULL, NULL, 0, &n), &n);
  arg_lease(s, &a, loop, subject, subject_len);
  arg(&a, subject != NULL ? subject : "", subject_len);
  arg(&a, snapshot != NULL ? snapshot : "", snapshot_len);
  arg_str(&a, wake);
  arg_str(&a, worker);
  arg_str(&a, ttl);
  return send_op(s, OP_BEGIN, SC_BEGIN, 4, &a, cb, privdata);
}

/* claim and claim_check: the lease, the instance, the timers[, the index]. */
static int claim(sk_store *s, int check, const char *loop, const char *subject, size_t subject_len,
                 const char *worker, int64_t lease_ms, int64_t wake_at_ms, const char *idx_key,
                 size_t idx_len, sk_store_callback cb, void *privdata) {
  enum op_kind kind = check ? OP_CLAIM_CHECK : OP_CLAIM;
  args a = {0};
  size_t n = 0;
  char wake[24], ttl[24];
  if (check_inst(s, kind, loop, subject, subject_len) != 0 || check_worker(s, kind, worker) != 0)
    return -1;
  fmt_i64(wake, sizeof wake, wake_at_ms);
  fmt_i64(ttl, sizeof ttl, lease_ms < 1 ? 1 : lease_ms);
  arg_lease(s, &a, loop, subject, subject_len);
  arg_inst(s, &a, loop, subject, subject_len);
  arg_owned(&a, sk_key_format(s->prefix, SK_KEY_TIMERS, NULL, NULL, 0, &n), &n);
  if (check)
    arg(&a, idx_key, idx_len);
  arg_str(&a, worker);
  arg_str(&a, ttl);
  arg_str(&a, wake);
  return send_op(s, kind, check ? SC_CLAIM_CHECK : SC_CLAIM, check ? 4 : 3, &a, cb, privdata);
}

int sk_store_claim(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                   const char *worker, int64_t lease_ms, int64_t wake_at_ms,
                   sk_store_callback cb, void *privdata) {
  return claim(s, 0, loop, subject, subject_len, worker, lease_ms, wake_at_ms, NULL, 0, cb,
               privdata);
}

int sk_store_claim_check(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                         const char *worker, int64_t lease_ms, int64_t wake_at_ms,
                         const char *idx_key, size_t idx_len, sk_store_callback cb,
                         void *privdata) {
  return claim(s, 1, loop, subject, subject_len, worker, lease_ms, wake_at_ms, idx_key, idx_len,
               cb, privdata);
}

/* The checks and the first keys of park and park_event: inst, timers, lease; wake := wake_at's text
   ("" none). 0, or -1 with s->err. */
static int park_head(sk_store *s, enum op_kind kind, const char *loop, const char *subject,
                     size_t subject_len, int64_t wake_at_ms, size_t nleave, const char *worker,
                     args *a, char wake[24]) {
  size_t n = 0;
  wake[0] = '\0';
  if (check_inst(s, kind, loop, subject, subject_len) != 0 || check_worker(s, kind, worker) != 0)
    return -1;
  if (nleave > 4) {
    snprintf(s->err, sizeof s->err, "park: at most 4 wait sets to leave");
    return -1;
  }
  if (wake_at_ms != SK_STORE_NO_WAKE)
    fmt_i64(wake, 24, wake_at_ms);
  arg_inst(s, a, loop, subject, subject_len);
  arg_owned(a, sk_key_format(s->prefix, SK_KEY_TIMERS, NULL, NULL, 0, &n), &n);
  arg_lease(s, a, loop, subject, subject_len);
  return 0;
}

int sk_store_park(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                  const void *snapshot, size_t snapshot_len, int64_t wake_at_ms,
                  const char *wait_key, size_t wait_key_len, const char *const *leave_keys,
                  const size_t *leave_lens, size_t nleave, const char *worker,
                  sk_store_callback cb, void *privdata) {
  args a = {0};
  char wake[24];
  if (park_head(s, OP_PARK, loop, subject, subject_len, wake_at_ms, nleave, worker, &a, wake) != 0) {
    args_free(&a);
    return -1;
  }
  int nkeys = 3;
  if (wait_key != NULL) {
    arg(&a, wait_key, wait_key_len);
    nkeys++;
  }
  for (size_t i = 0; i < nleave; i++) {
    arg(&a, leave_keys[i], leave_lens[i]);
    nkeys++;
  }
  arg(&a, snapshot != NULL ? snapshot : "", snapshot_len);
  arg_str(&a, wake);
  arg_str(&a, worker);
  arg_str(&a, wait_key != NULL ? "1" : "0");
  return send_op(s, OP_PARK, SC_PARK, nkeys, &a, cb, privdata);
}

int sk_store_finish(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                    const char *const *leave_keys, const size_t *leave_lens, size_t nleave,
                    const char *worker, sk_store_callback cb, void *privdata) {
  args a = {0};
  size_t n = 0;
  if (check_inst(s, OP_FINISH, loop, subject, subject_len) != 0 ||
      check_worker(s, OP_FINISH, worker) != 0)
    return -1;
  if (nleave > 4) {
    snprintf(s->err, sizeof s->err, "finish: at most 4 wait sets to leave");
    return -1;
  }
  arg_inst(s, &a, loop, subject, subject_len);
  arg_owned(&a, sk_key_format(s->prefix, SK_KEY_TIMERS, NULL, NULL, 0, &n), &n);
  arg_lease(s, &a, loop, subject, subject_len);
  for (size_t i = 0; i < nleave; i++)
    arg(&a, leave_keys[i], leave_lens[i]);
  arg_str(&a, worker);
  return send_op(s, OP_FINISH, SC_FINISH, 3 + (int)nleave, &a, cb, privdata);
}

int sk_store_peek(sk_store *s, const sk_store_index *ix, uint32_t min_rows, uint32_t limit,
                  sk_store_callback cb, void *privdata) {
  args a = {0};
  size_t n = 0;
  char smin[16], slimit[16];
  snprintf(smin, sizeof smin, "%u", (unsigned)min_rows);
  snprintf(slimit, sizeof slimit, "%u", (unsigned)limit);
  arg_owned(&a, sk_store_index_key(s, ix, SK_KEY_INDEX, &n), &n);
  arg_str(&a, smin);
  arg_str(&a, slimit);
  return send_op(s, OP_PEEK, SC_PEEK, 1, &a, cb, privdata);
}

int sk_store_begin_check(sk_store *s, const sk_store_index *ix, const char *loop,
                         const char *subject, size_t subject_len, const void *snapshot,
                         size_t snapshot_len, uint32_t min_rows, uint32_t limit,
                         const char *worker, int64_t lease_ms, int64_t lease_end_ms,
                         int64_t deadline_ms, sk_store_callback cb, void *privdata) {
  args a = {0};
  size_t n = 0;
  char smin[16], slimit[16], ttl[24], lend[24], dl[24] = "";
  if (check_inst(s, OP_BEGIN_CHECK, loop, subject, subject_len) != 0 ||
      check_worker(s, OP_BEGIN_CHECK, worker) != 0)
    return -1;
  snprintf(smin, sizeof smin, "%u", (unsigned)min_rows);
  snprintf(slimit, sizeof slimit, "%u", (unsigned)limit);
  fmt_i64(ttl, sizeof ttl, lease_ms < 1 ? 1 : lease_ms);
  fmt_i64(lend, sizeof lend, lease_end_ms);
  if (deadline_ms != SK_STORE_NO_WAKE)
    fmt_i64(dl, sizeof dl, deadline_ms);
  const char *loop_part[1] = {loop};
  arg_owned(&a, sk_key_format(s->prefix, SK_KEY_STARTED, loop_part, NULL, 1, &n), &n);
  arg_inst(s, &a, loop, subject, subject_len);
  arg_owned(&a, sk_key_format(s->prefix, SK_KEY_TIMERS, NULL, NULL, 0, &n), &n);
  arg_lease(s, &a, loop, subject, subject_len);
  arg_owned(&a, sk_store_index_key(s, ix, SK_KEY_INDEX, &n), &n);
  arg_owned(&a, sk_store_index_key(s, ix, SK_KEY_WAIT, &n), &n);
  arg(&a, subject != NULL ? subject : "", subject_len);
  arg(&a, snapshot != NULL ? snapshot : "", snapshot_len);
  arg_str(&a, smin);
  arg_str(&a, slimit);
  arg_str(&a, worker);
  arg_str(&a, ttl);
  arg_str(&a, lend);
  arg_str(&a, dl);
  return send_op(s, OP_BEGIN_CHECK, SC_BEGIN_CHECK, 6, &a, cb, privdata);
}

int sk_store_event_post(sk_store *s, const char *wait_key, size_t wait_len,
                        const char *const *boxes, const size_t *box_lens, size_t nboxes,
                        const char *row, size_t row_len, int64_t score, int64_t ttl_ms,
                        sk_store_callback cb, void *privdata) {
  args a = {0};
  char sscore[24], sttl[24];
  if (nboxes > 8) {
    snprintf(s->err, sizeof s->err, "event_post: at most 8 loops");
    return -1;
  }
  fmt_i64(sscore, sizeof sscore, score);
  fmt_i64(sttl, sizeof sttl, ttl_ms < 1 ? 1 : ttl_ms);
  arg(&a, wait_key, wait_len);
  for (size_t i = 0; i < nboxes; i++)
    arg(&a, boxes[i], box_lens[i]);
  arg(&a, row, row_len);
  arg_str(&a, sscore);
  arg_str(&a, sttl);
  return send_op(s, OP_EVENT_POST, SC_EVENT_POST, 1 + (int)nboxes, &a, cb, privdata);
}

int sk_store_park_event(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                        const void *snapshot, size_t snapshot_len, int64_t wake_at_ms,
                        const char *wait_key, size_t wait_len, const char *box, size_t box_len,
                        const char *const *leave_keys, const size_t *leave_lens, size_t nleave,
                        const char *worker, sk_store_callback cb, void *privdata) {
  args a = {0};
  char wake[24];
  if (park_head(s, OP_PARK_EV, loop, subject, subject_len, wake_at_ms, nleave, worker, &a, wake) != 0) {
    args_free(&a);
    return -1;
  }
  arg(&a, wait_key, wait_len);
  arg(&a, box, box_len);
  for (size_t i = 0; i < nleave; i++)
    arg(&a, leave_keys[i], leave_lens[i]);
  arg(&a, snapshot != NULL ? snapshot : "", snapshot_len);
  arg_str(&a, wake);
  arg_str(&a, worker);
  return send_op(s, OP_PARK_EV, SC_PARK_EV, 5 + (int)nleave, &a, cb, privdata);
}
