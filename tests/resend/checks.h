/*
 * checks.h: what Resend checks in one email before it accepts it, for resend-mock.c. Pure
 * functions over a parsed JSON body; no I/O. Every message is Resend's own where its
 * documentation or an observed response gives it, else one chosen in the same style
 * (tests/resend/README.md lists which is which).
 */
#ifndef SKENE_TESTS_RESEND_CHECKS_H
#define SKENE_TESTS_RESEND_CHECKS_H

#include <stddef.h>

#include <jansson.h>

#define RM_MAX_RECIPIENTS 50                      /* `to`, per email */
#define RM_MAX_BATCH 100                          /* emails per POST /emails/batch */
#define RM_MAX_EMAIL_BYTES (40u * 1024u * 1024u)  /* one email's JSON, attachments included */
#define RM_MAX_IDEMPOTENCY_KEY 256                /* bytes */
#define RM_MAX_TAG 256                            /* characters of a tag's name or value */
#define RM_MAX_VARIABLE_KEY 50                    /* characters of a template variable's key */
#define RM_MAX_VARIABLE_STRING 2000               /* characters of a template variable's value */

/* One of Resend's errors: the HTTP status and the body {"statusCode", "message", "name"}. */
typedef struct rm_error {
  int status;
  const char *name; /* a static string: "validation_error", "missing_required_field", ... */
  char message[400];
} rm_error;

void rm_error_set(rm_error *e, int status, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The error as Resend sends it: {"statusCode":..,"message":..,"name":..}. New reference. */
json_t *rm_error_json(const rm_error *e);

/* 1 when s (n bytes) is `email@example.com` or `Name <email@example.com>`, else 0. */
int rm_valid_address(const char *s, size_t n);

/* Checks one email of POST /emails (in_batch 0) or of POST /emails/batch (in_batch 1): required
 * fields, types, address formats, limits, templates, tags. Returns 0, or -1 with *err set to the
 * first problem found. The size limit is not checked here (rm_check_size). */
int rm_check_email(const json_t *email, int in_batch, rm_error *err);

/* Checks that one email of `bytes` bytes of JSON is within Resend's 40 MB. 0 or -1 and *err. */
int rm_check_size(size_t bytes, rm_error *err);

#endif
