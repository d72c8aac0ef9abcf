/*
 * skenec.c: the command line. `skenec build|check|dump`: runs the pipeline
 *   read -> extract (tree-sitter) -> check -> lower -> write (+ load and verify what was written)
 * and prints diagnostics gcc-style or as JSON. Exit 0 ok, 1 errors in the config, 2 usage or I/O.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../vm/dump.h"
#include "../vm/skb.h"
#include "config.h"
#include "lower.h"
#include "value.h"

#define EXIT_CONFIG 1
#define EXIT_USAGE 2
#define MAX_ERRORS 50

static const char usage[] =
    "usage: skenec build [-o OUT.skb] [--templates DIR] [--diagnostics-format=text|json] CONFIG.ts\n"
    "       skenec check [--templates DIR] [--diagnostics-format=text|json] CONFIG.ts\n"
    "       skenec dump [--templates DIR] FILE.skb|CONFIG.ts\n"
    "       skenec --help | --version\n"
    "\n"
    "Compiles a Skene config (skene.config.ts) into verified, auditable bytecode (.skb).\n"
    "\n"
    "commands:\n"
    "  build   compile CONFIG.ts into OUT.skb (default: CONFIG with .ts replaced by .skb)\n"
    "  check   check CONFIG.ts and report every problem; write nothing\n"
    "  dump    print the auditor's summary and the listing of a .skb, or of a config compiled in memory\n"
    "\n"
    "options:\n"
    "  -o, --output OUT          where build writes the bytecode\n"
    "  --templates DIR           email templates folder (default: templates/ next to the config)\n"
    "  --diagnostics-format=F    text (default; gcc style on stderr) or json (one array on stderr)\n"
    "  -h, --help                this text\n"
    "  --version                 the version of skenec and of the bytecode format\n"
    "\n"
    "exit status: 0 ok, 1 errors in the config, 2 usage or I/O error\n";

typedef struct {
  const char *cmd, *input, *output, *templates;
  int json;
} options;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("skenec: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\n(see skenec --help)\n", stderr);
  return EXIT_USAGE;
}

/* Compiles the config at opts->input. On success returns 0 with the file image in *bytes. */
static int compile(const options *o, uint8_t **bytes, size_t *len) {
  char *text;
  size_t tlen;
  *bytes = NULL;
  if (sk_read_file(o->input, &text, &tlen) != 0) {
    fprintf(stderr, "skenec: cannot read %s: %s\n", o->input, strerror(errno));
    return EXIT_USAGE;
  }
  sk_diags *d = sk_diags_new(MAX_ERRORS);
  sk_arena *arena = sk_arena_new();
  sk_source *src = sk_diags_source(d, o->input, text, tlen);
  sk_check_options copts = {o->templates};
  int rc = 0;
  sk_config *cfg = NULL;
  sk_module *m = NULL;
  if (tlen > UINT32_MAX / 2) {
    sk_diag(d, SK_ERROR, NULL, 0, 0, "%s is too large", o->input);
    goto out;
  }
  sk_value *root = sk_extract(src, arena, d);
  if (d->nerrors == 0) cfg = sk_check(root, src, arena, d, &copts);
  if (d->nerrors == 0 && cfg) m = sk_lower(cfg, src, d);
  if (d->nerrors == 0 && m) {
    if (sk_module_write(m, bytes, len) != 0) {
      sk_diag(d, SK_ERROR, NULL, 0, 0, "the bytecode exceeds the format's limits");
    } else {
      /* What the compiler writes must pass the verifier that production runs. */
      char err[300];
      sk_module *check = NULL;
      if (sk_module_load(*bytes, *len, &check, err, sizeof err) != 0)
        sk_diag(d, SK_ERROR, NULL, 0, 0, "internal error: the bytecode written does not verify: %s", err);
      sk_module_free(check);
    }
  }
out:
  sk_diags_print(d, stderr, o->json);
  if (d->nerrors) {
    rc = EXIT_CONFIG;
    free(*bytes);
    *bytes = NULL;
  }
  sk_module_free(m);
  sk_config_free(cfg);
  sk_arena_free(arena);
  sk_diags_free(d);
  free(text);
  return rc;
}

static int write_file(const char *path, const uint8_t *bytes, size_t len) {
  /* Write to a temporary name and rename, so a failed build never leaves a half-written .skb. */
  size_t pl = strlen(path);
  char *tmp = malloc(pl + 8);
  if (!tmp) return -1;
  snprintf(tmp, pl + 8, "%s.tmp~", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    fprintf(stderr, "skenec: cannot write %s: %s\n", path, strerror(errno));
    free(tmp);
    return -1;
  }
  int ok = fwrite(bytes, 1, len, f) == len;
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp, path) != 0) {
    fprintf(stderr, "skenec: cannot write %s: %s\n", path, strerror(errno));
    remove(tmp);
    free(tmp);
    return -1;
  }
  free(tmp);
  return 0;
}

static char *default_output(const char *input) {
  size_t n = strlen(input);
  char *out = malloc(n + 5);
  if (!out) return NULL;
  memcpy(out, input, n + 1);
  if (n > 3 && strcmp(input + n - 3, ".ts") == 0) out[n - 3] = 0;
  strcat(out, ".skb");
  return out;
}

static int cmd_build(const options *o) {
  uint8_t *bytes;
  size_t len;
  int rc = compile(o, &bytes, &len);
  if (rc) return rc;
  char *def = o->output ? NULL : default_output(o->input);
  const char *out = o->output ? o->output : def;
  if (!out || write_file(out, bytes, len) != 0) rc = EXIT_USAGE;
  free(def);
  free(bytes);
  return rc;
}

static int cmd_check(const options *o) {
  uint8_t *bytes;
  size_t len;
  int rc = compile(o, &bytes, &len);
  free(bytes);
  return rc;
}

static int cmd_dump(const options *o) {
  char *text;
  size_t len;
  if (sk_read_file(o->input, &text, &len) != 0) {
    fprintf(stderr, "skenec: cannot read %s: %s\n", o->input, strerror(errno));
    return EXIT_USAGE;
  }
  uint8_t *bytes = (uint8_t *)text;
  int is_skb = len >= SKB_MAGIC_LEN && memcmp(text, SKB_MAGIC, SKB_MAGIC_LEN) == 0;
  if (!is_skb) {
    /* A config: compile it in memory, then dump what was written, as a file would be dumped. */
    free(text);
    int rc = compile(o, &bytes, &len);
    if (rc) return rc;
  }
  char err[300];
  sk_module *m = NULL;
  int rc = 0;
  if (sk_module_load(bytes, len, &m, err, sizeof err) != 0) {
    fprintf(stderr, "skenec: %s: %s\n", o->input, err);
    rc = EXIT_CONFIG;
  } else if (sk_dump(m, stdout) != 0 || fflush(stdout) != 0) {
    fprintf(stderr, "skenec: cannot write the dump: %s\n", strerror(errno));
    rc = EXIT_USAGE;
  }
  sk_module_free(m);
  free(bytes);
  return rc;
}

int main(int argc, char **argv) {
  options o = {0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage, stdout);
      return 0;
    } else if (strcmp(a, "--version") == 0) {
      printf("skenec %s (bytecode format %d.%d)\n", sk_compiler_version(), SKB_VERSION_MAJOR, SKB_VERSION_MINOR);
      return 0;
    } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
      if (++i >= argc) return usage_error("%s needs a file name", a);
      o.output = argv[i];
    } else if (strncmp(a, "--output=", 9) == 0) {
      o.output = a + 9;
    } else if (strcmp(a, "--templates") == 0) {
      if (++i >= argc) return usage_error("%s needs a folder", a);
      o.templates = argv[i];
    } else if (strncmp(a, "--templates=", 12) == 0) {
      o.templates = a + 12;
    } else if (strncmp(a, "--diagnostics-format=", 21) == 0) {
      const char *f = a + 21;
      if (strcmp(f, "json") == 0) o.json = 1;
      else if (strcmp(f, "text") == 0) o.json = 0;
      else return usage_error("unknown diagnostics format '%s' (text or json)", f);
    } else if (a[0] == '-' && a[1]) {
      return usage_error("unknown option '%s'", a);
    } else if (!o.cmd) {
      o.cmd = a;
    } else if (!o.input) {
      o.input = a;
    } else {
      return usage_error("unexpected argument '%s': one input file at a time", a);
    }
  }
  if (!o.cmd) return usage_error("%s", "a command is needed: build, check or dump");
  if (strcmp(o.cmd, "build") && strcmp(o.cmd, "check") && strcmp(o.cmd, "dump"))
    return usage_error("unknown command '%s' (build, check or dump)", o.cmd);
  if (!o.input) return usage_error("'%s' needs an input file", o.cmd);
  if (o.output && strcmp(o.cmd, "build") != 0) return usage_error("%s", "-o goes with build");
  if (strcmp(o.cmd, "build") == 0) return cmd_build(&o);
  if (strcmp(o.cmd, "check") == 0) return cmd_check(&o);
  return cmd_dump(&o);
}
