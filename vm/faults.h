/*
 * faults.h: scripted provider faults, the same for both stores: the next calls of a provider
 * (resend, outbox, webhook, redis) fail as a scenario says (tests/sim/README.md, "faults"). The
 * in-memory store (`skene-vm simulate`) and the Redis runtime (`skene-vm run --faults`) consume them
 * in the same order with the same answers, so one scenario drives both (tests/conformance/).
 */
#ifndef SK_FAULTS_H
#define SK_FAULTS_H

#include <stddef.h>
#include <stdint.h>

#include "vm.h"

typedef struct { char provider[16]; int status; uint32_t left; int64_t retry_after_ms; } sk_fault;
typedef struct { sk_fault *v; size_t n, cap; } sk_faults;

/* Appends: the next `count` calls of provider fail with HTTP `status` (0: a timeout), with the
   provider's Retry-After (0: none). 0, or -1 out of memory. */
int sk_faults_add(sk_faults *f, const char *provider, int status, uint32_t count, int64_t retry_after_ms);
/* Consumes the first fault left for provider into out (ok 0; transient for a timeout, 408, 429 and
   5xx; reason "resend: HTTP 500" or "resend: timed out"); returns 1 if there was one, else 0. */
int sk_faults_take(sk_faults *f, const char *provider, sk_io *out);
void sk_faults_free(sk_faults *f);

#endif
