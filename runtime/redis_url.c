/* redis_url.c: parsing REDIS_URL (redis:// and rediss://) and filling sk_redis_options, including
 * from the environment (SKENE_REDIS_CA, SKENE_REDIS_INSECURE). No I/O besides getenv.
 * Messages name the part of the URL that is wrong and never contain the password. */
#define _POSIX_C_SOURCE 200809L

#include "redis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void sk_redis_options_init(sk_redis_options *o) {
  memset(o, 0, sizeof *o);
  o->url_name = "REDIS_URL";
  o->connect_timeout_ms = 5000;
  o->command_timeout_ms = 10000;
  o->max_queued = 65536;
  o->reconnect = 1;
  o->max_bulk = SK_REDIS_DEFAULT_MAX_BULK;
  o->max_array = SK_REDIS_DEFAULT_MAX_ARRAY;
}

int sk_redis_options_from_env(sk_redis_options *o, char *err, size_t errlen) {
  const char *ca = getenv("SKENE_REDIS_CA");
  const char *insecure = getenv("SKENE_REDIS_INSECURE");
  if (ca != NULL && ca[0] != '\0')
    o->ca_file = ca;
  if (insecure == NULL || insecure[0] == '\0' || strcmp(insecure, "0") == 0) {
    o->insecure = 0;
  } else if (strcmp(insecure, "1") == 0) {
    o->insecure = 1;
  } else {
    snprintf(err, errlen,
             "SKENE_REDIS_INSECURE must be 1 (no certificate verification) or 0, "
             "not '%s'",
             insecure);
    return -1;
  }
  return 0;
}

static void url_error(char *err, size_t errlen, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void url_error(char *err, size_t errlen, const char *name, const char *fmt, ...) {
  if (err == NULL || errlen == 0)
    return;
  int n = snprintf(err, errlen, "bad %s: ", name);
  if (n < 0 || (size_t)n >= errlen)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
  va_end(ap);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Percent-decodes s[0..n) into a new NUL-terminated string (its length in *outlen; it may hold NUL
 * bytes). Returns NULL on a bad escape (*bad = 1) or out of memory (*bad = 0). */
static char *percent_decode(const char *s, size_t n, size_t *outlen, int *bad) {
  char *out = malloc(n + 1);
  size_t j = 0;
  *bad = 0;
  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') {
      out[j++] = s[i];
      continue;
    }
    if (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) {
      OPENSSL_cleanse(out, n + 1);
      free(out);
      *bad = 1;
      return NULL;
    }
    out[j++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
    i += 2;
  }
  out[j] = '\0';
  *outlen = j;
  return out;
}

static int is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

static int is_ipv6_char(char c) {
  return hexval(c) >= 0 || c == ':' || c == '.';
}

/* Parses the digits of [s, end) into *out if they are 1..max_digits digits and the value <= max. */
static int parse_uint(const char *s, const char *end, int max_digits, long max, long *out) {
  long v = 0;
  if (end <= s || end - s > max_digits)
    return -1;
  for (const char *c = s; c < end; c++) {
    if (*c < '0' || *c > '9')
      return -1;
    v = v * 10 + (*c - '0');
  }
  if (v > max)
    return -1;
  *out = v;
  return 0;
}

/* Nothing of the URL but its scheme is ever copied into a message: a misplaced password could be in
 * any other part (a forgotten '@' makes it the port, a query may hold it). */
sk_redis_url *sk_redis_url_parse(const char *text, const char *name, char *err, size_t errlen) {
  static const char expected[] =
      "expected redis://[user:password@]host[:port][/db] or rediss://...";
  if (name == NULL)
    name = "REDIS_URL";
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (text == NULL || text[0] == '\0') {
    url_error(err, errlen, name, "empty (%s)", expected);
    return NULL;
  }
  sk_redis_url *u = calloc(1, sizeof *u);
  if (u == NULL) {
    url_error(err, errlen, name, "out of memory");
    return NULL;
  }
  u->port = 6379;
  u->db = -1;

  const char *p;
  if (strncmp(text, "redis://", 8) == 0) {
    p = text + 8;
  } else if (strncmp(text, "rediss://", 9) == 0) {
    u->tls = 1;
    p = text + 9;
  } else {
    const char *sep = strstr(text, "://");
    size_t n = sep != NULL ? (size_t)(sep - text) : 0;
    int printable = n > 0 && n <= 16;
    for (size_t i = 0; printable && i < n; i++)
      printable = is_host_char(text[i]) || text[i] == '+';
    if (printable)
      url_error(err, errlen, name, "scheme '%.*s' is not redis:// or rediss:// (%s)", (int)n, text,
                expected);
    else
      url_error(err, errlen, name, "missing redis:// or rediss:// (%s)", expected);
    goto fail;
  }

  /* Credentials: everything before the last '@'. */
  const char *at = strrchr(p, '@');
  if (at != NULL) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    int bad = 0;
    if (colon == NULL) {
      url_error(err, errlen, name,
                "credentials without ':' (expected user:password@ or :password@)");
      goto fail;
    }
    if (colon > p) {
      u->user = percent_decode(p, (size_t)(colon - p), &u->user_len, &bad);
      if (u->user == NULL) {
        url_error(err, errlen, name,
                  bad ? "invalid percent-escape in the user name" : "out of memory");
        goto fail;
      }
    }
    u->password = percent_decode(colon + 1, (size_t)(at - colon - 1), &u->password_len, &bad);
    if (u->password == NULL) {
      url_error(err, errlen, name,
                bad ? "invalid percent-escape in the password" : "out of memory");
      goto fail;
    }
    if (u->password_len == 0) {
      url_error(err, errlen, name, "empty password (leave out 'user:@' for none)");
      goto fail;
    }
    p = at + 1;
  }

  /* Host: a name, an IPv4 address, or an IPv6 address in brackets. */
  const char *h = p, *hend, *q;
  if (*p == '[') {
    h = p + 1;
    hend = strchr(h, ']');
    if (hend == NULL) {
      url_error(err, errlen, name, "IPv6 address without its closing ']'");
      goto fail;
    }
    for (const char *c = h; c < hend; c++) {
      if (!is_ipv6_char(*c)) {
        url_error(err, errlen, name, "invalid character in the IPv6 address");
        goto fail;
      }
    }
    q = hend + 1;
  } else {
    hend = h + strcspn(h, ":/?#");
    for (const char *c = h; c < hend; c++) {
      if (!is_host_char(*c)) {
        url_error(err, errlen, name, "invalid character in the host name");
        goto fail;
      }
    }
    q = hend;
  }
  if (hend == h) {
    url_error(err, errlen, name, "missing host (%s)", expected);
    goto fail;
  }
  if (hend - h > 253) {
    url_error(err, errlen, name, "host name longer than 253 characters");
    goto fail;
  }
  u->host = strndup(h, (size_t)(hend - h));
  if (u->host == NULL) {
    url_error(err, errlen, name, "out of memory");
    goto fail;
  }

  if (*q == ':') {
    const char *pend = q + 1 + strcspn(q + 1, "/?#");
    long port;
    if (parse_uint(q + 1, pend, 5, 65535, &port) != 0 || port == 0) {
      url_error(err, errlen, name, "bad port (expected a number from 1 to 65535)");
      goto fail;
    }
    u->port = (int)port;
    q = pend;
  }
  if (*q == '/') {
    const char *dend = q + 1 + strcspn(q + 1, "?#");
    long db;
    if (dend > q + 1) {
      if (parse_uint(q + 1, dend, 9, 999999999, &db) != 0) {
        url_error(err, errlen, name, "bad database number (expected /0, /1, ...)");
        goto fail;
      }
      u->db = (int)db;
    }
    q = dend;
  }
  if (*q == '?' || *q == '#') {
    url_error(err, errlen, name, "query parameters and fragments (?..., #...) are not supported");
    goto fail;
  }
  if (*q != '\0') {
    url_error(err, errlen, name, "unexpected characters after the host (%s)", expected);
    goto fail;
  }
  return u;

fail:
  sk_redis_url_free(u);
  return NULL;
}

void sk_redis_url_free(sk_redis_url *url) {
  if (url == NULL)
    return;
  if (url->password != NULL) {
    OPENSSL_cleanse(url->password, url->password_len);
    free(url->password);
  }
  free(url->user);
  free(url->host);
  free(url);
}
