/* outbox.c: the `outbox` sender (sender.h): each email as one .eml file, named by its idempotency
 * key, the embedded default while RESEND_API_KEY is unset.
 *
 * Exactly once: the message is written to a temporary name in the same folder, fsync'ed, then
 * link()ed to `<key>.eml`. link() fails with EEXIST when the key was sent before (a resend after a
 * crash), and the first file stays as it is: a file that exists is complete, and there is never
 * more than one per key. The folder is fsync'ed after the link so the name survives a power cut.
 * A file system error is transient (the policy retries it): a full disk may be freed. The temporary
 * files of a writer killed before its link are removed when an outbox opens the folder (those of a
 * process that no longer exists).
 *
 * The message: From, To, Subject (RFC 2047 encoded when not ASCII), Date, Message-ID
 * (<key@skene.invalid>), X-Skene-Idempotency-Key, X-Skene-Loop, X-Skene-Subject, Reply-To, then a
 * multipart/alternative body with the text part and the html part (8bit UTF-8, lines as rendered).
 * A Resend-hosted template (`template` field) has no text to render here: the body is one
 * application/json part with the template id and its variables, which is what Resend would receive.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "sbuf.h"
#include "sender.h"

const sk_string *sk_call_field(const sk_effect_call *call, const char *name) {
  for (uint32_t i = 0; i < call->nfields; i++)
    if (strcmp(call->fields[i].name, name) == 0) return call->fields[i].value;
  return NULL;
}

typedef struct outbox {
  sk_sender base;
  struct event_base *ev;
  char *dir;
  char *from;
  size_t in_flight, duplicates;
  uint64_t seq;
  int dirfd;
} outbox;

/* The message is written into an sk_sbuf (sbuf.h). A header value on one line: CR and LF become spaces (a rendered value cannot add a header). */
static void put_header(sk_sbuf *b, const char *name, const char *v, size_t n) {
  sk_sb_puts(b, name);
  sk_sb_puts(b, ": ");
  for (size_t i = 0; i < n; i++) sk_sb_put(b, v[i] == '\r' || v[i] == '\n' ? " " : v + i, 1);
  sk_sb_puts(b, "\r\n");
}

/* Subject: as is when ASCII, else RFC 2047 base64 encoded-words. */
static void put_subject(sk_sbuf *b, const char *v, size_t n) {
  int ascii = 1;
  for (size_t i = 0; i < n; i++) ascii &= (unsigned char)v[i] < 0x80;
  if (ascii) {
    put_header(b, "Subject", v, n);
    return;
  }
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  sk_sb_puts(b, "Subject: =?UTF-8?B?");
  for (size_t i = 0; i < n; i += 3) {
    uint32_t x = (uint32_t)(unsigned char)v[i] << 16;
    if (i + 1 < n) x |= (uint32_t)(unsigned char)v[i + 1] << 8;
    if (i + 2 < n) x |= (unsigned char)v[i + 2];
    char o[4] = {b64[x >> 18], b64[(x >> 12) & 63], i + 1 < n ? b64[(x >> 6) & 63] : '=',
                 i + 2 < n ? b64[x & 63] : '='};
    sk_sb_put(b, o, 4);
  }
  sk_sb_puts(b, "?=\r\n");
}

/* A body part's text with bare LF turned into CRLF. */
static void put_body(sk_sbuf *b, const sk_string *s) {
  if (!s) return;
  for (size_t i = 0; i < s->len; i++) {
    if (s->data[i] == '\n' && (i == 0 || s->data[i - 1] != '\r')) sk_sb_put(b, "\r", 1);
    sk_sb_put(b, s->data + i, 1);
  }
  if (s->len && s->data[s->len - 1] != '\n') sk_sb_put(b, "\r\n", 2);
}

static void put_json_str(sk_sbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  sk_sb_put(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      sk_sb_put(b, e, 2);
    } else if (c < 0x20) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      sk_sb_put(b, e, 6);
    } else {
      sk_sb_put(b, s + i, 1);
    }
  }
  sk_sb_put(b, "\"", 1);
}

/* The whole message, or -1 with reason (permanent: the email itself is wrong). */
static int compose(outbox *o, const sk_effect_call *c, sk_sbuf *b, char *reason, size_t rlen) {
  const sk_string *to = sk_call_field(c, "to"), *from = sk_call_field(c, "from");
  const sk_string *subject = sk_call_field(c, "subject"), *reply = sk_call_field(c, "reply_to");
  const sk_string *tmpl = sk_call_field(c, "template");
  const char *from_s = from ? from->data : o->from;
  if (!to || to->len == 0) {
    snprintf(reason, rlen, "outbox: the email has no recipient (to)");
    return -1;
  }
  if (!from_s || !from_s[0]) {
    snprintf(reason, rlen, "outbox: the email has no sender: set `from` in the action or SKENE_EMAIL_FROM");
    return -1;
  }
  char date[64];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  const sk_module *m = c->m;
  const char *loop = sk_str(m, m->loops[c->loop].name_str);
  const sk_string *subj_id = c->inst->regs[0].u.s;
  put_header(b, "From", from_s, strlen(from_s));
  put_header(b, "To", to->data, to->len);
  if (reply) put_header(b, "Reply-To", reply->data, reply->len);
  if (subject) put_subject(b, subject->data, subject->len);
  put_header(b, "Date", date, strlen(date));
  sk_sb_puts(b, "Message-ID: <");
  sk_sb_puts(b, c->idempotency_key);
  sk_sb_puts(b, "@skene.invalid>\r\n");
  put_header(b, "X-Skene-Idempotency-Key", c->idempotency_key, strlen(c->idempotency_key));
  put_header(b, "X-Skene-Loop", loop, strlen(loop));
  if (subj_id) put_header(b, "X-Skene-Subject", subj_id->data, subj_id->len);
  sk_sb_puts(b, "MIME-Version: 1.0\r\n");
  if (tmpl) {
    sk_sb_puts(b, "Content-Type: application/json; charset=utf-8\r\n\r\n{\"template\":{\"id\":");
    put_json_str(b, tmpl->data, tmpl->len);
    sk_sb_puts(b, ",\"variables\":{");
    int first = 1;
    for (uint32_t i = 0; i < c->nfields; i++) {
      if (strncmp(c->fields[i].name, "var.", 4) != 0) continue;
      if (!first) sk_sb_puts(b, ",");
      first = 0;
      put_json_str(b, c->fields[i].name + 4, strlen(c->fields[i].name + 4));
      sk_sb_puts(b, ":");
      put_json_str(b, c->fields[i].value->data, c->fields[i].value->len);
    }
    sk_sb_puts(b, "}}}\r\n");
    return 0;
  }
  const sk_string *text = sk_call_field(c, "text"), *html = sk_call_field(c, "html");
  char boundary[64];
  snprintf(boundary, sizeof boundary, "skene-%s", c->idempotency_key);
  sk_sb_puts(b, "Content-Type: multipart/alternative; boundary=\"");
  sk_sb_puts(b, boundary);
  sk_sb_puts(b, "\"\r\n\r\n");
  if (text) {
    sk_sb_puts(b, "--");
    sk_sb_puts(b, boundary);
    sk_sb_puts(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
    put_body(b, text);
  }
  if (html) {
    sk_sb_puts(b, "--");
    sk_sb_puts(b, boundary);
    sk_sb_puts(b, "\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
    put_body(b, html);
  }
  sk_sb_puts(b, "--");
  sk_sb_puts(b, boundary);
  sk_sb_puts(b, "--\r\n");
  return 0;
}

typedef struct pending {
  outbox *o;
  sk_sender_done_fn cb;
  void *privdata;
  sk_io io;
} pending;

static void deliver(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  pending *p = arg;
  p->o->in_flight--;
  p->cb(&p->io, p->privdata);
  sk_str_unref(p->io.result);
  free(p);
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Writes the file; fills io. */
static void write_eml(outbox *o, const sk_effect_call *c, sk_io *io) {
  sk_sbuf b = {0};
  char final[128], tmp[160];
  snprintf(final, sizeof final, "%s.eml", c->idempotency_key);
  if (faccessat(o->dirfd, final, F_OK, 0) == 0) { /* sent before: keep the first */
    o->duplicates++;
    io->ok = 1;
    return;
  }
  if (compose(o, c, &b, io->reason, sizeof io->reason) != 0 || b.oom) {
    if (b.oom) {
      io->transient = 1;
      snprintf(io->reason, sizeof io->reason, "outbox: out of memory");
    }
    free(b.p);
    return;
  }
  snprintf(tmp, sizeof tmp, ".%s.%ld.%llu.tmp", c->idempotency_key, (long)getpid(),
           (unsigned long long)++o->seq);
  int fd = openat(o->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  int err = 0;
  if (fd < 0 || write_all(fd, b.p, b.len) != 0 || fsync(fd) != 0) err = errno ? errno : EIO;
  if (fd >= 0) close(fd);
  free(b.p);
  if (!err && linkat(o->dirfd, tmp, o->dirfd, final, 0) != 0) {
    if (errno == EEXIST) o->duplicates++; /* another worker wrote it meanwhile */
    else err = errno;
  }
  unlinkat(o->dirfd, tmp, 0);
  if (err) {
    io->transient = 1;
    snprintf(io->reason, sizeof io->reason, "outbox: writing %s/%s: %s", o->dir, final, strerror(err));
    return;
  }
  fsync(o->dirfd);
  io->ok = 1;
}

static int ob_send(sk_sender *s, const sk_effect_call *call, sk_sender_done_fn cb, void *privdata,
                   sk_io *io) {
  outbox *o = (outbox *)s;
  pending *p = calloc(1, sizeof *p);
  memset(io, 0, sizeof *io);
  if (!p) {
    io->transient = 1;
    snprintf(io->reason, sizeof io->reason, "outbox: out of memory");
    return -1;
  }
  p->o = o;
  p->cb = cb;
  p->privdata = privdata;
  write_eml(o, call, &p->io);
  if (p->io.ok) {
    char id[64];
    snprintf(id, sizeof id, "outbox:%s", call->idempotency_key);
    p->io.result = sk_str_from(id);
  }
  if (event_base_once(o->ev, -1, EV_TIMEOUT, deliver, p, NULL) != 0) {
    *io = p->io;
    if (!io->ok) io->transient = 1;
    sk_str_unref(p->io.result);
    io->result = NULL;
    io->ok = 0;
    io->transient = 1;
    snprintf(io->reason, sizeof io->reason, "outbox: cannot schedule the answer");
    free(p);
    return -1;
  }
  o->in_flight++;
  return 0;
}

static size_t ob_in_flight(const sk_sender *s) { return ((const outbox *)s)->in_flight; }

static void ob_free(sk_sender *s) {
  outbox *o = (outbox *)s;
  if (o->dirfd >= 0) close(o->dirfd);
  free(o->dir);
  free(o->from);
  free(o);
}

static const sk_sender_ops outbox_ops = {"outbox", ob_send, ob_in_flight, ob_free};

size_t sk_outbox_duplicates(const sk_sender *s) { return ((const outbox *)s)->duplicates; }

/* Temporary files of a writer that died between writing and linking (kill -9): ".<key>.<pid>.<n>.tmp"
   whose process is gone. Another live worker's are left alone. Returns how many went. */
static size_t sweep_tmp(int dirfd) {
  int fd = dup(dirfd);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  size_t n = 0;
  if (!d) {
    if (fd >= 0) close(fd);
    return 0;
  }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *name = e->d_name;
    size_t len = strlen(name);
    if (name[0] != '.' || len < 8 || strcmp(name + len - 4, ".tmp") != 0) continue;
    /* the pid is the field before the counter: .key.PID.N.tmp */
    const char *end = name + len - 4, *dot2 = end;
    while (dot2 > name && *--dot2 != '.') {}
    const char *dot1 = dot2;
    while (dot1 > name && *--dot1 != '.') {}
    if (dot1 <= name) continue;
    long pid = strtol(dot1 + 1, NULL, 10);
    if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) {
      if (unlinkat(dirfd, name, 0) == 0) n++;
    }
  }
  closedir(d);
  return n;
}

sk_sender *sk_outbox_new(struct event_base *base, const char *dir, const char *default_from,
                         char *err, size_t errlen) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "outbox: cannot create the folder %s: %s", dir, strerror(errno));
    return NULL;
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "outbox: cannot open the folder %s: %s", dir, strerror(errno));
    return NULL;
  }
  if (faccessat(fd, ".", W_OK, 0) != 0) {
    snprintf(err, errlen, "outbox: cannot write in the folder %s: %s", dir, strerror(errno));
    close(fd);
    return NULL;
  }
  outbox *o = calloc(1, sizeof *o);
  if (!o || !(o->dir = strdup(dir)) || (default_from && !(o->from = strdup(default_from)))) {
    if (o) free(o->dir);
    free(o);
    close(fd);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  o->base.ops = &outbox_ops;
  o->ev = base;
  o->dirfd = fd;
  sweep_tmp(fd);
  return &o->base;
}
