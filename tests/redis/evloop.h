/*
 * evloop.h: the event loop the Redis tests drive, shared by test_redis.c, test_feed.c and test_store.c
 * (include it once, after cmocka.h and event2/event.h). The test owns `base`; RUN_UNTIL runs the loop
 * until a condition holds and fails the test when it has not within a time limit; run_for runs it for
 * a while whatever happens.
 */
#ifndef SK_TESTS_REDIS_EVLOOP_H
#define SK_TESTS_REDIS_EVLOOP_H

static struct event_base *base;
static int timed_out;

static inline void on_deadline(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  (void)arg;
  timed_out = 1;
}

/* Arms a deadline of ms milliseconds that sets timed_out; event_free the timer it returns. */
static inline struct event *deadline_start(int ms) {
  struct event *t = evtimer_new(base, on_deadline, NULL);
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  timed_out = 0;
  evtimer_add(t, &tv);
  return t;
}

/* Runs the loop until cond holds; fails the test after ms milliseconds. */
#define RUN_UNTIL(cond, ms)                                                                        \
  do {                                                                                             \
    struct event *t_ = deadline_start(ms);                                                         \
    while (!(cond) && !timed_out)                                                                  \
      event_base_loop(base, EVLOOP_ONCE);                                                          \
    event_free(t_);                                                                                \
    if (!(cond))                                                                                   \
      fail_msg("timed out after %d ms waiting for %s", (int)(ms), #cond);                          \
  } while (0)

/* Runs the loop for ms milliseconds. */
static inline void run_for(int ms) {
  struct event *t = deadline_start(ms);
  while (!timed_out)
    event_base_loop(base, EVLOOP_ONCE);
  event_free(t);
}

#endif
