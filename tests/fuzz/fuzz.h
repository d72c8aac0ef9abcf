/*
 * fuzz.h: the libFuzzer entry point every target in tests/fuzz/ defines. The same target file links
 * either with libFuzzer (build-fuzz/, SKENE_FUZZ=ON) or with replay.c, which feeds it the regression
 * inputs and the seed corpus in every build.
 */
#ifndef SK_FUZZ_H
#define SK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Runs one input. Must return 0; any crash, hang, leak or sanitizer report is a bug. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property every input must keep. Unlike assert, also checked in release builds (-DNDEBUG), since
   the replay tests run there too; a failure aborts, which libFuzzer and ctest report as a crash. */
#define FUZZ_CHECK(cond) ((cond) ? (void)0 : fuzz_fail(#cond, __FILE__, __LINE__))

static inline void fuzz_fail(const char *what, const char *file, int line) {
  fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
  abort();
}

#endif
