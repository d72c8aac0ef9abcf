/* store.c: the durable state of loops in Redis (store.h): key formatting, the scripts, the batches,
 * and the reading of each operation's reply.
 *
 * Scripts go as EVAL with their text, never EVALSHA: an EVALSHA that meets NOSCRIPT (after a Redis
 * restart, a failover, SCRIPT FLUSH) has to be sent again, behind whatever was queued after it, and
 * then the wire no longer runs commands in the order they were sent. Redis caches a script by its
 * SHA-1 either way; the text costs bandwidth (a few hundred bytes per operation, a batch's once),
 * not commands. An operation's reply goes to a small `op`, the sk_redis privdata, which holds no
 * pointer to the store, so the store may be freed with operations in flight.
 */
#define _POSIX_C_SOURCE 200809L

#include "store.h"

#include "sbuf.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

/* ---- keys ---- */

static const char *const key_patterns[SK_KEY_COUNT] = {
#define SK_KEY_PATTERN(name, pattern, type, doc) pattern,
    SK_KEYS(SK_KEY_PATTERN)
#undef SK_KEY_PATTERN
};

const char *sk_key_pattern(sk_key_kind kind) {
  return (unsigned)kind < SK_KEY_COUNT ? key_patterns[kind] : NULL;
}

/* Keys are built in an sk_sbuf (sbuf.h). The buffer as a NUL-terminated string the caller owns, or
   NULL (out of memory). */
static char *kb_take(sk_sbuf *b, size_t *len) {
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
  sk_sbuf b = {0};
  size_t used = 0;
  if (pat == NULL || prefix == NULL)
    return NULL;
  sk_sb_put(&b, prefix, strlen(prefix)); /* allocates, even for an empty prefix */
  for (const char *c = pat; *c != '\0'; c++) {
    const char *close = *c == '{' ? strchr(c, '}') : NULL;
    if (close == NULL) {
      sk_sb_put(&b, c, 1);
      continue;
    }
    if (used == nparts) { /* more placeholders than parts */
      used = nparts + 1;
      break;
    }
    sk_sb_put(&b, parts[used], lens != NULL ? lens[used] : strlen(parts[used]));
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

/* Waiting instances (keys.h WAIT): the waiters of one wake-up key (an index's values, or an event's
   subject) are a field of a hash per group (per index shape, per event table and kind):
   wait:{group} field {rest} = the one waiting instance's key, or "*" when several wait, and then
   they are the members of the set wait:{group}:{rest}. The common case, one waiter per key, is one
   field, and a batch of them is one HMGET and one HSET whatever their number; a crowd waiting on one
   key (a condition without the subject in it) is still a set, O(1) to join and to leave.
   A script gets the hash key and the set key in KEYS and the field in ARGV. */
#define WAIT_LUA                                                                                   \
  "local function wadd(h,s,f,m) local v=redis.call('HGET',h,f) "                                   \
  "if not v then redis.call('HSET',h,f,m) elseif v=='*' then redis.call('SADD',s,m) "              \
  "elseif v~=m then redis.call('SADD',s,v,m) redis.call('HSET',h,f,'*') end end "                  \
  "local function wrem(h,s,f,m) local v=redis.call('HGET',h,f) "                                   \
  "if v==m then redis.call('HDEL',h,f) elseif v=='*' then redis.call('SREM',s,m) "                 \
  "if redis.call('EXISTS',s)==0 then redis.call('HDEL',h,f) end end end "                          \
  "local function wget(h,s,f) local v=redis.call('HGET',h,f) "                                     \
  "if v=='*' then return redis.call('SMEMBERS',s) elseif v then return {v} end return {} end "

/* The same for a batch: pre(list of {h,f}) reads every field with one HMGET per hash into val
   (key h\0f; hash keys never hold a NUL byte); wadd/wrem then change val and queue the fields to
   write (hs[h]: HSET pairs) or delete (hd[h]) so that entries of one batch see each other, and
   put(hs, hd) writes them, one HSET and one HDEL per hash. cnt(k): ZCARD of an index and its first
   row in one ZRANGE when it holds fewer than 16 rows. */
#define BATCH_LUA                                                                                  \
  "local order,val,hs,hd={},{},{},{} "                                                             \
  "local function pre(l) local fl={} for _,p in ipairs(l) do local h=p[1] "                        \
  "if not fl[h] then fl[h]={} order[#order+1]=h hs[h]={} hd[h]={} end local t=fl[h] t[#t+1]=p[2] end " \
  "for _,h in ipairs(order) do local t=fl[h] local r=redis.call('HMGET',h,unpack(t)) "             \
  "for j=1,#t do val[h..'\\0'..t[j]]=r[j] end end end "                                            \
  "local function wadd(h,s,f,m) local c=h..'\\0'..f local v=val[c] "                               \
  "if not v then val[c]=m local t=hs[h] t[#t+1]=f t[#t+1]=m "                                      \
  "elseif v=='*' then redis.call('SADD',s,m) "                                                     \
  "elseif v~=m then redis.call('SADD',s,v,m) val[c]='*' local t=hs[h] t[#t+1]=f t[#t+1]='*' end end " \
  "local function wrem(h,s,f,m) local c=h..'\\0'..f local v=val[c] "                               \
  "if v==m then val[c]=false local t=hd[h] t[#t+1]=f "                                             \
  "elseif v=='*' then redis.call('SREM',s,m) "                                                     \
  "if redis.call('EXISTS',s)==0 then val[c]=false local t=hd[h] t[#t+1]=f end end end "            \
  "local function put() for _,h in ipairs(order) do "                                              \
  "if #hd[h]>0 then redis.call('HDEL',h,unpack(hd[h])) end "                                       \
  "if #hs[h]>0 then redis.call('HSET',h,unpack(hs[h])) end end end "                               \
  "local function cnt(k) local r=redis.call('ZRANGE',k,0,15) local m=#r "                          \
  "if m==16 then m=redis.call('ZCARD',k) end return m,r[1] end "

enum script_id { SC_START, SC_SUSPEND, SC_END, SC_CHECK, SC_RELEASE, SC_BEGIN, SC_CLAIM, SC_PARK,
                 SC_PEEK, SC_EVENT_POST, SC_PARK_EV, SC_B_INDEX_ADD, SC_B_BEGIN_CHECK,
                 SC_B_CLAIM_CHECK, SC_B_FINISH, SC_COUNT };

/* KEYS and ARGV of each are documented above its text. Short: Upstash runs a script under a lock.
   A wait in KEYS is two keys (the hash, the set) and its field is in ARGV. */
static const char *const scripts[SC_COUNT] = {
    /* KEYS started, inst; ARGV subject, snapshot */
    "if redis.call('SADD',KEYS[1],ARGV[1])==1 then redis.call('SET',KEYS[2],ARGV[2]) return 1 end "
    "return 0",
    /* KEYS inst, timers[, wait]; ARGV snapshot, wake_at ('' none)[, wait field]. The member is the
       inst key. */
    WAIT_LUA
    "redis.call('SET',KEYS[1],ARGV[1]) "
    "if ARGV[2]=='' then redis.call('ZREM',KEYS[2],KEYS[1]) "
    "else redis.call('ZADD',KEYS[2],ARGV[2],KEYS[1]) end "
    "if KEYS[3] then wadd(KEYS[3],KEYS[4],ARGV[3],KEYS[1]) end "
    "return 1",
    /* KEYS inst, timers[, wait]; ARGV [wait field] */
    WAIT_LUA
    "redis.call('DEL',KEYS[1]) redis.call('ZREM',KEYS[2],KEYS[1]) "
    "if KEYS[3] then wrem(KEYS[3],KEYS[4],ARGV[1],KEYS[1]) end "
    "return 1",
    /* KEYS idx, wait (2), inst, timers[, lease]; ARGV wait field, min_rows, limit[, snapshot,
       wake_at ('' none)[, worker]]. Returns {1, count[, first row]} held, {0, count} waiting (the
       lease, when given and held by worker, is given back with the suspension). */
    WAIT_LUA
    "local n=redis.call('ZCARD',KEYS[1]) local l=tonumber(ARGV[3]) "
    "if l>0 and n>l then n=l end "
    "if n>=tonumber(ARGV[2]) then wrem(KEYS[2],KEYS[3],ARGV[1],KEYS[4]) "
    "local f=redis.call('ZRANGE',KEYS[1],0,0) return {1,n,f[1]} end "
    "wadd(KEYS[2],KEYS[3],ARGV[1],KEYS[4]) "
    "if ARGV[4] then redis.call('SET',KEYS[4],ARGV[4]) "
    "if ARGV[5]=='' then redis.call('ZREM',KEYS[5],KEYS[4]) "
    "else redis.call('ZADD',KEYS[5],ARGV[5],KEYS[4]) end "
    "if KEYS[6] and redis.call('GET',KEYS[6])==ARGV[6] then redis.call('DEL',KEYS[6]) end end "
    "return {0,n}",
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
    /* park. KEYS inst, timers, lease, [wait (2) when nwait is 1,] leave waits (2 each)...; ARGV
       snapshot, wake_at ('' none), worker, nwait, [wait field,] leave fields... The waits left
       first, then the one joined (it may be one of them). */
    WAIT_LUA
    "redis.call('SET',KEYS[1],ARGV[1]) "
    "if ARGV[2]=='' then redis.call('ZREM',KEYS[2],KEYS[1]) "
    "else redis.call('ZADD',KEYS[2],ARGV[2],KEYS[1]) end "
    "local w=tonumber(ARGV[4]) local j=5+w "
    "for i=4+2*w,#KEYS,2 do wrem(KEYS[i],KEYS[i+1],ARGV[j],KEYS[1]) j=j+1 end "
    "if w==1 then wadd(KEYS[4],KEYS[5],ARGV[5],KEYS[1]) end "
    "if redis.call('GET',KEYS[3])==ARGV[3] then redis.call('DEL',KEYS[3]) end return 1",
    /* peek. KEYS idx; ARGV min_rows, limit. {held, count[, first row]}, nothing written */
    "local n=redis.call('ZCARD',KEYS[1]) local l=tonumber(ARGV[2]) "
    "if l>0 and n>l then n=l end local f=redis.call('ZRANGE',KEYS[1],0,0) "
    "return {n>=tonumber(ARGV[1]) and 1 or 0,n,f[1]}",
    /* event_post. KEYS wait (2), evbox...; ARGV row, score, ttl, wait field. The event goes into
       each loop's box; returns the waiters */
    WAIT_LUA
    "for i=3,#KEYS do redis.call('ZADD',KEYS[i],'NX',ARGV[2],ARGV[1]) "
    "redis.call('PEXPIRE',KEYS[i],ARGV[3]) end return wget(KEYS[1],KEYS[2],ARGV[4])",
    /* park_ev. KEYS inst, timers, lease, wait (2), evbox, leave waits (2 each)...; ARGV snapshot,
       wake_at ('' none), worker, wait field, leave fields... {1, row}: an event was in the box
       (taken; nothing else written), {0}: parked */
    WAIT_LUA
    "local e=redis.call('ZRANGE',KEYS[6],0,0) "
    "if e[1] then redis.call('ZREM',KEYS[6],e[1]) return {1,e[1]} end "
    "redis.call('SET',KEYS[1],ARGV[1]) "
    "if ARGV[2]=='' then redis.call('ZREM',KEYS[2],KEYS[1]) "
    "else redis.call('ZADD',KEYS[2],ARGV[2],KEYS[1]) end "
    "local j=5 for i=7,#KEYS,2 do wrem(KEYS[i],KEYS[i+1],ARGV[j],KEYS[1]) j=j+1 end "
    "wadd(KEYS[4],KEYS[5],ARGV[4],KEYS[1]) "
    "if redis.call('GET',KEYS[3])==ARGV[3] then redis.call('DEL',KEYS[3]) end return {0}",

    /* ---- batches: entries of one operation, each with the same KEYS and ARGV as the others;
       returns one reply per entry, shaped as that operation's own. A batch does what its entries
       would do one after the other; the commands that take many keys or members (MSET, MGET, DEL,
       ZADD, ZREM, SADD, HMGET, HSET, HDEL, EXISTS) are sent once per batch, not once per entry. */

    /* index_add. Per entry KEYS idx, wait (2); ARGV wait field, score, row id. {added, waiter...} */
    BATCH_LUA
    "local n=#ARGV/3 local l={} for i=1,n do l[i]={KEYS[3*i-1],ARGV[3*i-2]} end pre(l) "
    "local out={} for i=1,n do "
    "local a=redis.call('ZADD',KEYS[3*i-2],'NX',ARGV[3*i-1],ARGV[3*i]) "
    "local v=val[KEYS[3*i-1]..'\\0'..ARGV[3*i-2]] local w "
    "if v=='*' then w=redis.call('SMEMBERS',KEYS[3*i]) elseif v then w={v} else w={} end "
    "table.insert(w,1,a) out[i]=w end return out",

    /* begin_check. Per entry KEYS started, inst, timers, lease, idx, wait (2); ARGV subject,
       snapshot, min_rows, limit, worker, ttl, lease_end, deadline ('' none), wait field.
       {0} started before; {1, held, count[, first]}: started, and either held (leased to
       worker, timer at lease_end) or waiting (in the wait, timer at the deadline). Rows are
       counted only when one of the batch's indexes exists at all (a new user has none). A batch
       of one skips what only pays off for many (SMISMEMBER, EXISTS). */
    BATCH_LUA
    "local n=#ARGV/9 local function K(i,j) return KEYS[7*i-7+j] end "
    "local function A(i,j) return ARGV[9*i-9+j] end "
    "local so,ss,was,new={},{},{},{} "
    "for i=1,n do local k=K(i,1) if not ss[k] then ss[k]={} so[#so+1]=k end local t=ss[k] t[#t+1]=A(i,1) end "
    "if n==1 then new[1]=redis.call('SADD',K(1,1),A(1,1))==1 else "
    "for _,k in ipairs(so) do local t=ss[k] local r=redis.pcall('SMISMEMBER',k,unpack(t)) "
    "if type(r)~='table' or r.err then r={} for j=1,#t do r[j]=redis.call('SISMEMBER',k,t[j]) end end "
    "for j=1,#t do if r[j]==1 then was[k..'\\0'..t[j]]=true end end end "
    "local sa={} for i=1,n do local k=K(i,1) local c=k..'\\0'..A(i,1) "
    "if not was[c] then was[c]=true new[i]=true if not sa[k] then sa[k]={} end local t=sa[k] t[#t+1]=A(i,1) end end "
    "for _,k in ipairs(so) do if sa[k] then redis.call('SADD',k,unpack(sa[k])) end end end "
    "local ms,ik,seen,l={},{},{},{} "
    "for i=1,n do if new[i] then ms[#ms+1]=K(i,2) ms[#ms+1]=A(i,2) "
    "if not seen[K(i,5)] then seen[K(i,5)]=true ik[#ik+1]=K(i,5) end l[#l+1]={K(i,6),A(i,9)} end end "
    "if #ms==0 then local out={} for i=1,n do out[i]={0} end return out end "
    "redis.call('MSET',unpack(ms)) "
    "local any=#ik==1 or redis.call('EXISTS',unpack(ik))>0 local cc={} pre(l) "
    "local out,za,zr={},{},{} "
    "for i=1,n do if not new[i] then out[i]={0} else "
    "local c,f=0,nil if any then local k=K(i,5) if not cc[k] then local m,g=cnt(k) cc[k]={m,g} end c,f=cc[k][1],cc[k][2] end "
    "local lim=tonumber(A(i,4)) if lim>0 and c>lim then c=lim end "
    "if c>=tonumber(A(i,3)) then redis.call('SET',K(i,4),A(i,5),'PX',A(i,6)) "
    "za[#za+1]=A(i,7) za[#za+1]=K(i,2) out[i]={1,1,c,f} "
    "else wadd(K(i,6),K(i,7),A(i,9),K(i,2)) "
    "if A(i,8)=='' then zr[#zr+1]=K(i,2) else za[#za+1]=A(i,8) za[#za+1]=K(i,2) end out[i]={1,0,c} end end end "
    "put() if #za>0 then redis.call('ZADD',K(1,3),unpack(za)) end "
    "if #zr>0 then redis.call('ZREM',K(1,3),unpack(zr)) end return out",

    /* claim_check. Per entry KEYS lease, inst, timers, idx; ARGV worker, ttl, wake_at. As claim,
       and when taken {1, snapshot, ZCARD idx[, first row]} */
    BATCH_LUA
    "local n=#ARGV/3 local out,got,mg={},{},{} "
    "for i=1,n do if redis.call('SET',KEYS[4*i-3],ARGV[3*i-2],'NX','PX',ARGV[3*i-1]) then "
    "got[#got+1]=i mg[#mg+1]=KEYS[4*i-2] else out[i]={0} end end "
    "if #got==0 then return out end "
    "local sn=redis.call('MGET',unpack(mg)) local dl,zr,za,cc={},{},{},{} "
    "for j,i in ipairs(got) do local s=sn[j] "
    "if not s then dl[#dl+1]=KEYS[4*i-3] zr[#zr+1]=KEYS[4*i-2] out[i]={2} "
    "else za[#za+1]=ARGV[3*i] za[#za+1]=KEYS[4*i-2] local k=KEYS[4*i] "
    "if not cc[k] then local m,g=cnt(k) cc[k]={m,g} end out[i]={1,s,cc[k][1],cc[k][2]} end end "
    "if #dl>0 then redis.call('DEL',unpack(dl)) end "
    "if #zr>0 then redis.call('ZREM',KEYS[3],unpack(zr)) end "
    "if #za>0 then redis.call('ZADD',KEYS[3],unpack(za)) end return out",

    /* finish. Per entry KEYS inst, timers, lease, leave waits (2 each); ARGV worker, nleave,
       leave fields. Each: 1 */
    BATCH_LUA
    "local ki,ai,out,dl,zr,lk,lw,wl,l=1,1,{},{},{},{},{},{},{} "
    "while ai<=#ARGV do local m=KEYS[ki] dl[#dl+1]=m zr[#zr+1]=m lk[#lk+1]=KEYS[ki+2] lw[#lw+1]=ARGV[ai] "
    "local nl=tonumber(ARGV[ai+1]) for j=1,nl do local h,s,f=KEYS[ki+1+2*j],KEYS[ki+2+2*j],ARGV[ai+1+j] "
    "wl[#wl+1]={h,s,f,m} l[#l+1]={h,f} end "
    "ki=ki+3+2*nl ai=ai+2+nl out[#out+1]=1 end "
    "local ls=redis.call('MGET',unpack(lk)) "
    "for j=1,#lk do if ls[j]==lw[j] then dl[#dl+1]=lk[j] end end "
    "redis.call('DEL',unpack(dl)) redis.call('ZREM',KEYS[2],unpack(zr)) "
    "if #l>0 then pre(l) for _,w in ipairs(wl) do wrem(w[1],w[2],w[3],w[4]) end put() end "
    "return out",
};

/* ---- the store ---- */

/* One entry of a batch: the operation it stands for and its caller's callback. */
typedef struct sub {
  sk_store_callback cb;
  void *privdata;
} sub;

typedef struct op op;

/* The entries of one operation gathered since the last flush (see "batches" below). */
typedef struct batch {
  int kind; /* enum op_kind of every entry */
  size_t n, nkeys, nargs;
  sk_sbuf keys, args; /* the entries' keys, and their args, back to back */
  size_t *klens, *alens;
  size_t kcap, acap;
  sub *subs;
  size_t scap;
} batch;

struct sk_store {
  sk_redis *r;
  char *prefix;
  size_t prefix_len;
  char err[256];
  struct event *flush_ev; /* runs once the current callbacks are done: flushes the batch and
                             calls back batches sk_redis refused */
  int flushing;
  batch b;
  op *refused;
  int64_t due_now; /* of the due_next being sent, for its op */
  uint32_t due_max; /* batches sk_redis refused, called back from flush_ev */
};

static void flush(sk_store *s);
static void call_refused(sk_store *s);
static void batch_reset(batch *b);
static void on_flush_ev(evutil_socket_t fd, short what, void *arg);
static void on_presend(void *arg) { flush(arg); }

sk_store *sk_store_new(sk_redis *r, const char *prefix) {
  sk_store *s = calloc(1, sizeof *s);
  if (s == NULL)
    goto fail;
  s->r = r;
  s->prefix = strdup(prefix != NULL ? prefix : SK_KEY_PREFIX_DEFAULT);
  if (s->prefix == NULL)
    goto fail;
  s->prefix_len = strlen(s->prefix);
  if (r != NULL) {
    struct event_base *base = sk_redis_base(r);
    if (base != NULL && (s->flush_ev = event_new(base, -1, 0, on_flush_ev, s)) == NULL)
      goto fail;
    sk_redis_set_presend(r, on_presend, s);
  }
  return s;
fail:
  sk_store_free(s);
  return NULL;
}

void sk_store_free(sk_store *s) {
  if (s == NULL)
    return;
  flush(s); /* sent: sk_redis calls it back like any command in flight */
  call_refused(s);
  if (s->r != NULL)
    sk_redis_set_presend(s->r, NULL, NULL);
  if (s->flush_ev != NULL)
    event_free(s->flush_ev);
  free(s->b.keys.p);
  free(s->b.args.p);
  free(s->b.klens);
  free(s->b.alens);
  free(s->b.subs);
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
static void put_value(sk_sbuf *b, const char *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (v[i] == '\x1e' || v[i] == '\x1f')
      sk_sb_put(b, "\x1e", 1);
    sk_sb_put(b, v + i, 1);
  }
}

char *sk_store_index_key(const sk_store *s, const sk_store_index *ix, sk_key_kind which,
                         size_t *len) {
  sk_sbuf shape = {0}, values = {0};
  char *key = NULL;
  size_t shape_len = 0, values_len = 0;
  if ((which != SK_KEY_INDEX && which != SK_KEY_WAIT) || ix->ncols == 0 || ix->table == NULL)
    return NULL;
  sk_sb_put(&shape, ix->table, strlen(ix->table));
  sk_sb_put(&shape, "(", 1);
  for (size_t i = 0; i < ix->ncols; i++) {
    if (i > 0) {
      sk_sb_put(&shape, ",", 1);
      sk_sb_put(&values, "\x1f", 1);
    }
    sk_sb_put(&shape, ix->cols[i], strlen(ix->cols[i]));
    put_value(&values, ix->values[i],
              ix->value_lens != NULL ? ix->value_lens[i] : strlen(ix->values[i]));
  }
  sk_sb_put(&shape, ")", 1);
  sk_sb_put(&values, "", 0); /* an empty single value still gives a buffer */
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
               OP_RELEASE, OP_BEGIN, OP_CLAIM, OP_PARK, OP_FINISH, OP_PEEK, OP_DUE_NEXT, OP_CLAIM_CHECK,
               OP_BEGIN_CHECK, OP_EVENT_POST, OP_PARK_EV, OP_BATCH };

static const char *const op_names[] = {"start", "suspend", "end", "check_or_wait", "index_add",
                                       "load", "due", "lease", "release", "begin", "claim",
                                       "park", "finish", "peek", "due", "claim", "begin", "event_post", "park",
                                       "batch"};

#define MAX_ARGS 32

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

struct op {
  enum op_kind kind;
  sk_store_callback cb;
  void *privdata;
  /* OP_BATCH: the entries, each called back with its own part of the reply */
  enum op_kind sub_kind;
  sub *subs;
  size_t nsubs;
  /* OP_DUE_NEXT: the time and the most asked for */
  int64_t now;
  uint32_t max;
  op *next;  /* in sk_store.refused */
  char *why; /* refused: sk_redis's reason (owned) */
};

static void on_reply(sk_redis *r, const sk_redis_result *res, void *privdata);
static void batch_reply(op *o, const sk_redis_result *res);

/* Sends the command a (with EVAL, the script's text and numkeys in front when script >= 0; sk_redis
   copies it at once) with a new op as its privdata. Frees a's owned keys. 0, or -1 with s->err. */
static int send_op(sk_store *s, enum op_kind kind, int script, int nkeys, args *a,
                   sk_store_callback cb, void *privdata) {
  char numkeys[16];
  const char *argv[3 + MAX_ARGS];
  size_t lens[3 + MAX_ARGS];
  int argc = 0, rc = -1;
  op *o = NULL;
  for (int i = 0; i < a->nowned; i++)
    if (a->owned[i] == NULL) {
      snprintf(s->err, sizeof s->err, "%s: out of memory", op_names[kind]);
      goto done;
    }
  if (script >= 0) {
    snprintf(numkeys, sizeof numkeys, "%d", nkeys);
    argv[0] = "EVAL";
    argv[1] = scripts[script];
    argv[2] = numkeys;
    for (; argc < 3; argc++)
      lens[argc] = strlen(argv[argc]);
  }
  for (int i = 0; i < a->argc; i++, argc++) {
    argv[argc] = a->argv[i];
    lens[argc] = a->lens[i];
  }
  o = calloc(1, sizeof *o);
  if (o == NULL) {
    snprintf(s->err, sizeof s->err, "%s: out of memory", op_names[kind]);
    goto done;
  }
  o->kind = kind;
  o->cb = cb;
  o->privdata = privdata;
  o->now = s->due_now;
  o->max = s->due_max;
  if (sk_redis_command(s->r, argc, argv, lens, on_reply, o) != 0) {
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

/* ---- batches ----
 * index_add, begin_check, claim_check and finish, the operations every activation goes through,
 * are not sent one by one: the entries of one operation queued one after the other are sent as ONE
 * script (scripts[SC_B_...]) when the callbacks that queued them are done (flush_ev, activated by
 * the first entry), when another kind of entry comes, when anything else is about to be sent on the
 * connection (sk_redis_set_presend: the wire keeps the order of the calls), or at BATCH_MAX entries.
 * The script does what the entries would do one after the other, but sends each command that takes
 * many keys or members once per batch: under load, a feed's 100 entries cost a handful of commands
 * by INFO commandstats, not a handful each. An entry is called back with its own part of the reply,
 * exactly as the operation alone would be. */

/* A script stays short (Upstash runs it under a lock): at most this many entries. */
#define BATCH_MAX 128
/* Far below Upstash's largest request (10 MB on its Free and Pay as you go plans): a batch that
   reaches it is sent, so one is at most this plus one entry (a snapshot of a few KB). */
#define BATCH_BYTES ((size_t)1 << 20)

/* Empties the batch; its buffers stay for the next one (sk_store_free frees them). */
static void batch_reset(batch *b) {
  b->keys.len = b->args.len = 0;
  b->keys.oom = b->args.oom = 0;
  b->n = b->nkeys = b->nargs = 0;
}

static int batch_script(int kind) {
  switch (kind) {
  case OP_INDEX_ADD:
    return SC_B_INDEX_ADD;
  case OP_BEGIN_CHECK:
    return SC_B_BEGIN_CHECK;
  case OP_CLAIM_CHECK:
    return SC_B_CLAIM_CHECK;
  default:
    return SC_B_FINISH;
  }
}

static int reserve(void **p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap)
    return 0;
  size_t nc = *cap ? *cap * 2 : 64;
  while (nc < need)
    nc *= 2;
  void *q = realloc(*p, nc * size);
  if (q == NULL)
    return -1;
  *p = q;
  *cap = nc;
  return 0;
}

/* Queues an entry of kind: a's first nkeys arguments are its keys, the rest its args (copied).
   Frees a's owned keys. 0, or -1 with s->err set. */
static int batch_add(sk_store *s, enum op_kind kind, int nkeys, args *a, sk_store_callback cb,
                     void *privdata) {
  batch *b = &s->b;
  int rc = -1;
  for (int i = 0; i < a->nowned; i++)
    if (a->owned[i] == NULL)
      goto oom;
  if (b->n > 0 && b->kind != (int)kind)
    flush(s);
  size_t nargs = (size_t)(a->argc - nkeys);
  if (reserve((void **)&b->klens, &b->kcap, b->nkeys + (size_t)nkeys, sizeof *b->klens) != 0 ||
      reserve((void **)&b->alens, &b->acap, b->nargs + nargs, sizeof *b->alens) != 0 ||
      reserve((void **)&b->subs, &b->scap, b->n + 1, sizeof *b->subs) != 0)
    goto oom;
  size_t klen0 = b->keys.len, alen0 = b->args.len;
  for (int i = 0; i < a->argc; i++)
    sk_sb_put(i < nkeys ? &b->keys : &b->args, a->argv[i], a->lens[i]);
  if (b->keys.oom || b->args.oom) { /* nothing of this entry stays */
    b->keys.oom = b->args.oom = 0;
    b->keys.len = klen0;
    b->args.len = alen0;
    goto oom;
  }
  for (int i = 0; i < a->argc; i++) {
    if (i < nkeys)
      b->klens[b->nkeys++] = a->lens[i];
    else
      b->alens[b->nargs++] = a->lens[i];
  }
  b->kind = (int)kind;
  b->subs[b->n].cb = cb;
  b->subs[b->n].privdata = privdata;
  b->n++;
  s->err[0] = '\0';
  if (b->n == 1 && s->flush_ev != NULL)
    event_active(s->flush_ev, EV_TIMEOUT, 0);
  if (b->n >= BATCH_MAX || b->keys.len + b->args.len >= BATCH_BYTES || s->flush_ev == NULL)
    flush(s);
  rc = 0;
  goto done;
oom:
  snprintf(s->err, sizeof s->err, "%s: out of memory", op_names[kind]);
done:
  args_free(a);
  return rc;
}

/* Sends the batch as one EVAL. Refused by sk_redis (connection failed for good, queue full, out
   of memory), its entries are called back from flush_ev, never from inside a caller. */
static void flush(sk_store *s) {
  batch *b = &s->b;
  if (b->n == 0 || s->flushing)
    return;
  s->flushing = 1;
  char numkeys[24];
  snprintf(numkeys, sizeof numkeys, "%zu", b->nkeys);
  size_t argc = 3 + b->nkeys + b->nargs;
  const char **argv = malloc(argc * sizeof *argv);
  size_t *lens = malloc(argc * sizeof *lens);
  op *o = calloc(1, sizeof *o);
  if (o == NULL) { /* no op to hold them: called back at once, the one case (out of memory) */
    for (size_t i = 0; i < b->n; i++) {
      sk_store_result out;
      memset(&out, 0, sizeof out);
      out.status = SK_REDIS_NOT_SENT;
      out.errstr = "batch: out of memory";
      b->subs[i].cb(&out, b->subs[i].privdata);
    }
    free(argv);
    free(lens);
    batch_reset(b);
    s->flushing = 0;
    return;
  }
  o->kind = OP_BATCH;
  o->sub_kind = (enum op_kind)b->kind;
  o->subs = b->subs;
  o->nsubs = b->n;
  b->subs = NULL;
  b->scap = 0;
  int sent = -1;
  if (argv != NULL && lens != NULL) {
    argv[0] = "EVAL";
    argv[1] = scripts[batch_script(b->kind)];
    argv[2] = numkeys;
    for (int i = 0; i < 3; i++)
      lens[i] = strlen(argv[i]);
    const char *src = b->keys.p;
    for (size_t i = 0; i < b->nkeys + b->nargs; i++) {
      if (i == b->nkeys)
        src = b->args.p;
      lens[3 + i] = i < b->nkeys ? b->klens[i] : b->alens[i - b->nkeys];
      argv[3 + i] = src;
      src += lens[3 + i];
    }
    sent = sk_redis_command(s->r, (int)argc, argv, lens, on_reply, o);
  }
  int oom = argv == NULL || lens == NULL;
  free(argv);
  free(lens);
  batch_reset(b);
  if (sent != 0) {
    o->why = strdup(oom ? "out of memory" : sk_redis_errstr(s->r));
    o->next = s->refused;
    s->refused = o;
    if (s->flush_ev != NULL)
      event_active(s->flush_ev, EV_TIMEOUT, 0);
  }
  s->flushing = 0;
}

/* Calls back the batches sk_redis refused. Touches nothing of s once it took them: a callback may
   free the store. */
static void call_refused(sk_store *s) {
  op *o = s->refused;
  s->refused = NULL;
  while (o != NULL) {
    op *next = o->next;
    char *why = o->why;
    sk_redis_result res = {.status = SK_REDIS_NOT_SENT, .reply = NULL,
                           .errstr = why != NULL ? why : "not sent"};
    batch_reply(o, &res);
    free(why);
    o = next;
  }
}

static void on_flush_ev(evutil_socket_t fd, short what, void *arg) {
  sk_store *s = arg;
  (void)fd;
  (void)what;
  flush(s);
  call_refused(s); /* last: it may free s */
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

/* Reads a reply of the shape operation kind gives into out; 0, or -1 when it has another shape. */
static int read_reply(enum op_kind kind, const redisReply *x, sk_store_result *out,
                      const char ***ps, size_t **pl) {
  switch (kind) {
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
    /* read in due_next_reply, which knows now and max */
    return -1;
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
  case OP_BATCH:
    return -1;
  }
  return -1;
}

/* Starts out for a reply to the operation `name`: zeroed, the status, and when the command failed
   or Redis answered an error, errstr := "name: why" (in err). 1 then, else 0. */
static int start_result(const char *name, const sk_redis_result *res, sk_store_result *out,
                        char *err, size_t errlen) {
  const redisReply *x = res->reply;
  memset(out, 0, sizeof *out);
  out->status = res->status;
  out->errstr = "";
  if (res->status != SK_REDIS_OK)
    snprintf(err, errlen, "%s: %s", name, res->errstr);
  else if (x->type == REDIS_REPLY_ERROR)
    snprintf(err, errlen, "%s: %.*s", name, (int)x->len, x->str);
  else
    return 0;
  out->errstr = err;
  return 1;
}

/* due_next's reply: ZRANGEBYSCORE timers -inf +inf WITHSCORES LIMIT 0 max+1, the earliest timers
   with their times: those at or before now (at most max) are due; the first after them is the next
   (-1: none). Calls back and frees o. */
static void due_next_reply(op *o, const sk_redis_result *res) {
  const redisReply *x = res->reply;
  sk_store_result out;
  char err[512];
  const char **strs = NULL;
  size_t *lens = NULL;
  if (!start_result("due", res, &out, err, sizeof err)) {
    size_t pairs = x->type == REDIS_REPLY_ARRAY ? x->elements / 2 : 0, due = 0;
    int ok = x->type == REDIS_REPLY_ARRAY && x->elements % 2 == 0;
    out.n = -1;
    if (ok && pairs > 0) {
      strs = malloc(pairs * sizeof *strs);
      lens = malloc(pairs * sizeof *lens);
      ok = strs != NULL && lens != NULL;
    }
    for (size_t i = 0; ok && i < pairs; i++) {
      const redisReply *m = x->element[2 * i], *sc = x->element[2 * i + 1];
      if (!is_str(m) || !is_str(sc)) {
        ok = 0;
        break;
      }
      double t = strtod(sc->str, NULL);
      int64_t at = t >= 9.2e18 ? INT64_MAX : t <= -9.2e18 ? INT64_MIN : (int64_t)t;
      if (at <= o->now && due < o->max) {
        strs[due] = m->str;
        lens[due] = m->len;
        due++;
      } else {
        out.n = at; /* the first not taken now: after now, or due but beyond max */
        break;
      }
    }
    if (ok) {
      out.ok = 1;
      out.count = due;
      out.strs = due > 0 ? strs : NULL;
      out.lens = due > 0 ? lens : NULL;
    } else {
      snprintf(err, sizeof err, "due: unexpected reply (type %d)", x->type);
      out.errstr = err;
    }
  }
  o->cb(&out, o->privdata);
  free(strs);
  free(lens);
  free(o);
}

/* A batch's reply: one element per entry, each read as its operation's own reply and given to its
   callback, in order. A reply that is not such an array fails every entry. Frees o. */
static void batch_reply(op *o, const sk_redis_result *res) {
  const redisReply *x = res->reply;
  int whole = res->status == SK_REDIS_OK && x != NULL && x->type == REDIS_REPLY_ARRAY &&
              x->elements == o->nsubs;
  for (size_t i = 0; i < o->nsubs; i++) {
    sk_store_result out;
    char err[512];
    const char **strs = NULL;
    size_t *lens = NULL;
    if (start_result(op_names[o->sub_kind], res, &out, err, sizeof err)) {
      /* errstr says why */
    } else if (!whole || read_reply(o->sub_kind, x->element[i], &out, &strs, &lens) != 0) {
      snprintf(err, sizeof err, "%s: unexpected reply (type %d)", op_names[o->sub_kind],
               whole ? x->element[i]->type : x->type);
      memset(&out, 0, sizeof out);
      out.status = SK_REDIS_OK;
      out.errstr = err;
    } else {
      out.ok = 1;
    }
    o->subs[i].cb(&out, o->subs[i].privdata);
    free(strs);
    free(lens);
  }
  free(o->subs);
  free(o);
}

static void on_reply(sk_redis *r, const sk_redis_result *res, void *privdata) {
  op *o = privdata;
  sk_store_result out;
  char err[512];
  const char **strs = NULL;
  size_t *lens = NULL;
  (void)r;
  if (o->kind == OP_BATCH) {
    batch_reply(o, res);
    return;
  }
  if (o->kind == OP_DUE_NEXT) {
    due_next_reply(o, res);
    return;
  }
  if (!start_result(op_names[o->kind], res, &out, err, sizeof err)) {
    if (read_reply(o->kind, res->reply, &out, &strs, &lens) == 0) {
      out.ok = 1;
    } else {
      snprintf(err, sizeof err, "%s: unexpected reply (type %d)", op_names[o->kind], res->reply->type);
      memset(&out, 0, sizeof out);
      out.status = SK_REDIS_OK;
      out.errstr = err;
    }
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

/* Takes over p (freed with a's keys; NULL: out of memory, reported by send_op or batch_add). */
static void own(args *a, char *p) {
  assert(a->nowned < 8);
  a->owned[a->nowned++] = p;
}

int sk_store_wait_split(const sk_store *s, const char *key, size_t len, size_t *hash_len) {
  static const char tag[] = "wait:";
  size_t at = s->prefix_len + sizeof tag - 1, i;
  int parts;
  if (key == NULL || len < at || memcmp(key, s->prefix, s->prefix_len) != 0 ||
      memcmp(key + s->prefix_len, tag, sizeof tag - 1) != 0)
    return -1;
  if (len - at > 4 && memcmp(key + at, "idx:", 4) == 0)
    parts = 2; /* idx:{shape}: */
  else if (len - at > 3 && memcmp(key + at, "ev:", 3) == 0)
    parts = 3; /* ev:{table}:{kind}: */
  else
    return -1;
  for (i = at; parts > 0; parts--) {
    const char *c = memchr(key + i, ':', len - i);
    if (c == NULL)
      return -1;
    i = (size_t)(c - key) + 1;
  }
  *hash_len = i - 1;
  return 0;
}

/* Adds the two keys of the wait key w (its group's hash, then its set: w itself) to a, and points
   *field at its field inside w (w must live until the operation is sent). 0, or -1 with s->err. */
static int arg_wait(sk_store *s, args *a, enum op_kind kind, const char *w, size_t wlen,
                    const char **field, size_t *flen) {
  size_t h = 0;
  if (sk_store_wait_split(s, w, wlen, &h) != 0) {
    snprintf(s->err, sizeof s->err, "%s: not a wait key", op_names[kind]);
    return -1;
  }
  arg(a, w, h);
  arg(a, w, wlen);
  *field = w + h + 1;
  *flen = wlen - h - 1;
  return 0;
}

/* sk_store_index_key(SK_KEY_WAIT), owned by a, and its two keys added as arg_wait does. */
static int arg_index_wait(sk_store *s, args *a, enum op_kind kind, const sk_store_index *ix,
                          const char **field, size_t *flen) {
  size_t wl = 0;
  char *wk = sk_store_index_key(s, ix, SK_KEY_WAIT, &wl);
  own(a, wk);
  if (wk == NULL) {
    snprintf(s->err, sizeof s->err, "%s: out of memory", op_names[kind]);
    return -1;
  }
  return arg_wait(s, a, kind, wk, wl, field, flen);
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
  const char *f = NULL;
  size_t fl = 0, n = 0;
  if (check_inst(s, OP_SUSPEND, loop, subject, subject_len) != 0)
    return -1;
  if (wake_at_ms != SK_STORE_NO_WAKE)
    fmt_i64(wake, sizeof wake, wake_at_ms);
  arg_inst(s, &a, loop, subject, subject_len);
  arg_owned(&a, sk_key_format(s->prefix, SK_KEY_TIMERS, NULL, NULL, 0, &n), &n);
  if (wait_key != NULL && arg_wait(s, &a, OP_SUSPEND, wait_key, wait_key_len, &f, &fl) != 0) {
    args_free(&a);
    return -1;
  }
  arg(&a, snapshot != NULL ? snapshot : "", snapshot_len);
  arg_str(&a, wake);
  if (wait_key != NULL)
    arg(&a, f, fl);
  return send_op(s, OP_SUSPEND, SC_SUSPEND, wait_key != NULL ? 4 : 2, &a, cb, privdata);
}

int sk_store_end(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                 const char *wait_key, size_t wait_key_len, sk_store_callback cb, void *privdata) {
  args a = {0};
  const char *f = NULL;
  size_t fl = 0, n = 0;
  if (check_inst(s, OP_END, loop, subject, subject_len) != 0)
    return -1;
  arg_inst(s, &a, loop, subject, subject_len);
  arg_owned(&a, sk_key_format(s->prefix, SK_KEY_TIMERS, NULL, NULL, 0, &n), &n);
  if (wait_key != NULL) {
    if (arg_wait(s, &a, OP_END, wait_key, wait_key_len, &f, &fl) != 0) {
      args_free(&a);
      return -1;
    }
    arg(&a, f, fl);
  }
  return send_op(s, OP_END, SC_END, wait_key != NULL ? 4 : 2, &a, cb, privdata);
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
  const char *f = NULL;
  size_t fl = 0, n = 0;
  if (check_inst(s, OP_CHECK, loop, subject, subject_len) != 0)
    return -1;
  snprintf(smin, sizeof smin, "%u", (unsigned)min_rows);
  snprintf(slimit, sizeof slimit, "%u", (unsigned)limit);
  if (wake_at_ms != SK_STORE_NO_WAKE)
    fmt_i64(wake, sizeof wake, wake_at_ms);
  arg_owned(&a, sk_store_index_key(s, ix, SK_KEY_INDEX, &n), &n);
  if (arg_index_wait(s, &a, OP_CHECK, ix, &f, &fl) != 0) {
    args_free(&a);
    return -1;
  }
  arg_inst(s, &a, loop, subject, subject_len);
  arg_owned(&a, sk_key_format(s->prefix, SK_KEY_TIMERS, NULL, NULL, 0, &n), &n);
  if (worker != NULL)
    arg_lease(s, &a, loop, subject, subject_len);
  arg(&a, f, fl);
  arg_str(&a, smin);
  arg_str(&a, slimit);
  if (snapshot != NULL) {
    arg(&a, snapshot, snapshot_len);
    arg_str(&a, wake);
  }
  if (worker != NULL)
    arg_str(&a, worker);
  return send_op(s, OP_CHECK, SC_CHECK, worker != NULL ? 6 : 5, &a, cb, privdata);
}

int sk_store_index_add(sk_store *s, const sk_store_index *ix, const char *row_id,
                       size_t row_id_len, int64_t score, sk_store_callback cb, void *privdata) {
  args a = {0};
  char sscore[24];
  const char *f = NULL;
  size_t fl = 0, n = 0;
  fmt_i64(sscore, sizeof sscore, score);
  arg_owned(&a, sk_store_index_key(s, ix, SK_KEY_INDEX, &n), &n);
  if (arg_index_wait(s, &a, OP_INDEX_ADD, ix, &f, &fl) != 0) {
    args_free(&a);
    return -1;
  }
  arg(&a, f, fl);
  arg_str(&a, sscore);
  arg(&a, row_id != NULL ? row_id : "", row_id_len);
  return batch_add(s, OP_INDEX_ADD, 3, &a, cb, privdata);
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

/* due: ZRANGEBYSCORE timers -inf now LIMIT 0 max. due_next: ZRANGEBYSCORE timers -inf +inf
   WITHSCORES LIMIT 0 max+1, split at now when it comes back (due_next_reply): one command, inside
   a script or not, where two ranges in a script were three by INFO commandstats. */
static int due(sk_store *s, int next, int64_t now_ms, uint32_t max, sk_store_callback cb,
               void *privdata) {
  args a = {0};
  char now[24], smax[16];
  size_t n = 0;
  if (max == 0 || max == UINT32_MAX) {
    snprintf(s->err, sizeof s->err, "due: max must be at least 1");
    return -1;
  }
  fmt_i64(now, sizeof now, now_ms);
  snprintf(smax, sizeof smax, "%u", (unsigned)(next ? max + 1 : max));
  arg_str(&a, "ZRANGEBYSCORE");
  arg_owned(&a, sk_key_format(s->prefix, SK_KEY_TIMERS, NULL, NULL, 0, &n), &n);
  arg_str(&a, "-inf");
  arg_str(&a, next ? "+inf" : now);
  if (next)
    arg_str(&a, "WITHSCORES");
  arg_str(&a, "LIMIT");
  arg_str(&a, "0");
  arg_str(&a, smax);
  s->due_now = now_ms;
  s->due_max = max;
  return send_op(s, next ? OP_DUE_NEXT : OP_DUE, -1, 0, &a, cb, privdata);
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
  if (check)
    return batch_add(s, kind, 4, &a, cb, privdata);
  return send_op(s, kind, SC_CLAIM, 3, &a, cb, privdata);
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
  const char *f[5];
  size_t fl[5], nf = 0;
  if (park_head(s, OP_PARK, loop, subject, subject_len, wake_at_ms, nleave, worker, &a, wake) != 0)
    goto fail;
  int nkeys = 3;
  if (wait_key != NULL) {
    if (arg_wait(s, &a, OP_PARK, wait_key, wait_key_len, &f[nf], &fl[nf]) != 0)
      goto fail;
    nf++;
    nkeys += 2;
  }
  for (size_t i = 0; i < nleave; i++) {
    if (arg_wait(s, &a, OP_PARK, leave_keys[i], leave_lens[i], &f[nf], &fl[nf]) != 0)
      goto fail;
    nf++;
    nkeys += 2;
  }
  arg(&a, snapshot != NULL ? snapshot : "", snapshot_len);
  arg_str(&a, wake);
  arg_str(&a, worker);
  arg_str(&a, wait_key != NULL ? "1" : "0");
  for (size_t i = 0; i < nf; i++)
    arg(&a, f[i], fl[i]);
  return send_op(s, OP_PARK, SC_PARK, nkeys, &a, cb, privdata);
fail:
  args_free(&a);
  return -1;
}

int sk_store_finish(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                    const char *const *leave_keys, const size_t *leave_lens, size_t nleave,
                    const char *worker, sk_store_callback cb, void *privdata) {
  args a = {0};
  size_t n = 0, fl[4];
  const char *f[4];
  char snl[8];
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
    if (arg_wait(s, &a, OP_FINISH, leave_keys[i], leave_lens[i], &f[i], &fl[i]) != 0) {
      args_free(&a);
      return -1;
    }
  snprintf(snl, sizeof snl, "%zu", nleave);
  arg_str(&a, worker);
  arg_str(&a, snl);
  for (size_t i = 0; i < nleave; i++)
    arg(&a, f[i], fl[i]);
  return batch_add(s, OP_FINISH, 3 + 2 * (int)nleave, &a, cb, privdata);
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
  size_t n = 0, fl = 0;
  const char *f = NULL;
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
  if (arg_index_wait(s, &a, OP_BEGIN_CHECK, ix, &f, &fl) != 0) {
    args_free(&a);
    return -1;
  }
  arg(&a, subject != NULL ? subject : "", subject_len);
  arg(&a, snapshot != NULL ? snapshot : "", snapshot_len);
  arg_str(&a, smin);
  arg_str(&a, slimit);
  arg_str(&a, worker);
  arg_str(&a, ttl);
  arg_str(&a, lend);
  arg_str(&a, dl);
  arg(&a, f, fl);
  return batch_add(s, OP_BEGIN_CHECK, 7, &a, cb, privdata);
}

int sk_store_event_post(sk_store *s, const char *wait_key, size_t wait_len,
                        const char *const *boxes, const size_t *box_lens, size_t nboxes,
                        const char *row, size_t row_len, int64_t score, int64_t ttl_ms,
                        sk_store_callback cb, void *privdata) {
  args a = {0};
  char sscore[24], sttl[24];
  const char *f = NULL;
  size_t fl = 0;
  if (nboxes > 8) {
    snprintf(s->err, sizeof s->err, "event_post: at most 8 loops");
    return -1;
  }
  fmt_i64(sscore, sizeof sscore, score);
  fmt_i64(sttl, sizeof sttl, ttl_ms < 1 ? 1 : ttl_ms);
  if (arg_wait(s, &a, OP_EVENT_POST, wait_key, wait_len, &f, &fl) != 0)
    return -1;
  for (size_t i = 0; i < nboxes; i++)
    arg(&a, boxes[i], box_lens[i]);
  arg(&a, row, row_len);
  arg_str(&a, sscore);
  arg_str(&a, sttl);
  arg(&a, f, fl);
  return send_op(s, OP_EVENT_POST, SC_EVENT_POST, 2 + (int)nboxes, &a, cb, privdata);
}

int sk_store_park_event(sk_store *s, const char *loop, const char *subject, size_t subject_len,
                        const void *snapshot, size_t snapshot_len, int64_t wake_at_ms,
                        const char *wait_key, size_t wait_len, const char *box, size_t box_len,
                        const char *const *leave_keys, const size_t *leave_lens, size_t nleave,
                        const char *worker, sk_store_callback cb, void *privdata) {
  args a = {0};
  char wake[24];
  const char *f[5];
  size_t fl[5];
  if (park_head(s, OP_PARK_EV, loop, subject, subject_len, wake_at_ms, nleave, worker, &a, wake) != 0 ||
      arg_wait(s, &a, OP_PARK_EV, wait_key, wait_len, &f[0], &fl[0]) != 0)
    goto fail;
  arg(&a, box, box_len);
  for (size_t i = 0; i < nleave; i++)
    if (arg_wait(s, &a, OP_PARK_EV, leave_keys[i], leave_lens[i], &f[1 + i], &fl[1 + i]) != 0)
      goto fail;
  arg(&a, snapshot != NULL ? snapshot : "", snapshot_len);
  arg_str(&a, wake);
  arg_str(&a, worker);
  for (size_t i = 0; i <= nleave; i++)
    arg(&a, f[i], fl[i]);
  return send_op(s, OP_PARK_EV, SC_PARK_EV, 6 + 2 * (int)nleave, &a, cb, privdata);
fail:
  args_free(&a);
  return -1;
}
