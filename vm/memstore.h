/*
 * memstore.h: the in-memory store and virtual clock that `skene-vm simulate` and the tests run loops
 * against. It implements sk_runtime_ops with the same semantics the Redis runtime has: tables of rows
 * (JSON objects), the indexes the compiler declared (exact counts per query shape and values, and the
 * first row in insertion order), a small Redis for `redis` conditions and actions, and providers whose
 * next calls fail as a scenario scripts them. Nothing here does I/O.
 */
#ifndef SK_MEMSTORE_H
#define SK_MEMSTORE_H

#include <jansson.h>
#include <stdint.h>

#include "skb.h"
#include "vm.h"

typedef struct sk_memstore sk_memstore;

/* A store for module m (borrowed), its clock at start_ms (ms since the Unix epoch). */
sk_memstore *sk_memstore_new(const sk_module *m, int64_t start_ms);
void sk_memstore_free(sk_memstore *s);

/* The runtime interface over this store; pass the store as the ud. */
const sk_runtime_ops *sk_memstore_ops(void);

void sk_memstore_set_now(sk_memstore *s, int64_t ms);
int64_t sk_memstore_now(const sk_memstore *s);

/* Where trace events go (the simulator prints them); NULL: nowhere. */
void sk_memstore_set_trace(sk_memstore *s, void (*fn)(void *ud, const sk_trace *t), void *ud);

/* The `from` an email gets when its action names none (SKENE_EMAIL_FROM); NULL: none. */
void sk_memstore_set_email_from(sk_memstore *s, const char *from);

/*
 * Writes row `id` of `table` (an object: its fields; values that are not strings are read as their
 * JSON text). Insert when the row is new, update (fields merged) otherwise; the indexes are updated
 * before this returns. *kind gets SK_EVENT_INSERT or SK_EVENT_UPDATE, *table_index the module's index
 * of the table (UINT32_MAX when no loop uses it). Returns 0, or -1 when row is not an object.
 * Takes its own reference to row's values.
 */
int sk_memstore_put(sk_memstore *s, const char *table, const char *id, json_t *row, uint32_t *kind,
                    uint32_t *table_index);

/* The same without JSON: field names[i] := values[i], lens[i] bytes (copied; a NULL value removes the
   field). For generated rows, where building JSON would cost more than the write. *row_id gets the id
   string the store keeps for the row (as sk_memstore_row_id would, without a second lookup). */
int sk_memstore_put_values(sk_memstore *s, const char *table, const char *id, const char *const *names,
                           const char *const *values, const size_t *lens, size_t n, uint32_t *kind,
                           uint32_t *table_index, sk_string **row_id);

/* Makes room for `rows` more rows of `table` (and its indexes) at once, so that a bulk load, such as a
   scenario's generated events, does not rehash the table again and again as it grows. A hint: 0, or -1
   when memory runs out (the store works on, growing as it goes). */
int sk_memstore_reserve(sk_memstore *s, const char *table, uint64_t rows);

/* The id string the store keeps for a row (shared with instances), or NULL. */
sk_string *sk_memstore_row_id(sk_memstore *s, uint32_t table_index, const char *id);

/* A provider's scripted fault: its next `count` calls fail with `status` (HTTP), or with a timeout when
   status is 0; `retry_after_ms` is returned with it. Faults of a provider apply in the order added.
   Providers: "resend", "outbox", "webhook", "redis". */
int sk_memstore_add_fault(sk_memstore *s, const char *provider, int status, uint32_t count, int64_t retry_after_ms);

/* Runs a Redis command on the store's small Redis (setting up a scenario's data). 0, or -1 if unknown. */
int sk_memstore_redis(sk_memstore *s, const char *const *argv, uint32_t argc);

/* Counters for the bench: calls per provider that succeeded. */
uint64_t sk_memstore_sent(const sk_memstore *s);

#endif
