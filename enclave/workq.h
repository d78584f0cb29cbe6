/*
 * workq.h: a fixed pool of worker threads serving a bounded FIFO of work
 * items (dataset probes; job runs: fetch + train + result). Items run to
 * completion; cancellation is the item's business (a flag it polls).
 */
#ifndef ENCLAVE_WORKQ_H
#define ENCLAVE_WORKQ_H

#include <stddef.h>

#include "appliance/err.h"

#define WORKQ_MAX_THREADS 64

struct workq;

/*
 * workq_new: starts nthreads (1..WORKQ_MAX_THREADS) threads named `name`
 * (<= 15 bytes) taking items from a FIFO of at most max_pending waiting
 * items. Returns 0, APP_EINVAL, APP_ENOMEM, APP_EINTERNAL (thread creation).
 */
int workq_new(struct workq **out, unsigned nthreads, size_t max_pending, const char *name) APP_WUR;

/*
 * workq_submit: queues fn(arg). drop(arg) (may be NULL) is called instead
 * if the queue is freed before the item started. Thread-safe.
 * Returns 0; APP_ELIMIT (max_pending waiting); APP_ESTATE (stopping); APP_ENOMEM.
 */
int workq_submit(struct workq *q, void (*fn)(void *arg), void (*drop)(void *arg), void *arg) APP_WUR;

/* workq_pending: items waiting (not started). Thread-safe. */
size_t workq_pending(struct workq *q);

/*
 * workq_free: lets running items finish, drops waiting ones (their drop),
 * joins the threads and frees. NULL is a no-op.
 */
void workq_free(struct workq *q);

#endif
