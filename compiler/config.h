/*
 * config.h: the checked loop configuration, between check.c (which builds it from static values and
 * reports every problem) and lower.c (which turns it into bytecode). Everything lives in the
 * compilation's arena. Templated strings are parsed here; their variables are resolved by lower.c,
 * which knows the registers.
 */
#ifndef SK_CONFIG_H
#define SK_CONFIG_H

#include <stdint.h>

#include "diag.h"
#include "sql.h"
#include "tmpl.h"
#include "value.h"

/* What a placeholder names, resolved by check.c against the scope it appears in. */
typedef enum {
  SK_REF_SUBJECT,   /* {{user.id}} / {{row.id}}: the subject's id */
  SK_REF_ROW,       /* {{user.name}}: a field of the trigger row */
  SK_REF_MATCH,     /* {{match.x}}: a field of the first row that satisfied the step's condition */
  SK_REF_EVENT,     /* {{project.x}}: a field of the row that a later step's trigger delivered */
  SK_REF_LOOP_NAME, /* {{loop.name}}: folded to a literal */
  SK_REF_NOW,       /* {{now}}: ISO 8601 time of rendering */
  SK_REF_PERS       /* {{name}} in an email: a personalization value */
} sk_ref_kind;

typedef struct {
  sk_ref_kind kind;
  const char *field;        /* the row field, NULL for the whole value */
  int index;                /* SK_REF_EVENT: the step; SK_REF_PERS: the personalization index */
} sk_var_ref;

/* A string that may hold {{placeholders}}, with where it came from (for diagnostics and debug info). */
typedef struct {
  const char *text;
  sk_tmpl *tmpl;            /* parsed; owned by the config (freed in sk_config_free) */
  const sk_source *src;     /* the .ts file or a template file */
  const sk_value *val;      /* the string value in the .ts (NULL for a template file) */
  uint32_t base_off;        /* for template files: byte offset of text in src */
  uint32_t line, col;       /* position for debug info */
  sk_var_ref *refs;         /* refs[i] for each tmpl part i that is a variable */
  uint32_t escape;          /* sk_escape for variables */
} sk_text;

typedef struct { const char *name; sk_text text; } sk_named_text;

typedef struct {
  const char *name;         /* users */
  const char *singular;     /* user */
  const char *key;          /* users:{id} */
  uint32_t format, feed;    /* sk_row_format, sk_table_feed */
  int configured;           /* named in a loop's `tables` */
  const sk_value *where;    /* the `tables` entry, for diagnostics */
} sk_cfg_table;

typedef struct {
  int table;                /* index into config tables */
  uint32_t event;           /* sk_event_kind */
  uint32_t line, col;
} sk_cfg_trigger;

typedef struct {
  uint32_t kind;            /* sk_cond_kind */
  const char *text;         /* query, or the command joined by spaces */
  sk_sql_query *sql;        /* query; owned */
  int table;
  struct { sk_text *v; size_t n, cap; } params;   /* $1.. ; empty: $1 is the subject */
  struct { sk_text *v; size_t n, cap; } argv;     /* redis */
  uint64_t timeout_ms;      /* 0: none */
  uint32_t min_rows;
  uint32_t line, col;
  const sk_value *val;
} sk_cfg_cond;

typedef struct {
  uint32_t kind;            /* sk_effect_kind */
  uint32_t provider;        /* sk_provider */
  const char *template_name;        /* email: file template name, or NULL */
  const char *resend_id;            /* email: 'resend:<id>' */
  struct { sk_named_text *v; size_t n, cap; } fields;       /* rendered fields in order */
  struct { sk_named_text *v; size_t n, cap; } personalization;
  uint32_t line, col;
} sk_cfg_effect;

typedef struct {
  sk_cfg_trigger *trigger;  /* NULL when absent */
  uint64_t delay_ms;
  sk_cfg_cond *cond;
  sk_cfg_effect *action, *on_timeout;
  uint32_t line, col;
} sk_cfg_step;

typedef struct {
  const char *name;
  uint32_t type;            /* sk_loop_type */
  const char *opinion;
  struct { sk_cfg_step *v; size_t n, cap; } steps;
  uint32_t retries, backoff, jitter;
  uint64_t delay_ms, max_delay_ms;
  uint32_t line, col;
} sk_cfg_loop;

typedef struct sk_config {
  const char *source_path;
  struct { sk_cfg_loop *v; size_t n, cap; } loops;
  struct { sk_cfg_table *v; size_t n, cap; } tables;
  /* everything to free that is not in the arena */
  struct { sk_tmpl **v; size_t n, cap; } tmpls;
  struct { sk_sql_query **v; size_t n, cap; } queries;
  struct { char **v; size_t n, cap; } files;   /* template file texts */
} sk_config;

typedef struct {
  const char *templates_dir;  /* NULL: "templates" next to the config */
} sk_check_options;

/*
 * Checks the extracted value against the config language and builds the config. Reports every problem
 * to d (all of them, up to the diagnostics limit). Returns the config (free with sk_config_free) even
 * when there were errors, so callers can decide; NULL only when root is NULL.
 */
sk_config *sk_check(const sk_value *root, const sk_source *src, sk_arena *arena, sk_diags *d,
                    const sk_check_options *opts);
void sk_config_free(sk_config *cfg);

/* "users" -> "user", "companies" -> "company", "addresses" -> "address". In arena. */
const char *sk_singular(sk_arena *a, const char *plural);

#endif
