/* run.h: `skene-vm run` (run.c). */
#ifndef SKENE_RUNTIME_RUN_H
#define SKENE_RUNTIME_RUN_H

/* Runs the command with its arguments after `run`; returns the exit status: 0 drained after
 * SIGTERM/SIGINT, 1 a start-up check failed (messages on stderr), 2 usage or I/O. A second signal
 * exits at once with 3. */
int sk_run_main(int argc, char **argv);

#endif
