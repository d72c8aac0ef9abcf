/* dlq.h: `skene-vm dlq list|retry` (dlq.c). */
#ifndef SKENE_RUNTIME_DLQ_H
#define SKENE_RUNTIME_DLQ_H

/* Runs the command with its arguments after `dlq`; returns the exit status. */
int sk_dlq_main(int argc, char **argv);

#endif
