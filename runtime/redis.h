/* redis.h: the runtime's connection to the product's Redis (Upstash in production: TLS, a password,
 * every command billed; any Redis 6+ in development).
 *
 * Skene owns the sockets and the TLS (OpenSSL through libevent's bufferevents, on the caller's
 * event_base); hiredis 0.14 only formats commands and parses replies, with our own caps on reply
 * sizes. One sk_redis is one pipelined connection that reconnects by itself: commands are queued,
 * written in order, and their replies matched first in, first out.
 *
 * The process must ignore SIGPIPE (signal(SIGPIPE, SIG_IGN)): a write to a connection the server
 * has closed would otherwise kill it. Everything here runs on the thread that runs the event_base.
 */
#ifndef SKENE_RUNTIME_REDIS_H
#define SKENE_RUNTIME_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

struct event_base;

/* ---- REDIS_URL ----
 * redis://[user[:password]@]host[:port][/db] and rediss://... (TLS). user and password are
 * percent-decoded; the last '@' ends them, so a password pasted with a raw '@', ':' or '/' still
 * works. An IPv6 host is written in brackets ([::1]). The port defaults to 6379. */
typedef struct sk_redis_url {
  int tls;    /* 1 for rediss:// */
  char *host; /* without the brackets of an IPv6 address */
  int port;
  int db;         /* -1 when the URL names none (no SELECT is sent) */
  char *user;     /* NULL when absent (AUTH password, the default user) */
  char *password; /* NULL when absent (no AUTH); may hold NUL bytes: see password_len */
  size_t user_len, password_len;
} sk_redis_url;

/* Parses text into a new sk_redis_url, or returns NULL and writes why into err (at most errlen
 * bytes, always terminated): "bad REDIS_URL: <which part is wrong>", where REDIS_URL is `name`
 * (NULL: that one). The message never contains the password. The caller owns the result:
 * sk_redis_url_free. */
sk_redis_url *sk_redis_url_parse(const char *text, const char *name, char *err, size_t errlen);
/* Frees url, wiping the password from memory. NULL is fine. */
void sk_redis_url_free(sk_redis_url *url);

/* ---- Options ----
 * Filled by the caller; the library never reads the environment itself (sk_redis_options_from_env
 * does it for callers that want to). Strings are copied by sk_redis_new. */
typedef struct sk_redis_options {
  const char *url_name;   /* how the URL is called in messages; default "REDIS_URL" */
  const char *ca_file;    /* PEM file of the CA(s) to trust instead of the system store (a private
                             CA); NULL: the system store. SKENE_REDIS_CA */
  int insecure;           /* 1: no certificate verification at all. SKENE_REDIS_INSECURE=1 */
  int connect_timeout_ms; /* TCP connect + TLS handshake + AUTH/SELECT replies; default 5000 */
  int command_timeout_ms; /* default timeout of sk_redis_command, from queueing to reply; 0 none;
                             default 10000 */
  int max_queued;         /* commands waiting for a connection; beyond, refused; default 65536 */
  int reconnect;          /* 1 (default): reconnect with backoff, from 100 ms to 5 s, jittered;
                             0: the first failure fails everything for good (start-up checks) */
  size_t max_bulk;        /* largest bulk string accepted in a reply; default 512 MiB */
  int max_array;          /* most elements in one array of a reply; default 1,048,576 */
} sk_redis_options;

#define SK_REDIS_DEFAULT_MAX_BULK ((size_t)512 * 1024 * 1024)
#define SK_REDIS_DEFAULT_MAX_ARRAY (1024 * 1024)

/* Fills o with the defaults above. */
void sk_redis_options_init(sk_redis_options *o);
/* Sets o->ca_file from SKENE_REDIS_CA (when set and not empty) and o->insecure from
 * SKENE_REDIS_INSECURE ("1" on; unset, "" or "0" off). Returns 0, or -1 with a message in err for a
 * value it does not understand. o->ca_file then points into the environment. */
int sk_redis_options_from_env(sk_redis_options *o, char *err, size_t errlen);

/* ---- The connection ---- */
typedef struct sk_redis sk_redis;

/* What happened to one command; given to its callback. */
typedef enum sk_redis_status {
  SK_REDIS_OK = 0,    /* a reply arrived: reply is set (an error reply, e.g. WRONGTYPE, is an OK
                         status with reply->type == REDIS_REPLY_ERROR) */
  SK_REDIS_NOT_SENT,  /* never written to a server: certainly not executed (timed out while
                         waiting for a connection, connection failed for good, sk_redis_free) */
  SK_REDIS_CONN_LOST, /* written, then the connection was lost before its reply: it may or may
                         not have been executed */
  SK_REDIS_TIMEOUT,   /* written, no reply within its timeout; the connection was reset: it may
                         or may not have been executed */
  SK_REDIS_PROTOCOL   /* its reply was malformed or larger than the caps (max_bulk, max_array);
                         the connection was reset */
} sk_redis_status;

typedef struct sk_redis_result {
  sk_redis_status status;
  const redisReply *reply; /* borrowed, valid until the callback returns; NULL unless SK_REDIS_OK */
  const char *errstr;      /* why, when status != SK_REDIS_OK, e.g. "connection to 127.0.0.1:6379
                              lost: closed by the server"; borrowed; "" when OK */
} sk_redis_result;

/* Called exactly once per queued command, from the event loop (never from inside sk_redis_command).
 * It may queue more commands and may call sk_redis_free. */
typedef void (*sk_redis_callback)(sk_redis *r, const sk_redis_result *res, void *privdata);

/* The sticky error of the connection, as hiredis keeps one: the last failure, cleared when a
 * connection becomes ready. */
typedef enum sk_redis_err {
  SK_REDIS_ERR_NONE = 0,
  SK_REDIS_ERR_URL,      /* bad URL: failed for good */
  SK_REDIS_ERR_CONFIG,   /* bad options (e.g. CA file unreadable): failed for good */
  SK_REDIS_ERR_RESOLVE,  /* getaddrinfo failed */
  SK_REDIS_ERR_CONNECT,  /* TCP connect failed or timed out */
  SK_REDIS_ERR_TLS,      /* TLS handshake failed (certificate, protocol) or timed out */
  SK_REDIS_ERR_AUTH,     /* AUTH refused */
  SK_REDIS_ERR_SELECT,   /* SELECT refused */
  SK_REDIS_ERR_LOST,     /* an established connection was lost */
  SK_REDIS_ERR_TIMEOUT,  /* a command got no reply in time; the connection was reset */
  SK_REDIS_ERR_PROTOCOL, /* a malformed or oversized reply; the connection was reset */
  SK_REDIS_ERR_FULL,     /* sk_redis_command refused: the queue is full */
  SK_REDIS_ERR_ARG,      /* sk_redis_command refused: bad arguments */
  SK_REDIS_ERR_OOM,
  SK_REDIS_ERR_CLOSED /* sk_redis_command refused: failed for good, or being freed */
} sk_redis_err;

/* Creates a connection on base (the caller's, which must outlive it) to url (parsed here; options
 * may be NULL for the defaults). It starts connecting once the loop runs; nothing is called back
 * from inside sk_redis_new. Returns NULL only when out of memory. A bad URL or bad options give a
 * connection that has failed for good: sk_redis_err/sk_redis_errstr say why, commands are refused.
 */
sk_redis *sk_redis_new(struct event_base *base, const char *url, const sk_redis_options *options);

/* Closes the connection and frees it. Every command still queued or in flight is called back first
 * (SK_REDIS_NOT_SENT or SK_REDIS_CONN_LOST, "connection closed"). May be called from a callback:
 * the free then happens when the callback returns. NULL is fine. */
void sk_redis_free(sk_redis *r);

/* Queues a command: argc arguments, argv[i] of argvlen[i] bytes (binary-safe; argvlen NULL:
 * strlen). It is written at once when the connection is ready, else when it becomes ready, after
 * the commands queued before it: pipelined, replies matched in order. MULTI/EXEC and EVALSHA are
 * commands like others. Returns 0 when queued (callback will be called exactly once), or -1 when
 * refused (callback never called; sk_redis_err/errstr say why: queue full, failed for good, bad
 * arguments, OOM). Cost: formats the command (one allocation), O(1). The timeout is
 * options.command_timeout_ms. */
int sk_redis_command(sk_redis *r, int argc, const char **argv, const size_t *argvlen,
                     sk_redis_callback callback, void *privdata);
/* The same with this command's own timeout in ms, counted from now to its reply; 0 for none (e.g. a
 * blocking XREADGROUP, whose BLOCK time the caller bounds). */
int sk_redis_command_timeout(sk_redis *r, int timeout_ms, int argc, const char **argv,
                             const size_t *argvlen, sk_redis_callback callback, void *privdata);

/* A function sk_redis_command (and _timeout) calls first, before it queues anything, so that a layer
 * which holds commands back to merge them (the store's batches) sends what it holds and the wire keeps
 * the order of the calls. One per connection; fn NULL removes it. It is not called again while it
 * runs (its own commands go straight through). */
void sk_redis_set_presend(sk_redis *r, void (*fn)(void *), void *arg);
/* The event_base the connection runs on. */
struct event_base *sk_redis_base(const sk_redis *r);

/* ---- Subscriber mode (keyspace notifications) ----
 * In RESP2 a subscribed connection receives messages nobody asked for, so it cannot match replies
 * to commands: sk_redis_psubscribe turns a connection into a subscriber for good. */

/* A pushed message, borrowed until the callback returns: the RESP2 arrays Redis sends, e.g.
 * ["psubscribe", pattern, count] once per pattern after each (re)subscription, and
 * ["pmessage", pattern, channel, payload] for each message. It may call sk_redis_free. */
typedef void (*sk_redis_push_fn)(sk_redis *r, const redisReply *msg, void *privdata);

/* Subscribes r to patterns (copied) and hands every reply from then on to fn. r must have no
 * command queued or in flight; afterwards sk_redis_command refuses everything (SK_REDIS_ERR_ARG):
 * use another connection for commands. PSUBSCRIBE is sent now if connected, and again first thing
 * on every reconnection; messages published while disconnected are lost (Redis keeps none), so
 * watch SK_REDIS_EVENT_READY (sk_redis_on_event) to catch up by other means. Returns 0, or -1
 * (sk_redis_errstr says why). Cost: one command per (re)connection, then nothing while idle. */
int sk_redis_psubscribe(sk_redis *r, int npatterns, const char **patterns, sk_redis_push_fn fn,
                        void *privdata);

/* Connection state changes, for logs and metrics: READY when a connection is up and authenticated,
 * DOWN when an attempt failed or a connection was lost (sk_redis_errstr says why). */
typedef enum sk_redis_event { SK_REDIS_EVENT_READY, SK_REDIS_EVENT_DOWN } sk_redis_event;
typedef void (*sk_redis_event_fn)(sk_redis *r, sk_redis_event ev, void *privdata);
void sk_redis_on_event(sk_redis *r, sk_redis_event_fn fn, void *privdata);

int sk_redis_is_ready(const sk_redis *r);   /* connected, authenticated, database selected */
int sk_redis_has_failed(const sk_redis *r); /* failed for good: commands are refused */
sk_redis_err sk_redis_get_err(const sk_redis *r);
const char *sk_redis_errstr(const sk_redis *r); /* "" when there is no error; never a password */
/* Commands written to servers since sk_redis_new, AUTH and SELECT included (Upstash bills each). */
uint64_t sk_redis_commands_sent(const sk_redis *r);
/* Number of commands queued or in flight. */
size_t sk_redis_pending(const sk_redis *r);

/* Synchronous, for start-up checks and tests: connects to url (TLS, AUTH, SELECT as it says), sends
 * PING, and returns 0 on PONG; else -1 with a precise message in err, e.g.
 *   cannot connect to 127.0.0.1:6399: Connection refused
 *   TLS handshake with example:6380 failed: certificate verify failed (unable to get local issuer
 * ...) authentication failed for user 'skene': WRONGPASS invalid username-password pair or ... bad
 * REDIS_URL: ... Never the password. Runs its own event_base for at most about timeout_ms (twice at
 * worst); does not reconnect. options may be NULL. */
int sk_redis_check(const char *url, const sk_redis_options *options, int timeout_ms, char *err,
                   size_t errlen);

#endif
