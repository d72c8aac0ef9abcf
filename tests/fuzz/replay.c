/*
 * replay.c: runs one fuzz target's LLVMFuzzerTestOneInput over files, without libFuzzer, so every
 * build (gcc or clang, plain or ASan) replays the regression inputs and the seed corpus.
 *   replay PATH...   each PATH is a file or a folder (its regular files, in name order, not recursive)
 * Exits 0 when every input ran; a crash, a failed assertion or a sanitizer report ends it early.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t cap = 4096, len = 0;
  uint8_t *data = malloc(cap);
  size_t n;
  while (data && (n = fread(data + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) {
      uint8_t *grown = realloc(data, cap *= 2);
      if (!grown) free(data);
      data = grown;
    }
  }
  int bad = ferror(f);
  fclose(f);
  if (!data || bad) {
    fprintf(stderr, "replay: cannot read %s\n", path);
    free(data);
    return -1;
  }
  /* A copy of exactly len bytes, so ASan catches a read one past the end as libFuzzer would. */
  uint8_t *exact = malloc(len ? len : 1);
  if (!exact) {
    free(data);
    return -1;
  }
  memcpy(exact, data, len);
  free(data);
  fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file directly in dir, in name order. Returns the count, or -1. */
static int run_dir(const char *dir) {
  DIR *dh = opendir(dir);
  if (!dh) {
    fprintf(stderr, "replay: cannot open %s: %s\n", dir, strerror(errno));
    return -1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(dh)) != NULL) {
    if (e->d_name[0] == '.') continue;
    if (n == cap) {
      char **grown = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
      if (!grown) break;
      names = grown;
    }
    size_t pl = strlen(dir) + strlen(e->d_name) + 2;
    if ((names[n] = malloc(pl)) == NULL) break;
    snprintf(names[n++], pl, "%s/%s", dir, e->d_name);
  }
  closedir(dh);
  if (n) qsort(names, n, sizeof *names, by_name);
  int count = 0;
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (count >= 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
      count = run_file(names[i]) == 0 ? count + 1 : -1;
    free(names[i]);
  }
  free(names);
  return count;
}

int main(int argc, char **argv) {
  int total = 0;
  if (argc < 2) {
    fprintf(stderr, "usage: replay PATH...\n");
    return 2;
  }
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
      return 1;
    }
    int n = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : run_file(argv[i]) == 0 ? 1 : -1;
    if (n < 0) return 1;
    total += n;
  }
  printf("replay: %d inputs ran\n", total);
  return 0;
}
