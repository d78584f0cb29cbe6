/*
 * workq.c: worker thread pool (workq.h).
 */
#include "enclave/workq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/log.h"

struct item {
	struct item *next;
	void (*fn)(void *arg);
	void (*drop)(void *arg);
	void *arg;
};

struct workq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct item *head, *tail;
	size_t pending, max_pending;
	int stopping;
	unsigned nthreads;
	pthread_t th[WORKQ_MAX_THREADS];
};

static void *worker(void *arg)
{
	struct workq *q = arg;
	for (;;) {
		pthread_mutex_lock(&q->lock);
		while (!q->head && !q->stopping)
			pthread_cond_wait(&q->cond, &q->lock);
		if (q->stopping) {
			pthread_mutex_unlock(&q->lock);
			return NULL;
		}
		struct item *it = q->head;
		q->head = it->next;
		if (!q->head)
			q->tail = NULL;
		q->pending--;
		pthread_mutex_unlock(&q->lock);
		it->fn(it->arg);
		free(it);
	}
}

int workq_new(struct workq **out, unsigned nthreads, size_t max_pending, const char *name)
{
	*out = NULL;
	if (nthreads < 1 || nthreads > WORKQ_MAX_THREADS || max_pending < 1)
		return APP_EINVAL;
	struct workq *q = calloc(1, sizeof *q);
	if (!q)
		return APP_ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->max_pending = max_pending;
	for (unsigned i = 0; i < nthreads; i++) {
		if (pthread_create(&q->th[i], NULL, worker, q) != 0) {
			log_error("event=thread_create name=%s", name);
			workq_free(q);
			return APP_EINTERNAL;
		}
		q->nthreads++;
		char nm[16];
		snprintf(nm, sizeof nm, "%.11s-%u", name, i);
		(void)pthread_setname_np(q->th[i], nm);
	}
	*out = q;
	return 0;
}

int workq_submit(struct workq *q, void (*fn)(void *arg), void (*drop)(void *arg), void *arg)
{
	struct item *it = calloc(1, sizeof *it);
	if (!it)
		return APP_ENOMEM;
	it->fn = fn;
	it->drop = drop;
	it->arg = arg;
	pthread_mutex_lock(&q->lock);
	int r = 0;
	if (q->stopping)
		r = APP_ESTATE;
	else if (q->pending >= q->max_pending)
		r = APP_ELIMIT;
	if (r) {
		pthread_mutex_unlock(&q->lock);
		free(it);
		return r;
	}
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->pending++;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

size_t workq_pending(struct workq *q)
{
	pthread_mutex_lock(&q->lock);
	size_t n = q->pending;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void workq_free(struct workq *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = 1;
	struct item *it = q->head;
	q->head = q->tail = NULL;
	q->pending = 0;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->th[i], NULL);
	while (it) {
		struct item *n = it->next;
		if (it->drop)
			it->drop(it->arg);
		free(it);
		it = n;
	}
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
