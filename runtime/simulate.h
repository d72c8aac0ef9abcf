/*
 * simulate.h: `skene-vm simulate`: replays a scenario (rows that exist before the start, timed row
 * events, provider faults, generated load) against the in-memory store on a virtual clock, and prints
 * what the loops do: one JSON object per trace event (or a readable timeline, or only a summary).
 * Same .skb, scenario and seed: same bytes of output. The scenario format is in tests/sim/README.md.
 */
#ifndef SK_SIMULATE_H
#define SK_SIMULATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "skb.h"

/* Exit statuses shared with the program: ok, bad input (module or scenario), usage or I/O. */
#define SK_SIM_OK 0
#define SK_SIM_EINPUT 1
#define SK_SIM_EIO 2

typedef enum { SK_SIM_JSONL = 0, SK_SIM_TEXT } sk_sim_format;

typedef struct {
  sk_sim_format format;
  int quiet;               /* no timeline: the summary, wall time, throughput and memory per instance */
  const char *email_from;  /* SKENE_EMAIL_FROM, or NULL */
  FILE *out;               /* where the timeline and the summary go */
} sk_sim_options;

typedef struct sk_scenario sk_scenario;

/*
 * Reads and checks the scenario file at path. Returns SK_SIM_OK and *out (free with
 * sk_scenario_free), or SK_SIM_EINPUT with a one-line message in err ("PATH: events[3].at: invalid
 * duration '5 minutes'", "PATH:LINE:COL: <JSON syntax error>"), or SK_SIM_EIO when the file cannot be
 * read. Cost: O(file size); `generate` entries are checked here but expanded only while simulating.
 */
int sk_scenario_load(const char *path, sk_scenario **out, char *err, size_t errlen);
void sk_scenario_free(sk_scenario *sc);
/* The scenario's provider faults, in order (for `skene-vm run --faults`, which plays them on Redis). */
size_t sk_scenario_nfaults(const sk_scenario *sc);
void sk_scenario_fault(const sk_scenario *sc, size_t i, const char **provider, int *status, uint32_t *count,
                       int64_t *retry_after_ms);

/*
 * Runs sc against module m (verified, borrowed) and prints to o->out. Returns SK_SIM_OK, SK_SIM_EINPUT
 * when the scenario is refused by the store (a `redis` setup command it cannot run), or SK_SIM_EIO
 * (memory, or a write error); err says why. Warnings (a table no loop uses) go to stderr.
 */
int sk_simulate(const sk_module *m, const sk_scenario *sc, const sk_sim_options *o, char *err, size_t errlen);

#endif
