/*
 * checks.c: Resend's checks of one email (checks.h). The order of the checks decides which error
 * a request with several problems gets: from, to, subject, template, html/text, cc, bcc, reply_to,
 * tags, headers, scheduled_at, attachments. JSON null counts as absent for the optional fields and
 * as a wrong type for the required ones.
 */
#define _POSIX_C_SOURCE 200809L
#include "checks.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MISSING "missing_required_field"
#define INVALID "validation_error"

/* Resend's own text for a malformed address (observed in its responses). */
#define ADDRESS_FORMAT                                                                             \
  "The email address needs to follow the `email@example.com` or `Name <email@example.com>` format."

void rm_error_set(rm_error *e, int status, const char *name, const char *fmt, ...) {
  va_list ap;
  e->status = status;
  e->name = name;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
}

json_t *rm_error_json(const rm_error *e) {
  return json_pack("{s:i, s:s, s:s}", "statusCode", e->status, "message", e->message, "name",
                   e->name);
}

/* ---- addresses ---- */

/* A byte that cannot appear unquoted in an address: controls, space and RFC 5322's specials. */
static int addr_special(unsigned char c) {
  return c <= ' ' || c == 0x7f || (c != 0 && strchr("()<>[]:;@\\,\"", c) != NULL);
}

/* local@domain: the local part is 1 to 64 bytes without specials; the domain is at least two
 * dot-separated labels of letters, digits, hyphens (or UTF-8 bytes), none empty or longer than 63,
 * none starting or ending with a hyphen. */
static int valid_addr_spec(const char *s, size_t n) {
  const char *at = memchr(s, '@', n);
  if (at == NULL || at == s || at - s > 64)
    return 0;
  for (const char *p = s; p < at; p++)
    if (addr_special((unsigned char)*p))
      return 0;
  const char *d = at + 1, *end = s + n;
  if (end - d < 3 || end - d > 253)
    return 0;
  int labels = 0;
  while (d <= end) {
    const char *dot = memchr(d, '.', (size_t)(end - d));
    const char *le = dot ? dot : end;
    size_t len = (size_t)(le - d);
    if (len == 0 || len > 63 || d[0] == '-' || le[-1] == '-')
      return 0;
    for (const char *p = d; p < le; p++) {
      unsigned char c = (unsigned char)*p;
      if (!(c >= 0x80 || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
            (c >= 'A' && c <= 'Z')))
        return 0;
    }
    labels++;
    if (dot == NULL)
      break;
    d = dot + 1;
  }
  return labels >= 2;
}

int rm_valid_address(const char *s, size_t n) {
  while (n > 0 && (*s == ' ' || *s == '\t')) {
    s++;
    n--;
  }
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    n--;
  if (n == 0)
    return 0;
  if (s[n - 1] != '>')
    return valid_addr_spec(s, n);
  /* Name <addr>: the name is anything without angle brackets, or a quoted string. */
  const char *lt = NULL;
  for (size_t i = 0; i < n - 1; i++)
    if (s[i] == '<')
      lt = s + i;
  if (lt == NULL)
    return 0;
  size_t name_len = (size_t)(lt - s);
  while (name_len > 0 && (s[name_len - 1] == ' ' || s[name_len - 1] == '\t'))
    name_len--;
  if (name_len > 0 && s[0] == '"' && (name_len < 2 || s[name_len - 1] != '"'))
    return 0;
  for (size_t i = 0; i < name_len; i++)
    if (s[i] == '<' || s[i] == '>' || s[i] == '\r' || s[i] == '\n')
      return 0;
  return valid_addr_spec(lt + 1, (size_t)(s + n - 1 - (lt + 1)));
}

/* ---- fields ---- */

/* Characters (UTF-8 code points) of a JSON string. */
static size_t char_count(const json_t *s) {
  const unsigned char *p = (const unsigned char *)json_string_value(s);
  size_t n = 0, len = json_string_length(s);
  for (size_t i = 0; i < len; i++)
    n += (p[i] & 0xc0) != 0x80;
  return n;
}

static int is_absent(const json_t *v) {
  return v == NULL || json_is_null(v);
}

/* A required string field: absent or empty is missing_required_field, another type (null
 * included) is a validation_error. */
static int check_required_string(const json_t *e, const char *field, rm_error *err) {
  const json_t *v = json_object_get(e, field);
  if (v == NULL || (json_is_string(v) && json_string_length(v) == 0)) {
    rm_error_set(err, 422, MISSING, "Missing `%s` field.", field);
    return -1;
  }
  if (!json_is_string(v)) {
    rm_error_set(err, 422, INVALID, "The `%s` field must be a `string`.", field);
    return -1;
  }
  return 0;
}

static int check_optional_string(const json_t *e, const char *field, rm_error *err) {
  const json_t *v = json_object_get(e, field);
  if (!is_absent(v) && !json_is_string(v)) {
    rm_error_set(err, 422, INVALID, "The `%s` field must be a `string`.", field);
    return -1;
  }
  return 0;
}

/* to, cc, bcc, reply_to: a string or an array of strings, each a valid address. required: absent
 * or empty is missing_required_field; max: most addresses (0: no limit). */
static int check_addresses(const json_t *e, const char *field, int required, size_t max,
                           rm_error *err) {
  const json_t *v = json_object_get(e, field);
  if (!required && (is_absent(v) || (json_is_string(v) && json_string_length(v) == 0)))
    return 0;
  if (v == NULL || (json_is_string(v) && json_string_length(v) == 0) ||
      (json_is_array(v) && json_array_size(v) == 0 && required)) {
    rm_error_set(err, 422, MISSING, "Missing `%s` field.", field);
    return -1;
  }
  if (json_is_string(v)) {
    if (!rm_valid_address(json_string_value(v), json_string_length(v)))
      goto bad_address;
    return 0;
  }
  if (!json_is_array(v)) {
    rm_error_set(err, 422, INVALID, "The `%s` field must be a `string`.", field);
    return -1;
  }
  if (max > 0 && json_array_size(v) > max) {
    rm_error_set(err, 422, INVALID, "Too many recipients in the `%s` field. The maximum is %zu.",
                 field, max);
    return -1;
  }
  size_t i;
  const json_t *a;
  json_array_foreach(v, i, a) {
    if (!json_is_string(a)) {
      rm_error_set(err, 422, INVALID, "The `%s` field must be a `string`.", field);
      return -1;
    }
    if (!rm_valid_address(json_string_value(a), json_string_length(a)))
      goto bad_address;
  }
  return 0;
bad_address:
  rm_error_set(err, 422, INVALID, "Invalid `%s` field. " ADDRESS_FORMAT, field);
  return -1;
}

/* A tag's name or value: 1 to 256 ASCII letters, digits, underscores or dashes. */
static int check_tag_part(const json_t *tag, size_t index, const char *part, rm_error *err) {
  const json_t *v = json_object_get(tag, part);
  if (is_absent(v)) {
    rm_error_set(err, 422, MISSING, "Missing `tags[%zu].%s` field.", index, part);
    return -1;
  }
  if (!json_is_string(v)) {
    rm_error_set(err, 422, INVALID, "The `tags[%zu].%s` field must be a `string`.", index, part);
    return -1;
  }
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  int ok = n >= 1 && n <= RM_MAX_TAG;
  for (size_t i = 0; ok && i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
  }
  if (!ok) {
    rm_error_set(err, 422, INVALID,
                 "Invalid `tags[%zu].%s` field. It can only contain ASCII letters (a-z, A-Z), "
                 "numbers (0-9), underscores (_), or dashes (-), and no more than %d characters.",
                 index, part, RM_MAX_TAG);
    return -1;
  }
  return 0;
}

static int check_tags(const json_t *e, rm_error *err) {
  const json_t *tags = json_object_get(e, "tags");
  if (is_absent(tags))
    return 0;
  if (!json_is_array(tags)) {
    rm_error_set(err, 422, INVALID, "The `tags` field must be an `array`.");
    return -1;
  }
  size_t i;
  const json_t *t;
  json_array_foreach(tags, i, t) {
    if (!json_is_object(t)) {
      rm_error_set(err, 422, INVALID, "The `tags[%zu]` field must be an `object` with `name` and "
                   "`value`.", i);
      return -1;
    }
    if (check_tag_part(t, i, "name", err) || check_tag_part(t, i, "value", err))
      return -1;
  }
  return 0;
}

static const char *const reserved_variables[] = {"FIRST_NAME", "LAST_NAME", "EMAIL",
                                                 "UNSUBSCRIBE_URL"};

static int check_template(const json_t *e, rm_error *err) {
  const json_t *t = json_object_get(e, "template");
  if (!json_is_object(t)) {
    rm_error_set(err, 422, INVALID, "The `template` field must be an `object`.");
    return -1;
  }
  const json_t *id = json_object_get(t, "id");
  if (is_absent(id) || (json_is_string(id) && json_string_length(id) == 0)) {
    rm_error_set(err, 422, MISSING, "Missing `template.id` field.");
    return -1;
  }
  if (!json_is_string(id)) {
    rm_error_set(err, 422, INVALID, "The `template.id` field must be a `string`.");
    return -1;
  }
  const json_t *vars = json_object_get(t, "variables");
  if (is_absent(vars))
    return 0;
  if (!json_is_object(vars)) {
    rm_error_set(err, 422, INVALID, "The `template.variables` field must be an `object`.");
    return -1;
  }
  const char *key;
  const json_t *v;
  json_object_foreach((json_t *)vars, key, v) {
    size_t n = strlen(key);
    int ok = n >= 1 && n <= RM_MAX_VARIABLE_KEY;
    for (size_t i = 0; ok && i < n; i++) {
      unsigned char c = (unsigned char)key[i];
      ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    }
    if (!ok) {
      rm_error_set(err, 422, INVALID,
                   "Invalid template variable key `%.80s`. It may only contain ASCII letters, "
                   "numbers, and underscores, and no more than %d characters.",
                   key, RM_MAX_VARIABLE_KEY);
      return -1;
    }
    for (size_t r = 0; r < sizeof reserved_variables / sizeof *reserved_variables; r++) {
      if (strcmp(key, reserved_variables[r]) == 0) {
        rm_error_set(err, 422, INVALID, "The template variable `%s` is reserved.", key);
        return -1;
      }
    }
    if (json_is_string(v)) {
      if (char_count(v) > RM_MAX_VARIABLE_STRING) {
        rm_error_set(err, 422, INVALID,
                     "The template variable `%s` must be no longer than %d characters.", key,
                     RM_MAX_VARIABLE_STRING);
        return -1;
      }
    } else if (json_is_number(v)) {
      if (json_number_value(v) > 9007199254740991.0) {
        rm_error_set(err, 422, INVALID,
                     "The template variable `%s` must not be greater than 9007199254740991.", key);
        return -1;
      }
    } else {
      rm_error_set(err, 422, INVALID,
                   "The template variable `%s` must be a `string` or a `number`.", key);
      return -1;
    }
  }
  return 0;
}

static int check_headers(const json_t *e, rm_error *err) {
  const json_t *h = json_object_get(e, "headers");
  if (is_absent(h))
    return 0;
  if (!json_is_object(h)) {
    rm_error_set(err, 422, INVALID, "The `headers` field must be an `object`.");
    return -1;
  }
  const char *name;
  const json_t *v;
  json_object_foreach((json_t *)h, name, v) {
    if (!json_is_string(v)) {
      rm_error_set(err, 422, INVALID, "The `headers.%.80s` field must be a `string`.", name);
      return -1;
    }
  }
  return 0;
}

static int check_attachments(const json_t *e, int in_batch, rm_error *err) {
  const json_t *a = json_object_get(e, "attachments");
  if (is_absent(a))
    return 0;
  if (in_batch) {
    rm_error_set(err, 422, INVALID, "The `attachments` field is not supported for batch emails.");
    return -1;
  }
  if (!json_is_array(a)) {
    rm_error_set(err, 422, INVALID, "The `attachments` field must be an `array`.");
    return -1;
  }
  size_t i;
  const json_t *item;
  json_array_foreach(a, i, item) {
    const json_t *content = json_object_get(item, "content");
    const json_t *path = json_object_get(item, "path");
    if (!json_is_object(item) || (!json_is_string(content) && !json_is_string(path))) {
      /* Resend's documented error. */
      rm_error_set(err, 422, "invalid_attachment", "Attachment must have either a `content` or "
                   "`path`.");
      return -1;
    }
  }
  return 0;
}

int rm_check_email(const json_t *e, int in_batch, rm_error *err) {
  if (!json_is_object(e)) {
    rm_error_set(err, 422, INVALID, in_batch ? "Each email of the batch must be an `object`."
                                              : "The request body must be an `object`.");
    return -1;
  }
  /* With a template, `from` and `subject` may come from the template's defaults. */
  int has_template = !is_absent(json_object_get(e, "template"));
  if (has_template ? check_optional_string(e, "from", err) : check_required_string(e, "from", err))
    return -1;
  const json_t *from = json_object_get(e, "from");
  if (json_is_string(from) && !rm_valid_address(json_string_value(from), json_string_length(from))) {
    rm_error_set(err, 422, INVALID, "Invalid `from` field. " ADDRESS_FORMAT);
    return -1;
  }
  if (check_addresses(e, "to", 1, RM_MAX_RECIPIENTS, err))
    return -1;
  if (has_template ? check_optional_string(e, "subject", err)
                   : check_required_string(e, "subject", err))
    return -1;
  if (has_template && check_template(e, err))
    return -1;
  if (check_optional_string(e, "html", err) || check_optional_string(e, "text", err))
    return -1;
  int has_body = !is_absent(json_object_get(e, "html")) || !is_absent(json_object_get(e, "text"));
  if (has_template && has_body) {
    rm_error_set(err, 422, INVALID,
                 "The `html` and `text` fields cannot be used together with a `template`.");
    return -1;
  }
  if (!has_template && !has_body) {
    rm_error_set(err, 422, MISSING, "Missing `html` or `text` field.");
    return -1;
  }
  if (check_addresses(e, "cc", 0, 0, err) || check_addresses(e, "bcc", 0, 0, err) ||
      check_addresses(e, "reply_to", 0, 0, err))
    return -1;
  if (check_tags(e, err) || check_headers(e, err) ||
      check_optional_string(e, "scheduled_at", err) || check_attachments(e, in_batch, err))
    return -1;
  return 0;
}

int rm_check_size(size_t bytes, rm_error *err) {
  if (bytes > RM_MAX_EMAIL_BYTES) {
    rm_error_set(err, 422, INVALID, "The email is larger than the maximum of 40MB.");
    return -1;
  }
  return 0;
}
